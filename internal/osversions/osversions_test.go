package osversions_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
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

// TestBackendSetting: a Linux OS version builds in the sandbox until the
// operator chooses vm, keeps its choice when pointed at a new image, an
// unknown backend is refused; a Windows OS version is always vm, and
// sandbox is refused for it (the sandbox runs Linux installers only).
// Run on SQLite and PostgreSQL: migration 00015 adds the column to both.
func TestBackendSetting(t *testing.T) {
	storetest.ForEach(t, testBackendSetting)
}

func testBackendSetting(t *testing.T, db *store.DB) {
	ctx := context.Background()
	s := osversions.NewStore(db)
	backend := func(name string) string {
		t.Helper()
		b, err := s.BackendOf(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := s.Add(ctx, "debian-12", "linux", "img-00000000000000001"); err != nil {
		t.Fatal(err)
	}
	if got := backend("debian-12"); got != osversions.Sandbox {
		t.Fatalf("new Linux OS version builds on %q, want sandbox", got)
	}
	if v, err := s.SetBackend(ctx, "debian-12", osversions.VM); err != nil || v.Backend != osversions.VM {
		t.Fatalf("SetBackend vm: %+v, %v", v, err)
	}
	if _, err := s.Add(ctx, "debian-12", "linux", "img-00000000000000002"); err != nil {
		t.Fatal(err)
	}
	if got := backend("debian-12"); got != osversions.VM {
		t.Fatalf("pointing the OS version at a new image reset its backend to %q", got)
	}
	if _, err := s.SetBackend(ctx, "debian-12", "docker"); err == nil || !strings.Contains(err.Error(), "use sandbox or vm") {
		t.Fatalf("SetBackend docker: %v, want a refusal naming sandbox and vm", err)
	}
	if _, err := s.SetBackend(ctx, "debian-99", osversions.VM); !errors.Is(err, osversions.ErrNotFound) {
		t.Fatalf("SetBackend of an unknown OS version: %v", err)
	}

	if v, err := s.Add(ctx, "windows-2022", "windows", "img-00000000000000003"); err != nil || v.Backend != osversions.VM {
		t.Fatalf("new Windows OS version: %+v, %v; want backend vm", v, err)
	}
	if _, err := s.SetBackend(ctx, "windows-2022", osversions.Sandbox); err == nil || !strings.Contains(err.Error(), "Linux installers only") {
		t.Fatalf("SetBackend sandbox on Windows: %v, want a refusal", err)
	}
	// An OS version re-pointed from a Linux image to a Windows one
	// becomes vm, whatever it was.
	if v, err := s.Add(ctx, "debian-12", "windows", "img-00000000000000004"); err != nil || v.Backend != osversions.VM {
		t.Fatalf("re-pointed to Windows: %+v, %v", v, err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[1].Backend != osversions.VM {
		t.Fatalf("List: %+v, %v", list, err)
	}
}

// TestDiskImageBackend: an OS version on a disk image (a Linux one too)
// builds only in a machine: it becomes vm when registered or re-pointed,
// sandbox is refused, and so is the boot test (V1–V3 need a file-system
// image). Both databases: the check reads the images table (00016).
func TestDiskImageBackend(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := osversions.NewStore(db)
		for id, disk := range map[string]string{"img-0000000000000000f": "", "img-0000000000000000d": "disk/0.qcow2"} {
			if _, err := db.ExecContext(ctx, `INSERT INTO images (id, owner, os, distro_id, distro_version, architecture, manifest_digest, config_digest, size, created_at, disk)
				VALUES ($1, 'operator', 'linux', 'debian', '12', 'amd64', 'sha256:00', 'sha256:00', 0, CURRENT_TIMESTAMP, $2)`, id, disk); err != nil {
				t.Fatal(err)
			}
		}
		v, err := s.Add(ctx, "debian-12", "linux", "img-0000000000000000f")
		if err != nil || v.Backend != osversions.Sandbox || v.DiskImage {
			t.Fatalf("on a file-system image: %+v, %v; want sandbox, not a disk image", v, err)
		}
		if v, err = s.Add(ctx, "debian-12", "linux", "img-0000000000000000d"); err != nil || v.Backend != osversions.VM || !v.DiskImage {
			t.Fatalf("re-pointed to a disk image: %+v, %v; want vm and disk_image", v, err)
		}
		if _, err := s.SetBackend(ctx, "debian-12", osversions.Sandbox); err == nil || !strings.Contains(err.Error(), "disk image") {
			t.Fatalf("SetBackend sandbox on a disk image: %v, want a refusal", err)
		}
		if _, err := s.SetBootTest(ctx, "debian-12", true); err == nil || !strings.Contains(err.Error(), "cannot be boot-tested") {
			t.Fatalf("boot test on a disk image: %v, want a refusal", err)
		}
		if _, err := s.SetBootTest(ctx, "debian-12", false); err != nil {
			t.Fatalf("boot test off on a disk image: %v", err)
		}
	})
}
