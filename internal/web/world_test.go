package web_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/web"
	"github.com/pib-dev/pib/internal/webhook"
)

// fakeBuilder builds by the installer's name, as the API tests'
// goldenBuilder does: "reboot" breaks I5, anything else succeeds. Builds
// wait for gate to be closed, so a test sees them in Building first.
// While crashes is above zero, a "crash" installer fails on the
// platform's side (the build goes to Investigating), once per count.
type fakeBuilder struct {
	gate    chan struct{}
	crashes atomic.Int32
}

const goodImage = "img-00000000000000001"

func (b *fakeBuilder) Build(ctx context.Context, req pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
	select {
	case <-b.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if strings.Contains(filepath.Base(req.Installer), "crash") && b.crashes.Add(-1) >= 0 {
		return nil, errors.New("the builder lost its sandbox")
	}
	if strings.Contains(filepath.Base(req.Installer), "reboot") {
		return &pipeline.BuildOutcome{
			Findings: []pipeline.Finding{{Rule: "I5", Message: "the installer tried to reboot", Detail: "reboot -f"}},
			Log:      []byte("installing\nrebooting\n"),
		}, nil
	}
	return &pipeline.BuildOutcome{ImageID: goodImage, Log: []byte("installed\n"), ChangedFiles: []string{"/opt/app (added)"}}, nil
}

// passScanner passes every image, with the report of fakeScanReport.
type passScanner struct{ images *images.Store }

func (s passScanner) Scan(ctx context.Context, imageID string) (*pipeline.ScanOutcome, error) {
	rep, err := fakeScanReport(ctx, s.images, imageID)
	if err != nil {
		return nil, err
	}
	return &pipeline.ScanOutcome{Passed: true, Report: rep}, nil
}

// world is pib serve's handler (API and portal) over SQLite with a
// pipeline of fakeBuilder and passScanner, and the catalog; acme and globex are sellers,
// initech a buyer.
type world struct {
	t       *testing.T
	url     string
	db      *store.DB
	deps    api.Deps
	builder *fakeBuilder
	tokens  map[string]string // account name → token
	ids     map[string]string // account name → ID
	// skew moves the pipeline's clock ahead (overdue investigations).
	skew atomic.Int64
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite)
	st := newStores(t, db)
	is, oses, ps, gs := st.images, st.oses, st.packages, st.groups
	w := &world{t: t, db: db, builder: &fakeBuilder{gate: make(chan struct{})}, tokens: map[string]string{}, ids: map[string]string{}}
	wh := webhook.New(db, webhook.Config{Logger: quietLogger()})
	p, err := pipeline.New(ctx, db, pipeline.Config{
		Builder: w.builder, Scanner: passScanner{images: is}, Groups: gs, Packages: ps, OSVersions: oses,
		WorkDir: t.TempDir(), PollInterval: 20 * time.Millisecond, Logger: quietLogger(), Webhooks: wh,
		Now: func() time.Time { return time.Now().Add(time.Duration(w.skew.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background()) })
	as := accounts.NewStore(db)
	w.deps = api.Deps{Accounts: as, Packages: ps, Groups: gs, OSVersions: oses, Images: is, Audit: audit.New(db),
		Pipeline: p, Builds: p.Reader(), Webhooks: wh}
	w.deps.Catalog = catalog.New(db, catalog.Config{Groups: gs, Builds: p.Reader(), Decided: api.DecisionWebhook(p)})
	for _, a := range []struct {
		name string
		role accounts.Role
	}{{"acme", accounts.Seller}, {"globex", accounts.Seller}, {"initech", accounts.Buyer}} {
		acc, token, err := as.Create(ctx, a.name, a.role)
		if err != nil {
			t.Fatal(err)
		}
		w.tokens[a.name], w.ids[a.name] = token, acc.ID
	}
	hs := httptest.NewServer(web.Beside(api.New(w.deps), web.New(w.deps)))
	t.Cleanup(hs.Close)
	w.url = hs.URL
	return w
}

// submit creates seller's group name with installer file and submits it;
// it returns the group's ID.
func (w *world) submit(seller, name, installer string) string {
	w.t.Helper()
	ctx := context.Background()
	owner := w.ids[seller]
	pkg, err := w.deps.Packages.Upload(ctx, owner, installer, strings.NewReader("#!/bin/sh\necho hi\n"))
	if err != nil {
		w.t.Fatal(err)
	}
	g, err := w.deps.Groups.Create(ctx, owner, groups.Spec{Name: name, Platform: "linux", OSVersions: []string{"debian-12"}, PackageIDs: []string{pkg.ID}, InstallerID: pkg.ID})
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.deps.Pipeline.Submit(ctx, owner, g.ID); err != nil {
		w.t.Fatal(err)
	}
	return g.ID
}

// waitState waits until seller's group reaches state.
func (w *world) waitState(seller, group string, want pipeline.State) {
	w.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := w.deps.GroupStatus(context.Background(), w.ids[seller], group)
		if err != nil {
			w.t.Fatal(err)
		}
		if st.State == want {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("group %s is %s after 60s, want %s", group, st.State, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// client is a browser without JavaScript: a cookie jar that does not
// follow redirects.
type client struct {
	t *testing.T
	c *http.Client
	w *world
}

func (w *world) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: w.t, w: w, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.c.Get(c.w.url + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *client) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.c.PostForm(c.w.url+path, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// csrf is the CSRF token of the form on the page at path.
func (c *client) csrf(path string) string {
	c.t.Helper()
	_, body := c.get(path)
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no csrf field on %s: %s", path, body)
	}
	return m[1]
}

// signIn signs in as account name through the sign-in form.
func (c *client) signIn(name string) {
	c.t.Helper()
	resp, body := c.post("/signin", url.Values{"csrf": {c.csrf("/signin")}, "token": {c.w.tokens[name]}})
	if resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("sign in as %s: %d %s", name, resp.StatusCode, body)
	}
}

var errNoChromium = errors.New("chromium not found")

// stores are the domain stores a portal test or benchmark serves from,
// over db, with a debian-12 OS version whose base image is a one-file
// Debian root.
type stores struct {
	images   *images.Store
	oses     *osversions.Store
	packages *packages.Store
	groups   *groups.Store
}

func newStores(tb testing.TB, db *store.DB) stores {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	bs, err := blobs.NewDir(filepath.Join(dir, "blobs"))
	if err != nil {
		tb.Fatal(err)
	}
	is := images.NewStore(db, bs, filepath.Join(dir, "cache"))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := "ID=debian\nVERSION_ID=12\n"
	tw.WriteHeader(&tar.Header{Name: "etc/os-release", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	tw.Write([]byte(body))
	tw.Close()
	rootfs := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(rootfs, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	img, err := is.Import(ctx, rootfs, images.ImportOptions{Alias: "debian-12"})
	if err != nil {
		tb.Fatal(err)
	}
	oses := osversions.NewStore(db)
	if _, err := oses.Add(ctx, "debian-12", "linux", img.ID); err != nil {
		tb.Fatal(err)
	}
	ps := packages.NewStore(db, bs)
	return stores{images: is, oses: oses, packages: ps, groups: groups.NewStore(db, ps, oses)}
}
