package scan

import (
	"testing"

	"github.com/pib-dev/pib/internal/vulndb"
)

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
