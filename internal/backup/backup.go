// Package backup writes and restores an archive of Berth's own state: the
// database (an online SQLite snapshot, or pg_dump of PostgreSQL) and the
// master key that opens the secrets sealed in it.
//
// An archive holds the master key unless the key comes from
// BERTH_MASTER_KEY: treat it like the key itself (it is written 0600).
package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/version"
)

// Archive member names.
const (
	manifestName = "manifest.json"
	sqliteName   = "berth.db"
	pgDumpName   = "berth.sql"
	keyName      = secrets.KeyFileName
)

// Options say where the state is: the server's data directory and
// database URL ("" for the embedded SQLite database in the data directory).
type Options struct {
	DataDir     string
	DatabaseURL string
	// KeyFromEnv: the master key comes from BERTH_MASTER_KEY, so the
	// archive does not carry it.
	KeyFromEnv bool
	// StopServer lets Restore stop a berth server running on the data
	// directory (SIGTERM: it finishes in-flight requests) instead of
	// refusing; Logf says so.
	StopServer bool
	Logf       func(format string, args ...any)
}

// Manifest describes an archive.
type Manifest struct {
	Format        int       `json:"format"` // 1
	CreatedAt     time.Time `json:"created_at"`
	BerthVersion  string    `json:"berth_version"`
	SchemaVersion int       `json:"schema_version"`
	Database      string    `json:"database"` // "sqlite" or "postgres"
	HasKey        bool      `json:"has_key"`
}

func postgres(o Options) bool {
	return strings.HasPrefix(o.DatabaseURL, "postgres://") || strings.HasPrefix(o.DatabaseURL, "postgresql://")
}

// Create writes an archive of the state to w. It runs while the server
// runs: SQLite is copied with VACUUM INTO (a consistent snapshot), and
// pg_dump takes one transaction's view.
func Create(ctx context.Context, o Options, w io.Writer) (Manifest, error) {
	if !postgres(o) {
		if _, err := os.Stat(filepath.Join(o.DataDir, sqliteName)); err != nil {
			return Manifest{}, fmt.Errorf("no Berth database in %s (check --data-dir, or --database-url for PostgreSQL): %w", o.DataDir, err)
		}
	}
	db, err := store.Open(ctx, o.DatabaseURL, o.DataDir)
	if err != nil {
		return Manifest{}, err
	}
	defer db.Close()
	m := Manifest{Format: 1, CreatedAt: time.Now().UTC(), BerthVersion: version.Get().Version, SchemaVersion: store.SchemaVersion(), Database: string(db.Dialect())}

	tmp, err := os.MkdirTemp(o.DataDir, "backup-")
	if err != nil {
		return Manifest{}, fmt.Errorf("backup workspace: %w", err)
	}
	defer os.RemoveAll(tmp)
	var dbFile, dbName string
	if db.Dialect() == store.Postgres {
		dbFile, dbName = filepath.Join(tmp, pgDumpName), pgDumpName
		if _, err := pgTool(ctx, "pg_dump", o.DatabaseURL, "--no-owner", "--no-privileges", "--file", dbFile); err != nil {
			return Manifest{}, err
		}
	} else {
		dbFile, dbName = filepath.Join(tmp, sqliteName), sqliteName
		if err := db.Snapshot(ctx, dbFile); err != nil {
			return Manifest{}, err
		}
	}
	var key []byte
	if !o.KeyFromEnv {
		if key, err = os.ReadFile(filepath.Join(o.DataDir, keyName)); err != nil {
			return Manifest{}, fmt.Errorf("read the master key (without it the archive's secrets cannot be opened): %w", err)
		}
		m.HasKey = true
	}

	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	manifest, _ := json.MarshalIndent(m, "", "  ")
	if err := addBytes(tw, manifestName, manifest); err != nil {
		return Manifest{}, err
	}
	if err := addFile(tw, dbName, dbFile); err != nil {
		return Manifest{}, err
	}
	if key != nil {
		if err := addBytes(tw, keyName, key); err != nil {
			return Manifest{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return Manifest{}, err
	}
	return m, gz.Close()
}

func addBytes(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), ModTime: time.Now()}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func addFile(tw *tar.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: st.Size(), ModTime: st.ModTime()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// Restore replaces the state with the archive read from r. The server must
// be stopped (the data directory's lock is taken). SQLite: the current
// database and key are kept next to them as *.before-restore-<time>.
// PostgreSQL: the archive is loaded into the database at DatabaseURL, which
// must be empty (create a new one, or drop and recreate it, first).
func Restore(ctx context.Context, o Options, r io.Reader) (Manifest, error) {
	release, err := store.LockDataDir(o.DataDir)
	if errors.Is(err, store.ErrDataDirInUse) && o.StopServer {
		release, err = stopServer(o)
	}
	if err != nil {
		return Manifest{}, err
	}
	defer release()
	tmp, err := os.MkdirTemp(o.DataDir, "restore-")
	if err != nil {
		return Manifest{}, fmt.Errorf("restore workspace: %w", err)
	}
	defer os.RemoveAll(tmp)
	m, err := extract(r, tmp)
	if err != nil {
		return Manifest{}, err
	}
	if m.SchemaVersion > store.SchemaVersion() {
		return Manifest{}, fmt.Errorf("the archive is at schema version %d, written by Berth %s; this binary knows versions up to %d: restore with the newer binary", m.SchemaVersion, m.BerthVersion, store.SchemaVersion())
	}
	if want := map[bool]string{true: string(store.Postgres), false: string(store.SQLite)}[postgres(o)]; m.Database != want {
		return Manifest{}, fmt.Errorf("the archive holds a %s database; this server is configured for %s (set --database-url accordingly)", m.Database, want)
	}
	if !m.HasKey && !o.KeyFromEnv {
		return Manifest{}, errors.New("the archive has no master key (it was taken with BERTH_MASTER_KEY set): set BERTH_MASTER_KEY to that key and restore again")
	}
	if postgres(o) {
		if err := restorePostgres(ctx, o, filepath.Join(tmp, pgDumpName)); err != nil {
			return Manifest{}, err
		}
	} else if err := checkSQLite(ctx, tmp); err != nil {
		return Manifest{}, err
	}
	stamp := ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
	if !postgres(o) {
		for _, suffix := range []string{"-wal", "-shm", ""} {
			if err := keepAside(filepath.Join(o.DataDir, sqliteName+suffix), stamp); err != nil {
				return Manifest{}, err
			}
		}
		if err := os.Rename(filepath.Join(tmp, sqliteName), filepath.Join(o.DataDir, sqliteName)); err != nil {
			return Manifest{}, err
		}
	}
	if m.HasKey && !o.KeyFromEnv {
		if err := keepAside(filepath.Join(o.DataDir, keyName), stamp); err != nil {
			return Manifest{}, err
		}
		if err := os.Rename(filepath.Join(tmp, keyName), filepath.Join(o.DataDir, keyName)); err != nil {
			return Manifest{}, err
		}
	}
	return m, nil
}

// stopServer stops the berth server holding the data directory's lock and
// takes the lock once it is gone. Only a process that is a berth server is
// signalled (a pid in a stale lock file may belong to anything by now).
func stopServer(o Options) (func(), error) {
	pid := store.LockHolder(o.DataDir)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(string(cmdline), "\x00")
	if pid <= 0 || err != nil || len(args) < 2 || !strings.HasPrefix(filepath.Base(args[0]), "berth") || !slices.Contains(args, "server") {
		return nil, fmt.Errorf("%s: %w; stop it, then restore", o.DataDir, store.ErrDataDirInUse)
	}
	if o.Logf != nil {
		o.Logf("Stopping berth server (pid %d): it finishes its in-flight requests first.", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil, fmt.Errorf("stop berth server (pid %d): %w", pid, err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		release, err := store.LockDataDir(o.DataDir)
		if !errors.Is(err, store.ErrDataDirInUse) || time.Now().After(deadline) {
			return release, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// extract unpacks the archive's known members into dir and returns its manifest.
func extract(r io.Reader, dir string) (Manifest, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return Manifest{}, fmt.Errorf("not a berth backup (gzip): %w", err)
	}
	tr := tar.NewReader(gz)
	var m Manifest
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return Manifest{}, fmt.Errorf("not a berth backup (tar): %w", err)
		}
		switch h.Name {
		case manifestName, sqliteName, pgDumpName, keyName:
		default:
			return Manifest{}, fmt.Errorf("not a berth backup: unexpected member %q", h.Name)
		}
		if h.Typeflag != tar.TypeReg || seen[h.Name] {
			return Manifest{}, fmt.Errorf("not a berth backup: member %q is not one regular file", h.Name)
		}
		seen[h.Name] = true
		if h.Name == manifestName {
			if err := json.NewDecoder(io.LimitReader(tr, 1<<16)).Decode(&m); err != nil {
				return Manifest{}, fmt.Errorf("manifest: %w", err)
			}
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, h.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return Manifest{}, err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return Manifest{}, err
		}
	}
	if m.Format != 1 {
		return Manifest{}, errors.New("not a berth backup: no manifest of a known format")
	}
	if m.HasKey != seen[keyName] || !seen[sqliteName] && !seen[pgDumpName] {
		return Manifest{}, errors.New("not a berth backup: the manifest does not match its members")
	}
	return m, nil
}

// checkSQLite opens the extracted database (and migrates it to this
// binary's schema) before anything is replaced.
func checkSQLite(ctx context.Context, dir string) error {
	db, err := store.Open(ctx, "", dir)
	if err != nil {
		return fmt.Errorf("the archive's database does not open: %w", err)
	}
	return db.Close()
}

// restorePostgres loads the dump into the database, which must be empty:
// loading over existing tables would mix two states.
func restorePostgres(ctx context.Context, o Options, dump string) error {
	out, err := pgTool(ctx, "psql", o.DatabaseURL, "--no-psqlrc", "--tuples-only", "--no-align",
		"--command", "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()")
	if err != nil {
		return err
	}
	if n := strings.TrimSpace(out); n != "0" {
		return fmt.Errorf("the database at --database-url has %s tables: restore into an empty database (create a new one, or drop and recreate it)", n)
	}
	_, err = pgTool(ctx, "psql", o.DatabaseURL, "--quiet", "--no-psqlrc", "--single-transaction", "--set", "ON_ERROR_STOP=1", "--file", dump)
	return err
}

func keepAside(path, stamp string) error {
	if err := os.Rename(path, path+stamp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// pgTool runs pg_dump or psql on the database at rawURL. The password goes
// in the environment (PGPASSWORD), never on the command line, where other
// users of the machine could read it.
func pgTool(ctx context.Context, tool, rawURL string, args ...string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("database url: %w", err)
	}
	env := os.Environ()
	if pw, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+pw)
		u.User = url.User(u.User.Username())
	}
	if _, err := exec.LookPath(tool); err != nil {
		return "", fmt.Errorf("%s not found: install PostgreSQL's client tools (Debian: apt-get install postgresql-client)", tool)
	}
	cmd := exec.CommandContext(ctx, tool, append([]string{"--dbname", u.String()}, args...)...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", tool, err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}
