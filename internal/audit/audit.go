// Package audit is pib's audit log (SPEC, roles and isolation): every
// state-changing API request and every operator read of another account's
// data, one row each, with time, account, role, action, object, result and
// request ID.
//
// The log is append-only: this package only inserts and reads rows, and no
// other package writes the table. The API records a request after it has
// been answered, so a request whose row cannot be written (database down)
// is answered but not logged; the API logs that failure with the request
// ID. Unauthenticated requests are not recorded: they change nothing, and
// recording them would let anyone fill the log.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/pib-dev/pib/internal/store"
)

// Entry is one audit row.
type Entry struct {
	ID          string    `json:"id"`
	At          time.Time `json:"at"`
	RequestID   string    `json:"request_id"`
	AccountID   string    `json:"account_id"`
	AccountName string    `json:"account_name"`
	Role        string    `json:"role"`
	// Action is the method and route pattern, e.g. "GET /v1/builds/{id}/report".
	Action string `json:"action"`
	// Object is the ID in the path or of the created object; empty for lists.
	Object string `json:"object,omitempty"`
	// Owner is the account owning Object, when the API knows it.
	Owner string `json:"owner,omitempty"`
	// Result is the HTTP status of the answer.
	Result int `json:"result"`
}

// Filter selects entries for List. Zero fields select everything.
type Filter struct {
	// Account is an account ID (acc-…) or name: entries made by it.
	Account string
	// Since keeps entries at or after this time.
	Since time.Time
	// Limit caps the number of entries (default and maximum MaxLimit).
	Limit int
}

// MaxLimit is the most entries one List returns.
const MaxLimit = 1000

// Log is the audit log in the metadata database.
type Log struct {
	db  *store.DB
	now func() time.Time
}

// New returns the audit log of db.
func New(db *store.DB) *Log {
	return &Log{db: db, now: func() time.Time { return time.Now().UTC() }}
}

// Record appends e, setting its ID and, when zero, its time.
func (l *Log) Record(ctx context.Context, e Entry) error {
	if e.At.IsZero() {
		e.At = l.now()
	}
	e.At = e.At.UTC()
	b := make([]byte, 4)
	rand.Read(b)
	e.ID = fmt.Sprintf("au-%016x%s", e.At.UnixNano(), hex.EncodeToString(b))
	_, err := l.db.ExecContext(ctx, `INSERT INTO audit (id, at, request_id, account_id, account_name, role, action, object, owner, result)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.ID, e.At, e.RequestID, e.AccountID, e.AccountName, e.Role, e.Action, e.Object, e.Owner, e.Result)
	if err != nil {
		return fmt.Errorf("record audit entry %s %s: %w", e.Action, e.Object, err)
	}
	return nil
}

// List returns the entries f selects, newest first.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	if f.Limit <= 0 || f.Limit > MaxLimit {
		f.Limit = MaxLimit
	}
	q := `SELECT id, at, request_id, account_id, account_name, role, action, object, owner, result FROM audit WHERE 1 = 1`
	var args []any
	if f.Account != "" {
		args = append(args, f.Account)
		q += fmt.Sprintf(` AND (account_id = $%d OR account_name = $%[1]d)`, len(args))
	}
	if !f.Since.IsZero() {
		args = append(args, f.Since.UTC())
		q += fmt.Sprintf(` AND at >= $%d`, len(args))
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(` ORDER BY at DESC, id DESC LIMIT $%d`, len(args))
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.ID, &e.At, &e.RequestID, &e.AccountID, &e.AccountName, &e.Role, &e.Action, &e.Object, &e.Owner, &e.Result); err != nil {
			return nil, fmt.Errorf("list audit entries: %w", err)
		}
		e.At = e.At.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}
