package netwatch

import (
	"fmt"
	"slices"
	"strings"
)

// State is the I6-relevant state of a network namespace (links,
// addresses, routes, rules, nftables, legacy iptables tables), as sorted
// human-readable lines per kind.
type State map[string][]string

// Diff returns one I6 finding message per difference, e.g. "the installer
// changed the network: route added: …".
func Diff(before, after State) []string {
	kinds := map[string]bool{}
	for k := range before {
		kinds[k] = true
	}
	for k := range after {
		kinds[k] = true
	}
	var sorted []string
	for k := range kinds {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	var out []string
	for _, k := range sorted {
		if k == "link" {
			// Links are known by name: report a change as one line.
			name := func(l string) string { return strings.Fields(l)[0] }
			was := map[string]string{}
			for _, l := range before[k] {
				was[name(l)] = l
			}
			now := map[string]string{}
			for _, l := range after[k] {
				now[name(l)] = l
				switch prev, ok := was[name(l)]; {
				case !ok:
					out = append(out, fmt.Sprintf("the installer changed the network: link added: %s", l))
				case prev != l:
					out = append(out, fmt.Sprintf("the installer changed the network: link changed: %s (was: %s)", l, prev))
				}
			}
			for _, l := range before[k] {
				if _, ok := now[name(l)]; !ok {
					out = append(out, fmt.Sprintf("the installer changed the network: link removed: %s", l))
				}
			}
			continue
		}
		for _, l := range after[k] {
			if !slices.Contains(before[k], l) {
				out = append(out, fmt.Sprintf("the installer changed the network: %s added: %s", k, l))
			}
		}
		for _, l := range before[k] {
			if !slices.Contains(after[k], l) {
				out = append(out, fmt.Sprintf("the installer changed the network: %s removed: %s", k, l))
			}
		}
	}
	return out
}
