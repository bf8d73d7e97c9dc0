package testbuild_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/machine"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/testbuild"
	"github.com/pib-dev/pib/internal/testenv"
)

// bootOn is the operator's setting with the boot test on for debian-12
// (the real setting is osversions.Store.BootTestOn, tested there).
type bootOn struct{}

func (bootOn) BootTestOn(_ context.Context, os string) (bool, error) { return os == "debian-12", nil }

// brokenMachine breaks each boot rule on purpose, in one group so that
// one boot (a TCG boot is 15–40 s) shows all three:
// V1 a unit that fails at boot; V2 sshd disabled; V3 a cloud-init
// configuration whose bootcmd is not a list.
const brokenMachine = `#!/bin/sh
set -e
cat >/etc/systemd/system/pib-broken.service <<'UNIT'
[Unit]
Description=fails at boot on purpose
[Service]
Type=oneshot
ExecStart=/bin/false
[Install]
WantedBy=multi-user.target
UNIT
ln -s /etc/systemd/system/pib-broken.service /etc/systemd/system/multi-user.target.wants/pib-broken.service
rm -f /etc/systemd/system/multi-user.target.wants/ssh.service /etc/systemd/system/sshd.service
printf 'bootcmd: not-a-list\n' >/etc/cloud/cloud.cfg.d/99-broken.cfg
`

// TestBootTest builds two groups on the bootable debian-12 image with the
// boot test on: a clean one passes V1–V3 and keeps its image; the broken
// one fails V1 (naming its unit), V2 and V3, keeps the console log in its
// report and leaves no image. The base image is booted once for its own
// failed units. Every QEMU process and disk is gone afterwards.
func TestBootTest(t *testing.T) {
	testenv.RequireRoot(t)
	if err := machine.CheckQEMU(machine.BIOS); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	is, closeStore, err := testenv.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	base := testenv.ImportDebian12Machine(t, is)
	b := testbuild.NewBuilder(is, data, sandbox.Limits{}, sandbox.IDs{})
	b.SetBootTests(bootOn{})
	for _, tc := range []struct {
		name      string
		installer string
		rules     []string
	}{
		{"clean", "#!/bin/sh\necho hello >/etc/hello-pib\n", nil},
		{"broken", brokenMachine, []string{"V1", "V2", "V3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs := t.TempDir()
			installer := filepath.Join(pkgs, "setup.sh")
			if err := os.WriteFile(installer, []byte(tc.installer), 0o755); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			out, err := b.Build(context.Background(), pipeline.BuildRequest{BuildID: "b-boot-" + tc.name, Owner: "acc-1", OSName: "debian-12",
				Platform: "linux", BaseImageID: base.ID, PackageDir: pkgs, Installer: installer, Timeout: 5 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("build with boot test: %v (%s)", time.Since(start).Round(100*time.Millisecond), out.BootTest)
			var rules []string
			for _, f := range out.Findings {
				rules = append(rules, f.Rule)
			}
			if !slices.Equal(rules, tc.rules) {
				t.Fatalf("findings %+v; want rules %v\nlog: %s", out.Findings, tc.rules, out.Log)
			}
			var rep testbuild.BuildReport
			if err := json.Unmarshal(out.Report, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.BootTest == nil || !strings.Contains(rep.BootTest.ConsoleTail, "Linux version") {
				t.Fatalf("the report keeps no boot test with its console log: %+v", rep.BootTest)
			}
			if out.BootTest == "" {
				t.Error("no history line for the boot test")
			}
			if tc.rules == nil {
				if out.ImageID == "" || !rep.BootTest.Passed {
					t.Fatalf("a clean build lost its image or failed: %+v", rep.BootTest)
				}
				return
			}
			if out.ImageID != "" {
				t.Errorf("a build that failed its boot test kept image %s", out.ImageID)
			}
			if !strings.Contains(out.Findings[0].Detail, "pib-broken.service") {
				t.Errorf("V1 does not name the failed unit: %+v", out.Findings[0])
			}
			if !slices.Contains(rep.BootTest.Facts.FailedUnits, "pib-broken.service") {
				t.Errorf("facts: %+v", rep.BootTest.Facts)
			}
		})
	}
	list, err := is.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 { // the base and the clean build's image
		t.Errorf("%d images in the store, want 2", len(list))
	}
	assertNoQEMU(t)
	if leftovers, _ := filepath.Glob(filepath.Join(data, "builds", "*", "boot-*")); len(leftovers) > 0 {
		t.Errorf("boot test disks left behind: %v", leftovers)
	}
}

// assertNoQEMU fails when a QEMU process of this test process is alive.
func assertNoQEMU(t *testing.T) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	me := os.Getpid()
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(qemu-system-x86") {
			continue
		}
		var ppid int
		fields := strings.Fields(s[i+1:])
		if len(fields) > 1 {
			ppid = atoi(fields[1])
		}
		if ppid == me {
			t.Errorf("QEMU process left running: %s", s[:i+1])
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return n
		}
		n = n*10 + int(c-'0')
	}
	return n
}
