//go:build linux

package layer

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"sort"
	"strings"
)

// The rules Unpack and Check share live here, in a model of the tree that
// needs no file system: Unpack starts from an empty directory, so everything
// that can exist under it — in particular every symlink — was put there by an
// earlier entry of the same stream, and the model knows it.

// kind is what the model knows about a path.
type kind uint8

const (
	kindNone        kind = iota
	kindImplicitDir      // a parent directory the stream never named
	kindDir
	kindOther // regular file, hard link, device or fifo
	kindSymlink
	kindWhiteout
)

// op is what Unpack has to do for one entry.
type op uint8

const (
	opSkip     op = iota // the root entry, AUFS metadata, a whiteout shadowed by this layer
	opCreate             // create the entry (or update an existing directory)
	opWhiteout           // create an overlayfs whiteout at path
	opOpaque             // mark the directory at path opaque
)

// action is a validated entry.
type action struct {
	op      op
	path    string   // cleaned, relative to the root, never "." except for opOpaque
	link    string   // cleaned hard link target
	mkdirs  []string // missing parent directories to create, outermost first
	replace bool     // a non-directory at path has to be removed first
	update  bool     // path is an existing directory: only update its metadata
	opaque  bool     // a directory that replaces a whiteout of this layer hides the layers below
	xattrs  []xattr  // sorted by name, overlay xattrs left out
}

type xattr struct{ name, value string }

type validator struct {
	seen map[string]kind
}

func newValidator() *validator { return &validator{seen: make(map[string]kind)} }

// cleanPath applies the naming rules to a tar name or hard link target.
func cleanPath(name string) (string, string) {
	switch {
	case name == "":
		return "", "empty path"
	case strings.HasPrefix(name, "/"):
		return "", "absolute path"
	case strings.IndexByte(name, 0) >= 0:
		return "", "path contains a NUL byte"
	}
	p := path.Clean(name)
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", "path escapes the layer root"
	}
	return p, ""
}

// parents checks every proper ancestor of p and returns the ones the model
// does not know yet (they will be created as implicit directories).
func (v *validator) parents(p string) (missing []string, reason string) {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		switch v.seen[p[:i]] {
		case kindSymlink:
			return nil, "path traverses a symlink"
		case kindOther, kindWhiteout:
			return nil, fmt.Sprintf("parent %q is not a directory", p[:i])
		case kindNone:
			missing = append(missing, p[:i])
		}
	}
	return missing, ""
}

// next validates hdr against everything seen so far and records its effect.
func (v *validator) next(hdr *tar.Header) (action, string) {
	var a action
	p, reason := cleanPath(hdr.Name)
	if reason != "" {
		return a, reason
	}
	// PAX sparse files (GNU.sparse.*) reach us as regular files whose holes
	// archive/tar fills with zeros: a few kilobytes of layer could make
	// Unpack write terabytes (T2). Refused like the old GNU sparse type.
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return a, "GNU sparse file (PAX GNU.sparse.* records) is not supported"
		}
	}
	if p == "." {
		if hdr.Typeflag != tar.TypeDir {
			return a, "root entry is not a directory"
		}
		return a, ""
	}
	missing, reason := v.parents(p)
	if reason != "" {
		return a, reason
	}
	parent, base := path.Split(p)
	parent = path.Clean(parent) // "" → "."

	if strings.HasPrefix(base, WhiteoutPrefix) {
		v.mark(missing)
		a.mkdirs = missing
		switch {
		case base == OpaqueMarker:
			a.op, a.path = opOpaque, parent
		case strings.HasPrefix(base, whiteoutMetaPrefix):
			// AUFS metadata: containerd and docker ignore it too.
		default:
			target := base[len(WhiteoutPrefix):]
			if target == "." || target == ".." || target == "" {
				return a, "invalid whiteout name"
			}
			wp := path.Join(parent, target)
			if v.seen[wp] == kindNone {
				v.seen[wp] = kindWhiteout
				a.op, a.path = opWhiteout, wp
			}
			// Otherwise this layer already has wp: in the merged view it
			// shadows the lower layers anyway.
		}
		return a, ""
	}

	a.op, a.path = opCreate, p
	old := v.seen[p]
	switch hdr.Typeflag {
	case tar.TypeDir:
		switch old {
		case kindDir, kindImplicitDir:
			a.update = true
		case kindWhiteout:
			a.replace, a.opaque = true, true
		case kindOther, kindSymlink:
			a.replace = true
		}
	case tar.TypeReg, tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if strings.HasSuffix(hdr.Name, "/") {
			return a, "trailing slash on a non-directory"
		}
		switch old {
		case kindDir, kindImplicitDir:
			return a, "entry would replace a directory"
		case kindNone:
		default:
			a.replace = true
		}
	default:
		return a, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag)
	}

	switch hdr.Typeflag {
	case tar.TypeLink:
		t, reason := cleanPath(hdr.Linkname)
		if reason != "" {
			return a, "hard link target: " + reason
		}
		if _, reason := v.parents(t); reason != "" {
			return a, "hard link target: " + reason
		}
		switch k := v.seen[t]; {
		case t == p:
			return a, "hard link to itself"
		case k == kindDir || k == kindImplicitDir:
			return a, "hard link target is a directory"
		case k != kindOther && k != kindSymlink:
			return a, "hard link target is not an earlier entry of this layer"
		}
		a.link = t
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return a, "empty symlink target"
		}
	case tar.TypeChar, tar.TypeBlock:
		if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
			return a, "invalid device number"
		}
	}
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) >= math.MaxUint32 || int64(hdr.Gid) >= math.MaxUint32 {
		return a, "invalid owner"
	}
	if hdr.Typeflag != tar.TypeLink {
		xs, reason := xattrsOf(hdr)
		if reason != "" {
			return a, reason
		}
		a.xattrs = xs
	}

	v.mark(missing)
	a.mkdirs = missing
	switch hdr.Typeflag {
	case tar.TypeDir:
		v.seen[p] = kindDir
	case tar.TypeSymlink:
		v.seen[p] = kindSymlink
	default:
		v.seen[p] = kindOther
	}
	return a, ""
}

func (v *validator) mark(dirs []string) {
	for _, d := range dirs {
		v.seen[d] = kindImplicitDir
	}
}

// xattrsOf returns the SCHILY.xattr.* records of hdr that Unpack would set.
// Overlay xattrs are dropped: a layer must not steer the overlay mount
// (redirect, metacopy, opaque) other than through OCI whiteouts.
func xattrsOf(hdr *tar.Header) ([]xattr, string) {
	var xs []xattr
	for k, val := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok {
			continue
		}
		if strings.HasPrefix(name, overlayTrusted) || strings.HasPrefix(name, overlayUser) {
			continue
		}
		switch {
		case strings.HasPrefix(name, "user."):
			// The kernel allows user.* only on regular files and directories.
			if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeDir {
				return nil, fmt.Sprintf("xattr %q on a %s (user.* xattrs are only allowed on regular files and directories)", name, typeName(hdr.Typeflag))
			}
		case strings.HasPrefix(name, "trusted."), strings.HasPrefix(name, "security."),
			name == "system.posix_acl_access", name == "system.posix_acl_default":
		default:
			return nil, fmt.Sprintf("xattr %q has an unsupported namespace", name)
		}
		if len(name) > 255 {
			return nil, fmt.Sprintf("xattr name %q is too long", name)
		}
		xs = append(xs, xattr{name, val})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].name < xs[j].name })
	return xs, ""
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("entry of type %q", t)
}

// stream wraps tar.Reader so that a stream that breaks off at an entry
// boundary — which tar.Reader takes for a clean end — is refused too.
type stream struct {
	cr   countingReader
	tr   *tar.Reader
	n    int // entries returned so far
	name string
}

const blockSize = 512

func newStream(r io.Reader) *stream {
	s := &stream{}
	s.cr.r = bufio.NewReaderSize(r, 1<<20)
	s.tr = tar.NewReader(&s.cr)
	return s
}

// next returns the next header, io.EOF at a proper end of archive, or an
// *EntryError.
func (s *stream) next() (*tar.Header, error) {
	before := s.cr.n
	hdr, err := s.tr.Next()
	if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
		err = nil // GODEBUG=tarinsecurepath=0: our own rules below are stricter
	}
	switch {
	case err == io.EOF:
		// tar.Reader reports EOF after zero bytes, and after a stream cut
		// inside an extended (PAX) header's padding, as well as after the
		// end-of-archive zero block(s); only the latter is a complete
		// stream, and only it ends in a zero block.
		if s.cr.n-before < blockSize || s.cr.zeros < blockSize {
			return nil, &EntryError{Index: s.n + 1, Reason: "truncated tar stream (no end-of-archive marker)", Err: io.ErrUnexpectedEOF}
		}
		return nil, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, &EntryError{Index: s.n + 1, Reason: "truncated tar stream", Err: err}
	case err != nil:
		return nil, &EntryError{Index: s.n + 1, Reason: "corrupt tar header", Err: err}
	}
	s.n++
	s.name = hdr.Name
	return hdr, nil
}

// readErr turns an error reading the current entry's content into an *EntryError.
func (s *stream) readErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
		return &EntryError{Entry: s.name, Index: s.n, Reason: "truncated tar stream", Err: io.ErrUnexpectedEOF}
	}
	return &EntryError{Entry: s.name, Index: s.n, Reason: "reading content", Err: err}
}

func (s *stream) refuse(hdr *tar.Header, reason string) error {
	return &EntryError{Entry: hdr.Name, Index: s.n, Reason: reason}
}

type countingReader struct {
	r     io.Reader
	n     int64
	zeros int64 // how many of the last bytes read are zero
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	// From the end: content rarely ends in zeros, so this is cheap.
	i := n
	for i > 0 && p[i-1] == 0 {
		i--
	}
	if i == 0 {
		c.zeros += int64(n)
	} else {
		c.zeros = int64(n - i)
	}
	return n, err
}

// CheckName applies the layer naming rules (no absolute paths, nothing
// escaping the root, no NUL bytes) to one archive entry name; other archive
// formats (zip) use it to refuse the same escapes.
func CheckName(name string) error {
	if _, reason := cleanPath(strings.TrimPrefix(name, "./")); reason != "" {
		return &EntryError{Entry: name, Reason: reason}
	}
	return nil
}
