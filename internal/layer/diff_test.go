package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/layer"
)

// hdr is one entry of a test layer; a zero field takes a default.
type hdr struct {
	name, body, link string
	typ              byte
	mode             int64
	uid              int
	mtime            int64
	xattrs           map[string]string
	major            int64
}

func tarOf(t testing.TB, hs ...hdr) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		th := &tar.Header{Name: h.name, Typeflag: h.typ, Linkname: h.link, Mode: h.mode, Uid: h.uid,
			ModTime: time.Unix(h.mtime, 0), Devmajor: h.major, Format: tar.FormatPAX}
		if th.Typeflag == 0 {
			th.Typeflag = tar.TypeReg
		}
		if th.Mode == 0 {
			th.Mode = 0o644
		}
		if th.ModTime.Unix() == 0 {
			th.ModTime = time.Unix(defaultMtime, 0)
		}
		if th.Typeflag == tar.TypeReg {
			th.Size = int64(len(h.body))
		}
		for k, v := range h.xattrs {
			if th.PAXRecords == nil {
				th.PAXRecords = map[string]string{}
			}
			th.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(th); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, h.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// baseLayer is the "previous build" each case of TestDiff changes.
func baseLayer() []hdr {
	return []hdr{
		{name: "opt/", typ: tar.TypeDir, mode: 0o755},
		{name: "opt/app/", typ: tar.TypeDir, mode: 0o755},
		{name: "opt/app/bin", body: "binary", mode: 0o755},
		{name: "opt/app/bin2", typ: tar.TypeLink, link: "opt/app/bin"},
		{name: "opt/app/current", typ: tar.TypeSymlink, link: "bin"},
		{name: "opt/app/stamp", body: "1700000000"},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/.wh.motd"},
		{name: "var/lib/app/", typ: tar.TypeDir, mode: 0o755},
		{name: "var/lib/app/.wh..wh..opq"},
	}
}

func TestDiff(t *testing.T) {
	edit := func(f func(hs []hdr) []hdr) []hdr { return f(baseLayer()) }
	set := func(name string, f func(h *hdr)) []hdr {
		return edit(func(hs []hdr) []hdr {
			for i := range hs {
				if hs[i].name == name {
					f(&hs[i])
				}
			}
			return hs
		})
	}
	for _, c := range []struct {
		name string
		new  []hdr
		want []layer.Difference
	}{
		{"same entries", baseLayer(), nil},
		{"same entries in another order", edit(func(hs []hdr) []hdr {
			// Every entry still after its parent and its hard link target.
			return append(hs[6:], hs[:6]...)
		}), nil},
		{"content of the same size", set("opt/app/stamp", func(h *hdr) { h.body = "1700000099" }),
			[]layer.Difference{{Path: "/opt/app/stamp", What: []string{layer.ChangeContent}}}},
		{"content and size", set("opt/app/stamp", func(h *hdr) { h.body = "17000000000" }),
			[]layer.Difference{{Path: "/opt/app/stamp", What: []string{layer.ChangeSize, layer.ChangeContent}}}},
		{"mode", set("opt/app/bin", func(h *hdr) { h.mode = 0o4755 }),
			[]layer.Difference{{Path: "/opt/app/bin", What: []string{layer.ChangeMode}}}},
		{"owner", set("opt/app/", func(h *hdr) { h.uid = 1000 }),
			[]layer.Difference{{Path: "/opt/app", What: []string{layer.ChangeOwner}}}},
		{"mtime", set("opt/app/stamp", func(h *hdr) { h.mtime = 1600000000 }),
			[]layer.Difference{{Path: "/opt/app/stamp", What: []string{layer.ChangeMtime}}}},
		{"xattrs", set("opt/app/bin", func(h *hdr) { h.xattrs = map[string]string{"security.capability": "x"} }),
			[]layer.Difference{{Path: "/opt/app/bin", What: []string{layer.ChangeXattrs}}}},
		{"overlay xattrs are not the layer's", set("opt/app/", func(h *hdr) { h.xattrs = map[string]string{"trusted.overlay.origin": "x"} }), nil},
		{"symlink target", set("opt/app/current", func(h *hdr) { h.link = "bin2" }),
			[]layer.Difference{{Path: "/opt/app/current", What: []string{layer.ChangeLink}}}},
		{"hard link becomes a copy", set("opt/app/bin2", func(h *hdr) { h.typ, h.link, h.body = tar.TypeReg, "", "binary" }),
			[]layer.Difference{{Path: "/opt/app/bin2", What: []string{layer.ChangeType}}}},
		{"file becomes a whiteout", set("opt/app/stamp", func(h *hdr) { h.name, h.body = "opt/app/.wh.stamp", "" }),
			[]layer.Difference{{Path: "/opt/app/stamp", What: []string{layer.ChangeType}}}},
		{"whiteout gone", edit(func(hs []hdr) []hdr { return append(hs[:7], hs[8:]...) }),
			[]layer.Difference{{Path: "/etc/motd", What: []string{layer.ChangeRemoved}}}},
		{"directory no longer opaque", edit(func(hs []hdr) []hdr { return hs[:9] }),
			[]layer.Difference{{Path: "/var/lib/app", What: []string{layer.ChangeOpaque}}}},
		{"file added, file removed", edit(func(hs []hdr) []hdr {
			hs[5].name = "opt/app/stamp2"
			return hs
		}), []layer.Difference{
			{Path: "/opt/app/stamp", What: []string{layer.ChangeRemoved}},
			{Path: "/opt/app/stamp2", What: []string{layer.ChangeAdded}},
		}},
		{"a later entry replaces an earlier one", edit(func(hs []hdr) []hdr {
			return append(hs, hdr{name: "opt/app/stamp", body: "1700000001"})
		}), []layer.Difference{{Path: "/opt/app/stamp", What: []string{layer.ChangeContent}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			old, new := tarOf(t, baseLayer()...), tarOf(t, c.new...)
			got, err := layer.Diff(context.Background(), bytes.NewReader(old), bytes.NewReader(new))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
			// The other way round: the same paths, added and removed swapped.
			back, err := layer.Diff(context.Background(), bytes.NewReader(new), bytes.NewReader(old))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(mirror(c.want), back); diff != "" {
				t.Errorf("Diff the other way (-want +got):\n%s", diff)
			}
		})
	}
}

// mirror is what Diff(new, old) says when Diff(old, new) says ds.
func mirror(ds []layer.Difference) []layer.Difference {
	var out []layer.Difference
	for _, d := range ds {
		w := append([]string(nil), d.What...)
		for i := range w {
			switch w[i] {
			case layer.ChangeAdded:
				w[i] = layer.ChangeRemoved
			case layer.ChangeRemoved:
				w[i] = layer.ChangeAdded
			}
		}
		out = append(out, layer.Difference{Path: d.Path, What: w})
	}
	return out
}

// TestDiffRefuses: a layer is hostile data; Diff refuses what Check does,
// naming which layer.
func TestDiffRefuses(t *testing.T) {
	good := tarOf(t, baseLayer()...)
	for _, c := range []struct {
		name  string
		layer []byte
		want  string
	}{
		{"escape", tarOf(t, hdr{name: "../etc/passwd", body: "x"}), "path escapes the layer root"},
		{"through a symlink", tarOf(t, hdr{name: "a", typ: tar.TypeSymlink, link: "/etc"}, hdr{name: "a/passwd", body: "x"}), "path traverses a symlink"},
		{"hard link outside", tarOf(t, hdr{name: "a", typ: tar.TypeLink, link: "../../etc/shadow"}), "hard link target"},
		{"truncated", good[:len(good)-1024], "truncated tar stream"},
		{"garbage", bytes.Repeat([]byte{'x'}, 2048), "tar"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, newer := range []bool{false, true} {
				a, b := good, c.layer
				which := "new layer"
				if !newer {
					a, b, which = c.layer, good, "old layer"
				}
				_, err := layer.Diff(context.Background(), bytes.NewReader(a), bytes.NewReader(b))
				var ee *layer.EntryError
				if !errors.As(err, &ee) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), which) {
					t.Errorf("Diff with a bad %s: %v, want an *EntryError with %q", which, err, c.want)
				}
			}
		})
	}
}

// FuzzDiff: Diff never panics or hangs, refuses exactly what Check
// refuses, finds nothing between a layer and itself, and compared with a
// fixed layer either way round names the same paths, added and removed
// swapped.
func FuzzDiff(f *testing.F) {
	ref := tarOf(f, baseLayer()...)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzLayer {
			t.Skip("input larger than maxFuzzLayer")
		}
		var checkErr, selfErr error
		var self []layer.Difference
		within(t, "Check", func() { checkErr = layer.Check(ctx, bytes.NewReader(data), nil, nil) })
		within(t, "Diff", func() { self, selfErr = layer.Diff(ctx, bytes.NewReader(data), bytes.NewReader(data)) })
		if (checkErr == nil) != (selfErr == nil) {
			t.Fatalf("Check: %v; Diff: %v; want both to accept or both to refuse", checkErr, selfErr)
		}
		if checkErr != nil {
			return
		}
		if len(self) > 0 {
			t.Fatalf("Diff of a layer with itself: %v", self)
		}
		var there, back []layer.Difference
		var err1, err2 error
		within(t, "Diff", func() {
			there, err1 = layer.Diff(ctx, bytes.NewReader(ref), bytes.NewReader(data))
			back, err2 = layer.Diff(ctx, bytes.NewReader(data), bytes.NewReader(ref))
		})
		if err1 != nil || err2 != nil {
			t.Fatalf("Diff with an accepted layer: %v, %v", err1, err2)
		}
		if diff := cmp.Diff(mirror(there), back); diff != "" {
			t.Fatalf("Diff(ref, x) and Diff(x, ref) disagree (-mirrored +got):\n%s", diff)
		}
	})
}
