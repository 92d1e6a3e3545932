package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
)

// engines runs a test once per database engine: the conformance suite every
// query must pass on both.
func engines(t *testing.T, fn func(t *testing.T, db *DB)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, openTest(t, "", t.TempDir()))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, openTest(t, testenv.Postgres(t), ""))
	})
}

func openTest(t *testing.T, url, dir string) *DB {
	t.Helper()
	db, err := Open(context.Background(), url, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func owner(t *testing.T, db *DB) (Organization, User) {
	t.Helper()
	org, u := Organization{Name: "Acme"}, User{Email: "Owner@Example.com", Name: "Olive", PasswordHash: "hash"}
	if err := db.CompleteSetup(context.Background(), time.Now(), &org, &u); err != nil {
		t.Fatal(err)
	}
	return org, u
}

func TestSetupRunsOnce(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		if done, err := db.SetupDone(ctx); err != nil || done {
			t.Fatalf("fresh database: done=%v err=%v", done, err)
		}
		// Concurrent setups: exactly one wins.
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				errs[i] = db.CompleteSetup(ctx, time.Now(), &Organization{Name: "o"}, &User{Email: "u" + string(rune('a'+i)) + "@example.com", PasswordHash: "h"})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrSetupDone) && !isBusy(err):
				t.Errorf("losing setup: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d setups succeeded, want exactly 1 (%v)", won, errs)
		}
		if done, _ := db.SetupDone(ctx); !done {
			t.Fatal("setup not recorded")
		}
	})
}

// isBusy tolerates SQLite refusing a concurrent writer outright; what matters
// is that no second owner is ever created.
func isBusy(err error) bool { return strings.Contains(err.Error(), "SQLITE_BUSY") }

func TestAccounts(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, u := owner(t, db)
		got, err := db.UserByEmail(ctx, "OWNER@example.COM")
		if err != nil || got.ID != u.ID || got.Email != "owner@example.com" || got.Name != "Olive" {
			t.Fatalf("UserByEmail = %+v, %v", got, err)
		}
		if !got.CreatedAt.Equal(u.CreatedAt.Truncate(time.Millisecond)) {
			t.Errorf("created_at round trip: %s vs %s", got.CreatedAt, u.CreatedAt)
		}
		if _, err := db.UserByEmail(ctx, "nobody@example.com"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing user: %v", err)
		}
		ms, err := db.Memberships(ctx, u.ID)
		if err != nil || len(ms) != 1 || ms[0].Organization.ID != org.ID || ms[0].Role != RoleOwner {
			t.Fatalf("Memberships = %+v, %v", ms, err)
		}
		if _, err := db.Membership(ctx, "org_other", u.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("membership in another org: %v", err)
		}
		var clusters int
		db.q().row(ctx, `SELECT COUNT(*) FROM clusters WHERE name = 'local'`).Scan(&clusters)
		if clusters != 1 {
			t.Errorf("the local cluster must exist from the first migration")
		}
	})
}

func TestSessionsAndPasswordChange(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, u := owner(t, db)
		now := time.Now().UTC().Truncate(time.Millisecond)
		for _, h := range []string{"a", "b", "c"} {
			s := Session{IDHash: h, UserID: u.ID, OrganizationID: org.ID, CSRFToken: "csrf-" + h, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour), ClientIP: "127.0.0.1", UserAgent: "test"}
			if err := db.CreateSession(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.CreateSession(ctx, Session{IDHash: "a", UserID: u.ID, OrganizationID: org.ID}); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate session id: %v", err)
		}
		s, err := db.SessionByHash(ctx, "b")
		if err != nil || s.CSRFToken != "csrf-b" || !s.ExpiresAt.Equal(now.Add(time.Hour)) {
			t.Fatalf("SessionByHash = %+v, %v", s, err)
		}
		if err := db.TouchSession(ctx, "b", now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if r, err := db.SetPassword(ctx, now, u.ID, "new-hash", Keep{SessionHash: "a"}); err != nil || r.Sessions != 2 {
			t.Fatalf("SetPassword = %+v, %v; want 2 sessions ended", r, err)
		}
		if _, err := db.SessionByHash(ctx, "a"); err != nil {
			t.Errorf("kept session: %v", err)
		}
		for _, h := range []string{"b", "c"} {
			if _, err := db.SessionByHash(ctx, h); !errors.Is(err, ErrNotFound) {
				t.Errorf("session %s survived the password change: %v", h, err)
			}
		}
		if got, _ := db.UserByID(ctx, u.ID); got.PasswordHash != "new-hash" {
			t.Errorf("password hash = %q", got.PasswordHash)
		}
		n, err := db.DeleteExpiredSessions(ctx, now.Add(2*time.Hour), 24*time.Hour)
		if err != nil || n != 1 {
			t.Errorf("DeleteExpiredSessions = %d, %v; want 1", n, err)
		}
	})
}

func TestTokensScoped(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		org, u := owner(t, db)
		now := time.Now()
		exp := now.Add(time.Hour).UTC().Truncate(time.Millisecond)
		tok := APIToken{OrganizationID: org.ID, UserID: u.ID, Name: "ci", Hash: "h1", Prefix: "berth_abc", CreatedAt: now, ExpiresAt: &exp}
		if err := db.CreateToken(ctx, &tok); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateToken(ctx, &APIToken{OrganizationID: org.ID, UserID: u.ID, Name: "dup", Hash: "h1"}); !errors.Is(err, ErrConflict) {
			t.Errorf("duplicate hash: %v", err)
		}
		got, err := db.TokenByHash(ctx, "h1")
		if err != nil || got.ID != tok.ID || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || got.LastUsedAt != nil {
			t.Fatalf("TokenByHash = %+v, %v", got, err)
		}
		db.TouchToken(ctx, tok.ID, time.Now())
		other := Scope{OrganizationID: org.ID, UserID: "usr_other"}
		if list, _ := db.Tokens(ctx, other); len(list) != 0 {
			t.Errorf("another user sees %d tokens", len(list))
		}
		if err := db.RevokeToken(ctx, now, other, tok.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("another user revoked the token: %v", err)
		}
		mine := Scope{OrganizationID: org.ID, UserID: u.ID}
		list, err := db.Tokens(ctx, mine)
		if err != nil || len(list) != 1 || list[0].LastUsedAt == nil {
			t.Fatalf("Tokens = %+v, %v", list, err)
		}
		if err := db.RevokeToken(ctx, now, mine, tok.ID); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeToken(ctx, now, mine, tok.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("second revoke: %v", err)
		}
		if list, _ := db.Tokens(ctx, mine); len(list) != 0 {
			t.Errorf("revoked token still listed")
		}
		if got, _ := db.TokenByHash(ctx, "h1"); got.RevokedAt == nil {
			t.Errorf("revoked_at not set")
		}
	})
}

func TestMigrations(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		// Re-running migrations on an up-to-date database changes nothing.
		if err := db.migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if v, _ := db.schemaVersion(ctx); v != SchemaVersion() {
			t.Fatalf("schema version %d, want %d", v, SchemaVersion())
		}
		// A database written by a newer Berth is refused with a clear message.
		if _, err := db.q().exec(ctx, `INSERT INTO berth_schema (version, applied_at) VALUES (?, 0)`, SchemaVersion()+5); err != nil {
			t.Fatal(err)
		}
		err := db.migrate(ctx)
		if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "newer Berth") {
			t.Fatalf("newer schema: %v", err)
		}
	})
}

func TestOpenRejectsOtherURLs(t *testing.T) {
	_, err := Open(context.Background(), "mysql://x", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "postgres://") {
		t.Fatalf("Open(mysql://) = %v", err)
	}
}

func TestSQLiteFileAndWAL(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, "", dir)
	var mode string
	if err := db.sql.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	var timeout int
	db.sql.QueryRow(`PRAGMA busy_timeout`).Scan(&timeout)
	if timeout < 5000 {
		t.Errorf("busy_timeout = %d", timeout)
	}
}

func TestInstallIDIsStable(t *testing.T) {
	engines(t, func(t *testing.T, db *DB) {
		a, err := db.InstallID(context.Background())
		if err != nil || !strings.HasPrefix(a, "ins_") {
			t.Fatalf("InstallID = %q, %v", a, err)
		}
		if b, _ := db.InstallID(context.Background()); b != a {
			t.Fatalf("InstallID changed from %s to %s", a, b)
		}
	})
}
