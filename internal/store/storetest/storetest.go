// Package storetest gives tests a fresh, migrated database on each engine
// pib supports, so one suite runs against both SQLite and PostgreSQL.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/pib-dev/pib/internal/store"
)

// PostgresURL is the server tests use: PIB_TEST_POSTGRES_URL, else the
// PostgreSQL every development and CI machine runs (trust auth, database
// test).
func PostgresURL() string {
	if u := os.Getenv("PIB_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// ForEach runs fn once per engine, each with its own empty, migrated database.
func ForEach(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) { fn(t, Open(t, d)) })
	}
}

// Open returns a fresh migrated database of the given engine, removed when
// the test ends. On PostgreSQL each call gets its own schema, so parallel
// test runs never see each other's rows. If PostgreSQL cannot be reached the
// test fails under CI (CI=true), where it must run, and is skipped elsewhere
// with the reason.
func Open(t testing.TB, d store.Dialect) *store.DB {
	t.Helper()
	ctx := context.Background()
	switch d {
	case store.SQLite:
		db, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "pib.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	case store.Postgres:
		return openPostgres(t)
	}
	t.Fatalf("unknown dialect %q", d)
	return nil
}

func openPostgres(t testing.TB) *store.DB {
	t.Helper()
	ctx := context.Background()
	admin, err := sql.Open("pgx", PostgresURL())
	if err == nil {
		err = admin.PingContext(ctx)
	}
	if err != nil {
		msg := "PostgreSQL at " + PostgresURL() + " is not reachable (" + err.Error() + "); `make test` installs and starts it"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "pibtest_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	u, err := url.Parse(PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := store.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
