package scan

import (
	"context"
	"fmt"
	"os"

	"github.com/anchore/syft/syft/sbom"

	"github.com/pib-dev/pib/internal/rootfs"
)

// distroFiles are the files syft identifies the distribution by
// (syft/linux/identify_release.go): package URLs carry it.
var distroFiles = []string{"/etc/os-release", "/usr/lib/os-release", "/etc/system-release-cpe", "/etc/redhat-release", "/bin/busybox"}

// catalogOn catalogs the image made of b.Layers from a sparse view: the
// base's evidence files, the distribution files and every file the top
// layer adds, each as the new image has it (ScanOn says why that is the
// full scan's result).
func (s *Scanner) catalogOn(ctx context.Context, name string, b Base, base *state, c *change) (*sbom.SBOM, error) {
	if err := os.MkdirAll(b.WorkDir, 0o700); err != nil {
		return nil, fmt.Errorf("make the scan's work directory: %w", err)
	}
	dir, err := os.MkdirTemp(b.WorkDir, "scan-view-*")
	if err != nil {
		return nil, fmt.Errorf("make the scan's view: %w", err)
	}
	defer os.RemoveAll(dir)
	// The view's root is the image's "/".
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	v := newView(dir, layerStack(b.Layers))
	add := func(paths []string) error {
		for _, p := range paths {
			if skipped(p) {
				continue
			}
			if err := v.add(p); err != nil {
				return err
			}
		}
		return nil
	}
	for _, paths := range [][]string{distroFiles, base.Evidence, c.files} {
		if err := add(paths); err != nil {
			return nil, err
		}
	}
	doc, err := s.catalogDir(ctx, dir, name)
	if err != nil {
		return nil, err
	}
	// A file whose OS package went may hold a binary package syft left
	// out of the base's SBOM because that package owned it.
	owned := map[string]bool{}
	for _, p := range doc.Artifacts.Packages.Sorted() {
		for _, f := range osOwned(p) {
			owned[f] = true
		}
	}
	var lost []string
	for _, f := range base.OSOwned {
		if !owned[f] && !v.added[f] {
			lost = append(lost, f)
		}
	}
	before := len(v.added)
	if err := add(lost); err != nil {
		return nil, err
	}
	if len(v.added) == before {
		return doc, nil
	}
	return s.catalogDir(ctx, dir, name)
}

// catalogDir catalogs the view at dir.
func (s *Scanner) catalogDir(ctx context.Context, dir, name string) (*sbom.SBOM, error) {
	root, err := rootfs.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("scan view: %w", err)
	}
	defer root.Close()
	return s.catalog(ctx, root, name)
}
