package scan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/vulndb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixedNow is the clock of every fixture scan: reports and EOL checks are
// stable.
var fixedNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func fixtureDB(t *testing.T, sdb *store.DB) *vulndb.DB {
	t.Helper()
	db := vulndb.New(sdb)
	if _, err := db.Import(context.Background(), "testdata/osv"); err != nil {
		t.Fatal(err)
	}
	return db
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got); if the change is intended, run go test ./internal/scan -update:\n%s", name, diff)
	}
}

type brief struct {
	ID, Package, Source, Installed, Fixed string
	Severity                              scan.Severity
}

// The dpkg fixture exercises every matching rule the issue names; the
// comments in testdata/osv's generator say which record tests what.
func TestScanFixture(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, sdb *store.DB) {
		ctx := context.Background()
		s := scan.New(fixtureDB(t, sdb), scan.Options{Now: func() time.Time { return fixedNow }, ToolVersion: "test"})
		r, err := s.Scan(ctx, "testdata/rootfs", scan.Image{ID: "img-0123456789abcdef0"})
		if err != nil {
			t.Fatal(err)
		}
		var got []brief
		for _, f := range r.Vulnerabilities {
			got = append(got, brief{f.ID, f.Package, f.SourcePackage, f.InstalledVersion, f.FixedVersion, f.Severity})
		}
		want := []brief{
			{"CVE-2099-1001", "libfoo1", "foo", "1.0-1", "1.0-2", scan.Critical}, // binary ≠ source
			{"DSA-9001-1", "bar", "bar", "1.2-3+b1", "1.2-3+deb12u1", scan.High}, // binNMU: source version; rated by its CVE
			{"CVE-2099-3002", "baz", "baz", "1:2.0-1", "1:2.0-2", scan.High},     // epoch
			{"PYSEC-2099-2", "localpkg", "localpkg", "2.0", "2.1", scan.High},    // pip-installed: PyPI
			{"CVE-2099-6001", "lst", "lst", "1.5-1", "", scan.High},              // last_affected == installed; urgency
			{"CVE-2099-5001", "zap", "zap", "1.0-1", "", scan.High},              // unfixed; CVSS beats urgency
			{"CVE-2099-4001", "qux", "qux", "2.0~rc1-1", "2.0-1", scan.Medium},   // ~ sorts before
			{"CVE-2099-7001", "ver", "ver", "0.9-1", "", scan.Low},               // versions[] only
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("findings (-want +got):\n%s", diff)
		}
		if r.Status != scan.IssuesFound {
			t.Errorf("status = %s, want issues_found", r.Status)
		}
		var viol []string
		for _, v := range r.Violations {
			viol = append(viol, v.ID)
		}
		// PYSEC-2099-1 would match demo 1.0, but that copy belongs to the
		// Debian package python3-demo: Debian's records judge it.
		if diff := cmp.Diff([]string{"CVE-2099-1001", "DSA-9001-1", "CVE-2099-3002", "PYSEC-2099-2"}, viol); diff != "" {
			t.Errorf("violations (-want +got):\n%s", diff)
		}
		for _, c := range r.Policy {
			if !c.Passed {
				t.Errorf("%s failed on the clean fixture: %s %v", c.Rule, c.Message, c.Evidence)
			}
		}
		if r.OS != (scan.OS{ID: "debian", Version: "12", Name: "Debian GNU/Linux 12 (bookworm)", Ecosystem: "Debian:12"}) {
			t.Errorf("os = %+v", r.OS)
		}
		if r.Packages != 11 { // 9 from dpkg, 2 Python
			t.Errorf("packages = %d, want 11", r.Packages)
		}

		if sdb.Dialect != store.SQLite {
			return // one engine is enough for the golden files
		}
		js, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "report.json", append(js, '\n'))
		for _, f := range []struct{ format, file string }{{scan.CycloneDXJSON, "sbom.cdx.json"}, {scan.SPDXJSON, "sbom.spdx.json"}} {
			var buf bytes.Buffer
			if err := r.EncodeSBOM(&buf, f.format); err != nil {
				t.Fatal(err)
			}
			golden(t, f.file, normalizeSBOM(t, buf.Bytes()))
		}
	})
}

// normalizeSBOM blanks what differs between runs (document IDs,
// timestamps, the syft version) and re-indents, so the golden file holds
// only content.
func normalizeSBOM(t *testing.T, data []byte) []byte {
	t.Helper()
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`),
		regexp.MustCompile(`"(timestamp|created)":\s*"[^"]*"`),
	} {
		data = re.ReplaceAllFunc(data, func(m []byte) []byte {
			if i := bytes.IndexByte(m, ':'); i > 0 && m[0] == '"' {
				return append(append([]byte{}, m[:i+1]...), []byte(` "X"`)...)
			}
			return []byte("X")
		})
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestScanAllowListAndUnfixed(t *testing.T) {
	sdb := storetest.Open(t, store.SQLite)
	db := fixtureDB(t, sdb)
	pol, err := scan.ParsePolicy([]byte(`
min_severity: high
fail_on_unfixed: true
allow:
  - id: CVE-2099-1001
    reason: libfoo1 is never loaded
    expires: 2026-12-31
  - id: CVE-2099-3002
    reason: old exception
    expires: 2026-01-31
`))
	if err != nil {
		t.Fatal(err)
	}
	s := scan.New(db, scan.Options{Policy: pol, Now: func() time.Time { return fixedNow }})
	r, err := s.Scan(context.Background(), "testdata/rootfs", scan.Image{})
	if err != nil {
		t.Fatal(err)
	}
	var viol, allowed []string
	for _, v := range r.Violations {
		viol = append(viol, v.ID)
	}
	for _, a := range r.Allowed {
		allowed = append(allowed, a.ID)
	}
	if diff := cmp.Diff([]string{"DSA-9001-1", "CVE-2099-3002", "PYSEC-2099-2", "CVE-2099-6001", "CVE-2099-5001"}, viol); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"CVE-2099-1001"}, allowed); diff != "" {
		t.Errorf("allowed (-want +got):\n%s", diff)
	}
	if want := "expired on 2026-01-31"; !bytes.Contains([]byte(r.Violations[1].Reason), []byte(want)) {
		t.Errorf("reason %q does not say %q", r.Violations[1].Reason, want)
	}
}

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct{ name, in, wantErr string }{
		{"json", `{"min_severity": "Critical"}`, ""},
		{"unknown field", `{"min_sev": "High"}`, "unknown field"},
		{"bad severity", `min_severity: severe`, "want Critical"},
		{"allow without reason", "allow:\n - id: X\n   expires: 2027-01-01", "reason is required"},
		{"allow without expiry", "allow:\n - id: X\n   reason: r", "expiry date"},
		{"bad date", "allow:\n - id: X\n   reason: r\n   expires: soon", "YYYY-MM-DD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := scan.ParsePolicy([]byte(tc.in))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.wantErr)) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	p := scan.DefaultPolicy()
	if p.MinSeverity != scan.High || p.FailOnUnfixed || !*p.FailOnChecks {
		t.Errorf("default policy = %+v", p)
	}
}

// Alpine matches by origin package (libcrypto3 comes from openssl) in the
// branch's ecosystem (Alpine:v3.19), with apk version rules.
func TestScanAlpineFixture(t *testing.T) {
	sdb := storetest.Open(t, store.SQLite)
	db := vulndb.New(sdb)
	if _, err := db.Import(context.Background(), "testdata/osv-alpine"); err != nil {
		t.Fatal(err)
	}
	s := scan.New(db, scan.Options{Now: func() time.Time { return fixedNow }})
	r, err := s.Scan(context.Background(), "testdata/rootfs-alpine", scan.Image{})
	if err != nil {
		t.Fatal(err)
	}
	var got []brief
	for _, f := range r.Vulnerabilities {
		got = append(got, brief{f.ID, f.Package, f.SourcePackage, f.InstalledVersion, f.FixedVersion, f.Severity})
	}
	want := []brief{{"CVE-2099-8001", "libcrypto3", "openssl", "3.1.4-r0", "3.1.4-r1", scan.High}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	if r.OS.Ecosystem != "Alpine:v3.19" {
		t.Errorf("ecosystem = %q", r.OS.Ecosystem)
	}
}

// One Scanner serves concurrent scans (the worker pool shares it).
func TestScanConcurrent(t *testing.T) {
	db := fixtureDB(t, storetest.Open(t, store.SQLite))
	s := scan.New(db, scan.Options{Now: func() time.Time { return fixedNow }})
	errs := make(chan error, 4)
	counts := make(chan int, 4)
	for range 4 {
		go func() {
			r, err := s.Scan(context.Background(), "testdata/rootfs", scan.Image{})
			if err == nil {
				counts <- len(r.Vulnerabilities)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(counts)
	for n := range counts {
		if n != 8 {
			t.Errorf("a concurrent scan found %d vulnerabilities, want 8", n)
		}
	}
}
