// Package build turns a checkout into an image through the Docker Engine's
// build API, and keeps the disk those images take in check.
//
// It owns what a user can put into a build: paths (the context and the
// Dockerfile stay inside the checkout), build args, target, tags and labels
// are validated before the engine is called; the context is a tar made here
// (honouring .dockerignore, never following a symlink out of the context);
// the build's output is relayed line by line with secrets masked; a failure
// names the Dockerfile step and what it printed. Nothing goes through a shell.
//
// Builds run on BuildKit, the engine's builder since Engine 18.09 (and its
// default since 23.0): steps of independent stages run side by side, and
// build secrets reach RUN --mount=type=secret through a client session
// without landing in the image. An engine without BuildKit gets the classic
// builder, which Options.Builder can also ask for.
package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/distribution/reference"
	dockerbuild "github.com/docker/docker/api/types/build"
)

// Labels every image Build makes carries; Prune finds an app's images by
// LabelApp and orders them by LabelBuilt.
const (
	LabelApp        = "berth.app"
	LabelCommit     = "berth.commit"
	LabelDeployment = "berth.deployment"
	// LabelBuilt is when the build ran (RFC 3339): BuildKit dates an image
	// by its newest layer, the same for every rebuild of unchanged code.
	LabelBuilt = "berth.built"
)

// Builder is the subset of the Docker client Build uses.
type Builder interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options dockerbuild.ImageBuildOptions) (dockerbuild.ImageBuildResponse, error)
	// DialHijack opens the connection a BuildKit session runs on.
	DialHijack(ctx context.Context, url, proto string, meta map[string][]string) (net.Conn, error)
}

// The engine's builders, for Options.Builder.
const (
	BuildKit = "buildkit"
	Classic  = "classic"
)

// Options describe one build. Every field a user controls is validated by
// Build before the engine is called.
type Options struct {
	// Dir is the checkout, an absolute path. Nothing outside it is read.
	Dir string
	// Context is the build context, a directory relative to Dir; "" is Dir.
	Context string
	// Dockerfile is relative to the context; "" is "Dockerfile".
	Dockerfile string
	// BuildArgs are the Dockerfile's ARG values. Never secrets: they stay
	// in the image history.
	BuildArgs map[string]string
	// Target is the stage of a multi-stage Dockerfile to stop at; "" builds
	// the last one.
	Target string
	// Tags name the image, e.g. "berth/shop-api:3f2a1c0" (see Tags).
	Tags []string
	// App, Commit and DeploymentID become the image's labels. App is
	// required: Prune finds an app's images by it.
	App, Commit, DeploymentID string
	// NoCache rebuilds every step instead of reusing cached layers.
	NoCache bool
	// Builder is BuildKit or Classic; "" is BuildKit, or the classic
	// builder on an engine without BuildKit.
	Builder string
	// Memory limits each RUN step's container, in bytes (0: no limit).
	// Classic builder only: BuildKit's steps run under the engine's limits.
	Memory int64
	// CPUs limits each RUN step's container to this many CPUs (0: no
	// limit). Classic builder only.
	CPUs float64
	// Secrets (id → value) are what a Dockerfile mounts with
	// RUN --mount=type=secret,id=<id>: served to BuildKit through a session,
	// never in the image; their values are masked in any output. The
	// classic builder cannot take them (see ErrSecretsNeedBuildKit).
	Secrets map[string]string
	// Mask lists further values to hide in the output (tokens in a build
	// arg, registry passwords).
	Mask []string
	// MaxContextBytes refuses contexts whose files add up to more; 0 is
	// DefaultMaxContextBytes.
	MaxContextBytes int64
}

// Result is a successful build.
type Result struct {
	ImageID  string // "sha256:…"
	Tags     []string
	Duration time.Duration
	Tail     []string // the last TailLines lines of output, masked
}

// Tags returns the tags Berth gives the image of a deployment: one per
// commit and one per deployment, in repository (e.g. "berth/shop-api").
func Tags(repository, commit, deploymentID string) []string {
	var tags []string
	if commit != "" {
		tags = append(tags, repository+":"+commit)
	}
	if deploymentID != "" {
		tags = append(tags, repository+":"+deploymentID)
	}
	return tags
}

// Build builds the image opts describe, calling logf (when not nil) with
// each line of output as it arrives, secrets masked. A failed build returns
// an *Error; options refused before the engine was called return an error
// wrapping ErrInvalid (an *InvalidError), ErrSecretsNeedBuildKit or
// ErrContextTooLarge. Cancelling ctx stops the build in the engine: closing
// the request makes the engine kill the step that runs.
func Build(ctx context.Context, cli Builder, opts Options, logf func(line string)) (Result, error) {
	start := time.Now()
	if err := validate(&opts); err != nil {
		return Result{}, err
	}
	root, err := openContext(opts)
	if err != nil {
		return Result{}, err
	}
	defer root.Close()
	maxBytes := opts.MaxContextBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxContextBytes
	}
	entries, _, err := contextFiles(root, opts.Dockerfile, maxBytes)
	if err != nil {
		return Result{}, err
	}
	mask := NewMask(append(slices.Collect(maps.Values(opts.Secrets)), opts.Mask...)...)
	builder := cmp.Or(opts.Builder, BuildKit)
	runOn := func(builder string) (*stream, error) {
		return run(ctx, cli, opts, builder, root, entries, mask, logf)
	}
	s, err := runOn(builder)
	if err != nil && builder == BuildKit && contextLost(err) {
		s.line("The engine lost the build context (a build cache prune ran at the same time): sending it again")
		s, err = runOn(builder)
	}
	if err != nil && builder == BuildKit && opts.Builder == "" && noBuildKit(err) {
		if len(opts.Secrets) > 0 {
			return Result{}, fmt.Errorf("%w: this Docker Engine has no BuildKit (%v)", ErrSecretsNeedBuildKit, err)
		}
		s.line("This Docker Engine has no BuildKit: building with the classic builder")
		s, err = runOn(Classic)
	}
	if err != nil {
		return Result{}, err
	}
	return Result{ImageID: s.imageID, Tags: opts.Tags, Duration: time.Since(start), Tail: s.tail}, nil
}

// run sends the context to the engine's builder and relays the build's
// output; it returns the stream it read for a build that made an image.
func run(ctx context.Context, cli Builder, opts Options, builder string, root *os.Root, entries []contextEntry, mask Mask, logf func(string)) (*stream, error) {
	s := &stream{mask: mask, logf: logf}
	o := imageBuildOptions(opts, builder)
	sessionFailed := func() error { return nil }
	if len(opts.Secrets) > 0 {
		sess, failed, err := openSession(ctx, cli, opts.App, opts.Secrets)
		if err != nil {
			return s, err
		}
		defer sess.Close()
		o.SessionID, sessionFailed = sess.ID(), failed
	}

	pr, pw := io.Pipe()
	var werr error
	written := make(chan struct{})
	go func() {
		defer close(written)
		werr = writeContext(pw, root, entries)
		pw.CloseWithError(werr)
	}()
	// stopWriter unblocks the writer if the engine stopped reading, waits for
	// it and returns its error; it is safe to call twice.
	stopWriter := func() error {
		pr.Close()
		<-written
		if errors.Is(werr, io.ErrClosedPipe) {
			return nil
		}
		return werr
	}
	defer stopWriter()

	resp, err := cli.ImageBuild(ctx, pr, o)
	if err == nil {
		err = s.read(resp.Body)
		resp.Body.Close()
	}
	if ctx.Err() != nil {
		return s, cancelled(ctx)
	}
	// A context that could not be sent explains whatever the engine said.
	if werr := stopWriter(); werr != nil {
		return s, fmt.Errorf("sending the build context: %w", werr)
	}
	if err != nil {
		if serr := sessionFailed(); serr != nil {
			return s, fmt.Errorf("building: %w (the session serving the build's secrets ended: %v)", err, serr)
		}
		if _, ok := err.(*Error); ok {
			return s, err
		}
		return s, fmt.Errorf("building: %w", err)
	}
	if s.imageID == "" {
		return s, &Error{Step: s.step, Reason: "the engine ended the build without naming an image", Output: s.stepOut}
	}
	return s, nil
}

// cancelled is the error of a build stopped by ctx; it matches
// context.Canceled or context.DeadlineExceeded, and the cause the caller
// gave, if any ("a newer push replaced this build").
func cancelled(ctx context.Context) error {
	if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
		return fmt.Errorf("build stopped: %w: %w", ctx.Err(), cause)
	}
	return fmt.Errorf("build stopped: %w", ctx.Err())
}

// imageBuildOptions translates validated options for the engine's builder.
func imageBuildOptions(opts Options, builder string) dockerbuild.ImageBuildOptions {
	labels := map[string]string{LabelApp: opts.App, LabelBuilt: time.Now().UTC().Format(time.RFC3339Nano)}
	if opts.Commit != "" {
		labels[LabelCommit] = opts.Commit
	}
	if opts.DeploymentID != "" {
		labels[LabelDeployment] = opts.DeploymentID
	}
	args := make(map[string]*string, len(opts.BuildArgs))
	for k, v := range opts.BuildArgs {
		args[k] = &v
	}
	o := dockerbuild.ImageBuildOptions{
		Tags:       opts.Tags,
		Dockerfile: opts.Dockerfile,
		BuildArgs:  args,
		Target:     opts.Target,
		Labels:     labels,
		NoCache:    opts.NoCache,
		Memory:     opts.Memory,
		Version:    dockerbuild.BuilderBuildKit,
	}
	if builder == Classic {
		o.Version = dockerbuild.BuilderV1
		o.Remove, o.ForceRemove = true, true // no containers left behind by a failed step
	}
	if opts.CPUs > 0 {
		o.CPUPeriod = cpuPeriod
		o.CPUQuota = int64(opts.CPUs * cpuPeriod)
	}
	return o
}

// cpuPeriod is the CFS period CPUs is expressed against (100 ms, the
// kernel's default).
const cpuPeriod = 100_000

// minMemory is the engine's smallest container memory limit.
const minMemory = 6 << 20

var (
	buildArgName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	stageName    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*$`)
	commitID     = regexp.MustCompile(`^[0-9a-fA-F]{4,64}$`)
	deploymentID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// validate checks opts without touching the disk, filling in defaults.
func validate(opts *Options) error {
	if opts.Dir == "" || !filepath.IsAbs(opts.Dir) {
		return invalid("dir", "%q: want the absolute path of the checkout", opts.Dir)
	}
	if opts.Context == "" {
		opts.Context = "."
	}
	if err := relPath("context", opts.Context, "a directory"); err != nil {
		return err
	}
	if opts.Dockerfile == "" {
		opts.Dockerfile = "Dockerfile"
	}
	if err := relPath("dockerfile", opts.Dockerfile, "a file"); err != nil {
		return err
	}
	if opts.Dockerfile == "." {
		return invalid("dockerfile", "%q: want the path of a file relative to the context, e.g. Dockerfile or docker/app.Dockerfile", opts.Dockerfile)
	}
	for _, k := range slices.Sorted(maps.Keys(opts.BuildArgs)) {
		if len(k) > 255 || !buildArgName.MatchString(k) {
			return invalid("build arg", "name %q: want letters, digits and underscores, not starting with a digit, at most 255 characters", k)
		}
		if strings.ContainsRune(opts.BuildArgs[k], 0) {
			return invalid("build arg", "the value of %s contains a NUL byte", k)
		}
	}
	if opts.Target != "" && (len(opts.Target) > 128 || !stageName.MatchString(opts.Target)) {
		return invalid("target", "%q: want a stage name of the Dockerfile (letters, digits, '_', '.', '-', starting with a letter)", opts.Target)
	}
	for _, t := range opts.Tags {
		if err := validTag(t); err != nil {
			return err
		}
	}
	if err := labelValue("app", opts.App, true); err != nil {
		return err
	}
	if opts.Commit != "" && !commitID.MatchString(opts.Commit) {
		return invalid("commit", "%q: want a commit id of 4 to 64 hexadecimal digits", opts.Commit)
	}
	if opts.DeploymentID != "" && (len(opts.DeploymentID) > 128 || !deploymentID.MatchString(opts.DeploymentID)) {
		return invalid("deployment id", "%q: want letters, digits, '_', '.' and '-', at most 128 characters", opts.DeploymentID)
	}
	if opts.Memory != 0 && opts.Memory < minMemory {
		return invalid("memory", "%d bytes: want 0 (no limit) or at least %s", opts.Memory, bytesText(minMemory))
	}
	if opts.CPUs != 0 && (opts.CPUs < 0.01 || opts.CPUs > 1024) {
		return invalid("cpus", "%g: want 0 (no limit) or 0.01 to 1024", opts.CPUs)
	}
	if opts.MaxContextBytes < 0 {
		return invalid("max context bytes", "%d: want 0 (the default, %s) or more", opts.MaxContextBytes, bytesText(DefaultMaxContextBytes))
	}
	switch opts.Builder {
	case "", BuildKit, Classic:
	default:
		return invalid("builder", "%q: want %s or %s", opts.Builder, BuildKit, Classic)
	}
	if opts.Builder != Classic && (opts.Memory != 0 || opts.CPUs != 0) {
		return invalid("builder", "memory and CPU limits on a build's steps need the classic builder (%s): BuildKit runs them under the engine's own limits", Classic)
	}
	if opts.Builder == Classic && len(opts.Secrets) > 0 {
		return ErrSecretsNeedBuildKit
	}
	for k := range opts.Secrets {
		if k == "" || strings.ContainsFunc(k, unicode.IsControl) {
			return invalid("secret", "id %q: want a name without control characters", k)
		}
	}
	return nil
}

// relPath refuses a path that is absolute, not clean, or leaves its root.
func relPath(field, p, what string) error {
	switch {
	case strings.ContainsFunc(p, unicode.IsControl):
		return invalid(field, "%q contains control characters; want a relative path without them", p)
	case strings.Contains(p, `\`):
		return invalid(field, "%q: want a path with forward slashes", p)
	case path.IsAbs(p):
		return invalid(field, "%q is absolute; want the path of %s relative to the %s", p, what, parentOf(field))
	case p == ".." || strings.HasPrefix(p, "../") || path.Clean(p) == ".." || strings.HasPrefix(path.Clean(p), "../"):
		return invalid(field, "%q leaves the %s; want a path inside it", p, parentOf(field))
	case path.Clean(p) != p:
		return invalid(field, "%q is not a clean path; want %q", p, path.Clean(p))
	}
	return nil
}

func parentOf(field string) string {
	if field == "context" {
		return "checkout"
	}
	return "build context"
}

// validTag accepts what the engine accepts as a build tag: a lowercase
// repository with an optional tag, no digest.
func validTag(t string) error {
	ref, err := reference.ParseNormalizedNamed(t)
	if err != nil {
		return invalid("tag", "%q: %v; want a lowercase repository with an optional tag, e.g. berth/shop-api:3f2a1c0", t, err)
	}
	if strings.ToLower(t) != t {
		return invalid("tag", "%q has uppercase letters; want a lowercase repository with an optional tag, e.g. berth/shop-api:3f2a1c0", t)
	}
	if _, ok := ref.(reference.Digested); ok {
		return invalid("tag", "%q names a digest; want a repository with an optional tag, e.g. berth/shop-api:3f2a1c0", t)
	}
	return nil
}

func labelValue(field, v string, required bool) error {
	switch {
	case v == "" && required:
		return invalid(field, "is empty; want the app's name")
	case len(v) > 255:
		return invalid(field, "is %d characters long; want at most 255", len(v))
	case strings.ContainsFunc(v, unicode.IsControl):
		return invalid(field, "%q contains control characters", v)
	}
	return nil
}

// openContext opens the build context inside the checkout: a symlink on
// the way may not lead out of it, and the Dockerfile must be a file in it.
func openContext(opts Options) (*os.Root, error) {
	checkout, err := os.OpenRoot(opts.Dir)
	if err != nil {
		return nil, invalid("dir", "the checkout %s cannot be opened: %v", opts.Dir, err)
	}
	defer checkout.Close()
	root, err := checkout.OpenRoot(opts.Context)
	if err != nil {
		return nil, invalid("context", "%q is not a directory inside the checkout: %v", opts.Context, unwrapPath(err))
	}
	fi, err := root.Stat(opts.Dockerfile)
	if err != nil {
		root.Close()
		return nil, invalid("dockerfile", "%q is not a file inside the build context: %v", opts.Dockerfile, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		root.Close()
		return nil, invalid("dockerfile", "%q is not a regular file", opts.Dockerfile)
	}
	return root, nil
}

// unwrapPath drops the operation and path os.PathError repeats.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
