//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// stageDir is where the init assembles the build's root before it pivots
// into it: a tmpfs the init mounts over /tmp of its own mount namespace (a
// copy of the host's, which it may change but not reach beyond), so no host
// directory has to be searchable by the build's unprivileged IDs.
const stageDir = "/tmp/pib"

// setupRoot mounts the overlay root from the layers Run sent (lower layers
// bottom-most first, then the upper directory's file system) and the kernel
// file systems under it. It runs in the init's fresh mount namespace, so
// every mount disappears with the namespace.
func (s *sandboxInit) setupRoot(layers []int) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Sethostname([]byte("pib-build")); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	if err := unix.Mount("pib-stage", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=1m"); err != nil {
		return fmt.Errorf("mount the staging tmpfs: %w", err)
	}
	attach := func(fd int, dir string) error {
		defer unix.Close(fd)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		return unix.MoveMount(fd, "", unix.AT_FDCWD, dir, unix.MOVE_MOUNT_F_EMPTY_PATH)
	}
	var lower []string
	for i, fd := range layers[:len(layers)-1] {
		dir := fmt.Sprintf("%s/l/%d", stageDir, i)
		if err := attach(fd, dir); err != nil {
			return fmt.Errorf("attach layer %d: %w", i, err)
		}
		lower = append(lower, dir)
	}
	slices.Reverse(lower) // overlay lists the top-most layer first
	upperFS := stageDir + "/u"
	if err := attach(layers[len(layers)-1], upperFS); err != nil {
		return fmt.Errorf("attach the upper directory: %w", err)
	}
	root := stageDir + "/root"
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	if err := mountOverlay(lower, upperFS+"/upper", upperFS+"/work", root); err != nil {
		return fmt.Errorf("mount the overlay root (%d layers): %w", len(lower), err)
	}
	// The build's devices are bind mounts of the host's harmless character
	// devices, taken now while the host's /dev is still in reach (inside a
	// user namespace mknod of a device fails, by design).
	s.devices = map[string]int{}
	for _, name := range buildDevices {
		fd, err := unix.OpenTree(unix.AT_FDCWD, "/dev/"+name, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return fmt.Errorf("take /dev/%s for the build: %w", name, err)
		}
		s.devices[name] = fd
	}
	return pivot(root)
}

// buildDevices are the only devices a build can reach (T1); the devices
// cgroup allows exactly these too (cgroup.go).
var buildDevices = []string{"null", "zero", "full", "random", "urandom", "tty"}

type mountSpec struct {
	target, fstype, data string
	flags                uintptr
	mode                 os.FileMode
}

// pivot makes root the init's root. The host's root stays stacked on it
// until setupInside has mounted /proc and /sys: inside a user namespace
// the kernel allows a new proc or sysfs mount only while a fully visible
// one is in the mount namespace.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	return nil
}

// detachHost drops the host's root stacked on ours by pivot.
func detachHost() error {
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host root: %w", err)
	}
	return unix.Chdir("/")
}

// setupInside runs after pivot_root: every path below resolves inside the
// build's root, symlinks included (lookups start at the new root, not at
// the host root stacked on it).
func (s *sandboxInit) setupInside() error {
	const nosuid, nodev, noexec = unix.MS_NOSUID, unix.MS_NODEV, unix.MS_NOEXEC
	mounts := []mountSpec{
		{"/proc", "proc", "", nosuid | nodev | noexec, 0o555},
		{"/sys", "sysfs", "", nosuid | nodev | noexec | unix.MS_RDONLY, 0o555},
		{"/dev", "tmpfs", "mode=755,size=1m", nosuid | nodev | noexec, 0o755},
		{"/dev/shm", "tmpfs", "mode=1777,size=256m", nosuid | nodev, 0o1777},
		{"/tmp", "tmpfs", "mode=1777,size=512m", nosuid | nodev, 0o1777},
		{"/run", "tmpfs", "mode=755,size=64m", nosuid | nodev, 0o755},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, m.mode); err != nil {
			return fmt.Errorf("create %s: %w", m.target, err)
		}
		if err := unix.Mount(m.fstype, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	// A minimal /dev (T1): no disks, no kernel consoles, and /dev/tty
	// answers ENXIO because the build has no terminal (I1). /dev itself is
	// nodev; each device is a bind mount that keeps its own mount's flags.
	for _, name := range buildDevices {
		p := "/dev/" + name
		if err := os.WriteFile(p, nil, 0o666); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
		fd := s.devices[name]
		err := unix.MoveMount(fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("bind %s: %w", p, err)
		}
	}
	if err := detachHost(); err != nil {
		return err
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		os.Symlink(target, "/dev/"+name)
	}
	// Docker's masked and read-only /proc paths: the kernel-wide knobs
	// (sysrq-trigger, sys/kernel…) that root could otherwise reach.
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats"} {
		if _, err := os.Stat(p); err == nil {
			if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("mask %s: %w", p, err)
			}
		}
	}
	for _, p := range []string{"/proc/acpi", "/proc/scsi", "/sys/firmware"} {
		if _, err := os.Stat(p); err == nil {
			if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0"); err != nil {
				return fmt.Errorf("mask %s: %w", p, err)
			}
		}
	}
	for _, p := range []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", p, err)
		}
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|nosuid|nodev|noexec, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
	}

	// The build's resolv.conf points at the DNS recorder. It is a file on
	// /run bind-mounted over the image's, so the image is not changed; I6
	// compares its content before and after.
	if err := os.MkdirAll(pibRunDir+"/bin", 0o755); err != nil {
		return err
	}
	resolv := pibRunDir + "/resolv.conf"
	if err := os.WriteFile(resolv, []byte("# written by pib: every lookup is recorded (I2)\nnameserver 127.0.0.1\noptions attempts:1 timeout:2\n"), 0o644); err != nil {
		return err
	}
	target := "/etc/resolv.conf"
	if t, err := filepath.EvalSymlinks(target); err == nil {
		target = t
	} else if l, err := os.Readlink(target); err == nil && strings.HasPrefix(l, "/run/") {
		// A dangling link into /run (systemd-resolved): fill it in.
		os.MkdirAll(filepath.Dir(l), 0o755)
		os.WriteFile(l, nil, 0o644)
		target = l
	} else {
		// The image has none: the empty file is pib's, removed again after
		// the install so that it does not show as a change (I6).
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			return fmt.Errorf("create %s for the DNS recorder: %w", target, err)
		}
		s.createdResolv = target
	}
	if err := unix.Mount(resolv, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind resolv.conf: %w", err)
	}
	s.boundResolv = target
	if err := writePowerWrappers(); err != nil {
		return fmt.Errorf("reboot wrappers: %w", err)
	}

	// Copy the packages in from the files Run passed us.
	if err := os.MkdirAll(packagesDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", packagesDir, err)
	}
	names := append([]string{s.cfg.Installer}, s.cfg.Packages...)
	for i, name := range names {
		src := os.NewFile(uintptr(fdPackage+i), name)
		mode := os.FileMode(0o644)
		if i == 0 {
			mode = 0o755
		}
		dst, err := os.OpenFile(filepath.Join(packagesDir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return fmt.Errorf("copy package %s: %w", name, err)
		}
		_, err = io.Copy(dst, src)
		src.Close()
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("copy package %s: %w", name, err)
		}
	}
	return nil
}

// unbindResolv undoes the resolv.conf bind mount and removes the file pib
// created for it, unless the build wrote into it.
func (s *sandboxInit) unbindResolv() {
	if s.boundResolv == "" {
		return
	}
	if err := unix.Unmount(s.boundResolv, unix.MNT_DETACH); err != nil {
		s.log.note("unmount %s: %v", s.boundResolv, err)
		return
	}
	if s.createdResolv != "" {
		if fi, err := os.Lstat(s.createdResolv); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			os.Remove(s.createdResolv)
		}
	}
}

// commonParent returns the deepest directory that holds every path.
func commonParent(paths []string) string {
	parent := filepath.Dir(paths[0])
	for _, p := range paths[1:] {
		for parent != "/" && !strings.HasPrefix(p, parent+"/") {
			parent = filepath.Dir(parent)
		}
	}
	return parent
}

// mountOverlay mounts an overlay at target; lower lists the top-most layer
// first. The new mount API adds one layer per call ("lowerdir+", Linux 6.8),
// so the number of layers is not bounded by mount(2)'s one-page option
// string; older kernels get mount(2). The overlay is mounted inside the
// build's user namespace, where trusted.* xattrs are out of reach: it marks
// opaque directories with user.overlay.* ("userxattr"), and the mount is
// nodev (T1).
func mountOverlay(lower []string, upper, work, target string) error {
	if fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC); err == nil {
		defer unix.Close(fd)
		err := func() error {
			for _, l := range lower {
				if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
					return fmt.Errorf("lowerdir+ %s: %w", l, err)
				}
			}
			if err := unix.FsconfigSetString(fd, "upperdir", upper); err != nil {
				return err
			}
			if err := unix.FsconfigSetString(fd, "workdir", work); err != nil {
				return err
			}
			if err := unix.FsconfigSetFlag(fd, "userxattr"); err != nil {
				return err
			}
			return unix.FsconfigCreate(fd)
		}()
		if err == nil {
			mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV)
			if err != nil {
				return fmt.Errorf("fsmount: %w", err)
			}
			defer unix.Close(mfd)
			return unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}
		if !errors.Is(err, unix.EINVAL) {
			return err
		}
		// EINVAL: a kernel without "lowerdir+"; fall through.
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,userxattr", strings.Join(lower, ":"), upper, work)
	if len(opts) > 4000 {
		// The options must fit in one page: name the layers relative to
		// their common parent (overlayfs resolves relative paths from the
		// mounter's working directory).
		if parent := commonParent(lower); parent != "/" {
			if err := os.Chdir(parent); err == nil {
				rel := make([]string, len(lower))
				for i, l := range lower {
					rel[i], _ = filepath.Rel(parent, l)
				}
				opts = fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,userxattr", strings.Join(rel, ":"), upper, work)
			}
		}
	}
	return unix.Mount("pib-root", target, "overlay", unix.MS_NODEV, opts)
}
