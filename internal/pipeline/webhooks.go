package pipeline

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/riverqueue/river"
)

// Webhook delivery headers. SignatureHeader carries "sha256=" and the hex
// HMAC-SHA256 of the request body keyed with the account's secret.
const (
	SignatureHeader = "X-Pib-Signature"
	DeliveryHeader  = "X-Pib-Delivery"
	EventHeader     = "X-Pib-Event"
	EventBuildState = "build.state_changed"
)

// WebhookEvent is the JSON body of a delivery.
type WebhookEvent struct {
	DeliveryID string       `json:"delivery_id"`
	Event      string       `json:"event"`
	At         time.Time    `json:"at"`
	Reason     string       `json:"reason"`
	Group      WebhookGroup `json:"group"`
	Build      *Build       `json:"build"`
}

// WebhookGroup is the group part of a delivery.
type WebhookGroup struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State State  `json:"state"`
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

// SetWebhook registers (or replaces) accountID's webhook URL and returns
// the new signing secret, shown this once.
func (p *Pipeline) SetWebhook(ctx context.Context, accountID, rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return "", badWebhook(nil, "webhook URL %q: give an absolute http:// or https:// URL without credentials", rawURL)
	}
	if err := p.checkWebhookHost(ctx, u.Hostname()); err != nil {
		return "", err
	}
	b := make([]byte, 32)
	rand.Read(b)
	secret := "whsec_" + hex.EncodeToString(b)
	now := p.now()
	err = p.db.Tx(ctx, func(tx *sql.Tx) error {
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

// Webhook returns accountID's webhook URL ("" when none).
func (p *Pipeline) Webhook(ctx context.Context, accountID string) (string, error) {
	var u string
	err := p.db.QueryRowContext(ctx, `SELECT url FROM webhooks WHERE account_id = $1`, accountID).Scan(&u)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return u, err
}

// DeleteWebhook removes accountID's webhook; pending deliveries are dropped.
func (p *Pipeline) DeleteWebhook(ctx context.Context, accountID string) error {
	_, err := p.db.ExecContext(ctx, `DELETE FROM webhooks WHERE account_id = $1`, accountID)
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
func (p *Pipeline) Deliveries(ctx context.Context, accountID string, limit int) ([]Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := p.db.QueryContext(ctx, `SELECT id, event, created_at, attempts, last_status, last_error, delivered_at
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
		d.Delivered = nullTime(delivered)
		out = append(out, d)
	}
	return out, rows.Err()
}

// notify queues a delivery of build b's state change to its owner's
// webhook, if the owner has one, in tx.
func (p *Pipeline) notify(ctx context.Context, tx *sql.Tx, groupID, groupName, owner string, b *Build, groupState State, reason string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM webhooks WHERE account_id = $1`, owner).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	now := p.now()
	ev := WebhookEvent{DeliveryID: newID("whd-"), Event: EventBuildState, At: now, Reason: reason,
		Group: WebhookGroup{ID: groupID, Name: groupName, State: groupState}, Build: b}
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (id, account_id, event, payload, created_at) VALUES ($1, $2, $3, $4, $5)`,
		ev.DeliveryID, owner, ev.Event, string(body), now); err != nil {
		return err
	}
	_, err = p.client.InsertTx(ctx, tx, WebhookArgs{DeliveryID: ev.DeliveryID},
		&river.InsertOpts{Queue: queueWebhooks, MaxAttempts: p.cfg.WebhookMaxAttempts})
	return err
}

// WebhookArgs is the River job that delivers one webhook event.
type WebhookArgs struct {
	DeliveryID string `json:"delivery_id"`
}

// Kind implements river.JobArgs.
func (WebhookArgs) Kind() string { return "pib_webhook" }

type webhookWorker struct {
	river.WorkerDefaults[WebhookArgs]
	p *Pipeline
}

func (w *webhookWorker) Timeout(*river.Job[WebhookArgs]) time.Duration {
	return w.p.cfg.WebhookTimeout + 30*time.Second
}

// NextRetry backs off exponentially from WebhookBackoff, capped at an
// hour, with jitter so a recovering endpoint is not hit all at once.
func (w *webhookWorker) NextRetry(job *river.Job[WebhookArgs]) time.Time {
	d := w.p.cfg.WebhookBackoff
	for i := 1; i < job.Attempt && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	d += time.Duration(mrand.Int64N(int64(d)/10 + 1))
	return time.Now().Add(d)
}

func (w *webhookWorker) Work(ctx context.Context, job *river.Job[WebhookArgs]) error {
	return w.p.deliver(ctx, job.Args.DeliveryID)
}

// deliver POSTs one delivery; an error makes River retry it later.
func (p *Pipeline) deliver(ctx context.Context, id string) error {
	var account, event, payload, target, secret string
	err := p.db.QueryRowContext(ctx, `SELECT d.account_id, d.event, d.payload, w.url, w.secret
		FROM webhook_deliveries d JOIN webhooks w ON w.account_id = d.account_id WHERE d.id = $1 AND d.delivered_at IS NULL`, id).
		Scan(&account, &event, &payload, &target, &secret)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // delivered already, or the webhook was removed
	}
	if err != nil {
		return err
	}
	status, sendErr := p.post(ctx, target, secret, id, event, []byte(payload))
	now := p.now()
	var delivered any
	msg := ""
	if sendErr == nil {
		delivered = now
	} else {
		msg = sendErr.Error()
	}
	if _, err := p.db.ExecContext(context.WithoutCancel(ctx), `UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3, delivered_at = $4 WHERE id = $1`,
		id, status, msg, delivered); err != nil {
		p.log.Warn("record a webhook delivery", "delivery", id, "err", err)
	}
	if sendErr != nil {
		p.log.Info("webhook delivery failed; River retries it", "delivery", id, "account", account, "err", sendErr)
	}
	return sendErr
}

func (p *Pipeline) post(ctx context.Context, target, secret, id, event string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.WebhookTimeout)
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
	resp, err := p.cfg.HTTPClient.Do(req)
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
