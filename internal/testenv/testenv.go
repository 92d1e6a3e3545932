// Package testenv gives tests the real services they run against — a Docker
// Engine, a PostgreSQL server — or skips them when a service is missing. With
// CI=true a missing service fails the test instead, so CI cannot go green by
// skipping.
//
// Environment:
//
//	CI=true                  fail instead of skip when a service is unavailable
//	DOCKER_HOST              Docker Engine to use (default: the local socket)
//	BERTH_TEST_POSTGRES_URL  PostgreSQL URL of a role with CREATEDB, e.g.
//	                         postgres://berth:berth@127.0.0.1:5432/berth_test?sslmode=disable
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// PostgresURLEnv names the variable holding the PostgreSQL server URL.
const PostgresURLEnv = "BERTH_TEST_POSTGRES_URL"

// DatabasePrefix starts the name of every database Postgres creates.
const DatabasePrefix = "berth_t_"

// probeTimeout bounds each reachability check, so an absent service costs a
// test seconds, not minutes.
const probeTimeout = 5 * time.Second

// unavailable skips the test, or fails it when CI=true.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: not skipping)", args...)
	}
	t.Skipf(format, args...)
}

// Docker returns the Docker Engine address the test should use: DOCKER_HOST,
// or "" for the local default. It skips the test (fails it under CI=true) when
// the engine does not answer.
func Docker(t testing.TB) string {
	t.Helper()
	host := os.Getenv("DOCKER_HOST")
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		unavailable(t, "docker client (DOCKER_HOST=%q): %v", host, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		unavailable(t, "docker engine unreachable at %s (start dockerd, e.g. scripts/deps.sh): %v", c.DaemonHost(), err)
	}
	return host
}

// Postgres creates a fresh, empty database for the test on the server named by
// BERTH_TEST_POSTGRES_URL and returns its URL; the database is dropped when
// the test ends. It skips the test (fails it under CI=true) when the variable
// is unset or the server does not answer.
func Postgres(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresURLEnv)
	if base == "" {
		unavailable(t, "%s is not set (scripts/deps.sh prepares postgres://berth:berth@127.0.0.1:5432/berth_test?sslmode=disable)", PostgresURLEnv)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// A malformed URL is a configuration mistake, never a reason to skip.
		t.Fatalf("%s: want postgres://user:password@host:port/db, got %q", PostgresURLEnv, redact(base))
	}

	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open %s: %v", redact(base), err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		unavailable(t, "postgres unreachable at %s: %v", redact(base), err)
	}

	name := DatabasePrefix + randomHex(8)
	// The name is generated from [a-z0-9_], so quoting it is enough.
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("create test database %s (the role needs CREATEDB): %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", base)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer db.Close()
		// FORCE ends connections the test left open (PostgreSQL 13+).
		if _, err := db.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})

	dbURL := *u
	dbURL.Path = "/" + name
	dbURL.RawPath = ""
	return dbURL.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b)
}

// redact hides the password of a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparseable: show no more than the scheme.
		if i := strings.Index(raw, "://"); i >= 0 {
			return raw[:i+3] + "…"
		}
		return "…"
	}
	return u.Redacted()
}

// TestRegistry is the private registry test/registry/start.sh runs, with the
// image it pushes there.
type TestRegistry struct {
	Server, Username, Password string
	Image                      string // a copy of berth-fixture/hello:v1
}

// Registry returns the private test registry. It skips the test (fails it
// under CI=true) when the registry does not accept its credentials.
func Registry(t testing.TB) TestRegistry {
	t.Helper()
	r := TestRegistry{Server: "127.0.0.1:5000", Username: "berth", Password: "berth-registry-pw", Image: "127.0.0.1:5000/berth/hello:v1"}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Server+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(r.Username, r.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		unavailable(t, "test registry unreachable at %s (run test/registry/start.sh): %v", r.Server, err)
		return r
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		unavailable(t, "test registry at %s answered %s with the test credentials (run test/registry/start.sh)", r.Server, resp.Status)
	}
	return r
}

// BuildStepCached reports whether a build log shows the step whose line
// contains step as taken from the cache: BuildKit's steps print in it as
// "#5 [gen 2/2] RUN …" and then "#5 CACHED", wherever a line starts (the
// CLI puts "| " before each).
func BuildStepCached(log, step string) bool {
	for _, l := range strings.Split(log, "\n") {
		_, l, _ = strings.Cut(l, "#")
		n, rest, _ := strings.Cut(l, " ")
		if n != "" && strings.HasPrefix(rest, "[") && strings.Contains(rest, step) {
			return regexp.MustCompile(`(?m)#` + regexp.QuoteMeta(n) + ` CACHED$`).MatchString(log)
		}
	}
	return false
}

// Processes lists the processes on this machine whose command line (its
// arguments joined by spaces) contains cmd: the steps of builds on a local
// Docker Engine, which BuildKit runs without a container of the engine.
func Processes(cmd string) []int {
	var pids []int
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), cmd) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}
