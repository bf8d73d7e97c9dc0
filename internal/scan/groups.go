//go:build linux

package scan

import (
	"slices"
	"sort"
	"strings"

	"github.com/google/osv-scalibr/semantic"
)

// Group is the findings in one installed package that are the same
// vulnerability: records that list each other as aliases, directly or
// through a shared ID (a PYSEC and a GHSA record of one CVE; a GO record
// and its GHSA). A report counts, and its policy judges, groups, as
// osv-scanner's groups do; the findings stay listed one per record.
type Group struct {
	// IDs are the group's records, sorted; the first names the group.
	IDs []string `json:"ids"`
	// Aliases are every ID the group is known by, its IDs included.
	Aliases          []string `json:"aliases"`
	Package          string   `json:"package"`
	SourcePackage    string   `json:"source_package"`
	InstalledVersion string   `json:"installed_version"`
	// FixedVersion is the highest of its records' nearest fixes: the
	// upgrade that closes the vulnerability by every record's account
	// ("" when no record names a fix).
	FixedVersion string `json:"fixed_version"`
	// Severity is the highest of its records' (with its Score and
	// SeveritySource).
	Severity       Severity `json:"severity"`
	Score          float64  `json:"score,omitempty"`
	SeveritySource string   `json:"severity_source,omitempty"`
	Ecosystem      string   `json:"ecosystem"`
	Summary        string   `json:"summary"`
	Locations      []string `json:"locations,omitempty"`
}

// Counts are a report's totals: vulnerabilities are counted once per
// group, whatever the number of records that describe them.
type Counts struct {
	Records         int `json:"records"`         // findings, one per record
	Vulnerabilities int `json:"vulnerabilities"` // groups
	Critical        int `json:"critical"`
	High            int `json:"high"`
	Medium          int `json:"medium"`
	Low             int `json:"low"`
	Unknown         int `json:"unknown"`
	Fixable         int `json:"fixable"` // groups with a fixed version
	// UnknownIgnored counts the groups of Unknown severity that the
	// policy would have failed on had they been rated, and did not judge
	// (Policy.UnknownSeverity "ignore").
	UnknownIgnored int `json:"unknown_ignored"`
}

// Grouped joins findings into groups, per installed package, worst first
// (Report.Groups; for a report stored before reports had groups).
func Grouped(fs []Finding) []Group { return group(fs) }

// group joins findings into groups, per installed package, worst first.
func group(fs []Finding) []Group {
	type bucket struct {
		idx []int
	}
	byPkg := map[pkgRef]*bucket{}
	var order []pkgRef
	for i, f := range fs {
		r := refOf(f.Package, f.InstalledVersion, f.SourcePackage, f.Locations)
		b := byPkg[r]
		if b == nil {
			b = &bucket{}
			byPkg[r] = b
			order = append(order, r)
		}
		b.idx = append(b.idx, i)
	}
	var out []Group
	for _, r := range order {
		idx := byPkg[r].idx
		// A disjoint-set forest over the package's findings: two that
		// share any ID are one vulnerability.
		parent := make([]int, len(idx))
		for i := range parent {
			parent[i] = i
		}
		var find func(int) int
		find = func(i int) int {
			if parent[i] != i {
				parent[i] = find(parent[i])
			}
			return parent[i]
		}
		owner := map[string]int{}
		for k, i := range idx {
			for _, id := range append([]string{fs[i].ID}, fs[i].Aliases...) {
				if o, ok := owner[id]; ok {
					a, b := find(k), find(o)
					parent[max(a, b)] = min(a, b)
				} else {
					owner[id] = k
				}
			}
		}
		members := map[int][]int{}
		var leaders []int
		for k := range idx {
			l := find(k)
			if _, ok := members[l]; !ok {
				leaders = append(leaders, l)
			}
			members[l] = append(members[l], idx[k])
		}
		for _, l := range leaders {
			out = append(out, groupOf(fs, members[l]))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Severity.rank() != b.Severity.rank() {
			return a.Severity.rank() > b.Severity.rank()
		}
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.IDs[0] < b.IDs[0]
	})
	return out
}

// groupOf makes one group of the findings fs[i] for i in members.
func groupOf(fs []Finding, members []int) Group {
	first := fs[members[0]]
	g := Group{Package: first.Package, SourcePackage: first.SourcePackage, InstalledVersion: first.InstalledVersion,
		Ecosystem: first.Ecosystem, Locations: first.Locations, Severity: Unknown}
	best := -1
	for _, i := range members {
		f := fs[i]
		g.IDs = append(g.IDs, f.ID)
		g.Aliases = append(g.Aliases, f.ID)
		g.Aliases = append(g.Aliases, f.Aliases...)
		if best < 0 || f.Severity.rank() > fs[best].Severity.rank() || (f.Severity == fs[best].Severity && f.Score > fs[best].Score) {
			best = i
		}
		if f.FixedVersion != "" && (g.FixedVersion == "" || compareVersions(f.Ecosystem, f.FixedVersion, g.FixedVersion) > 0) {
			g.FixedVersion = f.FixedVersion
		}
	}
	slices.Sort(g.IDs)
	slices.Sort(g.Aliases)
	g.Aliases = slices.Compact(g.Aliases)
	b := fs[best]
	g.Severity, g.Score, g.SeveritySource = b.Severity, b.Score, b.SeveritySource
	for _, id := range g.IDs {
		for _, i := range members {
			if fs[i].ID == id && g.Summary == "" {
				g.Summary = fs[i].Summary
			}
		}
	}
	return g
}

// compareVersions compares two versions of one ecosystem as written in a
// report (Go's with their prefix); versions that do not parse compare as
// strings.
func compareVersions(eco, a, b string) int {
	strip := func(v string) string {
		if baseEco(eco) == "Go" {
			return strings.TrimPrefix(strings.TrimPrefix(v, "go"), "v")
		}
		return v
	}
	va, errA := semantic.Parse(strip(a), eco)
	vb, errB := semantic.Parse(strip(b), eco)
	if errA == nil && errB == nil {
		if c, err := va.Compare(vb); err == nil {
			return c
		}
	}
	return strings.Compare(a, b)
}

// countGroups totals groups (Counts, without UnknownIgnored, which the
// policy gives).
func countGroups(records int, gs []Group) Counts {
	c := Counts{Records: records, Vulnerabilities: len(gs)}
	for _, g := range gs {
		switch g.Severity {
		case Critical:
			c.Critical++
		case High:
			c.High++
		case Medium:
			c.Medium++
		case Low:
			c.Low++
		default:
			c.Unknown++
		}
		if g.FixedVersion != "" {
			c.Fixable++
		}
	}
	return c
}

// upgrades lists, for every package in which several vulnerabilities
// were found, some of them fixed, the version fixing all of them
// (matched.fixAll). A package none of whose vulnerabilities has a fix
// has nothing to upgrade to.
func upgrades(fs []Finding, gs []Group, fixAll map[pkgRef]string) []Upgrade {
	groups := map[pkgRef]int{}
	records := map[pkgRef]int{}
	fixable := map[pkgRef]bool{}
	for _, g := range gs {
		r := refOf(g.Package, g.InstalledVersion, g.SourcePackage, g.Locations)
		groups[r]++
		fixable[r] = fixable[r] || g.FixedVersion != ""
	}
	for _, f := range fs {
		records[refOf(f.Package, f.InstalledVersion, f.SourcePackage, f.Locations)]++
	}
	var out []Upgrade
	seen := map[pkgRef]bool{}
	for _, f := range fs {
		r := refOf(f.Package, f.InstalledVersion, f.SourcePackage, f.Locations)
		if seen[r] || groups[r] < 2 || !fixable[r] {
			continue
		}
		seen[r] = true
		out = append(out, Upgrade{Package: f.Package, SourcePackage: f.SourcePackage, InstalledVersion: f.InstalledVersion,
			Ecosystem: f.Ecosystem, Locations: f.Locations, FixedVersion: fixAll[r],
			Vulnerabilities: groups[r], Records: records[r]})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Package < out[j].Package })
	return out
}
