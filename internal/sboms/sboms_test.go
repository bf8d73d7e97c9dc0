package sboms_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/anchore/syft/syft/format/syftjson"
	"github.com/anchore/syft/syft/pkg"
	"github.com/anchore/syft/syft/sbom"
	"github.com/anchore/syft/syft/source"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/sboms"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
)

type env struct {
	db    *store.DB
	blobs *blobs.Dir
	sboms *sboms.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "pib.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	bs, err := blobs.NewDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, blobs: bs, sboms: sboms.New(db, bs)}
}

// keep stores a syft JSON SBOM of one Debian package, as a scan keeps one.
func (e *env) keep(t *testing.T) v1.Hash {
	t.Helper()
	p := pkg.Package{Name: "libfoo1", Version: "1.0-1", Type: pkg.DebPkg, PURL: "pkg:deb/debian/libfoo1@1.0-1?distro=debian-12"}
	p.SetID()
	doc := sbom.SBOM{
		Artifacts:  sbom.Artifacts{Packages: pkg.NewCollection(p)},
		Source:     source.Description{Name: "img-1", Metadata: source.DirectoryMetadata{Path: "/"}},
		Descriptor: sbom.Descriptor{Name: "pib", Version: "test"},
	}
	enc, err := syftjson.NewFormatEncoderWithConfig(syftjson.DefaultEncoderConfig())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := enc.Encode(&buf, doc); err != nil {
		t.Fatal(err)
	}
	h, _, err := e.blobs.Put(context.Background(), &buf, v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (e *env) read(t *testing.T, kept v1.Hash, format string) []byte {
	t.Helper()
	rc, err := e.sboms.Open(context.Background(), kept, format)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestOpen: each format is made from the kept syft JSON once and is the
// same document on every download, however many ask for it first at the
// same time; syft JSON is the kept blob itself.
func TestOpen(t *testing.T) {
	e := newEnv(t)
	kept := e.keep(t)
	want := map[string]string{scan.CycloneDXJSON: `"bomFormat":"CycloneDX"`, scan.SPDXJSON: `"spdxVersion":"SPDX-`, scan.SyftJSON: `"artifacts"`}
	for _, format := range scan.SBOMFormats {
		t.Run(format, func(t *testing.T) {
			var wg sync.WaitGroup
			got := make([][]byte, 4)
			for i := range got {
				wg.Go(func() { got[i] = e.read(t, kept, format) })
			}
			wg.Wait()
			for i := range got {
				if !bytes.Equal(got[i], got[0]) {
					t.Fatalf("download %d differs from download 0", i)
				}
			}
			if !strings.Contains(string(got[0]), want[format]) || !strings.Contains(string(got[0]), "libfoo1") {
				t.Errorf("%s SBOM does not look like one of libfoo1:\n%.400s", format, got[0])
			}
			var rows int
			if err := e.db.QueryRow(`SELECT COUNT(*) FROM sbom_formats WHERE source_digest = $1 AND format = $2`, kept.String(), format).Scan(&rows); err != nil {
				t.Fatal(err)
			}
			if wantRows := map[bool]int{true: 0, false: 1}[format == scan.SyftJSON]; rows != wantRows {
				t.Errorf("%d documents recorded, want %d", rows, wantRows)
			}
		})
	}
	// Every blob is the kept SBOM or one recorded document: the losers of
	// the race removed theirs.
	list, err := e.blobs.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Errorf("%d blobs, want 3 (syft JSON, CycloneDX, SPDX): %v", len(list), list)
	}
	// Blob garbage collection keeps the documents made (the kept syft
	// JSON is a build's, named in its report, which this test has none of).
	is := images.NewStore(e.db, e.blobs, t.TempDir())
	for _, format := range []string{scan.CycloneDXJSON, scan.SPDXJSON} {
		var d string
		if err := e.db.QueryRow(`SELECT digest FROM sbom_formats WHERE format = $1`, format).Scan(&d); err != nil {
			t.Fatal(err)
		}
		h, err := v1.NewHash(d)
		if err != nil {
			t.Fatal(err)
		}
		if ref, err := is.BlobReferenced(context.Background(), h); err != nil || !ref {
			t.Errorf("the %s document made is not referenced for garbage collection: %v %v", format, ref, err)
		}
	}
}

// TestOpenErrors: a format pib does not write, and a kept blob that is not
// syft JSON, say so.
func TestOpenErrors(t *testing.T) {
	e := newEnv(t)
	kept := e.keep(t)
	if _, err := e.sboms.Open(context.Background(), kept, "xml"); err == nil || !strings.Contains(err.Error(), "want cyclonedx-json") {
		t.Errorf("format xml: %v", err)
	}
	bad, _, err := e.blobs.Put(context.Background(), strings.NewReader(`{"bomFormat":"CycloneDX"}`), v1.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sboms.Open(context.Background(), bad, scan.SPDXJSON); err == nil || !strings.Contains(err.Error(), "read the kept SBOM") {
		t.Errorf("not syft JSON: %v", err)
	}
}
