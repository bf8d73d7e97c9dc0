package catalog_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/blobs"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/groups"
	"github.com/pib-dev/pib/internal/osversions"
	"github.com/pib-dev/pib/internal/packages"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// fakeBuilds answers the latest builds of a group from fixed states, by
// group ID: a real pipeline would need real builds.
type fakeBuilds map[string]map[string]pipeline.State

func (f fakeBuilds) Builds(_ context.Context, _, ref string) ([]*pipeline.Build, error) {
	out := []*pipeline.Build{}
	for os, st := range f[ref] {
		out = append(out, &pipeline.Build{GroupID: ref, OSName: os, State: st})
	}
	return out, nil
}

type fixture struct {
	t                                  *testing.T
	ctx                                context.Context
	db                                 *store.DB
	cat                                *catalog.Store
	groups                             *groups.Store
	builds                             fakeBuilds
	seller, other, buyer1, buyer2, ops *accounts.Account
	inst                               map[string]string // account ID → an installer package of it
	mu                                 sync.Mutex        // decisions may come from several goroutines
	decisions                          []*catalog.Decision
}

func setup(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, ctx: ctx, db: db, builds: fakeBuilds{}, inst: map[string]string{}}
	as := accounts.NewStore(db)
	for _, a := range []struct {
		p    **accounts.Account
		name string
		role accounts.Role
	}{{&f.seller, "acme", accounts.Seller}, {&f.other, "globex", accounts.Seller}, {&f.buyer1, "buyer1", accounts.Buyer}, {&f.buyer2, "buyer2", accounts.Buyer}, {&f.ops, "ops", accounts.Operator}} {
		acc, _, err := as.Create(ctx, a.name, a.role)
		if err != nil {
			t.Fatal(err)
		}
		*a.p = acc
	}
	oses := osversions.NewStore(db)
	for name, platform := range map[string]string{"debian-12": "linux", "debian-11": "linux", "windows-2022": "windows"} {
		if _, err := oses.Add(ctx, name, platform, "img-0000000000000000"+name[len(name)-1:]); err != nil {
			t.Fatal(err)
		}
	}
	bs, err := blobs.NewDir(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ps := packages.NewStore(db, bs)
	for _, a := range []*accounts.Account{f.seller, f.other} {
		for _, name := range []string{"setup.sh", "setup.msi"} {
			p, err := ps.Upload(ctx, a.ID, name, strings.NewReader("#!/bin/sh\n"+name))
			if err != nil {
				t.Fatal(err)
			}
			f.inst[a.ID+name] = p.ID
		}
	}
	f.groups = groups.NewStore(db, ps, oses)
	f.cat = catalog.New(db, catalog.Config{Groups: f.groups, Builds: f.builds,
		Decided: func(_ context.Context, _ *sql.Tx, d *catalog.Decision) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.decisions = append(f.decisions, d)
			return nil
		}})
	return f
}

// group creates a group of owner with builds in the given states (none:
// never submitted).
func (f *fixture) group(owner *accounts.Account, name, platform, version string, states map[string]pipeline.State) {
	f.t.Helper()
	inst, oses := f.inst[owner.ID+"setup.sh"], []string{"debian-12", "debian-11"}
	if platform == "windows" {
		inst, oses = f.inst[owner.ID+"setup.msi"], []string{"windows-2022"}
	}
	g, err := f.groups.Create(f.ctx, owner.ID, groups.Spec{Name: name, Platform: platform, OSVersions: oses, InstallerID: inst, SoftwareVersion: version})
	if err != nil {
		f.t.Fatal(err)
	}
	if states == nil {
		states = map[string]pipeline.State{}
		for _, os := range oses {
			states[os] = pipeline.Successful
		}
	}
	f.builds[g.ID] = states
}

// cells names cells like the load form: "Products!<column>7" for line 7.
func cells(in catalog.RowInput) catalog.RowInput {
	in.Cell = func(column string) string { return "Products!" + column + strconv.Itoa(in.Line) }
	return in
}

func newProduct(line int, title, version, group string, testers ...string) catalog.RowInput {
	return cells(catalog.RowInput{Row: catalog.Row{Line: line, Request: catalog.NewProduct, ProductTitle: title, VersionTitle: version,
		ReleaseNotes: "First release.", UsageInstructions: "Run acme --help.", PackageGroup: group, ShortDescription: "A database.",
		LongDescription: "A database\nthat scales.", Highlights: []string{"Fast", "Small"}, Category: "Databases",
		SupportContact: "support@acme.example", EULAURL: "https://acme.example/eula", TestAccounts: testers}})
}

func newVersion(line int, product, version, group string, testers ...string) catalog.RowInput {
	return cells(catalog.RowInput{Row: catalog.Row{Line: line, Request: catalog.NewVersion, ProductID: product, VersionTitle: version,
		ReleaseNotes: "Faster.", UsageInstructions: "Run acme --help.", PackageGroup: group, TestAccounts: testers}})
}

func addOption(line int, product, version, group string) catalog.RowInput {
	return cells(catalog.RowInput{Row: catalog.Row{Line: line, Request: catalog.AddOption, ProductID: product, VersionTitle: version, PackageGroup: group}})
}

// submitApprove submits rows as the seller and approves them.
func (f *fixture) submitApprove(rows ...catalog.RowInput) *catalog.Decision {
	f.t.Helper()
	ch, err := f.cat.Submit(f.ctx, f.seller, rows)
	if err != nil {
		f.t.Fatalf("submit: %v", err)
	}
	d, err := f.cat.Approve(f.ctx, f.ops, ch.ID)
	if err != nil {
		f.t.Fatalf("approve: %v", err)
	}
	return d
}

// sees returns, per product ID viewer can list, the titles of the
// versions it sees; and checks Get agrees with List.
func (f *fixture) sees(viewer *accounts.Account) map[string][]string {
	f.t.Helper()
	ps, err := f.cat.List(f.ctx, viewer)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string][]string{}
	for _, p := range ps {
		out[p.ID] = []string{}
		for _, v := range p.Versions {
			out[p.ID] = append(out[p.ID], v.Title)
		}
		got, err := f.cat.Get(f.ctx, viewer, p.ID)
		if err != nil || len(got.Versions) != len(p.Versions) {
			f.t.Fatalf("%s: Get(%s) = %+v, %v; List had %d versions", viewer.Name, p.ID, got, err, len(p.Versions))
		}
	}
	return out
}

// hidden checks that viewer gets for product id exactly what it gets for an
// ID that does not exist.
func (f *fixture) hidden(viewer *accounts.Account, id string) {
	f.t.Helper()
	_, err := f.cat.Get(f.ctx, viewer, id)
	_, missing := f.cat.Get(f.ctx, viewer, "prod-0000000000000000")
	if !errors.Is(err, catalog.ErrNotFound) || strings.ReplaceAll(err.Error(), id, "X") != strings.ReplaceAll(missing.Error(), "prod-0000000000000000", "X") {
		f.t.Fatalf("%s: Get(%s) = %v; want the error of a missing ID (%v)", viewer.Name, id, err, missing)
	}
}

func TestPublishingFlow(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		f.group(f.seller, "AcmeDB1_0Linux1", "linux", "1.0", nil)
		f.group(f.seller, "AcmeDB2_0Linux1", "linux", "2.0", nil)
		f.group(f.seller, "AcmeDB2_0Windows1", "windows", "2.0", nil)

		// F3. While pending, only the seller and operators see the request,
		// and nobody sees a product.
		ch, err := f.cat.Submit(f.ctx, f.seller, []catalog.RowInput{newProduct(7, "Acme DB", "1.0", "AcmeDB1_0Linux1")})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []*accounts.Account{f.other, f.buyer1} {
			if _, err := f.cat.Change(f.ctx, v, ch.ID); !errors.Is(err, catalog.ErrChangeNotFound) {
				t.Errorf("%s reads a pending change: %v", v.Name, err)
			}
			if cs, _ := f.cat.Changes(f.ctx, v); len(cs) != 0 {
				t.Errorf("%s lists %d changes", v.Name, len(cs))
			}
		}
		for _, v := range []*accounts.Account{f.seller, f.ops} {
			if got, err := f.cat.Change(f.ctx, v, ch.ID); err != nil || got.State != catalog.Pending || got.Rows[0].Cells[catalog.ColProductTitle] != "Products!product_title7" {
				t.Errorf("%s: change %+v, %v", v.Name, got, err)
			}
			if len(f.sees(v)) != 0 {
				t.Errorf("%s sees a product before approval", v.Name)
			}
		}
		diff, err := f.cat.Diff(f.ctx, ch)
		want := []string{`new product "Acme DB" (draft: the seller only)`, `new version 1.0 of "Acme DB" (draft: the seller only): add package group AcmeDB1_0Linux1 (linux)`}
		if err != nil || !cmp.Equal(want, diff) {
			t.Fatalf("diff (-want +got):\n%s%v", cmp.Diff(want, diff), err)
		}
		d, err := f.cat.Approve(f.ctx, f.ops, ch.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Event != catalog.EventApproved || d.Change.State != catalog.Approved || d.Change.DecidedBy != f.ops.ID || !cmp.Equal(want, d.Applied) || len(d.Products) != 1 || len(f.decisions) != 1 {
			t.Fatalf("decision %+v", d)
		}
		pid := d.Products[0]

		// A draft product: the seller and operators only.
		for _, v := range []*accounts.Account{f.seller, f.ops} {
			if got := f.sees(v); !cmp.Equal(got, map[string][]string{pid: {"1.0"}}) {
				t.Errorf("%s sees %v", v.Name, got)
			}
		}
		for _, v := range []*accounts.Account{f.other, f.buyer1, f.buyer2} {
			if got := f.sees(v); len(got) != 0 {
				t.Errorf("%s sees the draft product: %v", v.Name, got)
			}
			f.hidden(v, pid)
		}
		p, _ := f.cat.Get(f.ctx, f.seller, pid)
		if p.Visibility != catalog.Draft || p.Title != "Acme DB" || !cmp.Equal(p.Highlights, []string{"Fast", "Small"}) ||
			len(p.Versions[0].Options) != 1 || p.Versions[0].Options[0].GroupName != "AcmeDB1_0Linux1" || p.Versions[0].Options[0].Platform != "linux" {
			t.Fatalf("product %+v", p)
		}

		// F2 with a test account: the version (and so the product) is
		// limited to buyer1, who sees only that version.
		f.submitApprove(newVersion(8, pid, "2.0", "AcmeDB2_0Linux1", "buyer1"))
		if got := f.sees(f.buyer1); !cmp.Equal(got, map[string][]string{pid: {"2.0"}}) {
			t.Errorf("buyer1 sees %v", got)
		}
		for _, v := range []*accounts.Account{f.other, f.buyer2} {
			if got := f.sees(v); len(got) != 0 {
				t.Errorf("%s sees the limited product: %v", v.Name, got)
			}
			f.hidden(v, pid)
		}
		if p, _ := f.cat.Get(f.ctx, f.buyer1, pid); len(p.TestAccounts) != 0 || len(p.Versions[0].TestAccounts) != 0 {
			t.Errorf("a test account learns who else tests: %+v", p)
		}
		if p, _ := f.cat.Get(f.ctx, f.seller, pid); p.Visibility != catalog.Limited || !cmp.Equal(p.TestAccounts, []string{"buyer1"}) || !cmp.Equal(p.Versions[1].TestAccounts, []string{"buyer1"}) {
			t.Errorf("seller's view %+v", p)
		}

		// F1: the Windows group joins version 2.0; version 1.0's image
		// stays beside a new Windows group.
		var v1 string
		db.QueryRowContext(f.ctx, `SELECT id FROM product_versions WHERE product_id = $1 AND title = '1.0'`, pid).Scan(&v1)
		if _, err := db.ExecContext(f.ctx, `INSERT INTO fulfillment_options (id, version_id, kind, image_id, created_at) VALUES ('ful-img', $1, 'image', 'img-00000000000000abc', $2)`, v1, p.Created); err != nil {
			t.Fatal(err)
		}
		f.group(f.seller, "AcmeDB1_0Windows1", "windows", "1.0", nil)
		f.submitApprove(addOption(9, pid, "2.0", "AcmeDB2_0Windows1"), addOption(10, pid, "1.0", "AcmeDB1_0Windows1"))
		p, _ = f.cat.Get(f.ctx, f.ops, pid)
		kinds := map[string][]string{}
		for _, v := range p.Versions {
			for _, o := range v.Options {
				kinds[v.Title] = append(kinds[v.Title], string(o.Kind)+":"+o.Platform+o.ImageID)
			}
		}
		if want := map[string][]string{"1.0": {"image:img-00000000000000abc", "package_group:linux", "package_group:windows"}, "2.0": {"package_group:linux", "package_group:windows"}}; !cmp.Equal(want, kinds) {
			t.Errorf("options (-want +got):\n%s", cmp.Diff(want, kinds))
		}

		// Publish 2.0: public for everyone, 1.0 stays the seller's.
		ch, err = f.cat.Publish(f.ctx, f.seller, pid, "2.0")
		if err != nil {
			t.Fatal(err)
		}
		if diff, _ := f.cat.Diff(f.ctx, ch); !cmp.Equal(diff, []string{`version 2.0 of ` + pid + ` "Acme DB": limited → public`, `product ` + pid + ` "Acme DB": limited → public`}) {
			t.Errorf("publish diff %q", diff)
		}
		if _, err := f.cat.Approve(f.ctx, f.ops, ch.ID); err != nil {
			t.Fatal(err)
		}
		for _, v := range []*accounts.Account{f.other, f.buyer1, f.buyer2} {
			if got := f.sees(v); !cmp.Equal(got, map[string][]string{pid: {"2.0"}}) {
				t.Errorf("%s sees %v after publishing", v.Name, got)
			}
		}
		if got := f.sees(f.seller); !cmp.Equal(got, map[string][]string{pid: {"1.0", "2.0"}}) {
			t.Errorf("seller sees %v", got)
		}
		if _, err := f.cat.Publish(f.ctx, f.seller, pid, "2.0"); !errors.Is(err, problem.Conflict) {
			t.Errorf("publishing a public version: %v", err)
		}
		if _, err := f.cat.Publish(f.ctx, f.other, pid, "2.0"); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("another seller publishes: %v", err)
		}
	})
}

// Each rule refusal names its rule and its cell; all of a form's problems
// come back at once and nothing is stored.
func TestRules(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		f.group(f.seller, "Acme1_0Linux1", "linux", "1.0", nil)
		f.group(f.seller, "Acme1_0Windows1", "windows", "1.0", nil)
		f.group(f.seller, "Acme1_0Linux2", "linux", "1.0", nil)
		f.group(f.seller, "Acme2_0Linux1", "linux", "2.0", nil)
		f.group(f.seller, "Acme2_0Broken1", "linux", "2.0", map[string]pipeline.State{"debian-12": pipeline.Successful, "debian-11": pipeline.IssuesFound})
		f.group(f.seller, "Acme2_0Half1", "linux", "2.0", map[string]pipeline.State{"debian-12": pipeline.Successful})
		f.group(f.seller, "Acme2_0Draft1", "linux", "2.0", map[string]pipeline.State{})
		f.group(f.seller, "Acme3_0Linux1", "linux", "3.0", nil)
		f.group(f.seller, "Acme2_0Windows1", "windows", "2.0", nil)
		f.group(f.other, "Theirs2_0Linux1", "linux", "2.0", nil)
		pid := f.submitApprove(newProduct(2, "Acme", "1.0", "Acme1_0Linux1")).Products[0]
		f.group(f.other, "Globex1_0Linux1", "linux", "1.0", nil)
		theirs, err := f.cat.Submit(f.ctx, f.other, []catalog.RowInput{newProduct(2, "Globex", "1.0", "Globex1_0Linux1")})
		if err != nil {
			t.Fatal(err)
		}
		foreign, _ := f.cat.Approve(f.ctx, f.ops, theirs.ID)

		type want struct{ code, rule, field string }
		edit := func(r catalog.RowInput, fn func(*catalog.Row)) catalog.RowInput { fn(&r.Row); return r }
		for _, tc := range []struct {
			name string
			rows []catalog.RowInput
			want []want
		}{
			{"F3 title taken", []catalog.RowInput{newProduct(7, "Acme", "1.0", "Acme1_0Linux2")}, []want{{"conflict", "F3", "Products!product_title7"}}},
			{"F3 title twice in one form", []catalog.RowInput{newProduct(7, "New", "1.0", "Acme1_0Linux2"), newProduct(8, "New", "1.0", "Acme1_0Windows1")}, []want{{"conflict", "F3", "Products!product_title8"}}},
			{"F3 missing and bad columns", []catalog.RowInput{edit(newProduct(7, "New", "", "Acme1_0Linux2"), func(r *catalog.Row) {
				r.ShortDescription, r.Category, r.LogoURL, r.Highlights = "", "Toys", "http://acme.example/logo.png", []string{"a", "b", "c", "d"}
			})}, []want{{"invalid", "L1", "Products!short_description7"}, {"invalid", "L1", "Products!highlights7"}, {"invalid", "L1", "Products!category7"},
				{"invalid", "L1", "Products!logo_url7"}, {"invalid", "L1", "Products!version_title7"}}},
			{"F2 another seller's product", []catalog.RowInput{newVersion(7, foreign.Products[0], "2.0", "Acme2_0Linux1")}, []want{{"invalid", "F2", "Products!product_id7"}}},
			{"F2 version exists", []catalog.RowInput{newVersion(7, pid, "1.0", "Acme1_0Linux2")}, []want{{"conflict", "F2", "Products!version_title7"}}},
			{"F2 group with a failed build", []catalog.RowInput{newVersion(7, pid, "2.0", "Acme2_0Broken1")}, []want{{"invalid", "F2", "Products!package_group7"}}},
			{"F2 group not built on every OS", []catalog.RowInput{newVersion(7, pid, "2.0", "Acme2_0Half1")}, []want{{"invalid", "F2", "Products!package_group7"}}},
			{"F2 group never submitted", []catalog.RowInput{newVersion(7, pid, "2.0", "Acme2_0Draft1")}, []want{{"invalid", "F2", "Products!package_group7"}}},
			{"F2 another seller's group", []catalog.RowInput{newVersion(7, pid, "2.0", "Theirs2_0Linux1")}, []want{{"invalid", "F2", "Products!package_group7"}}},
			{"F2 product columns", []catalog.RowInput{edit(newVersion(7, pid, "2.0", "Acme2_0Linux1"), func(r *catalog.Row) { r.Category = "Databases" })}, []want{{"invalid", "L1", "Products!category7"}}},
			{"F1 software version differs", []catalog.RowInput{addOption(7, pid, "1.0", "Acme2_0Windows1")}, []want{{"invalid", "F1", "Products!package_group7"}}},
			{"F1 platform taken", []catalog.RowInput{addOption(7, pid, "1.0", "Acme1_0Linux2")}, []want{{"conflict", "F1", "Products!package_group7"}}},
			{"F1 platform taken in the same form", []catalog.RowInput{newVersion(7, pid, "2.0", "Acme2_0Linux1"), addOption(8, pid, "2.0", "Acme2_0Linux1")}, []want{{"conflict", "F1", "Products!package_group8"}}},
			{"F1 no such version", []catalog.RowInput{addOption(7, pid, "3.0", "Acme3_0Linux1")}, []want{{"invalid", "F1", "Products!version_title7"}}},
			{"F1 wrong platform column", []catalog.RowInput{edit(addOption(7, pid, "1.0", "Acme1_0Windows1"), func(r *catalog.Row) { r.Platform = "linux" })}, []want{{"invalid", "F1", "Products!platform7"}}},
			{"unknown test account", []catalog.RowInput{newVersion(7, pid, "2.0", "Acme2_0Linux1", "buyer1", "globex")}, []want{{"invalid", "L1", "Products!test_accounts7"}}},
			{"unknown request", []catalog.RowInput{edit(addOption(7, pid, "1.0", "Acme1_0Windows1"), func(r *catalog.Row) { r.Request = "delete product" })}, []want{{"invalid", "L1", "Products!request7"}}},
			{"all problems at once", []catalog.RowInput{newVersion(7, pid, "3.0", "Acme3_0Linux1"), newVersion(8, pid, "1.0", "Acme2_0Broken1"), addOption(9, pid, "1.0", "Acme1_0Linux2")},
				[]want{{"invalid", "F2", "Products!version_title8"}, {"invalid", "F2", "Products!package_group8"}, {"invalid", "F2", "Products!package_group8"}, {"invalid", "F1", "Products!package_group9"}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.cat.Submit(f.ctx, f.seller, tc.rows)
				var pe *problem.Error
				if !errors.As(err, &pe) {
					t.Fatalf("got %v, want a problem", err)
				}
				// The error is a conflict when every problem is one.
				wantCode, got := problem.Conflict, []want{}
				for _, w := range tc.want {
					if w.code != "conflict" {
						wantCode = problem.Invalid
					}
				}
				if pe.Code != wantCode {
					t.Errorf("code %s, want %s", pe.Code, wantCode)
				}
				for _, d := range pe.Details {
					got = append(got, want{"", d.Rule, d.Field})
					if d.Message == "" {
						t.Errorf("%s: no message", d.Field)
					}
				}
				var wantDetails []want
				for _, w := range tc.want {
					wantDetails = append(wantDetails, want{"", w.rule, w.field})
				}
				if diff := cmp.Diff(wantDetails, got, cmp.AllowUnexported(want{})); diff != "" {
					t.Errorf("problems (-want +got):\n%s\n%v", diff, pe.Details)
				}
				if len(pe.Details) == 1 && (pe.Rule != pe.Details[0].Rule || pe.Field != pe.Details[0].Field) {
					t.Errorf("single problem %+v not the error's own", pe)
				}
			})
		}
		// Nothing was stored: the seller has its one approved request only,
		// and the product one version.
		if cs, _ := f.cat.Changes(f.ctx, f.seller); len(cs) != 1 {
			t.Errorf("%d change requests stored", len(cs))
		}
		if p, _ := f.cat.Get(f.ctx, f.seller, pid); len(p.Versions) != 1 {
			t.Errorf("versions %+v", p.Versions)
		}
		if _, err := f.cat.Submit(f.ctx, f.buyer1, []catalog.RowInput{newProduct(2, "Mine", "1.0", "Acme3_0Linux1")}); !errors.Is(err, catalog.ErrForbidden) {
			t.Errorf("buyer submits: %v", err)
		}
		if _, err := f.cat.Submit(f.ctx, f.seller, nil); !errors.Is(err, problem.Invalid) {
			t.Errorf("empty form: %v", err)
		}
	})
}

// rivals makes product Acme (version 1.0, a Linux group) and submits two
// requests that both add a Windows group to 1.0: the first alone, the
// second after a row adding version 2.0, which must not survive its loss.
func (f *fixture) rivals() (product, first, second string) {
	f.t.Helper()
	f.group(f.seller, "Acme1_0Linux1", "linux", "1.0", nil)
	f.group(f.seller, "Acme1_0Windows1", "windows", "1.0", nil)
	f.group(f.seller, "Acme1_0Windows2", "windows", "1.0", nil)
	f.group(f.seller, "Acme2_0Linux1", "linux", "2.0", nil)
	product = f.submitApprove(newProduct(2, "Acme", "1.0", "Acme1_0Linux1")).Products[0]
	var ids []string
	for _, rows := range [][]catalog.RowInput{
		{addOption(2, product, "1.0", "Acme1_0Windows1")},
		{newVersion(2, product, "2.0", "Acme2_0Linux1"), addOption(3, product, "1.0", "Acme1_0Windows2")},
	} {
		ch, err := f.cat.Submit(f.ctx, f.seller, rows)
		if err != nil {
			f.t.Fatal(err)
		}
		ids = append(ids, ch.ID)
	}
	return product, ids[0], ids[1]
}

// Approval re-checks against the catalog as it is: a request overtaken by
// another approval, or whose group is no longer Successful, is a conflict
// and nothing of it is applied.
func TestApproveStale(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		pid, first, second := f.rivals()
		if _, err := f.cat.Approve(f.ctx, f.ops, first); err != nil {
			t.Fatal(err)
		}
		_, err := f.cat.Approve(f.ctx, f.ops, second)
		var pe *problem.Error
		if !errors.Is(err, catalog.ErrStale) || !errors.As(err, &pe) || pe.Code != problem.Conflict || pe.Field != "Products!package_group3" || pe.Rule != "F1" {
			t.Fatalf("stale approval: %v (%+v)", err, pe)
		}
		if p, _ := f.cat.Get(f.ctx, f.ops, pid); len(p.Versions) != 1 {
			t.Errorf("a stale request was partly applied: %d versions", len(p.Versions))
		}
		if ch, _ := f.cat.Change(f.ctx, f.seller, second); ch.State != catalog.Pending {
			t.Errorf("stale request is %s; want it pending for the operator to reject", ch.State)
		}

		// A group that fails after submission: the request goes stale.
		third, err := f.cat.Submit(f.ctx, f.seller, []catalog.RowInput{newVersion(2, pid, "2.0", "Acme2_0Linux1")})
		if err != nil {
			t.Fatal(err)
		}
		g, _ := f.groups.Get(f.ctx, f.seller.ID, "Acme2_0Linux1")
		f.builds[g.ID]["debian-11"] = pipeline.Building
		if _, err := f.cat.Approve(f.ctx, f.ops, third.ID); !errors.Is(err, catalog.ErrStale) {
			t.Fatalf("approval with a group building again: %v", err)
		}
		f.builds[g.ID]["debian-11"] = pipeline.Successful
		if _, err := f.cat.Approve(f.ctx, f.ops, third.ID); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDecisions(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		f.group(f.seller, "Acme1_0Linux1", "linux", "1.0", nil)
		ch, err := f.cat.Submit(f.ctx, f.seller, []catalog.RowInput{newProduct(2, "Acme", "1.0", "Acme1_0Linux1")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.cat.Approve(f.ctx, f.seller, ch.ID); !errors.Is(err, catalog.ErrForbidden) {
			t.Errorf("seller approves: %v", err)
		}
		if _, err := f.cat.Reject(f.ctx, f.ops, ch.ID, "  "); !errors.Is(err, problem.Invalid) {
			t.Errorf("reject without a reason: %v", err)
		}
		if _, err := f.cat.Approve(f.ctx, f.ops, "chg-0000000000000000"); !errors.Is(err, catalog.ErrChangeNotFound) {
			t.Errorf("approve a missing request: %v", err)
		}

		// A failing Decided hook undoes the decision.
		f.cat = catalog.New(db, catalog.Config{Groups: f.groups, Builds: f.builds, Decided: func(context.Context, *sql.Tx, *catalog.Decision) error {
			return errors.New("webhook queue down")
		}})
		if _, err := f.cat.Reject(f.ctx, f.ops, ch.ID, "no"); err == nil {
			t.Fatal("reject with a failing hook succeeded")
		}
		if got, _ := f.cat.Change(f.ctx, f.ops, ch.ID); got.State != catalog.Pending {
			t.Fatalf("state %s after a failed decision", got.State)
		}

		f.cat = catalog.New(db, catalog.Config{Groups: f.groups, Builds: f.builds})
		d, err := f.cat.Reject(f.ctx, f.ops, ch.ID, "The logo URL is missing; add one and submit again.")
		if err != nil {
			t.Fatal(err)
		}
		if d.Event != catalog.EventRejected || d.Change.Seller != f.seller.ID || d.Change.DecidedAt == nil {
			t.Errorf("decision %+v", d)
		}
		got, err := f.cat.Change(f.ctx, f.seller, ch.ID)
		if err != nil || got.State != catalog.Rejected || got.Reason != "The logo URL is missing; add one and submit again." || got.DecidedBy != f.ops.ID {
			t.Errorf("seller's view %+v, %v", got, err)
		}
		if _, err := f.cat.Approve(f.ctx, f.ops, ch.ID); !errors.Is(err, catalog.ErrDecided) {
			t.Errorf("approve a rejected request: %v", err)
		}
		if _, err := f.cat.Reject(f.ctx, f.ops, ch.ID, "again"); !errors.Is(err, catalog.ErrDecided) {
			t.Errorf("reject a rejected request: %v", err)
		}
		if len(f.sees(f.ops)) != 0 {
			t.Error("a rejected request changed the catalog")
		}

		approved := f.submitApprove(newProduct(2, "Acme", "1.0", "Acme1_0Linux1"))
		if _, err := f.cat.Reject(f.ctx, f.ops, approved.Change.ID, "too late"); !errors.Is(err, catalog.ErrDecided) {
			t.Errorf("reject an approved request: %v", err)
		}
		if _, err := f.cat.Approve(f.ctx, f.ops, approved.Change.ID); !errors.Is(err, catalog.ErrDecided) {
			t.Errorf("approve twice: %v", err)
		}
		if cs, _ := f.cat.Changes(f.ctx, f.ops); len(cs) != 2 {
			t.Errorf("operator lists %d changes", len(cs))
		}
	})
}

// Two approvals racing for one platform of one version: exactly one
// applies, the other is a conflict and applies nothing (on PostgreSQL the
// unique index decides, on SQLite the write lock).
func TestConcurrentApprovals(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		pid, first, second := f.rivals()
		ids := []string{first, second}
		errs := make(chan error, len(ids))
		for _, id := range ids {
			go func() {
				_, err := f.cat.Approve(f.ctx, f.ops, id)
				errs <- err
			}()
		}
		var ok, stale int
		for range ids {
			switch err := <-errs; {
			case err == nil:
				ok++
			case errors.Is(err, catalog.ErrStale):
				stale++
			default:
				t.Errorf("approval: %v", err)
			}
		}
		if ok != 1 || stale != 1 {
			t.Fatalf("%d approved, %d stale; want one each", ok, stale)
		}
		p, _ := f.cat.Get(f.ctx, f.ops, pid)
		windows := 0
		for _, v := range p.Versions {
			for _, o := range v.Options {
				if o.Platform == "windows" {
					windows++
				}
			}
		}
		// Either the first request won (one version), or the second did,
		// wholly (two versions).
		if windows != 1 || (len(p.Versions) != 1 && len(p.Versions) != 2) {
			t.Fatalf("after the race: %d windows options, %d versions", windows, len(p.Versions))
		}
	})
}
