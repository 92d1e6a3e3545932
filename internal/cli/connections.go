package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthpaas/berth/internal/api"
)

func connectionPath(name string) string {
	return api.Prefix + "/connections/" + url.PathEscape(name)
}

// Connections lists the organization's git connections.
func (c *Client) Connections(ctx context.Context) ([]api.Connection, error) {
	var out api.ConnectionList
	return out.Connections, c.do(ctx, http.MethodGet, api.Prefix+"/connections", nil, &out)
}

// CreateConnection connects a git provider account; the server checks the
// token with the provider first.
func (c *Client) CreateConnection(ctx context.Context, in api.CreateConnectionRequest) (api.Connection, error) {
	var out api.Connection
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/connections", in, &out)
}

// DeleteConnection removes a git connection and its token.
func (c *Client) DeleteConnection(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, connectionPath(name), nil, nil)
}

// ConnectionRepos lists the repositories a connection's account can read.
func (c *Client) ConnectionRepos(ctx context.Context, name string) ([]api.ConnectionRepo, error) {
	var out api.ConnectionRepoList
	return out.Repos, c.do(ctx, http.MethodGet, connectionPath(name)+"/repos", nil, &out)
}

// ConnectionBranches lists the branches of owner/repo through a connection.
func (c *Client) ConnectionBranches(ctx context.Context, name, owner, repo string) ([]string, error) {
	var out api.BranchList
	path := connectionPath(name) + "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(repo) + "/branches"
	return out.Branches, c.do(ctx, http.MethodGet, path, nil, &out)
}

func connectionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "connection",
		Aliases: []string{"connections"},
		Short:   "Connect git provider accounts and browse their repositories",
		Long: "A git connection is the organization's account at a git provider (Gitea or Forgejo for now).\n" +
			"Apps created from its repositories (berth app create --connection NAME --repo OWNER/NAME) fetch\n" +
			"with its token, get their webhook set up at the provider, and report commit statuses.",
		Example: "  echo \"$GITEA_TOKEN\" | berth connection add gitea --url https://gitea.example.com --token-stdin\n" +
			"  berth connection repos gitea\n" +
			"  berth connection branches gitea acme/api\n" +
			"  berth app create shop/api --connection gitea --repo acme/api --port 8080",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(connectionAddCmd(), connectionListCmd(), connectionReposCmd(), connectionBranchesCmd(), connectionRemoveCmd())
	return cmd
}

func connectionAddCmd() *cobra.Command {
	var (
		flags             clientFlags
		provider, baseURL string
		tokenFromStdin    bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME --url URL --token-stdin",
		Short: "Connect an account at a git provider",
		Long: "Connects an account at a git provider under NAME (1–32 lowercase letters, digits and '-').\n" +
			"The server checks the token with the provider first and refuses it in the provider's words;\n" +
			"it is stored encrypted and never shown again.\n\n" +
			"The token comes from stdin (--token-stdin), or is asked for without echo on a terminal: it never\n" +
			"goes on the command line, where shell history and process lists would keep it.\n" +
			"For Gitea and Forgejo, make it under Settings → Applications with the scopes write:repository\n" +
			"(read code, write commit statuses, create webhooks) and read:user.",
		Example: "  echo \"$GITEA_TOKEN\" | berth connection add gitea --url https://gitea.example.com --token-stdin\n" +
			"  berth connection add forgejo --url https://codeberg.example.org   # asks for the token",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			token, err := connectionToken(cmd, tokenFromStdin)
			if err != nil {
				return err
			}
			c, err := t.client().CreateConnection(cmd.Context(), api.CreateConnectionRequest{Name: args[0], Provider: provider, BaseURL: baseURL, Token: token})
			if err != nil {
				return t.authErr(err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Connected %s as %s at %s.\n", c.Name, printable(c.Account), printable(c.BaseURL))
			fmt.Fprintf(out, "Its repositories:       berth connection repos %s\n", c.Name)
			fmt.Fprintf(out, "Create an app from one: berth app create PROJECT/APP --connection %s --repo OWNER/NAME\n", c.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&provider, "provider", "gitea", "the provider: gitea (Gitea or Forgejo; the only one built so far)")
	cmd.Flags().StringVar(&baseURL, "url", "", "the provider's server, e.g. https://gitea.example.com")
	cmd.Flags().BoolVar(&tokenFromStdin, "token-stdin", false, "read the account's access token from stdin")
	cmd.MarkFlagRequired("url")
	flags.bind(cmd)
	return cmd
}

// connectionToken reads the token from stdin with --token-stdin, else asks
// for it without echo when stdin is a terminal.
func connectionToken(cmd *cobra.Command, fromStdin bool) (string, error) {
	if fromStdin {
		return readToken(cmd.InOrStdin(), "token-stdin")
	}
	f, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("stdin is not a terminal: pass the access token on stdin with --token-stdin")
	}
	fmt.Fprint(cmd.ErrOrStderr(), "Access token: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", fmt.Errorf("read the access token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", errors.New("no access token given")
	}
	return tok, nil
}

func connectionListCmd() *cobra.Command {
	return listVerb[api.Connection]{
		use: "list", short: "List git connections (tokens are never shown)",
		header: []string{"NAME", "PROVIDER", "SERVER", "ACCOUNT", "CREATED"},
		fetch: func(ctx context.Context, t *target, _ []string) ([]api.Connection, error) {
			cs, err := t.client().Connections(ctx)
			return cs, t.authErr(err)
		},
		doc: func(cs []api.Connection) any { return api.ConnectionList{Connections: cs} },
		row: func(c api.Connection) []string {
			return []string{c.Name, c.Provider, printable(c.BaseURL), printable(c.Account), formatTime(&c.CreatedAt)}
		},
	}.command()
}

func connectionReposCmd() *cobra.Command {
	return listVerb[api.ConnectionRepo]{
		use: "repos NAME", short: "List the repositories a connection's account can read, asking the provider",
		args:   cobra.ExactArgs(1),
		header: []string{"FULL NAME", "DEFAULT BRANCH", "PRIVATE"},
		fetch: func(ctx context.Context, t *target, args []string) ([]api.ConnectionRepo, error) {
			rs, err := t.client().ConnectionRepos(ctx, args[0])
			return rs, notFound(t, err, "connection "+args[0])
		},
		doc: func(rs []api.ConnectionRepo) any { return api.ConnectionRepoList{Repos: rs} },
		row: func(r api.ConnectionRepo) []string {
			return []string{printable(r.FullName), printable(r.DefaultBranch), strconv.FormatBool(r.Private)}
		},
	}.command()
}

func connectionBranchesCmd() *cobra.Command {
	var (
		flags  clientFlags
		output outputFlag
	)
	cmd := &cobra.Command{
		Use:     "branches NAME OWNER/REPO",
		Short:   "List a repository's branches through a connection, asking the provider",
		Example: "  berth connection branches gitea acme/api",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.check(); err != nil {
				return err
			}
			owner, repo, ok := strings.Cut(args[1], "/")
			if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
				return fmt.Errorf("%q is not a repository: write OWNER/REPO, as berth connection repos %s lists them", args[1], args[0])
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			bs, err := t.client().ConnectionBranches(cmd.Context(), args[0], owner, repo)
			if err != nil {
				return branchesErr(cmd.Context(), t, err, args[0])
			}
			if output.json() {
				return writeJSON(cmd.OutOrStdout(), api.BranchList{Branches: bs})
			}
			for _, b := range bs {
				fmt.Fprintln(cmd.OutOrStdout(), printable(b))
			}
			return nil
		},
	}
	flags.bind(cmd)
	output.bind(cmd)
	return cmd
}

// branchesErr words a failed branch listing. A 404 is either the connection
// or the repository: the connection list tells which.
func branchesErr(ctx context.Context, t *target, err error, name string) error {
	var p *ProblemError
	if !errors.As(err, &p) || p.Status != http.StatusNotFound {
		return t.authErr(err)
	}
	cs, lerr := t.client().Connections(ctx)
	if lerr == nil && !slices.ContainsFunc(cs, func(c api.Connection) bool { return c.Name == name }) {
		return fmt.Errorf("connection %s not found", name)
	}
	return fmt.Errorf("%w (berth connection repos %s lists what the connection can read)", err, name)
}

func connectionRemoveCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Remove a git connection and its token; apps made from it keep building",
		Long: "Removes a git connection and its token. Apps made from it keep building with their own copy\n" +
			"of the token, but their builds stop reporting commit statuses. Webhooks already set up at the\n" +
			"provider stay there.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			if err := t.client().DeleteConnection(cmd.Context(), args[0]); err != nil {
				return notFound(t, err, "connection "+args[0])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed connection %s\n", args[0])
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}
