package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

// TestBootTestInHistory: a boot test (V1–V3, run by the builder between
// the install and the scan) adds no state, but its line is in the build's
// history: on the way to Scanning when it passed, on the way to Issues
// found, with the rule, when it failed.
func TestBootTestInHistory(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outcome  pipeline.BuildOutcome
		state    pipeline.State
		inReason []string
	}{
		{"passed", pipeline.BuildOutcome{ImageID: "img-booted", BootTest: "boot test passed (V1–V3, 31s)"},
			pipeline.Scanning, []string{"boot test passed (V1–V3, 31s)", "img-booted"}},
		{"failed", pipeline.BuildOutcome{BootTest: "boot test failed (1 finding(s), 30s)",
			Findings: []pipeline.Finding{{Rule: "V2", Message: "nothing listens on TCP port 22"}}},
			pipeline.IssuesFound, []string{"V2", "boot test failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.ForEach(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				e := seed(t, db, t.TempDir())
				builder := builderFunc(func(ctx context.Context, r pipeline.BuildRequest) (*pipeline.BuildOutcome, error) {
					out := tc.outcome
					return &out, nil
				})
				p := start(t, db, testConfig(t, e, builder, okScanner))
				if _, err := p.Submit(ctx, e.seller, e.group.Name); err != nil {
					t.Fatal(err)
				}
				waitEnded(t, p, e.seller, e.group.ID, 20*time.Second)
				hist, err := p.Reader().History(ctx, e.seller, e.group.ID)
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, ev := range hist {
					if ev.BuildID == "" || ev.State != tc.state {
						continue
					}
					ok := true
					for _, s := range tc.inReason {
						ok = ok && strings.Contains(ev.Reason, s)
					}
					found = found || ok
				}
				if !found {
					t.Errorf("no %s history entry saying %q: %+v", tc.state, tc.inReason, hist)
				}
			})
		})
	}
}
