package layer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestPackRefusesSpecials: device nodes, FIFOs and sockets an installer
// leaves are a T2 finding; Pack lists every one and writes no layer.
// Whiteouts (0:0 character devices) are not among them.
func TestPackRefusesSpecials(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	makeTree(t, src, append(sampleTree(),
		node{path: "opt", typ: tar.TypeDir, mode: 0o755},
		node{path: "opt/n", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3},
		node{path: "opt/disk", typ: tar.TypeBlock, mode: 0o660, major: 7, minor: 0},
		node{path: "opt/pipe", typ: tar.TypeFifo, mode: 0o620},
		node{path: "opt/gone", typ: tar.TypeChar}, // a whiteout
	), false, time.Now())
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(src, "tmp", "sock")}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)

	err = layer.Pack(context.Background(), src, &bytes.Buffer{}, layer.PackOptions{})
	var se *layer.SpecialFilesError
	if !errors.As(err, &se) {
		t.Fatalf("Pack = %v, want a *SpecialFilesError", err)
	}
	var got []string
	for _, f := range se.Files {
		got = append(got, f.String())
	}
	want := []string{
		"/opt/disk: block device 7:0, mode 0660",
		"/opt/n: character device 1:3, mode 0666",
		"/opt/pipe: FIFO, mode 0620",
		"/tmp/sock: socket, mode 0755",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("special files (-want +got):\n%s\nerror: %v", diff, err)
	}
	// Excluded paths are not the layer's: not refused.
	exclude := func(rel string) bool { return rel == "opt" || rel == "tmp/sock" }
	if err := layer.Pack(context.Background(), src, &bytes.Buffer{}, layer.PackOptions{Exclude: exclude}); err != nil {
		t.Errorf("Pack with the special files excluded: %v", err)
	}
}

// TestUnpackCreatesNoSpecials: a layer's device nodes and FIFOs are never
// made on the host (T2); each becomes a whiteout (0:0, mode 0), hard links
// to them too, and Skipped hears of each. Setuid files stay setuid.
func TestUnpackCreatesNoSpecials(t *testing.T) {
	testenv.RequireRoot(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(defaultMtime, 0)
	for _, h := range []tar.Header{
		{Name: "opt/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "opt/n", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		{Name: "opt/mem", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 1},
		{Name: "opt/disk", Typeflag: tar.TypeBlock, Mode: 0o666, Devmajor: 8, Devminor: 0},
		{Name: "opt/pipe", Typeflag: tar.TypeFifo, Mode: 0o666},
		{Name: "opt/pipe2", Typeflag: tar.TypeLink, Linkname: "opt/pipe"},
		{Name: "opt/.wh.old", Typeflag: tar.TypeReg},
		{Name: "opt/su", Typeflag: tar.TypeReg, Mode: 0o4755},
	} {
		h.ModTime, h.Format = mt, tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	dir := t.TempDir()
	var skipped []string
	err := layer.Unpack(context.Background(), &buf, dir, layer.UnpackOptions{Skipped: func(p string, hdr *tar.Header) {
		skipped = append(skipped, p)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"opt/n", "opt/mem", "opt/disk", "opt/pipe"}, skipped); diff != "" {
		t.Errorf("Skipped calls (-want +got):\n%s", diff)
	}
	for _, name := range []string{"n", "mem", "disk", "pipe", "pipe2", "old"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, "opt", name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("opt/%s: mode %#o rdev %d, want a whiteout (character device 0:0, mode 0)", name, st.Mode, st.Rdev)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "opt", "su"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("opt/su: %v, %v; want setuid kept", fi.Mode(), err)
	}
}
