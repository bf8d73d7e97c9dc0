package boottest_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/boottest"
)

const cleanProbe = `noise before
PIB-PROBE-BEGIN
== state
running
== multi-user
active
== failed
== listen
LISTEN 0      128          0.0.0.0:22        0.0.0.0:*
LISTEN 0      128             [::]:22           [::]:*
== cloud-init
status: done
time: Tue, 01 Dec 2026 18:00:00 +0000
detail:
DataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud][dsmode=net]
PIB-PROBE-END
`

// TestCheck makes each rule fail on purpose from probe output, and
// checks that the base image's own failed units are forgiven (V1).
func TestCheck(t *testing.T) {
	edit := func(old, new string) string { return strings.Replace(cleanProbe, old, new, 1) }
	for _, tc := range []struct {
		name  string
		probe string
		base  []string
		rules []string
	}{
		{"clean", cleanProbe, nil, nil},
		{"V1 failed unit", edit("== failed\n", "== failed\nbroken.service loaded failed failed Broken\n"), nil, []string{"V1"}},
		{"V1 forgiven: the base fails it too", edit("== failed\n", "== failed\nbroken.service loaded failed failed Broken\n"), []string{"broken.service"}, nil},
		{"V1 not reached", edit("== multi-user\nactive", "== multi-user\ninactive"), nil, []string{"V1"}},
		{"V2 nothing on 22", strings.ReplaceAll(cleanProbe, ":22 ", ":80 "), nil, []string{"V2"}},
		{"V3 error", edit("status: done", "status: error"), nil, []string{"V3"}},
		{"V3 no status line", edit("status: done", "Traceback (most recent call last):"), nil, []string{"V3"}},
		{"no cloud-init in the image", edit("status: done", "not-installed"), nil, nil},
		{"no probe output at all", "", nil, []string{"V1", "V2", "V3"}},
		{"spoofed unit name is dropped", edit("== failed\n", "== failed\n../../etc/passwd\x1b[2J loaded failed\n"), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := boottest.ParseProbe([]byte(tc.probe))
			var rules []string
			for _, fd := range boottest.Check(f, tc.base) {
				rules = append(rules, fd.Rule)
			}
			if diff := cmp.Diff(tc.rules, rules); diff != "" {
				t.Errorf("rules (-want +got):\n%s\nfacts: %+v", diff, f)
			}
		})
	}
}

func TestParseProbeFacts(t *testing.T) {
	f := boottest.ParseProbe([]byte(strings.Replace(cleanProbe, "== failed\n", "== failed\nb.service loaded failed failed B\na.service loaded failed failed A\n", 1)))
	want := boottest.Facts{Reached: true, SystemState: "running", FailedUnits: []string{"a.service", "b.service"}, SSHListening: true,
		CloudInitStatus: "done", CloudInit: "status: done\ntime: Tue, 01 Dec 2026 18:00:00 +0000\ndetail:\nDataSourceNoCloud [seed=/var/lib/cloud/seed/nocloud][dsmode=net]"}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("facts (-want +got):\n%s", diff)
	}
}
