// Package accounts holds pib's accounts and their API tokens.
//
// A token is shown once, when it is made, and stored only as its SHA-256:
// a leaked database does not leak working tokens. Tokens carry 256 random
// bits, so a plain hash (no salt, no slow KDF) is enough and lets every
// request be authenticated with one indexed lookup.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pib-dev/pib/internal/problem"
	"github.com/pib-dev/pib/internal/store"
)

// Role is what an account may do (SPEC: roles and isolation).
type Role string

const (
	Seller   Role = "seller"
	Buyer    Role = "buyer"
	Operator Role = "operator"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == Seller || r == Buyer || r == Operator }

// Account is one account.
type Account struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Created time.Time `json:"created"`
}

// Errors callers test with errors.Is.
var (
	ErrUnauthenticated = problem.New(problem.Unauthenticated, "unknown API token")
	ErrNameTaken       = &problem.Error{Code: problem.Conflict, Field: "name", Message: "account name is taken"}
)

// Store keeps accounts in the metadata database.
type Store struct {
	db  *store.DB
	now func() time.Time
}

// NewStore returns an account store.
func NewStore(db *store.DB) *Store {
	return &Store{db: db, now: func() time.Time { return time.Now().UTC() }}
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// NewToken returns a fresh random token.
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "pib_" + base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "acc-" + hex.EncodeToString(b)
}

// Create makes an account and returns it with its token, which is not
// stored and cannot be shown again.
func (s *Store) Create(ctx context.Context, name string, role Role) (*Account, string, error) {
	if !namePattern.MatchString(name) {
		return nil, "", &problem.Error{Code: problem.Invalid, Field: "name", Message: fmt.Sprintf("account name %q: use 1–63 lower-case letters, digits, '_' or '-'", name)}
	}
	if !role.Valid() {
		return nil, "", &problem.Error{Code: problem.Invalid, Field: "role", Message: fmt.Sprintf("role %q: use seller, buyer or operator", role)}
	}
	return s.createWithToken(ctx, name, role, nil)
}

// Authenticate returns the account a token belongs to.
func (s *Store) Authenticate(ctx context.Context, token string) (*Account, error) {
	if !strings.HasPrefix(token, "pib_") {
		return nil, ErrUnauthenticated
	}
	var a Account
	var role string
	err := s.db.QueryRowContext(ctx, `SELECT id, name, role, created_at FROM accounts WHERE token_hash = $1`, hashToken(token)).
		Scan(&a.ID, &a.Name, &role, &a.Created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	a.Role = Role(role)
	return &a, nil
}

// List returns all accounts by name.
func (s *Store) List(ctx context.Context) ([]*Account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, role, created_at FROM accounts ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Account
	for rows.Next() {
		var a Account
		var role string
		if err := rows.Scan(&a.ID, &a.Name, &role, &a.Created); err != nil {
			return nil, err
		}
		a.Role = Role(role)
		out = append(out, &a)
	}
	return out, rows.Err()
}

// OperatorName is the account pib creates on first start.
const OperatorName = "operator"

// EnsureOperator creates the operator account the first time pib starts
// and writes its token to tokenFile (mode 0600). Later starts do nothing.
func (s *Store) EnsureOperator(ctx context.Context, tokenFile string) error {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts WHERE role = $1`, string(Operator)).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	// Write the file first: a token that never reached the disk would lock
	// the operator out.
	if err := os.MkdirAll(filepath.Dir(tokenFile), 0o700); err != nil {
		return err
	}
	_, _, err := s.createWithToken(ctx, OperatorName, Operator, func(token string) error {
		return writeSecret(tokenFile, token+"\n")
	})
	if errors.Is(err, ErrNameTaken) {
		return nil // another process won the race
	}
	if err != nil {
		return fmt.Errorf("create the operator account: %w", err)
	}
	slog.Info("created the operator account; its API token is in the token file", "file", tokenFile)
	return nil
}

// createWithToken creates an account, calling keep with the token before
// the account is committed; an error from keep aborts the creation.
func (s *Store) createWithToken(ctx context.Context, name string, role Role, keep func(string) error) (*Account, string, error) {
	a := &Account{ID: newID(), Name: name, Role: role, Created: s.now()}
	token := NewToken()
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
			a.ID, a.Name, string(a.Role), hashToken(token), a.Created); err != nil {
			return err
		}
		if keep == nil {
			return nil
		}
		return keep(token)
	})
	if err = store.Classify(err); errors.Is(err, store.ErrConflict) {
		return nil, "", ErrNameTaken.Errorf("account name is taken: %q", name)
	}
	return a, token, err
}

func writeSecret(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
