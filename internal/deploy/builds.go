package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/build"
	"github.com/berthpaas/berth/internal/forge"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/jobs"
	"github.com/berthpaas/berth/internal/store"
)

// Docker is what builds need of the Docker Engine's client.
type Docker interface {
	build.Builder
	build.Pusher
	build.Pruner
	build.CachePruner
}

// BuildConfig is how this server builds images from git.
type BuildConfig struct {
	Queue  *jobs.Queue
	Docker Docker
	// WorkDir holds the checkouts of running builds (removed after each).
	WorkDir string
	// KeepImages is how many built images of an app stay on the engine.
	KeepImages int
	// MaxCacheBytes prunes the engine's build cache above this size.
	MaxCacheBytes int64
	// Registry, when set ("registry.example.com/berth"), is where built
	// images are pushed, so that every node can pull them; the
	// organization's credential for its host is used.
	Registry string
	// PrivateHosts allows repositories on private addresses (see checkGitHost).
	PrivateHosts bool
	// GitCAFile is a PEM bundle of extra CAs for git over HTTPS.
	GitCAFile string
	// PublicURL is where people reach the server: commit statuses link to
	// the build's page under it ("" links nowhere).
	PublicURL string
	Log       *slog.Logger
}

// WithBuilds lets the Manager build git-sourced apps. RunBuild must be
// registered with the queue's workers.
func (m *Manager) WithBuilds(c BuildConfig) *Manager {
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	m.builds = &c
	if m.engine != nil {
		m.engine.onEnd(m.deploymentEnded)
	}
	return m
}

// BuildJob is the job that builds one queued build. It holds ids only.
type BuildJob struct {
	BuildID string `json:"build_id"`
	OrgID   string `json:"org_id"`
	AppID   string `json:"app_id"`
	Label   string `json:"label"`
}

func (BuildJob) Kind() string      { return "build" }
func (j BuildJob) App() string     { return j.AppID }
func (j BuildJob) Summary() string { return j.Label }

// errNoBuilder: the server was started without a job queue.
var errNoBuilder = &ConflictError{Message: "this server does not build images (it runs without a job queue)"}

// Deploy of a git-sourced app builds: StartBuild queues a build of the
// branch head (commit "") or of the given commit, which deploys itself when
// it succeeds.
func (m *Manager) StartBuild(ctx context.Context, p auth.Principal, ref AppRef, commit string) (store.Build, error) {
	if err := allow(p, authz.AppDeploy); err != nil {
		return store.Build{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.AppDeploy)
	if err != nil {
		return store.Build{}, err
	}
	src, err := m.db.AppSource(ctx, p.Organization.ID, l.App.ID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Build{}, conflictf("app %s deploys an image, not a git repository: deploy an image instead", ref)
	} else if err != nil {
		return store.Build{}, err
	}
	if commit != "" {
		if err := gitsrc.ValidateCommit(commit); err != nil {
			return store.Build{}, gitField("commit", err)
		}
	}
	b := store.Build{OrganizationID: l.App.OrganizationID, AppID: l.App.ID, Trigger: "manual", Ref: "refs/heads/" + src.Branch,
		Commit: commit, CreatedBy: p.User.Email}
	if l.App.Stopped {
		if err := m.db.SetAppStopped(ctx, m.now(), p.Organization.ID, l.App.ID, false); err != nil {
			return store.Build{}, err
		}
	}
	return b, m.queueBuild(ctx, l.App, &b)
}

// queueBuild stores b and queues its job. Queuing supersedes the app's
// queued builds: the newest push wins.
func (m *Manager) queueBuild(ctx context.Context, a store.App, b *store.Build) error {
	if m.builds == nil {
		return errNoBuilder
	}
	if err := m.db.CreateBuild(ctx, m.now(), b); err != nil {
		return err
	}
	label := fmt.Sprintf("%s build #%d of %s", a.Name, b.Seq, strings.TrimPrefix(strings.TrimPrefix(b.Ref, "refs/heads/"), "refs/tags/"))
	if b.Commit != "" {
		label += " @ " + shortCommit(b.Commit)
	}
	info, err := m.builds.Queue.Insert(ctx, BuildJob{BuildID: b.ID, OrgID: b.OrganizationID, AppID: a.ID, Label: label}, b.CreatedBy)
	if err != nil {
		b.Error = "could not queue the build: " + err.Error()
		m.db.FinishBuild(ctx, m.now(), *b, store.BuildFailed)
		return err
	}
	b.JobID = info.ID
	if err := m.db.SetBuildJob(ctx, b.OrganizationID, b.ID, info.ID); err != nil {
		return err
	}
	// Insert cancelled the app's queued build jobs; end their builds too.
	queued, err := m.db.Builds(ctx, a.OrganizationID, a.ID, 50)
	if err != nil {
		return err
	}
	for _, o := range queued {
		if o.ID != b.ID && o.Status == store.BuildQueued {
			o.Error = fmt.Sprintf("superseded by build #%d", b.Seq)
			m.db.FinishBuild(ctx, m.now(), o, store.BuildCancelled)
		}
	}
	return nil
}

// Builds lists an app's newest builds first.
func (m *Manager) Builds(ctx context.Context, p auth.Principal, ref AppRef, limit int) ([]store.Build, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return nil, err
	}
	l, err := m.locate(ctx, p, ref, authz.ProjectRead)
	if err != nil {
		return nil, err
	}
	return m.db.Builds(ctx, p.Organization.ID, l.App.ID, limit)
}

// FindBuild reads a build of the app by id or by "#seq"/"seq".
func (m *Manager) FindBuild(ctx context.Context, p auth.Principal, ref AppRef, id string) (store.Build, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return store.Build{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.ProjectRead)
	if err != nil {
		return store.Build{}, err
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(id, "#")); err == nil {
		return m.db.BuildBySeq(ctx, p.Organization.ID, l.App.ID, n)
	}
	b, err := m.db.Build(ctx, p.Organization.ID, id)
	if err == nil && b.AppID != l.App.ID {
		return store.Build{}, store.ErrNotFound
	}
	return b, err
}

// BuildLog returns up to limit lines of a build's output after line after.
func (m *Manager) BuildLog(ctx context.Context, p auth.Principal, b store.Build, after, limit int) ([]store.BuildLine, error) {
	if err := allow(p, authz.AppLogs); err != nil {
		return nil, err
	}
	if err := m.appInScope(ctx, p, b.OrganizationID, b.AppID, authz.AppLogs); err != nil {
		return nil, err
	}
	return m.db.BuildLog(ctx, b.ID, after, limit)
}

// Build reads one build of the caller's organization by id.
func (m *Manager) Build(ctx context.Context, p auth.Principal, id string) (store.Build, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return store.Build{}, err
	}
	b, err := m.db.Build(ctx, p.Organization.ID, id)
	if err != nil {
		return store.Build{}, err
	}
	return b, m.appInScope(ctx, p, b.OrganizationID, b.AppID, authz.ProjectRead)
}

// CancelBuild stops a queued or running build: a queued one never starts,
// a running one is stopped in the engine. Its deployment is never created.
func (m *Manager) CancelBuild(ctx context.Context, p auth.Principal, b store.Build) (store.Build, error) {
	if err := allow(p, authz.AppDeploy); err != nil {
		return store.Build{}, err
	}
	if err := m.appInScope(ctx, p, b.OrganizationID, b.AppID, authz.AppDeploy); err != nil {
		return store.Build{}, err
	}
	if store.BuildTerminal(b.Status) {
		return store.Build{}, conflictf("build #%d has %s; only queued or running builds can be cancelled", b.Seq, b.Status)
	}
	b.Error = "cancelled by " + p.User.Email
	if _, err := m.db.FinishBuild(ctx, m.now(), b, store.BuildCancelled); err != nil {
		return store.Build{}, err
	}
	if m.builds != nil && b.JobID != 0 {
		if _, err := m.builds.Queue.Cancel(ctx, b.JobID); err != nil && !errors.Is(err, jobs.ErrNotFound) {
			return store.Build{}, err
		}
	}
	return m.db.Build(ctx, p.Organization.ID, b.ID)
}

// QueuedBuild is a build waiting or running in the queue, with its app.
type QueuedBuild struct {
	Build store.Build
	App   store.App
	Ref   AppRef
	// Waiting says why a queued build has not started ("" once it runs):
	// the app's previous build still runs, every builder is busy, …
	Waiting string
}

// BuildQueue lists the organization's queued and running builds, oldest
// first, with why each waiting one waits.
func (m *Manager) BuildQueue(ctx context.Context, p auth.Principal) ([]QueuedBuild, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return nil, err
	}
	active, err := m.db.ActiveBuilds(ctx)
	if err != nil {
		return nil, err
	}
	var out []QueuedBuild
	for _, b := range active {
		if b.OrganizationID != p.Organization.ID {
			continue
		}
		a, err := m.db.App(ctx, b.OrganizationID, b.AppID)
		if err != nil || !p.CanIn(authz.ProjectRead, a.ProjectID, a.EnvironmentID) {
			continue // deleted meanwhile, or not the caller's to see
		}
		ref, err := m.refOf(ctx, a)
		if err != nil {
			return nil, err
		}
		q := QueuedBuild{Build: b, App: a, Ref: ref}
		if b.Status == store.BuildQueued && m.builds != nil && b.JobID != 0 {
			if info, err := m.builds.Queue.Get(ctx, b.JobID); err == nil {
				q.Waiting = info.Waiting
			}
		}
		out = append(out, q)
	}
	return out, nil
}

// AppRef names the app with id appID (a build's or a deployment's), for
// links and messages; an app the caller may not see is ErrNotFound.
func (m *Manager) AppRef(ctx context.Context, p auth.Principal, appID string) (AppRef, error) {
	if err := m.appInScope(ctx, p, p.Organization.ID, appID, authz.ProjectRead); err != nil {
		return AppRef{}, err
	}
	a, err := m.db.App(ctx, p.Organization.ID, appID)
	if err != nil {
		return AppRef{}, err
	}
	return m.refOf(ctx, a)
}

func (m *Manager) refOf(ctx context.Context, a store.App) (AppRef, error) {
	env, err := m.db.Environment(ctx, a.OrganizationID, a.EnvironmentID)
	if err != nil {
		return AppRef{}, err
	}
	proj, err := m.db.Project(ctx, a.OrganizationID, a.ProjectID)
	if err != nil {
		return AppRef{}, err
	}
	return AppRef{Project: proj.Name, Environment: env.Name, Name: a.Name}, nil
}

// DiskUsage is what images, the build cache and volumes take on the engine
// (the whole engine's, so owners and admins only).
func (m *Manager) DiskUsage(ctx context.Context, p auth.Principal) (build.Usage, error) {
	if err := allowOrg(p, authz.ServerRead); err != nil {
		return build.Usage{}, err
	}
	if m.builds == nil || m.builds.Docker == nil {
		return build.Usage{}, errNoBuilder
	}
	return build.DiskUsage(ctx, m.builds.Docker)
}

// SweepBuilds ends builds whose job ended without them (the server died
// while they ran, the job was discarded): a build is never left "running".
func (m *Manager) SweepBuilds(ctx context.Context) error {
	if m.builds == nil {
		return nil
	}
	active, err := m.db.ActiveBuilds(ctx)
	if err != nil {
		return err
	}
	for _, b := range active {
		if b.JobID == 0 {
			if m.now().Sub(b.CreatedAt) < time.Minute { // being queued right now
				continue
			}
		} else if info, err := m.builds.Queue.Get(ctx, b.JobID); err == nil && !jobEnded(info.State) {
			continue
		} else if err != nil && !errors.Is(err, jobs.ErrNotFound) {
			return err
		}
		b.Error = "Berth stopped while the build ran; deploy again to rebuild"
		if b.Status == store.BuildQueued {
			b.Error = "the build's job is gone; deploy again to rebuild"
		}
		if ended, err := m.db.FinishBuild(ctx, m.now(), b, store.BuildFailed); err != nil {
			return err
		} else if ended {
			m.builds.Log.Warn("build ended without its job", "build", b.ID, "app", b.AppID, "status", b.Status)
		}
	}
	return nil
}

func jobEnded(s jobs.State) bool {
	return s == jobs.StateCompleted || s == jobs.StateCancelled || s == jobs.StateDiscarded
}

// RunBuild is the build job: fetch the commit, build its image, and queue
// the deployment of it. Its outcome is the build's status; the job itself
// fails only when the store does (so that River keeps the error).
func (m *Manager) RunBuild(ctx context.Context, j *jobs.Job[BuildJob]) error {
	b, err := m.db.Build(ctx, j.Args.OrgID, j.Args.BuildID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the app was deleted meanwhile
	} else if err != nil {
		return err
	}
	if err := m.db.StartBuild(ctx, m.now(), b.OrganizationID, b.ID); errors.Is(err, store.ErrConflict) {
		return nil // cancelled or superseded before it started
	} else if err != nil {
		return err
	}
	out := newBuildOutput(m.db, b.ID)
	err = m.runBuild(ctx, &b, out.add)
	status := store.BuildSucceeded
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		status, b.Error = store.BuildFailed, "the build took longer than its timeout and was stopped"
	case ctx.Err() != nil:
		// Cancelled by a user (the build ended already) or by a stop of
		// the server, which is a failure like a crash is.
		status, b.Error = store.BuildFailed, "Berth stopped while the build ran; deploy again to rebuild"
		if cur, err := m.db.Build(context.WithoutCancel(ctx), b.OrganizationID, b.ID); err == nil && store.BuildTerminal(cur.Status) {
			status, b.Error = cur.Status, cur.Error
		}
	default:
		status, b.Error = store.BuildFailed, err.Error()
	}
	if b.Error != "" {
		out.add("Build " + status + ": " + b.Error)
	}
	out.close()
	if status == store.BuildSucceeded {
		// Before the build is marked done: its deployment follows at once.
		m.reportStatus(ctx, b, forge.StatePending, fmt.Sprintf("Build #%d done, deploying", b.Seq))
	}
	// A background context: a cancelled build is still recorded.
	ended, err := m.db.FinishBuild(context.WithoutCancel(ctx), m.now(), b, status)
	if err != nil {
		return err
	}
	if err := m.db.PruneBuildLogs(context.WithoutCancel(ctx), m.now(), b.AppID); err != nil {
		m.builds.Log.Warn("prune build logs", "app", b.AppID, "err", err)
	}
	// Not ended here: cancelled meanwhile, and then nothing is deployed.
	if !ended {
		m.reportStatus(ctx, b, forge.StateError, "Build cancelled")
		return nil
	}
	switch status {
	case store.BuildSucceeded:
		return m.deployBuild(context.WithoutCancel(ctx), b)
	case store.BuildCancelled:
		m.reportStatus(ctx, b, forge.StateError, "Build cancelled: "+b.Error)
	default:
		m.reportStatus(ctx, b, forge.StateFailure, "Build failed: "+b.Error)
	}
	return nil
}

func (m *Manager) runBuild(ctx context.Context, b *store.Build, logf func(string)) error {
	a, err := m.db.App(ctx, b.OrganizationID, b.AppID)
	if err != nil {
		return err
	}
	src, err := m.db.AppSource(ctx, b.OrganizationID, b.AppID)
	if err != nil {
		return err
	}
	secrets, err := m.buildSecrets(ctx, a, src.Build.Secrets)
	if err != nil {
		return err
	}
	remote, err := m.remote(src)
	if err != nil {
		return err
	}
	if err := m.checkGitHost(ctx, src.Source); err != nil {
		return err
	}
	ref := refOf(b.Ref)
	if b.Commit == "" {
		logf(fmt.Sprintf("Resolving %s of %s", ref.Name, cloneURL(remote.Source)))
		res, err := gitsrc.Resolve(ctx, remote, ref)
		m.learnHosts(ctx, src, res.LearnedHostKeys)
		if err != nil {
			return err
		}
		b.Commit = res.Commit
	}
	dir, err := os.MkdirTemp(m.builds.WorkDir, "build-")
	if err != nil {
		return fmt.Errorf("build workspace: %w", err)
	}
	defer os.RemoveAll(dir)
	logf(fmt.Sprintf("Fetching %s @ %s", cloneURL(remote.Source), shortCommit(b.Commit)))
	start := time.Now()
	co, err := gitsrc.Fetch(ctx, gitsrc.FetchOptions{Remote: remote, Commit: b.Commit, Ref: &ref, Dir: filepath.Join(dir, "src"), Submodules: src.Build.Submodules})
	m.learnHosts(ctx, src, co.LearnedHostKeys)
	if err != nil {
		return err
	}
	b.Author, b.Message = co.Author, co.Subject
	if err := m.db.SetBuildCommit(ctx, b.OrganizationID, b.ID, b.Commit, b.Author, b.Message); err != nil {
		return err
	}
	logf(fmt.Sprintf("Checked out %s %q by %s in %s", shortCommit(b.Commit), co.Subject, co.Author, time.Since(start).Round(time.Millisecond)))
	m.reportStatus(ctx, *b, forge.StatePending, fmt.Sprintf("Building #%d", b.Seq))
	if len(src.Build.Secrets) > 0 {
		logf("Build secrets (values masked): " + strings.Join(src.Build.Secrets, ", "))
	}
	tags := m.buildTags(a, *b)
	res, err := build.Build(ctx, m.builds.Docker, build.Options{
		Dir: co.Dir, Context: src.Build.Context, Dockerfile: src.Build.Dockerfile, BuildArgs: src.Build.Args, Target: src.Build.Target,
		Tags: tags, App: a.ID, Commit: b.Commit, DeploymentID: b.DeploymentID, Secrets: secrets, Mask: []string{remote.Token},
	}, logf)
	if err != nil {
		return err
	}
	b.Image, b.ImageID = tags[len(tags)-1], res.ImageID
	logf(fmt.Sprintf("Built %s (%s) in %s", b.Image, shortCommit(strings.TrimPrefix(res.ImageID, "sha256:")), res.Duration.Round(100*time.Millisecond)))
	if m.builds.Registry != "" {
		auth, err := m.engine.registryAuth(ctx, a.OrganizationID, b.Image)
		if err != nil {
			return err
		}
		logf("Pushing " + b.Image)
		start := time.Now()
		digest, err := build.Push(ctx, m.builds.Docker, b.Image, auth, logf)
		if err != nil {
			return err
		}
		logf(fmt.Sprintf("Pushed %s in %s", digest, time.Since(start).Round(100*time.Millisecond)))
	}
	m.pruneImages(ctx, a, logf)
	return nil
}

// buildSecrets are the values of the variables an app's build mounts as
// secrets, resolved as a deployment resolves them; nil when it mounts none.
// A name the app has no variable for fails the build before it fetches.
func (m *Manager) buildSecrets(ctx context.Context, a store.App, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	env, err := m.resolvedEnv(ctx, a)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		v, ok := env[n]
		if !ok {
			ref, err := m.refOf(ctx, a)
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("build secret %s: the app has no variable of that name; set it with \"berth env set %s %s=…\" or remove it from the build secrets", n, ref, n)
		}
		out[n] = v
	}
	return out, nil
}

// deployBuild queues the deployment of a built image with the id the
// build chose.
func (m *Manager) deployBuild(ctx context.Context, b store.Build) error {
	a, err := m.db.App(ctx, b.OrganizationID, b.AppID)
	if err != nil {
		return err
	}
	spec := a.Spec
	spec.Image = b.Image
	if err := m.db.UpdateAppSpec(ctx, m.now(), a.OrganizationID, a.ID, spec); err != nil {
		return err
	}
	reason := fmt.Sprintf("build #%d of %s (%s)", b.Seq, shortCommit(b.Commit), strings.TrimPrefix(strings.TrimPrefix(b.Ref, "refs/heads/"), "refs/tags/"))
	_, err = m.queueDeployment(ctx, a, store.Deployment{ID: b.DeploymentID, Reason: reason, Spec: spec, CreatedBy: b.CreatedBy})
	return err
}

// pruneImages keeps the app's newest images and the build cache under its
// limit. It never fails a build: what it could not do is logged.
func (m *Manager) pruneImages(ctx context.Context, a store.App, logf func(string)) {
	if m.builds.KeepImages > 0 {
		rep, err := build.Prune(ctx, m.builds.Docker, a.ID, m.builds.KeepImages)
		if err != nil {
			m.builds.Log.Warn("prune app images", "app", a.ID, "err", err)
		} else if len(rep.Removed) > 0 {
			logf(fmt.Sprintf("Removed %d old image(s) of the app (keeping the newest %d)", len(rep.Removed), m.builds.KeepImages))
		}
	}
	if m.builds.MaxCacheBytes > 0 {
		rep, err := build.PruneBuildCache(ctx, m.builds.Docker, m.builds.MaxCacheBytes)
		if err != nil {
			m.builds.Log.Warn("prune build cache", "err", err)
		} else if rep.Reclaimed > 0 {
			logf(fmt.Sprintf("Pruned %d MB of build cache above the %d MB limit", rep.Reclaimed>>20, m.builds.MaxCacheBytes>>20))
		}
	}
}

// removeImages removes a deleted app's built images in the background, once
// the containers that ran them have stopped (they get their grace period
// after the services go); an image still in use when that is long past is
// left and logged. Images pushed to --build-registry stay there.
func (m *Manager) removeImages(a store.App) {
	if m.builds == nil || m.builds.Docker == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), a.Spec.StopGracePeriod.Duration()+time.Minute)
		defer cancel()
		for {
			rep, err := build.Prune(ctx, m.builds.Docker, a.ID, 0)
			if err == nil && len(rep.Skipped) == 0 {
				return
			}
			select {
			case <-ctx.Done():
				m.builds.Log.Warn("images of a deleted app left on the engine", "app", a.ID, "skipped", len(rep.Skipped), "err", err)
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
}

// remote unseals what it takes to reach an app's repository.
func (m *Manager) remote(src store.AppSource) (gitsrc.Remote, error) {
	r := gitsrc.Remote{Source: src.Source, KnownHosts: src.KnownHosts, CAFile: m.builds.GitCAFile}
	if src.SealedToken != "" {
		t, err := m.keys.Open(src.SealedToken, sourceAAD(src.AppID, "token"))
		if err != nil {
			return r, err
		}
		r.Token = string(t)
	}
	if src.SealedKey != "" {
		k, err := m.keys.Open(src.SealedKey, sourceAAD(src.AppID, "deploy-key"))
		if err != nil {
			return r, err
		}
		r.DeployKey = k
	}
	return r, nil
}

// learnHosts pins the SSH host keys seen on first use.
func (m *Manager) learnHosts(ctx context.Context, src store.AppSource, lines []string) {
	if len(lines) == 0 || src.KnownHosts != "" {
		return
	}
	if err := m.db.AddKnownHosts(ctx, src.OrganizationID, src.AppID, strings.Join(lines, "\n")+"\n"); err != nil {
		m.builds.Log.Warn("pin ssh host keys", "app", src.AppID, "err", err)
	}
}

func refOf(full string) gitsrc.Ref {
	if t, ok := strings.CutPrefix(full, "refs/tags/"); ok {
		return gitsrc.Tag(t)
	}
	return gitsrc.Branch(strings.TrimPrefix(full, "refs/heads/"))
}

// buildOutput stores a build's output lines in batches: one transaction per
// 250 ms, not per line, while followers read them from the store.
type buildOutput struct {
	db      *store.DB
	buildID string
	mu      sync.Mutex
	pending []string
	done    chan struct{}
	stopped chan struct{}
}

func newBuildOutput(db *store.DB, buildID string) *buildOutput {
	o := &buildOutput{db: db, buildID: buildID, done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(o.stopped)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-o.done:
				o.flush()
				return
			case <-t.C:
				o.flush()
			}
		}
	}()
	return o
}

func (o *buildOutput) add(line string) {
	o.mu.Lock()
	o.pending = append(o.pending, line)
	o.mu.Unlock()
}

func (o *buildOutput) flush() {
	o.mu.Lock()
	lines := o.pending
	o.pending = nil
	o.mu.Unlock()
	// The store bounds each write; a lost batch of output does not fail the build.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o.db.AppendBuildLog(ctx, time.Now(), o.buildID, lines)
}

func (o *buildOutput) close() {
	close(o.done)
	<-o.stopped
}

// cloneURL is what build logs name the repository by; sources hold no
// secret (tokens travel in git's environment).
func cloneURL(s gitsrc.Source) string {
	u, _ := s.CloneURL()
	return u
}
