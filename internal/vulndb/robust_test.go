package vulndb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/vulndb"
)

// goRecord is a record as golang/vulndb writes it: the zero modified
// time, no severity.
func goRecord(id, fixed string) string {
	return `{"id":"` + id + `","modified":"0001-01-01T00:00:00Z","aliases":["CVE-2022-32149","GHSA-69ch-w2m2-3vjp"],
	"affected":[{"package":{"ecosystem":"Go","name":"golang.org/x/text"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"` + fixed + `"}]}]}]}`
}

// TestImportWithoutModified: records with a zero or missing modified time
// are imported and counted; only malformed records are skipped, each
// named with its reason. A record without a modified time is replaced
// when its content changes, and only then.
func TestImportWithoutModified(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, sdb *store.DB) {
		ctx := context.Background()
		db := vulndb.New(sdb)
		dir := writeDir(t, map[string]string{
			"GO-2022-1059.json":   goRecord("GO-2022-1059", "0.3.8"),
			"PYSEC-2099-1.json":   `{"id":"PYSEC-2099-1","affected":[{"package":{"ecosystem":"PyPI","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}]}`,
			"NOID.json":           `{"modified":"2024-01-01T00:00:00Z"}`,
			"TWO-FIELDS-1.json":   `{"id":"TWO-FIELDS-1","affected":[{"package":{"ecosystem":"PyPI","name":"x"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0","fixed":"1"}]}]}]}`,
			"BAD-TIME-1.json":     `{"id":"BAD-TIME-1","modified":"yesterday"}`,
			"ODD-DB-1.json":       `{"id":"ODD-DB-1","modified":"2024-01-01T00:00:00Z","database_specific":{"severity":{"score":9}}}`,
			"GHSA-1111-2222.json": `{"id":"GHSA-1111-2222","modified":"2024-01-01T00:00:00Z","database_specific":"not an object"}`,
		})
		res, err := db.Import(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[string]string{}
		for _, s := range res.Skipped {
			reasons[s.ID] = s.Error()
		}
		for id, want := range map[string]string{"NOID": "no id", "TWO-FIELDS-1": "exactly one of", "BAD-TIME-1": "cannot parse"} {
			if !strings.Contains(reasons[id], want) {
				t.Errorf("skipped %s: %q, want a reason saying %q", id, reasons[id], want)
			}
		}
		if len(res.Skipped) != 3 || res.Imported != 4 || res.NoModified != 2 {
			t.Errorf("result = %+v (skipped %v), want 4 imported, 2 with no modified time, 3 skipped", res, reasons)
		}

		again, err := db.Import(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if again.Imported != 0 || again.Unchanged != 4 {
			t.Errorf("re-import = %+v, want 0 imported, 4 unchanged", again)
		}

		changed := writeDir(t, map[string]string{"GO-2022-1059.json": goRecord("GO-2022-1059", "0.3.9")})
		res, err = db.Import(ctx, changed)
		if err != nil {
			t.Fatal(err)
		}
		es, err := db.Lookup(ctx, "Go", []string{"golang.org/x/text"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Imported != 1 || len(es) != 1 || es[0].Affected.Ranges[0].Events[1].Fixed != "0.3.9" {
			t.Errorf("a changed record without a modified time: %+v, stored %+v", res, es)
		}
		if diff := cmp.Diff([]string{"CVE-2022-32149", "GHSA-69ch-w2m2-3vjp"}, es[0].Aliases); diff != "" {
			t.Errorf("aliases (-want +got):\n%s", diff)
		}
	})
}

// TestRatings: a record is rated by the records it aliases and by those
// listing it as an alias; records stored by an older pib (format 0) are
// replaced by the next import whatever their modified time.
func TestRatings(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, sdb *store.DB) {
		ctx := context.Background()
		db := vulndb.New(sdb)
		dir := writeDir(t, map[string]string{
			"GO-2022-1059.json": goRecord("GO-2022-1059", "0.3.8"),
			"GHSA-69ch-w2m2-3vjp.json": `{"id":"GHSA-69ch-w2m2-3vjp","modified":"2024-05-20T21:39:47Z","aliases":["CVE-2022-32149"],
				"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],"database_specific":{"severity":"HIGH"}}`,
			"GHSA-rvrs.json": `{"id":"GHSA-rvrs","modified":"2024-05-20T21:39:47Z","aliases":["GO-2099-0001"],"database_specific":{"severity":"MODERATE"}}`,
			"DSA-1-1.json":   `{"id":"DSA-1-1","modified":"2024-05-20T21:39:47Z","related":["CVE-2022-1","RHSA-1"]}`,
			"DLA-1-1.json":   `{"id":"DLA-1-1","modified":"2024-05-20T21:39:47Z","related":["CVE-2022-2","USN-1"]}`,
		})
		if _, err := db.Import(ctx, dir); err != nil {
			t.Fatal(err)
		}
		got, err := db.Ratings(ctx, []string{"GHSA-69ch-w2m2-3vjp", "GO-2099-0001", "CVE-2022-32149", "NOPE"})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string][]string{}
		for k, rs := range got {
			for _, r := range rs {
				ids[k] = append(ids[k], r.ID+":"+r.Database)
			}
		}
		want := map[string][]string{
			"GHSA-69ch-w2m2-3vjp": {"GHSA-69ch-w2m2-3vjp:HIGH", "GO-2022-1059:"}, // itself; GO lists it
			"GO-2099-0001":        {"GHSA-rvrs:MODERATE"},                        // the reverse way only
			"CVE-2022-32149":      {"GHSA-69ch-w2m2-3vjp:HIGH", "GO-2022-1059:"}, // both list it
		}
		if diff := cmp.Diff(want, ids); diff != "" {
			t.Errorf("ratings (-want +got):\n%s", diff)
		}

		// A DSA is the same vulnerability as the CVEs it lists as related
		// (osv-scanner groups them); a DLA is only rated by them.
		es, err := db.Lookup(ctx, "Debian:12", []string{"x"})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 0 {
			t.Errorf("lookup of records without affected packages: %+v", es)
		}
		var aliasesDSA, aliasesDLA []string
		for id, dst := range map[string]*[]string{"CVE-2022-1": &aliasesDSA, "CVE-2022-2": &aliasesDLA} {
			rs, err := db.Ratings(ctx, []string{id})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs[id] {
				*dst = append(*dst, r.ID)
			}
		}
		if diff := cmp.Diff([]string{"DSA-1-1"}, aliasesDSA); diff != "" {
			t.Errorf("records aliasing CVE-2022-1 (-want +got):\n%s", diff)
		}
		if len(aliasesDLA) != 0 {
			t.Errorf("records aliasing CVE-2022-2: %v, want none (a DLA's related CVEs are not its aliases)", aliasesDLA)
		}

		// A pib that stored records before aliases were kept in full.
		if _, err := sdb.ExecContext(ctx, `UPDATE vuln_records SET format = 0`); err != nil {
			t.Fatal(err)
		}
		res, err := db.Import(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		if res.Imported != 5 {
			t.Errorf("re-import over records of an older format: %+v, want all 5 imported again", res)
		}
	})
}
