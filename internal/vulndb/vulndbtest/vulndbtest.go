// Package vulndbtest finds the shared real OSV data for integration tests
// and benchmarks.
package vulndbtest

import (
	"os"
	"path/filepath"
	"testing"
)

// DebianZipName is the snapshot of osv.dev's Debian data kept beside the
// repository in shared/data/osv (44,152 records, 2025-02-12).
const DebianZipName = "debian-all-2025-02-12.zip"

// DebianZip returns the path of the shared Debian OSV zip, found by walking
// up from the test's directory to a folder holding shared/data/osv. It
// exists on the team's machines and in CI, not in a fresh clone: there the
// test is skipped, saying so; under CI (CI set) a missing zip fails.
func DebianZip(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := filepath.Join(dir, "shared", "data", "osv", DebianZipName)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	msg := "shared/data/osv/" + DebianZipName + " not found above the repository (it exists on the team's machines and in CI, not in a fresh clone)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
