//go:build linux

package main

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/privatebuilds"
	"github.com/pib-dev/pib/internal/subscriptions"
)

// buyerAPI answers the buyers' listings with fixtures, or with empty
// lists.
func buyerAPI(t *testing.T, empty bool) *httptest.Server {
	buyer := "acc-b0b0000000000001"
	subs := []*subscriptions.Subscription{
		{ProductID: "prod-00000000000000f1", ProductTitle: "Acme DB", Created: t0},
		{ProductID: "prod-00000000000000f2", ProductTitle: "Acme Beta", Created: t0.Add(time.Hour)},
	}
	done := &pipeline.Build{ID: "b-00000000000000e1", Kind: pipeline.KindPrivate, GroupID: "pg-00000000000000a1", Owner: buyer, Submission: -1,
		OSName: "debian-12", BaseImageID: "img-0000000000000gold", State: pipeline.Successful, ImageID: "img-000000000000priv1", Attempt: 1,
		Submitted: t0.Add(2 * time.Hour), Started: ts(2 * time.Hour), Ended: ts(3 * time.Hour), Updated: t0.Add(3 * time.Hour)}
	failed := &pipeline.Build{ID: "b-00000000000000e2", Kind: pipeline.KindPrivate, GroupID: "pg-00000000000000a1", Owner: buyer, Submission: -2,
		OSName: "debian-12", BaseImageID: "img-0000000000000gold", State: pipeline.IssuesFound, Attempt: 1,
		Troubleshooting: "The test build on debian-12 found 1 problem(s):\n- I4: the installer exited with status 2\nWhat to change:\n- I4: make the installer exit with status 0 when it succeeds; the build log shows its output\nSee the build log (pib private-images log b-00000000000000e2) and the report (pib private-images report b-00000000000000e2).",
		Submitted:       t0.Add(4 * time.Hour), Started: ts(4 * time.Hour), Ended: ts(5 * time.Hour), Updated: t0.Add(5 * time.Hour)}
	pbs := []*privatebuilds.PrivateBuild{
		{ID: failed.ID, ProductID: "prod-00000000000000f1", VersionID: "ver-00000000000000f1", FulfillmentID: "ful-00000000000000f1", GoldImageID: "img-0000000000000gold",
			Name: "acme-retry", Tags: map[string]string{}, Created: failed.Submitted, Build: failed},
		{ID: done.ID, ProductID: "prod-00000000000000f1", VersionID: "ver-00000000000000f1", FulfillmentID: "ful-00000000000000f1", GoldImageID: "img-0000000000000gold",
			Name: "acme-on-gold", Description: "Acme DB on our base", Tags: map[string]string{"team": "red", "env": "prod"}, ClientToken: "tok-1", Created: done.Submitted, Build: done},
	}
	history := []pipeline.Event{
		{At: t0.Add(2 * time.Hour), BuildID: done.ID, OSName: "debian-12", State: pipeline.Building, Reason: "submitted; waiting for a worker to install Acme1_0Linux1 onto image img-0000000000000gold"},
		{At: t0.Add(2*time.Hour + time.Minute), BuildID: done.ID, OSName: "debian-12", State: pipeline.Scanning, Reason: "test build passed (image img-000000000000priv1); scanning"},
		{At: t0.Add(3 * time.Hour), BuildID: done.ID, OSName: "debian-12", State: pipeline.Successful, Reason: "the scan passed the security policy"},
	}
	answers := map[string]any{
		"GET /v1/subscriptions":                     subs,
		"GET /v1/private-image-builds":              pbs,
		"GET /v1/private-image-builds/{id}":         pbs[1],
		"GET /v1/private-image-builds/{id}/history": history,
		"GET /v1/private-image-builds/{id}/report":  reportFixtures(t)["report-scanned"],
	}
	if empty {
		answers = map[string]any{
			"GET /v1/subscriptions":        []*subscriptions.Subscription{},
			"GET /v1/private-image-builds": []*privatebuilds.PrivateBuild{},
		}
	}
	return serveAnswers(t, answers)
}

// TestGoldenBuyerListings pins pib subscriptions ls and pib private-images
// ls, show and report.
func TestGoldenBuyerListings(t *testing.T) {
	clientEnv(t)
	full, empty := buyerAPI(t, false), buyerAPI(t, true)
	for _, tc := range []struct {
		name  string
		args  []string
		empty bool
	}{
		{"subscriptions-ls", []string{"subscriptions", "ls"}, false},
		{"private-images-ls", []string{"private-images", "ls"}, false},
		{"private-images-show", []string{"private-images", "show", "b-00000000000000e1"}, false},
		{"private-images-report", []string{"private-images", "report", "b-00000000000000e1"}, false},
		{"subscriptions-ls-empty", []string{"subscriptions", "ls"}, true},
		{"private-images-ls-empty", []string{"private-images", "ls"}, true},
	} {
		hs := full
		if tc.empty {
			hs = empty
		}
		for _, asJSON := range []bool{false, true} {
			name, args := "cli-"+tc.name+".txt", tc.args
			if asJSON {
				name, args = "cli-"+tc.name+".json", append(args[:len(args):len(args)], "--json")
			}
			out, err := run(t, t.TempDir(), append([]string{"--server", hs.URL}, args...)...)
			if err != nil {
				t.Fatalf("pib %v: %v", args, err)
			}
			golden(t, name, out)
		}
	}
}
