package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
)

// Delivery headers. SignatureHeader carries "sha256=" and the hex
// HMAC-SHA256 of the request body keyed with the account's secret.
const (
	SignatureHeader = "X-Pib-Signature"
	DeliveryHeader  = "X-Pib-Delivery"
	EventHeader     = "X-Pib-Event"
)

// ErrInvalid is what a refused webhook URL is (field "url").
var ErrInvalid = problem.New(problem.Invalid, "invalid request")

// badWebhook is an ErrInvalid about the webhook URL; cause, if not nil,
// stays in the chain.
func badWebhook(cause error, format string, args ...any) error {
	e := ErrInvalid.Errorf(format, args...)
	e.Field, e.Err = "url", cause
	return e
}

// Sign returns the signature header value of body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a signature header value in constant time.
func VerifySignature(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// Config configures a Service. Zero values take the defaults named.
type Config struct {
	Timeout     time.Duration // per delivery attempt, default 10s
	MaxAttempts int           // default 12 (about 3 hours of backoff)
	Backoff     time.Duration // first retry delay, doubled each time (default 5s, capped at 1h)
	// HTTPClient delivers (default Client(AllowPrivate)).
	HTTPClient *http.Client
	// AllowPrivate lets webhook URLs name internal addresses
	// (pib serve --webhook-allow-private); off, Set refuses them (C6).
	AllowPrivate bool

	Logger *slog.Logger
	Now    func() time.Time // injectable clock
}

// Service stores accounts' webhooks and delivers events to them.
type Service struct {
	db  *store.DB
	cfg Config
	log *slog.Logger
}

// New returns the webhooks stored in db.
func New(db *store.DB, cfg Config) *Service {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 12
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 5 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = Client(cfg.AllowPrivate)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{db: db, cfg: cfg, log: cfg.Logger}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Set registers (or replaces) accountID's webhook URL and returns the new
// signing secret, shown this once.
func (s *Service) Set(ctx context.Context, accountID, rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", badWebhook(nil, "webhook URL %q: give an absolute http:// or https:// URL without credentials", rawURL)
	}
	if err := s.checkHost(ctx, u.Hostname()); err != nil {
		return "", err
	}
	secret := "whsec_" + randomHex(32)
	now := s.now()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhooks SET url = $2, secret = $3, created_at = $4 WHERE account_id = $1`, accountID, u.String(), secret, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO webhooks (account_id, url, secret, created_at) VALUES ($1, $2, $3, $4)`, accountID, u.String(), secret, now)
		return err
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// URL returns accountID's webhook URL ("" when none).
func (s *Service) URL(ctx context.Context, accountID string) (string, error) {
	var u string
	err := s.db.QueryRowContext(ctx, `SELECT url FROM webhooks WHERE account_id = $1`, accountID).Scan(&u)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return u, err
}

// Delete removes accountID's webhook; pending deliveries are dropped.
func (s *Service) Delete(ctx context.Context, accountID string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM webhooks WHERE account_id = $1`, accountID)
	return err
}

// Delivery is one webhook delivery and how it went.
type Delivery struct {
	ID         string     `json:"id"`
	Event      string     `json:"event"`
	Created    time.Time  `json:"created"`
	Attempts   int        `json:"attempts"`
	LastStatus int        `json:"last_status,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	Delivered  *time.Time `json:"delivered,omitempty"`
}

// Deliveries lists accountID's latest deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, accountID string, limit int) ([]Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, event, created_at, attempts, last_status, last_error, delivered_at
		FROM webhook_deliveries WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`, accountID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Delivery{}
	for rows.Next() {
		var d Delivery
		var delivered sql.NullTime
		if err := rows.Scan(&d.ID, &d.Event, &d.Created, &d.Attempts, &d.LastStatus, &d.LastError, &delivered); err != nil {
			return nil, err
		}
		d.Created = d.Created.UTC()
		if delivered.Valid {
			t := delivered.Time.UTC()
			d.Delivered = &t
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Jobs inserts River jobs in a transaction: the River client of the
// database the transaction belongs to (*river.Client[*sql.Tx]).
type Jobs interface {
	InsertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

// Enqueue queues a delivery of event to account's webhook, if it has one,
// in tx, with its job inserted through jobs: the delivery is committed, or
// rolled back, with what it reports. body makes the payload from the
// delivery's ID and time; it is not called when the account has no webhook.
func (s *Service) Enqueue(ctx context.Context, tx *sql.Tx, jobs Jobs, account, event string, body func(id string, at time.Time) ([]byte, error)) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM webhooks WHERE account_id = $1`, account).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	id, now := "whd-"+randomHex(8), s.now()
	payload, err := body(id, now)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, account_id, event, payload, created_at) VALUES ($1, $2, $3, $4, $5)`,
		id, account, event, string(payload), now); err != nil {
		return err
	}
	_, err = jobs.InsertTx(ctx, tx, Args{DeliveryID: id}, &river.InsertOpts{Queue: Queue, MaxAttempts: s.cfg.MaxAttempts})
	return err
}

// Queue is the River queue deliveries run in.
const Queue = "webhooks"

// Args is the River job that delivers one event.
type Args struct {
	DeliveryID string `json:"delivery_id"`
}

// Kind implements river.JobArgs.
func (Args) Kind() string { return "pib_webhook" }

// Register adds the delivery worker and its queue to the configuration of
// a River client that works jobs (rc.Workers and rc.Queues set).
func (s *Service) Register(rc *river.Config) {
	river.AddWorker(rc.Workers, &worker{s: s})
	rc.Queues[Queue] = river.QueueConfig{MaxWorkers: 4}
}

type worker struct {
	river.WorkerDefaults[Args]
	s *Service
}

func (w *worker) Timeout(*river.Job[Args]) time.Duration {
	return w.s.cfg.Timeout + 30*time.Second
}

// NextRetry backs off exponentially from Backoff, capped at an hour, with
// jitter so a recovering endpoint is not hit all at once.
func (w *worker) NextRetry(job *river.Job[Args]) time.Time {
	d := w.s.cfg.Backoff
	for i := 1; i < job.Attempt && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	d += time.Duration(mrand.Int64N(int64(d)/10 + 1))
	return time.Now().Add(d)
}

func (w *worker) Work(ctx context.Context, job *river.Job[Args]) error {
	return w.s.deliver(ctx, job.Args.DeliveryID)
}

// deliver POSTs one delivery; an error makes River retry it later.
func (s *Service) deliver(ctx context.Context, id string) error {
	var account, event, payload, target, secret string
	err := s.db.QueryRowContext(ctx, `SELECT d.account_id, d.event, d.payload, w.url, w.secret
		FROM webhook_deliveries d JOIN webhooks w ON w.account_id = d.account_id WHERE d.id = $1 AND d.delivered_at IS NULL`, id).
		Scan(&account, &event, &payload, &target, &secret)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // delivered already, or the webhook was removed
	}
	if err != nil {
		return err
	}
	status, sendErr := s.post(ctx, target, secret, id, event, []byte(payload))
	now := s.now()
	var delivered any
	msg := ""
	if sendErr == nil {
		delivered = now
	} else {
		msg = sendErr.Error()
	}
	if _, err := s.db.ExecContext(context.WithoutCancel(ctx), `UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3, delivered_at = $4 WHERE id = $1`,
		id, status, msg, delivered); err != nil {
		s.log.Warn("record a webhook delivery", "delivery", id, "err", err)
	}
	if sendErr != nil {
		s.log.Info("webhook delivery failed; River retries it", "delivery", id, "account", account, "err", sendErr)
	}
	return sendErr
}

func (s *Service) post(ctx context.Context, target, secret, id, event string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pib-webhooks")
	req.Header.Set(SignatureHeader, Sign(secret, body))
	req.Header.Set(DeliveryHeader, id)
	req.Header.Set(EventHeader, event)
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, deliveryError(target, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("POST %s: status %s", target, resp.Status)
	}
	return resp.StatusCode, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
