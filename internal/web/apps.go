package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/store"
)

// appView is every page of an app: the shared head (name, state, actions,
// tabs) and the one section the tab shows.
type appView struct {
	Layout
	Head        appHead
	Tab         string // overview|source|builds|build|deployments|deployment|logs|env|domains|requests|settings|delete-volumes
	Overview    *overviewView
	Deployments []deploymentRow
	Deployment  *deploymentDetail
	Logs        *logsView
	Env         *envView
	Domains     *domainsView
	Requests    *requestsView
	Settings    *appSettingsView
	Source      *sourceView
	Builds      *buildsView
	Build       *buildDetail
}

// appHead is the header every app page shares.
type appHead struct {
	CSRF        string
	Project     string
	ProjectURL  string
	Environment string
	Production  bool
	Name        string
	URL         string
	Tabs        []tabLink
	State       appStateView
	Image       string
	Deployed    bool // has a current deployment
	Stopped     bool
	InFlight    *deploymentRow
	Actions     appActions
	DeployImage Field
	Scale       Field
	ActionError string // a deploy or scale that was refused, shown in the header
	// Git is set for an app built from git: its Deploy builds a commit.
	Git    *gitHead
	Commit Field // "Deploy a commit"
	Can    appPerms
}

// appPerms are what the principal may do to this app (by role or a grant
// on its project or environment); the page hides the rest, the manager
// refuses it anyway.
type appPerms struct {
	Deploy bool // deploy, restart, scale, stop, start, roll back, cancel
	Write  bool // settings, variables, delete
	Reveal bool // variable values, webhook secret
	Domain bool
}

func appPermsOf(p auth.Principal, a store.App) appPerms {
	can := func(perm authz.Permission) bool { return p.CanIn(perm, a.ProjectID, a.EnvironmentID) }
	return appPerms{Deploy: can(authz.AppDeploy), Write: can(authz.AppWrite), Reveal: can(authz.AppEnvReveal), Domain: can(authz.DomainWrite)}
}

// gitHead is where a git app's code comes from, for the header.
type gitHead struct {
	Repository string
	Branch     string
}

// appStateView is the state badge and replica count; the overview's live
// refresh swaps it out of band, so the header stays current too.
type appStateView struct {
	Badge   Badge
	Running int
	Desired int
	Shown   bool // a replica count is meaningful
}

type appActions struct {
	Deploy, Restart, Stop, Start, Scale, Delete string
}

type tabLink struct {
	Label, URL string
	Current    bool
}

type overviewView struct {
	RefreshURL string
	Live       bool // refresh while something is changing
	State      appStateView
	Current    *deploymentRow
	InFlight   *deploymentRow
	Problem    string
	Tasks      []taskRow
	EngineErr  string
	Spec       specView
	WebFacing  bool        // the app has an HTTP port, so domains apply
	Domains    []domainRow // links only
	DomainsURL string
}

type taskRow struct {
	Slot     int
	Node     string
	State    Badge
	Message  string
	ExitCode int
	Since    time.Time
}

// specView is the configuration an app runs with, in words.
type specView struct {
	Image    string
	Port     string
	Replicas int
	CPU      string
	Memory   string
	Health   string
	Volumes  []string
	Ports    []string
	Files    []string // target, kind, size and mode; never the content
	Binds    []string
}

type deploymentRow struct {
	ID, URL        string
	Seq            int
	Badge          Badge
	Reason         string
	Image          string
	Digest         string
	By             string
	Created        time.Time
	Duration       string
	Error          string
	Current        bool
	Active         bool // not yet terminal
	RollbackAction string
	CancelAction   string
	CSRF           string
}

func specOf(s app.Spec) specView {
	v := specView{Image: s.Image, Replicas: s.Replicas, Port: "none (not web-facing)", CPU: "no limit", Memory: "no limit", Health: "the image's HEALTHCHECK, else a TCP check of the HTTP port"}
	if s.Port > 0 {
		v.Port = strconv.Itoa(s.Port)
	}
	if s.Resources.CPULimit > 0 {
		v.CPU = strconv.FormatFloat(s.Resources.CPULimit, 'f', -1, 64) + " cores"
	}
	if s.Resources.MemoryLimit > 0 {
		v.Memory = bytesIEC(s.Resources.MemoryLimit)
	}
	if h := s.Health; h != nil {
		switch h.Type {
		case app.HealthHTTP:
			v.Health = "HTTP GET " + h.Path
			if h.Port != 0 && h.Port != s.Port {
				v.Health += " on port " + strconv.Itoa(h.Port)
			}
		case app.HealthCommand:
			v.Health = "command: " + strings.Join(h.Command, " ")
		case app.HealthNone:
			v.Health = "none: replicas get traffic as soon as they start"
		}
	}
	for _, vol := range s.Volumes {
		line := vol.Name + " → " + vol.Target
		if vol.ReadOnly {
			line += " (read-only)"
		}
		v.Volumes = append(v.Volumes, line)
	}
	for _, p := range s.Ports {
		v.Ports = append(v.Ports, fmt.Sprintf("%d → %d/%s", p.Published, p.Target, p.Protocol))
	}
	for _, f := range s.Files {
		kind := "config, " + bytesIEC(int64(len(f.Content)))
		if f.Secret {
			kind = "secret, stored encrypted"
		}
		mode := f.Mode
		if mode == 0 {
			mode = app.DefaultFileMode
		}
		v.Files = append(v.Files, fmt.Sprintf("%s (%s, %04o)", f.Target, kind, mode))
	}
	for _, b := range s.Binds {
		line := b.Source + " → " + b.Target
		if b.ReadOnly {
			line += " (read-only)"
		}
		v.Binds = append(v.Binds, line)
	}
	return v
}

// onlyIf drops the row's roll back and cancel actions unless canDeploy.
func (row deploymentRow) onlyIf(canDeploy bool) deploymentRow {
	if !canDeploy {
		row.RollbackAction, row.CancelAction = "", ""
	}
	return row
}

func (u *ui) deploymentRow(ref deploy.AppRef, csrf string, d store.Deployment, currentID string, now time.Time) deploymentRow {
	row := deploymentRow{
		ID: d.ID, Seq: d.Seq, URL: appURL(ref, "/deployments/"+strconv.Itoa(d.Seq)), Badge: deployBadge(d), Reason: d.Reason,
		Image: d.Image, Digest: shortDigest(d.ImageDigest), By: d.CreatedBy, Created: d.CreatedAt, Error: d.Error,
		Current: d.ID == currentID, Active: !store.DeploymentTerminal(d.Status), CSRF: csrf,
	}
	start := d.CreatedAt
	if d.StartedAt != nil {
		start = *d.StartedAt
	}
	switch {
	case d.FinishedAt != nil:
		row.Duration = humanDuration(d.FinishedAt.Sub(start))
	case row.Active:
		row.Duration = humanDuration(now.Sub(start)) + " so far"
	}
	if (d.Status == store.DeployLive || d.Status == store.DeployRetired) && !row.Current {
		row.RollbackAction = appURL(ref, "/deployments/"+strconv.Itoa(d.Seq)+"/rollback")
	}
	if (d.Status == store.DeployQueued || d.Status == store.DeployStarting) && !d.CancelRequested {
		row.CancelAction = appURL(ref, "/deployments/"+strconv.Itoa(d.Seq)+"/cancel")
	}
	return row
}

// appPage loads what every app page shows. The engine's view of the
// release is asked for with a deadline; when it does not answer the page
// still renders from the database, with the state unknown.
func (u *ui) appPage(r *http.Request, p auth.Principal, tab string) (appView, deploy.Status, error) {
	ref := appRefOf(r)
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	st, state, err := u.appState(ctx, p, ref)
	var engineErr error
	if err != nil {
		a, aerr := u.d.Apps.App(r.Context(), p, ref)
		if aerr != nil {
			return appView{}, st, aerr
		}
		st = deploy.Status{App: a}
		engineErr = err
	}
	a := st.App
	h := appHead{
		CSRF: p.CSRFToken, Project: ref.Project, ProjectURL: projectURL(ref.Project), Environment: ref.Environment,
		Production: ref.Environment == deploy.Production, Name: a.Name, URL: appURL(ref, ""),
		Image: a.Spec.Image, Deployed: st.Current != nil, Stopped: a.Stopped,
		State: stateView(st, state), Can: appPermsOf(p, a),
		Actions: appActions{
			Deploy: appURL(ref, "/deploy"), Restart: appURL(ref, "/restart"), Stop: appURL(ref, "/stop"),
			Start: appURL(ref, "/start"), Scale: appURL(ref, "/scale"), Delete: appURL(ref, "/delete"),
		},
		DeployImage: Field{ID: "deploy-image", Name: "image", Label: "Image", Type: "text", Value: a.Spec.Image, MaxLength: app.MaxImageLength, Code: true, Hint: "Change it to deploy another version."},
		Scale:       Field{ID: "scale-replicas", Name: "replicas", Label: "Replicas", Type: "number", Value: strconv.Itoa(a.Spec.Replicas), Min: "0", Max: strconv.Itoa(app.MaxReplicas), Required: true},
	}
	if st.InFlight != nil {
		row := u.deploymentRow(ref, p.CSRFToken, *st.InFlight, a.CurrentDeploymentID, time.Now()).onlyIf(h.Can.Deploy)
		h.InFlight = &row
	}
	tabs := []struct{ label, suffix, tab string }{
		{"Overview", "", "overview"}, {"Deployments", "/deployments", "deployments"}, {"Logs", "/logs", "logs"},
		{"Environment", "/env", "env"}, {"Domains", "/domains", "domains"}, {"Requests", "/requests", "requests"},
		{"Settings", "/settings", "settings"},
	}
	if src, err := u.d.Apps.GitSource(r.Context(), p, ref); err == nil {
		h.Git = &gitHead{Repository: src.CloneURL, Branch: src.Branch}
		h.Commit = Field{ID: "deploy-commit", Name: "commit", Label: "Commit", Type: "text", Code: true, MaxLength: 64, Required: true,
			Placeholder: "full commit id (40 hex digits)", Autocomplete: "off", Hint: "Builds and deploys exactly this commit of " + src.Branch + "."}
		tabs = append(tabs[:1], append([]struct{ label, suffix, tab string }{{"Source", "/source", "source"}, {"Builds", "/builds", "builds"}}, tabs[1:]...)...)
	} else if !errors.Is(err, store.ErrNotFound) {
		return appView{}, st, err
	}
	for _, t := range tabs {
		current := t.tab == tab || tab == "deployment" && t.tab == "deployments" || tab == "delete-volumes" && t.tab == "settings" || tab == "build" && t.tab == "builds"
		h.Tabs = append(h.Tabs, tabLink{Label: t.label, URL: appURL(ref, t.suffix), Current: current})
	}
	v := appView{Layout: u.layout(r, &p, a.Name+" · "+ref.Project, "projects"), Head: h, Tab: tab}
	v.Notice = noticeOf(r)
	if engineErr != nil && !errors.Is(engineErr, context.Canceled) {
		u.d.Log.WarnContext(r.Context(), "web: app status", "app", ref.String(), "err", engineErr)
	}
	return v, st, nil
}

func stateView(st deploy.Status, state string) appStateView {
	v := appStateView{Badge: stateBadges[state]}
	if st.Release.Exists {
		v.Running, v.Desired, v.Shown = st.Release.Running, st.Release.Desired, true
	}
	return v
}

func (u *ui) overview(r *http.Request, p auth.Principal, v appView, st deploy.Status) *overviewView {
	ref := appRefOf(r)
	now := time.Now()
	o := &overviewView{RefreshURL: appURL(ref, "/overview"), State: v.Head.State, Problem: st.Release.Problem, Spec: specOf(st.App.Spec),
		WebFacing: st.App.Spec.Port > 0, DomainsURL: appURL(ref, "/domains")}
	if o.WebFacing {
		o.Domains = u.overviewDomains(r, p, ref)
	}
	if st.Current != nil {
		row := u.deploymentRow(ref, p.CSRFToken, *st.Current, st.App.CurrentDeploymentID, now).onlyIf(v.Head.Can.Deploy)
		o.Current = &row
	}
	o.InFlight = v.Head.InFlight
	o.Live = st.InFlight != nil || v.Head.State.Badge == stateBadges[stateDegraded]
	for _, t := range st.Release.Tasks {
		o.Tasks = append(o.Tasks, taskRow{Slot: t.Slot, Node: t.Node, State: taskBadge(t.State), Message: t.Message, ExitCode: t.ExitCode, Since: t.Since})
	}
	if v.Head.State.Badge == stateBadges[stateUnknown] {
		o.EngineErr = "The container engine did not answer, so what runs right now is not known. The System page shows the engine's state."
	}
	return o
}

func (u *ui) appOverview(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, st, err := u.appPage(r, p, "overview")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	v.Overview = u.overview(r, p, v, st)
	u.render(w, r, http.StatusOK, "app", v)
}

// appOverviewFragment is the overview's live refresh: the section, and the
// header's state out of band.
func (u *ui) appOverviewFragment(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, st, err := u.appPage(r, p, "overview")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	if !isHTMX(r) {
		http.Redirect(w, r, v.Head.URL, http.StatusSeeOther)
		return
	}
	v.Overview = u.overview(r, p, v, st)
	u.renderTemplate(w, r, http.StatusOK, "app", "overview-fragment", v)
}

// withNotice adds ?notice= (or &notice=) to target.
func withNotice(target, notice string) string {
	if strings.Contains(target, "?") {
		return target + "&notice=" + notice
	}
	return target + "?notice=" + notice
}

// actionRefused re-renders the overview with a refused deploy or scale
// explained in the header, next to the control that was used.
func (u *ui) actionRefused(w http.ResponseWriter, r *http.Request, p auth.Principal, err error, field string, value string) {
	errs := fieldErrors{}
	if !addAppFieldError(errs, err) {
		u.failed(w, r, p, "app action", err)
		return
	}
	v, st, verr := u.appPage(r, p, "overview")
	if verr != nil {
		u.failed(w, r, p, "show app", verr)
		return
	}
	v.Overview = u.overview(r, p, v, st)
	f := &v.Head.DeployImage
	switch field {
	case "replicas":
		f = &v.Head.Scale
	case "commit":
		f = &v.Head.Commit
	}
	f.Value = value
	f.Error = errs[field]
	if f.Error == "" {
		for _, m := range errs {
			f.Error = m
		}
	}
	v.Head.ActionError = f.Label + " " + f.Error + "."
	u.render(w, r, http.StatusUnprocessableEntity, "app", v)
}

func (u *ui) deployApp(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	// A git app is deployed by building a commit: the branch's newest, or
	// the one typed in. The build deploys itself when it succeeds.
	if _, err := u.d.Apps.GitSource(r.Context(), p, ref); err == nil {
		commit := strings.ToLower(strings.TrimSpace(r.PostFormValue("commit")))
		b, err := u.d.Apps.StartBuild(r.Context(), p, ref, commit)
		if err != nil {
			u.actionRefused(w, r, p, err, "commit", commit)
			return
		}
		seeOther(w, r, buildURL(ref, b.Seq))
		return
	} else if !errors.Is(err, store.ErrNotFound) {
		u.failed(w, r, p, "deploy", err)
		return
	}
	image := strings.TrimSpace(r.PostFormValue("image"))
	d, err := u.d.Apps.Deploy(r.Context(), p, ref, deploy.DeployInput{Image: image})
	if err != nil {
		u.actionRefused(w, r, p, err, "image", image)
		return
	}
	seeOther(w, r, appURL(ref, "/deployments/"+strconv.Itoa(d.Seq)))
}

func (u *ui) restartApp(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	d, err := u.d.Apps.Restart(r.Context(), p, ref)
	if err != nil {
		u.failed(w, r, p, "restart app", err)
		return
	}
	seeOther(w, r, appURL(ref, "/deployments/"+strconv.Itoa(d.Seq)))
}

func (u *ui) stopApp(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	if err := u.d.Apps.Stop(r.Context(), p, ref); err != nil {
		u.failed(w, r, p, "stop app", err)
		return
	}
	seeOther(w, r, withNotice(appURL(ref, ""), "stopped"))
}

func (u *ui) startApp(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	if err := u.d.Apps.Start(r.Context(), p, ref); err != nil {
		u.failed(w, r, p, "start app", err)
		return
	}
	seeOther(w, r, withNotice(appURL(ref, ""), "started"))
}

func (u *ui) scaleApp(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	raw := strings.TrimSpace(r.PostFormValue("replicas"))
	n, err := strconv.Atoi(raw)
	if err != nil {
		err = &app.FieldError{Field: "replicas", Message: fmt.Sprintf("must be a whole number between 0 and %d", app.MaxReplicas)}
	} else {
		_, err = u.d.Apps.Scale(r.Context(), p, ref, n)
	}
	if err != nil {
		u.actionRefused(w, r, p, err, "replicas", raw)
		return
	}
	seeOther(w, r, withNotice(appURL(ref, ""), "scaled"))
}

// ---------- deployments ----------

func (u *ui) appDeployments(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, st, err := u.appPage(r, p, "deployments")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	ref := appRefOf(r)
	ds, err := u.d.Apps.Deployments(r.Context(), p, ref, 100)
	if err != nil {
		u.failed(w, r, p, "list deployments", err)
		return
	}
	now := time.Now()
	for _, d := range ds {
		v.Deployments = append(v.Deployments, u.deploymentRow(ref, p.CSRFToken, d, st.App.CurrentDeploymentID, now).onlyIf(v.Head.Can.Deploy))
	}
	u.render(w, r, http.StatusOK, "app", v)
}

type deploymentDetail struct {
	Row         deploymentRow
	Steps       []store.DeploymentStep
	ProgressURL string
	Started     *time.Time
	Finished    *time.Time
	Spec        specView
	Previous    string
	RollbackOf  string
}

func (u *ui) deploymentDetail(r *http.Request, p auth.Principal, a store.App) (*deploymentDetail, error) {
	ref := appRefOf(r)
	d, err := u.d.Apps.FindDeployment(r.Context(), p, ref, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	steps, err := u.d.Apps.Steps(r.Context(), p, d)
	if err != nil {
		return nil, err
	}
	row := u.deploymentRow(ref, p.CSRFToken, d, a.CurrentDeploymentID, time.Now()).onlyIf(appPermsOf(p, a).Deploy)
	dd := &deploymentDetail{Row: row, Steps: steps, ProgressURL: appURL(ref, "/deployments/"+strconv.Itoa(d.Seq)+"/progress"),
		Started: d.StartedAt, Finished: d.FinishedAt, Spec: specOf(d.Spec), Previous: d.PreviousService}
	if d.RollbackOf != "" {
		if t, err := u.d.Apps.FindDeployment(r.Context(), p, ref, d.RollbackOf); err == nil {
			dd.RollbackOf = "#" + strconv.Itoa(t.Seq)
		}
	}
	return dd, nil
}

func (u *ui) deployment(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, st, err := u.appPage(r, p, "deployment")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	dd, err := u.deploymentDetail(r, p, st.App)
	if err != nil {
		u.failed(w, r, p, "show deployment", err)
		return
	}
	v.Deployment = dd
	v.Title = fmt.Sprintf("Deployment #%d · %s", dd.Row.Seq, v.Head.Name)
	u.render(w, r, http.StatusOK, "app", v)
}

// deploymentProgress is polled every second while a deployment runs. Once
// it is over, the fragment it returns no longer polls.
func (u *ui) deploymentProgress(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	a, err := u.d.Apps.App(r.Context(), p, appRefOf(r))
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	dd, err := u.deploymentDetail(r, p, a)
	if err != nil {
		u.failed(w, r, p, "show deployment", err)
		return
	}
	if !isHTMX(r) {
		http.Redirect(w, r, dd.Row.URL, http.StatusSeeOther)
		return
	}
	u.renderTemplate(w, r, http.StatusOK, "app", "deployment-progress", dd)
}

func (u *ui) rollback(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	d, err := u.d.Apps.Rollback(r.Context(), p, ref, r.PathValue("id"))
	if err != nil {
		u.failed(w, r, p, "roll back", err)
		return
	}
	seeOther(w, r, appURL(ref, "/deployments/"+strconv.Itoa(d.Seq)))
}

func (u *ui) cancelDeployment(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	d, err := u.d.Apps.Cancel(r.Context(), p, ref, r.PathValue("id"))
	if err != nil {
		u.failed(w, r, p, "cancel deployment", err)
		return
	}
	seeOther(w, r, appURL(ref, "/deployments/"+strconv.Itoa(d.Seq)))
}

// ---------- new app ----------

type newAppView struct {
	Layout
	Project    string
	ProjectURL string
	Form       appForm
}

func (u *ui) newAppView(r *http.Request, p auth.Principal, env string) (newAppView, error) {
	project := r.PathValue("project")
	envs, err := u.d.Apps.Environments(r.Context(), p, project)
	if err != nil {
		return newAppView{}, err
	}
	names := make([]string, len(envs))
	for i, e := range envs {
		names[i] = e.Name
	}
	v := newAppView{Layout: u.layout(r, &p, "New app · "+project, "projects"), Project: project, ProjectURL: projectURL(project)}
	v.Form = newAppForm(p.CSRFToken, projectURL(project)+"/apps", names, env)
	if p.Can(authz.ConnectionRead) {
		cs, err := u.d.Apps.Connections(r.Context(), p)
		if err != nil {
			return newAppView{}, err
		}
		v.Form.Git.withConnections(cs)
	}
	return v, nil
}

func (u *ui) newApp(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, err := u.newAppView(r, p, r.URL.Query().Get("env"))
	if err != nil {
		u.failed(w, r, p, "new app", err)
		return
	}
	u.render(w, r, http.StatusOK, "app-new", v)
}

func (u *ui) createApp(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	project := r.PathValue("project")
	errs := fieldErrors{}
	in := parseAppForm(r.PostFormValue, errs)
	ref := deploy.AppRef{Project: project, Environment: in.Environment, Name: in.Name}
	git := r.PostFormValue("source") == sourceGit
	var gitIn deploy.GitInput
	if git {
		gitIn = parseGitForm(r.PostFormValue, errs)
		gitIn.WebhookBase = u.webhookBase(r)
	}
	if len(errs) == 0 {
		var a store.App
		var created deploy.GitSource
		var err error
		if git {
			a, created, err = u.d.Apps.CreateGitApp(r.Context(), p, deploy.CreateAppInput{Ref: ref, Spec: in.Spec, Env: in.Vars}, gitIn)
		} else {
			a, err = u.d.Apps.CreateApp(r.Context(), p, deploy.CreateAppInput{Ref: ref, Spec: in.Spec, Env: in.Vars})
		}
		switch {
		case err == nil && git:
			if r.PostFormValue("then") == "deploy" {
				b, err := u.d.Apps.StartBuild(r.Context(), p, ref, "")
				if err != nil {
					u.failed(w, r, p, "build new app", err)
					return
				}
				seeOther(w, r, buildURL(ref, b.Seq))
				return
			}
			target := withNotice(appURL(ref, "/source"), "git-app-created")
			if created.ProviderWebhook != "" {
				target += "&" + webhookNoteQuery(p, created.ProviderWebhook)
			}
			seeOther(w, r, target)
			return
		case err == nil:
			if r.PostFormValue("then") == "deploy" {
				d, err := u.d.Apps.Deploy(r.Context(), p, ref, deploy.DeployInput{})
				if err != nil {
					u.failed(w, r, p, "deploy new app", err)
					return
				}
				seeOther(w, r, appURL(ref, "/deployments/"+strconv.Itoa(d.Seq)))
				return
			}
			seeOther(w, r, withNotice(appURL(deploy.AppRef{Project: project, Environment: in.Environment, Name: a.Name}, ""), "app-created"))
			return
		case errors.Is(err, store.ErrNotFound):
			// The project exists (the form came from it), so the environment does not.
			if _, perr := u.d.Apps.Project(r.Context(), p, project); perr != nil {
				u.failed(w, r, p, "create app", perr)
				return
			}
			errs["environment"] = "does not exist in this project"
		case !addAppFieldError(errs, err):
			u.failed(w, r, p, "create app", err)
			return
		}
	}
	v, err := u.newAppView(r, p, in.Environment)
	if err != nil {
		u.failed(w, r, p, "new app", err)
		return
	}
	v.Form.fill(r.PostFormValue)
	v.Form.Git.selectConnection(r.PostFormValue("git_provider"))
	v.Form.Name.Autofocus = false
	errs.apply(v.Form.fields()...)
	v.Form.FormError = formErrorSummary(errs)
	u.render(w, r, http.StatusUnprocessableEntity, "app-new", v)
}

// ---------- settings and delete ----------

type appSettingsView struct {
	Form         appForm
	Saved        bool   // the spec was just saved: offer to deploy it
	DeployAction string // the Deploy button's form action
	Confirm      Field
	Volumes      bool // "also delete volumes" is ticked (kept on errors)
	HasVolumes   bool
	VolumeNames  []string
	DeleteAction string
	SettingsURL  string
	FormError    string
}

// canBind reports whether p may set or change bind mounts, as
// deploy.Manager decides it: a host path reaches the node itself.
func canBind(p auth.Principal) bool { return p.Can(authz.ServerExec) }

func (u *ui) settingsView(v appView, p auth.Principal, st deploy.Status) *appSettingsView {
	url := appURL(deploy.AppRef{Project: v.Head.Project, Environment: v.Head.Environment, Name: v.Head.Name}, "/settings")
	s := &appSettingsView{
		Form:         specForm(p.CSRFToken, url, st.App.Spec, canBind(p)),
		DeployAction: v.Head.Actions.Deploy,
		DeleteAction: v.Head.Actions.Delete, HasVolumes: len(st.App.Spec.Volumes) > 0,
		SettingsURL: url,
		Confirm:     Field{ID: "confirm-name", Name: "confirm_name", Label: "Type the app's name to confirm", Type: "text", Required: true, Code: true, Placeholder: st.App.Name},
	}
	for _, vol := range st.App.Spec.Volumes {
		s.VolumeNames = append(s.VolumeNames, vol.Name)
	}
	s.Form.ImageFromBuilds = v.Head.Git != nil
	return s
}

func (u *ui) appSettings(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, st, err := u.appPage(r, p, "settings")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	v.Settings = u.settingsView(v, p, st)
	v.Settings.Saved = r.URL.Query().Get("notice") == "spec-saved"
	u.render(w, r, http.StatusOK, "app", v)
}

// saveSettings replaces the app's spec with the settings form; it does not
// deploy. Parts the form has no input for are kept, and so are the binds of
// a user who may not change them.
func (u *ui) saveSettings(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	v, st, err := u.appPage(r, p, "settings")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	errs := fieldErrors{}
	spec := st.App.Spec
	parseSpecForm(r.PostFormValue, errs, &spec)
	if !canBind(p) {
		spec.Binds = st.App.Spec.Binds
	}
	if len(errs) == 0 {
		_, err := u.d.Apps.UpdateSpec(r.Context(), p, ref, spec)
		switch {
		case err == nil:
			seeOther(w, r, withNotice(appURL(ref, "/settings"), "spec-saved"))
			return
		case errors.Is(err, deploy.ErrForbidden) && p.CanIn(authz.AppWrite, st.App.ProjectID, st.App.EnvironmentID):
			// The app may be changed, so what was refused is the binds.
			errs["binds"] = "can only be changed by an owner or admin"
		case !addAppFieldError(errs, err):
			u.failed(w, r, p, "save settings", err)
			return
		}
	}
	s := u.settingsView(v, p, st)
	v.Settings = s
	s.Form.fill(r.PostFormValue)
	if !canBind(p) {
		s.Form.Binds.Value = specForm("", "", st.App.Spec, false).Binds.Value
	}
	errs.apply(s.Form.fields()...)
	s.Form.FormError = formErrorSummary(errs) + " Nothing was saved."
	u.render(w, r, http.StatusUnprocessableEntity, "app", v)
}

// deleteApp needs the app's name typed out. Deleting volumes as well takes
// a second step: a page that names them and asks once more.
func (u *ui) deleteApp(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	v, st, err := u.appPage(r, p, "settings")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	s := u.settingsView(v, p, st)
	v.Settings = s
	typed := strings.TrimSpace(r.PostFormValue("confirm_name"))
	s.Confirm.Value = typed
	s.Volumes = r.PostFormValue("delete_volumes") == "on" && s.HasVolumes
	if typed != st.App.Name {
		s.Confirm.Error = fmt.Sprintf("must be %s, exactly", st.App.Name)
		if typed == "" {
			s.Confirm.Error = "is required: type " + st.App.Name
		}
		s.FormError = "Nothing was deleted."
		u.render(w, r, http.StatusUnprocessableEntity, "app", v)
		return
	}
	if s.Volumes && r.PostFormValue("volumes_confirmed") != "yes" {
		v.Tab = "delete-volumes"
		u.render(w, r, http.StatusOK, "app", v)
		return
	}
	if err := u.d.Apps.DeleteApp(r.Context(), p, ref, s.Volumes); err != nil {
		u.failed(w, r, p, "delete app", err)
		return
	}
	notice := "app-deleted"
	if s.Volumes {
		notice = "app-deleted-volumes"
	}
	seeOther(w, r, projectURL(ref.Project)+"?notice="+notice+"#"+envAnchor(ref.Environment))
}
