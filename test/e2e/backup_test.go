package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
)

// TestBackupRestoreWhileRunning is the line as written:
// `berth backup --output berth-backup.tar.gz && berth restore berth-backup.tar.gz`
// next to a running server. Restore stops it (SIGTERM), replaces the state,
// and the server started again serves what the backup held.
func TestBackupRestoreWhileRunning(t *testing.T) {
	testenv.Docker(t)
	dir := filepath.Join(t.TempDir(), "data")
	port := testenv.FreePort(t)
	s := startServerAt(t, "127.0.0.1", port, "BERTH_DATA_DIR="+dir)
	waitFor(t, 20*time.Second, func() bool { return status(t, s.URL+"/readyz", "") == 200 })
	cfg := filepath.Join(t.TempDir(), "cli.json")
	pass := "e2e-Passphrase-" + fmt.Sprint(time.Now().UnixNano())
	run := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := cli(t, cfg, stdin, args...)
		if err != nil {
			t.Fatalf("berth %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out, errOut
	}
	run(pass+"\n", "setup", "--server", s.URL, "--email", "admin@example.com", "--password-stdin")
	run(pass+"\n", "login", "--server", s.URL, "--email", "admin@example.com", "--password-stdin")
	// Registry credentials: state that lives only in the database.
	run("s3cret\n", "registry", "add", "kept", "kept.example.test", "--username", "u", "--password-stdin")

	archive := filepath.Join(t.TempDir(), "berth-backup.tar.gz")
	_, msg := run("", "backup", "--output", archive, "--data-dir", dir)
	if !strings.Contains(msg, "with the master key") {
		t.Errorf("backup said %q", msg)
	}
	run("s3cret\n", "registry", "add", "later", "later.example.test", "--username", "u", "--password-stdin")

	out, errOut := run("", "restore", archive, "--data-dir", dir)
	if !strings.Contains(errOut, "Stopping berth server (pid") || !strings.Contains(out, "Restored the sqlite database") {
		t.Errorf("restore next to a running server said:\n%s%s", out, errOut)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the server still runs after the restore")
	}

	s = startServerAt(t, "127.0.0.1", port, "BERTH_DATA_DIR="+dir)
	waitFor(t, 20*time.Second, func() bool { return status(t, s.URL+"/readyz", "") == 200 })
	list, _ := run("", "registry", "list")
	if !strings.Contains(list, "kept.example.test") || strings.Contains(list, "later.example.test") {
		t.Errorf("registries after the restore (want the one backed up only):\n%s", list)
	}
	// Refusal without --no-stop's consent: a running server is left alone.
	if _, errOut, err := cli(t, cfg, "", "restore", archive, "--data-dir", dir, "--no-stop"); err == nil || !strings.Contains(errOut, "in use") {
		t.Errorf("restore --no-stop next to a running server: %v %s", err, errOut)
	}
}
