//go:build linux

package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// change is one state change of a build, applied by apply only when its
// conditions hold.
type change struct {
	to     State
	reason string // for the history, which the seller reads
	// runID: only while this run holds the build's lease.
	runID string
	// from: only from one of these states.
	from []State
	// set: more columns to write.
	set buildUpdate
	// investigation is the operator's reason when to is Investigating
	// (may name internals the seller should not see); default reason.
	investigation string
	// after runs last in the same transaction.
	after func(ctx context.Context, tx *sql.Tx) error
}

// buildUpdate is what a state change writes to its build row besides the
// state and updated_at: a field left unset keeps its column. The statement
// (updateBuildSQL) is fixed text: every column has a flag parameter saying
// whether to write its value parameter.
type buildUpdate struct {
	imageID         opt[string]
	troubleshooting opt[string]
	findings        opt[string] // JSON of []Finding, "" for none
	log             opt[string]
	changedFiles    opt[string] // JSON of []string
	buildReport     opt[string]
	scanReport      opt[string]
	lost            opt[int]
	startedAt       opt[*time.Time] // nil writes NULL
	scanStartedAt   opt[*time.Time]
	endedAt         opt[*time.Time]
	// releaseLease clears run_id and heartbeat_at: no run holds the build.
	releaseLease bool
}

// opt is a column's new value, or, unset, none: the column is kept.
type opt[T any] struct {
	ok bool
	v  T
}

// val is a column's new value.
func val[T any](v T) opt[T] { return opt[T]{ok: true, v: v} }

// arg is o's value parameter; a nil pointer is NULL.
func (o opt[T]) arg() any {
	if p, isPtr := any(o.v).(*time.Time); isPtr {
		if p == nil {
			return nil
		}
		return *p
	}
	return o.v
}

// updateBuildSQL writes a buildUpdate: $1 the build, $2 its state, $3 the
// time of the change, then a (flag, value) pair per column. PostgreSQL
// types each value parameter from its column through the CASE.
const updateBuildSQL = `UPDATE builds SET state = $2, updated_at = $3,
	image_id        = CASE WHEN $4 THEN $5 ELSE image_id END,
	troubleshooting = CASE WHEN $6 THEN $7 ELSE troubleshooting END,
	findings        = CASE WHEN $8 THEN $9 ELSE findings END,
	log             = CASE WHEN $10 THEN $11 ELSE log END,
	changed_files   = CASE WHEN $12 THEN $13 ELSE changed_files END,
	build_report    = CASE WHEN $14 THEN $15 ELSE build_report END,
	scan_report     = CASE WHEN $16 THEN $17 ELSE scan_report END,
	lost            = CASE WHEN $18 THEN $19 ELSE lost END,
	started_at      = CASE WHEN $20 THEN $21 ELSE started_at END,
	scan_started_at = CASE WHEN $22 THEN $23 ELSE scan_started_at END,
	ended_at        = CASE WHEN $24 THEN $25 ELSE ended_at END,
	run_id          = CASE WHEN $26 THEN NULL ELSE run_id END,
	heartbeat_at    = CASE WHEN $26 THEN NULL ELSE heartbeat_at END
	WHERE id = $1`

// exec writes u, state to and updated_at now to build id in tx.
func (u buildUpdate) exec(ctx context.Context, tx *sql.Tx, id string, to State, now time.Time) error {
	_, err := tx.ExecContext(ctx, updateBuildSQL, id, string(to), now,
		u.imageID.ok, u.imageID.arg(),
		u.troubleshooting.ok, u.troubleshooting.arg(),
		u.findings.ok, u.findings.arg(),
		u.log.ok, u.log.arg(),
		u.changedFiles.ok, u.changedFiles.arg(),
		u.buildReport.ok, u.buildReport.arg(),
		u.scanReport.ok, u.scanReport.arg(),
		u.lost.ok, u.lost.arg(),
		u.startedAt.ok, u.startedAt.arg(),
		u.scanStartedAt.ok, u.scanStartedAt.arg(),
		u.endedAt.ok, u.endedAt.arg(),
		u.releaseLease)
	return err
}

// apply makes change c to build id in one transaction with its history,
// the group's history when the group's aggregate state changes, the
// investigation it opens and the webhook delivery it causes. It reports
// false, changing nothing, when c's conditions do not hold.
func (p *Pipeline) apply(ctx context.Context, id string, c change) (bool, error) {
	applied := false
	var now time.Time
	err := p.db.Tx(ctx, func(tx *sql.Tx) error {
		applied = false
		var groupID, owner, osName, kind string
		var sub int
		var state State
		var runID sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT group_id, owner, os_name, submission, state, run_id, kind FROM builds WHERE id = $1`+p.forUpdate(), id).
			Scan(&groupID, &owner, &osName, &sub, &state, &runID, &kind)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound.Errorf("not found: build %q", id)
		}
		if err != nil {
			return err
		}
		if c.runID != "" && (!runID.Valid || runID.String != c.runID) {
			return nil
		}
		if len(c.from) > 0 && !slices.Contains(c.from, state) {
			return nil
		}
		// Lock the group: sibling builds changing at once take turns, so
		// each sees the others' states when it aggregates.
		var groupName string
		if err := tx.QueryRowContext(ctx, `SELECT name FROM package_groups WHERE id = $1`+p.forUpdate(), groupID).Scan(&groupName); err != nil {
			return err
		}
		// The time of the change is read only now, holding the group: a
		// sibling's change that took the lock first (and read its time
		// later than this one started) must not get a later time than
		// this one, or the group's history would list them out of order.
		now = p.now()
		// A private build is a submission of its own: its history is kept
		// under its ID, and it has no siblings.
		key := groupID
		siblings := []idState{{id: id, state: state}}
		if kind == KindPrivate {
			key = id
		} else if siblings, err = submissionStates(ctx, tx, groupID, sub); err != nil {
			return err
		}
		before := aggregate(statesOf(siblings))
		for i := range siblings {
			if siblings[i].id == id {
				siblings[i].state = c.to
			}
		}
		after := aggregate(statesOf(siblings))

		u := c.set
		if c.to.Ended() {
			u.endedAt, u.releaseLease = val(&now), true
		}
		if err := u.exec(ctx, tx, id, c.to, now); err != nil {
			return err
		}
		if err := record(ctx, tx, key, owner, id, osName, c.to, c.reason, now); err != nil {
			return err
		}
		if before != after && kind != KindPrivate {
			reason := fmt.Sprintf("build %s on %s is now %s", id, osName, c.to)
			if err := record(ctx, tx, groupID, owner, "", "", after, reason, now); err != nil {
				return err
			}
		}
		if c.to == Investigating {
			reason := c.investigation
			if reason == "" {
				reason = c.reason
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO investigations (id, build_id, reason, opened_at) VALUES ($1, $2, $3, $4)`,
				newID("inv-"), id, reason, now); err != nil {
				return err
			}
		}
		if c.after != nil {
			if err := c.after(ctx, tx); err != nil {
				return err
			}
		}
		b, err := scanBuild(tx.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = $1`, id))
		if err != nil {
			return err
		}
		if err := p.notify(ctx, tx, groupID, groupName, owner, b, after, c.reason); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err == nil && applied {
		p.log.Info("build state changed", "build", id, "state", c.to, "reason", c.reason)
	}
	return applied, err
}
