package api_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/store"
)

// buyerGolden adds the buyers' routes to TestGoldenRoutes: newBuyerGolden
// wires them into its API, cases drives each through success and its
// errors.
type buyerGolden struct {
	d   *api.Deps
	cat *catalog.Store
}

func newBuyerGolden(db *store.DB, d *api.Deps) *buyerGolden {
	return &buyerGolden{d: d, cat: buyerDeps(db, d, privatebuilds.DefaultLimit)}
}

// cases runs once the seller's builds have ended (the golden builder no
// longer waits) and before the pipeline stops. BuildLimitExceeded needs a
// build held in progress, which the golden builder does not do by then:
// TestPrivateImageBuilds makes it happen.
func (bg *buyerGolden) cases(t *testing.T, tr *transcript, e *env, p *pipeline.Pipeline, seller string) {
	ctx := context.Background()
	const js = "application/json"
	b1, b2 := e.account("buyer1", accounts.Buyer), e.account("buyer2", accounts.Buyer)
	tokenNames.Store(b1, "buyer1")
	tokenNames.Store(b2, "buyer2")
	sellerAcc, b1Acc, b2Acc, ops := e.whoami(seller), e.whoami(b1), e.whoami(b2), e.whoami(e.operator)
	pub := publish(t, ctx, bg.d, bg.cat, sellerAcc, ops, "Acme DB", "AcmeDB1_0")
	lim := publish(t, ctx, bg.d, bg.cat, sellerAcc, ops, "Acme Beta", "AcmeBeta1_0", "buyer1")
	gold1 := goldImage(t, ctx, bg.d.Images, b1Acc.ID, "debian", "12")
	gold2 := goldImage(t, ctx, bg.d.Images, b2Acc.ID, "debian", "12")
	alpine := goldImage(t, ctx, bg.d.Images, b1Acc.ID, "alpine", "3.19")
	carrying := taggedImage(t, ctx, bg.d.Images, gold1, b1Acc.ID, map[string]string{privatebuilds.TagFulfillment: pub.linuxOpt})
	body := func(v any) string {
		data, _ := json.Marshal(v)
		return string(data)
	}

	// Subscriptions.
	tr.do("a buyer subscribes to a public product", "POST", "/v1/subscriptions", b1, js, body(api.SubscribeRequest{Product: pub.product}))
	tr.do("subscribed already", "POST", "/v1/subscriptions", b1, js, body(api.SubscribeRequest{Product: pub.product}))
	tr.do("a limited product naming the buyer", "POST", "/v1/subscriptions", b1, js, body(api.SubscribeRequest{Product: lim.product}))
	tr.do("a limited product naming another buyer answers like a missing one", "POST", "/v1/subscriptions", b2, js, body(api.SubscribeRequest{Product: lim.product}))
	tr.do("no such product", "POST", "/v1/subscriptions", b2, js, body(api.SubscribeRequest{Product: "prod-0000000000000000"}))
	tr.do("a seller may not subscribe", "POST", "/v1/subscriptions", seller, js, body(api.SubscribeRequest{Product: pub.product}))
	tr.do("malformed JSON", "POST", "/v1/subscriptions", b1, js, `{"product":`)
	tr.do("a buyer lists its subscriptions", "GET", "/v1/subscriptions", b1, "", "")
	tr.do("another buyer has none", "GET", "/v1/subscriptions", b2, "", "")
	tr.do("a seller may not list subscriptions", "GET", "/v1/subscriptions", seller, "", "")
	tr.do("a buyer unsubscribes", "DELETE", "/v1/subscriptions/"+lim.product, b1, "", "")
	tr.do("not subscribed", "DELETE", "/v1/subscriptions/"+lim.product, b1, "", "")

	// Private image builds: the refusals, then one build.
	req := privatebuilds.Request{Product: pub.product, Version: "1.0", GoldImage: gold1, Name: "acme-on-gold", Description: "Acme DB on our base",
		Tags: map[string]string{"team": "red"}, ClientToken: "golden-1"}
	with := func(f func(r *privatebuilds.Request)) string {
		r := req
		r.ClientToken = ""
		f(&r)
		return body(r)
	}
	const pibs = "/v1/private-image-builds"
	tr.do("C4 SubscriptionNotFound", "POST", pibs, b2, js, with(func(r *privatebuilds.Request) { r.GoldImage = gold2 }))
	tr.do("C2 InstallerMismatch: a Windows group onto a Linux gold image", "POST", pibs, b1, js, with(func(r *privatebuilds.Request) { r.Fulfillment = pub.windowsOpt }))
	tr.do("C2 InstallerMismatch: a distribution the group does not support", "POST", pibs, b1, js, with(func(r *privatebuilds.Request) { r.GoldImage = alpine }))
	tr.do("C5 InvalidSourceImage: the gold image carries the fulfillment", "POST", pibs, b1, js, with(func(r *privatebuilds.Request) { r.GoldImage = carrying }))
	tr.do("another buyer's gold image answers like a missing one", "POST", pibs, b1, js, with(func(r *privatebuilds.Request) { r.GoldImage = gold2 }))
	tr.do("no such gold image", "POST", pibs, b1, js, with(func(r *privatebuilds.Request) { r.GoldImage = "img-00000000000000000" }))
	tr.do("no such version", "POST", pibs, b1, js, with(func(r *privatebuilds.Request) { r.Version = "9.9" }))
	tr.do("a tag key of pib's own", "POST", pibs, b1, js, with(func(r *privatebuilds.Request) { r.Tags = map[string]string{"pib:product": "x"} }))
	tr.do("no name", "POST", pibs, b1, js, with(func(r *privatebuilds.Request) { r.Name = "" }))
	tr.do("an operator may not build", "POST", pibs, e.operator, js, body(req))
	_, data := tr.do("a buyer builds a private image", "POST", pibs, b1, js, body(req))
	var pb privatebuilds.PrivateBuild
	if err := json.Unmarshal(data, &pb); err != nil || pb.ID == "" {
		t.Fatalf("private build: %v %s", err, data)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := p.Reader().Build(ctx, b1Acc.ID, pb.ID)
		if err != nil {
			t.Fatal(err)
		}
		if b.State.Ended() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("private build %s did not end within 60s (%s)", pb.ID, b.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr.do("C4: the same client token and parameters give the same build", "POST", pibs, b1, js, body(req))
	other := req
	other.Name = "another-name"
	tr.do("C4 IdempotentParameterMismatch", "POST", pibs, b1, js, body(other))

	tr.do("a buyer lists its private image builds", "GET", pibs, b1, "", "")
	tr.do("another buyer lists none", "GET", pibs, b2, "", "")
	tr.do("a successful private image build", "GET", pibs+"/"+pb.ID, b1, "", "")
	tr.do("another buyer's build answers like a missing one", "GET", pibs+"/"+pb.ID, b2, "", "")
	tr.do("the product's seller does not see it either", "GET", pibs+"/"+pb.ID, seller, "", "")
	tr.do("the build log", "GET", pibs+"/"+pb.ID+"/log", b1, "", "")
	tr.do("another buyer's build", "GET", pibs+"/"+pb.ID+"/log", b2, "", "")
	tr.do("the report", "GET", pibs+"/"+pb.ID+"/report", b1, "", "")
	tr.do("another buyer's build", "GET", pibs+"/"+pb.ID+"/report", b2, "", "")
	tr.do("the history", "GET", pibs+"/"+pb.ID+"/history", b1, "", "")
	tr.do("another buyer's build", "GET", pibs+"/"+pb.ID+"/history", b2, "", "")
}

// taggedImage stores an image of owner on base with one more layer and
// tags, as a private build makes.
func taggedImage(t *testing.T, ctx context.Context, is *images.Store, base, owner string, tags map[string]string) string {
	t.Helper()
	b, err := is.Get(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	upper := t.TempDir()
	if err := os.WriteFile(filepath.Join(upper, "installed"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := is.AddLayer(ctx, b, upper, images.AddLayerOptions{Owner: owner, CreatedBy: "golden", Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	return im.ID
}
