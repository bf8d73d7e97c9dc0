//go:build linux

package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// UnpackOptions tunes Unpack.
type UnpackOptions struct {
	// Skipped, if set, is called for each device node or FIFO entry that
	// Unpack did not create (see Unpack), with the entry's cleaned path.
	Skipped func(path string, hdr *tar.Header)
}

// useOpenat2 is switched off by tests to exercise the fallback resolver.
var useOpenat2 = true

// Unpack extracts the uncompressed layer tar r into dir, which must exist and
// be empty, as root: numeric owners, modes including setuid/setgid/sticky,
// mtimes, xattrs, symlinks and hard links.
//
// Device nodes and FIFOs are never created on the host (rule T2: a layer is
// hostile data, and a world-writable /dev/mem twin in the layer cache would
// be reachable by anyone who can reach the cache). Each becomes an overlayfs
// whiteout instead (a 0:0 character device, mode 0, which no driver backs),
// so the path exists in no form in the merged image, as if the layer had
// deleted it — never showing a lower layer's file the layer replaced. Hard
// links to such an entry become whiteouts too. opts.Skipped hears of each.
//
// OCI whiteouts become overlayfs ones so that dir can serve as an overlayfs
// lower directory: ".wh.<name>" becomes a character device 0:0 named <name>,
// "<dir>/.wh..wh..opq" the xattr trusted.overlay.opaque="y" on <dir>.
//
// Input is validated by the rules Check applies (see the package
// documentation); a refused entry yields an *EntryError. Unpack never follows
// a symlink while creating anything. On error dir is left with whatever was
// extracted so far and the caller removes it.
func Unpack(ctx context.Context, r io.Reader, dir string, opts UnpackOptions) (err error) {
	rootfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("unpack layer: open %s: %w", dir, err)
	}
	root := os.NewFile(uintptr(rootfd), dir)
	defer root.Close()
	if names, err := root.Readdirnames(1); len(names) > 0 || (err != nil && err != io.EOF) {
		if err == nil {
			err = errors.New("directory is not empty")
		}
		return fmt.Errorf("unpack layer into %s: %w", dir, err)
	}

	u := &unpacker{
		skipped:  opts.Skipped,
		root:     rootfd,
		dir:      dir,
		cachedFD: -1,
		openat2:  useOpenat2,
		buf:      make([]byte, 1<<20),
		dirIndex: make(map[string]int),
	}
	defer u.closeCached()

	s := newStream(r)
	v := newValidator()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := s.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		a, reason := v.next(hdr)
		if reason != "" {
			return s.refuse(hdr, reason)
		}
		if err := u.apply(s, hdr, &a); err != nil {
			var ee *EntryError
			if errors.As(err, &ee) {
				return err
			}
			return fmt.Errorf("unpack layer: tar entry %q: %w", hdr.Name, err)
		}
	}
	// Directory mtimes last: creating their contents changed them.
	for _, d := range u.dirTimes {
		pfd, err := u.openDir(path.Dir(d.path))
		if err == nil {
			err = setTime(pfd, path.Base(d.path), d.mtime)
		}
		if err != nil {
			return fmt.Errorf("unpack layer: set mtime of %s: %w", d.path, err)
		}
	}
	return nil
}

type dirTime struct {
	path  string
	mtime time.Time
}

type unpacker struct {
	skipped    func(string, *tar.Header)
	root       int
	dir        string
	openat2    bool
	cachedPath string // directory whose O_PATH descriptor is cachedFD
	cachedFD   int
	buf        []byte
	dirTimes   []dirTime
	dirIndex   map[string]int
}

func (u *unpacker) closeCached() {
	if u.cachedFD >= 0 {
		unix.Close(u.cachedFD)
		u.cachedFD = -1
	}
}

// openDir returns an O_PATH descriptor for the directory rel (relative to the
// root), resolved without following any symlink. The descriptor stays owned by
// u: it is valid until the next call.
func (u *unpacker) openDir(rel string) (int, error) {
	if rel == "." {
		return u.root, nil
	}
	if u.cachedFD >= 0 && u.cachedPath == rel {
		return u.cachedFD, nil
	}
	u.closeCached()
	fd, err := u.resolve(rel, unix.O_PATH)
	if err != nil {
		return -1, err
	}
	u.cachedPath, u.cachedFD = rel, fd
	return fd, nil
}

// resolve opens the directory rel beneath the root with flags, refusing to
// follow symlinks or to leave the root. The caller closes the descriptor.
func (u *unpacker) resolve(rel string, flags int) (int, error) {
	flags |= unix.O_DIRECTORY | unix.O_CLOEXEC
	if rel == "." {
		return unix.Openat(u.root, ".", flags, 0)
	}
	if u.openat2 {
		how := unix.OpenHow{
			Flags:   uint64(flags),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
		}
		for range 8 {
			fd, err := unix.Openat2(u.root, rel, &how)
			switch err {
			case nil:
				return fd, nil
			case unix.EAGAIN: // a concurrent rename somewhere on the system; retry
				continue
			case unix.ENOSYS, unix.EPERM: // old kernel or seccomp: walk instead
				u.openat2 = false
			default:
				return -1, err
			}
			break
		}
		if u.openat2 {
			return -1, unix.EAGAIN
		}
	}
	// One component at a time; O_NOFOLLOW|O_DIRECTORY fails on a symlink.
	fd, owned := u.root, false
	comps := splitPath(rel)
	for i, c := range comps {
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(comps)-1 {
			f = flags | unix.O_NOFOLLOW
		}
		nfd, err := unix.Openat(fd, c, f, 0)
		if owned {
			unix.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd, owned = nfd, true
	}
	return fd, nil
}

func splitPath(p string) []string {
	var out []string
	for len(p) > 0 {
		i := 0
		for i < len(p) && p[i] != '/' {
			i++
		}
		out = append(out, p[:i])
		if i < len(p) {
			i++
		}
		p = p[i:]
	}
	return out
}

func (u *unpacker) apply(s *stream, hdr *tar.Header, a *action) error {
	for _, d := range a.mkdirs {
		pfd, err := u.openDir(path.Dir(d))
		if err != nil {
			return err
		}
		base := path.Base(d)
		if err := unix.Mkdirat(pfd, base, 0o755); err != nil {
			return fmt.Errorf("create parent directory %s: %w", d, err)
		}
		if err := unix.Fchownat(pfd, base, 0, 0, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if err := unix.Fchmodat(pfd, base, 0o755, 0); err != nil {
			return err
		}
	}
	switch a.op {
	case opSkip:
		return nil
	case opOpaque:
		fd, err := u.resolve(a.path, unix.O_RDONLY)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return markOpaque(fd)
	}

	pfd, err := u.openDir(path.Dir(a.path))
	if err != nil {
		return err
	}
	base := path.Base(a.path)
	if a.replace {
		if err := unix.Unlinkat(pfd, base, 0); err != nil {
			return fmt.Errorf("replace %s: %w", a.path, err)
		}
	}
	if a.op == opWhiteout {
		return unix.Mknodat(pfd, base, unix.S_IFCHR, 0)
	}
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		// T2: never a device or FIFO on the host; see Unpack.
		if u.skipped != nil {
			u.skipped(a.path, hdr)
		}
		return unix.Mknodat(pfd, base, unix.S_IFCHR, 0)
	}

	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !a.update {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return err
			}
		}
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = setMetaFD(fd, hdr, mode, a)
		if err == nil && a.opaque {
			err = markOpaque(fd)
		}
		unix.Close(fd)
		if err != nil {
			return err
		}
		if i, ok := u.dirIndex[a.path]; ok {
			u.dirTimes[i].mtime = hdr.ModTime
		} else {
			u.dirIndex[a.path] = len(u.dirTimes)
			u.dirTimes = append(u.dirTimes, dirTime{a.path, hdr.ModTime})
		}
		return nil

	case tar.TypeReg:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), a.path)
		err = u.copyContent(s, f, hdr.Size)
		if err == nil {
			err = setMetaFD(fd, hdr, mode, a)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return setTime(pfd, base, hdr.ModTime)

	case tar.TypeLink:
		tfd := pfd
		if dir := path.Dir(a.link); dir != path.Dir(a.path) {
			fd, err := u.resolve(dir, unix.O_PATH)
			if err != nil {
				return fmt.Errorf("hard link target %s: %w", a.link, err)
			}
			defer unix.Close(fd)
			tfd = fd
		}
		// Flags 0: link the target itself, never what a symlink points to.
		return unix.Linkat(tfd, path.Base(a.link), pfd, base, 0)

	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
	}
	// Symlinks: no descriptor to work on, so by name in pfd.
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if len(a.xattrs) > 0 {
		// /proc/self/fd/N pins the parent; Lsetxattr does not follow base.
		p := "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
		for _, x := range a.xattrs {
			if err := unix.Lsetxattr(p, x.name, []byte(x.value), 0); err != nil {
				return fmt.Errorf("set xattr %s: %w", x.name, err)
			}
		}
	}
	return setTime(pfd, base, hdr.ModTime)
}

// setMetaFD sets owner, then mode (chown clears setuid/setgid), then xattrs
// (chown clears security.capability).
func setMetaFD(fd int, hdr *tar.Header, mode uint32, a *action) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return err
	}
	for _, x := range a.xattrs {
		if err := unix.Fsetxattr(fd, x.name, []byte(x.value), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", x.name, err)
		}
	}
	return nil
}

func setTime(dirfd int, name string, mtime time.Time) error {
	ts := unix.Timespec{Sec: mtime.Unix(), Nsec: int64(mtime.Nanosecond())}
	return unix.UtimesNanoAt(dirfd, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

// copyContent copies exactly size bytes of the current entry to f; read
// errors are the stream's (truncation), write errors the file system's.
func (u *unpacker) copyContent(s *stream, f *os.File, size int64) error {
	for size > 0 {
		n, rerr := s.tr.Read(u.buf[:min(int64(len(u.buf)), size)])
		if n > 0 {
			if _, err := f.Write(u.buf[:n]); err != nil {
				return err
			}
			size -= int64(n)
		}
		if rerr != nil {
			if rerr == io.EOF && size == 0 {
				break
			}
			return s.readErr(rerr)
		}
	}
	return nil
}

// markOpaque marks a directory opaque for both kinds of overlay mount that
// use the layer cache: the host's (trusted.overlay.opaque) and the build
// sandbox's, which is mounted inside a user namespace with "userxattr" and
// reads only user.overlay.opaque.
func markOpaque(fd int) error {
	if err := unix.Fsetxattr(fd, xattrOpaque, []byte("y"), 0); err != nil {
		return fmt.Errorf("mark opaque (%s): %w", xattrOpaque, err)
	}
	if err := unix.Fsetxattr(fd, xattrUserOpaque, []byte("y"), 0); err != nil {
		return fmt.Errorf("mark opaque (%s; the file system must support user extended attributes): %w", xattrUserOpaque, err)
	}
	return nil
}
