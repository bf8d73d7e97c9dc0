// Package store opens pib's metadata database and keeps its schema current.
//
// Two engines sit behind one database/sql handle: SQLite (pure Go,
// modernc.org/sqlite) for a single machine, PostgreSQL (pgx) when several
// machines share one service. Queries are written once, in the subset both
// understand: $N placeholders, TEXT/BIGINT/BOOLEAN/TIMESTAMP columns, times
// always in UTC. Migrations are embedded, numbered SQL files applied at open.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/pib-dev/pib/internal/problem"
)

// Dialect names the database engine behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is the metadata database. It embeds *sql.DB so callers use the
// standard API; Dialect is there for the rare statement that must differ.
type DB struct {
	*sql.DB
	Dialect Dialect
	// URL is the address it was opened with (without secrets for SQLite,
	// as given for PostgreSQL), for components such as the job queue that
	// need their own driver over the same database.
	URL string
}

// Errors callers test with errors.Is. Constraint violations from either
// engine are turned into ErrConflict in one place (Classify). Both are
// problem errors, so one a domain package does not translate into its own
// (groups' N2, accounts.ErrNameTaken…) still answers 404 or 409, not 500.
var (
	ErrNotFound = problem.New(problem.NotFound, "not found")
	ErrConflict = problem.New(problem.Conflict, "conflict with data already stored")
)

//go:embed migrations/*.sql
var migrations embed.FS

// Open connects to the database named by rawURL and applies any pending
// migrations. rawURL is "sqlite:///path/to/pib.db" (or "sqlite://relative.db")
// or a "postgres://" / "postgresql://" URL understood by pgx.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	db, err := open(rawURL)
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func open(rawURL string) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite://"):
		path := strings.TrimPrefix(rawURL, "sqlite://")
		if path == "" {
			return nil, fmt.Errorf("database URL %q names no file; use sqlite:///path/to/pib.db", rawURL)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create database directory: %w", err)
		}
		if err := ownerOnly(path); err != nil {
			return nil, err
		}
		// WAL lets readers run beside the writer; busy_timeout waits out
		// short write locks instead of failing; immediate transactions take
		// the write lock up front so two writers never deadlock on upgrade.
		q := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		sdb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
		}
		// One connection: SQLite serialises writers anyway, and a single
		// connection makes SQLITE_BUSY impossible within this process.
		sdb.SetMaxOpenConns(1)
		return &DB{DB: sdb, Dialect: SQLite, URL: rawURL}, nil
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		pdb, err := sql.Open("pgx", rawURL)
		if err != nil {
			return nil, fmt.Errorf("open postgres database: %w", err)
		}
		pdb.SetMaxOpenConns(20)
		pdb.SetConnMaxIdleTime(5 * time.Minute)
		return &DB{DB: pdb, Dialect: Postgres, URL: rawURL}, nil
	default:
		return nil, fmt.Errorf("database URL %q: want postgres://… or sqlite:///path (or leave --database-url empty for SQLite in the data directory)", redact(rawURL))
	}
}

// migrate applies the embedded migrations. On PostgreSQL a session lock
// makes concurrent starts (several `pib worker`s) take turns.
func (db *DB) migrate(ctx context.Context) error {
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to %s database: %w; check --database-url", db.Dialect, err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	// Out-of-order: migrations written in parallel may land in any order.
	opts := []goose.ProviderOption{goose.WithAllowOutofOrder(true)}
	dialect := goose.DialectSQLite3
	if db.Dialect == Postgres {
		dialect = goose.DialectPostgres
		// One lock per schema, so databases in different schemas (tests,
		// tenants) migrate without waiting for each other.
		var schema string
		if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return fmt.Errorf("read current schema: %w", err)
		}
		h := fnv.New64a()
		h.Write([]byte("pib-migrate:" + schema))
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 600))
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.DB, fsys, opts...)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s database: %w", db.Dialect, err)
	}
	return nil
}

// Classify turns engine-specific constraint violations into ErrConflict and
// sql.ErrNoRows into ErrNotFound, keeping the original error in the chain.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", ErrConflict, err)
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// Tx runs fn in a transaction, committing when it returns nil.
func (db *DB) Tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ownerOnly creates the SQLite database file readable by its owner only,
// or takes group and other access away from an existing one: it holds
// every seller's logs and reports and the webhook secrets. SQLite gives
// the -wal and -shm files it makes the database file's mode.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open sqlite database %s: %w; check the data directory's owner and permissions", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := f.Chmod(fi.Mode().Perm() &^ 0o077); err != nil {
		return fmt.Errorf("make %s readable by its owner only: %w", path, err)
	}
	slog.Warn("took group and other access away from the database file", "file", path, "was", fi.Mode().Perm())
	for _, side := range []string{path + "-wal", path + "-shm"} {
		if sfi, err := os.Stat(side); err == nil && sfi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(side, sfi.Mode().Perm()&^0o077); err != nil {
				return fmt.Errorf("make %s readable by its owner only: %w", side, err)
			}
		}
	}
	return nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
