//go:build linux

// Package disk makes bootable disk images from an image's root file
// system: a GPT partition table, a BIOS boot partition and an EFI system
// partition holding GRUB (so the disk boots with SeaBIOS and with UEFI
// firmware alike), and an ext4 root labelled images.RootLabel made with
// `mkfs.ext4 -d` straight from the tree, without a loop mount.
//
// GRUB comes from the host (Debian's grub-pc-bin and grub-efi-amd64-bin),
// built with grub-mkimage into one self-contained image per firmware with
// every module it needs, so nothing of GRUB has to be installed in the
// image; it then reads the image's own /boot/grub/grub.cfg, or boots
// /vmlinuz and /initrd.img directly when the image has none. The BIOS
// stage is laid out as grub-bios-setup does for a core image embedded in
// a BIOS boot partition (that tool ships only in grub-pc, which would take
// over the host's own boot), see installBIOS.
//
// Reproducible: every identifier (the partition table's and partitions'
// GUIDs, the ext4 UUID and directory hash seed, the FAT serial) derives
// from Options.ID, and file system timestamps from Options.Epoch
// (E2FSPROGS_FAKE_TIME, SOURCE_DATE_EPOCH for mtools). mkfs.ext4 -d also
// copies each file's ctime and atime from the host tree, which record when
// pib unpacked the layer and last read it; fixTimes sets both to the epoch
// afterwards with debugfs. So two trees with the same content, owners,
// modes and modification times give the same disk bytes, whichever unpack
// of the layer cache they come from (TestMakeIsReproducible).
//
// The root tree is hostile data (SPEC T2): mkfs.ext4 reads it without
// following symbolic links, and the host never executes anything in it;
// the kernel check reads it through package rootfs.
package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/rootfs"
)

// RootLabel is the ext4 label of the root partition; bootable images
// mount it by this label (images.RootLabel is the same string).
const RootLabel = "pib-root"

// Format is a disk image file format.
type Format string

const (
	Raw   Format = "raw"
	QCOW2 Format = "qcow2"
)

// Options say what disk Make writes.
type Options struct {
	// Size is the whole disk in bytes; 0 picks MinSize's answer rounded
	// up to a GiB, at least 2 GiB.
	Size int64
	// ID seeds every identifier on the disk (hex digest of the image's
	// manifest, say): the same ID gives the same GUIDs and UUIDs.
	ID string
	// Epoch is the time written into file system metadata.
	Epoch time.Time
}

// Layout, in 512-byte sectors: a 1 MiB gap for the GPT, a 1 MiB BIOS boot
// partition for GRUB's core image, a 32 MiB EFI system partition, then
// the root up to 1 MiB before the end (the backup GPT).
const (
	sector      = 512
	biosStart   = 2048
	biosSectors = 2048
	espStart    = biosStart + biosSectors
	espSectors  = 32 << 20 / sector
	rootStart   = espStart + espSectors
	tailSectors = 2048
)

// RootOffset is the byte offset of the root file system in a disk Make
// wrote: e2fsprogs reach it as "disk.raw?offset=RootOffset".
const RootOffset = rootStart * sector

// ErrNoKernel: the tree has no kernel or initramfs to boot.
var ErrNoKernel = errors.New("the image has no kernel to boot (/vmlinuz and /initrd.img, or /boot/vmlinuz-* and /boot/initrd.img-*)")

// Tools are the host programs Make and Convert run, with the Debian
// package that has each.
var Tools = map[string]string{
	"sfdisk":       "fdisk",
	"mkfs.ext4":    "e2fsprogs",
	"mkfs.vfat":    "dosfstools",
	"mcopy":        "mtools",
	"grub-mkimage": "grub-common",
	"qemu-img":     "qemu-utils",
}

// grubDirs are the GRUB module directories the two firmware stages need.
var grubDirs = map[string]string{
	"i386-pc":    "grub-pc-bin",
	"x86_64-efi": "grub-efi-amd64-bin",
}

// CheckTools says which host programs are missing and how to get them.
func CheckTools() error {
	var missing []string
	for tool, pkg := range Tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, pkg)
		}
	}
	for dir, pkg := range grubDirs {
		if _, err := os.Stat(filepath.Join("/usr/lib/grub", dir, "kernel.img")); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("making disk images needs %s on this machine: apt-get install %s", strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	return nil
}

// Kernel returns the kernel and initramfs paths (inside root) a disk made
// from root would boot, or ErrNoKernel. Reads stay inside root (T2).
func Kernel(root string) (kernel, initrd string, err error) {
	r, err := rootfs.Open(root)
	if err != nil {
		return "", "", err
	}
	defer r.Close()
	regular := func(name string) bool {
		fi, err := r.Stat(name)
		return err == nil && fi.Mode().IsRegular() && fi.Size() > 0
	}
	if regular("/vmlinuz") && regular("/initrd.img") {
		return "/vmlinuz", "/initrd.img", nil
	}
	ks, _ := r.Glob("/boot/vmlinuz-*")
	for i := len(ks) - 1; i >= 0; i-- {
		version := strings.TrimPrefix(ks[i], "/boot/vmlinuz-")
		if regular(ks[i]) && regular("/boot/initrd.img-"+version) {
			return ks[i], "/boot/initrd.img-" + version, nil
		}
	}
	return "", "", ErrNoKernel
}

// MinSize is the smallest disk that holds the tree at root, with room for
// ext4's metadata and some free space for the machine's first boot.
func MinSize(root string) (int64, error) {
	var total int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		// Every inode takes at least a block.
		total += (fi.Size()+4095)/4096*4096 + 256
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure %s: %w", root, err)
	}
	return total + total/4 + 256<<20 + (rootStart+tailSectors)*sector, nil
}

// Make writes a raw disk image of the tree at root to out (replacing it).
// root must have a kernel (Kernel).
func Make(ctx context.Context, root, out string, opts Options) error {
	if err := CheckTools(); err != nil {
		return err
	}
	if _, _, err := Kernel(root); err != nil {
		return err
	}
	min, err := MinSize(root)
	if err != nil {
		return err
	}
	size := opts.Size
	if size == 0 {
		size = max(2<<30, (min+1<<30-1)/(1<<30)*(1<<30))
	}
	if size < min {
		return fmt.Errorf("a %d MiB disk is too small for this image: it needs at least %d MiB; pass a larger --size", size>>20, (min+1<<20-1)>>20)
	}
	size = size / (1 << 20) * (1 << 20)
	rootSectors := size/sector - rootStart - tailSectors

	os.Remove(out)
	f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	epoch := strconv.FormatInt(opts.Epoch.Unix(), 10)
	env := append(os.Environ(), "E2FSPROGS_FAKE_TIME="+epoch, "SOURCE_DATE_EPOCH="+epoch, "MTOOLS_SKIP_CHECK=1", "TZ=UTC")
	run := func(stdin string, name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(stdin)
		var outb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &outb, &outb
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(outb.String()))
		}
		return nil
	}

	table := fmt.Sprintf(`label: gpt
label-id: %s
unit: sectors
first-lba: 2048
start=%d, size=%d, type=21686148-6449-6E6F-744E-656564454649, uuid=%s, name="bios"
start=%d, size=%d, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=%s, name="esp"
start=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=%s, name="root"
`, uuid(opts.ID, "gpt"), biosStart, biosSectors, uuid(opts.ID, "bios"), espStart, espSectors, uuid(opts.ID, "esp"), rootStart, rootSectors, uuid(opts.ID, "root"))
	if err := run(table, "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", out); err != nil {
		return fmt.Errorf("partition the disk: %w", err)
	}

	fsUUID := uuid(opts.ID, "ext4")
	// orphan_file is left out: GRUB 2.06 refuses ext4 file systems that
	// have it (an incompatible feature it does not know).
	if err := run("", "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", RootLabel, "-U", fsUUID, "-O", "^orphan_file",
		"-E", fmt.Sprintf("hash_seed=%s,offset=%d,root_owner=0:0", uuid(opts.ID, "hash"), rootStart*sector),
		"-d", root, out, strconv.FormatInt(rootSectors*sector/1024, 10)+"k"); err != nil {
		return fmt.Errorf("make the root file system: %w", err)
	}
	if err := fixTimes(ctx, out, rootStart*sector, opts.Epoch, env); err != nil {
		return fmt.Errorf("make the root file system: %w", err)
	}

	work, err := os.MkdirTemp(filepath.Dir(out), ".grub-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	early := filepath.Join(work, "early.cfg")
	if err := os.WriteFile(early, []byte(earlyConfig), 0o644); err != nil {
		return err
	}
	efi, core := filepath.Join(work, "bootx64.efi"), filepath.Join(work, "core.img")
	if err := run("", "grub-mkimage", append([]string{"-O", "x86_64-efi", "-o", efi, "-p", "/boot/grub", "-c", early}, append(grubModules, "efi_gop")...)...); err != nil {
		return fmt.Errorf("build GRUB for UEFI: %w", err)
	}
	if err := run("", "grub-mkimage", append([]string{"-O", "i386-pc", "-o", core, "-p", "/boot/grub", "-c", early}, append(grubModules, "biosdisk")...)...); err != nil {
		return fmt.Errorf("build GRUB for BIOS: %w", err)
	}
	for _, p := range []string{efi, core} {
		t := opts.Epoch
		os.Chtimes(p, t, t)
	}

	espImg := fmt.Sprintf("%s@@%d", out, espStart*sector)
	if err := run("", "mkfs.vfat", "-F", "16", "--invariant", "-i", uuid(opts.ID, "fat")[:8], "-n", "ESP", "--offset", strconv.Itoa(espStart), out, strconv.Itoa(espSectors*sector/1024)); err != nil {
		return fmt.Errorf("make the EFI system partition: %w", err)
	}
	if err := run("", "mmd", "-i", espImg, "::/EFI", "::/EFI/BOOT"); err != nil {
		return fmt.Errorf("make the EFI system partition: %w", err)
	}
	if err := run("", "mcopy", "-m", "-i", espImg, efi, "::/EFI/BOOT/BOOTX64.EFI"); err != nil {
		return fmt.Errorf("make the EFI system partition: %w", err)
	}
	if err := installBIOS(out, core); err != nil {
		return fmt.Errorf("install GRUB for BIOS: %w", err)
	}
	return nil
}

// fixTimes sets the access and change times of every inode mkfs.ext4 -d
// allocated to epoch: it copies them from the host tree, where they say
// when pib unpacked the layer and last read it, which would make two
// disks of one image differ. mke2fs allocates inodes from the first free
// one up, so the used ones are 1…(count − free).
func fixTimes(ctx context.Context, img string, offset int64, epoch time.Time, env []string) error {
	dev := fmt.Sprintf("%s?offset=%d", img, offset)
	stats, err := exec.CommandContext(ctx, "dumpe2fs", "-h", dev).Output()
	if err != nil {
		return fmt.Errorf("dumpe2fs: %w", err)
	}
	field := func(name string) (int64, error) {
		m := regexp.MustCompile(`(?m)^` + name + `:\s+(\d+)$`).FindSubmatch(stats)
		if m == nil {
			return 0, fmt.Errorf("dumpe2fs -h has no %q", name)
		}
		return strconv.ParseInt(string(m[1]), 10, 64)
	}
	count, err := field("Inode count")
	if err != nil {
		return err
	}
	free, err := field("Free inodes")
	if err != nil {
		return err
	}
	var cmds bytes.Buffer
	at := "@" + strconv.FormatInt(epoch.Unix(), 10)
	for ino := int64(2); ino <= count-free; ino++ {
		fmt.Fprintf(&cmds, "set_inode_field <%d> atime %s\nset_inode_field <%d> ctime %s\n", ino, at, ino, at)
	}
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", "-", dev)
	cmd.Env = env
	cmd.Stdin = &cmds
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("debugfs: %w: %s", err, lastLine(out))
	}
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// grubModules are built into both GRUB images, so GRUB loads nothing from
// the disk but its configuration.
var grubModules = []string{"part_gpt", "part_msdos", "ext2", "fat", "search", "search_label", "search_fs_uuid",
	"normal", "configfile", "linux", "echo", "test", "serial", "terminal", "gzio", "boot", "minicmd", "ls", "cat", "sleep"}

// earlyConfig is built into GRUB: find the root by label, then read the
// image's own configuration, or boot its kernel directly.
var earlyConfig = `search --no-floppy --label --set=root ` + RootLabel + `
set prefix=($root)/boot/grub
if [ -f ($root)/boot/grub/grub.cfg ]; then
	configfile ($root)/boot/grub/grub.cfg
else
	serial --unit=0 --speed=115200
	terminal_input serial console
	terminal_output serial console
	linux ($root)/vmlinuz root=LABEL=` + RootLabel + ` ro console=tty0 console=ttyS0,115200n8
	initrd ($root)/initrd.img
	boot
fi
`

// Offsets in GRUB's i386-pc boot.img (include/grub/i386/pc/boot.h).
const (
	bootKernelSector = 0x5c  // u64: LBA of core.img's first sector
	bootDriveCheck   = 0x66  // a 2-byte jump, nop'd for hard disks
	bootPartStart    = 0x1b8 // the MBR's disk signature and partition table …
	bootPartEnd      = 0x1fe // … kept as the partitioning tool wrote them
)

// installBIOS does what grub-bios-setup does for a core image embedded in
// a BIOS boot partition: core.img goes into the partition; its first
// sector (diskboot) gets a block list saying where the rest is and where
// to load it; boot.img goes into the MBR, keeping the partition table,
// and is told where core.img starts.
func installBIOS(disk, corePath string) error {
	boot, err := os.ReadFile("/usr/lib/grub/i386-pc/boot.img")
	if err != nil {
		return fmt.Errorf("%w (apt-get install grub-pc-bin)", err)
	}
	core, err := os.ReadFile(corePath)
	if err != nil {
		return err
	}
	if len(boot) != sector {
		return fmt.Errorf("boot.img is %d bytes, want %d", len(boot), sector)
	}
	if rem := len(core) % sector; rem != 0 {
		core = append(core, make([]byte, sector-rem)...)
	}
	n := len(core) / sector
	if n > biosSectors || n < 2 {
		return fmt.Errorf("GRUB's core image has %d sectors; the BIOS boot partition holds %d", n, biosSectors)
	}
	// The first block list entry sits at the end of core.img's first
	// sector; the one before it is the terminator.
	first := sector - 12
	binary.LittleEndian.PutUint64(core[first:], biosStart+1)
	binary.LittleEndian.PutUint16(core[first+8:], uint16(n-1))
	binary.LittleEndian.PutUint16(core[first+10:], 0x820) // segment after diskboot (0x800 + 512/16)
	clear(core[first-12 : first])

	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	mbr := make([]byte, sector)
	if _, err := f.ReadAt(mbr, 0); err != nil {
		return err
	}
	copy(boot[bootPartStart:bootPartEnd], mbr[bootPartStart:bootPartEnd])
	binary.LittleEndian.PutUint64(boot[bootKernelSector:], biosStart)
	boot[bootDriveCheck], boot[bootDriveCheck+1] = 0x90, 0x90
	if _, err := f.WriteAt(core, biosStart*sector); err != nil {
		return err
	}
	if _, err := f.WriteAt(boot, 0); err != nil {
		return err
	}
	return f.Close()
}

// uuid derives a stable, version-4-shaped UUID from the disk's ID and a
// purpose.
func uuid(id, purpose string) string {
	h := sha256.Sum256([]byte("pib disk " + purpose + " " + id))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Convert writes the raw disk at raw to out in format f (raw copies keep
// holes).
func Convert(ctx context.Context, raw, out string, f Format) error {
	var cmd *exec.Cmd
	switch f {
	case Raw:
		cmd = exec.CommandContext(ctx, "cp", "--sparse=always", "--reflink=auto", raw, out)
	case QCOW2:
		if _, err := exec.LookPath("qemu-img"); err != nil {
			return errors.New("writing qcow2 needs qemu-img: apt-get install qemu-utils")
		}
		cmd = exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, out)
	default:
		return fmt.Errorf("unknown disk format %q; use raw or qcow2", f)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("write %s disk: %w: %s", f, err, strings.TrimSpace(string(b)))
	}
	return nil
}
