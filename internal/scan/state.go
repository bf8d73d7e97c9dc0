//go:build linux

package scan

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/anchore/syft/syft/pkg"
	"github.com/anchore/syft/syft/sbom"
)

// stateVersion changes whenever what a state holds, or what the scanner
// does with it, changes: a state of another version is not used (the
// image is scanned in full instead), so an upgraded pib never builds on
// what an older one kept.
const stateVersion = 2

// state is what a scan of an image keeps for scans of images built on
// it (Report.State, Scanner.ScanOn). It is small: paths, not packages;
// the packages of the new image are cataloged again from the files
// these paths name.
type state struct {
	Version int `json:"version"`
	// Evidence is every file syft took a package of this image from
	// (its locations, real and as accessed, and its license files).
	Evidence []string `json:"evidence"`
	// OSOwned are the files the OS packages own. syft drops a binary
	// package whose file an OS package owns; when that owner goes, the
	// file is cataloged again.
	OSOwned []string `json:"os_owned"`
	// Secrets are what the S3.6 walk found, before the files other
	// parts of the check report are left out.
	Secrets []secretHit `json:"secrets"`
	// Roots are the links that make syft index files of skipped trees
	// (linkRoot): the files OS packages own there are related to them.
	Roots []linkRoot `json:"link_roots"`
	// Resolved says which file each path an OS or language package owns
	// names (the package-to-file relationships), and what that depends
	// on.
	Resolved map[string]resolution `json:"resolved"`
}

// secretHit is one file the S3.6 walk reports.
type secretHit struct {
	Path string `json:"path"`
	What string `json:"what"`
}

func newState(doc *sbom.SBOM, hits []secretHit, roots []linkRoot, resolved map[string]resolution) *state {
	st := &state{Version: stateVersion, Secrets: hits, Roots: roots, Resolved: resolved}
	seen := map[string]bool{}
	add := func(list *[]string, p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			*list = append(*list, p)
		}
	}
	for _, p := range doc.Artifacts.Packages.Sorted() {
		for _, l := range p.Locations.ToSlice() {
			add(&st.Evidence, l.RealPath)
			add(&st.Evidence, l.AccessPath)
		}
		for _, lic := range p.Licenses.ToSlice() {
			for _, l := range lic.Locations.ToSlice() {
				add(&st.Evidence, l.RealPath)
				add(&st.Evidence, l.AccessPath)
			}
		}
	}
	clear(seen)
	for _, p := range doc.Artifacts.Packages.Sorted() {
		for _, f := range osOwned(p) {
			add(&st.OSOwned, f)
		}
	}
	slices.Sort(st.Evidence)
	slices.Sort(st.OSOwned)
	return st
}

// osOwned returns the files OS package p owns, as syft's ownership
// relationships read them; nil for any other package.
func osOwned(p pkg.Package) []string {
	if !isOSPackage(p) {
		return nil
	}
	if fo, ok := p.Metadata.(pkg.FileOwner); ok {
		return fo.OwnedFiles()
	}
	return nil
}

func decodeState(data []byte) (*state, error) {
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("the base image's scan state: %w", err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("the base image's scan state is version %d, this pib keeps version %d", st.Version, stateVersion)
	}
	return &st, nil
}
