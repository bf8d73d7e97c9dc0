//go:build linux

package vmbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/disk"
	"github.com/pib-dev/pib/internal/sandbox"
)

// BootNoise reports whether rel (slash-separated, relative to the root)
// is something a boot of the base image changes by itself, or that pib put
// into the disk, rather than the installer: it is left out of the new layer
// and the changed-files list. Each entry says why; a boot with the agent
// and no installer gives an empty layer (TestNoOpBootIsEmpty).
func BootNoise(rel string) bool {
	rel = strings.TrimPrefix(strings.TrimPrefix(rel, "./"), "/")
	if sandbox.ExcludePath(rel) { // var/tmp/pib: the agent's staging directory
		return true
	}
	for _, p := range bootNoise {
		dir, isDir := strings.CutSuffix(p.path, "/")
		switch {
		case rel == p.path, isDir && (rel == dir || strings.HasPrefix(rel, p.path)), p.prefix && strings.HasPrefix(rel, p.path):
			return true
		}
	}
	return false
}

// bootNoise: a path ending in "/" is a directory and covers what is below
// it; prefix covers every path that begins with it.
var bootNoise = []struct {
	path   string
	prefix bool
	why    string
}{
	// What pib writes into the disk before the boot (inject).
	{"usr/local/lib/pib/", false, "the agent binary pib injects"},
	{"etc/cloud/cloud-init.disabled", false, "pib injects it: cloud-init must run at the buyer's first boot, not in the build (it would create the default user, authorized_keys and per-instance state)"},
	{"etc/systemd/system/pib-agent.service", false, "the agent unit pib injects"},
	{"etc/systemd/system/multi-user.target.wants/pib-agent.service", false, "the agent unit's enablement"},
	// Logs of this one boot: the journal, wtmp/lastlog and the rest.
	{"var/log/", false, "logs written by the boot (journal, wtmp, lastlog, cloud-init.log)"},
	// Per-machine identity made at first boot: an image must not carry
	// it (every instance makes its own), and S3 forbids shipping private
	// keys.
	{"etc/machine-id", false, "the machine ID systemd generates at first boot"},
	{"var/lib/dbus/machine-id", false, "D-Bus's copy of the machine ID"},
	{"etc/ssh/ssh_host_", true, "SSH host keys generated at first boot (prefix)"},
	// systemd's and cloud-init's own state of this boot.
	{"var/lib/systemd/random-seed", false, "the random seed saved at shutdown"},
	{"var/lib/systemd/timers/", false, "persistent timers' last-run stamps"},
	{"var/lib/systemd/timesync/", false, "timesyncd's clock file"},
	{"var/lib/systemd/catalog/", false, "the journal catalog database"},
	{"var/lib/systemd/linger/", false, "per-user lingering state"},
	{"var/lib/systemd/coredump/", false, "core dumps of the boot"},
	{"var/lib/systemd/pstore/", false, "crash records"},
	{"var/lib/systemd/backlight/", false, "saved backlight levels"},
	{"var/lib/systemd/rfkill/", false, "saved rfkill state"},
	{"var/lib/systemd/ephemeral-trees/", false, "transient unit trees"},
	{"var/lib/cloud/", false, "cloud-init's per-instance state"},
	{"var/lib/dhcp/", false, "DHCP leases"},
	{"var/lib/private/", false, "DynamicUser services' state"},
	{"var/cache/private/", false, "DynamicUser services' caches"},
	{"var/tmp/systemd-private-", true, "PrivateTmp directories (prefix)"},
	{"var/tmp/cloud-init/", false, "cloud-init's scratch directory"},
	{"tmp/", false, "files in /tmp (systemd cleans it at every boot)"},
	// Daily jobs that may fire during the boot.
	{"var/lib/apt/daily_lock", false, "apt's daily timer lock"},
	{"var/lib/apt/periodic/", false, "apt's daily timer stamps"},
	{"var/lib/logrotate/status", false, "logrotate's state"},
	{"var/lib/man-db/auto-update", false, "man-db's trigger stamp"},
	{"var/cache/man/", false, "man-db's index, rebuilt by its timer"},
	{"var/cache/ldconfig/aux-cache", false, "ldconfig's cache"},
	{"var/lib/sudo/", false, "sudo's timestamps"},
	{"root/.bash_history", false, "a shell history"},
}

// BootNoiseList is the documented exclusion list (path and why), for the
// build report and docs/vm-builds.md.
func BootNoiseList() []string {
	out := []string{"var/tmp/pib/ — the agent's staging directory (sandbox.ExcludePath)"}
	for _, p := range bootNoise {
		out = append(out, p.path+" — "+p.why)
	}
	return out
}

// mountRoot checks and mounts the ext4 root file system of raw read-only
// at a new 0700 directory under dir. The returned function unmounts it and
// must be called.
func mountRoot(ctx context.Context, raw, dir string) (string, func() error, error) {
	loop, err := exec.CommandContext(ctx, "losetup", "--find", "--show", "--read-only",
		"--offset", fmt.Sprint(disk.RootOffset), raw).Output()
	if err != nil {
		return "", nil, fmt.Errorf("attach the build disk to a loop device: %w", err)
	}
	ldev := strings.TrimSpace(string(loop))
	detach := func() error {
		if out, err := exec.Command("losetup", "--detach", ldev).CombinedOutput(); err != nil {
			return fmt.Errorf("detach %s: %w: %s", ldev, err, bytes.TrimSpace(out))
		}
		return nil
	}
	// A corrupt or crafted file system is refused before the host's
	// kernel parses it (T2). -n opens it read-only and answers no.
	var fsckOut bytes.Buffer
	check := exec.CommandContext(ctx, "e2fsck", "-fn", ldev)
	check.Stdout, check.Stderr = &fsckOut, &fsckOut
	if err := check.Run(); err != nil {
		detach()
		return "", nil, &corruptError{out: lastLines(fsckOut.String(), 10), err: err}
	}
	mnt, err := os.MkdirTemp(dir, "root-")
	if err != nil {
		detach()
		return "", nil, err
	}
	if err := os.Chmod(mnt, 0o700); err != nil {
		detach()
		return "", nil, err
	}
	// noload: no journal replay, so not even the kernel writes to the
	// disk; after a clean shutdown the journal is empty anyway.
	err = unix.Mount(ldev, mnt, "ext4", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "noload")
	if err != nil {
		detach()
		os.Remove(mnt)
		return "", nil, fmt.Errorf("mount the build disk's root file system read-only: %w", err)
	}
	return mnt, func() error {
		var errs []error
		if err := unix.Unmount(mnt, 0); err != nil {
			if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mnt, err))
			}
		}
		errs = append(errs, detach(), os.Remove(mnt))
		return errors.Join(errs...)
	}, nil
}

// corruptError is a build disk whose file system e2fsck finds damaged:
// the guest left it so (or crafted it), so it is the build's failure.
type corruptError struct {
	out string
	err error
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("the build disk's file system is damaged (e2fsck -fn: %v): %s", e.err, e.out)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Diff compares the tree at root (the build disk, mounted) with the base
// image's root, and writes what differs to upper as an overlay upper
// directory: new and changed entries as copies (owner and mode kept),
// deletions as whiteouts (0:0 character devices), a directory that
// replaced a non-directory as opaque. BootNoise paths are skipped. Device
// nodes, FIFOs and sockets are listed in the changes but never created on
// the host (the T2 finding comes from the list, as in the sandbox).
//
// Both trees are hostile data (T2): neither walk follows a symlink, and
// every look-up and open is beneath its root with no symlink on the way.
func Diff(root, base, upper string) (sandbox.Changes, error) {
	ch := sandbox.Changes{Files: []sandbox.FileChange{}}
	if err := os.Mkdir(upper, 0o700); err != nil {
		return ch, err
	}
	// made records directories created in upper, so a change deep below
	// gets its parents (with the disk's owner and mode) first.
	made := map[string]bool{"": true}
	var ensureParents func(rel string) error
	ensureParents = func(rel string) error {
		dir := path.Dir(rel)
		if dir == "." {
			dir = ""
		}
		if made[dir] {
			return nil
		}
		if err := ensureParents(dir); err != nil {
			return err
		}
		fi, err := lstatBeneath(root, dir)
		if err != nil {
			return err
		}
		if err := copyEntry(root, dir, fi, upper); err != nil {
			return err
		}
		made[dir] = true
		return nil
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+"/"))
		if rel == "lost+found" || BootNoise(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		bfi, berr := lstatBeneath(base, rel)
		exists := berr == nil
		change := ""
		switch {
		case !exists:
			change = "added"
		case sandbox.FileType(fi) != sandbox.FileType(bfi):
			change = "modified"
		case !sameMeta(fi, bfi):
			change = "modified"
		case fi.Mode()&os.ModeSymlink != 0:
			a, err1 := os.Readlink(p)
			b, err2 := readlinkBeneath(base, rel)
			if err1 != nil || err2 != nil || a != b {
				change = "modified"
			}
		case xattrCarrier(fi):
			same, err := sameXattrs(root, base, rel)
			if err != nil {
				return err
			}
			if !same {
				change = "modified"
			}
		}
		if change == "" {
			return nil
		}
		ch.Files = append(ch.Files, sandbox.FileChange{Path: rel, Change: change, Size: sandbox.FileSize(fi), Type: sandbox.FileType(fi)})
		if change == "added" {
			ch.Added++
		} else {
			ch.Modified++
		}
		if special(fi) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil // never created on the host (T2)
		}
		if err := ensureParents(rel); err != nil {
			return err
		}
		if err := copyEntry(root, rel, fi, upper); err != nil {
			return err
		}
		if fi.IsDir() {
			made[rel] = true
			if exists && !bfi.IsDir() {
				// A directory where the base has a file: it must hide
				// nothing below (there is nothing below a file), but
				// overlay semantics want it opaque.
				if err := unix.Lsetxattr(filepath.Join(upper, rel), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
					return fmt.Errorf("mark %s opaque: %w", rel, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return ch, fmt.Errorf("compare the build disk with the base image: %w", err)
	}
	// Deletions: what the base has and the disk does not.
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == base {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, base+"/"))
		if BootNoise(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if rfi, err := lstatBeneath(root, rel); err == nil {
			if d.IsDir() && !rfi.IsDir() {
				// A file replaced the directory: the first walk stored
				// it, and it hides everything below.
				return filepath.SkipDir
			}
			return nil
		} else if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		ch.Files = append(ch.Files, sandbox.FileChange{Path: rel, Change: "deleted", Size: sandbox.FileSize(fi), Type: sandbox.FileType(fi)})
		ch.Deleted++
		if err := ensureParents(rel); err != nil {
			return err
		}
		// An overlay whiteout: a character device 0/0, mode 0.
		if err := unix.Mknod(filepath.Join(upper, rel), unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("write the whiteout of %s: %w", rel, err)
		}
		if d.IsDir() {
			return filepath.SkipDir // its content goes with it
		}
		return nil
	})
	if err != nil {
		return ch, fmt.Errorf("list what the install deleted: %w", err)
	}
	sort.Slice(ch.Files, func(i, j int) bool { return ch.Files[i].Path < ch.Files[j].Path })
	return ch, nil
}

// sameMeta compares what a layer keeps of an entry besides its content.
func sameMeta(a, b os.FileInfo) bool {
	sa, ok1 := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return false
	}
	if sa.Mode != sb.Mode || sa.Uid != sb.Uid || sa.Gid != sb.Gid {
		return false
	}
	// A regular file with the base's size and modification time is taken
	// as unchanged (see the package doc's limits): comparing every byte
	// would read the whole image twice per build. Seconds only: mkfs.ext4
	// -d, which made the disk, keeps whole seconds of the layer's times.
	if a.Mode().IsRegular() && (sa.Size != sb.Size || sa.Mtim.Sec != sb.Mtim.Sec) {
		return false
	}
	if special(a) && sa.Rdev != sb.Rdev {
		return false
	}
	return true
}

func special(fi os.FileInfo) bool {
	m := fi.Mode()
	return m&(os.ModeDevice|os.ModeCharDevice|os.ModeNamedPipe|os.ModeSocket|os.ModeIrregular) != 0
}

// copyEntry writes root/rel into upper/rel: a directory, a regular file
// (copied, never followed) or a symlink (as a link), with the owner and
// mode of the original. Special files never get here.
func copyEntry(root, rel string, fi os.FileInfo, upper string) error {
	dst := filepath.Join(upper, rel)
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		return fmt.Errorf("%s: no owner information", rel)
	}
	switch m := fi.Mode(); {
	case rel == "":
		// the root itself: upper exists
	case m.IsDir():
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case m.IsRegular():
		in, err := openBeneath(root, rel)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		// Bounded: the file's size as the disk's file system gave it,
		// which the disk's size bounds.
		if _, err := io.Copy(out, io.LimitReader(in, st.Size)); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
	case m&os.ModeSymlink != 0:
		target, err := readlinkBeneath(root, rel)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: refusing to copy a special file", rel)
	}
	if rel == "" {
		return nil
	}
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		// chmod after chown: chown clears setuid/setgid bits. The build
		// directory above is 0700: no other user reaches a setuid copy.
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	if xattrCarrier(fi) {
		// After the chown too: it clears file capabilities.
		if err := copyXattrs(root, rel, upper); err != nil {
			return err
		}
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, []unix.Timespec{unix.NsecToTimespec(st.Mtim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}, unix.AT_SYMLINK_NOFOLLOW)
}

// beneath opens root/rel with O_PATH, refusing symlinks on the way and at
// the end (the last one is reported, not followed).
func beneath(root, rel string, flags uint64) (*os.File, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(int(dir.Fd()), rel, &unix.OpenHow{
		Flags:   flags | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: rel, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
}

func lstatBeneath(root, rel string) (os.FileInfo, error) {
	f, err := beneath(root, rel, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

func openBeneath(root, rel string) (*os.File, error) {
	f, err := beneath(root, rel, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", rel)
	}
	return f, nil
}

func readlinkBeneath(root, rel string) (string, error) {
	f, err := beneath(root, rel, unix.O_PATH)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(int(f.Fd()), "", buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
