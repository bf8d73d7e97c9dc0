//go:build linux

package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pib-dev/pib/internal/store"
)

// KindPrivate is the Kind of a private image build (SPEC C1, F2): the
// same build as a seller's test build (I1–I8, then S1–S4, the same
// states, history, troubleshooting, webhook events and operator queue),
// with the owner's gold image as its base. It differs only where a
// group's submission would mix with it: it has a submission number of its
// own below zero, so it is never one of the group's builds, and its
// history is kept under its own ID.
const KindPrivate = "private"

// historyKey is the group_history.group_id a build's state changes are
// recorded under, as SQL over the builds table.
const historyKey = `CASE WHEN kind = 'private' THEN id ELSE group_id END`

func (b *Build) historyKey() string {
	if b.Kind == KindPrivate {
		return b.ID
	}
	return b.GroupID
}

// PrivateSubmission is a private image build to queue.
type PrivateSubmission struct {
	Owner string // the account the build and its image belong to
	// GroupID and GroupName name the fulfillment's package group (any
	// seller's: the caller has checked the owner may build it).
	GroupID, GroupName string
	// OSName is the OS version of the group the image matches (C2).
	OSName string
	// ImageID is the owner's image to install onto (its gold image).
	ImageID string
	// Tags are the new image's tags (C5).
	Tags map[string]string
}

// SubmitPrivate queues a private image build in tx, which the caller
// commits together with its own record of the request (so a request and
// its build exist together or not at all). It reads only through tx.
func (p *Pipeline) SubmitPrivate(ctx context.Context, tx *sql.Tx, s PrivateSubmission) (*Build, error) {
	// Lock the group (PostgreSQL; SQLite's transaction holds the write
	// lock already), so concurrent private builds of one group take
	// distinct submission numbers.
	var gid string
	if err := tx.QueryRowContext(ctx, `SELECT id FROM package_groups WHERE id = $1`+p.forUpdate(), s.GroupID).Scan(&gid); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound.Errorf("not found: package group %q", s.GroupID)
		}
		return nil, err
	}
	var low sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MIN(submission) FROM builds WHERE group_id = $1`, s.GroupID).Scan(&low); err != nil {
		return nil, err
	}
	sub := min(int(low.Int64), 0) - 1
	tags := ""
	if len(s.Tags) > 0 {
		tags = jsonText(s.Tags)
	}
	now := p.now()
	b := &Build{ID: newID("b-"), Kind: KindPrivate, GroupID: s.GroupID, Owner: s.Owner, Submission: sub, OSName: s.OSName,
		BaseImageID: s.ImageID, State: Building, Submitted: now, Updated: now}
	if _, err := tx.ExecContext(ctx, `INSERT INTO builds (id, kind, group_id, owner, submission, os_name, base_image_id, state, image_tags, submitted_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, b.ID, b.Kind, b.GroupID, b.Owner, b.Submission, b.OSName, b.BaseImageID, string(b.State), tags, now, now); err != nil {
		return nil, store.Classify(err)
	}
	if err := p.enqueueBuild(ctx, tx, b.ID); err != nil {
		return nil, err
	}
	reason := fmt.Sprintf("submitted; waiting for a worker to install %s onto image %s", s.GroupName, s.ImageID)
	if err := record(ctx, tx, b.ID, s.Owner, b.ID, s.OSName, Building, reason, now); err != nil {
		return nil, err
	}
	if err := p.notify(ctx, tx, s.GroupID, s.GroupName, s.Owner, b, Building, "submitted"); err != nil {
		return nil, err
	}
	return b, nil
}

// imageTags returns the tags private build id gives its image.
func (p *Pipeline) imageTags(ctx context.Context, id string) (map[string]string, error) {
	var raw string
	if err := p.db.QueryRowContext(ctx, `SELECT image_tags FROM builds WHERE id = $1`, id).Scan(&raw); err != nil {
		return nil, err
	}
	if raw == "" {
		return nil, nil
	}
	var tags map[string]string
	if err := json.Unmarshal([]byte(raw), &tags); err != nil {
		return nil, fmt.Errorf("build %s: image tags: %w", id, err)
	}
	return tags, nil
}

// PrivateBuilds returns owner's private image builds, newest first.
func (r *Reader) PrivateBuilds(ctx context.Context, owner string) ([]*Build, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE owner = $1 AND kind = 'private'
		ORDER BY submitted_at DESC, id DESC`, owner)
	if err != nil {
		return nil, err
	}
	return collectBuilds(rows)
}

// Running counts owner's private image builds in progress, in tx (for a
// limit on concurrent builds, C4).
func Running(ctx context.Context, tx *sql.Tx, owner string) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM builds WHERE owner = $1 AND kind = 'private' AND state IN ($2, $3)`,
		owner, string(Building), string(Scanning)).Scan(&n)
	return n, err
}

// BuildHistory returns every state change of owner's private build id,
// oldest first.
func (r *Reader) BuildHistory(ctx context.Context, owner, id string) ([]Event, error) {
	b, err := r.Build(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	rows, err := r.db.QueryContext(ctx, `SELECT at, build_id, os_name, state, reason FROM group_history
		WHERE group_id = $1 AND owner = $2 ORDER BY at, id`, b.historyKey(), owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.At, &e.BuildID, &e.OSName, &e.State, &e.Reason); err != nil {
			return nil, err
		}
		e.At = e.At.UTC()
		if e.BuildID == id {
			out = append(out, e)
		}
	}
	return out, rows.Err()
}
