package scan

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"testing"

	"github.com/pib-dev/pib/internal/testenv"
)

// TestLayerStackIsOverlayfs: layerStack merges layers as the kernel's
// overlayfs does (whiteouts, opaque directories, a file or link over a
// directory, a directory over a file), checked path by path against a
// real overlay mount of the same layers.
func TestLayerStackIsOverlayfs(t *testing.T) {
	testenv.RequireRoot(t)
	layers := []string{
		writeLayer(t, "", map[string]string{
			"a/keep": "1", "a/gone": "1", "b/x": "1", "c/y": "1", "d": "file", "e/f/g": "1", "l": "->a", "m/n": "1",
		}),
		writeLayer(t, "", map[string]string{
			"a/new": "2", "a/gone": whiteoutEntry, "b": opaqueEntry, "b/z": "2", "c": "->/a", "d/inner": "2", "e/f": whiteoutEntry,
		}),
		writeLayer(t, "", map[string]string{
			"e/f/h": "3", "m": opaqueEntry, "l": "file",
		}),
	}
	mnt := mountLayers(t, layers)
	paths := map[string]bool{}
	for _, l := range layers {
		filepath.WalkDir(l, func(p string, _ fs.DirEntry, err error) error {
			if rel, _ := filepath.Rel(l, p); rel != "." && err == nil {
				paths["/"+filepath.ToSlash(rel)] = true
			}
			return nil
		})
	}
	var sorted []string
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	ls := newLayerStack(layers)
	for _, p := range sorted {
		want := absent.kind
		if fi, err := os.Lstat(filepath.Join(mnt, p)); err == nil {
			want = fi.Mode().Type()
		} else if !os.IsNotExist(err) {
			t.Fatal(err)
		}
		// lookup takes paths whose parents are directories.
		got := absent.kind
		if ls.lookup(path.Dir(p)).kind == fs.ModeDir {
			got = ls.lookup(p).kind
		}
		if got != want {
			t.Errorf("%s: layerStack says %v, overlayfs %v", p, got, want)
		}
	}
}
