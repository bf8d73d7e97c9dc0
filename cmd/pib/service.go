package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/layer"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/vulndb"
	"github.com/pib-dev/pib/internal/webhook"
)

// serviceOptions are what pib serve and pib worker share.
type serviceOptions struct {
	workers      int
	buildTimeout time.Duration
	limits       sandbox.Limits
	ids          sandbox.IDs
	policyFile   string
	maxUpload    int64
	// webhookAllowPrivate lets webhooks reach special-purpose addresses
	// (off: a seller's URL must not probe the service's network, C6).
	webhookAllowPrivate bool
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
		Builder:      &sandboxBuilder{images: is, dataDir: g.dataDir, limits: o.limits, ids: o.ids},
		Scanner:      &imageScanner{images: is, scanner: scan.New(vulndb.New(db), scan.Options{Policy: policy, ToolVersion: version})},
		Groups:       gs,
		Packages:     ps,
		OSVersions:   oses,
		Webhooks:     hooks,
		Workers:      o.workers,
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
	return &service{db: db, pipeline: p, deps: api.Deps{
		Accounts: accounts.NewStore(db), Packages: ps, Groups: gs, OSVersions: oses, Images: is, Pipeline: p, Builds: p.Reader(), Webhooks: hooks, Audit: audit.New(db),
		Catalog: cat,
	}}, nil
}

// sandboxBuilder runs the pipeline's test builds in the sandbox, on the
// base image's cached layers, and stores a successful install as a new
// image (pipeline.Builder and pipeline.Cleaner).
type sandboxBuilder struct {
	images  *images.Store
	dataDir string
	limits  sandbox.Limits
	ids     sandbox.IDs
}

func (b *sandboxBuilder) buildDir(id string) string {
	dir, _ := filepath.Abs(filepath.Join(b.dataDir, "builds", id))
	return dir
}

func (b *sandboxBuilder) Build(ctx context.Context, req pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
	base, err := b.images.Get(ctx, req.BaseImageID)
	if err != nil {
		return nil, fmt.Errorf("base image of %s: %w", req.OSName, err)
	}
	var others []string
	ents, err := os.ReadDir(req.PackageDir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if p := filepath.Join(req.PackageDir, e.Name()); p != req.Installer {
			others = append(others, p)
		}
	}
	res, im, err := installOnImage(ctx, b.images, base, b.buildDir(req.BuildID), sandbox.Config{
		Installer: req.Installer,
		Packages:  others,
		Timeout:   req.Timeout,
		Limits:    b.limits,
		IDs:       b.ids,
	}, req.Owner, "pib build "+filepath.Base(req.Installer)+" ("+req.BuildID+")")
	if res != nil {
		defer res.Close()
	}
	if err != nil {
		return nil, err
	}
	out := &pipeline.BuildOutcome{}
	out.Log, _ = os.ReadFile(res.LogPath)
	for _, f := range res.Findings {
		out.Findings = append(out.Findings, pipeline.Finding{Rule: f.Rule, Message: f.Message, Detail: f.Detail})
	}
	for _, f := range res.Changes.Files {
		out.ChangedFiles = append(out.ChangedFiles, fmt.Sprintf("%s /%s (%d bytes)", f.Change, f.Path, f.Size))
	}
	if im != nil {
		out.ImageID = im.ID
	}
	out.Report, _ = json.Marshal(res)
	return out, nil
}

// installOnImage runs one sandboxed install on base in dir (swept first: a
// retried build reuses its directory) and stores a passing result as a new
// image owned by owner. The caller closes the result, which may come with
// an error when storing the image failed.
func installOnImage(ctx context.Context, s *images.Store, base *images.Image, dir string, cfg sandbox.Config, owner, createdBy string) (*sandbox.Result, *images.Image, error) {
	lowers, err := s.LayerDirs(ctx, base)
	if err != nil {
		return nil, nil, fmt.Errorf("unpack the base image's layers: %w", err)
	}
	if err := sandbox.Sweep(dir); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create the build directory: %w", err)
	}
	cfg.LowerDirs, cfg.WorkDir, cfg.LogPath = lowers, dir, filepath.Join(dir, "build.log")
	res, err := sandbox.Run(ctx, cfg)
	if err != nil || !res.Passed() {
		return res, nil, err
	}
	if owner == "" {
		owner = base.Owner
	}
	im, err := s.AddLayer(ctx, base, res.UpperDir, images.AddLayerOptions{Owner: owner, CreatedBy: createdBy, Exclude: sandbox.ExcludePath})
	var special *layer.SpecialFilesError
	if errors.As(err, &special) {
		// The sandbox reports these itself (T2); this is the packer's
		// second look, and the build's failure, not the platform's.
		for _, f := range special.Files {
			res.Findings = append(res.Findings, sandbox.Finding{Rule: "T2",
				Message: "the installer left " + f.String() + " in the image; an image must not ship device nodes, FIFOs or sockets: remove it before the installer exits"})
		}
		return res, nil, nil
	}
	if err != nil {
		return res, nil, fmt.Errorf("store the new image: %w", err)
	}
	return res, im, nil
}

// Cleanup removes what a build whose process died left on this machine.
func (b *sandboxBuilder) Cleanup(ctx context.Context, buildID string) error {
	return sandbox.Sweep(b.buildDir(buildID))
}

// imageScanner scans stored images (pipeline.Scanner).
type imageScanner struct {
	images  *images.Store
	scanner *scan.Scanner
}

func (s *imageScanner) Scan(ctx context.Context, imageID string) (*pipeline.ScanOutcome, error) {
	im, err := s.images.Get(ctx, imageID)
	if err != nil {
		return nil, err
	}
	root, release, err := s.images.Rootfs(ctx, im)
	if err != nil {
		return nil, err
	}
	defer release()
	rep, err := s.scanner.Scan(ctx, root, scan.Image{ID: im.ID})
	if err != nil {
		return nil, err
	}
	out := &pipeline.ScanOutcome{Passed: rep.Status == scan.Successful}
	for _, v := range rep.Violations {
		msg := v.Reason
		if v.Package != "" {
			msg = v.Package + ": " + msg
		}
		out.Violations = append(out.Violations, pipeline.Finding{Rule: v.Rule, Message: msg, Detail: v.ID})
	}
	if !out.Passed {
		out.Summary = fmt.Sprintf("%d policy violation(s) among %d packages scanned: %s", len(rep.Violations), rep.Packages, strings.Join(violationIDs(rep), ", "))
	}
	// S1: the SBOM is kept with the scan, in both formats, as blobs the
	// report names.
	stored := storedScan{Report: rep, SBOMs: map[string]string{}}
	for _, format := range []string{scan.CycloneDXJSON, scan.SPDXJSON} {
		var buf bytes.Buffer
		if err := rep.EncodeSBOM(&buf, format); err != nil {
			return nil, fmt.Errorf("encode the %s SBOM: %w", format, err)
		}
		h, _, err := s.images.Blobs().Put(ctx, &buf, v1.Hash{})
		if err != nil {
			return nil, fmt.Errorf("store the %s SBOM: %w", format, err)
		}
		stored.SBOMs[format] = h.String()
	}
	if out.Report, err = json.Marshal(stored); err != nil {
		return nil, err
	}
	return out, nil
}

// storedScan is the scan report a build keeps: the scanner's report plus
// the digests of its SBOMs in the blob store, by format.
type storedScan struct {
	*scan.Report
	SBOMs map[string]string `json:"sboms"`
}

func violationIDs(rep *scan.Report) []string {
	var ids []string
	for i, v := range rep.Violations {
		if i == 10 {
			ids = append(ids, fmt.Sprintf("… %d more", len(rep.Violations)-10))
			break
		}
		ids = append(ids, v.ID)
	}
	return ids
}
