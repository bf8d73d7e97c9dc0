//go:build linux

package scan

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/anchore/syft/syft/artifact"
	"github.com/anchore/syft/syft/file"
	"github.com/anchore/syft/syft/pkg"
	"github.com/anchore/syft/syft/sbom"
	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/rootfs"
)

// fileIndex answers, for the whole image, the question syft's directory
// resolver answers from its index when it relates a package to the files
// it owns ("contains", syft/internal/task/package_task_factory.go,
// packageFileOwnershipRelationships): which indexed regular file an owned
// path names. A catalog of a sparse view cannot answer it: the view holds
// the packages' evidence, not the thousands of files they own.
//
// It mirrors syft's index of a directory with Base set: directories,
// regular files and links are indexed, FIFOs, devices and sockets are
// not; links resolve inside the image (absolute targets from its root,
// relative ones from the link's directory, ".." stopping at the root), the
// last one included, at most 40 of them; the trees of skipPaths and the
// links syftEscapes excludes are not in the index; a path that ends at a
// directory names no file; a relative owned path (a Python RECORD's) is
// resolved by syft from the process's working directory, never inside an
// image, and names nothing.
//
// Lookups go through the image root one resolved component at a time,
// never following a link on the host (T2); they are memoized, so the
// owned paths of a Debian image cost one lookup per file.
type fileIndex struct {
	root  *rootfs.FS
	base  string // the root with links resolved, as syftEscapes computes it
	dirfd int
	memo  map[string]entry
	found map[string]string // owned path → real path ("" when none)
	roots map[string]bool   // linkRoot targets
}

func newFileIndex(root *rootfs.FS, roots []linkRoot) (*fileIndex, error) {
	base, err := filepath.EvalSymlinks(root.Dir())
	if err == nil {
		base, err = filepath.Abs(base)
	}
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(root.Dir(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the image root %s: %w", root.Dir(), err)
	}
	x := &fileIndex{root: root, base: base, dirfd: fd, memo: map[string]entry{}, found: map[string]string{}, roots: map[string]bool{}}
	for _, r := range roots {
		x.roots[r.Target] = true
	}
	return x, nil
}

func (x *fileIndex) Close() error { return unix.Close(x.dirfd) }

// lookup returns what the image path q is; every parent of q is a
// directory already looked up, so fstatat's own resolution meets no link.
func (x *fileIndex) lookup(q string) entry {
	if e, ok := x.memo[q]; ok {
		return e
	}
	e := absent
	var st unix.Stat_t
	if err := unix.Fstatat(x.dirfd, q[1:], &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			e = entry{kind: fs.ModeDir}
		case unix.S_IFREG:
			e = entry{}
		case unix.S_IFLNK:
			if t, err := x.root.ReadLink(q); err == nil && !escapes(x.base, q, t) {
				e = entry{kind: fs.ModeSymlink, target: t}
			}
		}
	}
	x.memo[q] = e
	return e
}

// underRoot reports whether the skipped path q is indexed all the same,
// at or below a linkRoot's target.
func (x *fileIndex) underRoot(q string) bool {
	for a := q; a != "/"; a = path.Dir(a) {
		if x.roots[a] {
			return true
		}
	}
	return false
}

// resolution is how an owned path resolved, kept in the scan state so
// that the next image's scan resolves again only what its layer touched:
// empty when the path is itself an indexed regular file reached through
// no link; otherwise the real path ("" for none) followed by the paths
// the answer depends on (each link followed, and where the walk stopped).
type resolution []string

// resolve returns the real path of the indexed regular file the owned
// path p names ("" for none) and its resolution.
func (x *fileIndex) resolve(p string) (string, resolution) {
	real, deps := x.walk(p)
	if real == p && len(deps) == 0 {
		return real, resolution{}
	}
	return real, append(resolution{real}, deps...)
}

// still reports whether r, p's resolution in the base, holds in the
// image made of the base and the layer c.
func (r resolution) still(p string, c *change) (string, bool) {
	if c.touches(p) {
		return "", false
	}
	if len(r) == 0 {
		return p, true
	}
	for _, d := range r {
		if d != "" && c.touches(d) {
			return "", false
		}
	}
	return r[0], true
}

func (x *fileIndex) walk(p string) (string, []string) {
	comps := strings.Split(path.Clean(p)[1:], "/")
	cur := "/"
	var deps []string
	for hops := 0; len(comps) > 0; {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		q := path.Join(cur, c)
		e := x.lookup(q)
		if e.kind != fs.ModeDir && skipped(q) && !x.underRoot(q) {
			// Not indexed (a directory on the way may be: the
			// index holds the parents of a root's target).
			return "", append(deps, q)
		}
		switch e.kind {
		case fs.ModeDir:
			cur = q
		case fs.ModeSymlink:
			deps = append(deps, q)
			if hops++; hops > 40 {
				return "", deps
			}
			t := e.target
			if !path.IsAbs(t) {
				t = path.Join(cur, t)
			}
			comps = append(strings.Split(path.Clean(t)[1:], "/"), comps...)
			cur = "/"
		case 0: // a regular file
			if len(comps) == 0 {
				return q, deps
			}
			return "", append(deps, q)
		default:
			return "", append(deps, q)
		}
	}
	return "", append(deps, cur) // a directory names no file
}

// ownedResolutions resolves every absolute path the packages of doc own
// (see fileIndex), in the image at root with linkRoots roots. With a
// base's resolutions (prior, made with priorRoots) and the layer c on it,
// only paths whose resolution c touches are resolved again. fn, if not
// nil, gets each package's owned files' real paths.
func ownedResolutions(doc *sbom.SBOM, root *rootfs.FS, roots []linkRoot, prior map[string]resolution, priorRoots []linkRoot, c *change, fn func(p pkg.Package, real string)) (map[string]resolution, error) {
	x, err := newFileIndex(root, roots)
	if err != nil {
		return nil, err
	}
	defer x.Close()
	if !slices.Equal(priorRoots, roots) {
		prior = nil // what syft indexes in skipped trees changed
	}
	out := map[string]resolution{}
	reals := map[string]string{}
	for _, p := range doc.Artifacts.Packages.Sorted() {
		fo, ok := p.Metadata.(pkg.FileOwner)
		if !ok {
			continue
		}
		for _, owned := range fo.OwnedFiles() {
			if !path.IsAbs(owned) {
				continue // resolved from syft's working directory: never in the image
			}
			real, ok := reals[owned]
			if !ok {
				var r resolution
				if r, ok = prior[owned]; ok {
					real, ok = r.still(owned, c)
				}
				if !ok {
					real, r = x.resolve(owned)
				}
				out[owned], reals[owned] = r, real
			}
			if fn != nil && real != "" {
				fn(p, real)
			}
		}
	}
	return out, nil
}

// relateOwnedFiles replaces the package-to-file "contains" relationships
// of doc, made from a sparse view, with the whole image's (see
// fileIndex), reusing the base's resolutions that the layer c leaves
// as they were. It returns the image's resolutions, for its state.
func relateOwnedFiles(doc *sbom.SBOM, root *rootfs.FS, roots []linkRoot, base *state, c *change) (map[string]resolution, error) {
	doc.Relationships = slices.DeleteFunc(doc.Relationships, func(r artifact.Relationship) bool {
		_, fromPkg := r.From.(pkg.Package)
		_, toFile := r.To.(file.Coordinates)
		return r.Type == artifact.ContainsRelationship && fromPkg && toFile
	})
	seen := map[artifact.ID]map[string]bool{}
	return ownedResolutions(doc, root, roots, base.Resolved, base.Roots, c, func(p pkg.Package, real string) {
		if seen[p.ID()] == nil {
			seen[p.ID()] = map[string]bool{}
		}
		if seen[p.ID()][real] {
			return
		}
		seen[p.ID()][real] = true
		doc.Relationships = append(doc.Relationships, artifact.Relationship{From: p, To: file.Coordinates{RealPath: real}, Type: artifact.ContainsRelationship})
	})
}
