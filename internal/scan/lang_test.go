package scan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/vulndb"
)

// oldModule is the module the fixture's Go binary links at a vulnerable
// version (GO-2022-1059 and its GHSA alias, fixed in v0.3.8).
const oldModule = "golang.org/x/text v0.3.7"

// goBinaries holds the fixture's two Go binaries, built once per test
// process: /usr/local/bin/textapp links oldModule, plainapp only the
// standard library. They are built by the go command that runs the
// tests, from the module proxy (GOFLAGS=-mod=mod in a throwaway module);
// the module and build caches make every build after the first a link.
var goBinaries struct {
	once sync.Once
	dir  string
	err  error
}

func buildGoBinaries(t *testing.T) string {
	t.Helper()
	goBinaries.once.Do(func() {
		goBinaries.dir, goBinaries.err = os.MkdirTemp("", "pib-scan-gobin-*")
		if goBinaries.err != nil {
			return
		}
		for name, src := range map[string]struct{ gomod, main string }{
			"textapp": {"module example.com/textapp\n\ngo 1.21\n\nrequire " + oldModule + "\n",
				"package main\n\nimport (\n\t\"fmt\"\n\n\t\"golang.org/x/text/language\"\n)\n\nfunc main() { fmt.Println(language.English) }\n"},
			"plainapp": {"module example.com/plainapp\n\ngo 1.21\n", "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"plain\") }\n"},
		} {
			mod := filepath.Join(goBinaries.dir, "src-"+name)
			if err := os.MkdirAll(mod, 0o755); err != nil {
				goBinaries.err = err
				return
			}
			if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte(src.gomod), 0o644); err != nil {
				goBinaries.err = err
				return
			}
			if err := os.WriteFile(filepath.Join(mod, "main.go"), []byte(src.main), 0o644); err != nil {
				goBinaries.err = err
				return
			}
			cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(goBinaries.dir, name), ".")
			cmd.Dir = mod
			// The tests' own module settings must not leak in: a fresh
			// module, resolved from the proxy, built by this toolchain.
			cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				goBinaries.err = &buildError{name: name, out: string(out), err: err}
				return
			}
		}
	})
	if goBinaries.err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("cannot build the fixture's Go binaries (the module proxy must serve %s): %v", oldModule, goBinaries.err)
		}
		t.Fatalf("build the fixture's Go binaries: %v", goBinaries.err)
	}
	return goBinaries.dir
}

type buildError struct {
	name, out string
	err       error
}

func (e *buildError) Error() string {
	return "go build " + e.name + ": " + e.err.Error() + "\n" + e.out
}

// langRootfs is the dpkg fixture (testdata/rootfs) with language packages
// added: an npm package.json, a .dist-info and two Go binaries.
func langRootfs(t *testing.T) string {
	t.Helper()
	bin := buildGoBinaries(t)
	dir := t.TempDir()
	for _, tree := range []string{"testdata/rootfs", "testdata/rootfs-lang"} {
		if err := os.CopyFS(dir, os.DirFS(tree)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"textapp", "plainapp"} {
		data, err := os.ReadFile(filepath.Join(bin, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "usr/local/bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "usr/local/bin", name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// langDB imports the dpkg fixture's records and the language ones.
func langDB(t *testing.T, sdb *store.DB) *vulndb.DB {
	t.Helper()
	db := fixtureDB(t, sdb)
	res, err := db.Import(context.Background(), "testdata/osv-lang")
	if err != nil {
		t.Fatal(err)
	}
	// GO-*: the zero time golang/vulndb writes; PYSEC-2099-10: none.
	if res.NoModified != 4 || len(res.Skipped) != 0 {
		t.Fatalf("import: %d records without a modified time, skipped %v; want 4, none", res.NoModified, res.Skipped)
	}
	return db
}

type langBrief struct {
	ID, Package, Installed, Fixed string
	Severity                      scan.Severity
	Source                        string
	Locations                     []string
}

// TestScanLanguages: findings in language packages say where each
// package is, give the nearest fix written the ecosystem's way, keep every
// alias, rate records by any source (their own, or a record that is the
// same vulnerability), group records of one vulnerability, and the
// report says which upgrade fixes all of a package's vulnerabilities and
// how many Unknown ones the policy did not judge.
func TestScanLanguages(t *testing.T) {
	root := langRootfs(t)
	storetest.ForEach(t, func(t *testing.T, sdb *store.DB) {
		ctx := context.Background()
		db := langDB(t, sdb)
		s := scan.New(db, scan.Options{Now: func() time.Time { return fixedNow }, ToolVersion: "test"})
		r, err := s.Scan(ctx, root, scan.Image{ID: "img-0123456789abcdef1"})
		if err != nil {
			t.Fatal(err)
		}
		text, npm, py := []string{"/usr/local/bin/textapp"}, []string{"/usr/local/lib/node_modules/node-fetch/package.json"},
			[]string{"/usr/local/lib/python3.11/dist-packages/pyfix-1.0.dist-info/METADATA"}
		var got []langBrief
		for _, f := range r.Vulnerabilities {
			if f.Ecosystem == "Debian:12" || f.Package == "localpkg" {
				continue // TestScanFixture's
			}
			got = append(got, langBrief{f.ID, f.Package, f.InstalledVersion, f.FixedVersion, f.Severity, f.SeveritySource, f.Locations})
		}
		want := []langBrief{
			{"GHSA-9999-pyfx-0001", "pyfix", "1.0", "1.1", scan.Critical, "database", py}, // GitHub's rating beats CVSS v2
			{"PYSEC-2099-10", "pyfix", "1.0", "1.1", scan.Critical, "alias GHSA-9999-pyfx-0001", py},
			{"GHSA-69ch-w2m2-3vjp", "golang.org/x/text", "v0.3.7", "v0.3.8", scan.High, "cvss", text},
			{"GO-2022-1059", "golang.org/x/text", "v0.3.7", "v0.3.8", scan.High, "alias GHSA-69ch-w2m2-3vjp", text},    // Go: the v prefix
			{"GHSA-r683-j2x4-v87g", "node-fetch", "2.6.0", "2.6.7", scan.High, "cvss", npm},                            // nearest fix, not 3.1.1
			{"GO-2099-0001", "golang.org/x/text", "v0.3.7", "v0.3.10", scan.Medium, "alias GHSA-2099-rvrs-0001", text}, // aliased the other way
			{"GHSA-w7rc-rwvf-8q5r", "node-fetch", "2.6.0", "2.6.1", scan.Low, "database", npm},
			{"GO-2099-0003", "golang.org/x/text", "v0.3.7", "v0.3.9", scan.Unknown, "", text},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("language findings (-want +got):\n%s", diff)
		}

		var groups [][]string
		for _, g := range r.Groups {
			groups = append(groups, g.IDs)
		}
		wantGroups := [][]string{
			{"CVE-2099-1001"}, {"GHSA-9999-pyfx-0001", "PYSEC-2099-10"}, // Critical
			{"DSA-9001-1"}, {"CVE-2099-3002"}, {"GHSA-69ch-w2m2-3vjp", "GO-2022-1059"}, {"PYSEC-2099-2"}, {"CVE-2099-6001"}, {"GHSA-r683-j2x4-v87g"}, {"CVE-2099-5001"},
			{"GO-2099-0001"}, {"CVE-2099-4001"}, // Medium
			{"GHSA-w7rc-rwvf-8q5r"}, {"CVE-2099-7001"}, // Low
			{"GO-2099-0003"},
		}
		if diff := cmp.Diff(wantGroups, groups); diff != "" {
			t.Errorf("groups (-want +got):\n%s", diff)
		}
		for _, g := range r.Groups {
			if g.IDs[0] == "GHSA-69ch-w2m2-3vjp" {
				if diff := cmp.Diff([]string{"CVE-2022-32149", "GHSA-69ch-w2m2-3vjp", "GO-2022-1059"}, g.Aliases); diff != "" {
					t.Errorf("aliases of the x/text group (-want +got):\n%s", diff)
				}
			}
		}
		wantUpgrades := []scan.Upgrade{
			{Package: "golang.org/x/text", SourcePackage: "golang.org/x/text", InstalledVersion: "v0.3.7", Ecosystem: "Go", Locations: text, FixedVersion: "v0.3.10", Vulnerabilities: 3, Records: 4},
			{Package: "node-fetch", SourcePackage: "node-fetch", InstalledVersion: "2.6.0", Ecosystem: "npm", Locations: npm, FixedVersion: "2.6.7", Vulnerabilities: 2, Records: 2},
		}
		if diff := cmp.Diff(wantUpgrades, r.Upgrades); diff != "" {
			t.Errorf("upgrades (-want +got):\n%s", diff)
		}
		wantCounts := scan.Counts{Records: 16, Vulnerabilities: 14, Critical: 2, High: 7, Medium: 2, Low: 2, Unknown: 1, Fixable: 11, UnknownIgnored: 1}
		if diff := cmp.Diff(wantCounts, r.Counts); diff != "" {
			t.Errorf("counts (-want +got):\n%s", diff)
		}
		// Every package says where it is; the binary that links no old
		// module has no finding.
		for _, p := range r.Inventory().Packages {
			if len(p.Locations) == 0 {
				t.Errorf("package %s %s has no location", p.Name, p.Version)
			}
			if p.Name == "golang.org/x/text" && !cmp.Equal(p.Locations, text) {
				t.Errorf("golang.org/x/text found at %v, want %v", p.Locations, text)
			}
		}

		// S5: the kept inventory, through its JSON, is matched again to
		// the same findings, locations included.
		kept, err := json.Marshal(r.Inventory())
		if err != nil {
			t.Fatal(err)
		}
		var inv scan.Inventory
		if err := json.Unmarshal(kept, &inv); err != nil {
			t.Fatal(err)
		}
		err = scan.Rematch(ctx, db, func(fn func(string, *scan.Inventory) error) error { return fn("img-0123456789abcdef1", &inv) },
			func(_ string, fs []scan.Finding, _ []string) error {
				if diff := cmp.Diff(r.Vulnerabilities, fs); diff != "" {
					t.Errorf("re-matched kept inventory (-scan +rematch):\n%s", diff)
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}

		if sdb.Dialect != store.SQLite {
			return
		}
		js, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "report-lang.json", append(js, '\n'))
		// The SBOMs name the paths too: CycloneDX as syft's location
		// properties, SPDX in each package's sourceInfo, also when made
		// later from the syft JSON a server keeps.
		var syftJSON bytes.Buffer
		if err := r.EncodeSBOM(&syftJSON, scan.SyftJSON); err != nil {
			t.Fatal(err)
		}
		for _, format := range []string{scan.CycloneDXJSON, scan.SPDXJSON, scan.SyftJSON} {
			var buf, converted bytes.Buffer
			if err := r.EncodeSBOM(&buf, format); err != nil {
				t.Fatal(err)
			}
			if err := scan.ConvertSBOM(&converted, bytes.NewReader(syftJSON.Bytes()), format); err != nil {
				t.Fatal(err)
			}
			for _, p := range append(append(text, npm...), py...) {
				if !strings.Contains(buf.String(), p) || !strings.Contains(converted.String(), p) {
					t.Errorf("the %s SBOM does not name %s", format, p)
				}
			}
		}
	})
}

// TestUnknownSeverityPolicy: unknown_severity decides how the policy
// judges the group nothing rates (GO-2099-0003, fixed in v0.3.9); the
// default leaves it unjudged and counted.
func TestUnknownSeverityPolicy(t *testing.T) {
	root := langRootfs(t)
	db := langDB(t, storetest.Open(t, store.SQLite))
	for _, tc := range []struct {
		policy      string
		wantViol    bool
		wantIgnored int
	}{
		{"", false, 1},
		{"unknown_severity: ignore", false, 1},
		{"unknown_severity: medium", false, 0},
		{"unknown_severity: high", true, 0},
		{"unknown_severity: Critical", true, 0},
		{"min_severity: unknown", true, 0},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			pol, err := scan.ParsePolicy([]byte(tc.policy))
			if err != nil {
				t.Fatal(err)
			}
			r, err := scan.New(db, scan.Options{Policy: pol, Now: func() time.Time { return fixedNow }}).Scan(context.Background(), root, scan.Image{})
			if err != nil {
				t.Fatal(err)
			}
			viol := false
			for _, v := range r.Violations {
				if v.ID == "GO-2099-0003" {
					viol = true
					if !strings.Contains(v.Reason, "Unknown-severity") && tc.policy != "min_severity: unknown" {
						t.Errorf("reason %q does not say the severity was unknown", v.Reason)
					}
				}
			}
			if viol != tc.wantViol || r.Counts.UnknownIgnored != tc.wantIgnored {
				t.Errorf("violation %v, unknown ignored %d; want %v, %d", viol, r.Counts.UnknownIgnored, tc.wantViol, tc.wantIgnored)
			}
		})
	}
	if _, err := scan.ParsePolicy([]byte("unknown_severity: severe")); err == nil || !strings.Contains(err.Error(), "want ignore, low") {
		t.Errorf("unknown_severity: severe: err = %v", err)
	}
}
