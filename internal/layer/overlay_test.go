package layer_test

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/testenv"
)

func mountOverlay(t *testing.T, target, opts string) {
	t.Helper()
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		t.Skipf("cannot mount overlayfs (%v): needs root and a kernel with overlayfs", err)
	}
	t.Cleanup(func() {
		// EINVAL: the test unmounted it already.
		if err := unix.Unmount(target, 0); err != nil && err != unix.EINVAL {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
}

// TestOverlay changes a real overlayfs mount, packs its upper directory,
// unpacks that as a second lower layer and checks the merged view.
func TestOverlay(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir()
	p := func(s string) string { return filepath.Join(base, s) }

	src := p("src")
	makeTree(t, src, []node{
		{path: "etc", typ: tar.TypeDir, mode: 0o755},
		{path: "etc/os-release", typ: tar.TypeReg, mode: 0o644, content: "ID=test\n"},
		{path: "etc/old.conf", typ: tar.TypeReg, mode: 0o644, content: "old"},
		{path: "opt/app", typ: tar.TypeDir, mode: 0o755},
		{path: "opt/app/a", typ: tar.TypeReg, mode: 0o644, content: "a"},
		{path: "opt/app/b", typ: tar.TypeReg, mode: 0o644, content: "b"},
	}, false, time.Now())
	lower1 := unpackTo(t, pack(t, src, layer.PackOptions{}), p("lower1"))

	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(p(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	merged := p("merged")
	mountOverlay(t, merged, "lowerdir="+lower1+",upperdir="+p("upper")+",workdir="+p("work")+",redirect_dir=off,metacopy=off")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Remove(filepath.Join(merged, "etc/old.conf")))
	must(os.RemoveAll(filepath.Join(merged, "opt/app")))
	must(os.Mkdir(filepath.Join(merged, "opt/app"), 0o755))
	must(os.WriteFile(filepath.Join(merged, "opt/app/c"), []byte("c"), 0o644))
	must(os.WriteFile(filepath.Join(merged, "etc/new.conf"), []byte("new"), 0o644))
	must(unix.Unmount(merged, 0))

	b := pack(t, p("upper"), layer.PackOptions{})
	var got []string
	for _, e := range readEntries(t, b) {
		got = append(got, e.Name)
		for x := range e.Xattrs {
			if strings.Contains(x, ".overlay.") {
				t.Errorf("%s: overlay xattr %s packed", e.Name, x)
			}
		}
	}
	want := []string{"etc/", "etc/.wh.old.conf", "etc/new.conf", "opt/", "opt/app/", "opt/app/.wh..wh..opq", "opt/app/c"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries of the packed upper directory (-want +got):\n%s", diff)
	}

	lower2 := unpackTo(t, b, p("lower2"))
	view := p("view")
	mountOverlay(t, view, "lowerdir="+lower2+":"+lower1)
	gotView := map[string]string{}
	for path, s := range snapshot(t, view) {
		gotView[path] = s.Type
	}
	wantView := map[string]string{
		"etc": "dir", "etc/os-release": "file", "etc/new.conf": "file",
		"opt": "dir", "opt/app": "dir", "opt/app/c": "file",
	}
	if diff := cmp.Diff(wantView, gotView); diff != "" {
		t.Errorf("merged view of the two layers (-want +got):\n%s", diff)
	}
}

func unpackTo(t *testing.T, b []byte, dir string) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := layerUnpack(b, dir); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	return dir
}
