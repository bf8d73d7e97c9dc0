package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/web"
	"github.com/pib-dev/pib/internal/webhook"
)

// benchGroups is how many groups the seller of BenchmarkPages has (issue
// 12's figure).
const benchGroups = 10000

// BenchmarkPages measures the server time of the Scan status page (its
// first page of groups) and of the audit log page, with 10,000 groups
// stored for one seller (through the groups store, never submitted) and
// 10,000 audit rows, on SQLite. It reports p50 and p99 per page, and the
// Scan status page's weight (HTML, CSS and JS bytes):
//
//	go test ./internal/web -run '^$' -bench Pages -benchtime 200x
func BenchmarkPages(b *testing.B) {
	ctx := context.Background()
	db := storetest.Open(b, store.SQLite)
	st := newStores(b, db)
	is, oses, ps, gs := st.images, st.oses, st.packages, st.groups
	p, err := pipeline.New(ctx, db, pipeline.Config{Builder: &fakeBuilder{gate: make(chan struct{})}, Scanner: passScanner{},
		Groups: gs, Packages: ps, OSVersions: oses, WorkDir: b.TempDir(), Logger: quietLogger(),
		Webhooks: webhook.New(db, webhook.Config{Logger: quietLogger()})})
	if err != nil {
		b.Fatal(err)
	}
	as := accounts.NewStore(db)
	log := audit.New(db)
	d := api.Deps{Accounts: as, Packages: ps, Groups: gs, OSVersions: oses, Images: is, Audit: log, Builds: p.Reader()}
	seller, sellerToken, err := as.Create(ctx, "acme", accounts.Seller)
	if err != nil {
		b.Fatal(err)
	}
	ops, opsToken, err := as.Create(ctx, "ops", accounts.Operator)
	if err != nil {
		b.Fatal(err)
	}
	pkg, err := ps.Upload(ctx, seller.ID, "setup.sh", strings.NewReader("#!/bin/sh\n"))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for i := range benchGroups {
		if _, err := gs.Create(ctx, seller.ID, groups.Spec{Name: fmt.Sprintf("acme-app-%05d", i), Platform: "linux",
			OSVersions: []string{"debian-12"}, PackageIDs: []string{pkg.ID}, InstallerID: pkg.ID}); err != nil {
			b.Fatal(err)
		}
		if err := log.Record(ctx, audit.Entry{RequestID: fmt.Sprintf("req-%024d", i), AccountID: ops.ID, AccountName: ops.Name,
			Role: string(ops.Role), Action: "GET /v1/builds/{id}", Object: fmt.Sprintf("b-%016x", i), Owner: seller.ID, Result: 200}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded %d groups and audit rows in %v", benchGroups, time.Since(start).Round(time.Millisecond))
	h := web.New(d)

	for _, pg := range []struct{ name, token, path string }{
		{"ScanStatus", sellerToken, "/status"},
		{"AuditLog", opsToken, "/audit"},
	} {
		cookie := benchSignIn(b, h, pg.token)
		var html int
		b.Run(pg.name, func(b *testing.B) {
			times := make([]time.Duration, 0, b.N)
			for range b.N {
				req := httptest.NewRequest("GET", pg.path, nil)
				req.AddCookie(cookie)
				rec := httptest.NewRecorder()
				t0 := time.Now()
				h.ServeHTTP(rec, req)
				times = append(times, time.Since(t0))
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s: %d %s", pg.path, rec.Code, rec.Body)
				}
				html = rec.Body.Len()
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(times[(len(times)*99)/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(html), "html-bytes")
		})
		if pg.name == "ScanStatus" {
			total := html
			for _, asset := range []string{"/static/pib.css", "/static/htmx-2.0.11.min.js"} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", asset, nil))
				total += rec.Body.Len()
			}
			b.Logf("Scan status page weight: %d bytes (HTML %d + CSS + JS), uncompressed", total, html)
		}
	}
}

// benchSignIn signs in through the portal's form and returns the session
// cookie.
func benchSignIn(b *testing.B, h http.Handler, token string) *http.Cookie {
	b.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/signin", nil))
	page, _ := io.ReadAll(rec.Body)
	m := csrfInput.FindSubmatch(page)
	if m == nil {
		b.Fatal("no csrf field on /signin")
	}
	form := url.Values{"csrf": {string(m[1])}, "token": {token}}
	req := httptest.NewRequest("POST", "/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range rec.Result().Cookies() {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	for _, c := range rec.Result().Cookies() {
		if c.Name == "pib_session" {
			return c
		}
	}
	b.Fatalf("sign-in: %d, no session cookie", rec.Code)
	return nil
}
