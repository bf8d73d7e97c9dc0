package web_test

import (
	"archive/tar"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/subscriptions"
	"github.com/pib-dev/pib/internal/web"
)

// successfulBuilds stands in for the pipeline's reader in the catalog:
// every group's builds are Successful, so a group is published without
// running its test builds (as in internal/api's buyers_world_test.go).
type successfulBuilds struct{ groups *groups.Store }

func (s successfulBuilds) Builds(ctx context.Context, owner, ref string) ([]*pipeline.Build, error) {
	g, err := s.groups.Get(ctx, owner, ref)
	if err != nil {
		return nil, err
	}
	var out []*pipeline.Build
	for _, os := range g.OSVersions {
		out = append(out, &pipeline.Build{GroupID: g.ID, OSName: os, State: pipeline.Successful})
	}
	return out, nil
}

// market is acme's public product "Acme DB" with version 1.0: a Linux
// (debian-12) and a Windows (windows-2022) package group.
type market struct{ product, version, linuxOpt, windowsOpt string }

// newBuyerWorld is newWorld with the catalog and the buyers' services
// wired as pib serve wires them, a second buyer (hooli) and acme's public
// product.
func newBuyerWorld(t *testing.T) (*world, market) {
	t.Helper()
	w := newWorld(t)
	ctx := context.Background()
	d := &w.deps
	cat := catalog.New(w.db, catalog.Config{Groups: d.Groups, Builds: successfulBuilds{d.Groups}})
	d.Catalog = cat
	d.Subscriptions = subscriptions.New(w.db, cat)
	d.PrivateBuilds = privatebuilds.New(w.db, privatebuilds.Config{Catalog: cat, Subscriptions: d.Subscriptions, Images: d.Images,
		Groups: d.Groups, OSVersions: d.OSVersions, Pipeline: d.Pipeline, Builds: d.Builds})
	ops, _, err := d.Accounts.Create(ctx, "ops", accounts.Operator)
	if err != nil {
		t.Fatal(err)
	}
	hooli, token, err := d.Accounts.Create(ctx, "hooli", accounts.Buyer)
	if err != nil {
		t.Fatal(err)
	}
	w.tokens["hooli"], w.ids["hooli"] = token, hooli.ID
	seller, err := d.Accounts.Authenticate(ctx, w.tokens["acme"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.OSVersions.Add(ctx, "windows-2022", "windows", "img-0000000000000wind"); err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct{ name, platform, os, installer string }{
		{"AcmeDBLinux1", "linux", "debian-12", "setup.sh"},
		{"AcmeDBWindows1", "windows", "windows-2022", "setup.msi"},
	} {
		p, err := d.Packages.Upload(ctx, seller.ID, g.installer, strings.NewReader("#!/bin/sh\necho hi\n"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Groups.Create(ctx, seller.ID, groups.Spec{Name: g.name, Platform: g.platform, OSVersions: []string{g.os}, InstallerID: p.ID, SoftwareVersion: "1.0"}); err != nil {
			t.Fatal(err)
		}
	}
	approve := func(ch *catalog.Change, err error) *catalog.Decision {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		dec, err := cat.Approve(ctx, ops, ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		return dec
	}
	dec := approve(cat.Submit(ctx, seller, []catalog.RowInput{{Row: catalog.Row{Request: catalog.NewProduct, ProductTitle: "Acme DB", VersionTitle: "1.0",
		ReleaseNotes: "First release.", UsageInstructions: "Run it.", PackageGroup: "AcmeDBLinux1", ShortDescription: "A database.",
		LongDescription: "A database.", Highlights: []string{"Fast"}, Category: "Databases", SupportContact: "support@example.com"}}}))
	m := market{product: dec.Products[0]}
	approve(cat.Submit(ctx, seller, []catalog.RowInput{{Row: catalog.Row{Request: catalog.AddOption, ProductID: m.product, VersionTitle: "1.0", PackageGroup: "AcmeDBWindows1"}}}))
	approve(cat.Publish(ctx, seller, m.product, "1.0"))
	p, err := cat.Get(ctx, seller, m.product)
	if err != nil {
		t.Fatal(err)
	}
	m.version = p.Versions[0].ID
	for _, o := range p.Versions[0].Options {
		switch o.Platform {
		case "linux":
			m.linuxOpt = o.ID
		case "windows":
			m.windowsOpt = o.ID
		}
	}
	hs := httptest.NewServer(web.Beside(api.New(w.deps), web.New(w.deps)))
	t.Cleanup(hs.Close)
	w.url = hs.URL
	return w, m
}

// goldArchive writes a tiny Debian 12 root file system tarball and
// returns its path.
func goldArchive(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{{"etc/os-release", "ID=debian\nVERSION_ID=12\n"}, {"etc/gold", "customised\n"}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	file := filepath.Join(t.TempDir(), "gold.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// A buyer signs in, subscribes to a public product, imports a gold image
// (a multipart upload), is refused InstallerMismatch (C2) plainly next to
// the Build form for the Windows option, configures the Linux option on
// its gold image, builds, and sees the private build Successful with its
// findings, report and export links.
func TestBuyerPrivateImage(t *testing.T) {
	w, m := newBuyerWorld(t)
	b := newBrowser(t)
	b.run(t,
		chromedp.Navigate(w.url+"/signin"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), w.tokens["initech"]),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(`//a[text()="Acme DB"]`),
	)
	b.checkPage(t, "products")
	b.run(t, chromedp.Click(`//a[text()="Acme DB"]`), chromedp.WaitVisible(chromedp.ID("subscribe")))
	b.checkPage(t, "product")
	b.run(t, chromedp.Click(chromedp.ID("subscribe")), chromedp.WaitVisible(`//a[text()="Configure a private image"]`))

	b.run(t, chromedp.Navigate(w.url+"/subscriptions"), chromedp.WaitVisible(`//td/a[text()="Acme DB"]`))
	b.checkPage(t, "subscriptions")

	b.run(t, chromedp.Navigate(w.url+"/images"), chromedp.WaitVisible(chromedp.ID("archive")))
	b.checkPage(t, "images")
	b.run(t,
		chromedp.SendKeys(chromedp.ID("alias"), "gold"),
		chromedp.SetUploadFiles(chromedp.ID("archive"), []string{goldArchive(t)}),
		chromedp.Submit(chromedp.ID("archive")),
		chromedp.WaitVisible(`//h2[text()="Export"]`),
	)
	loc := get(t, b, chromedp.Location())
	gold := strings.TrimPrefix(loc, w.url+"/images/")
	im, err := w.deps.Images.GetOwned(context.Background(), w.ids["initech"], gold)
	if err != nil || im.Alias != "gold" {
		t.Fatalf("after the import at %s: image %+v, %v; want initech's image aliased gold", loc, im, err)
	}
	b.checkPage(t, "image")

	configure := func(option string) {
		t.Helper()
		b.run(t,
			chromedp.Navigate(w.url+"/configure?product="+m.product),
			chromedp.WaitVisible(chromedp.ID("fulfillment")),
			chromedp.SetValue(chromedp.ID("fulfillment"), option),
			chromedp.Click(chromedp.ID("choose")),
			// The page before Show choices has the fields too: wait for
			// the one that has the option chosen (a selected attribute).
			chromedp.WaitReady(`//select[@id="fulfillment"]/option[@value="`+option+`" and @selected]`),
			chromedp.WaitVisible(chromedp.ID("gold_image")),
			chromedp.SetValue(chromedp.ID("gold_image"), gold),
			chromedp.SendKeys(chromedp.ID("name"), "acme-db-gold"),
			chromedp.SendKeys(chromedp.ID("description"), "Acme DB on our gold image"),
			chromedp.SendKeys(chromedp.ID("tags"), "team=data"),
		)
	}
	configure(m.windowsOpt)
	b.checkPage(t, "configure")
	b.run(t, chromedp.Click(chromedp.ID("build")), chromedp.WaitVisible(chromedp.ID("build-error")))
	msg := b.text(t, "#build-error")
	for _, want := range []string{"InstallerMismatch", "C2", "gold_image"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the C2 refusal %q lacks %q", msg, want)
		}
	}
	if v := get(t, b, chromedp.AttributeValue(chromedp.ID("gold_image"), "aria-invalid")).Value; v != "true" {
		t.Errorf("the gold image field is not marked invalid: aria-invalid=%q", v)
	}
	b.checkPage(t, "configure-error")

	configure(m.linuxOpt)
	b.run(t, chromedp.Click(chromedp.ID("build")), chromedp.WaitVisible(chromedp.ID("state")))
	build := strings.TrimPrefix(get(t, b, chromedp.Location()), w.url+"/private-builds/")
	close(w.builder.gate)
	deadline := time.Now().Add(60 * time.Second)
	for b.text(t, "#state") != string(pipeline.Successful) {
		if time.Now().After(deadline) {
			t.Fatalf("private build %s is %q after 60s, want Successful", build, b.text(t, "#state"))
		}
		time.Sleep(100 * time.Millisecond)
		b.run(t, chromedp.Navigate(w.url+"/private-builds/"+build), chromedp.WaitVisible(chromedp.ID("state")))
	}
	page := b.text(t, "main")
	for _, want := range []string{"acme-db-gold", goodImage, "No findings", "team", "/opt/app"} {
		if !strings.Contains(page, want) {
			t.Errorf("the private build page %q lacks %q", page, want)
		}
	}
	if links := b.text(t, "#exports"); !strings.Contains(links, "docker-archive") || !strings.Contains(links, "rootfs-tar") {
		t.Errorf("export links %q", links)
	}
	b.checkPage(t, "private-build")
	b.run(t, chromedp.Navigate(w.url+"/private-builds"), chromedp.WaitVisible(`//a[text()="acme-db-gold"]`))
	b.checkPage(t, "private-builds")
}

// A build request for a product the buyer does not subscribe to is
// refused SubscriptionNotFound (C4) on the form's page, with the API's
// status; an import without an archive is refused next to its form.
func TestBuyerRefusals(t *testing.T) {
	w, m := newBuyerWorld(t)
	ctx := context.Background()
	im, err := w.deps.Images.Import(ctx, goldArchive(t), images.ImportOptions{Owner: w.ids["hooli"]})
	if err != nil {
		t.Fatal(err)
	}
	c := w.client()
	c.signIn("hooli")
	resp, body := c.post("/private-builds", url.Values{"csrf": {c.csrf("/configure?product=" + m.product)}, "product": {m.product}, "version": {m.version},
		"fulfillment": {m.linuxOpt}, "gold_image": {im.ID}, "name": {"x"}})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("build unsubscribed: %d, want 404 (the API's status for SubscriptionNotFound)", resp.StatusCode)
	}
	for _, want := range []string{`id="build-error"`, "SubscriptionNotFound", "rule C4", "<code>product</code>", `name="gold_image"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the refusal page lacks %q: %s", want, body)
		}
	}
	if resp, _ := c.post("/private-builds", url.Values{"product": {m.product}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("build without the CSRF token: %d, want 403", resp.StatusCode)
	}
}

// Another buyer opening the first buyer's private build, gold image or
// its export by URL gets the same page as for a missing one.
func TestBuyerIsolation(t *testing.T) {
	w, m := newBuyerWorld(t)
	ctx := context.Background()
	initech, err := w.deps.Accounts.Authenticate(ctx, w.tokens["initech"])
	if err != nil {
		t.Fatal(err)
	}
	gold, err := w.deps.Images.Import(ctx, goldArchive(t), images.ImportOptions{Owner: initech.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.deps.Subscriptions.Add(ctx, initech, m.product); err != nil {
		t.Fatal(err)
	}
	pb, _, err := w.deps.PrivateBuilds.Create(ctx, initech, privatebuilds.Request{Product: m.product, Version: m.version, GoldImage: gold.ID, Name: "mine"})
	if err != nil {
		t.Fatal(err)
	}
	owner := w.client()
	owner.signIn("initech")
	for _, path := range []string{"/private-builds/" + pb.ID, "/images/" + gold.ID} {
		if resp, body := owner.get(path); resp.StatusCode != http.StatusOK {
			t.Fatalf("the owner's %s: %d %s", path, resp.StatusCode, body)
		}
	}
	other := w.client()
	other.signIn("hooli")
	zeros := func(id, prefix string) string { return prefix + strings.Repeat("0", len(id)-len(prefix)) }
	for _, c := range []struct{ path, theirs, missing string }{
		{"/private-builds/%s", pb.ID, zeros(pb.ID, "b-")},
		{"/private-builds/%s/log", pb.ID, zeros(pb.ID, "b-")},
		{"/images/%s", gold.ID, zeros(gold.ID, "img-")},
		{"/images/%s/export", gold.ID, zeros(gold.ID, "img-")},
	} {
		r1, foreign := other.get(strings.Replace(c.path, "%s", c.theirs, 1))
		r2, absent := other.get(strings.Replace(c.path, "%s", c.missing, 1))
		if r1.StatusCode != http.StatusNotFound || r2.StatusCode != http.StatusNotFound {
			t.Errorf("%s: foreign %d, missing %d; want 404 both", c.path, r1.StatusCode, r2.StatusCode)
		}
		if a, b := strings.ReplaceAll(foreign, c.theirs, "REF"), strings.ReplaceAll(absent, c.missing, "REF"); a != b {
			t.Errorf("%s: another buyer's object reads unlike a missing one:\n%s\n---\n%s", c.path, a, b)
		}
	}
	if _, body := other.get("/images"); strings.Contains(body, gold.ID) {
		t.Errorf("hooli's Gold images list initech's image %s", gold.ID)
	}
	if _, body := other.get("/private-builds"); strings.Contains(body, pb.ID) {
		t.Errorf("hooli's private builds list initech's build %s", pb.ID)
	}
}
