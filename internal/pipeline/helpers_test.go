package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/webhook"
)

// env is a database with one seller, two OS versions and one package group.
type env struct {
	db       *store.DB
	blobDir  string
	groups   *groups.Store
	packages *packages.Store
	oses     *osversions.Store
	seller   string
	other    string // another seller
	group    *groups.Group
}

// seedless returns the stores over db without adding anything.
func seedless(db *store.DB, blobDir string) *env {
	bs, err := blobs.NewDir(blobDir)
	if err != nil {
		panic(err)
	}
	e := &env{db: db, blobDir: blobDir}
	e.packages = packages.NewStore(db, bs)
	e.oses = osversions.NewStore(db)
	e.groups = groups.NewStore(db, e.packages, e.oses)
	return e
}

func seed(t testing.TB, db *store.DB, blobDir string) *env {
	t.Helper()
	ctx := context.Background()
	e := seedless(db, blobDir)
	as := accounts.NewStore(db)
	seller, _, err := as.Create(ctx, "seller", accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := as.Create(ctx, "other", accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}
	e.seller, e.other = seller.ID, other.ID
	for i, name := range []string{"debian-12", "ubuntu-24"} {
		if _, err := e.oses.Add(ctx, name, "linux", fmt.Sprintf("img-%017x", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	inst, err := e.packages.Upload(ctx, e.seller, "install.sh", strings.NewReader("#!/bin/sh\necho hello\n"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := e.packages.Upload(ctx, e.seller, "data.txt", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	e.group, err = e.groups.Create(ctx, e.seller, groups.Spec{Name: "MyApp1_0Linux1", Platform: "linux",
		OSVersions: []string{"debian-12", "ubuntu-24"}, PackageIDs: []string{data.ID}, InstallerID: inst.ID})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// builderFunc and scannerFunc adapt functions to the interfaces.
type builderFunc func(context.Context, pipeline.BuildRequest) (*pipeline.BuildOutcome, error)

func (f builderFunc) Build(ctx context.Context, r pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
	return f(ctx, r)
}

type scannerFunc func(context.Context, string) (*pipeline.ScanOutcome, error)

func (f scannerFunc) Scan(ctx context.Context, id string) (*pipeline.ScanOutcome, error) {
	return f(ctx, id)
}

// okBuilder checks the staged packages and "builds" an image.
var okBuilder = builderFunc(func(ctx context.Context, r pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
	b, err := os.ReadFile(r.Installer)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(string(b), "echo hello") {
		return nil, fmt.Errorf("installer content %q", b)
	}
	if _, err := os.Stat(r.PackageDir + "/data.txt"); err != nil {
		return nil, err
	}
	return &pipeline.BuildOutcome{ImageID: "img-new-" + r.OSName, Log: []byte("hello\n"), ChangedFiles: []string{"A /opt/myapp"},
		Report: json.RawMessage(`{"ok":true}`)}, nil
})

var okScanner = scannerFunc(func(ctx context.Context, id string) (*pipeline.ScanOutcome, error) {
	return &pipeline.ScanOutcome{Passed: true, Report: json.RawMessage(`{"vulnerabilities":[]}`)}, nil
})

// testConfig is a config with short intervals for tests.
func testConfig(t testing.TB, e *env, b pipeline.Builder, s pipeline.Scanner) pipeline.Config {
	cfg := baseConfig(e, b, s)
	cfg.WorkDir = t.TempDir()
	return cfg
}

func baseConfig(e *env, b pipeline.Builder, s pipeline.Scanner) pipeline.Config {
	return pipeline.Config{
		Builder: b, Scanner: s, Groups: e.groups, Packages: e.packages, OSVersions: e.oses,
		Webhooks:          webhook.New(e.db, webhookConfig()),
		Workers:           2,
		HeartbeatInterval: 100 * time.Millisecond, StaleAfter: 1500 * time.Millisecond, ReapInterval: 300 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
		Logger:       quietLogger(),
	}
}

// webhookConfig has short delays; test endpoints listen on loopback.
func webhookConfig() webhook.Config {
	return webhook.Config{Backoff: 100 * time.Millisecond, Timeout: 2 * time.Second, AllowPrivate: true, Logger: quietLogger()}
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func start(t testing.TB, db *store.DB, cfg pipeline.Config) *pipeline.Pipeline {
	t.Helper()
	ctx := context.Background()
	p, err := pipeline.New(ctx, db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { stop(t, p) }) })
	return p
}

func stop(t testing.TB, p *pipeline.Pipeline) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// waitEnded waits until every build of the group's latest submission ended.
func waitEnded(t testing.TB, p *pipeline.Pipeline, owner, group string, within time.Duration) []*pipeline.Build {
	t.Helper()
	return waitFor(t, p, owner, group, within, func(bs []*pipeline.Build) bool {
		for _, b := range bs {
			if !b.State.Ended() {
				return false
			}
		}
		return len(bs) > 0
	})
}

func waitFor(t testing.TB, p *pipeline.Pipeline, owner, group string, within time.Duration, ok func([]*pipeline.Build) bool) []*pipeline.Build {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		bs, err := p.Reader().Builds(context.Background(), owner, group)
		if err != nil {
			t.Fatal(err)
		}
		if ok(bs) {
			return bs
		}
		if time.Now().After(deadline) {
			for _, b := range bs {
				t.Logf("build %s on %s: %s %s", b.ID, b.OSName, b.State, b.Troubleshooting)
			}
			t.Fatalf("builds did not reach the wanted state within %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func byOS(bs []*pipeline.Build) map[string]*pipeline.Build {
	m := map[string]*pipeline.Build{}
	for _, b := range bs {
		m[b.OSName] = b
	}
	return m
}

// counter counts calls per OS.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) inc(os string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[os]++
	return c.n[os]
}
