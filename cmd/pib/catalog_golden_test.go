//go:build linux

package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/problem"
)

// catalogFixture: a public product with a published version and a
// limited one, each with its options, and another seller's; a pending change
// request with its diff and a rejected one.
func catalogFixture() ([]*catalog.Product, []*api.ChangeRequest) {
	products := []*catalog.Product{
		{ID: "prod-00000000000000f1", Seller: seller, Title: "Acme Shop", ShortDescription: "A shop.", LongDescription: "A shop\nthat scales.",
			Highlights: []string{"Fast", "Small"}, Category: "Databases", SupportContact: "support@acme.example", EULAURL: "https://acme.example/eula",
			Visibility: catalog.Public, TestAccounts: []string{"acme-qa"}, Created: t0, Updated: t0.Add(time.Hour),
			Versions: []*catalog.Version{
				{ID: "ver-00000000000000f1", ProductID: "prod-00000000000000f1", Title: "2.0", ReleaseNotes: "First release.\nMore below.", Visibility: catalog.Public, Created: t0,
					Options: []*catalog.Option{
						{ID: "ful-00000000000000f1", Kind: catalog.PackageGroup, GroupID: "pg-00000000000000a1", GroupName: "Acme2_0Linux1", Platform: "linux"},
						{ID: "ful-00000000000000f2", Kind: catalog.PackageGroup, GroupID: "pg-00000000000000a7", GroupName: "Acme2_0Win1", Platform: "windows"},
					}},
				{ID: "ver-00000000000000f2", ProductID: "prod-00000000000000f1", Title: "2.1", ReleaseNotes: "Faster.", Visibility: catalog.Limited, TestAccounts: []string{"acme-qa"}, Created: t0.Add(time.Hour),
					Options: []*catalog.Option{{ID: "ful-00000000000000f3", Kind: catalog.PackageGroup, GroupID: "pg-00000000000000a8", GroupName: "Acme2_1Linux1", Platform: "linux"}}},
			}},
		{ID: "prod-00000000000000f2", Seller: "acc-5e11e20000000002", Title: "Globex Vault", ShortDescription: "Secrets.", Category: "Security",
			SupportContact: "help@globex.example", Visibility: catalog.Public, Created: t0, Updated: t0, Versions: []*catalog.Version{}},
	}
	decided := t0.Add(3 * time.Hour)
	changes := []*api.ChangeRequest{
		{Change: &catalog.Change{ID: "chg-00000000000000f1", Seller: seller, State: catalog.Pending, Created: t0.Add(2 * time.Hour), Rows: []catalog.Row{
			{Line: 2, Request: catalog.NewVersion, ProductID: "prod-00000000000000f1", VersionTitle: "2.2", PackageGroup: "Acme2_2Linux1", Platform: "linux", TestAccounts: []string{"acme-qa"}},
			{Line: 3, Request: catalog.AddOption, ProductID: "prod-00000000000000f1", VersionTitle: "2.2", PackageGroup: "Acme2_2Win1", Platform: "windows"},
		}}, Diff: []string{
			`new version 2.2 of prod-00000000000000f1 "Acme Shop" (limited: the seller and acme-qa): add package group Acme2_2Linux1 (linux)`,
			`version 2.2 of prod-00000000000000f1 "Acme Shop": add package group Acme2_2Win1 (windows)`,
		}},
		{Change: &catalog.Change{ID: "chg-00000000000000f0", Seller: seller, State: catalog.Rejected, Created: t0, DecidedAt: &decided, DecidedBy: "acc-0000000000000000",
			Reason: "the long description names a competitor; remove it and ask again", Rows: []catalog.Row{
				{Line: 2, Request: catalog.NewProduct, ProductTitle: "Acme Shop", VersionTitle: "2.0", PackageGroup: "Acme2_0Linux1", Platform: "linux"},
			}}},
	}
	return products, changes
}

// TestGoldenLoadFormErrors pins how a refused form is printed: one line
// per problem, by cell (problem.Error.Error() is the summary only).
func TestGoldenLoadFormErrors(t *testing.T) {
	err := &problem.Error{Code: problem.Invalid, Rule: "L1", Message: "3 problems in the load form; each is listed in details", Details: []problem.Detail{
		{Field: "Products!D7", Rule: "L1", Message: "version title is required (1–100 characters)"},
		{Field: "Products!G8", Rule: "F2", Message: "package group Acme2_2Linux1 is not Successful on every OS version it names (debian-12: Issues Found); fix it, submit it again (pib groups submit Acme2_2Linux1) and send the form once it is Successful"},
		{Rule: "L1", Message: "the load form has no rows; fill at least one row of the Products sheet"},
	}}
	var b bytes.Buffer
	printDetails(&b, err)
	golden(t, "load-form-errors.txt", b.String())
}
