package scan_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/testenv"
	"github.com/pib-dev/pib/internal/vulndb"
	"github.com/pib-dev/pib/internal/vulndb/vulndbtest"
)

// realDB imports the shared Debian OSV snapshot once per test binary.
var realDB struct {
	once sync.Once
	db   *vulndb.DB
	dir  string
	took time.Duration
	err  error
}

// TestMain removes the shared database and the fixture's Go binaries
// after all tests and benchmarks.
func TestMain(m *testing.M) {
	code := m.Run()
	if realDB.dir != "" {
		os.RemoveAll(realDB.dir)
	}
	if goBinaries.dir != "" {
		os.RemoveAll(goBinaries.dir)
	}
	os.Exit(code)
}

func debianDB(t testing.TB) *vulndb.DB {
	t.Helper()
	zip := vulndbtest.DebianZip(t)
	realDB.once.Do(func() {
		// Opened outside t's cleanup so benchmarks and tests share it.
		dir, err := os.MkdirTemp("", "pib-scan-test-")
		if err != nil {
			realDB.err = err
			return
		}
		realDB.dir = dir
		sdb, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "vulndb.db"))
		if err != nil {
			realDB.err = err
			return
		}
		realDB.db = vulndb.New(sdb)
		start := time.Now()
		_, realDB.err = realDB.db.Import(context.Background(), zip)
		realDB.took = time.Since(start)
	})
	if realDB.err != nil {
		t.Fatal(realDB.err)
	}
	return realDB.db
}

// TestScanDebian12 scans the real debian-12 base image against the real
// OSV snapshot: the path every build takes. It runs in CI.
func TestScanDebian12(t *testing.T) {
	deb := testenv.Debian12(t)
	db := debianDB(t)
	t.Logf("imported the Debian OSV snapshot in %v", realDB.took)
	s := scan.New(db, scan.Options{})
	ctx := context.Background()
	start := time.Now()
	r, err := s.Scan(ctx, deb.Rootfs, scan.Image{ID: deb.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first scan %v: %d packages, %d vulnerabilities, %d violations, status %s", time.Since(start), r.Packages, len(r.Vulnerabilities), len(r.Violations), r.Status)

	if r.OS.Ecosystem != "Debian:12" {
		t.Errorf("os = %+v, want ecosystem Debian:12", r.OS)
	}
	if r.Packages < 100 {
		t.Errorf("only %d packages found in a Debian server image", r.Packages)
	}
	if r.VulnDB.Records != 44152 {
		t.Errorf("vulndb records = %d, want 44152", r.VulnDB.Records)
	}
	for _, c := range r.Policy {
		if !c.Passed {
			t.Errorf("%s fails on the base image: %s %v", c.Rule, c.Message, c.Evidence)
		}
	}
	if len(r.Vulnerabilities) == 0 {
		t.Errorf("no vulnerabilities: the 2025-02-12 snapshot has unfixed ones for bookworm (e.g. in glibc, systemd)")
	}
	sources := map[string]bool{}
	for _, f := range r.Vulnerabilities {
		sources[f.SourcePackage] = true
		if f.ID == "" || f.Package == "" || f.InstalledVersion == "" || f.Severity == "" {
			t.Errorf("incomplete finding %+v", f)
		}
		if f.Ecosystem != "Debian:12" {
			t.Errorf("finding %s from ecosystem %s", f.ID, f.Ecosystem)
		}
	}
	if !sources["glibc"] {
		t.Errorf("no finding for source package glibc (binary libc6): source-name matching is broken")
	}
	for _, w := range r.Warnings {
		t.Logf("warning: %s", w)
	}
	var buf bytes.Buffer
	if err := r.EncodeSBOM(&buf, scan.CycloneDXJSON); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"name": "openssh-server"`) && !strings.Contains(buf.String(), `"name":"openssh-server"`) {
		t.Errorf("CycloneDX SBOM does not list openssh-server")
	}

	start = time.Now()
	if _, err := s.Scan(ctx, deb.Rootfs, scan.Image{ID: deb.ImageID}); err != nil {
		t.Fatal(err)
	}
	t.Logf("warm scan %v", time.Since(start))
}

// BenchmarkScanDebian12 is the warm full scan (inventory, SBOM, matching,
// checks, verdict) of the debian-12 base image with the real OSV snapshot
// imported; target ≤ 1 s median.
//
//	go test -run '^$' -bench ScanDebian12 -benchtime 10x ./internal/scan/
func BenchmarkScanDebian12(b *testing.B) {
	deb := testenv.Debian12(b)
	db := debianDB(b)
	s := scan.New(db, scan.Options{})
	ctx := context.Background()
	if _, err := s.Scan(ctx, deb.Rootfs, scan.Image{ID: deb.ImageID}); err != nil { // warm-up: license scanner, page cache
		b.Fatal(err)
	}
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		r, err := s.Scan(ctx, deb.Rootfs, scan.Image{ID: deb.ImageID})
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := r.EncodeSBOM(&buf, scan.CycloneDXJSON); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "median-s")
}

// TestScanOnDebian12: on the real debian-12 image and OSV data, an
// incremental scan of a build-like layer (a .deb install, a pip install,
// logs and configuration) gives exactly the full scan's result.
func TestScanOnDebian12(t *testing.T) {
	deb := testenv.Debian12(t)
	now := time.Now()
	s := scan.New(debianDB(t), scan.Options{Now: func() time.Time { return now }})
	layers := []string{deb.Rootfs, scan.DebianBuildLayer(t, deb.Rootfs)}
	inc := scan.Identity(t, s, layers)
	if len(inc.Vulnerabilities) == 0 || inc.Packages < 100 {
		t.Errorf("incremental scan: %d packages, %d vulnerabilities", inc.Packages, len(inc.Vulnerabilities))
	}
	t.Logf("inventory %+v: %d packages", inc.Scope, inc.Packages)
}

// BenchmarkScanOnDebian12 is the scan of a build on the debian-12 base
// (ScanOn with the base's state), against BenchmarkScanDebian12's full
// scan of the same base; run both in one go to compare:
//
//	go test -run '^$' -bench 'Scan(On)?Debian12' -benchtime 10x ./internal/scan/
func BenchmarkScanOnDebian12(b *testing.B) {
	deb := testenv.Debian12(b)
	s := scan.New(debianDB(b), scan.Options{})
	ctx := context.Background()
	baseRep, err := s.Scan(ctx, deb.Rootfs, scan.Image{ID: deb.ImageID})
	if err != nil {
		b.Fatal(err)
	}
	state, err := baseRep.State()
	if err != nil {
		b.Fatal(err)
	}
	layers := []string{deb.Rootfs, scan.DebianBuildLayer(b, deb.Rootfs)}
	dir := scan.MountLayers(b, layers)
	on := scan.Base{ID: deb.ImageID, State: state, Layers: layers, WorkDir: filepath.Join(filepath.Dir(layers[1]), "work")}
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		r, err := s.ScanOn(ctx, dir, scan.Image{ID: "img-0000000000000b11d"}, on)
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := r.EncodeSBOM(&buf, scan.CycloneDXJSON); err != nil {
			b.Fatal(err)
		}
		if _, err := r.State(); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "median-s")
}
