package groups_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora under testdata/fuzz")

// fuzzPackages are the seller's uploads; "#<n>" in a fuzz input names the
// n-th (mod len), anything else is taken as a raw package ID.
var fuzzPackages = []string{"setup.sh", "app.deb", "SETUP.MSI", "readme.txt", "install.RUN", "tool.exe", "setup.sh.txt", "deploy.ps1", "setup.sh"}

// FuzzCreateGroup sends arbitrary group requests to Create on SQLite and
// checks the outcome: a rejection is a *problem.Error naming a SPEC rule and
// the field at fault (never another error, never a panic); N1 is reported
// exactly when ValidName refuses the name; an accepted group obeys P1–P5 as
// stored and read back, its name can never be used again (N2), and another
// account cannot see it. ListPage refuses a foreign cursor with
// ErrBadCursor only.
func FuzzCreateGroup(f *testing.F) {
	db := storetest.Open(f, store.SQLite)
	ctx := context.Background()
	bs, err := blobs.NewDir(filepath.Join(f.TempDir(), "blobs"))
	if err != nil {
		f.Fatal(err)
	}
	as := accounts.NewStore(db)
	seller, _, err := as.Create(ctx, "seller1", accounts.Seller)
	if err != nil {
		f.Fatal(err)
	}
	other, _, err := as.Create(ctx, "seller2", accounts.Seller)
	if err != nil {
		f.Fatal(err)
	}
	oses := osversions.NewStore(db)
	platformOf := map[string]string{"debian-12": "linux", "debian-11": "linux", "windows-2022": "windows"}
	for name, platform := range platformOf {
		if _, err := oses.Add(ctx, name, platform, "img-0000000000000000"+name[len(name)-1:]); err != nil {
			f.Fatal(err)
		}
	}
	ps := packages.NewStore(db, bs)
	gs := groups.NewStore(db, ps, oses)
	var ids []string
	owned := map[string]*packages.Package{}
	for _, name := range fuzzPackages {
		p, err := ps.Upload(ctx, seller.ID, name, strings.NewReader("content of "+name))
		if err != nil {
			f.Fatal(err)
		}
		ids = append(ids, p.ID)
		owned[p.ID] = p
	}
	theirs, err := ps.Upload(ctx, other.ID, "theirs.sh", strings.NewReader("#!/bin/sh\n"))
	if err != nil {
		f.Fatal(err)
	}
	ref := func(s string) string {
		switch {
		case s == "#other":
			return theirs.ID
		case strings.HasPrefix(s, "#"):
			var n uint
			fmt.Sscan(s[1:], &n)
			return ids[n%uint(len(ids))]
		}
		return s
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	rules := map[string][]string{ // rule → fields it may name
		"N1": {"name"}, "P1": {"installer_id", "package_ids"}, "P2": {"installer_id"},
		"P3": {"platform", "os_versions"}, "P4": {"os_versions"}, "P5": {"package_ids"},
	}

	f.Fuzz(func(t *testing.T, name, platform, osList, installer, pkgList, cursor string) {
		spec := groups.Spec{Name: name, Platform: platform, OSVersions: split(osList), InstallerID: ref(installer)}
		for _, p := range split(pkgList) {
			spec.PackageIDs = append(spec.PackageIDs, ref(p))
		}
		g, err := gs.Create(ctx, seller.ID, spec)

		var ge *problem.Error
		if err != nil && !errors.As(err, &ge) {
			t.Fatalf("Create(%+v): %v (%T), want a *problem.Error", spec, err, err)
		}
		if (groups.ValidName(name) != nil) != (ge != nil && ge.Rule == "N1") {
			t.Fatalf("ValidName(%q) = %v but Create returned %v", name, groups.ValidName(name), err)
		}
		if ge != nil {
			switch ge.Code {
			case "invalid":
				if !slices.Contains(rules[ge.Rule], ge.Field) {
					t.Fatalf("rejection %v: rule %q with field %q is not one SPEC defines", err, ge.Rule, ge.Field)
				}
			case "conflict":
				if ge.Rule != "N2" || ge.Field != "name" {
					t.Fatalf("conflict %v: want rule N2, field name", err)
				}
			default:
				t.Fatalf("rejection %v with code %q, want invalid or conflict", err, ge.Code)
			}
			if ge.Message == "" {
				t.Fatalf("rejection %+v has no message", ge)
			}
		} else {
			checkGroup(t, g, spec, platformOf, owned)
			got, err := gs.Get(ctx, seller.ID, g.ID)
			if err != nil {
				t.Fatalf("Get of a created group: %v", err)
			}
			// Stored order is by ID; compare as sets.
			byID := func(a, b *packages.Package) int { return strings.Compare(a.ID, b.ID) }
			want := *g
			want.Packages = slices.SortedFunc(slices.Values(g.Packages), byID)
			want.OSVersions = slices.Sorted(slices.Values(g.OSVersions))
			got.Packages = slices.SortedFunc(slices.Values(got.Packages), byID)
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Fatalf("group read back differs (-created +stored):\n%s", diff)
			}
			if _, err := gs.Get(ctx, other.ID, g.ID); !errors.Is(err, groups.ErrNotFound) {
				t.Fatalf("another account's Get: %v, want ErrNotFound", err)
			}
			_, err = gs.Create(ctx, seller.ID, spec)
			if !errors.As(err, &ge) || ge.Rule != "N2" {
				t.Fatalf("the same spec twice: %v, want an N2 conflict", err)
			}
		}

		if _, _, err := gs.ListPage(ctx, seller.ID, cursor, 2); err != nil && !errors.Is(err, groups.ErrBadCursor) {
			t.Fatalf("ListPage(cursor %q): %v, want nil or ErrBadCursor", cursor, err)
		}
	})
}

// checkGroup checks an accepted group against the rules of SPEC.md.
func checkGroup(t *testing.T, g *groups.Group, spec groups.Spec, platformOf map[string]string, owned map[string]*packages.Package) {
	t.Helper()
	if groups.ValidName(g.Name) != nil || g.Name != spec.Name {
		t.Fatalf("N1: accepted name %q for %q", g.Name, spec.Name)
	}
	if len(g.OSVersions) == 0 {
		t.Fatalf("P4: accepted a group without OS versions")
	}
	for _, os := range g.OSVersions {
		if platformOf[os] != g.Platform || !slices.Contains(spec.OSVersions, os) {
			t.Fatalf("P3/P4: OS version %q (%s) in a %s group", os, platformOf[os], g.Platform)
		}
	}
	inst := g.Installer()
	if inst == nil || inst.ID != spec.InstallerID {
		t.Fatalf("P1: installer %+v, want package %q", inst, spec.InstallerID)
	}
	if !slices.Contains(groups.InstallerTypes[g.Platform], strings.ToLower(path.Ext(inst.Name))) {
		t.Fatalf("P2: %s installer %q accepted", g.Platform, inst.Name)
	}
	names := map[string]bool{}
	for _, p := range g.Packages {
		if owned[p.ID] == nil {
			t.Fatalf("P1: package %q is not the seller's", p.ID)
		}
		if names[p.Name] {
			t.Fatalf("P5: two packages named %q", p.Name)
		}
		names[p.Name] = true
	}
}

// TestWriteFuzzSeeds regenerates FuzzCreateGroup's seeds: the requests of
// the seller flow (valid Linux and Windows groups) and one per rule.
//
//	go test ./internal/groups -run TestWriteFuzzSeeds -update-fuzz-seeds
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("regenerates testdata/fuzz; run with -update-fuzz-seeds")
	}
	linux := []string{groups.SuggestName("MyApp", "1.0", "linux", 1), "linux", "debian-12", "#0", "#3", ""}
	seeds := map[string][]string{
		"linux":          linux,
		"linux-two-oses": {groups.SuggestName("Agent", "2.4.1", "linux", 3), "linux", "debian-12,debian-11,debian-12", "#1", "#0,#4", "MjAyNS0wMS0wMVQwMDowMDowMFp8cGctMDAwMDAwMDAwMDAwMDAwMA"},
		"windows":        {groups.SuggestName("MyApp", "1.0", "windows", 1), "windows", "windows-2022", "#2", "#5,#7", ""},
		"N1-dot":         {"app1.0", "linux", "debian-12", "#0", "", ""},
		"P1-foreign":     {"Foreign1", "linux", "debian-12", "#other", "", ""},
		"P2-txt":         {"Txt1", "linux", "debian-12", "#6", "", "not-a-cursor"},
		"P3-mixed":       {"Mixed1", "linux", "debian-12,windows-2022", "#0", "", ""},
		"P4-unknown-os":  {"Old1", "linux", "debian-10", "#0", "", ""},
		"P5-same-name":   {"Dup1", "linux", "debian-12", "#0", "#0,#8", ""},
	}
	for name, s := range seeds {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range s {
			fmt.Fprintf(&b, "string(%q)\n", v)
		}
		dir := filepath.Join("testdata", "fuzz", "FuzzCreateGroup")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
