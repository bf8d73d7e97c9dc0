//go:build linux

package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/webhook"
)

// Builder test-builds a package group on a base image (rules I1–I8).
type Builder interface {
	// Build installs req's packages on req.BaseImageID and returns what
	// happened. Rule findings are part of a successful call; an error means
	// the build could not be run at all (a platform fault). Build must
	// return promptly once ctx is done.
	Build(ctx context.Context, req BuildRequest) (*BuildOutcome, error)
}

// Cleaner is optionally implemented by a Builder whose builds leave state
// outside the worker process (mounts, namespaces, processes, folders).
// pib calls Cleanup for a build whose run died with its process (kill -9)
// — at Start for runs that died on this machine, and when the reaper
// recovers a lost run — so nothing of it is left behind.
type Cleaner interface {
	Cleanup(ctx context.Context, buildID string) error
}

// Scanner scans a built image (rules S1–S4).
type Scanner interface {
	// Scan inventories and checks imageID and returns the verdict. An error
	// means the scan could not be run (a platform fault).
	Scan(ctx context.Context, imageID string) (*ScanOutcome, error)
}

// BuildRequest is one test build.
type BuildRequest struct {
	BuildID     string
	Owner       string
	OSName      string // e.g. debian-12
	Platform    string // linux or windows
	BaseImageID string
	// PackageDir holds every package of the group under its file name;
	// Installer is the installer's path inside it.
	PackageDir string
	Installer  string
	Timeout    time.Duration // I7
	// Tags are the tags the new image gets (a private image build's, C5).
	Tags map[string]string
	// SourceDateEpoch clamps the times of the files the build adds or
	// changes (Config.SourceDateEpoch); nil: the base image's creation time.
	SourceDateEpoch *time.Time
	// InputsDigest identifies the build's inputs (InputsDigest); Previous
	// is the owner's latest earlier build of the same inputs that made an
	// image, nil if none: the builder reports whether its layer is the same.
	InputsDigest string
	Previous     *PreviousBuild
}

// Finding is one broken rule.
type Finding struct {
	Rule    string `json:"rule"`             // SPEC rule ID: I1…I7, S2, S3…
	Message string `json:"message"`          // what happened
	Detail  string `json:"detail,omitempty"` // e.g. host:port, command line, CVE
}

// BuildOutcome is what a test build produced.
type BuildOutcome struct {
	ImageID      string    // the new image; empty when the build failed
	Findings     []Finding // rule findings; any finding fails the build
	Log          []byte    // installer stdout/stderr (I8)
	ChangedFiles []string  // summary of the files the install changed (I8)
	Report       json.RawMessage
	// BootTest is one line for the build's history when the image was
	// boot-tested (V1–V3), e.g. "boot test passed (V1–V3, 31s)".
	BootTest string
}

// ScanOutcome is a scan's verdict (S4).
type ScanOutcome struct {
	Passed     bool
	Violations []Finding // what breaks the policy when !Passed
	Summary    string    // optional: the verdict in one paragraph
	Report     json.RawMessage
}

// GroupSource finds package groups (*groups.Store).
type GroupSource interface {
	Get(ctx context.Context, owner, ref string) (*groups.Group, error)
	ByID(ctx context.Context, id string) (*groups.Group, error)
}

// PackageSource reads package content (*packages.Store).
type PackageSource interface {
	Open(p *packages.Package) (io.ReadCloser, error)
}

// OSVersionSource resolves OS version names to base images (*osversions.Store).
type OSVersionSource interface {
	Get(ctx context.Context, name string) (*osversions.OSVersion, error)
}

// Config configures a Pipeline. Zero values take the defaults named.
type Config struct {
	Builder    Builder
	Scanner    Scanner
	Groups     GroupSource
	Packages   PackageSource
	OSVersions OSVersionSource
	// Webhooks receives a delivery for every build state change, queued
	// in the transaction that makes the change; its deliveries are worked
	// by this pipeline's workers.
	Webhooks *webhook.Service
	// Jobs are more job kinds this process's workers run beside builds
	// (monitoring, S5), registered with the pipeline's job queue.
	Jobs []Jobs

	// Workers is how many builds this process runs at once (default 1).
	// Negative: this process works no jobs at all (it only submits).
	Workers int
	// WorkDir is where a build's packages are staged (default
	// $TMPDIR/pib-builds). Leftovers of dead runs are removed at Start.
	WorkDir string

	BuildTimeout time.Duration // I7, default 60m
	ScanTimeout  time.Duration // default 30m

	// SourceDateEpoch is the latest modification time a file a build adds
	// or changes may have in its layer (later ones are clamped to it), so
	// that a deterministic installer gives the same layer every time; nil
	// means each build's base image's creation time.
	SourceDateEpoch *time.Time

	HeartbeatInterval time.Duration // default 10s
	StaleAfter        time.Duration // heartbeat older than this: worker lost (default 1m)
	ReapInterval      time.Duration // how often the reaper looks (default 30s)
	MaxLost           int           // workers lost in a row before Investigating (default 3)

	// RescueStuckJobsAfter is River's rescuer threshold (default 10m).
	RescueStuckJobsAfter time.Duration
	// PollInterval is how often an idle worker looks for new jobs (default
	// 50ms). Neither driver used here has LISTEN/NOTIFY, and a job
	// inserted in a transaction (Submit) does not wake River's fetcher, so
	// this is what a submitted build waits before a free worker starts
	// it: half of it on average, a fixed cost of every build's submit →
	// Successful (with 200ms it was ~0.1s of a ~0.5s target). The poll is
	// one indexed query that finds nothing most of the time.
	PollInterval time.Duration

	MaxLogBytes int // default 4 MiB

	Logger *slog.Logger
	Now    func() time.Time // injectable clock for history and overdue checks
}

func (c *Config) defaults() {
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.WorkDir == "" {
		c.WorkDir = filepath.Join(os.TempDir(), "pib-builds")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.BuildTimeout, 60*time.Minute)
	def(&c.ScanTimeout, 30*time.Minute)
	def(&c.HeartbeatInterval, 10*time.Second)
	def(&c.StaleAfter, time.Minute)
	def(&c.ReapInterval, 30*time.Second)
	def(&c.RescueStuckJobsAfter, 10*time.Minute)
	def(&c.PollInterval, 50*time.Millisecond)
	if c.MaxLost <= 0 {
		c.MaxLost = 3
	}
	if c.MaxLogBytes <= 0 {
		c.MaxLogBytes = 4 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Errors callers test with errors.Is; each is a problem error, returned as
// an instance with its detail (Errorf). ErrInProgress and
// ErrNotInvestigating are also store.ErrConflict.
var (
	ErrNotFound         = problem.New(problem.NotFound, "not found")
	ErrInProgress       = &problem.Error{Code: problem.Conflict, Message: "builds in progress", Err: store.ErrConflict}
	ErrNotInvestigating = &problem.Error{Code: problem.Conflict, Message: "build is not being investigated", Err: store.ErrConflict}
	ErrInvalid          = problem.New(problem.Invalid, "invalid request")
)

// fetchCooldown is the shortest time between two fetches of a queue.
const fetchCooldown = 10 * time.Millisecond

// River queues.
const (
	queueBuilds = "builds"
	queueMaint  = river.QueueDefault
)

// Pipeline submits and runs builds: the job runtime. Reads go through its
// Reader.
type Pipeline struct {
	db      *store.DB
	cfg     Config
	client  *river.Client[*sql.Tx]
	read    *Reader
	log     *slog.Logger
	metrics *metrics
}

// New returns a pipeline over db, applying River's migrations first. Call
// Start to work jobs and Stop before closing db.
func New(ctx context.Context, db *store.DB, cfg Config) (*Pipeline, error) {
	cfg.defaults()
	if cfg.Workers > 0 && (cfg.Builder == nil || cfg.Scanner == nil || cfg.Groups == nil || cfg.Packages == nil) {
		return nil, errors.New("pipeline: a worker needs a Builder, a Scanner, Groups and Packages")
	}
	if cfg.Groups == nil || cfg.OSVersions == nil || cfg.Webhooks == nil {
		return nil, errors.New("pipeline: Groups, OSVersions and Webhooks are required")
	}
	p := &Pipeline{db: db, cfg: cfg, read: NewReader(db, cfg.Groups, cfg.Now), log: cfg.Logger, metrics: newMetrics()}
	var driver riverdriver.Driver[*sql.Tx]
	switch db.Dialect {
	case store.SQLite:
		driver = riversqlite.New(db.DB)
	case store.Postgres:
		driver = riverdatabasesql.New(db.DB)
	default:
		return nil, fmt.Errorf("pipeline: unsupported database %q", db.Dialect)
	}
	if err := migrateRiver(ctx, db, driver); err != nil {
		return nil, err
	}
	rc := &river.Config{
		Logger:            cfg.Logger,
		FetchPollInterval: cfg.PollInterval,
		// The cooldown delays a fetch that a finished job triggers (a
		// worker slot came free while builds wait); River's default of
		// 100ms would be a gap between queued builds on a busy server.
		FetchCooldown:        min(cfg.PollInterval, fetchCooldown),
		JobTimeout:           -1, // each worker sets its own; builds enforce I7 themselves
		RescueStuckJobsAfter: cfg.RescueStuckJobsAfter,
		MaxAttempts:          10,
	}
	if cfg.Workers > 0 {
		workers := river.NewWorkers()
		river.AddWorker(workers, &buildWorker{p: p})
		river.AddWorker(workers, &reapWorker{p: p})
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{
			queueBuilds: {MaxWorkers: cfg.Workers},
			queueMaint:  {MaxWorkers: 1},
		}
		cfg.Webhooks.Register(rc)
		rc.PeriodicJobs = []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(cfg.ReapInterval),
				func() (river.JobArgs, *river.InsertOpts) { return ReapArgs{}, nil },
				&river.PeriodicJobOpts{ID: "pib.reap", RunOnStart: true}),
		}
		for _, j := range cfg.Jobs {
			j.Register(rc, p)
		}
	} else {
		// Submitting only: the jobs are worked by `pib worker` elsewhere.
		rc.SkipUnknownJobCheck = true
	}
	client, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	p.client = client
	return p, nil
}

// migrateRiver applies River's own migrations (each in its own
// transaction: PostgreSQL cannot use a new enum value in the transaction
// that adds it). On PostgreSQL a session advisory lock makes concurrently
// starting workers take turns.
func migrateRiver(ctx context.Context, db *store.DB, driver riverdriver.Driver[*sql.Tx]) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	if db.Dialect == store.Postgres {
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		const key = 7301208861
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
			return fmt.Errorf("lock for the job queue migration: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate the job queue (River) tables: %w", err)
	}
	return nil
}

// Reader returns the read side over the pipeline's database, with its
// clock.
func (p *Pipeline) Reader() *Reader { return p.read }

// Start works jobs until Stop. Only Stop ends it: ctx is used for start-up.
func (p *Pipeline) Start(ctx context.Context) error {
	if p.cfg.Workers <= 0 {
		return nil
	}
	if err := os.MkdirAll(p.cfg.WorkDir, 0o700); err != nil {
		return fmt.Errorf("create the build work directory: %w", err)
	}
	p.cleanWorkDir(ctx)
	return p.client.Start(context.WithoutCancel(ctx))
}

// Stop cancels running builds, which give their builds back to the queue
// (re-queued, not failed), and waits for every worker to return or ctx to
// end.
func (p *Pipeline) Stop(ctx context.Context) error {
	if p.cfg.Workers <= 0 {
		return nil
	}
	return p.client.StopAndCancel(ctx)
}

// cleanWorkDir removes staging folders of runs that no longer hold a live
// lease: leftovers of a killed process. A run whose owner process on this
// machine is gone is recovered at once (re-queued), without waiting for
// its heartbeat to go stale: a restarted pib serve resumes its builds
// within seconds of a kill -9.
func (p *Pipeline) cleanWorkDir(ctx context.Context) {
	entries, err := os.ReadDir(p.cfg.WorkDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ownerSuffix) {
			if _, err := os.Stat(filepath.Join(p.cfg.WorkDir, strings.TrimSuffix(e.Name(), ownerSuffix))); err != nil {
				os.Remove(filepath.Join(p.cfg.WorkDir, e.Name()))
			}
			continue
		}
		buildID, runID, ok := strings.Cut(e.Name(), ".")
		if !ok {
			continue
		}
		owner := filepath.Join(p.cfg.WorkDir, e.Name()+ownerSuffix)
		if ownerDead(owner) {
			p.log.Info("a build's worker process died; queueing the build again", "build", buildID)
			if err := p.recoverLost(ctx, buildID, runID, "the worker process died"); err != nil {
				p.log.Error("recover a build after its worker died", "build", buildID, "err", err)
			}
			p.cleanup(ctx, buildID, runID)
			os.Remove(owner)
			continue
		}
		var hb sql.NullTime
		err := p.db.QueryRowContext(ctx, `SELECT heartbeat_at FROM builds WHERE id = $1 AND run_id = $2`, buildID, runID).Scan(&hb)
		if err == nil && hb.Valid && p.now().Sub(hb.Time) < p.cfg.StaleAfter {
			continue // a live run on this machine
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			continue
		}
		p.log.Info("removing what a dead build run left behind", "build", buildID, "dir", filepath.Join(p.cfg.WorkDir, e.Name()))
		p.cleanup(ctx, buildID, runID)
	}
}

// cleanup removes what a dead run of build id left on this machine.
func (p *Pipeline) cleanup(ctx context.Context, id, runID string) {
	dir := filepath.Join(p.cfg.WorkDir, id+"."+runID)
	if _, err := os.Stat(dir); err != nil {
		return // the run was not on this machine
	}
	if c, ok := p.cfg.Builder.(Cleaner); ok {
		if err := c.Cleanup(ctx, id); err != nil {
			p.log.Error("clean up after a dead build run", "build", id, "err", err)
		}
	}
	os.RemoveAll(dir)
}

func (p *Pipeline) now() time.Time { return p.cfg.Now().UTC() }

func (p *Pipeline) forUpdate() string {
	if p.db.Dialect == store.Postgres {
		return " FOR UPDATE"
	}
	return "" // SQLite: immediate transactions already hold the write lock
}
