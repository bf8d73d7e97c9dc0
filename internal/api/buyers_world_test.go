package api_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/subscriptions"
)

// successfulBuilds stands in for the pipeline's reader in the catalog:
// every group's builds are Successful, so any group can be published
// without running its test builds.
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

// buyerDeps adds the buyers' services to d, with a catalog over db; it
// returns the catalog, for tests to publish products in.
func buyerDeps(db *store.DB, d *api.Deps, limit int) *catalog.Store {
	cat := catalog.New(db, catalog.Config{Groups: d.Groups, Builds: successfulBuilds{d.Groups}})
	wireBuyers(db, d, cat, limit)
	return cat
}

// wireBuyers sets d's buyers' services (subscriptions, private image
// builds) reading catalog cat, as cmd/pib's buyerServices does; d's
// pipeline must be set. A limit of 0 is privatebuilds.DefaultLimit.
func wireBuyers(db *store.DB, d *api.Deps, cat *catalog.Store, limit int) {
	d.Subscriptions = subscriptions.New(db, cat)
	d.PrivateBuilds = privatebuilds.New(db, privatebuilds.Config{Catalog: cat, Subscriptions: d.Subscriptions, Images: d.Images,
		Groups: d.Groups, OSVersions: d.OSVersions, Pipeline: d.Pipeline, Builds: d.Builds, Limit: limit})
}

// market is a catalog for buyers: a seller's product with a version 1.0
// that has a Linux (debian-12) and a Windows package group.
type market struct {
	product, version, linuxOpt, windowsOpt string
}

// publish makes seller's product titled title with version 1.0 (a Linux
// group on debian-12 and a Windows group on windows-2022, both named
// after prefix) and, unless testers are named, makes it public; with
// testers it stays limited to them. Needs the debian-12 OS version.
func publish(t testing.TB, ctx context.Context, d *api.Deps, cat *catalog.Store, seller, ops *accounts.Account, title, prefix string, testers ...string) market {
	t.Helper()
	if _, err := d.OSVersions.Get(ctx, "windows-2022"); err != nil {
		if _, err := d.OSVersions.Add(ctx, "windows-2022", "windows", "img-0000000000000wind"); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(name, platform, os, installer string) {
		p, err := d.Packages.Upload(ctx, seller.ID, installer, strings.NewReader("#!/bin/sh\necho "+name+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Groups.Create(ctx, seller.ID, groups.Spec{Name: name, Platform: platform, OSVersions: []string{os}, InstallerID: p.ID, SoftwareVersion: "1.0"}); err != nil {
			t.Fatal(err)
		}
	}
	mk(prefix+"Linux1", "linux", "debian-12", "setup.sh")
	mk(prefix+"Windows1", "windows", "windows-2022", "setup.msi")
	approve := func(rows ...catalog.RowInput) *catalog.Decision {
		t.Helper()
		ch, err := cat.Submit(ctx, seller, rows)
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		dec, err := cat.Approve(ctx, ops, ch.ID)
		if err != nil {
			t.Fatalf("approve: %v", err)
		}
		return dec
	}
	dec := approve(catalog.RowInput{Row: catalog.Row{Request: catalog.NewProduct, ProductTitle: title, VersionTitle: "1.0",
		ReleaseNotes: "First release.", UsageInstructions: "Run it.", PackageGroup: prefix + "Linux1", ShortDescription: "A database.",
		LongDescription: "A database.", Highlights: []string{"Fast"}, Category: "Databases", SupportContact: "support@example.com", TestAccounts: testers}})
	m := market{product: dec.Products[0]}
	approve(catalog.RowInput{Row: catalog.Row{Request: catalog.AddOption, ProductID: m.product, VersionTitle: "1.0", PackageGroup: prefix + "Windows1"}})
	if len(testers) == 0 {
		ch, err := cat.Publish(ctx, seller, m.product, "1.0")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cat.Approve(ctx, ops, ch.ID); err != nil {
			t.Fatal(err)
		}
	}
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
	return m
}

// goldImage imports a tiny root file system of distribution id/version
// as owner's image.
func goldImage(t testing.TB, ctx context.Context, is *images.Store, owner, id, version string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{
		{"etc/os-release", "ID=" + id + "\nVERSION_ID=" + version + "\n"},
		{"etc/gold", "customised by " + owner + "\n"},
	} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)})
		tw.Write([]byte(f.body))
	}
	tw.Close()
	file := filepath.Join(t.TempDir(), "gold.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	im, err := is.Import(ctx, file, images.ImportOptions{Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	return im.ID
}

// whoami returns token's account.
func (e *env) whoami(token string) *accounts.Account {
	e.t.Helper()
	var a accounts.Account
	if code := e.call("GET", "/v1/whoami", token, "", nil, &a); code != 200 {
		e.t.Fatalf("whoami: %d", code)
	}
	return &a
}
