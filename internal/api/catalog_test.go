package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/instance"
	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/webhook"
)

// formRow is a Products row by column; fillForm writes it at its line.
type formRow map[loadform.Column]string

// fillForm writes rows from line 2 on into the Products sheet of tmpl, a
// load form as GET /v1/load-form sent it, as a seller's spreadsheet would.
func fillForm(t testing.TB, tmpl []byte, rows ...formRow) []byte {
	t.Helper()
	xf, err := excelize.OpenReader(bytes.NewReader(tmpl))
	if err != nil {
		t.Fatal(err)
	}
	defer xf.Close()
	for i, r := range rows {
		for _, c := range loadform.Columns { // in order: the same rows make the same bytes
			v, ok := r[c]
			if !ok {
				continue
			}
			if err := xf.SetCellStr(loadform.ProductsSheet, fmt.Sprintf("%s%d", c.Letter(), i+2), v); err != nil {
				t.Fatal(err)
			}
		}
	}
	buf, err := xf.WriteToBuffer()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// xlsxListing describes a workbook for a golden file: its sheets in
// order, the Products header and every row of the Package groups sheet.
func xlsxListing(data []byte) string {
	xf, err := excelize.OpenReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Sprintf("(not a workbook: %v)\n", err)
	}
	defer xf.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "xlsx sheets: %s\n", strings.Join(xf.GetSheetList(), ", "))
	for _, sheet := range []string{loadform.ProductsSheet, loadform.GroupsSheet} {
		rows, err := xf.GetRows(sheet)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", sheet, err)
			continue
		}
		for i, row := range rows {
			if sheet == loadform.ProductsSheet && i > 0 {
				break
			}
			fmt.Fprintf(&b, "%s row %d: %s\n", sheet, i+1, strings.Join(row, " | "))
		}
	}
	return b.String()
}

// catalogEnv is the API with a running pipeline whose builds pass
// (goldenBuilder, goldenScanner), webhooks delivered to hooks, the
// catalog deciding through api.DecisionWebhook, and the buyers' services
// reading that catalog.
type catalogEnv struct {
	*env
	ctx   context.Context
	p     *pipeline.Pipeline
	hooks *hookRecorder
}

func newCatalogEnv(t testing.TB, db *store.DB, limits loadform.Limits) *catalogEnv {
	t.Helper()
	ctx := context.Background()
	report, err := os.ReadFile(filepath.Join("testdata", "scan-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	close(gate)
	c := &catalogEnv{ctx: ctx, hooks: &hookRecorder{seen: map[string]bool{}, events: make(chan pipeline.WebhookEvent, 10000)}}
	c.env = newEnvWith(t, db, func(d *api.Deps) {
		wh := webhook.New(db, webhook.Config{AllowPrivate: true, HTTPClient: &http.Client{Transport: c.hooks}, Logger: quietLogger()})
		p, err := pipeline.New(ctx, db, pipeline.Config{
			Builder: &goldenBuilder{entered: make(chan struct{}, 1), gate: gate}, Scanner: &goldenScanner{blobs: d.Images.Blobs(), report: report},
			Groups: d.Groups, Packages: d.Packages, OSVersions: d.OSVersions,
			WorkDir: t.TempDir(), PollInterval: 20 * time.Millisecond, Logger: quietLogger(), Webhooks: wh,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Stop(context.Background()) })
		d.Pipeline, d.Builds, d.Webhooks, d.LoadForm = p, p.Reader(), wh, limits
		d.Catalog = catalog.New(db, catalog.Config{Groups: d.Groups, Builds: p.Reader(), Decided: api.DecisionWebhook(p)})
		// The buyers' routes, over the one catalog as the service has
		// them (cmd/pib: buyerServices), so that TestAuthorizationMatrix
		// covers them. It makes several private builds per account back
		// to back: the limit (C4, TestPrivateImageBuilds') is out of reach.
		wireBuyers(db, d, d.Catalog, 100)
		withMonitor(db, d, p)
		// Instances, as pib serve has them: every route in the matrix.
		im, err := instance.New(instance.Config{Images: d.Images, Dir: filepath.Join(t.TempDir(), "instances")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { im.Close() })
		d.Instances = im
		c.p = p
		// A Windows OS version for F1's second platform: goldenBuilder
		// never reads its base image.
		if _, err := d.OSVersions.Add(ctx, "windows-2022", "windows", "img-00000000000000009"); err != nil {
			t.Fatal(err)
		}
	})
	if code := c.json("POST", "/v1/os-versions", c.operator, map[string]string{"name": "debian-12", "image": "debian-12"}, nil); code != 201 {
		t.Fatalf("register debian-12: %d", code)
	}
	return c
}

// whoami returns the account of token.
func (c *catalogEnv) whoami(token string) *accounts.Account {
	c.t.Helper()
	var a accounts.Account
	if code := c.call("GET", "/v1/whoami", token, "", nil, &a); code != 200 {
		c.t.Fatalf("whoami: %d", code)
	}
	return &a
}

// successfulGroup makes seller's package group name for platform (on
// debian-12 or windows-2022), of software version version, and waits until
// the pipeline says it is Successful.
func (c *catalogEnv) successfulGroup(seller, name, platform, version string) {
	c.t.Helper()
	installer, osName := "setup.sh", "debian-12"
	if platform == "windows" {
		installer, osName = "setup.msi", "windows-2022"
	}
	code, pkg := c.upload(seller, installer, "#!/bin/sh\necho installed\n")
	if code != 201 {
		c.t.Fatalf("upload: %d %v", code, pkg)
	}
	spec := map[string]any{"name": name, "platform": platform, "os_versions": []string{osName}, "installer_id": pkg["id"], "software_version": version}
	if code := c.json("POST", "/v1/package-groups", seller, spec, nil); code != 201 {
		c.t.Fatalf("create %s: %d", name, code)
	}
	if code := c.call("POST", "/v1/package-groups/"+name+"/submit", seller, "", nil, nil); code != 202 {
		c.t.Fatalf("submit %s: %d", name, code)
	}
	owner := c.whoami(seller).ID
	deadline := time.Now().Add(60 * time.Second)
	for {
		bs, err := c.p.Reader().Builds(c.ctx, owner, name)
		if err != nil {
			c.t.Fatal(err)
		}
		if len(bs) > 0 && pipeline.GroupState(bs) == pipeline.Successful {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not become Successful within 60s: %v", name, pipeline.GroupState(bs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// template downloads the load form as seller.
func (c *catalogEnv) template(seller string) []byte {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.url+"/v1/load-form", nil)
	req.Header.Set("Authorization", "Bearer "+seller)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != api.XLSXType {
		c.t.Fatalf("GET /v1/load-form: %d %s", resp.StatusCode, buf.String())
	}
	return buf.Bytes()
}

// submit uploads form as seller; out gets the answer.
func (c *catalogEnv) submit(seller string, form []byte, out any) int {
	c.t.Helper()
	return c.call("POST", "/v1/load-forms", seller, api.XLSXType, bytes.NewReader(form), out)
}

// approve approves change id as the operator.
func (c *catalogEnv) approve(id string) *catalog.Decision {
	c.t.Helper()
	var d catalog.Decision
	if code := c.call("POST", "/v1/changes/"+id+"/approve", c.operator, "", nil, &d); code != 200 {
		c.t.Fatalf("approve %s: %d %+v", id, code, d)
	}
	return &d
}

func newProductRow(title, version, group string, testers string) formRow {
	return formRow{
		loadform.ColRequest: "new product", loadform.ColProductTitle: title, loadform.ColVersionTitle: version,
		loadform.ColReleaseNotes: "First release.", loadform.ColUsage: "Run acme --help.",
		loadform.ColPackageGroup: group, loadform.ColPlatform: "linux",
		loadform.ColShortDescription: "A database.", loadform.ColLongDescription: "A database\nthat scales.",
		loadform.ColHighlights: "Fast\nSmall", loadform.ColCategory: "Databases",
		loadform.ColSupportContact: "support@acme.example", loadform.ColTestAccounts: testers,
	}
}

func newVersionRow(product, version, group, testers string) formRow {
	return formRow{
		loadform.ColRequest: "new version", loadform.ColProductID: product, loadform.ColVersionTitle: version,
		loadform.ColReleaseNotes: "Faster.", loadform.ColUsage: "As before.",
		loadform.ColPackageGroup: group, loadform.ColPlatform: "linux", loadform.ColTestAccounts: testers,
	}
}

func addOptionRow(product, version, group, platform string) formRow {
	return formRow{
		loadform.ColRequest: "add fulfillment option", loadform.ColProductID: product, loadform.ColVersionTitle: version,
		loadform.ColPackageGroup: group, loadform.ColPlatform: platform,
	}
}

// firstPackage is the ID of a package of seller.
func (c *catalogEnv) firstPackage(seller string) string {
	c.t.Helper()
	var list []struct{ ID string }
	if code := c.call("GET", "/v1/packages", seller, "", nil, &list); code != 200 || len(list) == 0 {
		c.t.Fatalf("GET /v1/packages: %d %v", code, list)
	}
	return list[0].ID
}
