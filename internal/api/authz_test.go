package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// The authorization matrix (SPEC, roles and isolation; issue 11,
// "Isolation, table-driven"): every route of Server.Routes() × every
// caller × {own, foreign, missing object}, with the status of each cell
// written down in authzTable.
//
// A caller's own object is one its account owns. A foreign object is
// every object of that kind another account owns (seller A's and the
// buyers' images for seller B, …); for the operator that is its normal
// case where it may act on other accounts' data (builds, image metadata,
// investigations, change requests). A missing object is a well-formed ID
// (or alias, or name) nothing has.
//
// Besides each status, the test checks for every route:
//   - a non-operator's foreign cell is written with the status of its
//     missing cell, and answers with the same body once the object's ID is
//     replaced (a foreign ID looks exactly like a missing one);
//   - no answer to a seller, a buyer or no token names another account's
//     object, account, alias, group name or product title, except the
//     reference the request itself sent;
//   - a refused write changes no row of the domain's tables.

// caller is one column of the matrix.
type caller int

const (
	anon caller = iota
	sellerA
	sellerB
	buyerA
	buyerB
	operator
	nCallers
)

var callerNames = [nCallers]string{"no token", "seller A", "seller B", "buyer A", "buyer B", "operator"}

func (c caller) String() string { return callerNames[c] }

// slug names a caller's fixtures: gold-sellera, GroupSellerA1, …
func (c caller) slug() string { return strings.ReplaceAll(strings.ToLower(callerNames[c]), " ", "") }

// objKind is what a row's object axis varies. Each kind has at most one
// object per owner (authzFixture.objs) and a missing value.
type objKind string

const (
	noObject      objKind = ""
	pkgID         objKind = "package"
	groupID       objKind = "group"
	groupName     objKind = "group name (a Successful group in no product)"
	buildID       objKind = "build"
	retryable     objKind = "build in Investigating, to retry"
	resolvable    objKind = "build in Investigating, to resolve"
	imageID       objKind = "image"
	imageAlias    objKind = "image alias"
	spareImageID  objKind = "image, to remove"
	productID     objKind = "draft product"
	changeID      objKind = "pending change request"
	rejectableChg objKind = "pending change request, to reject"
	limitedProd   objKind = "product limited to its buyer, subscribed"
	privateBuild  objKind = "private image build (Successful)"
	clientToken   objKind = "private image build's client token"
	// instanceID: no account has one in the fixture (launching needs a
	// bootable image and a QEMU boot); cmd/pib's TestInstances checks
	// one account's instance against another's with real machines.
	instanceID objKind = "instance"
)

// missing is a well-formed reference to nothing, per kind.
var missing = map[objKind]string{
	pkgID:         "pkg-0000000000000000",
	groupID:       "pg-0000000000000000",
	groupName:     "NoSuchGroup1",
	buildID:       "b-0000000000000000",
	retryable:     "b-0000000000000000",
	resolvable:    "b-0000000000000000",
	imageID:       "img-00000000000000000",
	imageAlias:    "gold-nobody",
	spareImageID:  "img-00000000000000000",
	productID:     "prod-0000000000000000",
	changeID:      "chg-0000000000000000",
	rejectableChg: "chg-0000000000000000",
	limitedProd:   "prod-0000000000000000",
	privateBuild:  "b-0000000000000000",
	clientToken:   "tok-nobody",
	instanceID:    "i-00000000000000000",
}

// authzRow is one route (or one way of naming its object) and what each
// caller gets.
type authzRow struct {
	route string // "METHOD /pattern", as Server.Routes() lists it
	how   string // tells apart rows of one route ("by alias")
	obj   objKind
	// path is the request path, {obj} standing for the object; "" is the
	// route's pattern with its first {wildcard} replaced by the object.
	path string
	// body makes the request body (nil: none); obj is the cell's object.
	body func(f *authzFixture, c caller, obj string) (ctype, body string)
	// want is the status of each caller, in callerNames' order, separated
	// by "|": one status, or for a row with an object "OWN FOREIGN
	// MISSING" ("-" where the caller owns no object of the kind). One
	// status on a row with an object is every cell of that caller.
	want string
}

const (
	js     = "application/json"
	octets = "application/octet-stream"
)

func jsonOf(s string) func(*authzFixture, caller, string) (string, string) {
	return func(*authzFixture, caller, string) (string, string) { return js, s }
}

// authzTable: the matrix. A new route adds its rows here (the test fails
// for a route without one); a route whose object is named in the body or
// the query, or more than one way, has one row per way.
var authzTable = []authzRow{
	//                                                                      no token | seller A   | seller B   | buyer A    | buyer B    | operator
	{route: "GET /v1/whoami", want: "401 | 200 | 200 | 200 | 200 | 200"},
	{route: "POST /v1/accounts", body: jsonOf(`{"name":"matrix-new","role":"buyer"}`), want: "401 | 403 | 403 | 403 | 403 | 201"},
	{route: "GET /v1/accounts", want: "401 | 403 | 403 | 403 | 403 | 200"},
	// An OS version builds only on an operator image: another account's
	// image answers like a missing one, for the operator too.
	{route: "POST /v1/os-versions", how: "image in the body", obj: imageID, body: func(_ *authzFixture, _ caller, obj string) (string, string) {
		return js, `{"name":"matrix-os","image":"` + obj + `"}`
	}, want: "401 | 403 | 403 | 403 | 403 | 201 400 400"},
	{route: "GET /v1/os-versions", want: "401 | 200 | 200 | 200 | 200 | 200"},

	{route: "POST /v1/packages", path: "/v1/packages?name=matrix.sh", body: func(*authzFixture, caller, string) (string, string) {
		return octets, "#!/bin/sh\ntrue\n"
	}, want: "401 | 201 | 201 | 403 | 403 | 403"},
	{route: "GET /v1/packages", want: "401 | 200 | 200 | 403 | 403 | 403"},
	{route: "GET /v1/packages/{id}", obj: pkgID, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | 403"},

	// P1: another seller's installer is refused like a missing one.
	{route: "POST /v1/package-groups", how: "installer in the body", obj: pkgID, body: func(_ *authzFixture, c caller, obj string) (string, string) {
		return js, `{"name":"Matrix_` + c.slug() + `","platform":"linux","os_versions":["debian-12"],"installer_id":"` + obj + `"}`
	}, want: "401 | 201 400 400 | 201 400 400 | 403 | 403 | 403"},
	{route: "GET /v1/package-groups", want: "401 | 200 | 200 | 403 | 403 | 403"},
	{route: "GET /v1/package-groups/{ref}", obj: groupID, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | 403"},
	{route: "POST /v1/package-groups/{ref}/submit", obj: groupID, want: "401 | 202 404 404 | 202 404 404 | 403 | 403 | 403"},
	{route: "GET /v1/package-groups/{ref}/builds", obj: groupID, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | 403"},
	{route: "GET /v1/package-groups/{ref}/history", obj: groupID, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | 403"},
	{route: "GET /v1/status", want: "401 | 200 | 200 | 403 | 403 | 403"},
	{route: "GET /v1/status", how: "?group=", obj: groupID, path: "/v1/status?group={obj}", want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | 403"},

	// Operators read any build (audited).
	{route: "GET /v1/builds/{id}", obj: buildID, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | - 200 404"},
	{route: "GET /v1/builds/{id}/log", obj: buildID, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | - 200 404"},
	{route: "GET /v1/builds/{id}/report", obj: buildID, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | - 200 404"},
	{route: "GET /v1/builds/{id}/sbom", obj: buildID, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | - 200 404"},
	{route: "GET /v1/investigations", want: "401 | 403 | 403 | 403 | 403 | 200"},
	{route: "POST /v1/investigations/{build}/retry", obj: retryable, want: "401 | 403 | 403 | 403 | 403 | - 202 404"},
	{route: "POST /v1/investigations/{build}/resolve", obj: resolvable, body: jsonOf(`{"note":"matrix"}`), want: "401 | 403 | 403 | 403 | 403 | - 200 404"},

	// S5: re-matching every image that matters is the operator's.
	{route: "POST /v1/rescan", body: jsonOf(`{}`), want: "401 | 403 | 403 | 403 | 403 | 200"},

	{route: "PUT /v1/webhook", body: jsonOf(`{"url":"http://127.0.0.1:9/matrix"}`), want: "401 | 200 | 200 | 200 | 200 | 200"},
	{route: "GET /v1/webhook", want: "401 | 200 | 200 | 200 | 200 | 200"},
	{route: "DELETE /v1/webhook", want: "401 | 204 | 204 | 204 | 204 | 204"},
	{route: "GET /v1/webhook/deliveries", want: "401 | 200 | 200 | 200 | 200 | 200"},
	{route: "GET /v1/audit", want: "401 | 403 | 403 | 403 | 403 | 200"},

	// Images: a buyer's gold image is its own; anyone else gets the
	// missing image's answer by ID, by alias, on export and on removal.
	// The operator sees every image's metadata (audited), but exports and
	// removes only its own (issue 11: "operators see metadata only").
	{route: "GET /v1/images", want: "401 | 200 | 200 | 200 | 200 | 200"},
	{route: "POST /v1/images", body: tarBody, want: "401 | 201 | 201 | 201 | 201 | 201"},
	// Aliases are per account: another account's alias is free.
	{route: "POST /v1/images", how: "?alias=", obj: imageAlias, path: "/v1/images?alias={obj}", body: tarBody,
		want: "401 | 409 201 201 | 409 201 201 | 409 201 201 | 409 201 201 | 409 201 201"},
	{route: "GET /v1/images/{ref}", how: "by ID", obj: imageID, want: "401 | 200 404 404 | 200 404 404 | 200 404 404 | 200 404 404 | 200 200 404"},
	{route: "GET /v1/images/{ref}", how: "by alias", obj: imageAlias, want: "401 | 200 404 404 | 200 404 404 | 200 404 404 | 200 404 404 | 200 404 404"},
	{route: "GET /v1/images/{ref}/export", how: "by ID", obj: imageID, want: "401 | 200 404 404 | 200 404 404 | 200 404 404 | 200 404 404 | 200 403 404"},
	// A disk: the fixture's images have no kernel, so an own one is
	// refused as not bootable, after the ownership checks.
	{route: "GET /v1/images/{ref}/export", how: "as a disk", obj: imageID, path: "/v1/images/{obj}/export?format=qcow2", want: "401 | 400 404 404 | 400 404 404 | 400 404 404 | 400 404 404 | 400 403 404"},
	{route: "GET /v1/images/{ref}/export", how: "by alias", obj: imageAlias, want: "401 | 200 404 404 | 200 404 404 | 200 404 404 | 200 404 404 | 200 404 404"},
	{route: "DELETE /v1/images/{ref}", obj: spareImageID, want: "401 | 200 404 404 | 200 404 404 | 200 404 404 | 200 404 404 | 200 403 404"},

	// Catalog visibility: a draft is its seller's (and the operators').
	{route: "GET /v1/products", want: "401 | 200 | 200 | 200 | 200 | 200"},
	{route: "GET /v1/products/{id}", obj: productID, want: "401 | 200 404 404 | 200 404 404 | - 404 404 | - 404 404 | - 200 404"},
	{route: "POST /v1/products/{id}/versions/{version}/publish", obj: productID, path: "/v1/products/{obj}/versions/1.0/publish",
		want: "401 | 201 404 404 | 201 404 404 | 403 | 403 | 403"},
	{route: "GET /v1/load-form", want: "401 | 200 | 200 | 403 | 403 | 403"},
	// A form naming another seller's group is refused like one naming a
	// group nobody has.
	{route: "POST /v1/load-forms", how: "group in the form", obj: groupName, body: loadFormBody,
		want: "401 | 201 400 400 | 201 400 400 | 403 | 403 | 403"},
	{route: "GET /v1/changes", want: "401 | 200 | 200 | 403 | 403 | 200"},
	{route: "GET /v1/changes/{id}", obj: changeID, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | - 200 404"},
	{route: "POST /v1/changes/{id}/approve", obj: changeID, want: "401 | 403 | 403 | 403 | 403 | - 200 404"},
	{route: "POST /v1/changes/{id}/reject", obj: rejectableChg, body: jsonOf(`{"reason":"matrix"}`), want: "401 | 403 | 403 | 403 | 403 | - 200 404"},

	// Buyers (C1–C6): an account sees only its own subscriptions and
	// private image builds. A product it may not see (another buyer's
	// limited one, a seller's draft), another account's gold image and
	// another account's build answer like missing ones. A seller
	// test-fulfils its own draft without a subscription (F2). Operators
	// are refused the buyers' routes (buyerRoutes' roles), though they
	// read any private build, audited, through GET /v1/builds/{id}.
	{route: "GET /v1/subscriptions", want: "401 | 403 | 403 | 200 | 200 | 403"},
	{route: "POST /v1/subscriptions", how: "limited product in the body", obj: limitedProd, body: subscribeBody,
		want: "401 | 403 | 403 | 200 404 404 | 200 404 404 | 403"},
	{route: "POST /v1/subscriptions", how: "draft product in the body", obj: productID, body: subscribeBody,
		want: "401 | 403 | 403 | - 404 404 | - 404 404 | 403"},
	{route: "GET /v1/private-image-builds", want: "401 | 200 | 200 | 200 | 200 | 403"},
	{route: "POST /v1/private-image-builds", how: "gold image in the body", obj: imageID, body: privateBuildBody(imageID),
		want: "401 | 201 404 404 | 201 404 404 | 201 404 404 | 201 404 404 | 403"},
	{route: "POST /v1/private-image-builds", how: "gold image alias in the body", obj: imageAlias, body: privateBuildBody(imageAlias),
		want: "401 | 201 404 404 | 201 404 404 | 201 404 404 | 201 404 404 | 403"},
	{route: "POST /v1/private-image-builds", how: "limited product in the body", obj: limitedProd, body: privateBuildBody(limitedProd),
		want: "401 | - 404 404 | - 404 404 | 201 404 404 | 201 404 404 | 403"},
	{route: "POST /v1/private-image-builds", how: "draft product in the body (F2)", obj: productID, body: privateBuildBody(productID),
		want: "401 | 201 404 404 | 201 404 404 | - 404 404 | - 404 404 | 403"},
	// C4: a client token is the account's own: the caller's gives its
	// build back (200), another account's is as new as an unused one.
	{route: "POST /v1/private-image-builds", how: "client token in the body", obj: clientToken, body: privateBuildBody(clientToken),
		want: "401 | 200 201 201 | 200 201 201 | 200 201 201 | 200 201 201 | 403"},
	{route: "GET /v1/private-image-builds/{id}", obj: privateBuild, want: "401 | 200 404 404 | 200 404 404 | 200 404 404 | 200 404 404 | 403"},
	{route: "GET /v1/private-image-builds/{id}/log", obj: privateBuild, want: "401 | 200 404 404 | 200 404 404 | 200 404 404 | 200 404 404 | 403"},
	{route: "GET /v1/private-image-builds/{id}/report", obj: privateBuild, want: "401 | 200 404 404 | 200 404 404 | 200 404 404 | 200 404 404 | 403"},
	{route: "GET /v1/private-image-builds/{id}/history", obj: privateBuild, want: "401 | 200 404 404 | 200 404 404 | 200 404 404 | 200 404 404 | 403"},
	// A private build is a pipeline build: the sellers' build routes
	// show a seller its own test-fulfilment and nobody else's.
	{route: "GET /v1/builds/{id}", how: "a private image build", obj: privateBuild, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | - 200 404"},
	{route: "GET /v1/builds/{id}/log", how: "a private image build", obj: privateBuild, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | - 200 404"},
	{route: "GET /v1/builds/{id}/report", how: "a private image build", obj: privateBuild, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | - 200 404"},
	{route: "GET /v1/builds/{id}/sbom", how: "a private image build", obj: privateBuild, want: "401 | 200 404 404 | 200 404 404 | 403 | 403 | - 200 404"},
	// Instances: each account launches only an image it owns (another's
	// answers like a missing one); the fixture's images have no kernel,
	// so the caller's own is refused as not bootable. Nobody owns an
	// instance here: every cell is a missing one's.
	{route: "POST /v1/instances", how: "image in the body", obj: imageID, body: launchBody,
		want: "401 | 400 404 404 | 400 404 404 | 400 404 404 | 400 404 404 | 400 404 404"},
	{route: "GET /v1/instances", want: "401 | 200 | 200 | 200 | 200 | 200"},
	{route: "GET /v1/instances/{id}", obj: instanceID, want: "401 | 404 | 404 | 404 | 404 | 404"},
	{route: "GET /v1/instances/{id}/console", obj: instanceID, want: "401 | 404 | 404 | 404 | 404 | 404"},
	{route: "POST /v1/instances/{id}/stop", obj: instanceID, want: "401 | 404 | 404 | 404 | 404 | 404"},
	{route: "DELETE /v1/instances/{id}", obj: instanceID, want: "401 | 404 | 404 | 404 | 404 | 404"},

	// Last: the private builds above need the subscriptions.
	{route: "DELETE /v1/subscriptions/{product}", obj: limitedProd, want: "401 | 403 | 403 | 204 404 404 | 204 404 404 | 403"},
}

func subscribeBody(_ *authzFixture, _ caller, obj string) (string, string) {
	return js, `{"product":"` + obj + `"}`
}

// privateRequest is caller c's private image build request of the
// fixture: its own limited product (a buyer's), or its own draft (a
// seller's, F2), onto its gold image, with client token tok.
func (f *authzFixture) privateRequest(c caller, tok string) privatebuilds.Request {
	product := f.objs[productID][c]
	if p, ok := f.objs[limitedProd][c]; ok {
		product = p
	}
	return privatebuilds.Request{Product: product, Version: "1.0", GoldImage: f.objs[imageID][c], Name: "Private_" + c.slug(), ClientToken: tok}
}

// privateBuildBody is caller c's privateRequest with obj in place of the
// gold image (kind imageID, imageAlias), the client token or the product;
// but for the token, it is a new build's (another name, no token).
func privateBuildBody(k objKind) func(*authzFixture, caller, string) (string, string) {
	return func(f *authzFixture, c caller, obj string) (string, string) {
		req := f.privateRequest(c, "")
		switch k {
		case clientToken:
			req.ClientToken = obj
		case imageID, imageAlias:
			req.GoldImage, req.Name = obj, "Matrix_"+c.slug()
		default:
			req.Product, req.Name = obj, "Matrix_"+c.slug()
		}
		data, err := json.Marshal(req)
		if err != nil {
			f.t.Fatal(err)
		}
		return js, string(data)
	}
}

func launchBody(_ *authzFixture, _ caller, obj string) (string, string) {
	return js, `{"image":"` + obj + `","ssh_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMatrixMatrixMatrixMatrixMatrixMatrixMatrixMatrix matrix"}`
}

func tarBody(f *authzFixture, _ caller, _ string) (string, string) { return octets, f.rootfs }

// loadFormBody is a new product row naming group obj, in the caller's own
// load form (a seller's) or seller A's (anyone else is refused first).
func loadFormBody(f *authzFixture, c caller, obj string) (string, string) {
	tmpl := f.forms[c]
	if tmpl == nil {
		tmpl = f.forms[sellerA]
	}
	return api.XLSXType, string(fillForm(f.t, tmpl, newProductRow("Matrix form "+c.slug(), "1.0", obj, "")))
}

// authzFixture is one account of each caller with one object of each kind
// it may own.
type authzFixture struct {
	*catalogEnv
	t      *testing.T
	db     *store.DB
	tokens [nCallers]string
	ids    [nCallers]string // account IDs
	objs   map[objKind]map[caller]string
	forms  map[caller][]byte // load form templates, of the sellers
	rootfs string            // an image archive to import
	gold   string            // a Debian 12 one, for gold images (C2)
}

func newAuthzFixture(t *testing.T, db *store.DB) *authzFixture {
	t.Helper()
	f := &authzFixture{t: t, db: db, objs: map[objKind]map[caller]string{}, forms: map[caller][]byte{}, rootfs: tinyRootfs(t),
		gold: tinyRootfsOf(t, "debian", "12")}
	f.catalogEnv = newCatalogEnv(t, db, loadform.Limits{MaxBytes: 256 << 10})
	set := func(k objKind, c caller, v string) {
		if f.objs[k] == nil {
			f.objs[k] = map[caller]string{}
		}
		f.objs[k][c] = v
	}
	f.tokens[operator] = f.operator
	for c, role := range map[caller]accounts.Role{sellerA: accounts.Seller, sellerB: accounts.Seller, buyerA: accounts.Buyer, buyerB: accounts.Buyer} {
		f.tokens[c] = f.account("matrix-"+c.slug(), role)
	}
	for c := sellerA; c < nCallers; c++ {
		f.ids[c] = f.whoami(f.tokens[c]).ID
	}

	for _, c := range []caller{sellerA, sellerB} {
		tok, slug := f.tokens[c], c.slug()
		group, form := "Group_"+slug, "Form_"+slug
		f.successfulGroup(tok, group, "linux", "1.0")
		f.successfulGroup(tok, form, "linux", "1.0")
		var g groups.Group
		if code := f.call("GET", "/v1/package-groups/"+group, tok, "", nil, &g); code != 200 {
			t.Fatalf("GET group %s: %d", group, code)
		}
		set(groupID, c, g.ID)
		set(groupName, c, form)
		set(pkgID, c, g.InstallerID)
		bs, err := f.p.Reader().Builds(f.ctx, f.ids[c], g.ID)
		if err != nil || len(bs) != 1 {
			t.Fatalf("builds of %s: %v %v", group, bs, err)
		}
		set(buildID, c, bs[0].ID)

		// Two builds the builder fails on (goldenBuilder: "fault"): one
		// for the operator to retry, one to resolve.
		code, pkg := f.upload(tok, "fault.sh", "#!/bin/sh\ntrue\n")
		if code != 201 {
			t.Fatalf("upload fault.sh: %d", code)
		}
		for i, k := range []objKind{retryable, resolvable} {
			name := fmt.Sprintf("Fault_%s_%d", slug, i)
			spec := map[string]any{"name": name, "platform": "linux", "os_versions": []string{"debian-12"}, "installer_id": pkg["id"]}
			var out map[string]any
			if code := f.json("POST", "/v1/package-groups", tok, spec, &out); code != 201 {
				t.Fatalf("create %s: %d %v", name, code, out)
			}
			if code := f.call("POST", "/v1/package-groups/"+name+"/submit", tok, "", nil, nil); code != 202 {
				t.Fatalf("submit %s: %d", name, code)
			}
			set(k, c, f.waitBuild(c, name, pipeline.Investigating))
		}

		// A draft product, and two pending requests to publish it.
		f.forms[c] = f.template(tok)
		var ch api.ChangeRequest
		if code := f.submit(tok, fillForm(t, f.forms[c], newProductRow("Matrix product "+slug, "1.0", group, "")), &ch); code != 201 {
			t.Fatalf("submit load form: %d %+v", code, ch)
		}
		d := f.approve(ch.ID)
		set(productID, c, d.Products[0])
		for _, k := range []objKind{changeID, rejectableChg} {
			var ch catalog.Change
			if code := f.call("POST", "/v1/products/"+d.Products[0]+"/versions/1.0/publish", tok, "", nil, &ch); code != 201 {
				t.Fatalf("publish: %d", code)
			}
			set(k, c, ch.ID)
		}
	}

	// Every account but the sellers' test products has two images: a gold
	// image (aliased gold-<caller>, Debian 12 as debian-12 is) and a
	// spare one to remove.
	for c := sellerA; c < nCallers; c++ {
		for _, k := range []objKind{imageID, spareImageID} {
			alias := map[objKind]string{imageID: "gold-", spareImageID: "spare-"}[k] + c.slug()
			archive := map[objKind]string{imageID: f.gold, spareImageID: f.rootfs}[k]
			var im images.Image
			if code := f.call("POST", "/v1/images?alias="+alias, f.tokens[c], octets, strings.NewReader(archive), &im); code != 201 {
				t.Fatalf("import %s: %d", alias, code)
			}
			set(k, c, im.ID)
			if k == imageID {
				set(imageAlias, c, alias)
			}
		}
	}

	// The buyers' side (C1–C6). A seller outside the matrix publishes one
	// product per buyer, limited to it (its test account); the buyer
	// subscribes to it. Each buyer builds a private image from it onto its
	// gold image, and each seller test-fulfils its draft product onto its
	// own (F2); every build has ended, Successful, before the matrix runs.
	pub := f.account("matrix-publisher", accounts.Seller)
	for _, c := range []caller{buyerA, buyerB} {
		group := "Limited_" + c.slug()
		f.successfulGroup(pub, group, "linux", "1.0")
		var ch api.ChangeRequest
		if code := f.submit(pub, fillForm(t, f.template(pub), newProductRow("Matrix limited "+c.slug(), "1.0", group, "matrix-"+c.slug())), &ch); code != 201 {
			t.Fatalf("submit load form: %d %+v", code, ch)
		}
		product := f.approve(ch.ID).Products[0]
		if code := f.call("POST", "/v1/subscriptions", f.tokens[c], js, strings.NewReader(`{"product":"`+product+`"}`), nil); code != 201 {
			t.Fatalf("%s subscribes to %s: %d", c, product, code)
		}
		set(limitedProd, c, product)
	}
	for c := sellerA; c < operator; c++ {
		tok := "tok-" + c.slug()
		var pb privatebuilds.PrivateBuild
		if code := f.json("POST", "/v1/private-image-builds", f.tokens[c], f.privateRequest(c, tok), &pb); code != 201 {
			t.Fatalf("%s's private build: %d", c, code)
		}
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			b, err := f.p.Reader().Build(f.ctx, f.ids[c], pb.ID)
			if err != nil {
				t.Fatal(err)
			}
			if b.State == pipeline.Successful {
				break
			}
			if b.State.Ended() || time.Now().After(deadline) {
				t.Fatalf("%s's private build %s: %s, want Successful", c, pb.ID, b.State)
			}
		}
		set(privateBuild, c, pb.ID)
		set(clientToken, c, tok)
	}
	return f
}

// waitBuild waits until caller c's group's only build is in state, and
// returns its ID.
func (f *authzFixture) waitBuild(c caller, group string, state pipeline.State) string {
	f.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		bs, err := f.p.Reader().Builds(f.ctx, f.ids[c], group)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(bs) == 1 && bs[0].State == state {
			return bs[0].ID
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the build of %s did not reach %s within 60s", group, state)
		}
	}
}

// secrets are the strings that name what each account owns: object IDs,
// aliases, group names, product titles, private image names and the
// account's own ID.
func (f *authzFixture) secrets() map[string]caller {
	out := map[string]caller{}
	for _, byOwner := range f.objs {
		for c, v := range byOwner {
			out[v] = c
		}
	}
	for _, c := range []caller{sellerA, sellerB} {
		out["Group_"+c.slug()] = c
		out["Matrix product "+c.slug()] = c
	}
	for _, c := range []caller{buyerA, buyerB} {
		out["Matrix limited "+c.slug()] = c
	}
	for c := sellerA; c < operator; c++ {
		out[f.ids[c]] = c
		out["Private_"+c.slug()] = c
	}
	return out
}

// tableDump is every row of the tables a write can change, to tell that
// a refused write changed nothing (the audit log grows, by design).
func tableDump(t *testing.T, db *store.DB) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"accounts", "os_versions", "packages", "group_names", "package_groups", "group_os_versions", "group_packages",
		"builds", "investigations", "webhooks", "images", "image_blobs", "products", "product_versions", "fulfillment_options", "catalog_grants", "change_requests",
		"subscriptions", "private_builds", "image_tags"} {
		rows, err := db.QueryContext(context.Background(), `SELECT * FROM `+table+` ORDER BY 1`)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %v\n", table, vals)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// cell is one request of the matrix.
type cell struct {
	row    int
	c      caller
	axis   string // "", "own", "foreign (seller B's)", "missing"
	owner  caller // the object's owner (foreign)
	obj    string
	want   int
	status int
	body   []byte
}

// wants parses a row's want into each caller's statuses: 1 for a row
// without an object, else own, foreign, missing (0 for "-").
func (r authzRow) wants() ([nCallers][3]int, error) {
	var out [nCallers][3]int
	parts := strings.Split(r.want, "|")
	if len(parts) != int(nCallers) {
		return out, fmt.Errorf("want has %d callers, not %d", len(parts), nCallers)
	}
	for c, p := range parts {
		fields := strings.Fields(p)
		if len(fields) == 1 {
			fields = []string{fields[0], fields[0], fields[0]}
		}
		if len(fields) != 3 || (r.obj == noObject && fields[0] != fields[2]) {
			return out, fmt.Errorf("%s: %q: give one status, or own, foreign and missing", caller(c), p)
		}
		for i, s := range fields {
			if s == "-" {
				continue
			}
			n, err := strconv.Atoi(s)
			if err != nil {
				return out, fmt.Errorf("%s: %q: %v", caller(c), p, err)
			}
			out[c][i] = n
		}
	}
	return out, nil
}

func (r authzRow) name() string {
	if r.how == "" {
		return r.route
	}
	return r.route + " " + r.how
}

// TestAuthorizationMatrix runs authzTable on both engines.
func TestAuthorizationMatrix(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := newAuthzFixture(t, db)

		// Every route has a row, and every row a route.
		routes := map[string]bool{}
		for _, r := range f.srv.Routes() {
			routes[r[0]+" "+r[1]] = true
		}
		covered := map[string]bool{}
		for _, r := range authzTable {
			covered[r.route] = true
			if !routes[r.route] {
				t.Errorf("authzTable row %q: no such route in Server.Routes()", r.name())
			}
		}
		for _, r := range f.srv.Routes() {
			if !covered[r[0]+" "+r[1]] {
				t.Errorf("route %s %s has no row in authzTable: add what every caller gets, for its own, a foreign and a missing object", r[0], r[1])
			}
		}

		cells := f.cells(t)
		secrets := f.secrets()
		// Refusals first, while every object is as the fixture made it;
		// then reads that succeed; then writes that succeed, in table
		// order (a publish before the approval, …).
		phase := func(cl *cell) int {
			method, _, _ := strings.Cut(authzTable[cl.row].route, " ")
			switch {
			case cl.want >= 300:
				return 0
			case method == "GET":
				return 1
			}
			return 2
		}
		for p := 0; p < 3; p++ {
			for _, cl := range cells {
				if phase(cl) != p {
					continue
				}
				f.run(t, cl, p < 2, secrets)
			}
		}

		// A foreign object answers exactly like a missing one.
		byKey := map[string]*cell{}
		for _, cl := range cells {
			if cl.axis == "missing" {
				byKey[fmt.Sprint(cl.row, cl.c)] = cl
			}
		}
		for _, cl := range cells {
			m := byKey[fmt.Sprint(cl.row, cl.c)]
			if !strings.HasPrefix(cl.axis, "foreign") || m == nil || cl.want != m.want || cl.want < 400 {
				continue
			}
			got := strings.ReplaceAll(string(cl.body), cl.obj, "<object>")
			want := strings.ReplaceAll(string(m.body), m.obj, "<object>")
			if diff := cmp.Diff(want, got); cl.status == m.status && diff != "" {
				t.Errorf("%s as %s: a %s object answers unlike a missing one (-missing +foreign):\n%s", authzTable[cl.row].name(), callerNames[cl.c], cl.axis, diff)
			}
		}
	})
}

// cells lays out the matrix's requests, checking the table as it goes: a
// non-operator's foreign cell must be written as its missing cell.
func (f *authzFixture) cells(t *testing.T) []*cell {
	var out []*cell
	for i, r := range authzTable {
		w, err := r.wants()
		if err != nil {
			t.Errorf("authzTable row %q: %v", r.name(), err)
			continue
		}
		for c := anon; c < nCallers; c++ {
			if r.obj == noObject {
				out = append(out, &cell{row: i, c: c, want: w[c][0]})
				continue
			}
			if c != operator && w[c][1] != w[c][2] {
				t.Errorf("authzTable row %q, %s: foreign %d but missing %d; a foreign object must answer like a missing one", r.name(), c, w[c][1], w[c][2])
			}
			own, ok := f.objs[r.obj][c]
			switch {
			case ok && w[c][0] == 0:
				t.Errorf("authzTable row %q, %s: owns a %s; give its status", r.name(), c, r.obj)
			case ok:
				out = append(out, &cell{row: i, c: c, axis: "own", owner: c, obj: own, want: w[c][0]})
			}
			for o := sellerA; o < nCallers; o++ {
				if v, ok := f.objs[r.obj][o]; ok && o != c {
					out = append(out, &cell{row: i, c: c, axis: "foreign (" + o.String() + "'s)", owner: o, obj: v, want: w[c][1]})
				}
			}
			out = append(out, &cell{row: i, c: c, axis: "missing", obj: missing[r.obj], want: w[c][2]})
		}
	}
	return out
}

// run sends one cell's request and checks its status; answers to anyone
// but the operator must not name another account's data (leaks, checked
// until writes start succeeding); a refused write must change nothing.
func (f *authzFixture) run(t *testing.T, cl *cell, checkLeaks bool, secrets map[string]caller) {
	t.Helper()
	r := authzTable[cl.row]
	method, pattern, _ := strings.Cut(r.route, " ")
	path := r.path
	if path == "" {
		path = pattern
		if i := strings.Index(path, "{"); i >= 0 {
			j := strings.Index(path[i:], "}")
			path = path[:i] + "{obj}" + path[i+j+1:]
		}
	}
	path = strings.ReplaceAll(path, "{obj}", cl.obj)
	var ctype, body string
	if r.body != nil {
		ctype, body = r.body(f, cl.c, cl.obj)
	}
	name := fmt.Sprintf("%s as %s", r.name(), cl.c)
	if cl.axis != "" {
		name += ", " + cl.axis
	}
	refusedWrite := method != "GET" && cl.want >= 300
	var before string
	if refusedWrite {
		before = tableDump(t, f.db)
	}
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok := f.tokens[cl.c]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	cl.status, cl.body = resp.StatusCode, buf.Bytes()
	if cl.status != cl.want {
		t.Errorf("%s: %d, want %d: %.300s", name, cl.status, cl.want, cl.body)
	}
	if refusedWrite {
		if after := tableDump(t, f.db); after != before {
			t.Errorf("%s: refused (%d), but it changed the tables (-before +after):\n%s", name, cl.status, cmp.Diff(strings.Split(before, "\n"), strings.Split(after, "\n")))
		}
	}
	if checkLeaks && cl.c != operator {
		seen := strings.ReplaceAll(string(cl.body), cl.obj, "")
		var leaked []string
		for s, owner := range secrets {
			if owner != cl.c && strings.Contains(seen, s) {
				leaked = append(leaked, fmt.Sprintf("%s's %q", owner, s))
			}
		}
		slices.Sort(leaked)
		if len(leaked) > 0 {
			t.Errorf("%s: the answer names another account's data: %s\n%.500s", name, strings.Join(leaked, ", "), cl.body)
		}
	}
}
