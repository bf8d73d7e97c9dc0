package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgentPortWaitsForHost: a Linux virtio port reads as end of file
// until the host connects; the agent must wait for the host's first
// bytes instead of ending its session at once, and give up when stopped.
func TestAgentPortWaitsForHost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "port")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &portConn{f: f, ctx: ctx}
	go func() {
		// The "host" connects a little later.
		time.Sleep(300 * time.Millisecond)
		os.WriteFile(path, []byte("hi"), 0o600)
	}()
	buf := make([]byte, 8)
	n, err := p.Read(buf)
	if err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("Read = %q, %v; want the host's first bytes", buf[:n], err)
	}
	// Once the session has begun, end of file is the host going away.
	if _, err := p.Read(buf); err != io.EOF {
		t.Errorf("Read after the session began = %v, want io.EOF", err)
	}

	// Stopped before any host came: end of file, not a hang.
	g, _ := os.CreateTemp(t.TempDir(), "port")
	defer g.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if _, err := (&portConn{f: g, ctx: ctx2}).Read(buf); err != io.EOF || time.Since(start) > 5*time.Second {
		t.Errorf("Read with a stopped agent = %v after %s, want io.EOF soon", err, time.Since(start))
	}
}

func TestAgentCommandDefaults(t *testing.T) {
	cmd := newAgentCommand()
	if got := cmd.Flag("port").DefValue; got != defaultAgentPort() || got == "" {
		t.Errorf("--port defaults to %q", got)
	}
	if err := cmd.Flags().Parse([]string{"--port", filepath.Join(t.TempDir(), "missing")}); err != nil {
		t.Fatal(err)
	}
	err := cmd.RunE(cmd, nil)
	if err == nil || !strings.Contains(err.Error(), "org.pib.agent.0") {
		t.Errorf("a missing port: %v, want an error naming the port to configure", err)
	}
}

// TestAgentCommandBuildsForWindows: agent.go is the Windows guest's
// `pib agent`, so it must compile for windows with its service files
// only, none of the Linux-only files of this package (vet type-checks
// them; a build of them alone stops only at the missing main, which the
// windows entry point supplies).
func TestAgentCommandBuildsForWindows(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to cross-compile with")
	}
	cmd := exec.Command(gobin, "vet", "agent.go", "agent_svc.go", "agent_windows.go")
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=windows go vet cmd/pib/agent.go agent_svc.go agent_windows.go: %v\n%s", err, out)
	}
}
