package api_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/webhook"
)

// send is one request; it returns the status and the X-Request-Id header.
func (e *env) send(method, path, token, ctype, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	// A client cannot choose its request ID.
	req.Header.Set("X-Request-Id", "req-forged")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Request-Id")
}

func (e *env) audit(query string) []audit.Entry {
	e.t.Helper()
	var page api.Page[audit.Entry]
	if code := e.call("GET", "/v1/audit"+query, e.operator, "", nil, &page); code != 200 {
		e.t.Fatalf("GET /v1/audit%s: %d", query, code)
	}
	return page.Items
}

// TestAuditLog: every write and every operator read of a seller's data is
// one audit row, with the request ID the client saw; a seller reading its
// own data is not; operators alone read the log (SPEC, roles and isolation).
func TestAuditLog(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnvWith(t, db, func(d *api.Deps) {
			// Submit-only: builds are made and stay Building.
			hooks := webhook.New(db, webhook.Config{})
			p, err := pipeline.New(ctx, db, pipeline.Config{Workers: -1, Groups: d.Groups, OSVersions: d.OSVersions, Webhooks: hooks})
			if err != nil {
				t.Fatal(err)
			}
			d.Pipeline, d.Builds, d.Webhooks = p, p.Reader(), hooks
		})
		seller := e.account("acme", accounts.Seller)
		var whoami accounts.Account
		e.call("GET", "/v1/whoami", seller, "", nil, &whoami)
		_, inst := e.upload(seller, "setup.sh", "#!/bin/sh\n")
		instID := inst["id"].(string)
		group := `{"name":"Acme1","platform":"linux","os_versions":["debian-12"],"installer_id":"` + instID + `"}`

		writes := []struct {
			name, method, path, token, ctype, body string
			action, object                         string // object "" when not checked
		}{
			{"create account", "POST", "/v1/accounts", e.operator, "application/json", `{"name":"globex","role":"buyer"}`, "POST /v1/accounts", ""},
			{"refused account", "POST", "/v1/accounts", seller, "application/json", `{"name":"x","role":"seller"}`, "POST /v1/accounts", ""},
			{"add OS version", "POST", "/v1/os-versions", e.operator, "application/json", `{"name":"debian-12","image":"debian-12"}`, "POST /v1/os-versions", "debian-12"},
			{"upload package", "POST", "/v1/packages?name=extra.txt", seller, "application/octet-stream", "data", "POST /v1/packages", ""},
			{"create group", "POST", "/v1/package-groups", seller, "application/json", group, "POST /v1/package-groups", ""},
			{"invalid group", "POST", "/v1/package-groups", seller, "application/json", `{"name":"bad name"}`, "POST /v1/package-groups", ""},
			{"submit group", "POST", "/v1/package-groups/Acme1/submit", seller, "", "", "POST /v1/package-groups/{ref}/submit", "Acme1"},
			{"set webhook", "PUT", "/v1/webhook", seller, "application/json", `{"url":"https://example.com/hook"}`, "PUT /v1/webhook", ""},
			{"delete webhook", "DELETE", "/v1/webhook", seller, "", "", "DELETE /v1/webhook", ""},
			{"retry a build not investigated", "POST", "/v1/investigations/b-missing/retry", e.operator, "", "", "POST /v1/investigations/{build}/retry", "b-missing"},
			{"resolve", "POST", "/v1/investigations/b-missing/resolve", e.operator, "application/json", `{"note":"n"}`, "POST /v1/investigations/{build}/resolve", "b-missing"},
			{"remove a missing image", "DELETE", "/v1/images/img-00000000000000000", seller, "", "", "DELETE /v1/images/{ref}", "img-00000000000000000"},
			{"import image", "POST", "/v1/images?alias=mine", seller, "application/octet-stream", string(rootfsTar(t, "12")), "POST /v1/images", ""},
		}
		for _, w := range writes {
			status, reqID := e.send(w.method, w.path, w.token, w.ctype, w.body)
			if !strings.HasPrefix(reqID, "req-") || reqID == "req-forged" {
				t.Fatalf("%s: X-Request-Id %q", w.name, reqID)
			}
			got := e.audit("?limit=1")
			if len(got) != 1 || got[0].RequestID != reqID {
				t.Fatalf("%s: newest audit row %+v, want request %s", w.name, got, reqID)
			}
			row := got[0]
			if row.Action != w.action || row.Result != status || (w.object != "" && row.Object != w.object) {
				t.Errorf("%s: row %+v, want action %q, result %d, object %q", w.name, row, w.action, status, w.object)
			}
			if w.token == seller && (row.AccountID != whoami.ID || row.AccountName != "acme" || row.Role != "seller") {
				t.Errorf("%s: row names %s/%s/%s, want the seller", w.name, row.AccountID, row.AccountName, row.Role)
			}
		}
		all := e.audit("")
		if len(all) < len(writes) {
			t.Fatalf("%d rows after %d writes", len(all), len(writes))
		}

		// A seller reading its own data leaves no row.
		var st api.Page[api.GroupStatus]
		e.call("GET", "/v1/status", seller, "", nil, &st)
		if len(st.Items) != 1 || len(st.Items[0].Builds) != 1 {
			t.Fatalf("status: %+v", st)
		}
		buildID := st.Items[0].Builds[0].ID
		for _, p := range []string{"/v1/builds/" + buildID, "/v1/builds/" + buildID + "/report", "/v1/builds/" + buildID + "/log", "/v1/packages", "/v1/images/mine"} {
			if code, _ := e.send("GET", p, seller, "", ""); code != 200 {
				t.Fatalf("seller GET %s: %d", p, code)
			}
		}
		if n := len(e.audit("")); n != len(all) {
			t.Fatalf("seller reads of its own data added %d audit rows", n-len(all))
		}

		// An operator reading the seller's build report: one row naming the
		// build, its owner and the request.
		since := time.Now().UTC()
		code, reqID := e.send("GET", "/v1/builds/"+buildID+"/report", e.operator, "", "")
		if code != 200 {
			t.Fatalf("operator reads the report: %d", code)
		}
		got := e.audit("?limit=1")
		want := audit.Entry{RequestID: reqID, AccountName: "operator", Role: "operator", Action: "GET /v1/builds/{id}/report", Object: buildID, Owner: whoami.ID, Result: 200}
		if diff := cmp.Diff(want, got[0], cmpIgnoreVolatile); diff != "" {
			t.Fatalf("operator read row (-want +got):\n%s", diff)
		}
		// The operator's own base image is not another account's data; the
		// seller's image is.
		e.send("GET", "/v1/images/debian-12", e.operator, "", "")
		var mine struct{ ID string }
		e.call("GET", "/v1/images/mine", seller, "", nil, &mine)
		e.send("GET", "/v1/images/"+mine.ID, e.operator, "", "")
		recent := e.audit("?since=" + url.QueryEscape(since.Format(time.RFC3339Nano)))
		var actions []string
		for _, r := range recent {
			actions = append(actions, r.Action+" "+r.Object)
		}
		if diff := cmp.Diff([]string{"GET /v1/images/{ref} " + mine.ID, "GET /v1/builds/{id}/report " + buildID}, actions); diff != "" {
			t.Fatalf("rows since %s (-want +got):\n%s", since, diff)
		}

		// Filters: by account name or ID, by time, with a limit.
		for _, acct := range []string{"acme", whoami.ID} {
			rows := e.audit("?account=" + acct)
			if len(rows) == 0 {
				t.Fatalf("no rows for account %s", acct)
			}
			for _, r := range rows {
				if r.AccountID != whoami.ID {
					t.Errorf("?account=%s returned a row of %s", acct, r.AccountName)
				}
			}
		}
		// since: exactly the rows at or after it.
		n := 0
		for _, r := range e.audit("") {
			if !r.At.Before(since) {
				n++
			}
		}
		if n != len(recent) {
			t.Errorf("?since= gave %d rows, the log has %d at or after it", len(recent), n)
		}
		if n := len(e.audit("?since=" + url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339)))); n != 0 {
			t.Errorf("rows from the future: %d", n)
		}
		if n := len(e.audit("?limit=2")); n != 2 {
			t.Errorf("limit=2 gave %d rows", n)
		}

		// Operators only; the others are refused like elsewhere.
		for _, tc := range []struct {
			token, query string
			status       int
		}{{seller, "", 403}, {"", "", 401}, {e.operator, "?since=yesterday", 400}, {e.operator, "?limit=0", 400}} {
			var apiErr problem.Error
			if code := e.call("GET", "/v1/audit"+tc.query, tc.token, "", nil, &apiErr); code != tc.status {
				t.Errorf("GET /v1/audit%s with token %q: %d %+v, want %d", tc.query, tc.token, code, apiErr, tc.status)
			}
		}
	})
}

var cmpIgnoreVolatile = cmp.FilterPath(func(p cmp.Path) bool {
	switch p.Last().String() {
	case ".ID", ".At", ".AccountID":
		return true
	}
	return false
}, cmp.Ignore())
