package testbuild_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/testbuild"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestMain lets the sandbox re-execute this test binary as its init.
func TestMain(m *testing.M) {
	sandbox.Main()
	code := m.Run()
	testenv.RemovePibBinary() // the pib built for vm builds' guests
	os.Exit(code)
}

// TestBuilderLeavesNothing runs server builds on the real debian-12
// image, one passing and one breaking I4: the outcome carries the log and
// a report that names no host path, and the build's directory is gone
// (the pipeline stores the log with the build).
func TestBuilderLeavesNothing(t *testing.T) {
	testenv.RequireRoot(t)
	data := t.TempDir()
	is, closeStore, err := testenv.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	base := testenv.ImportDebian12(t, is)
	b := testbuild.NewBuilder(is, data, sandbox.Limits{}, sandbox.IDs{})
	for _, tc := range []struct {
		name, installer string
		wantImage       bool
		wantRule        string
	}{
		{"passes", "#!/bin/sh\necho installing\nmkdir -p /opt/app\n", true, ""},
		{"exits 3", "#!/bin/sh\necho installing\nexit 3\n", false, "I4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs := t.TempDir()
			installer := filepath.Join(pkgs, "setup.sh")
			if err := os.WriteFile(installer, []byte(tc.installer), 0o755); err != nil {
				t.Fatal(err)
			}
			id := "b-" + strings.ReplaceAll(tc.name, " ", "")
			out, err := b.Build(context.Background(), pipeline.BuildRequest{BuildID: id, Owner: "acc-1", OSName: "debian-12",
				Platform: "linux", BaseImageID: base.ID, PackageDir: pkgs, Installer: installer})
			if err != nil {
				t.Fatal(err)
			}
			if (out.ImageID != "") != tc.wantImage || (tc.wantRule != "") != (len(out.Findings) > 0) ||
				(tc.wantRule != "" && out.Findings[0].Rule != tc.wantRule) {
				t.Fatalf("outcome %+v; want an image %v, rule %q", out, tc.wantImage, tc.wantRule)
			}
			if !strings.Contains(string(out.Log), "installing") {
				t.Errorf("log %q lacks the installer's output", out.Log)
			}
			if strings.Contains(string(out.Report), data) || strings.Contains(string(out.Report), "build.log") {
				t.Errorf("the report names a host path: %s", out.Report)
			}
			var rep testbuild.BuildReport
			if err := json.Unmarshal(out.Report, &rep); err != nil {
				t.Fatalf("report: %v: %s", err, out.Report)
			}
			if _, err := os.Stat(testbuild.Dir(data, id)); !os.IsNotExist(err) {
				ents, _ := os.ReadDir(testbuild.Dir(data, id))
				t.Errorf("the build's directory is left behind (%v): %v", err, ents)
			}
		})
	}
}
