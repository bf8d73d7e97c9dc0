package osversions_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/store"
)

// TestBootTestSetting: off for a new OS version, turned on and off by the
// operator, kept when the OS version is pointed at a new image, and an
// unknown name is not found.
func TestBootTestSetting(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "pib.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := osversions.NewStore(db)
	on := func() bool {
		t.Helper()
		v, err := s.BootTestOn(ctx, "debian-12")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := s.Add(ctx, "debian-12", "linux", "img-00000000000000001"); err != nil {
		t.Fatal(err)
	}
	if on() {
		t.Fatal("a new OS version has its boot test on")
	}
	if v, err := s.SetBootTest(ctx, "debian-12", true); err != nil || !v.BootTest {
		t.Fatalf("SetBootTest on: %+v, %v", v, err)
	}
	if _, err := s.Add(ctx, "debian-12", "linux", "img-00000000000000002"); err != nil {
		t.Fatal(err)
	}
	if !on() {
		t.Fatal("pointing the OS version at a new image turned its boot test off")
	}
	if list, err := s.List(ctx); err != nil || len(list) != 1 || !list[0].BootTest {
		t.Fatalf("List: %+v, %v", list, err)
	}
	if _, err := s.SetBootTest(ctx, "debian-12", false); err != nil || on() {
		t.Fatalf("SetBootTest off: %v", err)
	}
	if _, err := s.SetBootTest(ctx, "debian-99", true); !errors.Is(err, osversions.ErrNotFound) {
		t.Fatalf("SetBootTest of an unknown OS version: %v", err)
	}
}
