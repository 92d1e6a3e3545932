package deploy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// ErrBusy means the operation conflicts with the app's current state, e.g.
// rolling back to a deployment that never became healthy. Errors that match it
// are *ConflictError, whose message is safe to show as it is.
var ErrBusy = errors.New("conflict")

// ConflictError explains why an operation cannot run now.
type ConflictError struct{ Message string }

func (e *ConflictError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrBusy) true.
func (e *ConflictError) Is(target error) bool { return target == ErrBusy }

func conflictf(format string, args ...any) error {
	return &ConflictError{Message: fmt.Sprintf(format, args...)}
}

// ErrForbidden means the caller's role does not allow the operation. Errors
// that match it are *ForbiddenError, whose message is safe to show.
var ErrForbidden = errors.New("forbidden")

// ForbiddenError says what the caller's role does not allow.
type ForbiddenError struct{ Message string }

func (e *ForbiddenError) Error() string { return e.Message }

// Is makes errors.Is(err, ErrForbidden) true.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// allow returns a *ForbiddenError unless p has perm somewhere (by role or
// a project grant): every Manager operation asks it first, so a handler
// cannot forget it. Operations on a project or app then check perm there
// (project, environment, locate, inScope).
func allow(p auth.Principal, perm authz.Permission) error {
	if p.CanSomewhere(perm) {
		return nil
	}
	return forbidden(p, perm)
}

// allowOrg is allow for what belongs to the organization as a whole
// (registries, new projects, engine-wide data): grants do not reach it.
func allowOrg(p auth.Principal, perm authz.Permission) error {
	if p.Can(perm) {
		return nil
	}
	return forbidden(p, perm)
}

func forbidden(p auth.Principal, perm authz.Permission) error {
	return &ForbiddenError{Message: fmt.Sprintf("your role (%s) does not allow %s here", p.Role, perm)}
}

// checkBinds refuses bind mounts from callers without authz.ServerExec: a
// host path can hand over the node. Binds equal to before (set by someone
// who had it) may be kept by anyone, so that others can still edit the app.
func checkBinds(p auth.Principal, before, after []app.BindMount) error {
	if len(after) == 0 || p.Can(authz.ServerExec) || slices.Equal(before, after) {
		return nil
	}
	return &ForbiddenError{Message: "binds: bind mounts need the owner or admin role"}
}

// checkCapacity refuses resources no node of the cluster has: such a release
// would wait forever for a node. An unreachable engine skips the check (the
// deployment then says what is wrong).
func (m *Manager) checkCapacity(ctx context.Context, r app.Resources) error {
	eng, ok := m.releases.(interface {
		Status(context.Context) orchestrator.EngineStatus
	})
	if !ok || (r.CPULimit == 0 && r.CPUReservation == 0 && r.MemoryReservation == 0) {
		return nil
	}
	st := eng.Status(ctx)
	if !st.Reachable {
		return nil
	}
	cpus, mem := st.NCPU, st.MemoryBytes
	for _, n := range st.Swarm.Nodes {
		cpus, mem = max(cpus, n.NCPU), max(mem, n.MemoryBytes)
	}
	switch {
	case r.CPULimit > float64(cpus):
		return &app.FieldError{Field: "resources.cpu_limit", Message: fmt.Sprintf("is %g cores; the largest node has %d", r.CPULimit, cpus)}
	case r.CPUReservation > float64(cpus):
		return &app.FieldError{Field: "resources.cpu_reservation", Message: fmt.Sprintf("is %g cores; the largest node has %d", r.CPUReservation, cpus)}
	case mem > 0 && r.MemoryReservation > mem:
		return &app.FieldError{Field: "resources.memory_reservation", Message: fmt.Sprintf("is %d bytes; the largest node has %d", r.MemoryReservation, mem)}
	}
	return nil
}

// Manager is what the API, CLI and UI call: projects, environments, apps,
// their variables and deployments, always within the caller's organization.
type Manager struct {
	db       *store.DB
	keys     *secrets.Keyring
	releases orchestrator.Releases
	engine   *Engine
	now      func() time.Time
	// certRoots are the roots uploaded certificates must chain to; nil
	// means the system's.
	certRoots *x509.CertPool
	// reservedHost is the control plane's own public host.
	reservedHost string
	// wildcards allows wildcard domains (a DNS-01 provider is configured).
	wildcards bool
	// builds builds git-sourced apps; nil when this server does not build.
	builds *BuildConfig
}

// WithWildcards allows wildcard domains (*.example.com) with HTTPS: their
// certificates need DNS-01 validation, so on is right only when the server
// has a DNS provider for ACME.
func (m *Manager) WithWildcards(on bool) *Manager {
	m.wildcards = on
	return m
}

// WithReservedHost keeps host (Berth's own public host) from being added as
// a domain: it would take over the control plane's address.
func (m *Manager) WithReservedHost(host string) *Manager {
	m.reservedHost = host
	return m
}

// WithCertRoots makes uploaded certificates chain to roots instead of the
// system's (a private CA; tests).
func (m *Manager) WithCertRoots(roots *x509.CertPool) *Manager {
	m.certRoots = roots
	return m
}

// NewManager returns a Manager that queues work for engine.
func NewManager(db *store.DB, keys *secrets.Keyring, releases orchestrator.Releases, engine *Engine) *Manager {
	return &Manager{db: db, keys: keys, releases: releases, engine: engine, now: func() time.Time { return time.Now().UTC() }}
}

// Production is the environment every project starts with.
const Production = "production"

// Env var scopes, outermost first.
const (
	ScopeProject     = "project"
	ScopeEnvironment = "environment"
	ScopeApp         = "app"
)

// networkName is the overlay network of an environment: apps of one
// environment reach each other by name, and staging never answers for
// production (aliases are per network).
func networkName(envID string) string { return "berth-" + strings.ReplaceAll(envID, "_", "-") }

// CreateProject creates a project with its production environment.
func (m *Manager) CreateProject(ctx context.Context, p auth.Principal, name string) (store.Project, error) {
	if err := allowOrg(p, authz.ProjectWrite); err != nil {
		return store.Project{}, err
	}
	if err := app.ValidateName("name", name); err != nil {
		return store.Project{}, err
	}
	proj := store.Project{OrganizationID: p.Organization.ID, Name: name}
	env := store.Environment{OrganizationID: p.Organization.ID, Name: Production}
	env.ID = store.NewID("env")
	env.Network = networkName(env.ID)
	if err := m.db.CreateProject(ctx, m.now(), &proj, &env); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Project{}, &app.FieldError{Field: "name", Message: fmt.Sprintf("a project named %q already exists", name)}
		}
		return store.Project{}, err
	}
	return proj, nil
}

// Projects lists the organization's projects.
func (m *Manager) Projects(ctx context.Context, p auth.Principal) ([]store.Project, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return nil, err
	}
	all, err := m.db.Projects(ctx, p.Organization.ID)
	return slices.DeleteFunc(all, func(proj store.Project) bool { return !p.SeesProject(proj.ID) }), err
}

// Project finds a project by name.
func (m *Manager) Project(ctx context.Context, p auth.Principal, name string) (store.Project, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return store.Project{}, err
	}
	return m.project(ctx, p, name, authz.ProjectRead)
}

// RenameProject renames a project.
func (m *Manager) RenameProject(ctx context.Context, p auth.Principal, name, newName string) (store.Project, error) {
	if err := allow(p, authz.ProjectWrite); err != nil {
		return store.Project{}, err
	}
	proj, err := m.project(ctx, p, name, authz.ProjectWrite)
	if err != nil {
		return store.Project{}, err
	}
	if err := app.ValidateName("name", newName); err != nil {
		return store.Project{}, err
	}
	if err := m.db.RenameProject(ctx, p.Organization.ID, proj.ID, newName); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Project{}, &app.FieldError{Field: "name", Message: fmt.Sprintf("a project named %q already exists", newName)}
		}
		return store.Project{}, err
	}
	proj.Name = newName
	return proj, nil
}

// DeleteProject deletes an empty project and its environments' networks.
func (m *Manager) DeleteProject(ctx context.Context, p auth.Principal, name string) error {
	if err := allow(p, authz.ProjectWrite); err != nil {
		return err
	}
	proj, err := m.project(ctx, p, name, authz.ProjectWrite)
	if err != nil {
		return err
	}
	envs, err := m.db.Environments(ctx, p.Organization.ID, proj.ID)
	if err != nil {
		return err
	}
	if err := m.db.DeleteProject(ctx, p.Organization.ID, proj.ID); err != nil {
		return err
	}
	var errs []error
	for _, e := range envs {
		if err := m.removeNetwork(ctx, e.Network); err != nil {
			errs = append(errs, fmt.Errorf("the project is deleted, but its network %s could not be removed (remove it with `docker network rm %s`): %w", e.Network, e.Network, err))
		}
	}
	return errors.Join(errs...)
}

// removeNetwork retries while containers of just-removed releases still
// hold endpoints on the network (they stop with their grace period).
func (m *Manager) removeNetwork(ctx context.Context, name string) error {
	deadline := m.now().Add(45 * time.Second)
	for {
		err := m.releases.RemoveNetwork(ctx, name)
		if err == nil || m.now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// Environments lists a project's environments.
func (m *Manager) Environments(ctx context.Context, p auth.Principal, project string) ([]store.Environment, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return nil, err
	}
	proj, err := m.project(ctx, p, project, authz.ProjectRead)
	if err != nil {
		return nil, err
	}
	all, err := m.db.Environments(ctx, p.Organization.ID, proj.ID)
	return slices.DeleteFunc(all, func(e store.Environment) bool { return !p.CanIn(authz.ProjectRead, proj.ID, e.ID) }), err
}

// CreateEnvironment adds an environment (staging, …) to a project.
func (m *Manager) CreateEnvironment(ctx context.Context, p auth.Principal, project, name string) (store.Environment, error) {
	if err := allow(p, authz.ProjectWrite); err != nil {
		return store.Environment{}, err
	}
	proj, err := m.project(ctx, p, project, authz.ProjectWrite)
	if err != nil {
		return store.Environment{}, err
	}
	if err := app.ValidateName("name", name); err != nil {
		return store.Environment{}, err
	}
	env := store.Environment{OrganizationID: p.Organization.ID, ProjectID: proj.ID, Name: name}
	env.ID = store.NewID("env")
	env.Network = networkName(env.ID)
	if err := m.db.CreateEnvironment(ctx, m.now(), &env); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Environment{}, &app.FieldError{Field: "name", Message: fmt.Sprintf("project %s already has an environment named %q", project, name)}
		}
		return store.Environment{}, err
	}
	return env, nil
}

// AppRef names an app: project, environment ("" = production) and name.
type AppRef struct {
	Project, Environment, Name string
}

func (r AppRef) String() string {
	if r.Environment == "" || r.Environment == Production {
		return r.Project + "/" + r.Name
	}
	return r.Project + "/" + r.Environment + "/" + r.Name
}

// ParseAppRef reads "project/app" or "project/environment/app".
func ParseAppRef(s string) (AppRef, error) {
	parts := strings.Split(s, "/")
	var r AppRef
	switch len(parts) {
	case 2:
		r = AppRef{Project: parts[0], Environment: Production, Name: parts[1]}
	case 3:
		r = AppRef{Project: parts[0], Environment: parts[1], Name: parts[2]}
	default:
		return AppRef{}, &app.FieldError{Field: "app", Message: fmt.Sprintf("%q: write project/app or project/environment/app", s)}
	}
	for _, f := range []struct{ field, v string }{{"project", r.Project}, {"environment", r.Environment}, {"name", r.Name}} {
		if err := app.ValidateName(f.field, f.v); err != nil {
			return AppRef{}, err
		}
	}
	return r, nil
}

// located is an app with its project and environment.
type located struct {
	Project     store.Project
	Environment store.Environment
	App         store.App
}

// project finds a project of the caller's organization that the caller
// may see (else ErrNotFound: its existence is not revealed) and act on
// with perm as a whole (else a *ForbiddenError).
func (m *Manager) project(ctx context.Context, p auth.Principal, name string, perm authz.Permission) (store.Project, error) {
	proj, err := m.db.ProjectByName(ctx, p.Organization.ID, name)
	if err != nil {
		return store.Project{}, err
	}
	if !p.SeesProject(proj.ID) {
		return store.Project{}, store.ErrNotFound
	}
	if perm != authz.ProjectRead && !p.CanIn(perm, proj.ID, "") {
		return store.Project{}, forbidden(p, perm)
	}
	return proj, nil
}

// environment finds an environment the caller may see and act on with perm,
// like project.
func (m *Manager) environment(ctx context.Context, p auth.Principal, project, env string, perm authz.Permission) (store.Project, store.Environment, error) {
	if env == "" {
		env = Production
	}
	proj, err := m.project(ctx, p, project, authz.ProjectRead)
	if err != nil {
		return store.Project{}, store.Environment{}, err
	}
	e, err := m.db.EnvironmentByName(ctx, p.Organization.ID, proj.ID, env)
	if err != nil {
		return store.Project{}, store.Environment{}, err
	}
	if !p.CanIn(authz.ProjectRead, proj.ID, e.ID) {
		return store.Project{}, store.Environment{}, store.ErrNotFound
	}
	if !p.CanIn(perm, proj.ID, e.ID) {
		return store.Project{}, store.Environment{}, forbidden(p, perm)
	}
	return proj, e, nil
}

// appInScope checks perm on an app found by id (a build's, a deployment's):
// another organization's or an unseen project's app is ErrNotFound.
func (m *Manager) appInScope(ctx context.Context, p auth.Principal, orgID, appID string, perm authz.Permission) error {
	if orgID != p.Organization.ID {
		return store.ErrNotFound
	}
	a, err := m.db.App(ctx, orgID, appID)
	if err != nil {
		return err
	}
	if !p.CanIn(authz.ProjectRead, a.ProjectID, a.EnvironmentID) {
		return store.ErrNotFound
	}
	if !p.CanIn(perm, a.ProjectID, a.EnvironmentID) {
		return forbidden(p, perm)
	}
	return nil
}

func (m *Manager) locate(ctx context.Context, p auth.Principal, ref AppRef, perm authz.Permission) (located, error) {
	proj, env, err := m.environment(ctx, p, ref.Project, ref.Environment, perm)
	if err != nil {
		return located{}, err
	}
	a, err := m.db.AppByName(ctx, p.Organization.ID, env.ID, ref.Name)
	return located{proj, env, a}, err
}

// CreateAppInput describes a new app.
type CreateAppInput struct {
	Ref  AppRef
	Spec app.Spec
	Env  map[string]string // app-scope variables
}

// CreateApp validates and stores an app and its variables. Nothing runs
// until it is deployed.
func (m *Manager) CreateApp(ctx context.Context, p auth.Principal, in CreateAppInput) (store.App, error) {
	if err := allow(p, authz.AppWrite); err != nil {
		return store.App{}, err
	}
	if err := app.ValidateName("name", in.Ref.Name); err != nil {
		return store.App{}, err
	}
	in.Spec.Normalize()
	if err := in.Spec.Validate(); err != nil {
		return store.App{}, err
	}
	if err := sealFiles(m.keys, &in.Spec); err != nil {
		return store.App{}, err
	}
	if err := m.checkCapacity(ctx, in.Spec.Resources); err != nil {
		return store.App{}, err
	}
	if err := checkBinds(p, nil, in.Spec.Binds); err != nil {
		return store.App{}, err
	}
	if err := validateEnv(in.Env); err != nil {
		return store.App{}, err
	}
	_, env, err := m.environment(ctx, p, in.Ref.Project, in.Ref.Environment, authz.AppWrite)
	if err != nil {
		return store.App{}, err
	}
	a := store.App{OrganizationID: p.Organization.ID, ProjectID: env.ProjectID, EnvironmentID: env.ID, ClusterID: "cls_local", Name: in.Ref.Name, Spec: in.Spec}
	if err := m.db.CreateApp(ctx, m.now(), &a); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.App{}, &app.FieldError{Field: "name", Message: fmt.Sprintf("environment %s of project %s already has an app named %q", env.Name, in.Ref.Project, in.Ref.Name)}
		}
		return store.App{}, err
	}
	if len(in.Env) > 0 {
		if err := m.replaceEnv(ctx, p, ScopeApp, a.ID, in.Env); err != nil {
			m.db.DeleteApp(ctx, p.Organization.ID, a.ID)
			return store.App{}, err
		}
	}
	return a, nil
}

func validateEnv(vars map[string]string) error {
	for k, v := range vars {
		if err := app.ValidateEnvKey(k); err != nil {
			return err
		}
		if err := app.ValidateEnvValue(k, v); err != nil {
			return err
		}
	}
	return nil
}

// App returns an app.
func (m *Manager) App(ctx context.Context, p auth.Principal, ref AppRef) (store.App, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return store.App{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.ProjectRead)
	return l.App, err
}

// Apps lists a project's apps (every environment).
func (m *Manager) Apps(ctx context.Context, p auth.Principal, project string) ([]store.App, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return nil, err
	}
	proj, err := m.project(ctx, p, project, authz.ProjectRead)
	if err != nil {
		return nil, err
	}
	all, err := m.db.Apps(ctx, p.Organization.ID, proj.ID)
	return slices.DeleteFunc(all, func(a store.App) bool { return !p.CanIn(authz.ProjectRead, a.ProjectID, a.EnvironmentID) }), err
}

// UpdateSpec replaces an app's spec; the change runs with the next deployment.
func (m *Manager) UpdateSpec(ctx context.Context, p auth.Principal, ref AppRef, spec app.Spec) (store.App, error) {
	if err := allow(p, authz.AppWrite); err != nil {
		return store.App{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.AppWrite)
	if err != nil {
		return store.App{}, err
	}
	if _, err := m.db.AppSource(ctx, p.Organization.ID, l.App.ID); err == nil {
		// A git app's image is its latest build's; a spec may leave it out.
		if spec.Image == "" {
			spec.Image = l.App.Spec.Image
		} else if spec.Image != l.App.Spec.Image {
			return store.App{}, &app.FieldError{Field: "image", Message: "comes from this app's builds (it deploys from git) and cannot be set by hand"}
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.App{}, err
	}
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		return store.App{}, err
	}
	if err := m.checkCapacity(ctx, spec.Resources); err != nil {
		return store.App{}, err
	}
	if err := checkBinds(p, l.App.Spec.Binds, spec.Binds); err != nil {
		return store.App{}, err
	}
	if err := sealFiles(m.keys, &spec); err != nil {
		return store.App{}, err
	}
	if err := m.db.UpdateAppSpec(ctx, m.now(), p.Organization.ID, l.App.ID, spec); err != nil {
		return store.App{}, err
	}
	l.App.Spec = spec
	return l.App, nil
}

func envAADFor(scope, scopeID, key string) string { return "env:" + scope + ":" + scopeID + ":" + key }

func (m *Manager) replaceEnv(ctx context.Context, p auth.Principal, scope, scopeID string, vars map[string]string) error {
	sealed := make(map[string]string, len(vars))
	for k, v := range vars {
		s, err := m.keys.Seal([]byte(v), envAADFor(scope, scopeID, k))
		if err != nil {
			return err
		}
		sealed[k] = s
	}
	return m.db.ReplaceEnvVars(ctx, m.now(), p.Organization.ID, scope, scopeID, sealed)
}

func (m *Manager) openEnv(ctx context.Context, orgID, scope, scopeID string) (map[string]string, error) {
	rows, err := m.db.EnvVars(ctx, orgID, scope, scopeID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		b, err := m.keys.Open(r.Sealed, envAADFor(scope, scopeID, r.Key))
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", r.Key, err)
		}
		out[r.Key] = string(b)
	}
	return out, nil
}

// EnvScope names the holder of a set of variables.
type EnvScope struct {
	Scope string // ScopeProject, ScopeEnvironment or ScopeApp
	Ref   AppRef // Project; Environment for environment scope; Name for app scope
}

func (m *Manager) scopeID(ctx context.Context, p auth.Principal, s EnvScope, perm authz.Permission) (string, []store.App, error) {
	switch s.Scope {
	case ScopeProject:
		proj, err := m.project(ctx, p, s.Ref.Project, perm)
		if err != nil {
			return "", nil, err
		}
		apps, err := m.db.Apps(ctx, p.Organization.ID, proj.ID)
		return proj.ID, apps, err
	case ScopeEnvironment:
		_, env, err := m.environment(ctx, p, s.Ref.Project, s.Ref.Environment, perm)
		if err != nil {
			return "", nil, err
		}
		all, err := m.db.Apps(ctx, p.Organization.ID, env.ProjectID)
		var apps []store.App
		for _, a := range all {
			if a.EnvironmentID == env.ID {
				apps = append(apps, a)
			}
		}
		return env.ID, apps, err
	case ScopeApp:
		l, err := m.locate(ctx, p, s.Ref, perm)
		return l.App.ID, []store.App{l.App}, err
	}
	return "", nil, &app.FieldError{Field: "scope", Message: "must be project, environment or app"}
}

// Env returns the variables of one scope, decrypted.
func (m *Manager) Env(ctx context.Context, p auth.Principal, s EnvScope) (map[string]string, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return nil, err
	}
	id, _, err := m.scopeID(ctx, p, s, authz.ProjectRead)
	if err != nil {
		return nil, err
	}
	return m.openEnv(ctx, p.Organization.ID, s.Scope, id)
}

// SetEnv replaces the variables of one scope and deploys every app the
// change reaches that is running, so the change is in the history.
func (m *Manager) SetEnv(ctx context.Context, p auth.Principal, s EnvScope, vars map[string]string) ([]store.Deployment, error) {
	if err := allow(p, authz.AppWrite); err != nil {
		return nil, err
	}
	if err := validateEnv(vars); err != nil {
		return nil, err
	}
	id, apps, err := m.scopeID(ctx, p, s, authz.AppWrite)
	if err != nil {
		return nil, err
	}
	if err := m.replaceEnv(ctx, p, s.Scope, id, vars); err != nil {
		return nil, err
	}
	var out []store.Deployment
	for _, a := range apps {
		if a.CurrentDeploymentID == "" || a.Stopped {
			continue
		}
		if same, err := m.envUnchanged(ctx, a); err != nil || same {
			if err != nil {
				return out, err
			}
			continue
		}
		d, err := m.queue(ctx, p, a, a.Spec, "environment variables changed", "")
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// envUnchanged reports whether the app's variables resolve to what its live
// deployment runs with, so saving the same values deploys nothing.
func (m *Manager) envUnchanged(ctx context.Context, a store.App) (bool, error) {
	cur, err := m.current(ctx, a)
	if err != nil || cur == nil {
		return false, err
	}
	running, err := OpenEnv(m.keys, *cur)
	if err != nil {
		return false, err
	}
	wanted, err := m.resolvedEnv(ctx, a)
	if err != nil {
		return false, err
	}
	return maps.Equal(running, wanted), nil
}

// resolvedEnv merges project, environment and app variables, inner first.
func (m *Manager) resolvedEnv(ctx context.Context, a store.App) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range []struct{ scope, id string }{{ScopeProject, a.ProjectID}, {ScopeEnvironment, a.EnvironmentID}, {ScopeApp, a.ID}} {
		vars, err := m.openEnv(ctx, a.OrganizationID, s.scope, s.id)
		if err != nil {
			return nil, err
		}
		maps.Copy(out, vars)
	}
	return out, nil
}

// DeployInput changes what is deployed; empty fields keep the app's spec.
type DeployInput struct {
	Image string
}

// Deploy queues a deployment of the app's current spec (with Image, if
// given, saved into the spec first).
func (m *Manager) Deploy(ctx context.Context, p auth.Principal, ref AppRef, in DeployInput) (store.Deployment, error) {
	if err := allow(p, authz.AppDeploy); err != nil {
		return store.Deployment{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.AppDeploy)
	if err != nil {
		return store.Deployment{}, err
	}
	if _, err := m.db.AppSource(ctx, p.Organization.ID, l.App.ID); err == nil {
		return store.Deployment{}, conflictf("app %s deploys from git: start a build (berth app deploy %s, or POST …/builds); restart and rollback reuse images already built", ref, ref)
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.Deployment{}, err
	}
	spec, reason := l.App.Spec, "deploy"
	if l.App.CurrentDeploymentID != "" {
		reason = "redeploy"
	}
	if in.Image != "" && in.Image != spec.Image {
		if err := app.ValidateImage(in.Image); err != nil {
			return store.Deployment{}, err
		}
		spec.Image = in.Image
		if err := m.db.UpdateAppSpec(ctx, m.now(), p.Organization.ID, l.App.ID, spec); err != nil {
			return store.Deployment{}, err
		}
		reason = "image " + in.Image
	}
	if l.App.Stopped {
		if err := m.db.SetAppStopped(ctx, m.now(), p.Organization.ID, l.App.ID, false); err != nil {
			return store.Deployment{}, err
		}
	}
	return m.queue(ctx, p, l.App, spec, reason, "")
}

func (m *Manager) queue(ctx context.Context, p auth.Principal, a store.App, spec app.Spec, reason, rollbackOf string) (store.Deployment, error) {
	return m.queueDeployment(ctx, a, store.Deployment{Reason: reason, Spec: spec, CreatedBy: p.User.Email, RollbackOf: rollbackOf})
}

// queueDeployment queues d of app a with a's environment resolved and sealed.
func (m *Manager) queueDeployment(ctx context.Context, a store.App, d store.Deployment) (store.Deployment, error) {
	vars, err := m.resolvedEnv(ctx, a)
	if err != nil {
		return store.Deployment{}, err
	}
	if d.SealedEnv, err = SealEnv(m.keys, a.ID, vars); err != nil {
		return store.Deployment{}, err
	}
	d.OrganizationID, d.AppID, d.Image = a.OrganizationID, a.ID, d.Spec.Image
	return m.enqueue(ctx, d)
}

// enqueue stores a new deployment (superseding queued ones of the app) and
// wakes the engine.
func (m *Manager) enqueue(ctx context.Context, d store.Deployment) (store.Deployment, error) {
	if err := m.db.CreateDeployment(ctx, m.now(), &d); err != nil {
		return store.Deployment{}, err
	}
	m.engine.Poke()
	return d, nil
}

// FindDeployment reads a deployment of the app by id or by "#seq"/"seq".
func (m *Manager) FindDeployment(ctx context.Context, p auth.Principal, ref AppRef, id string) (store.Deployment, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return store.Deployment{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.ProjectRead)
	if err != nil {
		return store.Deployment{}, err
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(id, "#")); err == nil {
		return m.db.DeploymentBySeq(ctx, p.Organization.ID, l.App.ID, n)
	}
	d, err := m.db.Deployment(ctx, p.Organization.ID, id)
	if err == nil && d.AppID != l.App.ID {
		return store.Deployment{}, store.ErrNotFound
	}
	return d, err
}

// Rollback deploys an earlier healthy deployment again: same image digest,
// same spec, same variables.
func (m *Manager) Rollback(ctx context.Context, p auth.Principal, ref AppRef, to string) (store.Deployment, error) {
	if err := allow(p, authz.AppDeploy); err != nil {
		return store.Deployment{}, err
	}
	target, err := m.FindDeployment(ctx, p, ref, to)
	if err != nil {
		return store.Deployment{}, err
	}
	if target.Status != store.DeployLive && target.Status != store.DeployRetired {
		return store.Deployment{}, conflictf("deployment #%d never became healthy (%s); roll back to one that was live", target.Seq, target.Status)
	}
	l, err := m.locate(ctx, p, ref, authz.AppDeploy)
	if err != nil {
		return store.Deployment{}, err
	}
	// Same image and configuration as then; the replica count is today's.
	spec := target.Spec
	spec.Replicas = l.App.Spec.Replicas
	if err := m.db.UpdateAppSpec(ctx, m.now(), p.Organization.ID, l.App.ID, spec); err != nil {
		return store.Deployment{}, err
	}
	d := store.Deployment{
		OrganizationID: l.App.OrganizationID, AppID: l.App.ID, Reason: fmt.Sprintf("rollback to #%d", target.Seq),
		Spec: spec, SealedEnv: target.SealedEnv, Image: target.Image, ImageDigest: target.ImageDigest,
		CreatedBy: p.User.Email, RollbackOf: target.ID,
	}
	return m.enqueue(ctx, d)
}

// Cancel asks for a queued or starting deployment to stop; the engine
// removes its release and the current one keeps serving.
func (m *Manager) Cancel(ctx context.Context, p auth.Principal, ref AppRef, id string) (store.Deployment, error) {
	if err := allow(p, authz.AppDeploy); err != nil {
		return store.Deployment{}, err
	}
	d, err := m.FindDeployment(ctx, p, ref, id)
	if err != nil {
		return store.Deployment{}, err
	}
	if d.Status != store.DeployQueued && d.Status != store.DeployStarting {
		return store.Deployment{}, conflictf("deployment #%d is %s; only queued or starting deployments can be cancelled", d.Seq, d.Status)
	}
	if err := m.db.RequestCancel(ctx, p.Organization.ID, d.ID); err != nil {
		return store.Deployment{}, err
	}
	m.engine.Poke()
	d.CancelRequested = true
	return d, nil
}

// Deployments lists an app's deployments, newest first.
func (m *Manager) Deployments(ctx context.Context, p auth.Principal, ref AppRef, limit int) ([]store.Deployment, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return nil, err
	}
	l, err := m.locate(ctx, p, ref, authz.ProjectRead)
	if err != nil {
		return nil, err
	}
	return m.db.Deployments(ctx, p.Organization.ID, l.App.ID, limit)
}

// Steps is a deployment's step log.
func (m *Manager) Steps(ctx context.Context, p auth.Principal, d store.Deployment) ([]store.DeploymentStep, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return nil, err
	}
	if err := m.appInScope(ctx, p, d.OrganizationID, d.AppID, authz.ProjectRead); err != nil {
		return nil, err
	}
	return m.db.Steps(ctx, p.Organization.ID, d.ID)
}

// Status is an app's state for users: its current deployment, the one in
// flight, and what Swarm reports about the current release.
type Status struct {
	App      store.App
	Current  *store.Deployment
	InFlight *store.Deployment // the one the engine is driving (the oldest active)
	Release  orchestrator.ReleaseState
	// ReleaseError says why the release state is unknown (engine unreachable);
	// the rest of the status still comes from the database.
	ReleaseError string
}

// AppStatus reports what runs for an app.
func (m *Manager) AppStatus(ctx context.Context, p auth.Principal, ref AppRef) (Status, error) {
	if err := allow(p, authz.ProjectRead); err != nil {
		return Status{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.ProjectRead)
	if err != nil {
		return Status{}, err
	}
	st := Status{App: l.App}
	if st.Current, err = m.current(ctx, l.App); err != nil {
		return Status{}, err
	}
	recent, err := m.db.Deployments(ctx, p.Organization.ID, l.App.ID, 20)
	if err != nil {
		return Status{}, err
	}
	for i := range recent { // newest first: the last active one is the oldest
		if !store.DeploymentTerminal(recent[i].Status) {
			st.InFlight = &recent[i]
		}
	}
	if st.Current != nil {
		rs, err := m.releases.ReleaseState(ctx, st.Current.Service)
		if err != nil {
			st.ReleaseError = err.Error()
		}
		st.Release = rs
	}
	return st, nil
}

// current is the app's live deployment, nil before its first one.
func (m *Manager) current(ctx context.Context, a store.App) (*store.Deployment, error) {
	if a.CurrentDeploymentID == "" {
		return nil, nil
	}
	d, err := m.db.Deployment(ctx, a.OrganizationID, a.CurrentDeploymentID)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// Logs streams the app's container logs (the current release).
func (m *Manager) Logs(ctx context.Context, p auth.Principal, ref AppRef, opts orchestrator.LogOptions, out func(orchestrator.LogLine) error) error {
	if err := allow(p, authz.AppLogs); err != nil {
		return err
	}
	l, err := m.locate(ctx, p, ref, authz.AppLogs)
	if err != nil {
		return err
	}
	cur, err := m.current(ctx, l.App)
	if err != nil {
		return err
	}
	if cur == nil {
		return conflictf("%s has not been deployed yet", ref)
	}
	return m.releases.Logs(ctx, cur.Service, opts, out)
}

// Scale changes the current release's replicas in place and remembers the
// count for later deployments.
func (m *Manager) Scale(ctx context.Context, p auth.Principal, ref AppRef, replicas int) (store.App, error) {
	if err := allow(p, authz.AppDeploy); err != nil {
		return store.App{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.AppDeploy)
	if err != nil {
		return store.App{}, err
	}
	spec := l.App.Spec
	spec.Replicas = replicas
	if err := spec.Validate(); err != nil {
		return store.App{}, err
	}
	if err := m.db.UpdateAppSpec(ctx, m.now(), p.Organization.ID, l.App.ID, spec); err != nil {
		return store.App{}, err
	}
	if l.App.CurrentDeploymentID != "" && !l.App.Stopped {
		cur, err := m.db.Deployment(ctx, p.Organization.ID, l.App.CurrentDeploymentID)
		if err != nil {
			return store.App{}, err
		}
		if err := m.releases.ScaleRelease(ctx, cur.Service, replicas); err != nil {
			return store.App{}, err
		}
	}
	l.App.Spec = spec
	return l.App, nil
}

// Stop scales the current release to zero and remembers it; Start undoes it.
func (m *Manager) Stop(ctx context.Context, p auth.Principal, ref AppRef) error {
	if err := allow(p, authz.AppDeploy); err != nil {
		return err
	}
	return m.setStopped(ctx, p, ref, true)
}

// Start brings a stopped app back with its remembered replicas.
func (m *Manager) Start(ctx context.Context, p auth.Principal, ref AppRef) error {
	if err := allow(p, authz.AppDeploy); err != nil {
		return err
	}
	return m.setStopped(ctx, p, ref, false)
}

func (m *Manager) setStopped(ctx context.Context, p auth.Principal, ref AppRef, stopped bool) error {
	l, err := m.locate(ctx, p, ref, authz.AppDeploy)
	if err != nil {
		return err
	}
	if err := m.db.SetAppStopped(ctx, m.now(), p.Organization.ID, l.App.ID, stopped); err != nil {
		return err
	}
	if l.App.CurrentDeploymentID == "" {
		return nil
	}
	cur, err := m.db.Deployment(ctx, p.Organization.ID, l.App.CurrentDeploymentID)
	if err != nil {
		return err
	}
	replicas := l.App.Spec.Replicas
	if stopped {
		replicas = 0
	}
	return m.releases.ScaleRelease(ctx, cur.Service, replicas)
}

// Restart replaces the running containers without downtime: a new release of
// the same deployment's image and configuration.
func (m *Manager) Restart(ctx context.Context, p auth.Principal, ref AppRef) (store.Deployment, error) {
	if err := allow(p, authz.AppDeploy); err != nil {
		return store.Deployment{}, err
	}
	l, err := m.locate(ctx, p, ref, authz.AppDeploy)
	if err != nil {
		return store.Deployment{}, err
	}
	if l.App.CurrentDeploymentID == "" {
		return store.Deployment{}, conflictf("%s has not been deployed yet", ref)
	}
	if l.App.Stopped {
		return store.Deployment{}, conflictf("%s is stopped; start it instead", ref)
	}
	cur, err := m.db.Deployment(ctx, p.Organization.ID, l.App.CurrentDeploymentID)
	if err != nil {
		return store.Deployment{}, err
	}
	d := store.Deployment{
		OrganizationID: cur.OrganizationID, AppID: cur.AppID, Reason: "restart",
		Spec: cur.Spec, SealedEnv: cur.SealedEnv, Image: cur.Image, ImageDigest: cur.ImageDigest, CreatedBy: p.User.Email,
	}
	return m.enqueue(ctx, d)
}

// DeleteApp removes the app's releases and records. Its volumes stay unless
// removeVolumes is set.
func (m *Manager) DeleteApp(ctx context.Context, p auth.Principal, ref AppRef, removeVolumes bool) error {
	if err := allow(p, authz.AppWrite); err != nil {
		return err
	}
	l, err := m.locate(ctx, p, ref, authz.AppWrite)
	if err != nil {
		return err
	}
	services, err := m.releases.Services(ctx, map[string]string{orchestrator.LabelApp: l.App.ID})
	if err != nil {
		return err
	}
	for _, s := range services {
		if err := m.releases.RemoveRelease(ctx, s.Name); err != nil {
			return err
		}
	}
	if err := m.db.DeleteApp(ctx, p.Organization.ID, l.App.ID); err != nil {
		return err
	}
	var errs []error
	// Its domains went with it; so do certificates nothing else uses.
	errs = append(errs, m.db.DeleteUnusedCertificates(ctx))
	m.routesChanged(ctx)
	if err := m.releases.PruneFiles(ctx, l.App.ID); err != nil {
		errs = append(errs, fmt.Errorf("the app is deleted, but some of its configs or secrets could not be removed: %w", err))
	}
	m.removeImages(l.App)
	if removeVolumes {
		errs = append(errs, m.removeVolumes(ctx, l.App))
	}
	return errors.Join(errs...)
}

// removeVolumes deletes the app's volumes once the containers using them
// have stopped (they get their grace period after the services go).
func (m *Manager) removeVolumes(ctx context.Context, a store.App) error {
	deadline := m.now().Add(a.Spec.StopGracePeriod.Duration() + 30*time.Second)
	for _, v := range a.Spec.Volumes {
		name := VolumeName(a, v.Name)
		for {
			err := m.releases.RemoveVolume(ctx, name)
			if err == nil {
				break
			}
			if m.now().After(deadline) {
				return fmt.Errorf("the app is deleted, but its volume %s could not be removed (remove it with `docker volume rm %s`): %w", name, name, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// fileAAD binds a sealed secret file to its path in the container.
func fileAAD(target string) string { return "secret-file:" + target }

// sealFiles encrypts the content of secret files for storage: the spec is
// copied into every deployment, and secrets stay encrypted in all of them.
func sealFiles(keys *secrets.Keyring, spec *app.Spec) error {
	files := slices.Clone(spec.Files)
	for i, f := range files {
		if !f.Secret || app.IsSealed(f.Content) {
			continue
		}
		sealed, err := keys.Seal([]byte(f.Content), fileAAD(f.Target))
		if err != nil {
			return err
		}
		files[i].Content = app.SealedPrefix + sealed
	}
	spec.Files = files
	return nil
}

// openFiles returns spec with its secret files decrypted, for the release.
func openFiles(keys *secrets.Keyring, spec app.Spec) (app.Spec, error) {
	files := slices.Clone(spec.Files)
	for i, f := range files {
		if !app.IsSealed(f.Content) {
			continue
		}
		plain, err := keys.Open(strings.TrimPrefix(f.Content, app.SealedPrefix), fileAAD(f.Target))
		if err != nil {
			return app.Spec{}, fmt.Errorf("open secret file %s: %w", f.Target, err)
		}
		files[i].Content = string(plain)
	}
	spec.Files = files
	return spec, nil
}
