package api_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/instance"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/webhook"
)

type env struct {
	t        testing.TB
	srv      *api.Server
	url      string
	operator string
	pkgs     *packages.Store
	images   *images.Store
}

func newEnv(t *testing.T, db *store.DB) *env { return newEnvWith(t, db, nil) }

// newEnvWith lets a test add to the API's dependencies (the pipeline).
func newEnvWith(t testing.TB, db *store.DB, edit func(*api.Deps)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	bs, err := blobs.NewDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	is := images.NewStore(db, bs, filepath.Join(dir, "cache"))
	// A tiny Linux image to register as an OS version.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := "ID=debian\nVERSION_ID=12\n"
	tw.WriteHeader(&tar.Header{Name: "etc/os-release", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.Close()
	rootfs := filepath.Join(dir, "rootfs.tar")
	os.WriteFile(rootfs, buf.Bytes(), 0o644)
	if _, err := is.Import(ctx, rootfs, images.ImportOptions{Alias: "debian-12"}); err != nil {
		t.Fatal(err)
	}
	as := accounts.NewStore(db)
	tokenFile := filepath.Join(dir, "operator.token")
	if err := as.EnsureOperator(ctx, tokenFile); err != nil {
		t.Fatal(err)
	}
	op, _ := os.ReadFile(tokenFile)
	ps := packages.NewStore(db, bs)
	ps.MaxSize = 1 << 20
	oses := osversions.NewStore(db)
	deps := api.Deps{Accounts: as, Packages: ps, Groups: groups.NewStore(db, ps, oses), OSVersions: oses, Images: is, Audit: audit.New(db)}
	if edit != nil {
		edit(&deps)
	}
	srv := api.New(deps)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &env{t: t, srv: srv, url: hs.URL, operator: strings.TrimSpace(string(op)), pkgs: ps, images: is}
}

// call sends a request and decodes the JSON answer into out (if not nil).
func (e *env) call(method, path, token, contentType string, body io.Reader, out any) int {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: %d, body %q: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

func (e *env) json(method, path, token string, in, out any) int {
	e.t.Helper()
	b, _ := json.Marshal(in)
	return e.call(method, path, token, "application/json", bytes.NewReader(b), out)
}

func (e *env) account(name string, role accounts.Role) string {
	e.t.Helper()
	var resp struct{ Token string }
	if code := e.json("POST", "/v1/accounts", e.operator, map[string]any{"name": name, "role": role}, &resp); code != 201 {
		e.t.Fatalf("create account %s: %d", name, code)
	}
	return resp.Token
}

func (e *env) upload(token, name, content string) (int, map[string]any) {
	e.t.Helper()
	var out map[string]any
	code := e.call("POST", "/v1/packages?name="+name, token, "application/octet-stream", strings.NewReader(content), &out)
	return code, out
}

func TestSellerFlow(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		seller := e.account("acme", accounts.Seller)
		other := e.account("globex", accounts.Seller)

		var apiErr problem.Error
		if code := e.json("POST", "/v1/os-versions", seller, map[string]string{"name": "debian-12", "image": "debian-12"}, &apiErr); code != 403 || apiErr.Code != "forbidden" {
			t.Fatalf("seller registering an OS: %d %+v", code, apiErr)
		}
		var v osversions.OSVersion
		if code := e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-12", "image": "debian-12"}, &v); code != 201 || v.Platform != "linux" {
			t.Fatalf("register OS: %d %+v", code, v)
		}

		code, inst := e.upload(seller, "setup.sh", "#!/bin/sh\necho installed\n")
		if code != 201 {
			t.Fatalf("upload: %d %v", code, inst)
		}
		instID := inst["id"].(string)

		spec := map[string]any{"name": "Acme1_0Linux1", "platform": "linux", "os_versions": []string{"debian-12"}, "installer_id": instID}
		var g groups.Group
		if code := e.json("POST", "/v1/package-groups", seller, spec, &g); code != 201 || g.Name != "Acme1_0Linux1" {
			t.Fatalf("create group: %d %+v", code, g)
		}
		// N2: the name again is a conflict naming the rule.
		apiErr = problem.Error{}
		if code := e.json("POST", "/v1/package-groups", seller, spec, &apiErr); code != 409 || apiErr.Rule != "N2" || apiErr.Field != "name" {
			t.Fatalf("reused name: %d %+v", code, apiErr)
		}
		// N1 with the field named.
		bad := map[string]any{"name": "bad name", "platform": "linux", "os_versions": []string{"debian-12"}, "installer_id": instID}
		apiErr = problem.Error{}
		if code := e.json("POST", "/v1/package-groups", seller, bad, &apiErr); code != 400 || apiErr.Code != "invalid" || apiErr.Rule != "N1" || apiErr.Field != "name" {
			t.Fatalf("bad name: %d %+v", code, apiErr)
		}
		// Isolation: the other seller gets 404 for the group and the
		// package, exactly like for missing ones, and cannot use the package.
		for _, p := range []string{"/v1/package-groups/" + g.ID, "/v1/package-groups/Acme1_0Linux1", "/v1/packages/" + instID} {
			var foreign, missing problem.Error
			c1 := e.call("GET", p, other, "", nil, &foreign)
			c2 := e.call("GET", p+"x", other, "", nil, &missing)
			if c1 != 404 || c2 != 404 || foreign.Code != missing.Code {
				t.Errorf("GET %s as another seller: %d %+v; missing: %d %+v", p, c1, foreign, c2, missing)
			}
		}
		spec["name"] = "Theirs1"
		apiErr = problem.Error{}
		if code := e.json("POST", "/v1/package-groups", other, spec, &apiErr); code != 400 || apiErr.Rule != "P1" {
			t.Fatalf("group with a foreign installer: %d %+v", code, apiErr)
		}
		var list api.Page[groups.Group]
		if e.call("GET", "/v1/package-groups", other, "", nil, &list); len(list.Items) != 0 {
			t.Fatalf("other seller lists %d groups", len(list.Items))
		}
		if e.call("GET", "/v1/package-groups", seller, "", nil, &list); len(list.Items) != 1 {
			t.Fatalf("seller lists %d groups", len(list.Items))
		}
	})
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, storetest.Open(t, store.SQLite))
	seller := e.account("acme", accounts.Seller)
	for _, tc := range []struct {
		name, method, path, token, ctype, body string
		status                                 int
		code                                   problem.Code
	}{
		{"no token", "GET", "/v1/packages", "", "", "", 401, "unauthenticated"},
		{"unknown token", "GET", "/v1/packages", "pib_nope", "", "", 401, "unauthenticated"},
		{"malformed JSON", "POST", "/v1/package-groups", seller, "application/json", `{"name":`, 400, "invalid"},
		{"unknown field", "POST", "/v1/package-groups", seller, "application/json", `{"name":"a","colour":"red"}`, 400, "invalid"},
		{"trailing data", "POST", "/v1/package-groups", seller, "application/json", `{"name":"a"} {}`, 400, "invalid"},
		{"wrong content type", "POST", "/v1/package-groups", seller, "text/plain", `{}`, 415, "unsupported_media_type"},
		{"oversized body", "POST", "/v1/package-groups", seller, "application/json", `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "too_large"},
		{"upload without octet-stream", "POST", "/v1/packages?name=a.sh", seller, "multipart/form-data", "x", 415, "unsupported_media_type"},
		{"upload with a path in the name", "POST", "/v1/packages?name=../../a.sh", seller, "application/octet-stream", "x", 400, "invalid"},
		{"upload over the limit", "POST", "/v1/packages?name=a.sh", seller, "application/octet-stream", strings.Repeat("x", 1<<20+1), 413, "too_large"},
		{"empty upload", "POST", "/v1/packages?name=a.sh", seller, "application/octet-stream", "", 400, "invalid"},
		{"seller on an operator route", "GET", "/v1/accounts", seller, "", "", 403, "forbidden"},
		{"unknown route", "GET", "/v1/nothing", seller, "", "", 404, "not_found"},
		{"bad page limit", "GET", "/v1/package-groups?limit=0", seller, "", "", 400, "invalid"},
		{"forged cursor", "GET", "/v1/package-groups?cursor=bm9wZQ", seller, "", "", 400, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got problem.Error
			status := e.call(tc.method, tc.path, tc.token, tc.ctype, strings.NewReader(tc.body), &got)
			if status != tc.status || got.Code != tc.code || got.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", status, got, tc.status, tc.code)
			}
		})
	}
	// Nothing was stored by any of them: the store, asked for the seller's
	// packages directly, agrees with the API.
	var acme accounts.Account
	if code := e.call("GET", "/v1/whoami", seller, "", nil, &acme); code != 200 || acme.ID == "" {
		t.Fatalf("whoami: %d %+v", code, acme)
	}
	list, err := e.pkgs.List(context.Background(), acme.ID)
	if err != nil {
		t.Fatal(err)
	}
	var groupsList api.Page[groups.Group]
	e.call("GET", "/v1/package-groups", seller, "", nil, &groupsList)
	var pkgList []packages.Package
	e.call("GET", "/v1/packages", seller, "", nil, &pkgList)
	if len(list)+len(groupsList.Items)+len(pkgList) != 0 {
		t.Fatalf("bad requests stored %d groups, %d packages (the store holds %d of the seller's)", len(groupsList.Items), len(pkgList), len(list))
	}
}

// TestOpenAPIListsEveryRoute keeps the OpenAPI document complete.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	e := newEnvWith(t, db, func(d *api.Deps) {
		// A submit-only pipeline: enough to register the build routes.
		hooks := webhook.New(db, webhook.Config{})
		p, err := pipeline.New(context.Background(), db, pipeline.Config{Workers: -1, Groups: d.Groups, OSVersions: d.OSVersions, Webhooks: hooks})
		if err != nil {
			t.Fatal(err)
		}
		d.Pipeline, d.Builds, d.Webhooks = p, p.Reader(), hooks
		d.Catalog = catalog.New(db, catalog.Config{Groups: d.Groups, Builds: p.Reader()})
		im, err := instance.New(instance.Config{Images: d.Images, Dir: filepath.Join(t.TempDir(), "instances")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { im.Close() })
		d.Instances = im
	})
	if len(e.srv.Routes()) < 25 {
		t.Fatalf("only %d routes registered", len(e.srv.Routes()))
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if code := e.call("GET", "/v1/openapi.json", "", "", nil, &doc); code != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: %d %q", code, doc.OpenAPI)
	}
	for _, r := range e.srv.Routes() {
		if _, ok := doc.Paths[r[1]][strings.ToLower(r[0])]; !ok {
			t.Errorf("route %s %s is missing from openapi.json", r[0], r[1])
		}
	}
	var health map[string]string
	if code := e.call("GET", "/healthz", "", "", nil, &health); code != 200 || health["status"] != "ok" {
		t.Fatalf("healthz: %d %v", code, health)
	}
	e.call("GET", "/v1/whoami", e.operator, "", nil, nil)
	req, _ := http.NewRequest("GET", e.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+e.operator)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `pib_http_requests_total{route="GET /v1/whoami",status="200"} 1`) {
		t.Fatalf("metrics lack pib_http_requests_total:\n%.500s", body)
	}
}
