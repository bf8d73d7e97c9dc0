package testbuild_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/inventories"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/sboms"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/testbuild"
	"github.com/pib-dev/pib/internal/testenv"
	"github.com/pib-dev/pib/internal/vulndb"
	"github.com/pib-dev/pib/internal/vulndb/vulndbtest"
)

// scanEnv is a pib data directory with the debian-12 image, the Debian
// OSV data, a Builder and the server's Scanner.
type scanEnv struct {
	data    string
	images  *images.Store
	inv     *inventories.Store
	sboms   *sboms.Store
	scanner *scan.Scanner
	builder *testbuild.Builder
	server  *testbuild.Scanner
	base    *images.Image
}

func newScanEnv(t testing.TB) *scanEnv {
	t.Helper()
	testenv.RequireRoot(t)
	e := &scanEnv{data: t.TempDir()}
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(e.data, "pib.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	bs, err := blobs.NewDir(filepath.Join(e.data, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	e.images = images.NewStore(db, bs, filepath.Join(e.data, "cache"))
	e.inv = inventories.New(db, bs)
	e.sboms = sboms.New(db, bs)
	vdb := vulndb.New(db)
	if _, err := vdb.Import(ctx, vulndbtest.DebianZip(t)); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	e.scanner = scan.New(vdb, scan.Options{Now: func() time.Time { return now }, ToolVersion: "test"})
	e.builder = testbuild.NewBuilder(e.images, e.data, sandbox.Limits{}, sandbox.IDs{})
	e.server = testbuild.NewScanner(e.images, e.scanner, e.inv, filepath.Join(e.data, "cache", "scan"))
	e.base = testenv.ImportDebian12(t, e.images)
	return e
}

// build runs installer (with the other packages) on base and returns the
// new image's ID.
func (e *scanEnv) build(t testing.TB, base, id, installer string, body []byte) string {
	t.Helper()
	pkgs := t.TempDir()
	path := filepath.Join(pkgs, installer)
	if err := os.WriteFile(path, body, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := e.builder.Build(context.Background(), pipeline.BuildRequest{BuildID: id, Owner: "acc-1", OSName: "debian-12",
		Platform: "linux", BaseImageID: base, PackageDir: pkgs, Installer: path})
	if err != nil {
		t.Fatal(err)
	}
	if out.ImageID == "" {
		t.Fatalf("build %s made no image: %+v\n%s", id, out.Findings, out.Log)
	}
	return out.ImageID
}

// makeDeb builds a small .deb with dpkg-deb.
func makeDeb(t testing.TB, name string, files map[string]string) []byte {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("needs dpkg-deb to build a test package")
	}
	root := filepath.Join(t.TempDir(), "root")
	control := "Package: " + name + "\nVersion: 1.0-1\nArchitecture: all\nMaintainer: pib tests <t@example.com>\nDepends: libc6\nDescription: pib incremental scan test package\n"
	files["DEBIAN/control"] = control
	for p, body := range files {
		f := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(t.TempDir(), name+".deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	data, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

const pipInstall = `#!/bin/sh
set -e
site=/usr/local/lib/python3.11/dist-packages
mkdir -p $site/pibdemo-1.2.dist-info $site/pibdemo /usr/local/bin
printf 'Metadata-Version: 2.1\nName: pibdemo\nVersion: 1.2\nRequires-Dist: jinja2\n' > $site/pibdemo-1.2.dist-info/METADATA
printf 'pibdemo/__init__.py,,\npibdemo-1.2.dist-info/METADATA,,\n../../../bin/pibdemo,,\n' > $site/pibdemo-1.2.dist-info/RECORD
echo pip > $site/pibdemo-1.2.dist-info/INSTALLER
echo 'VERSION = "1.2"' > $site/pibdemo/__init__.py
printf '#!/usr/bin/python3\nimport pibdemo\n' > /usr/local/bin/pibdemo
chmod +x /usr/local/bin/pibdemo
`

// TestServerScanIsFullScan: the server's scan of real sandbox builds on
// debian-12 (a .deb install, a .deb removal, a pip-style install into
// /usr/local, a credential left behind, and a build on a build) is
// incremental and its result is exactly a full scan's: report (findings,
// policy results, violations, verdict), SBOMs, and the inventory kept for
// S5.
func TestServerScanIsFullScan(t *testing.T) {
	e := newScanEnv(t)
	ctx := context.Background()
	deb := makeDeb(t, "pib-incscan-tool", map[string]string{
		"usr/bin/pib-incscan-tool":                 "#!/bin/sh\necho tool\n",
		"usr/share/doc/pib-incscan-tool/copyright": "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: MIT\n",
	})
	installed := e.build(t, e.base.ID, "b-deb", "tool.deb", deb)
	cases := []struct {
		name, image string
		wantBase    string
	}{
		{".deb install", installed, e.base.ID},
		{".deb removal", e.build(t, e.base.ID, "b-purge", "purge.sh", []byte("#!/bin/sh\nset -e\ndpkg --purge --force-depends gdisk\n")), e.base.ID},
		{"pip-style install into /usr/local", e.build(t, e.base.ID, "b-pip", "pip.sh", []byte(pipInstall)), e.base.ID},
		{"a credential left behind", e.build(t, e.base.ID, "b-cred", "cred.sh", []byte("#!/bin/sh\nmkdir -p /opt/app\necho 'export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE' > /opt/app/deploy.sh\n")), e.base.ID},
		{"a pip install on the .deb build", e.build(t, installed, "b-on-b", "pip.sh", []byte(pipInstall)), installed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.server.Scan(ctx, tc.image)
			if err != nil {
				t.Fatal(err)
			}
			var got testbuild.ScanReport
			if err := json.Unmarshal(out.Report, &got); err != nil {
				t.Fatal(err)
			}
			if got.Scope.Scan != "incremental" || got.Scope.From != tc.wantBase || got.Scope.ChangedPaths == 0 {
				t.Errorf("the server's scan says %+v, want incremental from %s", got.Scope, tc.wantBase)
			}

			im, err := e.images.Get(ctx, tc.image)
			if err != nil {
				t.Fatal(err)
			}
			root, release, err := e.images.Rootfs(ctx, im)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			full, err := e.scanner.Scan(ctx, root, scan.Image{ID: im.ID})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(reportJSON(t, full), reportJSON(t, got.Report)); diff != "" {
				t.Errorf("report (-full +server):\n%s", diff)
			}
			if (full.Status == scan.Successful) != out.Passed {
				t.Errorf("outcome passed = %v, full scan's status %s", out.Passed, full.Status)
			}
			// The scan keeps syft's JSON; the standard formats are made
			// from it, and each is the full scan's own encoding.
			kept, err := v1.NewHash(got.SBOMs[scan.SyftJSON])
			if err != nil || len(got.SBOMs) != 1 {
				t.Fatalf("kept SBOMs %v: want syft-json only (%v)", got.SBOMs, err)
			}
			for _, format := range scan.SBOMFormats {
				var want bytes.Buffer
				if err := full.EncodeSBOM(&want, format); err != nil {
					t.Fatal(err)
				}
				made := e.sbom(t, kept, format)
				if diff := cmp.Diff(normalize(t, want.Bytes()), normalize(t, made)); diff != "" {
					t.Errorf("%s SBOM (-full +server):\n%s", format, diff)
				}
				if again := e.sbom(t, kept, format); !bytes.Equal(made, again) {
					t.Errorf("%s SBOM: a second download differs from the first", format)
				}
			}
			inv, err := e.inv.Inventory(ctx, tc.image)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(full.Inventory(), inv); diff != "" {
				t.Errorf("kept inventory (-full +server):\n%s", diff)
			}
		})
	}
	// A scan that cannot be made incrementally is made in full and says
	// why.
	t.Run("no work directory", func(t *testing.T) {
		file := filepath.Join(e.data, "not-a-directory")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := testbuild.NewScanner(e.images, e.scanner, e.inv, filepath.Join(file, "scan")).Scan(ctx, installed)
		if err != nil {
			t.Fatal(err)
		}
		var got testbuild.ScanReport
		if err := json.Unmarshal(out.Report, &got); err != nil {
			t.Fatal(err)
		}
		if got.Scope.Scan != "full" || !slices.ContainsFunc(got.Warnings, func(w string) bool { return strings.HasPrefix(w, "scanned in full: ") }) {
			t.Errorf("scan %+v, warnings %q: want a full scan that says why", got.Scope, got.Warnings)
		}
	})
	// The base scanned once for all of them, in full, and kept.
	if _, err := e.inv.Inventory(ctx, e.base.ID); err != nil {
		t.Errorf("the base image's inventory is not kept: %v", err)
	}
}

// reportJSON is a report's JSON without what differs by design: when it
// was made and how.
func reportJSON(t *testing.T, r *scan.Report) map[string]any {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "inventory")
	delete(m, "scanned_at")
	return m
}

// sbom reads the SBOM made from the kept syft JSON in format.
func (e *scanEnv) sbom(t *testing.T, kept v1.Hash, format string) []byte {
	t.Helper()
	rc, err := e.sboms.Open(context.Background(), kept, format)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var (
	uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRE = regexp.MustCompile(`"(timestamp|created)":\s*"[^"]*"`)
)

// normalize blanks what differs between any two SBOMs of one image
// (document IDs, times) and decodes the JSON.
func normalize(t *testing.T, data []byte) any {
	t.Helper()
	data = uuidRE.ReplaceAll(data, []byte("X"))
	data = timeRE.ReplaceAll(data, []byte(`"$1": "X"`))
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	return v
}

// BenchmarkServerScan is the server's scan of a build (a .deb install) on
// the debian-12 base, whose state is kept: "incremental" is what the
// pipeline runs (Scanner.Scan: mount, scan from the base's state, SBOMs
// and inventory kept), "full" a full scan of the same image; both report
// their median.
//
//	go test -run '^$' -bench ServerScan -benchtime 10x ./internal/testbuild/
func BenchmarkServerScan(b *testing.B) {
	e := newScanEnv(b)
	ctx := context.Background()
	deb := makeDeb(b, "pib-incscan-tool", map[string]string{"usr/bin/pib-incscan-tool": "#!/bin/sh\necho tool\n"})
	image := e.build(b, e.base.ID, "b-bench", "tool.deb", deb)
	if _, err := e.server.Scan(ctx, image); err != nil { // the base's full scan, kept; warm-up
		b.Fatal(err)
	}
	median := func(b *testing.B, scan func() error) {
		var took []time.Duration
		for b.Loop() {
			start := time.Now()
			if err := scan(); err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		b.ReportMetric(took[len(took)/2].Seconds(), "median-s")
	}
	b.Run("incremental", func(b *testing.B) {
		median(b, func() error {
			_, err := e.server.Scan(ctx, image)
			return err
		})
	})
	b.Run("full", func(b *testing.B) {
		im, err := e.images.Get(ctx, image)
		if err != nil {
			b.Fatal(err)
		}
		median(b, func() error {
			root, release, err := e.images.Rootfs(ctx, im)
			if err != nil {
				return err
			}
			defer release()
			r, err := e.scanner.Scan(ctx, root, scan.Image{ID: im.ID})
			if err == nil {
				err = r.EncodeSBOM(io.Discard, scan.CycloneDXJSON)
			}
			return err
		})
	})
}

// osVersionList is a fixed OS version registry.
type osVersionList []*osversions.OSVersion

func (l osVersionList) List(context.Context) ([]*osversions.OSVersion, error) { return l, nil }

// TestBaseScans: the base-scans job keeps the inventory of every
// registered OS version's base image before any build on it, and names
// an OS version whose image it cannot scan without giving up on the
// others.
func TestBaseScans(t *testing.T) {
	e := newScanEnv(t)
	ctx := context.Background()
	if _, err := e.inv.Inventory(ctx, e.base.ID); err == nil {
		t.Fatal("the base image has an inventory before any scan")
	}
	jobs := &testbuild.BaseScans{Scanner: e.server, OSVersions: osVersionList{
		{Name: "gone-1", ImageID: "img-00000000000000000"},
		{Name: "debian-12", ImageID: e.base.ID},
	}}
	err := jobs.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "OS version gone-1") {
		t.Errorf("Run: %v, want an error naming OS version gone-1", err)
	}
	inv, err := e.inv.Inventory(ctx, e.base.ID)
	if err != nil || len(inv.Packages) < 100 {
		t.Fatalf("the base image's inventory after the job: %v", err)
	}
	// A build's scan then starts from it.
	deb := makeDeb(t, "pib-basescan-tool", map[string]string{"usr/bin/pib-basescan-tool": "#!/bin/sh\n"})
	out, err := e.server.Scan(ctx, e.build(t, e.base.ID, "b-base", "tool.deb", deb))
	if err != nil {
		t.Fatal(err)
	}
	var got testbuild.ScanReport
	if err := json.Unmarshal(out.Report, &got); err != nil {
		t.Fatal(err)
	}
	if got.Scope.Scan != "incremental" || got.Scope.From != e.base.ID {
		t.Errorf("the build's scan says %+v, want incremental from %s", got.Scope, e.base.ID)
	}
}
