package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/web"
)

// browser is a headless Chromium with every request it makes recorded.
type browser struct {
	ctx context.Context
	mu  sync.Mutex
	// requests are the URLs of every request any page made.
	requests []string
	shots    string // where screenshots go
}

// newBrowser starts Debian's chromium. Without it the test skips on a
// developer's machine and fails in CI (make test installs it:
// scripts/deps.sh test).
func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v: %v; CI must run the portal tests (scripts/deps.sh test installs Debian's chromium)", errNoChromium, err)
		}
		t.Skipf("%v: install Debian's chromium (scripts/deps.sh test) to run the portal's browser tests", errNoChromium)
	}
	profile := t.TempDir()
	shots := os.Getenv("PIB_WEB_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	// Without the background-networking flags Chromium calls Google's
	// services; the closed test network refuses them, and the test that
	// pages load nothing from outside must see only the pages' requests.
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(profile), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true), chromedp.Flag("disable-default-apps", true),
	)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	b := &browser{ctx: ctx, shots: shots}
	// chromedp enables the Network domain on every tab it opens.
	err = chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			b.mu.Lock()
			b.requests = append(b.requests, e.Request.URL)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browser) run(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// get runs one action and returns its value.
func get[T any](t *testing.T, b *browser, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// axeSource is axe-core, vendored for the tests only (testdata/axe-core).
var axeSource = sync.OnceValues(func() ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", "axe-core", "axe.min.js"))
})

// checkA11y runs axe-core on the current page and fails the test on any
// serious or critical violation (WCAG A and AA rules, contrast among
// them). The script goes in through DevTools, not through the page, so
// the page's CSP still allows only pib's own script.
func (b *browser) checkA11y(t *testing.T, name string) {
	t.Helper()
	src, err := axeSource()
	if err != nil {
		t.Fatal(err)
	}
	b.run(t, chromedp.Evaluate[chromedp.Void](string(src)+"\n;undefined"))
	found := get(t, b, chromedp.Evaluate[[]string](`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}}).then(r =>
		r.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v =>
			v.id + " (" + v.impact + "): " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", ")))`, chromedp.EvalAwaitPromise))
	for _, v := range found {
		t.Errorf("%s page: accessibility: %s", name, v)
	}
}

// checkPage checks the current page's accessibility and saves its
// screenshots.
func (b *browser) checkPage(t *testing.T, name string) {
	t.Helper()
	b.checkA11y(t, name)
	b.screenshots(t, name)
	b.checkNoOutsideRequests(t, name)
}

// checkNoOutsideRequests: every request the browser made so far went to
// the origin of the page it shows (issue 12: the portal loads nothing from
// outside pib).
func (b *browser) checkNoOutsideRequests(t *testing.T, name string) {
	t.Helper()
	u, err := url.Parse(get(t, b, chromedp.Location()))
	if err != nil {
		t.Fatal(err)
	}
	origin := u.Scheme + "://" + u.Host + "/"
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, req := range b.requests {
		if !strings.HasPrefix(req, origin) {
			t.Errorf("%s: the browser requested %s, outside pib (%s)", name, req, origin)
		}
	}
}

// screenshots saves the current page at 1280 and 390 px wide as
// name-1280.png and name-390.png (test artifacts, not committed).
func (b *browser) screenshots(t *testing.T, name string) {
	t.Helper()
	for _, width := range []int64{1280, 390} {
		b.run(t, chromedp.EmulateViewport(width, 900))
		png := get(t, b, chromedp.FullScreenshot(100))
		file := filepath.Join(b.shots, fmt.Sprintf("%s-%d.png", name, width))
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", file)
	}
	b.run(t, chromedp.EmulateViewport(1280, 900))
}

// text is the visible text of the element sel.
func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	return get(t, b, chromedp.Text(chromedp.CSS(sel)))
}

// A seller signs in with its token, sees its groups on Scan status (not
// another seller's), sees them Building, presses Refresh status once the
// builds ended and sees Successful and Issues Found in place, opens the
// information icon's troubleshooting text, and signs out. No page loads
// anything from outside pib.
func TestSellerScanStatus(t *testing.T) {
	w := newWorld(t)
	w.submit("acme", "acme-app", "setup.sh")
	w.submit("acme", "acme-broken", "reboot.sh")
	w.submit("globex", "globex-secret", "setup.sh")
	b := newBrowser(t)

	b.run(t, chromedp.Navigate(w.url+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	loc := get(t, b, chromedp.Location())
	if loc != w.url+"/signin" {
		t.Fatalf("signed out, / went to %s, want /signin", loc)
	}
	b.checkPage(t, "signin")
	b.run(t,
		chromedp.SendKeys(chromedp.ID("token"), w.tokens["acme"]),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("groups")),
	)
	loc = get(t, b, chromedp.Location())
	if loc != w.url+"/status" {
		t.Fatalf("after sign-in at %s, want /status", loc)
	}
	header := b.text(t, "header")
	if !strings.Contains(header, "acme") || !strings.Contains(header, "seller") || !strings.Contains(header, "Scan status") {
		t.Errorf("header %q lacks the account, role or navigation", header)
	}
	groups := b.text(t, "#groups")
	for _, want := range []string{"acme-app", "acme-broken", "Building"} {
		if !strings.Contains(groups, want) {
			t.Errorf("Scan status %q lacks %q", groups, want)
		}
	}
	if strings.Contains(groups, "globex") {
		t.Errorf("acme's Scan status shows globex's group: %q", groups)
	}

	close(w.builder.gate)
	w.waitState("acme", "acme-app", pipeline.Successful)
	w.waitState("acme", "acme-broken", pipeline.GroupIssuesFound)
	// Refresh status swaps the groups in place (htmx): the page, and this
	// mark on it, stay.
	b.run(t,
		chromedp.Evaluate[chromedp.Void](`window.pibMark = true`),
		chromedp.Click(chromedp.CSS("form.refresh button")),
		chromedp.WaitVisible(`//details[contains(., "acme-app")]//span[contains(@class, "state-ok")]`),
	)
	if !get(t, b, chromedp.Evaluate[bool](`window.pibMark === true`)) {
		t.Error("Refresh status reloaded the whole page; want the groups swapped in place")
	}
	groups = b.text(t, "#groups")
	for _, want := range []string{"Successful", "Issues Found"} {
		if !strings.Contains(groups, want) {
			t.Errorf("after Refresh status %q lacks %q", groups, want)
		}
	}

	// Expand acme-broken and open its build's information icon.
	broken := `//details[contains(@class, "group")][.//span[text()="acme-broken"]]`
	b.run(t,
		chromedp.Click(broken+"/summary"),
		chromedp.WaitVisible(broken+"//table"),
		chromedp.Click(broken+`//details[contains(@class, "info")]/summary`),
		chromedp.WaitVisible(broken+`//p[contains(@class, "troubleshooting")]`),
	)
	trouble := get(t, b, chromedp.Text(broken+`//p[contains(@class, "troubleshooting")]`))
	if !strings.Contains(trouble, "I5") {
		t.Errorf("troubleshooting text %q does not name rule I5", trouble)
	}
	for _, want := range []string{"debian-12", "Issues found"} {
		if s := get(t, b, chromedp.Text(broken)); !strings.Contains(s, want) {
			t.Errorf("acme-broken's builds %q lack %q", s, want)
		}
	}
	b.run(t, chromedp.Click(`//details[contains(@class, "group")][.//span[text()="acme-app"]]/summary`))
	if s := b.text(t, "#groups"); !strings.Contains(s, goodImage) {
		t.Errorf("acme-app's build does not show its image ID: %q", s)
	}
	b.checkPage(t, "scan-status")

	b.run(t, chromedp.Click(chromedp.CSS("button.link-button")), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.Navigate(w.url+"/status"), chromedp.WaitVisible(chromedp.ID("token")))
	loc = get(t, b, chromedp.Location())
	if loc != w.url+"/signin" {
		t.Errorf("after sign-out /status is at %s, want the sign-in page", loc)
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.requests) == 0 {
		t.Fatal("no requests recorded")
	}
	for _, u := range b.requests {
		if !strings.HasPrefix(u, w.url+"/") {
			t.Errorf("a page requested %s, outside pib (%s)", u, w.url)
		}
	}
}

// Every form post needs its session's CSRF token: sign-out without it, or
// with another session's, is refused with 403 and the session lives on;
// sign-in needs the sign-in form's token.
func TestCSRF(t *testing.T) {
	w := newWorld(t)
	c := w.client()
	if resp, _ := c.post("/signin", url.Values{"token": {w.tokens["acme"]}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in without the form's token: %d, want 403", resp.StatusCode)
	}
	c.signIn("acme")
	other := w.client()
	other.signIn("globex")
	for name, form := range map[string]url.Values{
		"no token":              {},
		"empty token":           {"csrf": {""}},
		"another session's one": {"csrf": {other.csrf("/status")}},
	} {
		if resp, body := c.post("/signout", form); resp.StatusCode != http.StatusForbidden {
			t.Errorf("sign-out with %s: %d, want 403: %s", name, resp.StatusCode, body)
		}
	}
	if resp, _ := c.get("/status"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after refused sign-outs /status answers %d, want 200 (still signed in)", resp.StatusCode)
	}
	if resp, _ := c.post("/signout", url.Values{"csrf": {c.csrf("/status")}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out with the token: %d, want 303", resp.StatusCode)
	}
	if resp, _ := c.get("/status"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("after sign-out /status answers %d → %q, want 303 → /signin", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Every answer, page or asset, carries the security headers; the session
// cookie is HttpOnly and SameSite=Strict; /v1/ is still the API.
func TestHeaders(t *testing.T) {
	w := newWorld(t)
	c := w.client()
	c.get("/signin")
	resp, _ := c.post("/signin", url.Values{"csrf": {c.csrf("/signin")}, "token": {w.tokens["acme"]}})
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "pib_session" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" || cookie.Secure {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP", cookie)
	}
	for _, path := range []string{"/signin", "/status", "/static/pib.css", "/static/htmx-2.0.11.min.js", "/no-such-page"} {
		resp, _ := c.get(path)
		for h, want := range map[string]string{
			"Content-Security-Policy": web.CSP,
			"X-Frame-Options":         "DENY",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
		} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s: %s = %q, want %q", path, h, got, want)
			}
		}
	}
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(web.CSP, want) || strings.Contains(web.CSP, "unsafe-inline") {
			t.Errorf("CSP %q: want %q and no unsafe-inline", web.CSP, want)
		}
	}
	req, _ := http.NewRequest("GET", w.url+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+w.tokens["acme"])
	api, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	api.Body.Close()
	if api.StatusCode != 200 || !strings.HasPrefix(api.Header.Get("Content-Type"), "application/json") {
		t.Errorf("GET /v1/whoami through pib serve's handler: %d %s, want the API's JSON", api.StatusCode, api.Header.Get("Content-Type"))
	}
}

// A URL naming another seller's group gives the same page as a missing
// one; a buyer may not open a seller's page; the page is readable without
// JavaScript (the groups, builds and a plain GET Refresh form are in the
// HTML).
func TestIsolation(t *testing.T) {
	w := newWorld(t)
	mine := w.submit("acme", "acme-app", "setup.sh")
	theirs := w.submit("globex", "globex-secret", "setup.sh")
	c := w.client()
	c.signIn("acme")

	resp, body := c.get("/status/" + mine)
	if resp.StatusCode != 200 || !strings.Contains(body, "acme-app") || !strings.Contains(body, "debian-12") {
		t.Fatalf("own group page: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(body, `<form method="get" action="/status/`+mine+`"`) || !strings.Contains(body, "<details") {
		t.Errorf("the page needs JavaScript: no plain GET refresh form or no <details>: %s", body)
	}
	missing := "grp-" + strings.Repeat("0", len(theirs)-len("grp-"))
	for _, ref := range [][2]string{{theirs, missing}, {"globex-secret", "no-such-group"}} {
		r1, foreign := c.get("/status/" + ref[0])
		r2, absent := c.get("/status/" + ref[1])
		if r1.StatusCode != http.StatusNotFound || r2.StatusCode != http.StatusNotFound {
			t.Fatalf("foreign %s: %d, missing %s: %d; want 404 both", ref[0], r1.StatusCode, ref[1], r2.StatusCode)
		}
		if a, b := strings.ReplaceAll(foreign, ref[0], "REF"), strings.ReplaceAll(absent, ref[1], "REF"); a != b {
			t.Errorf("another seller's group %s reads unlike a missing one:\n%s\n---\n%s", ref[0], a, b)
		}
	}

	buyer := w.client()
	buyer.signIn("initech")
	if resp, _ := buyer.get("/status"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a buyer opening Scan status: %d, want 403", resp.StatusCode)
	}
	if resp, _ := buyer.get("/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/products" {
		t.Errorf("a buyer's start: %d → %q, want 303 → /products", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := buyer.get("/images"); resp.StatusCode != 200 || strings.Contains(body, "Scan status") {
		t.Errorf("a buyer's page: %d, navigation shows seller pages: %s", resp.StatusCode, body)
	}
}
