package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/testenv"
)

func TestUnpackHostile(t *testing.T) {
	testenv.RequireRoot(t)
	truncated := func(outside string) []byte {
		b := buildTar(t, []entry{{Name: "ok", Type: tar.TypeReg, Body: "fine"}, {Name: "big", Type: tar.TypeReg, Body: strings.Repeat("x", 4096)}}, true)
		return b[:512*3+512+2000] // ok's header+block, big's header, 2000 bytes of big
	}
	cases := []struct {
		name   string
		tar    func(outside string) []byte
		entry  string // EntryError.Entry
		reason string // substring of EntryError.Reason
	}{
		{"dotdot", func(string) []byte {
			return buildTar(t, []entry{{Name: "../x", Type: tar.TypeReg, Body: "evil"}}, true)
		}, "../x", "escapes"},
		{"dotdot after clean", func(string) []byte {
			return buildTar(t, []entry{{Name: "a/../../x", Type: tar.TypeReg, Body: "evil"}}, true)
		}, "a/../../x", "escapes"},
		{"absolute", func(string) []byte {
			return buildTar(t, []entry{{Name: "/etc/pib-layer-test", Type: tar.TypeReg, Body: "evil"}}, true)
		}, "/etc/pib-layer-test", "absolute path"},
		{"symlink then write", func(outside string) []byte {
			return buildTar(t, []entry{{Name: "a", Type: tar.TypeSymlink, Linkname: outside}, {Name: "a/f", Type: tar.TypeReg, Body: "evil"}}, true)
		}, "a/f", "traverses a symlink"},
		{"symlink to parent then write", func(string) []byte {
			return buildTar(t, []entry{{Name: "a", Type: tar.TypeSymlink, Linkname: ".."}, {Name: "a/x", Type: tar.TypeReg, Body: "evil"}}, true)
		}, "a/x", "traverses a symlink"},
		{"symlink then mkdir", func(outside string) []byte {
			return buildTar(t, []entry{{Name: "a", Type: tar.TypeSymlink, Linkname: outside}, {Name: "a/sub/", Type: tar.TypeDir, Mode: 0o755}}, true)
		}, "a/sub/", "traverses a symlink"},
		{"symlink then whiteout", func(outside string) []byte {
			return buildTar(t, []entry{{Name: "a", Type: tar.TypeSymlink, Linkname: outside}, {Name: "a/.wh.secret", Type: tar.TypeReg}}, true)
		}, "a/.wh.secret", "traverses a symlink"},
		{"symlink then opaque", func(outside string) []byte {
			return buildTar(t, []entry{{Name: "a", Type: tar.TypeSymlink, Linkname: outside}, {Name: "a/.wh..wh..opq", Type: tar.TypeReg}}, true)
		}, "a/.wh..wh..opq", "traverses a symlink"},
		{"hard link escaping", func(string) []byte {
			return buildTar(t, []entry{{Name: "x", Type: tar.TypeLink, Linkname: "../../etc/passwd"}}, true)
		}, "x", "escapes"},
		{"hard link absolute", func(string) []byte {
			return buildTar(t, []entry{{Name: "x", Type: tar.TypeLink, Linkname: "/etc/passwd"}}, true)
		}, "x", "absolute path"},
		{"hard link through symlink", func(outside string) []byte {
			return buildTar(t, []entry{{Name: "l", Type: tar.TypeSymlink, Linkname: outside}, {Name: "x", Type: tar.TypeLink, Linkname: "l/secret"}}, true)
		}, "x", "traverses a symlink"},
		{"hard link to a later entry", func(string) []byte {
			return buildTar(t, []entry{{Name: "x", Type: tar.TypeLink, Linkname: "y"}, {Name: "y", Type: tar.TypeReg}}, true)
		}, "x", "not an earlier entry"},
		{"hard link to a directory", func(string) []byte {
			return buildTar(t, []entry{{Name: "d/", Type: tar.TypeDir}, {Name: "x", Type: tar.TypeLink, Linkname: "d"}}, true)
		}, "x", "is a directory"},
		{"write below a file", func(string) []byte {
			return buildTar(t, []entry{{Name: "f", Type: tar.TypeReg}, {Name: "f/x", Type: tar.TypeReg}}, true)
		}, "f/x", "not a directory"},
		{"directory replaced by a file", func(string) []byte {
			return buildTar(t, []entry{{Name: "d/", Type: tar.TypeDir}, {Name: "d/x", Type: tar.TypeReg}, {Name: "d", Type: tar.TypeReg}}, true)
		}, "d", "replace a directory"},
		{"whiteout of dotdot", func(string) []byte {
			return buildTar(t, []entry{{Name: "d/.wh...", Type: tar.TypeReg}}, true)
		}, "d/.wh...", "invalid whiteout"},
		{"empty symlink", func(string) []byte {
			return buildTar(t, []entry{{Name: "s", Type: tar.TypeSymlink}}, true)
		}, "s", "empty symlink"},
		{"unsupported type", func(string) []byte {
			return buildTar(t, []entry{{Name: "c", Type: tar.TypeCont}}, true)
		}, "c", "unsupported entry type"},
		{"user xattr on symlink", func(string) []byte {
			return buildTar(t, []entry{{Name: "s", Type: tar.TypeSymlink, Linkname: "x", Xattrs: map[string]string{"user.a": "b"}}}, true)
		}, "s", "user.* xattrs"},
		{"truncated inside an entry", truncated, "big", "truncated"},
		{"truncated between entries", func(string) []byte {
			return buildTar(t, []entry{{Name: "ok", Type: tar.TypeReg, Body: "fine"}}, false)
		}, "", "truncated"},
		{"garbage", func(string) []byte {
			r := rand.New(rand.NewPCG(3, 4))
			b := make([]byte, 4096)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			return b
		}, "", "corrupt tar header"},
		{"empty stream", func(string) []byte { return nil }, "", "truncated"},
	}
	for _, openat2 := range []bool{true, false} {
		for _, c := range cases {
			t.Run(map[bool]string{true: "openat2/", false: "walk/"}[openat2]+c.name, func(t *testing.T) {
				defer layer.SetOpenat2(openat2)()
				base := t.TempDir()
				dir, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
				for _, d := range []string{dir, outside} {
					if err := os.Mkdir(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("sentinel"), 0o600); err != nil {
					t.Fatal(err)
				}
				b := c.tar(outside)
				before := snapshot(t, base)
				delete(before, "root")

				err := layer.Unpack(context.Background(), bytes.NewReader(b), dir, layer.UnpackOptions{})
				checkEntryError(t, "Unpack", err, c.entry, c.reason)
				err = layer.Check(context.Background(), bytes.NewReader(b), nil, nil)
				checkEntryError(t, "Check", err, c.entry, c.reason)

				after := snapshot(t, base)
				for p := range after {
					if p == "root" || strings.HasPrefix(p, "root/") {
						delete(after, p)
					}
				}
				if diff := cmp.Diff(before, after); diff != "" {
					t.Errorf("files outside the unpack directory changed (-before +after):\n%s", diff)
				}
				if _, err := os.Lstat("/etc/pib-layer-test"); err == nil {
					t.Errorf("/etc/pib-layer-test was created")
				}
			})
		}
	}
}

func checkEntryError(t *testing.T, fn string, err error, entry, reason string) {
	t.Helper()
	var ee *layer.EntryError
	if !errors.As(err, &ee) {
		t.Errorf("%s error = %v, want an *EntryError", fn, err)
		return
	}
	if ee.Entry != entry || !strings.Contains(ee.Reason, reason) {
		t.Errorf("%s error = %v (entry %q, reason %q), want entry %q, reason containing %q", fn, err, ee.Entry, ee.Reason, entry, reason)
	}
	if ee.Entry == "" && ee.Index == 0 {
		t.Errorf("%s error = %v names neither an entry nor an index", fn, err)
	}
}

func TestEntryErrorMessage(t *testing.T) {
	for _, c := range []struct {
		err  *layer.EntryError
		want string
	}{
		{&layer.EntryError{Entry: "../x", Reason: "path escapes the layer root", Index: 1}, `tar entry "../x": path escapes the layer root`},
		{&layer.EntryError{Index: 3, Reason: "corrupt tar header", Err: tar.ErrHeader}, `tar entry #3: corrupt tar header: archive/tar: invalid tar header`},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
}

// TestUnpackNormalisation covers inputs that are odd but accepted.
func TestUnpackNormalisation(t *testing.T) {
	testenv.RequireRoot(t)
	type st struct {
		Type, Content, Link, Opaque string
		Mode                        uint32
	}
	cases := []struct {
		name    string
		entries []entry
		want    map[string]st
	}{
		{"dot slash and root entries", []entry{
			{Name: "./", Type: tar.TypeDir, Mode: 0o700},
			{Name: ".", Type: tar.TypeDir},
			{Name: "./a", Type: tar.TypeReg, Body: "a"},
			{Name: "./d/", Type: tar.TypeDir, Mode: 0o750},
		}, map[string]st{"a": {"file", "a", "", "", 0o644}, "d": {"dir", "", "", "", 0o750}}},
		{"missing parents", []entry{
			{Name: "x/y/z.txt", Type: tar.TypeReg, Body: "z"},
		}, map[string]st{"x": {"dir", "", "", "", 0o755}, "x/y": {"dir", "", "", "", 0o755}, "x/y/z.txt": {"file", "z", "", "", 0o644}}},
		{"later file replaces earlier", []entry{
			{Name: "f", Type: tar.TypeReg, Body: "old"},
			{Name: "f", Type: tar.TypeReg, Body: "new", Mode: 0o600},
			{Name: "s", Type: tar.TypeSymlink, Linkname: "/etc"},
			{Name: "s", Type: tar.TypeReg, Body: "file now"},
		}, map[string]st{"f": {"file", "new", "", "", 0o600}, "s": {"file", "file now", "", "", 0o644}}},
		{"directory merged", []entry{
			{Name: "d/", Type: tar.TypeDir, Mode: 0o700},
			{Name: "d/f", Type: tar.TypeReg, Body: "f"},
			{Name: "d/", Type: tar.TypeDir, Mode: 0o755},
		}, map[string]st{"d": {"dir", "", "", "", 0o755}, "d/f": {"file", "f", "", "", 0o644}}},
		{"symlink replaced by directory", []entry{
			{Name: "a", Type: tar.TypeSymlink, Linkname: "/tmp"},
			{Name: "a/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "a/f", Type: tar.TypeReg, Body: "inside"},
		}, map[string]st{"a": {"dir", "", "", "", 0o755}, "a/f": {"file", "inside", "", "", 0o644}}},
		{"whiteout then directory", []entry{
			{Name: ".wh.w", Type: tar.TypeReg},
			{Name: "w/", Type: tar.TypeDir, Mode: 0o755},
		}, map[string]st{"w": {"dir", "", "", "y", 0o755}}},
		{"directory then whiteout", []entry{
			{Name: "k/", Type: tar.TypeDir, Mode: 0o755},
			{Name: ".wh.k", Type: tar.TypeReg},
			{Name: ".wh..wh.plnk", Type: tar.TypeDir},
		}, map[string]st{"k": {"dir", "", "", "", 0o755}}},
		{"whiteout and opaque with missing parents", []entry{
			{Name: "p/q/.wh.gone", Type: tar.TypeReg},
			{Name: "o/.wh..wh..opq", Type: tar.TypeReg},
		}, map[string]st{"p": {"dir", "", "", "", 0o755}, "p/q": {"dir", "", "", "", 0o755}, "p/q/gone": {"char", "", "", "", 0}, "o": {"dir", "", "", "y", 0o755}}},
		{"hard link to symlink and chained", []entry{
			{Name: "s", Type: tar.TypeSymlink, Linkname: "target"},
			{Name: "h", Type: tar.TypeLink, Linkname: "./s"},
			{Name: "f", Type: tar.TypeReg, Body: "f"},
			{Name: "g", Type: tar.TypeLink, Linkname: "f"},
			{Name: "h2", Type: tar.TypeLink, Linkname: "g"},
		}, map[string]st{"s": {"symlink", "", "target", "", 0o777}, "h": {"symlink", "", "target", "", 0o777}, "f": {"file", "f", "", "", 0o644}, "g": {"file", "f", "", "", 0o644}, "h2": {"file", "f", "", "", 0o644}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := buildTar(t, c.entries, true)
			if err := layer.Check(context.Background(), bytes.NewReader(b), nil, nil); err != nil {
				t.Fatalf("Check: %v", err)
			}
			dir := unpack(t, b)
			got := map[string]st{}
			for p, s := range snapshot(t, dir) {
				content := ""
				if s.Type == "file" {
					raw, _ := os.ReadFile(filepath.Join(dir, p))
					content = string(raw)
				}
				got[p] = st{s.Type, content, s.Link, s.Xattrs["trusted.overlay.opaque"], s.Mode}
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("unpacked tree (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnpackNeedsEmptyDir(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b := buildTar(t, []entry{{Name: "a", Type: tar.TypeReg}}, true)
	if err := layer.Unpack(context.Background(), bytes.NewReader(b), dir, layer.UnpackOptions{}); err == nil {
		t.Errorf("Unpack into a non-empty directory succeeded")
	}
}

func TestCheckFound(t *testing.T) {
	big := strings.Repeat("b", 2<<20)
	b := buildTar(t, []entry{
		{Name: "./etc/", Type: tar.TypeDir},
		{Name: "./etc/os-release", Type: tar.TypeSymlink, Linkname: "../usr/lib/os-release"},
		{Name: "usr/lib/os-release", Type: tar.TypeReg, Body: "ID=debian\n"},
		{Name: "big", Type: tar.TypeReg, Body: big},
		{Name: "other", Type: tar.TypeReg, Body: "x"},
	}, true)
	type hit struct {
		Path, Name, Linkname string
		Content              int
		Start                string
	}
	var got []hit
	err := layer.Check(context.Background(), bytes.NewReader(b),
		map[string]bool{"etc/os-release": true, "usr/lib/os-release": true, "big": true, "missing": true},
		func(path string, hdr *tar.Header, content []byte) {
			got = append(got, hit{path, hdr.Name, hdr.Linkname, len(content), string(content[:min(len(content), 3)])})
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []hit{
		{"etc/os-release", "./etc/os-release", "../usr/lib/os-release", 0, ""},
		{"usr/lib/os-release", "usr/lib/os-release", "", 10, "ID="},
		{"big", "big", "", 1 << 20, "bbb"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("found calls (-want +got):\n%s", diff)
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := buildTar(t, []entry{{Name: "a", Type: tar.TypeReg}}, true)
	if err := layer.Check(ctx, bytes.NewReader(b), nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Check with a canceled context = %v, want context.Canceled", err)
	}
}

func layerUnpack(b []byte, dir string) error {
	return layer.Unpack(context.Background(), bytes.NewReader(b), dir, layer.UnpackOptions{})
}
