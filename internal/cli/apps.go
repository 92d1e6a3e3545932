package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/deploy"
)

// appRef names an app: PROJECT/APP (production) or PROJECT/ENVIRONMENT/APP.
type appRef struct {
	Project, Environment, Name string
}

func (r appRef) String() string {
	return deploy.AppRef{Project: r.Project, Environment: r.Environment, Name: r.Name}.String()
}

func parseAppRef(s string) (appRef, error) {
	r, err := deploy.ParseAppRef(s)
	if err != nil {
		return appRef{}, fmt.Errorf("%q is not an app: write PROJECT/APP or PROJECT/ENVIRONMENT/APP (%s)", s, fieldMessage(err))
	}
	return appRef{Project: r.Project, Environment: r.Environment, Name: r.Name}, nil
}

const appRefHelp = "An app is named PROJECT/APP (in production) or PROJECT/ENVIRONMENT/APP."

func appCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "app",
		Aliases: []string{"apps"},
		Short:   "Create, deploy and operate apps",
		Long:    "Create, deploy and operate apps. " + appRefHelp,
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(appCreateCmd(), appUpdateCmd(), appListCmd(), appStatusCmd(), appDeployCmd(), appRollbackCmd(), appRestartCmd(),
		appStopCmd(), appStartCmd(), appScaleCmd(), appCancelCmd(), appDeploymentsCmd(), appDeploymentCmd(), appDeleteCmd(),
		appRequestsCmd(), appWebhookCmd(), appSourceCmd())
	return cmd
}

// appCommand is the skeleton shared by the commands that act on one app.
func appCommand(use, short string, nargs int, run func(cmd *cobra.Command, t *target, ref appRef, args []string) error) (*cobra.Command, *clientFlags) {
	flags := &clientFlags{}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  short + ". " + appRefHelp,
		Args:  cobra.ExactArgs(nargs),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseAppRef(args[0])
			if err != nil {
				return err
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			if err := run(cmd, t, ref, args[1:]); err != nil {
				return notFound(t, err, "app "+ref.String())
			}
			return nil
		},
	}
	flags.bind(cmd)
	return cmd, flags
}

// specFlags are the spec flags shared by berth app create and berth app
// update; apply turns them into changes to a spec.
type specFlags struct {
	image, memory, healthPath, healthCmd, command string
	port, replicas                                int
	cpu                                           float64
	publish, volumes, args                        []string
	files, secretFiles, binds                     []string
}

func (f *specFlags) bind(cmd *cobra.Command, imageHelp string) {
	fl := cmd.Flags()
	fl.StringVar(&f.image, "image", "", imageHelp)
	fl.IntVar(&f.port, "port", 0, "container port serving HTTP (0: not web-facing)")
	fl.IntVar(&f.replicas, "replicas", 1, "number of containers")
	fl.Float64Var(&f.cpu, "cpu", 0, "CPU limit in cores, e.g. 0.5 (0: no limit)")
	fl.StringVar(&f.memory, "memory", "", "memory limit, e.g. 256m or 1g (binary units: k, m, g, t; 0: no limit)")
	fl.StringArrayVar(&f.publish, "publish", nil, "publish PUBLISHED:TARGET[/tcp|udp] on every node's host network, bypassing the proxy (repeatable)")
	fl.StringArrayVar(&f.volumes, "volume", nil, "volume NAME:/PATH[:ro][:single-writer] (repeatable)")
	fl.StringArrayVar(&f.files, "file", nil, "file /PATH=@LOCAL_FILE: put the local file's content at /PATH in the containers, versioned with each deployment (repeatable)")
	fl.StringArrayVar(&f.secretFiles, "secret-file", nil, "like --file, delivered as a Docker secret (tmpfs) and never shown again (repeatable)")
	fl.StringArrayVar(&f.binds, "bind", nil, "bind mount /HOST/PATH:/PATH[:ro] from the node (owner or admin role) (repeatable)")
	fl.StringVar(&f.healthPath, "health-path", "", "HTTP path that answers 2xx/3xx when a replica is ready, e.g. /healthz")
	fl.StringVar(&f.healthCmd, "health-cmd", "", "command run in the container to check health, split like a shell would (quotes, backslashes) but never run by one")
	fl.StringVar(&f.command, "command", "", "replace the image's ENTRYPOINT, split like --health-cmd")
	fl.StringArrayVar(&f.args, "arg", nil, "replace the image's CMD with these arguments, one per --arg (repeatable)")
}

// apply checks the flags for which given reports true and writes them into
// s; a list flag replaces its whole list. Every error names its flag.
func (f *specFlags) apply(s *api.AppSpec, given func(flag string) bool) error {
	if given("image") {
		if err := app.ValidateImage(f.image); err != nil {
			return fmt.Errorf("--image %s", fieldMessage(err))
		}
		s.Image = f.image
	}
	if given("port") {
		if f.port < 0 || f.port > 65535 {
			return fmt.Errorf("--port %d: use a port between 1 and 65535, or 0 for none", f.port)
		}
		s.Port = f.port
	}
	if given("replicas") {
		if f.replicas < 0 {
			return fmt.Errorf("--replicas %d: use 0 or more", f.replicas)
		}
		replicas := f.replicas
		s.Replicas = &replicas
	}
	if given("cpu") {
		if f.cpu < 0 || math.IsNaN(f.cpu) || math.IsInf(f.cpu, 0) {
			return fmt.Errorf("--cpu %v: use a number of cores such as 0.5 or 2", f.cpu)
		}
		s.Resources.CPULimit = f.cpu
	}
	if given("memory") {
		s.Resources.MemoryLimit = 0
		if f.memory != "" {
			n, err := parseSize(f.memory)
			if err != nil {
				return fmt.Errorf("--memory %q: %v", f.memory, err)
			}
			s.Resources.MemoryLimit = n
		}
	}
	if given("publish") {
		s.Ports = nil
		for _, p := range f.publish {
			pp, err := parsePublish(p)
			if err != nil {
				return fmt.Errorf("--publish %q: %v", p, err)
			}
			s.Ports = append(s.Ports, pp)
		}
	}
	if given("volume") {
		s.Volumes = nil
		for _, v := range f.volumes {
			vol, err := parseVolume(v)
			if err != nil {
				return fmt.Errorf("--volume %q: %v", v, err)
			}
			s.Volumes = append(s.Volumes, vol)
		}
	}
	// --file and --secret-file each replace their own kind of file.
	for _, list := range []struct {
		flag   string
		values []string
		secret bool
	}{{"file", f.files, false}, {"secret-file", f.secretFiles, true}} {
		if !given(list.flag) {
			continue
		}
		kept := s.Files[:0:0]
		for _, fm := range s.Files {
			if fm.Secret != list.secret {
				kept = append(kept, fm)
			}
		}
		for _, v := range list.values {
			fm, err := parseFileFlag(v, list.secret)
			if err != nil {
				return fmt.Errorf("--%s %q: %v", list.flag, v, err)
			}
			kept = append(kept, fm)
		}
		s.Files = kept
	}
	if given("bind") {
		s.Binds = nil
		for _, b := range f.binds {
			bm, err := parseBind(b)
			if err != nil {
				return fmt.Errorf("--bind %q: %v", b, err)
			}
			s.Binds = append(s.Binds, bm)
		}
	}
	if given("command") {
		s.Command = nil
		if f.command != "" {
			argv, err := splitWords(f.command)
			if err != nil {
				return fmt.Errorf("--command: %v", err)
			}
			s.Command = argv
		}
	}
	if given("arg") {
		s.Args = f.args
	}
	switch {
	case f.healthPath != "" && f.healthCmd != "":
		return errors.New("--health-path and --health-cmd are two kinds of check: give one")
	case f.healthPath != "":
		if !strings.HasPrefix(f.healthPath, "/") {
			return fmt.Errorf("--health-path %q: must start with /", f.healthPath)
		}
		s.Health = &api.HealthCheck{Type: app.HealthHTTP, Path: f.healthPath}
	case f.healthCmd != "":
		argv, err := splitWords(f.healthCmd)
		if err != nil {
			return fmt.Errorf("--health-cmd: %v", err)
		}
		s.Health = &api.HealthCheck{Type: app.HealthCommand, Command: argv}
	}
	return nil
}

// createFlags are berth app create's flags: the spec and its variables,
// and the git source of an app built from a repository.
type createFlags struct {
	specFlags
	envFile string
	env     []string
	gitFlags
}

// gitFlags say where an app built from git gets its code and how it is built.
// The repository is --git URL, or --connection NAME with --repo OWNER/NAME.
type gitFlags struct {
	git, connection, repo               string
	branch, dockerfile, context, target string
	buildArgs, buildSecrets, watchPaths []string
	tokenStdin, deployTags, submodules  bool
}

// fromGit reports whether a flag naming a repository was given: the app is
// built from git, and gitRequest checks the rest.
func (f *gitFlags) fromGit() bool { return f.git != "" || f.connection != "" || f.repo != "" }

func (f *createFlags) bind(cmd *cobra.Command) {
	f.specFlags.bind(cmd, "image to run, e.g. nginx:1.27 (required unless --git or --connection)")
	fl := cmd.Flags()
	fl.StringArrayVar(&f.env, "env", nil, "variable KEY=VALUE (repeatable)")
	fl.StringVar(&f.envFile, "env-file", "", "read variables from a .env file (--env wins over it)")
	fl.StringVar(&f.git, "git", "", "build the app from this git repository (https://…, ssh://… or git@host:owner/repo.git) instead of running --image")
	fl.StringVar(&f.connection, "connection", "", "build the app from a repository of this git connection (with --repo) instead of running --image; its webhook is set up at the provider (see berth connection)")
	fl.StringVar(&f.repo, "repo", "", "--connection: the repository, OWNER/NAME (berth connection repos NAME lists them)")
	fl.StringVar(&f.branch, "branch", "", "--git/--connection: the branch deploys build and pushes deploy (default main)")
	fl.StringVar(&f.dockerfile, "dockerfile", "", "--git/--connection: the Dockerfile, relative to --context (default Dockerfile)")
	fl.StringVar(&f.context, "context", "", "--git/--connection: the build context, relative to the repository root (default the root)")
	fl.StringVar(&f.target, "target", "", "--git/--connection: the stage of a multi-stage Dockerfile to build (default the last)")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "--git/--connection: ARG value KEY=VALUE; it stays in the image's history, so never a secret (repeatable)")
	fl.StringArrayVar(&f.buildSecrets, "build-secret", nil, "--git/--connection: name of an app variable the build reads as a secret: RUN --mount=type=secret,id=NAME (repeatable)")
	fl.StringArrayVar(&f.watchPaths, "watch-path", nil, "--git/--connection: deploy a push only when it changes a file matching this pattern, e.g. api/** (repeatable)")
	fl.BoolVar(&f.tokenStdin, "git-token-stdin", false, "--git: read an access token for a private HTTPS repository from stdin (--connection: instead of the connection's); stored encrypted, never shown again")
	fl.BoolVar(&f.deployTags, "deploy-tags", false, "--git/--connection: tag pushes deploy the tagged commit too")
	fl.BoolVar(&f.submodules, "submodules", false, "--git/--connection: also fetch the repository's submodules")
}

// gitRequest checks the git flags and builds the source; nil without --git
// or --connection.
func (f *createFlags) gitRequest(cmd *cobra.Command) (*api.GitRequest, error) {
	switch {
	case !f.fromGit():
		for _, name := range []string{"branch", "dockerfile", "context", "target", "build-arg", "build-secret", "watch-path", "git-token-stdin", "deploy-tags", "submodules"} {
			if cmd.Flags().Changed(name) {
				return nil, fmt.Errorf("--%s is for apps built from git: add --git URL, or --connection NAME --repo OWNER/NAME", name)
			}
		}
		return nil, nil
	case f.git != "" && (f.connection != "" || f.repo != ""):
		return nil, errors.New("--git and --connection/--repo are two ways to name the repository: give one (--git URL, or --connection NAME --repo OWNER/NAME)")
	case f.connection != "" && f.repo == "":
		return nil, fmt.Errorf("--connection needs --repo OWNER/NAME: the repository to build (berth connection repos %s lists them)", f.connection)
	case f.repo != "" && f.connection == "":
		return nil, errors.New("--repo needs --connection NAME: the git connection the repository is reached through (berth connection list shows them)")
	case f.image != "" && f.git != "":
		return nil, errors.New("--git and --image are two ways to get the app's image: give one (--git builds it from the repository)")
	case f.image != "":
		return nil, errors.New("--connection and --image are two ways to get the app's image: give one (--connection builds it from the repository)")
	}
	args, err := parseAssignments(f.buildArgs, "--build-arg")
	if err != nil {
		return nil, err
	}
	g := &api.GitRequest{URL: f.git, Connection: f.connection, Repo: f.repo, Branch: f.branch, Dockerfile: f.dockerfile, Context: f.context, Target: f.target, BuildSecrets: f.buildSecrets, Submodules: f.submodules}
	if len(args) > 0 {
		g.BuildArgs = args
	}
	if f.deployTags || len(f.watchPaths) > 0 {
		branch := f.branch
		if branch == "" {
			branch = "main"
		}
		g.Filter = &api.GitFilter{Branches: []string{branch}, Tags: f.deployTags, WatchPaths: f.watchPaths}
	}
	if f.tokenStdin {
		if g.Token, err = readToken(cmd.InOrStdin(), "git-token-stdin"); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// spec checks the flags and builds the spec; every error names its flag.
func (f *createFlags) spec(cmd *cobra.Command) (api.AppSpec, map[string]string, error) {
	if f.image == "" && !f.fromGit() {
		return api.AppSpec{}, nil, errors.New("--image is required (or --git, or --connection and --repo, to build the app from a repository)")
	}
	var s api.AppSpec
	if err := f.apply(&s, func(flag string) bool { return flag != "image" || !f.fromGit() }); err != nil {
		return api.AppSpec{}, nil, err
	}
	env := map[string]string{}
	if f.envFile != "" {
		_, vars, err := readDotEnv("--env-file", f.envFile)
		if err != nil {
			return api.AppSpec{}, nil, err
		}
		maps.Copy(env, vars)
	}
	vars, err := parseAssignments(f.env, "--env")
	if err != nil {
		return api.AppSpec{}, nil, err
	}
	maps.Copy(env, vars)
	return s, env, nil
}

var sizeRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?$`)

// parseSize reads a size in bytes: 268435456, 256m, 1.5g, 512MiB. Units are
// binary, as Docker's.
func parseSize(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, errors.New("use a size such as 256m, 1g or 512MiB")
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, errors.New("use a size such as 256m, 1g or 512MiB")
	}
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[m[2]]
	v := n * float64(uint64(1)<<shift)
	if v >= 1<<62 {
		return 0, errors.New("is too large")
	}
	if v != math.Trunc(v) {
		return 0, errors.New("is not a whole number of bytes")
	}
	return int64(v), nil
}

// parsePublish reads PUBLISHED:TARGET[/PROTOCOL] or PORT[/PROTOCOL].
func parsePublish(s string) (api.PublishedPort, error) {
	ports, proto, hasProto := strings.Cut(s, "/")
	if hasProto && proto != "tcp" && proto != "udp" {
		return api.PublishedPort{}, fmt.Errorf("protocol %q: use tcp or udp", proto)
	}
	pub, target, twoPorts := strings.Cut(ports, ":")
	if !twoPorts {
		target = pub
	}
	port := func(what, v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return 0, fmt.Errorf("%s port %q: use a number between 1 and 65535 (write PUBLISHED:TARGET[/udp])", what, v)
		}
		return n, nil
	}
	p, err := port("published", pub)
	if err != nil {
		return api.PublishedPort{}, err
	}
	t, err := port("target", target)
	if err != nil {
		return api.PublishedPort{}, err
	}
	return api.PublishedPort{Published: p, Target: t, Protocol: proto}, nil
}

// parseVolume reads NAME:/PATH[:ro][:single-writer].
func parseVolume(s string) (api.Volume, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || parts[0] == "" || !strings.HasPrefix(parts[1], "/") {
		return api.Volume{}, errors.New("write NAME:/PATH[:ro][:single-writer]")
	}
	if err := app.ValidateName("name", parts[0]); err != nil {
		return api.Volume{}, fmt.Errorf("volume %s", fieldMessage(err))
	}
	v := api.Volume{Name: parts[0], Target: parts[1]}
	seen := map[string]bool{}
	for _, opt := range parts[2:] {
		if seen[opt] {
			return api.Volume{}, fmt.Errorf("option %q is given twice", opt)
		}
		seen[opt] = true
		switch opt {
		case "ro":
			v.ReadOnly = true
		case "single-writer":
			v.SingleWriter = true
		default:
			return api.Volume{}, fmt.Errorf("unknown option %q: use ro and/or single-writer", opt)
		}
	}
	return v, nil
}

// parseFileFlag reads /PATH=@LOCAL_FILE and the local file, which must be
// UTF-8 text (the spec is JSON) of at most app.MaxFileSize bytes.
func parseFileFlag(s string, secret bool) (api.FileMount, error) {
	target, local, ok := strings.Cut(s, "=@")
	if !ok || !strings.HasPrefix(target, "/") || local == "" {
		return api.FileMount{}, errors.New("write /PATH=@LOCAL_FILE, e.g. /etc/app/config.yml=@./config.yml")
	}
	fh, err := os.Open(local)
	if err != nil {
		return api.FileMount{}, err
	}
	defer fh.Close()
	if st, err := fh.Stat(); err != nil {
		return api.FileMount{}, err
	} else if !st.Mode().IsRegular() {
		return api.FileMount{}, fmt.Errorf("%s is not a regular file", local)
	}
	b, err := io.ReadAll(io.LimitReader(fh, app.MaxFileSize))
	if err != nil {
		return api.FileMount{}, err
	}
	switch {
	case len(b) >= app.MaxFileSize:
		return api.FileMount{}, fmt.Errorf("%s is too large: files must be under 500 KiB", local)
	case len(b) == 0:
		return api.FileMount{}, fmt.Errorf("%s is empty, and Swarm cannot deliver an empty file", local)
	case !utf8.Valid(b):
		return api.FileMount{}, fmt.Errorf("%s is not UTF-8 text; binary files are not supported", local)
	}
	return api.FileMount{Target: target, Content: string(b), Secret: secret}, nil
}

// parseBind reads /HOST:/PATH[:ro].
func parseBind(s string) (api.BindMount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || !strings.HasPrefix(parts[0], "/") || !strings.HasPrefix(parts[1], "/") {
		return api.BindMount{}, errors.New("write /HOST/PATH:/CONTAINER/PATH[:ro]")
	}
	b := api.BindMount{Source: parts[0], Target: parts[1]}
	if len(parts) == 3 {
		if parts[2] != "ro" {
			return api.BindMount{}, fmt.Errorf("unknown option %q: use ro", parts[2])
		}
		b.ReadOnly = true
	}
	return b, nil
}

// splitWords splits a command line into argv the way a POSIX shell splits
// words: whitespace separates, 'single quotes' are literal, "double quotes"
// keep \" \\ \$ and \` escapes, and a backslash outside quotes escapes the
// next character. Nothing else of a shell applies (no variables, globs,
// pipes), and nothing is ever run by a shell: the result is the argv.
func splitWords(s string) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   byte
		escaped bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			cur.WriteByte(c)
			escaped = false
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0:
				i++
				cur.WriteByte(s[i])
			default:
				cur.WriteByte(c)
			}
		case c == '\\':
			escaped, inWord = true, true
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	switch {
	case quote != 0:
		return nil, fmt.Errorf("unbalanced %c quote in %q", quote, s)
	case escaped:
		return nil, fmt.Errorf("%q ends with a lone backslash", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("is empty")
	}
	return words, nil
}

func appCreateCmd() *cobra.Command {
	var (
		flags clientFlags
		cf    createFlags
	)
	cmd := &cobra.Command{
		Use:   "create PROJECT/APP (--image IMAGE | --git URL | --connection NAME --repo OWNER/NAME)",
		Short: "Create an app from an image or a git repository; it runs once deployed",
		Long: "Create an app from an image, or built from a git repository: by URL with --git, or picked through a git\n" +
			"connection with --connection and --repo (see berth connection), which also sets the app's webhook up at the\n" +
			"provider. Nothing runs until berth app deploy (or, for an app built from git, a push the app's webhook\n" +
			"receives: see berth app webhook). " + appRefHelp,
		Example: "  berth app create shop/web --image nginx:1.27 --port 80 --replicas 2 --memory 256m --health-path /healthz\n" +
			"  berth app create shop/db --image postgres:17 --env-file db.env --volume data:/var/lib/postgresql/data:single-writer \\\n" +
			"      --health-cmd 'pg_isready -U postgres'\n" +
			"  berth app create shop/api --image ghcr.io/acme/api:1 --file /etc/api/config.yml=@./config.yml --secret-file /run/secrets/key=@./key.pem\n" +
			"  berth app create shop/api --git https://git.example.com/shop/api.git --branch main --dockerfile Dockerfile --port 8080\n" +
			"  echo \"$TOKEN\" | berth app create shop/api --git https://github.com/acme/api.git --git-token-stdin --watch-path 'api/**' --port 8080\n" +
			"  berth app create shop/api --connection gitea --repo acme/api --branch main --port 8080",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseAppRef(args[0])
			if err != nil {
				return err
			}
			spec, env, err := cf.spec(cmd)
			if err != nil {
				return err
			}
			git, err := cf.gitRequest(cmd)
			if err != nil {
				return err
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			a, err := t.client().CreateApp(cmd.Context(), ref.Project, api.CreateAppRequest{Name: ref.Name, Environment: ref.Environment, Spec: spec, Env: env, Git: git})
			if err != nil {
				return notFound(t, err, "project or environment of "+ref.String())
			}
			out := cmd.OutOrStdout()
			if s := a.Source; s != nil {
				fmt.Fprintf(out, "Created app %s (%s), built from %s (branch %s).\n", ref, a.ID, printable(s.CloneURL), printable(s.Branch))
				if strings.HasPrefix(s.ProviderWebhook, "created ") {
					fmt.Fprintf(out, "Webhook URL: %s\n", s.WebhookURL)
					fmt.Fprintf(out, "Webhook at the provider: %s; pushes build and deploy from now on\n", printable(s.ProviderWebhook))
				} else {
					fmt.Fprintf(out, "Webhook URL: %s (secret and setup: berth app webhook %s)\n", s.WebhookURL, ref)
					if s.ProviderWebhook != "" {
						fmt.Fprintf(out, "Webhook at the provider: %s\n", printable(s.ProviderWebhook))
					}
				}
				if s.DeployKey != "" {
					fmt.Fprintf(out, "Add this read-only deploy key to the repository:\n  %s\n", s.DeployKey)
				}
				fmt.Fprintf(out, "Build and deploy it: berth app deploy %s --follow\n", ref)
				return nil
			}
			fmt.Fprintf(out, "Created app %s (%s). Deploy it: berth app deploy %s\n", ref, a.ID, ref)
			return nil
		},
	}
	flags.bind(cmd)
	cf.bind(cmd)
	return cmd
}

func appListCmd() *cobra.Command {
	return listVerb[api.AppSummary]{
		use: "list PROJECT", short: "List a project's apps", args: cobra.ExactArgs(1),
		header: []string{"NAME", "ENVIRONMENT", "IMAGE", "REPLICAS", "STATE", "UPDATED"},
		fetch: func(ctx context.Context, t *target, args []string) ([]api.AppSummary, error) {
			apps, err := t.client().Apps(ctx, args[0])
			return apps, notFound(t, err, "project "+args[0])
		},
		doc: func(apps []api.AppSummary) any { return api.AppList{Apps: apps} },
		row: func(a api.AppSummary) []string {
			state := "running"
			switch {
			case a.CurrentDeploymentID == "":
				state = "not deployed"
			case a.Stopped:
				state = "stopped"
			}
			return []string{a.Name, a.Environment, a.Image, strconv.Itoa(a.Replicas), state, formatTime(&a.UpdatedAt)}
		},
	}.command()
}

func appStatusCmd() *cobra.Command {
	var output outputFlag
	cmd, _ := appCommand("status REF", "Show an app's replicas, tasks and deployments", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		if err := output.check(); err != nil {
			return err
		}
		st, err := t.client().AppStatus(cmd.Context(), ref)
		if err != nil {
			return err
		}
		if output.json() {
			return writeJSON(cmd.OutOrStdout(), st)
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "app\t%s (%s)\n", ref, st.App.ID)
		fmt.Fprintf(w, "image\t%s\n", st.App.Spec.Image)
		desired := 0
		if st.App.Spec.Replicas != nil {
			desired = *st.App.Spec.Replicas
		}
		state := fmt.Sprintf("%d desired, %d running", desired, st.Release.Running)
		if st.App.Stopped {
			state += " (stopped)"
		}
		fmt.Fprintf(w, "replicas\t%s\n", state)
		if d := st.Current; d != nil {
			fmt.Fprintf(w, "current\t#%d %s since %s\n", d.Seq, imageWithDigest(*d), formatTime(finishedOrCreated(*d)))
		} else {
			fmt.Fprintf(w, "current\tnone: run berth app deploy %s\n", ref)
		}
		if d := st.InFlight; d != nil {
			fmt.Fprintf(w, "in flight\t#%d %s (%s)\n", d.Seq, d.Status, printable(d.Reason))
		}
		if st.Release.Unavailable != "" {
			fmt.Fprintf(w, "release\t%s\n", printable(st.Release.Unavailable))
		}
		if st.Release.Problem != "" {
			fmt.Fprintf(w, "problem\t%s\n", printable(st.Release.Problem))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if len(st.Release.Tasks) == 0 {
			return nil
		}
		fmt.Fprintln(cmd.OutOrStdout())
		w = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "SLOT\tNODE\tSTATE\tSINCE\tMESSAGE")
		for _, task := range st.Release.Tasks {
			since := "-"
			if !task.Since.IsZero() {
				since = formatTime(&task.Since)
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", task.Slot, printable(task.Node), task.State, since, printable(task.Message))
		}
		return w.Flush()
	})
	output.bind(cmd)
	return cmd
}

func finishedOrCreated(d api.Deployment) *time.Time {
	if d.FinishedAt != nil {
		return d.FinishedAt
	}
	return &d.CreatedAt
}

// imageWithDigest is image@<first 12 hex digits of the digest>, or the image.
func imageWithDigest(d api.Deployment) string {
	_, hex, ok := strings.Cut(d.ImageDigest, "sha256:")
	if !ok {
		return d.Image
	}
	return d.Image + "@" + hex[:min(12, len(hex))]
}

// queued reports a new deployment and, with wait, follows it to its end.
func queued(cmd *cobra.Command, t *target, ref appRef, d api.Deployment, wait bool) error {
	fmt.Fprintf(cmd.OutOrStdout(), "Deployment #%d queued (%s): %s\n", d.Seq, d.ID, printable(d.Reason))
	if !wait {
		fmt.Fprintf(cmd.OutOrStdout(), "Follow it: berth app deployment %s %d\n", ref, d.Seq)
		return nil
	}
	return follow(cmd, t, ref, d)
}

// follow prints a deployment's steps with the time since it was queued
// until it ends; it fails unless the deployment went live.
func follow(cmd *cobra.Command, t *target, ref appRef, d api.Deployment) error {
	out := cmd.OutOrStdout()
	var last api.DeploymentStatus
	err := t.client().stream(cmd.Context(), appPath(ref, "/deployments/"+d.ID+"/events"), func(event string, data []byte) error {
		switch event {
		case "step":
			var s api.DeploymentStep
			if err := json.Unmarshal(data, &s); err != nil {
				return err
			}
			fmt.Fprintf(out, "[%4.1fs] %s\n", max(s.At.Sub(d.CreatedAt), 0).Seconds(), printable(s.Message))
		case "status":
			return json.Unmarshal(data, &last)
		case "error":
			var e api.StreamError
			json.Unmarshal(data, &e)
			return fmt.Errorf("following deployment #%d: %s", d.Seq, e.Message)
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch last.Status {
	case "live":
		fmt.Fprintf(out, "Deployment #%d of %s is live\n", d.Seq, ref)
		return nil
	case "":
		return fmt.Errorf("the server ended the events of deployment #%d without a status", d.Seq)
	}
	msg := fmt.Sprintf("deployment #%d %s", d.Seq, last.Status)
	if last.Error != "" {
		msg += ": " + printable(last.Error)
	}
	return errors.New(msg)
}

func appDeployCmd() *cobra.Command {
	var (
		image, commit string
		wait          bool
	)
	cmd, _ := appCommand("deploy REF", "Deploy an app: a new image, or a build of its git branch or a commit", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		if image != "" {
			if err := app.ValidateImage(image); err != nil {
				return fmt.Errorf("--image %s", fieldMessage(err))
			}
		}
		st, err := t.client().AppStatus(cmd.Context(), ref)
		if err != nil {
			return err
		}
		if st.App.Source != nil {
			if image != "" {
				return fmt.Errorf("%s is built from git: --image is for apps deployed from an image (use --commit to build one commit)", ref)
			}
			b, err := t.client().StartBuild(cmd.Context(), ref, commit)
			if err != nil {
				return err
			}
			return built(cmd, t, ref, b, wait)
		}
		if commit != "" {
			return fmt.Errorf("%s is deployed from an image: --commit is for apps built from git", ref)
		}
		d, err := t.client().Deploy(cmd.Context(), ref, api.DeployRequest{Image: image})
		if err != nil {
			return err
		}
		return queued(cmd, t, ref, d, wait)
	})
	cmd.Long += "\n\nAn app built from git is built first (the head of its branch, or --commit), and the image deployed\nwhen the build succeeds; --follow prints the build's output, then the deployment's steps."
	cmd.Flags().StringVar(&image, "image", "", "deploy this image (saved into the app's spec)")
	cmd.Flags().StringVar(&commit, "commit", "", "apps built from git: build this full commit id instead of the branch head")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the build and the deployment; exit 1 unless it goes live")
	cmd.Flags().BoolVar(&wait, "follow", false, "same as --wait")
	return cmd
}

func appRollbackCmd() *cobra.Command {
	var (
		to   string
		wait bool
	)
	cmd, _ := appCommand("rollback REF --to DEPLOYMENT", "Deploy an earlier, once live deployment again", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		if to == "" {
			return errors.New("--to is required: a deployment number (3) or id (see berth app deployments)")
		}
		d, err := t.client().Rollback(cmd.Context(), ref, to)
		if err != nil {
			var p *ProblemError
			if errors.As(err, &p) && p.Status == 404 {
				return fmt.Errorf("--to %s: no such deployment of %s", to, ref)
			}
			return err
		}
		return queued(cmd, t, ref, d, wait)
	})
	cmd.Flags().StringVar(&to, "to", "", "the deployment to restore: its number (3 or #3) or id")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the deployment; exit 1 unless it goes live")
	return cmd
}

func appRestartCmd() *cobra.Command {
	var wait bool
	cmd, _ := appCommand("restart REF", "Replace an app's containers without downtime", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		d, err := t.client().Restart(cmd.Context(), ref)
		if err != nil {
			return err
		}
		return queued(cmd, t, ref, d, wait)
	})
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the deployment; exit 1 unless it goes live")
	return cmd
}

func appStopCmd() *cobra.Command {
	cmd, _ := appCommand("stop REF", "Stop an app: scale it to zero until started", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		if err := t.client().Stop(cmd.Context(), ref); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Stopped %s\n", ref)
		return nil
	})
	return cmd
}

func appStartCmd() *cobra.Command {
	cmd, _ := appCommand("start REF", "Start a stopped app with its replica count", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		if err := t.client().Start(cmd.Context(), ref); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Started %s\n", ref)
		return nil
	})
	return cmd
}

func appScaleCmd() *cobra.Command {
	cmd, _ := appCommand("scale REF REPLICAS", "Change an app's number of replicas in place", 2, func(cmd *cobra.Command, t *target, ref appRef, args []string) error {
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 0 {
			return fmt.Errorf("REPLICAS %q: use a whole number, 0 or more", args[0])
		}
		if _, err := t.client().Scale(cmd.Context(), ref, n); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Scaled %s to %d replica(s)\n", ref, n)
		return nil
	})
	return cmd
}

func appCancelCmd() *cobra.Command {
	cmd, _ := appCommand("cancel REF DEPLOYMENT", "Cancel a queued or starting deployment", 2, func(cmd *cobra.Command, t *target, ref appRef, args []string) error {
		d, err := t.client().CancelDeployment(cmd.Context(), ref, args[0])
		if err != nil {
			return noDeployment(err, ref, args[0])
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Cancelling deployment #%d of %s; the current release keeps serving\n", d.Seq, ref)
		return nil
	})
	return cmd
}

// noDeployment words a 404 of a deployment operation.
func noDeployment(err error, ref appRef, id string) error {
	var p *ProblemError
	if errors.As(err, &p) && p.Status == 404 {
		return fmt.Errorf("%s has no deployment %s, or does not exist (see berth app deployments %s)", ref, id, ref)
	}
	return err
}

func deploymentDuration(d api.Deployment) string {
	if d.StartedAt == nil || d.FinishedAt == nil {
		return "-"
	}
	return d.FinishedAt.Sub(*d.StartedAt).Round(100 * time.Millisecond).String()
}

func appDeploymentsCmd() *cobra.Command {
	var (
		output outputFlag
		limit  int
	)
	cmd, _ := appCommand("deployments REF", "List an app's deployments, newest first", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		if err := output.check(); err != nil {
			return err
		}
		if limit < 1 || limit > 100 {
			return fmt.Errorf("--limit %d: use 1 to 100", limit)
		}
		ds, err := t.client().Deployments(cmd.Context(), ref, limit)
		if err != nil {
			return err
		}
		if output.json() {
			return writeJSON(cmd.OutOrStdout(), api.DeploymentList{Deployments: ds})
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "#\tID\tSTATUS\tIMAGE\tREASON\tBY\tCREATED\tDURATION")
		for _, d := range ds {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Seq, d.ID, d.Status, imageWithDigest(d), printable(d.Reason), d.CreatedBy, formatTime(&d.CreatedAt), deploymentDuration(d))
		}
		return w.Flush()
	})
	output.bind(cmd)
	cmd.Flags().IntVar(&limit, "limit", 20, "how many to list, up to 100")
	return cmd
}

func appDeploymentCmd() *cobra.Command {
	var output outputFlag
	cmd, _ := appCommand("deployment REF DEPLOYMENT", "Show a deployment and its steps", 2, func(cmd *cobra.Command, t *target, ref appRef, args []string) error {
		if err := output.check(); err != nil {
			return err
		}
		d, err := t.client().Deployment(cmd.Context(), ref, args[0])
		if err != nil {
			return noDeployment(err, ref, args[0])
		}
		if output.json() {
			return writeJSON(cmd.OutOrStdout(), d)
		}
		out := cmd.OutOrStdout()
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "deployment\t#%d (%s) of %s\n", d.Seq, d.ID, ref)
		fmt.Fprintf(w, "status\t%s\n", d.Status)
		if d.Error != "" {
			fmt.Fprintf(w, "error\t%s\n", printable(d.Error))
		}
		fmt.Fprintf(w, "reason\t%s\n", printable(d.Reason))
		fmt.Fprintf(w, "image\t%s\n", d.Image)
		if d.ImageDigest != "" {
			fmt.Fprintf(w, "digest\t%s\n", d.ImageDigest)
		}
		if d.Service != "" {
			fmt.Fprintf(w, "release\t%s\n", d.Service)
		}
		fmt.Fprintf(w, "by\t%s\n", d.CreatedBy)
		fmt.Fprintf(w, "created\t%s\n", formatTime(&d.CreatedAt))
		fmt.Fprintf(w, "duration\t%s\n", deploymentDuration(d.Deployment))
		if err := w.Flush(); err != nil {
			return err
		}
		if len(d.Steps) > 0 {
			fmt.Fprintln(out)
		}
		for _, s := range d.Steps {
			fmt.Fprintf(out, "[%4.1fs] %s\n", max(s.At.Sub(d.CreatedAt), 0).Seconds(), printable(s.Message))
		}
		return nil
	})
	output.bind(cmd)
	return cmd
}

func appDeleteCmd() *cobra.Command {
	var yes, removeVolumes, yesRemoveVolumes bool
	cmd, _ := appCommand("delete REF --yes [--remove-volumes]", "Delete an app with its releases, deployments and variables", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		if !yes {
			return fmt.Errorf("deleting %s stops it and removes its deployments and variables; its volumes are kept unless --remove-volumes. Pass --yes to delete it", ref)
		}
		if removeVolumes && !yesRemoveVolumes {
			if err := confirmName(cmd, ref); err != nil {
				return err
			}
		}
		if err := t.client().DeleteApp(cmd.Context(), ref, removeVolumes); err != nil {
			return err
		}
		if removeVolumes {
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s and its volumes\n", ref)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s; its volumes are kept\n", ref)
		}
		return nil
	})
	cmd.Long += "\n\nDeleting also the volumes, and the data in them, asks twice: --remove-volumes, then the\napp's name typed on stdin (or --yes-remove-volumes in scripts)."
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	cmd.Flags().BoolVar(&removeVolumes, "remove-volumes", false, "also delete the app's volumes and their data")
	cmd.Flags().BoolVar(&yesRemoveVolumes, "yes-remove-volumes", false, "confirm --remove-volumes without typing the app's name")
	return cmd
}

// confirmName asks for the app's name on stdin before data is destroyed.
func confirmName(cmd *cobra.Command, ref appRef) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "This deletes the volumes of %s and every file in them. Type the app's name (%s) to confirm: ", ref, ref.Name)
	line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 256)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if strings.TrimSpace(line) != ref.Name {
		fmt.Fprintln(cmd.ErrOrStderr())
		return fmt.Errorf("the name typed does not match %s: nothing was deleted (scripts can pass --yes-remove-volumes)", ref.Name)
	}
	return nil
}
