package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/webhook"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora under testdata/fuzz")

// jsonRoute is a route that takes a JSON body, and who calls it.
type jsonRoute struct {
	method, path string
	caller       string // "operator" or "seller"
}

// jsonRoutes are every route whose handler calls readJSON.
var jsonRoutes = []jsonRoute{
	{"POST", "/v1/accounts", "operator"},
	{"POST", "/v1/os-versions", "operator"},
	{"POST", "/v1/package-groups", "seller"},
	{"PUT", "/v1/webhook", "seller"},
	{"POST", "/v1/investigations/b-0000000000000000/resolve", "operator"},
}

// FuzzJSONBodies sends arbitrary bodies to every route that decodes JSON,
// through the real handlers on a SQLite store, and checks the answer: never
// a 5xx (a panic in a handler is one), always a JSON body, and an error
// body of the API's one shape with a code that matches the status.
func FuzzJSONBodies(f *testing.F) {
	db := storetest.Open(f, store.SQLite)
	ctx := context.Background()
	e := newEnvWith(f, db, func(d *api.Deps) {
		hooks := webhook.New(db, webhook.Config{})
		p, err := pipeline.New(ctx, db, pipeline.Config{
			Builder: &fakeBuilder{}, Scanner: passScanner{}, Groups: d.Groups, Packages: d.Packages, OSVersions: d.OSVersions, Webhooks: hooks,
			WorkDir: f.TempDir(), PollInterval: time.Hour, Logger: quietLogger(),
		})
		if err != nil {
			f.Fatal(err)
		}
		d.Pipeline, d.Builds, d.Webhooks = p, p.Reader(), hooks // not started: no build runs, no webhook is sent
	})
	tokens := map[string]string{"operator": e.operator, "seller": e.account("acme", accounts.Seller)}
	if code := e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-12", "image": "debian-12"}, nil); code != 201 {
		f.Fatalf("add debian-12: %d", code)
	}
	if code, _ := e.upload(tokens["seller"], "setup.sh", "#!/bin/sh\n"); code != 201 {
		f.Fatalf("upload: %d", code)
	}
	statusOf := map[problem.Code]int{
		"invalid": 400, "unauthenticated": 401, "forbidden": 403, "not_found": 404,
		"conflict": 409, "too_large": 413, "unsupported_media_type": 415,
	}

	f.Fuzz(func(t *testing.T, route uint16, contentType string, body []byte) {
		rt := jsonRoutes[int(route)%len(jsonRoutes)]
		req := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokens[rt.caller])
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)

		status, out := rec.Code, rec.Body.Bytes()
		if status >= 500 {
			t.Fatalf("%s %s with body %q: %d %s", rt.method, rt.path, body, status, out)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s: %d with Content-Type %q", rt.method, rt.path, status, ct)
		}
		if status < 300 {
			if !json.Valid(out) {
				t.Fatalf("%s %s: %d with a body that is not JSON: %q", rt.method, rt.path, status, out)
			}
			return
		}
		var ae problem.Error
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ae); err != nil {
			t.Fatalf("%s %s: %d with an error body that is not the API's shape: %v: %q", rt.method, rt.path, status, err, out)
		}
		if ae.Message == "" || statusOf[ae.Code] != status {
			t.Fatalf("%s %s: status %d for error %+v", rt.method, rt.path, status, ae)
		}
	})
}

// TestWriteFuzzSeeds regenerates FuzzJSONBodies's seeds: for each route,
// the requests pib's client sends (encoded here as the client encodes
// them) and the usual mistakes (wrong type, unknown field, two values).
//
//	go test ./internal/api -run TestWriteFuzzSeeds -update-fuzz-seeds
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("regenerates testdata/fuzz; run with -update-fuzz-seeds")
	}
	bodies := map[string][]any{
		"/v1/accounts":       {map[string]any{"name": "acme2", "role": "seller"}, map[string]any{"name": "Bad Name", "role": "admin"}},
		"/v1/os-versions":    {map[string]any{"name": "debian-12-copy", "image": "debian-12"}, map[string]any{"name": "x", "image": "img-00000000000000000"}},
		"/v1/package-groups": {map[string]any{"name": "MyApp1_0Linux1", "platform": "linux", "os_versions": []string{"debian-12"}, "installer_id": "pkg-0000000000000000", "package_ids": []string{}}, map[string]any{"name": "x", "platform": "linux", "os_versions": "debian-12"}},
		"/v1/webhook":        {map[string]any{"url": "https://example.com/pib-hook"}, map[string]any{"url": "ftp://user:pw@example.com/"}},
		"/v1/investigations/b-0000000000000000/resolve": {map[string]any{"note": "false positive: the daemon is socket-activated"}},
	}
	n := 0
	for i, rt := range jsonRoutes {
		for _, b := range bodies[rt.path] {
			raw, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			variants := [][2]string{
				{"application/json", string(raw)},
				{"application/json; charset=utf-8", string(raw) + "\n"},
				{"application/json", string(raw) + string(raw)},
				{"text/plain", string(raw)},
				{"application/json", strings.Replace(string(raw), `{`, `{"extra":1,`, 1)},
			}
			for _, v := range variants {
				writeSeed(t, fmt.Sprintf("seed-%02d", n), uint16(i), v[0], []byte(v[1]))
				n++
			}
		}
	}
}

func writeSeed(t *testing.T, name string, route uint16, contentType string, body []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", "FuzzJSONBodies")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := fmt.Sprintf("go test fuzz v1\nuint16(%d)\nstring(%q)\n[]byte(%q)\n", route, contentType, body)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
