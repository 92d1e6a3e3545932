package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/webhook"
)

// Apps built from git: the Source tab (repository, build settings, deploy
// key, webhook with its secret behind an audited reveal), the Builds tab
// and one build with its output followed live, and the organization's
// build queue. A build's output is followed by an htmx poll every second
// that appends the lines after the last one shown and stops once the build
// has ended; without JavaScript the page shows the output so far.

const (
	buildListLimit = 50
	// buildLogPage is how many lines one page load or poll reads; a poll
	// that got a full page polls again even when the build has ended.
	buildLogPage = 2000
)

func buildURL(ref deploy.AppRef, seq int) string {
	return appURL(ref, "/builds/"+strconv.Itoa(seq))
}

// buildBadge is a build's status in words.
func buildBadge(status string) Badge {
	switch status {
	case store.BuildQueued:
		return Badge{"Queued", "neutral"}
	case store.BuildRunning:
		return Badge{"Building", "info"}
	case store.BuildSucceeded:
		return Badge{"Succeeded", "ok"}
	case store.BuildFailed:
		return Badge{"Failed", "fail"}
	case store.BuildCancelled:
		return Badge{"Cancelled", "warn"}
	}
	return Badge{titleCase(status), "neutral"}
}

func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// refName is a full ref as people say it: "main", "tag v1.2".
func buildRefName(ref string) string {
	if t, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		return "tag " + t
	}
	return strings.TrimPrefix(ref, "refs/heads/")
}

type buildRow struct {
	ID            string
	Seq           int
	URL           string
	Badge         Badge
	Commit        string
	ShortCommit   string
	Message       string
	Author        string
	Ref           string
	Trigger       string
	By            string
	Created       time.Time
	Duration      string
	Image         string
	DeploymentURL string
	Error         string
	Active        bool
	Cancelled     bool
}

func newBuildRow(ref deploy.AppRef, b store.Build, now time.Time) buildRow {
	row := buildRow{
		ID: b.ID, Seq: b.Seq, URL: buildURL(ref, b.Seq), Badge: buildBadge(b.Status), Commit: b.Commit, ShortCommit: shortSHA(b.Commit),
		Message: b.Message, Author: b.Author, Ref: buildRefName(b.Ref), Trigger: "Manual", By: b.CreatedBy, Created: b.CreatedAt,
		Image: b.Image, Error: b.Error, Active: !store.BuildTerminal(b.Status), Cancelled: b.Status == store.BuildCancelled,
	}
	if b.Trigger == "push" {
		row.Trigger = "Push"
	}
	switch {
	case b.StartedAt != nil && b.FinishedAt != nil:
		row.Duration = humanDuration(b.FinishedAt.Sub(*b.StartedAt))
	case b.StartedAt != nil:
		row.Duration = humanDuration(now.Sub(*b.StartedAt)) + " so far"
	}
	if b.Status == store.BuildSucceeded && b.DeploymentID != "" {
		// FindDeployment takes the id as well as the number.
		row.DeploymentURL = appURL(ref, "/deployments/"+b.DeploymentID)
	}
	return row
}

// ---------- source ----------

type sourceView struct {
	Repository   string
	Provider     string // "GitHub"…; "" for a plain git URL
	Branch       string
	Branches     []string
	Tags         bool
	WatchPaths   []string
	Dockerfile   string
	Context      string
	Target       string
	BuildArgs    []string
	BuildSecrets []string // names of the variables builds mount as secrets
	HasToken     bool
	SSH          bool
	DeployKey    string
	KeyGuide     string
	KnownHosts   string
	Webhook      webhookView
	Guides       []webhookGuide
	// WebhookNotice says, right after the app was made from a git
	// connection, whether its webhook was set up at the provider.
	WebhookNotice *Notice
	// EditURL opens the form that changes the source, for those who may
	// change the app; Edit is that form, when open.
	EditURL string
	Edit    *sourceForm
}

// webhookView is the webhook card's secret part, swapped by a reveal or a
// rotation.
type webhookView struct {
	CSRF         string
	CanReveal    bool
	CanRotate    bool // may change the app as well: rotating shows the new secret
	URL          string
	RevealAction string
	RotateAction string
	Secret       string
	Revealed     bool
	Rotated      bool // Secret is the new one, just made
}

// sourceNotices are the messages a redirect back to the tab can ask for.
var sourceNotices = map[string]Notice{
	"source-changed": {Tone: "ok", Message: "Source changed; the next build uses it."},
}

// registerSource mounts the Source tab's forms, as registerProjects mounts
// the other app routes.
func (u *ui) registerSource(mux *http.ServeMux) {
	h := func(pattern string, fn func(http.ResponseWriter, *http.Request, auth.Principal)) {
		mux.HandleFunc(pattern, u.signedIn(u.needApps(fn)))
	}
	h("POST /projects/{project}/apps/{app}/source", u.changeSource)
	h("POST /projects/{project}/apps/{app}/source/webhook-secret/rotate", u.rotateWebhookSecret)
}

type webhookGuide struct {
	Title string
	Open  bool
	Steps []guideStep
}

// guideStep is a line of instructions, with a value to type in code.
type guideStep struct {
	Text, Code, After string
}

// webhookBase is the address providers reach this server at: the public
// URL it was configured with, else the one this request came to.
func (u *ui) webhookBase(r *http.Request) string {
	if u.d.PublicURL != "" {
		return strings.TrimRight(u.d.PublicURL, "/")
	}
	base := u.serverURL(r)
	if r.TLS == nil && r.Header.Get("X-Forwarded-Proto") == "https" {
		base = "https://" + r.Host
	}
	return base
}

// sourceView is the Source tab of the request's app; can is what p may do
// to the app. With edit, the form that changes the source is open, filled
// with what is stored.
func (u *ui) sourceView(r *http.Request, p auth.Principal, can appPerms, edit bool) (*sourceView, error) {
	ref := appRefOf(r)
	src, err := u.d.Apps.GitSource(r.Context(), p, ref)
	if err != nil {
		return nil, err
	}
	tab := appURL(ref, "/source")
	s := &sourceView{
		Repository: src.CloneURL, Provider: src.Provider.Title(), Branch: src.Branch, Branches: src.Filter.Branches, Tags: src.Filter.Tags,
		WatchPaths: src.Filter.WatchPaths, Dockerfile: src.Build.Dockerfile, Context: src.Build.Context, Target: src.Build.Target,
		BuildSecrets: src.Build.Secrets, HasToken: src.HasToken, SSH: src.DeployKey != "", DeployKey: src.DeployKey, KnownHosts: strings.TrimSpace(src.KnownHosts),
		Webhook: webhookView{CSRF: p.CSRFToken, CanReveal: can.Reveal, CanRotate: can.Reveal && can.Write,
			URL: u.webhookBase(r) + deploy.WebhookPath(src.WebhookID), RevealAction: appURL(ref, "/source/reveal"), RotateAction: appURL(ref, "/source/webhook-secret/rotate")},
	}
	if can.Write {
		s.EditURL = withQuery(tab, "edit", "1")
		if edit {
			s.Edit = newSourceForm(p.CSRFToken, tab, tab, src)
		}
	}
	if src.Provider == "" {
		s.Provider = "" // a plain git URL: Title would name the empty provider
	}
	for k, v := range src.Build.Args {
		s.BuildArgs = append(s.BuildArgs, k+"="+v)
	}
	slices.Sort(s.BuildArgs)
	s.KeyGuide = deployKeyGuide(src.Provider)
	s.Guides = webhookGuides(src.Provider, src.Filter.Tags)
	return s, nil
}

func deployKeyGuide(p webhook.Provider) string {
	switch p {
	case webhook.GitHub:
		return "On GitHub: the repository's Settings → Deploy keys → Add deploy key. Leave “Allow write access” off."
	case webhook.GitLab:
		return "On GitLab: the project's Settings → Repository → Deploy keys → Add new key. Leave “Grant write permissions” off."
	case webhook.Gitea:
		return "On Gitea: the repository's Settings → Deploy Keys → Add Deploy Key. Leave “Enable write access” off."
	case webhook.Bitbucket:
		return "On Bitbucket: the repository's Repository settings → Access keys → Add key (access keys are read-only)."
	}
	return "Add it to the repository as a read-only deploy key, or to an account that may only read it."
}

// webhookGuides are the setup steps of every provider; the app's own is
// open, or GitHub's when the source is a plain URL.
func webhookGuides(p webhook.Provider, tags bool) []webhookGuide {
	push := "Just the push event"
	if tags {
		push += " (tag pushes are push events too)"
	}
	gitlabEvents := "Push events"
	if tags {
		gitlabEvents += " and Tag push events"
	}
	gs := []webhookGuide{
		{Title: "GitHub", Open: p == webhook.GitHub || p == "", Steps: []guideStep{
			{Text: "Open the repository's Settings → Webhooks → Add webhook."},
			{Text: "Payload URL: the webhook URL above."},
			{Text: "Content type: ", Code: "application/json", After: "."},
			{Text: "Secret: the webhook secret above."},
			{Text: "Which events: " + push + ". Then Add webhook; GitHub's first ping is answered without deploying."},
		}},
		{Title: "GitLab", Open: p == webhook.GitLab, Steps: []guideStep{
			{Text: "Open the project's Settings → Webhooks → Add new webhook."},
			{Text: "URL: the webhook URL above."},
			{Text: "Secret token: the webhook secret above."},
			{Text: "Trigger: " + gitlabEvents + ", all branches. Then Add webhook."},
		}},
		{Title: "Gitea", Open: p == webhook.Gitea, Steps: []guideStep{
			{Text: "Open the repository's Settings → Webhooks → Add webhook → Gitea."},
			{Text: "Target URL: the webhook URL above; HTTP method ", Code: "POST", After: "."},
			{Text: "POST content type: ", Code: "application/json", After: "."},
			{Text: "Secret: the webhook secret above."},
			{Text: "Trigger on: Push events. Then Add webhook."},
		}},
		{Title: "Bitbucket", Open: p == webhook.Bitbucket, Steps: []guideStep{
			{Text: "Open the repository's Repository settings → Webhooks → Add webhook."},
			{Text: "URL: the webhook URL above."},
			{Text: "Secret: the webhook secret above."},
			{Text: "Triggers: Repository push. Then Save."},
		}},
	}
	return gs
}

// appSource is the Source tab; ?edit=1 opens the form that changes the
// source, for those who may.
func (u *ui) appSource(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, _, err := u.appPage(r, p, "source")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	if v.Head.Git == nil {
		u.failed(w, r, p, "show source", store.ErrNotFound)
		return
	}
	s, err := u.sourceView(r, p, v.Head.Can, r.URL.Query().Get("edit") != "")
	if err != nil {
		u.failed(w, r, p, "show source", err)
		return
	}
	if n, ok := sourceNotices[r.URL.Query().Get("notice")]; ok {
		v.Notice = &n
	}
	s.WebhookNotice = webhookNotice(r, p)
	v.Source = s
	u.render(w, r, http.StatusOK, "app", v)
}

// changeSource saves the Source tab's form: the next build fetches and
// builds by it. An empty token keeps the stored one. Refused values are
// shown under their inputs, with nothing changed.
func (u *ui) changeSource(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	a, err := u.d.Apps.App(r.Context(), p, ref)
	if err != nil {
		u.failed(w, r, p, "change source", err)
		return
	}
	if !appPermsOf(p, a).Write {
		// The manager refuses it too, but only once the form parses.
		u.failed(w, r, p, "change source", &deploy.ForbiddenError{Message: fmt.Sprintf("your role (%s) does not allow %s here", p.Role, authz.AppWrite)})
		return
	}
	get := r.PostFormValue
	errs := fieldErrors{}
	c := deploy.GitChange{GitInput: parseGitForm(get, errs), RemoveToken: get("git_remove_token") == "on"}
	if len(errs) == 0 {
		cur, err := u.d.Apps.GitSource(r.Context(), p, ref)
		if err != nil {
			u.failed(w, r, p, "change source", err)
			return
		}
		keepSSHPort(cur.Source, &c.Source)
		_, err = u.d.Apps.UpdateGitSource(r.Context(), p, ref, c)
		switch {
		case err == nil:
			seeOther(w, r, withNotice(appURL(ref, "/source"), "source-changed"))
			return
		case !addAppFieldError(errs, err):
			u.failed(w, r, p, "change source", err)
			return
		}
	}
	v, _, err := u.appPage(r, p, "source")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	s, err := u.sourceView(r, p, v.Head.Can, true)
	if err != nil {
		u.failed(w, r, p, "show source", err)
		return
	}
	s.Edit.fill(get)
	errs.apply(s.Edit.fields()...)
	s.Edit.FormError = formErrorSummary(errs) + " Nothing was changed."
	v.Source = s
	u.render(w, r, http.StatusUnprocessableEntity, "app", v)
}

// revealWebhookSecret shows the webhook secret, once the reveal is in the
// audit log (no record, no secret), as the Environment tab's reveal does.
func (u *ui) revealWebhookSecret(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	s, ok := u.secretView(w, r, p)
	if !ok {
		return
	}
	secret, err := u.d.Apps.WebhookSecret(r.Context(), p, ref)
	if err != nil {
		u.failed(w, r, p, "reveal webhook secret", err)
		return
	}
	if !u.recordSecretReveal(w, r, p, "webhook-secret.reveal", ref, `{"secret":"webhook"}`) {
		return
	}
	s.Webhook.Secret, s.Webhook.Revealed = secret, true
	u.showSecret(w, r, p, s)
}

// rotateWebhookSecret gives the app a new webhook secret and shows it as a
// reveal does, once that is in the audit log. Should the record fail, the
// old secret is gone all the same: rotating again makes one to show.
func (u *ui) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	s, ok := u.secretView(w, r, p)
	if !ok {
		return
	}
	secret, err := u.d.Apps.RotateWebhookSecret(r.Context(), p, ref)
	if err != nil {
		u.failed(w, r, p, "rotate webhook secret", err)
		return
	}
	if !u.recordSecretReveal(w, r, p, "webhook-secret.rotate", ref, `{"secret":"webhook"}`) {
		return
	}
	s.Webhook.Secret, s.Webhook.Revealed, s.Webhook.Rotated = secret, true, true
	u.showSecret(w, r, p, s)
}

// secretView is the Source tab a reveal or rotation answers with.
func (u *ui) secretView(w http.ResponseWriter, r *http.Request, p auth.Principal) (*sourceView, bool) {
	a, err := u.d.Apps.App(r.Context(), p, appRefOf(r))
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return nil, false
	}
	s, err := u.sourceView(r, p, appPermsOf(p, a), false)
	if err != nil {
		u.failed(w, r, p, "show source", err)
		return nil, false
	}
	return s, true
}

// showSecret answers a reveal or rotation: the secret's part of the tab
// for htmx, else the whole tab.
func (u *ui) showSecret(w http.ResponseWriter, r *http.Request, p auth.Principal, s *sourceView) {
	if isHTMX(r) {
		u.renderTemplate(w, r, http.StatusOK, "app", "webhook-secret", s.Webhook)
		return
	}
	v, _, err := u.appPage(r, p, "source")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	v.Source = s
	u.render(w, r, http.StatusOK, "app", v)
}

// ---------- builds ----------

type buildsView struct {
	Rows       []buildRow
	Branch     string
	RefreshURL string
	Live       bool // a build is queued or running: the list refreshes
}

func (u *ui) buildsView(r *http.Request, p auth.Principal, branch string) (*buildsView, error) {
	ref := appRefOf(r)
	bs, err := u.d.Apps.Builds(r.Context(), p, ref, buildListLimit)
	if err != nil {
		return nil, err
	}
	v := &buildsView{Branch: branch, RefreshURL: appURL(ref, "/builds")}
	now := time.Now()
	for _, b := range bs {
		row := newBuildRow(ref, b, now)
		v.Live = v.Live || row.Active
		v.Rows = append(v.Rows, row)
	}
	return v, nil
}

// appBuilds is the Builds tab; asked by htmx, its list alone (the tab
// refreshes itself while a build is queued or running).
func (u *ui) appBuilds(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if isHTMX(r) {
		src, err := u.d.Apps.GitSource(r.Context(), p, appRefOf(r))
		if err != nil {
			u.failed(w, r, p, "list builds", err)
			return
		}
		bv, err := u.buildsView(r, p, src.Branch)
		if err != nil {
			u.failed(w, r, p, "list builds", err)
			return
		}
		u.renderTemplate(w, r, http.StatusOK, "app", "builds", bv)
		return
	}
	v, _, err := u.appPage(r, p, "builds")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	if v.Head.Git == nil {
		u.failed(w, r, p, "list builds", store.ErrNotFound)
		return
	}
	bv, err := u.buildsView(r, p, v.Head.Git.Branch)
	if err != nil {
		u.failed(w, r, p, "list builds", err)
		return
	}
	v.Builds = bv
	u.render(w, r, http.StatusOK, "app", v)
}

// buildDetail is one build: its summary, and the output after line After.
type buildDetail struct {
	Row          buildRow
	CSRF         string
	CancelAction string
	Started      *time.Time
	Finished     *time.Time
	Lines        []store.BuildLine
	Last         int    // the last line shown
	Poll         string // the next poll's URL; "" once everything is shown
	OOB          bool   // the summary is swapped out of band
}

func (u *ui) buildDetail(r *http.Request, p auth.Principal, after int, canDeploy bool) (*buildDetail, error) {
	ref := appRefOf(r)
	b, err := u.d.Apps.FindBuild(r.Context(), p, ref, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	// The status is read before the lines: a build that has ended wrote
	// all its output first, so nothing is missed when the poll stops.
	lines, err := u.d.Apps.BuildLog(r.Context(), p, b, after, buildLogPage)
	if err != nil {
		return nil, err
	}
	d := &buildDetail{Row: newBuildRow(ref, b, time.Now()), CSRF: p.CSRFToken, Started: b.StartedAt, Finished: b.FinishedAt, Lines: lines, Last: after}
	if n := len(lines); n > 0 {
		d.Last = lines[n-1].Seq
	}
	if d.Row.Active && canDeploy {
		d.CancelAction = appURL(ref, "/builds/"+strconv.Itoa(b.Seq)+"/cancel")
	}
	if d.Row.Active || len(lines) == buildLogPage {
		d.Poll = withQuery(appURL(ref, "/builds/"+strconv.Itoa(b.Seq)+"/log"), "after", strconv.Itoa(d.Last))
	}
	return d, nil
}

func (u *ui) appBuild(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v, _, err := u.appPage(r, p, "build")
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	d, err := u.buildDetail(r, p, 0, v.Head.Can.Deploy)
	if err != nil {
		u.failed(w, r, p, "show build", err)
		return
	}
	v.Build = d
	v.Title = fmt.Sprintf("Build #%d · %s", d.Row.Seq, v.Head.Name)
	u.render(w, r, http.StatusOK, "app", v)
}

// appBuildLog is the poll of a build page: the lines after ?after=, the
// next poll (none once the build has ended) and the summary out of band.
func (u *ui) appBuildLog(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	after, _ := strconv.Atoi(r.URL.Query().Get("after"))
	a, err := u.d.Apps.App(r.Context(), p, appRefOf(r))
	if err != nil {
		u.failed(w, r, p, "show app", err)
		return
	}
	d, err := u.buildDetail(r, p, max(after, 0), appPermsOf(p, a).Deploy)
	if err != nil {
		u.failed(w, r, p, "read build output", err)
		return
	}
	if !isHTMX(r) {
		http.Redirect(w, r, d.Row.URL, http.StatusSeeOther)
		return
	}
	d.OOB = true
	u.renderTemplate(w, r, http.StatusOK, "app", "build-log-fragment", d)
}

func (u *ui) cancelBuild(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	ref := appRefOf(r)
	b, err := u.d.Apps.FindBuild(r.Context(), p, ref, r.PathValue("id"))
	if err != nil {
		u.failed(w, r, p, "cancel build", err)
		return
	}
	if _, err := u.d.Apps.CancelBuild(r.Context(), p, b); err != nil {
		u.failed(w, r, p, "cancel build", err)
		return
	}
	seeOther(w, r, buildURL(ref, b.Seq))
}

// ---------- the organization's queue ----------

type queuePageView struct {
	Layout
	Queue queueList
}

type queueList struct {
	RefreshURL string
	Rows       []queueRow
	Running    int
	Waiting    int
}

type queueRow struct {
	App, AppURL  string
	Project      string
	Environment  string
	Build        buildRow
	Waiting      string
	Running      bool
	WaitingSince time.Time
}

func (u *ui) queueList(ctx context.Context, p auth.Principal) (queueList, error) {
	q := queueList{RefreshURL: "/builds/list"}
	qs, err := u.d.Apps.BuildQueue(ctx, p)
	if err != nil {
		return q, err
	}
	now := time.Now()
	for _, qb := range qs {
		ref := qb.Ref
		row := queueRow{App: qb.App.Name, AppURL: appURL(ref, ""), Project: ref.Project, Environment: ref.Environment,
			Build: newBuildRow(ref, qb.Build, now), Running: qb.Build.Status == store.BuildRunning, Waiting: qb.Waiting, WaitingSince: qb.Build.CreatedAt}
		if row.Running {
			q.Running++
		} else {
			q.Waiting++
			if row.Waiting == "" {
				row.Waiting = "waiting to be picked up"
			}
		}
		q.Rows = append(q.Rows, row)
	}
	return q, nil
}

func (u *ui) buildQueue(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q, err := u.queueList(r.Context(), p)
	if err != nil {
		u.failed(w, r, p, "build queue", err)
		return
	}
	u.render(w, r, http.StatusOK, "builds", queuePageView{Layout: u.layout(r, &p, "Builds", "builds"), Queue: q})
}

func (u *ui) buildQueueList(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !isHTMX(r) {
		http.Redirect(w, r, "/builds", http.StatusSeeOther)
		return
	}
	q, err := u.queueList(r.Context(), p)
	if err != nil {
		u.failed(w, r, p, "build queue", err)
		return
	}
	u.renderTemplate(w, r, http.StatusOK, "builds", "build-queue", q)
}

// ---------- engine disk use ----------

// diskView is the engine's disk use on the System page; only owners and
// admins see it.
type diskView struct {
	Shown                              bool
	Error                              string
	Images, BuildCache, Volumes, Total string
}

func (u *ui) diskView(ctx context.Context, p auth.Principal) diskView {
	if u.d.Apps == nil {
		return diskView{}
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	use, err := u.d.Apps.DiskUsage(ctx, p)
	switch {
	case errors.Is(err, deploy.ErrForbidden):
		return diskView{}
	case errors.Is(err, deploy.ErrBusy):
		return diskView{Shown: true, Error: busyMessage(err)}
	case err != nil:
		u.d.Log.WarnContext(ctx, "web: engine disk use", "err", err)
		return diskView{Shown: true, Error: "The container engine did not say how much disk it uses. It may be unreachable; see the engine's state above."}
	}
	return diskView{Shown: true, Images: bytesIEC(use.Images), BuildCache: bytesIEC(use.BuildCache), Volumes: bytesIEC(use.Volumes),
		Total: bytesIEC(use.Images + use.BuildCache + use.Volumes)}
}

// recordSecretReveal records that p is about to see a secret of the app at
// ref; it fails closed like recordReveal.
func (u *ui) recordSecretReveal(w http.ResponseWriter, r *http.Request, p auth.Principal, action string, ref deploy.AppRef, summary string) bool {
	if u.d.Audit == nil {
		return true
	}
	ev := u.event(r, r.Pattern, http.StatusOK)
	ev.OrganizationID, ev.Actor, ev.Action = p.Organization.ID, audit.ActorOf(p), action
	ev.Target = audit.Target("project", ref.Project, "environment", ref.Environment, "app", ref.Name)
	ev.Summary = summary
	if err := u.d.Audit.Record(context.WithoutCancel(r.Context()), ev); err != nil {
		u.errorPage(w, r, &p, http.StatusInternalServerError, "The secret was not shown",
			"Every reveal of a secret is written to the audit log first, and that failed. The server log has the details; try again later.")
		return false
	}
	if n := audit.NoteFrom(r.Context()); n != nil {
		n.Recorded = true
	}
	return true
}
