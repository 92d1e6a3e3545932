package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrSchemaTooNew is returned when the database was migrated by a newer Berth.
var ErrSchemaTooNew = errors.New("database schema is newer than this Berth")

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and _", e.Name())
		}
		body, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// SchemaVersion is the newest migration this binary knows.
func SchemaVersion() int {
	ms, _ := migrations()
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := db.q().exec(ctx, `CREATE TABLE IF NOT EXISTS berth_schema (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema table: %w", err)
	}
	current, err := db.schemaVersion(ctx)
	if err != nil {
		return err
	}
	if known := ms[len(ms)-1].version; current > known {
		return fmt.Errorf("%w: the database is at schema version %d, written by a newer Berth; this binary knows versions up to %d. Run the newer berth binary (or restore a backup taken before the upgrade)", ErrSchemaTooNew, current, known)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		err := db.inTx(ctx, func(x q) error {
			if db.dialect == Postgres {
				// Serialises concurrent starts against the same database.
				if _, err := x.exec(ctx, `SELECT pg_advisory_xact_lock(4242001)`); err != nil {
					return err
				}
			}
			var done int
			if err := x.row(ctx, `SELECT COUNT(*) FROM berth_schema WHERE version = ?`, m.version).Scan(&done); err != nil || done > 0 {
				return err
			}
			if _, err := x.exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := x.exec(ctx, `INSERT INTO berth_schema (version, applied_at) VALUES (?, ?)`, m.version, millis(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

func (db *DB) schemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := db.q().row(ctx, `SELECT COALESCE(MAX(version), 0) FROM berth_schema`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
