//go:build linux

package agent

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// testRunner is the real Linux runner; cgroupRoot "-" forces the
// process-tree walk, "" finds cgroup v2.
func testRunner(t *testing.T, dir, cgroupRoot string) Runner {
	t.Helper()
	return &linuxRunner{dir: dir, cgroupRoot: cgroupRoot, powerOff: func() error {
		t.Error("the real power-off must never run in a test")
		return errors.New("not in a test")
	}}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the agent runs as root in the guest; run the tests as root")
	}
}

// haveCgroup2Child tells whether this machine can give the installer a
// cgroup v2 child of ours (a hybrid host may not).
func haveCgroup2Child(t *testing.T) bool {
	root := cgroup2Root()
	own, err := ownCgroup2()
	if root == "" || err != nil {
		return false
	}
	d, err := os.MkdirTemp(root+own, "pib-probe-")
	if err != nil {
		return false
	}
	os.Remove(d)
	return true
}

func runScript(t *testing.T, cgroupRoot, script string, timeout time.Duration) (*RunResult, *collected) {
	t.Helper()
	needRoot(t)
	c := session(t, testRunner(t, t.TempDir(), cgroupRoot))
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	if _, err := c.Hello(ctx); err != nil {
		t.Fatal(err)
	}
	path := script
	if !strings.Contains(script, "/") {
		path = sandboxScript(script)
	}
	putFile(t, c, path)
	var out collected
	res, err := c.Run(ctx, RunRequest{Installer: fileBase(path), Timeout: timeout}, out.add)
	if err != nil {
		t.Fatalf("Run %s: %v", script, err)
	}
	t.Logf("%s: exit %d, findings %+v\nlog:\n%s", script, res.ExitCode, res.Findings, out.text("pib"))
	return res, &out
}

func fileBase(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// i3Paths are the ways the runner can find leftovers: every rule test runs
// on each this machine has.
func i3Paths(t *testing.T) map[string]string {
	paths := map[string]string{"tree-walk": "-"}
	if haveCgroup2Child(t) {
		paths["cgroup2"] = ""
	} else {
		t.Log("no cgroup v2 child can be made here: only the process-tree walk is tested")
	}
	return paths
}

func TestRunRules(t *testing.T) {
	for name, root := range i3Paths(t) {
		t.Run(name, func(t *testing.T) {
			tests := []struct {
				script  string
				timeout time.Duration
				rule    string // "" = no finding at all
				substr  string
				exit    int
			}{
				{"testdata/ok-here.sh", time.Minute, "", "", 0},
				{"exit3.sh", time.Minute, "I4", "status 3", 3},
				{"waits-for-input.sh", 3 * time.Second, "I1", "reading stdin (/tmp/answer)", -1},
				{"waits-for-input.sh", 3 * time.Second, "I7", "time limit (3s)", -1},
				{"leaves-daemon.sh", time.Minute, "I3", "sleep 1000", 0},
			}
			for _, tt := range tests {
				t.Run(fileBase(tt.script)+"/"+tt.rule, func(t *testing.T) {
					if strings.HasPrefix(tt.script, "waits") {
						t.Cleanup(func() { os.Remove("/tmp/answer") })
					}
					res, out := runScript(t, root, tt.script, tt.timeout)
					if tt.rule == "" && len(res.Findings) != 0 {
						t.Errorf("want no findings, got %+v", res.Findings)
					}
					if tt.rule != "" && !hasFinding(res.Findings, tt.rule, tt.substr) {
						t.Errorf("want a %s finding mentioning %q, got %+v", tt.rule, tt.substr, res.Findings)
					}
					if res.ExitCode != tt.exit {
						t.Errorf("exit code %d, want %d", res.ExitCode, tt.exit)
					}
					wantPath := "I3 via cgroup v2"
					if root == "-" {
						wantPath = "I3 via the process-tree walk"
					}
					if log := out.text("pib"); !strings.Contains(log, wantPath) {
						t.Errorf("the log does not say %q:\n%s", wantPath, log)
					}
					// Nothing of the installer survives the run (I3's kill).
					for _, p := range listSleep1000() {
						t.Errorf("left running after Run: %s", p)
					}
				})
			}
		})
	}
}

func listSleep1000() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.ReplaceAll(string(b), "\x00", " ") == "sleep 1000 " {
			st, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
			if !strings.Contains(string(st), ") Z ") {
				out = append(out, e.Name()+": "+string(st))
			}
		}
	}
	return out
}

func TestRunStreamsOutput(t *testing.T) {
	res, out := runScript(t, "-", "testdata/ok-here.sh", time.Minute)
	if res.ExitCode != 0 {
		t.Fatalf("exit %d", res.ExitCode)
	}
	if got := out.text("stdout"); got != "installing ok\ndone\n" {
		t.Errorf("stdout %q", got)
	}
	if got := out.text("stderr"); got != "a warning\n" {
		t.Errorf("stderr %q", got)
	}
	for _, o := range out.out {
		if o.Time.IsZero() || time.Since(o.Time) > time.Minute {
			t.Errorf("output chunk badly timestamped: %+v", o)
		}
	}
}
