package client_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/inventories"
	"github.com/pib-dev/pib/internal/monitor"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/vulndb"
	"github.com/pib-dev/pib/internal/webhook"
)

func TestErrorAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		ctype  string
		body   string
		want   problem.Error
	}{
		{"pib's error body", 409, "application/json", `{"code":"conflict","rule":"P4","field":"os_versions","message":"register it again"}`,
			problem.Error{Code: problem.Conflict, Rule: "P4", Field: "os_versions", Message: "register it again", Status: 409}},
		{"not pib's JSON", 502, "text/html", "<h1>Bad Gateway</h1>\n",
			problem.Error{Code: problem.Internal, Message: "GET /v1/whoami: 502 Bad Gateway: <h1>Bad Gateway</h1>", Status: 502}},
		{"JSON without a code", 404, "application/json", `{"message":"nothing here"}`,
			problem.Error{Code: problem.Internal, Message: `GET /v1/whoami: 404 Not Found: {"message":"nothing here"}`, Status: 404}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			_, err := client.New(srv.URL, "pib_x").Whoami(context.Background())
			var pe *problem.Error
			if !errors.As(err, &pe) {
				t.Fatalf("got %v (%T), want a *problem.Error", err, err)
			}
			if diff := cmp.Diff(tc.want, *pe, cmpopts.IgnoreUnexported(problem.Error{})); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if !errors.Is(err, tc.want.Code) {
				t.Errorf("errors.Is(err, %q) is false", tc.want.Code)
			}
		})
	}
}

// server runs the real API on SQLite, with a submit-only pipeline (builds
// are made and stay Building) and a catalog that takes every group for
// Successful (allSuccessful), and returns its URL and the operator's
// client.
func server(t *testing.T) (string, *client.Client) {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite)
	dir := t.TempDir()
	bs, err := blobs.NewDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	as := accounts.NewStore(db)
	tokenFile := filepath.Join(dir, "operator.token")
	if err := as.EnsureOperator(ctx, tokenFile); err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ps := packages.NewStore(db, bs)
	oses := osversions.NewStore(db)
	gs := groups.NewStore(db, ps, oses)
	hooks := webhook.New(db, webhook.Config{AllowPrivate: true}) // the hook URL is loopback: no DNS in tests
	p, err := pipeline.New(ctx, db, pipeline.Config{Workers: -1, Groups: gs, OSVersions: oses, Webhooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	mon := monitor.New(db, monitor.Config{Inventories: inventories.New(db, bs), VulnDB: vulndb.New(db)})
	mon.SetAnnouncer(p)
	hs := httptest.NewServer(api.New(api.Deps{Accounts: as, Packages: ps, Groups: gs, OSVersions: oses,
		Images: images.NewStore(db, bs, filepath.Join(dir, "cache")), Audit: audit.New(db),
		Pipeline: p, Builds: p.Reader(), Webhooks: hooks,
		Catalog: catalog.New(db, catalog.Config{Groups: gs, Builds: allSuccessful{}, Decided: api.DecisionWebhook(p)}),
		Monitor: mon}))
	t.Cleanup(hs.Close)
	return hs.URL, client.New(hs.URL+"/", strings.TrimSpace(string(token)))
}

// rootfsTar is a root file system archive an image can be imported from.
func rootfsTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := "ID=debian\nVERSION_ID=12\n"
	tw.WriteHeader(&tar.Header{Name: "etc/os-release", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.Close()
	return buf.Bytes()
}

// counter counts the bytes an upload read, as a progress bar would.
type counter struct{ n int }

func (c *counter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

// wantCode fails unless err is a *problem.Error with code and status.
func wantCode(t *testing.T, what string, err error, code problem.Code, status int) {
	t.Helper()
	var pe *problem.Error
	if !errors.Is(err, code) || !errors.As(err, &pe) || pe.Status != status {
		t.Errorf("%s: %v (%T), want a %s *problem.Error with status %d", what, err, err, code, status)
	}
}

// TestAgainstAPI calls every method group against the real API: what goes
// over the wire decodes into the API's own types, and its errors into
// *problem.Error.
func TestAgainstAPI(t *testing.T) {
	ctx := context.Background()
	url, op := server(t)

	// Accounts and OS versions (operator).
	me := must[*accounts.Account](t, "Whoami")(op.Whoami(ctx))
	if me.Role != accounts.Operator {
		t.Fatalf("Whoami: %+v, want the operator", me)
	}
	created := must[*api.CreateAccountResponse](t, "CreateAccount")(op.CreateAccount(ctx, "acme", accounts.Seller))
	if created.Account.Name != "acme" || !strings.HasPrefix(created.Token, "pib_") {
		t.Fatalf("CreateAccount: %+v", created)
	}
	if list := must[[]*accounts.Account](t, "ListAccounts")(op.ListAccounts(ctx)); len(list) != 2 {
		t.Errorf("ListAccounts: %d accounts, want the operator and acme", len(list))
	}
	base := must[*images.Image](t, "ImportImage")(op.ImportImage(ctx, bytes.NewReader(rootfsTar(t)), -1, "debian-12"))
	v := must[*osversions.OSVersion](t, "AddOSVersion")(op.AddOSVersion(ctx, "debian-12", "debian-12"))
	if v.ImageID != base.ID || v.Platform != "linux" {
		t.Errorf("AddOSVersion: %+v, want image %s on linux", v, base.ID)
	}
	_, err := op.AddOSVersion(ctx, "debian-13", "nothing")
	wantCode(t, "AddOSVersion of a missing image", err, problem.Invalid, 400)
	if list := must[[]*osversions.OSVersion](t, "ListOSVersions")(op.ListOSVersions(ctx)); len(list) != 1 || list[0].Name != "debian-12" {
		t.Errorf("ListOSVersions: %+v", list)
	}

	// Packages and groups (seller).
	seller := client.New(url, created.Token)
	_, err = seller.CreateAccount(ctx, "sneaky", accounts.Seller)
	wantCode(t, "a seller's CreateAccount", err, problem.Forbidden, 403)
	script := "#!/bin/sh\necho hi\n"
	var progress counter
	inst := must[*packages.Package](t, "UploadPackage")(seller.UploadPackage(ctx, "setup.sh", io.TeeReader(strings.NewReader(script), &progress), int64(len(script))))
	if inst.Name != "setup.sh" || inst.Size != int64(len(script)) || progress.n != len(script) {
		t.Errorf("UploadPackage: %+v, %d bytes read, want setup.sh of %d bytes", inst, progress.n, len(script))
	}
	if got := must[*packages.Package](t, "Package")(seller.Package(ctx, inst.ID)); got.ID != inst.ID {
		t.Errorf("Package: %+v", got)
	}
	_, err = seller.Package(ctx, "pkg-0000000000000000")
	wantCode(t, "a missing Package", err, problem.NotFound, 404)
	if list := must[[]*packages.Package](t, "ListPackages")(seller.ListPackages(ctx)); len(list) != 1 {
		t.Errorf("ListPackages: %+v", list)
	}
	spec := groups.Spec{Name: "Acme1Linux1", Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: inst.ID}
	g := must[*groups.Group](t, "CreateGroup")(seller.CreateGroup(ctx, spec))
	_, err = seller.CreateGroup(ctx, spec)
	var pe *problem.Error
	if wantCode(t, "CreateGroup with a name used", err, problem.Conflict, 409); !errors.As(err, &pe) || pe.Rule != "N2" || pe.Field != "name" {
		t.Errorf("CreateGroup with a name used: %+v, want rule N2 on field name", pe)
	}
	spec.Name = "Acme1Linux2"
	must[*groups.Group](t, "CreateGroup")(seller.CreateGroup(ctx, spec))
	page := must[*api.Page[*groups.Group]](t, "ListGroups")(seller.ListGroups(ctx, client.Page{Limit: 1}))
	if len(page.Items) != 1 || page.NextCursor == "" {
		t.Fatalf("ListGroups, limit 1: %+v, want one group and a cursor", page)
	}
	page = must[*api.Page[*groups.Group]](t, "ListGroups")(seller.ListGroups(ctx, client.Page{Cursor: page.NextCursor}))
	if len(page.Items) != 1 || page.NextCursor != "" {
		t.Errorf("ListGroups, second page: %+v, want the other group and no cursor", page)
	}
	if got := must[*groups.Group](t, "Group")(seller.Group(ctx, "Acme1Linux1")); got.ID != g.ID {
		t.Errorf("Group by name: %+v, want %s", got, g.ID)
	}

	// Builds and the status view.
	builds := must[[]*pipeline.Build](t, "SubmitGroup")(seller.SubmitGroup(ctx, g.Name))
	if len(builds) != 1 || builds[0].OSName != "debian-12" {
		t.Fatalf("SubmitGroup: %+v", builds)
	}
	id := builds[0].ID
	st := must[*api.Page[*api.GroupStatus]](t, "Status")(seller.Status(ctx, client.StatusQuery{Group: g.Name}))
	if len(st.Items) != 1 || st.Items[0].ID != g.ID || len(st.Items[0].Builds) != 1 {
		t.Errorf("Status of one group: %+v", st)
	}
	if st = must[*api.Page[*api.GroupStatus]](t, "Status")(seller.Status(ctx, client.StatusQuery{Page: client.Page{Limit: 1000}})); len(st.Items) != 2 {
		t.Errorf("Status: %d groups, want 2", len(st.Items))
	}
	if gs := must[*api.GroupStatus](t, "GroupBuilds")(seller.GroupBuilds(ctx, g.Name)); len(gs.Builds) != 1 || gs.Builds[0].ID != id {
		t.Errorf("GroupBuilds: %+v", gs)
	}
	if hist := must[[]pipeline.Event](t, "GroupHistory")(seller.GroupHistory(ctx, g.Name)); len(hist) == 0 {
		t.Error("GroupHistory: no events after a submit")
	}
	if b := must[*pipeline.Build](t, "Build")(seller.Build(ctx, id)); b.ID != id {
		t.Errorf("Build: %+v", b)
	}
	if rep := must[*pipeline.Report](t, "BuildReport")(seller.BuildReport(ctx, id)); rep.BuildID != id {
		t.Errorf("BuildReport: %+v", rep)
	}
	var log bytes.Buffer
	if err := seller.BuildLog(ctx, id, &log); err != nil {
		t.Errorf("BuildLog: %v", err)
	}
	var sbom bytes.Buffer
	err = seller.BuildSBOM(ctx, id, "", &sbom)
	if wantCode(t, "BuildSBOM of a build not scanned", err, problem.NotFound, 404); sbom.Len() != 0 {
		t.Errorf("BuildSBOM wrote %q with an error answer", sbom.String())
	}
	err = seller.BuildSBOM(ctx, id, "pdf", &sbom)
	wantCode(t, "BuildSBOM as pdf", err, problem.Invalid, 400)

	// Investigations (operator).
	if list := must[[]pipeline.Investigation](t, "ListInvestigations")(op.ListInvestigations(ctx)); len(list) != 0 {
		t.Errorf("ListInvestigations: %+v, want none", list)
	}
	_, err = op.Retry(ctx, id)
	if err == nil || !errors.As(err, &pe) || pe.Status < 400 || pe.Status >= 500 {
		t.Errorf("Retry of a build not investigated: %v, want the caller's error", err)
	}
	_, err = op.Resolve(ctx, id, "nothing to do")
	if err == nil || !errors.As(err, &pe) || pe.Status < 400 || pe.Status >= 500 {
		t.Errorf("Resolve of a build not investigated: %v, want the caller's error", err)
	}

	// Monitoring (operator; S5).
	if res := must[*monitor.Result](t, "Rescan")(op.Rescan(ctx, "")); res.Images != 0 || res.NotMonitored != 0 {
		t.Errorf("Rescan: %+v, want nothing to re-match", res)
	}
	_, err = op.Rescan(ctx, "img-00000000000000fff")
	wantCode(t, "Rescan of an image that is not monitored", err, problem.NotFound, 404)
	_, err = seller.Rescan(ctx, "")
	wantCode(t, "Rescan by a seller", err, problem.Forbidden, 403)

	// Webhooks.
	hook := must[*api.Webhook](t, "SetWebhook")(seller.SetWebhook(ctx, "http://127.0.0.1:9/hook"))
	if hook.URL != "http://127.0.0.1:9/hook" || hook.Secret == "" {
		t.Errorf("SetWebhook: %+v, want the URL and a secret", hook)
	}
	if got := must[*api.Webhook](t, "Webhook")(seller.Webhook(ctx)); got.URL != hook.URL || got.Secret != "" {
		t.Errorf("Webhook: %+v, want the URL without the secret", got)
	}
	must[[]webhook.Delivery](t, "WebhookDeliveries")(seller.WebhookDeliveries(ctx))
	if err := seller.DeleteWebhook(ctx); err != nil {
		t.Errorf("DeleteWebhook: %v", err)
	}

	// Images: the seller's own.
	mine := must[*images.Image](t, "ImportImage")(seller.ImportImage(ctx, bytes.NewReader(rootfsTar(t)), -1, "mine"))
	_, err = seller.ImportImage(ctx, bytes.NewReader(rootfsTar(t)), -1, "mine")
	wantCode(t, "ImportImage with an alias taken", err, problem.Conflict, 409)
	if list := must[[]*images.Image](t, "ListImages")(seller.ListImages(ctx)); len(list) != 1 || list[0].ID != mine.ID {
		t.Errorf("ListImages: %+v, want only the seller's", list)
	}
	if got := must[*images.Image](t, "Image")(seller.Image(ctx, "mine")); got.ID != mine.ID {
		t.Errorf("Image: %+v", got)
	}
	_, err = seller.Image(ctx, "debian-12")
	wantCode(t, "the operator's Image", err, problem.NotFound, 404)
	var archive bytes.Buffer
	if err := seller.ExportImage(ctx, "mine", images.OCIArchive, &archive); err != nil || archive.Len() < 1024 {
		t.Errorf("ExportImage: %v, %d bytes", err, archive.Len())
	}
	if got := must[*images.Image](t, "RemoveImage")(seller.RemoveImage(ctx, "mine")); got.ID != mine.ID {
		t.Errorf("RemoveImage: %+v", got)
	}

	// The audit log (operator).
	rows := must[*api.Page[audit.Entry]](t, "Audit")(op.Audit(ctx, audit.Filter{Account: "acme", Since: time.Now().Add(-time.Hour), Limit: 2}))
	if len(rows.Items) != 2 || rows.Items[0].Action != "DELETE /v1/images/{ref}" {
		t.Errorf("Audit: %+v, want acme's last 2 rows, the image removal first", rows.Items)
	}
	_, err = op.Audit(ctx, audit.Filter{Limit: 5000})
	if wantCode(t, "Audit over the limit", err, problem.Invalid, 400); !errors.As(err, &pe) || pe.Field != "limit" {
		t.Errorf("Audit over the limit: %+v, want field limit", pe)
	}

	// No token, or an unknown one.
	_, err = client.New(url, "pib_unknown").Whoami(ctx)
	wantCode(t, "an unknown token", err, problem.Unauthenticated, 401)
	if _, err := client.New("", "pib_x").Whoami(ctx); err == nil || !strings.Contains(err.Error(), "PIB_SERVER") {
		t.Errorf("no server: %v, want it to say how to name one", err)
	}
}
