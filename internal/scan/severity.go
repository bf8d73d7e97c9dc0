package scan

import (
	"fmt"
	"strings"

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

// severityOf rates an entry: the highest base score among the CVSS v3 and
// v4 vectors of the affected entry and the record (v2 vectors are
// ignored: their scale differs); without any, the distribution's rating
// (Debian's urgency high/medium/low/unimportant, Ubuntu's priority); else
// Unknown.
func severityOf(e vulndb.Entry) (Severity, float64) {
	best, found := 0.0, false
	for _, list := range [][]vulndb.Severity{e.Affected.Severity, e.Severity} {
		for _, s := range list {
			if s.Type != "CVSS_V3" && s.Type != "CVSS_V4" {
				continue
			}
			if sc, ok := cvssScore(s.Score); ok && (!found || sc > best) {
				best, found = sc, true
			}
		}
	}
	if found {
		return rating(best), best
	}
	urgency := e.Affected.EcosystemSpecific.Urgency
	for _, list := range [][]vulndb.Severity{e.Affected.Severity, e.Severity} {
		for _, s := range list {
			if s.Type == "Ubuntu" && urgency == "" { // Ubuntu's priority: negligible … critical
				urgency = s.Score
			}
		}
	}
	switch strings.ToLower(urgency) {
	case "critical":
		return Critical, 0
	case "high":
		return High, 0
	case "medium":
		return Medium, 0
	case "low", "unimportant", "negligible":
		return Low, 0
	}
	return Unknown, 0
}
