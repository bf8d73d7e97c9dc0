//go:build linux

package monitor

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/scan"
)

// Verdict is what the status view shows of a monitored image (S5): the
// date of the data its scan's verdict was made with, and whether the
// newest data would change it.
type Verdict struct {
	// ScanStatus is the scan's verdict ("" when no scan report is kept)
	// and ScanDataDate the date of the vulnerability data it used.
	ScanStatus   scan.Status `json:"scan_status,omitempty"`
	ScanDataDate *time.Time  `json:"scan_data_date,omitempty"`
	// DataDate is the date of the data of the latest re-match, Status the
	// verdict it gives.
	DataDate time.Time   `json:"data_date"`
	Status   scan.Status `json:"status"`
	// Added and Withdrawn compare the latest re-match with the scan.
	Added     []Change `json:"added"`
	Withdrawn []Change `json:"withdrawn"`
	// Outdated is true when the newest data changes the scan's findings or
	// its verdict.
	Outdated bool `json:"outdated"`
	// Note says it in one sentence.
	Note      string    `json:"note"`
	CheckedAt time.Time `json:"checked_at"`
}

// Verdicts returns the monitoring verdict of each of imageIDs that is
// monitored (no entry: not monitored), in one query per 500 images: the
// status view shows a page of builds at once.
func (m *Monitor) Verdicts(ctx context.Context, imageIDs []string) (map[string]*Verdict, error) {
	out := map[string]*Verdict{}
	for start := 0; start < len(imageIDs); start += 500 {
		part := imageIDs[start:min(start+500, len(imageIDs))]
		args := make([]any, len(part))
		marks := make([]string, len(part))
		for i, id := range part {
			args[i] = id
			marks[i] = fmt.Sprintf("$%d", i+1)
		}
		rows, err := m.db.QueryContext(ctx, `SELECT image_id, scan_status, scan_data_date, scan_findings, findings, status, data_date, checked_at
			FROM image_monitoring WHERE image_id IN (`+strings.Join(marks, ", ")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read monitoring verdicts: %w", err)
		}
		for rows.Next() {
			var id, scanStatus, scanFindings, findings, status string
			var scanDate sql.NullTime
			v := &Verdict{}
			if err := rows.Scan(&id, &scanStatus, &scanDate, &scanFindings, &findings, &status, &v.DataDate, &v.CheckedAt); err != nil {
				rows.Close()
				return nil, err
			}
			if err := v.fill(scanStatus, scanDate, scanFindings, findings, status); err != nil {
				rows.Close()
				return nil, fmt.Errorf("image %s: %w", id, err)
			}
			out[id] = v
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

func (v *Verdict) fill(scanStatus string, scanDate sql.NullTime, scanFindings, findings, status string) error {
	v.ScanStatus, v.Status = scan.Status(scanStatus), scan.Status(status)
	v.DataDate, v.CheckedAt = v.DataDate.UTC(), v.CheckedAt.UTC()
	if scanDate.Valid {
		t := scanDate.Time.UTC()
		v.ScanDataDate = &t
	}
	var before, now []vuln
	if err := json.Unmarshal([]byte(scanFindings), &before); err != nil {
		return fmt.Errorf("stored scan findings: %w", err)
	}
	if err := json.Unmarshal([]byte(findings), &now); err != nil {
		return fmt.Errorf("stored findings: %w", err)
	}
	if v.ScanStatus == "" {
		// Nothing to compare with: the first re-match is the baseline.
		v.Added, v.Withdrawn = []Change{}, []Change{}
		v.Note = fmt.Sprintf("no scan report kept; monitored since data of %s, verdict %s", day(v.DataDate), v.Status)
		return nil
	}
	added, withdrawn := diff(before, now)
	v.Added, v.Withdrawn = nonNil(added), nonNil(withdrawn)
	v.Outdated = len(added) > 0 || len(withdrawn) > 0 || v.Status != v.ScanStatus
	scanDay := "unknown date"
	if v.ScanDataDate != nil {
		scanDay = day(*v.ScanDataDate)
	}
	if !v.Outdated {
		v.Note = fmt.Sprintf("verdict made with data of %s; newer data (%s) does not change it", scanDay, day(v.DataDate))
		if v.ScanDataDate != nil && !v.DataDate.After(*v.ScanDataDate) {
			v.Note = fmt.Sprintf("verdict made with data of %s, the newest", scanDay)
		}
		return nil
	}
	var parts []string
	if len(added) > 0 {
		parts = append(parts, fmt.Sprintf("finds %d more %s: %s", len(added), plural(len(added), "vulnerability", "vulnerabilities"), ids(added)))
	}
	if len(withdrawn) > 0 {
		parts = append(parts, fmt.Sprintf("no longer reports %d: %s", len(withdrawn), ids(withdrawn)))
	}
	parts = append(parts, fmt.Sprintf("the verdict would be %s", v.Status))
	v.Note = fmt.Sprintf("verdict made with data of %s; newer data (%s) %s", scanDay, day(v.DataDate), strings.Join(parts, "; "))
	return nil
}

// ids lists up to ten changes' IDs with their severity.
func ids(cs []Change) string {
	var parts []string
	for i, c := range cs {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("… %d more", len(cs)-10))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", c.ID, c.Severity))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
