//go:build linux

package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/packages"
)

type buildWorker struct {
	river.WorkerDefaults[BuildArgs]
	p *Pipeline
}

// Timeout: none from River. The builder enforces I7 and the worker adds a
// backstop (runBuild); a River timeout would look like a shutdown.
func (w *buildWorker) Timeout(*river.Job[BuildArgs]) time.Duration { return -1 }

func (w *buildWorker) Work(ctx context.Context, job *river.Job[BuildArgs]) error {
	return w.p.runBuild(ctx, job.ID, job.Args.BuildID)
}

// errLeaseLost ends a run whose build was taken from it (re-queued by the
// reaper, moved on by an operator).
var errLeaseLost = errors.New("the build's lease was lost")

// run is one worker's hold on a build.
type run struct {
	id      string // lease token
	build   *Build
	resume  bool // the image exists: go straight to the scan
	attempt int
}

// runBuild works one build job. It returns nil whenever the job has
// nothing (more) to do, including after re-queueing on shutdown.
func (p *Pipeline) runBuild(ctx context.Context, jobID int64, buildID string) error {
	r, err := p.claim(ctx, jobID, buildID)
	if err != nil || r == nil {
		return err
	}
	dir := filepath.Join(p.cfg.WorkDir, buildID+"."+r.id)
	defer os.RemoveAll(dir)
	// The owner file lets a restarted process on this machine tell at once
	// that this run died with its process (see cleanWorkDir).
	if err := writeOwner(dir + ownerSuffix); err != nil {
		return err
	}
	defer os.Remove(dir + ownerSuffix)

	// work is cancelled by shutdown (ctx) or by losing the lease.
	work, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		p.heartbeat(work, cancel, buildID, r.id)
	}()
	defer func() { cancel(nil); <-hbDone }()

	imageID := r.build.ImageID
	if !r.resume {
		var done bool
		imageID, done, err = p.buildStep(ctx, work, r, dir)
		if done || err != nil {
			return p.finishRun(ctx, work, r, err)
		}
	}
	return p.finishRun(ctx, work, r, p.scanStep(ctx, work, r, imageID))
}

// finishRun handles how a run ended: on shutdown the build goes back to the
// queue; with a lost lease there is nothing to do.
func (p *Pipeline) finishRun(ctx, work context.Context, r *run, err error) error {
	switch {
	case ctx.Err() != nil:
		return p.requeue(r, "the worker stopped (pib is shutting down); the build was re-queued and starts over")
	case errors.Is(context.Cause(work), errLeaseLost):
		p.log.Warn("a build run lost its lease and stopped", "build", r.build.ID, "run", r.id)
		return nil
	}
	return err
}

// claim takes the lease of build id for job jobID, or returns nil when the
// job has nothing to do: the build ended, was re-queued under another job,
// or is held by a live run (a duplicate after River's rescuer).
func (p *Pipeline) claim(ctx context.Context, jobID int64, id string) (*run, error) {
	var r *run
	var lostErr, deadRun string
	err := p.db.Tx(ctx, func(tx *sql.Tx) error {
		r, lostErr, deadRun = nil, "", ""
		var state State
		var job sql.NullInt64
		var runID sql.NullString
		var hb sql.NullTime
		var lost, attempt int
		var groupID, owner, osName, imageID string
		err := tx.QueryRowContext(ctx, `SELECT state, job_id, run_id, heartbeat_at, lost, attempt, `+historyKey+`, owner, os_name, image_id FROM builds WHERE id = $1`+p.forUpdate(), id).
			Scan(&state, &job, &runID, &hb, &lost, &attempt, &groupID, &owner, &osName, &imageID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // deleted with its group
		}
		if err != nil {
			return err
		}
		if state.Ended() || !job.Valid || job.Int64 != jobID {
			return nil
		}
		now := p.now()
		reason := fmt.Sprintf("attempt %d started", attempt+1)
		if runID.Valid {
			if hb.Valid && now.Sub(hb.Time) < p.cfg.StaleAfter {
				return nil // a live run holds it
			}
			deadRun = runID.String
			lost++
			if lost >= p.cfg.MaxLost {
				lostErr = fmt.Sprintf("worker lost %d times in a row (last heartbeat %s)", lost, hbString(hb))
				return nil
			}
			reason = fmt.Sprintf("the previous worker was lost (last heartbeat %s); attempt %d started", hbString(hb), attempt+1)
		}
		newRun := newID("")
		if _, err := tx.ExecContext(ctx, `UPDATE builds SET run_id = $2, heartbeat_at = $3, attempt = attempt + 1, lost = $4,
			started_at = COALESCE(started_at, $3), updated_at = $3 WHERE id = $1`, id, newRun, now, lost); err != nil {
			return err
		}
		if err := record(ctx, tx, groupID, owner, id, osName, state, reason, now); err != nil {
			return err
		}
		r = &run{id: newRun, attempt: attempt + 1, resume: state == Scanning && imageID != ""}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if deadRun != "" {
		p.cleanup(ctx, id, deadRun)
	}
	if lostErr != "" {
		_, err := p.apply(ctx, id, change{to: Investigating, from: []State{Building, Scanning},
			reason:        "the worker running this build was lost; an operator will look into it",
			investigation: lostErr})
		return nil, err
	}
	if r == nil {
		return nil, nil
	}
	b, err := p.read.buildByID(ctx, id)
	if err != nil {
		return nil, err
	}
	r.build = b
	return r, nil
}

func hbString(t sql.NullTime) string {
	if !t.Valid {
		return "never"
	}
	return t.Time.UTC().Format(time.RFC3339)
}

// heartbeat keeps the lease alive until work ends; a lease found taken
// cancels work with errLeaseLost.
func (p *Pipeline) heartbeat(work context.Context, cancel context.CancelCauseFunc, id, runID string) {
	t := time.NewTicker(p.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-work.Done():
			return
		case <-t.C:
		}
		res, err := p.db.ExecContext(work, `UPDATE builds SET heartbeat_at = $3 WHERE id = $1 AND run_id = $2`, id, runID, p.now())
		if err != nil {
			if work.Err() == nil {
				p.log.Warn("build heartbeat failed", "build", id, "err", err)
			}
			continue
		}
		if n, _ := res.RowsAffected(); n == 0 {
			cancel(errLeaseLost)
			return
		}
	}
}

// requeue gives a run's build back to the queue under a fresh job. It runs
// on shutdown, when ctx is already cancelled.
func (p *Pipeline) requeue(r *run, reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.db.Tx(ctx, func(tx *sql.Tx) error {
		var state State
		err := tx.QueryRowContext(ctx, `SELECT state FROM builds WHERE id = $1 AND run_id = $2`+p.forUpdate(), r.build.ID, r.id).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // no longer ours
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE builds SET run_id = NULL, heartbeat_at = NULL, updated_at = $2 WHERE id = $1`, r.build.ID, p.now()); err != nil {
			return err
		}
		if err := p.enqueueBuild(ctx, tx, r.build.ID); err != nil {
			return err
		}
		return record(ctx, tx, r.build.historyKey(), r.build.Owner, r.build.ID, r.build.OSName, state, reason, p.now())
	})
	if err != nil {
		// The reaper will find the stale lease.
		p.log.Error("re-queue a build on shutdown", "build", r.build.ID, "err", err)
	}
	return nil
}

// buildStep runs the test build. done reports that the build ended (or
// the run must stop) and no scan follows.
func (p *Pipeline) buildStep(ctx, work context.Context, r *run, dir string) (imageID string, done bool, err error) {
	b := r.build
	g, err := p.cfg.Groups.ByID(work, b.GroupID)
	if err != nil {
		return "", true, p.platformFault(ctx, work, r, "load the package group", err)
	}
	installer, err := p.stage(work, g, dir)
	if err != nil {
		return "", true, p.platformFault(ctx, work, r, "stage the packages", err)
	}
	req := BuildRequest{BuildID: b.ID, Owner: b.Owner, OSName: b.OSName, Platform: g.Platform, BaseImageID: b.BaseImageID,
		PackageDir: dir, Installer: installer, Timeout: p.cfg.BuildTimeout, SourceDateEpoch: p.cfg.SourceDateEpoch,
		InputsDigest: InputsDigest(b.BaseImageID, g.Platform, g, p.cfg.SourceDateEpoch)}
	if req.Previous, err = p.recordInputs(work, b, req.InputsDigest); err != nil {
		return "", true, p.platformFault(ctx, work, r, "record the build's inputs", err)
	}
	if b.Kind == KindPrivate {
		if req.Tags, err = p.imageTags(work, b.ID); err != nil {
			return "", true, p.platformFault(ctx, work, r, "read the build's image tags", err)
		}
	}
	// Backstop for I7: a builder that overruns its own limit by far is a
	// platform fault.
	bctx, bcancel := context.WithTimeout(work, p.cfg.BuildTimeout+p.cfg.BuildTimeout/4+time.Minute)
	defer bcancel()
	start := time.Now()
	out, err := safeCall(func() (*BuildOutcome, error) { return p.cfg.Builder.Build(bctx, req) })
	if work.Err() != nil {
		return "", true, nil // shutdown or lost lease: finishRun decides
	}
	if err == nil && bctx.Err() != nil {
		err = fmt.Errorf("the builder did not return within %s", p.cfg.BuildTimeout+p.cfg.BuildTimeout/4+time.Minute)
	}
	result := "error"
	defer func() { p.metrics.buildSeconds.WithLabelValues(result).Observe(time.Since(start).Seconds()) }()
	if err != nil {
		return "", true, p.platformFault(ctx, work, r, "run the test build", err)
	}
	if out == nil {
		out = &BuildOutcome{}
	}
	findings := nonNil(out.Findings)
	set := buildUpdate{
		log:          val(p.clipLog(out.Log)),
		changedFiles: val(jsonText(nonNil(out.ChangedFiles))),
		buildReport:  val(string(out.Report)),
		findings:     val(jsonText(findings)),
	}
	if len(out.Findings) > 0 {
		result = "issues"
		set.troubleshooting = val(troubleshooting(b, "test build", out.Findings))
		reason := fmt.Sprintf("the test build broke %s", rulesOf(out.Findings))
		if out.BootTest != "" {
			reason += "; " + out.BootTest
		}
		_, err := p.apply(work, b.ID, change{to: IssuesFound, runID: r.id, from: []State{Building},
			reason: reason,
			set:    set})
		return "", true, err
	}
	if out.ImageID == "" {
		return "", true, p.platformFault(ctx, work, r, "run the test build", errors.New("the builder returned neither an image nor a finding"))
	}
	result = "ok"
	scanStarted := p.now()
	set.imageID, set.scanStartedAt = val(out.ImageID), val(&scanStarted)
	reason := "test build passed (image " + out.ImageID + "); scanning"
	if out.BootTest != "" {
		reason = "test build passed (image " + out.ImageID + "); " + out.BootTest + "; scanning"
	}
	ok, err := p.apply(work, b.ID, change{to: Scanning, runID: r.id, from: []State{Building},
		reason: reason,
		set:    set})
	if err != nil || !ok {
		return "", true, err
	}
	return out.ImageID, false, nil
}

func (p *Pipeline) scanStep(ctx, work context.Context, r *run, imageID string) error {
	b := r.build
	sctx, scancel := context.WithTimeout(work, p.cfg.ScanTimeout)
	defer scancel()
	start := time.Now()
	out, err := safeCall(func() (*ScanOutcome, error) { return p.cfg.Scanner.Scan(sctx, imageID) })
	if work.Err() != nil {
		return nil
	}
	if err == nil && sctx.Err() != nil {
		err = fmt.Errorf("the scanner did not return within %s", p.cfg.ScanTimeout)
	}
	result := "error"
	defer func() { p.metrics.scanSeconds.WithLabelValues(result).Observe(time.Since(start).Seconds()) }()
	if err != nil {
		return p.platformFault(ctx, work, r, "scan the image", err)
	}
	if out == nil {
		return p.platformFault(ctx, work, r, "scan the image", errors.New("the scanner returned no verdict"))
	}
	set := buildUpdate{scanReport: val(string(out.Report))}
	if !out.Passed {
		result = "issues"
		v := out.Violations
		if len(v) == 0 {
			v = []Finding{{Rule: "S4", Message: cmpOr(out.Summary, "the image breaks the security policy; see the scan report")}}
		}
		text := troubleshooting(b, "scan", v)
		if out.Summary != "" {
			text = out.Summary + "\n\n" + text
		}
		set.findings, set.troubleshooting = val(jsonText(v)), val(text)
		_, err := p.apply(work, b.ID, change{to: IssuesFound, runID: r.id, from: []State{Scanning},
			reason: fmt.Sprintf("the scan found policy violations (%s)", rulesOf(v)),
			set:    set})
		return err
	}
	result = "ok"
	_, err = p.apply(work, b.ID, change{to: Successful, runID: r.id, from: []State{Scanning},
		reason: "the scan passed the security policy", set: set})
	return err
}

// platformFault moves the run's build to Investigating, unless the run is
// being stopped (then finishRun re-queues it).
func (p *Pipeline) platformFault(ctx, work context.Context, r *run, what string, cause error) error {
	if work.Err() != nil {
		return nil
	}
	p.log.Error("build failed on the platform's side", "build", r.build.ID, "step", what, "err", cause)
	_, err := p.apply(work, r.build.ID, change{to: Investigating, runID: r.id, from: []State{Building, Scanning},
		reason: "pib could not " + what + " (a platform fault, not a problem of the package group); an operator will retry it",
		set: buildUpdate{troubleshooting: val("The build stopped because of a problem on pib's side while trying to " + what +
			", not because of your package group. It is in the operators' investigation queue; you do not need to do anything.")},
		investigation: fmt.Sprintf("could not %s: %v", what, cause)})
	return err
}

// safeCall turns a panic into an error: a crashing builder or scanner is a
// platform fault, not a dead worker.
func safeCall[T any](f func() (T, error)) (out T, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v\n%s", v, debug.Stack())
		}
	}()
	return f()
}

// stage copies the group's packages into dir and returns the installer's path.
func (p *Pipeline) stage(ctx context.Context, g *groups.Group, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	installer := ""
	for _, pkg := range g.Packages {
		if strings.ContainsAny(pkg.Name, `/\`) || pkg.Name == "." || pkg.Name == ".." {
			return "", fmt.Errorf("package %s has an unsafe name %q", pkg.ID, pkg.Name)
		}
		dst := filepath.Join(dir, pkg.Name)
		if err := copyPackage(ctx, p.cfg.Packages, pkg, dst); err != nil {
			return "", fmt.Errorf("package %s (%s): %w", pkg.ID, pkg.Name, err)
		}
		if pkg.ID == g.InstallerID {
			installer = dst
		}
	}
	if installer == "" {
		return "", fmt.Errorf("group %s has no installer package", g.ID)
	}
	return installer, nil
}

func copyPackage(ctx context.Context, ps PackageSource, pkg *packages.Package, dst string) error {
	rc, err := ps.Open(pkg)
	if err != nil {
		return err
	}
	defer rc.Close()
	// The sandbox copies it in through an open file and sets its own mode;
	// here it is a seller's file in the data directory: the owner's only.
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o700)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, ctxReader{ctx, rc})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// clipLog makes a log storable in a TEXT column on both engines (valid
// UTF-8, no NUL) and keeps its head and tail when it is too long.
func (p *Pipeline) clipLog(b []byte) string {
	s := strings.ReplaceAll(strings.ToValidUTF8(string(b), "\uFFFD"), "\x00", "")
	if len(s) <= p.cfg.MaxLogBytes {
		return s
	}
	half := p.cfg.MaxLogBytes / 2
	head, tail := strings.ToValidUTF8(s[:half], ""), strings.ToValidUTF8(s[len(s)-half:], "")
	return head + fmt.Sprintf("\n… %d bytes cut …\n", len(s)-2*half) + tail
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
