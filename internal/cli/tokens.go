package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/auth"
)

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage API tokens for scripts and CI",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(tokenCreateCmd(), tokenListCmd(), tokenRevokeCmd())
	return cmd
}

// checkExpires validates --expires before anything is sent, so the message
// names the flag rather than the API field.
func checkExpires(v string) error {
	if _, err := api.ParseExpiresIn(v); err != nil {
		var fe *auth.FieldError
		if errors.As(err, &fe) {
			return fmt.Errorf("--expires %s", fe.Message)
		}
		return err
	}
	return nil
}

func tokenCreateCmd() *cobra.Command {
	var (
		flags         clientFlags
		expires, role string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an API token; only the token is printed on stdout",
		Long: "Create an API token for scripts and CI. The token is printed alone on stdout, so\n" +
			"TOKEN=$(berth token create ci --expires 24h) works; it is shown only once. With --role the\n" +
			"token is limited to that role (at most your own), e.g. a viewer token for a job that only reads.",
		Example: "  TOKEN=$(berth token create ci --expires 30d)\n  TOKEN=$(berth token create dashboards --role viewer)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkExpires(expires); err != nil {
				return err
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			tok, err := t.client().CreateToken(cmd.Context(), api.CreateTokenRequest{Name: args[0], ExpiresIn: expires, Role: role})
			if err != nil {
				return t.authErr(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
			until := "does not expire"
			if tok.ExpiresAt != nil {
				until = "expires " + formatTime(tok.ExpiresAt)
			}
			limited := ""
			if tok.Role != "" {
				limited = ", limited to " + tok.Role
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Created token %q (%s, %s%s). It is shown only once: store it now.\n", tok.Name, tok.ID, until, limited)
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 30m, 24h or 30d (default: no expiry)")
	cmd.Flags().StringVar(&role, "role", "", "limit the token to a role: admin, developer, viewer or member (default: your own role)")
	return cmd
}

func tokenListCmd() *cobra.Command {
	now := time.Now()
	return listVerb[api.APIToken]{
		use: "list", short: "List your API tokens (never their secrets)",
		header: []string{"ID", "NAME", "PREFIX", "ROLE", "CREATED", "EXPIRES", "LAST USED"},
		fetch: func(ctx context.Context, t *target, _ []string) ([]api.APIToken, error) {
			ts, err := t.client().Tokens(ctx)
			return ts, t.authErr(err)
		},
		doc: func(ts []api.APIToken) any { return api.TokenList{Tokens: ts} },
		row: func(tok api.APIToken) []string {
			expires := formatTime(tok.ExpiresAt)
			if tok.ExpiresAt != nil && !now.Before(*tok.ExpiresAt) {
				expires += " (expired)"
			}
			role := tok.Role
			if role == "" {
				role = "(yours)"
			}
			return []string{tok.ID, printable(tok.Name), tok.Prefix + "…", role, formatTime(&tok.CreatedAt), expires, formatTime(tok.LastUsedAt)}
		},
	}.command()
}

func tokenRevokeCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token; it stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			if err := t.client().RevokeToken(cmd.Context(), args[0]); err != nil {
				var p *ProblemError
				if errors.As(err, &p) && p.Status == 404 {
					return fmt.Errorf("no token %s among yours (see berth token list)", args[0])
				}
				return t.authErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Revoked token %s\n", args[0])
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}

func formatTime(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04")
}

// printable keeps names from another source from moving the terminal's cursor.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
