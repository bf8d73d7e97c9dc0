package web_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/pipeline"
)

// A seller signs in, uploads an installer on Packages, starts a package
// group (an invalid name first: the N1 error appears beside the field as
// it is typed), submits it on Scan status, and sees it go from Building to
// Successful without pressing Refresh status.
func TestSellerStartPackage(t *testing.T) {
	w := newWorld(t)
	b := newBrowser(t)
	installer := filepath.Join(t.TempDir(), "setup.sh")
	if err := os.WriteFile(installer, []byte("#!/bin/sh\necho installed\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	b.run(t,
		chromedp.Navigate(w.url+"/signin"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), w.tokens["acme"]),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("groups")),
		chromedp.Click(`//nav//a[text()="Packages"]`),
		chromedp.WaitVisible(chromedp.ID("file")),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{installer}),
		chromedp.Click(`//form[@action="/packages"]//button`),
		chromedp.WaitVisible(`//table[contains(@class, "packages")]//td[text()="setup.sh"]`),
	)
	if s := b.text(t, "main"); !strings.Contains(s, "Uploaded setup.sh") || !strings.Contains(s, "sha256:") {
		t.Errorf("Packages after the upload: %q lacks the notice or the digest", s)
	}
	b.checkPage(t, "packages")

	b.run(t,
		chromedp.Click(`//nav//a[text()="Start package"]`),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "acme app 1.0"),
		chromedp.WaitVisible(`#name-error .error`),
	)
	if s := b.text(t, "#name-error"); !strings.Contains(s, "N1") {
		t.Errorf("name error %q does not name rule N1", s)
	}
	if s := b.text(t, "main"); !strings.Contains(s, "<product><version><platform><revision>") {
		t.Errorf("Start package does not show the N3 convention: %q", s)
	}
	b.checkPage(t, "start-package")
	b.run(t,
		chromedp.Evaluate[chromedp.Void](`document.getElementById("name").value = ""`),
		chromedp.SendKeys(chromedp.ID("name"), "AcmeApp1_0Linux1"),
		chromedp.WaitNotPresent(`#name-error .error`),
	)
	b.run(t,
		chromedp.Click(chromedp.ID("os-debian-12")),
		chromedp.Click(`//label[starts-with(., "Installer")]`),
		chromedp.Click(`//form[@action="/start"]//button[text()="Create package group"]`),
		chromedp.WaitVisible(`//form[contains(@class, "submit-group")]//button`),
	)
	if loc := get(t, b, chromedp.Location()); !regexp.MustCompile(`/status/pg-[0-9a-f]+$`).MatchString(loc) {
		t.Errorf("after Start package at %s, want the group's Scan status", loc)
	}
	b.run(t,
		chromedp.Click(`//form[contains(@class, "submit-group")]//button`),
		chromedp.WaitVisible(`//details[contains(., "AcmeApp1_0Linux1")]//summary//span[text()="Building"]`),
		chromedp.Evaluate[chromedp.Void](`window.pibMark = true`),
	)
	b.checkPage(t, "scan-status-building")
	close(w.builder.gate)
	b.run(t, chromedp.WaitVisible(`//details[contains(., "AcmeApp1_0Linux1")]//summary//span[contains(@class, "state-ok")]`))
	if !get(t, b, chromedp.Evaluate[bool](`window.pibMark === true`)) {
		t.Error("Scan status reloaded the whole page to show Successful; want it updated in place")
	}
	if s := b.text(t, "#groups"); !strings.Contains(s, goodImage) {
		t.Errorf("after the live update %q lacks the image ID", s)
	}
	// Polling stops once nothing is in progress.
	if n := get(t, b, chromedp.Evaluate[int](`document.querySelectorAll("[hx-trigger^=every]").length`)); n != 0 {
		t.Errorf("%d elements still poll with every build ended", n)
	}
}

// upload posts file as the Packages form does (csrf first), without
// JavaScript.
func (c *client) upload(csrf, name string, content []byte) (*http.Response, string) {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if csrf != "" {
		mw.WriteField("csrf", csrf)
	}
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{`form-data; name="file"; filename="` + name + `"`}
	h["Content-Type"] = []string{"application/octet-stream"}
	pw, _ := mw.CreatePart(h)
	pw.Write(content)
	mw.Close()
	resp, err := c.c.Post(c.w.url+"/packages", mw.FormDataContentType(), &body)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp, out.String()
}

// Without JavaScript: uploads are refused by P5 with the error beside the
// file field and change nothing; a form without its CSRF field is
// refused; Start package shows each rule's error beside its field; a
// valid group opens on Scan status with a Submit button; submitting
// another seller's group reads exactly like a missing one.
func TestSellerFormsWithoutJS(t *testing.T) {
	w := newWorld(t)
	c := w.client()
	c.signIn("acme")
	csrf := c.csrf("/packages")

	for name, tc := range map[string]struct {
		file    string
		content string
		status  int
	}{
		"path separator": {`../evil.sh`, "x", http.StatusBadRequest},
		"control char":   {"a\x01.sh", "x", http.StatusBadRequest},
		"empty file":     {"empty.sh", "", http.StatusBadRequest},
	} {
		resp, body := c.upload(csrf, tc.file, []byte(tc.content))
		if resp.StatusCode != tc.status || !strings.Contains(body, `id="file-error"`) || !strings.Contains(body, "P5") {
			t.Errorf("upload %s: %d, want %d with a P5 error beside the file field: %s", name, resp.StatusCode, tc.status, body)
		}
	}
	if resp, _ := c.upload("", "setup.sh", []byte("#!/bin/sh\n")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("upload without the CSRF field: %d, want 403", resp.StatusCode)
	}
	if _, body := c.get("/packages"); !strings.Contains(body, "No packages yet") {
		t.Errorf("refused uploads left packages behind: %s", body)
	}
	resp, _ := c.upload(csrf, "setup.sh", []byte("#!/bin/sh\necho hi\n"))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("upload setup.sh: %d, want 303", resp.StatusCode)
	}
	// Every upload post is one audit row, refused or not (SPEC: every
	// state-changing request), written once by the page wrapper.
	rows, err := w.deps.Audit.List(context.Background(), audit.Filter{Account: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	var results []int
	for _, e := range rows {
		if e.Action == "POST /packages" {
			results = append(results, e.Result)
		}
	}
	if len(results) != 5 || results[0] != http.StatusSeeOther {
		t.Errorf("audit rows of the uploads (newest first): %v, want 5 with the last one 303", results)
	}
	_, page := c.get(resp.Header.Get("Location"))
	m := regexp.MustCompile(`id="inst-(pkg-[0-9a-f]+)"`).FindStringSubmatch(func() string { _, s := c.get("/start"); return s }())
	if m == nil || !strings.Contains(page, "setup.sh") {
		t.Fatalf("the upload is not listed on Packages or offered on Start package: %s", page)
	}
	pkg := m[1]

	good := url.Values{"csrf": {csrf}, "name": {"AcmeApp1Linux1"}, "platform": {"linux"}, "os_versions": {"debian-12"}, "package_ids": {pkg}, "installer_id": {pkg}}
	with := func(k string, v ...string) url.Values {
		f := url.Values{}
		for kk, vv := range good {
			f[kk] = vv
		}
		f[k] = v
		return f
	}
	withPlatform := func(p string) url.Values { f := with("platform", p); f.Set("action", "platform"); return f }
	for _, tc := range []struct {
		form       url.Values
		status     int
		rule, near string
	}{
		{with("name", "acme app"), http.StatusBadRequest, "N1", `aria-invalid="true"`},
		{with("os_versions"), http.StatusBadRequest, "P4", "OS versions"},
		{with("installer_id"), http.StatusBadRequest, "P1", "installer"},
		{with("platform", "windows"), http.StatusBadRequest, "P3", "debian-12"},
	} {
		resp, body := c.post("/start", tc.form)
		if resp.StatusCode != tc.status || !strings.Contains(body, `<span class="rule">`+tc.rule+`</span>`) || !strings.Contains(body, tc.near) {
			t.Errorf("Start package with %v: %d, want %d with rule %s beside its field: %s", tc.form, resp.StatusCode, tc.status, tc.rule, body)
		}
	}
	if _, body := c.get("/start/name?name=bad+name"); !strings.Contains(body, "N1") {
		t.Errorf("the name check as you type: %q lacks N1", body)
	}
	if _, body := c.get("/start/name?name=GoodName"); strings.Contains(body, `class="error"`) {
		t.Errorf("the name check of a valid name shows an error: %q", body)
	}
	// The platform button without JavaScript re-renders the form for that
	// platform, keeping what was typed, and creates nothing.
	if resp, body := c.post("/start", withPlatform("windows")); resp.StatusCode != http.StatusOK {
		t.Errorf("Show this platform's OS versions: %d", resp.StatusCode)
	} else if !strings.Contains(body, "No windows OS version") || !strings.Contains(body, `value="AcmeApp1Linux1"`) {
		t.Errorf("Show this platform's OS versions did not list windows's or lost the name: %s", body)
	}
	if resp, _ := c.post("/start", with("csrf")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("Start package without the CSRF field: %d, want 403", resp.StatusCode)
	}
	resp, _ = c.post("/start", good)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/status/pg-") {
		t.Fatalf("Start package: %d → %q, want 303 → /status/pg-…", resp.StatusCode, resp.Header.Get("Location"))
	}
	loc := resp.Header.Get("Location")
	if _, body := c.get(loc); !strings.Contains(body, "Draft") || !strings.Contains(body, `action="`+loc+`/submit"`) {
		t.Errorf("the new group's Scan status lacks Draft or its Submit form: %s", body)
	}
	if resp, body := c.post("/start", good); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "N2") {
		t.Errorf("Start package with a used name: %d, want 409 with N2: %s", resp.StatusCode, body)
	}

	theirs := w.submit("globex", "globex-secret", "setup.sh")
	missing := "pg-" + strings.Repeat("0", len(theirs)-len("pg-"))
	r1, foreign := c.post("/status/"+theirs+"/submit", url.Values{"csrf": {csrf}})
	r2, absent := c.post("/status/"+missing+"/submit", url.Values{"csrf": {csrf}})
	if r1.StatusCode != http.StatusNotFound || r2.StatusCode != http.StatusNotFound {
		t.Fatalf("submit another seller's group: %d, a missing one: %d; want 404 both", r1.StatusCode, r2.StatusCode)
	}
	if a, b := strings.ReplaceAll(foreign, theirs, "REF"), strings.ReplaceAll(absent, missing, "REF"); a != b {
		t.Errorf("another seller's group reads unlike a missing one:\n%s\n---\n%s", a, b)
	}
	if resp, _ := c.post(loc+"/submit", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("submit own group: %d, want 303", resp.StatusCode)
	}
	w.waitState("acme", "AcmeApp1Linux1", pipeline.Building)
	if _, body := c.get(loc); !strings.Contains(body, `hx-trigger="every 2s"`) {
		t.Errorf("Scan status with a build in progress does not poll: %s", body)
	}

	buyer := w.client()
	buyer.signIn("initech")
	for _, path := range []string{"/packages", "/start"} {
		if resp, _ := buyer.get(path); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a buyer opening %s: %d, want 403", path, resp.StatusCode)
		}
	}
}
