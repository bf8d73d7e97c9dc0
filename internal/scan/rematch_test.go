package scan_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/vulndb"
)

// synthDB is the small synthetic OSV data of testdata/osv, imported into
// a fresh database.
func synthDB(t *testing.T) *vulndb.DB {
	t.Helper()
	sdb, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "pib.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sdb.Close() })
	db := vulndb.New(sdb)
	if _, err := db.Import(context.Background(), "testdata/osv"); err != nil {
		t.Fatal(err)
	}
	return db
}

// debianInventory is the real package list of the debian-12 test image
// (from its dpkg status), as a scan keeps it.
func debianInventory(t testing.TB) scan.Inventory {
	t.Helper()
	raw, err := os.ReadFile("testdata/inventory/debian-12.json")
	if err != nil {
		t.Fatal(err)
	}
	var inv scan.Inventory
	if err := json.Unmarshal(raw, &inv); err != nil {
		t.Fatal(err)
	}
	return inv
}

// variant is inv with every step-th package's source at an older version
// (distinct per n), as images built months apart differ.
func variant(inv scan.Inventory, n, step int) scan.Inventory {
	out := scan.Inventory{OS: inv.OS, Packages: append([]scan.Package(nil), inv.Packages...)}
	for i := n % step; i < len(out.Packages); i += step {
		p := &out.Packages[i]
		p.SourceVersion = fmt.Sprintf("0.%d-1", n)
		p.Version = p.SourceVersion
	}
	return out
}

func deb(name, version, source, sourceVersion string) scan.Package {
	return scan.Package{Name: name, Version: version, SourceName: source, SourceVersion: sourceVersion, Ecosystem: "Debian:12", Type: "deb"}
}

// TestRematchEqualsMatch: re-matching many kept inventories at once gives
// each image exactly the findings and warnings a scan's matching gives it
// (S5 may announce no difference that is only the matcher's).
func TestRematchEqualsMatch(t *testing.T) {
	synthetic := []scan.Inventory{
		{Packages: []scan.Package{
			deb("foo", "1.0-1", "foo", "1.0-1"), deb("libfoo1", "1.0-1", "foo", "1.0-1"),
			deb("bar", "1.2-2", "bar", "1.2-2"), deb("baz", "1:1.0-1", "baz", "1:1.0-1"),
			deb("qux", "2.0~alpha-1", "qux", "2.0~alpha-1"), deb("lst", "1.5-1", "lst", "1.5-1"),
			deb("ver", "0.9-1", "ver", "0.9-1"), deb("zap", "1-1", "zap", "1-1"),
			deb("broken", "not a version!", "foo", "not a version!"),
			{Name: "demo", Version: "1.0", SourceName: "demo", SourceVersion: "1.0", Ecosystem: "PyPI", Type: "python"},
			{Name: "Demo_Two", Version: "1.0", SourceName: "Localpkg", SourceVersion: "1.0", Ecosystem: "PyPI", Type: "python"},
			{Name: "no-ecosystem", Version: "1", SourceName: "no-ecosystem", SourceVersion: "1", Type: "binary"},
		}},
		{Packages: []scan.Package{deb("foo", "1.0-2", "foo", "1.0-2"), deb("lst", "1.6-1", "lst", "1.6-1"), deb("ver", "0.8-1", "ver", "0.8-1")}},
		{Packages: []scan.Package{deb("foo", "1.0-1", "foo", "1.0-1"), deb("bar", "1.2-3+deb12u1", "bar", "1.2-3+deb12u1")}},
		{},
	}
	for _, tc := range []struct {
		name string
		db   func(t *testing.T) *vulndb.DB
		invs func(t *testing.T) []scan.Inventory
	}{
		{"synthetic", synthDB, func(*testing.T) []scan.Inventory { return synthetic }},
		{"debian-12 and variants, real OSV data", func(t *testing.T) *vulndb.DB { return debianDB(t) }, func(t *testing.T) []scan.Inventory {
			base := debianInventory(t)
			out := []scan.Inventory{base}
			for n := range 6 {
				out = append(out, variant(base, n, 7))
			}
			return out
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := tc.db(t)
			invs := tc.invs(t)
			each := func(fn func(string, *scan.Inventory) error) error {
				for i := range invs {
					if err := fn(fmt.Sprint("img-", i), &invs[i]); err != nil {
						return err
					}
				}
				return nil
			}
			seen := 0
			err := scan.Rematch(ctx, db, each, func(id string, got []scan.Finding, gotWarnings []string) error {
				var i int
				fmt.Sscanf(id, "img-%d", &i)
				want, wantWarnings, err := scan.Match(ctx, db, invs[i].Packages)
				if err != nil {
					return err
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s: findings differ from match's (-match +rematch):\n%s", id, diff)
				}
				if diff := cmp.Diff(wantWarnings, gotWarnings); diff != "" {
					t.Errorf("%s: warnings differ from match's (-match +rematch):\n%s", id, diff)
				}
				seen++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if seen != len(invs) {
				t.Errorf("rematch reported %d images, want %d", seen, len(invs))
			}
		})
	}
}

// TestRematchStops: an error from the callback ends the walk with it.
func TestRematchStops(t *testing.T) {
	db := synthDB(t)
	inv := scan.Inventory{Packages: []scan.Package{deb("foo", "1.0-1", "foo", "1.0-1")}}
	each := func(fn func(string, *scan.Inventory) error) error {
		for i := range 3 {
			if err := fn(fmt.Sprint("img-", i), &inv); err != nil {
				return err
			}
		}
		return nil
	}
	stop := errors.New("stop")
	calls := 0
	err := scan.Rematch(context.Background(), db, each, func(string, []scan.Finding, []string) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Rematch = %v after %d calls; want the callback's error after 1", err, calls)
	}
}
