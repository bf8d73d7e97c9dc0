package testbuild_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/testbuild"
)

// TestBuildReportNamesNoHostPath: a seller reads the build report, so it
// must not show where the worker kept the log or the upper directory.
func TestBuildReportNamesNoHostPath(t *testing.T) {
	res := &sandbox.Result{ExitCode: 1, Signal: "SIGKILL",
		Findings: []sandbox.Finding{{Rule: "I5", Message: "the installer tried to reboot", Detail: "reboot -f"}},
		Changes:  sandbox.Changes{Added: 1, Files: []sandbox.FileChange{{Path: "opt/app", Change: "added", Type: "dir"}}},
		LogPath:  "/var/lib/pib/builds/b-0123456789ab/build.log",
		KeptDir:  "/var/lib/pib/builds/b-0123456789ab/kept-upper",
		UpperDir: "/var/lib/pib/builds/b-0123456789ab/pib-build-1/upper",
	}
	data, err := json.Marshal(testbuild.NewBuildReport(res))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "/var/lib/pib") {
		t.Errorf("the build report names a host path: %s", data)
	}
	want := `{"exit_code":1,"signal":"SIGKILL","findings":[{"rule":"I5","message":"the installer tried to reboot","detail":"reboot -f"}],` +
		`"changed_files":{"added":1,"modified":0,"deleted":0,"files":[{"path":"opt/app","change":"added","size":0,"type":"dir"}]}}`
	if diff := cmp.Diff(want, string(data)); diff != "" {
		t.Errorf("build report JSON (-want +got):\n%s", diff)
	}
	// No findings is an empty list, never null.
	if data, _ := json.Marshal(testbuild.NewBuildReport(&sandbox.Result{})); !strings.Contains(string(data), `"findings":[]`) {
		t.Errorf("no findings: %s", data)
	}
}

// TestScanReportShape: the stored scan report is the scanner's report
// with "sboms" beside its fields, and reads back the same.
func TestScanReportShape(t *testing.T) {
	in := testbuild.ScanReport{
		Report: &scan.Report{ImageID: "img-00000000000000001", Status: scan.Successful, Packages: 3},
		SBOMs:  map[string]string{scan.CycloneDXJSON: "sha256:" + strings.Repeat("1", 64)},
	}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"image_id", "status", "sboms"} {
		if _, ok := fields[name]; !ok {
			t.Errorf("no %q at the top level of %s", name, data)
		}
	}
	var back testbuild.ScanReport
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(data), string(again)); diff != "" || back.ImageID != in.ImageID || len(back.SBOMs) != 1 {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
