package scan

import (
	"context"
	"fmt"
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
}

// Inventory is what matching needs of an image: its OS and its packages
// as matching sees them. Images never change, so neither does their
// inventory: it is kept per image ID and re-matched when the
// vulnerability data changes (S5), without reading the image again.
type Inventory struct {
	OS       OS        `json:"os"`
	Packages []Package `json:"packages"`
}

// Finding is one vulnerability affecting one installed package.
type Finding struct {
	ID               string   `json:"id"`
	Aliases          []string `json:"aliases"`
	Package          string   `json:"package"`
	SourcePackage    string   `json:"source_package"`
	InstalledVersion string   `json:"installed_version"`
	FixedVersion     string   `json:"fixed_version"`
	Severity         Severity `json:"severity"`
	// Score is the CVSS base score the severity comes from (0 when it
	// comes from the distribution's urgency or is unknown).
	Score     float64 `json:"score,omitempty"`
	Ecosystem string  `json:"ecosystem"`
	Summary   string  `json:"summary"`
}

// lookuper is the part of the vulnerability database matching needs.
type lookuper interface {
	Lookup(ctx context.Context, ecosystem string, names []string) ([]vulndb.Entry, error)
	Severities(ctx context.Context, ids []string) (map[string][]vulndb.Severity, error)
}

// match finds the vulnerabilities of pkgs. Packages are grouped by
// ecosystem and looked up by source name, then every candidate entry is
// evaluated with OSV's rules. warnings collects versions that could not
// be compared.
func match(ctx context.Context, db lookuper, pkgs []Package) ([]Finding, []string, error) {
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
	warned := map[string]bool{}
	var warnings []string
	warn := func(format string, args ...any) {
		w := fmt.Sprintf(format, args...)
		if !warned[w] {
			warned[w] = true
			warnings = append(warnings, w)
		}
	}
	for _, eco := range ecos {
		ps := byEco[eco]
		names := make([]string, 0, len(ps))
		for _, p := range ps {
			names = append(names, p.SourceName)
		}
		entries, err := db.Lookup(ctx, eco, names)
		if err != nil {
			return nil, nil, err
		}
		bySource := map[string][]vulndb.Entry{}
		for _, e := range entries {
			bySource[e.Package] = append(bySource[e.Package], e)
		}
		for _, p := range ps {
			key := vulndb.NormalizeName(baseEco(eco), p.SourceName)
			seen := map[string]bool{}
			for _, e := range bySource[key] {
				if seen[e.ID] {
					continue
				}
				affected, fixed, err := isAffected(e.Affected, p.SourceVersion, e.Ecosystem)
				if err != nil {
					warn("%s %s: %v", p.SourceName, p.SourceVersion, err)
				}
				if !affected {
					continue
				}
				seen[e.ID] = true
				sev, score := severityOf(e)
				findings = append(findings, Finding{
					ID:               e.ID,
					Aliases:          nonNil(e.Aliases),
					Package:          p.Name,
					SourcePackage:    p.SourceName,
					InstalledVersion: p.Version,
					FixedVersion:     fixed,
					Severity:         sev,
					Score:            score,
					Ecosystem:        e.Ecosystem,
					Summary:          e.Summary,
				})
			}
		}
	}
	if err := rateByAliases(ctx, db, findings); err != nil {
		return nil, nil, err
	}
	sortFindings(findings)
	return findings, warnings, nil
}

// rateByAliases gives a finding that has no rating of its own (a Debian
// DSA/DLA advisory carries no CVSS vector and no urgency) the highest CVSS
// score among the stored records of the CVEs it is known by.
func rateByAliases(ctx context.Context, db lookuper, fs []Finding) error {
	var ids []string
	seen := map[string]bool{}
	for _, f := range fs {
		if f.Severity != Unknown {
			continue
		}
		for _, a := range f.Aliases {
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
	sevs, err := db.Severities(ctx, ids)
	if err != nil {
		return err
	}
	for i := range fs {
		f := &fs[i]
		if f.Severity != Unknown {
			continue
		}
		var e vulndb.Entry
		for _, a := range f.Aliases {
			e.Severity = append(e.Severity, sevs[a]...)
		}
		if sev, score := severityOf(e); score > 0 {
			f.Severity, f.Score = sev, score
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
		return a.ID < b.ID
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

// isAffected applies OSV's evaluation rules
// (https://ossf.github.io/osv-schema/#evaluation): a version is affected
// if it is listed in versions[], or lies in any ECOSYSTEM or SEMVER range:
// at or after an introduced event and before the next fixed event, at or
// before a last_affected event, and below any limit. fixed is the version
// that ends the range the installed version lies in ("" if none does).
func isAffected(a vulndb.Affected, version, ecosystem string) (affected bool, fixed string, err error) {
	for _, v := range a.Versions {
		if v == version {
			affected = true
		}
	}
	parsed, perr := semantic.Parse(version, ecosystem)
	if perr != nil {
		return affected, "", fmt.Errorf("cannot compare versions: %w", perr)
	}
	for _, r := range a.Ranges {
		if r.Type != "ECOSYSTEM" && r.Type != "SEMVER" {
			continue
		}
		in, fix, rerr := inRange(parsed, ecosystem, r.Events)
		if rerr != nil {
			err = rerr
			continue
		}
		if in {
			if !affected || fixed == "" {
				fixed = fix
			}
			affected = true
		}
	}
	return affected, fixed, err
}

// inRange applies the OSV schema's reference algorithm to one range:
// events sorted by version (introduced "0" first; at equal versions
// introduced, then last_affected, then fixed, then limit), then walked
// while they are at or below v. The fix is the first fixed event above v.
func inRange(v semantic.Version, eco string, events []vulndb.Event) (bool, string, error) {
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
				return false, "", fmt.Errorf("range event %q: %w", x.raw, err)
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
		return false, "", sortErr
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
			return false, "", err
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
				return false, "", nil
			}
		}
	}
	if !affected {
		return false, "", nil
	}
	for _, e := range evs {
		if e.kind != 2 {
			continue
		}
		if c, err := cmp(e); err == nil && c < 0 {
			return true, e.raw, nil
		}
	}
	return true, "", nil
}
