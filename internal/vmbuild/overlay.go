//go:build linux

package vmbuild

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/pib-dev/pib/internal/disk"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/sandbox"
)

// WindowsMemoryMB is a Windows build machine's memory when the config
// sets none: Windows Server asks for 2 GB at least, and an MSI install
// with its .NET actions runs short below 4.
const WindowsMemoryMB = 4096

// overlay makes a build's writable qcow2 overlay over a disk image's
// chain, in dir/upper at the image path of the next layer's disk, and
// returns the chain to boot: base, then the overlay.
func overlay(ctx context.Context, base []string, dir string) ([]string, error) {
	info, err := disk.InspectQCOW2(ctx, base[len(base)-1])
	if err != nil {
		return nil, fmt.Errorf("read the base disk: %w", err)
	}
	top := filepath.Join(dir, "upper", images.DiskName(len(base)))
	if err := os.MkdirAll(filepath.Dir(top), 0o755); err != nil {
		return nil, err
	}
	// The header names the file below as the image holds it, beside it
	// (disk/N-1.qcow2): QEMU is given the real chain (disk.ChainSpec).
	if err := disk.CreateOverlay(ctx, top, path.Base(images.DiskName(len(base)-1)), info.VirtualSize); err != nil {
		return nil, err
	}
	if err := os.Chmod(top, 0o644); err != nil {
		return nil, err
	}
	return append(append([]string{}, base...), top), nil
}

// keepOverlay makes the overlay of a machine that powered off cleanly
// the build's result: what the installer changed on the disk, kept whole.
// No file list can be had from a disk pib cannot read (NTFS), so the
// changes name the overlay itself.
//
// The overlay's header and tables are QEMU's, never the guest's (a guest
// writes the virtual disk's sectors only), but QEMU killed mid-write would
// leave them inconsistent: qemu-img check says so before it is stored.
func keepOverlay(ctx context.Context, res *Result, chain []string) error {
	top := chain[len(chain)-1]
	if err := disk.CheckQCOW2(ctx, chain...); err != nil {
		return fmt.Errorf("read the build's disk overlay: %w", err)
	}
	fi, err := os.Stat(top)
	if err != nil {
		return err
	}
	upper := filepath.Dir(filepath.Dir(top))
	rel, err := filepath.Rel(upper, top)
	if err != nil {
		return err
	}
	res.UpperDir = upper
	res.Changes = sandbox.Changes{Added: 1, Files: []sandbox.FileChange{{Path: rel, Change: "added", Size: fi.Size(), Type: "file"}}}
	return nil
}
