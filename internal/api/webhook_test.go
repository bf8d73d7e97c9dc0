package api_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/api"
	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/webhook"
)

// Rule C6 through the API: PUT /v1/webhook answers 400 for an internal
// address, literal or by name, says "internal address refused" and the
// reason, and never the address a name resolved to.
func TestWebhookInternalAddressRefused(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	e := newEnvWith(t, db, func(d *api.Deps) {
		hooks := webhook.New(db, webhook.Config{})
		p, err := pipeline.New(context.Background(), db, pipeline.Config{Workers: -1, Groups: d.Groups, OSVersions: d.OSVersions, Webhooks: hooks})
		if err != nil {
			t.Fatal(err)
		}
		d.Pipeline, d.Builds, d.Webhooks = p, p.Reader(), hooks
	})
	seller := e.account("acme", accounts.Seller)
	for _, tc := range []struct{ url, reason string }{
		{"http://100.64.0.1/hook", "shared address space (RFC 6598)"},
		{"http://192.0.0.1/hook", "RFC 7335"},
		{"http://198.18.0.1/hook", "benchmarking (RFC 2544)"},
		{"http://0.0.0.1/hook", "this network"},
		{"http://240.0.0.1/hook", "reserved (RFC 1112 §4)"},
		{"http://255.255.255.255/hook", "limited broadcast"},
		{"http://[64:ff9b::7f00:1]/hook", "IPv4-IPv6 translation (RFC 6052) embedding loopback"},
		{"http://[64:ff9b:1::1]/hook", "RFC 8215"},
		{"http://[2002:c0a8:101::1]/hook", "6to4 (RFC 3056) embedding private-use (RFC 1918)"},
		{"http://[2001:0:808:808::f5ff:fffe]/hook", "Teredo (RFC 4380) embedding private-use (RFC 1918)"},
		{"http://localhost:9/hook", "loopback"},
	} {
		var apiErr problem.Error
		code := e.json("PUT", "/v1/webhook", seller, map[string]string{"url": tc.url}, &apiErr)
		if code != 400 || apiErr.Field != "url" || !strings.HasPrefix(apiErr.Message, "internal address refused") || !strings.Contains(apiErr.Message, tc.reason) {
			t.Errorf("PUT /v1/webhook %s: %d %+v, want 400 internal address refused: %s", tc.url, code, apiErr, tc.reason)
		}
		if strings.Contains(apiErr.Message, "127.0.0.1") || strings.Contains(apiErr.Message, "::1") {
			t.Errorf("PUT /v1/webhook %s: %q names the resolved address", tc.url, apiErr.Message)
		}
	}
	var wh struct{ URL, Secret string }
	if code := e.json("GET", "/v1/webhook", seller, nil, &wh); code != 200 || wh.URL != "" {
		t.Fatalf("after refusals the webhook is %d %+v", code, wh)
	}
	if code := e.json("PUT", "/v1/webhook", seller, map[string]string{"url": "https://8.8.8.8/hook"}, &wh); code != 200 || wh.Secret == "" {
		t.Fatalf("a public address: %d %+v", code, wh)
	}
}
