package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/backup"
	"github.com/berthpaas/berth/internal/secrets"
)

func backupOptions(dataDir, databaseURL string) backup.Options {
	return backup.Options{DataDir: dataDir, DatabaseURL: databaseURL, KeyFromEnv: strings.TrimSpace(os.Getenv(secrets.EnvMasterKey)) != ""}
}

func backupCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "backup --output FILE",
		Short: "Write an archive of Berth's own state: its database and master key",
		Long: "Write a gzipped tar archive of Berth's state while the server runs: an online snapshot of the SQLite\n" +
			"database (or pg_dump of PostgreSQL) and the master key that opens its secrets (unless the key comes from\n" +
			"BERTH_MASTER_KEY). The archive opens every secret Berth holds: keep it as safe as the server. Apps'\n" +
			"volumes are not in it. Accepts the same configuration as berth server (--data-dir, --database-url).",
		Args: cobra.NoArgs,
	}
	cfg, load := serverFlags(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "file to write (mode 0600; - for standard output)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := load(); err != nil {
			return err
		}
		if output == "" {
			return fmt.Errorf("--output: name the archive to write, e.g. --output berth-backup.tar.gz")
		}
		var w io.Writer = cmd.OutOrStdout()
		var f *os.File
		if output != "-" {
			var err error
			if f, err = os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
				return fmt.Errorf("--output: %w", err)
			}
			w = f
		}
		m, err := backup.Create(cmd.Context(), backupOptions(cfg.DataDir, cfg.DatabaseURL), w)
		if f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(output)
			}
		}
		if err != nil {
			return err
		}
		if f != nil {
			st, _ := os.Stat(output)
			key := "with the master key"
			if !m.HasKey {
				key = "without the master key (BERTH_MASTER_KEY): keep that key too"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Wrote %s (%d KB): %s database at schema version %d, %s.\n", filepath.Clean(output), st.Size()>>10, m.Database, m.SchemaVersion, key)
		}
		return nil
	}
	return cmd
}

func restoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace Berth's state with a backup archive (stop berth server first)",
		Long: "Replace Berth's database and master key with those of an archive written by berth backup. A berth\n" +
			"server running on the data directory is stopped first (SIGTERM: it finishes in-flight requests; under\n" +
			"the install script's systemd unit it starts again by itself on the restored state). SQLite: the current database and key stay next to them as *.before-restore-<time>.\n" +
			"PostgreSQL: the archive is loaded into the database at --database-url, which must be empty.\n" +
			"An archive from an older Berth is upgraded when the server next starts; one from a newer Berth is refused.",
		Args: cobra.ExactArgs(1),
	}
	cfg, load := serverFlags(cmd)
	var keepRunning bool
	cmd.Flags().BoolVar(&keepRunning, "no-stop", false, "refuse instead of stopping a running berth server")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := load(); err != nil {
			return err
		}
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		o := backupOptions(cfg.DataDir, cfg.DatabaseURL)
		o.StopServer = !keepRunning
		stopped := false
		o.Logf = func(format string, args ...any) {
			stopped = true
			fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...)
		}
		m, err := backup.Restore(cmd.Context(), o, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Restored the %s database of %s (Berth %s, schema version %d).\n",
			m.Database, m.CreatedAt.Format("2006-01-02 15:04 UTC"), m.BerthVersion, m.SchemaVersion)
		if stopped {
			fmt.Fprintln(cmd.OutOrStdout(), "berth server was stopped for it: systemd starts it again by itself (the install script's unit); otherwise start it.")
		} else {
			fmt.Fprintln(cmd.OutOrStdout(), "Start berth server.")
		}
		return nil
	}
	return cmd
}
