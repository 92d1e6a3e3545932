package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
)

func registryPath(idOrName string) string {
	return api.Prefix + "/registries/" + url.PathEscape(idOrName)
}

// Registries lists the organization's private registry credentials.
func (c *Client) Registries(ctx context.Context) ([]api.Registry, error) {
	var out api.RegistryList
	return out.Registries, c.do(ctx, http.MethodGet, api.Prefix+"/registries", nil, &out)
}

// CreateRegistry adds a registry credential.
func (c *Client) CreateRegistry(ctx context.Context, in api.CreateRegistryRequest) (api.Registry, error) {
	var out api.Registry
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/registries", in, &out)
}

// TestRegistry logs in to a registry from the server's engine.
func (c *Client) TestRegistry(ctx context.Context, idOrName string) (api.RegistryTest, error) {
	var out api.RegistryTest
	return out, c.do(ctx, http.MethodPost, registryPath(idOrName)+"/test", nil, &out)
}

// DeleteRegistry removes a registry credential.
func (c *Client) DeleteRegistry(ctx context.Context, idOrName string) error {
	return c.do(ctx, http.MethodDelete, registryPath(idOrName), nil, nil)
}

func registryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "registry",
		Aliases: []string{"registries"},
		Short:   "Manage private image registry credentials",
		Long:    "Credentials for private image registries. A deployment whose image names a registry's\nserver (registry.example.com/team/api:1.0) pulls with that registry's credential.",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(registryAddCmd(), registryListCmd(), registryTestCmd(), registryRemoveCmd())
	return cmd
}

func registryAddCmd() *cobra.Command {
	var (
		flags                    clientFlags
		username                 string
		passwordFromStdin, check bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME HOST[:PORT] --username USER --password-stdin",
		Short: "Add a registry credential",
		// The registry is an argument, as in `docker login HOST`: --server
		// already names the Berth server on every client command.
		Long:    "Adds a credential for the registry at HOST[:PORT], written as image names use it\n(ghcr.io, registry.example.com, localhost:5000). Images under it are pulled with it.",
		Example: "  echo \"$GHCR_TOKEN\" | berth registry add ghcr ghcr.io --username deploy-bot --password-stdin",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, "password-stdin", passwordFromStdin, false)
			if err != nil {
				return err
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			r, err := t.client().CreateRegistry(cmd.Context(), api.CreateRegistryRequest{Name: args[0], Server: args[1], Username: username, Password: pw})
			if err != nil {
				return t.authErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Added registry %s for %s (%s)\n", r.Name, r.Server, r.ID)
			if !check {
				return nil
			}
			return printRegistryTest(cmd, t, r.ID)
		},
	}
	cmd.Flags().StringVar(&username, "username", "", "user name")
	cmd.Flags().BoolVar(&passwordFromStdin, "password-stdin", false, "read the password or token from stdin")
	cmd.Flags().BoolVar(&check, "test", false, "test the login after adding")
	cmd.MarkFlagRequired("username")
	flags.bind(cmd)
	return cmd
}

func registryListCmd() *cobra.Command {
	return listVerb[api.Registry]{
		use: "list", short: "List registry credentials (passwords are never shown)",
		header: []string{"NAME", "SERVER", "USERNAME", "CREATED"},
		fetch: func(ctx context.Context, t *target, _ []string) ([]api.Registry, error) {
			rs, err := t.client().Registries(ctx)
			return rs, t.authErr(err)
		},
		doc: func(rs []api.Registry) any { return api.RegistryList{Registries: rs} },
		row: func(r api.Registry) []string {
			return []string{r.Name, r.Server, r.Username, formatTime(&r.CreatedAt)}
		},
	}.command()
}

func printRegistryTest(cmd *cobra.Command, t *target, name string) error {
	res, err := t.client().TestRegistry(cmd.Context(), name)
	if err != nil {
		return notFound(t, err, "registry "+name)
	}
	if !res.OK {
		return fmt.Errorf("login failed: %s", res.Message)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "OK: %s\n", res.Message)
	return nil
}

func registryTestCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "test NAME",
		Short: "Log in to a registry from the server's container engine",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			return printRegistryTest(cmd, t, args[0])
		},
	}
	flags.bind(cmd)
	return cmd
}

func registryRemoveCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Remove a registry credential; running apps keep running",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			if err := t.client().DeleteRegistry(cmd.Context(), args[0]); err != nil {
				return notFound(t, err, "registry "+args[0])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed registry %s\n", args[0])
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}
