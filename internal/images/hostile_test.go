package images_test

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestLayerCacheHoldsNoHostileFiles: an image's device nodes and FIFOs are
// never made on the host, and its unpacked layers (setuid-root files
// included) sit under directories only root can enter (T2). Before, the
// cache held a 0666 device node and a setuid-root file under 0755
// directories.
func TestLayerCacheHoldsNoHostileFiles(t *testing.T) {
	testenv.RequireRoot(t)
	s, data := openStore(t)
	ctx := context.Background()
	hostile := append(append([]entry(nil), smallRootfs...),
		entry{name: "opt/", typ: tar.TypeDir},
		entry{name: "opt/n", typ: tar.TypeBlock, mode: 0o666},
		entry{name: "opt/pipe", typ: tar.TypeFifo, mode: 0o666},
		entry{name: "opt/su", body: "#!/bin/sh\n", mode: 0o4755},
	)
	im, err := s.Import(ctx, writeFile(t, filepath.Join(t.TempDir(), "r.tar"), tarBytes(t, hostile)), images.ImportOptions{Alias: "hostile"})
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LayerDirs(ctx, im)
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(data, "cache")
	for _, d := range []string{cache, filepath.Join(cache, "layers"), filepath.Dir(dirs[0]), filepath.Join(cache, "tmp")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want 0700: other users must not reach unpacked layers", d, fi.Mode(), err)
		}
	}
	filepath.WalkDir(dirs[0], func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			if st.Rdev != 0 || st.Mode&0o7777 != 0 {
				t.Errorf("%s: a device node %d:%d mode %#o on the host", p, unix.Major(st.Rdev), unix.Minor(st.Rdev), st.Mode&0o7777)
			}
		case unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
			t.Errorf("%s: mode %#o, a special file on the host", p, st.Mode)
		}
		return nil
	})
	if fi, err := os.Stat(filepath.Join(dirs[0], "opt/su")); err != nil || fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("opt/su: %v, %v; setuid files stay setuid inside images", fi.Mode(), err)
	}
}

// TestAddLayerRefusesSpecialFiles: a FIFO an installer leaves is listed by
// a *layer.SpecialFilesError for a T2 finding, and no image is stored.
func TestAddLayerRefusesSpecialFiles(t *testing.T) {
	testenv.RequireRoot(t)
	s, _ := openStore(t)
	ctx := context.Background()
	base, err := s.Import(ctx, writeFile(t, filepath.Join(t.TempDir(), "r.tar"), tarBytes(t, smallRootfs)), images.ImportOptions{Alias: "base"})
	if err != nil {
		t.Fatal(err)
	}
	upper := t.TempDir()
	os.MkdirAll(filepath.Join(upper, "opt"), 0o755)
	os.WriteFile(filepath.Join(upper, "opt/run"), []byte("x"), 0o755)
	if err := unix.Mkfifo(filepath.Join(upper, "opt/pipe"), 0o666); err != nil {
		t.Fatal(err)
	}
	_, err = s.AddLayer(ctx, base, upper, images.AddLayerOptions{Alias: "after"})
	var se *layer.SpecialFilesError
	if !errors.As(err, &se) || len(se.Files) != 1 || se.Files[0].Path != "opt/pipe" {
		t.Fatalf("AddLayer = %v, want a *layer.SpecialFilesError naming opt/pipe", err)
	}
	if _, err := s.Get(ctx, "after"); !errors.Is(err, images.ErrNotFound) {
		t.Errorf("an image was stored anyway: %v", err)
	}
}
