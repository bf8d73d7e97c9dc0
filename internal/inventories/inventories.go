//go:build linux

// Package inventories keeps what each scan found in an image, per image
// ID (S1, S5).
//
// Images never change, so neither does their inventory. Two parts are
// kept, as gzip'd blobs named by their digest:
//   - the matching view (scan.Inventory: the OS and its packages), small,
//     which monitoring re-matches against new vulnerability data without
//     reading any root file system again (S5);
//   - the scanner's state (its full SBOM and what the policy checks
//     found), opaque here, which a build's scan on this image starts from
//     (incremental scanning).
//
// Both blobs are also listed in image_blobs, so removing the image
// removes them.
package inventories

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
)

// ErrNotFound is an image with no inventory kept: never scanned, or
// scanned before inventories were kept.
var ErrNotFound = problem.New(problem.NotFound, "no inventory is kept for this image; scan it first")

// maxInflated caps what one stored blob may inflate to: a blob is pib's
// own output, but a corrupt one must not exhaust memory.
const maxInflated = 1 << 30

// Store keeps inventories in db, their blobs in bs.
type Store struct {
	db    *store.DB
	blobs blobs.Store
	now   func() time.Time
}

// New returns the inventories of db, with blobs in bs.
func New(db *store.DB, bs blobs.Store) *Store {
	return &Store{db: db, blobs: bs, now: func() time.Time { return time.Now().UTC() }}
}

// Put keeps inv and state as image imageID's inventory. An image's
// inventory never changes: a second Put for the same image keeps the
// first (both describe the same immutable image) and returns nil.
func (s *Store) Put(ctx context.Context, imageID string, inv *scan.Inventory, state []byte) error {
	raw, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	pkgs, err := s.putBlob(ctx, raw)
	if err != nil {
		return fmt.Errorf("store the inventory of image %s: %w", imageID, err)
	}
	st, err := s.putBlob(ctx, state)
	if err != nil {
		return fmt.Errorf("store the scanner state of image %s: %w", imageID, err)
	}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO image_inventories (image_id, packages_digest, state_digest, created_at) VALUES ($1, $2, $3, $4)`,
			imageID, pkgs.String(), st.String(), s.now())
		if err != nil {
			return err
		}
		for _, d := range []v1.Hash{pkgs, st} {
			if _, err := tx.ExecContext(ctx, `INSERT INTO image_blobs (image_id, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING`, imageID, d.String()); err != nil {
				return err
			}
		}
		return nil
	})
	if err = store.Classify(err); errors.Is(err, store.ErrConflict) {
		return nil // kept already, by a concurrent or earlier scan
	}
	if err != nil {
		return fmt.Errorf("record the inventory of image %s: %w", imageID, err)
	}
	return nil
}

func (s *Store) putBlob(ctx context.Context, data []byte) (v1.Hash, error) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		return v1.Hash{}, err
	}
	h, _, err := s.blobs.Put(ctx, &buf, v1.Hash{})
	return h, err
}

func (s *Store) readBlob(digest string) ([]byte, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return nil, fmt.Errorf("stored digest %q: %w", digest, err)
	}
	rc, err := s.blobs.Open(h)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", digest, err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxInflated+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", digest, err)
	}
	if len(data) > maxInflated {
		return nil, fmt.Errorf("blob %s inflates to more than %d bytes", digest, maxInflated)
	}
	return data, nil
}

func (s *Store) digests(ctx context.Context, imageID string) (pkgs, state string, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT packages_digest, state_digest FROM image_inventories WHERE image_id = $1`, imageID).Scan(&pkgs, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrNotFound
	}
	return pkgs, state, err
}

// Inventory returns image imageID's matching view, or ErrNotFound.
func (s *Store) Inventory(ctx context.Context, imageID string) (*scan.Inventory, error) {
	d, _, err := s.digests(ctx, imageID)
	if err != nil {
		return nil, err
	}
	return s.decode(d)
}

func (s *Store) decode(digest string) (*scan.Inventory, error) {
	raw, err := s.readBlob(digest)
	if err != nil {
		return nil, err
	}
	var inv scan.Inventory
	if err := json.Unmarshal(raw, &inv); err != nil {
		return nil, fmt.Errorf("inventory blob %s: %w", digest, err)
	}
	return &inv, nil
}

// State returns the scanner state kept with image imageID's inventory, or
// ErrNotFound.
func (s *Store) State(ctx context.Context, imageID string) ([]byte, error) {
	_, d, err := s.digests(ctx, imageID)
	if err != nil {
		return nil, err
	}
	return s.readBlob(d)
}

// Each calls fn with the inventory of every image in imageIDs that has
// one, one at a time, so that memory stays bounded by one inventory
// whatever the count. Images without an inventory are skipped.
func (s *Store) Each(ctx context.Context, imageIDs []string, fn func(imageID string, inv *scan.Inventory) error) error {
	for _, id := range imageIDs {
		inv, err := s.Inventory(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := fn(id, inv); err != nil {
			return err
		}
	}
	return nil
}
