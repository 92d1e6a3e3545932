// Package store owns Berth's persistent state: one database/sql query layer and
// one migration set that serve both the embedded SQLite default and PostgreSQL.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	// ErrNotFound is returned when a row does not exist (or is not visible to the caller).
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a unique constraint is violated.
	ErrConflict = errors.New("already exists")
)

// Dialect names the SQL engine behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is the state store.
type DB struct {
	sql     *sql.DB
	dialect Dialect
}

// Open connects to PostgreSQL when databaseURL is a postgres:// URL, and otherwise
// to the SQLite file berth.db in dataDir, then applies pending migrations.
func Open(ctx context.Context, databaseURL, dataDir string) (*DB, error) {
	db, err := open(databaseURL, dataDir)
	if err != nil {
		return nil, err
	}
	if err := db.sql.PingContext(ctx); err != nil {
		db.sql.Close()
		return nil, fmt.Errorf("connect to %s database: %w", db.dialect, err)
	}
	if err := db.migrate(ctx); err != nil {
		db.sql.Close()
		return nil, err
	}
	return db, nil
}

func open(databaseURL, dataDir string) (*DB, error) {
	switch {
	case strings.HasPrefix(databaseURL, "postgres://"), strings.HasPrefix(databaseURL, "postgresql://"):
		s, err := sql.Open("pgx", databaseURL)
		if err != nil {
			return nil, fmt.Errorf("database url: %w", err)
		}
		s.SetMaxOpenConns(10)
		s.SetMaxIdleConns(2)
		s.SetConnMaxIdleTime(5 * time.Minute)
		return &DB{sql: s, dialect: Postgres}, nil
	case databaseURL != "":
		return nil, errors.New("database url: only postgres:// URLs are supported; leave it empty for the embedded SQLite database")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dataDir, "berth.db")
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	s, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// One writer at a time is SQLite's model; a small pool keeps readers concurrent.
	s.SetMaxOpenConns(4)
	s.SetMaxIdleConns(2)
	return &DB{sql: s, dialect: SQLite}, nil
}

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.sql.PingContext(ctx) }

// Dialect reports which engine the store runs on.
func (db *DB) Dialect() Dialect { return db.dialect }

// querier is what both *sql.DB and *sql.Tx offer; q wraps one and rewrites the
// portable ? placeholders for PostgreSQL.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type q struct {
	db      querier
	dialect Dialect
}

func (db *DB) q() q { return q{db.sql, db.dialect} }

func (x q) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := x.db.ExecContext(ctx, x.rebind(query), args...)
	return res, mapErr(err)
}

func (x q) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := x.db.QueryContext(ctx, x.rebind(query), args...)
	return rows, mapErr(err)
}

func (x q) row(ctx context.Context, query string, args ...any) *sql.Row {
	return x.db.QueryRowContext(ctx, x.rebind(query), args...)
}

// execOne runs a statement that must change exactly one row.
func (x q) execOne(ctx context.Context, query string, args ...any) error {
	res, err := x.exec(ctx, query, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func (x q) rebind(query string) string {
	if x.dialect != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// inTx runs fn in a transaction, committing when it returns nil.
func (db *DB) inTx(ctx context.Context, fn func(q) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(q{tx, db.dialect}); err != nil {
		tx.Rollback()
		return err
	}
	return mapErr(tx.Commit())
}

// mapErr turns driver errors into the store's sentinel errors.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" {
		return fmt.Errorf("%w: %s", ErrConflict, pg.ConstraintName)
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		switch lite.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %s", ErrConflict, lite.Error())
		}
	}
	return err
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a random identifier such as "usr_4fk3…" (80 bits of entropy).
func NewID(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + "_" + idEncoding.EncodeToString(b)
}

// millis and fromMillis convert times to the stored Unix-millisecond form.
func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func nullMillis(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromNullMillis(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMillis(n.Int64)
	return &t
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// SQL is the connection pool, for the job queue, which keeps its own tables
// in the same database.
func (db *DB) SQL() *sql.DB { return db.sql }

// Snapshot writes a consistent copy of the SQLite database to path (which
// must not exist), while the database stays in use.
func (db *DB) Snapshot(ctx context.Context, path string) error {
	if db.dialect != SQLite {
		return fmt.Errorf("snapshot: only for SQLite; use pg_dump for PostgreSQL")
	}
	if _, err := db.sql.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("snapshot the database: %w", err)
	}
	return nil
}
