//go:build linux

// Package boottest boots a built image and checks that it is a working
// machine (SPEC rules V1–V3):
//
//   - V1 the system reaches multi-user.target with no failed unit the base
//     image did not already have;
//   - V2 sshd listens on TCP port 22;
//   - V3 cloud-init finishes without errors.
//
// The image is made a throw-away disk (package disk), and a probe is
// written into that disk's root file system with debugfs (no mount): a
// systemd unit that, once the boot has settled, writes `systemctl`,
// `ss -ltn` and `cloud-init status --long` output to the second serial
// port, plus a NoCloud seed directory so cloud-init has a datasource. The
// machine has no network device (package machine).
//
// Limits, candidly: everything the probe reports comes from inside the
// guest, which the image controls. A hostile image can fake a passing
// probe; the boot test tells a seller that an honest image boots, it is
// not a security boundary. Its output is parsed as untrusted text (bounded,
// non-printable bytes dropped, unit names checked against systemd's
// character set) and never names a host path.
package boottest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/disk"
	"github.com/pib-dev/pib/internal/machine"
)

// Finding is one broken rule (V1, V2 or V3).
type Finding struct {
	Rule    string
	Message string
	Detail  string
}

// Facts are what the probe reported from inside the guest.
type Facts struct {
	// Reached: multi-user.target was active.
	Reached bool `json:"reached"`
	// SystemState is `systemctl is-system-running` (running, degraded…).
	SystemState string `json:"system_state"`
	// FailedUnits are the units systemd listed as failed, sorted.
	FailedUnits []string `json:"failed_units"`
	// SSHListening: a socket listened on TCP port 22.
	SSHListening bool `json:"ssh_listening"`
	// CloudInit is `cloud-init status --long`, CloudInitStatus its status
	// line's value ("done", "error", "disabled"; "" when it printed none).
	CloudInit       string `json:"cloud_init"`
	CloudInitStatus string `json:"cloud_init_status"`
	// NoCloudInit: the image has no cloud-init, so V3 has nothing to check.
	NoCloudInit bool `json:"no_cloud_init,omitempty"`
}

// Result is one boot test.
type Result struct {
	Facts    Facts
	Findings []Finding
	Console  []byte // the last machine.MaxConsole bytes of the serial console
	Took     time.Duration
}

// Passed says whether every rule held.
func (r *Result) Passed() bool { return len(r.Findings) == 0 }

// Config is one boot test.
type Config struct {
	// Disk is a raw disk of the image to test (disk.Make): a throw-away
	// copy, since the probe is written into it.
	Disk string
	// BaseFailed are the failed units of the base image's own boot (V1
	// forgives those); nil when the base image itself is tested.
	BaseFailed []string
	// Timeout bounds the boot (default 10 minutes: TCG boots took 15 s
	// on an idle machine and 3.5 min on one loaded 8-fold).
	Timeout time.Duration
	WorkDir string // for the machine's files; the caller removes it
	Accel   string // machine.Config.Accel
}

// probe markers on the second serial port.
const (
	beginMark = "PIB-PROBE-BEGIN"
	endMark   = "PIB-PROBE-END"
)

var probeDone = regexp.MustCompile(endMark)

// probeScript runs in the guest once its boot job queue is empty. It must
// not be part of the boot transaction's wait (Type=simple): `systemctl
// is-system-running --wait` would otherwise wait for itself.
const probeScript = `exec >/dev/ttyS1 2>&1
systemctl is-system-running --wait >/dev/null 2>&1
command -v cloud-init >/dev/null && timeout 120 cloud-init status --wait >/dev/null 2>&1
echo ` + beginMark + `
echo "== state"; systemctl is-system-running
echo "== multi-user"; systemctl is-active multi-user.target
echo "== failed"; systemctl list-units --failed --plain --no-legend --no-pager
echo "== listen"; ss -ltnH
echo "== cloud-init"
if command -v cloud-init >/dev/null; then cloud-init status --long; else echo not-installed; fi
echo ` + endMark + `
`

const probeUnit = `[Unit]
Description=pib boot test probe (V1-V3)
After=multi-user.target

[Service]
Type=simple
ExecStart=/bin/sh /usr/local/lib/pib-probe.sh
`

// Run boots the disk and checks V1–V3. An error means the boot test could
// not be run (a platform fault); a machine that never reports is a V1
// finding with the console log.
func Run(ctx context.Context, c Config) (*Result, error) {
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if err := inject(ctx, c.Disk); err != nil {
		return nil, fmt.Errorf("prepare the boot test disk: %w", err)
	}
	start := time.Now()
	bctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	m, err := machine.Start(bctx, machine.Config{Disk: c.Disk, Format: "raw", Firmware: machine.BIOS, Probe: true, WorkDir: c.WorkDir, Accel: c.Accel})
	if err != nil {
		return nil, err
	}
	defer m.Stop()
	werr := m.WaitProbe(bctx, probeDone)
	m.Stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	r := &Result{Console: m.Console(), Took: time.Since(start)}
	if werr != nil {
		r.Findings = []Finding{{Rule: "V1", Message: fmt.Sprintf("the machine did not finish booting to multi-user.target within %s (or its probe could not report); see the console log", c.Timeout), Detail: lastLine(r.Console)}}
		return r, nil
	}
	r.Facts = ParseProbe(m.Probe())
	r.Findings = Check(r.Facts, c.BaseFailed)
	return r, nil
}

// Check applies V1–V3 to the facts. base lists the failed units the base
// image has on its own (nil: none forgiven).
func Check(f Facts, base []string) []Finding {
	var out []Finding
	var added []string
	for _, u := range f.FailedUnits {
		if !slices.Contains(base, u) {
			added = append(added, u)
		}
	}
	switch {
	case !f.Reached:
		out = append(out, Finding{Rule: "V1", Message: "the machine did not reach multi-user.target (system state " + quoteOr(f.SystemState) + "); see the console log", Detail: strings.Join(added, " ")})
	case len(added) > 0:
		out = append(out, Finding{Rule: "V1", Message: fmt.Sprintf("%d unit(s) failed at boot that do not fail on the base image: %s; see `systemctl status` of each and the console log", len(added), strings.Join(added, ", ")), Detail: strings.Join(added, " ")})
	}
	if !f.SSHListening {
		out = append(out, Finding{Rule: "V2", Message: "nothing listens on TCP port 22 after boot: sshd is not running (disabled, or its configuration is broken: check `sshd -t` and that ssh.service is enabled)"})
	}
	switch {
	case f.NoCloudInit, f.CloudInitStatus == "done":
	default:
		out = append(out, Finding{Rule: "V3", Message: "cloud-init did not finish cleanly (status " + quoteOr(f.CloudInitStatus) + "); its errors are in the detail", Detail: clip(f.CloudInit, 2000)})
	}
	return out
}

func quoteOr(s string) string {
	if s == "" {
		return "unknown"
	}
	return strconv.Quote(s)
}

// unitName is what systemd allows in a unit name.
var unitName = regexp.MustCompile(`^[A-Za-z0-9:_.\\@-]{1,256}$`)

// ParseProbe reads the probe's report (untrusted guest output) between
// its markers.
func ParseProbe(out []byte) Facts {
	var f Facts
	if i := bytes.LastIndex(out, []byte(beginMark)); i >= 0 {
		out = out[i+len(beginMark):]
	}
	if i := bytes.Index(out, []byte(endMark)); i >= 0 {
		out = out[:i]
	}
	section := ""
	var ci []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 4096), 4096)
	for sc.Scan() {
		line := printable(strings.TrimRight(sc.Text(), "\r"))
		if strings.HasPrefix(line, "== ") {
			section = strings.TrimPrefix(line, "== ")
			continue
		}
		fields := strings.Fields(line)
		switch section {
		case "state":
			if f.SystemState == "" && len(fields) > 0 {
				f.SystemState = clip(fields[0], 32)
			}
		case "multi-user":
			if strings.TrimSpace(line) == "active" {
				f.Reached = true
			}
		case "failed":
			if len(fields) > 0 && unitName.MatchString(fields[0]) && len(f.FailedUnits) < 100 && !slices.Contains(f.FailedUnits, fields[0]) {
				f.FailedUnits = append(f.FailedUnits, fields[0])
			}
		case "listen":
			// ss -ltnH: State Recv-Q Send-Q Local-Address:Port Peer…
			if len(fields) >= 4 && strings.HasSuffix(fields[3], ":22") {
				f.SSHListening = true
			}
		case "cloud-init":
			if strings.TrimSpace(line) == "not-installed" {
				f.NoCloudInit = true
			}
			if len(ci) < 200 {
				ci = append(ci, line)
			}
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "status:"); ok && f.CloudInitStatus == "" {
				f.CloudInitStatus = clip(strings.TrimSpace(v), 32)
			}
		}
	}
	slices.Sort(f.FailedUnits)
	f.CloudInit = strings.Join(ci, "\n")
	return f
}

func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || (r >= ' ' && r != 0x7f && r != 0xfffd) {
			return r
		}
		return -1
	}, s)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(printable(string(b))), "\n")
	return clip(strings.TrimSpace(lines[len(lines)-1]), 200)
}

// seed is a NoCloud seed: cloud-init then runs with a datasource, as an
// instance would, and its modules really run.
const (
	seedMeta = "instance-id: pib-boot-test\nlocal-hostname: pib-boot-test\n"
	seedUser = "#cloud-config\n{}\n"
)

// inject writes the probe and the seed into the root partition of a raw
// disk made by package disk, with debugfs (no mount, nothing of the guest
// file system reaches the host's).
func inject(ctx context.Context, raw string) error {
	dir, err := os.MkdirTemp("", "pib-probe-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files := map[string]string{"probe.sh": probeScript, "probe.service": probeUnit, "meta-data": seedMeta, "user-data": seedUser}
	for name, text := range files {
		if err := os.WriteFile(dir+"/"+name, []byte(text), 0o644); err != nil {
			return err
		}
	}
	// rm first: debugfs's write refuses an existing file, and an image
	// could ship one of these names. mkdir of an existing directory only
	// complains. Errors of single commands do not stop debugfs, so the
	// result is checked by reading back below.
	cmds := fmt.Sprintf(`mkdir /usr/local
mkdir /usr/local/lib
rm /usr/local/lib/pib-probe.sh
write %[1]s/probe.sh /usr/local/lib/pib-probe.sh
mkdir /etc/systemd/system/multi-user.target.wants
rm /etc/systemd/system/pib-probe.service
write %[1]s/probe.service /etc/systemd/system/pib-probe.service
rm /etc/systemd/system/multi-user.target.wants/pib-probe.service
symlink /etc/systemd/system/multi-user.target.wants/pib-probe.service /etc/systemd/system/pib-probe.service
mkdir /var/lib/cloud
mkdir /var/lib/cloud/seed
mkdir /var/lib/cloud/seed/nocloud
rm /var/lib/cloud/seed/nocloud/meta-data
rm /var/lib/cloud/seed/nocloud/user-data
write %[1]s/meta-data /var/lib/cloud/seed/nocloud/meta-data
write %[1]s/user-data /var/lib/cloud/seed/nocloud/user-data
`, dir)
	dev := fmt.Sprintf("%s?offset=%d", raw, disk.RootOffset)
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", "-", dev)
	cmd.Stdin = strings.NewReader(cmds)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("debugfs: %w: %s", err, out)
	}
	check := exec.CommandContext(ctx, "debugfs", "-R", "cat /etc/systemd/system/pib-probe.service", dev)
	out, err := check.Output()
	if err != nil || !bytes.Equal(out, []byte(probeUnit)) {
		return fmt.Errorf("the probe unit could not be written into the disk (debugfs: %v)", err)
	}
	return nil
}
