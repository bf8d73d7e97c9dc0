//go:build linux

package pipeline

import (
	"context"
	"database/sql"
	"time"
)

// Notify queues event for account's webhook, if it has one, in tx,
// through the pipeline's job queue: for events that are not a build's (a
// catalog decision), delivered by the same workers and committed, or
// rolled back, with the change they report.
func (p *Pipeline) Notify(ctx context.Context, tx *sql.Tx, account, event string, body func(id string, at time.Time) ([]byte, error)) error {
	return p.cfg.Webhooks.Enqueue(ctx, tx, p.client, account, event, body)
}
