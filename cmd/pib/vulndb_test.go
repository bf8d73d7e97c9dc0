package main

import (
	"context"
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
