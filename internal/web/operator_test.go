package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/pipeline"
)

// addOperator adds the operator account ops to w.
func (w *world) addOperator() {
	w.t.Helper()
	a, token, err := w.deps.Accounts.Create(context.Background(), "ops", accounts.Operator)
	if err != nil {
		w.t.Fatal(err)
	}
	w.tokens["ops"], w.ids["ops"] = token, a.ID
}

// pendingChange builds acme's group AcmeDB1_0Linux1 (software version
// 1.0) to Successful and submits a new product on it: a pending change
// request, whose ID it returns.
func (w *world) pendingChange() string {
	w.t.Helper()
	ctx := context.Background()
	owner := w.ids["acme"]
	pkg, err := w.deps.Packages.Upload(ctx, owner, "setup.sh", strings.NewReader("#!/bin/sh\necho db\n"))
	if err != nil {
		w.t.Fatal(err)
	}
	g, err := w.deps.Groups.Create(ctx, owner, groups.Spec{Name: "AcmeDB1_0Linux1", Platform: "linux", OSVersions: []string{"debian-12"},
		PackageIDs: []string{pkg.ID}, InstallerID: pkg.ID, SoftwareVersion: "1.0"})
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.deps.Pipeline.Submit(ctx, owner, g.ID); err != nil {
		w.t.Fatal(err)
	}
	w.waitState("acme", g.ID, pipeline.Successful)
	seller, err := w.deps.Accounts.Authenticate(ctx, w.tokens["acme"])
	if err != nil {
		w.t.Fatal(err)
	}
	ch, err := w.deps.Catalog.Submit(ctx, seller, []catalog.RowInput{{Row: catalog.Row{Line: 7, Request: catalog.NewProduct,
		ProductTitle: "Acme DB", VersionTitle: "1.0", ReleaseNotes: "First release.", UsageInstructions: "Run acme --help.",
		PackageGroup: g.Name, ShortDescription: "A database.", LongDescription: "A database that scales.", Highlights: []string{"Fast"},
		Category: "Databases", SupportContact: "support@acme.example", EULAURL: "https://acme.example/eula"},
		Cell: func(string) string { return "Products!A7" }}})
	if err != nil {
		w.t.Fatal(err)
	}
	return ch.ID
}

// An operator signs in, finds a build a failing builder sent to
// Investigating in the queue, retries it (it then builds Successful),
// approves a change request after reading its diff, adds an OS version,
// and finds those actions, as the API would have recorded them, in the
// audit log. Each page passes the accessibility check.
func TestOperatorPages(t *testing.T) {
	w := newWorld(t)
	w.addOperator()
	w.builder.crashes.Store(1)
	close(w.builder.gate)
	crashed := w.submit("acme", "acme-crash", "crash.sh")
	w.waitState("acme", crashed, pipeline.Investigating)
	change := w.pendingChange()
	b := newBrowser(t)

	b.run(t, chromedp.Navigate(w.url+"/signin"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), w.tokens["ops"]),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(`//h1[text()="Investigations"]`),
	)
	queue := b.text(t, "main")
	for _, want := range []string{"acme-crash", "debian-12", "lost its sandbox", w.ids["acme"]} {
		if !strings.Contains(queue, want) {
			t.Errorf("investigation queue %q lacks %q", queue, want)
		}
	}
	if strings.Contains(queue, "Overdue") {
		t.Errorf("an investigation opened just now is flagged overdue: %q", queue)
	}
	b.checkPage(t, "investigations")
	b.run(t, chromedp.Click(`//section[contains(., "acme-crash")]//button[contains(., "Retry")]`),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	if s := b.text(t, ".notice"); !strings.Contains(s, "retried") {
		t.Errorf("after Retry the page says %q, want retried", s)
	}
	w.waitState("acme", crashed, pipeline.Successful)

	b.run(t, chromedp.Click(`//nav//a[text()="Change requests"]`), chromedp.WaitVisible(`//h1[text()="Change requests"]`))
	if s := b.text(t, "main"); !strings.Contains(s, change) || !strings.Contains(s, "pending") || !strings.Contains(s, "Acme DB") {
		t.Errorf("change requests %q lack %s pending with its diff", s, change)
	}
	b.checkPage(t, "changes")
	b.run(t, chromedp.Click(`//a[contains(., "`+change+`")]`), chromedp.WaitVisible(chromedp.ID("reason")))
	b.checkPage(t, "change")
	b.run(t, chromedp.Click(`//button[text()="Approve"]`), chromedp.WaitVisible(chromedp.CSS(".notice")))
	if s := b.text(t, "main"); !strings.Contains(s, "approved") {
		t.Errorf("after Approve the page says %q, want approved", s)
	}

	b.run(t, chromedp.Click(`//nav//a[text()="OS versions"]`), chromedp.WaitVisible(chromedp.ID("name")))
	b.checkPage(t, "os-versions")
	b.run(t, chromedp.SendKeys(chromedp.ID("name"), "debian-12-slim"),
		chromedp.Click(`//button[text()="Add OS version"]`), chromedp.WaitVisible(chromedp.CSS(".notice")))
	if s := b.text(t, "main"); !strings.Contains(s, "debian-12-slim") {
		t.Errorf("after adding an OS version the page %q lacks it", s)
	}

	b.run(t, chromedp.Click(`//nav//a[text()="Audit log"]`), chromedp.WaitVisible(chromedp.ID("account")),
		chromedp.SendKeys(chromedp.ID("account"), "ops"),
		chromedp.SendKeys(chromedp.ID("since"), time.Now().Add(-time.Hour).UTC().Format("2006-01-02T15:04")),
		// The unfiltered page has a table too: wait for the filtered one.
		chromedp.Click(`//button[text()="Filter"]`), chromedp.WaitVisible(`//input[@id="account"][@value="ops"]`), chromedp.WaitVisible(`//table`))
	log := b.text(t, "table")
	for _, want := range []string{
		"GET /v1/investigations", "POST /v1/investigations/{build}/retry", "GET /v1/changes", "GET /v1/changes/{id}",
		"POST /v1/changes/{id}/approve", "POST /v1/os-versions", change, "debian-12-slim", "req-",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("audit log %q lacks %q", log, want)
		}
	}
	b.checkPage(t, "audit")
}

// The portal's audit rows are the API's: the same action, object, owner
// and result for the same request, here an operator's reject of a change
// request (and its refusal without a reason) and a seller's post to an
// operator page.
func TestOperatorAuditRows(t *testing.T) {
	w := newWorld(t)
	w.addOperator()
	close(w.builder.gate)
	change := w.pendingChange()
	ops := w.client()
	ops.signIn("ops")
	token := ops.csrf("/changes/" + change)
	if resp, body := ops.post("/changes/"+change+"/reject", url.Values{"csrf": {token}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("reject without a reason: %d, want 400: %s", resp.StatusCode, body)
	}
	resp, body := ops.post("/changes/"+change+"/reject", url.Values{"csrf": {token}, "reason": {"Add a logo."}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reject: %d, want 303: %s", resp.StatusCode, body)
	}
	if _, body := ops.get("/changes/" + change); !strings.Contains(body, "Add a logo.") || !strings.Contains(body, "rejected") {
		t.Errorf("rejected change request page lacks its reason: %s", body)
	}
	seller := w.client()
	seller.signIn("acme")
	if resp, _ := seller.post("/changes/"+change+"/approve", url.Values{"csrf": {seller.csrf("/status")}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a seller approving: %d, want 403", resp.StatusCode)
	}

	entries, err := w.deps.Audit.List(context.Background(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		account, action, object, owner string
		result                         int
	}
	var got []row
	for _, e := range entries {
		if e.RequestID == "" || !strings.HasPrefix(e.RequestID, "req-") {
			t.Errorf("audit entry %+v has no request ID", e)
		}
		got = append(got, row{e.AccountName, e.Action, e.Object, e.Owner, e.Result})
	}
	acme := w.ids["acme"]
	for _, want := range []row{
		{"ops", "GET /v1/changes/{id}", change, acme, 200},
		{"ops", "POST /v1/changes/{id}/reject", change, acme, 400},
		{"ops", "POST /v1/changes/{id}/reject", change, acme, 200},
		{"acme", "POST /v1/changes/{id}/approve", change, "", 403},
	} {
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("no audit row %+v in %+v", want, got)
		}
	}
}

// A seller or a buyer opening an operator page gets 403, as the API
// answers them on the operators' routes; without a session the page
// sends to sign-in.
func TestOperatorPagesRefused(t *testing.T) {
	w := newWorld(t)
	pages := []string{"/os-versions", "/investigations", "/changes", "/changes/chg-00000000000000000", "/audit"}
	for _, name := range []string{"acme", "initech"} {
		c := w.client()
		c.signIn(name)
		for _, p := range pages {
			if resp, body := c.get(p); resp.StatusCode != http.StatusForbidden || strings.Contains(body, "Audit log") {
				t.Errorf("%s opening %s: %d, want 403 without the operators' navigation", name, p, resp.StatusCode)
			}
		}
	}
	anon := w.client()
	for _, p := range pages {
		if resp, _ := anon.get(p); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
			t.Errorf("signed out %s: %d → %q, want 303 → /signin", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// Resolving an investigation needs a note (pipeline.Resolve's rule, 400
// without one); with one, the build ends Issues found and the seller reads
// the note as its troubleshooting text.
func TestResolveInvestigation(t *testing.T) {
	w := newWorld(t)
	w.addOperator()
	w.builder.crashes.Store(1)
	close(w.builder.gate)
	group := w.submit("acme", "acme-crash", "crash.sh")
	w.waitState("acme", group, pipeline.Investigating)
	st, err := w.deps.GroupStatus(context.Background(), w.ids["acme"], group)
	if err != nil {
		t.Fatal(err)
	}
	build := st.Builds[0].ID
	ops := w.client()
	ops.signIn("ops")
	if _, body := ops.get("/investigations"); !strings.Contains(body, build) || strings.Contains(body, "Overdue") {
		t.Errorf("a new investigation is missing or flagged overdue: %s", body)
	}
	// 10 days on, at least 6 of them business days: past 4 business days.
	w.skew.Store(int64(10 * 24 * time.Hour))
	if _, body := ops.get("/investigations"); !strings.Contains(body, "Overdue") {
		t.Errorf("an investigation open 10 days is not flagged overdue: %s", body)
	}
	w.skew.Store(0)
	token := ops.csrf("/investigations")
	if resp, body := ops.post("/investigations/"+build+"/resolve", url.Values{"csrf": {token}, "note": {"  "}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "note") {
		t.Errorf("resolve without a note: %d, want 400 saying a note is needed: %s", resp.StatusCode, body)
	}
	if resp, body := ops.post("/investigations/"+build+"/resolve", url.Values{"csrf": {token}, "note": {"The base image was corrupt; submit again."}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("resolve: %d, want 303: %s", resp.StatusCode, body)
	}
	if _, body := ops.get("/investigations"); strings.Contains(body, build) {
		t.Errorf("a resolved investigation is still in the queue: %s", body)
	}
	if resp, body := ops.post("/investigations/"+build+"/retry", url.Values{"csrf": {token}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("retrying a resolved build: %d, want 409: %s", resp.StatusCode, body)
	}
	seller := w.client()
	seller.signIn("acme")
	if _, body := seller.get("/status/" + group); !strings.Contains(body, "Issues found") || !strings.Contains(body, "The base image was corrupt") {
		t.Errorf("the seller's page lacks the operator's note: %s", body)
	}
}

// Adding an OS version takes the API's checks (api.Deps.AddOSVersion): a
// bad name or an image the operator does not own is refused with 400, the
// form shown again with the error next to its field, and audited as the
// API would audit it.
func TestAddOSVersionRefused(t *testing.T) {
	w := newWorld(t)
	w.addOperator()
	ops := w.client()
	ops.signIn("ops")
	token := ops.csrf("/os-versions")
	for _, c := range []struct{ name, image, id string }{
		{"Debian 12", "debian-12", "name-error"},
		{"debian-13", "img-99999999999999999", "image-error"},
	} {
		resp, body := ops.post("/os-versions", url.Values{"csrf": {token}, "name": {c.name}, "image": {c.image}})
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="`+c.id+`"`) || !strings.Contains(body, `value="`+c.name+`"`) {
			t.Errorf("add %q on %q: %d, want 400 with #%s and the name kept: %s", c.name, c.image, resp.StatusCode, c.id, body)
		}
	}
	list, err := w.deps.Audit.List(context.Background(), audit.Filter{Account: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range list {
		if e.Action == "POST /v1/os-versions" && e.Result == http.StatusBadRequest {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d audit rows of refused POST /v1/os-versions, want 2: %+v", n, list)
	}
}
