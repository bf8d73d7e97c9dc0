package sandbox_test

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/sandbox"
)

// TestHelperSignalledBuild is not a test: TestSignalTeardown runs the test
// binary with it as a stand-in for `pib build` receiving a signal.
func TestHelperSignalledBuild(t *testing.T) {
	work := os.Getenv("PIB_SANDBOX_HELPER_WORK")
	if work == "" {
		t.Skip("helper process for TestSignalTeardown")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	slow := filepath.Join(work, "slow.sh")
	res, err := sandbox.Run(ctx, sandbox.Config{LowerDirs: strings.Split(os.Getenv("PIB_SANDBOX_HELPER_LOWER"), ":"),
		Installer: slow, Timeout: time.Minute, WorkDir: work, LogPath: filepath.Join(work, "build.log")})
	if err == nil {
		res.Close()
		t.Fatal("the build was not cancelled")
	}
}

// TestSignalTeardown sends SIGTERM and SIGINT to a process in the middle of
// a build: it must end promptly and leave no mount, process, cgroup or
// directory behind.
func TestSignalTeardown(t *testing.T) {
	lowers := lowerDirs(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			work := t.TempDir()
			os.WriteFile(filepath.Join(work, "slow.sh"), []byte("#!/bin/sh\nsleep 1000 &\necho started\nsleep 1000\n"), 0o644)
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSignalledBuild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "PIB_SANDBOX_HELPER_WORK="+work, "PIB_SANDBOX_HELPER_LOWER="+strings.Join(lowers, ":"))
			out := &strings.Builder{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				log, _ := os.ReadFile(filepath.Join(work, "build.log"))
				if strings.Contains(string(log), "stdout| started") {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("the build never started:\n%s", out)
				}
				time.Sleep(20 * time.Millisecond)
			}
			start := time.Now()
			cmd.Process.Signal(sig)
			if err := cmd.Wait(); err != nil {
				t.Errorf("helper: %v\n%s", err, out)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s to stop after %s", d, sig)
			}
			os.Remove(filepath.Join(work, "slow.sh"))
			checkTeardown(t, work, "")
		})
	}
}

// TestSweepAfterSIGKILL: a SIGKILLed pib cannot clean up; the kernel still
// ends the sandbox (its init dies with its parent), and Sweep removes the
// host-side leftovers.
func TestSweepAfterSIGKILL(t *testing.T) {
	lowers := lowerDirs(t)
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "slow.sh"), []byte("#!/bin/sh\necho started\nsleep 1000\n"), 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSignalledBuild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PIB_SANDBOX_HELPER_WORK="+work, "PIB_SANDBOX_HELPER_LOWER="+strings.Join(lowers, ":"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		log, _ := os.ReadFile(filepath.Join(work, "build.log"))
		if strings.Contains(string(log), "stdout| started") {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the build never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	// Wait for the kernel to end the orphaned sandbox.
	for time.Now().Before(deadline) && len(sandboxProcesses(work)) > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); !strings.Contains(string(mi), work) {
		t.Error("no leftover mount to sweep: the test did not kill pib mid-build")
	}
	if err := sandbox.Sweep(work); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(work, "slow.sh"))
	checkTeardown(t, work, "")
}
