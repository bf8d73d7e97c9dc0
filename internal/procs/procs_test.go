//go:build linux

package procs

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestReadingInput: a process blocked reading its stdin is seen as such
// (I1), and it shows up below its parent (the tree walk of I3).
func TestReadingInput(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd := exec.Command("/bin/sh", "-c", "read answer")
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var p Process
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		p, _ = Read(cmd.Process.Pid)
		if p.ReadingInput != "" || time.Now().After(deadline) {
			break
		}
	}
	if !strings.HasPrefix(p.ReadingInput, "stdin (pipe:") {
		t.Errorf("ReadingInput = %q, want stdin (pipe:…)", p.ReadingInput)
	}
	found := false
	for _, d := range Descendants(os.Getpid()) {
		found = found || d.PID == cmd.Process.Pid
	}
	if !found {
		t.Error("the child is not among Descendants")
	}
	fs := TimedOut(time.Second, []Process{p})
	if len(fs) != 2 || fs[0].Rule != "I1" || !strings.Contains(fs[0].Message, "may be waiting for input") || fs[1].Rule != "I7" {
		t.Errorf("TimedOut = %+v, want I1 then I7", fs)
	}
}

func TestWording(t *testing.T) {
	if f := Exited(0, ""); f != nil {
		t.Errorf("status 0 gave %+v", f)
	}
	if f := Exited(3, ""); f == nil || f.Rule != "I4" || !strings.Contains(f.Message, "status 3") {
		t.Errorf("status 3 gave %+v", f)
	}
	if f := Exited(-1, "SIGKILL"); f == nil || !strings.Contains(f.Message, "signal SIGKILL") {
		t.Errorf("SIGKILL gave %+v", f)
	}
	if f := LeftRunning(nil); f != nil {
		t.Errorf("nothing left gave %+v", f)
	}
	f := LeftRunning([]Process{{PID: 7, PPID: 1, State: "S", Cmdline: "sleep 1000"}})
	if f == nil || f.Rule != "I3" || f.Detail != "pid 7 (parent 1) S: sleep 1000" {
		t.Errorf("LeftRunning = %+v", f)
	}
	if fs := TimedOut(time.Second, []Process{{PID: 7, Cmdline: "x"}}); len(fs) != 1 || fs[0].Rule != "I7" {
		t.Errorf("no blocked process must give I7 only: %+v", fs)
	}
}
