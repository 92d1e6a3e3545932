// Package deploy owns what runs: the deployment state machine that starts a
// release next to the current one, waits for it to be healthy, switches
// traffic, drains and removes the old release; the dispatcher that runs one
// deployment per app at a time and several apps at once; and the operations
// users ask for (deploy, redeploy, roll back, cancel, scale, stop, delete).
//
// Every transition is persisted with a compare-and-set before or after the
// idempotent action it guards, so a process killed at any point resumes the
// deployment on restart and finishes or rolls it back.
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// Options tune the engine.
type Options struct {
	// HealthTimeout bounds how long a release may take to become healthy.
	HealthTimeout time.Duration
	// ProblemGrace is how long a release may report a problem (crash loop,
	// failing health check) before the deployment is failed.
	ProblemGrace time.Duration
	// PollInterval is how often release state is read while waiting.
	PollInterval time.Duration
	// Concurrency is how many apps deploy at once.
	Concurrency int
	// InstallID labels every release (orchestrator.LabelInstall); the
	// reconciler only considers releases carrying it.
	InstallID string
	// Router moves traffic at the edge; nil leaves traffic to the app's
	// network alias (both releases answer while they overlap).
	Router Router
	Now    func() time.Time
}

// Router is the edge as the engine needs it (edge.Router): the routing table
// follows the deployments' statuses, so after every transition the engine
// publishes it, and at the switch it waits for the proxies.
type Router interface {
	// Publish rebuilds the routing table and returns its version.
	Publish(ctx context.Context) (int64, error)
	// AwaitLive waits until every running proxy serves version or newer.
	AwaitLive(ctx context.Context, version int64) error
	// AwaitReady waits until every running proxy sees n servers of service up.
	AwaitReady(ctx context.Context, service string, n int) error
	// AwaitDrained waits until no proxy has requests in flight to service.
	AwaitDrained(ctx context.Context, service string) error
}

// Engine runs deployments.
type Engine struct {
	db       *store.DB
	releases orchestrator.Releases
	keys     *secrets.Keyring
	log      *slog.Logger
	opts     Options

	poke    chan struct{}
	mu      sync.Mutex
	running map[string]bool                         // app ids with a worker
	ended   func(context.Context, store.Deployment) // told of every deployment that ends
	wg      sync.WaitGroup
}

// onEnd has f told of every deployment that ends (live, failed, cancelled,
// superseded), after the transition is stored.
func (e *Engine) onEnd(f func(context.Context, store.Deployment)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ended = f
}

// NewEngine returns an engine; Run starts it.
func NewEngine(db *store.DB, releases orchestrator.Releases, keys *secrets.Keyring, log *slog.Logger, opts Options) *Engine {
	if opts.HealthTimeout == 0 {
		opts.HealthTimeout = 5 * time.Minute
	}
	if opts.ProblemGrace == 0 {
		opts.ProblemGrace = 2 * time.Second
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Engine{db: db, releases: releases, keys: keys, log: log, opts: opts,
		poke: make(chan struct{}, 1), running: map[string]bool{}}
}

func (e *Engine) now() time.Time { return e.opts.Now().UTC() }

// Poke makes the dispatcher look for work now.
func (e *Engine) Poke() {
	select {
	case e.poke <- struct{}{}:
	default:
	}
}

// Run dispatches deployments until ctx ends, then waits for workers to stop.
// Workers stop where they are; a later Run resumes them.
func (e *Engine) Run(ctx context.Context) {
	defer e.wg.Wait()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		e.dispatch(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-e.poke:
		}
	}
}

// dispatch starts a worker for the oldest active deployment of every app
// that has none running, up to the concurrency limit.
func (e *Engine) dispatch(ctx context.Context) {
	active, err := e.db.ActiveDeployments(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("deploy: list active deployments", "err", err)
		}
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range active {
		if e.running[d.AppID] || len(e.running) >= e.opts.Concurrency {
			continue
		}
		e.running[d.AppID] = true
		e.wg.Go(func() {
			defer func() {
				e.mu.Lock()
				delete(e.running, d.AppID)
				e.mu.Unlock()
				e.Poke()
			}()
			e.drive(ctx, d)
		})
	}
}

// drive runs one deployment's state machine to a terminal state (or until
// ctx ends). Each handler performs one step and persists the transition.
func (e *Engine) drive(ctx context.Context, d store.Deployment) {
	log := e.log.With("deployment_id", d.ID, "app", d.AppID, "seq", d.Seq)
	for !store.DeploymentTerminal(d.Status) && ctx.Err() == nil {
		var err error
		switch {
		case d.CancelRequested && (d.Status == store.DeployQueued || d.Status == store.DeployStarting):
			err = e.cancel(ctx, d)
		case d.Status == store.DeployQueued:
			err = e.start(ctx, d)
		case d.Status == store.DeployStarting:
			err = e.awaitHealthy(ctx, d)
		case d.Status == store.DeploySwitching:
			err = e.switchTraffic(ctx, d)
		case d.Status == store.DeployDraining:
			err = e.drain(ctx, d)
		default:
			err = fmt.Errorf("unknown status %q", d.Status)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var fail *failure
			if errors.As(err, &fail) {
				e.fail(ctx, d, fail.reason)
			} else {
				// Infrastructure trouble (database, engine unreachable): retry
				// the same step after a pause; the state is unchanged.
				log.Warn("deploy step failed; retrying", "status", d.Status, "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(2 * time.Second):
				}
			}
		}
		next, err := e.db.Deployment(ctx, d.OrganizationID, d.ID)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("deploy: reload deployment", "err", err)
			}
			return
		}
		d = next
	}
	if store.DeploymentTerminal(d.Status) {
		log.Info("deployment finished", "status", d.Status)
	}
}

// failure is a reason the deployment cannot succeed (as opposed to a
// transient error worth retrying).
type failure struct{ reason string }

func (f *failure) Error() string { return f.reason }

func failf(format string, args ...any) error { return &failure{fmt.Sprintf(format, args...)} }

func (e *Engine) step(ctx context.Context, d store.Deployment, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if err := e.db.AddStep(ctx, e.now(), d.ID, msg); err != nil && ctx.Err() == nil {
		e.log.Warn("deploy: record step", "deployment_id", d.ID, "err", err)
	}
}

func (e *Engine) transition(ctx context.Context, d store.Deployment, to string, upd store.DeploymentUpdate) error {
	if err := e.db.TransitionDeployment(ctx, d.ID, []string{d.Status}, to, upd); err != nil {
		return err
	}
	if e.opts.Router != nil {
		if _, err := e.opts.Router.Publish(ctx); err != nil {
			e.log.Warn("deploy: publish routing table", "deployment_id", d.ID, "err", err)
		}
	}
	e.mu.Lock()
	ended := e.ended
	e.mu.Unlock()
	if ended != nil && store.DeploymentTerminal(to) && to != store.DeployRetired {
		d.Status = to
		if upd.Error != nil {
			d.Error = *upd.Error
		}
		// Told apart from the deployment's own work: a slow listener (a
		// provider's API) never holds up the app's next deployment.
		e.wg.Go(func() { ended(context.WithoutCancel(ctx), d) })
	}
	return nil
}

// start resolves the image, names the release and records both, moving the
// deployment to starting. The release service is created in awaitHealthy, so
// a crash between the two only repeats idempotent work.
func (e *Engine) start(ctx context.Context, d store.Deployment) error {
	a, err := e.db.App(ctx, d.OrganizationID, d.AppID)
	if err != nil {
		return err
	}
	env, err := e.db.Environment(ctx, d.OrganizationID, a.EnvironmentID)
	if err != nil {
		return err
	}
	e.step(ctx, d, "Deployment #%d started: %s", d.Seq, d.Reason)
	digest := d.ImageDigest
	if digest == "" {
		e.step(ctx, d, "Resolving image %s", d.Image)
		creds, err := e.registryAuth(ctx, d.OrganizationID, d.Image)
		if err != nil {
			return err
		}
		resolved, err := e.releases.ResolveImage(ctx, d.Image, creds)
		if err != nil {
			if errors.Is(err, orchestrator.ErrEngineUnreachable) {
				return err
			}
			return failf("image %s cannot be used: %v", d.Image, err)
		}
		digest = resolved.Ref
		e.step(ctx, d, "Image pinned to %s", digest)
	}
	if err := e.releases.EnsureNetwork(ctx, env.Network, map[string]string{orchestrator.LabelNetwork: env.ID}); err != nil {
		return err
	}
	previous := ""
	if a.CurrentDeploymentID != "" && a.CurrentDeploymentID != d.ID {
		cur, err := e.db.Deployment(ctx, d.OrganizationID, a.CurrentDeploymentID)
		if err != nil {
			return err
		}
		previous = cur.Service
	}
	service := ReleaseName(a, d.Seq)
	now := e.now()
	return e.transition(ctx, d, store.DeployStarting, store.DeploymentUpdate{
		ImageDigest: &digest, Service: &service, PreviousService: &previous, StartedAt: &now,
	})
}

// awaitHealthy creates the release (idempotently) and waits until all its
// replicas are healthy, failing it on a lasting problem or the timeout.
func (e *Engine) awaitHealthy(ctx context.Context, d store.Deployment) error {
	a, err := e.db.App(ctx, d.OrganizationID, d.AppID)
	if err != nil {
		return err
	}
	r, err := e.release(ctx, a, d)
	if err != nil {
		return err
	}
	if stopFirst(d) && d.PreviousService != "" {
		e.step(ctx, d, "The app has a single-writer volume: stopping release %s first (the app is down until the new release is healthy)", d.PreviousService)
		if err := e.releases.ScaleRelease(ctx, d.PreviousService, 0); err != nil {
			return err
		}
	}
	if err := e.releases.CreateRelease(ctx, r); err != nil {
		if errors.Is(err, orchestrator.ErrEngineUnreachable) {
			return err
		}
		return failf("creating release %s: %v", d.Service, err)
	}
	e.step(ctx, d, "Release %s created with %d replica(s); waiting until they are healthy", d.Service, d.Spec.Replicas)

	deadline := d.StartedAt.Add(e.opts.HealthTimeout)
	var problemSince time.Time
	lastReport := ""
	for {
		cur, err := e.db.Deployment(ctx, d.OrganizationID, d.ID)
		if err != nil {
			return err
		}
		if cur.CancelRequested {
			return nil // drive sees the request and cancels
		}
		st, err := e.releases.ReleaseState(ctx, d.Service)
		if err != nil {
			return err
		}
		if report := progress(st); report != lastReport {
			e.step(ctx, d, "%s", report)
			lastReport = report
		}
		if st.Running >= d.Spec.Replicas {
			return e.transition(ctx, d, store.DeploySwitching, store.DeploymentUpdate{})
		}
		now := e.now()
		switch {
		case st.Problem == "":
			problemSince = time.Time{}
		case problemSince.IsZero():
			problemSince = now
		case now.Sub(problemSince) >= e.opts.ProblemGrace:
			return failf("release %s did not become healthy: %s", d.Service, st.Problem)
		}
		if now.After(deadline) {
			reason := fmt.Sprintf("release %s did not become healthy within %s (%d of %d replicas healthy)", d.Service, e.opts.HealthTimeout, st.Running, d.Spec.Replicas)
			if st.Problem != "" {
				reason += ": " + st.Problem
			}
			return failf("%s", reason)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(e.opts.PollInterval):
		}
	}
}

func progress(st orchestrator.ReleaseState) string {
	s := fmt.Sprintf("%d of %d replicas healthy", st.Running, st.Desired)
	if st.Problem != "" {
		s += ": " + st.Problem
	}
	return s
}

// switchTraffic makes the new release the app's current one and, with an edge
// router, waits until every proxy sends it the app's traffic (the previous
// release stays in the table at weight 0 until it has drained). Inside the
// project network, traffic follows the app's alias, which resolves to both
// releases while they overlap and to the new one once the old is gone.
func (e *Engine) switchTraffic(ctx context.Context, d store.Deployment) error {
	// A scale or stop made while this deployment ran applies to it too.
	a, err := e.db.App(ctx, d.OrganizationID, d.AppID)
	if err != nil {
		return err
	}
	want := wantedReplicas(a)
	if want != d.Spec.Replicas {
		e.step(ctx, d, "Scaling release %s to %d replica(s), as the app was changed meanwhile", d.Service, want)
		if err := e.releases.ScaleRelease(ctx, d.Service, want); err != nil {
			return err
		}
	}
	r := e.opts.Router
	if r != nil && d.Spec.Port > 0 && want > 0 {
		// The release joined the proxies' table at weight 0 when it started;
		// their own health checks must pass before it gets traffic.
		if err := r.AwaitReady(ctx, d.Service, want); ctx.Err() != nil {
			return ctx.Err()
		} else if err != nil {
			return failf("the edge proxy cannot reach the new release: %v", err)
		}
	}
	if err := e.db.SetCurrentDeployment(ctx, e.now(), d.AppID, d.ID); err != nil {
		return err
	}
	if r != nil && d.Spec.Port > 0 {
		began := time.Now()
		v, err := r.Publish(ctx)
		if err != nil {
			return err
		}
		if err := r.AwaitLive(ctx, v); ctx.Err() != nil {
			return ctx.Err()
		} else if err != nil {
			// A proxy that cannot apply tables is broken for every app; the
			// proxy status page says why. Holding this deployment fixes nothing.
			e.step(ctx, d, "Warning: %v", err)
		} else {
			e.step(ctx, d, "Traffic moved to release %s at the edge (%s)", d.Service, time.Since(began).Round(time.Millisecond))
		}
	}
	e.step(ctx, d, "Release %s is now the app's current release", d.Service)
	return e.transition(ctx, d, store.DeployDraining, store.DeploymentUpdate{})
}

// drain removes the previous release (its containers get their stop grace
// period to finish in-flight work) and retires its deployment.
func (e *Engine) drain(ctx context.Context, d store.Deployment) error {
	if d.PreviousService != "" && e.opts.Router != nil && d.Spec.Port > 0 {
		began := time.Now()
		if err := e.opts.Router.AwaitDrained(ctx, d.PreviousService); ctx.Err() != nil {
			return ctx.Err()
		} else if err != nil {
			e.step(ctx, d, "Drain of %s cut short: %v", d.PreviousService, err)
		} else {
			e.step(ctx, d, "Release %s has no requests in flight (%s)", d.PreviousService, time.Since(began).Round(time.Millisecond))
		}
	}
	if d.PreviousService != "" {
		e.step(ctx, d, "Removing the previous release %s", d.PreviousService)
		if err := e.releases.RemoveRelease(ctx, d.PreviousService); err != nil {
			return err
		}
	}
	e.pruneFiles(ctx, d)
	if err := e.retireOthers(ctx, d); err != nil {
		return err
	}
	now := e.now()
	live := &store.DeploymentStep{At: now, Message: fmt.Sprintf("Deployment #%d is live", d.Seq)}
	return e.transition(ctx, d, store.DeployLive, store.DeploymentUpdate{FinishedAt: &now, Step: live})
}

// retireOthers marks every other live deployment of the app as retired.
func (e *Engine) retireOthers(ctx context.Context, d store.Deployment) error {
	all, err := e.db.Deployments(ctx, d.OrganizationID, d.AppID, 0)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.ID != d.ID && o.Status == store.DeployLive {
			if err := e.db.TransitionDeployment(ctx, o.ID, []string{store.DeployLive}, store.DeployRetired, store.DeploymentUpdate{}); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
	}
	return nil
}

// fail removes a release that never received traffic, restores a stopped
// previous release, and records why.
func (e *Engine) fail(ctx context.Context, d store.Deployment, reason string) {
	e.step(ctx, d, "Failed: %s", reason)
	if err := e.undo(ctx, d); err != nil {
		e.log.Warn("deploy: clean up failed release", "deployment_id", d.ID, "err", err)
	}
	now := e.now()
	upd := store.DeploymentUpdate{Error: &reason, FinishedAt: &now}
	if d.PreviousService != "" {
		upd.Step = &store.DeploymentStep{At: now, Message: fmt.Sprintf("The previous release %s keeps serving", d.PreviousService)}
	}
	if err := e.transition(ctx, d, store.DeployFailed, upd); err != nil && ctx.Err() == nil {
		e.log.Warn("deploy: record failure", "deployment_id", d.ID, "err", err)
	}
}

func (e *Engine) cancel(ctx context.Context, d store.Deployment) error {
	e.step(ctx, d, "Cancelling at the user's request")
	if err := e.undo(ctx, d); err != nil {
		return err
	}
	now := e.now()
	msg := "cancelled by the user"
	return e.transition(ctx, d, store.DeployCancelled, store.DeploymentUpdate{Error: &msg, FinishedAt: &now})
}

// undo removes the deployment's own release and brings a previous release
// stopped for a single-writer volume back.
func (e *Engine) undo(ctx context.Context, d store.Deployment) error {
	if d.Service != "" {
		if err := e.releases.RemoveRelease(ctx, d.Service); err != nil {
			return err
		}
		e.step(ctx, d, "Removed release %s; it never received traffic", d.Service)
		e.pruneFiles(ctx, d)
	}
	if stopFirst(d) && d.PreviousService != "" {
		a, err := e.db.App(ctx, d.OrganizationID, d.AppID)
		if err != nil {
			return err
		}
		if a.CurrentDeploymentID != "" {
			cur, err := e.db.Deployment(ctx, d.OrganizationID, a.CurrentDeploymentID)
			if err != nil {
				return err
			}
			if err := e.releases.ScaleRelease(ctx, d.PreviousService, cur.Spec.Replicas); err != nil {
				return err
			}
			e.step(ctx, d, "Restarted the previous release %s", d.PreviousService)
		}
	}
	return nil
}

// wantedReplicas is what the app should run now: none while it is stopped.
func wantedReplicas(a store.App) int {
	if a.Stopped {
		return 0
	}
	return a.Spec.Replicas
}

// pruneFiles removes the app's configs and secrets no release uses any more.
// Best effort: left over, they cost little and the next release retries.
func (e *Engine) pruneFiles(ctx context.Context, d store.Deployment) {
	if err := e.releases.PruneFiles(ctx, d.AppID); err != nil {
		e.log.Warn("deploy: remove unused file mounts", "deployment_id", d.ID, "err", err)
	}
}

func stopFirst(d store.Deployment) bool {
	for _, v := range d.Spec.Volumes {
		if v.SingleWriter {
			return true
		}
	}
	return false
}

// release builds what the orchestrator runs for a deployment.
func (e *Engine) release(ctx context.Context, a store.App, d store.Deployment) (orchestrator.Release, error) {
	env, err := e.db.Environment(ctx, d.OrganizationID, a.EnvironmentID)
	if err != nil {
		return orchestrator.Release{}, err
	}
	vars, err := OpenEnv(e.keys, d)
	if err != nil {
		return orchestrator.Release{}, err
	}
	spec, err := openFiles(e.keys, d.Spec)
	if err != nil {
		return orchestrator.Release{}, err
	}
	// The pinned image is on the node already: inspecting it again is cheap
	// and tells whether it brings its own health check.
	creds, err := e.registryAuth(ctx, d.OrganizationID, d.ImageDigest)
	if err != nil {
		return orchestrator.Release{}, err
	}
	img, err := e.releases.ResolveImage(ctx, d.ImageDigest, creds)
	if err != nil {
		return orchestrator.Release{}, err
	}
	return orchestrator.Release{
		Service:             d.Service,
		Alias:               a.Name,
		Network:             env.Network,
		Edge:                d.Spec.Port > 0,
		Image:               img.Ref,
		ImageHasHealthcheck: img.HasHealthcheck,
		Auth:                creds, // so nodes without the image can pull it
		Spec:                spec,
		VolumePrefix:        volumePrefix(a),
		Env:                 vars,
		Labels: map[string]string{
			orchestrator.LabelInstall:    e.opts.InstallID,
			orchestrator.LabelApp:        a.ID,
			orchestrator.LabelDeployment: d.ID,
			orchestrator.LabelRelease:    strconv.Itoa(d.Seq),
		},
	}, nil
}

// ReleaseName is the Swarm service name of an app's release seq: the app's
// name, a short piece of its id (names repeat across projects), the number.
func ReleaseName(a store.App, seq int) string {
	return fmt.Sprintf("%s-%d", volumePrefix(a), seq)
}

// volumePrefix names what belongs to the app across releases: "<name>-<id8>".
func volumePrefix(a store.App) string {
	id := a.ID
	if i := len("app_"); len(id) > i+8 {
		id = id[i : i+8]
	}
	return a.Name + "-" + id
}

// VolumeName is the Docker volume holding the app's volume name.
func VolumeName(a store.App, name string) string {
	return orchestrator.VolumeName(volumePrefix(a), name)
}

// envAAD binds a deployment's sealed environment to its app, so it opens for
// every deployment of that app (a rollback reuses it) and for no other app.
func envAAD(appID string) string { return "deployment-env:" + appID }

// SealEnv encrypts a deployment's resolved environment.
func SealEnv(keys *secrets.Keyring, appID string, vars map[string]string) (string, error) {
	b, err := json.Marshal(vars)
	if err != nil {
		return "", err
	}
	return keys.Seal(b, envAAD(appID))
}

// OpenEnv decrypts a deployment's resolved environment.
func OpenEnv(keys *secrets.Keyring, d store.Deployment) (map[string]string, error) {
	if d.SealedEnv == "" {
		return map[string]string{}, nil
	}
	b, err := keys.Open(d.SealedEnv, envAAD(d.AppID))
	if err != nil {
		return nil, fmt.Errorf("open the environment of deployment %s: %w", d.ID, err)
	}
	var vars map[string]string
	return vars, json.Unmarshal(b, &vars)
}
