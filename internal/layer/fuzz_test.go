package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/testenv"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora under testdata/fuzz")

// maxFuzzLayer caps fuzz inputs: bigger ones teach the fuzzer nothing new
// and only slow it down.
const maxFuzzLayer = 1 << 20

// fuzzDeadline bounds one input. A layer of at most maxFuzzLayer bytes is
// checked or unpacked in milliseconds; anything near this is a hang.
const fuzzDeadline = 10 * time.Second

// within runs fn and fails t if it does not return within fuzzDeadline.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(fuzzDeadline):
		t.Fatalf("%s did not finish within %v", what, fuzzDeadline)
	}
}

// FuzzCheck: Check never panics or hangs, hands found only wanted paths
// with the content the header promises, and refuses every truncation of a
// stream it accepts (a layer cut short must never import as complete).
func FuzzCheck(f *testing.F) {
	want := map[string]bool{"etc/os-release": true, "usr/lib/os-release": true, "bin/sh": true, "usr/bin/env": true}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		if len(data) > maxFuzzLayer {
			t.Skip("input larger than maxFuzzLayer")
		}
		var err error
		within(t, "Check", func() {
			err = layer.Check(context.Background(), bytes.NewReader(data), want, func(p string, hdr *tar.Header, content []byte) {
				if !want[p] {
					t.Errorf("found(%q): not a wanted path", p)
				}
				if hdr.Typeflag == tar.TypeReg && int64(len(content)) != min(hdr.Size, 1<<20) {
					t.Errorf("found(%q): %d bytes of content for a %d-byte file", p, len(content), hdr.Size)
				}
				if hdr.Typeflag != tar.TypeReg && content != nil {
					t.Errorf("found(%q): content for a non-regular entry of type %q", p, hdr.Typeflag)
				}
			})
		})
		if err != nil {
			var ee *layer.EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("Check: %v (%T), want an *EntryError", err, err)
			}
			return
		}
		// Everything up to and including the first block of the
		// end-of-archive marker is needed; any shorter prefix is a
		// truncated layer.
		end := endMarker(t, data) + 512
		p := int(cut) % end
		within(t, "Check of a truncated stream", func() {
			err = layer.Check(context.Background(), bytes.NewReader(data[:p]), nil, nil)
		})
		var ee *layer.EntryError
		if !errors.As(err, &ee) {
			t.Fatalf("Check accepted the stream cut to %d of %d bytes (end-of-archive marker at %d): err %v", p, len(data), end-512, err)
		}
	})
}

// countReader counts the bytes tar.Reader pulls (it never reads ahead).
type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// endMarker returns the offset of the end-of-archive marker of a stream
// Check accepted.
func endMarker(t *testing.T, data []byte) int {
	t.Helper()
	cr := &countReader{r: bytes.NewReader(data)}
	tr := tar.NewReader(cr)
	for {
		before := cr.n
		_, err := tr.Next()
		if err == io.EOF {
			return before
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			t.Fatalf("Check accepted a stream archive/tar refuses: %v", err)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			t.Fatalf("Check accepted a stream archive/tar cannot read: %v", err)
		}
	}
}

// FuzzUnpack unpacks into a small tmpfs (so no input can fill the disk)
// and checks that Unpack and Check agree on every stream (the same entry
// refused for the same reason), that nothing is created outside the target
// directory, and that an unpacked tree survives Pack → Unpack → Pack
// byte for byte.
func FuzzUnpack(f *testing.F) {
	testenv.RequireRoot(f)
	fs := f.TempDir()
	if err := unix.Mount("tmpfs", fs, "tmpfs", 0, "size=64m,nr_inodes=16384,mode=0755"); err != nil {
		f.Fatalf("mount tmpfs: %v", err)
	}
	f.Cleanup(func() { unix.Unmount(fs, unix.MNT_DETACH) })
	sentinel := filepath.Join(fs, "sentinel")
	if err := os.WriteFile(sentinel, []byte("untouched"), 0o644); err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	n := 0
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzLayer {
			t.Skip("input larger than maxFuzzLayer")
		}
		n++
		work := filepath.Join(fs, fmt.Sprint(n))
		if err := os.Mkdir(work, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(work)
		dir := filepath.Join(work, "root")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}

		var checkErr, unpackErr error
		within(t, "Check", func() { checkErr = layer.Check(ctx, bytes.NewReader(data), nil, nil) })
		within(t, "Unpack", func() { unpackErr = layer.Unpack(ctx, bytes.NewReader(data), dir, layer.UnpackOptions{}) })

		// Nothing outside dir: the tmpfs holds only the sentinel and work
		// directories, work only root.
		if b, err := os.ReadFile(sentinel); err != nil || string(b) != "untouched" {
			t.Fatalf("sentinel outside the target changed: %q %v", b, err)
		}
		if ents, _ := os.ReadDir(work); len(ents) != 1 || ents[0].Name() != "root" {
			t.Fatalf("entries created next to the target directory: %v", ents)
		}

		var cee, uee *layer.EntryError
		cRefused, uRefused := errors.As(checkErr, &cee), errors.As(unpackErr, &uee)
		if checkErr != nil && !cRefused {
			t.Fatalf("Check: %v (%T), want nil or an *EntryError", checkErr, checkErr)
		}
		if unpackErr != nil && !uRefused {
			// A file system limit (the 64 MiB tmpfs, an xattr value the
			// kernel refuses) stops Unpack where Check goes on: not the
			// layer's fault, nothing to compare.
			for _, errno := range []error{unix.ENOSPC, unix.EOPNOTSUPP, unix.EINVAL, unix.ENAMETOOLONG, unix.EMLINK, unix.E2BIG, unix.ERANGE} {
				if errors.Is(unpackErr, errno) {
					return
				}
			}
			t.Fatalf("Unpack failed (%v); Check returned %v", unpackErr, checkErr)
		}
		switch {
		case cRefused && uRefused:
			if diff := cmp.Diff(cee.Error(), uee.Error()); diff != "" {
				t.Fatalf("Check and Unpack refuse differently (-check +unpack):\n%s", diff)
			}
			return
		case cRefused:
			t.Fatalf("Check refused (%v) but Unpack accepted", checkErr)
		case uRefused:
			t.Fatalf("Unpack refused (%v) but Check accepted", unpackErr)
		}

		var first bytes.Buffer
		if err := layer.Pack(ctx, dir, &first, layer.PackOptions{}); err != nil {
			t.Fatalf("Pack of an unpacked layer: %v", err)
		}
		again := filepath.Join(work, "again")
		if err := os.Mkdir(again, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := layer.Unpack(ctx, bytes.NewReader(first.Bytes()), again, layer.UnpackOptions{}); err != nil {
			t.Fatalf("Unpack of Pack's output: %v", err)
		}
		var second bytes.Buffer
		if err := layer.Pack(ctx, again, &second, layer.PackOptions{}); err != nil {
			t.Fatalf("second Pack: %v", err)
		}
		if !bytes.Equal(first.Bytes(), second.Bytes()) {
			t.Fatalf("Pack(Unpack(Pack(Unpack(x)))) differs from Pack(Unpack(x)):\n%s", cmp.Diff(readEntries(t, first.Bytes()), readEntries(t, second.Bytes())))
		}
	})
}

// TestWriteFuzzSeeds regenerates the seed corpora of FuzzCheck, FuzzUnpack
// and FuzzDiff: layers as pib and other tools write them, and the sparse
// files GNU tar writes (a sparse /var/log/lastlog is common in images).
//
//	go test ./internal/layer -run TestWriteFuzzSeeds -update-fuzz-seeds
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("regenerates testdata/fuzz; run with -update-fuzz-seeds")
	}
	seeds := map[string][]byte{
		"pib-tree": buildTar(t, []entry{
			{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "etc/os-release", Type: tar.TypeSymlink, Linkname: "../usr/lib/os-release"},
			{Name: "usr/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "usr/lib/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "usr/lib/os-release", Type: tar.TypeReg, Body: "ID=debian\nVERSION_ID=\"12\"\n"},
			{Name: "usr/bin/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "usr/bin/env", Type: tar.TypeReg, Mode: 0o755, Body: "\x7fELF\x02\x01\x01"},
			{Name: "usr/bin/ping", Type: tar.TypeReg, Mode: 0o4755, Body: "ping", Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00"}},
			{Name: "usr/bin/ping4", Type: tar.TypeLink, Linkname: "usr/bin/ping"},
			{Name: "bin", Type: tar.TypeSymlink, Linkname: "usr/bin"},
			{Name: "dev/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666},
			{Name: "run/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "run/initctl", Type: tar.TypeFifo, Mode: 0o600},
			{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
		}, true),
		"whiteouts": buildTar(t, []entry{
			{Name: "etc/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "etc/.wh.motd", Type: tar.TypeReg},
			{Name: "var/lib/apt/lists/.wh..wh..opq", Type: tar.TypeReg},
			{Name: "var/lib/apt/lists/lock", Type: tar.TypeReg, Body: ""},
			{Name: ".wh..wh.plnk", Type: tar.TypeDir},
			{Name: "opt/.wh.app", Type: tar.TypeReg},
			{Name: "opt/app/", Type: tar.TypeDir, Mode: 0o755},
		}, true),
		"docker-style": func() []byte {
			// ./-prefixed names, a root entry, USTAR headers and user names,
			// as docker and `tar -C dir .` write them.
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range []*tar.Header{
				{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, Uname: "root", Gname: "root", Format: tar.FormatUSTAR},
				{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatUSTAR},
				{Name: "./etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, Uid: 0, Gid: 0, Format: tar.FormatUSTAR},
				{Name: "./home/user/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 1000, Gid: 1000, Format: tar.FormatUSTAR},
			} {
				hdr := *h
				hdr.ModTime = time.Unix(1700000000, 0)
				if err := tw.WriteHeader(&hdr); err != nil {
					t.Fatal(err)
				}
				io.WriteString(tw, strings.Repeat("x", int(hdr.Size)))
			}
			tw.Close()
			return buf.Bytes()
		}(),
		"long-names-pax": buildTar(t, []entry{
			{Name: strings.Repeat("d", 120) + "/", Type: tar.TypeDir, Mode: 0o755},
			{Name: strings.Repeat("d", 120) + "/" + strings.Repeat("f", 150), Type: tar.TypeReg, Body: "long"},
			{Name: "l", Type: tar.TypeSymlink, Linkname: strings.Repeat("t", 200)},
		}, true),
		"no-end-marker": buildTar(t, []entry{{Name: "f", Type: tar.TypeReg, Body: "cut"}}, false),
	}
	// GNU tar's sparse files, PAX format (what `tar --sparse --format=posix`
	// writes), one per sparse format version GNU tar knows.
	if _, err := exec.LookPath("tar"); err == nil {
		for _, v := range []string{"0.0", "0.1", "1.0"} {
			dir := t.TempDir()
			f, err := os.Create(filepath.Join(dir, "lastlog"))
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("entry"), 64<<10)
			f.Truncate(1 << 20)
			f.Close()
			out := filepath.Join(t.TempDir(), "sparse.tar")
			cmd := exec.Command("tar", "--sparse", "--sparse-version="+v, "--format=posix", "--numeric-owner", "--mtime=@1700000000", "-C", dir, "-cf", out, "lastlog")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("tar: %v: %s", err, b)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			seeds["gnu-sparse-"+v] = b
		}
	}
	for name, b := range seeds {
		testenv.WriteFuzzSeed(t, "FuzzUnpack", name, b)
		testenv.WriteFuzzSeed(t, "FuzzDiff", name, b)
		testenv.WriteFuzzSeed(t, "FuzzCheck", name, b, uint16(len(b)/3))
	}
}
