package vmbuild_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/testenv"
	"github.com/pib-dev/pib/internal/vmbuild"
)

func TestMain(m *testing.M) {
	sandbox.Main() // the sandbox backend re-executes this test binary as its init
	code := m.Run()
	testenv.RemovePibBinary() // the pib built for the guests
	os.Exit(code)
}

// vmSlots bounds the machines booted at once: TCG on 2 shared cores.
var vmSlots = make(chan struct{}, 2)

// base is the bootable debian-12 base: its cached raw disk and root.
type base struct {
	disk, root string
}

var (
	baseOnce sync.Once
	theBase  base
	baseErr  string
)

func bootable(t *testing.T) base {
	t.Helper()
	testenv.RequireRoot(t)
	deb := testenv.Debian12Machine(t)
	baseOnce.Do(func() {
		s, closeFn, err := testenv.OpenStore(deb.DataDir)
		if err != nil {
			baseErr = err.Error()
			return
		}
		defer closeFn()
		ctx := context.Background()
		im, err := s.Get(ctx, deb.ImageID)
		if err != nil {
			baseErr = err.Error()
			return
		}
		d, err := s.Disk(ctx, im, 0, images.DiskRaw)
		if err != nil {
			baseErr = err.Error()
			return
		}
		theBase = base{disk: d, root: deb.Rootfs}
	})
	if baseErr != "" {
		t.Fatal(baseErr)
	}
	return theBase
}

// vmBuild runs one installer from testdata (or a sandbox testdata one)
// in a machine, and checks that nothing of it is left once closed: no
// QEMU, no loop device, no mount, no build directory.
func vmBuild(t *testing.T, installer string, timeout time.Duration, packages ...string) *vmbuild.Result {
	t.Helper()
	b := bootable(t)
	bin := testenv.PibBinary(t)
	vmSlots <- struct{}{}
	defer func() { <-vmSlots }()
	work := t.TempDir()
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	res, err := vmbuild.Run(context.Background(), vmbuild.Config{BaseDisk: b.disk, BaseRoot: b.root, Agent: bin,
		Installer: installer, Packages: packages, Timeout: timeout, WorkDir: work, LogPath: filepath.Join(work, "build.log")})
	if err != nil {
		t.Fatalf("vm build of %s: %v", filepath.Base(installer), err)
	}
	t.Cleanup(func() {
		if err := res.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		checkNothingLeft(t, work)
	})
	log, _ := os.ReadFile(res.LogPath)
	t.Logf("%s: boot %s, build %s, exit %d, %d finding(s), %d change(s); log:\n%s", filepath.Base(installer),
		res.Boot.Round(100*time.Millisecond), res.Duration.Round(100*time.Millisecond), res.ExitCode, len(res.Findings), len(res.Changes.Files), log)
	return res
}

// checkNothingLeft: no loop device backs onto a disk under work, nothing
// is mounted under it, no QEMU runs on it, and only the log remains.
func checkNothingLeft(t *testing.T, work string) {
	t.Helper()
	if out, _ := exec.Command("losetup", "--list", "--noheadings", "--output", "BACK-FILE").Output(); strings.Contains(string(out), work) {
		t.Errorf("a loop device still backs onto the build's disk:\n%s", out)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), work) {
		t.Errorf("something is still mounted under the build's directory")
	}
	if out, _ := exec.Command("pgrep", "-f", "qemu-system-x86_64.*"+work).Output(); len(out) > 0 {
		t.Errorf("QEMU still runs on the build's disk: pids %s", out)
	}
	ents, _ := os.ReadDir(work)
	for _, e := range ents {
		if e.Name() != "build.log" {
			t.Errorf("left in the work directory: %s", e.Name())
		}
	}
}

// TestNoOpBootIsEmpty: a boot of the base with the agent and an installer
// that does nothing gives no change at all: everything the boot changes by
// itself is BootNoise, and what pib injected is left out. A real TCG boot.
func TestNoOpBootIsEmpty(t *testing.T) {
	res := vmBuild(t, "testdata/noop.sh", 0)
	if !res.Passed() || res.ExitCode != 0 {
		t.Errorf("the no-op build did not pass: exit %d, %+v", res.ExitCode, res.Findings)
	}
	if len(res.Changes.Files) != 0 {
		var b strings.Builder
		for _, f := range res.Changes.Files {
			b.WriteString(f.Change + " /" + f.Path + " (" + f.Type + ")\n")
		}
		t.Errorf("a no-op install changed %d path(s); each is either boot noise to add to BootNoise (with why) or a bug in Diff:\n%s", len(res.Changes.Files), b.String())
	}
	ents, err := os.ReadDir(res.UpperDir)
	if err != nil || len(ents) != 0 {
		t.Errorf("the no-op layer is not empty: %v %v", ents, err)
	}
}

// TestBootNoise: the exclusion list covers the boot's own writes and pib's
// injected files, and nothing an installer is expected to ship.
func TestBootNoise(t *testing.T) {
	for _, p := range []string{"var/log/journal/abc/system.journal", "etc/machine-id", "etc/ssh/ssh_host_ed25519_key",
		"usr/local/lib/pib", "usr/local/lib/pib/pib", "etc/systemd/system/pib-agent.service", "var/tmp/pib/build/x.sh",
		"var/lib/systemd/random-seed", "var/lib/cloud/instances/x", "tmp/x"} {
		if !vmbuild.BootNoise(p) {
			t.Errorf("%s is not boot noise", p)
		}
	}
	for _, p := range []string{"etc/systemd/system/pib-hello.service", "usr/local/lib/pib2", "usr/local/bin/x", "opt/ok/file",
		"etc/ssh/sshd_config", "var/lib/systemd/deb-systemd-helper-enabled/x", "etc/issue", "var/lib", "var/logx"} {
		if vmbuild.BootNoise(p) {
			t.Errorf("%s is boot noise, but an installer's change to it must reach the layer", p)
		}
	}
}

// TestSweep: a dead vm build's directory (its lock free: the process that
// held it is gone) is removed with its disk copy and its mount point; a
// live one's (lock held) is left alone.
func TestSweep(t *testing.T) {
	testenv.RequireRoot(t)
	work := t.TempDir()
	mk := func(name string) string {
		d := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Join(d, "root-1"), 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "disk.raw"), []byte("disk"), 0o600)
		os.WriteFile(filepath.Join(d, "lock"), nil, 0o600)
		return d
	}
	dead, live := mk("pib-vm-dead"), mk("pib-vm-live")
	lock, err := os.OpenFile(filepath.Join(live, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(work, "build.log")
	os.WriteFile(other, []byte("log"), 0o600)
	if err := vmbuild.Sweep(work); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead build's directory is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(live, "disk.raw")); err != nil {
		t.Errorf("the live build's disk was removed: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("Sweep removed what is not a vm build's: %v", err)
	}
}

// TestHostEnforcesTimeLimit: an installer that stops the guest agent (so
// the guest cannot enforce I7 any more) is still ended, by the host, at
// the time limit plus the run margin: the machine is stopped, the
// finding is I7, there is no result to read, and nothing is left behind.
// A real TCG boot.
func TestHostEnforcesTimeLimit(t *testing.T) {
	b := bootable(t)
	bin := testenv.PibBinary(t)
	vmSlots <- struct{}{}
	defer func() { <-vmSlots }()
	work := t.TempDir()
	res, err := vmbuild.Run(context.Background(), vmbuild.Config{BaseDisk: b.disk, BaseRoot: b.root, Agent: bin,
		Installer: "testdata/stop-agent.sh", Timeout: 20 * time.Second, RunMargin: 15 * time.Second,
		WorkDir: work, LogPath: filepath.Join(work, "build.log")})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(res.LogPath)
	if len(res.Findings) != 1 || res.Findings[0].Rule != "I7" || !strings.Contains(res.Findings[0].Message, "machine was stopped") {
		t.Errorf("findings %+v; want the host's I7 finding alone\nlog:\n%s", res.Findings, log)
	}
	// The installer's own output cannot be in the log: the agent that
	// forwards it is stopped. "the machine was stopped" is the host's
	// wording; the agent's own I7 finding says otherwise.
	if !strings.Contains(string(log), "the host stops the machine") {
		t.Errorf("the log does not say the host stopped the machine:\n%s", log)
	}
	if res.UpperDir != "" {
		t.Errorf("a build the host stopped has a result to read: %s", res.UpperDir)
	}
	if err := res.Close(); err != nil {
		t.Error(err)
	}
	checkNothingLeft(t, work)
}
