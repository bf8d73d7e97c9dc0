//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/instance"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestInstances: a seller builds the demo package on the bootable
// debian-12 image through pib serve, launches the build's image with
// `pib instance launch --wait` and a generated key, and a real ssh to
// 127.0.0.1:PORT runs the package's program and reads the file its
// installer wrote. Another seller neither sees the instance nor launches,
// reads, stops or removes it or the image. Stopping pib serve stops the
// machine and removes its files.
func TestInstances(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatal("needs openssh-client (scripts/deps.sh test installs it)")
	}
	data := t.TempDir()
	s, closeStore, err := testenv.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	testenv.ImportDebian12Machine(t, s)
	closeStore()

	srv := startServerTB(t, data, freeAddr(t), 1, "--instance-limit", "1")
	t.Cleanup(func() { killQEMUOf(t, data) })
	ctx := context.Background()
	seller := srv.seller(t, "acme")
	token, _ := os.ReadFile(filepath.Join(data, "operator.token"))
	op := client.New(srv.url, strings.TrimSpace(string(token)))
	otherAcc, err := op.CreateAccount(ctx, "globex", accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}

	// The demo package, and an installer that also leaves a file to read.
	deb := demoDeb(t)
	debData, _ := os.ReadFile(deb)
	debPkg, err := seller.UploadPackage(ctx, filepath.Base(deb), bytes.NewReader(debData), int64(len(debData)))
	if err != nil {
		t.Fatal(err)
	}
	installer := "#!/bin/sh\nset -e\ndpkg -i hello-pib_1.0_all.deb\necho 'hello from pib' > /etc/hello-pib\n"
	inst, err := seller.UploadPackage(ctx, "install.sh", strings.NewReader(installer), int64(len(installer)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seller.CreateGroup(ctx, groups.Spec{Name: "Hello1", Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: inst.ID, PackageIDs: []string{debPkg.ID}}); err != nil {
		t.Fatal(err)
	}
	builds, err := seller.SubmitGroup(ctx, "Hello1")
	if err != nil {
		t.Fatal(err)
	}
	var b *pipeline.Build
	waitFor(t, 15*time.Minute, "the build to end", func() bool {
		b, err = seller.Build(ctx, builds[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		return b.State.Ended()
	})
	if b.ImageID == "" {
		log, _ := os.ReadFile(srv.log.Name())
		t.Fatalf("the build kept no image: %+v\nserve log:\n%s", b, log)
	}

	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	cli := func(token string, args ...string) (string, error) {
		cmd := exec.Command(os.Args[0], append([]string{"--data", data, "--server", srv.url}, args...)...)
		cmd.Env = append(os.Environ(), "PIB_TEST_RUN_PIB=1", "PIB_TOKEN="+token)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		if err != nil {
			return out.String(), &cliError{args: args, stderr: strings.TrimSpace(errOut.String()), err: err}
		}
		return out.String(), nil
	}

	// Another seller cannot launch the image: it answers as a missing one.
	if _, err := cli(otherAcc.Token, "instance", "launch", b.ImageID, "--ssh-key", keyFile+".pub"); err == nil || !strings.Contains(stderrOf(err), "not found") {
		t.Errorf("another seller launched the image: %v", err)
	}

	start := time.Now()
	out, err := cli(seller.Token, "instance", "launch", b.ImageID, "--ssh-key", keyFile+".pub", "--memory", "1G", "--wait", "--json")
	if err != nil {
		console, _ := cli(seller.Token, "instance", "ls")
		t.Fatalf("launch: %v\n%s\n%s", err, out, console)
	}
	launched := time.Since(start)
	var in instance.Instance
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("launch --json: %v: %s", err, out)
	}
	if !in.SSHReady || in.State != "running" || in.ImageID != b.ImageID {
		t.Fatalf("after launch --wait: %+v", in)
	}
	if _, err := cli(seller.Token, "instance", "launch", b.ImageID, "--ssh-key", keyFile+".pub"); err == nil || !strings.Contains(stderrOf(err), "limit") {
		t.Errorf("a second instance over --instance-limit 1: %v", err)
	}

	sshOut, err := exec.Command("ssh", "-i", keyFile, "-p", strconv.Itoa(in.SSHPort),
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20",
		"-o", "LogLevel=ERROR", "debian@127.0.0.1", "cat /etc/hello-pib; hello-pib; hostname").CombinedOutput()
	if want := "hello from pib\nhello\n" + in.Hostname + "\n"; err != nil || string(sshOut) != want {
		console, _ := cli(seller.Token, "instance", "console", in.ID)
		t.Fatalf("ssh: %v: %q, want %q\nconsole:\n%s", err, sshOut, want, lastLines(console, 40))
	}
	t.Logf("launch → SSH answered in %v (software emulation; the image's disk made on first launch)", launched.Round(time.Second))

	// The console, cleaned of terminal control sequences.
	console, err := cli(seller.Token, "instance", "console", in.ID)
	if err != nil || !strings.Contains(console, "Linux version") || strings.ContainsRune(console, 0x1b) {
		t.Errorf("console: %v: %q", err, lastLines(console, 5))
	}

	// The image as a qcow2 disk, through the server (made from the disk
	// the launch made).
	qcow := filepath.Join(t.TempDir(), "hello.qcow2")
	if _, err := cli(seller.Token, "image", "export", b.ImageID, "--format", "qcow2", "-o", qcow); err != nil {
		t.Errorf("export the image as qcow2 through the server: %v", err)
	} else if out, err := exec.Command("qemu-img", "check", "-f", "qcow2", qcow).CombinedOutput(); err != nil {
		t.Errorf("qemu-img check of the exported disk: %v: %s", err, out)
	}
	if _, err := cli(otherAcc.Token, "image", "export", b.ImageID, "--format", "qcow2", "-o", qcow+".other"); err == nil {
		t.Error("another seller exported the image as a disk")
	}

	// Another seller sees nothing of it.
	if out, err := cli(otherAcc.Token, "instance", "ls", "--json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("another seller's instance ls: %v: %s", err, out)
	}
	for _, args := range [][]string{{"console", in.ID}, {"stop", in.ID}, {"rm", in.ID}} {
		if _, err := cli(otherAcc.Token, append([]string{"instance"}, args...)...); err == nil || !strings.Contains(stderrOf(err), "instance not found") {
			t.Errorf("another seller's instance %s: %v", args[0], err)
		}
	}
	if out, err := cli(seller.Token, "instance", "ls"); err != nil || !strings.Contains(out, in.ID) || !strings.Contains(out, "running") {
		t.Errorf("instance ls: %v: %s", err, out)
	}

	// pib serve's shutdown stops the machine and removes its files.
	srv.stop(syscall.SIGTERM)
	if pids := qemuOf(data); len(pids) > 0 {
		t.Errorf("QEMU left running after pib serve stopped: %v", pids)
	}
	if ents, _ := os.ReadDir(filepath.Join(data, "instances")); len(ents) > 0 {
		t.Errorf("instance files left after pib serve stopped: %v", ents)
	}

	// Without a server: the instance runs in the foreground from the data
	// directory until Ctrl-C, then nothing of it is left.
	local := exec.Command(os.Args[0], "--data", data, "instance", "launch", b.ImageID, "--ssh-key", keyFile+".pub")
	local.Env = append(os.Environ(), "PIB_TEST_RUN_PIB=1", "PIB_SERVER=")
	var localOut syncBuffer
	local.Stdout, local.Stderr = &localOut, &localOut
	localStart := time.Now()
	if err := local.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- local.Wait() }()
	t.Cleanup(func() { local.Process.Kill() })
	waitFor(t, 10*time.Minute, "the local instance's SSH", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("the local launch ended early: %v\n%s", err, localOut.String())
		default:
		}
		return strings.Contains(localOut.String(), "SSH answers")
	})
	t.Logf("local launch → SSH answered in %v (the disk cached)", time.Since(localStart).Round(time.Second))
	port := regexp.MustCompile(`ssh -i \S+ -p (\d+) debian@127\.0\.0\.1`).FindStringSubmatch(localOut.String())
	if port == nil {
		t.Fatalf("the local launch printed no ssh command:\n%s", localOut.String())
	}
	if out, err := exec.Command("ssh", "-i", keyFile, "-p", port[1], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "debian@127.0.0.1", "cat /etc/hello-pib").CombinedOutput(); err != nil || string(out) != "hello from pib\n" {
		t.Errorf("ssh to the local instance: %v: %q", err, out)
	}
	local.Process.Signal(syscall.SIGINT)
	if err := <-exited; err != nil {
		t.Errorf("the local launch after Ctrl-C: %v\n%s", err, localOut.String())
	}
	if pids := qemuOf(data); len(pids) > 0 {
		t.Errorf("QEMU left running after the local launch ended: %v", pids)
	}
	if left, _ := filepath.Glob(filepath.Join(data, "cache", "instances-local-*")); len(left) > 0 {
		t.Errorf("the local launch left %v", left)
	}
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// qemuOf lists the QEMU processes whose command line names data.
func qemuOf(data string) []string {
	var pids []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(p)
		if bytes.HasPrefix(cmdline, []byte("qemu-system")) && bytes.Contains(cmdline, []byte(data)) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// killQEMUOf kills what a failed test left, so that no machine outlives it.
func killQEMUOf(t *testing.T, data string) {
	for _, pid := range qemuOf(data) {
		n, _ := strconv.Atoi(pid)
		syscall.Kill(n, syscall.SIGKILL)
		t.Logf("killed QEMU %d left by the test", n)
	}
}
