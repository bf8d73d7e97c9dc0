package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/xuri/excelize/v2"

	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/testbuild"
)

// fakeVulns are the vulnerabilities every fake scan reports.
var fakeVulns = []scan.Finding{
	{ID: "CVE-2024-0001", Package: "openssl", InstalledVersion: "3.0.11-1", FixedVersion: "3.0.14-1", Severity: scan.High, Summary: "buffer overread", Locations: []string{"/var/lib/dpkg/status"}},
	{ID: "CVE-2024-0002", Package: "zlib", InstalledVersion: "1.2.13", Severity: scan.Medium},
	{ID: "CVE-2024-0003", Package: "bash", InstalledVersion: "5.2-1", FixedVersion: "5.2-3", Severity: scan.Low},
	{ID: "CVE-2024-0004", Package: "curl", InstalledVersion: "7.88.1", FixedVersion: "7.88.2", Severity: scan.High},
}

// fakeScanReport is the stored scan report (testbuild.ScanReport) of a
// fake scan: fakeVulns, two policy checks and both SBOMs, kept in the
// image store's blobs as the real scanner keeps them.
func fakeScanReport(ctx context.Context, is *images.Store, imageID string) (json.RawMessage, error) {
	rep := testbuild.ScanReport{
		Report: &scan.Report{
			Status: scan.Successful, ImageID: imageID, Packages: 42, Vulnerabilities: fakeVulns,
			Policy: []scan.CheckResult{
				{Rule: "S3", Passed: true, Message: "SSH password authentication is disabled"},
				{Rule: "S3", Passed: true, Message: "the root password is locked"},
			},
			Warnings: []string{"OSV has no vulnerability data for hobbyos 1"},
		},
		SBOMs: map[string]string{},
	}
	for format, body := range map[string]string{
		scan.CycloneDXJSON: `{"bomFormat":"CycloneDX","specVersion":"1.6","image":"` + imageID + `"}`,
		scan.SPDXJSON:      `{"spdxVersion":"SPDX-2.3","name":"` + imageID + `"}`,
	} {
		h, _, err := is.Blobs().Put(ctx, strings.NewReader(body), v1.Hash{})
		if err != nil {
			return nil, err
		}
		rep.SBOMs[format] = h.String()
	}
	return json.Marshal(rep)
}

// buildOf is the ID of the only build of seller's group.
func (w *world) buildOf(seller, group string) string {
	w.t.Helper()
	bs, err := w.deps.Builds.Builds(context.Background(), w.ids[seller], group)
	if err != nil || len(bs) != 1 {
		w.t.Fatalf("builds of %s: %v %v", group, bs, err)
	}
	return bs[0].ID
}

// apiGet answers GET path of the API with seller's token.
func (w *world) apiGet(seller, path string) []byte {
	w.t.Helper()
	req, _ := http.NewRequest("GET", w.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+w.tokens[seller])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		w.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return body
}

// signIn signs the browser in as account name.
func (b *browser) signIn(t *testing.T, w *world, name string) {
	t.Helper()
	b.run(t, chromedp.Navigate(w.url+"/signin"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), w.tokens[name]),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.CSS("header nav")))
}

// fetched is what a same-origin fetch from the page got.
type fetched struct {
	Status int    `json:"status"`
	Type   string `json:"type"`
	Body   string `json:"body"`
}

// fetch GETs href from the current page, with its cookies, as a download
// link does.
func (b *browser) fetch(t *testing.T, href string) fetched {
	t.Helper()
	return get(t, b, chromedp.Evaluate[fetched](fmt.Sprintf(`fetch(%q).then(async r => ({status: r.status, type: r.headers.get("content-type"), body: await r.text()}))`, href), chromedp.EvalAwaitPromise))
}

// A seller opens a failing build from Scan status (Issues found, its
// information text) and sees its I5 finding with what to change; opens a
// scanned build and sees its vulnerabilities, chart, policy checks, log
// and changed files; filters and sorts the table (GET parameters, no
// script); downloads both SBOMs, the API's bytes. Another seller's build
// reads as a missing one.
func TestSellerBuildPage(t *testing.T) {
	w := newWorld(t)
	app := w.submit("acme", "acme-app", "setup.sh")
	broken := w.submit("acme", "acme-broken", "reboot.sh")
	theirs := w.submit("globex", "globex-app", "setup.sh")
	close(w.builder.gate)
	w.waitState("acme", app, pipeline.Successful)
	w.waitState("acme", broken, pipeline.GroupIssuesFound)
	w.waitState("globex", theirs, pipeline.Successful)
	appBuild, brokenBuild := w.buildOf("acme", app), w.buildOf("acme", broken)

	b := newBrowser(t)
	b.signIn(t, w, "acme")
	b.run(t, chromedp.Navigate(w.url+"/status"), chromedp.WaitVisible(chromedp.ID("groups")))
	row := `//details[contains(@class, "group")][.//span[text()="acme-broken"]]`
	b.run(t,
		chromedp.Click(row+"/summary"),
		chromedp.Click(row+`//details[contains(@class, "info")]/summary`),
		chromedp.WaitVisible(row+`//p[contains(@class, "troubleshooting")]`),
	)
	if s := get(t, b, chromedp.Text(row)); !strings.Contains(s, "Issues found") || !strings.Contains(s, "I5") {
		t.Errorf("acme-broken on Scan status %q lacks Issues found or its I5 text", s)
	}
	b.run(t, chromedp.Click(row+`//a[contains(@href, "/builds/")]`), chromedp.WaitVisible(chromedp.ID("findings-h")))
	if loc := get(t, b, chromedp.Location()); loc != w.url+"/builds/"+brokenBuild {
		t.Errorf("the build link went to %s, want /builds/%s", loc, brokenBuild)
	}
	main := b.text(t, "main")
	for _, want := range []string{"I5", "the installer tried to reboot", "reboot -f", "What to change", "do not reboot", "rebooting", "Issues found"} {
		if !strings.Contains(main, want) {
			t.Errorf("the failing build's page lacks %q: %s", want, main)
		}
	}
	b.checkPage(t, "build-issues")

	// The page for a missing object (and so for another account's): an
	// error page held to the same checks as every other.
	b.run(t, chromedp.Navigate(w.url+"/builds/b-0000000000000000"), chromedp.WaitVisible(chromedp.CSS("main")))
	if got := b.text(t, "main"); !strings.Contains(got, "not found") {
		t.Errorf("a missing build's page says %q, want a not-found message", got)
	}
	b.checkPage(t, "not-found")

	b.run(t, chromedp.Navigate(w.url+"/builds/"+appBuild), chromedp.WaitVisible(chromedp.ID("vulnerabilities")))
	main = b.text(t, "main")
	for _, want := range []string{goodImage, "Successful", "/opt/app (added)", "installed", "SSH password authentication is disabled", "What the scan could not do", "OSV has no vulnerability data for hobbyos 1", "3.0.14-1", "no fix yet", "/var/lib/dpkg/status", "CycloneDX JSON", "SPDX JSON"} {
		if !strings.Contains(main, want) {
			t.Errorf("the build page lacks %q: %s", want, main)
		}
	}
	chart := get(t, b, chromedp.Evaluate[string](`document.querySelector("svg.chart title").textContent`))
	if !strings.Contains(chart, "High 2") || !strings.Contains(chart, "Medium 1") || !strings.Contains(chart, "Critical 0") {
		t.Errorf("chart title %q: want the counts by severity", chart)
	}
	ids := func() string {
		return get(t, b, chromedp.Evaluate[string](`[...document.querySelectorAll("table.vulns tbody tr td:first-child code")].map(c => c.textContent).join(" ")`))
	}
	if got, want := ids(), "CVE-2024-0001 CVE-2024-0004 CVE-2024-0002 CVE-2024-0003"; got != want {
		t.Errorf("by severity: %q, want %q", got, want)
	}
	b.checkPage(t, "build")

	b.run(t, chromedp.SetValue(chromedp.ID("severity"), "High"), chromedp.Click(chromedp.CSS("form.filter button")),
		chromedp.WaitReady(`//option[@value="High"][@selected]`))
	if got, want := ids(), "CVE-2024-0001 CVE-2024-0004"; got != want {
		t.Errorf("filtered to High: %q, want %q", got, want)
	}
	b.run(t, chromedp.Click(`//table[contains(@class, "vulns")]//th/a[contains(., "Package")]`),
		chromedp.WaitVisible(`//th[@aria-sort][contains(., "Package")]`))
	if loc := get(t, b, chromedp.Location()); !strings.Contains(loc, "sort=package") || !strings.Contains(loc, "severity=High") {
		t.Errorf("sorted by package at %s: want sort and severity in the query", loc)
	}
	if got, want := ids(), "CVE-2024-0004 CVE-2024-0001"; got != want {
		t.Errorf("High sorted by package (curl, openssl): %q, want %q", got, want)
	}

	for format, ctype := range map[string]string{"cyclonedx-json": "application/vnd.cyclonedx+json", "spdx-json": "application/spdx+json"} {
		href := get(t, b, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector('a[href$="/sbom/%s"]').getAttribute("href")`, format)))
		got := b.fetch(t, href)
		want := w.apiGet("acme", "/v1/builds/"+appBuild+"/sbom?format="+format)
		if got.Status != 200 || got.Type != ctype || got.Body != string(want) {
			t.Errorf("SBOM %s download: %d %s %q, want 200 %s %q", format, got.Status, got.Type, got.Body, ctype, want)
		}
	}

	// Cross-account: globex's build, and its SBOM, read as missing ones.
	c := w.client()
	c.signIn("acme")
	foreign := w.buildOf("globex", theirs)
	missing := foreign[:4] + strings.Repeat("0", len(foreign)-4)
	for _, suffix := range []string{"", "/sbom/cyclonedx-json"} {
		r1, a := c.get("/builds/" + foreign + suffix)
		r2, m := c.get("/builds/" + missing + suffix)
		if r1.StatusCode != http.StatusNotFound || r2.StatusCode != http.StatusNotFound {
			t.Fatalf("foreign build%s: %d, missing: %d; want 404 both", suffix, r1.StatusCode, r2.StatusCode)
		}
		if a, m := strings.ReplaceAll(a, foreign, "REF"), strings.ReplaceAll(m, missing, "REF"); a != m {
			t.Errorf("another seller's build%s reads unlike a missing one:\n%s\n---\n%s", suffix, a, m)
		}
	}
	if resp, body := c.get("/builds/" + appBuild + "?severity=Dire"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an unknown severity: %d, want 400: %s", resp.StatusCode, body)
	}
}

// A seller downloads the load form (the API's bytes), uploads one with an
// error and sees the cell, on a page without script; a multipart post
// without the CSRF token is refused.
func TestSellerLoadForms(t *testing.T) {
	w := newWorld(t)
	app := w.submit("acme", "acme-app", "setup.sh")
	close(w.builder.gate)
	w.waitState("acme", app, pipeline.Successful)

	b := newBrowser(t)
	b.signIn(t, w, "acme")
	b.run(t, chromedp.Click(`//nav//a[text()="Load forms"]`), chromedp.WaitVisible(chromedp.ID("upload-h")))
	if !strings.Contains(b.text(t, "main"), "No change requests yet") {
		t.Errorf("Load forms lists change requests acme has not made: %s", b.text(t, "main"))
	}
	b.checkPage(t, "load-forms")

	tmpl := w.apiGet("acme", "/v1/load-form")
	got := get(t, b, chromedp.Evaluate[fetched](`fetch("/load-forms/template").then(async r => ({status: r.status, type: r.headers.get("content-type"),
		body: btoa(String.fromCharCode(...new Uint8Array(await r.arrayBuffer())))}))`, chromedp.EvalAwaitPromise))
	if got.Status != 200 || !strings.HasPrefix(got.Type, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet") {
		t.Fatalf("load form download: %d %s", got.Status, got.Type)
	}
	if xlsxRows(t, decode64(t, got.Body)) != xlsxRows(t, tmpl) {
		t.Errorf("the portal's load form differs from GET /v1/load-form's")
	}

	// A new product without a version title: the refusal names D2.
	bad := filepath.Join(t.TempDir(), "filled.xlsx")
	if err := os.WriteFile(bad, fillRow(t, tmpl, map[loadform.Column]string{
		loadform.ColRequest: "new product", loadform.ColProductTitle: "Acme App", loadform.ColPackageGroup: "acme-app", loadform.ColPlatform: "linux",
	}), 0o644); err != nil {
		t.Fatal(err)
	}
	b.run(t, chromedp.SetUploadFiles(chromedp.CSS(`input[type="file"]`), []string{bad}),
		chromedp.Click(`//form[@enctype="multipart/form-data"]//button`),
		chromedp.WaitVisible(chromedp.ID("refused")))
	refused := b.text(t, "#refused")
	if !strings.Contains(refused, "Products!D2") {
		t.Errorf("the refusal %q does not name cell Products!D2", refused)
	}
	b.checkPage(t, "load-forms-refused")

	c := w.client()
	c.signIn("acme")
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("form", "filled.xlsx")
	fw.Write(tmpl)
	mw.Close()
	resp, err := c.c.Post(w.url+"/load-forms", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("an upload without the CSRF token: %d, want 403", resp.StatusCode)
	}
}

func decode64(t *testing.T, s string) []byte {
	t.Helper()
	out, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fillRow writes one Products row at line 2 of the load form tmpl.
func fillRow(t *testing.T, tmpl []byte, row map[loadform.Column]string) []byte {
	t.Helper()
	xf, err := excelize.OpenReader(bytes.NewReader(tmpl))
	if err != nil {
		t.Fatal(err)
	}
	defer xf.Close()
	for _, c := range loadform.Columns {
		if v, ok := row[c]; ok {
			if err := xf.SetCellStr(loadform.ProductsSheet, c.Letter()+"2", v); err != nil {
				t.Fatal(err)
			}
		}
	}
	buf, err := xf.WriteToBuffer()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// xlsxRows is every cell of every sheet of a workbook, to compare two.
func xlsxRows(t *testing.T, data []byte) string {
	t.Helper()
	xf, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer xf.Close()
	var b strings.Builder
	for _, sheet := range xf.GetSheetList() {
		rows, err := xf.GetRows(sheet)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %q\n", sheet, rows)
	}
	return b.String()
}
