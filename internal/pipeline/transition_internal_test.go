package pipeline

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// buildRow is every column of a build row that a state change may write.
type buildRow struct {
	State, ImageID, Troubleshooting, Findings, Log, ChangedFiles, BuildReport, ScanReport string
	Lost                                                                                  int
	RunID                                                                                 sql.NullString
	Heartbeat, Started, ScanStarted, Ended                                                sql.NullTime
	Updated                                                                               time.Time
}

func readRow(t *testing.T, db *store.DB, id string) buildRow {
	t.Helper()
	var r buildRow
	err := db.QueryRowContext(context.Background(), `SELECT state, image_id, troubleshooting, findings, log, changed_files,
		build_report, scan_report, lost, run_id, heartbeat_at, started_at, scan_started_at, ended_at, updated_at FROM builds WHERE id = $1`, id).
		Scan(&r.State, &r.ImageID, &r.Troubleshooting, &r.Findings, &r.Log, &r.ChangedFiles, &r.BuildReport, &r.ScanReport,
			&r.Lost, &r.RunID, &r.Heartbeat, &r.Started, &r.ScanStarted, &r.Ended, &r.Updated)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeRow(t *testing.T, db *store.DB, id string, r buildRow) {
	t.Helper()
	_, err := db.ExecContext(context.Background(), `UPDATE builds SET state = $2, image_id = $3, troubleshooting = $4, findings = $5,
		log = $6, changed_files = $7, build_report = $8, scan_report = $9, lost = $10, run_id = $11, heartbeat_at = $12,
		started_at = $13, scan_started_at = $14, ended_at = $15, updated_at = $16 WHERE id = $1`,
		id, r.State, r.ImageID, r.Troubleshooting, r.Findings, r.Log, r.ChangedFiles, r.BuildReport, r.ScanReport,
		r.Lost, r.RunID, r.Heartbeat, r.Started, r.ScanStarted, r.Ended, r.Updated)
	if err != nil {
		t.Fatal(err)
	}
}

func at(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: true} }

// Each field of a buildUpdate writes its column and nothing else; unset
// fields keep theirs; a nil time writes NULL.
func TestBuildUpdate(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		_, _, builds := submitted(t, db, &countingBuilder{}, 3)
		id := builds[0].ID
		// Microseconds: what PostgreSQL keeps.
		t0 := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
		t1 := t0.Add(90 * time.Minute)
		before := buildRow{State: string(Building), ImageID: "img-0", Troubleshooting: "trouble-0", Findings: `[{"rule":"I1"}]`,
			Log: "log-0", ChangedFiles: `["A /x"]`, BuildReport: `{"b":0}`, ScanReport: `{"s":0}`, Lost: 1,
			RunID: sql.NullString{String: "run-0", Valid: true}, Heartbeat: at(t0), Started: at(t0), ScanStarted: at(t0), Ended: at(t0), Updated: t0}
		for _, tc := range []struct {
			name string
			u    buildUpdate
			want func(*buildRow)
		}{
			{"nothing", buildUpdate{}, func(*buildRow) {}},
			{"image", buildUpdate{imageID: val("img-1")}, func(r *buildRow) { r.ImageID = "img-1" }},
			{"image emptied", buildUpdate{imageID: val("")}, func(r *buildRow) { r.ImageID = "" }},
			{"troubleshooting", buildUpdate{troubleshooting: val("trouble-1")}, func(r *buildRow) { r.Troubleshooting = "trouble-1" }},
			{"findings", buildUpdate{findings: val("[]")}, func(r *buildRow) { r.Findings = "[]" }},
			{"log", buildUpdate{log: val("log-1")}, func(r *buildRow) { r.Log = "log-1" }},
			{"changed files", buildUpdate{changedFiles: val("[]")}, func(r *buildRow) { r.ChangedFiles = "[]" }},
			{"build report", buildUpdate{buildReport: val(`{"b":1}`)}, func(r *buildRow) { r.BuildReport = `{"b":1}` }},
			{"scan report", buildUpdate{scanReport: val(`{"s":1}`)}, func(r *buildRow) { r.ScanReport = `{"s":1}` }},
			{"lost", buildUpdate{lost: val(0)}, func(r *buildRow) { r.Lost = 0 }},
			{"started", buildUpdate{startedAt: val(&t1)}, func(r *buildRow) { r.Started = at(t1) }},
			{"started NULL", buildUpdate{startedAt: val[*time.Time](nil)}, func(r *buildRow) { r.Started = sql.NullTime{} }},
			{"scan started", buildUpdate{scanStartedAt: val(&t1)}, func(r *buildRow) { r.ScanStarted = at(t1) }},
			{"scan started NULL", buildUpdate{scanStartedAt: val[*time.Time](nil)}, func(r *buildRow) { r.ScanStarted = sql.NullTime{} }},
			{"ended", buildUpdate{endedAt: val(&t1)}, func(r *buildRow) { r.Ended = at(t1) }},
			{"ended NULL", buildUpdate{endedAt: val[*time.Time](nil)}, func(r *buildRow) { r.Ended = sql.NullTime{} }},
			{"lease released", buildUpdate{releaseLease: true}, func(r *buildRow) { r.RunID, r.Heartbeat = sql.NullString{}, sql.NullTime{} }},
			{"several", buildUpdate{imageID: val("img-2"), scanReport: val(""), lost: val(3), endedAt: val(&t1), releaseLease: true},
				func(r *buildRow) {
					r.ImageID, r.ScanReport, r.Lost, r.Ended = "img-2", "", 3, at(t1)
					r.RunID, r.Heartbeat = sql.NullString{}, sql.NullTime{}
				}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				writeRow(t, db, id, before)
				if err := db.Tx(ctx, func(tx *sql.Tx) error { return tc.u.exec(ctx, tx, id, Scanning, t1) }); err != nil {
					t.Fatal(err)
				}
				want := before
				want.State, want.Updated = string(Scanning), t1
				tc.want(&want)
				if diff := cmp.Diff(want, readRow(t, db, id)); diff != "" {
					t.Errorf("row after the update (-want +got):\n%s", diff)
				}
			})
		}
	})
}

// A change whose conditions do not hold (another run's lease, another
// state) changes nothing: not the row, the history, the operator queue nor
// the webhook deliveries. The same change from the lease holder does.
func TestApplyLostCompareAndSet(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p, owner, builds := submitted(t, db, &countingBuilder{}, 3)
		id := builds[0].ID
		if _, err := db.ExecContext(ctx, `INSERT INTO webhooks (account_id, url, secret, created_at) VALUES ($1, 'https://8.8.8.8/hook', 's', $2)`,
			owner, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE builds SET run_id = 'run-0', heartbeat_at = $2 WHERE id = $1`, id, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		counts := func() map[string]int {
			out := map[string]int{}
			for _, table := range []string{"group_history", "investigations", "webhook_deliveries"} {
				var n int
				if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
					t.Fatal(err)
				}
				out[table] = n
			}
			return out
		}
		row, n := readRow(t, db, id), counts()
		set := buildUpdate{troubleshooting: val("changed"), imageID: val("img-x")}
		for name, c := range map[string]change{
			"another run's lease": {to: Investigating, runID: "run-1", from: []State{Building}, set: set, reason: "r"},
			"another state":       {to: Investigating, runID: "run-0", from: []State{Scanning}, set: set, reason: "r"},
		} {
			ok, err := p.apply(ctx, id, c)
			if err != nil || ok {
				t.Errorf("%s: apply = %v, %v; want false, nil", name, ok, err)
			}
			if diff := cmp.Diff(row, readRow(t, db, id)); diff != "" {
				t.Errorf("%s: the row changed (-before +after):\n%s", name, diff)
			}
			if diff := cmp.Diff(n, counts()); diff != "" {
				t.Errorf("%s: rows were added (-before +after):\n%s", name, diff)
			}
		}

		ok, err := p.apply(ctx, id, change{to: Investigating, runID: "run-0", from: []State{Building}, set: set, reason: "r"})
		if err != nil || !ok {
			t.Fatalf("the lease holder's change: %v, %v", ok, err)
		}
		got := readRow(t, db, id)
		if got.State != string(Investigating) || got.Troubleshooting != "changed" || got.ImageID != "img-x" ||
			!got.Ended.Valid || got.RunID.Valid || got.Heartbeat.Valid {
			t.Errorf("after the change: %+v; want Investigating, written, ended, lease released", got)
		}
		// The build's and the group's history, the investigation, and one
		// delivery per state change.
		want := map[string]int{"group_history": n["group_history"] + 2, "investigations": n["investigations"] + 1, "webhook_deliveries": n["webhook_deliveries"] + 1}
		if diff := cmp.Diff(want, counts()); diff != "" {
			t.Errorf("rows after the change (-want +got):\n%s", diff)
		}
	})
}
