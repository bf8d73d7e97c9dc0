package monitor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/inventories"
	"github.com/pib-dev/pib/internal/monitor"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/vulndb"
	"github.com/pib-dev/pib/internal/webhook"
)

func quiet() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func deb(name, version string) scan.Package {
	return scan.Package{Name: name, Version: version, SourceName: name, SourceVersion: version, Ecosystem: "Debian:12", Type: "deb"}
}

// world is a seller's group built on two OS versions by a pipeline whose
// scanner keeps each image's inventory, as pib's does, and a monitor
// registered with the pipeline.
type world struct {
	db       *store.DB
	vdb      *vulndb.DB
	invs     *inventories.Store
	pipeline *pipeline.Pipeline
	monitor  *monitor.Monitor
	seller   string
	group    *groups.Group
	hooks    *hookServer
	builds   map[string]*pipeline.Build // by OS version
}

// imagesByOS are the images the test builds make; the ubuntu one is
// scanned as before inventories were kept (none is kept).
var imagesByOS = map[string]string{"debian-12": "img-0000000000000000a", "ubuntu-24": "img-0000000000000000b"}

var inventoryOf = map[string]*scan.Inventory{
	"img-0000000000000000a": {OS: scan.OS{ID: "debian", Version: "12", Ecosystem: "Debian:12"},
		Packages: []scan.Package{deb("foo", "1.0-1"), deb("bar", "1.5-1"), deb("baz", "1.0-1"), deb("libqux", "2.0-1")}},
}

type builderFunc func(context.Context, pipeline.BuildRequest) (*pipeline.BuildOutcome, error)

func (f builderFunc) Build(ctx context.Context, r pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
	return f(ctx, r)
}

type scannerFunc func(context.Context, string) (*pipeline.ScanOutcome, error)

func (f scannerFunc) Scan(ctx context.Context, id string) (*pipeline.ScanOutcome, error) {
	return f(ctx, id)
}

func newWorld(t *testing.T, db *store.DB, cfg monitor.Config) *world {
	t.Helper()
	ctx := context.Background()
	bs, err := blobs.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w := &world{db: db, vdb: vulndb.New(db), invs: inventories.New(db, bs), hooks: &hookServer{}}
	if _, err := w.vdb.Import(ctx, "testdata/osv-1"); err != nil {
		t.Fatal(err)
	}
	as := accounts.NewStore(db)
	seller, _, err := as.Create(ctx, "seller", accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}
	w.seller = seller.ID
	ps := packages.NewStore(db, bs)
	oses := osversions.NewStore(db)
	gs := groups.NewStore(db, ps, oses)
	for i, name := range []string{"debian-12", "ubuntu-24"} {
		if _, err := oses.Add(ctx, name, "linux", fmt.Sprintf("img-%017x", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	inst, err := ps.Upload(ctx, w.seller, "install.sh", strings.NewReader("#!/bin/sh\necho hello\n"))
	if err != nil {
		t.Fatal(err)
	}
	w.group, err = gs.Create(ctx, w.seller, groups.Spec{Name: "MyApp1_0Linux1", Platform: "linux",
		OSVersions: []string{"debian-12", "ubuntu-24"}, PackageIDs: []string{inst.ID}, InstallerID: inst.ID})
	if err != nil {
		t.Fatal(err)
	}

	builder := builderFunc(func(ctx context.Context, r pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
		id := imagesByOS[r.OSName]
		_, err := db.ExecContext(ctx, `INSERT INTO images (id, owner, os, distro_id, distro_version, architecture, manifest_digest, config_digest, size, created_at)
			VALUES ($1, $2, 'linux', 'debian', '12', 'amd64', 'sha256:00', 'sha256:00', 1, $3)`, id, r.Owner, time.Now().UTC())
		return &pipeline.BuildOutcome{ImageID: id, Report: json.RawMessage(`{}`)}, err
	})
	policy := scan.DefaultPolicy()
	// The scanner keeps the inventory and reports what matching finds with
	// the data of the day, as pib's scan does.
	scanner := scannerFunc(func(ctx context.Context, id string) (*pipeline.ScanOutcome, error) {
		inv := inventoryOf[id]
		if inv == nil {
			inv = &scan.Inventory{}
		} else if err := w.invs.Put(ctx, id, inv, []byte("state")); err != nil {
			return nil, err
		}
		sum, err := w.vdb.Summary(ctx)
		if err != nil {
			return nil, err
		}
		rep := scan.Report{ImageID: id, OS: inv.OS, Packages: len(inv.Packages), VulnDB: sum, Policy: []scan.CheckResult{{Rule: "S3.1", Passed: true, Message: "ok"}}}
		err = scan.Rematch(ctx, w.vdb, func(fn func(string, *scan.Inventory) error) error { return fn(id, inv) },
			func(_ string, fs []scan.Finding, _ []string) error {
				rep.Vulnerabilities = fs
				rep.Status, rep.Violations = policy.Verdict(fs, rep.Policy, time.Now())
				return nil
			})
		if err != nil {
			return nil, err
		}
		raw, err := json.Marshal(rep)
		return &pipeline.ScanOutcome{Passed: rep.Status == scan.Successful, Report: raw}, err
	})

	cfg.Inventories, cfg.VulnDB, cfg.Logger = w.invs, w.vdb, quiet()
	w.monitor = monitor.New(db, cfg)
	hooks := webhook.New(db, webhook.Config{Backoff: 100 * time.Millisecond, Timeout: 2 * time.Second, AllowPrivate: true, Logger: quiet()})
	p, err := pipeline.New(ctx, db, pipeline.Config{
		Builder: builder, Scanner: scanner, Groups: gs, Packages: ps, OSVersions: oses, Webhooks: hooks,
		Jobs: []pipeline.Jobs{w.monitor}, Workers: 2, WorkDir: t.TempDir(), PollInterval: 50 * time.Millisecond, Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	w.pipeline = p
	srv := httptest.NewServer(w.hooks)
	t.Cleanup(srv.Close)
	if w.hooks.secret, err = hooks.Set(ctx, w.seller, srv.URL); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p.Stop(sctx)
	})
	if _, err := p.Submit(ctx, w.seller, w.group.ID); err != nil {
		t.Fatal(err)
	}
	w.builds = map[string]*pipeline.Build{}
	waitUntil(t, "the builds end", func() bool {
		bs, err := p.Reader().Builds(ctx, w.seller, w.group.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if !b.State.Ended() {
				return false
			}
			w.builds[b.OSName] = b
		}
		return len(bs) == 2
	})
	for _, b := range w.builds {
		if b.State != pipeline.Successful {
			t.Fatalf("build on %s is %s (%s); want Successful", b.OSName, b.State, b.Troubleshooting)
		}
	}
	// The watch runs once at start: let it, so that it does not race the
	// test's own runs.
	waitUntil(t, "the watch's first run", func() bool {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM monitor_runs`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	return w
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hookServer records the vulnerabilities.changed deliveries it gets,
// signature checked.
type hookServer struct {
	mu     sync.Mutex
	secret string
	events []monitor.Event
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !webhook.VerifySignature(h.secret, body, r.Header.Get(webhook.SignatureHeader)) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev monitor.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if ev.Event == pipeline.EventVulnerabilities {
		h.events = append(h.events, ev)
	}
}

func (h *hookServer) got() []monitor.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]monitor.Event(nil), h.events...)
}

func date(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestRematchAnnouncesChanges: new vulnerability data (a Critical
// vulnerability added, a Medium one withdrawn) reaches the owner of the
// latest Successful build's image as one vulnerabilities.changed event —
// a signed webhook delivery and a history entry — and the status view's
// verdict names the data dates and the verdict the new data gives. The
// image without a kept inventory is counted as not monitored. (S5)
func TestRematchAnnouncesChanges(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		w := newWorld(t, db, monitor.Config{})
		deb12 := w.builds["debian-12"]

		// With the data the scan used, nothing changed.
		res, err := w.monitor.Run(ctx, "", "test: baseline")
		if err != nil {
			t.Fatal(err)
		}
		if res.Images != 1 || res.Changed != 0 || res.NotMonitored != 1 || res.Hint == "" || !res.Data.Date.Equal(date("2025-02-12")) {
			t.Fatalf("baseline run = %+v; want 1 image, 0 changed, 1 not monitored with a hint, data of 2025-02-12", res)
		}
		if changed, err := w.monitor.DataChanged(ctx); err != nil || changed {
			t.Fatalf("DataChanged right after a run = %v, %v; want false", changed, err)
		}

		if _, err := w.vdb.Import(ctx, "testdata/osv-2"); err != nil {
			t.Fatal(err)
		}
		if changed, err := w.monitor.DataChanged(ctx); err != nil || !changed {
			t.Fatalf("DataChanged after an import = %v, %v; want true", changed, err)
		}
		res, err = w.monitor.IfChanged(ctx, "test: import")
		if err != nil {
			t.Fatal(err)
		}
		if res == nil || res.Images != 1 || res.Changed != 1 || !res.Data.Date.Equal(date("2026-11-30")) {
			t.Fatalf("run after the import = %+v; want 1 image changed with data of 2026-11-30", res)
		}

		wantAdded := []monitor.Change{{ID: "CVE-2099-0002", Severity: scan.Critical, Packages: []string{"bar"}, FixedVersion: "2.0-1"}}
		wantWithdrawn := []monitor.Change{{ID: "CVE-2099-0001", Severity: scan.Medium, Packages: []string{"foo"}, FixedVersion: "1.0-2"}}
		waitUntil(t, "the webhook delivery arrives", func() bool { return len(w.hooks.got()) > 0 })
		ev := w.hooks.got()[0]
		want := monitor.Event{DeliveryID: ev.DeliveryID, Event: "vulnerabilities.changed", At: ev.At, ImageID: imagesByOS["debian-12"], Owner: w.seller,
			Build:    &monitor.BuildRef{ID: deb12.ID, GroupID: w.group.ID, GroupName: w.group.Name, OSName: "debian-12"},
			DataDate: date("2026-11-30"), Added: wantAdded, Withdrawn: wantWithdrawn, ScanStatus: scan.Successful, Status: scan.IssuesFound}
		if diff := cmp.Diff(want, ev); diff != "" {
			t.Errorf("webhook event (-want +got):\n%s", diff)
		}

		hist, err := w.pipeline.Reader().History(ctx, w.seller, w.group.ID)
		if err != nil {
			t.Fatal(err)
		}
		var entry *pipeline.Event
		for i := range hist {
			if strings.HasPrefix(hist[i].Reason, "vulnerabilities.changed") {
				entry = &hist[i]
			}
		}
		if entry == nil {
			t.Fatalf("no vulnerabilities.changed entry in the group's history: %+v", hist)
		}
		for _, s := range []string{"2026-11-30", "1 added: CVE-2099-0002 (Critical, bar, fixed in 2.0-1)", "1 withdrawn: CVE-2099-0001 (Medium, foo, fixed in 1.0-2)", "would now be issues_found"} {
			if !strings.Contains(entry.Reason, s) {
				t.Errorf("history entry %q does not say %q", entry.Reason, s)
			}
		}
		if entry.BuildID != deb12.ID || entry.State != pipeline.Successful {
			t.Errorf("history entry is for build %s at %s; want %s at Successful", entry.BuildID, entry.State, deb12.ID)
		}

		verdicts, err := w.monitor.Verdicts(ctx, []string{imagesByOS["debian-12"], imagesByOS["ubuntu-24"]})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := verdicts[imagesByOS["ubuntu-24"]]; ok {
			t.Errorf("the image without inventory has a verdict; want none (not monitored)")
		}
		v := verdicts[imagesByOS["debian-12"]]
		if v == nil {
			t.Fatal("no verdict for the monitored image")
		}
		scanDay := date("2025-02-12")
		wantV := &monitor.Verdict{ScanStatus: scan.Successful, ScanDataDate: &scanDay, DataDate: date("2026-11-30"), Status: scan.IssuesFound,
			Added: wantAdded, Withdrawn: wantWithdrawn, Outdated: true, CheckedAt: v.CheckedAt,
			Note: "verdict made with data of 2025-02-12; newer data (2026-11-30) finds 1 more vulnerability: CVE-2099-0002 (Critical); no longer reports 1: CVE-2099-0001 (Medium); the verdict would be issues_found"}
		if diff := cmp.Diff(wantV, v); diff != "" {
			t.Errorf("verdict (-want +got):\n%s", diff)
		}

		// A second run with the same data announces nothing again.
		res, err = w.monitor.Run(ctx, imagesByOS["debian-12"], "test: again")
		if err != nil {
			t.Fatal(err)
		}
		if res.Images != 1 || res.Changed != 0 {
			t.Errorf("second run = %+v; want 1 image, none changed", res)
		}
	})
}

// TestRunErrors: one image that is not monitored, or does not exist, is
// not found; a process without the pipeline's workers cannot announce.
func TestRunErrors(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	ctx := context.Background()
	w := newWorld(t, db, monitor.Config{})
	for _, tc := range []struct {
		name, image string
	}{
		{"missing image", "img-00000000000000fff"},
		{"base image, not one that matters", "img-00000000000000001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := w.monitor.Run(ctx, tc.image, "test"); !errors.Is(err, monitor.ErrNotMonitored) {
				t.Errorf("Run(%s) = %v; want ErrNotMonitored", tc.image, err)
			}
		})
	}
	lone := monitor.New(db, monitor.Config{Inventories: w.invs, VulnDB: w.vdb})
	if _, err := lone.Run(ctx, "", "test"); !errors.Is(err, monitor.ErrNoAnnouncer) {
		t.Errorf("Run without an announcer = %v; want ErrNoAnnouncer", err)
	}
}

// TestWatchJob: the periodic watch re-matches by itself once the data
// changes (an import by another process: pib vulndb import).
func TestWatchJob(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	ctx := context.Background()
	w := newWorld(t, db, monitor.Config{WatchInterval: 200 * time.Millisecond})
	if _, err := w.vdb.Import(ctx, "testdata/osv-2"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the watch announces the change", func() bool { return len(w.hooks.got()) > 0 })
	if got := w.hooks.got()[0].Added; len(got) != 1 || got[0].ID != "CVE-2099-0002" {
		t.Errorf("watch announced %+v; want CVE-2099-0002 added", got)
	}
}

// TestRefreshJob: with a refresh function and an interval, the periodic
// refresh fetches new data when the source publishes it and the change
// is announced without anyone asking.
func TestRefreshJob(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	published := make(chan struct{})
	var vdb atomic.Pointer[vulndb.DB]
	var refreshes atomic.Int32
	refresh := func(ctx context.Context) error {
		refreshes.Add(1)
		select {
		case <-published:
			_, err := vdb.Load().Import(ctx, "testdata/osv-2")
			return err
		default:
			return nil // the source has nothing new (a 304)
		}
	}
	w := newWorld(t, db, monitor.Config{Refresh: refresh, RefreshInterval: 200 * time.Millisecond})
	vdb.Store(w.vdb)
	close(published)
	waitUntil(t, "the refresh announces the change", func() bool { return len(w.hooks.got()) > 0 })
	if got := w.hooks.got()[0].Added; len(got) != 1 || got[0].ID != "CVE-2099-0002" {
		t.Errorf("refresh announced %+v; want CVE-2099-0002 added", got)
	}
	if refreshes.Load() < 1 {
		t.Error("the refresh function was never called")
	}
}
