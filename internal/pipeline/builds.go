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

// Build is one test build of a package group on one OS version.
type Build struct {
	ID          string `json:"id"`
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

const buildColumns = `id, group_id, owner, submission, os_name, base_image_id, state, image_id, troubleshooting, findings,
	attempt, submitted_at, started_at, scan_started_at, ended_at, updated_at`

func scanBuild(row interface{ Scan(...any) error }) (*Build, error) {
	var b Build
	var findings string
	var started, scanStarted, ended sql.NullTime
	if err := row.Scan(&b.ID, &b.GroupID, &b.Owner, &b.Submission, &b.OSName, &b.BaseImageID, &b.State, &b.ImageID,
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
	g, err := p.group(ctx, owner, ref)
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
		if err := tx.QueryRowContext(ctx, `SELECT MAX(submission) FROM builds WHERE group_id = $1`, g.ID).Scan(&last); err != nil {
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
			if err := p.record(ctx, tx, g.ID, owner, b.ID, os, Building, "submitted; waiting for a worker to test-build on "+os, now); err != nil {
				return err
			}
			if err := p.notify(ctx, tx, g.ID, g.Name, owner, b, Building, "submitted"); err != nil {
				return err
			}
			out = append(out, b)
		}
		return p.record(ctx, tx, g.ID, owner, "", "", Building,
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

// group returns owner's group ref; another account's is ErrNotFound.
func (p *Pipeline) group(ctx context.Context, owner, ref string) (*groups.Group, error) {
	g, err := p.cfg.Groups.Get(ctx, owner, ref)
	if errors.Is(err, groups.ErrNotFound) {
		return nil, ErrNotFound.Errorf("not found: package group %q", ref)
	}
	return g, err
}

// Builds returns the builds of the latest submission of owner's group ref
// (ID or name), by OS version; none for a group never submitted.
func (p *Pipeline) Builds(ctx context.Context, owner, ref string) ([]*Build, error) {
	g, err := p.group(ctx, owner, ref)
	if err != nil {
		return nil, err
	}
	rows, err := p.db.QueryContext(ctx, `SELECT `+buildColumns+` FROM builds
		WHERE group_id = $1 AND owner = $2 AND submission = (SELECT MAX(submission) FROM builds WHERE group_id = $1)
		ORDER BY os_name`, g.ID, owner)
	if err != nil {
		return nil, err
	}
	return collectBuilds(rows)
}

// LatestBuilds returns, for each of owner's groups groupIDs (a page of the
// status view, at most a few thousand) that was submitted, the builds of its
// latest submission, in one query.
func (p *Pipeline) LatestBuilds(ctx context.Context, owner string, groupIDs []string) (map[string][]*Build, error) {
	out := map[string][]*Build{}
	if len(groupIDs) == 0 {
		return out, nil
	}
	args := []any{owner}
	marks := make([]string, len(groupIDs))
	for i, id := range groupIDs {
		args = append(args, id)
		marks[i] = fmt.Sprintf("$%d", i+2)
	}
	// Latest submission per group first, then its builds: no correlated
	// subquery per row.
	rows, err := p.db.QueryContext(ctx, `SELECT `+prefixed("b.", buildColumns)+` FROM builds b
		JOIN (SELECT group_id, MAX(submission) AS latest FROM builds
			WHERE owner = $1 AND group_id IN (`+strings.Join(marks, ", ")+`) GROUP BY group_id) l
		ON b.group_id = l.group_id AND b.submission = l.latest
		ORDER BY b.group_id, b.os_name`, args...)
	if err != nil {
		return nil, err
	}
	bs, err := collectBuilds(rows)
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		out[b.GroupID] = append(out[b.GroupID], b)
	}
	return out, nil
}

// prefixed qualifies each column of a column list with a table alias.
func prefixed(alias, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

func collectBuilds(rows *sql.Rows) ([]*Build, error) {
	defer rows.Close()
	out := []*Build{}
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Build returns owner's build id; another account's is ErrNotFound.
func (p *Pipeline) Build(ctx context.Context, owner, id string) (*Build, error) {
	b, err := scanBuild(p.db.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = $1 AND owner = $2`, id, owner))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("not found: build %q", id)
	}
	return b, err
}

// BuildOwner returns the account that owns build id, for operators, who
// may read any build (the API audits each such read).
func (p *Pipeline) BuildOwner(ctx context.Context, id string) (string, error) {
	b, err := p.buildByID(ctx, id)
	if err != nil {
		return "", err
	}
	return b.Owner, nil
}

// buildByID returns any account's build (operators, workers).
func (p *Pipeline) buildByID(ctx context.Context, id string) (*Build, error) {
	b, err := scanBuild(p.db.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("not found: build %q", id)
	}
	return b, err
}

// Log returns the installer's output of owner's build (I8).
func (p *Pipeline) Log(ctx context.Context, owner, id string) ([]byte, error) {
	var log string
	err := p.db.QueryRowContext(ctx, `SELECT log FROM builds WHERE id = $1 AND owner = $2`, id, owner).Scan(&log)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("not found: build %q", id)
	}
	return []byte(log), err
}

// Report returns the findings, changed files and raw reports of owner's build.
func (p *Pipeline) Report(ctx context.Context, owner, id string) (*Report, error) {
	r := &Report{BuildID: id, Findings: []Finding{}, ChangedFiles: []string{}}
	var findings, changed, build, scan string
	err := p.db.QueryRowContext(ctx, `SELECT state, findings, changed_files, build_report, scan_report FROM builds WHERE id = $1 AND owner = $2`, id, owner).
		Scan(&r.State, &findings, &changed, &build, &scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("not found: build %q", id)
	}
	if err != nil {
		return nil, err
	}
	if findings != "" {
		json.Unmarshal([]byte(findings), &r.Findings)
	}
	if changed != "" {
		json.Unmarshal([]byte(changed), &r.ChangedFiles)
	}
	if build != "" {
		r.Build = json.RawMessage(build)
	}
	if scan != "" {
		r.Scan = json.RawMessage(scan)
	}
	return r, nil
}

// History returns every state change of owner's group ref and of its
// builds, oldest first.
func (p *Pipeline) History(ctx context.Context, owner, ref string) ([]Event, error) {
	g, err := p.group(ctx, owner, ref)
	if err != nil {
		return nil, err
	}
	rows, err := p.db.QueryContext(ctx, `SELECT at, build_id, os_name, state, reason FROM group_history
		WHERE group_id = $1 AND owner = $2 ORDER BY at, id`, g.ID, owner)
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
		out = append(out, e)
	}
	return out, rows.Err()
}

// record appends one history entry.
func (p *Pipeline) record(ctx context.Context, tx *sql.Tx, groupID, owner, buildID, osName string, s State, reason string, at time.Time) error {
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
