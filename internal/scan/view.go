//go:build linux

package scan

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// layerStack reads an image as its unpacked overlay-form layers (bottom
// first): what a path is in the merged image, and which layer holds it,
// without mounting anything. Layers are pib's own layer cache (written by
// package layer, never changed afterwards); lookups go one path component
// at a time with Lstat, so no link in the image is ever followed on the
// host (T2). Lookups are memoized: each directory is looked up once.
type layerStack struct {
	dirs []string
	memo map[string]entry
}

func newLayerStack(dirs []string) *layerStack {
	return &layerStack{dirs: dirs, memo: map[string]entry{"/": {kind: fs.ModeDir}}}
}

// entry is what a path is in the merged image.
type entry struct {
	kind   fs.FileMode // 0 (regular), fs.ModeDir, fs.ModeSymlink; or fs.ModeIrregular for "absent"
	host   string      // the host path of the regular file or link in its layer
	target string      // a link's target
	floor  int         // for a directory: the lowest layer whose content below it shows
}

var absent = entry{kind: fs.ModeIrregular}

// opaque reports whether dir (a host path) is an overlay opaque directory:
// the layers below it contribute nothing under it.
func opaque(dir string) bool {
	buf := make([]byte, 8)
	for _, attr := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if n, err := unix.Lgetxattr(dir, attr, buf); err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}

func whiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*unix.Stat_t)
	return ok && st.Rdev == 0
}

// lookup returns what the clean absolute path p (no link among its
// parents) is in the merged image, as overlayfs merges it: the top layer
// holding p decides; a whiteout, or any non-directory, hides lower
// layers; a directory merges with the directories below it down to the
// first opaque one.
func (ls *layerStack) lookup(p string) entry {
	if e, ok := ls.memo[p]; ok {
		return e
	}
	parent := ls.lookup(path.Dir(p))
	e := absent
	if parent.kind == fs.ModeDir {
		e = ls.find(p, parent.floor)
	}
	ls.memo[p] = e
	return e
}

func (ls *layerStack) find(p string, floor int) entry {
	e := absent
	for i := len(ls.dirs) - 1; i >= floor; i-- {
		h := filepath.Join(ls.dirs[i], filepath.FromSlash(p))
		fi, err := os.Lstat(h)
		if err != nil {
			continue // not in this layer
		}
		if e.kind == fs.ModeDir {
			// p is a directory above: a directory here merges into
			// it, anything else ends the merge.
			if !fi.IsDir() {
				e.floor = i + 1
				return e
			}
			if opaque(h) {
				e.floor = i
				return e
			}
			continue
		}
		switch {
		case whiteout(fi):
			return absent
		case fi.Mode().IsRegular():
			return entry{host: h}
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(h)
			if err != nil {
				return absent
			}
			return entry{kind: fs.ModeSymlink, host: h, target: t}
		case fi.IsDir():
			e = entry{kind: fs.ModeDir, host: h, floor: floor}
			if opaque(h) {
				e.floor = i
				return e
			}
		default:
			return absent // a device, FIFO or socket: never read (T2)
		}
	}
	return e
}

// view is a sparse copy of an image: the files one incremental catalog
// needs, at their own paths, hard-linked from the layer cache (a copy
// when the view is on another file system), and the links leading to
// them, recreated with their own targets. syft catalogs it with Base =
// the view, so the paths it records are the image's.
type view struct {
	dir    string
	layers *layerStack
	added  map[string]bool
}

func newView(dir string, layers *layerStack) *view {
	return &view{dir: dir, layers: layers, added: map[string]bool{"/": true}}
}

// add puts the image's path p into the view as the image resolves it:
// each link met on the way is recreated and followed inside the image (as
// syft does with Base set), up to 40 links. A path that does not exist,
// or ends in anything but a regular file, a link or a directory, adds
// nothing.
func (v *view) add(p string) error { return v.addDepth(path.Clean("/"+p), 0) }

func (v *view) addDepth(p string, depth int) error {
	if depth > 40 {
		return nil // a link loop: syft gives up on it too
	}
	comps := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := "/"
	for i, c := range comps {
		if c == "" {
			continue
		}
		q := path.Join(cur, c)
		e := v.layers.lookup(q)
		switch e.kind {
		case fs.ModeDir:
			if err := v.mkdir(q); err != nil {
				return err
			}
			cur = q
			continue
		case fs.ModeSymlink:
			if err := v.symlink(q, e.target); err != nil {
				return err
			}
			t := e.target
			if !path.IsAbs(t) {
				t = path.Join(path.Dir(q), t)
			}
			return v.addDepth(path.Join(append([]string{"/", t}, comps[i+1:]...)...), depth+1)
		case 0:
			if i == len(comps)-1 {
				return v.link(q, e.host)
			}
		}
		return nil
	}
	return nil
}

func (v *view) host(p string) string { return filepath.Join(v.dir, filepath.FromSlash(p)) }

func (v *view) mkdir(p string) error {
	if v.added[p] {
		return nil
	}
	if err := os.Mkdir(v.host(p), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("scan view: %w", err)
	}
	v.added[p] = true
	return nil
}

func (v *view) parent(p string) error {
	d := path.Dir(p)
	if v.added[d] {
		return nil
	}
	// The parents of a path the image resolved are directories there.
	if err := v.parent(d); err != nil {
		return err
	}
	return v.mkdir(d)
}

func (v *view) symlink(p, target string) error {
	if v.added[p] {
		return nil
	}
	if err := v.parent(p); err != nil {
		return err
	}
	if err := os.Symlink(target, v.host(p)); err != nil {
		return fmt.Errorf("scan view: %w", err)
	}
	v.added[p] = true
	return nil
}

// link hard-links the layer file src into the view at p. Hard links cost
// nothing whatever the file's size; the layer cache and the view are on
// one file system in pib's data directory. Elsewhere the file is copied.
func (v *view) link(p, src string) error {
	if v.added[p] {
		return nil
	}
	if err := v.parent(p); err != nil {
		return err
	}
	dst := v.host(p)
	err := os.Link(src, dst)
	if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EPERM) {
		err = copyRegular(src, dst)
	}
	if err != nil {
		return fmt.Errorf("scan view: %w", err)
	}
	v.added[p] = true
	return nil
}

// copyRegular copies the regular file src; it refuses anything else
// (O_NOFOLLOW, and the opened file is checked), so a file swapped for a
// FIFO or a link is never read (T2).
func copyRegular(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
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

// change is what the top layer did to the image below it.
type change struct {
	// files are the image paths of the regular files and links the
	// layer adds or replaces.
	files []string
	// entries are every path the layer names (files, links, directories,
	// whiteouts); hides are those that hide everything below them in the
	// base: whiteouts, opaque directories and non-directories.
	entries map[string]bool
	hides   map[string]bool
}

// count is the number of paths the layer changed, for the report: files
// and links added or replaced, whiteouts and opaque directories.
func (c *change) count() int { return len(c.hides) }

// touches reports whether the base's path p is changed or gone in the
// new image: named by the layer itself, or below something the layer
// deletes or replaces.
func (c *change) touches(p string) bool {
	if c.entries[p] {
		return true
	}
	for q := path.Dir(p); ; q = path.Dir(q) {
		if c.hides[q] {
			return true
		}
		if q == "/" {
			return false
		}
	}
}

// readChange walks the top layer's unpacked directory.
func readChange(top string) (*change, error) {
	c := &change{entries: map[string]bool{}, hides: map[string]bool{}}
	err := filepath.WalkDir(top, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(top, hp)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		p := "/" + filepath.ToSlash(rel)
		c.entries[p] = true
		switch t := d.Type(); {
		case t.IsDir():
			if opaque(hp) {
				c.hides[p] = true
			}
		case t.IsRegular() || t&fs.ModeSymlink != 0:
			c.files = append(c.files, p)
			c.hides[p] = true
		default:
			// Whiteouts, and devices or FIFOs (never read, T2: the
			// build reports them as findings) hide the base's path.
			c.hides[p] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the build's layer %s: %w", top, err)
	}
	return c, nil
}
