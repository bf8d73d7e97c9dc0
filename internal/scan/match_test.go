package scan

import (
	"testing"

	"github.com/pib-dev/pib/internal/vulndb"
)

// isAffected is affects with the nearest fix, as a finding reports them.
func isAffected(a vulndb.Affected, version, eco string) (bool, string, error) {
	hit, err := affects(a, version, eco)
	if err != nil || !hit {
		return hit, "", err
	}
	fix, err := nearestFix([]vulndb.Entry{{Ecosystem: eco, Affected: a}}, version)
	return hit, fix, err
}

func TestIsAffected(t *testing.T) {
	ev := func(kind, v string) vulndb.Event {
		switch kind {
		case "i":
			return vulndb.Event{Introduced: v}
		case "f":
			return vulndb.Event{Fixed: v}
		case "l":
			return vulndb.Event{LastAffected: v}
		}
		return vulndb.Event{Limit: v}
	}
	rng := func(typ string, evs ...vulndb.Event) vulndb.Range { return vulndb.Range{Type: typ, Events: evs} }
	for _, tc := range []struct {
		name      string
		eco       string
		version   string
		ranges    []vulndb.Range
		versions  []string
		want      bool
		wantFixed string
	}{
		{"below fix", "Debian:12", "1.0-1", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("f", "1.0-2"))}, nil, true, "1.0-2"},
		{"at fix", "Debian:12", "1.0-2", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("f", "1.0-2"))}, nil, false, ""},
		{"before introduced", "Debian:12", "0.9-1", []vulndb.Range{rng("ECOSYSTEM", ev("i", "1.0-1"), ev("f", "1.0-2"))}, nil, false, ""},
		{"second span, events unsorted", "Debian:12", "3.5-1", []vulndb.Range{rng("ECOSYSTEM", ev("i", "3.0-1"), ev("f", "4.0-1"), ev("i", "1.0-1"), ev("f", "2.0-1"))}, nil, true, "4.0-1"},
		{"between spans", "Debian:12", "2.5-1", []vulndb.Range{rng("ECOSYSTEM", ev("i", "1.0-1"), ev("f", "2.0-1"), ev("i", "3.0-1"), ev("f", "4.0-1"))}, nil, false, ""},
		{"last_affected equal", "Debian:12", "1.5-1", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("l", "1.5-1"))}, nil, true, ""},
		{"past last_affected", "Debian:12", "1.5-2", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("l", "1.5-1"))}, nil, false, ""},
		{"limit", "PyPI", "2.5", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("lim", "2.0"))}, nil, false, ""},
		{"below limit", "PyPI", "1.5", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("lim", "2.0"))}, nil, true, ""},
		{"epoch beats upstream", "Debian:12", "1:1.0-1", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("f", "2.0-1"))}, nil, false, ""},
		{"tilde sorts first", "Debian:12", "2.0~rc1-1", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("f", "2.0-1"))}, nil, true, "2.0-1"},
		{"versions list", "Debian:12", "0.9-1", nil, []string{"0.9-1"}, true, ""},
		{"GIT range ignored", "Debian:12", "0.9-1", []vulndb.Range{rng("GIT", ev("i", "0"), ev("f", "abc123"))}, nil, false, ""},
		{"semver", "npm", "1.2.3", []vulndb.Range{rng("SEMVER", ev("i", "1.0.0"), ev("f", "1.2.4"))}, nil, true, "1.2.4"},
		{"pep440 pre-release", "PyPI", "2.0rc1", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("f", "2.0"))}, nil, true, "2.0"},
		{"alpine", "Alpine:v3.19", "8.4.0-r0", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("f", "8.4.0-r1"))}, nil, true, "8.4.0-r1"},
		// GHSA-r683-j2x4-v87g: 2.6.0 is fixed in 2.6.7, not in the 3.x
		// branch's 3.1.1, whichever order the ranges come in.
		{"nearest fix, two branches", "npm", "2.6.0", []vulndb.Range{rng("SEMVER", ev("i", "3.0.0"), ev("f", "3.1.1")), rng("SEMVER", ev("i", "0"), ev("f", "2.6.7"))}, nil, true, "2.6.7"},
		{"in both of two overlapping ranges", "npm", "2.6.0", []vulndb.Range{rng("SEMVER", ev("i", "0"), ev("f", "3.1.1")), rng("SEMVER", ev("i", "0"), ev("f", "2.6.7"))}, nil, true, "3.1.1"},
		{"fix listed as affected", "PyPI", "1.0", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("f", "1.1"))}, []string{"1.0", "1.1"}, true, ""},
		{"go module", "Go", "v0.3.7", []vulndb.Range{rng("SEMVER", ev("i", "0"), ev("f", "0.3.8"))}, nil, true, "0.3.8"},
		{"rpm", "AlmaLinux:9", "1:3.0.7-24.el9", []vulndb.Range{rng("ECOSYSTEM", ev("i", "0"), ev("f", "1:3.0.7-25.el9"))}, nil, true, "1:3.0.7-25.el9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := vulndb.Affected{Ranges: tc.ranges, Versions: tc.versions}
			got, fixed, err := isAffected(a, tc.version, tc.eco)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || fixed != tc.wantFixed {
				t.Errorf("isAffected(%s) = %v, %q; want %v, %q", tc.version, got, fixed, tc.want, tc.wantFixed)
			}
		})
	}
}

// TestNearestFixAll: the one upgrade fixing several records of one
// package is the smallest named fix none of them affects.
func TestNearestFixAll(t *testing.T) {
	rec := func(id string, evs ...vulndb.Event) vulndb.Entry {
		return vulndb.Entry{ID: id, Ecosystem: "npm", Affected: vulndb.Affected{Ranges: []vulndb.Range{{Type: "SEMVER", Events: evs}}}}
	}
	i := func(v string) vulndb.Event { return vulndb.Event{Introduced: v} }
	f := func(v string) vulndb.Event { return vulndb.Event{Fixed: v} }
	for _, tc := range []struct {
		name    string
		entries []vulndb.Entry
		want    string
	}{
		{"highest of the fixes", []vulndb.Entry{rec("A", i("0"), f("2.6.1")), rec("B", i("0"), f("2.6.7"))}, "2.6.7"},
		{"a fix another record affects is skipped", []vulndb.Entry{rec("A", i("0"), f("2.6.7"), i("3.0.0"), f("3.1.1")), rec("B", i("2.6.5"), f("3.1.1"))}, "3.1.1"},
		{"one unfixed: no upgrade fixes all", []vulndb.Entry{rec("A", i("0"), f("2.6.7")), rec("B", i("0"))}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := nearestFix(tc.entries, "2.6.0")
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("nearestFix = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWrittenAs(t *testing.T) {
	for _, tc := range []struct{ installed, fixed, eco, want string }{
		{"v0.3.7", "0.3.8", "Go", "v0.3.8"},
		{"go1.22.1", "1.22.5", "Go", "go1.22.5"},
		{"v0.3.7", "v0.3.8", "Go", "v0.3.8"},
		{"2.6.0", "2.6.7", "npm", "2.6.7"},
		{"v1.0", "", "Go", ""},
	} {
		if got := writtenAs(tc.installed, tc.fixed, tc.eco); got != tc.want {
			t.Errorf("writtenAs(%q, %q, %s) = %q, want %q", tc.installed, tc.fixed, tc.eco, got, tc.want)
		}
	}
}
