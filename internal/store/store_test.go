package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// The conformance suite: every behaviour the rest of pib relies on, run
// against both engines.
func TestConformance(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		t.Run("migrate is idempotent", func(t *testing.T) {
			db2, err := store.Open(ctx, db.URL)
			if err != nil {
				t.Fatal(err)
			}
			db2.Close()
		})
		t.Run("timestamps round-trip in UTC", func(t *testing.T) {
			at := time.Date(2026, 11, 25, 17, 33, 18, 123456000, time.UTC)
			if _, err := db.ExecContext(ctx, `INSERT INTO images (id, owner, os, distro_id, distro_version, architecture, manifest_digest, config_digest, size, created_at)
				VALUES ($1, $2, 'linux', 'debian', '12', 'amd64', 'sha256:m', 'sha256:c', $3, $4)`, "img-time", "operator", 42, at); err != nil {
				t.Fatal(err)
			}
			var got time.Time
			if err := db.QueryRowContext(ctx, `SELECT created_at FROM images WHERE id = $1`, "img-time").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if !got.Equal(at) {
				t.Fatalf("created_at = %v, want %v", got, at)
			}
		})
		t.Run("unique violation is ErrConflict", func(t *testing.T) {
			insert := func(id string) error {
				_, err := db.ExecContext(ctx, `INSERT INTO images (id, alias, owner, os, distro_id, distro_version, architecture, manifest_digest, config_digest, size, created_at)
					VALUES ($1, 'same-alias', 'operator', 'linux', 'debian', '12', 'amd64', 'sha256:m', 'sha256:c', 1, $2)`, id, time.Now().UTC())
				return store.Classify(err)
			}
			if err := insert("img-a"); err != nil {
				t.Fatal(err)
			}
			if err := insert("img-b"); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("second insert: got %v, want ErrConflict", err)
			}
		})
		t.Run("concurrent inserts of one key: exactly one wins", func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := db.ExecContext(ctx, `INSERT INTO images (id, owner, os, distro_id, distro_version, architecture, manifest_digest, config_digest, size, created_at)
						VALUES ('img-race', 'operator', 'linux', 'debian', '12', 'amd64', 'sha256:m', 'sha256:c', 1, $1)`, time.Now().UTC())
					errs[i] = store.Classify(err)
				}()
			}
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, store.ErrConflict):
					t.Errorf("unexpected error: %v", err)
				}
			}
			if wins != 1 {
				t.Fatalf("%d inserts won, want exactly 1", wins)
			}
		})
		t.Run("no rows is ErrNotFound", func(t *testing.T) {
			var id string
			err := store.Classify(db.QueryRowContext(ctx, `SELECT id FROM images WHERE id = $1`, "img-missing").Scan(&id))
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
		})
		t.Run("deleting an image cascades to its blob references", func(t *testing.T) {
			if _, err := db.ExecContext(ctx, `INSERT INTO image_blobs (image_id, digest) VALUES ('img-time', 'sha256:x')`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `DELETE FROM images WHERE id = 'img-time'`); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM image_blobs WHERE image_id = 'img-time'`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("%d blob references left, want 0", n)
			}
		})
	})
}

func TestOpenRejectsUnknownURL(t *testing.T) {
	_, err := store.Open(context.Background(), "mysql://root@localhost/x")
	if err == nil {
		t.Fatal("want an error for a mysql URL")
	}
}
