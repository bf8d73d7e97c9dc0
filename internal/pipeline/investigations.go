package pipeline

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// Investigation is an open entry of the operators' queue.
type Investigation struct {
	ID        string    `json:"id"`
	BuildID   string    `json:"build_id"`
	GroupID   string    `json:"group_id"`
	GroupName string    `json:"group_name"`
	Owner     string    `json:"owner"`
	OSName    string    `json:"os_version"`
	Reason    string    `json:"reason"` // what went wrong, for operators
	Opened    time.Time `json:"opened"`
	// Overdue: open more than 4 business days (Monday to Friday).
	Overdue bool `json:"overdue"`
}

// Investigations lists the open investigations, oldest first.
func (p *Pipeline) Investigations(ctx context.Context) ([]Investigation, error) {
	rows, err := p.db.QueryContext(ctx, `SELECT i.id, i.build_id, b.group_id, g.name, b.owner, b.os_name, i.reason, i.opened_at
		FROM investigations i JOIN builds b ON b.id = i.build_id JOIN package_groups g ON g.id = b.group_id
		WHERE i.resolved_at IS NULL ORDER BY i.opened_at, i.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	now := p.now()
	out := []Investigation{}
	for rows.Next() {
		var i Investigation
		if err := rows.Scan(&i.ID, &i.BuildID, &i.GroupID, &i.GroupName, &i.Owner, &i.OSName, &i.Reason, &i.Opened); err != nil {
			return nil, err
		}
		i.Opened = i.Opened.UTC()
		i.Overdue = Overdue(i.Opened, now)
		out = append(out, i)
	}
	return out, rows.Err()
}

// closeInvestigation closes build id's open investigation in tx.
func (p *Pipeline) closeInvestigation(ctx context.Context, tx *sql.Tx, id, resolution, note string) error {
	_, err := tx.ExecContext(ctx, `UPDATE investigations SET resolved_at = $2, resolution = $3, note = $4 WHERE build_id = $1 AND resolved_at IS NULL`,
		id, p.now(), resolution, note)
	return err
}

// Retry starts an investigated build over (operators): it closes the
// investigation and queues the build again from the test build.
func (p *Pipeline) Retry(ctx context.Context, id string) (*Build, error) {
	ok, err := p.apply(ctx, id, change{to: Building, from: []State{Investigating},
		reason: "retried by an operator",
		set: []col{{"image_id", ""}, {"troubleshooting", ""}, {"findings", ""}, {"lost", 0}, {"run_id", nil},
			{"heartbeat_at", nil}, {"ended_at", nil}, {"started_at", nil}, {"scan_started_at", nil}},
		after: func(ctx context.Context, tx *sql.Tx) error {
			if err := p.closeInvestigation(ctx, tx, id, "retried", ""); err != nil {
				return err
			}
			return p.enqueueBuild(ctx, tx, id)
		}})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotInvestigating.Errorf("build is not being investigated: build %s; only a build in Investigating can be retried", id)
	}
	return p.buildByID(ctx, id)
}

// Resolve closes an investigated build's investigation with the operator's
// note (operators). The build ends Issues found with the note as its
// troubleshooting text: the platform is done with it and the note tells
// the seller what remains.
func (p *Pipeline) Resolve(ctx context.Context, id, note string) (*Build, error) {
	note = strings.TrimSpace(note)
	if note == "" {
		return nil, ErrInvalid.Errorf("resolving an investigation needs a note saying what was found")
	}
	ok, err := p.apply(ctx, id, change{to: IssuesFound, from: []State{Investigating},
		reason: "resolved by an operator: " + note,
		set:    []col{{"troubleshooting", "An operator investigated this build and closed it: " + note}},
		after: func(ctx context.Context, tx *sql.Tx) error {
			return p.closeInvestigation(ctx, tx, id, "resolved", note)
		}})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotInvestigating.Errorf("build is not being investigated: build %s; only a build in Investigating can be resolved", id)
	}
	return p.buildByID(ctx, id)
}
