//go:build linux

package pipeline

import (
	"fmt"
	"slices"
	"strings"
)

// advice says what a seller changes when a rule breaks.
var advice = map[string]string{
	"I1": "make the installer run unattended: no prompts, no terminal; take answers from arguments, environment variables or a response file in the package group",
	"I2": "ship everything the installer needs in the package group (the build has no network); do not download during installation",
	"I3": "wait for every process the installer starts before it exits; do not leave services or background jobs running",
	"I4": "make the installer exit with status 0 when it succeeds; the build log shows its output",
	"I5": "do not reboot, halt or power off; leave a reboot, if one is needed, to whoever launches the image",
	"I6": "do not change routes, firewall rules, interfaces or network configuration files",
	"I7": "make the installer finish within the time limit; it may be waiting for input (I1) or for the network (I2)",
	"S2": "update the affected packages to a version with the fix, then submit a new package group",
	"S3": "change the image configuration as described (SSH password login off, root password locked, no authorized_keys, credentials or private keys left behind)",
	"S4": "fix what the scan report lists, then submit a new package group",
}

// Advice says what a seller changes when rule breaks; "" when pib has no
// advice for it. The portal's Build page shows it beside each finding.
func Advice(rule string) string { return advice[rule] }

// troubleshooting explains findings to the seller: which rule, what
// happened, what to change, and where to look next.
func troubleshooting(build *Build, stage string, findings []Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "The %s on %s found %d problem(s):\n", stage, build.OSName, len(findings))
	seen := map[string]bool{}
	for _, f := range findings {
		fmt.Fprintf(&b, "- %s: %s", cmpOr(f.Rule, "?"), f.Message)
		if f.Detail != "" {
			fmt.Fprintf(&b, " (%s)", f.Detail)
		}
		b.WriteString("\n")
	}
	b.WriteString("What to change:\n")
	for _, f := range findings {
		if seen[f.Rule] {
			continue
		}
		seen[f.Rule] = true
		if a, ok := advice[f.Rule]; ok {
			fmt.Fprintf(&b, "- %s: %s\n", f.Rule, a)
		}
	}
	cmd := "pib builds"
	if build.Kind == KindPrivate {
		cmd = "pib private-images"
	}
	fmt.Fprintf(&b, "See the build log (%[1]s log %[2]s) and the report (%[1]s report %[2]s).", cmd, build.ID)
	return b.String()
}

// rulesOf lists the distinct rules of findings: "I2, I4".
func rulesOf(findings []Finding) string {
	var rules []string
	for _, f := range findings {
		if f.Rule != "" && !slices.Contains(rules, f.Rule) {
			rules = append(rules, f.Rule)
		}
	}
	if len(rules) == 0 {
		return "a rule"
	}
	return "rule " + strings.Join(rules, ", ")
}
