package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/webhook"
)

// failInserts makes every INSERT into table fail with an error that is no
// caller's fault (a trigger raising one), as a broken disk or database
// would: the store returns an error without a problem code.
func failInserts(t *testing.T, db *store.DB, table string) {
	t.Helper()
	stmts := []string{fmt.Sprintf(`CREATE TRIGGER fail_%s BEFORE INSERT ON %s BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`, table, table)}
	if db.Dialect == store.Postgres {
		stmts = []string{
			`CREATE OR REPLACE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$`,
			fmt.Sprintf(`CREATE TRIGGER fail_%s BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION fail_insert()`, table, table),
		}
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
}

// syncBuffer is a log destination the server writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// captureLog sends the default logger (the API logs internal errors there)
// to a buffer until the test ends.
func captureLog(t *testing.T) *syncBuffer {
	var b syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&b, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &b
}

// answer is one request's status, error body and request ID.
func (e *env) answer(method, path, token, ctype string, body io.Reader) (int, problem.Error, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var pe problem.Error
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(raw, &pe); err != nil {
			e.t.Fatalf("%s %s: %d, body %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, pe, resp.Header.Get("X-Request-Id")
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// The store failing under createAccount, addOSVersion and importImage is
// a 500 whose detail is in the server log (with the request ID) and not in
// the answer; what the caller got wrong stays a 400 or 409 naming the field.
func TestInternalErrorsAreNotShown(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		seller := e.account("acme", accounts.Seller)
		debian := rootfsTar(t, "13")

		// Validation first, while the store works.
		for _, tc := range []struct {
			name, method, path, token, ctype string
			body                             io.Reader
			status                           int
			field, prefix                    string
		}{
			{"account name", "POST", "/v1/accounts", e.operator, "application/json", jsonBody(map[string]string{"name": "Not A Name", "role": "seller"}), 400, "name", "account name"},
			{"account role", "POST", "/v1/accounts", e.operator, "application/json", jsonBody(map[string]string{"name": "initech", "role": "king"}), 400, "role", "role"},
			{"account name taken", "POST", "/v1/accounts", e.operator, "application/json", jsonBody(map[string]string{"name": "acme", "role": "seller"}), 409, "name", "account name is taken"},
			{"OS version name", "POST", "/v1/os-versions", e.operator, "application/json", jsonBody(map[string]string{"name": "Debian 13!", "image": "debian-12"}), 400, "name", "OS version name"},
			{"OS version image", "POST", "/v1/os-versions", e.operator, "application/json", jsonBody(map[string]string{"name": "debian-13", "image": "nope"}), 400, "image", "no operator image"},
			{"corrupt archive", "POST", "/v1/images", seller, "application/octet-stream", strings.NewReader(strings.Repeat("garbage!", 200)), 400, "archive", "the archive: "},
		} {
			status, pe, _ := e.answer(tc.method, tc.path, tc.token, tc.ctype, tc.body)
			if status != tc.status || pe.Field != tc.field || !strings.HasPrefix(pe.Message, tc.prefix) {
				t.Errorf("%s: %d %+v, want %d on field %s, message starting %q", tc.name, status, pe, tc.status, tc.field, tc.prefix)
			}
			if strings.Contains(pe.Message, "pib-image-upload") {
				t.Errorf("%s: the message names the server's temporary file: %q", tc.name, pe.Message)
			}
		}

		logs := captureLog(t)
		for _, table := range []string{"accounts", "os_versions", "images"} {
			failInserts(t, db, table)
		}
		for _, tc := range []struct {
			name, path, token, ctype string
			body                     io.Reader
		}{
			{"createAccount", "/v1/accounts", e.operator, "application/json", jsonBody(map[string]string{"name": "initech", "role": "seller"})},
			{"addOSVersion", "/v1/os-versions", e.operator, "application/json", jsonBody(map[string]string{"name": "debian-13", "image": "debian-12"})},
			{"importImage", "/v1/images", seller, "application/octet-stream", bytes.NewReader(debian)},
		} {
			status, pe, id := e.answer("POST", tc.path, tc.token, tc.ctype, tc.body)
			if status != 500 || pe.Code != problem.Internal || pe.Rule != "" || pe.Field != "" {
				t.Errorf("%s with a failing store: %d %+v, want 500 internal", tc.name, status, pe)
			}
			if strings.Contains(pe.Message, "disk on fire") || !strings.Contains(pe.Message, id) {
				t.Errorf("%s: message %q shows the detail or lacks the request ID %s", tc.name, pe.Message, id)
			}
			if line := logLine(logs.String(), id); !strings.Contains(line, "disk on fire") {
				t.Errorf("%s: the server log has no line with request %s and the detail:\n%s", tc.name, id, logs)
			}
		}
	})
}

func logLine(log, requestID string) string {
	for _, l := range strings.Split(log, "\n") {
		if requestID != "" && strings.Contains(l, requestID) {
			return l
		}
	}
	return ""
}

// A group whose OS version was unregistered after it was made cannot be
// submitted: a conflict (409) naming rule P4 and the field, not a 404 (the
// group exists) and not a 400 (the request is as it should be).
func TestSubmitWithUnregisteredOSVersion(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnvWith(t, db, func(d *api.Deps) {
			hooks := webhook.New(db, webhook.Config{})
			p, err := pipeline.New(ctx, db, pipeline.Config{
				Builder: &fakeBuilder{}, Scanner: passScanner{}, Groups: d.Groups, Packages: d.Packages, OSVersions: d.OSVersions,
				WorkDir: t.TempDir(), PollInterval: time.Hour, Logger: quietLogger(), Webhooks: hooks,
			})
			if err != nil {
				t.Fatal(err)
			}
			d.Pipeline, d.Builds, d.Webhooks = p, p.Reader(), hooks // not started: Submit only queues
		})
		seller := e.account("acme", accounts.Seller)
		if code := e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-12", "image": "debian-12"}, nil); code != 201 {
			t.Fatalf("add debian-12: %d", code)
		}
		_, inst := e.upload(seller, "setup.sh", "#!/bin/sh\n")
		if code := e.json("POST", "/v1/package-groups", seller, map[string]any{"name": "Acme1", "platform": "linux", "os_versions": []string{"debian-12"}, "installer_id": inst["id"]}, nil); code != 201 {
			t.Fatalf("create group: %d", code)
		}
		unregister(t, db, "debian-12")

		status, pe, _ := e.answer("POST", "/v1/package-groups/Acme1/submit", seller, "", nil)
		if status != 409 || pe.Code != problem.Conflict || pe.Rule != "P4" || pe.Field != "os_versions" || !strings.Contains(pe.Message, `"debian-12"`) {
			t.Fatalf("submit: %d %+v, want 409 conflict on rule P4, field os_versions, naming debian-12", status, pe)
		}
		var builds []pipeline.Build
		if code := e.call("GET", "/v1/package-groups/Acme1/builds", seller, "", nil, &struct{ Builds *[]pipeline.Build }{&builds}); code != 200 || len(builds) != 0 {
			t.Fatalf("builds after the refused submit: %d %+v", code, builds)
		}
	})
}

// unregister deletes OS version name although groups refer to it: the
// foreign key that keeps the registry whole is set aside for the test.
func unregister(t *testing.T, db *store.DB, name string) {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stmts := []string{`PRAGMA foreign_keys = OFF`, `DELETE FROM os_versions WHERE name = '` + name + `'`, `PRAGMA foreign_keys = ON`}
	if db.Dialect == store.Postgres {
		stmts = []string{`SET session_replication_role = replica`, `DELETE FROM os_versions WHERE name = '` + name + `'`, `SET session_replication_role = DEFAULT`}
	}
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

// The client returns the server's error as the same *problem.Error, with
// the HTTP status, so errors.Is works on a code across the wire.
func TestClientDecodesErrors(t *testing.T) {
	e := newEnv(t, storetest.Open(t, store.SQLite))
	seller := client.New(e.url, e.account("acme", accounts.Seller))
	ctx := context.Background()

	_, err := seller.Package(ctx, "pkg-0000000000000000")
	var pe *problem.Error
	if !errors.Is(err, problem.NotFound) || !errors.As(err, &pe) || pe.Status != 404 {
		t.Fatalf("missing package: %v (%T), want a not_found *problem.Error with status 404", err, err)
	}

	_, err = seller.CreateGroup(ctx, groups.Spec{Name: "bad name", Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: "pkg-0000000000000000"})
	if !errors.Is(err, problem.Invalid) || !errors.As(err, &pe) || pe.Status != 400 || pe.Rule != "N1" || pe.Field != "name" {
		t.Fatalf("bad group name: %v, want invalid on rule N1, field name, status 400", err)
	}
	if want := "rule N1: name: "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error text %q, want it to start %q (what pib prints)", err, want)
	}

	nobody := client.New(e.url, "pib_unknown")
	if _, err := nobody.Whoami(ctx); !errors.Is(err, problem.Unauthenticated) {
		t.Fatalf("unknown token: %v, want unauthenticated", err)
	}
}
