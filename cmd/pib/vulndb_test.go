//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/testenv"
)

// TestImageEcosystems: pib vulndb update without --ecosystem updates the
// OSV ecosystems of the stored images' distributions, each once.
func TestImageEcosystems(t *testing.T) {
	testenv.RequireRoot(t)
	data := t.TempDir()
	for _, alias := range []string{"tiny", "tiny2"} {
		if _, err := run(t, data, "image", "import", rootfsTar(t), "--alias", alias); err != nil {
			t.Fatal(err)
		}
	}
	is, closeStore, err := testenv.OpenStore(data)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	got, err := imageEcosystems(context.Background(), is)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Alpine"}, got); diff != "" {
		t.Errorf("ecosystems (-want +got):\n%s", diff)
	}
}

// TestVulnDBImportSummary: records without a modified time are imported
// and counted; each malformed record is named with its reason.
func TestVulnDBImportSummary(t *testing.T) {
	data, dir := t.TempDir(), t.TempDir()
	for name, body := range map[string]string{
		"GO-2022-1059.json": `{"id":"GO-2022-1059","modified":"0001-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"golang.org/x/text"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.3.8"}]}]}]}`,
		"PYSEC-1.json":      `{"id":"PYSEC-1"}`,
		"BAD-1.json":        `{"id":"BAD-1","affected":[{"package":{"ecosystem":"PyPI","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":[{}]}]}]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"--data", data, "vulndb", "import", dir})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if want := "3 records read (2 with no modified time), 2 imported, 0 unchanged, 0 withdrawn, 1 skipped as malformed"; !strings.Contains(out.String(), want) {
		t.Errorf("stdout %q, want it to say %q", out.String(), want)
	}
	if want := "skipped record BAD-1: affected[0]: a range event must set exactly one of"; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q, want it to say %q", errOut.String(), want)
	}
}
