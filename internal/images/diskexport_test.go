package images_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestExportDisk exports the bootable debian-12 image as raw and qcow2
// disks: the second export of each comes from the per-image cache with the
// same bytes; removing the image drops its cached disks; the minimal
// (kernel-less) image is refused with what to do instead. TestDiskBoots
// (internal/disk) boots such disks.
func TestExportDisk(t *testing.T) {
	ctx := context.Background()
	s, data := openStore(t)
	im := testenv.ImportDebian12Machine(t, s)
	dir := t.TempDir()
	for _, f := range images.DiskFormats {
		var sums [2][32]byte
		for i := range sums {
			out := filepath.Join(dir, "disk."+string(f))
			start := time.Now()
			if err := s.ExportDisk(ctx, im.ID, f, 0, out); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("export %s #%d: %v, %d MiB", f, i+1, time.Since(start).Round(10*time.Millisecond), fi.Size()>>20)
			sums[i] = fileSum(t, out)
		}
		if sums[0] != sums[1] {
			t.Errorf("two %s exports of one image differ", f)
		}
	}
	if err := s.ExportDisk(ctx, im.ID, "vmdk", 0, filepath.Join(dir, "x")); err == nil {
		t.Error("an unknown disk format was accepted")
	}
	if err := s.ExportDisk(ctx, im.ID, images.DiskRaw, 100<<20, filepath.Join(dir, "small.raw")); err == nil || !strings.Contains(err.Error(), "--size") {
		t.Errorf("a disk too small for the image: %v", err)
	}

	other, _ := openStore(t)
	minimal := testenv.ImportDebian12(t, other)
	err := other.ExportDisk(ctx, minimal.ID, images.DiskRaw, 0, filepath.Join(dir, "minimal.raw"))
	if !errors.Is(err, images.ErrNotBootable) || !strings.Contains(err.Error(), "pib image bootstrap debian-12") {
		t.Errorf("export of a kernel-less image: %v; want ErrNotBootable saying how to make a bootable one", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "minimal.raw")); !os.IsNotExist(err) {
		t.Errorf("a refused export left a file: %v", err)
	}

	if _, err := s.Remove(ctx, im.ID); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(data, "cache", "disks", im.Manifest.Hex+"-*")); len(left) > 0 {
		t.Errorf("cached disks of a removed image left: %v", left)
	}
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}
