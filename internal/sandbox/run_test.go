package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pib-dev/pib/internal/sandbox"
)

// TestInstallerTypes: each Linux installer type of P2 runs as documented.
func TestInstallerTypes(t *testing.T) {
	lowers := lowerDirs(t)
	t.Run("run", func(t *testing.T) {
		res := build(t, "selfextract.run", buildOpts{})
		if !res.Passed() {
			t.Fatalf("findings %+v", res.Findings)
		}
		if !changed(res.Changes.Files, "opt/selfextract/README") {
			t.Errorf("payload not extracted: %+v", res.Changes.Files)
		}
	})
	t.Run("exe", func(t *testing.T) {
		// An ELF program: the base image's own true(1), renamed.
		src, err := os.ReadFile(filepath.Join(lowers[len(lowers)-1], "usr/bin/true"))
		if err != nil {
			t.Skip("base image has no usr/bin/true")
		}
		exe := filepath.Join(t.TempDir(), "setup.exe")
		os.WriteFile(exe, src, 0o644)
		res := build(t, exe, buildOpts{})
		if !res.Passed() || res.ExitCode != 0 {
			t.Fatalf("exit %d findings %+v", res.ExitCode, res.Findings)
		}
	})
	t.Run("rpm-on-debian", func(t *testing.T) {
		rpm := filepath.Join(t.TempDir(), "tool.rpm")
		os.WriteFile(rpm, []byte("not really an rpm"), 0o644)
		res := build(t, rpm, buildOpts{})
		log, _ := os.ReadFile(res.LogPath)
		if !hasRule(res.Findings, "I4", "status 127") || !strings.Contains(string(log), "has no rpm") {
			t.Errorf("want a clear failure, got %+v\n%s", res.Findings, log)
		}
	})
}

func changed(files []sandbox.FileChange, path string) bool {
	for _, f := range files {
		if f.Path == path {
			return true
		}
	}
	return false
}

// TestManyLayers: a base image with more layers than fit in one page of
// overlay mount options still mounts (relative lower paths).
func TestManyLayers(t *testing.T) {
	lowers := lowerDirs(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	os.Mkdir(base, 0o755)
	if err := unix.Mount(lowers[0], base, "", unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(base, unix.MNT_DETACH)
	layers := []string{base}
	for i := range 60 {
		l := filepath.Join(dir, fmt.Sprintf("sha256-%064d", i))
		os.MkdirAll(filepath.Join(l, "opt/layers"), 0o755)
		os.WriteFile(filepath.Join(l, "opt/layers", strconv.Itoa(i)), []byte("x"), 0o644)
		layers = append(layers, l)
	}
	script := filepath.Join(t.TempDir(), "count.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nn=$(ls /opt/layers | wc -l)\necho \"$n layers\"\n[ \"$n\" = 60 ]\n"), 0o644)
	work := t.TempDir()
	res, err := sandbox.Run(context.Background(), sandbox.Config{LowerDirs: layers, Installer: script, WorkDir: work})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	defer os.Remove(res.LogPath)
	if !res.Passed() {
		log, _ := os.ReadFile(res.LogPath)
		t.Fatalf("findings %+v\n%s", res.Findings, log)
	}
}
