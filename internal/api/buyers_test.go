package api_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/subscriptions"
	"github.com/pib-dev/pib/internal/webhook"
)

// layerBuilder installs by adding one layer (opt/<installer>) onto the
// base image with the request's owner and tags, as testbuild does after a
// passing sandbox run; it counts its builds and, while gate is open
// (not closed), holds each one.
type layerBuilder struct {
	images *images.Store
	gate   chan struct{}
	mu     sync.Mutex
	builds int
}

func (b *layerBuilder) Build(ctx context.Context, req pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
	b.mu.Lock()
	b.builds++
	b.mu.Unlock()
	select {
	case <-b.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	base, err := b.images.Get(ctx, req.BaseImageID)
	if err != nil {
		return nil, err
	}
	upper := filepath.Join(req.PackageDir, "..", filepath.Base(req.PackageDir)+".upper")
	defer os.RemoveAll(upper)
	if err := os.MkdirAll(filepath.Join(upper, "opt"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(upper, "opt", filepath.Base(req.Installer)), []byte("installed\n"), 0o644); err != nil {
		return nil, err
	}
	im, err := b.images.AddLayer(ctx, base, upper, images.AddLayerOptions{Owner: req.Owner, CreatedBy: "test install", Tags: req.Tags})
	if err != nil {
		return nil, err
	}
	return &pipeline.BuildOutcome{ImageID: im.ID, Log: []byte("installed\n"), ChangedFiles: []string{"/opt/" + filepath.Base(req.Installer) + " (added)"}}, nil
}

func (b *layerBuilder) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.builds
}

// buyersEnv is an API with a pipeline (layerBuilder, passScanner), the
// buyers' services at a limit of one build in progress, a public product
// and a product limited to buyer1, the accounts, and gold images.
type buyersEnv struct {
	*env
	ctx                                  context.Context
	builder                              *layerBuilder
	pipeline                             *pipeline.Pipeline
	cat                                  *catalog.Store
	seller, buyer1, buyer2               string // tokens
	sellerAcc, buyer1Acc, buyer2Acc, ops *accounts.Account
	public, limited                      market
	gold1, gold2, alpine1, sellerGold    string // images: buyer1's debian 12, buyer2's, buyer1's alpine, the seller's debian
	d                                    *api.Deps
}

func newBuyersEnv(t *testing.T, db *store.DB) *buyersEnv {
	ctx := context.Background()
	be := &buyersEnv{ctx: ctx, builder: &layerBuilder{gate: make(chan struct{})}}
	be.env = newEnvWith(t, db, func(d *api.Deps) {
		be.builder.images, be.d = d.Images, d
		wh := webhook.New(db, webhook.Config{Logger: quietLogger()})
		p, err := pipeline.New(ctx, db, pipeline.Config{Builder: be.builder, Scanner: passScanner{}, Groups: d.Groups, Packages: d.Packages,
			OSVersions: d.OSVersions, Webhooks: wh, WorkDir: t.TempDir(), PollInterval: 20 * time.Millisecond, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Stop(context.Background()) })
		d.Pipeline, d.Builds, d.Webhooks = p, p.Reader(), wh
		be.pipeline = p
		be.cat = buyerDeps(db, d, 1)
		if _, err := d.OSVersions.Add(ctx, "debian-12", "linux", mustImage(t, d.Images, "debian-12")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			select {
			case <-be.builder.gate:
			default:
				close(be.builder.gate)
			}
		})
	})
	be.seller, be.buyer1, be.buyer2 = be.account("acme", accounts.Seller), be.account("buyer1", accounts.Buyer), be.account("buyer2", accounts.Buyer)
	be.sellerAcc, be.buyer1Acc, be.buyer2Acc, be.ops = be.whoami(be.seller), be.whoami(be.buyer1), be.whoami(be.buyer2), be.whoami(be.operator)
	return be
}

func mustImage(t *testing.T, is *images.Store, ref string) string {
	t.Helper()
	im, err := is.Get(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return im.ID
}

// create sends a private build request as token's account: the status
// and the error, or the build.
func (be *buyersEnv) create(token string, req privatebuilds.Request) (int, *privatebuilds.PrivateBuild, *problem.Error) {
	be.t.Helper()
	c := client.New(be.url, token)
	pb, err := c.CreatePrivateBuild(be.ctx, req)
	if err == nil {
		return 0, pb, nil
	}
	var pe *problem.Error
	if !errors.As(err, &pe) {
		be.t.Fatalf("create: %v", err)
	}
	return pe.Status, nil, pe
}

// wait waits for build id of token's account to end.
func (be *buyersEnv) wait(token, id string) *privatebuilds.PrivateBuild {
	be.t.Helper()
	ctx, cancel := context.WithTimeout(be.ctx, 60*time.Second)
	defer cancel()
	var pb *privatebuilds.PrivateBuild
	err := client.Wait(ctx, 20*time.Millisecond, func() (bool, error) {
		var err error
		pb, err = client.New(be.url, token).PrivateBuild(ctx, id)
		return err == nil && pb.Build.State.Ended(), err
	})
	if err != nil {
		be.t.Fatalf("private build %s did not end: %v", id, err)
	}
	return pb
}

// TestPrivateImageBuilds walks a buyer through C1–C6 on both engines and
// makes each of C4's refusals happen on purpose.
func TestPrivateImageBuilds(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		be := newBuyersEnv(t, db)
		ctx, d := be.ctx, be.d
		be.public = publish(t, ctx, d, be.cat, be.sellerAcc, be.ops, "Acme DB", "AcmeDB1_0")
		be.limited = publish(t, ctx, d, be.cat, be.sellerAcc, be.ops, "Acme Beta", "AcmeBeta1_0", "buyer1")
		be.gold1 = goldImage(t, ctx, be.images, be.buyer1Acc.ID, "debian", "12")
		be.gold2 = goldImage(t, ctx, be.images, be.buyer2Acc.ID, "debian", "12")
		be.alpine1 = goldImage(t, ctx, be.images, be.buyer1Acc.ID, "alpine", "3.19")
		be.sellerGold = goldImage(t, ctx, be.images, be.sellerAcc.ID, "debian", "12")
		c1, c2 := client.New(be.url, be.buyer1), client.New(be.url, be.buyer2)

		// Subscriptions (C1): public, or limited naming the account; a
		// product the buyer may not see answers like a missing one.
		if _, err := c1.Subscribe(ctx, be.public.product); err != nil {
			t.Fatal(err)
		}
		if _, err := c1.Subscribe(ctx, be.public.product); err != nil {
			t.Fatalf("subscribing again: %v", err)
		}
		if _, err := c1.Subscribe(ctx, be.limited.product); err != nil {
			t.Fatalf("limited to buyer1: %v", err)
		}
		_, hidden := c2.Subscribe(ctx, be.limited.product)
		_, missing := c2.Subscribe(ctx, "prod-0000000000000000")
		if !errors.Is(hidden, catalog.ErrNotFound) && !errors.Is(hidden, problem.NotFound) || sameError(hidden, missing, be.limited.product, "prod-0000000000000000") != "" {
			t.Errorf("buyer2 subscribing to a product limited to buyer1: %v; want exactly the answer for a missing one (%v)", hidden, missing)
		}
		if subs, err := c1.Subscriptions(ctx); err != nil || len(subs) != 2 {
			t.Errorf("buyer1's subscriptions: %v %v", subs, err)
		}
		if subs, err := c2.Subscriptions(ctx); err != nil || len(subs) != 0 {
			t.Errorf("buyer2's subscriptions: %v %v", subs, err)
		}
		if err := c1.Unsubscribe(ctx, be.limited.product); err != nil {
			t.Fatal(err)
		}
		if err := c1.Unsubscribe(ctx, be.limited.product); !errors.Is(err, subscriptions.ReasonNotFound) {
			t.Errorf("unsubscribing twice: %v, want SubscriptionNotFound", err)
		}

		req := privatebuilds.Request{Product: be.public.product, Version: "1.0", GoldImage: be.gold1, Name: "acme-on-gold",
			Description: "Acme DB on our base", Tags: map[string]string{"team": "red"}, ClientToken: "tok-1"}
		with := func(f func(r *privatebuilds.Request)) privatebuilds.Request {
			r := req
			r.ClientToken = ""
			f(&r)
			return r
		}

		// Every refusal happens before any build.
		for _, tc := range []struct {
			name   string
			token  string
			req    privatebuilds.Request
			status int
			reason problem.Reason
			field  string
		}{
			{"not subscribed", be.buyer2, with(func(r *privatebuilds.Request) { r.GoldImage = be.gold2 }), 404, subscriptions.ReasonNotFound, "product"},
			{"C2: a Windows group on a Linux gold image", be.buyer1, with(func(r *privatebuilds.Request) { r.Fulfillment = be.public.windowsOpt }), 400, privatebuilds.ReasonInstallerMismatch, "gold_image"},
			{"C2: a distribution the group does not support", be.buyer1, with(func(r *privatebuilds.Request) { r.GoldImage = be.alpine1 }), 400, privatebuilds.ReasonInstallerMismatch, "gold_image"},
			{"another buyer's gold image", be.buyer1, with(func(r *privatebuilds.Request) { r.GoldImage = be.gold2 }), 404, "", "gold_image"},
			{"a missing gold image", be.buyer1, with(func(r *privatebuilds.Request) { r.GoldImage = "img-00000000000000000" }), 404, "", "gold_image"},
			{"unsubscribed from the limited product", be.buyer1, with(func(r *privatebuilds.Request) { r.Product = be.limited.product }), 404, subscriptions.ReasonNotFound, "product"},
			{"no such version", be.buyer1, with(func(r *privatebuilds.Request) { r.Version = "9.9" }), 404, "", "version"},
			{"no such option", be.buyer1, with(func(r *privatebuilds.Request) { r.Fulfillment = "opt-0000000000000000" }), 404, "", "fulfillment"},
			{"pib's own tag", be.buyer1, with(func(r *privatebuilds.Request) { r.Tags = map[string]string{"pib:fulfillment": "x"} }), 400, "", "tags"},
			{"no name", be.buyer1, with(func(r *privatebuilds.Request) { r.Name = "" }), 400, "", "name"},
		} {
			status, _, pe := be.create(tc.token, tc.req)
			if pe == nil || status != tc.status || pe.Reason != tc.reason || pe.Field != tc.field {
				t.Errorf("%s: %d %+v; want %d, reason %q, field %q", tc.name, status, pe, tc.status, tc.reason, tc.field)
			}
		}
		// A foreign gold image reads exactly like a missing one.
		_, _, foreign := be.create(be.buyer1, with(func(r *privatebuilds.Request) { r.GoldImage = be.gold2 }))
		_, _, gone := be.create(be.buyer1, with(func(r *privatebuilds.Request) { r.GoldImage = "img-00000000000000000" }))
		if diff := sameError(foreign, gone, be.gold2, "img-00000000000000000"); diff != "" {
			t.Errorf("another buyer's gold image differs from a missing one: %s", diff)
		}
		if n := be.builder.count(); n != 0 {
			t.Fatalf("%d builds ran for refused requests", n)
		}

		// The same client token twice at once: one build.
		var wg sync.WaitGroup
		ids := make([]string, 2)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, pb, pe := be.create(be.buyer1, req); pe == nil {
					ids[i] = pb.ID
				} else {
					t.Errorf("concurrent request %d: %v", i, pe)
				}
			}()
		}
		wg.Wait()
		if ids[0] == "" || ids[0] != ids[1] {
			t.Fatalf("two requests with one client token made builds %v", ids)
		}
		var rows int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM private_builds WHERE client_token = 'tok-1'`).Scan(&rows); err != nil || rows != 1 {
			t.Fatalf("%d private builds for one token (%v)", rows, err)
		}
		// The same token with other parameters.
		other := req
		other.Name = "something-else"
		if status, _, pe := be.create(be.buyer1, other); pe == nil || status != 409 || pe.Reason != privatebuilds.ReasonIdempotentParameterMismatch || pe.Field != "client_token" {
			t.Errorf("token reused with other parameters: %d %+v", status, pe)
		}
		// C4 limit (1 here): the first build is held by the builder.
		if status, _, pe := be.create(be.buyer1, with(func(r *privatebuilds.Request) { r.Name = "second" })); pe == nil || status != 409 || pe.Reason != privatebuilds.ReasonBuildLimitExceeded {
			t.Errorf("past the limit: %d %+v", status, pe)
		}
		// The same token still gives the build back past the limit.
		if _, pb, pe := be.create(be.buyer1, req); pe != nil || pb.ID != ids[0] {
			t.Errorf("retry past the limit: %+v %+v", pb, pe)
		}
		close(be.builder.gate)
		pb := be.wait(be.buyer1, ids[0])

		// C1, C5: a private image of buyer1's, on its gold image, tagged.
		b := pb.Build
		if b.State != pipeline.Successful || b.Kind != pipeline.KindPrivate || b.OSName != "debian-12" || b.BaseImageID != be.gold1 || b.ImageID == "" {
			t.Fatalf("build %+v", b)
		}
		im, err := be.images.Get(ctx, b.ImageID)
		if err != nil {
			t.Fatal(err)
		}
		wantTags := map[string]string{"team": "red", privatebuilds.TagFulfillment: be.public.linuxOpt, privatebuilds.TagProduct: be.public.product,
			privatebuilds.TagVersion: be.public.version, privatebuilds.TagSourceImage: be.gold1, privatebuilds.TagName: "acme-on-gold", privatebuilds.TagDescription: "Acme DB on our base"}
		if im.Owner != be.buyer1Acc.ID || im.ParentID != be.gold1 || !equalMaps(im.Tags, wantTags) {
			t.Errorf("private image %+v; want owner %s, parent %s, tags %v", im, be.buyer1Acc.ID, be.gold1, wantTags)
		}
		// The history is the build's own, the same states as a seller's.
		ev, err := c1.PrivateBuildHistory(ctx, pb.ID)
		if err != nil || len(ev) < 3 || ev[0].State != pipeline.Building || ev[len(ev)-1].State != pipeline.Successful {
			t.Errorf("history %+v %v", ev, err)
		}
		if rep, err := c1.PrivateBuildReport(ctx, pb.ID); err != nil || len(rep.ChangedFiles) != 1 {
			t.Errorf("report %+v %v", rep, err)
		}
		var log strings.Builder
		if err := c1.PrivateBuildLog(ctx, pb.ID, &log); err != nil || log.String() != "installed\n" {
			t.Errorf("log %q %v", log.String(), err)
		}
		// C5: the private image carries the fulfillment; building it again
		// onto that image is refused.
		if status, _, pe := be.create(be.buyer1, with(func(r *privatebuilds.Request) { r.GoldImage = b.ImageID })); pe == nil || status != 400 || pe.Reason != privatebuilds.ReasonInvalidSourceImage {
			t.Errorf("onto an image carrying the fulfillment: %d %+v", status, pe)
		}

		// Nobody else sees it.
		for _, tok := range []string{be.buyer2, be.seller} {
			c := client.New(be.url, tok)
			if _, err := c.PrivateBuild(ctx, pb.ID); !errors.Is(err, problem.NotFound) {
				t.Errorf("another account reads the build: %v", err)
			}
			if err := c.PrivateBuildLog(ctx, pb.ID, &strings.Builder{}); !errors.Is(err, problem.NotFound) {
				t.Errorf("another account reads the log: %v", err)
			}
			if list, err := c.PrivateBuilds(ctx); err != nil || len(list) != 0 {
				t.Errorf("another account lists %v %v", list, err)
			}
		}
		if list, err := c1.PrivateBuilds(ctx); err != nil || len(list) != 1 || list[0].Build == nil {
			t.Errorf("buyer1 lists %+v %v", list, err)
		}

		// F2: the seller test-fulfils its limited product onto its own
		// image without a subscription; the operator may not build.
		sreq := privatebuilds.Request{Product: be.limited.product, Version: "1.0", GoldImage: be.sellerGold, Name: "beta-test"}
		if _, spb, pe := be.create(be.seller, sreq); pe != nil {
			t.Errorf("seller test-fulfilment: %+v", pe)
		} else if got := be.wait(be.seller, spb.ID); got.Build.State != pipeline.Successful {
			t.Errorf("seller test-fulfilment ended %s", got.Build.State)
		}
		if status, _, pe := be.create(be.operator, sreq); status != http.StatusForbidden {
			t.Errorf("an operator builds: %d %+v", status, pe)
		}
		// The group's own builds and history are untouched by private builds.
		if bs, err := be.pipeline.Reader().Builds(ctx, be.sellerAcc.ID, "AcmeBeta1_0Linux1"); err != nil || len(bs) != 0 {
			t.Errorf("the group's submissions show a private build: %+v %v", bs, err)
		}
		if bs, err := be.pipeline.Submit(ctx, be.sellerAcc.ID, "AcmeBeta1_0Linux1"); err != nil || len(bs) != 1 || bs[0].Submission != 1 {
			t.Errorf("the group's first submission after private builds: %+v %v", bs, err)
		}
	})
}

// sameError returns "" when a and b are the same answer once the IDs
// that tell them apart are replaced, else both.
func sameError(a, b error, idA, idB string) string {
	var pa, pb *problem.Error
	if !errors.As(a, &pa) || !errors.As(b, &pb) {
		return "not problem errors: " + errString(a) + " / " + errString(b)
	}
	x, y := *pa, *pb
	x.Message, y.Message = strings.ReplaceAll(x.Message, idA, "ID"), strings.ReplaceAll(y.Message, idB, "ID")
	if x.Code != y.Code || x.Status != y.Status || x.Message != y.Message || x.Field != y.Field || x.Rule != y.Rule || x.Reason != y.Reason {
		return x.Error() + " / " + y.Error()
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
