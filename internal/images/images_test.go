package images_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/testenv"
)

// entry is one tar entry of a test archive.
type entry struct {
	name string
	typ  byte
	body string
	link string
	mode int64
}

// elfHeader is the start of an x86-64 ELF executable: enough for the
// architecture probe.
var elfHeader = string([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x3e, 0, 1, 0, 0, 0})

// smallRootfs is a tiny Linux root file system: enough to be described.
var smallRootfs = []entry{
	{name: "etc/", typ: tar.TypeDir},
	{name: "etc/os-release", typ: tar.TypeSymlink, link: "../usr/lib/os-release"},
	{name: "usr/", typ: tar.TypeDir},
	{name: "usr/lib/", typ: tar.TypeDir},
	{name: "usr/lib/os-release", body: "PRETTY_NAME=\"Test Linux 7\"\nID=testlinux\nVERSION_ID=\"7.1\"\n"},
	{name: "usr/bin/", typ: tar.TypeDir},
	{name: "usr/bin/env", body: elfHeader, mode: 0o755},
	{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
	{name: "srv/", typ: tar.TypeDir},
	{name: "srv/data.txt", body: "hello\n"},
}

func tarBytes(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: mode, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t testing.TB, data []byte, how string) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch how {
	case "gzip":
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
	case "zstd":
		zw, _ := zstd.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
	default:
		return data
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// openStore is a fresh store in a temporary data directory.
func openStore(t testing.TB) (*images.Store, string) {
	t.Helper()
	data := t.TempDir()
	s, closeFn, err := testenv.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeFn)
	return s, data
}

// ggcrImage builds a two-layer image with go-containerregistry, as other
// tools would produce one: smallRootfs, then a layer deleting srv/data.txt.
func ggcrImage(t testing.TB) v1.Image {
	t.Helper()
	base := tarBytes(t, smallRootfs)
	upper := tarBytes(t, []entry{{name: "srv/", typ: tar.TypeDir}, {name: "srv/.wh.data.txt"}, {name: "srv/new.txt", body: "new\n"}})
	img := empty.Image
	for _, b := range [][]byte{base, upper} {
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	img, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestImportFormats(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	rootfs := tarBytes(t, smallRootfs)
	img := ggcrImage(t)

	dockerPath := filepath.Join(dir, "docker.tar")
	if err := tarball.WriteToFile(dockerPath, name.MustParseReference("test/img:1"), img); err != nil {
		t.Fatal(err)
	}
	layoutDir := filepath.Join(dir, "layout")
	lp, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	ociArchive := filepath.Join(dir, "oci.tar")
	if out, err := exec.Command("tar", "-C", layoutDir, "-cf", ociArchive, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	dockerGz := writeFile(t, filepath.Join(dir, "docker.tar.gz"), compress(t, must(os.ReadFile(dockerPath)), "gzip"))

	for _, tc := range []struct {
		name   string
		path   string
		layers int
	}{
		{"rootfs tar", writeFile(t, filepath.Join(dir, "rootfs.tar"), rootfs), 1},
		{"rootfs tar.gz", writeFile(t, filepath.Join(dir, "rootfs.tar.gz"), compress(t, rootfs, "gzip")), 1},
		{"rootfs tar.zst", writeFile(t, filepath.Join(dir, "rootfs.tar.zst"), compress(t, rootfs, "zstd")), 1},
		{"rootfs without extension", writeFile(t, filepath.Join(dir, "rootfs"), compress(t, rootfs, "zstd")), 1},
		{"docker save archive", dockerPath, 2},
		{"gzipped docker archive", dockerGz, 2},
		{"OCI layout directory", layoutDir, 2},
		{"oci-archive", ociArchive, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openStore(t)
			ctx := context.Background()
			im, err := s.Import(ctx, tc.path, images.ImportOptions{Alias: "test"})
			if err != nil {
				t.Fatal(err)
			}
			got := []string{im.OS, im.DistroID, im.DistroVersion, im.Architecture, im.Owner, im.Alias}
			want := []string{"linux", "testlinux", "7.1", "amd64", "operator", "test"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(im.ID, "img-") || len(im.ID) != 21 {
				t.Errorf("ID %q: want img- and 17 hex digits", im.ID)
			}
			stored, err := s.Image(im)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(stored); err != nil {
				t.Fatalf("stored image is not a valid OCI image: %v", err)
			}
			ls, _ := stored.Layers()
			if len(ls) != tc.layers {
				t.Fatalf("%d layers, want %d", len(ls), tc.layers)
			}
			// The merged root file system honours the whiteout of the
			// second layer.
			root, release, err := s.Rootfs(ctx, im)
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			if _, err := os.Stat(filepath.Join(root, "usr/lib/os-release")); err != nil {
				t.Error(err)
			}
			_, err = os.Stat(filepath.Join(root, "srv/data.txt"))
			if tc.layers == 2 && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("srv/data.txt: whited out in layer 2, got err %v", err)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// assertNothingLeft checks that a failed operation left no image, blob,
// cached layer or temporary file.
func assertNothingLeft(t *testing.T, s *images.Store, data string) {
	t.Helper()
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("%d images stored, want 0", len(list))
	}
	for _, d := range []string{"blobs/sha256", "blobs/tmp", "cache/layers/sha256", "cache/tmp"} {
		ents, _ := os.ReadDir(filepath.Join(data, d))
		for _, e := range ents {
			t.Errorf("left behind: %s/%s", d, e.Name())
		}
	}
}

func TestImportRejectsBadInput(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	truncated := tarBytes(t, append(smallRootfs, entry{name: "big", body: strings.Repeat("x", 10000)}))
	for _, tc := range []struct {
		name    string
		path    string
		wantErr []string // all must appear in the error
	}{
		{"missing file", filepath.Join(dir, "nope.tar"), []string{"nope.tar", "no such file"}},
		{"dot-dot escape", writeFile(t, filepath.Join(dir, "dotdot.tar"), tarBytes(t, append(smallRootfs, entry{name: "../x", body: "evil"}))), []string{"dotdot.tar", `"../x"`}},
		{"nested dot-dot escape", writeFile(t, filepath.Join(dir, "dotdot2.tar"), tarBytes(t, append(smallRootfs, entry{name: "srv/../../x", body: "evil"}))), []string{"dotdot2.tar", "srv/../../x"}},
		{"absolute path", writeFile(t, filepath.Join(dir, "abs.tar"), tarBytes(t, append(smallRootfs, entry{name: "/etc/passwd", body: "evil"}))), []string{"abs.tar", "/etc/passwd"}},
		{"symlink then write", writeFile(t, filepath.Join(dir, "symlink.tar"), tarBytes(t, append(smallRootfs, entry{name: "evil", typ: tar.TypeSymlink, link: "/etc"}, entry{name: "evil/passwd", body: "x"}))), []string{"symlink.tar", "evil/passwd"}},
		{"hard link outside", writeFile(t, filepath.Join(dir, "hardlink.tar"), tarBytes(t, append(smallRootfs, entry{name: "pw", typ: tar.TypeLink, link: "../../etc/passwd"}))), []string{"hardlink.tar", "pw"}},
		{"truncated archive", writeFile(t, filepath.Join(dir, "truncated.tar"), truncated[:len(truncated)-6000]), []string{"truncated.tar"}},
		{"truncated gzip", writeFile(t, filepath.Join(dir, "truncated.tar.gz"), func() []byte { b := compress(t, truncated, "gzip"); return b[:len(b)/2] }()), []string{"truncated.tar.gz"}},
		{"not an archive", writeFile(t, filepath.Join(dir, "notes.txt"), []byte(strings.Repeat("just some text\n", 100))), []string{"notes.txt", "not a tar archive"}},
		{"empty file", writeFile(t, filepath.Join(dir, "empty.tar"), nil), []string{"empty.tar"}},
		{"directory without oci-layout", dir, []string{dir, "oci-layout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, data := openStore(t)
			_, err := s.Import(context.Background(), tc.path, images.ImportOptions{})
			if err == nil {
				t.Fatal("import succeeded, want an error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			assertNothingLeft(t, s, data)
			if _, err := os.Stat("/x"); err == nil {
				t.Fatal("/x exists: an entry escaped")
			}
		})
	}
}

// TestImportFullDisk imports onto a data directory on a 1 MiB tmpfs.
func TestImportFullDisk(t *testing.T) {
	testenv.RequireRoot(t)
	data := t.TempDir()
	if err := unix.Mount("tmpfs", data, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(data, unix.MNT_DETACH) })
	s, closeFn, err := testenv.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	// 4 MiB of incompressible content.
	noise := make([]byte, 4<<20)
	for i := range noise {
		noise[i] = byte((i*7919 + i>>3*31337) ^ (i >> 11))
	}
	big := filepath.Join(t.TempDir(), "big.tar")
	writeFile(t, big, tarBytes(t, append(smallRootfs, entry{name: "srv/noise", body: string(compress(t, noise, "zstd")) + string(noise)})))
	_, err = s.Import(context.Background(), big, images.ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), "big.tar") {
		t.Fatalf("got %v, want a no-space error naming big.tar", err)
	}
	assertNothingLeft(t, s, data)
}

func TestAliasIsUnique(t *testing.T) {
	testenv.RequireRoot(t)
	s, _ := openStore(t)
	ctx := context.Background()
	file := writeFile(t, filepath.Join(t.TempDir(), "r.tar"), tarBytes(t, smallRootfs))
	if _, err := s.Import(ctx, file, images.ImportOptions{Alias: "base"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Import(ctx, file, images.ImportOptions{Alias: "base"})
	if err == nil || !errors.Is(err, images.ErrAliasTaken) || !strings.Contains(err.Error(), `"base"`) {
		t.Fatalf("got %v, want alias conflict", err)
	}
	for _, bad := range []string{"Upper", "img-0123456789abcdef0", "-x", "a/b", ""} {
		if images.ValidAlias(bad) == nil {
			t.Errorf("alias %q accepted", bad)
		}
	}
}

// TestDistros: each distribution of the stored images once, sorted.
func TestDistros(t *testing.T) {
	testenv.RequireRoot(t)
	s, _ := openStore(t)
	ctx := context.Background()
	if got, err := s.Distros(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %v %v", got, err)
	}
	alpine := append([]entry{}, smallRootfs...)
	alpine[4] = entry{name: "usr/lib/os-release", body: "ID=alpine\nVERSION_ID=3.19.1\n"}
	for i, rootfs := range [][]entry{smallRootfs, alpine, smallRootfs} {
		file := writeFile(t, filepath.Join(t.TempDir(), "r.tar"), tarBytes(t, rootfs))
		if _, err := s.Import(ctx, file, images.ImportOptions{Alias: fmt.Sprintf("image%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Distros(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []images.Distro{{ID: "alpine", Version: "3.19.1"}, {ID: "testlinux", Version: "7.1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Distros (-want +got):\n%s", diff)
	}
}

func TestRemoveCollectsGarbage(t *testing.T) {
	testenv.RequireRoot(t)
	s, data := openStore(t)
	ctx := context.Background()
	file := writeFile(t, filepath.Join(t.TempDir(), "r.tar"), tarBytes(t, smallRootfs))
	a, err := s.Import(ctx, file, images.ImportOptions{Alias: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Import(ctx, file, images.ImportOptions{Alias: "b"})
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LayerDirs(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	// b shares a's layer: it and its cache entry must survive.
	if _, err := os.Stat(dirs[0]); err != nil {
		t.Fatalf("shared layer cache removed: %v", err)
	}
	if _, err := s.LayerDirs(ctx, b); err != nil {
		t.Fatalf("b lost a layer: %v", err)
	}
	if _, err := s.Remove(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, s, data)
	if _, err := s.Get(ctx, "a"); !errors.Is(err, images.ErrNotFound) {
		t.Fatalf("get removed image: %v, want ErrNotFound", err)
	}
}

// TestExportReadableBySkopeo exports each format and has Debian's skopeo
// read the archives; each export imports back with the same layers.
func TestExportReadableBySkopeo(t *testing.T) {
	testenv.RequireRoot(t)
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Fatal("skopeo is not installed (make test installs it): ", err)
	}
	s, _ := openStore(t)
	ctx := context.Background()
	dir := t.TempDir()
	lp, _ := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	lp.AppendImage(ggcrImage(t))
	src, err := s.Import(ctx, filepath.Join(dir, "layout"), images.ImportOptions{Alias: "src"})
	if err != nil {
		t.Fatal(err)
	}
	srcCfg := configOf(t, s, src)
	for _, f := range images.ExportFormats {
		t.Run(string(f), func(t *testing.T) {
			out := filepath.Join(dir, string(f)+".tar")
			if err := s.Export(ctx, "src", f, out); err != nil {
				t.Fatal(err)
			}
			if f != images.RootfsTar {
				cmd := exec.Command(skopeo, "inspect", string(f)+":"+out)
				outb, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("skopeo inspect %s:%s: %v\n%s", f, out, err, outb)
				}
				if !strings.Contains(string(outb), `"Architecture": "amd64"`) {
					t.Errorf("skopeo output lacks the architecture:\n%s", outb)
				}
			}
			back, err := s.Import(ctx, out, images.ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if f == images.RootfsTar {
				if back.DistroID != "testlinux" {
					t.Errorf("flattened export lost os-release: %+v", back)
				}
				return
			}
			if diff := cmp.Diff(srcCfg.RootFS.DiffIDs, configOf(t, s, back).RootFS.DiffIDs); diff != "" {
				t.Errorf("layers changed in the round trip (-want +got):\n%s", diff)
			}
		})
	}
	if err := s.Export(ctx, "src", "zip", filepath.Join(dir, "x.zip")); err == nil {
		t.Error("unknown export format accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "x.zip")); err == nil {
		t.Error("failed export left a file")
	}
}

func configOf(t *testing.T, s *images.Store, im *images.Image) *v1.ConfigFile {
	t.Helper()
	img, err := s.Image(im)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestAddLayer stores an overlay upper directory as a new image on a base.
func TestAddLayer(t *testing.T) {
	testenv.RequireRoot(t)
	s, _ := openStore(t)
	ctx := context.Background()
	base, err := s.Import(ctx, writeFile(t, filepath.Join(t.TempDir(), "r.tar"), tarBytes(t, smallRootfs)), images.ImportOptions{Alias: "base"})
	if err != nil {
		t.Fatal(err)
	}
	lower, err := s.LayerDirs(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	upper, wd, merged := filepath.Join(work, "upper"), filepath.Join(work, "work"), filepath.Join(work, "merged")
	for _, d := range []string{upper, wd, merged} {
		os.Mkdir(d, 0o755)
	}
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower[0]+",upperdir="+upper+",workdir="+wd); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(merged, "srv/data.txt"))
	os.MkdirAll(filepath.Join(merged, "opt/app"), 0o755)
	os.WriteFile(filepath.Join(merged, "opt/app/run"), []byte("#!/bin/sh\n"), 0o755)
	os.MkdirAll(filepath.Join(merged, "var/tmp/pib"), 0o755)
	os.WriteFile(filepath.Join(merged, "var/tmp/pib/setup.sh"), []byte("transient"), 0o644)
	unix.Unmount(merged, 0)

	tags := map[string]string{"pib:fulfillment": "opt-1", "team": "red"}
	im, err := s.AddLayer(ctx, base, upper, images.AddLayerOptions{
		CreatedBy: "test install",
		Exclude:   func(rel string) bool { return rel == "var/tmp/pib" },
		Tags:      tags,
	})
	if err != nil {
		t.Fatal(err)
	}
	// C5: the tags are stored with the image, and what an image carries is
	// checkable on it and on every image built on it.
	if got, err := s.Get(ctx, im.ID); err != nil || !maps.Equal(got.Tags, tags) {
		t.Errorf("tags of the new image: %v %v, want %v", got.Tags, err, tags)
	}
	for _, c := range []struct {
		id, value string
		want      bool
	}{{im.ID, "opt-1", true}, {im.ID, "opt-2", false}, {base.ID, "opt-1", false}} {
		if got, err := s.Carries(ctx, c.id, "pib:fulfillment", c.value); err != nil || got != c.want {
			t.Errorf("Carries(%s, %s) = %v, %v; want %v", c.id, c.value, got, err, c.want)
		}
	}
	// Only the new layer is new: the base's layers are the same blobs,
	// unpacked once.
	dirs, err := s.LayerDirs(ctx, im)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != len(lower)+1 || !slices.Equal(dirs[:len(lower)], lower) {
		t.Errorf("layers of the new image %v, want the base's %v and one more", dirs, lower)
	}
	if im.ParentID != base.ID || im.DistroID != "testlinux" || im.Architecture != "amd64" {
		t.Errorf("new image %+v: want parent %s and the base's distro", im, base.ID)
	}
	root, release, err := s.Rootfs(ctx, im)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := os.Stat(filepath.Join(root, "opt/app/run")); err != nil {
		t.Error("installed file missing:", err)
	}
	if _, err := os.Stat(filepath.Join(root, "srv/data.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Error("deleted file is back:", err)
	}
	if _, err := os.Stat(filepath.Join(root, "var/tmp/pib")); !errors.Is(err, os.ErrNotExist) {
		t.Error("excluded transient files were packed:", err)
	}
	if h := configOf(t, s, im).History; len(h) != 2 || h[1].CreatedBy != "test install" {
		t.Errorf("history %+v", h)
	}
}

func TestDefaultMirrorParsesAptSources(t *testing.T) {
	for dir, want := range map[string]string{
		"testdata/apt-deb822":  "http://mirror.example.net/debian",
		"testdata/apt-oneline": "http://mirror.example.org/debian",
	} {
		got, err := images.MirrorFrom(dir)
		if err != nil || got != want {
			t.Errorf("%s: got %q, %v; want %q", dir, got, err, want)
		}
	}
	if _, err := images.MirrorFrom(t.TempDir()); err == nil || !strings.Contains(err.Error(), "--mirror") {
		t.Errorf("no sources: got %v, want advice to pass --mirror", err)
	}
}
