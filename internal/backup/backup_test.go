package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/testenv"
)

// state creates an organization and a project, and seals a value with the
// data directory's key.
func state(t *testing.T, o Options) (string, string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, o.DatabaseURL, o.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	org, u := store.Organization{Name: "Acme"}, store.User{Email: "o@example.com", PasswordHash: "x"}
	if err := db.CompleteSetup(ctx, time.Now(), &org, &u); err != nil {
		t.Fatal(err)
	}
	addProject(t, o, org.ID, "kept")
	keys, err := secrets.Load(o.DataDir, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := keys.Seal([]byte("s3cret"), "test")
	if err != nil {
		t.Fatal(err)
	}
	return org.ID, sealed
}

func addProject(t *testing.T, o Options, orgID, name string) {
	t.Helper()
	db, err := store.Open(context.Background(), o.DatabaseURL, o.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CreateProject(context.Background(), time.Now(), &store.Project{OrganizationID: orgID, Name: name}, &store.Environment{Network: "n-" + name}); err != nil {
		t.Fatal(err)
	}
}

func projects(t *testing.T, o Options, orgID string) string {
	t.Helper()
	db, err := store.Open(context.Background(), o.DatabaseURL, o.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ps, err := db.Projects(context.Background(), orgID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return strings.Join(names, ",")
}

// roundTrip: back up, change the state (and the key file), restore, and the
// state and the key are those of the backup.
func roundTrip(t *testing.T, o, into Options) {
	ctx := context.Background()
	orgID, sealed := state(t, o)
	var archive bytes.Buffer
	m, err := Create(ctx, o, &archive)
	if err != nil {
		t.Fatal(err)
	}
	if !m.HasKey || m.SchemaVersion != store.SchemaVersion() {
		t.Errorf("manifest %+v", m)
	}
	if into.DataDir == o.DataDir {
		addProject(t, o, orgID, "after")
		if err := os.WriteFile(filepath.Join(o.DataDir, secrets.KeyFileName), bytes.Repeat([]byte{7}, secrets.KeySize), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Restore(ctx, into, bytes.NewReader(archive.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := projects(t, into, orgID); got != "kept" {
		t.Errorf("projects after restore: %q, want only the one backed up", got)
	}
	keys, err := secrets.Load(into.DataDir, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if v, err := keys.Open(sealed, "test"); err != nil || string(v) != "s3cret" {
		t.Errorf("a secret sealed before the backup does not open after the restore: %v", err)
	}
}

func TestSQLiteBackupRestore(t *testing.T) {
	dir := t.TempDir()
	roundTrip(t, Options{DataDir: dir}, Options{DataDir: dir})
	if kept, _ := filepath.Glob(filepath.Join(dir, "berth.db.before-restore-*")); len(kept) != 1 {
		t.Errorf("the replaced database was not kept aside: %v", kept)
	}
}

func TestPostgresBackupRestoreIntoEmptyDatabase(t *testing.T) {
	from, into := Options{DataDir: t.TempDir(), DatabaseURL: testenv.Postgres(t)}, Options{DataDir: t.TempDir(), DatabaseURL: testenv.Postgres(t)}
	roundTrip(t, from, into)
	// A database that is not empty is refused, and left as it was.
	var archive bytes.Buffer
	if _, err := Create(context.Background(), from, &archive); err != nil {
		t.Fatal(err)
	}
	_, err := Restore(context.Background(), into, &archive)
	if err == nil || !strings.Contains(err.Error(), "empty database") {
		t.Errorf("restore into a database with tables: %v", err)
	}
}

func TestRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	state(t, Options{DataDir: dir})
	var archive bytes.Buffer
	if _, err := Create(ctx, Options{DataDir: dir}, &archive); err != nil {
		t.Fatal(err)
	}
	release, err := store.LockDataDir(dir) // as a running server does
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, Options{DataDir: dir}, bytes.NewReader(archive.Bytes())); !errors.Is(err, store.ErrDataDirInUse) {
		t.Errorf("restore while the server runs: %v", err)
	}
	release()
	if _, err := Restore(ctx, Options{DataDir: dir, DatabaseURL: "postgres://x@127.0.0.1/x"}, bytes.NewReader(archive.Bytes())); err == nil || !strings.Contains(err.Error(), "sqlite") {
		t.Errorf("a SQLite archive restored into PostgreSQL: %v", err)
	}
	if _, err := Restore(ctx, Options{DataDir: dir}, strings.NewReader("not an archive")); err == nil || !strings.Contains(err.Error(), "not a berth backup") {
		t.Errorf("garbage: %v", err)
	}
}
