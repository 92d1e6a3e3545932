// Package cli owns the client side of the `berth` command: the commands that
// talk to a Berth server over its REST API (setup, login, logout, whoami,
// token, project, env, app, build, logs, registry, connection, domain, audit,
// account, org, member, invite), the login state they keep in the CLI
// config file, and the typed API client they share.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// AddCommands adds the client commands to root.
func AddCommands(root *cobra.Command) {
	root.AddCommand(setupCmd(), loginCmd(), logoutCmd(), whoamiCmd(), tokenCmd(),
		projectCmd(), envCmd(), appCmd(), buildCmd(), logsCmd(), registryCmd(), connectionCmd(), domainCmd(), auditCmd(), accountCmd(),
		orgCmd(), memberCmd(), inviteCmd())
}

// defaultServer is where setup and login look when nothing else says: a
// `berth server` with its default --listen on this machine.
const defaultServer = "http://localhost:3000"

var errNotLoggedIn = errors.New("not logged in (or the token expired): run berth login")

// target is the server a command talks to and the credentials it uses.
type target struct {
	server       string
	token        string
	tokenFromEnv bool
	configPath   string
	config       Config
}

// clientFlags are the flags every client command shares.
type clientFlags struct {
	server string
}

func (f *clientFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", "", "URL of the Berth server (default $BERTH_SERVER, else the server you logged in to)")
}

// resolve works out the server and token: --server, else $BERTH_SERVER, else
// the config file's server; the token from $BERTH_TOKEN, else the config file.
// A token from the config file is only sent to the server it was issued by.
func (f *clientFlags) resolve(needToken bool) (*target, error) {
	path, err := configPath(os.Getenv)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	t := &target{configPath: path, config: cfg}
	raw := f.server
	if raw == "" {
		raw = os.Getenv("BERTH_SERVER")
	}
	if raw == "" {
		raw = cfg.Server
	}
	if raw == "" {
		if needToken {
			return nil, errNotLoggedIn
		}
		raw = defaultServer
	}
	if t.server, err = normalizeServer(raw); err != nil {
		return nil, err
	}
	if tok := os.Getenv("BERTH_TOKEN"); tok != "" {
		t.token, t.tokenFromEnv = tok, true
	} else if cfg.Token != "" && cfg.Server == t.server {
		t.token = cfg.Token
	}
	if needToken && t.token == "" {
		return nil, errNotLoggedIn
	}
	return t, nil
}

func (t *target) client() *Client { return NewClient(t.server, t.token) }

// authErr turns the server's 401 into advice.
func (t *target) authErr(err error) error {
	var p *ProblemError
	if errors.As(err, &p) && p.Status == 401 {
		if t.tokenFromEnv {
			return fmt.Errorf("%w (the token in BERTH_TOKEN was refused)", errNotLoggedIn)
		}
		return errNotLoggedIn
	}
	return err
}

// normalizeServer checks a server URL and drops its trailing slash.
func normalizeServer(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("server %q must be a URL like https://berth.example.com or http://localhost:3000", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// warnPlainHTTP warns before a password crosses the network unencrypted.
func warnPlainHTTP(cmd *cobra.Command, server string) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "http" {
		return
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is plain HTTP: your password crosses the network unencrypted\n", server)
}

// maxPasswordInput bounds what is read as a password.
const maxPasswordInput = 4096

// readPassword reads the password from stdin with --<stdinFlag> (one
// trailing newline removed), or prompts for it without echo when stdin is a
// terminal. confirm asks twice.
func readPassword(cmd *cobra.Command, stdinFlag string, fromStdin, confirm bool) (string, error) {
	if fromStdin {
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxPasswordInput+1))
		if err != nil {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		if len(b) > maxPasswordInput {
			return "", errors.New("the password on stdin is too long")
		}
		pw := strings.TrimSuffix(string(b), "\n")
		if len(pw) < len(b) {
			pw = strings.TrimSuffix(pw, "\r")
		}
		if pw == "" {
			return "", fmt.Errorf("--%s: stdin held no password", stdinFlag)
		}
		return pw, nil
	}
	f, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", fmt.Errorf("stdin is not a terminal: pass the password on stdin with --%s", stdinFlag)
	}
	prompt := func(label string) (string, error) {
		fmt.Fprint(cmd.ErrOrStderr(), label)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	pw, err := prompt("Password: ")
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errors.New("no password given")
	}
	if confirm {
		again, err := prompt("Password (again): ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("the passwords do not match")
		}
	}
	return pw, nil
}

// outputFlag is --output for commands whose result scripts may read.
type outputFlag struct{ format string }

func (o *outputFlag) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "text", "output format: text or json")
}

func (o *outputFlag) check() error {
	if o.format != "text" && o.format != "json" {
		return fmt.Errorf("--output %q: use text or json", o.format)
	}
	return nil
}

func (o *outputFlag) json() bool { return o.format == "json" }

// listVerb describes a "list" verb: it fetches rows from the server and
// prints them as a table, or with -o json as the API's list document.
type listVerb[T any] struct {
	use, short string
	args       cobra.PositionalArgs // cobra.NoArgs when nil
	header     []string
	// fetch returns the rows, its errors already worded for users.
	fetch func(ctx context.Context, t *target, args []string) ([]T, error)
	doc   func([]T) any
	row   func(T) []string
	// note, when set, is a line printed under the table for an item (""
	// for none): what is too long for a column, such as an error.
	note func(T) string
}

func (l listVerb[T]) command() *cobra.Command {
	var (
		flags  clientFlags
		output outputFlag
	)
	if l.args == nil {
		l.args = cobra.NoArgs
	}
	cmd := &cobra.Command{
		Use:   l.use,
		Short: l.short,
		Args:  l.args,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.check(); err != nil {
				return err
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			items, err := l.fetch(cmd.Context(), t, args)
			if err != nil {
				return err
			}
			if output.json() {
				return writeJSON(cmd.OutOrStdout(), l.doc(items))
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, strings.Join(l.header, "\t"))
			var notes []string
			for _, it := range items {
				fmt.Fprintln(w, strings.Join(l.row(it), "\t"))
				if l.note != nil {
					if n := l.note(it); n != "" {
						notes = append(notes, n)
					}
				}
			}
			if err := w.Flush(); err != nil || len(notes) == 0 {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "\n%s\n", strings.Join(notes, "\n"))
			return err
		},
	}
	flags.bind(cmd)
	output.bind(cmd)
	return cmd
}

// showVerb describes a verb that fetches one document from the server and
// prints it as text, or with -o json as the document.
type showVerb[T any] struct {
	use, short string
	// fetch returns the document, its errors already worded for users.
	fetch func(ctx context.Context, t *target) (T, error)
	// doc is what -o json prints; nil prints the document itself.
	doc   func(v T, t *target) any
	print func(w io.Writer, v T, t *target) error
}

func (s showVerb[T]) command() *cobra.Command {
	var (
		flags  clientFlags
		output outputFlag
	)
	cmd := &cobra.Command{
		Use:   s.use,
		Short: s.short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := output.check(); err != nil {
				return err
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			v, err := s.fetch(cmd.Context(), t)
			if err != nil {
				return err
			}
			if output.json() {
				if s.doc == nil {
					return writeJSON(cmd.OutOrStdout(), v)
				}
				return writeJSON(cmd.OutOrStdout(), s.doc(v, t))
			}
			return s.print(cmd.OutOrStdout(), v, t)
		},
	}
	flags.bind(cmd)
	output.bind(cmd)
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
