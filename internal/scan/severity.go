//go:build linux

package scan

import (
	"fmt"
	"strings"

	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"

	"github.com/pib-dev/pib/internal/vulndb"
)

// Severity is a finding's qualitative severity, CVSS's rating scale plus
// Unknown.
type Severity string

const (
	Unknown  Severity = "Unknown"
	Low      Severity = "Low"
	Medium   Severity = "Medium"
	High     Severity = "High"
	Critical Severity = "Critical"
)

func (s Severity) rank() int {
	switch s {
	case Low:
		return 1
	case Medium:
		return 2
	case High:
		return 3
	case Critical:
		return 4
	}
	return 0
}

// ParseSeverity accepts a severity name in any case.
func ParseSeverity(s string) (Severity, error) {
	for _, v := range []Severity{Unknown, Low, Medium, High, Critical} {
		if strings.EqualFold(s, string(v)) {
			return v, nil
		}
	}
	return "", fmt.Errorf("severity %q: want Critical, High, Medium, Low or Unknown", s)
}

// rating is CVSS v3/v4's qualitative scale.
func rating(score float64) Severity {
	switch {
	case score >= 9.0:
		return Critical
	case score >= 7.0:
		return High
	case score >= 4.0:
		return Medium
	case score > 0:
		return Low
	}
	return Unknown
}

// cvssScore computes the base score of a CVSS v3.0, v3.1 or v4.0 vector.
func cvssScore(vector string) (float64, bool) {
	switch {
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		if c, err := gocvss31.ParseVector(vector); err == nil {
			return c.BaseScore(), true
		}
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		if c, err := gocvss30.ParseVector(vector); err == nil {
			return c.BaseScore(), true
		}
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		if c, err := gocvss40.ParseVector(vector); err == nil {
			return c.Score(), true
		}
	}
	return 0, false
}

// cvss2Score computes the base score of a CVSS v2 vector
// ("AV:N/AC:L/Au:N/C:P/I:P/A:P", sometimes with a "CVSS:2.0/" prefix).
func cvss2Score(vector string) (float64, bool) {
	c, err := gocvss20.ParseVector(strings.TrimPrefix(vector, "CVSS:2.0/"))
	if err != nil {
		return 0, false
	}
	return c.BaseScore(), true
}

// rating2 is CVSS v2's qualitative scale (NVD's: it has no Critical).
func rating2(score float64) Severity {
	switch {
	case score >= 7.0:
		return High
	case score >= 4.0:
		return Medium
	case score > 0:
		return Low
	}
	return Unknown
}

// Where a finding's severity comes from (Finding.SeveritySource).
const (
	fromCVSS     = "cvss"     // a CVSS v3 or v4 vector
	fromCVSS2    = "cvss_v2"  // a CVSS v2 vector, the record's only one
	fromDatabase = "database" // the record's database_specific.severity (GitHub)
	fromUrgency  = "urgency"  // the distribution's urgency or priority
)

// severityOf rates an entry by the first source it has, most precise
// first: the highest base score among the CVSS v3 and v4 vectors of the
// affected entry and the record; else the database's own rating
// (GitHub's LOW, MODERATE, HIGH, CRITICAL: a current review on the
// modern scale); else the highest CVSS v2 score (on v2's own scale,
// which has no Critical); else the distribution's rating (Debian's
// urgency high/medium/low/unimportant, Ubuntu's priority); else Unknown.
// source names the one used ("" for Unknown).
func severityOf(e vulndb.Entry) (sev Severity, score float64, source string) {
	lists := [][]vulndb.Severity{e.Affected.Severity, e.Severity}
	best, found := 0.0, false
	best2, found2 := 0.0, false
	for _, list := range lists {
		for _, s := range list {
			switch s.Type {
			case "CVSS_V3", "CVSS_V4":
				if sc, ok := cvssScore(s.Score); ok && (!found || sc > best) {
					best, found = sc, true
				}
			case "CVSS_V2":
				if sc, ok := cvss2Score(s.Score); ok && (!found2 || sc > best2) {
					best2, found2 = sc, true
				}
			}
		}
	}
	if found {
		return rating(best), best, fromCVSS
	}
	if sev := namedSeverity(e.Rating); sev != Unknown {
		return sev, 0, fromDatabase
	}
	if found2 {
		return rating2(best2), best2, fromCVSS2
	}
	urgency := e.Affected.EcosystemSpecific.Urgency
	for _, list := range lists {
		for _, s := range list {
			if s.Type == "Ubuntu" && urgency == "" { // Ubuntu's priority: negligible … critical
				urgency = s.Score
			}
		}
	}
	if sev := namedSeverity(urgency); sev != Unknown {
		return sev, 0, fromUrgency
	}
	return Unknown, 0, ""
}

// namedSeverity reads a rating written as a word: GitHub's (MODERATE is
// its Medium), Debian's urgency (unimportant) and Ubuntu's priority
// (negligible) included. Anything else ("not yet assigned") is Unknown.
func namedSeverity(s string) Severity {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return Critical
	case "high":
		return High
	case "medium", "moderate":
		return Medium
	case "low", "unimportant", "negligible":
		return Low
	}
	return Unknown
}
