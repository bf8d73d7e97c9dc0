//go:build linux

// Package web is pib's portal (issue 12): the pages sellers, buyers and
// operators use in a browser, served by pib serve at / beside the REST API
// (Beside: /v1/…, /healthz and /metrics stay the API's).
//
// Pages are server-rendered html/template, readable without JavaScript.
// Templates, CSS and one script, htmx 2.0.11 (vendored from the npm
// registry with its licence, static/htmx-LICENSE.txt; no build step, no
// CDN: npm pack htmx.org@2.0.11, dist/htmx.min.js, sha256 d6fdc75f…f717),
// are embedded in the binary: a page loads nothing from outside pib.
// Every answer carries a strict Content-Security-Policy (CSP: 'self' only,
// no inline script or style), X-Frame-Options DENY with frame-ancestors
// 'none', nosniff and Referrer-Policy same-origin. htmx is configured
// (the htmx-config meta in layout.html) to add no inline style and to
// evaluate nothing.
//
// Sign-in takes an account token, pasted once and checked by
// accounts.Store.Authenticate, the API's own check; it is not kept. The
// session lives in memory (see sessions: a restart signs everyone out;
// several pib serve processes do not share sessions), ends after
// IdleTimeout without a request or at sign-out, and is named by an
// HttpOnly, SameSite=Strict cookie, Secure when the request came over TLS
// (behind a TLS-terminating proxy r.TLS is nil, so the cookie is not
// marked Secure: serve TLS from pib or add that when a proxy is used).
// Every POST carries a per-session CSRF token in a hidden field and is
// refused with 403 without it; the sign-in form, before any session, uses
// a double-submit cookie.
//
// Roles and ownership are not decided here: a page reads through the same
// api.Deps methods and domain stores as its API route (the Scan status
// page through Deps.ScanStatus and Deps.GroupStatus, as GET /v1/status),
// with the signed-in account as owner, and an error gets its status from
// api.StatusOf, the API's one table. So another account's object gives
// the same 404 page as a missing one.
//
// # Adding a page
//
//  1. A handler func(w, r, *session) error in a file named after the page
//     (status.go): read through api.Deps as the page's API route does,
//     return domain errors as they are (renderError shows them), render
//     with s.render(w, r, sess, status, "page.html", title, data).
//  2. Its row in routes (pattern and roles) and, if it is a top page, its
//     link in nav for its role. A page doing the work of an API route
//     sets api to that route (its audit action, success status and
//     othersData): its requests are then audited exactly as the API
//     audits the route (audit.go); a handler names the object and its
//     owner with noteObject where the path does not. Every POST is
//     audited, with or without api.
//  3. templates/page.html defining "content" (the layout is
//     layout.html); a form that posts includes
//     <input type="hidden" name="csrf" value="{{.CSRF}}">. Every control
//     has a label; no inline style or script (the CSP refuses them).
//  4. A test in the page's own _test.go file driving it in Chromium (newBrowser) that calls
//     checkPage on it (axe-core check, screenshots at 1280 and 390 px),
//     and a cross-account case for any URL that names an object.
//
// # What is built
//
// Sign-in, sign-out and every page of issue 12. Seller: Scan status
// (Refresh status in place with htmx; while a build is in progress the
// groups poll every 2 s with hx-trigger — server-sent events would need
// htmx's SSE extension, a second vendored script — and in-progress groups
// show open, so a group collapses when it ends); Packages (upload is a
// plain multipart post streamed into Packages.Upload; its progress is the
// browser's own: an htmx progress bar needs a script listening to
// htmx:xhr:progress, which the CSP's no-inline, no-eval rule leaves no
// place for); Start package (N1 checked as you type, errors beside their
// fields with the rule ID; the group is submitted from Scan status); the
// Build page (build.go) and Load forms (loadforms.go). Buyer (buyer.go):
// the catalog through catalog.Store with the viewer, subscriptions, gold
// images through images.Store (another account's image is not found) and
// api.Deps.CheckImport/ImportImage (POST /v1/images's checks, limit and
// refusals), and private builds through privatebuilds.Service, whose
// refusals (C2, C4, C5) the Private image configuration page shows next
// to its form with their reason, rule and field; an upload (route.upload)
// is a multipart form streamed to a temporary file, its CSRF token its
// first part; a private build page refreshes on request only. Operator:
// OS versions and their base images (add one), the investigation queue
// (retry, resolve with a note, overdue flag), change requests (diff,
// approve, reject with a reason) and the audit log (filters: account,
// since; the 200 newest matching rows, no paging: audit.List has no
// cursor). Every POST and every operator read of another account's data
// is an audit row (audit.go), with a request ID of its own sent in
// X-Request-Id; a route that does an API route's work names it
// (route.api), so its row carries the API's action.
//
// Each page a test opens is checked with axe-core 4.14.1 (vendored for the
// tests only, testdata/axe-core, MPL-2.0): no serious or critical
// violation of the WCAG 2.1 A/AA and best-practice rules.
//
// Signed-in buyers start at Products, operators at the investigation
// queue.
package web
