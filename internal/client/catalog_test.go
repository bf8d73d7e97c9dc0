package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/xuri/excelize/v2"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/client"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/images"
	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
)

// allSuccessful is a catalog.Builds for which every group has passed on
// every OS version it names: the client's tests need answers, not builds.
type allSuccessful struct{}

func (allSuccessful) Builds(_ context.Context, _, ref string) ([]*pipeline.Build, error) {
	return []*pipeline.Build{{GroupID: ref, OSName: "debian-12", State: pipeline.Successful}}, nil
}

// TestCatalogAgainstAPI calls the catalog's methods against the real API.
func TestCatalogAgainstAPI(t *testing.T) {
	ctx := context.Background()
	url, op := server(t)
	must[*images.Image](t, "ImportImage")(op.ImportImage(ctx, bytes.NewReader(rootfsTar(t)), -1, "debian-12"))
	op.AddOSVersion(ctx, "debian-12", "debian-12")
	seller := client.New(url, must[*api.CreateAccountResponse](t, "CreateAccount")(op.CreateAccount(ctx, "acme", accounts.Seller)).Token)
	buyer := client.New(url, must[*api.CreateAccountResponse](t, "CreateAccount")(op.CreateAccount(ctx, "umbrella", accounts.Buyer)).Token)
	inst := must[*packages.Package](t, "UploadPackage")(seller.UploadPackage(ctx, "setup.sh", bytes.NewReader([]byte("#!/bin/sh\n")), 10))
	must[*groups.Group](t, "CreateGroup")(seller.CreateGroup(ctx, groups.Spec{Name: "Shop20Linux1", Platform: "linux", OSVersions: []string{"debian-12"}, InstallerID: inst.ID, SoftwareVersion: "2.0"}))

	var form bytes.Buffer
	if err := seller.LoadForm(ctx, &form); err != nil {
		t.Fatalf("LoadForm: %v", err)
	}
	var nothing bytes.Buffer
	err := buyer.LoadForm(ctx, &nothing)
	if wantCode(t, "a buyer's LoadForm", err, problem.Forbidden, 403); nothing.Len() != 0 {
		t.Errorf("LoadForm wrote %d bytes with an error answer", nothing.Len())
	}
	fill := func(version string) []byte {
		xf, err := excelize.OpenReader(bytes.NewReader(form.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		defer xf.Close()
		for c, v := range map[loadform.Column]string{loadform.ColRequest: "new product", loadform.ColProductTitle: "Acme Shop", loadform.ColVersionTitle: version,
			loadform.ColReleaseNotes: "First.", loadform.ColUsage: "Run it.", loadform.ColPackageGroup: "Shop20Linux1", loadform.ColPlatform: "linux",
			loadform.ColShortDescription: "A shop.", loadform.ColLongDescription: "A shop.", loadform.ColCategory: "Databases", loadform.ColSupportContact: "help@acme.example"} {
			xf.SetCellStr(loadform.ProductsSheet, fmt.Sprintf("%s2", c.Letter()), v)
		}
		b, err := xf.WriteToBuffer()
		if err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	bad := fill("")
	_, err = seller.SubmitLoadForm(ctx, bytes.NewReader(bad), int64(len(bad)))
	var pe *problem.Error
	if wantCode(t, "SubmitLoadForm without a version", err, problem.Invalid, 400); !errors.As(err, &pe) || len(pe.Details) != 1 || pe.Details[0].Field != "Products!D2" {
		t.Errorf("SubmitLoadForm without a version: %+v, want the detail of cell Products!D2", pe)
	}
	good := fill("2.0")
	ch := must[*api.ChangeRequest](t, "SubmitLoadForm")(seller.SubmitLoadForm(ctx, bytes.NewReader(good), -1))
	if ch.State != catalog.Pending || len(ch.Diff) == 0 {
		t.Fatalf("SubmitLoadForm: %+v", ch)
	}
	if list := must[[]*api.ChangeRequest](t, "Changes")(op.Changes(ctx)); len(list) != 1 || list[0].ID != ch.ID {
		t.Errorf("Changes: %+v", list)
	}
	if got := must[*api.ChangeRequest](t, "Change")(seller.Change(ctx, ch.ID)); got.ID != ch.ID || len(got.Diff) == 0 {
		t.Errorf("Change: %+v", got)
	}
	_, err = buyer.Change(ctx, ch.ID)
	wantCode(t, "a buyer's Change", err, problem.Forbidden, 403)
	d := must[*catalog.Decision](t, "ApproveChange")(op.ApproveChange(ctx, ch.ID))
	if d.Event != catalog.EventApproved || len(d.Products) != 1 {
		t.Fatalf("ApproveChange: %+v", d)
	}
	_, err = op.ApproveChange(ctx, ch.ID)
	wantCode(t, "ApproveChange again", err, problem.Conflict, 409)
	if list := must[[]*catalog.Product](t, "Products")(seller.Products(ctx)); len(list) != 1 || list[0].Visibility != catalog.Draft {
		t.Errorf("Products: %+v", list)
	}
	_, err = buyer.Product(ctx, d.Products[0])
	wantCode(t, "a buyer's Product of a draft", err, problem.NotFound, 404)
	pub := must[*api.ChangeRequest](t, "PublishVersion")(seller.PublishVersion(ctx, d.Products[0], "2.0"))
	_, err = op.RejectChange(ctx, pub.ID, "")
	wantCode(t, "RejectChange without a reason", err, problem.Invalid, 400)
	if r := must[*catalog.Decision](t, "RejectChange")(op.RejectChange(ctx, pub.ID, "not yet")); r.Change.Reason != "not yet" {
		t.Errorf("RejectChange: %+v", r)
	}
	_, err = seller.PublishVersion(ctx, d.Products[0], "9.9")
	wantCode(t, "PublishVersion of a missing version", err, problem.NotFound, 404)
	if p := must[*catalog.Product](t, "Product")(seller.Product(ctx, d.Products[0])); len(p.Versions) != 1 {
		t.Errorf("Product: %+v", p)
	}
}
