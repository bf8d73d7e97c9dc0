//go:build linux

package layer

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"path"
	"sort"
)

// What a Difference says changed at its path. Added and Removed stand
// alone; the others can come together (a file whose content grew has
// ChangeSize and ChangeContent).
const (
	ChangeAdded   = "added"       // only the new layer has the path
	ChangeRemoved = "removed"     // only the old layer has the path
	ChangeType    = "type"        // e.g. a file in one, a symlink or whiteout in the other
	ChangeSize    = "size"        // regular files of different sizes
	ChangeContent = "content"     // regular files with different bytes
	ChangeMode    = "mode"        // permission, setuid/setgid or sticky bits
	ChangeOwner   = "owner"       // numeric user or group
	ChangeLink    = "link target" // symlink or hard link target
	ChangeMtime   = "mtime"       // modification time (one a clamp left: earlier than it)
	ChangeXattrs  = "xattrs"      // extended attributes
	ChangeOpaque  = "opaque"      // a directory hides the layers below in one only
	ChangeDevice  = "device"      // device numbers of device nodes
)

// Difference is one path whose entry differs between two layers.
type Difference struct {
	// Path is absolute in the image, e.g. "/opt/app/build-stamp"; for a
	// whiteout, the path it deletes.
	Path string `json:"path"`
	// What lists what differs, from the Change constants, in their order.
	What []string `json:"what"`
}

// MaxDiffEntries bounds the entries Diff keeps of each layer: a layer is
// hostile data (T2), and Diff holds one small record per entry.
const MaxDiffEntries = 1 << 20

// Diff compares two layers entry by entry and returns every path whose
// entry differs, in path order; none when the two describe the same
// files (even if their bytes differ, e.g. in entry order or tar encoding).
//
// It exists to tell why two builds of the same inputs gave different
// layers. Both streams are read to the end as Check reads them — every
// entry validated by the same rules, nothing written, no link followed —
// and each entry is kept as a digest of its content and its metadata, so
// memory grows with the number of entries (at most MaxDiffEntries per
// layer), never with their size. Whiteouts are compared as entries of
// their own type at the path they delete, opaque markers as a property of
// their directory; directories Unpack would create implicitly are not
// entries.
func Diff(ctx context.Context, old, new io.Reader) ([]Difference, error) {
	a, err := summarize(ctx, old)
	if err != nil {
		return nil, fmt.Errorf("old layer: %w", err)
	}
	b, err := summarize(ctx, new)
	if err != nil {
		return nil, fmt.Errorf("new layer: %w", err)
	}
	paths := make([]string, 0, len(b))
	for p := range a {
		paths = append(paths, p)
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var out []Difference
	for _, p := range paths {
		x, inA := a[p]
		y, inB := b[p]
		var what []string
		switch {
		case !inA:
			what = []string{ChangeAdded}
		case !inB:
			what = []string{ChangeRemoved}
		default:
			what = x.compare(y)
		}
		if len(what) > 0 {
			out = append(out, Difference{Path: path.Join("/", p), What: what})
		}
	}
	return out, nil
}

// entrySum is what Diff keeps of one entry.
type entrySum struct {
	kind     byte // tar type flag; kindWhiteoutEntry for a whiteout
	mode     int64
	uid, gid int
	size     int64
	content  [sha256.Size]byte
	link     string
	mtime    int64
	xattrs   [sha256.Size]byte
	opaque   bool
	devMajor int64
	devMinor int64
}

// kindWhiteoutEntry is an entrySum.kind no tar entry has.
const kindWhiteoutEntry = 'W'

func (x *entrySum) compare(y *entrySum) []string {
	if x.kind != y.kind {
		return []string{ChangeType}
	}
	var what []string
	add := func(differs bool, w string) {
		if differs {
			what = append(what, w)
		}
	}
	add(x.size != y.size, ChangeSize)
	add(x.content != y.content, ChangeContent)
	add(x.mode != y.mode, ChangeMode)
	add(x.uid != y.uid || x.gid != y.gid, ChangeOwner)
	add(x.link != y.link, ChangeLink)
	add(x.mtime != y.mtime, ChangeMtime)
	add(x.xattrs != y.xattrs, ChangeXattrs)
	add(x.opaque != y.opaque, ChangeOpaque)
	add(x.devMajor != y.devMajor || x.devMinor != y.devMinor, ChangeDevice)
	return what
}

// summarize reads a layer into one entrySum per path it affects.
func summarize(ctx context.Context, r io.Reader) (map[string]*entrySum, error) {
	s := newStream(r)
	v := newValidator()
	out := make(map[string]*entrySum)
	opaque := make(map[string]bool)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := s.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		a, reason := v.next(hdr)
		if reason != "" {
			return nil, s.refuse(hdr, reason)
		}
		if s.n > MaxDiffEntries {
			return nil, fmt.Errorf("the layer has more than %d entries; too many to compare", MaxDiffEntries)
		}
		e := &entrySum{}
		h := sha256.New()
		// Read every byte, as Check does: a truncated stream fails here.
		if _, err := io.Copy(h, s.tr); err != nil {
			return nil, s.readErr(err)
		}
		switch a.op {
		case opSkip:
			continue
		case opOpaque:
			opaque[a.path] = true
			continue
		case opWhiteout:
			out[a.path] = &entrySum{kind: kindWhiteoutEntry}
			continue
		}
		e.kind, e.mode, e.uid, e.gid = hdr.Typeflag, hdr.Mode&0o7777, hdr.Uid, hdr.Gid
		e.mtime = hdr.ModTime.Unix()
		switch hdr.Typeflag {
		case tar.TypeReg:
			e.size = hdr.Size
			copy(e.content[:], h.Sum(nil))
		case tar.TypeSymlink:
			e.link = hdr.Linkname
		case tar.TypeLink:
			e.link = a.link
		case tar.TypeChar, tar.TypeBlock:
			e.devMajor, e.devMinor = hdr.Devmajor, hdr.Devminor
		}
		if len(a.xattrs) > 0 {
			xh := sha256.New()
			for _, x := range a.xattrs {
				fmt.Fprintf(xh, "%d:%s%d:%s", len(x.name), x.name, len(x.value), x.value)
			}
			copy(e.xattrs[:], xh.Sum(nil))
		}
		out[a.path] = e
	}
	for p := range opaque {
		if e, ok := out[p]; ok && e.kind == tar.TypeDir {
			e.opaque = true
		} else {
			// A marker in a directory the layer only implies (or the
			// root): the directory's one property in this layer.
			out[p] = &entrySum{kind: tar.TypeDir, mode: -1, opaque: true}
		}
	}
	return out, nil
}
