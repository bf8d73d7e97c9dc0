package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/testenv"
)

func bigContent(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// sampleTree has one of everything Pack puts in a layer (device nodes,
// FIFOs and sockets it refuses: TestPackRefusesSpecials).
func sampleTree() []node {
	long := "opt/" + strings.Repeat("d", 90) + "/" + strings.Repeat("f", 120)
	return []node{
		{path: "bin", typ: tar.TypeDir, mode: 0o755},
		{path: "bin/su", typ: tar.TypeReg, mode: 0o4755, content: "#!/bin/sh\necho root\n"},
		{path: "bin/wall", typ: tar.TypeReg, mode: 0o2755, gid: 5, content: "wall"},
		{path: "bin/big", typ: tar.TypeReg, mode: 0o644, content: bigContent(3<<20 + 17)},
		{path: "bin/empty", typ: tar.TypeReg, mode: 0o600},
		{path: "dev", typ: tar.TypeDir, mode: 0o755},
		{path: "empty", typ: tar.TypeDir, mode: 0o711, mtime: 1600000000},
		{path: "etc", typ: tar.TypeDir, mode: 0o755, xattrs: map[string]string{"user.dir": "on a dir"}},
		{path: "etc/passwd-link", typ: tar.TypeSymlink, link: "/etc/passwd"},
		{path: "home", typ: tar.TypeDir, mode: 0o755},
		{path: "home/user", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		{path: "home/user/notes.txt", typ: tar.TypeReg, mode: 0o640, uid: 1000, gid: 1000, content: "hello\n",
			xattrs: map[string]string{"user.foo": "bar", "trusted.bin": "\x00\x01\xff"}},
		{path: "home/user/hard", typ: tar.TypeLink, link: "home/user/notes.txt"},
		{path: "home/user/link", typ: tar.TypeSymlink, uid: 1000, gid: 1000, link: "notes.txt"},
		{path: "a/b/c/d", typ: tar.TypeDir, mode: 0o755},
		{path: "a/b/c/d/deep.txt", typ: tar.TypeReg, mode: 0o444, content: "deep", mtime: 1234567890},
		{path: "opt/" + strings.Repeat("d", 90), typ: tar.TypeDir, mode: 0o755},
		{path: long, typ: tar.TypeReg, mode: 0o644, content: "long name"},
		{path: "tmp", typ: tar.TypeDir, mode: 0o1777},
		{path: "zz-link-to-bin", typ: tar.TypeLink, link: "bin/su"},
	}
}

func pack(t testing.TB, dir string, opts layer.PackOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := layer.Pack(context.Background(), dir, &buf, opts); err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return buf.Bytes()
}

func unpack(t testing.TB, b []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := layer.Unpack(context.Background(), bytes.NewReader(b), dir, layer.UnpackOptions{}); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	return dir
}

func TestRoundTrip(t *testing.T) {
	testenv.RequireRoot(t)
	for _, openat2 := range []bool{true, false} {
		t.Run(map[bool]string{true: "openat2", false: "walk"}[openat2], func(t *testing.T) {
			defer layer.SetOpenat2(openat2)()
			src := t.TempDir()
			makeTree(t, src, sampleTree(), false, time.Now())
			b := pack(t, src, layer.PackOptions{})
			if err := layer.Check(context.Background(), bytes.NewReader(b), nil, nil); err != nil {
				t.Fatalf("Check of Pack's own output: %v", err)
			}
			dst := unpack(t, b)
			want := snapshot(t, src)
			if diff := cmp.Diff(want, snapshot(t, dst)); diff != "" {
				t.Errorf("tree after Pack+Unpack (-want +got):\n%s", diff)
			}
			// Pack of the unpacked tree gives the same bytes.
			if again := pack(t, dst, layer.PackOptions{}); !bytes.Equal(again, b) {
				t.Errorf("Pack(Unpack(Pack(tree))) differs from Pack(tree)")
			}
		})
	}
}

func TestPackFormat(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	makeTree(t, src, sampleTree(), false, time.Now())
	tr := tar.NewReader(bytes.NewReader(pack(t, src, layer.PackOptions{})))
	var got []string
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		got = append(got, hdr.Name)
		if hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: uname/gname %q/%q, want none", hdr.Name, hdr.Uname, hdr.Gname)
		}
		if !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() || hdr.ModTime.Nanosecond() != 0 {
			t.Errorf("%s: atime %v ctime %v mtime %v, want whole-second mtime only", hdr.Name, hdr.AccessTime, hdr.ChangeTime, hdr.ModTime)
		}
		for k := range hdr.PAXRecords {
			if !strings.HasPrefix(k, "SCHILY.xattr.") && k != "path" {
				t.Errorf("%s: PAX record %q", hdr.Name, k)
			}
		}
	}
	long := "opt/" + strings.Repeat("d", 90)
	want := []string{
		"a/", "a/b/", "a/b/c/", "a/b/c/d/", "a/b/c/d/deep.txt",
		"bin/", "bin/big", "bin/empty", "bin/su", "bin/wall",
		"dev/",
		"empty/",
		"etc/", "etc/passwd-link",
		"home/", "home/user/", "home/user/hard", "home/user/link", "home/user/notes.txt",
		"opt/", long + "/", long + "/" + strings.Repeat("f", 120),
		"tmp/",
		"zz-link-to-bin",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entry order (-want +got):\n%s", diff)
	}
}

func TestPackExclude(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	makeTree(t, src, sampleTree(), false, time.Now())
	var seen []string
	b := pack(t, src, layer.PackOptions{Exclude: func(rel string) bool {
		seen = append(seen, rel)
		return rel == "home/user" || rel == "bin/big"
	}})
	for _, rel := range seen {
		if strings.HasPrefix(rel, "/") || strings.HasPrefix(rel, "./") || strings.HasPrefix(rel, "home/user/") {
			t.Errorf("Exclude called with %q", rel)
		}
	}
	for _, n := range names(readEntries(t, b)) {
		if strings.HasPrefix(n, "home/user") || n == "bin/big" {
			t.Errorf("excluded entry %q packed", n)
		}
	}
}

func TestPackDeterministic(t *testing.T) {
	testenv.RequireRoot(t)
	a, b := t.TempDir(), t.TempDir()
	makeTree(t, a, sampleTree(), false, time.Unix(1000, 0))
	time.Sleep(10 * time.Millisecond) // different ctimes
	makeTree(t, b, sampleTree(), true, time.Unix(2000000000, 5))
	sum := func(dir string) [32]byte { return sha256.Sum256(pack(t, dir, layer.PackOptions{})) }
	first := sum(a)
	for _, c := range []struct {
		name string
		dir  string
	}{
		{"same tree again", a},
		{"copy created in reverse order with other atimes and ctimes", b},
	} {
		if got := sum(c.dir); got != first {
			t.Errorf("%s: sha256 %x, want %x", c.name, got, first)
		}
	}
}

func TestWhiteouts(t *testing.T) {
	testenv.RequireRoot(t)
	upper := t.TempDir()
	makeTree(t, upper, []node{
		{path: "d", typ: tar.TypeDir, mode: 0o755},
		{path: "d/x", typ: tar.TypeChar}, // whiteout
		{path: "gone", typ: tar.TypeChar},
		{path: "kept.txt", typ: tar.TypeReg, mode: 0o644, content: "kept"},
		{path: "replaced", typ: tar.TypeDir, mode: 0o755, xattrs: map[string]string{"trusted.overlay.opaque": "y", "trusted.overlay.origin": "x", "user.keep": "1"}},
		{path: "replaced/new.txt", typ: tar.TypeReg, mode: 0o644, content: "new"},
		{path: "useropq", typ: tar.TypeDir, mode: 0o755, xattrs: map[string]string{"user.overlay.opaque": "y"}},
	}, false, time.Now())

	b := pack(t, upper, layer.PackOptions{})
	type ent struct {
		Name   string
		Type   byte
		Xattrs map[string]string
	}
	var got []ent
	for _, e := range readEntries(t, b) {
		got = append(got, ent{e.Name, e.Type, e.Xattrs})
	}
	want := []ent{
		{".wh.gone", tar.TypeReg, nil},
		{"d/", tar.TypeDir, nil},
		{"d/.wh.x", tar.TypeReg, nil},
		{"kept.txt", tar.TypeReg, nil},
		{"replaced/", tar.TypeDir, map[string]string{"user.keep": "1"}},
		{"replaced/.wh..wh..opq", tar.TypeReg, nil},
		{"replaced/new.txt", tar.TypeReg, nil},
		{"useropq/", tar.TypeDir, nil},
		{"useropq/.wh..wh..opq", tar.TypeReg, nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("packed entries (-want +got):\n%s", diff)
	}

	snap := snapshot(t, unpack(t, b))
	type st struct{ Type, Dev, Opaque string }
	gotSt := map[string]st{}
	for p, s := range snap {
		gotSt[p] = st{s.Type, s.Dev, s.Xattrs["trusted.overlay.opaque"]}
	}
	wantSt := map[string]st{
		"d":                {"dir", "", ""},
		"d/x":              {"char", "0:0", ""},
		"gone":             {"char", "0:0", ""},
		"kept.txt":         {"file", "", ""},
		"replaced":         {"dir", "", "y"},
		"replaced/new.txt": {"file", "", ""},
		"useropq":          {"dir", "", "y"},
	}
	if diff := cmp.Diff(wantSt, gotSt); diff != "" {
		t.Errorf("unpacked whiteouts (-want +got):\n%s", diff)
	}
	if fi, err := os.Lstat(filepath.Join(upper, "gone")); err != nil || !layer.IsWhiteout(fi) {
		t.Errorf("IsWhiteout(gone) = false (%v), want true", err)
	}
	if fi, err := os.Lstat(filepath.Join(upper, "kept.txt")); err != nil || layer.IsWhiteout(fi) {
		t.Errorf("IsWhiteout(kept.txt) = true (%v), want false", err)
	}
}

func TestPackRefuses(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []struct {
		name string
		tree []node
		want string
	}{
		{"reserved name", []node{{path: ".wh.x", typ: tar.TypeReg, mode: 0o644}}, "reserved for whiteouts"},
		{"overlay redirect", []node{{path: "d", typ: tar.TypeDir, mode: 0o755, xattrs: map[string]string{"trusted.overlay.redirect": "/x"}}}, "redirect_dir=off"},
		{"overlay metacopy", []node{{path: "f", typ: tar.TypeReg, mode: 0o644, xattrs: map[string]string{"trusted.overlay.metacopy": ""}}}, "metacopy=off"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			makeTree(t, dir, c.tree, false, time.Now())
			err := layer.Pack(context.Background(), dir, &bytes.Buffer{}, layer.PackOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Pack error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestPackClamp: with Clamp, two trees that differ only in times later
// than it (what a second run of the same installer changes) give the same
// bytes, and a time earlier than it is kept (an installer that sets its
// files' times, as dpkg and tar do, keeps them).
func TestPackClamp(t *testing.T) {
	testenv.RequireRoot(t)
	const clamp = 1800000000
	tree := func(shift int64) []node {
		// Every kind of entry Pack writes, with times after the clamp
		// that differ between the two trees by shift.
		return []node{
			{path: "opt", typ: tar.TypeDir, mode: 0o755, mtime: clamp + 10 + shift},
			{path: "opt/app", typ: tar.TypeDir, mode: 0o755, mtime: clamp + 20 + shift},
			{path: "opt/app/bin", typ: tar.TypeReg, mode: 0o755, content: "bin", mtime: clamp + 1 + shift},
			{path: "opt/app/bin2", typ: tar.TypeLink, link: "opt/app/bin"},
			{path: "opt/app/current", typ: tar.TypeSymlink, link: "bin", mtime: clamp + 3 + shift},
			{path: "opt/app/old", typ: tar.TypeReg, mode: 0o644, content: "from a package", mtime: 1600000000},
			{path: "opt/app/at-clamp", typ: tar.TypeReg, mode: 0o644, content: "exactly", mtime: clamp},
			{path: "etc", typ: tar.TypeDir, mode: 0o755, mtime: clamp + 5 + shift},
			{path: "etc/motd", typ: tar.TypeChar}, // whiteout
			{path: "var", typ: tar.TypeDir, mode: 0o755, mtime: clamp + shift,
				xattrs: map[string]string{"trusted.overlay.opaque": "y"}},
			{path: "var/new", typ: tar.TypeReg, mode: 0o600, content: "new", mtime: clamp + 1e6 + shift},
		}
	}
	a, b := t.TempDir(), t.TempDir()
	makeTree(t, a, tree(0), false, time.Unix(1000, 0))
	makeTree(t, b, tree(12345), true, time.Unix(2000000000, 7))
	opts := layer.PackOptions{Clamp: time.Unix(clamp, 999_999_999)} // used in whole seconds
	pa, pb := pack(t, a, opts), pack(t, b, opts)
	if !bytes.Equal(pa, pb) {
		t.Errorf("clamped layers of trees differing only in later times differ:\n%s", cmp.Diff(readEntries(t, pa), readEntries(t, pb)))
	}
	if bytes.Equal(pack(t, a, layer.PackOptions{}), pack(t, b, layer.PackOptions{})) {
		t.Fatal("unclamped layers of the two trees are equal: the test trees do not differ in their times")
	}

	got := map[string]int64{}
	tr := tar.NewReader(bytes.NewReader(pa))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		got[h.Name] = h.ModTime.Unix()
	}
	want := map[string]int64{
		"etc/": clamp, "etc/.wh.motd": 0,
		"opt/": clamp, "opt/app/": clamp, "opt/app/at-clamp": clamp, "opt/app/bin": clamp, "opt/app/bin2": clamp,
		"opt/app/current": clamp, "opt/app/old": 1600000000,
		"var/": clamp, "var/.wh..wh..opq": 0, "var/new": clamp,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mtimes in the clamped layer (-want +got):\n%s", diff)
	}
}
