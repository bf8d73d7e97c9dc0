package groups_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

type fixture struct {
	groups   *groups.Store
	packages *packages.Store
	seller   *accounts.Account
	other    *accounts.Account
	pkg      map[string]string // file name → package ID (seller's)
}

func setup(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	bs, err := blobs.NewDir(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	as := accounts.NewStore(db)
	seller, _, err := as.Create(ctx, "seller1", accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := as.Create(ctx, "seller2", accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}
	oses := osversions.NewStore(db)
	for name, platform := range map[string]string{"debian-12": "linux", "debian-11": "linux", "windows-2022": "windows"} {
		if _, err := oses.Add(ctx, name, platform, "img-0000000000000000"+name[len(name)-1:]); err != nil {
			t.Fatal(err)
		}
	}
	ps := packages.NewStore(db, bs)
	f := &fixture{groups: groups.NewStore(db, ps, oses), packages: ps, seller: seller, other: other, pkg: map[string]string{}}
	for _, name := range []string{"setup.sh", "app.deb", "SETUP.MSI", "readme.txt"} {
		p, err := ps.Upload(ctx, seller.ID, name, strings.NewReader("content of "+name))
		if err != nil {
			t.Fatal(err)
		}
		f.pkg[name] = p.ID
	}
	p, err := ps.Upload(ctx, other.ID, "theirs.sh", strings.NewReader("#!/bin/sh\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.pkg["theirs.sh"] = p.ID
	return f
}

func TestCreateValidation(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		ok := groups.Spec{Name: "MyApp1_0Linux1", Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: f.pkg["setup.sh"], PackageIDs: []string{f.pkg["readme.txt"]}}
		for _, tc := range []struct {
			name        string
			edit        func(*groups.Spec)
			rule, field string
		}{
			{"empty name", func(s *groups.Spec) { s.Name = "" }, "N1", "name"},
			{"name with a space", func(s *groups.Spec) { s.Name = "My App" }, "N1", "name"},
			{"name with a dot", func(s *groups.Spec) { s.Name = "app1.0" }, "N1", "name"},
			{"name of 100 characters", func(s *groups.Spec) { s.Name = strings.Repeat("a", 100) }, "N1", "name"},
			{"no installer", func(s *groups.Spec) { s.InstallerID = "" }, "P1", "installer_id"},
			{"installer of another account", func(s *groups.Spec) { s.InstallerID = f.pkg["theirs.sh"] }, "P1", "installer_id"},
			{"package of another account", func(s *groups.Spec) { s.PackageIDs = []string{f.pkg["theirs.sh"]} }, "P1", "package_ids"},
			{"text file as linux installer", func(s *groups.Spec) { s.InstallerID = f.pkg["readme.txt"] }, "P2", "installer_id"},
			{"msi as linux installer", func(s *groups.Spec) { s.InstallerID = f.pkg["SETUP.MSI"] }, "P2", "installer_id"},
			{"unknown platform", func(s *groups.Spec) { s.Platform = "macos" }, "P3", "platform"},
			{"windows OS in a linux group", func(s *groups.Spec) { s.OSVersions = []string{"debian-12", "windows-2022"} }, "P3", "os_versions"},
			{"no OS version", func(s *groups.Spec) { s.OSVersions = nil }, "P4", "os_versions"},
			{"unregistered OS version", func(s *groups.Spec) { s.OSVersions = []string{"debian-10"} }, "P4", "os_versions"},
			{"software version with a newline", func(s *groups.Spec) { s.SoftwareVersion = "2.0\n" }, "", "software_version"},
			{"software version of 101 characters", func(s *groups.Spec) { s.SoftwareVersion = strings.Repeat("1", 101) }, "", "software_version"},
			{"software version with a bidi control", func(s *groups.Spec) { s.SoftwareVersion = "2.0\u202e" }, "", "software_version"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				spec := ok
				spec.OSVersions = append([]string(nil), ok.OSVersions...)
				tc.edit(&spec)
				_, err := f.groups.Create(ctx, f.seller.ID, spec)
				var ge *problem.Error
				if !errors.As(err, &ge) || ge.Code != "invalid" || ge.Rule != tc.rule || ge.Field != tc.field {
					t.Fatalf("got %v, want rule %s field %s", err, tc.rule, tc.field)
				}
			})
		}
		// The same group passes, with the installer extension compared
		// case-insensitively, and Windows groups take .MSI.
		g, err := f.groups.Create(ctx, f.seller.ID, ok)
		if err != nil {
			t.Fatal(err)
		}
		if g.Installer() == nil || g.Installer().Name != "setup.sh" || len(g.Packages) != 2 {
			t.Fatalf("created group %+v", g)
		}
		if _, err := f.groups.Create(ctx, f.seller.ID, groups.Spec{Name: "Win1", Platform: "windows", OSVersions: []string{"windows-2022"}, InstallerID: f.pkg["SETUP.MSI"]}); err != nil {
			t.Fatal(err)
		}
		got, err := f.groups.Get(ctx, f.seller.ID, "MyApp1_0Linux1")
		if err != nil || got.ID != g.ID || len(got.Packages) != 2 || got.OSVersions[0] != "debian-12" {
			t.Fatalf("get by name: %+v %v", got, err)
		}
		// F1: the software version is kept; a group without one has none.
		versioned := groups.Spec{Name: "Versioned1", Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: f.pkg["setup.sh"], SoftwareVersion: "2.0 LTS (ü)"}
		if _, err := f.groups.Create(ctx, f.seller.ID, versioned); err != nil {
			t.Fatal(err)
		}
		if got, err := f.groups.Get(ctx, f.seller.ID, "Versioned1"); err != nil || got.SoftwareVersion != "2.0 LTS (ü)" {
			t.Fatalf("software version: %+v %v", got, err)
		}
		if got.SoftwareVersion != "" {
			t.Fatalf("group without a software version has %q", got.SoftwareVersion)
		}
		// Another account sees nothing.
		if _, err := f.groups.Get(ctx, f.other.ID, g.ID); !errors.Is(err, groups.ErrNotFound) {
			t.Fatalf("foreign get: %v, want ErrNotFound", err)
		}
		// N2: the name can never be used again by this account...
		again := ok
		_, err = f.groups.Create(ctx, f.seller.ID, again)
		var ge *problem.Error
		if !errors.As(err, &ge) || ge.Code != "conflict" || ge.Rule != "N2" {
			t.Fatalf("reused name: %v, want N2 conflict", err)
		}
		// ...even after the group is gone.
		if _, err := db.ExecContext(ctx, `DELETE FROM package_groups WHERE id = $1`, g.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.groups.Create(ctx, f.seller.ID, again); !errors.As(err, &ge) || ge.Rule != "N2" {
			t.Fatalf("name of a deleted group: %v, want N2 conflict", err)
		}
	})
}

// TestConcurrentCreateOneWins: N2 under a race.
func TestConcurrentCreateOneWins(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		spec := groups.Spec{Name: "Race1", Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: f.pkg["app.deb"]}
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = f.groups.Create(context.Background(), f.seller.ID, spec)
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			var ge *problem.Error
			switch {
			case err == nil:
				wins++
			case errors.As(err, &ge) && ge.Rule == "N2" && ge.Code == "conflict":
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d creates won, want 1", wins)
		}
		list, err := f.groups.List(context.Background(), f.seller.ID)
		if err != nil || len(list) != 1 {
			t.Fatalf("list: %d groups, %v", len(list), err)
		}
	})
}

func TestSuggestName(t *testing.T) {
	if got := groups.SuggestName("My App", "2.1", "linux", 3); got != "MyApp2_1Linux3" {
		t.Fatalf("got %q", got)
	}
	if err := groups.ValidName(groups.SuggestName("x", "1.0", "windows", 1)); err != nil {
		t.Fatal(err)
	}
}

func TestIsInstaller(t *testing.T) {
	for _, tc := range []struct {
		platform, name string
		want           bool
	}{
		{"linux", "setup.sh", true},
		{"linux", "SETUP.RUN", true},
		{"linux", "app.deb", true},
		{"linux", "app.msi", false},
		{"linux", "app.tar.gz", false},
		{"linux", "sh", false},
		{"windows", "setup.msi", true},
		{"windows", "setup.sh", false},
		{"solaris", "setup.sh", false},
	} {
		if got := groups.IsInstaller(tc.platform, tc.name); got != tc.want {
			t.Errorf("IsInstaller(%q, %q) = %v, want %v", tc.platform, tc.name, got, tc.want)
		}
	}
}

func TestListPage(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		var want []string
		for i := range 7 {
			g, err := f.groups.Create(ctx, f.seller.ID, groups.Spec{Name: fmt.Sprintf("G%d", i), Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: f.pkg["setup.sh"]})
			if err != nil {
				t.Fatal(err)
			}
			want = append([]string{g.ID}, want...) // newest first
		}
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			page, next, err := f.groups.ListPage(ctx, f.seller.ID, cursor, 3)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range page {
				got = append(got, g.ID)
			}
			if next == "" {
				if pages != 2 {
					t.Errorf("%d pages, want 3", pages+1)
				}
				break
			}
			cursor = next
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pages gave %v, want %v", got, want)
		}
		if _, _, err := f.groups.ListPage(ctx, f.seller.ID, "garbage!", 3); !errors.Is(err, groups.ErrBadCursor) {
			t.Fatalf("bad cursor: %v", err)
		}
	})
}
