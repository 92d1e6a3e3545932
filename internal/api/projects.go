package api

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/store"
)

// Project groups apps and their environments.
type Project struct {
	ID        string    `json:"id" example:"prj_4fk3mz2xq7bw6a5c" doc:"Project id"`
	Name      string    `json:"name" example:"shop" doc:"Project name, unique in the organization"`
	CreatedAt time.Time `json:"created_at" doc:"When the project was created"`
}

// Environment is one deployment target of a project (production, staging …).
type Environment struct {
	ID        string    `json:"id" example:"env_m2q7bw6a5c4fk3zx" doc:"Environment id"`
	Name      string    `json:"name" example:"production" doc:"Environment name, unique in the project"`
	Network   string    `json:"network" example:"berth-env-m2q7bw6a5c4fk3zx" doc:"Overlay network the environment's apps share; they reach each other by app name"`
	CreatedAt time.Time `json:"created_at" doc:"When the environment was created"`
}

// ProjectDetail is a project with its environments and apps.
type ProjectDetail struct {
	Project
	Environments []Environment `json:"environments" doc:"Oldest (production) first"`
	Apps         []AppSummary  `json:"apps" doc:"Every app of every environment, by environment, then name"`
}

// ProjectList is the organization's projects, by name.
type ProjectList struct {
	Projects []Project `json:"projects"`
}

// EnvironmentList is a project's environments, oldest first.
type EnvironmentList struct {
	Environments []Environment `json:"environments"`
}

// CreateProjectRequest creates a project with its production environment.
type CreateProjectRequest struct {
	Name string `json:"name" maxLength:"64" example:"shop" doc:"1–32 lowercase letters, digits and '-', starting with a letter"`
}

// RenameProjectRequest renames a project.
type RenameProjectRequest struct {
	Name string `json:"name" maxLength:"64" example:"store" doc:"The new name: 1–32 lowercase letters, digits and '-', starting with a letter"`
}

// CreateEnvironmentRequest adds an environment to a project.
type CreateEnvironmentRequest struct {
	Name string `json:"name" maxLength:"64" example:"staging" doc:"1–32 lowercase letters, digits and '-', starting with a letter"`
}

// ProjectParams address a project (exported for embedding, as AppParams).
type ProjectParams struct {
	Project string `path:"project" maxLength:"64" example:"shop" doc:"Project name"`
}

type projectOutput struct{ Body Project }

type projectDetailOutput struct{ Body ProjectDetail }

type projectListOutput struct{ Body ProjectList }

type environmentOutput struct{ Body Environment }

type environmentListOutput struct{ Body EnvironmentList }

type createProjectInput struct{ Body CreateProjectRequest }

type renameProjectInput struct {
	ProjectParams
	Body RenameProjectRequest
}

type createEnvironmentInput struct {
	ProjectParams
	Body CreateEnvironmentRequest
}

// nameTaken is the 409 for a name already in use, naming the body field.
// Handlers check before creating so the answer is a conflict rather than
// the manager's 422; a concurrent create that wins the race still gets 422.
func nameTaken(msg string) error {
	return huma.Error409Conflict(msg, &huma.ErrorDetail{Location: "body.name", Message: msg})
}

func projectOf(p store.Project) Project {
	return Project{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt}
}

func environmentOf(e store.Environment) Environment {
	return Environment{ID: e.ID, Name: e.Name, Network: e.Network, CreatedAt: e.CreatedAt}
}

func (s *server) registerProjects() {
	tags := []string{"Projects"}
	register(s, huma.Operation{
		OperationID: "list-projects",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects",
		Tags:        tags,
		Summary:     "List projects",
		Description: "Lists the organization's projects by name.",
	}, s.listProjects)

	register(s, huma.Operation{
		OperationID:   "create-project",
		Method:        http.MethodPost,
		Path:          Prefix + "/projects",
		Tags:          tags,
		Summary:       "Create a project",
		Description:   "Creates a project with its `production` environment. A name already used in the organization answers 409 naming `name`.",
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusConflict},
	}, s.createProject)

	register(s, huma.Operation{
		OperationID: "get-project",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}",
		Tags:        tags,
		Summary:     "Show a project",
		Description: "Returns a project with its environments and a summary of its apps.",
		Errors:      []int{http.StatusNotFound},
	}, s.getProject)

	register(s, huma.Operation{
		OperationID: "rename-project",
		Method:      http.MethodPatch,
		Path:        Prefix + "/projects/{project}",
		Tags:        tags,
		Summary:     "Rename a project",
		Description: "Renames a project. Apps keep running: their Swarm services and networks are named by id, not by project name.",
		Errors:      []int{http.StatusNotFound, http.StatusConflict},
	}, s.renameProject)

	register(s, huma.Operation{
		OperationID:   "delete-project",
		Method:        http.MethodDelete,
		Path:          Prefix + "/projects/{project}",
		Tags:          tags,
		Summary:       "Delete a project",
		Description:   "Deletes an empty project with its environments, their variables and networks. A project that still has apps answers 409: delete them first.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusNotFound, http.StatusConflict},
	}, s.deleteProject)

	register(s, huma.Operation{
		OperationID: "list-environments",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/environments",
		Tags:        tags,
		Summary:     "List a project's environments",
		Description: "Lists the project's environments, production first.",
		Errors:      []int{http.StatusNotFound},
	}, s.listEnvironments)

	register(s, huma.Operation{
		OperationID:   "create-environment",
		Method:        http.MethodPost,
		Path:          Prefix + "/projects/{project}/environments",
		Tags:          tags,
		Summary:       "Create an environment",
		Description:   "Adds an environment (staging, …) with its own network to a project. Apps in different environments never reach each other by name.",
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusNotFound, http.StatusConflict},
	}, s.createEnvironment)
}

func (s *server) listProjects(ctx context.Context, _ *struct{}) (*projectListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := s.deps.Apps.Projects(ctx, p)
	if err != nil {
		return nil, err
	}
	out := ProjectList{Projects: make([]Project, 0, len(ps))}
	for _, proj := range ps {
		out.Projects = append(out.Projects, projectOf(proj))
	}
	return &projectListOutput{Body: out}, nil
}

func (s *server) createProject(ctx context.Context, in *createProjectInput) (*projectOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := s.deps.Apps.Project(ctx, p, in.Body.Name); err == nil {
		return nil, nameTaken(fmt.Sprintf("a project named %q already exists", in.Body.Name))
	}
	proj, err := s.deps.Apps.CreateProject(ctx, p, in.Body.Name)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "project created", "user_id", p.User.ID, "project_id", proj.ID, "project", proj.Name)
	return &projectOutput{Body: projectOf(proj)}, nil
}

func (s *server) getProject(ctx context.Context, in *ProjectParams) (*projectDetailOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	proj, err := s.deps.Apps.Project(ctx, p, in.Project)
	if err != nil {
		return nil, err
	}
	envs, err := s.deps.Apps.Environments(ctx, p, in.Project)
	if err != nil {
		return nil, err
	}
	apps, err := s.deps.Apps.Apps(ctx, p, in.Project)
	if err != nil {
		return nil, err
	}
	out := ProjectDetail{Project: projectOf(proj), Environments: make([]Environment, 0, len(envs)), Apps: make([]AppSummary, 0, len(apps))}
	names := make(map[string]string, len(envs))
	for _, e := range envs {
		out.Environments = append(out.Environments, environmentOf(e))
		names[e.ID] = e.Name
	}
	for _, a := range apps {
		out.Apps = append(out.Apps, appSummaryOf(a, names[a.EnvironmentID]))
	}
	return &projectDetailOutput{Body: out}, nil
}

func (s *server) renameProject(ctx context.Context, in *renameProjectInput) (*projectOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if in.Body.Name != in.Project {
		if _, err := s.deps.Apps.Project(ctx, p, in.Body.Name); err == nil {
			return nil, nameTaken(fmt.Sprintf("a project named %q already exists", in.Body.Name))
		}
	}
	proj, err := s.deps.Apps.RenameProject(ctx, p, in.Project, in.Body.Name)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "project renamed", "user_id", p.User.ID, "project_id", proj.ID, "project", proj.Name)
	return &projectOutput{Body: projectOf(proj)}, nil
}

func (s *server) deleteProject(ctx context.Context, in *ProjectParams) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Apps.DeleteProject(ctx, p, in.Project); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "project deleted", "user_id", p.User.ID, "project", in.Project)
	return nil, nil
}

func (s *server) listEnvironments(ctx context.Context, in *ProjectParams) (*environmentListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	envs, err := s.deps.Apps.Environments(ctx, p, in.Project)
	if err != nil {
		return nil, err
	}
	out := EnvironmentList{Environments: make([]Environment, 0, len(envs))}
	for _, e := range envs {
		out.Environments = append(out.Environments, environmentOf(e))
	}
	return &environmentListOutput{Body: out}, nil
}

func (s *server) createEnvironment(ctx context.Context, in *createEnvironmentInput) (*environmentOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	envs, err := s.deps.Apps.Environments(ctx, p, in.Project)
	if err != nil {
		return nil, err
	}
	for _, e := range envs {
		if e.Name == in.Body.Name {
			return nil, nameTaken(fmt.Sprintf("project %s already has an environment named %q", in.Project, in.Body.Name))
		}
	}
	env, err := s.deps.Apps.CreateEnvironment(ctx, p, in.Project, in.Body.Name)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "environment created", "user_id", p.User.ID, "project", in.Project, "environment_id", env.ID, "environment", env.Name)
	return &environmentOutput{Body: environmentOf(env)}, nil
}

// EnvVar is one environment variable. Its value is masked unless revealed.
type EnvVar struct {
	Key   string `json:"key" example:"DATABASE_URL"`
	Value string `json:"value" example:"••••••" doc:"The value, or ••••••  unless reveal=true"`
}

// EnvVarList is the variables of one scope, by key.
type EnvVarList struct {
	Vars []EnvVar `json:"vars"`
}

// ReplaceEnvRequest replaces every variable of a scope.
type ReplaceEnvRequest struct {
	Vars   map[string]string `json:"vars,omitempty" doc:"The complete set of variables; {} removes them all"`
	DotEnv string            `json:"dotenv,omitempty" maxLength:"60000" example:"DATABASE_URL=postgres://db/shop\nDEBUG=0\n" doc:"The variables as a .env file, instead of vars"`
}

// UpdateEnvRequest changes some variables of a scope and keeps the others.
type UpdateEnvRequest struct {
	Vars   map[string]string `json:"vars,omitempty" doc:"Variables to add or change"`
	DotEnv string            `json:"dotenv,omitempty" maxLength:"60000" doc:"Variables to add or change, as a .env file"`
	Unset  []string          `json:"unset,omitempty" maxItems:"1000" doc:"Names of variables to remove"`
}

// EnvChange is what changing variables queued: a deployment of every app
// the change reaches that is running.
type EnvChange struct {
	Deployments []Deployment `json:"deployments"`
}

// masked stands in for every value not explicitly revealed.
const masked = "••••••"

// EnvScopeParams choose whose variables an operation reads or writes.
type EnvScopeParams struct {
	ProjectParams
	Scope       string `query:"scope" enum:"project,environment,app" doc:"Whose variables: the project's (shared by all its apps), an environment's, or an app's. Left out: app when app is given, else environment when environment is given, else project"`
	Environment string `query:"environment" maxLength:"64" example:"staging" doc:"For environment and app scope: the environment (production when left out)"`
	App         string `query:"app" maxLength:"64" example:"web" doc:"For app scope: the app"`
}

type getEnvInput struct {
	EnvScopeParams
	Reveal bool `query:"reveal" doc:"Return the values instead of ••••••"`
}

type replaceEnvInput struct {
	EnvScopeParams
	Body ReplaceEnvRequest
}

type updateEnvInput struct {
	EnvScopeParams
	Body UpdateEnvRequest
}

type envVarListOutput struct{ Body EnvVarList }

type envChangeOutput struct{ Body EnvChange }

func queryProblem(name, msg string) error {
	return huma.Error422UnprocessableEntity(name+" "+msg, &huma.ErrorDetail{Location: "query." + name, Message: name + " " + msg})
}

// scope works out whose variables the query names; it is explicit when
// scope is given, and never reads app without it being meant.
func (in EnvScopeParams) scope() (deploy.EnvScope, error) {
	scope := in.Scope
	if scope == "" {
		switch {
		case in.App != "":
			scope = deploy.ScopeApp
		case in.Environment != "":
			scope = deploy.ScopeEnvironment
		default:
			scope = deploy.ScopeProject
		}
	}
	env := in.Environment
	if env == "" {
		env = deploy.Production
	}
	ref := deploy.AppRef{Project: in.Project}
	switch scope {
	case deploy.ScopeProject:
		if in.Environment != "" || in.App != "" {
			return deploy.EnvScope{}, queryProblem("scope", "is project: leave out environment and app, or ask for scope environment or app")
		}
	case deploy.ScopeEnvironment:
		if in.App != "" {
			return deploy.EnvScope{}, queryProblem("scope", "is environment: leave out app, or ask for scope app")
		}
		ref.Environment = env
	case deploy.ScopeApp:
		if in.App == "" {
			return deploy.EnvScope{}, queryProblem("app", "is required for scope app")
		}
		ref.Environment, ref.Name = env, in.App
	}
	return deploy.EnvScope{Scope: scope, Ref: ref}, nil
}

func (s *server) registerEnvVars() {
	tags := []string{"Environment variables"}
	const scopes = "The scope is chosen by the query: `scope=project` (shared by every app of the project), `scope=environment&environment=staging`, or `scope=app&app=web[&environment=staging]`; " +
		"an app's deployment gets all three, the narrowest winning. "
	register(s, huma.Operation{
		OperationID: "get-env",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/env",
		Tags:        tags,
		Summary:     "List environment variables",
		Description: "Lists the variables of one scope by key. " + scopes + "Values are masked as `••••••` unless `reveal=true`, which also needs `app.env.reveal` where the variables live (403 otherwise) and is recorded in the audit log first.",
		Errors:      []int{http.StatusNotFound},
	}, s.getEnv)

	register(s, huma.Operation{
		OperationID: "replace-env",
		Method:      http.MethodPut,
		Path:        Prefix + "/projects/{project}/env",
		Tags:        tags,
		Summary:     "Replace environment variables",
		Description: "Makes `vars` (or the `.env` text in `dotenv`) the complete set of the scope's variables: any other is removed. " + scopes +
			"Every running app the change reaches is redeployed; the answer lists the deployments queued. Values are stored encrypted and never logged.",
		Errors: []int{http.StatusNotFound},
	}, s.replaceEnv)

	register(s, huma.Operation{
		OperationID: "update-env",
		Method:      http.MethodPatch,
		Path:        Prefix + "/projects/{project}/env",
		Tags:        tags,
		Summary:     "Change some environment variables",
		Description: "Adds or changes the variables in `vars` (or the `.env` text in `dotenv`) and removes those named in `unset`, keeping the others. " + scopes +
			"Every running app the change reaches is redeployed; the answer lists the deployments queued.",
		Errors: []int{http.StatusNotFound},
	}, s.updateEnv)
}

func (s *server) getEnv(ctx context.Context, in *getEnvInput) (*envVarListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	scope, err := in.scope()
	if err != nil {
		return nil, err
	}
	vars, err := s.deps.Apps.Env(ctx, p, scope)
	if err != nil {
		return nil, err
	}
	keys := slices.Sorted(maps.Keys(vars))
	if in.Reveal {
		if err := s.mayReveal(ctx, p, scope); err != nil {
			return nil, err
		}
		// Recorded before the values go out; no record, no values.
		if err := s.recordReveal(ctx, p, scope, keys); err != nil {
			return nil, err
		}
		s.log.InfoContext(ctx, "environment variables revealed", "user_id", p.User.ID, "project", in.Project, "scope", scope.Scope, "count", len(vars))
	}
	out := EnvVarList{Vars: make([]EnvVar, 0, len(vars))}
	for _, k := range keys {
		v := masked
		if in.Reveal {
			v = vars[k]
		}
		out.Vars = append(out.Vars, EnvVar{Key: k, Value: v})
	}
	return &envVarListOutput{Body: out}, nil
}

// mayReveal refuses the values of scope's variables to a caller without
// app.env.reveal where they live: reading variables needs only
// project.read, seeing their values more.
func (s *server) mayReveal(ctx context.Context, p auth.Principal, scope deploy.EnvScope) error {
	if p.Can(authz.AppEnvReveal) {
		return nil
	}
	proj, err := s.deps.Apps.Project(ctx, p, scope.Ref.Project)
	if err != nil {
		return err
	}
	envID := ""
	if scope.Scope != deploy.ScopeProject {
		envs, err := s.deps.Apps.Environments(ctx, p, scope.Ref.Project)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(envs, func(e store.Environment) bool { return e.Name == scope.Ref.Environment })
		if i < 0 {
			return store.ErrNotFound
		}
		envID = envs[i].ID
	}
	if p.CanIn(authz.AppEnvReveal, proj.ID, envID) {
		return nil
	}
	return huma.Error403Forbidden(fmt.Sprintf("your role (%s) does not allow %s: leave out reveal to see the names with masked values", p.Role, authz.AppEnvReveal))
}

// envFromBody reads vars or dotenv (exactly one), naming the field at fault.
func envFromBody(vars map[string]string, dotenv string, required bool) (map[string]string, error) {
	switch {
	case vars != nil && dotenv != "":
		return nil, &app.FieldError{Field: "dotenv", Message: "cannot be given together with vars; send one of them"}
	case dotenv != "":
		parsed, _, err := app.ParseDotEnv(dotenv)
		if err != nil {
			return nil, &app.FieldError{Field: "dotenv", Message: err.Error()}
		}
		return parsed, nil
	case vars == nil && required:
		return nil, &app.FieldError{Field: "vars", Message: "is required (or dotenv); send {} to remove every variable"}
	}
	return vars, checkEnv("vars", vars)
}

func (s *server) changedEnv(ctx context.Context, p auth.Principal, scope deploy.EnvScope, vars map[string]string) (*envChangeOutput, error) {
	ds, err := s.deps.Apps.SetEnv(ctx, p, scope, vars)
	if err != nil {
		return nil, err
	}
	out := EnvChange{Deployments: make([]Deployment, 0, len(ds))}
	for _, d := range ds {
		out.Deployments = append(out.Deployments, deploymentOf(d))
	}
	s.log.InfoContext(ctx, "environment variables changed", "user_id", p.User.ID, "project", scope.Ref.Project, "scope", scope.Scope, "count", len(vars), "deployments", len(ds))
	return &envChangeOutput{Body: out}, nil
}

func (s *server) replaceEnv(ctx context.Context, in *replaceEnvInput) (*envChangeOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	scope, err := in.scope()
	if err != nil {
		return nil, err
	}
	vars, err := envFromBody(in.Body.Vars, in.Body.DotEnv, true)
	if err != nil {
		return nil, err
	}
	return s.changedEnv(ctx, p, scope, vars)
}

func (s *server) updateEnv(ctx context.Context, in *updateEnvInput) (*envChangeOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	scope, err := in.scope()
	if err != nil {
		return nil, err
	}
	set, err := envFromBody(in.Body.Vars, in.Body.DotEnv, false)
	if err != nil {
		return nil, err
	}
	if len(set) == 0 && len(in.Body.Unset) == 0 {
		return nil, &app.FieldError{Field: "vars", Message: "is required (or dotenv, or unset): there is nothing to change"}
	}
	// Read, change, replace: a concurrent change to the same scope between
	// the two can be lost (the last writer wins, as with PUT).
	vars, err := s.deps.Apps.Env(ctx, p, scope)
	if err != nil {
		return nil, err
	}
	for i, k := range in.Body.Unset {
		field := fmt.Sprintf("unset[%d]", i)
		if _, ok := set[k]; ok {
			return nil, &app.FieldError{Field: field, Message: fmt.Sprintf("%s is also being set", k)}
		}
		if _, ok := vars[k]; !ok {
			return nil, &app.FieldError{Field: field, Message: fmt.Sprintf("%s is not set in this scope", k)}
		}
	}
	maps.Copy(vars, set)
	for _, k := range in.Body.Unset {
		delete(vars, k)
	}
	return s.changedEnv(ctx, p, scope, vars)
}
