//go:build linux

package pipeline

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"

	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
)

// Build is one test build of a package group on one OS version, or a
// private image build (Kind KindPrivate): the group installed onto an
// image of the build's owner (BaseImageID, its gold image) instead of a
// base OS image.
type Build struct {
	ID          string `json:"id"`
	Kind        string `json:"kind,omitempty"` // "" or KindPrivate
	GroupID     string `json:"group_id"`
	Owner       string `json:"owner"`
	Submission  int    `json:"submission"`
	OSName      string `json:"os_version"`
	BaseImageID string `json:"base_image_id"`
	State       State  `json:"state"`
	// ImageID is the image the test build produced (once it has).
	ImageID string `json:"image_id,omitempty"`
	// Troubleshooting says, for Issues found, which rule broke, what
	// happened and what to change; for Investigating, that the platform is
	// at fault.
	Troubleshooting string     `json:"troubleshooting,omitempty"`
	Findings        []Finding  `json:"findings,omitempty"`
	Attempt         int        `json:"attempt"`
	Submitted       time.Time  `json:"submitted"`
	Started         *time.Time `json:"started,omitempty"`
	ScanStarted     *time.Time `json:"scan_started,omitempty"`
	Ended           *time.Time `json:"ended,omitempty"`
	Updated         time.Time  `json:"updated"`
}

// Report is everything a build produced except the log.
type Report struct {
	BuildID      string          `json:"build_id"`
	State        State           `json:"state"`
	Findings     []Finding       `json:"findings"`
	ChangedFiles []string        `json:"changed_files"`
	Build        json.RawMessage `json:"build,omitempty"` // the builder's report
	Scan         json.RawMessage `json:"scan,omitempty"`  // the scanner's report (SBOM summary, vulnerabilities, policy)
}

// Event is one entry of a group's history: a build's state change
// (BuildID set) or the group's (BuildID empty).
type Event struct {
	At      time.Time `json:"at"`
	BuildID string    `json:"build_id,omitempty"`
	OSName  string    `json:"os_version,omitempty"`
	State   State     `json:"state"`
	Reason  string    `json:"reason"`
}

// BuildArgs is the River job that runs a build.
type BuildArgs struct {
	BuildID string `json:"build_id"`
}

// Kind implements river.JobArgs.
func (BuildArgs) Kind() string { return "pib_build" }

const buildColumns = `id, kind, group_id, owner, submission, os_name, base_image_id, state, image_id, troubleshooting, findings,
	attempt, submitted_at, started_at, scan_started_at, ended_at, updated_at`

func scanBuild(row interface{ Scan(...any) error }) (*Build, error) {
	var b Build
	var findings string
	var started, scanStarted, ended sql.NullTime
	if err := row.Scan(&b.ID, &b.Kind, &b.GroupID, &b.Owner, &b.Submission, &b.OSName, &b.BaseImageID, &b.State, &b.ImageID,
		&b.Troubleshooting, &findings, &b.Attempt, &b.Submitted, &started, &scanStarted, &ended, &b.Updated); err != nil {
		return nil, err
	}
	if findings != "" {
		if err := json.Unmarshal([]byte(findings), &b.Findings); err != nil {
			return nil, fmt.Errorf("build %s: findings: %w", b.ID, err)
		}
	}
	b.Submitted, b.Updated = b.Submitted.UTC(), b.Updated.UTC()
	b.Started, b.ScanStarted, b.Ended = nullTime(started), nullTime(scanStarted), nullTime(ended)
	return &b, nil
}

func nullTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

// Submit queues one build per OS version of owner's group ref (ID or name):
// the build rows, their history and their River jobs are written in one
// transaction. A group whose previous builds are still running is refused
// with ErrInProgress; once they have ended it may be submitted again.
func (p *Pipeline) Submit(ctx context.Context, owner, ref string) ([]*Build, error) {
	g, err := p.read.group(ctx, owner, ref)
	if err != nil {
		return nil, err
	}
	// Resolve base images before the transaction: SQLite has one
	// connection, and a lookup inside the transaction would wait for it.
	bases := map[string]string{}
	for _, os := range g.OSVersions {
		v, err := p.cfg.OSVersions.Get(ctx, os)
		if errors.Is(err, problem.NotFound) {
			// The group is as valid as when it was made; the registry
			// changed since (a conflict, not a bad request, and not a 404:
			// the group exists).
			return nil, &problem.Error{Code: problem.Conflict, Rule: "P4", Field: "os_versions", Err: err,
				Message: fmt.Sprintf("OS version %q of group %s is no longer registered; an operator must register it again (pib os add) before the group can be submitted", os, g.Name)}
		}
		if err != nil {
			return nil, fmt.Errorf("OS version %s of group %s: %w", os, g.Name, err)
		}
		bases[os] = v.ImageID
	}
	now := p.now()
	var out []*Build
	err = p.db.Tx(ctx, func(tx *sql.Tx) error {
		out = nil
		// The update locks the group row (PostgreSQL), so concurrent
		// submits of one group take turns.
		if err := groups.MarkSubmitted(ctx, tx, g.ID, now); err != nil {
			return err
		}
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(submission) FROM builds WHERE group_id = $1 AND kind = ''`, g.ID).Scan(&last); err != nil {
			return err
		}
		if last.Valid {
			states, err := submissionStates(ctx, tx, g.ID, int(last.Int64))
			if err != nil {
				return err
			}
			for _, s := range states {
				if !s.state.Ended() {
					return ErrInProgress.Errorf("builds in progress: group %s was submitted already and its builds are still running (state %s); wait until they end (pib status %s)", g.Name, aggregate(statesOf(states)), g.Name)
				}
			}
		}
		sub := int(last.Int64) + 1
		for _, os := range g.OSVersions {
			b := &Build{ID: newID("b-"), GroupID: g.ID, Owner: owner, Submission: sub, OSName: os, BaseImageID: bases[os],
				State: Building, Submitted: now, Updated: now}
			if _, err := tx.ExecContext(ctx, `INSERT INTO builds (id, group_id, owner, submission, os_name, base_image_id, state, submitted_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, b.ID, b.GroupID, b.Owner, b.Submission, b.OSName, b.BaseImageID, string(b.State), now, now); err != nil {
				return store.Classify(err)
			}
			if err := p.enqueueBuild(ctx, tx, b.ID); err != nil {
				return err
			}
			if err := record(ctx, tx, g.ID, owner, b.ID, os, Building, "submitted; waiting for a worker to test-build on "+os, now); err != nil {
				return err
			}
			if err := p.notify(ctx, tx, g.ID, g.Name, owner, b, Building, "submitted"); err != nil {
				return err
			}
			out = append(out, b)
		}
		return record(ctx, tx, g.ID, owner, "", "", Building,
			fmt.Sprintf("submitted (submission %d): %d builds, on %s", sub, len(out), strings.Join(g.OSVersions, ", ")), now)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// enqueueBuild inserts a River job for buildID and makes it the build's
// current job, in tx.
func (p *Pipeline) enqueueBuild(ctx context.Context, tx *sql.Tx, buildID string) error {
	res, err := p.client.InsertTx(ctx, tx, BuildArgs{BuildID: buildID}, &river.InsertOpts{Queue: queueBuilds, MaxAttempts: 10})
	if err != nil {
		return fmt.Errorf("queue build %s: %w", buildID, err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE builds SET job_id = $2 WHERE id = $1`, buildID, res.Job.ID)
	return err
}

type idState struct {
	id    string
	state State
}

func statesOf(s []idState) []State {
	out := make([]State, len(s))
	for i := range s {
		out[i] = s[i].state
	}
	return out
}

func submissionStates(ctx context.Context, tx *sql.Tx, groupID string, sub int) ([]idState, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, state FROM builds WHERE group_id = $1 AND submission = $2`, groupID, sub)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []idState
	for rows.Next() {
		var s idState
		if err := rows.Scan(&s.id, &s.state); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// record appends one history entry.
func record(ctx context.Context, tx *sql.Tx, groupID, owner, buildID, osName string, s State, reason string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO group_history (id, group_id, owner, build_id, os_name, state, reason, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, eventID(at), groupID, owner, buildID, osName, string(s), reason, at)
	return err
}

func newID(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// eventID sorts by time, so history entries written in the same instant
// keep their order of writing within a process.
func eventID(at time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return fmt.Sprintf("ev-%016x%08x%s", at.UnixNano(), eventSeq.Add(1), hex.EncodeToString(b))
}

var eventSeq atomic.Uint32
