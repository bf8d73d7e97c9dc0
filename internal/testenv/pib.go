//go:build linux

package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	pibOnce sync.Once
	pibBin  string
	pibErr  string
)

// PibBinary builds pib from this tree once per test process and returns
// its path: the guests of vm builds run it as `pib agent` (a test binary
// is pib only with PIB_TEST_RUN_PIB set, which a guest has not). The
// test's TestMain removes it with RemovePibBinary.
func PibBinary(t testing.TB) string {
	t.Helper()
	pibOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pib-test-binary-")
		if err != nil {
			pibErr = err.Error()
			return
		}
		pibBin = filepath.Join(dir, "pib")
		cmd := exec.Command("go", "build", "-o", pibBin, "github.com/pib-dev/pib/cmd/pib")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			pibErr = "go build pib for the guests: " + err.Error() + "\n" + string(out)
		}
	})
	if pibErr != "" {
		t.Fatal(pibErr)
	}
	return pibBin
}

// RemovePibBinary removes what PibBinary built, if anything.
func RemovePibBinary() {
	if pibBin != "" {
		os.RemoveAll(filepath.Dir(pibBin))
	}
}
