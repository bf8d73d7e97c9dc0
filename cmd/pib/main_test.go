//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/testenv"
)

// TestMain lets the test binary be pib itself: the sandbox re-executes it
// as its init, and end-to-end tests run it as `pib serve`.
func TestMain(m *testing.M) {
	sandbox.Main()
	if os.Getenv("PIB_TEST_RUN_PIB") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	testenv.RemovePibBinary() // the pib built for vm builds' guests
	os.Exit(code)
}

// run executes pib in-process with args and returns stdout and the error.
func run(t *testing.T, data string, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append([]string{"--data", data}, args...))
	err := cmd.Execute()
	return out.String(), err
}

func rootfsTar(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct{ name, body string }{
		{"etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n"},
		{"bin/hello", "#!/bin/sh\necho hello\n"},
	} {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o755, Size: int64(len(e.body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(e.body))
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

func TestImageCommands(t *testing.T) {
	testenv.RequireRoot(t)
	data := t.TempDir()
	out, err := run(t, data, "image", "import", rootfsTar(t), "--alias", "tiny")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	if !strings.HasPrefix(id, "img-") || len(id) != 21 {
		t.Fatalf("import printed %q, want an image ID", out)
	}

	out, err = run(t, data, "image", "ls", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	if len(list) != 1 || list[0]["id"] != id || list[0]["alias"] != "tiny" || list[0]["distro_id"] != "alpine" || list[0]["distro_version"] != "3.19.1" {
		t.Fatalf("ls --json: %s", out)
	}
	out, err = run(t, data, "image", "ls")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "alpine 3.19.1") {
		t.Fatalf("ls: %v\n%s", err, out)
	}

	out, err = run(t, data, "image", "inspect", "tiny", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var detail struct {
		ID     string `json:"id"`
		Layers []struct {
			DiffID string `json:"diff_id"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(out), &detail); err != nil || detail.ID != id || len(detail.Layers) != 1 {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}

	exp := filepath.Join(t.TempDir(), "tiny.tar")
	if _, err := run(t, data, "image", "export", id, "--format", "oci-archive", "-o", exp); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, data, "image", "export", id, "--format", "zip", "-o", exp+".zip"); err == nil {
		t.Error("export with an unknown format succeeded")
	}

	if out, err = run(t, data, "image", "rm", "tiny"); err != nil || !strings.Contains(out, id) {
		t.Fatalf("rm: %v %s", err, out)
	}
	if _, err := run(t, data, "image", "inspect", id); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("inspect after rm: %v", err)
	}
	if _, err := run(t, data, "image", "bootstrap", "ubuntu-99"); err == nil || !strings.Contains(err.Error(), "debian-12") {
		t.Fatalf("bootstrap of an unknown name: %v, want the list of known names", err)
	}
}

func TestVersionAndGlobals(t *testing.T) {
	out, err := run(t, t.TempDir(), "version")
	if err != nil || !strings.HasPrefix(out, "pib ") {
		t.Fatalf("version: %v %q", err, out)
	}
	t.Setenv("PIB_DATABASE_URL", "mysql://nope")
	if _, err := run(t, t.TempDir(), "image", "ls"); err == nil || !strings.Contains(err.Error(), "postgres://") {
		t.Fatalf("bad database URL: %v", err)
	}
}
