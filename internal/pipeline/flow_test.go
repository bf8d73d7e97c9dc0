package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

func TestSubmitSuccessful(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seed(t, db, t.TempDir())
		p := start(t, db, testConfig(t, e, okBuilder, okScanner))

		if bs, err := p.Reader().Builds(ctx, e.seller, e.group.ID); err != nil || pipeline.GroupState(bs) != pipeline.Draft {
			t.Fatalf("before submit: %v, %v; want a Draft", bs, err)
		}
		bs, err := p.Submit(ctx, e.seller, e.group.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) != 2 || !strings.HasPrefix(bs[0].ID, "b-") {
			t.Fatalf("Submit returned %+v, want two builds b-…", bs)
		}
		bs = waitEnded(t, p, e.seller, e.group.ID, 20*time.Second)
		if got := pipeline.GroupState(bs); got != pipeline.Successful {
			t.Fatalf("group state %q, want Successful", got)
		}
		for _, b := range bs {
			if b.State != pipeline.Successful || b.ImageID != "img-new-"+b.OSName || b.Ended == nil || b.Attempt != 1 {
				t.Errorf("build %+v: want Successful with its image, ended, attempt 1", b)
			}
		}
		log, err := p.Reader().Log(ctx, e.seller, bs[0].ID)
		if err != nil || string(log) != "hello\n" {
			t.Errorf("Log = %q, %v", log, err)
		}
		rep, err := p.Reader().Report(ctx, e.seller, bs[0].ID)
		if err != nil || len(rep.ChangedFiles) != 1 || string(rep.Scan) != `{"vulnerabilities":[]}` {
			t.Errorf("Report = %+v, %v", rep, err)
		}
		hist, err := p.Reader().History(ctx, e.seller, e.group.ID)
		if err != nil {
			t.Fatal(err)
		}
		var seq []string
		for _, ev := range hist {
			if ev.BuildID == "" {
				seq = append(seq, string(ev.State))
			}
		}
		// The group went Building → Scanning → Successful.
		if strings.Join(seq, ",") != "Building,Scanning,Successful" {
			t.Errorf("group history %v, want Building,Scanning,Successful", seq)
		}
		for _, s := range []pipeline.State{pipeline.Building, pipeline.Scanning, pipeline.Successful} {
			found := false
			for _, ev := range hist {
				found = found || (ev.BuildID == bs[0].ID && ev.State == s && ev.Reason != "" && !ev.At.IsZero())
			}
			if !found {
				t.Errorf("history has no %s entry with a reason for build %s: %+v", s, bs[0].ID, hist)
			}
		}
		// Submitting again once everything ended starts a new submission.
		again, err := p.Submit(ctx, e.seller, e.group.ID)
		if err != nil || again[0].Submission != 2 {
			t.Fatalf("resubmit after the end: %+v, %v", again, err)
		}
		waitEnded(t, p, e.seller, e.group.ID, 20*time.Second)
	})
}

func TestIssuesFoundAndInvestigations(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seed(t, db, t.TempDir())
		var calls counter
		builder := builderFunc(func(ctx context.Context, r pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
			n := calls.inc(r.OSName)
			switch {
			case r.OSName == "debian-12":
				return &pipeline.BuildOutcome{Log: []byte("installing\x00\xff\n"), Findings: []pipeline.Finding{
					{Rule: "I4", Message: "installer exited with status 2"},
					{Rule: "I2", Message: "the installer tried to connect to the network", Detail: "deb.example.com:443"},
				}}, nil
			case n == 1:
				return nil, errors.New("overlay mount failed")
			}
			return okBuilder(ctx, r)
		})
		p := start(t, db, testConfig(t, e, builder, okScanner))
		if _, err := p.Submit(ctx, e.seller, e.group.ID); err != nil {
			t.Fatal(err)
		}
		bs := byOS(waitEnded(t, p, e.seller, e.group.ID, 20*time.Second))
		deb, ubu := bs["debian-12"], bs["ubuntu-24"]
		if deb.State != pipeline.IssuesFound || !strings.Contains(deb.Troubleshooting, "I4: installer exited with status 2") ||
			!strings.Contains(deb.Troubleshooting, "deb.example.com:443") || !strings.Contains(deb.Troubleshooting, "exit with status 0") ||
			!strings.Contains(deb.Troubleshooting, "pib builds log "+deb.ID) || len(deb.Findings) != 2 {
			t.Errorf("debian build: state %q, troubleshooting:\n%s", deb.State, deb.Troubleshooting)
		}
		if log, _ := p.Reader().Log(ctx, e.seller, deb.ID); string(log) != "installing\ufffd\n" {
			t.Errorf("log %q: want NUL removed and invalid UTF-8 replaced", log)
		}
		if ubu.State != pipeline.Investigating || strings.Contains(ubu.Troubleshooting, "overlay") {
			t.Errorf("ubuntu build: %q %q; want Investigating without internals in the seller's text", ubu.State, ubu.Troubleshooting)
		}
		if got := pipeline.GroupState([]*pipeline.Build{deb, ubu}); got != pipeline.Investigating {
			t.Errorf("group %q, want Investigating", got)
		}
		inv, err := p.Reader().Investigations(ctx)
		if err != nil || len(inv) != 1 || inv[0].BuildID != ubu.ID || !strings.Contains(inv[0].Reason, "overlay mount failed") ||
			inv[0].Overdue || inv[0].GroupName != e.group.Name {
			t.Fatalf("Investigations = %+v, %v", inv, err)
		}
		// Only an investigated build can be retried or resolved.
		if _, err := p.Retry(ctx, deb.ID); !errors.Is(err, pipeline.ErrNotInvestigating) || !errors.Is(err, store.ErrConflict) {
			t.Errorf("Retry of an Issues found build: %v", err)
		}
		if _, err := p.Retry(ctx, "b-0000000000000000"); !errors.Is(err, pipeline.ErrNotFound) {
			t.Errorf("Retry of a missing build: %v", err)
		}
		if _, err := p.Retry(ctx, ubu.ID); err != nil {
			t.Fatal(err)
		}
		bs = byOS(waitEnded(t, p, e.seller, e.group.ID, 20*time.Second))
		if bs["ubuntu-24"].State != pipeline.Successful || bs["ubuntu-24"].Troubleshooting != "" {
			t.Fatalf("after retry: %+v", bs["ubuntu-24"])
		}
		if inv, _ := p.Reader().Investigations(ctx); len(inv) != 0 {
			t.Errorf("investigation still open after retry: %+v", inv)
		}
		if got := pipeline.GroupState([]*pipeline.Build{bs["debian-12"], bs["ubuntu-24"]}); got != pipeline.GroupIssuesFound {
			t.Errorf("group %q, want Issues Found", got)
		}
	})
}

func TestScanOutcomes(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seed(t, db, t.TempDir())
		scanner := scannerFunc(func(ctx context.Context, id string) (*pipeline.ScanOutcome, error) {
			if strings.HasSuffix(id, "debian-12") {
				return &pipeline.ScanOutcome{Passed: false, Summary: "1 fixable critical vulnerability",
					Violations: []pipeline.Finding{{Rule: "S2", Message: "openssl 3.0.1 has CVE-2099-0001 (Critical), fixed in 3.0.2"}}}, nil
			}
			panic("scanner crashed")
		})
		p := start(t, db, testConfig(t, e, okBuilder, scanner))
		if _, err := p.Submit(ctx, e.seller, e.group.ID); err != nil {
			t.Fatal(err)
		}
		bs := byOS(waitEnded(t, p, e.seller, e.group.ID, 20*time.Second))
		deb, ubu := bs["debian-12"], bs["ubuntu-24"]
		if deb.State != pipeline.IssuesFound || !strings.Contains(deb.Troubleshooting, "CVE-2099-0001") || !strings.Contains(deb.Troubleshooting, "1 fixable critical") {
			t.Errorf("debian: %q\n%s", deb.State, deb.Troubleshooting)
		}
		if ubu.State != pipeline.Investigating {
			t.Errorf("ubuntu after a scanner panic: %q, want Investigating", ubu.State)
		}
		inv, _ := p.Reader().Investigations(ctx)
		if len(inv) != 1 || !strings.Contains(inv[0].Reason, "panic: scanner crashed") {
			t.Fatalf("investigations %+v", inv)
		}
		// Seen eight days later, the investigation is overdue (> 4 business
		// days); the read side needs no job queue.
		later := pipeline.NewReader(db, e.groups, func() time.Time { return time.Now().AddDate(0, 0, 8) })
		if inv, err := later.Investigations(ctx); err != nil || len(inv) != 1 || !inv[0].Overdue {
			t.Errorf("eight days later: %+v, %v; want overdue", inv, err)
		}
		if _, err := p.Resolve(ctx, ubu.ID, "  "); !errors.Is(err, pipeline.ErrInvalid) {
			t.Errorf("Resolve without a note: %v", err)
		}
		b, err := p.Resolve(ctx, ubu.ID, "the scanner's database was corrupt; fixed, please resubmit")
		if err != nil {
			t.Fatal(err)
		}
		if b.State != pipeline.IssuesFound || !strings.Contains(b.Troubleshooting, "database was corrupt") {
			t.Errorf("resolved build %+v", b)
		}
		if inv, _ := p.Reader().Investigations(ctx); len(inv) != 0 {
			t.Errorf("investigation still open: %+v", inv)
		}
		if _, err := p.Resolve(ctx, ubu.ID, "again"); !errors.Is(err, pipeline.ErrNotInvestigating) {
			t.Errorf("second Resolve: %v", err)
		}
		hist, _ := p.Reader().History(ctx, e.seller, e.group.ID)
		var last pipeline.Event
		for _, ev := range hist {
			if ev.BuildID == ubu.ID {
				last = ev
			}
		}
		if !strings.Contains(last.Reason, "resolved by an operator: the scanner's database") {
			t.Errorf("last history entry %+v", last)
		}
	})
}

func TestSubmitRefusals(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seed(t, db, t.TempDir())
		release := make(chan struct{})
		var once sync.Once
		builder := builderFunc(func(ctx context.Context, r pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return okBuilder(ctx, r)
		})
		p := start(t, db, testConfig(t, e, builder, okScanner))
		defer once.Do(func() { close(release) })
		bs, err := p.Submit(ctx, e.seller, e.group.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Submit(ctx, e.seller, e.group.ID); !errors.Is(err, pipeline.ErrInProgress) || !errors.Is(err, store.ErrConflict) ||
			!strings.Contains(err.Error(), "still running") {
			t.Errorf("resubmit while running: %v", err)
		}
		// Another account's IDs look exactly like missing ones.
		if _, err := p.Submit(ctx, e.other, e.group.ID); !errors.Is(err, pipeline.ErrNotFound) {
			t.Errorf("foreign Submit: %v", err)
		}
		if _, err := p.Reader().Builds(ctx, e.other, e.group.ID); !errors.Is(err, pipeline.ErrNotFound) {
			t.Errorf("foreign Builds: %v", err)
		}
		if _, err := p.Reader().History(ctx, e.other, e.group.Name); !errors.Is(err, pipeline.ErrNotFound) {
			t.Errorf("foreign History: %v", err)
		}
		for _, f := range []func(context.Context, string, string) error{
			func(ctx context.Context, o, id string) error { _, err := p.Reader().Build(ctx, o, id); return err },
			func(ctx context.Context, o, id string) error { _, err := p.Reader().Log(ctx, o, id); return err },
			func(ctx context.Context, o, id string) error { _, err := p.Reader().Report(ctx, o, id); return err },
		} {
			foreign, missing := f(ctx, e.other, bs[0].ID), f(ctx, e.seller, "b-ffffffffffffffff")
			if !errors.Is(foreign, pipeline.ErrNotFound) || !errors.Is(missing, pipeline.ErrNotFound) ||
				strings.Replace(foreign.Error(), bs[0].ID, "X", 1) != strings.Replace(missing.Error(), "b-ffffffffffffffff", "X", 1) {
				t.Errorf("foreign %v / missing %v: want the same not found", foreign, missing)
			}
		}
		latest, err := p.Reader().LatestBuilds(ctx, e.seller, []string{e.group.ID})
		if err != nil || len(latest[e.group.ID]) != 2 {
			t.Errorf("LatestBuilds = %v, %v", latest, err)
		}
		if l, _ := p.Reader().LatestBuilds(ctx, e.other, []string{e.group.ID}); len(l) != 0 {
			t.Errorf("LatestBuilds of another account = %v", l)
		}
		once.Do(func() { close(release) })
		waitEnded(t, p, e.seller, e.group.ID, 20*time.Second)
	})
}
