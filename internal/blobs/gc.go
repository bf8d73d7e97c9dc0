package blobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Lister is a Store that can list what it holds (both back ends).
type Lister interface {
	Store
	List(ctx context.Context) ([]Info, error)
}

// Referenced reports whether some row still needs blob h.
type Referenced func(ctx context.Context, h v1.Hash) (bool, error)

// Collected is what one Collect run did.
type Collected struct {
	Blobs, Young, Referenced, Deleted int
	DeletedBytes                      int64
}

// Collect deletes every blob older than grace that no row references.
// Why both conditions: a blob is written before the row that references
// it is committed, so a young unreferenced blob may be one a writer (on
// any node) is about to record; on a shared S3 store, Delete's lease
// check also keeps a blob that a writer found and reuses (Leases).
func Collect(ctx context.Context, st Lister, grace time.Duration, referenced Referenced) (Collected, error) {
	var c Collected
	if s, ok := st.(*S3); ok {
		if err := s.leases.Expire(ctx, grace); err != nil {
			return c, fmt.Errorf("expire blob leases: %w", err)
		}
	}
	all, err := st.List(ctx)
	if err != nil {
		return c, err
	}
	cutoff := time.Now().Add(-grace)
	for _, b := range all {
		c.Blobs++
		if b.Modified.After(cutoff) {
			c.Young++
			continue
		}
		ref, err := referenced(ctx, b.Digest)
		if err != nil {
			return c, fmt.Errorf("check the references of blob %s: %w", b.Digest, err)
		}
		if ref {
			c.Referenced++
			continue
		}
		if err := ctx.Err(); err != nil {
			return c, err
		}
		if s, ok := st.(*S3); ok {
			gone, err := s.remove(ctx, b.Digest)
			if err != nil {
				return c, err
			}
			if !gone {
				c.Referenced++ // a writer's lease
				continue
			}
		} else if err := st.Delete(b.Digest); err != nil {
			return c, err
		}
		slog.Debug("blob collected", "digest", b.Digest, "size", b.Size)
		c.Deleted++
		c.DeletedBytes += b.Size
	}
	return c, nil
}
