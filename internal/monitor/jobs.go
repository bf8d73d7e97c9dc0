//go:build linux

package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/pib-dev/pib/internal/pipeline"
)

// Queue is the River queue monitoring jobs run in, one at a time.
const Queue = "monitor"

// WatchArgs is the periodic job that re-matches the images that matter
// when the vulnerability data changed since the last run (an import by
// pib vulndb import, or by another process).
type WatchArgs struct{}

// Kind implements river.JobArgs.
func (WatchArgs) Kind() string { return "pib_monitor_watch" }

// RefreshArgs is the periodic job that downloads new vulnerability data
// (conditional requests: unchanged data costs one request per ecosystem)
// and re-matches when it changed.
type RefreshArgs struct{}

// Kind implements river.JobArgs.
func (RefreshArgs) Kind() string { return "pib_monitor_refresh" }

// schedule is one periodic job.
type schedule struct {
	id       string
	interval time.Duration
	args     river.JobArgs
}

// schedules are the periodic jobs m runs: the watch always; the refresh
// only with a refresh function and an interval (off by default: a server
// without network access must not try).
func (m *Monitor) schedules() []schedule {
	out := []schedule{{id: "pib.monitor.watch", interval: m.cfg.WatchInterval, args: WatchArgs{}}}
	if m.cfg.Refresh != nil && m.cfg.RefreshInterval > 0 {
		out = append(out, schedule{id: "pib.monitor.refresh", interval: m.cfg.RefreshInterval, args: RefreshArgs{}})
	}
	return out
}

// Register adds monitoring's workers, queue and periodic jobs to a
// pipeline's River configuration (pipeline.Jobs); changes are announced
// through p. Periodic jobs run on the elected leader only, so one process
// of a cluster monitors.
func (m *Monitor) Register(rc *river.Config, p *pipeline.Pipeline) {
	m.SetAnnouncer(p)
	river.AddWorker(rc.Workers, &watchWorker{m: m})
	river.AddWorker(rc.Workers, &refreshWorker{m: m})
	rc.Queues[Queue] = river.QueueConfig{MaxWorkers: 1}
	for _, s := range m.schedules() {
		args := s.args
		rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(s.interval),
			func() (river.JobArgs, *river.InsertOpts) {
				return args, &river.InsertOpts{Queue: Queue, MaxAttempts: 3}
			},
			&river.PeriodicJobOpts{ID: s.id, RunOnStart: true}))
	}
}

// IfChanged re-matches every image that matters if the vulnerability
// data changed since the last run; reason names the trigger.
func (m *Monitor) IfChanged(ctx context.Context, reason string) (*Result, error) {
	changed, err := m.DataChanged(ctx)
	if err != nil || !changed {
		return nil, err
	}
	return m.Run(ctx, "", reason)
}

type watchWorker struct {
	river.WorkerDefaults[WatchArgs]
	m *Monitor
}

func (w *watchWorker) Work(ctx context.Context, _ *river.Job[WatchArgs]) error {
	_, err := w.m.IfChanged(ctx, "the vulnerability data changed")
	return err
}

type refreshWorker struct {
	river.WorkerDefaults[RefreshArgs]
	m *Monitor
}

func (w *refreshWorker) Work(ctx context.Context, _ *river.Job[RefreshArgs]) error {
	if err := w.m.cfg.Refresh(ctx); err != nil {
		// Partial downloads may have been imported: re-match what is there.
		w.m.cfg.Logger.Warn("vulnerability data refresh failed; retrying later", "err", err)
		if _, rerr := w.m.IfChanged(ctx, "vulnerability data refreshed in part"); rerr != nil {
			return rerr
		}
		return fmt.Errorf("refresh the vulnerability data: %w", err)
	}
	_, err := w.m.IfChanged(ctx, "vulnerability data refreshed")
	return err
}
