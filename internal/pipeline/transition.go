package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	set []col
	// investigation is the operator's reason when to is Investigating
	// (may name internals the seller should not see); default reason.
	investigation string
	// after runs last in the same transaction.
	after func(ctx context.Context, tx *sql.Tx) error
}

type col struct {
	name  string
	value any
}

// apply makes change c to build id in one transaction with its history,
// the group's history when the group's aggregate state changes, the
// investigation it opens and the webhook delivery it causes. It reports
// false, changing nothing, when c's conditions do not hold.
func (p *Pipeline) apply(ctx context.Context, id string, c change) (bool, error) {
	applied := false
	now := p.now()
	err := p.db.Tx(ctx, func(tx *sql.Tx) error {
		applied = false
		var groupID, owner, osName string
		var sub int
		var state State
		var runID sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT group_id, owner, os_name, submission, state, run_id FROM builds WHERE id = $1`+p.forUpdate(), id).
			Scan(&groupID, &owner, &osName, &sub, &state, &runID)
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
		siblings, err := submissionStates(ctx, tx, groupID, sub)
		if err != nil {
			return err
		}
		before := aggregate(statesOf(siblings))
		for i := range siblings {
			if siblings[i].id == id {
				siblings[i].state = c.to
			}
		}
		after := aggregate(statesOf(siblings))

		sets := []string{"state = $2", "updated_at = $3"}
		args := []any{id, string(c.to), now}
		if c.to.Ended() {
			sets = append(sets, "ended_at = $3", "run_id = NULL", "heartbeat_at = NULL")
		}
		for _, s := range c.set {
			args = append(args, s.value)
			sets = append(sets, fmt.Sprintf("%s = $%d", s.name, len(args)))
		}
		if _, err := tx.ExecContext(ctx, `UPDATE builds SET `+strings.Join(sets, ", ")+` WHERE id = $1`, args...); err != nil {
			return err
		}
		if err := p.record(ctx, tx, groupID, owner, id, osName, c.to, c.reason, now); err != nil {
			return err
		}
		if before != after {
			reason := fmt.Sprintf("build %s on %s is now %s", id, osName, c.to)
			if err := p.record(ctx, tx, groupID, owner, "", "", after, reason, now); err != nil {
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
