//go:build linux

package scan

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pib-dev/pib/internal/vulndb"
)

// Inventories yields kept inventories (S5): fn is called once per image,
// possibly from several goroutines at once (fn is safe for that), and an
// error from fn ends the walk with that error.
type Inventories func(fn func(imageID string, inv *Inventory) error) error

// Rematch matches every inventory invs yields against db again, without
// reading any image (S5), and calls fn with each image's findings and
// warnings, in image ID order: exactly what a scan's matching gives for
// the same packages.
//
// It is built for many images at once. Images share most packages, so
// the walk keeps of each image only references to its distinct packages
// (4 bytes a package); each (ecosystem, source package, source version) is
// then evaluated once, each source package looked up once, and every
// image's findings assembled from those results. Memory is bounded by the
// distinct packages plus those references — about 750 bytes for an image
// of 185 packages — never by whole inventories, which are read once each.
func Rematch(ctx context.Context, db *vulndb.DB, invs Inventories, fn func(imageID string, findings []Finding, warnings []string) error) error {
	return rematch(ctx, db, invs, fn)
}

// pkgKey is what a package's findings depend on, apart from its binary
// name and version, which only label them.
type pkgKey struct {
	eco, name, version string
}

// keyResult is the evaluation of one pkgKey: its findings with Package
// and InstalledVersion left for each image to fill in, and its warnings,
// in the order match would produce them.
type keyResult struct {
	findings []Finding
	related  [][]string // each finding's related CVEs, for rateByAliases
	warnings []string
}

// interned is every distinct package the walk saw, and each image's
// packages as indexes into it.
type interned struct {
	mu     sync.Mutex
	pkgs   []Package
	index  map[internKey]int32
	keys   map[pkgKey]*keyResult
	images []internedImage
}

// internKey is what a finding takes of a Package, as a map key.
type internKey struct {
	name, version, sourceName, sourceVersion, eco, locations string
}

func keyOf(p Package) internKey {
	return internKey{p.Name, p.Version, p.SourceName, p.SourceVersion, p.Ecosystem, strings.Join(p.Locations, "\x00")}
}

type internedImage struct {
	id   string
	pkgs []int32
}

func (in *interned) add(imageID string, inv *Inventory) {
	refs := make([]int32, 0, len(inv.Packages))
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, p := range inv.Packages {
		if p.Ecosystem == "" {
			continue // never matched
		}
		p.PURL, p.Type = "", "" // not part of a finding
		k := keyOf(p)
		i, ok := in.index[k]
		if !ok {
			i = int32(len(in.pkgs))
			in.pkgs = append(in.pkgs, p)
			in.index[k] = i
			k := pkgKey{p.Ecosystem, p.SourceName, p.SourceVersion}
			if in.keys[k] == nil {
				in.keys[k] = &keyResult{}
			}
		}
		refs = append(refs, i)
	}
	in.images = append(in.images, internedImage{id: imageID, pkgs: refs})
}

func rematch(ctx context.Context, db lookuper, invs Inventories, fn func(imageID string, findings []Finding, warnings []string) error) error {
	in := &interned{index: map[internKey]int32{}, keys: map[pkgKey]*keyResult{}}
	err := invs(func(imageID string, inv *Inventory) error {
		in.add(imageID, inv)
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	in.index = nil
	if err := evaluate(ctx, db, in.keys); err != nil {
		return err
	}
	sort.Slice(in.images, func(i, j int) bool { return in.images[i].id < in.images[j].id })
	pkgs := make([]Package, 0, 256)
	for i := range in.images {
		if err := ctx.Err(); err != nil {
			return err
		}
		img := &in.images[i]
		pkgs = pkgs[:0]
		for _, r := range img.pkgs {
			pkgs = append(pkgs, in.pkgs[r])
		}
		img.pkgs = nil // assembled: let it go
		findings, warnings := assemble(pkgs, in.keys)
		if err := fn(img.id, findings, warnings); err != nil {
			return err
		}
	}
	return nil
}

// evaluate fills in every key's result: per ecosystem, source names are
// looked up in chunks (bounding the entries held at once), and each
// version of a name is evaluated against the name's entries.
func evaluate(ctx context.Context, db lookuper, keys map[pkgKey]*keyResult) error {
	// versions[eco][source name] lists the versions to evaluate.
	versions := map[string]map[string][]string{}
	for k := range keys {
		if versions[k.eco] == nil {
			versions[k.eco] = map[string][]string{}
		}
		versions[k.eco][k.name] = append(versions[k.eco][k.name], k.version)
	}
	const chunk = 500
	for eco, byName := range versions {
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		sort.Strings(names)
		for start := 0; start < len(names); start += chunk {
			part := names[start:min(start+chunk, len(names))]
			entries, err := db.Lookup(ctx, eco, part)
			if err != nil {
				return err
			}
			bySource := map[string][]vulndb.Entry{}
			for _, e := range entries {
				bySource[e.Package] = append(bySource[e.Package], e)
			}
			var unrated []*Finding
			var related [][]string
			for _, name := range part {
				es := bySource[vulndb.NormalizeName(baseEco(eco), name)]
				for _, v := range byName[name] {
					r := keys[pkgKey{eco, name, v}]
					ev := evaluatePackage(name, v, es)
					r.findings, r.related, r.warnings = ev.findings, ev.related, ev.warnings
					for i := range r.findings {
						if r.findings[i].Severity == Unknown {
							unrated = append(unrated, &r.findings[i])
							related = append(related, r.related[i])
						}
					}
				}
			}
			// One query for a whole chunk of packages.
			if err := rateByAliases(ctx, db, unrated, related); err != nil {
				return err
			}
		}
	}
	return nil
}

// assemble gives one image's findings and warnings from the evaluated
// keys, in match's order: ecosystems sorted, then packages in inventory
// order; warnings deduplicated; findings sorted as a report lists them.
func assemble(pkgs []Package, keys map[pkgKey]*keyResult) ([]Finding, []string) {
	byEco := map[string][]Package{}
	for _, p := range pkgs {
		if p.Ecosystem != "" {
			byEco[p.Ecosystem] = append(byEco[p.Ecosystem], p)
		}
	}
	ecos := make([]string, 0, len(byEco))
	for e := range byEco {
		ecos = append(ecos, e)
	}
	sort.Strings(ecos)
	var findings []Finding
	var warnings []string
	warned := map[string]bool{}
	for _, eco := range ecos {
		for _, p := range byEco[eco] {
			r := keys[pkgKey{eco, p.SourceName, p.SourceVersion}]
			for _, w := range r.warnings {
				if !warned[w] {
					warned[w] = true
					warnings = append(warnings, w)
				}
			}
			for _, f := range r.findings {
				findings = append(findings, f.of(p))
			}
		}
	}
	sortFindings(findings)
	return findings, warnings
}

// Verdict is the verdict p gives an image with these vulnerability
// findings and S3 check results at now (S4): what its scan would decide
// with newer vulnerability data, which monitoring reports (S5).
func (p Policy) Verdict(vulns []Finding, checks []CheckResult, now time.Time) (Status, []Violation) {
	viol, _, _ := p.evaluate(vulns, checks, now)
	if len(viol) > 0 {
		return IssuesFound, viol
	}
	return Successful, viol
}
