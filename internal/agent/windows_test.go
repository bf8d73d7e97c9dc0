package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Windows runner's logic against a fake winOS: what Windows would
// answer is played from testdata/windows (see its README: hand-written in
// ConvertTo-Json's shape, not recorded). The real winOS (runner_windows.go)
// is only compiled and vetted here, never run.

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "windows", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fakeWin struct {
	t          *testing.T
	started    []string
	exitCode   int
	hang       bool  // the installer never exits
	left       []int // pids still in the job after the installer
	stdout     string
	pending    [][]string // PendingReboot's answers, in call order
	netPhase   string     // "before" until Start, then "after"
	sameNet    bool       // "after" reads the "before" files
	terminated bool
}

func (f *fakeWin) Start(argv []string, dir string, stdout, stderr io.Writer) (winJob, error) {
	f.started = argv
	f.netPhase = "after"
	io.WriteString(stdout, f.stdout)
	return &fakeJob{f: f}, nil
}

func (f *fakeWin) PendingReboot() ([]string, error) {
	if len(f.pending) == 0 {
		return nil, nil
	}
	p := f.pending[0]
	f.pending = f.pending[1:]
	return p, nil
}

func (f *fakeWin) PowerShell(ctx context.Context, script string) ([]byte, error) {
	phase := f.netPhase
	if phase == "" || f.sameNet {
		phase = "before"
	}
	switch script {
	case psRoutes:
		return readTestdata(f.t, "routes-"+phase+".json"), nil
	case psFirewall:
		return readTestdata(f.t, "firewall-"+phase+".json"), nil
	case psIfaces:
		return readTestdata(f.t, "ifaces-"+phase+".json"), nil
	case psProcesses:
		return readTestdata(f.t, "processes.json"), nil
	}
	return nil, errors.New("unknown script")
}

func (f *fakeWin) PowerOff() error { return errors.New("a test must not power off") }

type fakeJob struct{ f *fakeWin }

func (j *fakeJob) Wait() (int, error) {
	if j.f.hang {
		select {}
	}
	return j.f.exitCode, nil
}
func (j *fakeJob) PIDs() ([]int, error) {
	if j.f.terminated {
		return nil, nil
	}
	return j.f.left, nil
}
func (j *fakeJob) Terminate() error { j.f.terminated = true; return nil }
func (j *fakeJob) Close() error     { return nil }

func winRun(t *testing.T, f *fakeWin, installer string, timeout time.Duration) (*RunResult, *collected) {
	t.Helper()
	f.t = t
	r := &winRunner{dir: `C:\ProgramData\pib\build`, os: f, readFile: func(p string) ([]byte, error) {
		// An msiexec log is UTF-16LE with a BOM.
		return []byte("\xff\xfeM\x00S\x00I\x00 \x00o\x00k\x00"), nil
	}}
	var col collected
	res, err := r.Run(context.Background(), RunRequest{Installer: installer, Timeout: timeout}, Events{Output: col.add})
	if err != nil {
		t.Fatal(err)
	}
	return res, &col
}

func TestWindowsCommand(t *testing.T) {
	dir := `C:\b`
	for installer, want := range map[string]string{
		"a.msi": "msiexec /i " + filepath.Join(dir, "a.msi") + " /qn /norestart /l*v LOG",
		"a.PS1": "powershell -NoProfile -NonInteractive -ExecutionPolicy Bypass -File " + filepath.Join(dir, "a.PS1"),
		"a.bat": "cmd /c " + filepath.Join(dir, "a.bat"),
		"a.exe": filepath.Join(dir, "a.exe"),
	} {
		argv, err := windowsCommand(dir, installer, "LOG")
		if err != nil || strings.Join(argv, " ") != want {
			t.Errorf("windowsCommand(%s) = %q, %v; want %q", installer, argv, err, want)
		}
	}
	if _, err := windowsCommand(dir, "a.sh", "LOG"); err == nil || !strings.Contains(err.Error(), "P2") {
		t.Errorf("a .sh on Windows: %v, want a P2 error", err)
	}
}

func TestWindowsRules(t *testing.T) {
	tests := []struct {
		name      string
		installer string
		f         *fakeWin
		timeout   time.Duration
		rule      string // "" = no findings
		substr    string
		exit      int
	}{
		{"clean", "a.exe", &fakeWin{sameNet: true, stdout: "installed\n"}, time.Minute, "", "", 0},
		{"exit status", "a.bat", &fakeWin{sameNet: true, exitCode: 2}, time.Minute, "I4", "status 2", 2},
		{"3010", "a.msi", &fakeWin{sameNet: true, exitCode: 3010}, time.Minute, "I5", "exit code 3010", 3010},
		{"1641", "a.msi", &fakeWin{sameNet: true, exitCode: 1641}, time.Minute, "I5", "exit code 1641", 1641},
		{"pending reboot key", "a.ps1", &fakeWin{sameNet: true, pending: [][]string{nil, {pendingRebootKeys[0]}}}, time.Minute, "I5", `Component Based Servicing\RebootPending is set`, 0},
		{"pending file renames", "a.ps1", &fakeWin{sameNet: true, pending: [][]string{nil, {pendingRebootKeys[2]}}}, time.Minute, "I5", "PendingFileRenameOperations", 0},
		{"left processes", "a.exe", &fakeWin{sameNet: true, left: []int{4242, 4300}}, time.Minute, "I3", `pid 4242 (parent 4100): "C:\Program Files\Acme\acmesvc.exe" --daemon`, 0},
		{"time limit", "a.exe", &fakeWin{sameNet: true, hang: true, left: []int{4242}}, 200 * time.Millisecond, "I7", "time limit (200ms)", -1},
		{"route", "a.exe", &fakeWin{}, time.Minute, "I6", "route added: 10.99.0.0/16 via 0.0.0.0 dev Loopback Pseudo-Interface 1 metric 5", 0},
		{"firewall rule added", "a.exe", &fakeWin{}, time.Minute, "I6", "firewall rule added: {5C1E7D0B-0A5B-4F0E-9E39-2B4C8D1E9A11} (Acme Agent)", 0},
		{"firewall rule enabled", "a.exe", &fakeWin{}, time.Minute, "I6", "firewall rule removed: RemoteDesktop-UserMode-In-TCP (Remote Desktop - User Mode (TCP-In)) enabled 2", 0},
		{"interface forwarding", "a.exe", &fakeWin{}, time.Minute, "I6", "interface added: Loopback Pseudo-Interface 1 family 2 state 1 dhcp 0 forwarding 1", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _ := winRun(t, tt.f, tt.installer, tt.timeout)
			if tt.rule == "" && len(res.Findings) != 0 {
				t.Errorf("want no findings, got %+v", res.Findings)
			}
			if tt.rule != "" && !hasFinding(res.Findings, tt.rule, tt.substr) {
				t.Errorf("want a %s finding mentioning %q, got %+v", tt.rule, tt.substr, res.Findings)
			}
			if res.ExitCode != tt.exit {
				t.Errorf("exit code %d, want %d", res.ExitCode, tt.exit)
			}
			if !tt.f.terminated {
				t.Error("the job was not terminated (I3: what is left must be killed)")
			}
		})
	}
}

func TestWindowsOutputAndMSILog(t *testing.T) {
	f := &fakeWin{sameNet: true, stdout: "installed\n"}
	_, col := winRun(t, f, "a.msi", time.Minute)
	if got := col.text("stdout"); got != "installed\n" {
		t.Errorf("stdout %q", got)
	}
	if log := col.text("pib"); !strings.Contains(log, "msiexec log:\nMSI ok") || !strings.Contains(log, "I3 via a job object") {
		t.Errorf("pib lines %q", log)
	}
	if !slices.Contains(f.started, "/norestart") {
		t.Errorf("started %q", f.started)
	}
}

func TestPSObjects(t *testing.T) {
	one, err := psObjects([]byte("\ufeff{\"Name\":\"x\"}\r\n"))
	if err != nil || len(one) != 1 || one[0]["Name"] != "x" {
		t.Errorf("single object: %v %v", one, err)
	}
	none, err := psObjects([]byte("\r\n"))
	if err != nil || len(none) != 0 {
		t.Errorf("empty output: %v %v", none, err)
	}
	if _, err := psObjects([]byte("Get-NetRoute : not recognized")); err == nil {
		t.Error("an error text parsed as JSON")
	}
}
