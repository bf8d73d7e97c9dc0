//go:build linux

package scan

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/google/osv-scalibr/semantic"

	"github.com/pib-dev/pib/internal/vulndb"
)

// Package is one installed package as matching sees it.
type Package struct {
	Name    string `json:"name"`    // binary package name (what is installed)
	Version string `json:"version"` // installed version, epoch included
	// SourceName and SourceVersion are what OSV records for Debian and
	// Ubuntu are keyed by (Alpine: the origin package). They equal Name
	// and Version for ecosystems keyed by binary package.
	SourceName    string `json:"source_name"`
	SourceVersion string `json:"source_version"`
	Ecosystem     string `json:"ecosystem,omitempty"` // OSV ecosystem, "" when OSV has none
	Type          string `json:"type"`                // syft package type (deb, rpm, apk, python, …)
	PURL          string `json:"purl,omitempty"`
	// Locations are the image paths the package was found at: its
	// package database (/var/lib/dpkg/status), its metadata file (a
	// .dist-info/METADATA, a package.json) or the binary a Go module is
	// linked into. Two binaries linking one module are two packages, so
	// a finding says which binary to rebuild.
	Locations []string `json:"locations,omitempty"`
}

// Inventory is what matching needs of an image: its OS and its packages
// as matching sees them. Images never change, so neither does their
// inventory: it is kept per image ID and re-matched when the
// vulnerability data changes (S5), without reading the image again.
type Inventory struct {
	OS       OS        `json:"os"`
	Packages []Package `json:"packages"`
}

// Finding is one vulnerability record affecting one installed package.
// Records that are the same vulnerability are several findings of one
// Group.
type Finding struct {
	ID string `json:"id"`
	// Aliases are every other ID the record lists for itself (CVE, GHSA,
	// PYSEC, GO …; a DSA or USN also the CVEs it fixes).
	Aliases          []string `json:"aliases"`
	Package          string   `json:"package"`
	SourcePackage    string   `json:"source_package"`
	InstalledVersion string   `json:"installed_version"`
	// FixedVersion is the nearest fix: the first version above the
	// installed one that the record does not affect ("" when none
	// does), written as the installed version is (Go's "v" prefix).
	FixedVersion string   `json:"fixed_version"`
	Severity     Severity `json:"severity"`
	// Score is the CVSS base score the severity comes from (0 when it
	// comes from a rating word or is unknown).
	Score float64 `json:"score,omitempty"`
	// SeveritySource says where the severity comes from: "cvss" (v3 or
	// v4), "cvss_v2", "database" (GitHub's rating), "urgency" (the
	// distribution's), or "alias ID" when the record has none and
	// another record of the same vulnerability rates it.
	SeveritySource string `json:"severity_source,omitempty"`
	Ecosystem      string `json:"ecosystem"`
	Summary        string `json:"summary"`
	// Locations are the package's (Package.Locations).
	Locations []string `json:"locations,omitempty"`
}

// Upgrade is the smallest version of one installed package that fixes
// every vulnerability found in it, when there are several and some have
// a fix: "upgrade to X to fix all N".
type Upgrade struct {
	Package          string   `json:"package"`
	SourcePackage    string   `json:"source_package"`
	InstalledVersion string   `json:"installed_version"`
	Ecosystem        string   `json:"ecosystem"`
	Locations        []string `json:"locations,omitempty"`
	// FixedVersion fixes all Vulnerabilities ("" when no version the
	// records name does: some are unfixed, or no fix clears them all).
	FixedVersion string `json:"fixed_version"`
	// Vulnerabilities counts the groups (distinct vulnerabilities) found
	// in the package; Records the records behind them.
	Vulnerabilities int `json:"vulnerabilities"`
	Records         int `json:"records"`
}

// lookuper is the part of the vulnerability database matching needs.
type lookuper interface {
	Lookup(ctx context.Context, ecosystem string, names []string) ([]vulndb.Entry, error)
	Ratings(ctx context.Context, ids []string) (map[string][]vulndb.Rating, error)
}

// match finds the vulnerabilities of pkgs. Packages are grouped by
// ecosystem and looked up by source name, then every candidate entry is
// evaluated with OSV's rules. warnings collects versions that could not
// be compared.
func match(ctx context.Context, db lookuper, pkgs []Package) ([]Finding, []string, error) {
	m, err := matchAll(ctx, db, pkgs)
	if err != nil {
		return nil, nil, err
	}
	return m.findings, m.warnings, nil
}

// matched is what matchAll finds.
type matched struct {
	findings []Finding
	warnings []string
	// fixAll is, per package with findings from several records, the
	// version fixing all of them (evaluation.fixAll).
	fixAll map[pkgRef]string
}

// pkgRef identifies one installed package among an image's findings.
type pkgRef struct {
	name, version, source, locations string
}

func refOf(name, version, source string, locations []string) pkgRef {
	return pkgRef{name, version, source, strings.Join(locations, "\x00")}
}

func matchAll(ctx context.Context, db lookuper, pkgs []Package) (*matched, error) {
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

	m := &matched{fixAll: map[pkgRef]string{}}
	warned := map[string]bool{}
	var related [][]string // of each finding, for rateByAliases
	for _, eco := range ecos {
		ps := byEco[eco]
		names := make([]string, 0, len(ps))
		for _, p := range ps {
			names = append(names, p.SourceName)
		}
		entries, err := db.Lookup(ctx, eco, names)
		if err != nil {
			return nil, err
		}
		bySource := map[string][]vulndb.Entry{}
		for _, e := range entries {
			bySource[e.Package] = append(bySource[e.Package], e)
		}
		for _, p := range ps {
			ev := evaluatePackage(p.SourceName, p.SourceVersion, bySource[vulndb.NormalizeName(baseEco(eco), p.SourceName)])
			for _, w := range ev.warnings {
				if !warned[w] {
					warned[w] = true
					m.warnings = append(m.warnings, w)
				}
			}
			for i, f := range ev.findings {
				m.findings = append(m.findings, f.of(p))
				related = append(related, ev.related[i])
			}
			if len(ev.findings) > 1 {
				m.fixAll[refOf(p.Name, p.Version, p.SourceName, p.Locations)] = writtenAs(p.Version, ev.fixAll, eco)
			}
		}
	}
	ptrs := make([]*Finding, len(m.findings))
	for i := range m.findings {
		ptrs[i] = &m.findings[i]
	}
	if err := rateByAliases(ctx, db, ptrs, related); err != nil {
		return nil, err
	}
	sortFindings(m.findings)
	return m, nil
}

// of is a package's finding: the evaluation of its source package
// labelled with the binary package, its version and where it is, and
// the fix written the package's way.
func (f Finding) of(p Package) Finding {
	f.Package, f.InstalledVersion, f.Locations = p.Name, p.Version, p.Locations
	f.FixedVersion = writtenAs(p.Version, f.FixedVersion, f.Ecosystem)
	return f
}

// writtenAs writes a version an OSV record names the way the installed
// version is written. Go's records write module versions without the
// "v" every go.mod, binary and `go list` shows, and Go releases without
// the "go" of `go version`: a report shows v0.3.8 beside v0.3.7, and
// go1.22.5 beside go1.22.1.
func writtenAs(installed, v, eco string) string {
	if v == "" || baseEco(eco) != "Go" {
		return v
	}
	for _, prefix := range []string{"go", "v"} {
		if strings.HasPrefix(installed, prefix) && !strings.HasPrefix(v, prefix) {
			return prefix + v
		}
	}
	return v
}

// evaluation is one source package version evaluated against its
// entries: findings without the binary package's name, version and
// locations, the version fixing them all, and the versions that could
// not be compared.
type evaluation struct {
	findings []Finding
	related  [][]string // each finding's related CVEs (vulndb.Entry.Related)
	fixAll   string
	warnings []string
}

// evaluatePackage is matching's inner loop, shared by match and Rematch
// so that they agree: every entry affecting the version is a finding
// with its nearest fix and severity.
func evaluatePackage(name, version string, entries []vulndb.Entry) evaluation {
	var ev evaluation
	seen := map[string]bool{}
	var hits []vulndb.Entry
	warn := func(err error) {
		w := fmt.Sprintf("%s %s: %v", name, version, err)
		if !slices.Contains(ev.warnings, w) {
			ev.warnings = append(ev.warnings, w)
		}
	}
	for _, e := range entries {
		if seen[e.ID] {
			continue
		}
		affected, err := affects(e.Affected, version, e.Ecosystem)
		if err != nil {
			warn(err)
		}
		if !affected {
			continue
		}
		seen[e.ID] = true
		hits = append(hits, e)
		fixed, err := nearestFix([]vulndb.Entry{e}, version)
		if err != nil {
			warn(err)
		}
		sev, score, source := severityOf(e)
		ev.related = append(ev.related, e.Related)
		ev.findings = append(ev.findings, Finding{
			ID:             e.ID,
			Aliases:        nonNil(slices.Clone(e.Aliases)),
			SourcePackage:  name,
			FixedVersion:   fixed,
			Severity:       sev,
			Score:          score,
			SeveritySource: source,
			Ecosystem:      e.Ecosystem,
			Summary:        e.Summary,
		})
	}
	if len(hits) > 1 {
		fix, err := nearestFix(hits, version)
		if err != nil {
			warn(err)
		}
		ev.fixAll = fix
	}
	return ev
}

// rateByAliases gives a finding that has no rating of its own the best
// rating of a stored record that is the same vulnerability: a record it
// lists as an alias or that lists it (a Go record by its GitHub advisory),
// or a CVE it lists as related (a Debian DSA/DLA, which carries no CVSS
// vector and no urgency, by the CVEs it fixes). The best is the highest
// severity, then the highest score, then the first ID.
//
// related holds each finding's related CVEs (vulndb.Entry.Related).
func rateByAliases(ctx context.Context, db lookuper, fs []*Finding, related [][]string) error {
	var ids []string
	seen := map[string]bool{}
	idsOf := func(i int) []string {
		return append(append([]string{fs[i].ID}, fs[i].Aliases...), related[i]...)
	}
	for i := range fs {
		if fs[i].Severity != Unknown {
			continue
		}
		for _, a := range idsOf(i) {
			if !seen[a] {
				seen[a] = true
				ids = append(ids, a)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Strings(ids)
	ratings, err := db.Ratings(ctx, ids)
	if err != nil {
		return err
	}
	for i, f := range fs {
		if f.Severity != Unknown {
			continue
		}
		for _, a := range idsOf(i) {
			for _, r := range ratings[a] {
				if r.ID == f.ID {
					continue // its own record: already unrated
				}
				sev, score, _ := severityOf(vulndb.Entry{Severity: r.Severity, Rating: r.Database})
				if sev.rank() > f.Severity.rank() || (sev == f.Severity && sev != Unknown && score > f.Score) {
					f.Severity, f.Score, f.SeveritySource = sev, score, "alias "+r.ID
				}
			}
		}
	}
	return nil
}

func sortFindings(fs []Finding) {
	sort.Slice(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Severity.rank() != b.Severity.rank() {
			return a.Severity.rank() > b.Severity.rank()
		}
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return strings.Join(a.Locations, "\x00") < strings.Join(b.Locations, "\x00")
	})
}

func baseEco(eco string) string {
	b, _, _ := strings.Cut(eco, ":")
	return b
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// affects applies OSV's evaluation rules
// (https://ossf.github.io/osv-schema/#evaluation): a version is affected
// if it is listed in versions[], or lies in any ECOSYSTEM or SEMVER range:
// at or after an introduced event and before the next fixed event, at or
// before a last_affected event, and below any limit.
func affects(a vulndb.Affected, version, ecosystem string) (affected bool, err error) {
	affected = slices.Contains(a.Versions, version)
	parsed, perr := semantic.Parse(version, ecosystem)
	if perr != nil {
		return affected, fmt.Errorf("cannot compare versions: %w", perr)
	}
	for _, r := range a.Ranges {
		if r.Type != "ECOSYSTEM" && r.Type != "SEMVER" {
			continue
		}
		in, rerr := inRange(parsed, ecosystem, r.Events)
		if rerr != nil {
			err = rerr
			continue
		}
		affected = affected || in
	}
	return affected, err
}

// nearestFix is the smallest version above the installed one that none
// of the entries affects, among the fixed versions their ranges name: for
// one record, the fix closing the range the installed version is in, not
// a later branch's (node-fetch 2.6.0 is fixed in 2.6.7, where its record
// also names 3.1.1 for 3.x); for several, the one upgrade that fixes them
// all. "" when no named version clears them all (an unfixed range, a
// last_affected one with nothing above it).
func nearestFix(entries []vulndb.Entry, version string) (string, error) {
	if len(entries) == 0 {
		return "", nil
	}
	eco := entries[0].Ecosystem
	installed, err := semantic.Parse(version, eco)
	if err != nil {
		return "", fmt.Errorf("cannot compare versions: %w", err)
	}
	type candidate struct {
		raw string
		v   semantic.Version
	}
	var cands []candidate
	seen := map[string]bool{}
	for _, e := range entries {
		for _, r := range e.Affected.Ranges {
			if r.Type != "ECOSYSTEM" && r.Type != "SEMVER" {
				continue
			}
			for _, ev := range r.Events {
				if ev.Fixed == "" || seen[ev.Fixed] {
					continue
				}
				seen[ev.Fixed] = true
				v, err := semantic.Parse(ev.Fixed, eco)
				if err != nil {
					return "", fmt.Errorf("range event %q: %w", ev.Fixed, err)
				}
				if c, err := v.Compare(installed); err != nil {
					return "", err
				} else if c > 0 {
					cands = append(cands, candidate{ev.Fixed, v})
				}
			}
		}
	}
	var sortErr error
	sort.SliceStable(cands, func(i, j int) bool {
		c, err := cands[i].v.Compare(cands[j].v)
		if err != nil {
			sortErr = err
		}
		return c < 0
	})
	if sortErr != nil {
		return "", sortErr
	}
next:
	for _, c := range cands {
		for _, e := range entries {
			if hit, err := affects(e.Affected, c.raw, e.Ecosystem); err != nil || hit {
				continue next
			}
		}
		return c.raw, nil
	}
	return "", nil
}

// inRange applies the OSV schema's reference algorithm to one range:
// events sorted by version (introduced "0" first; at equal versions
// introduced, then last_affected, then fixed, then limit), then walked
// while they are at or below v.
func inRange(v semantic.Version, eco string, events []vulndb.Event) (bool, error) {
	type ev struct {
		kind int // 0 introduced, 1 last_affected, 2 fixed, 3 limit
		raw  string
		ver  semantic.Version // nil for introduced "0" and limit "*"
	}
	evs := make([]ev, 0, len(events))
	for _, e := range events {
		var x ev
		switch {
		case e.Introduced != "":
			x = ev{kind: 0, raw: e.Introduced}
		case e.LastAffected != "":
			x = ev{kind: 1, raw: e.LastAffected}
		case e.Fixed != "":
			x = ev{kind: 2, raw: e.Fixed}
		case e.Limit != "":
			x = ev{kind: 3, raw: e.Limit}
		default:
			continue
		}
		if !(x.kind == 0 && x.raw == "0") && !(x.kind == 3 && x.raw == "*") {
			pv, err := semantic.Parse(x.raw, eco)
			if err != nil {
				return false, fmt.Errorf("range event %q: %w", x.raw, err)
			}
			x.ver = pv
		}
		evs = append(evs, x)
	}
	var sortErr error
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		switch {
		case a.kind == 0 && a.ver == nil:
			return !(b.kind == 0 && b.ver == nil)
		case b.kind == 0 && b.ver == nil:
			return false
		case a.ver == nil: // limit "*"
			return false
		case b.ver == nil:
			return true
		}
		c, err := a.ver.Compare(b.ver)
		if err != nil {
			sortErr = err
		}
		if c != 0 {
			return c < 0
		}
		return a.kind < b.kind
	})
	if sortErr != nil {
		return false, sortErr
	}
	// cmp(v, e): how v compares to event e.
	cmp := func(e ev) (int, error) {
		if e.ver == nil {
			if e.kind == 0 {
				return 1, nil
			}
			return -1, nil
		}
		return v.Compare(e.ver)
	}
	affected := false
	for _, e := range evs {
		c, err := cmp(e)
		if err != nil {
			return false, err
		}
		switch e.kind {
		case 0:
			if c >= 0 {
				affected = true
			}
		case 1:
			if c > 0 {
				affected = false
			}
		case 2:
			if c >= 0 {
				affected = false
			}
		case 3:
			if c >= 0 {
				return false, nil
			}
		}
	}
	return affected, nil
}
