//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/monitor"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/vulndb"
)

// The CLI's output, pinned. Every input is fixed (IDs, times, sizes), so
// nothing is normalised: the renderers are called directly with fixtures,
// and the listings that are written inline in a command's RunE run through
// the command against a fake API server answering with the same fixtures.
// The one thing set is the time zone: the CLI prints times in local time,
// and these tests make local time UTC.

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/pib -run Golden -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got); if the change is intended, run go test ./cmd/pib -run Golden -update:\n%s", name, diff)
	}
}

// localUTC makes the local time zone UTC for the test.
func localUTC(t *testing.T) {
	saved := time.Local
	time.Local = time.UTC
	t.Cleanup(func() { time.Local = saved })
}

var (
	t0        = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	ts        = func(d time.Duration) *time.Time { x := t0.Add(d); return &x }
	seller    = "acc-5e11e20000000001"
	troubleI5 = "The test build on debian-12 found 1 problem(s):\n" +
		"- I5: the installer tried to reboot (reboot -f)\n" +
		"What to change:\n" +
		"- I5: do not reboot, halt or power off; leave a reboot, if one is needed, to whoever launches the image\n" +
		"See the build log (pib builds log b-00000000000000b2) and the report (pib builds report b-00000000000000b2)."
	troubleS2 = "1 policy violation(s) among 11 packages scanned\n\n" +
		"The scan on alpine-3 found 1 problem(s):\n" +
		"- S2: libfoo1: Critical vulnerability in libfoo1 1.0-1 (source foo) is fixed in 1.0-2 (CVE-2099-1001)\n" +
		"What to change:\n" +
		"- S2: update the affected packages to a version with the fix, then submit a new package group\n" +
		"See the build log (pib builds log b-00000000000000b3) and the report (pib builds report b-00000000000000b3)."
	troubleFault = "The build stopped because of a problem on pib's side while trying to run the test build, not because of your package group. It is in the operators' investigation queue; you do not need to do anything."
)

func build(id, group, osName, image string, state pipeline.State, trouble string, ended bool) *pipeline.Build {
	b := &pipeline.Build{ID: id, GroupID: group, Owner: seller, Submission: 1, OSName: osName, BaseImageID: "img-00000000000base1",
		State: state, ImageID: image, Troubleshooting: trouble, Attempt: 1, Submitted: t0.Add(time.Hour), Started: ts(time.Hour + time.Minute), Updated: t0.Add(2 * time.Hour)}
	if ended {
		b.Ended = ts(2 * time.Hour)
	}
	return b
}

// monitoringFixture: newer vulnerability data would change the debian-12
// build's verdict; the alpine-3 build's is unchanged (S5).
func monitoringFixture() map[string]*monitor.Verdict {
	scanned, newer := t0.Add(-30*24*time.Hour), t0.Add(-24*time.Hour)
	return map[string]*monitor.Verdict{
		"b-00000000000000b0": {ScanStatus: scan.Successful, ScanDataDate: &scanned, DataDate: newer, Status: scan.Successful,
			Added: []monitor.Change{}, Withdrawn: []monitor.Change{}, CheckedAt: newer,
			Note: "verdict made with data of " + scanned.Format("2006-01-02") + "; newer data (" + newer.Format("2006-01-02") + ") does not change it"},
		"b-00000000000000b1": {ScanStatus: scan.Successful, ScanDataDate: &scanned, DataDate: newer, Status: scan.IssuesFound,
			Added:     []monitor.Change{{ID: "CVE-2099-0002", Severity: scan.Critical, Packages: []string{"libbar1"}, FixedVersion: "2.0-1"}},
			Withdrawn: []monitor.Change{}, Outdated: true, CheckedAt: newer,
			Note: "verdict made with data of " + scanned.Format("2006-01-02") + "; newer data (" + newer.Format("2006-01-02") + ") finds 1 more vulnerability: CVE-2099-0002 (Critical); the verdict would be issues_found"},
	}
}

// statusFixture has a group in every state: two OS versions passed; a rule
// broken on one OS and the scan failed on the other; a platform fault;
// still building; never submitted.
func statusFixture() []*api.GroupStatus {
	return []*api.GroupStatus{
		{ID: "pg-00000000000000a1", Name: "Acme1_0Linux1", Submitted: ts(time.Hour), State: pipeline.Successful, Builds: []*pipeline.Build{
			build("b-00000000000000b0", "pg-00000000000000a1", "alpine-3", "img-0000000000000b0", pipeline.Successful, "", true),
			build("b-00000000000000b1", "pg-00000000000000a1", "debian-12", "img-0000000000000b1", pipeline.Successful, "", true),
		}, Monitoring: monitoringFixture()},
		{ID: "pg-00000000000000a2", Name: "Acme1_0Linux2", Submitted: ts(time.Hour), State: pipeline.GroupIssuesFound, Builds: []*pipeline.Build{
			build("b-00000000000000b3", "pg-00000000000000a2", "alpine-3", "img-0000000000000b3", pipeline.IssuesFound, troubleS2, true),
			build("b-00000000000000b2", "pg-00000000000000a2", "debian-12", "", pipeline.IssuesFound, troubleI5, true),
		}},
		{ID: "pg-00000000000000a3", Name: "Acme1_0Linux3", Submitted: ts(time.Hour), State: pipeline.Investigating, Builds: []*pipeline.Build{
			build("b-00000000000000b4", "pg-00000000000000a3", "debian-12", "", pipeline.Investigating, troubleFault, true),
		}},
		{ID: "pg-00000000000000a4", Name: "Acme1_0Linux4", Submitted: ts(time.Hour), State: pipeline.Building, Builds: []*pipeline.Build{
			build("b-00000000000000b5", "pg-00000000000000a4", "debian-12", "", pipeline.Building, "", false),
		}},
		{ID: "pg-00000000000000a5", Name: "Acme1_0Linux5", State: pipeline.GroupState(nil), Builds: []*pipeline.Build{}},
	}
}

func scanFixture(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "scan-report.json")) // a copy of internal/scan's golden report
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func reportFixtures(t *testing.T) map[string]*pipeline.Report {
	return map[string]*pipeline.Report{
		"report-scanned": {BuildID: "b-00000000000000b3", State: pipeline.IssuesFound,
			Findings:     []pipeline.Finding{{Rule: "S2", Message: "libfoo1: Critical vulnerability in libfoo1 1.0-1 (source foo) is fixed in 1.0-2", Detail: "CVE-2099-1001"}},
			ChangedFiles: []string{"/usr/lib/libfoo.so.1 (added)", "/etc/ld.so.cache (modified)"},
			Build:        json.RawMessage(`{"exit_code":0}`), Scan: scanFixture(t)},
		"report-rule-broken": {BuildID: "b-00000000000000b2", State: pipeline.IssuesFound,
			Findings:     []pipeline.Finding{{Rule: "I5", Message: "the installer tried to reboot", Detail: "reboot -f"}, {Rule: "I3", Message: "a process was left running"}},
			ChangedFiles: []string{}},
		"report-unreadable-scan": {BuildID: "b-00000000000000b1", State: pipeline.Successful, Findings: []pipeline.Finding{},
			ChangedFiles: []string{"/opt/app (added)"}, Scan: json.RawMessage(`"not a report"`)},
		// A rebuild of the same inputs whose installer writes the time
		// into a file; and one whose layer is the same.
		"report-not-reproducible": {BuildID: "b-00000000000000b5", State: pipeline.Successful, Findings: []pipeline.Finding{},
			ChangedFiles: []string{"/opt/app (added)", "/opt/app/build-stamp (added)"},
			Build: json.RawMessage(`{"exit_code":0,"findings":[],"changed_files":{"added":2,"modified":0,"deleted":0,"files":[]},
				"reproducible":{"inputs_digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","source_date_epoch":1764547200,
				"layer":"sha256:2222222222222222222222222222222222222222222222222222222222222222","previous_build":"b-00000000000000b4",
				"previous_layer":"sha256:3333333333333333333333333333333333333333333333333333333333333333","same_layer":false,
				"differences":[{"path":"/opt/app/build-stamp","what":["content"]},{"path":"/var/log/app.log","what":["size","content"]}],
				"note":"the layer differs from build b-00000000000000b4 of the same inputs only by content the installer itself made different: /opt/app/build-stamp, /var/log/app.log"}}`)},
		"report-reproducible": {BuildID: "b-00000000000000b6", State: pipeline.Successful, Findings: []pipeline.Finding{},
			ChangedFiles: []string{"/opt/app (added)"},
			Build: json.RawMessage(`{"exit_code":0,"findings":[],"changed_files":{"added":1,"modified":0,"deleted":0,"files":[]},
				"reproducible":{"inputs_digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","source_date_epoch":1764547200,
				"layer":"sha256:2222222222222222222222222222222222222222222222222222222222222222","previous_build":"b-00000000000000b4",
				"previous_layer":"sha256:2222222222222222222222222222222222222222222222222222222222222222","same_layer":true,
				"note":"the layer is the same as that of build b-00000000000000b4 of the same inputs"}}`)},
	}
}

func TestGoldenStatus(t *testing.T) {
	localUTC(t)
	var b bytes.Buffer
	renderStatus(&b, statusFixture())
	golden(t, "status.txt", b.String())
	b.Reset()
	renderStatus(&b, nil)
	golden(t, "status-empty.txt", b.String())
}

// TestGoldenTroubleshooting pins the text under the status table: one
// block per build with Issues found or Investigating.
func TestGoldenTroubleshooting(t *testing.T) {
	localUTC(t)
	var list []*api.GroupStatus
	for _, g := range statusFixture() {
		for _, b := range g.Builds {
			if b.Troubleshooting != "" {
				list = append(list, &api.GroupStatus{ID: g.ID, Name: g.Name, Submitted: g.Submitted, State: g.State, Builds: []*pipeline.Build{b}})
			}
		}
	}
	var b bytes.Buffer
	renderStatus(&b, list)
	golden(t, "troubleshooting.txt", b.String())
}

func TestGoldenBuildReport(t *testing.T) {
	for name, rep := range reportFixtures(t) {
		var b bytes.Buffer
		renderReport(&b, rep)
		golden(t, name+".txt", b.String())
	}
}

func TestGoldenScanReport(t *testing.T) {
	var rep scan.Report
	if err := json.Unmarshal(scanFixture(t), &rep); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	printReport(&b, &rep)
	golden(t, "scan-issues.txt", b.String())

	// A passing scan of a root filesystem, with an allow list at work.
	rep.ImageID = ""
	rep.Status = scan.Successful
	rep.Allowed = append(rep.Allowed, scan.Allowed{Violation: scan.Violation{Rule: "S2", ID: "CVE-2099-1001", Package: "libfoo1", Reason: "Critical vulnerability in libfoo1 1.0-1 (source foo) is fixed in 1.0-2"}, AllowReason: "not reachable: the library is never loaded", Expires: "2027-01-31"})
	rep.Violations = nil
	rep.Warnings = append(rep.Warnings, "no package database found for pip; Python packages were not inventoried")
	b.Reset()
	printReport(&b, &rep)
	golden(t, "scan-successful.txt", b.String())

	// Language packages (a copy of internal/scan's report-lang.json): where
	// each is, grouped records, the upgrade fixing all, Unknown ones the
	// policy left unjudged.
	data, err := os.ReadFile(filepath.Join("testdata", "scan-report-lang.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lang scan.Report
	if err := json.Unmarshal(data, &lang); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	printReport(&b, &lang)
	golden(t, "scan-languages.txt", b.String())

	// A report stored before reports had groups is grouped when shown.
	lang.Groups, lang.Counts, lang.Upgrades = nil, scan.Counts{}, nil
	b.Reset()
	printReport(&b, &lang)
	golden(t, "scan-languages-stored-before-groups.txt", b.String())
}

// TestGoldenLocalBuildReport pins pib build's report (text and --json).
func TestGoldenLocalBuildReport(t *testing.T) {
	code, killed := 0, -1
	var files []sandbox.FileChange
	for i := range 32 {
		files = append(files, sandbox.FileChange{Path: "opt/app/lib/part" + string(rune('a'+i%26)) + ".so", Change: "added", Size: int64(1000 * (i + 1)), Type: "file"})
	}
	for name, r := range map[string]*buildReport{
		"build-successful": {Status: "successful", BuildID: "build-20261125-093000-1a2b", ImageID: "img-0000000000000b1", BaseImageID: "img-00000000000base1",
			Installer: "setup.sh", ExitCode: &code, DurationMS: 4250, Findings: []sandbox.Finding{},
			Changes: &sandbox.Changes{Added: 2, Modified: 1, Files: []sandbox.FileChange{
				{Path: "opt/app/bin/app", Change: "added", Size: 73728, Type: "file"},
				{Path: "opt/app", Change: "added", Size: 0, Type: "dir"},
				{Path: "etc/ld.so.cache", Change: "modified", Size: 20480, Type: "file"},
			}},
			Log: "/var/lib/pib/builds/build-20261125-093000-1a2b/build.log"},
		"build-issues": {Status: "issues_found", BuildID: "build-20261125-093000-3c4d", BaseImageID: "img-00000000000base1",
			Installer: "reboot.sh", ExitCode: &killed, Signal: "SIGKILL", DurationMS: 60000,
			Findings: []sandbox.Finding{{Rule: "I5", Message: "the installer tried to reboot", Detail: "reboot -f\n(pid 42, parent sh)"}, {Rule: "I7", Message: "the installer did not finish within 1m0s"}},
			Changes:  &sandbox.Changes{Added: 32, Files: files},
			Log:      "/var/lib/pib/builds/build-20261125-093000-3c4d/build.log", KeptUpper: "/var/lib/pib/builds/build-20261125-093000-3c4d/upper"},
		"build-error": {Status: "error", BuildID: "build-20261125-093000-5e6f", Findings: []sandbox.Finding{},
			Error: "base image img-00000000000base1: not found; list images with pib image ls"},
	} {
		var b bytes.Buffer
		printBuildReport(&b, r)
		golden(t, name+".txt", b.String())
		b.Reset()
		enc := json.NewEncoder(&b) // as pib build --json encodes it
		enc.SetIndent("", "  ")
		enc.Encode(r)
		golden(t, name+".json", b.String())
	}
}

// fakeAPI answers the client commands' GETs with fixtures, or with empty
// lists.
func fakeAPI(t *testing.T, empty bool) *httptest.Server {
	digest := func(c byte) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: string(bytes.Repeat([]byte{c}, 64))} }
	pkgs := []*packages.Package{
		{ID: "pkg-00000000000000c1", Owner: seller, Name: "setup.sh", Size: 27, Digest: "sha256:" + string(bytes.Repeat([]byte("c1"), 32)), Uploaded: t0},
		{ID: "pkg-00000000000000c2", Owner: seller, Name: "app-1.0.tar.gz", Size: 5 << 20, Digest: "sha256:" + string(bytes.Repeat([]byte("c2"), 32)), Uploaded: t0.Add(time.Minute)},
	}
	grps := []*groups.Group{
		{ID: "pg-00000000000000a1", Owner: seller, Name: "Acme1_0Linux1", Platform: "linux", OSVersions: []string{"debian-12", "alpine-3"}, InstallerID: pkgs[0].ID, Packages: pkgs, Created: t0, Submitted: ts(time.Hour)},
		{ID: "pg-00000000000000a5", Owner: seller, Name: "Acme1_0Linux5", Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: pkgs[0].ID, Packages: pkgs[:1], Created: t0.Add(time.Minute)},
	}
	imgs := []*images.Image{
		{ID: "img-00000000000base1", Owner: images.Operator, Alias: "debian-12", OS: "linux", DistroID: "debian", DistroVersion: "12", Architecture: "amd64", Manifest: digest('1'), Config: digest('2'), Size: 31 << 20, Created: t0.Add(-24 * time.Hour)},
		{ID: "img-0000000000000b1", Owner: seller, OS: "linux", DistroID: "debian", DistroVersion: "12", Architecture: "amd64", ParentID: "img-00000000000base1", Manifest: digest('3'), Config: digest('4'), Size: 2048, Created: t0.Add(2 * time.Hour)},
	}
	oses := []osversions.OSVersion{
		{Name: "alpine-3", Platform: "linux", ImageID: "img-00000000000base2", Created: t0.Add(-23 * time.Hour), Backend: "sandbox"},
		{Name: "debian-12", Platform: "linux", ImageID: "img-00000000000base1", Created: t0.Add(-24 * time.Hour), Backend: "vm"},
	}
	invs := []pipeline.Investigation{
		{ID: "inv-00000000000000d1", BuildID: "b-00000000000000b4", GroupID: "pg-00000000000000a3", GroupName: "Acme1_0Linux3", Owner: seller, OSName: "debian-12",
			Reason: "sandbox could not start: overlay mount refused\nsecond line not shown in the list", Opened: t0.Add(-6 * 24 * time.Hour), Overdue: true},
		{ID: "inv-00000000000000d2", BuildID: "b-00000000000000b6", GroupID: "pg-00000000000000a6", GroupName: "Acme1_0Linux6", Owner: seller, OSName: "alpine-3",
			Reason: "the worker running this build was lost 3 times in a row", Opened: t0.Add(2 * time.Hour)},
	}
	entries := []audit.Entry{
		{ID: "au-00000000000000e2", At: t0.Add(3 * time.Hour), RequestID: "req-0000000000000000000000e2", AccountID: "acc-0000000000000000", AccountName: "operator", Role: "operator",
			Action: "GET /v1/builds/{id}/report", Object: "b-00000000000000b4", Owner: seller, Result: 200},
		{ID: "au-00000000000000e1", At: t0.Add(time.Hour), RequestID: "req-0000000000000000000000e1", AccountID: seller, AccountName: "acme", Role: "seller",
			Action: "GET /v1/package-groups", Result: 200},
	}
	reports := reportFixtures(t)
	products, changes := catalogFixture()
	withVersion := *grps[1]
	withVersion.ID, withVersion.Name, withVersion.SoftwareVersion = "pg-00000000000000a6", "Acme2_0Linux1", "2.0"
	answers := map[string]any{
		"GET /v1/products":                     products,
		"GET /v1/products/{id}":                products[0],
		"GET /v1/changes":                      changes,
		"GET /v1/changes/{id}":                 changes[0],
		"GET /v1/package-groups/Acme2_0Linux1": &withVersion,
		"GET /v1/status":                       api.Page[*api.GroupStatus]{Items: statusFixture()},
		"GET /v1/builds/{id}/report":           reports["report-scanned"],
		"GET /v1/package-groups":               api.Page[*groups.Group]{Items: grps},
		"GET /v1/package-groups/{ref}":         grps[0],
		"GET /v1/packages":                     pkgs,
		"GET /v1/images":                       imgs,
		"GET /v1/images/{ref}":                 imgs[1],
		"GET /v1/os-versions":                  oses,
		"GET /v1/investigations":               invs,
		"POST /v1/rescan": monitor.Result{Images: 1204, Changed: 3, NotMonitored: 17, Hint: "images scanned before pib kept inventories are not monitored; a new build of their group (pib groups submit) or a new private image build scans and keeps one",
			Data: vulndb.Version{Records: 44152, Date: t0.Add(-48 * time.Hour), Imported: t0.Add(-time.Hour)}, Seconds: 2.4},
		"GET /v1/audit": api.Page[audit.Entry]{Items: entries},
	}
	if empty {
		answers = map[string]any{
			"GET /v1/status":         api.Page[*api.GroupStatus]{Items: []*api.GroupStatus{}},
			"GET /v1/package-groups": api.Page[*groups.Group]{Items: []*groups.Group{}},
			"GET /v1/packages":       []*packages.Package{},
			"GET /v1/images":         []*images.Image{},
			"GET /v1/os-versions":    []osversions.OSVersion{},
			"GET /v1/investigations": []pipeline.Investigation{},
			"GET /v1/audit":          api.Page[audit.Entry]{Items: []audit.Entry{}},
			"GET /v1/products":       []*catalog.Product{},
			"GET /v1/changes":        []*api.ChangeRequest{},
		}
	}
	return serveAnswers(t, answers)
}

// TestGoldenListings runs the commands whose output is written inline in
// their RunE against fakeAPI.
func TestGoldenListings(t *testing.T) {
	clientEnv(t)
	full, empty := fakeAPI(t, false), fakeAPI(t, true)
	for _, tc := range []struct {
		name  string
		args  []string
		empty bool
	}{
		{"status", []string{"status"}, false},
		{"groups-ls", []string{"groups", "ls"}, false},
		{"groups-show", []string{"groups", "show", "Acme1_0Linux1"}, false},
		{"packages-ls", []string{"packages", "ls"}, false},
		{"image-ls", []string{"image", "ls"}, false},
		{"image-inspect", []string{"image", "inspect", "img-0000000000000b1"}, false},
		{"os-ls", []string{"os", "ls"}, false},
		{"investigations-ls", []string{"investigations", "ls"}, false},
		{"rescan", []string{"rescan"}, false},
		{"audit-ls", []string{"audit", "ls"}, false},
		{"builds-report", []string{"builds", "report", "b-00000000000000b3"}, false},
		{"groups-show-software-version", []string{"groups", "show", "Acme2_0Linux1"}, false},
		{"products-ls", []string{"products", "ls"}, false},
		{"products-show", []string{"products", "show", "prod-00000000000000f1"}, false},
		{"changes-ls", []string{"changes", "ls"}, false},
		{"changes-show", []string{"changes", "show", "chg-00000000000000f1"}, false},
		{"status-empty", []string{"status"}, true},
		{"groups-ls-empty", []string{"groups", "ls"}, true},
		{"packages-ls-empty", []string{"packages", "ls"}, true},
		{"image-ls-empty", []string{"image", "ls"}, true},
		{"os-ls-empty", []string{"os", "ls"}, true},
		{"investigations-ls-empty", []string{"investigations", "ls"}, true},
		{"audit-ls-empty", []string{"audit", "ls"}, true},
		{"products-ls-empty", []string{"products", "ls"}, true},
		{"changes-ls-empty", []string{"changes", "ls"}, true},
	} {
		hs := full
		if tc.empty {
			hs = empty
		}
		for _, asJSON := range []bool{false, true} {
			name, args := "cli-"+tc.name+".txt", tc.args
			if asJSON {
				name, args = "cli-"+tc.name+".json", append(args[:len(args):len(args)], "--json")
			}
			out, err := run(t, t.TempDir(), append([]string{"--server", hs.URL}, args...)...)
			if err != nil {
				t.Fatalf("pib %v: %v", args, err)
			}
			golden(t, name, out)
		}
	}
}

// serveAnswers is a fake API answering each GET pattern with its JSON
// fixture, checking that the client sent the test's token.
func serveAnswers(t *testing.T, answers map[string]any) *httptest.Server {
	mux := http.NewServeMux()
	for pattern, v := range answers {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer pib_test" {
				t.Errorf("%s: no token sent", r.URL)
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(v)
		})
	}
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs
}

// clientEnv makes the client commands' environment a test's own: UTC,
// an empty home (no saved login) and the fake API's token.
func clientEnv(t *testing.T) {
	localUTC(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("PIB_TOKEN", "pib_test")
}
