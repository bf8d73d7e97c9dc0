//go:build linux

package monitor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/vulndb"
)

// run is one re-match in progress: images are written in batches, each
// in one transaction with the announcements of its changes.
type run struct {
	m       *Monitor
	ver     vulndb.Version
	targets map[string]*target
	now     time.Time
	pending []rematched
	changed int
}

type rematched struct {
	imageID  string
	findings []scan.Finding
}

// kept is an image's row in image_monitoring, or its baseline when it has
// none yet.
type kept struct {
	exists       bool
	scanStatus   scan.Status
	scanDataDate sql.NullTime
	scanFindings string // JSON []vuln
	checks       string // JSON []scan.CheckResult
	findings     string // JSON []vuln: what the last re-match found
	digest       string
	status       scan.Status
	// announce is false for an image with nothing to compare with (no
	// row, no scan report): its first re-match is its baseline.
	announce bool
}

func (r *run) flush(ctx context.Context) error {
	if len(r.pending) == 0 {
		return nil
	}
	batch := r.pending
	r.pending = r.pending[:0:0]
	ids := make([]string, len(batch))
	for i, b := range batch {
		ids[i] = b.imageID
	}
	prev, err := r.m.kept(ctx, ids)
	if err != nil {
		return err
	}
	for _, b := range batch {
		if prev[b.imageID] != nil {
			continue
		}
		k, err := r.m.baseline(ctx, r.targets[b.imageID])
		if err != nil {
			return err
		}
		prev[b.imageID] = k
	}
	an := r.m.announcer
	return r.m.db.Tx(ctx, func(tx *sql.Tx) error {
		changed := 0
		var same []any
		for _, b := range batch {
			n, unchanged, err := r.write(ctx, tx, an, b, prev[b.imageID])
			if err != nil {
				return fmt.Errorf("image %s: %w", b.imageID, err)
			}
			if unchanged {
				same = append(same, b.imageID)
			}
			changed += n
		}
		// Most images find what they found last time: one statement
		// dates them all.
		for start := 0; start < len(same); start += 500 {
			part := same[start:min(start+500, len(same))]
			marks := make([]string, len(part))
			for i := range part {
				marks[i] = fmt.Sprintf("$%d", i+3)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE image_monitoring SET data_date = $1, checked_at = $2 WHERE image_id IN (`+strings.Join(marks, ", ")+`)`,
				append([]any{r.ver.Date, r.now}, part...)...); err != nil {
				return err
			}
		}
		r.changed += changed
		return nil
	})
}

// write records image b's new findings in tx and announces a change of its
// vulnerability IDs; it returns 1 when it announced one, and unchanged
// when the image's findings and verdict are what its row holds already
// (written by the caller, with the others).
func (r *run) write(ctx context.Context, tx *sql.Tx, an Announcer, b rematched, k *kept) (n int, unchanged bool, err error) {
	now := compact(b.findings)
	raw, dig := digest(now)
	var checks []scan.CheckResult
	if k.checks != "" {
		if err := json.Unmarshal([]byte(k.checks), &checks); err != nil {
			return 0, false, fmt.Errorf("stored check results: %w", err)
		}
	}
	status, _ := r.m.cfg.Policy.Verdict(b.findings, checks, r.now)
	if k.exists && dig == k.digest && status == k.status {
		return 0, true, nil
	}
	var before []vuln
	if k.findings != "" {
		if err := json.Unmarshal([]byte(k.findings), &before); err != nil {
			return 0, false, fmt.Errorf("stored findings: %w", err)
		}
	}
	added, withdrawn := diff(before, now)
	changed := k.announce && (len(added) > 0 || len(withdrawn) > 0)
	var changedAt any
	if changed {
		changedAt = r.now
	}
	var res sql.Result
	if k.exists {
		// Compare-and-set: a concurrent run that got here first has
		// announced the change already.
		res, err = tx.ExecContext(ctx, `UPDATE image_monitoring SET findings = $2, findings_digest = $3, status = $4, data_date = $5, checked_at = $6,
			changed_at = COALESCE($7, changed_at) WHERE image_id = $1 AND findings_digest = $8`,
			b.imageID, raw, dig, string(status), r.ver.Date, r.now, changedAt, k.digest)
	} else {
		res, err = tx.ExecContext(ctx, `INSERT INTO image_monitoring (image_id, scan_status, scan_data_date, scan_findings, checks, findings, findings_digest, status, data_date, checked_at, changed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (image_id) DO NOTHING`,
			b.imageID, string(k.scanStatus), k.scanDataDate, k.scanFindings, k.checks, raw, dig, string(status), r.ver.Date, r.now, changedAt)
	}
	if err != nil {
		return 0, false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 || !changed {
		return 0, false, err
	}
	t := r.targets[b.imageID]
	ev := Event{Event: pipeline.EventVulnerabilities, ImageID: t.imageID, Owner: t.owner, ProductID: t.productID, VersionID: t.versionID,
		DataDate: r.ver.Date, Added: nonNil(added), Withdrawn: nonNil(withdrawn), ScanStatus: k.scanStatus, Status: status}
	if t.build != "" {
		ev.Build = &BuildRef{ID: t.build, Kind: t.kind, GroupID: t.groupID, GroupName: t.groupName, OSName: t.osName}
	}
	body := func(id string, at time.Time) ([]byte, error) {
		e := ev
		e.DeliveryID, e.At = id, at
		return json.Marshal(e)
	}
	if t.build != "" {
		err = an.Announce(ctx, tx, t.build, pipeline.EventVulnerabilities, ev.reason(), body)
	} else {
		err = an.Notify(ctx, tx, t.owner, pipeline.EventVulnerabilities, body)
	}
	if err != nil {
		return 0, false, fmt.Errorf("announce: %w", err)
	}
	return 1, false, nil
}

// Event is the JSON body of a vulnerabilities.changed delivery (S5).
type Event struct {
	DeliveryID string    `json:"delivery_id"`
	Event      string    `json:"event"`
	At         time.Time `json:"at"`
	ImageID    string    `json:"image_id"`
	Owner      string    `json:"owner"`
	// Build is the build that made the image (absent for a published
	// image not built here).
	Build *BuildRef `json:"build,omitempty"`
	// ProductID and VersionID name the catalog version the image is
	// published in, or the private build's fulfillment.
	ProductID string `json:"product_id,omitempty"`
	VersionID string `json:"version_id,omitempty"`
	// DataDate is the date of the vulnerability data that found the change.
	DataDate  time.Time `json:"data_date"`
	Added     []Change  `json:"added"`
	Withdrawn []Change  `json:"withdrawn"`
	// ScanStatus is the verdict the image's scan gave ("" when unknown);
	// Status the one this data would give.
	ScanStatus scan.Status `json:"scan_status,omitempty"`
	Status     scan.Status `json:"status"`
}

// BuildRef names the build an image came from.
type BuildRef struct {
	ID        string `json:"id"`
	Kind      string `json:"kind,omitempty"`
	GroupID   string `json:"group_id"`
	GroupName string `json:"group_name"`
	OSName    string `json:"os_version"`
}

// reason is the event as a history entry says it.
func (e *Event) reason() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: vulnerability data of %s changes image %s:", pipeline.EventVulnerabilities, day(e.DataDate), e.ImageID)
	if len(e.Added) > 0 {
		fmt.Fprintf(&b, " %d added: %s;", len(e.Added), listChanges(e.Added))
	}
	if len(e.Withdrawn) > 0 {
		fmt.Fprintf(&b, " %d withdrawn: %s;", len(e.Withdrawn), listChanges(e.Withdrawn))
	}
	if e.ScanStatus != "" && e.ScanStatus != e.Status {
		fmt.Fprintf(&b, " the verdict would now be %s (the scan's was %s)", e.Status, e.ScanStatus)
	} else {
		fmt.Fprintf(&b, " the verdict would be %s", e.Status)
	}
	return b.String()
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// kept reads the rows of ids that exist.
func (m *Monitor) kept(ctx context.Context, ids []string) (map[string]*kept, error) {
	out := map[string]*kept{}
	for start := 0; start < len(ids); start += 500 {
		part := ids[start:min(start+500, len(ids))]
		args := make([]any, len(part))
		marks := make([]string, len(part))
		for i, id := range part {
			args[i] = id
			marks[i] = fmt.Sprintf("$%d", i+1)
		}
		rows, err := m.db.QueryContext(ctx, `SELECT image_id, scan_status, scan_data_date, scan_findings, checks, findings, findings_digest, status
			FROM image_monitoring WHERE image_id IN (`+strings.Join(marks, ", ")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read monitoring state: %w", err)
		}
		for rows.Next() {
			var id, scanStatus, status string
			k := &kept{exists: true, announce: true}
			if err := rows.Scan(&id, &scanStatus, &k.scanDataDate, &k.scanFindings, &k.checks, &k.findings, &k.digest, &status); err != nil {
				rows.Close()
				return nil, err
			}
			k.scanStatus, k.status = scan.Status(scanStatus), scan.Status(status)
			out[id] = k
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// baseline is what an image's first re-match is compared with: the
// findings, checks and verdict of the scan its build keeps; nothing (and
// no announcement) when no scan report is kept.
func (m *Monitor) baseline(ctx context.Context, t *target) (*kept, error) {
	k := &kept{scanFindings: "[]", checks: "[]"}
	if t.build == "" {
		return k, nil
	}
	var raw string
	err := m.db.QueryRowContext(ctx, `SELECT scan_report FROM builds WHERE id = $1`, t.build).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && raw == "") {
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	// The build keeps a testbuild.ScanReport: scan.Report's fields plus
	// the SBOM digests.
	var rep scan.Report
	if err := json.Unmarshal([]byte(raw), &rep); err != nil {
		return nil, fmt.Errorf("the scan report of build %s: %w", t.build, err)
	}
	findings, _ := digest(compact(rep.Vulnerabilities))
	checks, err := json.Marshal(nonNil(rep.Policy))
	if err != nil {
		return nil, err
	}
	k.scanStatus = rep.Status
	if !rep.VulnDB.NewestModified.IsZero() {
		k.scanDataDate = sql.NullTime{Time: rep.VulnDB.NewestModified, Valid: true}
	}
	k.scanFindings, k.checks, k.findings, k.announce = findings, string(checks), findings, true
	return k, nil
}
