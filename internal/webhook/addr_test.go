package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pib-dev/pib/internal/specialaddr"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/webhook"
)

// internalURLs name each range the webhook policy once missed, and the
// ones it always refused, as literal addresses and as a host name.
var internalURLs = []string{
	"http://100.64.0.1/hook",
	"http://100.127.255.255/hook",
	"http://192.0.0.1/hook",
	"http://198.18.0.1/hook",
	"http://198.19.255.255/hook",
	"http://0.1.2.3/hook",
	"http://240.0.0.1/hook",
	"http://255.255.255.255/hook",
	"http://127.0.0.1:8080/hook",
	"http://169.254.169.254/latest/meta-data/",
	"http://[::1]/hook",
	"http://[::ffff:10.0.0.1]/hook",
	"http://[64:ff9b::a00:1]/hook",            // NAT64 of 10.0.0.1
	"http://[64:ff9b:1::808:808]/hook",        // local-use NAT64
	"http://[2002:a9fe:a9fe::1]/hook",         // 6to4 of 169.254.169.254
	"http://[2001:0:808:808::f5ff:fffe]/hook", // Teredo, client 10.0.0.1
	"http://[fe80::1%25eth0]/hook",
	"http://localhost:8080/hook", // a name that resolves to loopback
}

// Rule C6: PUT /v1/webhook refuses an internal address before anything is
// stored, and says why without naming the address.
func TestWebhookRefusedAtRegistration(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		seller := account(t, db, "seller")
		cfg := testConfig()
		cfg.AllowPrivate = false
		s := webhook.New(db, cfg)
		for _, u := range internalURLs {
			_, err := s.Set(ctx, seller, u)
			if !errors.Is(err, webhook.ErrInvalid) || !errors.Is(err, specialaddr.ErrRefused) {
				t.Errorf("Set(%s) = %v, want internal address refused", u, err)
				continue
			}
			if msg := err.Error(); strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "::1") || !strings.Contains(msg, "C6") {
				t.Errorf("Set(%s): %q names the resolved address or not the rule", u, msg)
			}
			if got, _ := s.URL(ctx, seller); got != "" {
				t.Fatalf("after refusing %s the webhook is %q", u, got)
			}
		}
		if _, err := s.Set(ctx, seller, "http://no-such-host.invalid/hook"); !errors.Is(err, webhook.ErrInvalid) || !strings.Contains(err.Error(), "does not resolve") {
			t.Errorf("unresolvable host: %v", err)
		}
		// Public literals, including those just outside a refused range,
		// are taken (nothing is dialled at registration).
		for _, u := range []string{"http://8.8.8.8/hook", "https://100.128.0.0/hook", "http://198.20.0.1/", "http://[2606:4700:4700::1111]/hook", "http://[2002:808:808::1]/hook"} {
			if _, err := s.Set(ctx, seller, u); err != nil {
				t.Errorf("Set(%s) = %v, want it accepted", u, err)
			}
		}

		// pib serve --webhook-allow-private keeps today's escape hatch.
		cfg.AllowPrivate = true
		if _, err := webhook.New(db, cfg).Set(ctx, seller, "http://127.0.0.1:8080/hook"); err != nil {
			t.Errorf("with AllowPrivate: %v", err)
		}
	})
}

// Rule C6 at dial time: the address actually dialled is checked again, so
// a name that resolved to a public address at registration and to an
// internal one later (DNS rebinding) is still refused.
func TestWebhookClientRefusesAtDial(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	for _, u := range append(internalURLs, srv.URL) {
		_, err := webhook.Client(false).Get(u)
		if !errors.Is(err, specialaddr.ErrRefused) {
			t.Errorf("GET %s: %v, want internal address refused", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the loopback endpoint was reached %d times", hits.Load())
	}
	resp, err := webhook.Client(true).Get(srv.URL)
	if err != nil {
		t.Fatalf("with allowPrivate: %v", err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Fatalf("with allowPrivate the endpoint got %d requests, want 1", hits.Load())
	}
}

// A delivery refused at dial time records "internal address refused" and
// not the address the name resolved to.
func TestWebhookDeliveryRefusedWithoutAddress(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		seller := account(t, db, "seller")
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
		defer srv.Close()
		cfg := testConfig()
		cfg.AllowPrivate = true                // registration lets it through, as a rebinding name would pass
		cfg.HTTPClient = webhook.Client(false) // delivery does not
		s := webhook.New(db, cfg)
		jobs := startJobs(t, db, s)
		hook := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/hook"
		if _, err := s.Set(ctx, seller, hook); err != nil {
			t.Fatal(err)
		}
		if err := enqueue(t, db, s, jobs, seller, nil); err != nil {
			t.Fatal(err)
		}
		ds := waitDeliveries(t, s, seller, func(ds []webhook.Delivery) bool { return len(ds) == 1 && ds[0].Attempts > 0 })
		d := ds[0]
		if d.Delivered != nil || !strings.Contains(d.LastError, "internal address refused") || !strings.Contains(d.LastError, "loopback") {
			t.Fatalf("delivery %+v, want internal address refused (loopback)", d)
		}
		if strings.Contains(d.LastError, "127.0.0.1") || strings.Contains(d.LastError, "[::1]") {
			t.Fatalf("delivery error %q names the resolved address", d.LastError)
		}
		if hits.Load() != 0 {
			t.Fatalf("the loopback endpoint was reached %d times", hits.Load())
		}
	})
}
