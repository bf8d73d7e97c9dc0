//go:build linux

package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// ReapArgs is the periodic job that finds builds whose worker was lost.
type ReapArgs struct{}

// Kind implements river.JobArgs.
func (ReapArgs) Kind() string { return "pib_reap" }

type reapWorker struct {
	river.WorkerDefaults[ReapArgs]
	p *Pipeline
}

func (w *reapWorker) Timeout(*river.Job[ReapArgs]) time.Duration { return time.Minute }

func (w *reapWorker) Work(ctx context.Context, _ *river.Job[ReapArgs]) error {
	return w.p.Reap(ctx)
}

// Reap re-queues builds in progress whose worker is gone: a lease whose
// heartbeat is older than StaleAfter (the process was killed), or no lease
// and no live River job (the job was lost). After MaxLost losses in a row
// the build moves to Investigating ("worker lost"). Every step is a
// compare-and-set, so concurrent reapers are harmless.
func (p *Pipeline) Reap(ctx context.Context) error {
	type cand struct {
		id      string
		job     sql.NullInt64
		runID   sql.NullString
		hb      sql.NullTime
		updated time.Time
	}
	rows, err := p.db.QueryContext(ctx, `SELECT id, job_id, run_id, heartbeat_at, updated_at FROM builds WHERE state IN ($1, $2)`, string(Building), string(Scanning))
	if err != nil {
		return err
	}
	var cands []cand
	for rows.Next() {
		var c cand
		if err := rows.Scan(&c.id, &c.job, &c.runID, &c.hb, &c.updated); err != nil {
			rows.Close()
			return err
		}
		cands = append(cands, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	now := p.now()
	var errs []error
	for _, c := range cands {
		switch {
		case c.runID.Valid:
			if c.hb.Valid && now.Sub(c.hb.Time) < p.cfg.StaleAfter {
				continue
			}
			errs = append(errs, p.recoverLost(ctx, c.id, c.runID.String, fmt.Sprintf("the worker was lost (no heartbeat since %s)", hbString(c.hb))))
		case now.Sub(c.updated) >= p.cfg.StaleAfter && !p.jobAlive(ctx, c.job):
			errs = append(errs, p.recoverLost(ctx, c.id, "", "its job was lost"))
		}
	}
	return errors.Join(errs...)
}

// jobAlive reports whether a build's River job may still run it.
func (p *Pipeline) jobAlive(ctx context.Context, id sql.NullInt64) bool {
	if !id.Valid {
		return false
	}
	j, err := p.client.JobGet(ctx, id.Int64)
	if errors.Is(err, rivertype.ErrNotFound) {
		return false
	}
	if err != nil {
		return true // unknown: look again next time
	}
	switch j.State {
	case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
		return false
	}
	return true
}

// recoverLost re-queues build id, still held by runID ("" = no lease), or
// moves it to Investigating once MaxLost is reached.
func (p *Pipeline) recoverLost(ctx context.Context, id, runID, why string) error {
	investigate := ""
	err := p.db.Tx(ctx, func(tx *sql.Tx) error {
		investigate = ""
		var state State
		var cur sql.NullString
		var lost int
		var groupID, owner, osName string
		err := tx.QueryRowContext(ctx, `SELECT state, run_id, lost, `+historyKey+`, owner, os_name FROM builds WHERE id = $1`+p.forUpdate(), id).
			Scan(&state, &cur, &lost, &groupID, &owner, &osName)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if state.Ended() || cur.String != runID {
			return nil // changed meanwhile
		}
		lost++
		if lost >= p.cfg.MaxLost {
			investigate = fmt.Sprintf("%s; worker lost %d times in a row", why, lost)
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE builds SET run_id = NULL, heartbeat_at = NULL, lost = $2, updated_at = $3 WHERE id = $1`, id, lost, p.now()); err != nil {
			return err
		}
		if err := p.enqueueBuild(ctx, tx, id); err != nil {
			return err
		}
		return record(ctx, tx, groupID, owner, id, osName, state,
			fmt.Sprintf("%s; re-queued (%d of %d)", why, lost, p.cfg.MaxLost-1), p.now())
	})
	if err != nil {
		return err
	}
	if runID != "" {
		p.cleanup(ctx, id, runID)
	}
	if investigate == "" {
		return nil
	}
	c := change{to: Investigating, from: []State{Building, Scanning},
		reason:        "worker lost: the build's worker stopped responding repeatedly; an operator will look into it",
		investigation: investigate,
		set: buildUpdate{troubleshooting: val("The machine running this build stopped responding several times. " +
			"This is pib's problem, not your package group's; it is in the operators' investigation queue.")}}
	if runID != "" {
		c.runID = runID
	}
	_, err = p.apply(ctx, id, c)
	return err
}
