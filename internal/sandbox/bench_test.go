package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/testenv"
)

// BenchmarkRun: one sandboxed build of a trivial installer, from Run to
// Close (no image store; see bench/build.sh for the whole command).
func BenchmarkRun(b *testing.B) {
	testenv.RequireRoot(b)
	lowers := []string{os.Getenv("PIB_SANDBOX_ROOTFS")}
	if lowers[0] == "" {
		lowers[0] = testenv.Debian12(b).Rootfs
	}
	script := filepath.Join(b.TempDir(), "trivial.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho hello > /etc/pib-bench\n"), 0o644)
	work := b.TempDir()
	for b.Loop() {
		res, err := sandbox.Run(context.Background(), sandbox.Config{LowerDirs: lowers, Installer: script, WorkDir: work})
		if err != nil {
			b.Fatal(err)
		}
		if !res.Passed() {
			b.Fatalf("findings %+v", res.Findings)
		}
		res.Close()
		os.Remove(res.LogPath)
	}
}
