//go:build linux

// Package testenv gives tests the expensive things they share: a real
// Debian 12 server base image, bootstrapped once per test run with pib's
// own image store and reused by every test and package.
//
// The cache lives in PIB_TEST_CACHE (the test command sets a fresh one for
// each run, so every run bootstraps for real once); without it, in a
// folder under the system temp directory that survives between runs.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/store"
)

// CacheDir is where shared test artefacts live.
func CacheDir() string {
	if d := os.Getenv("PIB_TEST_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "pib-test-cache")
}

// RequireRoot skips a test that needs root (namespaces, mounts, mknod)
// when not run as root — and fails it in CI, where it must run.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root (namespaces, mounts, device nodes) and CI runs as root")
		}
		t.Skip("needs root: namespaces, mounts and device nodes")
	}
}

// Debian is the shared, bootstrapped Debian 12 base image.
type Debian struct {
	DataDir string // a pib data directory (SQLite) holding the image
	ImageID string
	Rootfs  string // the image's single layer, unpacked: read-only, never write into it
}

// Debian12 returns the shared debian-12 base image, bootstrapped minimal
// (images.BootstrapOptions.Minimal: no kernel, as it always was for the
// tests, so scan goldens and package counts do not move) with
// images.Store.Bootstrap the first time in a run (about a minute; other
// test processes wait on a file lock meanwhile).
func Debian12(t testing.TB) Debian {
	t.Helper()
	return bootstrapped(t, "debian-12", images.BootstrapOptions{Name: "debian-12", Minimal: true})
}

// Debian12Machine returns a bootable debian-12 image (bootstrap's default:
// kernel, initramfs, GRUB configuration), in a cache directory of its own
// beside Debian12's. Only the tests that boot machines use it.
func Debian12Machine(t testing.TB) Debian {
	t.Helper()
	return bootstrapped(t, "debian-12-machine", images.BootstrapOptions{Name: "debian-12"})
}

func bootstrapped(t testing.TB, cacheName string, opts images.BootstrapOptions) Debian {
	t.Helper()
	RequireRoot(t)
	dir := filepath.Join(CacheDir(), cacheName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	d := Debian{DataDir: filepath.Join(dir, "data")}
	if done, err := os.ReadFile(filepath.Join(dir, "done")); err == nil {
		f := strings.Fields(string(done))
		if len(f) == 2 {
			d.ImageID, d.Rootfs = f[0], f[1]
			return d
		}
	}
	os.RemoveAll(d.DataDir)
	ctx := context.Background()
	s, closeFn, err := OpenStore(d.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	var log bytes.Buffer
	opts.Log = &log
	im, err := s.Bootstrap(ctx, opts)
	if err != nil {
		t.Fatalf("bootstrap %s for the tests: %v\n%s", opts.Name, err, log.String())
	}
	dirs, err := s.LayerDirs(ctx, im)
	if err != nil {
		t.Fatal(err)
	}
	d.ImageID, d.Rootfs = im.ID, dirs[0]
	if err := os.WriteFile(filepath.Join(dir, "done"), []byte(d.ImageID+" "+d.Rootfs+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// DebianRootfs returns the shared Debian 12 server root file system: a
// read-only directory to use as an overlayfs lower directory or to scan.
func DebianRootfs(t testing.TB) string {
	t.Helper()
	return Debian12(t).Rootfs
}

// OpenStore opens (creating) an image store in a pib data directory laid
// out as the pib command does: SQLite, blobs and cache inside it.
func OpenStore(dataDir string) (*images.Store, func(), error) {
	db, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dataDir, "pib.db"))
	if err != nil {
		return nil, nil, err
	}
	bs, err := blobs.NewDir(filepath.Join(dataDir, "blobs"))
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("open blobs: %w", err)
	}
	return images.NewStore(db, bs, filepath.Join(dataDir, "cache")), func() { db.Close() }, nil
}

// ImportDebian12 stores the shared debian-12 image in s under the alias
// debian-12, importing a docker archive exported once per test run.
func ImportDebian12(t testing.TB, s *images.Store) *images.Image {
	t.Helper()
	return importCached(t, s, "debian-12", Debian12(t))
}

// ImportDebian12Machine stores the bootable debian-12 image
// (Debian12Machine) in s under the alias debian-12, as ImportDebian12.
func ImportDebian12Machine(t testing.TB, s *images.Store) *images.Image {
	t.Helper()
	return importCached(t, s, "debian-12-machine", Debian12Machine(t))
}

func importCached(t testing.TB, s *images.Store, cacheName string, deb Debian) *images.Image {
	t.Helper()
	archive := filepath.Join(CacheDir(), cacheName, "debian-12.docker.tar")
	if _, err := os.Stat(archive); err != nil {
		lock, err := os.OpenFile(filepath.Join(CacheDir(), cacheName, "lock"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Close()
		unix.Flock(int(lock.Fd()), unix.LOCK_EX)
		defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
		if _, err := os.Stat(archive); err != nil {
			src, closeFn, err := OpenStore(deb.DataDir)
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			if err := src.Export(context.Background(), deb.ImageID, images.DockerArchive, archive); err != nil {
				t.Fatal(err)
			}
		}
	}
	im, err := s.Import(context.Background(), archive, images.ImportOptions{Alias: "debian-12"})
	if err != nil {
		t.Fatal(err)
	}
	return im
}

// WriteFuzzSeed writes one seed of fuzz target fuzzName, in the `go test
// fuzz v1` format, to testdata/fuzz/<fuzzName>/<name> of the package under
// test: the tests that regenerate seed corpora share it.
func WriteFuzzSeed(t testing.TB, fuzzName, name string, values ...any) {
	t.Helper()
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range values {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case uint16:
			fmt.Fprintf(&b, "uint16(%d)\n", v)
		case int:
			fmt.Fprintf(&b, "int(%d)\n", v)
		default:
			t.Fatalf("WriteFuzzSeed: unsupported type %T", v)
		}
	}
	dir := filepath.Join("testdata", "fuzz", fuzzName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
