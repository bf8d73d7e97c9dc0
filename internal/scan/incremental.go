//go:build linux

package scan

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/anchore/syft/syft/sbom"
	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/rootfs"
)

// distroFiles are the files syft identifies the distribution by
// (syft/linux/identify_release.go, supplement_release.go): package URLs
// carry it.
var distroFiles = []string{"/etc/os-release", "/usr/lib/os-release", "/etc/system-release-cpe", "/etc/redhat-release", "/bin/busybox", "/etc/debian_version"}

// catalogOn catalogs the image made of b.Layers from a sparse view: the
// base's evidence files, the distribution files and every file the top
// layer adds, each as the new image has it (ScanOn says why that is the
// full scan's result).
func (s *Scanner) catalogOn(ctx context.Context, root *rootfs.FS, name string, b Base, base *state, c *change) (*sbom.SBOM, []linkRoot, map[string]resolution, error) {
	doc, err := s.catalogView(ctx, name, b, base, c)
	if err != nil {
		return nil, nil, nil, err
	}
	roots, err := rootsAfter(root, base.Roots, c)
	if err != nil {
		return nil, nil, nil, err
	}
	resolved, err := relateOwnedFiles(doc, root, roots, base, c)
	if err != nil {
		return nil, nil, nil, err
	}
	return doc, roots, resolved, nil
}

// catalogView catalogs the image's sparse view: an overlay of the new
// layer on the base's view (baseView). A mount costs two system calls
// where linking the evidence of a Debian image again (hundreds of
// directories and links) cost more than the whole rest of the scan on a
// busy disk.
func (s *Scanner) catalogView(ctx context.Context, name string, b Base, base *state, c *change) (*sbom.SBOM, error) {
	baseDir, err := baseView(b, base)
	if err != nil {
		return nil, err
	}
	top := b.Layers[len(b.Layers)-1]
	var doc *sbom.SBOM
	err = withOverlay(b.WorkDir, []string{top, baseDir}, func(dir string) error {
		doc, err = s.catalogDir(ctx, dir, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	// A file whose OS package went may hold a binary package syft left
	// out of the base's SBOM because that package owned it: such files
	// go into the view too, and it is cataloged again.
	owned := map[string]bool{}
	for _, p := range doc.Artifacts.Packages.Sorted() {
		for _, f := range osOwned(p) {
			owned[f] = true
		}
	}
	var lost []string
	for _, f := range base.OSOwned {
		if !owned[f] && !c.entries[f] && !skipped(f) {
			lost = append(lost, f)
		}
	}
	if len(lost) == 0 {
		return doc, nil
	}
	extra, err := os.MkdirTemp(b.WorkDir, "scan-extra-*")
	if err != nil {
		return nil, fmt.Errorf("make the scan's view: %w", err)
	}
	defer os.RemoveAll(extra)
	v := newView(extra, newLayerStack(b.Layers))
	for _, f := range lost {
		if err := v.add(f); err != nil {
			return nil, err
		}
	}
	if len(v.added) == 1 { // none of them is in the image
		return doc, nil
	}
	err = withOverlay(b.WorkDir, []string{extra, top, baseDir}, func(dir string) error {
		doc, err = s.catalogDir(ctx, dir, name)
		return err
	})
	return doc, err
}

// withOverlay mounts lower (top first) read-only as one tree under
// workDir for fn.
func withOverlay(workDir string, lower []string, fn func(dir string) error) error {
	mnt, err := os.MkdirTemp(workDir, fmt.Sprintf("scan-view-%d-*", os.Getpid())) // images.Store.UnmountStale reads the PID
	if err != nil {
		return fmt.Errorf("make the scan's view: %w", err)
	}
	defer os.Remove(mnt)
	// An overlay of lower directories only is read-only by construction.
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lower, ":")); err != nil {
		return fmt.Errorf("mount the scan's view: %w", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	return fn(mnt)
}

// building serializes the making of each base view in this process.
var building sync.Map // view directory → *sync.Mutex

// baseView returns the base image's view: its evidence files and
// distribution files, each with the links leading to it, hard-linked from
// the layer cache. It is made once per base image, under WorkDir, and
// shared by every build on that base (never written again).
func baseView(b Base, base *state) (string, error) {
	dir := filepath.Join(b.WorkDir, "views", b.ID)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	mu, _ := building.LoadOrStore(dir, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return "", fmt.Errorf("make the scan's work directory: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "tmp-*")
	if err != nil {
		return "", fmt.Errorf("make the base image's scan view: %w", err)
	}
	// The view's root is the image's "/".
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	v := newView(tmp, newLayerStack(b.Layers[:len(b.Layers)-1]))
	for _, paths := range [][]string{distroFiles, base.Evidence} {
		for _, p := range paths {
			if skipped(p) {
				continue
			}
			if err := v.add(p); err != nil {
				os.RemoveAll(tmp)
				return "", err
			}
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(dir); serr == nil {
			return dir, nil // another process made it first
		}
		return "", fmt.Errorf("keep the base image's scan view: %w", err)
	}
	return dir, nil
}

// catalogDir catalogs the view at dir.
func (s *Scanner) catalogDir(ctx context.Context, dir, name string) (*sbom.SBOM, error) {
	root, err := rootfs.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("scan view: %w", err)
	}
	defer root.Close()
	doc, _, err := s.catalog(ctx, root, name)
	return doc, err
}

// rootsAfter are the linkRoots of the image made of the base and the
// layer c: the base's, checked again unless the layer replaced the link,
// and the layer's own links'.
func rootsAfter(root *rootfs.FS, base []linkRoot, c *change) ([]linkRoot, error) {
	host, err := filepath.EvalSymlinks(root.Dir())
	if err == nil {
		host, err = filepath.Abs(host)
	}
	if err != nil {
		return nil, err
	}
	var out []linkRoot
	check := func(p string) {
		if fi, err := root.Lstat(p); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			return
		}
		t, err := root.ReadLink(p)
		if err != nil || escapes(host, p, t) {
			return
		}
		if r, ok := skippedRoot(host, p, t); ok {
			out = append(out, r)
		}
	}
	for _, r := range base {
		if !c.touches(r.Link) {
			check(r.Link)
		}
	}
	for _, p := range c.files {
		check(p)
	}
	return out, nil
}
