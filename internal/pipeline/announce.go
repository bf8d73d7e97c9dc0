//go:build linux

package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/riverqueue/river"
)

// Jobs is a set of job kinds a pipeline's workers also run (monitoring,
// S5). Register adds its workers, queues and periodic jobs to rc, the
// configuration of the pipeline's River client, before the client is
// made; p is the pipeline they record history and queue webhooks through.
// A pipeline that works no jobs (Workers < 0) never calls it.
type Jobs interface {
	Register(rc *river.Config, p *Pipeline)
}

// Announce records reason in the history of build id (its group's, or a
// private build's own), at the build's current state, and queues event
// for the build owner's webhook, in tx: news about a build that is not a
// state change (its image is affected by new vulnerability data, S5).
func (p *Pipeline) Announce(ctx context.Context, tx *sql.Tx, id, event, reason string, body func(id string, at time.Time) ([]byte, error)) error {
	var key, owner, osName string
	var state State
	err := tx.QueryRowContext(ctx, `SELECT `+historyKey+`, owner, os_name, state FROM builds WHERE id = $1`, id).Scan(&key, &owner, &osName, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound.Errorf("not found: build %q", id)
	}
	if err != nil {
		return err
	}
	if err := record(ctx, tx, key, owner, id, osName, state, reason, p.now()); err != nil {
		return err
	}
	return p.cfg.Webhooks.Enqueue(ctx, tx, p.client, owner, event, body)
}
