package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthpaas/berth/internal/api"
)

// secondFactorFlags are --otp and --recovery-code, for scripts.
type secondFactorFlags struct {
	otp, recovery string
}

func (f *secondFactorFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.otp, "otp", "", "the current code of your authenticator app, for accounts with two-factor login (else asked for when needed)")
	cmd.Flags().StringVar(&f.recovery, "recovery-code", "", "a single-use recovery code, instead of --otp")
}

// request is the flags as a request, asking on the terminal when both are empty.
func (f *secondFactorFlags) request(cmd *cobra.Command) (api.SecondFactorRequest, error) {
	if f.otp != "" || f.recovery != "" {
		return api.SecondFactorRequest{OTP: f.otp, RecoveryCode: f.recovery}, nil
	}
	code, err := promptCode(cmd, "Authentication code (or a recovery code): ")
	if err != nil {
		return api.SecondFactorRequest{}, err
	}
	if looksLikeRecoveryCode(code) {
		return api.SecondFactorRequest{RecoveryCode: code}, nil
	}
	return api.SecondFactorRequest{OTP: code}, nil
}

// promptCode reads a code from the terminal; without one, it says which flag to use.
func promptCode(cmd *cobra.Command, label string) (string, error) {
	f, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("this account has two-factor login: pass the code of your authenticator app with --otp (or a recovery code with --recovery-code)")
	}
	fmt.Fprint(cmd.ErrOrStderr(), label)
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read code: %w", err)
	}
	code := strings.TrimSpace(line)
	if code == "" {
		return "", errors.New("no code given")
	}
	return code, nil
}

// looksLikeRecoveryCode tells a recovery code (xxxx-xxxx-xxxx-xxxx) from
// a 6-digit authenticator code.
func looksLikeRecoveryCode(code string) bool {
	return len(strings.NewReplacer("-", "", " ", "").Replace(code)) > 8
}

func accountCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "account",
		Short: "Manage your own account: two-factor login",
	}
	tf := &cobra.Command{
		Use:     "2fa",
		Aliases: []string{"two-factor"},
		Short:   "Two-factor login with an authenticator app (TOTP)",
		Long: "Two-factor login asks for a 6-digit code from an authenticator app after the password.\n" +
			"Recovery codes, shown once when you enable it, sign in once each when the app is not at hand.",
	}
	tf.AddCommand(twoFactorStatusCmd(), twoFactorEnableCmd(), twoFactorDisableCmd(), recoveryCodesCmd())
	cmd.AddCommand(tf)
	return cmd
}

func twoFactorStatusCmd() *cobra.Command {
	return showVerb[api.TwoFactorStatus]{
		use: "status", short: "Show whether two-factor login is on, and how many recovery codes are left",
		fetch: func(ctx context.Context, t *target) (api.TwoFactorStatus, error) {
			st, err := t.client().TwoFactor(ctx)
			if err != nil {
				return st, twoFactorErr(t, err)
			}
			return st, nil
		},
		print: func(w io.Writer, st api.TwoFactorStatus, _ *target) error {
			switch {
			case st.Enabled:
				fmt.Fprintf(w, "Two-factor login is on; %d recovery codes left.\n", st.RecoveryCodesLeft)
			case st.Pending:
				fmt.Fprintln(w, "Two-factor login is off; an enrolment waits for its code (berth account 2fa enable --otp CODE).")
			default:
				fmt.Fprintln(w, "Two-factor login is off (berth account 2fa enable).")
			}
			return nil
		},
	}.command()
}

func twoFactorEnableCmd() *cobra.Command {
	var (
		flags clientFlags
		otp   string
	)
	cmd := &cobra.Command{
		Use:   "enable",
		Short: "Turn two-factor login on",
		Long: "Starts enrolment: prints the secret as a QR code (on a terminal), an otpauth:// URI and base32\n" +
			"text for your authenticator app, then asks for the app's current code. Two-factor login is on\n" +
			"once the code is right, and the recovery codes are printed, once.\n" +
			"Without a terminal it stops after printing the secret; finish with --otp.",
		Example: "  berth account 2fa enable\n" +
			"  berth account 2fa enable --otp 123456   # finish an enrolment started earlier",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			c := t.client()
			out := cmd.OutOrStdout()
			if otp == "" {
				en, err := c.EnrolTwoFactor(cmd.Context())
				if err != nil {
					return twoFactorErr(t, err)
				}
				if f, ok := cmd.OutOrStdout().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					if q, err := qrcode.New(en.OTPAuthURI, qrcode.Medium); err == nil {
						fmt.Fprintln(out, q.ToSmallString(false))
					}
				}
				fmt.Fprintf(out, "Add Berth to your authenticator app with the QR code or this URI:\n  %s\nor type the key by hand:\n  %s\n\n", en.OTPAuthURI, en.Secret)
				in, ok := cmd.InOrStdin().(*os.File)
				if !ok || !term.IsTerminal(int(in.Fd())) {
					fmt.Fprintln(out, "Then finish with: berth account 2fa enable --otp <the app's current code>")
					return nil
				}
				if otp, err = promptCode(cmd, "Code from the app: "); err != nil {
					return err
				}
			}
			rc, err := c.ConfirmTwoFactor(cmd.Context(), otp)
			if err != nil {
				return twoFactorErr(t, err)
			}
			fmt.Fprintln(out, "Two-factor login is on. Recovery codes, each usable once instead of a code.")
			fmt.Fprintln(out, "Store them somewhere safe now: they are not shown again.")
			for _, code := range rc.RecoveryCodes {
				fmt.Fprintln(out, "  "+code)
			}
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().StringVar(&otp, "otp", "", "finish an enrolment started earlier with the app's current code")
	return cmd
}

func twoFactorDisableCmd() *cobra.Command {
	var (
		flags             clientFlags
		passwordFromStdin bool
		second            secondFactorFlags
	)
	cmd := &cobra.Command{
		Use:   "disable",
		Short: "Turn two-factor login off (needs your password and a code)",
		Long: "Turns two-factor login off. It needs your password and a current code (or a recovery code).\n" +
			"Every other session of yours ends and every API token of yours is revoked, except the one\n" +
			"this CLI is logged in with.",
		Example: "  berth account 2fa disable\n  echo \"$PASSWORD\" | berth account 2fa disable --password-stdin --otp 123456",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			pw, err := readPassword(cmd, "password-stdin", passwordFromStdin, false)
			if err != nil {
				return err
			}
			sf, err := second.request(cmd)
			if err != nil {
				return err
			}
			res, err := t.client().DisableTwoFactor(cmd.Context(), api.DisableTwoFactorRequest{Password: pw, OTP: sf.OTP, RecoveryCode: sf.RecoveryCode})
			if err != nil {
				return twoFactorErr(t, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Two-factor login is off. Ended %s and revoked %s.\n",
				countOf(res.EndedSessions, "other session"), countOf(res.RevokedTokens, "API token"))
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().BoolVar(&passwordFromStdin, "password-stdin", false, "read the password from stdin")
	second.bind(cmd)
	return cmd
}

func recoveryCodesCmd() *cobra.Command {
	var (
		flags  clientFlags
		second secondFactorFlags
	)
	cmd := &cobra.Command{
		Use:     "recovery-codes",
		Short:   "Replace your recovery codes (needs a code)",
		Long:    "Replaces every recovery code, used or not, with 10 new ones, printed once.",
		Example: "  berth account 2fa recovery-codes --otp 123456",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			sf, err := second.request(cmd)
			if err != nil {
				return err
			}
			rc, err := t.client().RegenerateRecoveryCodes(cmd.Context(), sf)
			if err != nil {
				return twoFactorErr(t, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "New recovery codes (the old ones no longer work). Store them somewhere safe now:")
			for _, code := range rc.RecoveryCodes {
				fmt.Fprintln(out, "  "+code)
			}
			return nil
		},
	}
	flags.bind(cmd)
	second.bind(cmd)
	return cmd
}

// twoFactorErr is t.authErr, except for a wrong or locked code: those are
// 401s and 429s too, but signing in again would not help.
func twoFactorErr(t *target, err error) error {
	var p *ProblemError
	if errors.As(err, &p) && p.Type != "" {
		return err
	}
	return t.authErr(err)
}

func countOf(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
