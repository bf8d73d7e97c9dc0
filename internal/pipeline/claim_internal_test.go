package pipeline

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/webhook"
)

type countingBuilder struct{ n atomic.Int32 }

func (c *countingBuilder) Build(ctx context.Context, r BuildRequest) (*BuildOutcome, error) {
	c.n.Add(1)
	return &BuildOutcome{ImageID: "img-x"}, nil
}

type passScanner struct{}

func (passScanner) Scan(context.Context, string) (*ScanOutcome, error) {
	return &ScanOutcome{Passed: true}, nil
}

// A job that is not the build's current one, or that finds the build ended
// or held by a live run, does nothing.
func TestStaleJobsDoNothing(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		b := &countingBuilder{}
		p, owner, builds := submitted(t, db, b, 3)
		id := builds[0].ID
		var job int64
		if err := db.QueryRowContext(ctx, `SELECT job_id FROM builds WHERE id = $1`, id).Scan(&job); err != nil {
			t.Fatal(err)
		}

		if err := p.runBuild(ctx, job+1000, id); err != nil || b.n.Load() != 0 {
			t.Fatalf("a superseded job ran the build: err %v, %d builder calls", err, b.n.Load())
		}
		// A live run holds the build: a duplicate job (after River's rescuer) waits.
		if _, err := db.ExecContext(ctx, `UPDATE builds SET run_id = 'live', heartbeat_at = $2 WHERE id = $1`, id, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		if err := p.runBuild(ctx, job, id); err != nil || b.n.Load() != 0 {
			t.Fatalf("a duplicate job ran a build held by a live run: err %v, %d builder calls", err, b.n.Load())
		}
		if _, err := db.ExecContext(ctx, `UPDATE builds SET run_id = NULL, heartbeat_at = NULL WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		if err := p.runBuild(ctx, job, id); err != nil || b.n.Load() != 1 {
			t.Fatalf("the current job: err %v, %d builder calls", err, b.n.Load())
		}
		if got, _ := p.Reader().Build(ctx, owner, id); got.State != Successful {
			t.Fatalf("state %q", got.State)
		}
		if err := p.runBuild(ctx, job, id); err != nil || b.n.Load() != 1 {
			t.Fatalf("a job for an ended build ran it again: err %v, %d builder calls", err, b.n.Load())
		}

		// Metrics read the database.
		reg := prometheus.NewRegistry()
		for _, c := range p.Collectors() {
			reg.MustRegister(c)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]bool{}
		for _, mf := range mfs {
			found[mf.GetName()] = true
			if mf.GetName() == "pib_builds" {
				for _, m := range mf.GetMetric() {
					if m.GetLabel()[0].GetValue() == string(Successful) && m.GetGauge().GetValue() != 1 {
						t.Errorf("pib_builds{state=Successful} = %v, want 1", m.GetGauge().GetValue())
					}
				}
			}
		}
		for _, n := range []string{"pib_builds", "pib_queue_depth", "pib_build_duration_seconds", "pib_scan_duration_seconds"} {
			if !found[n] {
				t.Errorf("metric %s missing; have %v", n, found)
			}
		}
	})
}

// submitted submits a one-OS group through a pipeline that works no jobs
// by itself (the test drives it).
func submitted(t *testing.T, db *store.DB, b Builder, maxLost int) (*Pipeline, string, []*Build) {
	t.Helper()
	ctx := context.Background()
	bs, err := blobs.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ps := packages.NewStore(db, bs)
	oses := osversions.NewStore(db)
	gs := groups.NewStore(db, ps, oses)
	acc, _, err := accounts.NewStore(db).Create(ctx, "seller", accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oses.Add(ctx, "debian-12", "linux", "img-00000000000000001"); err != nil {
		t.Fatal(err)
	}
	inst, err := ps.Upload(ctx, acc.ID, "install.sh", strings.NewReader("#!/bin/sh\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gs.Create(ctx, acc.ID, groups.Spec{Name: "g", Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: inst.ID})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(ctx, db, Config{Builder: b, Scanner: passScanner{}, Groups: gs, Packages: ps, OSVersions: oses,
		Webhooks: webhook.New(db, webhook.Config{}), Workers: -1, WorkDir: t.TempDir(), MaxLost: maxLost, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	builds, err := p.Submit(ctx, acc.ID, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	return p, acc.ID, builds
}

// The reaper re-queues a build whose worker stopped heartbeating, and
// after MaxLost losses in a row moves it to Investigating.
func TestReapLostWorker(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p, owner, builds := submitted(t, db, &countingBuilder{}, 2)
		id := builds[0].ID
		jobOf := func() int64 {
			var job int64
			if err := db.QueryRowContext(ctx, `SELECT job_id FROM builds WHERE id = $1`, id).Scan(&job); err != nil {
				t.Fatal(err)
			}
			return job
		}
		die := func(run string) {
			t.Helper()
			if _, err := db.ExecContext(ctx, `UPDATE builds SET run_id = $2, heartbeat_at = $3 WHERE id = $1`, id, run, time.Now().UTC().Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		job1 := jobOf()
		// A fresh heartbeat is left alone.
		if _, err := db.ExecContext(ctx, `UPDATE builds SET run_id = 'alive', heartbeat_at = $2 WHERE id = $1`, id, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
		if err := p.Reap(ctx); err != nil || jobOf() != job1 {
			t.Fatalf("reap of a live run: %v, job %d → %d", err, job1, jobOf())
		}
		die("dead-1")
		if err := p.Reap(ctx); err != nil {
			t.Fatal(err)
		}
		b, _ := p.Reader().Build(ctx, owner, id)
		if b.State != Building || jobOf() == job1 {
			t.Fatalf("after one lost worker: %q, job %d (was %d); want re-queued under a new job", b.State, jobOf(), job1)
		}
		die("dead-2")
		if err := p.Reap(ctx); err != nil {
			t.Fatal(err)
		}
		b, _ = p.Reader().Build(ctx, owner, id)
		if b.State != Investigating {
			t.Fatalf("after two lost workers: %q, want Investigating", b.State)
		}
		inv, err := p.Reader().Investigations(ctx)
		if err != nil || len(inv) != 1 || !strings.Contains(inv[0].Reason, "worker lost 2 times") {
			t.Fatalf("investigations %+v, %v", inv, err)
		}
		hist, _ := p.Reader().History(ctx, owner, b.GroupID)
		if last := hist[len(hist)-1]; last.State != Investigating || last.BuildID != "" {
			t.Errorf("last history entry %+v, want the group turning Investigating", last)
		}

		// A queued build whose job vanished is queued again.
		if _, err := p.Retry(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `UPDATE builds SET job_id = $2, updated_at = $3 WHERE id = $1`, id, jobOf()+1000, time.Now().UTC().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		lostJob := jobOf()
		if err := p.Reap(ctx); err != nil {
			t.Fatal(err)
		}
		if j := jobOf(); j == lostJob {
			t.Errorf("a build whose job was lost was not re-queued")
		}
	})
}
