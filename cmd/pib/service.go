package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/sandbox"
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
	db, bs, err := g.openStores(ctx)
	if err != nil {
		return nil, err
	}
	is := images.NewStore(db, bs, filepath.Join(g.dataDir, "cache"))
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
	p, err := pipeline.New(ctx, db, pipeline.Config{
		Builder:      testbuild.NewBuilder(is, g.dataDir, o.limits, o.ids),
		Scanner:      testbuild.NewScanner(is, scan.New(vulndb.New(db), scan.Options{Policy: policy, ToolVersion: version})),
		Groups:       gs,
		Packages:     ps,
		OSVersions:   oses,
		Webhooks:     hooks,
		Workers:      o.workers,
		PollInterval: o.pollInterval,
		WorkDir:      filepath.Join(g.dataDir, "staging"),
		BuildTimeout: o.buildTimeout,
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
		Catalog: cat,
	}}
	svc.deps.Subscriptions, svc.deps.PrivateBuilds = buyerServices(db, svc.deps, o.buyerBuildLimit)
	return svc, nil
}
