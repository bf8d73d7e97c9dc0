package vulndb

import (
	"archive/zip"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pib-dev/pib/internal/testenv"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite the seed corpora under testdata/fuzz")

// FuzzParseRecord: parseRecord never panics; it either returns a
// *RecordError naming a record, or a record that meets what import relies
// on (an ID, exactly one field per range event of a named package). An
// accepted record survives JSON encoding unchanged, AliasIDs() lists each
// alias once, never the record's own ID, and RelatedCVEs() only CVEs
// AliasIDs() does not list.
func FuzzParseRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			t.Skip("larger than any real OSV record")
		}
		r, err := parseRecord(data, "osv/DSA-0000-1.json")
		if err != nil {
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("parseRecord: %v (%T), want a *RecordError", err, err)
			}
			if re.ID == "" {
				t.Fatalf("RecordError with no ID: %v", err)
			}
			if r != nil {
				t.Fatalf("parseRecord returned a record and an error")
			}
			return
		}
		if r.ID == "" {
			t.Fatalf("accepted a record without ID: %+v", r)
		}
		for _, a := range r.Affected {
			if a.Package.Ecosystem == "" || a.Package.Name == "" {
				continue
			}
			for _, rg := range a.Ranges {
				for _, e := range rg.Events {
					n := 0
					for _, s := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
						if s != "" {
							n++
						}
					}
					if n != 1 {
						t.Fatalf("accepted a range event with %d fields set: %+v", n, e)
					}
				}
			}
		}

		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal an accepted record: %v", err)
		}
		r2, err := parseRecord(enc, "again.json")
		if err != nil {
			t.Fatalf("an accepted record, encoded again, is refused: %v\n%s", err, enc)
		}
		// omitempty: an empty list and no list are the same record.
		if diff := cmp.Diff(r, r2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("record changed through JSON (-first +second):\n%s", diff)
		}

		ids := r.AliasIDs()
		seen := map[string]bool{}
		for _, c := range ids {
			if c == "" || c == r.ID || seen[c] {
				t.Fatalf("AliasIDs() = %q for ID %q: want distinct IDs other than the ID", ids, r.ID)
			}
			seen[c] = true
		}
		for _, a := range r.Aliases {
			if a = strings.TrimSpace(a); a != "" && a != r.ID && !seen[a] {
				t.Fatalf("AliasIDs() = %q misses alias %q", ids, a)
			}
		}
		for _, c := range r.RelatedCVEs() {
			if !strings.HasPrefix(c, "CVE-") || c == r.ID || seen[c] {
				t.Fatalf("RelatedCVEs() = %q for ID %q (aliases %q): want distinct CVEs that are not aliases", r.RelatedCVEs(), r.ID, ids)
			}
			seen[c] = true
		}
	})
}

// TestWriteFuzzSeeds regenerates FuzzParseRecord's seeds: a spread of real
// Debian OSV records (PIB_OSV_ZIP or the shared data folder: CVE records
// with severities, DSA/DLA advisories with related CVEs, withdrawn ones)
// and records of the other ecosystem kinds pib matches, as osv.dev writes
// them.
//
//	go test ./internal/vulndb -run TestWriteFuzzSeeds -update-fuzz-seeds
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("regenerates testdata/fuzz; run with -update-fuzz-seeds")
	}
	zipPath := os.Getenv("PIB_OSV_ZIP")
	if zipPath == "" {
		zipPath = "../../../shared/data/osv/debian-all-2025-02-12.zip"
	}
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatalf("open the OSV data (set PIB_OSV_ZIP): %v", err)
	}
	defer zr.Close()
	files := append([]*zip.File(nil), zr.File...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	picked := map[string]bool{}
	pick := func(kind string, ok func(name string, raw []byte) bool) {
		for _, zf := range files {
			if picked[zf.Name] || zf.UncompressedSize64 > 16<<10 {
				continue
			}
			rc, err := zf.Open()
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if ok(zf.Name, raw) {
				picked[zf.Name] = true
				testenv.WriteFuzzSeed(t, "FuzzParseRecord", kind+"-"+strings.TrimSuffix(zf.Name, ".json"), raw)
				return
			}
		}
		t.Logf("no record for %s", kind)
	}
	has := func(s string) func(string, []byte) bool {
		return func(_ string, raw []byte) bool { return strings.Contains(string(raw), s) }
	}
	pick("cvss3", has(`"CVSS_V3"`))
	pick("cvss4", has(`"CVSS_V4"`))
	pick("urgency", has(`"urgency"`))
	pick("dsa", func(name string, raw []byte) bool { return strings.HasPrefix(name, "DSA-") })
	pick("dla", func(name string, raw []byte) bool { return strings.HasPrefix(name, "DLA-") })
	pick("withdrawn", has(`"withdrawn"`))
	pick("versions", has(`"versions":[`))
	pick("multi-affected", func(_ string, raw []byte) bool { return strings.Count(string(raw), `"ecosystem"`) >= 3 })
	pick("epoch", has(`"fixed":"1:`))
	pick("tilde", has(`~deb`))

	// The other ecosystem kinds, built the way osv.dev shapes them.
	mod := time.Date(2025, 2, 1, 12, 30, 0, 123000000, time.UTC)
	rec := func(id, eco, name string, rng Range, versions []string) []byte {
		r := Record{ID: id, Modified: mod, Aliases: []string{"CVE-2024-0001"}, Summary: "summary of " + id}
		a := Affected{Ranges: []Range{rng}, Versions: versions}
		a.Package.Ecosystem, a.Package.Name = eco, name
		r.Affected = []Affected{a}
		r.Severity = []Severity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, b := range map[string][]byte{
		"alpine": rec("ALPINE-CVE-2024-0001", "Alpine:v3.19", "openssl", Range{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}, {Fixed: "3.1.4-r5"}}}, nil),
		"rpm":    rec("ALSA-2024:0001", "AlmaLinux:9", "openssl", Range{Type: "ECOSYSTEM", Events: []Event{{Introduced: "0"}, {Fixed: "1:3.0.7-27.el9"}}}, nil),
		"go":     rec("GO-2024-0001", "Go", "golang.org/x/net", Range{Type: "SEMVER", Events: []Event{{Introduced: "0"}, {Fixed: "0.23.0"}}}, nil),
		"npm":    rec("GHSA-aaaa-bbbb-cccc", "npm", "lodash", Range{Type: "SEMVER", Events: []Event{{Introduced: "4.0.0"}, {LastAffected: "4.17.20"}}}, []string{"4.17.19", "4.17.20"}),
		"git":    rec("OSV-2024-0001", "", "", Range{Type: "GIT", Events: []Event{{Introduced: "0123456789abcdef"}, {Limit: "*"}}}, nil),
		// Refused: no ID; an event setting two fields.
		"no-id":   mustJSON(t, map[string]any{"modified": mod, "affected": []any{}}),
		"bad-evt": mustJSON(t, map[string]any{"id": "X-1", "modified": mod.In(time.FixedZone("", 7200)), "affected": []any{map[string]any{"package": map[string]string{"ecosystem": "Debian:12", "name": "x"}, "ranges": []any{map[string]any{"type": "ECOSYSTEM", "events": []any{map[string]string{"introduced": "0", "fixed": "1.0"}}}}}}}),
	} {
		testenv.WriteFuzzSeed(t, "FuzzParseRecord", name, b)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
