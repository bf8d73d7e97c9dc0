//go:build linux

package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/netwatch"
)

// The guest tests run `Serve` in a child process of this test binary in
// new PID, mount and network namespaces: what a VM guest looks like to the
// agent (root, loopback only, PID 1 its own), without harming the host. A
// reboot(2) there ends the namespace's init, as a reset ends the VM.

const envGuest = "PIB_AGENT_TEST_GUEST"

func TestMain(m *testing.M) {
	if dir := os.Getenv(envGuest); dir != "" {
		os.Exit(guestMain(dir))
	}
	os.Exit(m.Run())
}

func guestMain(dir string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "test guest: "+format+"\n", args...)
		return 2
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fail("private mounts: %v", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fail("mount /proc: %v", err)
	}
	// A safety net: should the wrappers ever fail, the real reboot
	// commands must not reach the test machine's init.
	for _, p := range []string{"/usr/sbin/reboot", "/sbin/reboot", "/usr/sbin/shutdown", "/sbin/shutdown", "/usr/sbin/halt",
		"/sbin/halt", "/usr/sbin/poweroff", "/sbin/poweroff", "/usr/bin/systemctl", "/bin/systemctl", "/sbin/init", "/usr/sbin/init", "/sbin/telinit", "/usr/sbin/telinit"} {
		if _, err := os.Stat(p); err == nil {
			if err := unix.Mount("/bin/false", p, "", unix.MS_BIND, ""); err != nil {
				return fail("guard %s: %v", p, err)
			}
		}
	}
	resolvBefore, _ := os.ReadFile("/etc/resolv.conf")
	before, err := netwatch.Snapshot()
	if err != nil {
		return fail("%v", err)
	}
	r := &linuxRunner{dir: dir, powerOff: func() error { return nil }, watchNet: true}
	conn := struct {
		io.Reader
		io.Writer
	}{os.Stdin, os.Stdout}
	if err := Serve(context.Background(), conn, r); err != nil {
		return fail("Serve: %v", err)
	}
	// Everything the agent set up for the run is undone (the installer's
	// own changes are not: routes-net.sh's stay, the test checks those).
	after, err := netwatch.Snapshot()
	if err != nil {
		return fail("%v", err)
	}
	for _, k := range []string{"nftables table", "nftables chain"} {
		for _, l := range after[k] {
			if strings.Contains(l, " pib") {
				return fail("the recorder's %s is left: %s", k, l)
			}
		}
	}
	if len(before["route"]) == 0 {
		for _, l := range after["route"] {
			if strings.HasPrefix(l, "default dev lo") {
				return fail("the recorder's route is left: %s", l)
			}
		}
	}
	if now, _ := os.ReadFile("/etc/resolv.conf"); string(now) != string(resolvBefore) {
		return fail("/etc/resolv.conf was not restored: %q, was %q", now, resolvBefore)
	}
	return 0
}

func ownOrEmpty() string {
	own, _ := ownCgroup2()
	return own
}

type guestConn struct {
	io.ReadCloser
	io.WriteCloser
}

func (g guestConn) Close() error { g.WriteCloser.Close(); return g.ReadCloser.Close() }

// guestRun runs one installer in a namespaced test guest, shuts it down,
// and checks the guest restored itself. err is Run's error.
func guestRun(t *testing.T, script string, timeout time.Duration) (*RunResult, *collected, error) {
	t.Helper()
	needRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envGuest+"="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot make the test guest's namespaces: %v", err)
	}
	conn := guestConn{out, in}
	defer func() {
		conn.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	c := NewClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), timeout+60*time.Second)
	defer cancel()
	if _, err := c.Hello(ctx); err != nil {
		t.Fatalf("%v; guest: %s", err, stderr.String())
	}
	path := script
	if !strings.Contains(script, "/") {
		path = sandboxScript(script)
	}
	putFile(t, c, path)
	var col collected
	res, runErr := c.Run(ctx, RunRequest{Installer: fileBase(path), Timeout: timeout}, col.add)
	if runErr != nil {
		return nil, &col, runErr
	}
	t.Logf("%s: exit %d, findings %+v\nlog:\n%s", script, res.ExitCode, res.Findings, col.text("pib"))
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v; guest: %s", err, stderr.String())
	}
	conn.WriteCloser.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("the guest did not end cleanly: %v\n%s", err, stderr.String())
	}
	return res, &col, nil
}

// TestGuestRules is the sandbox's TestRules table (internal/sandbox
// sandbox_test.go) for what the agent sees inside the guest: same
// installers, same rule IDs and wording.
func TestGuestRules(t *testing.T) {
	tests := []struct {
		installer string
		timeout   time.Duration
		rule      string
		substr    string
		exit      int
	}{
		{"exit3.sh", time.Minute, "I4", "status 3", 3},
		{"waits-for-input.sh", 3 * time.Second, "I1", "reading stdin (/tmp/answer)", -1},
		{"waits-for-input.sh", 3 * time.Second, "I7", "time limit", -1},
		{"leaves-daemon.sh", time.Minute, "I3", "sleep 1000", 0},
		{"reboot-cmd.sh", time.Minute, "I5", "ran `reboot`", -1},
		{"shutdown-r.sh", time.Minute, "I5", "ran `shutdown -r now`", -1},
		{"systemctl-reboot.sh", time.Minute, "I5", "ran `systemctl reboot`", -1},
		{"init-6.sh", time.Minute, "I5", "ran `init 6`", -1},
		{"downloads.sh", time.Minute, "I2", "downloads.example.com:80", 0},
		{"downloads.sh", time.Minute, "I2", "Host downloads.example.com", 0},
		{"downloads.sh", time.Minute, "I2", "looked up license.example.org", 0},
		{"downloads.sh", time.Minute, "I2", "tried to reach 203.0.113.7:443", 0},
		{"downloads.sh", time.Minute, "I2", "tried to reach [2001:db8::7]:8443", 0},
		{"downloads.sh", time.Minute, "I2", "looked up updates.example.net", 0},
		{"testdata/routes-net.sh", time.Minute, "I6", "route added: 10.99.0.0/16", 0},
		{"testdata/routes-net.sh", time.Minute, "I6", "address added: 10.1.2.3/32", 0},
		{"testdata/routes-net.sh", time.Minute, "I6", "route added: 2001:db8:99::/48", 0},
		{"testdata/routes-net.sh", time.Minute, "I6", "rule added", 0},
		{"testdata/routes-net.sh", time.Minute, "I6", "link ", 0},
		{"testdata/routes-net.sh", time.Minute, "I6", "nftables table added: inet sneaky", 0},
		{"testdata/routes-net.sh", time.Minute, "I6", "resolv.conf", 0},
	}
	// One guest per installer; the table's rows share its result.
	type outcome struct {
		res *RunResult
		err error
	}
	ran := map[string]outcome{}
	for _, tt := range tests {
		t.Run(fileBase(tt.installer)+"/"+tt.rule, func(t *testing.T) {
			o, ok := ran[tt.installer]
			if !ok {
				if strings.HasPrefix(tt.installer, "waits") {
					defer os.Remove("/tmp/answer")
				}
				res, _, err := guestRun(t, tt.installer, tt.timeout)
				o = outcome{res, err}
				ran[tt.installer] = o
			}
			if o.err != nil {
				t.Fatalf("Run: %v", o.err)
			}
			if !hasFinding(o.res.Findings, tt.rule, tt.substr) {
				t.Errorf("want a %s finding mentioning %q, got %+v", tt.rule, tt.substr, o.res.Findings)
			}
			if o.res.ExitCode != tt.exit {
				t.Errorf("exit code %d, want %d", o.res.ExitCode, tt.exit)
			}
		})
	}
}

// TestGuestPassesClean: an installer that breaks nothing gets no finding
// with every watch on (the recorder's own changes are not the installer's).
func TestGuestPassesClean(t *testing.T) {
	res, _, err := guestRun(t, "testdata/ok-here.sh", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 || res.ExitCode != 0 {
		t.Errorf("exit %d, findings %+v", res.ExitCode, res.Findings)
	}
}

// TestGuestReset: reboot(2) ends the guest (here its PID namespace, in a
// VM the machine: QEMU runs with -no-reboot); the host's Run says
// ErrGuestGone, which the VM backend reports as I5.
func TestGuestReset(t *testing.T) {
	// The guest's runner could not remove its installer cgroup: it died.
	// A VM takes its cgroups along; here the test removes them (rmdir
	// only removes empty ones).
	t.Cleanup(func() {
		if root, own := cgroup2Root(), ownOrEmpty(); root != "" {
			dirs, _ := filepath.Glob(filepath.Join(root, own, "pib-installer-1-*"))
			for _, d := range dirs {
				os.Remove(d)
			}
		}
	})
	for _, script := range []string{"reboot-syscall.sh", "poweroff-syscall.sh"} {
		t.Run(script, func(t *testing.T) {
			_, _, err := guestRun(t, script, time.Minute)
			if !errors.Is(err, ErrGuestGone) {
				t.Errorf("Run = %v, want ErrGuestGone", err)
			}
		})
	}
}
