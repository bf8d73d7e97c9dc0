package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBuildsForWindows: `pib agent` is also the Windows guest's agent, so
// this package must keep building for windows/amd64 (the Windows runner
// is only compiled here: no Windows can run it).
func TestBuildsForWindows(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		if p := filepath.Join(os.Getenv("GOROOT"), "bin", "go"); os.Getenv("GOROOT") != "" {
			gobin = p
		} else {
			t.Skip("no go command on PATH to cross-compile with")
		}
	}
	cmd := exec.Command(gobin, "build", "-o", filepath.Join(t.TempDir(), "agent.a"), ".")
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=windows go build ./internal/agent: %v\n%s", err, out)
	}
	cmd = exec.Command(gobin, "vet", ".")
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=windows go vet ./internal/agent: %v\n%s", err, out)
	}
}
