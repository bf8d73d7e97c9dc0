package api_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/audit"
	"github.com/pib-dev/pib/internal/catalog"
	"github.com/pib-dev/pib/internal/loadform"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/webhook"
)

// seen is what an account sees of the catalog: product title → its
// visibility and "version:visibility:platforms" of each version it sees.
type seen map[string][]string

func (c *catalogEnv) seenBy(token string) seen {
	c.t.Helper()
	var list []*catalog.Product
	if code := c.call("GET", "/v1/products", token, "", nil, &list); code != 200 {
		c.t.Fatalf("GET /v1/products: %d", code)
	}
	out := seen{}
	for _, p := range list {
		s := []string{string(p.Visibility)}
		for _, v := range p.Versions {
			var platforms []string
			for _, o := range v.Options {
				platforms = append(platforms, o.GroupName)
			}
			s = append(s, v.Title+":"+string(v.Visibility)+":"+strings.Join(platforms, "+"))
		}
		out[p.Title] = s
	}
	return out
}

// productCode is the status of GET /v1/products/{id} for token.
func (c *catalogEnv) productCode(token, id string) int {
	c.t.Helper()
	return c.call("GET", "/v1/products/"+id, token, "", nil, nil)
}

// TestPublishRoundTrip drives F3, F2, F1 and publishing through the API
// on both engines: download the form, fill it as a spreadsheet would,
// upload it, approve it, and check what the seller, its test account,
// another buyer and another seller see (SPEC L1–L2, F1–F3, catalog
// visibility); each decision is one audit row naming the change and the
// seller, and a webhook event for the seller (C6).
func TestPublishRoundTrip(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		c := newCatalogEnv(t, db, loadform.Limits{})
		seller := c.account("acme", accounts.Seller)
		other := c.account("globex", accounts.Seller)
		tester := c.account("acme-qa", accounts.Buyer)
		buyer := c.account("umbrella", accounts.Buyer)
		acme := c.whoami(seller)
		if code := c.json("PUT", "/v1/webhook", seller, map[string]string{"url": "http://127.0.0.1:9/hook"}, nil); code != 200 {
			t.Fatalf("PUT /v1/webhook: %d", code)
		}
		c.successfulGroup(seller, "Shop20Linux1", "linux", "2.0")
		c.successfulGroup(seller, "Shop21Linux1", "linux", "2.1")
		c.successfulGroup(seller, "Shop20Win1", "windows", "2.0")

		tmpl := c.template(seller)
		listing := xlsxListing(tmpl)
		for _, want := range []string{"Package groups row 2: Shop20Linux1 | linux | debian-12 | 2.0", "Package groups row 3: Shop20Win1 | windows | windows-2022 | 2.0"} {
			if !strings.Contains(listing, want) {
				t.Errorf("the form's Package groups sheet lacks %q:\n%s", want, listing)
			}
		}

		// F3: a new product, limited to its test account.
		var ch api.ChangeRequest
		if code := c.submit(seller, fillForm(t, tmpl, newProductRow("Acme Shop", "2.0", "Shop20Linux1", "acme-qa")), &ch); code != 201 || ch.State != catalog.Pending || len(ch.Diff) != 2 {
			t.Fatalf("submit F3: %d %+v", code, ch)
		}
		if got := ch.Rows[0].Cells[catalog.ColVersionTitle]; got != "Products!D2" {
			t.Errorf("the row's version title is at %q, want Products!D2", got)
		}
		// Pending: nobody but the seller and operators sees it.
		for name, token := range map[string]string{"buyer": buyer, "test account": tester, "other seller": other} {
			var list []api.ChangeRequest
			if token != other {
				if code := c.call("GET", "/v1/changes", token, "", nil, nil); code != 403 {
					t.Errorf("%s lists changes: %d, want 403", name, code)
				}
			} else if code := c.call("GET", "/v1/changes", token, "", nil, &list); code != 200 || len(list) != 0 {
				t.Errorf("%s lists changes: %d %+v, want none", name, code, list)
			}
			if code := c.call("GET", "/v1/changes/"+ch.ID, token, "", nil, nil); code != 404 && code != 403 {
				t.Errorf("%s reads the pending change: %d", name, code)
			}
			if s := c.seenBy(token); len(s) != 0 {
				t.Errorf("%s sees %v before approval", name, s)
			}
		}
		var mine []api.ChangeRequest
		if code := c.call("GET", "/v1/changes", seller, "", nil, &mine); code != 200 || len(mine) != 1 || len(mine[0].Diff) != 2 {
			t.Errorf("the seller lists its changes: %d %+v", code, mine)
		}
		d := c.approve(ch.ID)
		if d.Event != catalog.EventApproved || len(d.Products) != 1 {
			t.Fatalf("approve F3: %+v", d)
		}
		product := d.Products[0]
		check := func(stage string, want map[string]seen, codes map[string]int) {
			t.Helper()
			for name, token := range map[string]string{"seller": seller, "test account": tester, "buyer": buyer, "other seller": other} {
				if diff := cmp.Diff(want[name], c.seenBy(token)); diff != "" {
					t.Errorf("%s: what %s sees (-want +got):\n%s", stage, name, diff)
				}
				if code := c.productCode(token, product); code != codes[name] {
					t.Errorf("%s: %s reads the product: %d, want %d", stage, name, code, codes[name])
				}
			}
		}
		hidden := map[string]int{"seller": 200, "test account": 200, "buyer": 404, "other seller": 404}
		check("after F3", map[string]seen{
			"seller":       {"Acme Shop": {"limited", "2.0:limited:Shop20Linux1"}},
			"test account": {"Acme Shop": {"limited", "2.0:limited:Shop20Linux1"}},
			"buyer":        {}, "other seller": {},
		}, hidden)

		// F2: a new version, a draft: the test account does not see it.
		if code := c.submit(seller, fillForm(t, c.template(seller), newVersionRow(product, "2.1", "Shop21Linux1", "")), &ch); code != 201 {
			t.Fatalf("submit F2: %d %+v", code, ch)
		}
		c.approve(ch.ID)
		check("after F2", map[string]seen{
			"seller":       {"Acme Shop": {"limited", "2.0:limited:Shop20Linux1", "2.1:draft:Shop21Linux1"}},
			"test account": {"Acme Shop": {"limited", "2.0:limited:Shop20Linux1"}},
			"buyer":        {}, "other seller": {},
		}, hidden)

		// F1: the Windows group as a second option of version 2.0.
		if code := c.submit(seller, fillForm(t, c.template(seller), addOptionRow(product, "2.0", "Shop20Win1", "windows")), &ch); code != 201 {
			t.Fatalf("submit F1: %d %+v", code, ch)
		}
		c.approve(ch.ID)
		check("after F1", map[string]seen{
			"seller":       {"Acme Shop": {"limited", "2.0:limited:Shop20Linux1+Shop20Win1", "2.1:draft:Shop21Linux1"}},
			"test account": {"Acme Shop": {"limited", "2.0:limited:Shop20Linux1+Shop20Win1"}},
			"buyer":        {}, "other seller": {},
		}, hidden)

		// Publishing 2.0 is a change request too; a rejection keeps it hidden.
		if code := c.call("POST", "/v1/products/"+product+"/versions/2.0/publish", seller, "", nil, &ch); code != 201 || ch.Rows[0].Request != catalog.PublishVersion {
			t.Fatalf("publish: %d %+v", code, ch)
		}
		var pe problem.Error
		if code := c.json("POST", "/v1/changes/"+ch.ID+"/reject", c.operator, api.RejectRequest{}, &pe); code != 400 || pe.Field != "reason" || pe.Rule != "L2" {
			t.Errorf("reject without a reason: %d %+v", code, pe)
		}
		var rejected catalog.Decision
		if code := c.json("POST", "/v1/changes/"+ch.ID+"/reject", c.operator, api.RejectRequest{Reason: "add usage instructions for Windows first"}, &rejected); code != 200 || rejected.Event != catalog.EventRejected {
			t.Fatalf("reject: %d %+v", code, rejected)
		}
		var got api.ChangeRequest
		if code := c.call("GET", "/v1/changes/"+ch.ID, seller, "", nil, &got); code != 200 || got.State != catalog.Rejected || got.Reason != "add usage instructions for Windows first" {
			t.Errorf("the seller reads its rejected change: %d %+v", code, got)
		}
		if code := c.call("POST", "/v1/products/"+product+"/versions/2.0/publish", seller, "", nil, &ch); code != 201 {
			t.Fatalf("publish again: %d %+v", code, ch)
		}
		c.approve(ch.ID)
		check("after publishing 2.0", map[string]seen{
			"seller":       {"Acme Shop": {"public", "2.0:public:Shop20Linux1+Shop20Win1", "2.1:draft:Shop21Linux1"}},
			"test account": {"Acme Shop": {"public", "2.0:public:Shop20Linux1+Shop20Win1"}},
			"buyer":        {"Acme Shop": {"public", "2.0:public:Shop20Linux1+Shop20Win1"}},
			"other seller": {"Acme Shop": {"public", "2.0:public:Shop20Linux1+Shop20Win1"}},
		}, map[string]int{"seller": 200, "test account": 200, "buyer": 200, "other seller": 200})

		// Each decision: one audit row, object the change, owner the seller.
		var rows api.Page[audit.Entry]
		if code := c.call("GET", "/v1/audit?account=operator&limit=1000", c.operator, "", nil, &rows); code != 200 {
			t.Fatalf("GET /v1/audit: %d", code)
		}
		decisions := map[string]int{}
		for _, e := range rows.Items {
			if strings.HasPrefix(e.Action, "POST /v1/changes/") && e.Result == 200 {
				if !strings.HasPrefix(e.Object, "chg-") || e.Owner != acme.ID {
					t.Errorf("decision audited as %+v, want the change as object and %s as owner", e, acme.ID)
				}
				decisions[e.Action]++
			}
		}
		if want := map[string]int{"POST /v1/changes/{id}/approve": 4, "POST /v1/changes/{id}/reject": 1}; !cmp.Equal(decisions, want) {
			t.Errorf("audited decisions %v, want %v", decisions, want)
		}
		// …and one webhook delivery each, received by the seller's endpoint.
		var deliveries []webhook.Delivery
		if code := c.call("GET", "/v1/webhook/deliveries", seller, "", nil, &deliveries); code != 200 {
			t.Fatalf("GET /v1/webhook/deliveries: %d", code)
		}
		events := map[string]int{}
		for _, d := range deliveries {
			events[d.Event]++
		}
		if events[catalog.EventApproved] != 4 || events[catalog.EventRejected] != 1 {
			t.Errorf("deliveries by event %v, want 4 %s and 1 %s", events, catalog.EventApproved, catalog.EventRejected)
		}
		received := map[string]int{}
		timeout := time.After(60 * time.Second)
		for received[catalog.EventApproved] < 4 || received[catalog.EventRejected] < 1 {
			select {
			case ev := <-c.hooks.events:
				if strings.HasPrefix(ev.Event, "change.") {
					received[ev.Event]++
				}
			case <-timeout:
				t.Fatalf("change events received within 60s: %v", received)
			}
		}
	})
}

// TestLoadFormRefusals: representative refusals through the API, each
// with its exact cell and rule, every problem at once, and nothing stored
// (the domain packages' tests hold the rest).
func TestLoadFormRefusals(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		c := newCatalogEnv(t, db, loadform.Limits{MaxBytes: 256 << 10})
		seller := c.account("acme", accounts.Seller)
		other := c.account("globex", accounts.Seller)
		c.successfulGroup(seller, "Shop20Linux1", "linux", "2.0")
		c.successfulGroup(other, "Theirs20Linux1", "linux", "2.0")
		if code := c.json("POST", "/v1/package-groups", seller, map[string]any{"name": "Shop30Linux1", "platform": "linux", "os_versions": []string{"debian-12"},
			"installer_id": c.firstPackage(seller), "software_version": "3.0"}, nil); code != 201 {
			t.Fatalf("create Shop30Linux1: %d", code)
		}
		tmpl := c.template(seller)
		noVersion := newProductRow("Acme Shop", "", "Shop20Linux1", "")
		for _, tc := range []struct {
			name   string
			ctype  string
			body   []byte
			status int
			want   []problem.Detail // field and rule of each detail
		}{
			{"a field left empty (loadform)", api.XLSXType, fillForm(t, tmpl, noVersion), 400,
				[]problem.Detail{{Field: "Products!D2", Rule: "L1"}}},
			{"another seller's group, and a group never built (catalog)", api.XLSXType,
				fillForm(t, tmpl, newProductRow("A", "2.0", "Theirs20Linux1", ""), newProductRow("B", "3.0", "Shop30Linux1", "")), 400,
				[]problem.Detail{{Field: "Products!G2", Rule: "F3"}, {Field: "Products!G3", Rule: "F3"}}},
			{"F1: a product that is not the seller's", api.XLSXType,
				fillForm(t, tmpl, addOptionRow("prod-0000000000000000", "2.0", "Shop20Linux1", "linux")), 400,
				[]problem.Detail{{Field: "Products!B2", Rule: "F1"}}},
			{"not a workbook", api.XLSXType, []byte("name,version\n"), 400, nil},
			{"not an xlsx body", "text/csv", []byte("name,version\n"), 415, nil},
			{"over the size limit", "application/octet-stream", bytes.Repeat([]byte("x"), 256<<10+1), 413, nil},
		} {
			var pe problem.Error
			code := c.call("POST", "/v1/load-forms", seller, tc.ctype, bytes.NewReader(tc.body), &pe)
			if code != tc.status {
				t.Errorf("%s: %d %+v, want %d", tc.name, code, pe, tc.status)
				continue
			}
			for i, d := range pe.Details {
				t.Logf("%s: %s: %s (rule %s)", tc.name, d.Field, d.Message, d.Rule)
				if i < len(tc.want) && (d.Field != tc.want[i].Field || d.Rule != tc.want[i].Rule) {
					t.Errorf("%s: detail %d is %s rule %s, want %s rule %s", tc.name, i, d.Field, d.Rule, tc.want[i].Field, tc.want[i].Rule)
				}
			}
			if tc.want != nil && len(pe.Details) != len(tc.want) {
				t.Errorf("%s: %d details %+v, want %d", tc.name, len(pe.Details), pe.Details, len(tc.want))
			}
		}
		var list []api.ChangeRequest
		if code := c.call("GET", "/v1/changes", seller, "", nil, &list); code != 200 || len(list) != 0 {
			t.Errorf("after refusals: %d %+v, want no change request", code, list)
		}
	})
}

// TestCatalogFailingStore: a submission and an approval that the database
// fails are 500s whose detail is only in the server log, and nothing is
// half done (CONTRIBUTING, errors).
func TestCatalogFailingStore(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		c := newCatalogEnv(t, db, loadform.Limits{})
		seller := c.account("acme", accounts.Seller)
		c.successfulGroup(seller, "Shop20Linux1", "linux", "2.0")
		tmpl := c.template(seller)
		var ch api.ChangeRequest
		if code := c.submit(seller, fillForm(t, tmpl, newProductRow("Acme Shop", "2.0", "Shop20Linux1", "")), &ch); code != 201 {
			t.Fatalf("submit: %d", code)
		}
		logs := captureLog(t)
		failInserts(t, db, "change_requests")
		failInserts(t, db, "products")
		for _, tc := range []struct {
			name, path, ctype string
			body              []byte
			token             string
		}{
			{"submitLoadForm", "/v1/load-forms", api.XLSXType, fillForm(t, tmpl, newProductRow("Acme Books", "2.0", "Shop20Linux1", "")), seller},
			{"approveChange", "/v1/changes/" + ch.ID + "/approve", "", nil, c.operator},
		} {
			status, pe, id := c.answer("POST", tc.path, tc.token, tc.ctype, bytes.NewReader(tc.body))
			if status != 500 || pe.Code != problem.Internal || len(pe.Details) != 0 || strings.Contains(pe.Message, "disk on fire") {
				t.Errorf("%s with a failing store: %d %+v, want 500 internal without detail", tc.name, status, pe)
			}
			if line := logLine(logs.String(), id); !strings.Contains(line, "disk on fire") {
				t.Errorf("%s: the server log has no line with request %s and the detail", tc.name, id)
			}
		}
		var got api.ChangeRequest
		if code := c.call("GET", "/v1/changes/"+ch.ID, seller, "", nil, &got); code != 200 || got.State != catalog.Pending {
			t.Errorf("after a failed approval the change is %d %+v, want still pending", code, got)
		}
		if s := c.seenBy(seller); len(s) != 0 {
			t.Errorf("after a failed approval the seller sees %v", s)
		}
	})
}
