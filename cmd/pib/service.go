//go:build linux

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/inventories"
	"github.com/pib-dev/pib/internal/monitor"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/sboms"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/testbuild"
	"github.com/pib-dev/pib/internal/vulndb"
	"github.com/pib-dev/pib/internal/webhook"
)

// serviceOptions are what pib serve and pib worker share.
type serviceOptions struct {
	workers      int
	pollInterval time.Duration
	buildTimeout time.Duration
	limits       sandbox.Limits
	ids          sandbox.IDs
	policyFile   string
	maxUpload    int64
	// webhookAllowPrivate lets webhooks reach special-purpose addresses
	// (off: a seller's URL must not probe the service's network, C6).
	webhookAllowPrivate bool
	// buyerBuildLimit is how many private image builds an account may
	// have in progress at once (C4).
	buyerBuildLimit int
	// vulndbRefresh is how often monitoring downloads new vulnerability
	// data from vulndbBaseURL (S5); 0: never (no network assumed).
	vulndbRefresh time.Duration
	vulndbBaseURL string
	// sourceDateEpoch clamps the file times of every build's layer.
	sourceDateEpoch epochFlag
}

// epochFlag is --source-date-epoch: the latest modification time a file a
// build adds or changes keeps in the image (later ones are clamped to it),
// in Unix seconds as the SOURCE_DATE_EPOCH convention of
// reproducible-builds.org spells it. Empty (the default) means each
// build's base image's creation time: fixed by the base image, so builds
// are reproducible without any setting (see images.Store.Epoch for why).
// Its default comes from the environment variable SOURCE_DATE_EPOCH,
// checked when the command runs.
type epochFlag struct{ raw string }

func newEpochFlag() epochFlag {
	return epochFlag{raw: strings.TrimSpace(os.Getenv("SOURCE_DATE_EPOCH"))}
}

func (e *epochFlag) String() string { return e.raw }
func (e *epochFlag) Type() string   { return "seconds" }
func (e *epochFlag) Set(s string) error {
	old := e.raw
	e.raw = strings.TrimSpace(s)
	if _, err := e.value(); err != nil {
		e.raw = old
		return err
	}
	return nil
}

// value is the clamp, nil when unset.
func (e *epochFlag) value() (*time.Time, error) {
	if e.raw == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(e.raw, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("source date epoch %q (--source-date-epoch or SOURCE_DATE_EPOCH): want whole seconds since 1970-01-01 UTC, e.g. 1700000000, or nothing for the base image's creation time", e.raw)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

// addEpochFlag registers --source-date-epoch on f.
func addEpochFlag(f *pflag.FlagSet, e *epochFlag) {
	*e = newEpochFlag()
	f.Var(e, "source-date-epoch", "latest file time in a build's layer, Unix seconds; later times are clamped to it so a deterministic installer gives the same layer every time (env SOURCE_DATE_EPOCH; default: the base image's creation time)")
}

// service is everything pib serve and pib worker run, wired together:
// the one place where the stores, the sandbox, the scanner and the
// pipeline meet.
type service struct {
	db       *store.DB
	pipeline *pipeline.Pipeline
	deps     api.Deps
}

func (g *globals) openService(ctx context.Context, o serviceOptions) (*service, error) {
	epoch, err := o.sourceDateEpoch.value()
	if err != nil {
		return nil, err
	}
	db, bs, err := g.openStores(ctx)
	if err != nil {
		return nil, err
	}
	is := images.NewStore(db, bs, filepath.Join(g.dataDir, "cache"))
	// What a killed pib left mounted while it read an image.
	if err := is.UnmountStale(); err != nil {
		slog.Warn("could not unmount what a killed pib left mounted; unmount it by hand (see the error)", "err", err)
	}
	ps := packages.NewStore(db, bs)
	if o.maxUpload > 0 {
		ps.MaxSize = o.maxUpload
	}
	oses := osversions.NewStore(db)
	gs := groups.NewStore(db, ps, oses)
	policy := scan.DefaultPolicy()
	if o.policyFile != "" {
		if policy, err = scan.LoadPolicy(o.policyFile); err != nil {
			db.Close()
			return nil, err
		}
	}
	hooks := webhook.New(db, webhook.Config{AllowPrivate: o.webhookAllowPrivate})
	vdb := vulndb.New(db)
	invs := inventories.New(db, bs)
	mon := monitor.New(db, monitor.Config{Inventories: invs, VulnDB: vdb, Policy: policy,
		Refresh: g.vulndbRefresh(vdb, is, o.vulndbBaseURL), RefreshInterval: o.vulndbRefresh})
	builder := testbuild.NewBuilder(is, g.dataDir, o.limits, o.ids)
	builder.SetBootTests(oses) // V1–V3, for the OS versions an operator turned it on for
	// Backend vm (issue 18): this very binary is the guest's `pib agent`,
	// unless PIB_VM_AGENT names another linux/amd64 pib (a static build
	// for guests whose C library differs from the host's, or a test's).
	if exe := os.Getenv("PIB_VM_AGENT"); exe != "" {
		builder.SetVM(oses, exe)
	} else if exe, err := os.Executable(); err == nil {
		builder.SetVM(oses, exe)
	} else {
		slog.Warn("vm builds are off: pib cannot find its own binary to put into build machines; set PIB_VM_AGENT", "err", err)
	}
	scanner := testbuild.NewScanner(is, scan.New(vdb, scan.Options{Policy: policy, ToolVersion: version}), invs, filepath.Join(g.dataDir, "cache", "scan"))
	p, err := pipeline.New(ctx, db, pipeline.Config{
		Builder:      builder,
		Scanner:      scanner,
		Jobs:         []pipeline.Jobs{mon, &testbuild.BaseScans{Scanner: scanner, OSVersions: oses}},
		Groups:       gs,
		Packages:     ps,
		OSVersions:   oses,
		Webhooks:     hooks,
		Workers:      o.workers,
		PollInterval: o.pollInterval,
		WorkDir:      filepath.Join(g.dataDir, "staging"),
		BuildTimeout: o.buildTimeout,
		// Every build's layer has its times clamped (reproducible layers).
		SourceDateEpoch: epoch,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	// The catalog's decisions reach the seller's webhook through the
	// pipeline's job queue, queued in the deciding transaction.
	cat := catalog.New(db, catalog.Config{Groups: gs, Builds: p.Reader(), Decided: api.DecisionWebhook(p)})
	svc := &service{db: db, pipeline: p, deps: api.Deps{
		Accounts: accounts.NewStore(db), Packages: ps, Groups: gs, OSVersions: oses, Images: is, Pipeline: p, Builds: p.Reader(), Webhooks: hooks, Audit: audit.New(db),
		Catalog: cat, Monitor: mon, SBOMs: sboms.New(db, is.Blobs()),
	}}
	svc.deps.Subscriptions, svc.deps.PrivateBuilds = buyerServices(db, svc.deps, o.buyerBuildLimit)
	return svc, nil
}

// vulndbRefresh is monitoring's refresh (S5): pib vulndb update's
// conditional download of the stored images' ecosystems from baseURL.
func (g *globals) vulndbRefresh(db *vulndb.DB, is *images.Store, baseURL string) func(context.Context) error {
	return func(ctx context.Context) error {
		ecosystems, err := imageEcosystems(ctx, is)
		if err != nil || len(ecosystems) == 0 {
			return err
		}
		_, err = db.Update(ctx, vulndb.UpdateOptions{BaseURL: baseURL, Ecosystems: ecosystems, Dir: filepath.Join(g.dataDir, "vulndb")})
		return err
	}
}
