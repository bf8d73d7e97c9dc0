//go:build linux

package sandbox

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/rootfs"
)

// Changes is the I8 list of what the install changed in the root.
type Changes struct {
	Added    int          `json:"added"`
	Modified int          `json:"modified"`
	Deleted  int          `json:"deleted"`
	Files    []FileChange `json:"files"`
}

// FileChange is one changed path, relative to the root ("etc/hosts").
type FileChange struct {
	Path   string `json:"path"`
	Change string `json:"change"` // added, modified, deleted
	Size   int64  `json:"size"`   // bytes after the change; before it for deleted
	Type   string `json:"type"`   // file, dir, symlink, device, fifo, socket
}

// changedFiles walks the overlay upper directory. A whiteout (0:0 char
// device) is a deletion; an entry absent from every lower is an addition;
// anything else is a modification, except directories copied up only
// because something below them changed.
//
// The upper directory and the lowers of a child image are hostile data
// (T2): the walk never follows a symlink, and a path is looked up in a
// lower with no symlink allowed on the way, so a link planted by one layer
// cannot lead a host-side Lstat out of the image.
func changedFiles(upper string, lowers []string) (Changes, error) {
	var ch Changes
	inLower := func(rel string) (os.FileInfo, bool) {
		for i := len(lowers) - 1; i >= 0; i-- {
			if fi, err := lstatBeneath(lowers[i], rel); err == nil {
				return fi, true
			}
		}
		return nil, false
	}
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == upper {
			return nil
		}
		rel, _ := filepath.Rel(upper, p)
		rel = filepath.ToSlash(rel)
		if ExcludePath(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&os.ModeCharDevice != 0 && st != nil && st.Rdev == 0 {
			size := int64(0)
			typ := "file"
			if lf, ok := inLower(rel); ok {
				size, typ = lf.Size(), FileType(lf)
			}
			ch.Files = append(ch.Files, FileChange{Path: rel, Change: "deleted", Size: size, Type: typ})
			ch.Deleted++
			return nil
		}
		lf, exists := inLower(rel)
		switch {
		case !exists:
			ch.Files = append(ch.Files, FileChange{Path: rel, Change: "added", Size: FileSize(fi), Type: FileType(fi)})
			ch.Added++
		case fi.IsDir() && lf.IsDir():
			if opaque(p) {
				ch.Files = append(ch.Files, FileChange{Path: rel, Change: "modified", Type: "dir"})
				ch.Modified++
			} else if lst, ok := lf.Sys().(*syscall.Stat_t); ok && st != nil && (lf.Mode() != fi.Mode() || lst.Uid != st.Uid || lst.Gid != st.Gid) {
				ch.Files = append(ch.Files, FileChange{Path: rel, Change: "modified", Type: "dir"})
				ch.Modified++
			}
		default:
			ch.Files = append(ch.Files, FileChange{Path: rel, Change: "modified", Size: FileSize(fi), Type: FileType(fi)})
			ch.Modified++
		}
		return nil
	})
	if ch.Files == nil {
		ch.Files = []FileChange{}
	}
	return ch, err
}

// opaque reports an overlay opaque directory. The build's overlay is
// mounted in its user namespace with userxattr, so it marks them with
// user.overlay.opaque; trusted.overlay.opaque is the host overlay's.
func opaque(dir string) bool {
	for _, name := range []string{"user.overlay.opaque", "trusted.overlay.opaque"} {
		b := make([]byte, 4)
		if n, err := unix.Lgetxattr(dir, name, b); err == nil && n == 1 && b[0] == 'y' {
			return true
		}
	}
	return false
}

// lstatBeneath is Lstat of root/rel that refuses symlinks on the way
// (the last component may be one: it is reported, not followed).
func lstatBeneath(root, rel string) (os.FileInfo, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	fd, err := unix.Openat2(int(dir.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: filepath.Join(root, rel), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(root, rel))
	defer f.Close()
	return f.Stat()
}

// FileSize is a FileChange's size: a regular file's, else 0.
func FileSize(fi os.FileInfo) int64 {
	if fi.Mode().IsRegular() {
		return fi.Size()
	}
	return 0
}

// FileType is a FileChange's type: file, dir, symlink, device, fifo,
// socket or other.
func FileType(fi os.FileInfo) string {
	switch m := fi.Mode(); {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "dir"
	case m&os.ModeSymlink != 0:
		return "symlink"
	case m&os.ModeDevice != 0:
		return "device"
	case m&os.ModeNamedPipe != 0:
		return "fifo"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "other"
}

// SpecialFileFindings reports the device nodes, FIFOs and sockets a build
// added (T2): an image has no business shipping them, and none of them is
// ever created on the host (keepUpper skips them, the build's layer is not
// stored).
//
// The vm backend (package vmbuild) reports the same on its builds' changes.
func SpecialFileFindings(ch Changes) []Finding {
	var paths []string
	for _, f := range ch.Files {
		if f.Change != "deleted" && (f.Type == "device" || f.Type == "fifo" || f.Type == "socket" || f.Type == "other") {
			paths = append(paths, "/"+f.Path+" ("+f.Type+")")
		}
	}
	if len(paths) == 0 {
		return nil
	}
	return []Finding{{Rule: "T2",
		Message: fmt.Sprintf("the installer left %d device node(s), FIFO(s) or socket(s) in the image; an image must not ship them: remove them before the installer exits (create FIFOs and sockets at run time, e.g. under /run)", len(paths)),
		Detail:  strings.Join(paths, "\n")}}
}

// maxNetworkFileBytes caps how much of one changed network or sysctl
// file the I6 check reads.
const maxNetworkFileBytes = 1 << 20

// networkConfigPaths are the I6 network configuration files and folders.
var networkConfigPaths = []string{
	"etc/network/", "etc/netplan/", "etc/NetworkManager/", "etc/systemd/network/",
	"etc/sysconfig/network-scripts/", "etc/resolv.conf", "etc/nftables.conf", "etc/iptables/",
	"etc/sysconfig/iptables", "etc/sysconfig/ip6tables", "etc/sysconfig/nftables.conf",
}

// NetworkFileFindings reports changed network configuration files and
// sysctl files that set forwarding or routing (I6).
func NetworkFileFindings(upper string, ch Changes) ([]Finding, error) {
	// The upper directory is read as a root of its own (T2); opened once
	// for every sysctl file below.
	root, err := rootfs.Open(upper)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var out []Finding
	for _, f := range ch.Files {
		if f.Type == "dir" && f.Change != "deleted" {
			continue
		}
		hit := false
		for _, p := range networkConfigPaths {
			if f.Path == strings.TrimSuffix(p, "/") || (strings.HasSuffix(p, "/") && strings.HasPrefix(f.Path, p)) {
				hit = true
			}
		}
		if !hit && (f.Path == "etc/sysctl.conf" || strings.HasPrefix(f.Path, "etc/sysctl.d/") ||
			strings.HasPrefix(f.Path, "usr/lib/sysctl.d/") || strings.HasPrefix(f.Path, "lib/sysctl.d/") ||
			strings.HasPrefix(f.Path, "run/sysctl.d/")) && f.Change != "deleted" {
			hit = sysctlSetsRouting(root, f.Path)
		}
		if hit {
			out = append(out, Finding{Rule: "I6",
				Message: "the installer " + f.Change + " network configuration file /" + f.Path + "; installers must not change network configuration"})
		}
	}
	return out, nil
}

// sysctlSetsRouting reports whether the sysctl file rel of the upper
// directory root sets forwarding or routing keys. rel is resolved inside
// the upper directory (T2): a link out of it, to a FIFO or to a device is
// not read.
func sysctlSetsRouting(root *rootfs.FS, rel string) bool {
	b, err := root.ReadFile(rel, maxNetworkFileBytes)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		k, _, _ := strings.Cut(l, "=")
		k = strings.ReplaceAll(strings.TrimSpace(strings.TrimPrefix(k, "-")), "/", ".")
		if strings.Contains(k, "forwarding") || strings.Contains(k, "ip_forward") || strings.Contains(k, "rp_filter") ||
			strings.Contains(k, "accept_redirects") || strings.Contains(k, "send_redirects") || strings.Contains(k, "accept_ra") ||
			strings.Contains(k, "accept_source_route") || strings.HasPrefix(k, "net.ipv4.route") || strings.HasPrefix(k, "net.ipv6.route") ||
			strings.Contains(k, "proxy_arp") || strings.Contains(k, "ip_nonlocal_bind") {
			return true
		}
	}
	return false
}

// keepUpper copies a failed build's upper directory to kept for
// inspection (Config.KeepOnFailure). The copy is hostile data on the host
// (T2): kept is 0700, so no other local user reaches a setuid file or
// anything else in it; only directories, regular files and symlinks are
// copied (links as links, never followed); device nodes, FIFOs, sockets
// and overlay whiteouts are not created on the host; owners and modes are
// kept, extended attributes are not.
func keepUpper(upper, kept string) error {
	if err := os.Mkdir(kept, 0o700); err != nil {
		return err
	}
	return filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(upper, p)
		if rel == "." {
			return nil
		}
		dst := filepath.Join(kept, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch m := fi.Mode(); {
		case m.IsDir():
			// Created 0700, given its real mode at once: the kept root
			// (0700) already keeps other users out.
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
		case m.IsRegular():
			if err := copyRegular(p, dst); err != nil {
				return err
			}
		case m&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
		default:
			return nil // devices, FIFOs, sockets, whiteouts: never on the host
		}
		if st != nil {
			if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			// chmod after chown: chown clears setuid/setgid bits.
			return unix.Fchmodat(unix.AT_FDCWD, dst, uint32(st.Mode&0o7777), 0)
		}
		return nil
	})
}

// copyRegular copies one regular file without following a link at src.
func copyRegular(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
