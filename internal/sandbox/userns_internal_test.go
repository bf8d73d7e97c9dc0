package sandbox

import (
	"strings"
	"testing"
)

// TestIDSlots: concurrent builds get disjoint host ID ranges, a freed
// range is reused, and running out says what to do.
func TestIDSlots(t *testing.T) {
	old := idSlotDir
	idSlotDir = t.TempDir()
	defer func() { idSlotDir = old }()
	ids := IDs{Base: 3_000_000_000, Size: 1000, Slots: 2}
	a, releaseA, err := acquireIDs(ids)
	if err != nil {
		t.Fatal(err)
	}
	b, releaseB, err := acquireIDs(ids)
	if err != nil {
		t.Fatal(err)
	}
	if a != 3_000_000_000 || b != 3_000_001_000 {
		t.Errorf("ranges start at %d and %d, want 3000000000 and 3000001000", a, b)
	}
	if _, _, err := acquireIDs(ids); err == nil || !strings.Contains(err.Error(), "all 2 user namespace ID ranges are taken") {
		t.Errorf("want a clear error when every range is taken, got %v", err)
	}
	releaseA()
	c, releaseC, err := acquireIDs(ids)
	if err != nil || c != a {
		t.Errorf("a freed range is not reused: %d, %v", c, err)
	}
	releaseB()
	releaseC()
	if _, _, err := acquireIDs(IDs{Base: 4_294_000_000, Size: 65536, Slots: 64}); err == nil {
		t.Error("ranges past the largest ID accepted")
	}
}
