package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/app"
)

func projectCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "project",
		Aliases: []string{"projects"},
		Short:   "Manage projects, which group apps and their environments",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(projectCreateCmd(), projectListCmd(), projectRenameCmd(), projectDeleteCmd())
	return cmd
}

// notFound words a 404 for the CLI; other errors pass through authErr.
func notFound(t *target, err error, what string) error {
	var p *ProblemError
	if errors.As(err, &p) && p.Status == 404 {
		return fmt.Errorf("%s not found", what)
	}
	return t.authErr(err)
}

func projectCreateCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a project with its production environment",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			p, err := t.client().CreateProject(cmd.Context(), args[0])
			if err != nil {
				return t.authErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created project %s (%s) with environment production\n", p.Name, p.ID)
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}

func projectListCmd() *cobra.Command {
	return listVerb[api.Project]{
		use: "list", short: "List projects",
		header: []string{"NAME", "ID", "CREATED"},
		fetch: func(ctx context.Context, t *target, _ []string) ([]api.Project, error) {
			ps, err := t.client().Projects(ctx)
			return ps, t.authErr(err)
		},
		doc: func(ps []api.Project) any { return api.ProjectList{Projects: ps} },
		row: func(p api.Project) []string { return []string{p.Name, p.ID, formatTime(&p.CreatedAt)} },
	}.command()
}

func projectRenameCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "rename OLD NEW",
		Short: "Rename a project; its apps keep running",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			p, err := t.client().RenameProject(cmd.Context(), args[0], args[1])
			if err != nil {
				return notFound(t, err, "project "+args[0])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Renamed project %s to %s\n", args[0], p.Name)
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}

func projectDeleteCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an empty project with its environments and their variables",
		Long:  "Delete a project that has no apps left (delete them first with berth app delete).",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			if err := t.client().DeleteProject(cmd.Context(), args[0]); err != nil {
				var p *ProblemError
				if errors.As(err, &p) && p.Status == 409 {
					return fmt.Errorf("project %s still has apps: delete them first (berth app list %s)", args[0], args[0])
				}
				return notFound(t, err, "project "+args[0])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted project %s\n", args[0])
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}

// envScope is whose variables a command reads or writes.
type envScope struct {
	project, environment, app string
	scope                     string // project, environment or app
}

func (s envScope) String() string {
	switch s.scope {
	case "environment":
		return "environment " + s.project + "/" + s.environment
	case "app":
		if s.environment == "" || s.environment == "production" {
			return "app " + s.project + "/" + s.app
		}
		return "app " + s.project + "/" + s.environment + "/" + s.app
	}
	return "project " + s.project
}

const scopeHelp = `The first argument names whose variables:

  PROJECT                            the project's, shared by all its apps
  PROJECT/APP                        an app's in production
  PROJECT/ENVIRONMENT/APP            an app's in another environment
  PROJECT/ENVIRONMENT --scope environment
                                     an environment's, shared by its apps
  PROJECT --scope environment        production's

A two-part reference always means PROJECT/APP unless --scope environment
says otherwise. An app's deployments get all three scopes, the narrowest
winning; changing variables redeploys every running app they reach.`

// parseScope reads a scope reference (see scopeHelp).
func parseScope(ref, scope string) (envScope, error) {
	parts := strings.Split(ref, "/")
	for _, p := range parts {
		if err := app.ValidateName("name", p); err != nil {
			return envScope{}, fmt.Errorf("%q is not a scope: write PROJECT, PROJECT/APP or PROJECT/ENVIRONMENT/APP of lowercase names", ref)
		}
	}
	s := envScope{project: parts[0]}
	if scope == "" {
		scope = map[int]string{1: "project", 2: "app", 3: "app"}[len(parts)]
	}
	s.scope = scope
	switch {
	case len(parts) > 3:
		return envScope{}, fmt.Errorf("%q is not a scope: write PROJECT, PROJECT/APP or PROJECT/ENVIRONMENT/APP", ref)
	case scope == "project" && len(parts) == 1:
	case scope == "environment" && len(parts) <= 2:
		s.environment = "production"
		if len(parts) == 2 {
			s.environment = parts[1]
		}
	case scope == "app" && len(parts) == 2:
		s.environment, s.app = "production", parts[1]
	case scope == "app" && len(parts) == 3:
		s.environment, s.app = parts[1], parts[2]
	case scope != "project" && scope != "environment" && scope != "app":
		return envScope{}, fmt.Errorf("--scope %q: use project, environment or app", scope)
	default:
		return envScope{}, fmt.Errorf("--scope %s does not fit %q: see berth env get --help", scope, ref)
	}
	return s, nil
}

func envCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Manage environments (create, list) and environment variables (get, set, unset, import)",
		Long: "Environments: berth env create PROJECT NAME adds one (staging, …) to a project; berth env list\n" +
			"PROJECT lists them. Variables: berth env get/set/unset/import read and change the\n" +
			"variables of a project, an environment or an app; values are stored encrypted.",
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(envCreateCmd(), envListCmd(), envGetCmd(), envSetCmd(), envUnsetCmd(), envImportCmd())
	return cmd
}

func envCreateCmd() *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "create PROJECT NAME",
		Short: "Create an environment (staging, …) in a project",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			e, err := t.client().CreateEnvironment(cmd.Context(), args[0], args[1])
			if err != nil {
				return notFound(t, err, "project "+args[0])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created environment %s/%s (%s)\n", args[0], e.Name, e.ID)
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}

func envListCmd() *cobra.Command {
	return listVerb[api.Environment]{
		use: "list PROJECT", short: "List a project's environments", args: cobra.ExactArgs(1),
		header: []string{"NAME", "ID", "NETWORK", "CREATED"},
		fetch: func(ctx context.Context, t *target, args []string) ([]api.Environment, error) {
			envs, err := t.client().Environments(ctx, args[0])
			return envs, notFound(t, err, "project "+args[0])
		},
		doc: func(envs []api.Environment) any { return api.EnvironmentList{Environments: envs} },
		row: func(e api.Environment) []string {
			return []string{e.Name, e.ID, e.Network, formatTime(&e.CreatedAt)}
		},
	}.command()
}

func envGetCmd() *cobra.Command {
	var (
		flags  clientFlags
		output outputFlag
		scope  string
		reveal bool
	)
	cmd := &cobra.Command{
		Use:     "get SCOPE-REF",
		Short:   "List variables, values masked unless --reveal",
		Long:    "List the variables of a project, an environment or an app, by name. Values show as ••••••\nunless --reveal is given.\n\n" + scopeHelp,
		Example: "  berth env get shop\n  berth env get shop/web --reveal\n  berth env get shop/staging --scope environment",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := output.check(); err != nil {
				return err
			}
			s, err := parseScope(args[0], scope)
			if err != nil {
				return err
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			vars, err := t.client().Env(cmd.Context(), s, reveal)
			if err != nil {
				return notFound(t, err, s.String())
			}
			if output.json() {
				return writeJSON(cmd.OutOrStdout(), api.EnvVarList{Vars: vars})
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "KEY\tVALUE")
			for _, v := range vars {
				fmt.Fprintf(w, "%s\t%s\n", v.Key, printable(v.Value))
			}
			return w.Flush()
		},
	}
	flags.bind(cmd)
	output.bind(cmd)
	cmd.Flags().StringVar(&scope, "scope", "", "project, environment or app (default: from the reference)")
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show the values")
	return cmd
}

// parseAssignments reads KEY=VALUE arguments.
func parseAssignments(args []string, what string) (map[string]string, error) {
	vars := make(map[string]string, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("%s %q: write KEY=VALUE", what, k)
		}
		if err := app.ValidateEnvKey(k); err != nil {
			return nil, fmt.Errorf("%s %q: %s", what, k, fieldMessage(err))
		}
		if err := app.ValidateEnvValue(k, v); err != nil {
			return nil, fmt.Errorf("%s %s: value %s", what, k, fieldMessage(err))
		}
		vars[k] = v
	}
	return vars, nil
}

func fieldMessage(err error) string {
	var fe *app.FieldError
	if errors.As(err, &fe) {
		return fe.Message
	}
	return err.Error()
}

// reportEnvChange says what a change of variables redeployed.
func reportEnvChange(cmd *cobra.Command, s envScope, change api.EnvChange) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Updated the variables of %s\n", s)
	for _, d := range change.Deployments {
		fmt.Fprintf(out, "Queued deployment #%d (%s)\n", d.Seq, d.ID)
	}
	if len(change.Deployments) == 0 {
		fmt.Fprintln(out, "No running app was affected; the next deployment uses them.")
	}
}

func envSetCmd() *cobra.Command {
	var (
		flags clientFlags
		scope string
	)
	cmd := &cobra.Command{
		Use:     "set SCOPE-REF KEY=VALUE...",
		Short:   "Add or change variables, keeping the others",
		Long:    "Add or change variables and redeploy the running apps they reach. Other variables are kept.\nValues on the command line end up in your shell history: prefer env import for secrets.\n\n" + scopeHelp,
		Example: "  berth env set shop/web LOG_LEVEL=debug WORKERS=4\n  berth env set shop REGION=eu-west",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := parseScope(args[0], scope)
			if err != nil {
				return err
			}
			vars, err := parseAssignments(args[1:], "variable")
			if err != nil {
				return err
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			change, err := t.client().UpdateEnv(cmd.Context(), s, api.UpdateEnvRequest{Vars: vars})
			if err != nil {
				return notFound(t, err, s.String())
			}
			reportEnvChange(cmd, s, change)
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().StringVar(&scope, "scope", "", "project, environment or app (default: from the reference)")
	return cmd
}

func envUnsetCmd() *cobra.Command {
	var (
		flags clientFlags
		scope string
	)
	cmd := &cobra.Command{
		Use:   "unset SCOPE-REF KEY...",
		Short: "Remove variables",
		Long:  "Remove variables and redeploy the running apps they reach.\n\n" + scopeHelp,
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := parseScope(args[0], scope)
			if err != nil {
				return err
			}
			for _, k := range args[1:] {
				if err := app.ValidateEnvKey(k); err != nil {
					return fmt.Errorf("variable %q: %s", k, fieldMessage(err))
				}
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			change, err := t.client().UpdateEnv(cmd.Context(), s, api.UpdateEnvRequest{Unset: args[1:]})
			if err != nil {
				return notFound(t, err, s.String())
			}
			reportEnvChange(cmd, s, change)
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().StringVar(&scope, "scope", "", "project, environment or app (default: from the reference)")
	return cmd
}

// maxDotEnv bounds a .env file sent to the server (its request limit is 64 KiB).
const maxDotEnv = 60000

// readDotEnv reads and checks a .env file, naming the flag and the line at fault.
func readDotEnv(flag, path string) (string, map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", flag, err)
	}
	if len(b) > maxDotEnv {
		return "", nil, fmt.Errorf("%s %s: the file is %d bytes; the limit is %d", flag, path, len(b), maxDotEnv)
	}
	vars, _, err := app.ParseDotEnv(string(b))
	if err != nil {
		return "", nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return string(b), vars, nil
}

func envImportCmd() *cobra.Command {
	var (
		flags       clientFlags
		scope, file string
		replace     bool
	)
	cmd := &cobra.Command{
		Use:     "import SCOPE-REF --file .env",
		Short:   "Add or change variables from a .env file",
		Long:    "Add or change the variables in a .env file (KEY=VALUE lines, quotes, comments, export) and\nredeploy the running apps they reach. With --replace the file becomes the complete set:\nvariables not in it are removed.\n\n" + scopeHelp,
		Example: "  berth env import shop/web --file .env.production",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := parseScope(args[0], scope)
			if err != nil {
				return err
			}
			if file == "" {
				return errors.New("--file is required")
			}
			text, vars, err := readDotEnv("--file", file)
			if err != nil {
				return err
			}
			if len(vars) == 0 && !replace {
				return fmt.Errorf("--file %s holds no variables", file)
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			var change api.EnvChange
			if replace {
				req := api.ReplaceEnvRequest{DotEnv: text}
				if len(vars) == 0 {
					req = api.ReplaceEnvRequest{Vars: map[string]string{}} // an empty file removes them all
				}
				change, err = t.client().ReplaceEnv(cmd.Context(), s, req)
			} else {
				change, err = t.client().UpdateEnv(cmd.Context(), s, api.UpdateEnvRequest{DotEnv: text})
			}
			if err != nil {
				return notFound(t, err, s.String())
			}
			reportEnvChange(cmd, s, change)
			return nil
		},
	}
	flags.bind(cmd)
	cmd.Flags().StringVar(&scope, "scope", "", "project, environment or app (default: from the reference)")
	cmd.Flags().StringVar(&file, "file", "", "the .env file")
	cmd.Flags().BoolVar(&replace, "replace", false, "remove the variables that are not in the file")
	return cmd
}
