package accounts_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pib-dev/pib/internal/accounts"
	"github.com/pib-dev/pib/internal/store"
	"github.com/pib-dev/pib/internal/store/storetest"
)

func TestAccounts(t *testing.T) {
	storetest.ForEach(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := accounts.NewStore(db)
		a, token, err := s.Create(ctx, "acme", accounts.Seller)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Authenticate(ctx, token)
		if err != nil || got.ID != a.ID || got.Role != accounts.Seller {
			t.Fatalf("authenticate: %+v %v", got, err)
		}
		// The token is stored only as a hash.
		var stored string
		db.QueryRowContext(ctx, `SELECT token_hash FROM accounts WHERE id = $1`, a.ID).Scan(&stored)
		if stored == token || strings.Contains(stored, token[4:]) {
			t.Fatal("token stored in clear")
		}
		for _, bad := range []string{"", "pib_nope", token + "x", "Bearer " + token} {
			if _, err := s.Authenticate(ctx, bad); !errors.Is(err, accounts.ErrUnauthenticated) {
				t.Errorf("token %q: %v, want ErrUnauthenticated", bad, err)
			}
		}
		if _, _, err := s.Create(ctx, "acme", accounts.Buyer); !errors.Is(err, accounts.ErrNameTaken) {
			t.Errorf("duplicate name: %v", err)
		}
		if _, _, err := s.Create(ctx, "x", "admin"); err == nil {
			t.Error("unknown role accepted")
		}

		file := filepath.Join(t.TempDir(), "operator.token")
		if err := s.EnsureOperator(ctx, file); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(file)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("token file: %v %v", fi, err)
		}
		op, _ := os.ReadFile(file)
		if acc, err := s.Authenticate(ctx, strings.TrimSpace(string(op))); err != nil || acc.Role != accounts.Operator {
			t.Fatalf("operator token: %+v %v", acc, err)
		}
		// A second start changes nothing.
		if err := s.EnsureOperator(ctx, file); err != nil {
			t.Fatal(err)
		}
		op2, _ := os.ReadFile(file)
		if string(op2) != string(op) {
			t.Fatal("operator token rewritten on the second start")
		}
	})
}
