package pipeline_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pib-dev/pib/internal/pipeline"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/webhook"
)

// hookServer records signed deliveries; it fails the first failFirst
// requests of each delivery with a 500.
type hookServer struct {
	mu        sync.Mutex
	secret    string
	failFirst int
	tries     map[string]int
	events    []pipeline.WebhookEvent
	badSig    int
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !webhook.VerifySignature(h.secret, body, r.Header.Get(webhook.SignatureHeader)) || r.Header.Get("Content-Type") != "application/json" {
		h.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	id := r.Header.Get(webhook.DeliveryHeader)
	h.tries[id]++
	if h.tries[id] <= h.failFirst {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	var ev pipeline.WebhookEvent
	if err := json.Unmarshal(body, &ev); err != nil || ev.DeliveryID != id {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	h.events = append(h.events, ev)
}

func (h *hookServer) states(buildID string) []pipeline.State {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []pipeline.State
	for _, ev := range h.events {
		if ev.Build.ID == buildID {
			out = append(out, ev.Build.State)
		}
	}
	return out
}

func TestWebhooks(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seed(t, db, t.TempDir())
		hook := &hookServer{failFirst: 2, tries: map[string]int{}}
		srv := httptest.NewServer(hook)
		defer srv.Close()
		cfg := testConfig(t, e, okBuilder, okScanner)
		p := start(t, db, cfg)

		secret, err := cfg.Webhooks.Set(ctx, e.seller, srv.URL+"/hook")
		if err != nil || !strings.HasPrefix(secret, "whsec_") {
			t.Fatalf("Webhooks.Set = %q, %v", secret, err)
		}
		hook.mu.Lock()
		hook.secret = secret
		hook.mu.Unlock()

		bs, err := p.Submit(ctx, e.seller, e.group.ID)
		if err != nil {
			t.Fatal(err)
		}
		waitEnded(t, p, e.seller, e.group.ID, 20*time.Second)
		// Each delivery fails twice and is retried with backoff.
		want := "Building,Scanning,Successful"
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := hook.states(bs[0].ID)
			if len(got) == 3 {
				var s []string
				for _, st := range got {
					s = append(s, string(st))
				}
				// Retries may reorder deliveries; every state arrives once.
				for _, w := range strings.Split(want, ",") {
					if !strings.Contains(","+strings.Join(s, ",")+",", ","+w+",") {
						t.Errorf("deliveries for %s: %v, want %s", bs[0].ID, s, want)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("deliveries for %s: %v, want %s", bs[0].ID, got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
		hook.mu.Lock()
		if hook.badSig != 0 {
			t.Errorf("%d deliveries with a bad signature", hook.badSig)
		}
		for _, ev := range hook.events {
			if ev.Group.ID != e.group.ID || ev.Group.Name != e.group.Name || ev.Event != pipeline.EventBuildState || ev.Reason == "" {
				t.Errorf("event %+v", ev)
			}
		}
		hook.mu.Unlock()
		ds, err := cfg.Webhooks.Deliveries(ctx, e.seller, 0)
		if err != nil || len(ds) == 0 {
			t.Fatalf("Deliveries = %v, %v", ds, err)
		}
		for _, d := range ds {
			if d.Delivered != nil && d.Attempts != 3 {
				t.Errorf("delivery %+v: delivered after %d attempts, want 3", d, d.Attempts)
			}
		}
	})
}

// A dead endpoint never holds builds up: they end while deliveries keep
// failing and waiting for their next try.
func TestWebhookFailingEndpointDoesNotBlockBuilds(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := seed(t, db, t.TempDir())
		release := make(chan struct{})
		slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select { // hangs past the delivery timeout, then fails
			case <-release:
			case <-r.Context().Done():
			}
			http.Error(w, "down", http.StatusBadGateway)
		})
		srv := httptest.NewServer(slow)
		defer srv.Close()
		defer close(release)
		cfg := testConfig(t, e, okBuilder, okScanner)
		hooks := webhookConfig()
		hooks.Timeout = 300 * time.Millisecond
		cfg.Webhooks = webhook.New(db, hooks)
		p := start(t, db, cfg)
		if _, err := cfg.Webhooks.Set(ctx, e.seller, srv.URL); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Submit(ctx, e.seller, e.group.ID); err != nil {
			t.Fatal(err)
		}
		bs := waitEnded(t, p, e.seller, e.group.ID, 20*time.Second)
		if got := pipeline.GroupState(bs); got != pipeline.Successful {
			t.Fatalf("group %q, want Successful", got)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			ds, err := cfg.Webhooks.Deliveries(ctx, e.seller, 0)
			if err != nil {
				t.Fatal(err)
			}
			retried := 0
			for _, d := range ds {
				if d.Delivered != nil {
					t.Fatalf("delivery %+v marked delivered by a failing endpoint", d)
				}
				if d.Attempts >= 2 && d.LastError != "" {
					retried++
				}
			}
			if retried > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no delivery was retried: %+v", ds)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
