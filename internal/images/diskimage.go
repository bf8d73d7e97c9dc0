//go:build linux

package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pib-dev/pib/internal/disk"
	"github.com/pib-dev/pib/internal/problem"
)

// A disk image is an OCI image whose layers each hold one qcow2 file under
// disk/ (the layout KubeVirt's containerDisk uses): disk/0.qcow2 is the
// imported disk, disk/N.qcow2 the overlay the N-th build on it left, whose
// header names (N-1).qcow2 as its backing file. Merged, as a rootfs-tar
// export or `docker load` gives it, disk/ holds the whole chain with
// working relative backing names, so `qemu-img convert disk/N.qcow2`
// flattens it anywhere. pib itself never follows those names (see package
// disk, ChainSpec): it finds layer i's file at disk/i.qcow2 in layer i.

// DiskLabel is the image config label naming a disk image's top disk file
// (Image.Disk), for whoever reads an exported image.
const DiskLabel = "org.pib.disk"

// DiskOSes are the OS families a disk image may be imported as.
var DiskOSes = []string{"linux", "windows"}

// DiskName is the path in a disk image of layer i's disk file.
func DiskName(i int) string { return "disk/" + strconv.Itoa(i) + ".qcow2" }

// ErrNotDisk: an operation for disk images named a file-system image.
var ErrNotDisk = problem.New(problem.Invalid, "not a disk image")

// importDisk stores a standalone qcow2 file as a one-layer disk image.
func (s *Store) importDisk(ctx context.Context, file string, opts ImportOptions) (*Image, error) {
	if !slices.Contains(DiskOSes, opts.OS) {
		return nil, archiveError{fmt.Errorf("a qcow2 disk needs its OS family: give --os %s (a disk's file system is not read to find it)", strings.Join(DiskOSes, " or --os "))}
	}
	if _, err := disk.CheckStandalone(ctx, file); err != nil {
		return nil, archiveError{err}
	}
	dir, err := s.tempDir("disk-import-*")
	if err != nil {
		return nil, err
	}
	defer removeTree(dir)
	if err := os.Mkdir(filepath.Join(dir, "disk"), 0o755); err != nil {
		return nil, err
	}
	// A copy, not the caller's file: the check above and what is stored
	// must be the same bytes.
	in := filepath.Join(dir, DiskName(0))
	if b, err := exec.CommandContext(ctx, "cp", "--reflink=auto", "--sparse=always", file, in).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copy the disk: %w: %s", err, strings.TrimSpace(string(b)))
	}
	if err := os.Chmod(in, 0o644); err != nil {
		return nil, err
	}
	if _, err := disk.CheckStandalone(ctx, in); err != nil {
		return nil, archiveError{err}
	}
	im, l, err := s.packDir(ctx, dir, Image{Alias: opts.Alias, Owner: opts.Owner, OS: opts.OS, DistroID: opts.OS, Disk: DiskName(0)},
		"pib image import (qcow2 disk)")
	if err != nil {
		return nil, err
	}
	// The tree just packed is the layer's unpacked form (a disk may be
	// tens of GB: not unpacked again for the first build).
	if d := s.layerDir(l.diffID); s.privateDir(filepath.Dir(d)) == nil {
		if _, err := os.Stat(d); err != nil {
			os.Rename(dir, d)
		}
	}
	return im, nil
}

// DiskChain returns the qcow2 files of disk image im in the layer cache,
// bottom first: what disk.ChainSpec and a vm build boot. Each must be a
// regular file at its layer's DiskName.
func (s *Store) DiskChain(ctx context.Context, im *Image) ([]string, error) {
	if im.Disk == "" {
		return nil, ErrNotDisk.Errorf("image %s is a file-system image, not a disk image", im.ID)
	}
	dirs, err := s.LayerDirs(ctx, im)
	if err != nil {
		return nil, err
	}
	chain := make([]string, len(dirs))
	for i, d := range dirs {
		chain[i] = filepath.Join(d, DiskName(i))
		fi, err := os.Lstat(chain[i])
		if err != nil || !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("disk image %s: layer %d has no regular file %s; remove the image and import its disk again", im.ID, i+1, DiskName(i))
		}
	}
	if want := DiskName(len(dirs) - 1); im.Disk != want {
		return nil, fmt.Errorf("disk image %s: its top disk is recorded as %s, its layers end with %s", im.ID, im.Disk, want)
	}
	return chain, nil
}

// flattenDisk writes disk image im's chain as one standalone disk.
func (s *Store) flattenDisk(ctx context.Context, im *Image, size int64, format Format, out string) error {
	if size > 0 {
		return problem.New(problem.Invalid, "image %s is a disk image and keeps its own size: leave the size out", im.ID)
	}
	chain, err := s.DiskChain(ctx, im)
	if err != nil {
		return err
	}
	if err := disk.FlattenChain(ctx, out, disk.Format(format), chain...); err != nil {
		return fmt.Errorf("disk image %s: %w", im.ID, err)
	}
	return nil
}

// errDiskLayer: AddLayer on a disk image without a disk overlay.
var errDiskLayer = errors.New("a layer on a disk image must be the disk's next qcow2 overlay (AddLayerOptions.Disk)")
