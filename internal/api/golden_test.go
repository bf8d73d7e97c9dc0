package api_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/instance"
	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/sandbox"
	"github.com/pib-dev/pib/internal/scan"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/testbuild"
	"github.com/pib-dev/pib/internal/webhook"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// Normalising what changes from run to run.
//
// The golden files hold the API's answers as sent, except for values a
// store makes up (random IDs, tokens, secrets, clock readings, temporary
// paths, opaque cursors). normalise replaces them, and only them:
//
//   - IDs with a known prefix (acc-, pg-, pkg-, img-, b-, inv-, whd-, req-,
//     au-, and the catalog's prod-, ver-, ful-, chg-) become <acc-1>, <pkg-2>, … numbered in the order they first
//     appear in one golden file, so a file still shows which IDs are the
//     same (a build's group_id is the group's id);
//   - API tokens (pib_…) become <token>, webhook secrets (whsec_…)
//     <webhook-secret>;
//   - RFC 3339 times become <time>; whether a time is there (or null) is
//     kept;
//   - paths under the temporary directory become <tmp>/…;
//   - next_cursor values become <cursor> (they encode a time and an ID);
//   - an image's manifest_digest and config_digest become <digest>: the
//     image config records when the image was made;
//   - a monitoring run's "seconds" become <seconds>.
//
// Everything else — field names, codes, statuses, messages, digests of
// content the test wrote — is compared as is.
var (
	idPattern      = regexp.MustCompile(`\b(acc|pg|pkg|img|b|inv|whd|req|au|prod|ver|ful|chg)-[0-9a-f]{8,}\b`)
	tokenPattern   = regexp.MustCompile(`\bpib_[A-Za-z0-9_-]{20,}`)
	secretPattern  = regexp.MustCompile(`\bwhsec_[0-9a-f]{16,}`)
	timePattern    = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)
	cursorPattern  = regexp.MustCompile(`"next_cursor": "[^"]*"`)
	digestPattern  = regexp.MustCompile(`"(manifest_digest|config_digest)": "sha256:[0-9a-f]{64}"`)
	secondsPattern = regexp.MustCompile(`"seconds": [0-9.e+-]+`)
	tmpPattern     = regexp.MustCompile(regexp.QuoteMeta(filepath.Clean(os.TempDir())) + `/[^\s"']*`)
)

// normalise applies the rules above to one golden file's text.
func normalise(s string) string {
	s = tmpPattern.ReplaceAllString(s, "<tmp>/…")
	s = tokenPattern.ReplaceAllString(s, "<token>")
	s = secretPattern.ReplaceAllString(s, "<webhook-secret>")
	s = timePattern.ReplaceAllString(s, "<time>")
	s = cursorPattern.ReplaceAllString(s, `"next_cursor": "<cursor>"`)
	s = digestPattern.ReplaceAllString(s, `"$1": "<digest>"`)
	s = secondsPattern.ReplaceAllString(s, `"seconds": "<seconds>"`)
	seen := map[string]string{}
	count := map[string]int{}
	return idPattern.ReplaceAllStringFunc(s, func(id string) string {
		if n, ok := seen[id]; ok {
			return n
		}
		prefix, _, _ := strings.Cut(id, "-")
		count[prefix]++
		n := fmt.Sprintf("<%s-%d>", prefix, count[prefix])
		seen[id] = n
		return n
	})
}

// goldenFile compares got with testdata/golden/name, or rewrites it with
// -update.
func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/api -run TestGoldenRoutes -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from the golden file (-want +got); if the change is intended, run go test ./internal/api -run TestGoldenRoutes -update:\n%s", name, diff)
	}
}

// goldenName is the file of a route: "GET /v1/builds/{id}/log" is
// get_builds_id_log.txt.
func goldenName(method, pattern string) string {
	p := strings.TrimPrefix(pattern, "/v1/")
	p = strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_").Replace(p)
	return strings.ToLower(method) + "_" + p + ".txt"
}

// unrouted collects the answers of requests no route matches.
const unrouted = "unrouted.txt"

// transcript records exchanges, each under the route that served it.
type transcript struct {
	e      *env
	router *http.ServeMux // patterns of Server.Routes(), to name the route of a request
	byFile map[string]*strings.Builder
}

func newTranscript(e *env) *transcript {
	tr := &transcript{e: e, router: http.NewServeMux(), byFile: map[string]*strings.Builder{}}
	for _, r := range e.srv.Routes() {
		tr.router.HandleFunc(r[0]+" "+r[1], func(http.ResponseWriter, *http.Request) {})
	}
	return tr
}

// do sends one request, records it as case name and returns the raw
// (not normalised) answer.
func (tr *transcript) do(name, method, path, token, ctype, body string) (int, []byte) {
	e := tr.e
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
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		e.t.Fatal(err)
	}

	file := unrouted
	if _, pattern := tr.router.Handler(req); pattern != "" {
		m, p, _ := strings.Cut(pattern, " ")
		file = goldenName(m, p)
	}
	b := tr.byFile[file]
	if b == nil {
		b = &strings.Builder{}
		tr.byFile[file] = b
	}
	fmt.Fprintf(b, "### %s\n> %s %s\n", name, method, path)
	if token != "" {
		fmt.Fprintf(b, "> Authorization: Bearer %s\n", tokenName(e, token))
	}
	if ctype != "" {
		fmt.Fprintf(b, "> Content-Type: %s\n", ctype)
	}
	switch {
	case body == "":
	case strings.HasPrefix(ctype, "application/json") && len(body) <= 1000:
		fmt.Fprintf(b, ">\n> %s\n", body)
	default:
		fmt.Fprintf(b, ">\n> (%d bytes)\n", len(body))
	}
	fmt.Fprintf(b, "< %d %s\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	for _, h := range []string{"Content-Type", "Content-Disposition", "Connection"} {
		if v := resp.Header.Get(h); v != "" {
			fmt.Fprintf(b, "< %s: %s\n", h, v)
		}
	}
	b.WriteString("<\n")
	switch ct := resp.Header.Get("Content-Type"); {
	case ct == "application/x-tar":
		b.WriteString(tarListing(data))
	case ct == api.XLSXType:
		b.WriteString(xlsxListing(data))
	case len(data) == 0:
		b.WriteString("(no body)\n")
	default:
		b.Write(data)
		if !bytes.HasSuffix(data, []byte("\n")) {
			b.WriteString("\n(no newline at the end)\n")
		}
	}
	b.WriteString("\n")
	return resp.StatusCode, data
}

// tokens names the test's tokens in the transcript, so a file says who
// called without holding a token.
var tokenNames sync.Map // token → name

func tokenName(e *env, token string) string {
	if token == e.operator {
		return "<operator token>"
	}
	if n, ok := tokenNames.Load(token); ok {
		return "<" + n.(string) + " token>"
	}
	return token
}

// tarListing describes an archive by its entries: names, types and sizes.
func tarListing(data []byte) string {
	var b strings.Builder
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Fprintf(&b, "(tar error: %v)\n", err)
			}
			break
		}
		fmt.Fprintf(&b, "tar entry %s type %c size %d\n", h.Name, h.Typeflag, h.Size)
	}
	return b.String()
}

// goldenBuilder builds by the installer's name: "fault" is a platform
// fault, "reboot" breaks I5, "vuln" makes the image goldenScanner fails,
// anything else succeeds. Every build says on entered that it started,
// then waits for gate to be closed.
type goldenBuilder struct{ entered, gate chan struct{} }

const (
	goodImage = "img-00000000000000001"
	vulnImage = "img-00000000000000002"
)

func (b *goldenBuilder) Build(ctx context.Context, req pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	select {
	case <-b.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	switch name := filepath.Base(req.Installer); {
	case strings.Contains(name, "fault"):
		return nil, errors.New("sandbox could not start: overlay mount refused (test)")
	case strings.Contains(name, "reboot"):
		return &pipeline.BuildOutcome{
			Findings: []pipeline.Finding{{Rule: "I5", Message: "the installer tried to reboot", Detail: "reboot -f"}},
			Log:      []byte("installing\nrebooting\n"), ChangedFiles: []string{"/opt/app (added)"},
			Report: builderReport(req.BuildID, -1, []sandbox.Finding{{Rule: "I5", Message: "the installer tried to reboot", Detail: "reboot -f"}},
				sandbox.FileChange{Path: "opt/app", Change: "added", Type: "dir"}),
		}, nil
	case strings.Contains(name, "vuln"):
		return &pipeline.BuildOutcome{ImageID: vulnImage, Log: []byte("installed libfoo1\n"), ChangedFiles: []string{"/usr/lib/libfoo.so.1 (added)"},
			Report: builderReport(req.BuildID, 0, nil, sandbox.FileChange{Path: "usr/lib/libfoo.so.1", Change: "added", Size: 16, Type: "file"})}, nil
	}
	rep := builderReport(req.BuildID, 0, nil, sandbox.FileChange{Path: "opt/app", Change: "added", Type: "dir"},
		sandbox.FileChange{Path: "etc/app.conf", Change: "added", Size: 12, Type: "file"})
	return &pipeline.BuildOutcome{ImageID: goodImage, Log: []byte("installed\n"), ChangedFiles: []string{"/opt/app (added)", "/etc/app.conf (added)"},
		Report: withReproducibility(rep, req)}, nil
}

// withReproducibility adds to a builder's report the comparison with the
// previous build of the same inputs, as testbuild's builder does: the
// first build of its inputs here (the digests are fixed: the base
// image's ID, part of the real inputs digest, is random in this test).
func withReproducibility(raw json.RawMessage, req pipeline.BuildRequest) json.RawMessage {
	var rep testbuild.BuildReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		panic(err)
	}
	rep.Reproducible = &testbuild.Reproducibility{
		InputsDigest:    "sha256:" + strings.Repeat("1", 64),
		SourceDateEpoch: 1764547200,
		Layer:           "sha256:" + strings.Repeat("2", 64),
		Note:            "first build of these inputs: there is no earlier layer to compare with",
	}
	if req.Previous != nil {
		rep.Reproducible.PreviousBuild, rep.Reproducible.PreviousLayer, rep.Reproducible.SameLayer = req.Previous.BuildID, rep.Reproducible.Layer, true
		rep.Reproducible.Note = "the layer is the same as that of build " + req.Previous.BuildID + " of the same inputs"
	}
	data, err := json.Marshal(rep)
	if err != nil {
		panic(err)
	}
	return data
}

// workerDataDir stands for the data directory of the worker that ran a
// build: a host path no seller may see.
const workerDataDir = "/var/lib/pib-worker"

// builderReport is the report pib's sandbox builder keeps, made as it
// makes it (testbuild.NewBuildReport) from a sandbox result that names the
// worker's log and kept upper directory; the golden file shows what of it
// reaches the seller.
func builderReport(buildID string, exit int, findings []sandbox.Finding, files ...sandbox.FileChange) json.RawMessage {
	dir := filepath.Join(workerDataDir, "builds", buildID)
	res := &sandbox.Result{ExitCode: exit, Findings: findings, Changes: sandbox.Changes{Added: len(files), Files: files},
		LogPath: filepath.Join(dir, "build.log"), KeptDir: filepath.Join(dir, "kept"), UpperDir: filepath.Join(dir, "upper")}
	data, err := json.Marshal(testbuild.NewBuildReport(res))
	if err != nil {
		panic(err)
	}
	return data
}

// goldenScanner passes goodImage and fails vulnImage with the scan
// package's own golden report; it keeps a CycloneDX SBOM the way pib's
// scanner does (a testbuild.ScanReport: format → blob digest).
type goldenScanner struct {
	blobs  blobs.Store
	report []byte // testdata/scan-report.json, a copy of internal/scan's golden report
}

func (s *goldenScanner) Scan(ctx context.Context, imageID string) (*pipeline.ScanOutcome, error) {
	var rep scan.Report
	if err := json.Unmarshal(s.report, &rep); err != nil {
		return nil, err
	}
	rep.ImageID = imageID
	out := &pipeline.ScanOutcome{Passed: true}
	if imageID == vulnImage {
		out.Passed = false
		for _, v := range rep.Violations {
			out.Violations = append(out.Violations, pipeline.Finding{Rule: v.Rule, Message: v.Package + ": " + v.Reason, Detail: v.ID})
		}
		out.Summary = fmt.Sprintf("%d policy violation(s) among %d packages scanned", len(rep.Violations), rep.Packages)
	} else {
		rep.Status = scan.Successful
		rep.Vulnerabilities, rep.Violations = []scan.Finding{}, []scan.Violation{}
	}
	sbom := `{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"name":"libfoo1","version":"1.0-1"}]}` + "\n"
	h, _, err := s.blobs.Put(ctx, strings.NewReader(sbom), v1.Hash{})
	if err != nil {
		return nil, err
	}
	out.Report, err = json.Marshal(testbuild.ScanReport{Report: &rep, SBOMs: map[string]string{"cyclonedx-json": h.String()}})
	return out, err
}

// hookRecorder stands in for the sellers' webhook endpoints: it answers
// every delivery 200 and hands the events to the test, which waits on
// them instead of polling.
type hookRecorder struct {
	mu     sync.Mutex
	seen   map[string]bool // delivery IDs received
	events chan pipeline.WebhookEvent
}

func (h *hookRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(r.Body)
	var ev pipeline.WebhookEvent
	json.Unmarshal(body, &ev)
	h.mu.Lock()
	h.seen[ev.DeliveryID] = true
	h.mu.Unlock()
	h.events <- ev
	return &http.Response{StatusCode: 200, Status: "200 OK", Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: r}, nil
}

// waitGroups reads webhook events until each named group has reached its
// state.
func (h *hookRecorder) waitGroups(t *testing.T, want map[string]pipeline.State) {
	t.Helper()
	got := map[string]int{}
	timeout := time.After(60 * time.Second)
	for {
		done := true
		for name := range want {
			if got[name] == 0 {
				done = false
			}
		}
		if done {
			return
		}
		select {
		case ev := <-h.events:
			if st, ok := want[ev.Group.Name]; ok && ev.Group.State == st {
				got[ev.Group.Name]++
			}
		case <-timeout:
			t.Fatalf("groups did not reach %v within 60s (reached %v)", want, got)
		}
	}
}

// TestGoldenRoutes drives every route of the API through success and
// failure with fixed inputs and compares each route's answers with its
// golden file in testdata/golden (one per route; see normalise for what
// is replaced). A route without a golden file fails the test.
func TestGoldenRoutes(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite)
	report, err := os.ReadFile(filepath.Join("testdata", "scan-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	hooks := &hookRecorder{seen: map[string]bool{}, events: make(chan pipeline.WebhookEvent, 1000)}
	builder := &goldenBuilder{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	var p *pipeline.Pipeline
	var wh *webhook.Service
	var buyers *buyerGolden
	e := newEnvWith(t, db, func(d *api.Deps) {
		var err error
		wh = webhook.New(db, webhook.Config{AllowPrivate: true, HTTPClient: &http.Client{Transport: hooks}, Logger: quietLogger()})
		p, err = pipeline.New(ctx, db, pipeline.Config{
			Builder: builder, Scanner: &goldenScanner{blobs: d.Images.Blobs(), report: report},
			Groups: d.Groups, Packages: d.Packages, OSVersions: d.OSVersions,
			WorkDir: t.TempDir(), PollInterval: 20 * time.Millisecond, Logger: quietLogger(),
			Webhooks: wh,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Stop(context.Background()) })
		d.Pipeline, d.Builds, d.Webhooks = p, p.Reader(), wh
		d.Catalog = catalog.New(db, catalog.Config{Groups: d.Groups, Builds: p.Reader(), Decided: api.DecisionWebhook(p)})
		d.LoadForm = loadform.Limits{MaxBytes: 256 << 10}
		withMonitor(db, d, p)
		buyers = newBuyerGolden(db, d)
		im, err := instance.New(instance.Config{Images: d.Images, Dir: filepath.Join(t.TempDir(), "instances")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { im.Close() })
		d.Instances = im
	})
	tr := newTranscript(e)
	const js, octets = "application/json", "application/octet-stream"
	op := e.operator
	decode := func(data []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%v: %s", err, data)
		}
	}

	// Accounts.
	_, data := tr.do("operator creates a seller", "POST", "/v1/accounts", op, js, `{"name":"acme","role":"seller"}`)
	var created struct {
		Account accounts.Account
		Token   string
	}
	decode(data, &created)
	seller := created.Token
	tokenNames.Store(seller, "acme")
	other := e.account("globex", accounts.Seller)
	tokenNames.Store(other, "globex")
	var globex accounts.Account
	e.call("GET", "/v1/whoami", other, "", nil, &globex)
	tr.do("the name is taken", "POST", "/v1/accounts", op, js, `{"name":"acme","role":"buyer"}`)
	tr.do("an unknown role", "POST", "/v1/accounts", op, js, `{"name":"initech","role":"wizard"}`)
	tr.do("a seller may not create accounts", "POST", "/v1/accounts", seller, js, `{"name":"initech","role":"seller"}`)
	tr.do("the operator lists accounts", "GET", "/v1/accounts", op, "", "")
	tr.do("a seller may not list accounts", "GET", "/v1/accounts", seller, "", "")
	tr.do("a seller asks who it is", "GET", "/v1/whoami", seller, "", "")
	tr.do("no token", "GET", "/v1/whoami", "", "", "")
	tr.do("an unknown token", "GET", "/v1/whoami", "pib_unknown", "", "")

	// OS versions.
	tr.do("the operator registers an OS version", "POST", "/v1/os-versions", op, js, `{"name":"debian-12","image":"debian-12"}`)
	tr.do("the name is registered already", "POST", "/v1/os-versions", op, js, `{"name":"debian-12","image":"debian-12"}`)
	tr.do("no such operator image", "POST", "/v1/os-versions", op, js, `{"name":"debian-13","image":"debian-13"}`)
	tr.do("a seller may not register OS versions", "POST", "/v1/os-versions", seller, js, `{"name":"debian-13","image":"debian-12"}`)
	tr.do("a seller lists OS versions", "GET", "/v1/os-versions", seller, "", "")
	tr.do("no token", "GET", "/v1/os-versions", "", "", "")

	// Packages.
	pkgIDs := map[string]string{}
	for _, f := range []struct{ name, body string }{
		{"setup.sh", "#!/bin/sh\necho installed\n"},
		{"vuln.sh", "#!/bin/sh\napt-get install ./libfoo1.deb\n"},
		{"reboot.sh", "#!/bin/sh\nreboot -f\n"},
		{"fault.sh", "#!/bin/sh\ntrue\n"},
	} {
		_, data := tr.do("a seller uploads "+f.name, "POST", "/v1/packages?name="+f.name, seller, octets, f.body)
		var pkg struct{ ID string }
		decode(data, &pkg)
		pkgIDs[f.name] = pkg.ID
	}
	tr.do("not an octet stream", "POST", "/v1/packages?name=a.sh", seller, "multipart/form-data", "x")
	tr.do("a path in the name", "POST", "/v1/packages?name=../../a.sh", seller, octets, "x")
	tr.do("an empty file", "POST", "/v1/packages?name=a.sh", seller, octets, "")
	tr.do("over the upload limit", "POST", "/v1/packages?name=a.sh", seller, octets, strings.Repeat("x", 1<<20+1))
	tr.do("the operator may not upload", "POST", "/v1/packages?name=a.sh", op, octets, "x")
	tr.do("a seller lists its packages", "GET", "/v1/packages", seller, "", "")
	tr.do("another seller lists none of them", "GET", "/v1/packages", other, "", "")
	tr.do("the operator may not list packages", "GET", "/v1/packages", op, "", "")
	tr.do("a seller reads its package", "GET", "/v1/packages/"+pkgIDs["setup.sh"], seller, "", "")
	tr.do("another seller's package answers like a missing one", "GET", "/v1/packages/"+pkgIDs["setup.sh"], other, "", "")

	// Package groups.
	group := func(name, installer string) string {
		return `{"name":"` + name + `","platform":"linux","os_versions":["debian-12"],"installer_id":"` + pkgIDs[installer] + `"}`
	}
	tr.do("a seller creates a group", "POST", "/v1/package-groups", seller, js, group("Good1", "setup.sh"))
	for _, g := range [][2]string{{"Vulnerable1", "vuln.sh"}, {"Reboots1", "reboot.sh"}, {"Faulty1", "fault.sh"}} {
		if code := e.call("POST", "/v1/package-groups", seller, js, strings.NewReader(group(g[0], g[1])), nil); code != 201 {
			t.Fatalf("create %s: %d", g[0], code)
		}
	}
	tr.do("N2: the name again", "POST", "/v1/package-groups", seller, js, group("Good1", "setup.sh"))
	tr.do("N1: a bad name", "POST", "/v1/package-groups", seller, js, group("bad name", "setup.sh"))
	tr.do("P4: an unregistered OS version", "POST", "/v1/package-groups", seller, js,
		`{"name":"Other1","platform":"linux","os_versions":["debian-99"],"installer_id":"`+pkgIDs["setup.sh"]+`"}`)
	tr.do("P1: another seller's installer", "POST", "/v1/package-groups", other, js, group("Theirs1", "setup.sh"))
	tr.do("malformed JSON", "POST", "/v1/package-groups", seller, js, `{"name":`)
	tr.do("an unknown field", "POST", "/v1/package-groups", seller, js, `{"name":"a","colour":"red"}`)
	tr.do("data after the JSON value", "POST", "/v1/package-groups", seller, js, `{"name":"a"} {}`)
	tr.do("not JSON", "POST", "/v1/package-groups", seller, "text/plain", `{}`)
	tr.do("a body over 1 MiB", "POST", "/v1/package-groups", seller, js, `{"name":"`+strings.Repeat("a", 2<<20)+`"}`)
	tr.do("a seller lists its groups", "GET", "/v1/package-groups", seller, "", "")
	tr.do("one group a page", "GET", "/v1/package-groups?limit=1", seller, "", "")
	tr.do("limit 0", "GET", "/v1/package-groups?limit=0", seller, "", "")
	tr.do("a cursor the server did not give out", "GET", "/v1/package-groups?cursor=bm9wZQ", seller, "", "")
	tr.do("a seller reads its group by name", "GET", "/v1/package-groups/Good1", seller, "", "")
	tr.do("another seller's group answers like a missing one", "GET", "/v1/package-groups/Good1", other, "", "")

	// Webhooks, before any build so every state change is delivered.
	tr.do("a seller sets a webhook", "PUT", "/v1/webhook", seller, js, `{"url":"http://127.0.0.1:9/pib-hook"}`)
	tr.do("not a URL", "PUT", "/v1/webhook", seller, js, `{"url":"not a url"}`)
	tr.do("a seller reads its webhook", "GET", "/v1/webhook", seller, "", "")
	tr.do("a seller without a webhook", "GET", "/v1/webhook", other, "", "")
	tr.do("no token", "GET", "/v1/webhook", "", "", "")

	// Builds: the builder waits for the gate, so the first submit is still
	// building when it is submitted again.
	_, data = tr.do("a seller submits a group", "POST", "/v1/package-groups/Good1/submit", seller, "", "")
	var submitted []pipeline.Build
	decode(data, &submitted)
	tr.do("submitted again while building", "POST", "/v1/package-groups/Good1/submit", seller, "", "")
	tr.do("another seller's group", "POST", "/v1/package-groups/Good1/submit", other, "", "")
	select { // claimed by a worker: started is set
	case <-builder.entered:
	case <-time.After(60 * time.Second):
		t.Fatal("the first build did not start within 60s")
	}
	tr.do("while building", "GET", "/v1/builds/"+submitted[0].ID, seller, "", "")
	for _, name := range []string{"Vulnerable1", "Reboots1", "Faulty1"} {
		if code := e.call("POST", "/v1/package-groups/"+name+"/submit", seller, "", nil, nil); code != 202 {
			t.Fatalf("submit %s: %d", name, code)
		}
	}
	close(builder.gate)
	ended := map[string]pipeline.State{"Good1": pipeline.Successful, "Vulnerable1": pipeline.GroupIssuesFound, "Reboots1": pipeline.GroupIssuesFound, "Faulty1": pipeline.Investigating}
	hooks.waitGroups(t, ended)

	buildOf := func(group string) string {
		t.Helper()
		bs, err := p.Reader().Builds(ctx, created.Account.ID, group)
		if err != nil || len(bs) != 1 {
			t.Fatalf("builds of %s: %v %v", group, bs, err)
		}
		return bs[0].ID
	}
	good, vuln, reboots, faulty := buildOf("Good1"), buildOf("Vulnerable1"), buildOf("Reboots1"), buildOf("Faulty1")

	tr.do("a group that passed", "GET", "/v1/package-groups/Good1/builds", seller, "", "")
	tr.do("a group with a rule broken", "GET", "/v1/package-groups/Reboots1/builds", seller, "", "")
	tr.do("another seller's group", "GET", "/v1/package-groups/Good1/builds", other, "", "")
	tr.do("a group's history", "GET", "/v1/package-groups/Good1/history", seller, "", "")
	tr.do("a group under investigation", "GET", "/v1/package-groups/Faulty1/history", seller, "", "")
	tr.do("another seller's group", "GET", "/v1/package-groups/Good1/history", other, "", "")
	tr.do("the status view", "GET", "/v1/status", seller, "", "")
	tr.do("one group", "GET", "/v1/status?group=Vulnerable1", seller, "", "")
	tr.do("another seller has no groups", "GET", "/v1/status", other, "", "")
	tr.do("limit 0", "GET", "/v1/status?limit=0", seller, "", "")
	tr.do("another seller's group", "GET", "/v1/status?group=Good1", other, "", "")
	tr.do("a successful build", "GET", "/v1/builds/"+good, seller, "", "")
	tr.do("I5 broken: the troubleshooting text", "GET", "/v1/builds/"+reboots, seller, "", "")
	tr.do("S2 broken by the scan", "GET", "/v1/builds/"+vuln, seller, "", "")
	tr.do("the operator reads any build", "GET", "/v1/builds/"+faulty, op, "", "")
	tr.do("another seller's build", "GET", "/v1/builds/"+good, other, "", "")
	tr.do("no such build, as the operator", "GET", "/v1/builds/b-0000000000000000", op, "", "")
	tr.do("the log of a build", "GET", "/v1/builds/"+reboots+"/log", seller, "", "")
	tr.do("another seller's build", "GET", "/v1/builds/"+reboots+"/log", other, "", "")
	for _, c := range []struct{ name, build string }{
		{"a successful build", good}, {"a build the scan failed", vuln}, {"a build with a rule broken", reboots},
	} {
		_, data := tr.do(c.name, "GET", "/v1/builds/"+c.build+"/report", seller, "", "")
		if !bytes.Contains(data, []byte(`"build":`)) || bytes.Contains(data, []byte(workerDataDir)) {
			t.Errorf("%s: the report lacks the builder's or names a path on the worker:\n%s", c.name, data)
		}
	}
	tr.do("another seller's build", "GET", "/v1/builds/"+good+"/report", other, "", "")
	tr.do("the CycloneDX SBOM", "GET", "/v1/builds/"+good+"/sbom", seller, "", "")
	tr.do("a format the scan did not keep", "GET", "/v1/builds/"+good+"/sbom?format=spdx-json", seller, "", "")
	tr.do("an unknown format", "GET", "/v1/builds/"+good+"/sbom?format=xml", seller, "", "")
	tr.do("a build that was not scanned", "GET", "/v1/builds/"+reboots+"/sbom", seller, "", "")

	// The operator's queue.
	tr.do("the operator's queue", "GET", "/v1/investigations", op, "", "")
	tr.do("a seller may not read it", "GET", "/v1/investigations", seller, "", "")
	tr.do("a build not under investigation", "POST", "/v1/investigations/"+good+"/retry", op, "", "")
	tr.do("a seller may not retry", "POST", "/v1/investigations/"+faulty+"/retry", seller, "", "")
	tr.do("the operator retries", "POST", "/v1/investigations/"+faulty+"/retry", op, "", "")
	hooks.waitGroups(t, map[string]pipeline.State{"Faulty1": pipeline.Investigating})
	tr.do("the operator resolves", "POST", "/v1/investigations/"+faulty+"/resolve", op, js, `{"note":"the overlay module was missing on the worker; fixed"}`)
	tr.do("resolved already", "POST", "/v1/investigations/"+faulty+"/resolve", op, js, `{"note":"again"}`)
	tr.do("malformed JSON", "POST", "/v1/investigations/"+faulty+"/resolve", op, js, `{"note":`)

	// Monitoring (S5): the golden scanner keeps no inventory, so every
	// image that matters is counted as not monitored.
	tr.do("the operator re-matches every image that matters", "POST", "/v1/rescan", op, js, `{}`)
	tr.do("an image that is not monitored", "POST", "/v1/rescan", op, js, `{"image_id":"img-00000000000000fff"}`)
	tr.do("a seller may not rescan", "POST", "/v1/rescan", seller, js, `{}`)
	tr.do("an unknown field", "POST", "/v1/rescan", op, js, `{"image":"img-00000000000000fff"}`)

	// Images.
	tr.do("the operator lists every image", "GET", "/v1/images", op, "", "")
	tr.do("a seller has none yet", "GET", "/v1/images", seller, "", "")
	tr.do("no token", "GET", "/v1/images", "", "", "")
	archive := tinyRootfs(t)
	tr.do("a seller imports a rootfs tar", "POST", "/v1/images?alias=tiny", seller, octets, archive)
	tr.do("the alias is taken", "POST", "/v1/images?alias=tiny", seller, octets, archive)
	tr.do("an unknown parameter", "POST", "/v1/images?colour=red", seller, octets, archive)
	tr.do("a bad alias", "POST", "/v1/images?alias=Bad%20Alias", seller, octets, archive)
	tr.do("not an octet stream", "POST", "/v1/images", seller, "application/x-tar", archive)
	tr.do("not an archive", "POST", "/v1/images", seller, octets, "not an archive")
	tr.do("a seller reads its image", "GET", "/v1/images/tiny", seller, "", "")
	tr.do("another seller's image", "GET", "/v1/images/tiny", other, "", "")
	tr.do("a rootfs tar", "GET", "/v1/images/tiny/export?format=rootfs-tar", seller, "", "")
	tr.do("an unknown format", "GET", "/v1/images/tiny/export?format=zip", seller, "", "")
	tr.do("a disk of an image without a kernel", "GET", "/v1/images/tiny/export?format=qcow2", seller, "", "")
	tr.do("a disk size that is not a byte count", "GET", "/v1/images/tiny/export?format=raw&size=4G", seller, "", "")
	tr.do("another seller's image", "GET", "/v1/images/tiny/export", other, "", "")
	// Instances: what is refused before anything boots (cmd/pib's
	// TestInstances launches real ones).
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGoldenGoldenGoldenGoldenGoldenGoldenGolden seller@example"
	tr.do("the seller has none", "GET", "/v1/instances", seller, "", "")
	tr.do("an image without a kernel", "POST", "/v1/instances", seller, js, `{"image":"tiny","ssh_key":"`+key+`"}`)
	tr.do("another seller's image", "POST", "/v1/instances", other, js, `{"image":"tiny","ssh_key":"`+key+`"}`)
	tr.do("no SSH key", "POST", "/v1/instances", seller, js, `{"image":"tiny"}`)
	tr.do("a key with a second line", "POST", "/v1/instances", seller, js, `{"image":"tiny","ssh_key":"`+key+`\nruncmd: [reboot]"}`)
	tr.do("too much memory", "POST", "/v1/instances", seller, js, `{"image":"tiny","ssh_key":"`+key+`","memory_mb":65536}`)
	tr.do("no such instance", "GET", "/v1/instances/i-00000000000000000", seller, "", "")
	tr.do("no such instance", "GET", "/v1/instances/i-00000000000000000/console", seller, "", "")
	tr.do("no such instance", "POST", "/v1/instances/i-00000000000000000/stop", seller, "", "")
	tr.do("no such instance", "DELETE", "/v1/instances/i-00000000000000000", seller, "", "")
	tr.do("a base image an OS version builds on", "DELETE", "/v1/images/debian-12", op, "", "")
	tr.do("a seller removes its image", "DELETE", "/v1/images/tiny", seller, "", "")
	tr.do("removed already", "DELETE", "/v1/images/tiny", seller, "", "")

	// The catalog, by a seller of its own (the transcripts above stay as
	// they were) and a buyer: a form, its review, the products each sees.
	initech := e.account("initech", accounts.Seller)
	tokenNames.Store(initech, "initech")
	buyer := e.account("umbrella", accounts.Buyer)
	tokenNames.Store(buyer, "umbrella")
	var initechAcc accounts.Account
	e.call("GET", "/v1/whoami", initech, "", nil, &initechAcc)
	_, inst := e.upload(initech, "setup.sh", "#!/bin/sh\necho installed\n")
	for _, g := range []struct{ name, version string }{{"Initech2_0Linux1", "2.0"}, {"Initech3_0Linux1", "3.0"}} {
		spec := map[string]any{"name": g.name, "platform": "linux", "os_versions": []string{"debian-12"}, "installer_id": inst["id"], "software_version": g.version}
		if code := e.json("POST", "/v1/package-groups", initech, spec, nil); code != 201 {
			t.Fatalf("create %s: %d", g.name, code)
		}
	}
	if code := e.call("POST", "/v1/package-groups/Initech2_0Linux1/submit", initech, "", nil, nil); code != 202 {
		t.Fatalf("submit Initech2_0Linux1: %d", code)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		bs, err := p.Reader().Builds(ctx, initechAcc.ID, "Initech2_0Linux1")
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) > 0 && pipeline.GroupState(bs) == pipeline.Successful {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Initech2_0Linux1 did not become Successful within 60s")
		}
	}
	const xlsx = api.XLSXType
	_, tmpl := tr.do("a seller downloads the load form", "GET", "/v1/load-form", initech, "", "")
	tr.do("a buyer may not", "GET", "/v1/load-form", buyer, "", "")
	row := newProductRow("Initech Ledger", "2.0", "Initech2_0Linux1", "")
	tr.do("a required cell left empty", "POST", "/v1/load-forms", initech, xlsx, string(fillForm(t, tmpl, newProductRow("Initech Ledger", "", "Initech2_0Linux1", ""))))
	tr.do("a group never built, another seller's group", "POST", "/v1/load-forms", initech, xlsx,
		string(fillForm(t, tmpl, newProductRow("Initech Ledger", "3.0", "Initech3_0Linux1", ""), newProductRow("Initech Books", "2.0", "Good1", ""))))
	tr.do("not a workbook", "POST", "/v1/load-forms", initech, xlsx, "name,version\n")
	tr.do("not an xlsx body", "POST", "/v1/load-forms", initech, "text/csv", "name,version\n")
	tr.do("over the size limit", "POST", "/v1/load-forms", initech, octets, strings.Repeat("x", 256<<10+1))
	tr.do("a buyer may not submit", "POST", "/v1/load-forms", buyer, xlsx, string(fillForm(t, tmpl, row)))
	_, data = tr.do("a seller submits a new product", "POST", "/v1/load-forms", initech, xlsx, string(fillForm(t, tmpl, row)))
	var change api.ChangeRequest
	decode(data, &change)
	tr.do("the seller's change requests", "GET", "/v1/changes", initech, "", "")
	tr.do("another seller sees none", "GET", "/v1/changes", other, "", "")
	tr.do("a buyer may not list them", "GET", "/v1/changes", buyer, "", "")
	tr.do("the operator's queue", "GET", "/v1/changes", op, "", "")
	tr.do("the seller reads its change request", "GET", "/v1/changes/"+change.ID, initech, "", "")
	tr.do("another seller's answers like a missing one", "GET", "/v1/changes/"+change.ID, other, "", "")
	tr.do("the operator reads it with its diff", "GET", "/v1/changes/"+change.ID, op, "", "")
	tr.do("a buyer sees no pending product", "GET", "/v1/products", buyer, "", "")
	tr.do("a seller may not approve", "POST", "/v1/changes/"+change.ID+"/approve", initech, "", "")
	tr.do("no such change request", "POST", "/v1/changes/chg-0000000000000000/approve", op, "", "")
	_, data = tr.do("the operator approves", "POST", "/v1/changes/"+change.ID+"/approve", op, "", "")
	var decided catalog.Decision
	decode(data, &decided)
	product := decided.Products[0]
	tr.do("decided already", "POST", "/v1/changes/"+change.ID+"/approve", op, "", "")
	tr.do("the seller sees its draft", "GET", "/v1/products", initech, "", "")
	tr.do("a buyer does not", "GET", "/v1/products", buyer, "", "")
	tr.do("the operator sees every product", "GET", "/v1/products", op, "", "")
	tr.do("the seller reads its draft", "GET", "/v1/products/"+product, initech, "", "")
	tr.do("a buyer: a draft answers like a missing product", "GET", "/v1/products/"+product, buyer, "", "")
	tr.do("no token", "GET", "/v1/products/"+product, "", "", "")
	tr.do("a buyer may not publish", "POST", "/v1/products/"+product+"/versions/2.0/publish", buyer, "", "")
	tr.do("no such version", "POST", "/v1/products/"+product+"/versions/9.9/publish", initech, "", "")
	_, data = tr.do("the seller asks to publish version 2.0", "POST", "/v1/products/"+product+"/versions/2.0/publish", initech, "", "")
	decode(data, &change)
	tr.do("no reason", "POST", "/v1/changes/"+change.ID+"/reject", op, js, `{"reason":""}`)
	tr.do("malformed JSON", "POST", "/v1/changes/"+change.ID+"/reject", op, js, `{"reason":`)
	tr.do("a seller may not reject", "POST", "/v1/changes/"+change.ID+"/reject", initech, js, `{"reason":"no"}`)
	tr.do("the operator rejects with a reason", "POST", "/v1/changes/"+change.ID+"/reject", op, js, `{"reason":"the long description names a competitor; remove it and ask again"}`)
	tr.do("decided already", "POST", "/v1/changes/"+change.ID+"/reject", op, js, `{"reason":"again"}`)
	if code := e.call("POST", "/v1/products/"+product+"/versions/2.0/publish", initech, "", nil, &change); code != 201 {
		t.Fatalf("publish again: %d", code)
	}
	if code := e.call("POST", "/v1/changes/"+change.ID+"/approve", op, "", nil, nil); code != 200 {
		t.Fatalf("approve publishing: %d", code)
	}
	tr.do("a buyer reads the published product", "GET", "/v1/products/"+product, buyer, "", "")
	tr.do("a buyer lists it", "GET", "/v1/products", buyer, "", "")
	buyers.cases(t, tr, e, p, seller)

	// Deliveries: every delivery listed has reached the endpoint; stopping
	// the pipeline waits for their results to be written.
	list, err := wh.Deliveries(ctx, created.Account.ID, 100)
	if err != nil || len(list) == 0 {
		t.Fatalf("deliveries: %v %v", list, err)
	}
	for {
		hooks.mu.Lock()
		missing := slices.ContainsFunc(list, func(d webhook.Delivery) bool { return !hooks.seen[d.ID] })
		hooks.mu.Unlock()
		if !missing {
			break
		}
		select {
		case <-hooks.events:
		case <-time.After(60 * time.Second):
			t.Fatal("webhook deliveries did not arrive within 60s")
		}
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	tr.do("a seller's deliveries", "GET", "/v1/webhook/deliveries", seller, "", "")
	tr.do("none for another seller", "GET", "/v1/webhook/deliveries", other, "", "")
	tr.do("no token", "GET", "/v1/webhook/deliveries", "", "", "")
	tr.do("a seller removes its webhook", "DELETE", "/v1/webhook", seller, "", "")
	tr.do("no token", "DELETE", "/v1/webhook", "", "", "")

	// The audit log, of the second seller only (its writes are few).
	tr.do("one account's rows", "GET", "/v1/audit?account="+globex.ID, op, "", "")
	tr.do("since is not a time", "GET", "/v1/audit?since=yesterday", op, "", "")
	tr.do("a seller may not read it", "GET", "/v1/audit", seller, "", "")

	// Outside the route table.
	tr.do("no such route", "GET", "/v1/nothing", seller, "", "")
	tr.do("a method the route does not take", "PATCH", "/v1/packages", seller, "", "")
	tr.do("health", "GET", "/healthz", "", "", "")

	// Every route has a golden file, and every golden file a route.
	want := map[string]bool{unrouted: true}
	for _, r := range e.srv.Routes() {
		want[goldenName(r[0], r[1])] = true
		if tr.byFile[goldenName(r[0], r[1])] == nil {
			t.Errorf("route %s %s has no golden case: add its success and its errors to TestGoldenRoutes", r[0], r[1])
		}
	}
	names := make([]string, 0, len(tr.byFile))
	for name := range tr.byFile {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		goldenFile(t, name, normalise(tr.byFile[name].String()))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.txt"))
	for _, f := range files {
		if !want[filepath.Base(f)] {
			t.Errorf("%s belongs to no route: remove it", f)
		}
	}
	if len(e.srv.Routes()) < 32 {
		t.Errorf("only %d routes registered; is a route group left out of this test?", len(e.srv.Routes()))
	}
}

// tinyRootfs is a root filesystem tar with an os-release (Alpine 3.19.1).
func tinyRootfs(t *testing.T) string { return tinyRootfsOf(t, "alpine", "3.19.1") }

// tinyRootfsOf is tinyRootfs of distribution id, version.
func tinyRootfsOf(t *testing.T, id, version string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{
		{"etc/os-release", "ID=" + id + "\nVERSION_ID=" + version + "\n"},
		{"bin/hello", "#!/bin/sh\necho hello\n"},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	return buf.String()
}
