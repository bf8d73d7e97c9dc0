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

// setupRoot mounts the overlay root and the kernel file systems under it.
// It runs in the init's fresh mount namespace, so every mount disappears
// with the namespace.
func (s *sandboxInit) setupRoot() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Sethostname([]byte("pib-build")); err != nil {
		return fmt.Errorf("set hostname: %w", err)
	}
	lower := slices.Clone(s.cfg.LowerDirs)
	slices.Reverse(lower) // overlay lists the top-most layer first
	if err := mountOverlay(lower, s.cfg.UpperDir, s.cfg.OverlayWrk, s.cfg.Root); err != nil {
		return fmt.Errorf("mount the overlay root (%d layers): %w", len(lower), err)
	}
	return nil
}

type mountSpec struct {
	target, fstype, data string
	flags                uintptr
	mode                 os.FileMode
}

// pivot makes root the init's root and detaches the host's file systems.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host root: %w", err)
	}
	return unix.Chdir("/")
}

// setupInside runs after pivot_root: every path below resolves inside the
// build's root, symlinks included.
func (s *sandboxInit) setupInside() error {
	const nosuid, nodev, noexec = unix.MS_NOSUID, unix.MS_NODEV, unix.MS_NOEXEC
	mounts := []mountSpec{
		{"/proc", "proc", "", nosuid | nodev | noexec, 0o555},
		{"/sys", "sysfs", "", nosuid | nodev | noexec | unix.MS_RDONLY, 0o555},
		{"/dev", "tmpfs", "mode=755,size=1m", nosuid | noexec, 0o755},
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
	// A minimal /dev: no terminals (I1), no disks.
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}} {
		p := "/dev/" + d.name
		if err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor))); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
		unix.Chmod(p, 0o666)
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
		os.WriteFile(target, nil, 0o644)
	}
	if err := unix.Mount(resolv, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind resolv.conf: %w", err)
	}
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
// string; older kernels get mount(2).
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
			return unix.FsconfigCreate(fd)
		}()
		if err == nil {
			mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
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
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"), upper, work)
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
				opts = fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(rel, ":"), upper, work)
			}
		}
	}
	return unix.Mount("pib-root", target, "overlay", 0, opts)
}
