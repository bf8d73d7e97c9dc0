package inventories_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/inventories"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// addImage inserts a bare image row: the inventory's foreign key needs one.
func addImage(t *testing.T, db *store.DB, id string) {
	t.Helper()
	_, err := db.ExecContext(context.Background(), `INSERT INTO images (id, owner, os, distro_id, distro_version, architecture, manifest_digest, config_digest, size, created_at)
		VALUES ($1, 'operator', 'linux', 'debian', '12', 'amd64', 'sha256:00', 'sha256:00', 0, $2)`, id, time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
}

func TestPutGetRemove(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		bs, err := blobs.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		s := inventories.New(db, bs)
		addImage(t, db, "img-1")
		if _, err := s.Inventory(ctx, "img-1"); !errors.Is(err, inventories.ErrNotFound) {
			t.Fatalf("inventory before Put: err = %v, want ErrNotFound", err)
		}
		inv := &scan.Inventory{OS: scan.OS{ID: "debian", Version: "12", Ecosystem: "Debian:12"},
			Packages: []scan.Package{{Name: "libssl3", Version: "3.0.15-1~deb12u1", SourceName: "openssl", SourceVersion: "3.0.15-1~deb12u1", Ecosystem: "Debian:12", Type: "deb"}}}
		if err := s.Put(ctx, "img-1", inv, []byte("state")); err != nil {
			t.Fatal(err)
		}
		// An image's inventory never changes: a second Put keeps the first.
		if err := s.Put(ctx, "img-1", &scan.Inventory{}, []byte("other")); err != nil {
			t.Fatal(err)
		}
		got, err := s.Inventory(ctx, "img-1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, inv) {
			t.Errorf("Inventory = %+v, want %+v", got, inv)
		}
		st, err := s.State(ctx, "img-1")
		if err != nil || string(st) != "state" {
			t.Errorf("State = %q, %v; want \"state\"", st, err)
		}
		var seen []string
		addImage(t, db, "img-2") // no inventory: skipped
		if err := s.Each(ctx, []string{"img-2", "img-1"}, func(id string, inv *scan.Inventory) error {
			seen = append(seen, id)
			return nil
		}); err != nil || !reflect.DeepEqual(seen, []string{"img-1"}) {
			t.Errorf("Each saw %v, %v; want [img-1]", seen, err)
		}
		// The blobs are the image's: listed in image_blobs, so removing
		// the image (which deletes what no row names) takes them along.
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM image_blobs WHERE image_id = 'img-1'`).Scan(&n); err != nil || n != 2 {
			t.Errorf("image_blobs rows = %d, %v; want 2", n, err)
		}
		if _, err := db.ExecContext(ctx, `DELETE FROM images WHERE id = 'img-1'`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Inventory(ctx, "img-1"); !errors.Is(err, inventories.ErrNotFound) {
			t.Errorf("inventory after the image is removed: err = %v, want ErrNotFound", err)
		}
	})
}
