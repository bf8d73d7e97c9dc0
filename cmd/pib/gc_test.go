//go:build linux

package main

import (
	"os"
	"runtime/debug"
	"testing"
)

// TestTuneGC: pib serve and pib worker run the collector at gcPercent,
// unless GOGC is set.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "150") // restored after the test, like the collector
	tuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the collector runs at %d, want it left at 100", got)
	}
	os.Unsetenv("GOGC")
	tuneGC()
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("without GOGC, the collector runs at %d, want %d", got, gcPercent)
	}
}
