package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/berthpaas/berth/internal/forge"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/store"
)

// StatusContext names Berth's commit statuses at the provider.
const StatusContext = "berth/deploy"

// reportStatus tells the provider what became of build b's commit, for an
// app made from a git connection: pending while it builds and deploys,
// success once live, failure (or error, when cancelled) with the reason.
// The link is the build's page when the server knows its public URL. It
// never fails what it reports on: a provider that cannot be told is logged.
func (m *Manager) reportStatus(ctx context.Context, b store.Build, state forge.State, description string) {
	if b.Commit == "" || m.builds == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forgeTimeout)
	defer cancel()
	err := m.setStatus(ctx, b, forge.Status{State: state, Description: oneLine(description, 140), Context: StatusContext})
	if err != nil && !errors.Is(err, errNoConnection) {
		m.builds.Log.Warn("commit status not reported", "build_id", b.ID, "commit", b.Commit, "state", string(state), "err", err)
	}
}

var errNoConnection = errors.New("the app was not made from a git connection")

func (m *Manager) setStatus(ctx context.Context, b store.Build, s forge.Status) error {
	src, err := m.db.AppSource(ctx, b.OrganizationID, b.AppID)
	if err != nil {
		return err
	}
	v, ok := src.Source.Variant.(*gitsrc.Gitea)
	if src.ConnectionID == "" || !ok {
		return errNoConnection
	}
	c, err := m.db.GitConnection(ctx, b.OrganizationID, src.ConnectionID)
	if err != nil {
		return err
	}
	client, err := m.forgeOf(c)
	if err != nil {
		return err
	}
	s.TargetURL = m.buildURL(ctx, b)
	return client.SetStatus(ctx, v.Repo, b.Commit, s)
}

// buildURL is the build's page in the UI, or "" when the server does not
// know its public URL.
func (m *Manager) buildURL(ctx context.Context, b store.Build) string {
	if m.builds.PublicURL == "" {
		return ""
	}
	a, err := m.db.App(ctx, b.OrganizationID, b.AppID)
	if err != nil {
		return ""
	}
	proj, err1 := m.db.Project(ctx, a.OrganizationID, a.ProjectID)
	env, err2 := m.db.Environment(ctx, a.OrganizationID, a.EnvironmentID)
	if err1 != nil || err2 != nil {
		return ""
	}
	return strings.TrimRight(m.builds.PublicURL, "/") + "/projects/" + url.PathEscape(proj.Name) + "/apps/" + url.PathEscape(a.Name) +
		"/builds/" + url.PathEscape(b.ID) + "?environment=" + url.QueryEscape(env.Name)
}

// oneLine is the first line of s, at most n bytes (cut on a rune boundary).
func oneLine(s string, n int) string {
	s = firstLine(s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// deploymentEnded reports the end of a deployment a build made.
func (m *Manager) deploymentEnded(ctx context.Context, d store.Deployment) {
	b, err := m.db.BuildByDeployment(ctx, d.OrganizationID, d.ID)
	if err != nil {
		return // not made by a build
	}
	switch d.Status {
	case store.DeployLive:
		m.reportStatus(ctx, b, forge.StateSuccess, fmt.Sprintf("Deployed: build #%d is live", b.Seq))
	case store.DeployCancelled, store.DeploySuperseded:
		m.reportStatus(ctx, b, forge.StateError, "Deployment cancelled")
	default:
		m.reportStatus(ctx, b, forge.StateFailure, "Deployment failed: "+d.Error)
	}
}
