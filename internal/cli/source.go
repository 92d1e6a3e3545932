package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
)

// GitSource is an app's git source.
func (c *Client) GitSource(ctx context.Context, ref appRef) (api.AppSource, error) {
	var out api.AppSource
	return out, c.do(ctx, http.MethodGet, appPath(ref, "/source"), nil, &out)
}

// UpdateGitSource replaces an app's git source.
func (c *Client) UpdateGitSource(ctx context.Context, ref appRef, in api.GitSourceRequest) (api.AppSource, error) {
	var out api.AppSource
	return out, c.do(ctx, http.MethodPut, appPath(ref, "/source"), in, &out)
}

// RotateWebhookSecret gives an app a new webhook secret and returns it.
func (c *Client) RotateWebhookSecret(ctx context.Context, ref appRef) (api.WebhookSecret, error) {
	var out api.WebhookSecret
	return out, c.do(ctx, http.MethodPost, appPath(ref, "/source/webhook-secret/rotate"), nil, &out)
}

// sourceFlags change a git source: each flag given replaces its field.
type sourceFlags struct {
	git, branch, dockerfile, context, target string
	buildArgs, buildSecrets, watchPaths      []string
	tokenStdin, removeToken                  bool
	deployTags, submodules                   bool
}

func (f *sourceFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.git, "git", "", "another repository: https://…, ssh://… or git@host:owner/repo.git")
	fl.StringVar(&f.branch, "branch", "", "the branch deploys build and pushes deploy")
	fl.StringVar(&f.dockerfile, "dockerfile", "", "the Dockerfile, relative to the context (empty: Dockerfile)")
	fl.StringVar(&f.context, "context", "", "the build context, relative to the repository root (empty: the root)")
	fl.StringVar(&f.target, "target", "", "the stage of a multi-stage Dockerfile to build (empty: the last)")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "ARG value KEY=VALUE, replacing all build args; it stays in the image's history, so never a secret (repeatable; --build-arg= clears them)")
	fl.StringArrayVar(&f.buildSecrets, "build-secret", nil, "name of an app variable the build reads as a secret: RUN --mount=type=secret,id=NAME, replacing the list (repeatable; --build-secret= clears it)")
	fl.StringArrayVar(&f.watchPaths, "watch-path", nil, "deploy a push only when it changes a file matching this pattern, replacing the patterns (repeatable; --watch-path= clears them)")
	fl.BoolVar(&f.tokenStdin, "git-token-stdin", false, "read a new access token from stdin; stored encrypted, never shown again")
	fl.BoolVar(&f.removeToken, "remove-token", false, "remove the stored access token")
	fl.BoolVar(&f.deployTags, "deploy-tags", false, "whether tag pushes deploy the tagged commit (--deploy-tags=false to stop)")
	fl.BoolVar(&f.submodules, "submodules", false, "whether to fetch the repository's submodules (--submodules=false to stop)")
}

// sourceFlagNames are the flags that change the source.
var sourceFlagNames = []string{"git", "branch", "dockerfile", "context", "target", "build-arg", "build-secret", "watch-path", "git-token-stdin", "remove-token", "deploy-tags", "submodules"}

// request is cur with the flags given applied, as the API takes it.
func (f *sourceFlags) request(cmd *cobra.Command, cur api.AppSource) (api.GitSourceRequest, error) {
	changed := cmd.Flags().Changed
	g := api.GitRequest{Branch: cur.Branch, Dockerfile: cur.Dockerfile, Context: cur.Context, Target: cur.Target,
		BuildArgs: cur.BuildArgs, BuildSecrets: cur.BuildSecrets, Submodules: cur.Submodules}
	if cur.Kind == "git" {
		g.URL = cur.CloneURL
	} else {
		g.Provider, g.Repo, g.BaseURL = cur.Kind, cur.Repo, cur.BaseURL
	}
	filter := cur.Filter
	if changed("git") {
		g.URL, g.Provider, g.Repo, g.BaseURL = f.git, "", "", ""
	}
	if changed("branch") {
		// A filter that followed the branch keeps following it.
		if slices.Equal(filter.Branches, []string{g.Branch}) {
			filter.Branches = []string{f.branch}
		}
		g.Branch = f.branch
	}
	for _, s := range []struct {
		flag     string
		dst, val *string
	}{{"dockerfile", &g.Dockerfile, &f.dockerfile}, {"context", &g.Context, &f.context}, {"target", &g.Target, &f.target}} {
		if changed(s.flag) {
			*s.dst = *s.val
		}
	}
	if changed("build-arg") {
		args, err := parseAssignments(nonEmpty(f.buildArgs), "--build-arg")
		if err != nil {
			return api.GitSourceRequest{}, err
		}
		g.BuildArgs = args
	}
	if changed("build-secret") {
		g.BuildSecrets = nonEmpty(f.buildSecrets)
	}
	if changed("watch-path") {
		filter.WatchPaths = nonEmpty(f.watchPaths)
	}
	if changed("deploy-tags") {
		filter.Tags = f.deployTags
	}
	if changed("submodules") {
		g.Submodules = f.submodules
	}
	g.Filter = &filter
	out := api.GitSourceRequest{GitRequest: g, RemoveToken: f.removeToken}
	if f.tokenStdin {
		if f.removeToken {
			return api.GitSourceRequest{}, errors.New("--git-token-stdin and --remove-token: give one")
		}
		tok, err := readToken(cmd.InOrStdin(), "git-token-stdin")
		if err != nil {
			return api.GitSourceRequest{}, err
		}
		out.Token = tok
	}
	return out, nil
}

// nonEmpty drops the empty values, so that --flag= clears a list.
func nonEmpty(vs []string) []string {
	return slices.DeleteFunc(slices.Clone(vs), func(v string) bool { return v == "" })
}

func appSourceCmd() *cobra.Command {
	var output outputFlag
	var f sourceFlags
	cmd, _ := appCommand("source REF", "Show or change where an app built from git gets its code and how it is built", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		if err := output.check(); err != nil {
			return err
		}
		c := t.client()
		src, err := c.GitSource(cmd.Context(), ref)
		if err != nil {
			var p *ProblemError
			if errors.As(err, &p) && p.Status == http.StatusNotFound {
				return fmt.Errorf("app %s not found, or it is deployed from an image (only apps built from git have a source)", ref)
			}
			return err
		}
		if slices.ContainsFunc(sourceFlagNames, cmd.Flags().Changed) {
			in, err := f.request(cmd, src)
			if err != nil {
				return err
			}
			if src, err = c.UpdateGitSource(cmd.Context(), ref, in); err != nil {
				return err
			}
			if !output.json() {
				fmt.Fprintf(cmd.OutOrStdout(), "Source of %s changed; the next build (berth app deploy %s, or a push) uses it.\n\n", ref, ref)
			}
		}
		if output.json() {
			return writeJSON(cmd.OutOrStdout(), src)
		}
		return printSource(cmd.OutOrStdout(), src)
	})
	cmd.Long += "\n\nWithout flags it shows the source. Each flag given changes its field and leaves the others as they are; " +
		"the webhook URL and secret stay. Nothing is rebuilt until the next deploy or push.\n\n" +
		"Examples:\n" +
		"  berth app source shop/api\n" +
		"  berth app source shop/api --branch release --dockerfile deploy/Dockerfile\n" +
		"  echo \"$TOKEN\" | berth app source shop/api --git-token-stdin\n" +
		"  berth app source shop/api --watch-path 'api/**' --deploy-tags"
	f.bind(cmd)
	output.bind(cmd)
	return cmd
}

func printSource(out io.Writer, s api.AppSource) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	repo := s.CloneURL
	if s.Repo != "" {
		repo = fmt.Sprintf("%s %s (%s)", s.Kind, s.Repo, s.CloneURL)
	}
	fmt.Fprintf(w, "repository\t%s\n", repo)
	fmt.Fprintf(w, "branch\t%s\n", s.Branch)
	fmt.Fprintf(w, "dockerfile\t%s\n", cmp.Or(s.Dockerfile, "Dockerfile"))
	fmt.Fprintf(w, "context\t%s\n", cmp.Or(s.Context, "(the repository root)"))
	if s.Target != "" {
		fmt.Fprintf(w, "target\t%s\n", s.Target)
	}
	for _, k := range slices.Sorted(maps.Keys(s.BuildArgs)) {
		fmt.Fprintf(w, "build arg\t%s=%s\n", k, s.BuildArgs[k])
	}
	fmt.Fprintf(w, "build secrets\t%s\n", cmp.Or(strings.Join(s.BuildSecrets, ", "), "none"))
	fmt.Fprintf(w, "submodules\t%s\n", yesNo(s.Submodules))
	fmt.Fprintf(w, "deploys on push to\t%s\n", cmp.Or(strings.Join(s.Filter.Branches, ", "), "(no branch)"))
	fmt.Fprintf(w, "deploys tags\t%s\n", yesNo(s.Filter.Tags))
	if len(s.Filter.WatchPaths) > 0 {
		fmt.Fprintf(w, "only when changed\t%s\n", strings.Join(s.Filter.WatchPaths, ", "))
	}
	fmt.Fprintf(w, "access token\t%s\n", map[bool]string{true: "stored (never shown)", false: "none"}[s.HasToken])
	if s.DeployKey != "" {
		fmt.Fprintf(w, "deploy key\t%s\n", s.DeployKey)
	}
	fmt.Fprintf(w, "webhook\t%s (berth app webhook shows its secret)\n", s.WebhookURL)
	return w.Flush()
}
