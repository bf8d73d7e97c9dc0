package disk_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/disk"
	"github.com/pib-dev/pib/internal/machine"
	"github.com/pib-dev/pib/internal/testenv"
)

// loginPrompt is what Debian's getty prints on the serial console once
// the machine has booted.
var loginPrompt = regexp.MustCompile(`(?m)login: *$`)

// TestDiskBoots makes a raw disk from the bootable debian-12 image,
// converts it to qcow2, and boots each from the disk alone (GRUB from the
// disk, no -kernel): the raw disk with SeaBIOS, the qcow2 one with OVMF.
// qemu-img compare proves both hold the same bytes, so each firmware's
// boot path is proven for both formats.
func TestDiskBoots(t *testing.T) {
	deb := testenv.Debian12Machine(t)
	for _, fw := range []machine.Firmware{machine.BIOS, machine.UEFI} {
		if err := machine.CheckQEMU(fw); err != nil {
			t.Fatal(err) // scripts/deps.sh test installs QEMU and OVMF
		}
	}
	if err := disk.CheckTools(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	raw, qcow := filepath.Join(dir, "disk.raw"), filepath.Join(dir, "disk.qcow2")
	ctx := context.Background()
	start := time.Now()
	if err := disk.Make(ctx, deb.Rootfs, raw, disk.Options{ID: "test", Epoch: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	tookRaw := time.Since(start)
	start = time.Now()
	if err := disk.Convert(ctx, raw, qcow, disk.QCOW2); err != nil {
		t.Fatal(err)
	}
	tookQcow := time.Since(start)
	t.Logf("raw disk: %v, %s; qcow2: +%v, %s", tookRaw.Round(time.Millisecond), sizes(t, raw), tookQcow.Round(time.Millisecond), sizes(t, qcow))
	if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare: %v: %s", err, out)
	}

	for _, tc := range []struct {
		name   string
		file   string
		format string
		fw     machine.Firmware
	}{
		{"raw-seabios", raw, "raw", machine.BIOS},
		{"qcow2-ovmf", qcow, "qcow2", machine.UEFI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bootToLogin(t, machine.Config{Disk: tc.file, Format: tc.format, Snapshot: true, Firmware: tc.fw, WorkDir: t.TempDir()})
		})
	}
}

func bootToLogin(t *testing.T, c machine.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	start := time.Now()
	m, err := machine.Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	if err := m.Wait(ctx, loginPrompt); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, lastBytes(m.Console(), 6000))
	}
	t.Logf("%s with %s: login prompt after %v", c.Format, c.Firmware, time.Since(start).Round(100*time.Millisecond))
}

// TestMakeIsReproducible makes two disks from one tree: same bytes.
func TestMakeIsReproducible(t *testing.T) {
	deb := testenv.Debian12Machine(t)
	dir := t.TempDir()
	var sums [2][32]byte
	for i := range sums {
		out := filepath.Join(dir, "disk.raw")
		if err := disk.Make(context.Background(), deb.Rootfs, out, disk.Options{ID: "repro", Epoch: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256File(t, out)
	}
	if sums[0] != sums[1] {
		t.Fatalf("two disks of the same tree differ: %x vs %x", sums[0], sums[1])
	}
}

// TestMakeRefusesNoKernel: the minimal image (no kernel) is refused.
func TestMakeRefusesNoKernel(t *testing.T) {
	deb := testenv.Debian12(t)
	err := disk.Make(context.Background(), deb.Rootfs, filepath.Join(t.TempDir(), "d.raw"), disk.Options{ID: "x"})
	if !errors.Is(err, disk.ErrNoKernel) {
		t.Fatalf("Make on a kernel-less image: %v, want ErrNoKernel", err)
	}
}

func sha256File(t *testing.T, p string) [32]byte {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

func sizes(t *testing.T, p string) string {
	out, err := exec.Command("du", "-h", "--apparent-size", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	alloc, err := exec.Command("du", "-h", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(regexp.MustCompile(`^\S+`).Find(out)) + " apparent, " + string(regexp.MustCompile(`^\S+`).Find(alloc)) + " allocated"
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
