package images_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/testenv"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora under testdata/fuzz")

// maxFuzzArchive caps fuzz inputs; the data directory is a 64 MiB tmpfs,
// so whatever an archive expands to cannot fill the real disk.
const maxFuzzArchive = 256 << 10

// FuzzImport imports arbitrary bytes as an image archive (docker save,
// OCI archive, rootfs tar, each plain, gzip or zstd) into a store whose
// data directory is a small tmpfs. Import must finish in bounded time and
// either fail leaving nothing behind (no image, blob, cached layer or
// temporary file), or store an image that passes go-containerregistry's
// validate.Image and that Remove deletes completely.
func FuzzImport(f *testing.F) {
	testenv.RequireRoot(f)
	data := f.TempDir()
	if err := unix.Mount("tmpfs", data, "tmpfs", 0, "size=64m,mode=0755"); err != nil {
		f.Fatalf("mount tmpfs: %v", err)
	}
	f.Cleanup(func() { unix.Unmount(data, unix.MNT_DETACH) })
	s, closeFn, err := testenv.OpenStore(data)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(closeFn)
	in := filepath.Join(f.TempDir(), "archive")

	f.Fuzz(func(t *testing.T, archive []byte) {
		if len(archive) > maxFuzzArchive {
			t.Skip("input larger than maxFuzzArchive")
		}
		if err := os.WriteFile(in, archive, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var im *images.Image
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			im, err = s.Import(ctx, in, images.ImportOptions{})
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("Import of a %d-byte archive did not return within 30s (10s after its context ended)", len(archive))
		}
		if err != nil {
			if errors.Is(err, unix.ENOSPC) {
				t.Skip("archive expands beyond the 64 MiB tmpfs")
			}
			if !strings.Contains(err.Error(), in) {
				t.Errorf("error %q does not name the archive", err)
			}
			nothingLeft(t, s, data)
			return
		}
		stored, err := s.Image(im)
		if err != nil {
			t.Fatalf("read back imported image %s: %v", im.ID, err)
		}
		if err := validate.Image(stored); err != nil {
			t.Fatalf("imported image %s is not a valid OCI image: %v", im.ID, err)
		}
		if _, err := s.Remove(ctx, im.ID); err != nil {
			t.Fatalf("remove %s: %v", im.ID, err)
		}
		nothingLeft(t, s, data)
	})
}

// nothingLeft is assertNothingLeft for fuzzing: an empty store, except
// for the empty scratch directories Import documents it leaves to the next
// clean.
func nothingLeft(t *testing.T, s *images.Store, data string) {
	t.Helper()
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("%d images stored, want 0", len(list))
	}
	for _, d := range []string{"blobs/sha256", "blobs/tmp", "cache/layers/sha256"} {
		if ents, _ := os.ReadDir(filepath.Join(data, d)); len(ents) > 0 {
			t.Fatalf("left behind in %s: %s", d, ents[0].Name())
		}
	}
	tmp, _ := os.ReadDir(filepath.Join(data, "cache/tmp"))
	for _, e := range tmp {
		sub, _ := os.ReadDir(filepath.Join(data, "cache/tmp", e.Name()))
		if !e.IsDir() || len(sub) > 0 {
			t.Fatalf("left behind in cache/tmp: %s", e.Name())
		}
		os.Remove(filepath.Join(data, "cache/tmp", e.Name()))
	}
}

// TestWriteFuzzSeeds regenerates FuzzImport's seeds with the tools that
// make such archives: go-containerregistry's docker save writer and OCI
// layout, GNU tar for the OCI archive, and the compressions Import reads.
//
//	go test ./internal/images -run TestWriteFuzzSeeds -update-fuzz-seeds
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("regenerates testdata/fuzz; run with -update-fuzz-seeds")
	}
	dir := t.TempDir()
	img := ggcrImage(t)
	var docker bytes.Buffer
	if err := tarball.Write(name.MustParseReference("test/img:1"), img, &docker); err != nil {
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
	if out, err := exec.Command("tar", "--sort=name", "--mtime=@1700000000", "--owner=0", "--group=0", "--numeric-owner", "-C", layoutDir, "-cf", ociArchive, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	oci := must(os.ReadFile(ociArchive))
	rootfs := tarBytes(t, smallRootfs)
	for seed, b := range map[string][]byte{
		"docker-save":      docker.Bytes(),
		"docker-save.gz":   compress(t, docker.Bytes(), "gzip"),
		"oci-archive":      oci,
		"oci-archive.zst":  compress(t, oci, "zstd"),
		"rootfs.tar":       rootfs,
		"rootfs.tar.gz":    compress(t, rootfs, "gzip"),
		"rootfs.tar.zst":   compress(t, rootfs, "zstd"),
		"docker-truncated": docker.Bytes()[:docker.Len()*2/3],
	} {
		if len(b) > maxFuzzArchive {
			t.Fatalf("seed %s: %d bytes, more than maxFuzzArchive", seed, len(b))
		}
		dir := filepath.Join("testdata", "fuzz", "FuzzImport")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, seed), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
