package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
)

func setupCmd() *cobra.Command {
	var (
		flags             clientFlags
		email, name, org  string
		passwordFromStdin bool
	)
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create the owner account of a new Berth server",
		Long: "Create the first organization and its owner account on a freshly installed server.\n" +
			"It works once, and only from the server itself or through its configured public URL.",
		Example: "  echo \"$PASSWORD\" | berth setup --server http://localhost:3000 --email ada@example.com --password-stdin",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := flags.resolve(false)
			if err != nil {
				return err
			}
			if email == "" {
				return errors.New("--email is required")
			}
			warnPlainHTTP(cmd, t.server)
			pw, err := readPassword(cmd, "password-stdin", passwordFromStdin, true)
			if err != nil {
				return err
			}
			res, err := NewClient(t.server, "").Setup(cmd.Context(), api.SetupRequest{Email: email, Password: pw, Name: name, Organization: org})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Created the owner account %s on %s.\n", res.User.Email, t.server)
			fmt.Fprintf(out, "Next, log in: berth login --server %s --email %s\n", t.server, res.User.Email)
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().StringVar(&email, "email", "", "the owner's email address")
	cmd.Flags().StringVar(&name, "name", "", "the owner's display name")
	cmd.Flags().StringVar(&org, "organization", "", "name of the first organization (default \"Default\")")
	cmd.Flags().BoolVar(&passwordFromStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

func loginCmd() *cobra.Command {
	var (
		flags             clientFlags
		email, expires    string
		passwordFromStdin bool
		second            secondFactorFlags
	)
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to a Berth server and remember it for later commands",
		Long: "Log in with your email and password. The server issues an API token named cli@<hostname>,\n" +
			"which is stored with the server's address in $BERTH_CLI_CONFIG, else\n" +
			"$XDG_CONFIG_HOME/berth/cli.json (~/.config/berth/cli.json), readable only by you.\n\n" +
			"For an account with two-factor login, berth login asks for the code of your authenticator\n" +
			"app when the server wants one; scripts pass it with --otp (or --recovery-code).",
		Example: "  berth login --server https://berth.example.com --email ada@example.com\n" +
			"  echo \"$PASSWORD\" | berth login --server https://berth.example.com --email ada@example.com --password-stdin\n" +
			"  echo \"$PASSWORD\" | berth login --email ada@example.com --password-stdin --otp 123456",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkExpires(expires); err != nil {
				return err
			}
			t, err := flags.resolve(false)
			if err != nil {
				return err
			}
			if email == "" && t.config.Server == t.server {
				email = t.config.Email
			}
			if email == "" {
				return errors.New("--email is required")
			}
			warnPlainHTTP(cmd, t.server)
			pw, err := readPassword(cmd, "password-stdin", passwordFromStdin, false)
			if err != nil {
				return err
			}
			req := api.TokenLoginRequest{
				Email: email, Password: pw, Name: tokenName(), ExpiresIn: expires,
				SecondFactor: api.SecondFactor{OTP: second.otp, RecoveryCode: second.recovery},
			}
			tok, err := NewClient(t.server, "").TokenLogin(cmd.Context(), req)
			var problem *ProblemError
			if errors.As(err, &problem) && problem.Type == api.ProblemOTPRequired {
				// The password was right; ask for the second factor and repeat.
				if req.OTP, err = promptCode(cmd, "Authentication code (or a recovery code): "); err != nil {
					return err
				}
				if looksLikeRecoveryCode(req.OTP) {
					req.OTP, req.RecoveryCode = "", req.OTP
				}
				tok, err = NewClient(t.server, "").TokenLogin(cmd.Context(), req)
			}
			if err != nil {
				return err
			}
			previous := t.config
			if err := saveConfig(t.configPath, Config{Server: t.server, Token: tok.Token, Email: email}); err != nil {
				// The new token would be lost: revoke it rather than leave it orphaned.
				NewClient(t.server, tok.Token).Logout(cmd.Context())
				return err
			}
			// The token of an earlier login to this server is no longer
			// needed; revoke it so tokens do not pile up. Best effort.
			if previous.Token != "" && previous.Server == t.server && previous.Token != tok.Token {
				NewClient(previous.Server, previous.Token).Logout(cmd.Context())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s\n", t.server, email)
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().StringVar(&email, "email", "", "your email address (default: the one you last logged in with)")
	cmd.Flags().BoolVar(&passwordFromStdin, "password-stdin", false, "read the password from stdin")
	cmd.Flags().StringVar(&expires, "expires", "", "lifetime of the login, e.g. 24h or 30d (default: until logout)")
	second.bind(cmd)
	return cmd
}

// tokenName names the token `berth login` creates after this machine.
func tokenName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	name := "cli@" + host
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

func logoutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Log out: revoke the CLI's token and forget it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := configPath(os.Getenv)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			if cfg.Token == "" {
				fmt.Fprintln(cmd.OutOrStdout(), "Not logged in.")
				return nil
			}
			err = NewClient(cfg.Server, cfg.Token).Logout(cmd.Context())
			var unreachable *UnreachableError
			var problem *ProblemError
			switch {
			case err == nil:
			case errors.As(err, &problem) && problem.Status == 401:
				// Already revoked or expired: nothing left to do on the server.
			case errors.As(err, &unreachable):
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\nThe token was not revoked on the server: it keeps working until it expires or is revoked there (berth token list, berth token revoke).\n", err)
			default:
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: revoking the token failed: %v\n", err)
			}
			server := cfg.Server
			cfg.Token = ""
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged out of %s\n", server)
			return nil
		},
	}
	return cmd
}

func whoamiCmd() *cobra.Command {
	return showVerb[api.Me]{
		use: "whoami", short: "Show who you are logged in as, and where",
		fetch: func(ctx context.Context, t *target) (api.Me, error) {
			me, err := t.client().Me(ctx)
			return me, t.authErr(err)
		},
		doc: func(me api.Me, t *target) any {
			return struct {
				api.Me
				Server string `json:"server"`
			}{me, t.server}
		},
		print: func(out io.Writer, me api.Me, t *target) error {
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "email\t%s\n", me.User.Email)
			fmt.Fprintf(w, "name\t%s\n", me.User.Name)
			fmt.Fprintf(w, "organization\t%s\n", me.Organization.Name)
			fmt.Fprintf(w, "role\t%s\n", me.Role)
			fmt.Fprintf(w, "server\t%s\n", t.server)
			return w.Flush()
		},
	}.command()
}
