//go:build linux

package layer

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Special is a device node, FIFO or socket Pack met in the tree. A new
// layer may not carry one (rule T2 of SPEC.md: they are a finding).
type Special struct {
	Path string      // slash-separated, relative to the root, e.g. "opt/n"
	Mode fs.FileMode // type and permission bits
	Dev  uint64      // device number, for devices
}

func (s Special) String() string {
	var what string
	switch {
	case s.Mode&fs.ModeCharDevice != 0:
		what = fmt.Sprintf("character device %d:%d", unix.Major(s.Dev), unix.Minor(s.Dev))
	case s.Mode&fs.ModeDevice != 0:
		what = fmt.Sprintf("block device %d:%d", unix.Major(s.Dev), unix.Minor(s.Dev))
	case s.Mode&fs.ModeNamedPipe != 0:
		what = "FIFO"
	default:
		what = "socket"
	}
	return fmt.Sprintf("/%s: %s, mode %#o", s.Path, what, uint32(s.Mode.Perm()))
}

// SpecialFilesError is Pack's refusal of a tree holding device nodes, FIFOs
// or sockets (T2); Files lists every one of them in path order, so that a
// caller can report each as a finding.
type SpecialFilesError struct {
	Files []Special
}

func (e *SpecialFilesError) Error() string {
	names := make([]string, 0, min(len(e.Files), 5))
	for _, f := range e.Files[:min(len(e.Files), 5)] {
		names = append(names, f.String())
	}
	more := ""
	if len(e.Files) > 5 {
		more = fmt.Sprintf(" and %d more", len(e.Files)-5)
	}
	return fmt.Sprintf("the tree holds %d device nodes, FIFOs or sockets, which a layer may not carry (T2): %s%s; remove them (a service creates what it needs at run time)", len(e.Files), strings.Join(names, "; "), more)
}

// PackOptions tunes Pack.
type PackOptions struct {
	// Exclude, if set, is called with each slash-separated path relative to
	// the root (no leading "./" or "/"), e.g. "var/tmp/pib"; returning true
	// leaves out that entry and everything under it.
	Exclude func(rel string) bool
	// Clamp, if not the zero time, is the latest modification time an
	// entry may carry: a later one (a file the build wrote just now, a
	// parent directory overlayfs copied up and then changed) becomes Clamp,
	// an earlier one (a file a package manager or tar unpacked with its
	// recorded time) is kept. This is BuildKit's "rewrite-timestamp" with
	// SOURCE_DATE_EPOCH: the time of writing is the one thing that differs
	// between two runs of a deterministic installer, and clamping rather
	// than overwriting every time keeps the times that were already
	// reproducible. Clamp is used in whole seconds (truncated).
	Clamp time.Time
}

// Pack writes the tree at dir to w as an uncompressed OCI layer tar in
// POSIX/PAX format.
//
// The output is deterministic: the same tree always yields the same bytes.
// Entries come in path order, comparing paths component by component
// bytewise (the order of filepath.WalkDir), so each directory is followed
// directly by its contents. Mtimes are kept, truncated to whole seconds
// (and limited to opts.Clamp when set); atime and ctime are not recorded;
// owners are numeric only (no user or group names); the only PAX records
// are xattrs (SCHILY.xattr.*) and those the format needs for long names or
// large ids. Hard links within the tree are tar hard links: the first path
// in entry order carries the content, later ones link to it. The root
// directory itself is not an entry. So with Clamp set, two trees that
// differ only in times later than Clamp, atimes, ctimes, inode numbers and
// directory order give the same bytes.
//
// Overlayfs conventions become OCI ones: a whiteout (character device 0:0,
// or a file with the overlay.whiteout xattr) becomes an empty regular file
// ".wh.<name>"; a directory with trusted.overlay.opaque="y" (or
// user.overlay.opaque="y") is followed by "<dir>/.wh..wh..opq". Overlay xattrs
// are never copied into the tar. Whiteout entries carry no metadata (mode 0,
// owner 0:0, mtime 0) so that equal changes give equal layers.
//
// Device nodes (other than whiteouts), FIFOs and sockets are refused (rule
// T2: a build's output is hostile data, and such files are a finding): Pack
// writes no entry for them, walks the whole tree, and returns a
// *SpecialFilesError listing all of them. Refusing rather than omitting
// means no image is ever stored with them, and the caller decides how to
// report it. A file whose name starts with ".wh." and that is not a whiteout
// cannot be expressed in an OCI layer and is an error, as are overlay
// redirect and metacopy xattrs (mount the overlay with redirect_dir=off and
// metacopy=off).
func Pack(ctx context.Context, dir string, w io.Writer, opts PackOptions) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	p := &packer{
		ctx:   ctx,
		clamp: !opts.Clamp.IsZero(),
		max:   opts.Clamp.Unix(),
		tw:    tar.NewWriter(bw),
		opts:  opts,
		links: make(map[fileID]string),
		buf:   make([]byte, 1<<20),
		xbuf:  make([]byte, 4096),
	}
	if err := p.dir(dir, ""); err != nil {
		return err
	}
	if len(p.special) > 0 {
		return &SpecialFilesError{Files: p.special}
	}
	if err := p.tw.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	return nil
}

type fileID struct{ dev, ino uint64 }

type packer struct {
	ctx   context.Context
	tw    *tar.Writer
	opts  PackOptions
	clamp bool              // limit mtimes to max (opts.Clamp)
	max   int64             // unix seconds
	links map[fileID]string // first entry name of each multiply-linked inode
	buf   []byte
	xbuf  []byte
	// special lists device nodes, FIFOs and sockets met, in entry order.
	special []Special
}

// child is one directory entry, examined before any is written so that they
// can be sorted by the name they get in the tar.
type child struct {
	name     string // name in the tar (".wh.x" for a whiteout)
	src      string // name on disk
	st       unix.Stat_t
	xattrs   map[string]string // PAX records, overlay xattrs left out
	whiteout bool
	opaque   bool
}

func (p *packer) dir(abs, rel string) error {
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("pack: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("pack: read directory %s: %w", abs, err)
	}
	kids := make([]child, 0, len(names))
	for _, n := range names {
		r := n
		if rel != "" {
			r = rel + "/" + n
		}
		if p.opts.Exclude != nil && p.opts.Exclude(r) {
			continue
		}
		c := child{name: n, src: n}
		full := abs + "/" + n
		if err := unix.Lstat(full, &c.st); err != nil {
			return fmt.Errorf("pack: %w", &os.PathError{Op: "lstat", Path: full, Err: err})
		}
		if err := p.readXattrs(full, &c); err != nil {
			return fmt.Errorf("pack %s: %w", r, err)
		}
		if c.st.Mode&unix.S_IFMT == unix.S_IFCHR && c.st.Rdev == 0 {
			c.whiteout = true
		}
		if c.whiteout {
			c.name = WhiteoutPrefix + n
		} else if strings.HasPrefix(n, WhiteoutPrefix) {
			return fmt.Errorf("pack %s: names starting with %q are reserved for whiteouts in OCI layers; rename or exclude the file", r, WhiteoutPrefix)
		}
		kids = append(kids, c)
	}
	sort.Slice(kids, func(i, j int) bool { return kids[i].name < kids[j].name })

	for i := range kids {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		c := &kids[i]
		name := c.name
		if rel != "" {
			name = rel + "/" + c.name
		}
		full := abs + "/" + c.src
		if err := p.entry(full, name, c); err != nil {
			return err
		}
		if c.st.Mode&unix.S_IFMT == unix.S_IFDIR {
			srcRel := c.src
			if rel != "" {
				srcRel = rel + "/" + c.src
			}
			if err := p.dir(full, srcRel); err != nil {
				return err
			}
		}
	}
	return nil
}

var epoch = time.Unix(0, 0)

func (p *packer) entry(full, name string, c *child) error {
	st := &c.st
	if c.whiteout {
		return p.write(&tar.Header{Typeflag: tar.TypeReg, Name: name, ModTime: epoch, Format: tar.FormatPAX})
	}
	switch t := st.Mode & unix.S_IFMT; t {
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		m := fs.FileMode(st.Mode & 0o777)
		switch t {
		case unix.S_IFCHR:
			m |= fs.ModeDevice | fs.ModeCharDevice
		case unix.S_IFBLK:
			m |= fs.ModeDevice
		case unix.S_IFIFO:
			m |= fs.ModeNamedPipe
		default:
			m |= fs.ModeSocket
		}
		p.special = append(p.special, Special{Path: name, Mode: m, Dev: uint64(st.Rdev)})
		return nil
	}
	hdr := &tar.Header{
		Name:       name,
		Mode:       int64(st.Mode & 0o7777),
		Uid:        int(st.Uid),
		Gid:        int(st.Gid),
		ModTime:    time.Unix(p.mtime(st), 0),
		PAXRecords: c.xattrs,
		Format:     tar.FormatPAX,
	}
	t := st.Mode & unix.S_IFMT
	if t != unix.S_IFDIR && st.Nlink > 1 {
		id := fileID{uint64(st.Dev), st.Ino}
		if first, ok := p.links[id]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.PAXRecords = tar.TypeLink, first, nil
			return p.write(hdr)
		}
		p.links[id] = name
	}
	switch t {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		if err := p.write(hdr); err != nil {
			return err
		}
		if c.opaque {
			return p.write(&tar.Header{Typeflag: tar.TypeReg, Name: name + "/" + OpaqueMarker, ModTime: epoch, Format: tar.FormatPAX})
		}
		return nil
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		return p.file(full, hdr, st)
	case unix.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return fmt.Errorf("pack: %w", err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	default:
		return fmt.Errorf("pack %s: unsupported file type %#o", name, t)
	}
	return p.write(hdr)
}

// mtime is st's modification time in whole seconds, clamped.
func (p *packer) mtime(st *unix.Stat_t) int64 {
	if p.clamp && st.Mtim.Sec > p.max {
		return p.max
	}
	return st.Mtim.Sec
}

func (p *packer) write(hdr *tar.Header) error {
	if err := p.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("pack %s: %w", hdr.Name, err)
	}
	return nil
}

func (p *packer) file(full string, hdr *tar.Header, st *unix.Stat_t) error {
	fd, err := unix.Open(full, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if err == unix.EPERM { // O_NOATIME needs ownership or CAP_FOWNER
		fd, err = unix.Open(full, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("pack: %w", &os.PathError{Op: "open", Path: full, Err: err})
	}
	f := os.NewFile(uintptr(fd), full)
	defer f.Close()
	if err := p.write(hdr); err != nil {
		return err
	}
	n, err := io.CopyBuffer(p.tw, io.LimitReader(onlyReader{f}, hdr.Size), p.buf)
	if err != nil {
		return fmt.Errorf("pack %s: %w", hdr.Name, err)
	}
	if n != hdr.Size {
		return fmt.Errorf("pack %s: file shrank while packing (%d of %d bytes); nothing may write to the tree while it is packed", hdr.Name, n, hdr.Size)
	}
	return nil
}

// onlyReader hides os.File's WriterTo so that io.CopyBuffer uses our buffer.
type onlyReader struct{ io.Reader }

// readXattrs fills c.xattrs and the overlay flags from the xattrs of full.
func (p *packer) readXattrs(full string, c *child) error {
	names, err := p.listXattrs(full)
	if err != nil || len(names) == 0 {
		return err
	}
	for _, name := range names {
		val, err := p.getXattr(full, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return err
		}
		var suffix string
		if s, ok := strings.CutPrefix(name, overlayTrusted); ok {
			suffix = s
		} else if s, ok := strings.CutPrefix(name, overlayUser); ok {
			suffix = s
		} else {
			if c.xattrs == nil {
				c.xattrs = make(map[string]string)
			}
			c.xattrs[paxXattrPrefix+name] = string(val)
			continue
		}
		switch suffix {
		case "opaque":
			c.opaque = c.st.Mode&unix.S_IFMT == unix.S_IFDIR && string(val) == "y"
		case "whiteout":
			// An "xwhiteout" (Linux 6.7+): a regular file standing for a whiteout.
			c.whiteout = c.whiteout || c.st.Mode&unix.S_IFMT == unix.S_IFREG
		case "redirect", "metacopy":
			return fmt.Errorf("overlay %s xattr %q: the upper directory depends on a lower layer and cannot be packed on its own; mount the overlay with redirect_dir=off,metacopy=off", suffix, name)
		}
	}
	if c.whiteout {
		c.xattrs = nil
	}
	return nil
}

func (p *packer) listXattrs(full string) ([]string, error) {
	for {
		n, err := unix.Llistxattr(full, p.xbuf)
		if err == unix.ERANGE {
			n, err = unix.Llistxattr(full, nil)
			if err != nil {
				return nil, fmt.Errorf("list xattrs of %s: %w", full, err)
			}
			p.xbuf = make([]byte, n*2)
			continue
		}
		if err == unix.ENOTSUP {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list xattrs of %s: %w", full, err)
		}
		var names []string
		for _, s := range strings.Split(string(p.xbuf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func (p *packer) getXattr(full, name string) ([]byte, error) {
	for {
		n, err := unix.Lgetxattr(full, name, p.buf)
		if err == unix.ERANGE {
			n, err = unix.Lgetxattr(full, name, nil)
			if err != nil {
				return nil, err
			}
			p.buf = make([]byte, max(n*2, len(p.buf)))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read xattr %s of %s: %w", name, full, err)
		}
		return append([]byte(nil), p.buf[:n]...), nil
	}
}
