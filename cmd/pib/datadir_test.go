//go:build linux

package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestDataDirIsOwnerOnly fills a data directory through pib's own code
// (database, blobs, an uploaded package, the operator token, an imported
// image with its layers unpacked, a vulndb-style subdirectory) starting
// from a directory and database another user could read, and then walks
// it: nothing may be open to group or others (issue 8.6). Unpacked image
// trees keep the image's own modes; their parent must be owner-only.
func TestDataDirIsOwnerOnly(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	// What an older pib left: a world-readable directory and database.
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(data, 0o755) // past the umask
	if err := os.WriteFile(filepath.Join(data, "pib.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(data, "pib.db"), 0o644)

	if _, err := run(t, data, "image", "import", rootfsTar(t), "--alias", "tiny"); err != nil {
		t.Fatal(err)
	}
	g := &globals{dataDir: data}
	db, bs, err := g.openStores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := accounts.NewStore(db).EnsureOperator(ctx, filepath.Join(data, "operator.token")); err != nil {
		t.Fatal(err)
	}
	seller, _, err := accounts.NewStore(db).Create(ctx, "acme", accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := packages.NewStore(db, bs).Upload(ctx, seller.ID, "setup.sh", strings.NewReader("#!/bin/sh\n")); err != nil {
		t.Fatal(err)
	}
	is := images.NewStore(db, bs, filepath.Join(data, "cache"))
	im, err := is.Get(ctx, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	layers, err := is.LayerDirs(ctx, im)
	if err != nil {
		t.Fatal(err)
	}
	// Write something so the WAL and shared-memory files exist.
	if _, _, err := accounts.NewStore(db).Create(ctx, "globex", accounts.Buyer); err != nil {
		t.Fatal(err)
	}

	imageRoots := map[string]bool{}
	for _, l := range layers {
		imageRoots[l] = true
	}
	seen := map[string]bool{}
	err = filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if imageRoots[p] {
			// An image's "/" keeps its mode; what matters is that no one
			// else can reach it.
			if pfi, err := os.Stat(filepath.Dir(p)); err != nil || pfi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: the directory holding an unpacked layer is %v, want no group/other access", filepath.Dir(p), pfi.Mode().Perm())
			}
			return filepath.SkipDir
		}
		if fi.Mode()&fs.ModeSymlink == 0 && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: open to group or others", strings.TrimPrefix(p, data), fi.Mode().Perm())
		}
		seen[strings.TrimPrefix(p, data+"/")] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk saw what it is meant to check.
	for _, want := range []string{"pib.db", "pib.db-wal", "pib.db-shm", "operator.token", "blobs/sha256", "cache/layers"} {
		if !seen[want] {
			t.Errorf("%s not in the data directory; the walk checked %d entries", want, len(seen))
		}
	}
	if len(layers) == 0 {
		t.Error("no layer was unpacked")
	}
}
