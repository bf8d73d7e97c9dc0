//go:build linux

package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/store"
)

// Reader is the read side of the pipeline: builds, their logs, reports and
// history, the status view and the operators' queue. It needs no job
// queue, so it reads the same whichever process runs the builds.
type Reader struct {
	db     *store.DB
	groups GroupSource
	now    func() time.Time
}

// NewReader returns the read side over db. groups resolves group
// references; now (nil: time.Now) dates investigations as overdue.
func NewReader(db *store.DB, groups GroupSource, now func() time.Time) *Reader {
	if now == nil {
		now = time.Now
	}
	return &Reader{db: db, groups: groups, now: now}
}

// group returns owner's group ref; another account's is ErrNotFound.
func (r *Reader) group(ctx context.Context, owner, ref string) (*groups.Group, error) {
	g, err := r.groups.Get(ctx, owner, ref)
	if errors.Is(err, groups.ErrNotFound) {
		return nil, ErrNotFound.Errorf("not found: package group %q", ref)
	}
	return g, err
}

// Builds returns the builds of the latest submission of owner's group ref
// (ID or name), by OS version; none for a group never submitted.
func (r *Reader) Builds(ctx context.Context, owner, ref string) ([]*Build, error) {
	g, err := r.group(ctx, owner, ref)
	if err != nil {
		return nil, err
	}
	rows, err := r.db.QueryContext(ctx, `SELECT `+buildColumns+` FROM builds
		WHERE group_id = $1 AND owner = $2 AND kind = '' AND submission = (SELECT MAX(submission) FROM builds WHERE group_id = $1 AND kind = '')
		ORDER BY os_name`, g.ID, owner)
	if err != nil {
		return nil, err
	}
	return collectBuilds(rows)
}

// LatestBuilds returns, for each of owner's groups groupIDs (a page of the
// status view, at most a few thousand) that was submitted, the builds of its
// latest submission, in one query.
func (r *Reader) LatestBuilds(ctx context.Context, owner string, groupIDs []string) (map[string][]*Build, error) {
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
	rows, err := r.db.QueryContext(ctx, `SELECT `+prefixed("b.", buildColumns)+` FROM builds b
		JOIN (SELECT group_id, MAX(submission) AS latest FROM builds
			WHERE owner = $1 AND kind = '' AND group_id IN (`+strings.Join(marks, ", ")+`) GROUP BY group_id) l
		ON b.group_id = l.group_id AND b.submission = l.latest AND b.kind = ''
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
func (r *Reader) Build(ctx context.Context, owner, id string) (*Build, error) {
	b, err := scanBuild(r.db.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = $1 AND owner = $2`, id, owner))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("not found: build %q", id)
	}
	return b, err
}

// BuildOwner returns the account that owns build id, for operators, who
// may read any build (the API audits each such read).
func (r *Reader) BuildOwner(ctx context.Context, id string) (string, error) {
	b, err := r.buildByID(ctx, id)
	if err != nil {
		return "", err
	}
	return b.Owner, nil
}

// buildByID returns any account's build (operators, workers).
func (r *Reader) buildByID(ctx context.Context, id string) (*Build, error) {
	b, err := scanBuild(r.db.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("not found: build %q", id)
	}
	return b, err
}

// Log returns the installer's output of owner's build (I8).
func (r *Reader) Log(ctx context.Context, owner, id string) ([]byte, error) {
	var log string
	err := r.db.QueryRowContext(ctx, `SELECT log FROM builds WHERE id = $1 AND owner = $2`, id, owner).Scan(&log)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("not found: build %q", id)
	}
	return []byte(log), err
}

// Report returns the findings, changed files and raw reports of owner's build.
func (r *Reader) Report(ctx context.Context, owner, id string) (*Report, error) {
	rep := &Report{BuildID: id, Findings: []Finding{}, ChangedFiles: []string{}}
	var findings, changed, build, scan string
	err := r.db.QueryRowContext(ctx, `SELECT state, findings, changed_files, build_report, scan_report FROM builds WHERE id = $1 AND owner = $2`, id, owner).
		Scan(&rep.State, &findings, &changed, &build, &scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound.Errorf("not found: build %q", id)
	}
	if err != nil {
		return nil, err
	}
	if findings != "" {
		json.Unmarshal([]byte(findings), &rep.Findings)
	}
	if changed != "" {
		json.Unmarshal([]byte(changed), &rep.ChangedFiles)
	}
	if build != "" {
		rep.Build = json.RawMessage(build)
	}
	if scan != "" {
		rep.Scan = json.RawMessage(scan)
	}
	return rep, nil
}

// History returns every state change of owner's group ref and of its
// builds, oldest first.
func (r *Reader) History(ctx context.Context, owner, ref string) ([]Event, error) {
	g, err := r.group(ctx, owner, ref)
	if err != nil {
		return nil, err
	}
	rows, err := r.db.QueryContext(ctx, `SELECT at, build_id, os_name, state, reason FROM group_history
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

// Investigations lists the open investigations, oldest first.
func (r *Reader) Investigations(ctx context.Context) ([]Investigation, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT i.id, i.build_id, b.group_id, g.name, b.owner, b.os_name, i.reason, i.opened_at
		FROM investigations i JOIN builds b ON b.id = i.build_id JOIN package_groups g ON g.id = b.group_id
		WHERE i.resolved_at IS NULL ORDER BY i.opened_at, i.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	now := r.now().UTC()
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
