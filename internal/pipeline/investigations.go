//go:build linux

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
		set: buildUpdate{imageID: val(""), troubleshooting: val(""), findings: val(""), lost: val(0), releaseLease: true,
			endedAt: val[*time.Time](nil), startedAt: val[*time.Time](nil), scanStartedAt: val[*time.Time](nil)},
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
	return p.read.buildByID(ctx, id)
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
		set:    buildUpdate{troubleshooting: val("An operator investigated this build and closed it: " + note)},
		after: func(ctx context.Context, tx *sql.Tx) error {
			return p.closeInvestigation(ctx, tx, id, "resolved", note)
		}})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotInvestigating.Errorf("build is not being investigated: build %s; only a build in Investigating can be resolved", id)
	}
	return p.read.buildByID(ctx, id)
}
