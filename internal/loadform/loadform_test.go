package loadform_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/xuri/excelize/v2"

	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/problem"
)

var testGroups = []loadform.GroupRef{
	{Name: "AcmeShipper241linux1", Platform: "linux", SoftwareVersion: "2.4.1", OSVersions: []string{"debian-12", "ubuntu-22.04"}},
	{Name: "AcmeShipper241windows1", Platform: "windows", SoftwareVersion: "2.4.1", OSVersions: []string{"windows-2022"}},
}

// row is a Products row by column; fill writes it at its line.
type row map[loadform.Column]string

func newProduct() row {
	return row{
		loadform.ColRequest:          "new product",
		loadform.ColProductTitle:     "Acme Log Shipper",
		loadform.ColVersionTitle:     "2.4.1",
		loadform.ColReleaseNotes:     "First release.",
		loadform.ColUsage:            "Run systemctl start acme-shipper.",
		loadform.ColPackageGroup:     "AcmeShipper241linux1",
		loadform.ColPlatform:         "linux",
		loadform.ColShortDescription: "Ships logs.",
		loadform.ColLongDescription:  "Ships logs, compressed and encrypted,\nto your collector.",
		loadform.ColHighlights:       "Small\nFast\n\nSafe",
		loadform.ColCategory:         "Databases",
		loadform.ColSupportContact:   "support@acme.example",
		loadform.ColEULAURL:          "https://acme.example/eula",
		loadform.ColLogoURL:          "http://acme.example/logo.png",
		loadform.ColTestAccounts:     "acme-qa, acme_sales,acme-qa",
	}
}

func newVersion() row {
	return row{
		loadform.ColRequest:      "new version",
		loadform.ColProductID:    "prod-0123456789abcdef0",
		loadform.ColVersionTitle: "2.5.0",
		loadform.ColReleaseNotes: "Faster.",
		loadform.ColUsage:        "As before.",
		loadform.ColPackageGroup: "AcmeShipper250linux1",
		loadform.ColPlatform:     "linux",
		loadform.ColTestAccounts: "acme-qa",
	}
}

func addOption() row {
	return row{
		loadform.ColRequest:      "add fulfillment option",
		loadform.ColProductID:    "prod-0123456789abcdef0",
		loadform.ColVersionTitle: "2.4.1",
		loadform.ColPackageGroup: "AcmeShipper241windows1",
		loadform.ColPlatform:     "windows",
	}
}

func (r row) with(c loadform.Column, v string) row {
	n := row{}
	for k, x := range r {
		n[k] = x
	}
	n[c] = v
	return n
}

func template(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := loadform.Template(&buf, testGroups, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fill writes rows from line 2 on into a fresh template; a nil row leaves
// its line empty. edit, if given, changes the workbook further.
func fill(t testing.TB, rows []row, edit func(*excelize.File)) []byte {
	t.Helper()
	xf, err := excelize.OpenReader(bytes.NewReader(template(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer xf.Close()
	for i, r := range rows {
		for c, v := range r {
			if err := xf.SetCellStr(loadform.ProductsSheet, fmt.Sprintf("%s%d", c.Letter(), i+2), v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if edit != nil {
		edit(xf)
	}
	buf, err := xf.WriteToBuffer()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func parse(b []byte) (*loadform.Form, error) {
	return loadform.Parse(bytes.NewReader(b), int64(len(b)), loadform.Limits{})
}

func TestColumns(t *testing.T) {
	if got := strings.Join(func() (s []string) {
		for _, c := range loadform.Columns {
			s = append(s, c.Letter())
		}
		return
	}(), ""); got != "ABCDEFGHIJKLMNOP" {
		t.Errorf("letters = %s", got)
	}
	if got := (&loadform.Form{}).Cell(7, loadform.ColVersionTitle); got != "Products!D7" {
		t.Errorf("Cell = %s", got)
	}
}

func TestTemplate(t *testing.T) {
	xf, err := excelize.OpenReader(bytes.NewReader(template(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer xf.Close()
	if got, want := xf.GetSheetList(), []string{"Instructions", "Products", "Package groups"}; !slices.Equal(got, want) {
		t.Errorf("sheets = %q, want %q", got, want)
	}
	head, err := xf.GetRows(loadform.ProductsSheet)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range loadform.Columns {
		want = append(want, string(c))
	}
	if diff := cmp.Diff([][]string{want}, head); diff != "" {
		t.Errorf("Products (-want +got):\n%s", diff)
	}
	dvs, err := xf.GetDataValidations(loadform.ProductsSheet)
	if err != nil {
		t.Fatal(err)
	}
	lists := map[string]string{}
	for _, dv := range dvs {
		lists[dv.Sqref] = dv.Formula1
	}
	for sqref, want := range map[string]string{
		"A2:A1001": `"new product,new version,add fulfillment option"`,
		"H2:H1001": `"linux,windows"`,
		"G2:G1001": `'Package groups'!$A$2:$A$3`,
	} {
		if lists[sqref] != want {
			t.Errorf("drop-down %s = %s, want %s", sqref, lists[sqref], want)
		}
	}
	if !strings.Contains(lists["L2:L1001"], "Machine Learning") {
		t.Errorf("category drop-down = %s", lists["L2:L1001"])
	}
	comments, err := xf.GetComments(loadform.ProductsSheet)
	if err != nil {
		t.Fatal(err)
	}
	if len(comments) != len(loadform.Columns) {
		t.Errorf("%d header comments, want %d", len(comments), len(loadform.Columns))
	}
	groups, err := xf.GetRows(loadform.GroupsSheet)
	if err != nil {
		t.Fatal(err)
	}
	wantGroups := [][]string{{"Name", "Platform", "OS versions", "Software version"},
		{"AcmeShipper241linux1", "linux", "debian-12, ubuntu-22.04", "2.4.1"},
		{"AcmeShipper241windows1", "windows", "windows-2022", "2.4.1"}}
	if diff := cmp.Diff(wantGroups, groups); diff != "" {
		t.Errorf("Package groups (-want +got):\n%s", diff)
	}
	instr, err := xf.GetRows(loadform.InstructionsSheet)
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprint(instr)
	for _, s := range []string{"new product", "add fulfillment option", "1–100 characters", "Example row", "support@acme.example"} {
		if !strings.Contains(text, s) {
			t.Errorf("Instructions lack %q", s)
		}
	}
	if err := loadform.Template(&bytes.Buffer{}, nil, []string{"Games"}); err == nil {
		t.Error("Template accepted a category Parse refuses")
	}
}

// F1, F2, F3: download, fill, upload.
func TestRoundTrip(t *testing.T) {
	b := fill(t, []row{newProduct(), nil, newVersion(), addOption()}, nil)
	form, err := parse(b)
	if err != nil {
		t.Fatalf("Parse: %v %+v", err, details(err))
	}
	want := []loadform.Row{{
		Line: 2, Request: loadform.NewProduct, ProductTitle: "Acme Log Shipper", VersionTitle: "2.4.1",
		ReleaseNotes: "First release.", UsageInstructions: "Run systemctl start acme-shipper.",
		PackageGroup: "AcmeShipper241linux1", Platform: "linux", ShortDescription: "Ships logs.",
		LongDescription: "Ships logs, compressed and encrypted,\nto your collector.",
		Highlights:      []string{"Small", "Fast", "Safe"}, Category: "Databases",
		SupportContact: "support@acme.example", EULAURL: "https://acme.example/eula", LogoURL: "http://acme.example/logo.png",
		TestAccounts: []string{"acme-qa", "acme_sales"},
	}, {
		Line: 4, Request: loadform.NewVersion, ProductID: "prod-0123456789abcdef0", VersionTitle: "2.5.0",
		ReleaseNotes: "Faster.", UsageInstructions: "As before.", PackageGroup: "AcmeShipper250linux1", Platform: "linux",
		TestAccounts: []string{"acme-qa"},
	}, {
		Line: 5, Request: loadform.AddOption, ProductID: "prod-0123456789abcdef0", VersionTitle: "2.4.1",
		PackageGroup: "AcmeShipper241windows1", Platform: "windows",
	}}
	if diff := cmp.Diff(want, form.Rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if len(form.Warnings) != 0 {
		t.Errorf("warnings: %q", form.Warnings)
	}
}

// Values as sellers type them: case and surrounding spaces do not matter.
func TestLenient(t *testing.T) {
	r := newProduct().with(loadform.ColRequest, " New Product ").with(loadform.ColPlatform, "Linux").
		with(loadform.ColCategory, "machine learning").with(loadform.ColProductTitle, "  Acme  ")
	form, err := parse(fill(t, []row{r}, func(xf *excelize.File) {
		must(t, xf.SetCellStr(loadform.ProductsSheet, "C1", "product TITLE"))
	}))
	if err != nil {
		t.Fatalf("Parse: %v %+v", err, details(err))
	}
	got := form.Rows[0]
	if got.Request != loadform.NewProduct || got.Platform != "linux" || got.Category != "Machine Learning" || got.ProductTitle != "Acme" {
		t.Errorf("row = %+v", got)
	}
}

func TestExtraSheet(t *testing.T) {
	form, err := parse(fill(t, []row{newProduct()}, func(xf *excelize.File) {
		_, err := xf.NewSheet("My notes")
		must(t, err)
		must(t, xf.SetCellFormula("My notes", "A1", "=1+1"))
	}))
	if err != nil {
		t.Fatalf("Parse: %v %+v", err, details(err))
	}
	if want := []string{`sheet "My notes" is not part of the load form and was ignored: only the Products sheet is read`}; !slices.Equal(form.Warnings, want) {
		t.Errorf("warnings = %q, want %q", form.Warnings, want)
	}
}

// must fails t on err; with a nil t (inside a fixture's edit) it panics.
func must(t testing.TB, err error) {
	if err == nil {
		return
	}
	if t == nil {
		panic(err)
	}
	t.Helper()
	t.Fatal(err)
}

func details(err error) []problem.Detail {
	var pe *problem.Error
	if errors.As(err, &pe) {
		return pe.Details
	}
	return nil
}

// detail is what a test expects of one problem.Detail: its cell and rule
// exactly, and a telling part of its message.
type detail struct{ field, rule, says string }

func TestRefusals(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) }
	set := func(ref, v string) func(*excelize.File) {
		return func(xf *excelize.File) { must(nil, xf.SetCellStr(loadform.ProductsSheet, ref, v)) }
	}
	for _, tc := range []struct {
		name string
		rows []row
		edit func(*excelize.File)
		want []detail
	}{
		{"version title missing", []row{newProduct(), newProduct().with(loadform.ColProductTitle, "Other").with(loadform.ColVersionTitle, "")}, nil,
			[]detail{{"Products!D3", "L1", "version title is required (1–100 characters)"}}},
		{"every required column of a new product", []row{{loadform.ColRequest: "new product"}}, nil, []detail{
			{"Products!C2", "L1", "product title is required"}, {"Products!D2", "L1", "version title is required"},
			{"Products!E2", "L1", "release notes is required"}, {"Products!F2", "L1", "usage instructions is required"},
			{"Products!G2", "L1", "package group is required"}, {"Products!H2", "L1", "platform is required (linux or windows"},
			{"Products!I2", "L1", "short description is required"}, {"Products!J2", "L1", "long description is required"},
			{"Products!L2", "L1", "category is required"}, {"Products!M2", "L1", "support contact is required"}}},
		{"new version needs a product ID", []row{newVersion().with(loadform.ColProductID, "")}, nil,
			[]detail{{"Products!B2", "L1", "product ID is required"}}},
		{"add option needs a package group", []row{addOption().with(loadform.ColPackageGroup, "")}, nil,
			[]detail{{"Products!G2", "L1", "package group is required"}}},
		{"new product takes no product ID", []row{newProduct().with(loadform.ColProductID, "prod-1")}, nil,
			[]detail{{"Products!B2", "L1", `product ID is not used in a "new product" row: leave the cell empty`}}},
		{"new version takes no product details", []row{newVersion().with(loadform.ColCategory, "Other").with(loadform.ColProductTitle, "X")}, nil,
			[]detail{{"Products!C2", "L1", "product title is not used"}, {"Products!L2", "L1", "category is not used"}}},
		{"add option takes no release notes", []row{addOption().with(loadform.ColReleaseNotes, "x")}, nil,
			[]detail{{"Products!E2", "L1", "release notes is not used"}}},
		{"request type missing", []row{newProduct().with(loadform.ColRequest, "")}, nil,
			[]detail{{"Products!A2", "L1", "request type is required"}}},
		{"request type unknown, fields still checked", []row{newProduct().with(loadform.ColRequest, "update").with(loadform.ColPlatform, "mac")}, nil,
			[]detail{{"Products!A2", "L1", `request type "update" is not one of`}, {"Products!H2", "L1", `platform "mac" is not linux or windows`}}},
		{"lengths", []row{newProduct().with(loadform.ColProductTitle, long(101)).with(loadform.ColVersionTitle, long(101)).
			with(loadform.ColShortDescription, long(1001)).with(loadform.ColLongDescription, long(5001)).
			with(loadform.ColReleaseNotes, long(5001)).with(loadform.ColUsage, long(5001))}, nil, []detail{
			{"Products!C2", "L1", "product title is 101 characters; the limit is 100"},
			{"Products!D2", "L1", "version title is 101 characters; the limit is 100"},
			{"Products!E2", "L1", "release notes is 5001 characters; the limit is 5,000"},
			{"Products!F2", "L1", "usage instructions is 5001 characters; the limit is 5,000"},
			{"Products!I2", "L1", "short description is 1001 characters; the limit is 500"},
			{"Products!J2", "L1", "long description is 5001 characters; the limit is 5,000"}}},
		{"lengths at the limit", []row{newProduct().with(loadform.ColProductTitle, long(100)).with(loadform.ColVersionTitle, long(100)).
			with(loadform.ColHighlights, long(250)+"\n"+long(250)+"\n"+long(250))}, nil, nil},
		{"highlights", []row{newProduct().with(loadform.ColHighlights, "a\nb\nc\nd"), newProduct().with(loadform.ColProductTitle, "B").with(loadform.ColHighlights, "a\n"+long(251))}, nil,
			[]detail{{"Products!K2", "L1", "highlights has 4 lines; give at most 3"}, {"Products!K3", "L1", "highlight 2 is 251 characters; the limit is 250"}}},
		{"one-line fields", []row{newProduct().with(loadform.ColProductTitle, "Acme\nShipper")}, nil,
			[]detail{{"Products!C2", "L1", "product title must be one line"}}},
		{"category unknown", []row{newProduct().with(loadform.ColCategory, "Games")}, nil,
			[]detail{{"Products!L2", "L1", `category "Games" is not in the list: pick one from the drop-down (Business Applications, Data & Analytics`}}},
		{"package group name (N1)", []row{newProduct().with(loadform.ColPackageGroup, "acme shipper")}, nil,
			[]detail{{"Products!G2", "N1", `package group name "acme shipper": use 1–99 characters`}}},
		{"product ID", []row{newVersion().with(loadform.ColProductID, "prod 1")}, nil,
			[]detail{{"Products!B2", "L1", `product ID "prod 1" is not a product ID`}}},
		{"email and URLs", []row{newProduct().with(loadform.ColSupportContact, "Support <support@acme.example>").
			with(loadform.ColEULAURL, "ftp://acme.example/eula").with(loadform.ColLogoURL, "https://"+strings.Repeat("a", 2048))}, nil, []detail{
			{"Products!M2", "L1", `support contact "Support <support@acme.example>" is not an email address`},
			{"Products!N2", "L1", "EULA URL must be an http:// or https:// address, up to 2,048 characters"},
			{"Products!O2", "L1", "logo URL must be an http:// or https:// address"}}},
		{"test accounts", []row{newVersion().with(loadform.ColTestAccounts, "acme-qa; Bob")}, nil,
			[]detail{{"Products!P2", "L1", `test account "acme-qa; Bob" is not an account name`}}},
		{"too many test accounts", []row{newVersion().with(loadform.ColTestAccounts, manyAccounts(loadform.MaxTestAccounts+1))}, nil,
			[]detail{{"Products!P2", "L1", fmt.Sprintf("test accounts lists %d accounts; at most %d", loadform.MaxTestAccounts+1, loadform.MaxTestAccounts)}}},
		{"duplicate rows", []row{newProduct(), newVersion(), addOption(), newProduct().with(loadform.ColProductTitle, "ACME LOG SHIPPER"),
			newVersion().with(loadform.ColReleaseNotes, "other"), addOption()}, nil, []detail{
			{"Products!C5", "L1", "duplicates row 2 (the same product title)"},
			{"Products!D6", "L1", "duplicates row 3 (the same product ID and version title)"},
			{"Products!G7", "L1", "duplicates row 4 (the same product ID, version title and package group)"}}},
		{"no rows", nil, nil, []detail{{"Products!A2", "L1", "the form has no rows"}}},
		{"formula where a value is expected", []row{newProduct()}, func(xf *excelize.File) {
			must(nil, xf.SetCellValue(loadform.ProductsSheet, "D2", "2.4"))
			must(nil, xf.SetCellFormula(loadform.ProductsSheet, "D2", `="2."&"4"`))
			must(nil, xf.SetCellFormula(loadform.ProductsSheet, "P2", `=LOWER("A")`))
		}, []detail{
			{"Products!D2", "L1", `a formula (="2."&"4") where a value is expected: type the value itself`},
			{"Products!P2", "L1", `a formula (=LOWER("A"))`}}},
		{"formula in an otherwise empty row", []row{newProduct()}, func(xf *excelize.File) {
			must(nil, xf.SetCellFormula(loadform.ProductsSheet, "C9", `=C2`))
		}, []detail{{"Products!C9", "L1", `a formula (=C2)`}}},
		{"value past column P", []row{newProduct()}, set("R2", "note"), []detail{{"Products!R2", "L1", "a value past the last column (P, Test accounts)"}}},
		{"header missing", []row{newProduct()}, set("D1", ""),
			[]detail{{"Products!D1", "L1", `expected the header "Version title" here; the cell is empty`}}},
		{"headers reordered", []row{newProduct()}, func(xf *excelize.File) {
			must(nil, xf.SetCellStr(loadform.ProductsSheet, "I1", "Long description"))
			must(nil, xf.SetCellStr(loadform.ProductsSheet, "J1", "Short description"))
		}, []detail{
			{"Products!I1", "L1", `expected the header "Short description" here, found "Long description"`},
			{"Products!J1", "L1", `expected the header "Long description" here, found "Short description"`}}},
		{"column inserted", []row{newProduct()}, func(xf *excelize.File) {
			must(nil, xf.InsertCols(loadform.ProductsSheet, "B", 1))
		}, func() []detail {
			// Every header from B on is out of place, and each says so.
			d := []detail{{"Products!B1", "L1", `expected the header "Product ID" here; the cell is empty`}}
			for i := 2; i < len(loadform.Columns); i++ {
				d = append(d, detail{fmt.Sprintf("Products!%s1", loadform.Columns[i].Letter()), "L1",
					fmt.Sprintf("expected the header %q here, found %q", loadform.Columns[i], loadform.Columns[i-1])})
			}
			return d
		}()},
		{"no Products sheet", []row{newProduct()}, func(xf *excelize.File) {
			must(nil, xf.SetSheetName(loadform.ProductsSheet, "Produkte"))
		}, []detail{{"Products", "L1", "the workbook has no Products sheet"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(fill(t, tc.rows, tc.edit))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v %+v", err, details(err))
				}
				return
			}
			if !errors.Is(err, loadform.ErrInvalid) || !errors.Is(err, problem.Invalid) {
				t.Fatalf("Parse: %v, want ErrInvalid", err)
			}
			got := details(err)
			var gotFields, wantFields []string
			for _, d := range got {
				gotFields = append(gotFields, d.Field+" "+d.Rule)
			}
			for _, d := range tc.want {
				wantFields = append(wantFields, d.field+" "+d.rule)
			}
			if diff := cmp.Diff(wantFields, gotFields); diff != "" {
				t.Fatalf("cells (-want +got):\n%s\n%+v", diff, got)
			}
			for i, d := range tc.want {
				if !strings.Contains(got[i].Message, d.says) {
					t.Errorf("%s: message %q does not say %q", d.field, got[i].Message, d.says)
				}
			}
			n := len(tc.want)
			var pe *problem.Error
			errors.As(err, &pe)
			wantMsg := fmt.Sprintf("%d problems in the load form; each is listed in details", n)
			if n == 1 {
				wantMsg = "1 problem in the load form; it is listed in details"
			}
			if pe.Message != wantMsg || pe.Rule != "L1" {
				t.Errorf("error = %q (rule %s), want %q (rule L1)", pe.Message, pe.Rule, wantMsg)
			}
		})
	}
}

// manyAccounts is a test-accounts cell naming n accounts.
func manyAccounts(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("buyer%d", i)
	}
	return strings.Join(names, ",")
}
