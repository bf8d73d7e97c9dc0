//go:build linux

package scan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Policy decides the verdict (rule S4). The zero value is not useful; start
// from DefaultPolicy or LoadPolicy.
//
// The default policy: a vulnerability fails the scan when its severity is
// High or Critical and a fix is available; every failed S3 check fails it.
// Vulnerabilities are judged once per group (records of the same
// vulnerability in one package, Group). As a file (JSON or YAML):
//
//	min_severity: High        # Critical, High, Medium, Low or Unknown
//	fail_on_unfixed: false    # true: vulnerabilities without a fix count too
//	unknown_severity: ignore  # ignore, low, medium, high or critical
//	fail_on_checks: true      # false: S3 failures are reported, not fatal
//	allow:                    # accepted findings, each with a reason and expiry
//	  - id: CVE-2024-1234     # a vulnerability ID or alias, or an S3 rule ID
//	    package: openssl      # optional: only for this (binary or source) package
//	    reason: not reachable in this product
//	    expires: 2027-01-31
type Policy struct {
	MinSeverity   Severity `json:"min_severity"`
	FailOnUnfixed bool     `json:"fail_on_unfixed"`
	// UnknownSeverity is the severity a vulnerability no source rates is
	// judged as: "ignore" (the default: rule S4 names High and Critical,
	// and an unrated vulnerability is neither; the report counts those
	// it left unjudged, Counts.UnknownIgnored) or low, medium, high,
	// critical. With min_severity Unknown every vulnerability is judged
	// and this setting does not apply.
	UnknownSeverity string  `json:"unknown_severity,omitempty"`
	FailOnChecks    *bool   `json:"fail_on_checks,omitempty"`
	Allow           []Allow `json:"allow,omitempty"`
}

// Allow accepts a finding until it expires.
type Allow struct {
	ID      string `json:"id"`
	Package string `json:"package,omitempty"`
	Reason  string `json:"reason"`
	Expires string `json:"expires"` // YYYY-MM-DD, last day the entry applies
	expires time.Time
}

// DefaultPolicy is the marketplace's default: High or Critical with a fix
// available, and any S3 failure.
func DefaultPolicy() Policy {
	t := true
	return Policy{MinSeverity: High, UnknownSeverity: IgnoreUnknown, FailOnChecks: &t}
}

// IgnoreUnknown is Policy.UnknownSeverity's default.
const IgnoreUnknown = "ignore"

// LoadPolicy reads a policy file in JSON or YAML; unset fields keep the
// default's values.
func LoadPolicy(file string) (Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return Policy{}, fmt.Errorf("read policy: %w", err)
	}
	p, err := ParsePolicy(data)
	if err != nil {
		return Policy{}, fmt.Errorf("policy %s: %w", file, err)
	}
	return p, nil
}

// ParsePolicy parses a JSON or YAML policy and validates it.
func ParsePolicy(data []byte) (Policy, error) {
	p := DefaultPolicy()
	js, err := yaml.YAMLToJSON(data) // JSON is YAML, so both pass here
	if err != nil {
		return p, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("%w (fields: min_severity, fail_on_unfixed, unknown_severity, fail_on_checks, allow)", err)
	}
	if p.MinSeverity == "" {
		p.MinSeverity = High
	}
	if p.MinSeverity, err = ParseSeverity(string(p.MinSeverity)); err != nil {
		return p, fmt.Errorf("min_severity: %w", err)
	}
	switch u := strings.ToLower(p.UnknownSeverity); u {
	case "", IgnoreUnknown:
		p.UnknownSeverity = IgnoreUnknown
	case "low", "medium", "high", "critical":
		p.UnknownSeverity = u
	default:
		return p, fmt.Errorf("unknown_severity %q: want ignore, low, medium, high or critical", p.UnknownSeverity)
	}
	if p.FailOnChecks == nil {
		t := true
		p.FailOnChecks = &t
	}
	for i := range p.Allow {
		a := &p.Allow[i]
		if a.ID == "" {
			return p, fmt.Errorf("allow[%d]: id is required", i)
		}
		if strings.TrimSpace(a.Reason) == "" {
			return p, fmt.Errorf("allow[%d] (%s): a reason is required", i, a.ID)
		}
		if a.Expires == "" {
			return p, fmt.Errorf("allow[%d] (%s): an expiry date (YYYY-MM-DD) is required", i, a.ID)
		}
		t, err := time.Parse("2006-01-02", a.Expires)
		if err != nil {
			return p, fmt.Errorf("allow[%d] (%s): expires %q: want YYYY-MM-DD", i, a.ID, a.Expires)
		}
		a.expires = t
	}
	return p, nil
}

// Violation is one finding that broke the policy, and why.
type Violation struct {
	Rule    string `json:"rule"` // S2 for a vulnerability, else the S3 rule ID
	ID      string `json:"id"`   // vulnerability ID, or the S3 rule ID
	Package string `json:"package,omitempty"`
	Reason  string `json:"reason"`
}

// Allowed is a finding the policy's allow list accepted.
type Allowed struct {
	Violation
	AllowReason string `json:"allow_reason"`
	Expires     string `json:"expires"`
}

// allowFor returns the allow entry covering a finding, if one applies at
// now; expired entries are reported so the report can say so.
func (p *Policy) allowFor(ids []string, pkgs []string, now time.Time) (match *Allow, expired *Allow) {
	for i := range p.Allow {
		a := &p.Allow[i]
		if !containsFold(ids, a.ID) {
			continue
		}
		if a.Package != "" && !containsFold(pkgs, a.Package) {
			continue
		}
		// Expires names the last day the entry applies (in UTC).
		if now.Before(a.expires.AddDate(0, 0, 1)) {
			return a, nil
		}
		expired = a
	}
	return nil, expired
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// judgedAs is the severity the policy judges a group of severity sev as,
// and whether it judges it at all.
func (p *Policy) judgedAs(sev Severity) (Severity, bool) {
	if sev != Unknown || p.MinSeverity == Unknown {
		return sev, true
	}
	if p.UnknownSeverity == "" || p.UnknownSeverity == IgnoreUnknown {
		return Unknown, false
	}
	s, err := ParseSeverity(p.UnknownSeverity)
	return s, err == nil
}

// evaluate returns what breaks the policy, what the allow list accepted,
// and how many groups of Unknown severity it left unjudged that would
// otherwise count (with a fix, or fail_on_unfixed).
func (p *Policy) evaluate(vulns []Finding, results []CheckResult, now time.Time) ([]Violation, []Allowed, int) {
	var viol []Violation
	var allowed []Allowed
	ignored := 0
	consider := func(v Violation, ids, pkgs []string) {
		a, exp := p.allowFor(ids, pkgs, now)
		if a != nil {
			allowed = append(allowed, Allowed{Violation: v, AllowReason: a.Reason, Expires: a.Expires})
			return
		}
		if exp != nil {
			v.Reason += fmt.Sprintf(" (its allow-list entry expired on %s)", exp.Expires)
		}
		viol = append(viol, v)
	}
	for _, g := range group(vulns) {
		if g.FixedVersion == "" && !p.FailOnUnfixed {
			continue
		}
		sev, judged := p.judgedAs(g.Severity)
		if !judged {
			ignored++
			continue
		}
		if sev.rank() < p.MinSeverity.rank() {
			continue
		}
		what := string(g.Severity)
		if sev != g.Severity {
			what = fmt.Sprintf("Unknown-severity (judged as %s by unknown_severity)", sev)
		}
		var reason string
		if g.FixedVersion != "" {
			reason = fmt.Sprintf("%s vulnerability in %s %s (source %s) is fixed in %s; the policy fails on %s or higher with a fix available — upgrade the package",
				what, g.Package, g.InstalledVersion, g.SourcePackage, g.FixedVersion, p.MinSeverity)
		} else {
			reason = fmt.Sprintf("%s vulnerability in %s %s (source %s) has no fix yet; the policy fails on %s or higher even without a fix",
				what, g.Package, g.InstalledVersion, g.SourcePackage, p.MinSeverity)
		}
		consider(Violation{Rule: "S2", ID: g.IDs[0], Package: g.Package, Reason: reason}, g.Aliases, []string{g.Package, g.SourcePackage})
	}
	if p.FailOnChecks == nil || *p.FailOnChecks {
		for _, r := range results {
			if !r.Passed {
				consider(Violation{Rule: r.Rule, ID: r.Rule, Reason: r.Message}, []string{r.Rule}, nil)
			}
		}
	}
	return viol, allowed, ignored
}
