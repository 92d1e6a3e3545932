package testenv_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/docker/docker/client"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/berthpaas/berth/internal/testenv"
)

func TestPostgresCreatesAndDropsDatabase(t *testing.T) {
	var (
		dbURL, name string
		db          *sql.DB
	)
	// Closed only after the subtest's cleanup, so the drop has to end the
	// connection the "test" left open.
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	t.Run("use", func(t *testing.T) {
		dbURL = testenv.Postgres(t)
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		name = strings.TrimPrefix(u.Path, "/")
		if !strings.HasPrefix(name, testenv.DatabasePrefix) {
			t.Fatalf("database %q lacks prefix %q", name, testenv.DatabasePrefix)
		}

		db, err = sql.Open("pgx", dbURL)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var current string
		if err := db.QueryRowContext(ctx, "SELECT current_database()").Scan(&current); err != nil {
			t.Fatal(err)
		}
		if current != name {
			t.Fatalf("connected to %q, want %q", current, name)
		}
		var tables int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Fatalf("fresh database has %d tables, want 0", tables)
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE t (id int)"); err != nil {
			t.Fatalf("role cannot create tables in its database: %v", err)
		}
	})
	if t.Failed() || t.Skipped() || name == "" {
		return
	}

	// The subtest's cleanup has run: the database must be gone.
	base := os.Getenv(testenv.PostgresURLEnv)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after the test ended", name)
	}
}

func TestPostgresDatabasesAreDistinct(t *testing.T) {
	a, b := testenv.Postgres(t), testenv.Postgres(t)
	if a == b {
		t.Fatalf("two calls returned the same database %s", a)
	}
}

func TestDockerAnswers(t *testing.T) {
	host := testenv.Docker(t)
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.ServerVersion(context.Background())
	if err != nil {
		t.Fatalf("testenv.Docker returned %q but the engine does not answer: %v", host, err)
	}
	if v.Version == "" {
		t.Fatal("engine reported an empty version")
	}
}
