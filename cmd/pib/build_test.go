//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestBuildCommand runs pib build on the real debian-12 image: a clean
// installer, one that reboots (I5) and a missing base image, with their
// exit statuses 0, 1 and 2.
func TestBuildCommand(t *testing.T) {
	testenv.RequireRoot(t)
	data := debianDataDir(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o755)
		return p
	}
	for _, tc := range []struct {
		name      string
		args      []string
		exit      int
		status    string
		wantRule  string
		wantImage bool
	}{
		{"clean", []string{"--base", "debian-12", "--installer", write("ok.sh", "#!/bin/sh\nmkdir -p /opt/app && echo hi > /opt/app/hi\n")}, 0, "successful", "", true},
		{"reboots", []string{"--base", "debian-12", "--installer", write("reboot.sh", "#!/bin/sh\nreboot\n")}, 1, "issues_found", "I5", false},
		{"missing base", []string{"--base", "debian-99", "--installer", write("x.sh", "#!/bin/sh\n")}, 2, "error", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, data, append([]string{"build", "--json"}, tc.args...)...)
			code := 0
			var ec exitCoder
			if errors.As(err, &ec) {
				code = ec.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Status   string `json:"status"`
				ImageID  string `json:"image_id"`
				Findings []struct{ Rule string }
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("--json output: %v\n%s", err, out)
			}
			if code != tc.exit || rep.Status != tc.status || (rep.ImageID != "") != tc.wantImage {
				t.Fatalf("exit %d, report %+v; want exit %d, status %s\n%s", code, rep, tc.exit, tc.status, out)
			}
			if tc.wantRule != "" && (len(rep.Findings) == 0 || rep.Findings[0].Rule != tc.wantRule) {
				t.Fatalf("findings %+v, want %s", rep.Findings, tc.wantRule)
			}
		})
	}
}

// TestBuildCommandP2: pib build accepts the installer types of rule P2
// that package groups accept (groups.IsInstaller), in any case, and names
// them when it refuses one.
func TestBuildCommandP2(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		file    string
		refused bool
	}{
		{"app.zip", true},
		{"app.msi", true},
		{"SETUP.RUN", false},
		{"app.deb", false},
	} {
		p := filepath.Join(dir, tc.file)
		os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
		_, err := run(t, t.TempDir(), "build", "--base", "debian-99", "--installer", p)
		var ec exitCoder
		if !errors.As(err, &ec) || ec.ExitCode() != 2 {
			t.Fatalf("%s: %v, want exit status 2", tc.file, err)
		}
		if refused := strings.Contains(err.Error(), "(P2)"); refused != tc.refused {
			t.Errorf("%s: %v; want refused by P2: %v", tc.file, err, tc.refused)
		}
		if tc.refused {
			for _, ext := range groups.InstallerTypes["linux"] {
				if !strings.Contains(err.Error(), ext) {
					t.Errorf("%s: %q does not name %s", tc.file, err, ext)
				}
			}
		}
	}
}
