package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
)

// auditFilters are the flags shared by `audit list` and `audit export`.
type auditFilters struct {
	actor, action, target, since, until string
}

func (f *auditFilters) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.actor, "actor", "", "only this actor: an email, or a user or token id")
	fl.StringVar(&f.action, "action", "", "only this action (app.deploy); ending in a dot, every action of a resource (app.)")
	fl.StringVar(&f.target, "target", "", "only targets containing this text (app=web)")
	fl.StringVar(&f.since, "since", "", "only entries from this time on: an age (1h, 7d), a date (2026-01-31) or an RFC 3339 time")
	fl.StringVar(&f.until, "until", "", "only entries before this time, in the same forms as --since")
}

func (f auditFilters) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"actor": f.actor, "action": f.action, "target": f.target, "since": f.since, "until": f.until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// Audit lists a page of the audit log, newest first.
func (c *Client) Audit(ctx context.Context, q url.Values) (api.AuditPage, error) {
	var out api.AuditPage
	return out, c.do(ctx, http.MethodGet, api.Prefix+"/audit?"+q.Encode(), nil, &out)
}

// VerifyAudit checks the audit log's hash chain.
func (c *Client) VerifyAudit(ctx context.Context) (api.AuditVerification, error) {
	var out api.AuditVerification
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/audit/verify", nil, &out)
}

// AuditRetention is how long the organization keeps its audit log.
func (c *Client) AuditRetention(ctx context.Context) (api.AuditRetention, error) {
	var out api.AuditRetention
	return out, c.do(ctx, http.MethodGet, api.Prefix+"/audit/retention", nil, &out)
}

// SetAuditRetention changes it; 0 returns to the installation's default.
func (c *Client) SetAuditRetention(ctx context.Context, days int) (api.AuditRetention, error) {
	var out api.AuditRetention
	return out, c.do(ctx, http.MethodPut, api.Prefix+"/audit/retention", api.SetAuditRetentionRequest{Days: days}, &out)
}

// ExportAudit copies the export in format to w as the server streams it.
func (c *Client) ExportAudit(ctx context.Context, q url.Values, w io.Writer) error {
	res, err := c.open(ctx, api.Prefix+"/audit/export?"+q.Encode(), "")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if _, err := io.Copy(w, res.Body); err != nil {
		return fmt.Errorf("the export from %s broke off: %w", c.server, err)
	}
	return nil
}

func auditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, export and verify the audit log (owner or admin)",
		Long: "The audit log records every change made through the API or the UI, every sign-in (failed ones\n" +
			"too) and every reveal of secret values: who, what, on what, from where, and with what result.\n" +
			"Entries form a hash chain; `berth audit verify` finds an entry that was edited, deleted or reordered.",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(auditListCmd(), auditExportCmd(), auditVerifyCmd(), auditRetentionCmd())
	return cmd
}

func auditListCmd() *cobra.Command {
	var (
		flags   clientFlags
		filters auditFilters
		output  outputFlag
		limit   int
	)
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List audit log entries, newest first",
		Example: "  berth audit list --actor admin@example.com --since 1h\n  berth audit list --action env.reveal --since 7d\n  berth audit list --target app=web -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := output.check(); err != nil {
				return err
			}
			if limit < 1 || limit > 1000 {
				return fmt.Errorf("--limit %d: use 1 to 1000", limit)
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			q := filters.query()
			q.Set("limit", strconv.Itoa(limit))
			page, err := t.client().Audit(cmd.Context(), q)
			if err != nil {
				return t.authErr(err)
			}
			if output.json() {
				return writeJSON(cmd.OutOrStdout(), page)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SEQ\tTIME\tACTOR\tACTION\tTARGET\tRESULT\tSOURCE")
			for _, e := range page.Entries {
				actor := e.Actor.Label
				if e.Actor.Kind == "token" {
					actor += " (token)"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s %d\t%s\n", e.Seq, formatTime(&e.At), printable(actor), printable(e.Action),
					printable(auditTarget(e.Target)), e.Result, e.Status, printable(e.SourceIP))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if page.NextCursor != 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "more entries are older than #%d: narrow the filters or raise --limit\n", page.NextCursor+1)
			}
			return nil
		},
	}
	flags.bind(cmd)
	filters.bind(cmd)
	output.bind(cmd)
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many entries (up to 1000)")
	return cmd
}

func auditExportCmd() *cobra.Command {
	var (
		flags          clientFlags
		filters        auditFilters
		format, output string
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Export the audit log as JSON lines or CSV",
		Long: "Writes every entry matching the filters, oldest first, to stdout or to the file given with -o.\n" +
			"JSON lines hold each entry exactly as stored, hashes included; CSV is for spreadsheets.",
		Example: "  berth audit export --format jsonl -o audit.jsonl\n  berth audit export --format csv --since 30d > audit.csv",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "jsonl" && format != "csv" {
				return fmt.Errorf("--format %q: use jsonl or csv", format)
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			q := filters.query()
			q.Set("format", format)
			if output == "" || output == "-" {
				return t.authErr(t.client().ExportAudit(cmd.Context(), q, cmd.OutOrStdout()))
			}
			// Written next to the target and renamed into place, so a
			// broken-off export never passes for a complete one.
			tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			if err := t.client().ExportAudit(cmd.Context(), q, tmp); err != nil {
				tmp.Close()
				return t.authErr(err)
			}
			if err := tmp.Sync(); err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), output); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", output)
			return nil
		},
	}
	flags.bind(cmd)
	filters.bind(cmd)
	cmd.Flags().StringVar(&format, "format", "jsonl", "jsonl or csv")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	return cmd
}

func auditVerifyCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain; exit status 1 when it is broken",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			v, err := t.client().VerifyAudit(cmd.Context())
			if err != nil {
				return t.authErr(err)
			}
			if !v.OK {
				return fmt.Errorf("audit chain broken: %s (%d entries checked before it)", v.FirstProblem, v.Checked)
			}
			msg := fmt.Sprintf("chain intact: %d entries", v.Checked)
			if v.AnchorSeq > 0 {
				msg += fmt.Sprintf(" (#%d to #%d; older ones were trimmed by retention)", v.AnchorSeq+1, v.HeadSeq)
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.TrimSpace(msg))
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}

// auditTarget is a target for a table cell: "-" when there is none.
func auditTarget(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func auditRetentionCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "retention [DAYS|default]",
		Short: "Show or change how many days the audit log keeps entries (changing: owner)",
		Long: "Without an argument, shows the retention. With one, sets it: entries older than that many days\n" +
			"are trimmed from the oldest end within the hour, and the chain stays verifiable. \"default\"\n" +
			"returns to the installation's default (365 days unless the operator changed it).",
		Example: "  berth audit retention\n  berth audit retention 730\n  berth audit retention default",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			var r api.AuditRetention
			if len(args) == 0 {
				r, err = t.client().AuditRetention(cmd.Context())
			} else {
				days := 0
				if args[0] != "default" {
					if days, err = strconv.Atoi(args[0]); err != nil || days < 1 || days > 36500 {
						return fmt.Errorf("retention %q: give a number of days from 1 to 36500, or default", args[0])
					}
				}
				r, err = t.client().SetAuditRetention(cmd.Context(), days)
			}
			if err != nil {
				return t.authErr(err)
			}
			how := "set for this organization"
			if r.Default {
				how = "the installation's default"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "audit entries are kept %d days (%s)\n", r.Days, how)
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}
