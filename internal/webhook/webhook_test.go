package webhook_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
	"github.com/pib-dev/pib/internal/webhook"
)

var quiet = slog.New(slog.DiscardHandler)

// testConfig has short delays; test endpoints listen on loopback.
func testConfig() webhook.Config {
	return webhook.Config{Timeout: 2 * time.Second, Backoff: 100 * time.Millisecond, AllowPrivate: true, Logger: quiet}
}

func account(t *testing.T, db *store.DB, name string) string {
	t.Helper()
	a, _, err := accounts.NewStore(db).Create(context.Background(), name, accounts.Seller)
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// startJobs runs a River client that works webhook deliveries, as the
// pipeline's does, and returns it for Enqueue.
func startJobs(t *testing.T, db *store.DB, s *webhook.Service) *river.Client[*sql.Tx] {
	t.Helper()
	ctx := context.Background()
	var driver riverdriver.Driver[*sql.Tx] = riverdatabasesql.New(db.DB)
	if db.Dialect == store.SQLite {
		driver = riversqlite.New(db.DB)
	}
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		t.Fatal(err)
	}
	rc := &river.Config{Logger: quiet, FetchPollInterval: 50 * time.Millisecond, FetchCooldown: 50 * time.Millisecond,
		Workers: river.NewWorkers(), Queues: map[string]river.QueueConfig{}}
	s.Register(rc)
	c, err := river.NewClient(driver, rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.StopAndCancel(ctx)
	})
	return c
}

// enqueue queues one "test.event" delivery to account in its own
// transaction, which fails with fail when it is not nil.
func enqueue(t *testing.T, db *store.DB, s *webhook.Service, jobs webhook.Jobs, account string, fail error) error {
	t.Helper()
	ctx := context.Background()
	return db.Tx(ctx, func(tx *sql.Tx) error {
		err := s.Enqueue(ctx, tx, jobs, account, "test.event", func(id string, at time.Time) ([]byte, error) {
			return json.Marshal(map[string]any{"delivery_id": id, "at": at})
		})
		if err != nil {
			return err
		}
		return fail
	})
}

// waitDeliveries waits until ok holds for account's deliveries.
func waitDeliveries(t *testing.T, s *webhook.Service, account string, ok func([]webhook.Delivery) bool) []webhook.Delivery {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ds, err := s.Deliveries(context.Background(), account, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ok(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries did not reach the wanted state: %+v", ds)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hookServer records signed deliveries; it fails the first failFirst
// requests of each delivery with a 500.
type hookServer struct {
	mu        sync.Mutex
	secret    string
	failFirst int
	tries     map[string]int
	bodies    []map[string]any
	bad       []string
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !webhook.VerifySignature(h.secret, body, r.Header.Get(webhook.SignatureHeader)) || r.Header.Get("Content-Type") != "application/json" ||
		r.Header.Get(webhook.EventHeader) != "test.event" {
		h.bad = append(h.bad, r.Header.Get(webhook.SignatureHeader)+" "+r.Header.Get("Content-Type")+" "+r.Header.Get(webhook.EventHeader))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	id := r.Header.Get(webhook.DeliveryHeader)
	h.tries[id]++
	if h.tries[id] <= h.failFirst {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	var b map[string]any
	if err := json.Unmarshal(body, &b); err != nil || b["delivery_id"] != id {
		h.bad = append(h.bad, string(body))
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	h.bodies = append(h.bodies, b)
}

func TestSignature(t *testing.T) {
	body := []byte(`{"event":"build.state_changed"}`)
	sig := webhook.Sign("whsec_1", body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("Sign = %q, want sha256=<64 hex digits>", sig)
	}
	if !webhook.VerifySignature("whsec_1", body, sig) {
		t.Error("a signature does not verify")
	}
	if webhook.VerifySignature("whsec_2", body, sig) || webhook.VerifySignature("whsec_1", append(body, ' '), sig) {
		t.Error("a signature verifies under another secret or body")
	}
}

// A delivery is signed, retried with backoff while the endpoint fails, and
// recorded with its attempts.
func TestDeliveryRetried(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		acc := account(t, db, "seller")
		s := webhook.New(db, testConfig())
		jobs := startJobs(t, db, s)
		hook := &hookServer{failFirst: 2, tries: map[string]int{}}
		srv := httptest.NewServer(hook)
		defer srv.Close()
		if _, err := s.Set(ctx, acc, "ftp://example.com/x"); !errors.Is(err, webhook.ErrInvalid) {
			t.Errorf("Set with an ftp URL: %v", err)
		}
		if _, err := s.Set(ctx, acc, "http://user:pw@example.com/x"); !errors.Is(err, webhook.ErrInvalid) {
			t.Errorf("Set with credentials: %v", err)
		}
		secret, err := s.Set(ctx, acc, srv.URL+"/hook")
		if err != nil || !strings.HasPrefix(secret, "whsec_") {
			t.Fatalf("Set = %q, %v", secret, err)
		}
		if u, err := s.URL(ctx, acc); err != nil || u != srv.URL+"/hook" {
			t.Fatalf("URL = %q, %v", u, err)
		}
		hook.mu.Lock()
		hook.secret = secret
		hook.mu.Unlock()

		if err := enqueue(t, db, s, jobs, acc, nil); err != nil {
			t.Fatal(err)
		}
		ds := waitDeliveries(t, s, acc, func(ds []webhook.Delivery) bool { return len(ds) == 1 && ds[0].Delivered != nil })
		if d := ds[0]; d.Attempts != 3 || d.LastStatus != http.StatusOK || d.LastError != "" || d.Event != "test.event" || !strings.HasPrefix(d.ID, "whd-") {
			t.Errorf("delivery %+v: want delivered on attempt 3 with 200", d)
		}
		hook.mu.Lock()
		defer hook.mu.Unlock()
		if len(hook.bad) != 0 || len(hook.bodies) != 1 || hook.bodies[0]["delivery_id"] != ds[0].ID {
			t.Errorf("endpoint got bodies %v, refused %q", hook.bodies, hook.bad)
		}
	})
}

// A delivery is queued with the transaction that reports the change: a
// rolled-back transaction leaves none, and an account without a webhook
// gets none (its payload is not even made).
func TestEnqueueInTransaction(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		with, without := account(t, db, "with"), account(t, db, "without")
		s := webhook.New(db, testConfig())
		jobs := startJobs(t, db, s)
		if _, err := s.Set(ctx, with, "https://8.8.8.8/hook"); err != nil {
			t.Fatal(err)
		}
		rollback := errors.New("the state change failed")
		if err := enqueue(t, db, s, jobs, with, rollback); !errors.Is(err, rollback) {
			t.Fatalf("enqueue in a failing transaction: %v", err)
		}
		if ds, err := s.Deliveries(ctx, with, 0); err != nil || len(ds) != 0 {
			t.Errorf("after a rollback: %+v, %v; want no delivery", ds, err)
		}
		var jobsLeft int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM river_job WHERE kind = $1`, webhook.Args{}.Kind()).Scan(&jobsLeft); err != nil || jobsLeft != 0 {
			t.Errorf("after a rollback: %d delivery jobs, %v; want none", jobsLeft, err)
		}
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			return s.Enqueue(ctx, tx, jobs, without, "test.event", func(string, time.Time) ([]byte, error) {
				t.Error("the payload was made for an account without a webhook")
				return nil, nil
			})
		})
		if ds, _ := s.Deliveries(ctx, without, 0); err != nil || len(ds) != 0 {
			t.Errorf("an account without a webhook: %+v, %v; want no delivery", ds, err)
		}

		if err := s.Delete(ctx, with); err != nil {
			t.Fatal(err)
		}
		if u, err := s.URL(ctx, with); err != nil || u != "" {
			t.Errorf("after Delete: URL = %q, %v", u, err)
		}
	})
}
