package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
)

// The build operations of the API.

func buildPath(id, suffix string) string {
	return api.Prefix + "/builds/" + url.PathEscape(id) + suffix
}

// StartBuild queues a build of an app built from git; commit "" is the
// branch head.
func (c *Client) StartBuild(ctx context.Context, ref appRef, commit string) (api.Build, error) {
	var out api.Build
	return out, c.do(ctx, http.MethodPost, appPath(ref, "/builds"), api.StartBuildRequest{Commit: commit}, &out)
}

// Builds lists an app's newest builds.
func (c *Client) Builds(ctx context.Context, ref appRef, limit int) ([]api.Build, error) {
	var out api.BuildList
	return out.Builds, c.do(ctx, http.MethodGet, appPath(ref, "/builds")+"&limit="+strconv.Itoa(limit), nil, &out)
}

// Build shows a build by id.
func (c *Client) Build(ctx context.Context, id string) (api.Build, error) {
	var out api.Build
	return out, c.do(ctx, http.MethodGet, buildPath(id, ""), nil, &out)
}

// CancelBuild cancels a queued or running build.
func (c *Client) CancelBuild(ctx context.Context, id string) (api.Build, error) {
	var out api.Build
	return out, c.do(ctx, http.MethodPost, buildPath(id, "/cancel"), nil, &out)
}

// BuildLog reads a page of a build's output after line after.
func (c *Client) BuildLog(ctx context.Context, id string, after int) (api.BuildLogPage, error) {
	var out api.BuildLogPage
	return out, c.do(ctx, http.MethodGet, buildPath(id, "/log")+"?after="+strconv.Itoa(after), nil, &out)
}

// BuildQueue lists the organization's running and waiting builds.
func (c *Client) BuildQueue(ctx context.Context) ([]api.QueuedBuild, error) {
	var out api.BuildQueue
	return out.Builds, c.do(ctx, http.MethodGet, api.Prefix+"/builds", nil, &out)
}

// WebhookSecret reveals an app's webhook secret (recorded in the audit log).
func (c *Client) WebhookSecret(ctx context.Context, ref appRef) (api.WebhookSecret, error) {
	var out api.WebhookSecret
	return out, c.do(ctx, http.MethodPost, appPath(ref, "/source/webhook-secret"), nil, &out)
}

func buildCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "build",
		Aliases: []string{"builds"},
		Short:   "List, follow and cancel builds of apps built from git",
		Long:    "List, follow and cancel builds of apps built from git. Start one with berth app deploy. " + appRefHelp,
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(buildListCmd(), buildShowCmd(), buildLogsCmd(), buildCancelCmd(), buildQueueCmd())
	return cmd
}

func buildDuration(b api.Build) string {
	if b.DurationSeconds == nil {
		return "-"
	}
	return (time.Duration(*b.DurationSeconds * float64(time.Second))).Round(100 * time.Millisecond).String()
}

func shortSHA(sha string) string {
	if sha == "" {
		return "-"
	}
	return sha[:min(12, len(sha))]
}

func shortRef(ref string) string {
	return strings.TrimPrefix(strings.TrimPrefix(ref, "refs/heads/"), "refs/tags/")
}

func buildListCmd() *cobra.Command {
	return listVerb[api.Build]{
		use: "list REF", short: "List an app's builds, newest first", args: cobra.ExactArgs(1),
		header: []string{"#", "ID", "STATUS", "TRIGGER", "REF", "COMMIT", "BY", "CREATED", "DURATION"},
		fetch: func(ctx context.Context, t *target, args []string) ([]api.Build, error) {
			ref, err := parseAppRef(args[0])
			if err != nil {
				return nil, err
			}
			bs, err := t.client().Builds(ctx, ref, 20)
			return bs, notFound(t, err, "app "+ref.String())
		},
		doc: func(bs []api.Build) any { return api.BuildList{Builds: bs} },
		row: func(b api.Build) []string {
			return []string{strconv.Itoa(b.Seq), b.ID, b.Status, b.Trigger, printable(shortRef(b.Ref)), shortSHA(b.Commit), printable(b.CreatedBy), formatTime(&b.CreatedAt), buildDuration(b)}
		},
	}.command()
}

func buildQueueCmd() *cobra.Command {
	return listVerb[api.QueuedBuild]{
		use: "queue", short: "Show the builds running and waiting, and why they wait",
		header: []string{"ID", "APP", "#", "STATUS", "REF", "WAITING", "CREATED"},
		fetch: func(ctx context.Context, t *target, _ []string) ([]api.QueuedBuild, error) {
			qs, err := t.client().BuildQueue(ctx)
			return qs, t.authErr(err)
		},
		doc: func(qs []api.QueuedBuild) any { return api.BuildQueue{Builds: qs} },
		row: func(q api.QueuedBuild) []string {
			ref := appRef{Project: q.App.Project, Environment: q.App.Environment, Name: q.App.Name}
			waiting := q.Waiting
			if waiting == "" {
				waiting = "-"
			}
			return []string{q.ID, ref.String(), strconv.Itoa(q.Seq), q.Status, printable(shortRef(q.Ref)), printable(waiting), formatTime(&q.CreatedAt)}
		},
	}.command()
}

// buildCommand is the skeleton of the commands that act on one build by id.
func buildCommand(use, short string, run func(cmd *cobra.Command, t *target, id string) error) *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			if err := run(cmd, t, args[0]); err != nil {
				return notFound(t, err, "build "+args[0])
			}
			return nil
		},
	}
	flags.bind(cmd)
	return cmd
}

func buildShowCmd() *cobra.Command {
	var output outputFlag
	cmd := buildCommand("show BUILD", "Show a build", func(cmd *cobra.Command, t *target, id string) error {
		if err := output.check(); err != nil {
			return err
		}
		b, err := t.client().Build(cmd.Context(), id)
		if err != nil {
			return err
		}
		if output.json() {
			return writeJSON(cmd.OutOrStdout(), b)
		}
		ref := appRef{Project: b.App.Project, Environment: b.App.Environment, Name: b.App.Name}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "build\t#%d (%s) of %s\n", b.Seq, b.ID, ref)
		fmt.Fprintf(w, "status\t%s\n", b.Status)
		if b.Error != "" {
			fmt.Fprintf(w, "error\t%s\n", printable(b.Error))
		}
		fmt.Fprintf(w, "ref\t%s\n", printable(b.Ref))
		fmt.Fprintf(w, "commit\t%s\n", shortSHA(b.Commit))
		if b.Message != "" {
			fmt.Fprintf(w, "message\t%s (%s)\n", printable(b.Message), printable(b.Author))
		}
		fmt.Fprintf(w, "trigger\t%s by %s\n", b.Trigger, printable(b.CreatedBy))
		if b.Image != "" {
			fmt.Fprintf(w, "image\t%s\n", printable(b.Image))
		}
		fmt.Fprintf(w, "deployment\t%s\n", b.DeploymentID)
		fmt.Fprintf(w, "created\t%s\n", formatTime(&b.CreatedAt))
		fmt.Fprintf(w, "duration\t%s\n", buildDuration(b))
		return w.Flush()
	})
	output.bind(cmd)
	return cmd
}

func buildLogsCmd() *cobra.Command {
	var follow bool
	cmd := buildCommand("logs BUILD [-f]", "Print a build's output", func(cmd *cobra.Command, t *target, id string) error {
		out := cmd.OutOrStdout()
		if follow {
			end, err := streamBuild(cmd.Context(), t, id, func(l api.BuildLogLine) { fmt.Fprintln(out, printable(l.Line)) }, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Build %s\n", endWords(end))
			return nil
		}
		after := 0
		for {
			page, err := t.client().BuildLog(cmd.Context(), id, after)
			if err != nil {
				return err
			}
			for _, l := range page.Lines {
				fmt.Fprintln(out, printable(l.Line))
			}
			if len(page.Lines) == 0 || page.Ended {
				return nil
			}
			after = page.Next
		}
	})
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing lines as they are written, until the build ends")
	return cmd
}

func buildCancelCmd() *cobra.Command {
	return buildCommand("cancel BUILD", "Cancel a queued or running build", func(cmd *cobra.Command, t *target, id string) error {
		b, err := t.client().CancelBuild(cmd.Context(), id)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Build #%d (%s) %s; nothing is deployed from it\n", b.Seq, b.ID, b.Status)
		return nil
	})
}

func endWords(s api.BuildStatus) string {
	if s.Error != "" {
		return s.Status + ": " + printable(s.Error)
	}
	return s.Status
}

// streamBuild follows a build's output until it ends, calling line for
// each line and status for each status change, and returns the final
// status.
func streamBuild(ctx context.Context, t *target, id string, line func(api.BuildLogLine), status func(api.BuildStatus)) (api.BuildStatus, error) {
	var end api.BuildStatus
	err := t.client().stream(ctx, buildPath(id, "/log/stream"), func(event string, data []byte) error {
		switch event {
		case "line":
			var l api.BuildLogLine
			if err := json.Unmarshal(data, &l); err != nil {
				return err
			}
			line(l)
		case "status":
			var s api.BuildStatus
			if err := json.Unmarshal(data, &s); err != nil {
				return err
			}
			if status != nil {
				status(s)
			}
		case "end":
			return json.Unmarshal(data, &end)
		case "error":
			var e api.StreamError
			json.Unmarshal(data, &e)
			return fmt.Errorf("following build %s: %s", id, e.Message)
		}
		return nil
	})
	if err != nil {
		return api.BuildStatus{}, err
	}
	if end.Status == "" {
		return api.BuildStatus{}, fmt.Errorf("the server ended the output of build %s without its final status", id)
	}
	return end, nil
}

// built reports a queued build and, with wait, follows it: its phases with
// the time since it was queued, its output, then the deployment it makes.
// It fails unless the build succeeds and its deployment goes live.
func built(cmd *cobra.Command, t *target, ref appRef, b api.Build, wait bool) error {
	out := cmd.OutOrStdout()
	what := shortRef(b.Ref)
	if b.Commit != "" {
		what += " @ " + shortSHA(b.Commit)
	}
	fmt.Fprintf(out, "Build #%d queued (%s): %s\n", b.Seq, b.ID, printable(what))
	if !wait {
		fmt.Fprintf(out, "Follow it: berth build logs %s -f\n", b.ID)
		return nil
	}
	start := time.Now()
	elapsed := func() float64 { return time.Since(start).Seconds() }
	end, err := streamBuild(cmd.Context(), t, b.ID,
		func(l api.BuildLogLine) { fmt.Fprintf(out, "         | %s\n", printable(l.Line)) },
		func(s api.BuildStatus) { fmt.Fprintf(out, "[%5.1fs] Build #%d %s\n", elapsed(), b.Seq, s.Status) })
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "[%5.1fs] Build #%d %s\n", elapsed(), b.Seq, end.Status)
	if end.Status != "succeeded" {
		return fmt.Errorf("build #%d %s", b.Seq, endWords(end))
	}
	d, err := builtDeployment(cmd.Context(), t, ref, b.DeploymentID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "[%5.1fs] Deployment #%d queued (%s)\n", elapsed(), d.Seq, d.ID)
	return follow(cmd, t, ref, d)
}

// builtDeployment waits for the deployment a successful build queues right
// after it ends.
func builtDeployment(ctx context.Context, t *target, ref appRef, id string) (api.Deployment, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := t.client().Deployment(ctx, ref, id)
		if err == nil {
			return d.Deployment, nil
		}
		var p *ProblemError
		if !errors.As(err, &p) || p.Status != http.StatusNotFound || time.Now().After(deadline) {
			return api.Deployment{}, fmt.Errorf("the build succeeded, but its deployment %s: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return api.Deployment{}, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// readToken reads an access token from stdin (one trailing newline removed).
func readToken(r io.Reader, flag string) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 4097))
	if err != nil {
		return "", fmt.Errorf("--%s: %w", flag, err)
	}
	if len(b) > 4096 {
		return "", fmt.Errorf("--%s: the token on stdin is too long", flag)
	}
	tok := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("--%s: stdin must hold the token on one line", flag)
	}
	return tok, nil
}

// webhookHelp is how to set up each provider's webhook.
func webhookHelp(w io.Writer, s api.WebhookSecret) {
	help := map[string]string{
		"github":    "GitHub: repository → Settings → Webhooks → Add webhook. Payload URL: the URL; Content type: application/json; Secret: the secret; events: just the push event. Deliveries are signed in X-Hub-Signature-256.",
		"gitlab":    "GitLab: project → Settings → Webhooks. URL: the URL; Secret token: the secret (sent as X-Gitlab-Token); trigger: Push events (and Tag push events to deploy tags).",
		"gitea":     "Gitea, Forgejo: repository → Settings → Webhooks → Add webhook → Gitea. Target URL: the URL; POST; content type application/json; Secret: the secret; trigger: push events. Deliveries are signed in X-Gitea-Signature.",
		"bitbucket": "Bitbucket Cloud: repository settings → Webhooks → Add webhook. URL: the URL; Secret: the secret; trigger: Repository push. Deliveries are signed in X-Hub-Signature.",
	}
	if h, ok := help[s.Provider]; ok {
		fmt.Fprintln(w, h)
		return
	}
	fmt.Fprintln(w, "Set it up at your git provider, with content type application/json and push events:")
	for _, p := range []string{"github", "gitlab", "gitea", "bitbucket"} {
		fmt.Fprintln(w, "  "+help[p])
	}
}

func appWebhookCmd() *cobra.Command {
	var output outputFlag
	var rotate bool
	cmd, _ := appCommand("webhook REF", "Show an app's webhook URL and secret, and how to set it up", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		if err := output.check(); err != nil {
			return err
		}
		show := t.client().WebhookSecret
		if rotate {
			show = t.client().RotateWebhookSecret
		}
		s, err := show(cmd.Context(), ref)
		if err != nil {
			var p *ProblemError
			if errors.As(err, &p) && p.Status == http.StatusNotFound {
				return fmt.Errorf("app %s not found, or it is deployed from an image (only apps built from git have a webhook)", ref)
			}
			return err
		}
		if output.json() {
			return writeJSON(cmd.OutOrStdout(), s)
		}
		out := cmd.OutOrStdout()
		if rotate {
			fmt.Fprintln(out, "New secret: deliveries signed with the old one are refused from now on; enter this one in the provider's webhook settings.")
			fmt.Fprintln(out)
		}
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "URL\t%s\n", s.WebhookURL)
		fmt.Fprintf(w, "secret\t%s\n", s.Secret)
		provider := s.Provider
		if provider == "" {
			provider = "any (recognised by its headers)"
		}
		fmt.Fprintf(w, "provider\t%s\n", provider)
		if s.SignatureHeader != "" {
			fmt.Fprintf(w, "signature\t%s\n", s.SignatureHeader)
		}
		fmt.Fprintf(w, "content type\t%s\n", s.ContentType)
		if err := w.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(out)
		webhookHelp(out, s)
		fmt.Fprintln(out, "Revealing the secret is recorded in the audit log.")
		return nil
	})
	cmd.Long += "\n\nThe secret is shown in full; revealing it is recorded in the audit log. --rotate replaces it first " +
		"(after a leak, or when someone who knew it leaves): deliveries signed with the old secret are refused from then on."
	cmd.Flags().BoolVar(&rotate, "rotate", false, "give the app a new secret and show it")
	output.bind(cmd)
	return cmd
}
