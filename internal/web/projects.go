package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/store"
)

// registerProjects mounts the projects part of the UI. Apps live in an
// environment; the production one is implied, any other is the query
// parameter env= on every app URL, so links and forms carry it along.
func (u *ui) registerProjects(mux *http.ServeMux) {
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request, auth.Principal)) {
		mux.HandleFunc(pattern, u.signedIn(u.needApps(fn)))
	}
	h("GET /projects", u.projects)
	h("POST /projects", u.createProject)
	h("GET /projects/{project}", u.project)
	h("POST /projects/{project}/environments", u.createEnvironment)
	h("POST /projects/{project}/rename", u.renameProject)
	h("POST /projects/{project}/delete", u.deleteProject)

	h("GET /projects/{project}/apps/new", u.newApp)
	h("POST /projects/{project}/apps", u.createApp)
	h("GET /projects/{project}/apps/{app}", u.appOverview)
	h("GET /projects/{project}/apps/{app}/overview", u.appOverviewFragment)
	h("POST /projects/{project}/apps/{app}/deploy", u.deployApp)
	h("POST /projects/{project}/apps/{app}/restart", u.restartApp)
	h("POST /projects/{project}/apps/{app}/stop", u.stopApp)
	h("POST /projects/{project}/apps/{app}/start", u.startApp)
	h("POST /projects/{project}/apps/{app}/scale", u.scaleApp)
	h("GET /projects/{project}/apps/{app}/deployments", u.appDeployments)
	h("GET /projects/{project}/apps/{app}/deployments/{id}", u.deployment)
	h("GET /projects/{project}/apps/{app}/deployments/{id}/progress", u.deploymentProgress)
	h("POST /projects/{project}/apps/{app}/deployments/{id}/rollback", u.rollback)
	h("POST /projects/{project}/apps/{app}/deployments/{id}/cancel", u.cancelDeployment)
	h("GET /projects/{project}/apps/{app}/logs", u.appLogs)
	h("GET /projects/{project}/apps/{app}/logs/lines", u.appLogLines)
	h("GET /projects/{project}/apps/{app}/logs/download", u.appLogDownload)
	h("GET /projects/{project}/apps/{app}/env", u.appEnv)
	h("POST /projects/{project}/apps/{app}/env/reveal", u.revealEnv)
	h("POST /projects/{project}/apps/{app}/env", u.saveEnv)
	h("GET /projects/{project}/apps/{app}/domains", u.appDomains)
	h("GET /projects/{project}/apps/{app}/domains/list", u.appDomainList)
	h("POST /projects/{project}/apps/{app}/domains", u.addDomain)
	h("POST /projects/{project}/apps/{app}/domains/{id}/edit", u.updateDomain)
	h("POST /projects/{project}/apps/{app}/domains/{id}/remove", u.removeDomain)
	h("POST /projects/{project}/apps/{app}/domains/certificate", u.uploadCertificate)
	h("GET /projects/{project}/apps/{app}/requests", u.appRequests)
	h("GET /projects/{project}/apps/{app}/source", u.appSource)
	h("POST /projects/{project}/apps/{app}/source/reveal", u.revealWebhookSecret)
	h("GET /projects/{project}/apps/{app}/builds", u.appBuilds)
	h("GET /projects/{project}/apps/{app}/builds/{id}", u.appBuild)
	h("GET /projects/{project}/apps/{app}/builds/{id}/log", u.appBuildLog)
	h("POST /projects/{project}/apps/{app}/builds/{id}/cancel", u.cancelBuild)
	h("GET /builds", u.buildQueue)
	h("GET /builds/list", u.buildQueueList)
	h("GET /projects/{project}/apps/{app}/settings", u.appSettings)
	h("POST /projects/{project}/apps/{app}/settings", u.saveSettings)
	h("POST /projects/{project}/apps/{app}/delete", u.deleteApp)
}

// needApps shows an honest page on a server started without the deploy
// service, instead of a nil dereference.
func (u *ui) needApps(h func(http.ResponseWriter, *http.Request, auth.Principal)) func(http.ResponseWriter, *http.Request, auth.Principal) {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
		if u.d.Apps == nil {
			u.errorPage(w, r, &p, http.StatusServiceUnavailable, "Projects are not available",
				"This server runs without the deployment service, so projects and apps cannot be shown.")
			return
		}
		h(w, r, p)
	}
}

func projectURL(name string) string { return "/projects/" + url.PathEscape(name) }

// appURL is the address of an app page; suffix is "" or "/deployments" and
// the like. The environment rides along as ?env= unless it is production.
func appURL(ref deploy.AppRef, suffix string) string {
	s := projectURL(ref.Project) + "/apps/" + url.PathEscape(ref.Name) + suffix
	if ref.Environment != "" && ref.Environment != deploy.Production {
		s += "?env=" + url.QueryEscape(ref.Environment)
	}
	return s
}

// appRefOf reads the app a request is about.
func appRefOf(r *http.Request) deploy.AppRef {
	env := r.URL.Query().Get("env")
	if env == "" {
		env = deploy.Production
	}
	return deploy.AppRef{Project: r.PathValue("project"), Environment: env, Name: r.PathValue("app")}
}

// seeOther sends the browser on after a successful post: a 303 for a plain
// form, HX-Redirect for htmx (a redirect it followed would be swapped in).
func seeOther(w http.ResponseWriter, r *http.Request, target string) {
	if isHTMX(r) {
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// failed shows what went wrong with a request about projects and apps: a
// 404 for something that does not exist, the manager's own explanation for
// a conflict, and a logged 500 for everything else.
func (u *ui) failed(w http.ResponseWriter, r *http.Request, p auth.Principal, op string, err error) {
	var fe *app.FieldError
	switch {
	case errors.Is(err, store.ErrNotFound):
		u.errorPage(w, r, &p, http.StatusNotFound, "Not found", "There is no such project, environment, app or deployment. It may have been deleted or renamed.")
	case errors.Is(err, deploy.ErrBusy):
		u.errorPage(w, r, &p, http.StatusConflict, "That can't be done right now", busyMessage(err))
	case errors.As(err, &fe):
		u.errorPage(w, r, &p, http.StatusUnprocessableEntity, "That value is not accepted", titleCase(fe.Field)+" "+fe.Message+".")
	case errors.Is(err, orchestrator.ErrEngineUnreachable):
		u.errorPage(w, r, &p, http.StatusServiceUnavailable, "The container engine did not answer", "Berth could not reach the Docker Engine. See the System page, then try again.")
	default:
		u.serverError(w, r, op, err)
	}
}

// busyMessage words an ErrBusy from the manager (a *deploy.ConflictError,
// written for users) as a sentence.
func busyMessage(err error) string {
	return titleCase(err.Error()) + "."
}

// projectNotices are the messages a redirect can ask for (?notice=…); a
// fixed set, so the query string cannot put text on the page.
var projectNotices = map[string]Notice{
	"project-created":     {Tone: "ok", Title: "Project created.", Message: "It starts with a production environment. Add its first app."},
	"project-renamed":     {Tone: "ok", Message: "Project renamed. Its apps keep running; only the addresses of these pages changed."},
	"project-deleted":     {Tone: "ok", Message: "Project deleted."},
	"environment-created": {Tone: "ok", Message: "Environment created. Its apps share a private network of their own."},
	"app-deleted":         {Tone: "ok", Message: "App deleted. Its containers are stopping."},
	"app-deleted-volumes": {Tone: "ok", Message: "App and its volumes deleted."},
	"app-created":         {Tone: "ok", Title: "App created.", Message: "Nothing runs until you deploy it."},
	"stopped":             {Tone: "ok", Message: "App stopped. Its replicas are shutting down; Start brings them back."},
	"started":             {Tone: "ok", Message: "App started with its remembered replica count."},
	"scaled":              {Tone: "ok", Message: "Replica count changed. Swarm is adjusting the running containers."},
	"git-app-created":     {Tone: "ok", Title: "App created.", Message: "Set up the webhook below so that pushes deploy, or deploy its newest commit now."},
	"build-cancelled":     {Tone: "ok", Message: "Build cancelled. Nothing of it is deployed."},
}

func noticeOf(r *http.Request) *Notice {
	if n, ok := projectNotices[r.URL.Query().Get("notice")]; ok {
		return &n
	}
	return nil
}

// ---------- projects list ----------

type projectsView struct {
	Layout
	Projects []projectRow
	Form     projectForm
}

type projectRow struct {
	Name, URL    string
	Environments int
	Apps         int
	States       []stateCount // how many apps are in each state, worst first
	Created      time.Time
}

type stateCount struct {
	Badge Badge
	Count int
}

// projectForm is the create-project form; htmx swaps it on errors.
type projectForm struct {
	CSRF      string
	FormError string
	Name      Field
}

func newProjectForm(csrf, name string) projectForm {
	return projectForm{CSRF: csrf, Name: Field{ID: "project-name", Name: "name", Label: "Name", Type: "text", Value: name, Required: true, MaxLength: app.MaxNameLength, Placeholder: "shop", Code: true, Hint: "Lowercase letters, digits and '-', such as shop or billing-api."}}
}

// stateOrder is how states are listed: trouble first.
var stateOrder = []string{stateFailed, stateDegraded, stateDeploying, stateUnknown, stateLive, stateStopped, stateNew}

func (u *ui) projectsView(r *http.Request, p auth.Principal) (projectsView, error) {
	v := projectsView{Layout: u.layout(r, &p, "Projects", "projects"), Form: newProjectForm(p.CSRFToken, "")}
	v.Notice = noticeOf(r)
	projects, err := u.d.Apps.Projects(r.Context(), p)
	if err != nil {
		return v, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	for _, proj := range projects {
		envs, apps, err := u.projectApps(ctx, p, proj.Name)
		if err != nil {
			return v, err
		}
		row := projectRow{Name: proj.Name, URL: projectURL(proj.Name), Environments: len(envs), Apps: len(apps), Created: proj.CreatedAt}
		counts := map[string]int{}
		for _, a := range apps {
			counts[a.State]++
		}
		for _, s := range stateOrder {
			if counts[s] > 0 {
				row.States = append(row.States, stateCount{stateBadges[s], counts[s]})
			}
		}
		v.Projects = append(v.Projects, row)
	}
	return v, nil
}

func (u *ui) projects(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, err := u.projectsView(r, p)
	if err != nil {
		u.serverError(w, r, "list projects", err)
		return
	}
	u.render(w, r, http.StatusOK, "projects", v)
}

func (u *ui) createProject(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	name := strings.TrimSpace(r.PostFormValue("name"))
	proj, err := u.d.Apps.CreateProject(r.Context(), p, name)
	if err == nil {
		seeOther(w, r, projectURL(proj.Name)+"?notice=project-created")
		return
	}
	errs := fieldErrors{}
	if !addAppFieldError(errs, err) {
		u.serverError(w, r, "create project", err)
		return
	}
	form := newProjectForm(p.CSRFToken, name)
	errs.apply(&form.Name)
	if isHTMX(r) {
		u.renderTemplate(w, r, http.StatusUnprocessableEntity, "projects", "project-form", form)
		return
	}
	v, verr := u.projectsView(r, p)
	if verr != nil {
		u.serverError(w, r, "list projects", verr)
		return
	}
	v.Form = form
	u.render(w, r, http.StatusUnprocessableEntity, "projects", v)
}

// ---------- one project ----------

// appRow is an app in a project's list.
type appRow struct {
	Name, URL   string
	Environment string
	State       string
	Badge       Badge
	Image       string
	Running     int
	Desired     int
	Updated     time.Time
}

type envSection struct {
	Name       string
	Anchor     string
	Production bool
	Apps       []appRow
	NewAppURL  string
}

type projectView struct {
	Layout
	Name         string
	URL          string
	Created      time.Time
	Environments []envSection
	AppCount     int
	EnvForm      envForm
	RenameForm   renameForm
	DeleteError  string
	// CanWrite: the role (or a grant on the project) may change the
	// project; CanAddApps: may create apps in it.
	CanWrite, CanAddApps bool
}

type envForm struct {
	CSRF   string
	Action string
	Name   Field
}

type renameForm struct {
	CSRF   string
	Action string
	Name   Field
}

// projectApps lists a project's environments and apps with their state.
// The engine is asked about each app; when it does not answer in time the
// app shows as unknown rather than failing the page.
func (u *ui) projectApps(ctx context.Context, p auth.Principal, project string) ([]store.Environment, []appRow, error) {
	envs, err := u.d.Apps.Environments(ctx, p, project)
	if err != nil {
		return nil, nil, err
	}
	apps, err := u.d.Apps.Apps(ctx, p, project)
	if err != nil {
		return nil, nil, err
	}
	envName := map[string]string{}
	for _, e := range envs {
		envName[e.ID] = e.Name
	}
	rows := make([]appRow, 0, len(apps))
	for _, a := range apps {
		ref := deploy.AppRef{Project: project, Environment: envName[a.EnvironmentID], Name: a.Name}
		row := appRow{Name: a.Name, URL: appURL(ref, ""), Environment: ref.Environment, Image: a.Spec.Image, Desired: a.Spec.Replicas, Updated: a.UpdatedAt}
		st, state, err := u.appState(ctx, p, ref)
		if err != nil && errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		row.State = state
		row.Badge = stateBadges[state]
		if st.Release.Exists {
			row.Running, row.Desired = st.Release.Running, st.Release.Desired
		}
		if a.Stopped {
			row.Desired = 0
		}
		rows = append(rows, row)
	}
	return envs, rows, nil
}

// appState returns the app's status and its state in one word. An engine
// error leaves the state unknown and is returned for the caller to judge.
func (u *ui) appState(ctx context.Context, p auth.Principal, ref deploy.AppRef) (deploy.Status, string, error) {
	st, err := u.d.Apps.AppStatus(ctx, p, ref)
	if err != nil {
		return st, stateUnknown, err
	}
	var latest *store.Deployment
	if st.Current == nil && st.InFlight == nil {
		if ds, err := u.d.Apps.Deployments(ctx, p, ref, 1); err == nil && len(ds) > 0 {
			latest = &ds[0]
		}
	}
	return st, appState(st, latest), nil
}

func envAnchor(name string) string { return "env-" + name }

func (u *ui) projectView(r *http.Request, p auth.Principal, name string) (projectView, error) {
	proj, err := u.d.Apps.Project(r.Context(), p, name)
	if err != nil {
		return projectView{}, err
	}
	v := projectView{Layout: u.layout(r, &p, proj.Name, "projects"), Name: proj.Name, URL: projectURL(proj.Name), Created: proj.CreatedAt,
		CanWrite: p.CanIn(authz.ProjectWrite, proj.ID, ""), CanAddApps: p.CanIn(authz.AppWrite, proj.ID, "")}
	v.Notice = noticeOf(r)
	v.EnvForm = envForm{CSRF: p.CSRFToken, Action: v.URL + "/environments",
		Name: Field{ID: "env-name", Name: "name", Label: "Name", Type: "text", Required: true, MaxLength: app.MaxNameLength, Placeholder: "staging", Code: true}}
	v.RenameForm = renameForm{CSRF: p.CSRFToken, Action: v.URL + "/rename",
		Name: Field{ID: "project-rename", Name: "name", Label: "Project name", Type: "text", Value: proj.Name, Required: true, MaxLength: app.MaxNameLength, Code: true}}
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	envs, rows, err := u.projectApps(ctx, p, proj.Name)
	if err != nil {
		return v, err
	}
	v.AppCount = len(rows)
	// Production first, then the others by name.
	slices.SortStableFunc(envs, func(a, b store.Environment) int {
		if (a.Name == deploy.Production) != (b.Name == deploy.Production) {
			if a.Name == deploy.Production {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, e := range envs {
		s := envSection{Name: e.Name, Anchor: envAnchor(e.Name), Production: e.Name == deploy.Production, NewAppURL: v.URL + "/apps/new"}
		if !s.Production {
			s.NewAppURL += "?env=" + url.QueryEscape(e.Name)
		}
		if !p.CanIn(authz.AppWrite, e.ProjectID, e.ID) {
			s.NewAppURL = ""
		}
		for _, row := range rows {
			if row.Environment == e.Name {
				s.Apps = append(s.Apps, row)
			}
		}
		v.Environments = append(v.Environments, s)
	}
	return v, nil
}

func (u *ui) project(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, err := u.projectView(r, p, r.PathValue("project"))
	if err != nil {
		u.failed(w, r, p, "show project", err)
		return
	}
	u.render(w, r, http.StatusOK, "project", v)
}

func (u *ui) createEnvironment(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	project := r.PathValue("project")
	name := strings.TrimSpace(r.PostFormValue("name"))
	env, err := u.d.Apps.CreateEnvironment(r.Context(), p, project, name)
	if err == nil {
		seeOther(w, r, projectURL(project)+"?notice=environment-created#"+envAnchor(env.Name))
		return
	}
	errs := fieldErrors{}
	if !addAppFieldError(errs, err) {
		u.failed(w, r, p, "create environment", err)
		return
	}
	v, verr := u.projectView(r, p, project)
	if verr != nil {
		u.failed(w, r, p, "show project", verr)
		return
	}
	v.EnvForm.Name.Value = name
	errs.apply(&v.EnvForm.Name)
	if isHTMX(r) {
		u.renderTemplate(w, r, http.StatusUnprocessableEntity, "project", "env-form", v.EnvForm)
		return
	}
	u.render(w, r, http.StatusUnprocessableEntity, "project", v)
}

func (u *ui) renameProject(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	project := r.PathValue("project")
	name := strings.TrimSpace(r.PostFormValue("name"))
	proj, err := u.d.Apps.RenameProject(r.Context(), p, project, name)
	if err == nil {
		seeOther(w, r, projectURL(proj.Name)+"?notice=project-renamed")
		return
	}
	errs := fieldErrors{}
	if !addAppFieldError(errs, err) {
		u.failed(w, r, p, "rename project", err)
		return
	}
	v, verr := u.projectView(r, p, project)
	if verr != nil {
		u.failed(w, r, p, "show project", verr)
		return
	}
	v.RenameForm.Name.Value = name
	errs.apply(&v.RenameForm.Name)
	u.render(w, r, http.StatusUnprocessableEntity, "project", v)
}

func (u *ui) deleteProject(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	project := r.PathValue("project")
	err := u.d.Apps.DeleteProject(r.Context(), p, project)
	if err == nil {
		seeOther(w, r, "/projects?notice=project-deleted")
		return
	}
	if !errors.Is(err, store.ErrNotEmpty) {
		u.failed(w, r, p, "delete project", err)
		return
	}
	v, verr := u.projectView(r, p, project)
	if verr != nil {
		u.failed(w, r, p, "show project", verr)
		return
	}
	v.DeleteError = "This project still has apps. Delete them first; the project and its environments can go once it is empty."
	if isHTMX(r) {
		u.renderTemplate(w, r, http.StatusConflict, "project", "danger-zone", v)
		return
	}
	u.render(w, r, http.StatusConflict, "project", v)
}
