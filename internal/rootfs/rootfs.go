//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Errors callers test with errors.Is.
var (
	// ErrNotRegular: the path names a FIFO, device, socket or directory,
	// which is never opened for reading.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the file is bigger than the caller's cap.
	ErrTooLarge = errors.New("file too large")
)

// MaxDepth is how many directory levels below its start Walk descends.
const MaxDepth = 1024

// FS is an image root file system on the host. Its methods take slash-
// separated paths inside the image ("/etc/passwd"; relative paths are taken
// from the image root) and are safe for concurrent use.
type FS struct {
	dir  string
	root int // O_PATH descriptor of dir
}

// Open opens the image root at dir, a host directory pib itself made (the
// only path resolved the host's way).
func Open(dir string) (*FS, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open image root %s: %w", dir, &fs.PathError{Op: "open", Path: dir, Err: err})
	}
	return &FS{dir: dir, root: fd}, nil
}

// Close releases the root descriptor.
func (r *FS) Close() error { return unix.Close(r.root) }

// Dir is the host directory the image root lives in, for messages and for
// tools that need a path; never resolve image paths under it yourself.
func (r *FS) Dir() string { return r.dir }

// clean makes name an image path: absolute, cleaned.
func clean(name string) string { return path.Clean("/" + name) }

// openat2 resolves name below dirfd inside the image root.
func openat2(dirfd int, name string, flags uint64, resolve uint64) (int, error) {
	rel := name[1:]
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | resolve,
	}
	for range 16 {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if err == unix.EAGAIN { // a rename raced with the lookup; retry
			continue
		}
		if err == unix.ENOSYS {
			return -1, fmt.Errorf("openat2 is unavailable (Linux 5.6 or later is needed to read images safely): %w", err)
		}
		return fd, err
	}
	return -1, unix.EAGAIN
}

// lookup opens name with O_PATH — following links inside the image unless
// nofollow, in which case a final symlink is opened itself — and stats it.
func (r *FS) lookup(op, name string, nofollow bool) (int, *unix.Stat_t, error) {
	flags := uint64(unix.O_PATH)
	if nofollow {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := openat2(r.root, name, flags, 0)
	if err != nil {
		return -1, nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return fd, &st, nil
}

// ReadFile reads the regular file name, following symbolic links inside
// the image. A file larger than max bytes is ErrTooLarge; anything but a
// regular file is ErrNotRegular and is never opened for reading.
func (r *FS) ReadFile(name string, max int64) ([]byte, error) {
	name = clean(name)
	fd, st, err := r.lookup("read", name, false)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("it is a %s: %w", kind(st.Mode), ErrNotRegular)}
	}
	if st.Size > max {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%d bytes, over the limit of %d: %w", st.Size, max, ErrTooLarge)}
	}
	// Reopen exactly the inode checked above; O_NONBLOCK and O_NOCTTY are
	// belt and braces, meaningless for the regular file it must be.
	rfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(rfd), name)
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if int64(len(data)) > max {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("grew over the limit of %d bytes while read: %w", max, ErrTooLarge)}
	}
	return data, nil
}

// Stat describes name, following symbolic links inside the image.
func (r *FS) Stat(name string) (fs.FileInfo, error) {
	name = clean(name)
	fd, st, err := r.lookup("stat", name, false)
	if err != nil {
		return nil, err
	}
	unix.Close(fd)
	return newInfo(path.Base(name), st), nil
}

// Lstat describes name; a final symbolic link is described itself (links
// before it are followed inside the image).
func (r *FS) Lstat(name string) (fs.FileInfo, error) {
	name = clean(name)
	fd, st, err := r.lookup("lstat", name, true)
	if err != nil {
		return nil, err
	}
	unix.Close(fd)
	return newInfo(path.Base(name), st), nil
}

// ReadLink returns the target of the symbolic link name as the image
// stores it (not resolved).
func (r *FS) ReadLink(name string) (string, error) {
	name = clean(name)
	fd, st, err := r.lookup("readlink", name, true)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: unix.EINVAL}
	}
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, "", buf)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(buf[:n]), nil
}

// ReadDir lists the directory name (links to it followed inside the
// image), sorted by name; entries describe themselves, links not followed.
func (r *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	name = clean(name)
	dfd, err := r.openDir("readdir", name)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	return readDir(dfd, name)
}

// openDir opens the directory name for listing, following links inside
// the image.
func (r *FS) openDir(op, name string) (int, error) {
	fd, st, err := r.lookup(op, name, false)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fd)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -1, &fs.PathError{Op: op, Path: name, Err: unix.ENOTDIR}
	}
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return dfd, nil
}

// readDir lists dfd by name and lstats each entry relative to it: no path
// is ever resolved from the host's root.
func readDir(dfd int, name string) ([]fs.DirEntry, error) {
	dup, err := unix.Dup(dfd)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(dup), name)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	sort.Strings(names)
	out := make([]fs.DirEntry, 0, len(names))
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue // removed meanwhile
			}
			return nil, &fs.PathError{Op: "lstat", Path: path.Join(name, n), Err: err}
		}
		out = append(out, dirEntry{newInfo(n, &st)})
	}
	return out, nil
}

// Glob returns the paths inside the image that match pattern, sorted; only
// the last element may hold wildcards (path.Match syntax). A missing
// directory matches nothing.
func (r *FS) Glob(pattern string) ([]string, error) {
	dir, file := path.Split(clean(pattern))
	if _, err := path.Match(file, ""); err != nil {
		return nil, err
	}
	ents, err := r.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if ok, _ := path.Match(file, e.Name()); ok {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// Walk calls fn for name and everything below it, in lexical order, like
// fs.WalkDir (fs.SkipDir and fs.SkipAll work the same way). Links in name
// itself are followed inside the image; below it no symbolic link is ever
// followed: a link is reported as a link. Paths given to fn are image
// paths under name as given.
func (r *FS) Walk(name string, fn fs.WalkDirFunc) error {
	name = clean(name)
	fd, st, err := r.lookup("walk", name, false)
	if err != nil {
		return skipToNil(fn(name, nil, err))
	}
	defer unix.Close(fd)
	d := dirEntry{newInfo(path.Base(name), st)}
	if !d.IsDir() {
		return skipToNil(fn(name, d, nil))
	}
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return skipToNil(fn(name, d, &fs.PathError{Op: "walk", Path: name, Err: err}))
	}
	defer unix.Close(dfd)
	return skipToNil(walk(dfd, name, d, fn, 0))
}

func skipToNil(err error) error {
	if err == fs.SkipDir || err == fs.SkipAll {
		return nil
	}
	return err
}

// walk visits the directory open as dfd, named p, and its contents.
func walk(dfd int, p string, d fs.DirEntry, fn fs.WalkDirFunc, depth int) error {
	if err := fn(p, d, nil); err != nil {
		if err == fs.SkipDir {
			return nil
		}
		return err
	}
	var ents []fs.DirEntry
	var err error
	if depth >= MaxDepth {
		err = &fs.PathError{Op: "walk", Path: p, Err: fmt.Errorf("more than %d directory levels deep", MaxDepth)}
	} else {
		ents, err = readDir(dfd, p)
	}
	if err != nil {
		if err := fn(p, d, err); err != nil && err != fs.SkipDir {
			return err
		}
		return nil
	}
	for _, e := range ents {
		cp := path.Join(p, e.Name())
		if !e.IsDir() {
			if err := fn(cp, e, nil); err != nil {
				if err == fs.SkipDir {
					return nil // as fs.WalkDir: skip the rest of this directory
				}
				return err
			}
			continue
		}
		// O_NOFOLLOW: a directory swapped for a link since the lstat
		// fails here instead of being followed.
		cfd, err := unix.Openat(dfd, e.Name(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if err := fn(cp, e, &fs.PathError{Op: "walk", Path: cp, Err: err}); err != nil && err != fs.SkipDir {
				return err
			}
			continue
		}
		err = walk(cfd, cp, e, fn, depth+1)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}

// kind names a file type for error messages.
func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symbolic link"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	}
	return "special file"
}

// fileInfo is an fs.FileInfo made from a stat buffer.
type fileInfo struct {
	name string
	st   unix.Stat_t
}

func newInfo(name string, st *unix.Stat_t) *fileInfo { return &fileInfo{name: name, st: *st} }

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return i.st.Size }
func (i *fileInfo) ModTime() time.Time { return time.Unix(i.st.Mtim.Unix()) }
func (i *fileInfo) IsDir() bool        { return i.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (i *fileInfo) Sys() any           { return &i.st }

func (i *fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(i.st.Mode & 0o777)
	switch i.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if i.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if i.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if i.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

type dirEntry struct{ *fileInfo }

func (d dirEntry) Type() fs.FileMode          { return d.Mode().Type() }
func (d dirEntry) Info() (fs.FileInfo, error) { return d.fileInfo, nil }
