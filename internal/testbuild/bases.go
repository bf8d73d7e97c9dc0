//go:build linux

package testbuild

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/pipeline"
)

// BaseScans scans the base image of every registered OS version ahead of
// its first build (pipeline.Jobs): a build's scan starts from its base
// image's kept inventory, and without one the first build on a new base
// waits for a full scan of it (seconds, where the build's own scan takes
// a fraction of one). A periodic job looks every Interval, and when the
// workers start, for bases with no inventory and scans them one at a
// time, on its own queue so that it never takes a build's worker.
type BaseScans struct {
	Scanner    *Scanner
	OSVersions interface {
		List(ctx context.Context) ([]*osversions.OSVersion, error)
	}
	// Interval is how often it looks; zero means BaseScanInterval.
	Interval time.Duration
}

// BaseScanInterval is how often BaseScans looks for new OS versions by
// default: a look is one query per OS version.
const BaseScanInterval = 15 * time.Second

// BaseScanQueue is the River queue of BaseScans' job.
const BaseScanQueue = "pib_base_scans"

// BaseScanArgs is BaseScans' periodic job.
type BaseScanArgs struct{}

// Kind implements river.JobArgs.
func (BaseScanArgs) Kind() string { return "pib_base_scans" }

// Register implements pipeline.Jobs.
func (b *BaseScans) Register(rc *river.Config, _ *pipeline.Pipeline) {
	river.AddWorker(rc.Workers, &baseScanWorker{b: b})
	rc.Queues[BaseScanQueue] = river.QueueConfig{MaxWorkers: 1}
	every := b.Interval
	if every <= 0 {
		every = BaseScanInterval
	}
	rc.PeriodicJobs = append(rc.PeriodicJobs, river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) {
			return BaseScanArgs{}, &river.InsertOpts{Queue: BaseScanQueue, MaxAttempts: 1}
		},
		&river.PeriodicJobOpts{ID: "pib.base-scans", RunOnStart: true}))
}

// Run scans, in full, the base image of each registered OS version that
// has no kept inventory yet, and keeps it. One base that cannot be
// scanned does not stop the others; its build's scan tries again (and
// says why if it fails too).
func (b *BaseScans) Run(ctx context.Context) error {
	list, err := b.OSVersions.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range list {
		if err := b.Scanner.PrepareBase(ctx, v.ImageID); err != nil {
			errs = append(errs, fmt.Errorf("OS version %s: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

type baseScanWorker struct {
	river.WorkerDefaults[BaseScanArgs]
	b *BaseScans
}

// Timeout: a full scan of a large base takes seconds; several of them
// under load, minutes.
func (w *baseScanWorker) Timeout(*river.Job[BaseScanArgs]) time.Duration { return 30 * time.Minute }

func (w *baseScanWorker) Work(ctx context.Context, _ *river.Job[BaseScanArgs]) error {
	return w.b.Run(ctx)
}
