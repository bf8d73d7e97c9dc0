package api_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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

// fakeBuilder is a test double of the sandbox: it fails while fail is set.
type fakeBuilder struct{ fail atomic.Bool }

func (f *fakeBuilder) Build(ctx context.Context, req pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
	if f.fail.Load() {
		return nil, errors.New("sandbox could not start: test")
	}
	if strings.Contains(req.Installer, "reboot") {
		return &pipeline.BuildOutcome{Findings: []pipeline.Finding{{Rule: "I5", Message: "the installer tried to reboot", Detail: "reboot -f"}}, Log: []byte("rebooting\n")}, nil
	}
	return &pipeline.BuildOutcome{ImageID: "img-00000000000000001", Log: []byte("installed\n"), ChangedFiles: []string{"/opt/app (added)"}}, nil
}

type passScanner struct{}

func (passScanner) Scan(ctx context.Context, imageID string) (*pipeline.ScanOutcome, error) {
	return &pipeline.ScanOutcome{Passed: true, Report: []byte(`{"status":"successful"}`)}, nil
}

func TestBuildRoutes(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		fb := &fakeBuilder{}
		e := newEnvWith(t, db, func(d *api.Deps) {
			// The test endpoint listens on loopback.
			hooks := webhook.New(db, webhook.Config{AllowPrivate: true, Logger: quietLogger()})
			p, err := pipeline.New(ctx, db, pipeline.Config{
				Builder: fb, Scanner: passScanner{}, Groups: d.Groups, Packages: d.Packages, OSVersions: d.OSVersions, Webhooks: hooks,
				WorkDir: t.TempDir(), PollInterval: 50 * time.Millisecond, Logger: quietLogger(),
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Stop(context.Background()) })
			d.Pipeline, d.Builds, d.Webhooks = p, p.Reader(), hooks
		})
		seller := e.account("acme", accounts.Seller)
		other := e.account("globex", accounts.Seller)
		e.json("POST", "/v1/os-versions", e.operator, map[string]string{"name": "debian-12", "image": "debian-12"}, nil)
		_, inst := e.upload(seller, "setup.sh", "#!/bin/sh\n")
		_, bad := e.upload(seller, "reboot.sh", "#!/bin/sh\nreboot\n")
		for name, id := range map[string]any{"Good1": inst["id"], "Reboots1": bad["id"]} {
			if code := e.json("POST", "/v1/package-groups", seller, map[string]any{"name": name, "platform": "linux", "os_versions": []string{"debian-12"}, "installer_id": id}, nil); code != 201 {
				t.Fatalf("create %s: %d", name, code)
			}
		}

		var builds []pipeline.Build
		if code := e.call("POST", "/v1/package-groups/Good1/submit", seller, "", nil, &builds); code != 202 || len(builds) != 1 || builds[0].OSName != "debian-12" {
			t.Fatalf("submit: %d %+v", code, builds)
		}
		if code := e.call("POST", "/v1/package-groups/Good1/submit", other, "", nil, nil); code != 404 {
			t.Fatalf("another seller submitting: %d, want 404", code)
		}
		good := waitState(t, e, seller, "Good1")
		if good.State != pipeline.Successful || good.Builds[0].ImageID == "" {
			t.Fatalf("Good1: %+v", good)
		}
		e.call("POST", "/v1/package-groups/Reboots1/submit", seller, "", nil, nil)
		rb := waitState(t, e, seller, "Reboots1")
		if rb.State != pipeline.GroupIssuesFound || !strings.Contains(rb.Builds[0].Troubleshooting, "I5") {
			t.Fatalf("Reboots1: %+v", rb)
		}
		// The log and report of a build, and isolation.
		id := rb.Builds[0].ID
		req, _ := http.NewRequest("GET", e.url+"/v1/builds/"+id+"/log", nil)
		req.Header.Set("Authorization", "Bearer "+seller)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		log, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(log), "rebooting") {
			t.Fatalf("log: %q", log)
		}
		var rep pipeline.Report
		if code := e.call("GET", "/v1/builds/"+id+"/report", seller, "", nil, &rep); code != 200 || len(rep.Findings) != 1 || rep.Findings[0].Rule != "I5" {
			t.Fatalf("report: %d %+v", code, rep)
		}
		for _, p := range []string{"/v1/builds/" + id, "/v1/builds/" + id + "/log", "/v1/builds/" + id + "/report", "/v1/package-groups/Good1/history"} {
			if code := e.call("GET", p, other, "", nil, nil); code != 404 {
				t.Errorf("GET %s as another seller: %d, want 404", p, code)
			}
		}
		// The fake scanner keeps no SBOM: a clear 404; a bad format names the field.
		var sbomErr problem.Error
		if code := e.call("GET", "/v1/builds/"+good.Builds[0].ID+"/sbom", seller, "", nil, &sbomErr); code != 404 || !strings.Contains(sbomErr.Message, "no SBOM") {
			t.Fatalf("sbom without one: %d %+v", code, sbomErr)
		}
		if code := e.call("GET", "/v1/builds/"+good.Builds[0].ID+"/sbom?format=xml", seller, "", nil, &sbomErr); code != 400 || sbomErr.Field != "format" {
			t.Fatalf("sbom format xml: %d %+v", code, sbomErr)
		}
		var hist []pipeline.Event
		if e.call("GET", "/v1/package-groups/Good1/history", seller, "", nil, &hist); len(hist) < 3 {
			t.Fatalf("history: %+v", hist)
		}

		// A platform fault goes to the operator queue; retry ends it.
		fb.fail.Store(true)
		if code := e.call("POST", "/v1/package-groups/Good1/submit", seller, "", nil, nil); code != 202 {
			t.Fatalf("resubmit: %d", code)
		}
		inv := waitState(t, e, seller, "Good1")
		if inv.State != pipeline.Investigating {
			t.Fatalf("Good1 after a sandbox fault: %+v", inv)
		}
		var open []pipeline.Investigation
		if code := e.call("GET", "/v1/investigations", seller, "", nil, nil); code != 403 {
			t.Fatalf("seller listing investigations: %d", code)
		}
		if e.call("GET", "/v1/investigations", e.operator, "", nil, &open); len(open) != 1 || open[0].GroupName != "Good1" || open[0].Overdue {
			t.Fatalf("investigations: %+v", open)
		}
		fb.fail.Store(false)
		if code := e.call("POST", "/v1/investigations/"+open[0].BuildID+"/retry", e.operator, "", nil, nil); code != 202 {
			t.Fatalf("retry: %d", code)
		}
		if st := waitState(t, e, seller, "Good1"); st.State != pipeline.Successful {
			t.Fatalf("after retry: %+v", st)
		}
		var apiErr problem.Error
		if code := e.json("POST", "/v1/investigations/"+open[0].BuildID+"/resolve", e.operator, map[string]string{"note": "done"}, &apiErr); code != 409 {
			t.Fatalf("resolving a build not under investigation: %d %+v", code, apiErr)
		}

		// Webhooks: a bad URL names the field; a good one returns a secret.
		apiErr = problem.Error{}
		if code := e.json("PUT", "/v1/webhook", seller, map[string]string{"url": "not a url"}, &apiErr); code != 400 || apiErr.Field != "url" {
			t.Fatalf("bad webhook URL: %d %+v", code, apiErr)
		}
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer hook.Close()
		var wh struct{ URL, Secret string }
		if code := e.json("PUT", "/v1/webhook", seller, map[string]string{"url": hook.URL}, &wh); code != 200 || wh.Secret == "" {
			t.Fatalf("set webhook: %d %+v", code, wh)
		}
		var page api.Page[api.GroupStatus]
		if code := e.call("GET", "/v1/status", seller, "", nil, &page); code != 200 || len(page.Items) != 2 {
			t.Fatalf("status: %d %+v", code, page)
		}
	})
}

// waitState polls the status view until the group's builds have ended.
func waitState(t *testing.T, e *env, token, group string) *api.GroupStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var page api.Page[*api.GroupStatus]
		if code := e.call("GET", "/v1/status?group="+group, token, "", nil, &page); code != 200 || len(page.Items) != 1 {
			t.Fatalf("status: %d", code)
		}
		st := page.Items[0]
		switch st.State {
		case pipeline.Successful, pipeline.GroupIssuesFound, pipeline.Investigating:
			return st
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s did not finish in 30s", group)
	return nil
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
