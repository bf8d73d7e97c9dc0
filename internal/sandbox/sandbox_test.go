package sandbox_test

import (
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/testenv"
)

func TestMain(m *testing.M) {
	sandbox.Main() // the sandbox re-executes this test binary as its init
	if filepath.Base(os.Args[0]) == "tls-probe.exe" {
		// This binary, copied into a build as an installer: try HTTPS.
		c, err := tls.Dial("tcp", "secure.example.com:443", &tls.Config{ServerName: "secure.example.com"})
		if err == nil {
			c.Close()
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTLSRecorded: an HTTPS attempt is reported with the TLS server name.
func TestTLSRecorded(t *testing.T) {
	lowerDirs(t)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(t.TempDir(), "tls-probe.exe")
	os.WriteFile(probe, self, 0o755)
	res := build(t, probe, buildOpts{})
	if !hasRule(res.Findings, "I2", "secure.example.com:443") || !hasRule(res.Findings, "I2", "TLS SNI secure.example.com") {
		t.Errorf("want an I2 finding with the SNI, got %+v", res.Findings)
	}
}

// lowerDirs returns the Debian 12 base as overlay lower directories.
// PIB_SANDBOX_ROOTFS overrides the shared test image (for quick runs
// against an already unpacked rootfs).
func lowerDirs(t *testing.T) []string {
	t.Helper()
	testenv.RequireRoot(t)
	if d := os.Getenv("PIB_SANDBOX_ROOTFS"); d != "" {
		return []string{d}
	}
	return []string{testenv.Debian12(t).Rootfs}
}

type buildOpts struct {
	timeout  time.Duration
	limits   sandbox.Limits
	packages []string
	ctx      context.Context
}

// build runs one installer from testdata and checks that the build left
// nothing behind once closed: no mount, no process, no cgroup, no
// temporary directory.
func build(t *testing.T, installer string, o buildOpts) *sandbox.Result {
	t.Helper()
	lowers := lowerDirs(t)
	if o.timeout == 0 {
		o.timeout = 60 * time.Second
	}
	if o.ctx == nil {
		o.ctx = context.Background()
	}
	if !filepath.IsAbs(installer) {
		installer = filepath.Join("testdata", installer)
	}
	work := t.TempDir()
	mountsBefore := mountinfo(t)
	res, err := sandbox.Run(o.ctx, sandbox.Config{
		LowerDirs: lowers,
		Installer: installer,
		Packages:  o.packages,
		Timeout:   o.timeout,
		Limits:    o.limits,
		WorkDir:   work,
		LogPath:   filepath.Join(work, "build.log"),
	})
	if err != nil {
		checkTeardown(t, work, mountsBefore)
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		if err := res.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkTeardown(t, work, mountsBefore)
	})
	if testing.Verbose() {
		log, _ := os.ReadFile(res.LogPath)
		t.Logf("exit %d, findings %+v\nlog:\n%s", res.ExitCode, res.Findings, log)
	}
	return res
}

func mountinfo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	// Other tests' builds run in parallel; only ours matter to the
	// caller, and mount IDs are fine to compare.
	return string(b)
}

// checkTeardown: no sandbox process, mount, cgroup or directory survives.
func checkTeardown(t *testing.T, work, mountsBefore string) {
	t.Helper()
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, work) {
			t.Errorf("mount left behind: %s", l)
		}
	}
	for _, p := range sandboxProcesses(work) {
		t.Errorf("process left behind: %s", p)
	}
	ents, _ := os.ReadDir(work)
	for _, e := range ents {
		if e.Name() != "build.log" {
			t.Errorf("left in the work directory: %s", e.Name())
		}
	}
	for _, ctl := range []string{"memory", "pids", "cpu", "unified"} {
		filepath.WalkDir(filepath.Join("/sys/fs/cgroup", ctl), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), filepath.Base(work)) {
				t.Errorf("cgroup left behind: %s", p)
			}
			return nil
		})
	}
}

// sandboxProcesses lists processes whose cgroup or command line points at
// this build.
func sandboxProcesses(work string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if strings.Contains(string(environ), work) {
			cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

func hasRule(fs []sandbox.Finding, rule, substr string) bool {
	for _, f := range fs {
		if f.Rule == rule && strings.Contains(f.Message+"\n"+f.Detail, substr) {
			return true
		}
	}
	return false
}

func TestPassingInstaller(t *testing.T) {
	res := build(t, "ok.sh", buildOpts{packages: []string{"testdata/extra.txt"}})
	if !res.Passed() || res.ExitCode != 0 {
		t.Fatalf("want a passing build, got exit %d findings %+v", res.ExitCode, res.Findings)
	}
	want := map[string]string{"opt/ok/file": "added", "etc/issue": "modified", "etc/motd": "deleted", "opt/ok": "added"}
	got := map[string]string{}
	for _, f := range res.Changes.Files {
		got[f.Path] = f.Change
		if strings.HasPrefix(f.Path, "var/tmp/pib") {
			t.Errorf("pib's packages folder is in the changes: %s", f.Path)
		}
	}
	for p, c := range want {
		if got[p] != c {
			t.Errorf("change of %s: got %q, want %q (all: %v)", p, got[p], c, got)
		}
	}
	log, err := os.ReadFile(res.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"stdout| installing ok", "stderr| a warning", "stdout| done"} {
		if !strings.Contains(string(log), l) {
			t.Errorf("log lacks %q:\n%s", l, log)
		}
	}
}

// TestRules runs one installer per rule that breaks it on purpose.
func TestRules(t *testing.T) {
	lowerDirs(t)
	tests := []struct {
		installer string
		timeout   time.Duration
		rule      string // want a finding of this rule…
		substr    string // …whose message or detail contains this
		exit      int    // want this exit code (-1: killed)
	}{
		{"exit3.sh", 0, "I4", "status 3", 3},
		{"waits-for-input.sh", 3 * time.Second, "I1", "reading stdin (/tmp/answer)", -1},
		{"waits-for-input.sh", 3 * time.Second, "I7", "time limit", -1},
		{"leaves-daemon.sh", 0, "I3", "sleep 1000", 0},
		{"reboot-syscall.sh", 0, "I5", "restarted", -1},
		{"poweroff-syscall.sh", 0, "I5", "powered off", -1},
		{"reboot-cmd.sh", 0, "I5", "ran `reboot`", -1},
		{"shutdown-r.sh", 0, "I5", "ran `shutdown -r now`", -1},
		{"systemctl-reboot.sh", 0, "I5", "ran `systemctl reboot`", -1},
		{"init-6.sh", 0, "I5", "ran `init 6`", -1},
		{"abs-reboot.sh", 0, "I5", "reboot", -1},
		{"downloads.sh", 0, "I2", "downloads.example.com:80", 0},
		{"downloads.sh", 0, "I2", "Host downloads.example.com", 0},
		{"downloads.sh", 0, "I2", "looked up license.example.org", 0},
		{"downloads.sh", 0, "I2", "tried to reach 203.0.113.7:443", 0},
		{"downloads.sh", 0, "I2", "tried to reach [2001:db8::7]:8443", 0},
		{"downloads.sh", 0, "I2", "looked up updates.example.net", 0},
		{"routes.sh", 0, "I6", "route added: 10.99.0.0/16", 0},
		{"routes.sh", 0, "I6", "address added: 10.1.2.3/32", 0},
		{"routes.sh", 0, "I6", "route added: 2001:db8:99::/48", 0},
		{"routes.sh", 0, "I6", "rule added", 0},
		{"routes.sh", 0, "I6", "link ", 0}, // added (dummy module) or changed (mtu)
		{"routes.sh", 0, "I6", "/etc/network/interfaces", 0},
		{"routes.sh", 0, "I6", "/etc/sysctl.d/99-forward.conf", 0},
		{"routes.sh", 0, "I6", "resolv.conf", 0},
	}
	for _, tt := range tests {
		t.Run(tt.installer+"/"+tt.rule, func(t *testing.T) {
			res := build(t, tt.installer, buildOpts{timeout: tt.timeout})
			if !hasRule(res.Findings, tt.rule, tt.substr) {
				t.Errorf("want a %s finding mentioning %q, got %+v", tt.rule, tt.substr, res.Findings)
			}
			if res.ExitCode != tt.exit {
				t.Errorf("exit code %d, want %d", res.ExitCode, tt.exit)
			}
		})
	}
}

// TestHostile: installers that try to escape or exhaust the host are
// contained, reported, and leave the host unchanged.
func TestHostile(t *testing.T) {
	lowerDirs(t)
	hostname, _ := os.Hostname()
	small := sandbox.Limits{MemoryBytes: 256 << 20, Pids: 128, DiskBytes: 64 << 20, CPUs: 1}
	tests := []struct {
		installer string
		timeout   time.Duration
		rule      string
		substr    string
	}{
		{"hostile-escape.sh", 0, "I4", "status"}, // fails only if something escaped: checked below
		{"fill-disk.sh", 0, "limits", "disk limit"},
		{"fork-bomb.sh", 10 * time.Second, "limits", "process limit"},
		{"memory-hog.sh", 0, "limits", "memory limit"},
	}
	for _, tt := range tests {
		t.Run(tt.installer, func(t *testing.T) {
			res := build(t, tt.installer, buildOpts{timeout: tt.timeout, limits: small})
			log, _ := os.ReadFile(res.LogPath)
			if tt.installer == "hostile-escape.sh" {
				if strings.Contains(string(log), "ESCAPED") || res.ExitCode != 0 {
					t.Errorf("an escape attempt succeeded (exit %d):\n%s", res.ExitCode, log)
				}
				for _, call := range []string{"mount(2) 2 time", "finit_module(2)", "unshare(2)", "clock_settime(2)"} {
					if !hasRule(res.Findings, "sandbox", call) {
						t.Errorf("want a sandbox finding for %s, got %+v", call, res.Findings)
					}
				}
			} else if !hasRule(res.Findings, tt.rule, tt.substr) {
				t.Errorf("want a %s finding mentioning %q, got %+v\n%s", tt.rule, tt.substr, res.Findings, log)
			}
			if h, _ := os.Hostname(); h != hostname {
				t.Errorf("host name changed to %q", h)
			}
		})
	}
}

// makeDeb builds a small .deb with dpkg-deb: files maps paths to contents,
// scripts maps maintainer script names (postinst…) to their bodies.
func makeDeb(t *testing.T, name string, files, scripts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	control := "Package: " + name + "\nVersion: 1.0\nArchitecture: all\nMaintainer: pib tests <t@example.com>\nDescription: pib sandbox test package\n"
	os.WriteFile(filepath.Join(root, "DEBIAN", "control"), []byte(control), 0o644)
	for n, body := range scripts {
		os.WriteFile(filepath.Join(root, "DEBIAN", n), []byte(body), 0o755)
	}
	for p, body := range files {
		f := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(f), 0o755)
		os.WriteFile(f, []byte(body), 0o644)
	}
	deb := filepath.Join(dir, name+".deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	return deb
}

func TestDeb(t *testing.T) {
	lowerDirs(t)
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("needs dpkg-deb to build test packages")
	}
	t.Run("clean", func(t *testing.T) {
		dep := makeDeb(t, "pib-test-dep", map[string]string{"usr/share/pib-test-dep/data": "dep\n"}, nil)
		deb := makeDeb(t, "pib-test-clean", map[string]string{"usr/share/pib-test/hello": "hello\n"},
			map[string]string{"postinst": "#!/bin/sh\nset -e\necho configured pib-test-clean\n"})
		// The dependency is one of the group's other packages: installed offline.
		res := build(t, deb, buildOpts{packages: []string{dep}})
		if !res.Passed() {
			t.Fatalf("want a passing build, got %+v", res.Findings)
		}
		var paths []string
		for _, f := range res.Changes.Files {
			paths = append(paths, f.Path)
		}
		all := strings.Join(paths, "\n")
		for _, want := range []string{"usr/share/pib-test/hello", "usr/share/pib-test-dep/data", "var/lib/dpkg/status"} {
			if !strings.Contains(all, want) {
				t.Errorf("changes lack %s:\n%s", want, all)
			}
		}
	})
	t.Run("asks-a-question", func(t *testing.T) {
		deb := makeDeb(t, "pib-test-question", nil, map[string]string{"postinst": `#!/bin/sh
set -e
echo "Enter the license key:"
read key
echo "thanks: $key"
`})
		res := build(t, deb, buildOpts{})
		if !hasRule(res.Findings, "I4", "status 1") {
			t.Errorf("want an I4 finding (read hits the empty stdin and set -e fails dpkg), got %+v", res.Findings)
		}
	})
	t.Run("asks-on-the-terminal", func(t *testing.T) {
		deb := makeDeb(t, "pib-test-tty", nil, map[string]string{"postinst": `#!/bin/sh
echo "Accept the license? [y/N]"
read answer < /dev/tty || { mkfifo /tmp/q; read answer < /tmp/q; }
`})
		res := build(t, deb, buildOpts{timeout: 3 * time.Second})
		if !hasRule(res.Findings, "I1", "FIFO") || !hasRule(res.Findings, "I7", "time limit") {
			t.Errorf("want I1 and I7 findings, got %+v", res.Findings)
		}
	})
	t.Run("starts-a-daemon", func(t *testing.T) {
		deb := makeDeb(t, "pib-test-daemon", map[string]string{"usr/sbin/pib-test-daemond": "#!/bin/sh\nsleep 1000\n"},
			map[string]string{"postinst": "#!/bin/sh\nchmod 755 /usr/sbin/pib-test-daemond\nsetsid /usr/sbin/pib-test-daemond >/dev/null 2>&1 < /dev/null &\nexit 0\n"})
		res := build(t, deb, buildOpts{})
		if !hasRule(res.Findings, "I3", "/usr/sbin/pib-test-daemond") {
			t.Errorf("want an I3 finding naming the daemon, got %+v", res.Findings)
		}
		if res.ExitCode != 0 {
			t.Errorf("exit %d, want 0", res.ExitCode)
		}
	})
}

// TestConcurrent runs four builds on the same base at once: each sees only
// its own changes and findings.
func TestConcurrent(t *testing.T) {
	lowerDirs(t)
	dir := t.TempDir()
	const n = 4
	scripts := make([]string, n)
	for i := range n {
		body := "#!/bin/sh\nset -e\nmkdir -p /opt/c\necho " + strconv.Itoa(i) + " > /opt/c/build-" + strconv.Itoa(i) + "\n"
		if i%2 == 1 {
			body += "sleep 1000 &\n" // odd builds leave a process behind (I3)
		}
		scripts[i] = filepath.Join(dir, "c"+strconv.Itoa(i)+".sh")
		os.WriteFile(scripts[i], []byte(body), 0o644)
	}
	results := make([]*sandbox.Result, n)
	done := make(chan int)
	for i := range n {
		go func() {
			defer func() { done <- i }()
			results[i] = buildNoFatal(t, scripts[i])
		}()
	}
	for range n {
		<-done
	}
	for i, res := range results {
		if res == nil {
			continue
		}
		var paths []string
		for _, f := range res.Changes.Files {
			if f.Type != "dir" {
				paths = append(paths, f.Path)
			}
		}
		if want := "opt/c/build-" + strconv.Itoa(i); len(paths) != 1 || paths[0] != want {
			t.Errorf("build %d: changed files %v, want [%s]", i, paths, want)
		}
		if got, want := hasRule(res.Findings, "I3", "sleep 1000"), i%2 == 1; got != want || len(res.Findings) != map[bool]int{true: 1}[want] {
			t.Errorf("build %d: findings %+v", i, res.Findings)
		}
	}
}

// buildNoFatal is build for goroutines: it reports errors without FailNow.
func buildNoFatal(t *testing.T, installer string) *sandbox.Result {
	work := t.TempDir()
	res, err := sandbox.Run(context.Background(), sandbox.Config{LowerDirs: lowerDirs(t), Installer: installer,
		Timeout: time.Minute, WorkDir: work})
	if err != nil {
		t.Errorf("Run: %v", err)
		return nil
	}
	t.Cleanup(func() {
		if err := res.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		os.Remove(res.LogPath)
		checkTeardown(t, work, "")
	})
	return res
}

// TestCancel: cancelling the context mid-build (what SIGTERM/SIGINT to pib
// do) kills the sandbox and leaves nothing behind.
func TestCancel(t *testing.T) {
	lowers := lowerDirs(t)
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	slow := filepath.Join(t.TempDir(), "slow.sh")
	os.WriteFile(slow, []byte("#!/bin/sh\nsleep 1000 &\nsleep 1000\n"), 0o644)
	res, err := sandbox.Run(ctx, sandbox.Config{LowerDirs: lowers, Installer: slow, Timeout: time.Minute,
		WorkDir: work, LogPath: filepath.Join(work, "build.log")})
	if err == nil {
		res.Close()
		t.Fatal("want an error from a cancelled build")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel took %s", d)
	}
	checkTeardown(t, work, "")
}

func TestKeepOnFailure(t *testing.T) {
	lowers := lowerDirs(t)
	work := t.TempDir()
	res, err := sandbox.Run(context.Background(), sandbox.Config{LowerDirs: lowers, Installer: "testdata/exit3.sh",
		WorkDir: work, KeepOnFailure: true, LogPath: filepath.Join(work, "build.log")})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Close(); err != nil {
		t.Fatal(err)
	}
	if res.KeptDir == "" {
		t.Fatal("no kept directory")
	}
	if _, err := os.Stat(res.KeptDir); err != nil {
		t.Errorf("kept directory gone after Close: %v", err)
	}
	os.RemoveAll(res.KeptDir)
}

// TestTeardownAfterPanic: a panic in Run while the installer runs still
// tears everything down (and the panic goes on to the caller).
func TestTeardownAfterPanic(t *testing.T) {
	lowers := lowerDirs(t)
	work := t.TempDir()
	mountsBefore := mountinfo(t)
	installer := filepath.Join(t.TempDir(), "panic-wait.sh")
	os.WriteFile(installer, []byte("#!/bin/sh\nsleep 31.7 &\nsleep 31.7\n"), 0o755)
	// The installer's processes, found by their unusual argument.
	running := func() []string {
		var out []string
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "31.7") {
				out = append(out, p)
			}
		}
		return out
	}
	sawInstaller := false
	defer sandbox.SetStartedHook(func() {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(running()) < 2; {
			time.Sleep(20 * time.Millisecond)
		}
		sawInstaller = len(running()) >= 2
		panic("test panic in Run")
	})()
	func() {
		defer func() {
			if p := recover(); p != "test panic in Run" {
				t.Fatalf("recovered %v, want the test panic", p)
			}
		}()
		sandbox.Run(context.Background(), sandbox.Config{LowerDirs: lowers, Installer: installer, WorkDir: work, LogPath: filepath.Join(work, "build.log")})
		t.Fatal("Run returned instead of panicking")
	}()
	if !sawInstaller {
		t.Fatal("the installer's processes never ran: the test proves nothing")
	}
	checkTeardown(t, work, mountsBefore)
	if left := running(); len(left) > 0 {
		t.Errorf("installer processes left behind after the panic: %v", left)
	}
}
