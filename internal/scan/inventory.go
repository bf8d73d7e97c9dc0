//go:build linux

package scan

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/artifact"
	"github.com/anchore/syft/syft/cataloging"
	"github.com/anchore/syft/syft/cataloging/pkgcataloging"
	"github.com/anchore/syft/syft/pkg"
	"github.com/anchore/syft/syft/sbom"
	"github.com/anchore/syft/syft/source"
	"github.com/anchore/syft/syft/source/directorysource"
	packageurl "github.com/package-url/packageurl-go"

	"github.com/pib-dev/pib/internal/rootfs"
	_ "modernc.org/sqlite" // syft reads RPM databases (SQLite format) through database/sql
)

// catalogerSelection picks syft's catalogers for an installed image: the
// "image" set (OS package databases: dpkg, rpm, apk, …; installed language
// packages: Python site-packages, node_modules, gems, jars, Go and Rust
// binaries), which leaves out lock files and manifests that describe what
// a project would install rather than what is installed, and the
// deb/rpm archive catalogers (a leftover apt cache is not installed
// software, and decompressing it costs seconds). The binary classifier,
// which reads every executable to guess versions of unpackaged software,
// stays: it finds what an installer dropped outside any package manager.
// The GraalVM native-image cataloger goes: it reads the symbol table of
// every ELF file (a tenth of a scan's CPU) for a rare kind of binary that
// the binary classifier also recognises by its version string.
var catalogerSelection = cataloging.NewSelectionRequest().
	WithDefaults(pkgcataloging.ImageTag).
	WithRemovals("graalvm-native-image-cataloger")

// skipPaths are trees no cataloger finds packages in, left out of syft's
// file index: indexing opens every file to sniff its type, so these
// ~5,000 files of manuals, translations and time zones cost a third of a
// scan of a Debian server image. /usr/share/doc stays (dpkg's copyright
// files give the licenses).
var skipPaths = []string{
	"./usr/share/man", "./usr/share/locale", "./usr/share/i18n", "./usr/share/info", "./usr/share/zoneinfo",
	"./proc", "./sys", "./dev", "./run", "./var/log", "./var/cache/apt", "./var/cache/man",
}

// sbomConfig is syft's configuration for scans: no file metadata or
// digests (nothing here needs them, and hashing every file dominates the
// time), no CPEs (matching is by package name in OSV, not CPE), licenses
// recorded by ID only, without their text.
func sbomConfig(toolVersion string) *syft.CreateSBOMConfig {
	cfg := syft.DefaultCreateSBOMConfig().
		WithTool("pib", toolVersion).
		WithoutFiles().
		WithCatalogerSelection(catalogerSelection).
		WithDataGenerationConfig(cataloging.DefaultDataGenerationConfig().WithGenerateCPEs(false)).
		WithLicenseConfig(cataloging.LicenseConfig{
			IncludeContent: cataloging.LicenseContentExcludeAll,
			Coverage:       cataloging.DefaultLicenseConfig().Coverage,
		})
	return cfg
}

// catalog builds the SBOM of the image at root with syft. It also
// returns the image's linkRoots, for the scan state.
func (s *Scanner) catalog(ctx context.Context, root *rootfs.FS, name string) (*sbom.SBOM, []linkRoot, error) {
	escapes, roots, err := imageLinks(root)
	if err != nil {
		return nil, nil, fmt.Errorf("look for links out of the image before cataloging: %w", err)
	}
	src, err := directorysource.New(directorysource.Config{
		Path: root.Dir(),
		// Base makes the directory the root: absolute symlinks inside
		// the image resolve inside it, and paths in the SBOM are the
		// image's own.
		Base:    root.Dir(),
		Alias:   source.Alias{Name: name},
		Exclude: source.ExcludeConfig{Paths: exclusions(escapes)},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open %s for cataloging: %w", root.Dir(), err)
	}
	defer src.Close()
	doc, err := syft.CreateSBOM(s.syftContext(ctx), src, s.sbomCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog packages: %w", err)
	}
	// The source is the image's root, wherever it was mounted for this
	// scan: the SBOM names no host path, and a full and an incremental
	// scan of one image give one SBOM (CycloneDX's component reference
	// is a hash of this path).
	doc.Source.Metadata = source.DirectoryMetadata{Path: "/"}
	return doc, roots, nil
}

// exclusions turns skipPaths and the escaping links into syft's exclusion
// patterns: one pattern of nested alternatives ("./{etc/ssl/certs/{a,b},
// usr/share/{man,locale}}") where syft would be given one per path. syft
// anchors each pattern to the absolute root (a long path under pib's data
// directory) and matches every indexed path against every pattern; on a
// mismatch doublestar also re-reads the rest of the pattern to validate
// it. With the ~160 escaping links of a Debian image (its certificate
// hash links) that was most of a scan. One pattern sharing its prefixes
// costs one pass over the root and a few short alternatives per path.
// Paths with a comma, which would split an alternative, keep a pattern of
// their own; paths below another are covered by it.
func exclusions(escapes []string) []string {
	var alts, out []string
	for _, p := range append(slices.Clone(skipPaths), escapes...) {
		rel := strings.TrimPrefix(p, "./")
		if strings.Contains(rel, ",") {
			out = append(out, p)
			continue
		}
		alts = append(alts, rel)
	}
	if len(alts) == 0 {
		return out
	}
	t := &globTrie{}
	for _, a := range alts {
		t.add(strings.Split(a, "/"))
	}
	return append(out, "./"+t.pattern())
}

// globTrie holds exclusion paths by segment.
type globTrie struct {
	names []string
	kids  map[string]*globTrie
	leaf  bool // a path ends here: everything below is excluded with it
}

func (t *globTrie) add(segs []string) {
	if t.leaf {
		return
	}
	if len(segs) == 0 {
		t.leaf, t.kids, t.names = true, nil, nil
		return
	}
	if t.kids == nil {
		t.kids = map[string]*globTrie{}
	}
	k, ok := t.kids[segs[0]]
	if !ok {
		k = &globTrie{}
		t.kids[segs[0]] = k
		t.names = append(t.names, segs[0])
	}
	k.add(segs[1:])
}

// pattern is the doublestar pattern matching exactly the trie's paths.
func (t *globTrie) pattern() string {
	alts := make([]string, 0, len(t.names))
	for _, n := range t.names {
		k := t.kids[n]
		if k.leaf {
			alts = append(alts, n)
		} else {
			alts = append(alts, n+"/"+k.pattern())
		}
	}
	if len(alts) == 1 {
		return alts[0]
	}
	return "{" + strings.Join(alts, ",") + "}"
}

// skipped reports whether the image path p is in a tree skipPaths leaves
// out of syft's index.
func skipped(p string) bool {
	for _, s := range skipPaths {
		s = strings.TrimPrefix(s, ".")
		if p == s || strings.HasPrefix(p, s+"/") {
			return true
		}
	}
	return false
}

// syftEscapes returns, as syft exclusion patterns, the image's symbolic
// links that would lead syft's directory indexer out of the image (T2).
//
// syft (v1.57, internal/fileresolver/directory_indexer.go, addSymlinkToIndex)
// joins a link's target lexically onto Base, which keeps it inside the
// root, but then os.Stat's that path and, if it exists, indexes it as a new
// root through filepath.EvalSymlinks: both resolve the host's way, so any
// absolute link the path passes through ("/var" -> "/home/operator") takes
// syft onto the host, where catalogers read what they find. syft has no
// option against it, so pib leaves such links out of the index: each link
// whose target, as syft computes it, exists on the host and resolves
// outside the root. Nothing is lost from the image: a link that resolves
// outside the root leads nowhere inside it.
func syftEscapes(root *rootfs.FS) ([]string, error) {
	escapes, _, err := imageLinks(root)
	return escapes, err
}

// linkRoot is a link syft indexes whose target lies in a tree skipPaths
// leaves out: syft indexes the target as a new root all the same (the
// exclusion patterns only stop its walk from entering the tree), so the
// files there are in its index.
type linkRoot struct {
	Link   string `json:"link"`
	Target string `json:"target"`
}

// imageLinks walks the image's links once: those syft must not follow
// (syftEscapes) and those that make syft index a skipped tree's files
// (linkRoot).
func imageLinks(root *rootfs.FS) ([]string, []linkRoot, error) {
	base, err := filepath.EvalSymlinks(root.Dir())
	if err == nil {
		base, err = filepath.Abs(base)
	}
	if err != nil {
		return nil, nil, err
	}
	var out []string
	var roots []linkRoot
	err = root.Walk("/", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type() != fs.ModeSymlink {
			return nil
		}
		target, err := root.ReadLink(p)
		if err != nil {
			return nil
		}
		if escapes(base, p, target) {
			out = append(out, "./"+globEscape(p[1:]))
		} else if r, ok := skippedRoot(base, p, target); ok {
			roots = append(roots, r)
		}
		return nil
	})
	return out, roots, err
}

// skippedRoot returns the linkRoot of the link p, if it is one.
func skippedRoot(base, p, target string) (linkRoot, bool) {
	t := linkTarget(p, target)
	if skipped(p) || !skipped(t) || slices.Contains(skipPaths, "."+t) {
		// syft never reaches p, or the target is not skipped, or it is
		// a skipped tree's top, which the patterns match.
		return linkRoot{}, false
	}
	if _, err := os.Stat(filepath.Join(base, t)); err != nil {
		return linkRoot{}, false // syft makes no root of a missing target
	}
	return linkRoot{Link: p, Target: t}, true
}

// linkTarget is the image path the link p's target names, as syft's
// indexer computes it with Base set: from the root for an absolute target,
// from the link's directory for a relative one, ".." stopping at the root.
func linkTarget(p, target string) string {
	if path.IsAbs(target) {
		return path.Clean(target)
	}
	return path.Join(path.Dir(p), target)
}

// escapes reports whether syft's indexer, given the image root base
// (absolute, links resolved) as its Base, would follow the link p (an
// image path) with this target out of the image: the same host lookups
// syft makes, which only stat and read links, so nothing is opened.
func escapes(base, p, target string) bool {
	t := filepath.Join(base, linkTarget(p, target))
	if _, err := os.Stat(t); err != nil {
		return false // syft ignores a target that does not exist
	}
	real, err := filepath.EvalSymlinks(t)
	return err != nil || (real != base && !strings.HasPrefix(real, base+"/"))
}

// globEscape quotes the characters doublestar (syft's exclusion matcher)
// treats as pattern syntax.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]{}\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// packagesOf turns syft's packages into matching's view: for dpkg the
// source package and version (binNMUs and renamed binaries match their
// source's records), for apk the origin, for language packages the OSV
// ecosystem named by their package URL.
//
// A language package whose files an OS package owns (python3-jinja2's
// copy of Jinja2 under /usr/lib/python3/dist-packages) is the OS
// package's to match: the distribution backports fixes without changing
// the upstream version, so matching it against PyPI advisories would
// report fixed vulnerabilities. It stays in the inventory and SBOM.
func packagesOf(doc *sbom.SBOM, osEco string) []Package {
	ownedByOS := map[artifact.ID]bool{}
	for _, r := range doc.Relationships {
		if r.Type != artifact.OwnershipByFileOverlapRelationship {
			continue
		}
		if parent, ok := r.From.(pkg.Package); ok && isOSPackage(parent) {
			ownedByOS[r.To.ID()] = true
		}
	}
	var out []Package
	for _, p := range doc.Artifacts.Packages.Sorted() {
		q := Package{Name: p.Name, Version: p.Version, SourceName: p.Name, SourceVersion: p.Version, Type: string(p.Type), PURL: p.PURL, Locations: locationsOf(p)}
		switch m := p.Metadata.(type) {
		case pkg.DpkgDBEntry:
			q.Ecosystem = osEco
			if m.Source != "" {
				q.SourceName = m.Source
			}
			if m.SourceVersion != "" {
				q.SourceVersion = m.SourceVersion
			}
		case pkg.ApkDBEntry:
			q.Ecosystem = osEco
			if m.OriginPackage != "" {
				q.SourceName = m.OriginPackage
			}
		case pkg.RpmDBEntry:
			q.Ecosystem = osEco
			// OSV's RPM-based ecosystems key by binary name and write
			// the epoch only when non-zero.
			v := m.Version + "-" + m.Release
			if m.Epoch != nil && *m.Epoch != 0 {
				v = fmt.Sprintf("%d:%s", *m.Epoch, v)
			}
			q.Version, q.SourceVersion = v, v
		default:
			if ownedByOS[p.ID()] {
				break
			}
			q.Ecosystem, q.SourceName = purlEcosystem(p.PURL, p.Name)
			if q.Ecosystem == "Go" && q.SourceName == "stdlib" {
				q.SourceVersion = strings.TrimPrefix(q.SourceVersion, "go")
			}
		}
		out = append(out, q)
	}
	return out
}

// locationsOf returns the image paths syft found p at as its primary
// evidence (the package database, the metadata file, the binary), not
// the files that only support it (a dpkg package's md5sums and copyright
// files); all of them when none is marked primary.
func locationsOf(p pkg.Package) []string {
	var primary, all []string
	for _, l := range p.Locations.ToSlice() {
		if l.RealPath == "" {
			continue
		}
		all = append(all, l.RealPath)
		if l.Annotations[pkg.EvidenceAnnotationKey] == pkg.PrimaryEvidenceAnnotation {
			primary = append(primary, l.RealPath)
		}
	}
	if len(primary) == 0 {
		primary = all
	}
	slices.Sort(primary)
	return slices.Compact(primary)
}

func isOSPackage(p pkg.Package) bool {
	switch p.Metadata.(type) {
	case pkg.DpkgDBEntry, pkg.RpmDBEntry, pkg.ApkDBEntry:
		return true
	}
	return false
}

// purlEcosystem maps a package URL's type to the OSV ecosystem and the
// package name as OSV spells it there.
func purlEcosystem(purl, name string) (string, string) {
	u, err := packageurl.FromString(purl)
	if err != nil {
		return "", name
	}
	join := func(sep string) string {
		if u.Namespace == "" {
			return u.Name
		}
		return u.Namespace + sep + u.Name
	}
	switch u.Type {
	case "pypi":
		return "PyPI", u.Name
	case "npm":
		return "npm", join("/")
	case "golang":
		return "Go", join("/")
	case "maven":
		return "Maven", join(":")
	case "gem":
		return "RubyGems", u.Name
	case "cargo":
		return "crates.io", u.Name
	case "composer":
		return "Packagist", join("/")
	case "nuget":
		return "NuGet", u.Name
	case "hex":
		return "Hex", u.Name
	case "pub":
		return "Pub", u.Name
	}
	return "", name
}
