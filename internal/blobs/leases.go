package blobs

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/store"
)

// Leases make deleting from a shared blob store safe while other nodes
// write to it. The hazard: a writer finds blob X already in the bucket
// (or uploads it), then commits a row that references X; a deleter that
// checked "no row references X" before that commit, and deletes after,
// leaves the row pointing at nothing. Checking the blob's age does not
// close it: a writer may reuse an old blob.
//
// The protocol, serialised by one row per digest (its primary key):
//   - a writer Holds X (state held, at now) before it looks at the bucket,
//     and commits its reference within the grace period;
//   - a deleter Marks X (state deleting) only if no writer holds a lease
//     younger than the grace period, deletes the object, then Clears.
//
// Either the writer's Hold commits first, and Mark refuses (or, past the
// grace period, the writer's reference is committed and the deleter's
// reference check, made after Mark, sees it); or Mark commits first, and
// Hold waits until the deletion is over, after which the writer finds X
// missing and uploads it again.
type Leases struct {
	db  *store.DB
	now func() time.Time
}

// NewLeases returns the leases kept in db.
func NewLeases(db *store.DB) *Leases {
	return &Leases{db: db, now: func() time.Time { return time.Now().UTC() }}
}

// holdWait is how long Hold waits for a deletion in progress: far longer
// than deleting one object takes; a deleter that died leaves a mark that
// is taken over once it is older than the grace period.
const holdWait = 2 * time.Minute

// Hold takes (or renews) a writer's lease on h, waiting while a deleter
// is removing it.
func (l *Leases) Hold(ctx context.Context, h v1.Hash) error {
	deadline := l.now().Add(holdWait)
	for {
		now := l.now()
		// A deleting mark older than holdWait belongs to a deleter that
		// died (a live one takes a single request's time).
		res, err := l.db.ExecContext(ctx, `INSERT INTO blob_leases (digest, state, at) VALUES ($1, 'held', $2)
			ON CONFLICT (digest) DO UPDATE SET state = 'held', at = $2
			WHERE blob_leases.state = 'held' OR blob_leases.at < $3`, h.String(), now.UnixMilli(), now.Add(-holdWait).UnixMilli())
		if err != nil {
			return fmt.Errorf("take the lease on blob %s: %w", h, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		if now.After(deadline) {
			return fmt.Errorf("blob %s is being deleted by another node for more than %s; retry later", h, holdWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Mark claims h for deletion: false when a writer's lease on it is younger
// than grace (or another deleter has it), and h must stay.
func (l *Leases) Mark(ctx context.Context, h v1.Hash, grace time.Duration) (bool, error) {
	now := l.now()
	res, err := l.db.ExecContext(ctx, `INSERT INTO blob_leases (digest, state, at) VALUES ($1, 'deleting', $2)
		ON CONFLICT (digest) DO UPDATE SET state = 'deleting', at = $2
		WHERE (blob_leases.state = 'held' AND blob_leases.at < $3) OR (blob_leases.state = 'deleting' AND blob_leases.at < $4)`,
		h.String(), now.UnixMilli(), now.Add(-grace).UnixMilli(), now.Add(-holdWait).UnixMilli())
	if err != nil {
		return false, fmt.Errorf("mark blob %s for deletion: %w", h, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Clear ends a deletion Mark began.
func (l *Leases) Clear(ctx context.Context, h v1.Hash) error {
	_, err := l.db.ExecContext(ctx, `DELETE FROM blob_leases WHERE digest = $1 AND state = 'deleting'`, h.String())
	return err
}

// Expire removes writers' leases older than grace: their references are
// committed (or their writers gone) by then.
func (l *Leases) Expire(ctx context.Context, grace time.Duration) error {
	_, err := l.db.ExecContext(ctx, `DELETE FROM blob_leases WHERE state = 'held' AND at < $1`, l.now().Add(-grace).UnixMilli())
	return err
}
