package netwatch

import (
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	before := State{"route": {"10.0.0.0/8 dev lo table 254 type 1"}, "link": {"lo type device mtu 65536 state up flags up"}}
	after := State{"route": {"10.99.0.0/16 dev lo table 254 type 1"}, "link": {"lo type device mtu 1400 state up flags up", "d0 type dummy mtu 1500 state down flags "}}
	got := Diff(before, after)
	want := []string{
		"the installer changed the network: link changed: lo type device mtu 1400 state up flags up (was: lo type device mtu 65536 state up flags up)",
		"the installer changed the network: link added: d0 type dummy mtu 1500 state down flags ",
		"the installer changed the network: route added: 10.99.0.0/16 dev lo table 254 type 1",
		"the installer changed the network: route removed: 10.0.0.0/8 dev lo table 254 type 1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Diff:\n got %q\nwant %q", got, want)
	}
	if d := Diff(before, before); len(d) != 0 {
		t.Errorf("no change gave %q", d)
	}
}
