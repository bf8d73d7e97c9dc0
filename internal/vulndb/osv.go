package vulndb

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Record is the part of an OSV record (https://ossf.github.io/osv-schema/)
// that pib reads. Details, references and credits are dropped at import:
// reports link to the ID instead.
type Record struct {
	ID        string     `json:"id"`
	Modified  time.Time  `json:"modified"`
	Withdrawn *time.Time `json:"withdrawn,omitempty"`
	Aliases   []string   `json:"aliases,omitempty"`
	Related   []string   `json:"related,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Details   string     `json:"details,omitempty"`
	Severity  []Severity `json:"severity,omitempty"`
	Affected  []Affected `json:"affected,omitempty"`
	// DatabaseSpecific is read only for its severity: the rest is each
	// database's own, in any shape.
	DatabaseSpecific DatabaseSpecific `json:"database_specific,omitzero"`
}

// DatabaseSpecific is the part of a record's database_specific pib reads:
// GitHub's advisories rate themselves there (LOW, MODERATE, HIGH,
// CRITICAL), often the only rating the Go and npm records that alias them
// can get.
type DatabaseSpecific struct {
	Severity string `json:"severity,omitempty"`
}

// UnmarshalJSON takes severity when it is a string; any other shape is no
// rating, never a reason to skip the record.
func (d *DatabaseSpecific) UnmarshalJSON(b []byte) error {
	*d = DatabaseSpecific{}
	var raw struct {
		Severity json.RawMessage `json:"severity"`
	}
	if json.Unmarshal(b, &raw) != nil {
		return nil
	}
	var s string
	if json.Unmarshal(raw.Severity, &s) == nil {
		d.Severity = strings.TrimSpace(s)
	}
	return nil
}

// Severity is one OSV severity entry: a type (CVSS_V2, CVSS_V3, CVSS_V4,
// Ubuntu) and its score, for CVSS a vector string.
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Affected is one OSV affected entry: a package in one ecosystem and the
// versions of it that are vulnerable.
type Affected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
		Purl      string `json:"purl,omitempty"`
	} `json:"package"`
	Ranges            []Range           `json:"ranges,omitempty"`
	Versions          []string          `json:"versions,omitempty"`
	Severity          []Severity        `json:"severity,omitempty"`
	EcosystemSpecific EcosystemSpecific `json:"ecosystem_specific,omitempty"`
}

// EcosystemSpecific holds the ecosystem_specific fields pib uses: Debian's
// urgency, the severity of last resort when a record has no CVSS vector.
type EcosystemSpecific struct {
	Urgency string `json:"urgency,omitempty"`
}

// Range is an OSV range. Only ECOSYSTEM and SEMVER ranges are evaluated;
// GIT ranges name commits, which an installed image does not have.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one point of a range: exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// parseRecord decodes one OSV JSON document and checks what import relies
// on. name (the file name) identifies the record when its JSON is too
// broken to yield an ID. A missing or zero `modified` is allowed: every
// record of the golang/vulndb repository has 0001-01-01T00:00:00Z, and
// osv-scanner uses them (import counts them, ImportResult.NoModified).
func parseRecord(data []byte, name string) (*Record, error) {
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, &RecordError{ID: idFromName(name, data), Err: err}
	}
	if r.ID == "" {
		return nil, &RecordError{ID: idFromName(name, data), Err: fmt.Errorf("record has no id")}
	}
	for i, a := range r.Affected {
		if a.Package.Ecosystem == "" || a.Package.Name == "" {
			// Records may describe only GIT ranges without a package;
			// they cannot match an installed package, so they are kept
			// out of the index rather than rejected.
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
					return nil, &RecordError{ID: r.ID, Err: fmt.Errorf("affected[%d]: a range event must set exactly one of introduced, fixed, last_affected, limit", i)}
				}
			}
		}
	}
	return &r, nil
}

// idFromName guesses a record's ID for error messages: the "id" field if
// it can be found in the raw text, else the file name without ".json".
func idFromName(name string, data []byte) string {
	var probe struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &probe) == nil && probe.ID != "" {
		return probe.ID
	}
	base := name
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	return strings.TrimSuffix(base, ".json")
}

// RecordError reports one record that could not be imported.
type RecordError struct {
	ID  string
	Err error
}

func (e *RecordError) Error() string { return fmt.Sprintf("record %s: %v", e.ID, e.Err) }
func (e *RecordError) Unwrap() error { return e.Err }

// AliasIDs returns every other ID the record is the same vulnerability
// as: all its aliases and, for the distribution advisories whose
// "related" lists the CVEs they fix (Debian's DSA, Ubuntu's USN), those
// too. osv-scanner groups findings by the same IDs (its grouper's
// ConvertVulnerabilityToIDAliases).
func (r *Record) AliasIDs() []string {
	lists := [][]string{r.Aliases}
	if p, _, _ := strings.Cut(r.ID, "-"); p == "DSA" || p == "USN" {
		lists = append(lists, r.Related)
	}
	return uniqueIDs(r.ID, lists...)
}

// RelatedCVEs returns the CVEs under "related" that AliasIDs leaves out:
// advisories such as Debian's DLA and DTSA list there the CVEs they fix
// without being the same vulnerability for grouping; a finding without a
// rating of its own is still rated by them.
func (r *Record) RelatedCVEs() []string {
	in := map[string]bool{}
	for _, a := range r.AliasIDs() {
		in[a] = true
	}
	var cves []string
	for _, a := range r.Related {
		if strings.HasPrefix(a, "CVE-") && !in[a] {
			cves = append(cves, a)
		}
	}
	return uniqueIDs(r.ID, cves)
}

// uniqueIDs joins lists of IDs in order, without self or repeats.
func uniqueIDs(self string, lists ...[]string) []string {
	var out []string
	seen := map[string]bool{self: true}
	for _, list := range lists {
		for _, a := range list {
			if a = strings.TrimSpace(a); a != "" && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}
