//go:build linux

package images

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/disk"
	"github.com/pib-dev/pib/internal/problem"
)

// Disk formats Export writes through ExportDisk: bootable disk images.
const (
	DiskRaw   Format = "raw"
	DiskQCOW2 Format = "qcow2"
)

// DiskFormats lists the disk formats ExportDisk writes.
var DiskFormats = []Format{DiskRaw, DiskQCOW2}

// ErrNotBootable: the image has no kernel, so it cannot be a disk.
var ErrNotBootable = problem.New(problem.Invalid, "image has no kernel to boot")

// ExportDisk writes image ref as a bootable disk image (raw or qcow2) of
// size bytes (0: big enough for the image, at least 2 GiB) to out. The
// file appears only when complete.
func (s *Store) ExportDisk(ctx context.Context, ref string, format Format, size int64, out string) error {
	im, err := s.Get(ctx, ref)
	if err != nil {
		return err
	}
	return s.exportDisk(ctx, im, format, size, out)
}

func (s *Store) exportDisk(ctx context.Context, im *Image, format Format, size int64, out string) error {
	cached, err := s.Disk(ctx, im, size, format)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".tmp-"+strconv.Itoa(os.Getpid()))
	defer os.Remove(tmp)
	if err := disk.Convert(ctx, cached, tmp, disk.Raw); err != nil { // a sparse copy
		return fmt.Errorf("export %s as a %s disk to %s: %w", im.ID, format, out, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("export %s as a %s disk to %s: %w", im.ID, format, out, err)
	}
	return nil
}

// Disk returns the path of image im's disk in the given format, made once
// and kept in the cache (per image, size and format): images never
// change, so the same image always gives the same disk bytes (see package
// disk on why a disk made again from a re-unpacked cache could differ).
// Callers must not write into it.
func (s *Store) Disk(ctx context.Context, im *Image, size int64, format Format) (string, error) {
	if format != DiskRaw && format != DiskQCOW2 {
		return "", fmt.Errorf("unknown disk format %q; use raw or qcow2", format)
	}
	dir := filepath.Join(s.cache, "disks")
	if err := s.privateDir(dir); err != nil {
		return "", err
	}
	sizeName := "auto"
	if size > 0 {
		sizeName = strconv.FormatInt(size>>20, 10) + "M"
	}
	base := filepath.Join(dir, im.Manifest.Hex+"-"+sizeName)
	path := base + "." + string(format)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	lock, err := os.OpenFile(base+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if _, err := os.Stat(path); err == nil {
		return path, nil // made by another process meanwhile
	}
	raw := base + ".raw"
	if _, err := os.Stat(raw); err != nil {
		tmp := raw + ".tmp"
		err := s.MakeDisk(ctx, im, size, tmp)
		if err == nil {
			err = os.Rename(tmp, raw)
		}
		if err != nil {
			os.Remove(tmp)
			return "", err
		}
	}
	if format == DiskRaw {
		return raw, nil
	}
	tmp := path + ".tmp"
	if err := disk.Convert(ctx, raw, tmp, disk.Format(format)); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("make a %s disk of image %s: %w", format, im.ID, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}

// MakeDisk writes a raw disk of image im to out, not cached: the boot
// test's throw-away disks. A disk image's disk is its chain flattened.
func (s *Store) MakeDisk(ctx context.Context, im *Image, size int64, out string) error {
	if im.Disk != "" {
		return s.flattenDisk(ctx, im, size, DiskRaw, out)
	}
	root, release, err := s.Rootfs(ctx, im)
	if err != nil {
		return err
	}
	defer release()
	epoch, err := s.Epoch(im, nil)
	if err != nil {
		return err
	}
	err = disk.Make(ctx, root, out, disk.Options{Size: size, ID: im.Manifest.Hex, Epoch: epoch})
	if errors.Is(err, disk.ErrNoKernel) {
		os.Remove(out)
		return ErrNotBootable.Errorf("image %s has no kernel, so it cannot be made a bootable disk: use a bootable image — one bootstrapped without --minimal (pib image bootstrap debian-12), or built on one — or install a kernel (linux-image-cloud-amd64) and a GRUB configuration in it", im.ID)
	}
	if err != nil {
		os.Remove(out)
		return fmt.Errorf("make a disk of image %s: %w", im.ID, err)
	}
	return nil
}

// removeDisks drops the cached disks of an image whose manifest is gone.
func (s *Store) removeDisks(im *Image) {
	files, _ := filepath.Glob(filepath.Join(s.cache, "disks", im.Manifest.Hex+"-*"))
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			slog.Warn("cached disk left behind", "file", f, "err", err)
		}
	}
}
