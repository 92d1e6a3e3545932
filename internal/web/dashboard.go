package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/version"
)

// statusTimeout bounds how long a page waits for the engine; an engine that
// hangs shows as unreachable instead of hanging the page.
const statusTimeout = 5 * time.Second

// EngineView is the engine and its swarm as the dashboard and /system show them.
type EngineView struct {
	Configured    bool
	Reachable     bool
	Badge         Badge
	Error         string
	Hint          string
	ServerVersion string
	ShortVersion  string // ServerVersion without a packager's suffix (20.10.24+dfsg1 → 20.10.24)
	APIVersion    string
	Platform      string // "linux/amd64"
	Kernel        string
	CPUs          int
	Memory        string
	Swarm         SwarmView
}

// SwarmView describes the swarm membership of the engine.
type SwarmView struct {
	State     string
	Badge     Badge
	NodeID    string
	Role      string // "manager", "worker" or ""
	Error     string
	Hint      string
	Nodes     []NodeRow
	Managers  int
	Ready     int
	CPUs      int
	Memory    string
	ListNodes bool // the engine is a manager, so Nodes is meaningful
}

// NodeRow is one swarm node.
type NodeRow struct {
	ID, ShortID   string
	Hostname      string
	Role          string
	Address       string
	State         Badge
	Availability  Badge
	CPUs          int
	Memory        string
	EngineVersion string
	Leader        bool
}

func (u *ui) engineView(ctx context.Context) EngineView {
	if u.d.Engine == nil {
		return EngineView{Badge: Badge{"Not configured", "neutral"}, Error: "This server runs without a container engine.", Hint: "Start berth server with access to a Docker Engine."}
	}
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	return newEngineView(u.d.Engine.Status(ctx))
}

func newEngineView(s orchestrator.EngineStatus) EngineView {
	v := EngineView{Configured: true, Reachable: s.Reachable}
	if !s.Reachable {
		v.Badge = Badge{"Unreachable", "fail"}
		v.Error = s.Error
		if v.Error == "" {
			v.Error = "The Docker Engine did not answer."
		}
		v.Hint = "Check that dockerd is running and that the user running Berth may use its socket (usually /var/run/docker.sock, group docker)."
		return v
	}
	v.Badge = Badge{"Reachable", "ok"}
	v.ServerVersion, v.APIVersion, v.Kernel, v.CPUs = s.ServerVersion, s.APIVersion, s.KernelVersion, s.NCPU
	v.ShortVersion, _, _ = strings.Cut(s.ServerVersion, "+")
	if s.OS != "" || s.Arch != "" {
		v.Platform = strings.Trim(s.OS+"/"+s.Arch, "/")
	}
	v.Memory = bytesIEC(s.MemoryBytes)

	sw := SwarmView{State: s.Swarm.State, NodeID: s.Swarm.NodeID, Error: s.Swarm.Error, ListNodes: s.Swarm.IsManager}
	switch s.Swarm.State {
	case orchestrator.SwarmActive:
		sw.Badge = Badge{"Active", "ok"}
		sw.Role = "worker"
		if s.Swarm.IsManager {
			sw.Role = "manager"
		} else {
			sw.Hint = "This engine is a swarm worker. Berth needs to talk to a manager to deploy; point it at a manager node."
		}
	case orchestrator.SwarmInactive, "":
		sw.Badge = Badge{"Inactive", "warn"}
		sw.State = orchestrator.SwarmInactive
		sw.Hint = "Berth deploys to Docker Swarm. Initialise a single-node swarm on this host with “docker swarm init --advertise-addr <this host's address>”."
	case orchestrator.SwarmPending:
		sw.Badge = Badge{"Pending", "warn"}
		sw.Hint = "The engine is joining a swarm. This usually settles within a minute."
	case orchestrator.SwarmLocked:
		sw.Badge = Badge{"Locked", "fail"}
		sw.Hint = "The swarm is autolocked. Unlock it with “docker swarm unlock” and the unlock key."
	case orchestrator.SwarmError:
		sw.Badge = Badge{"Error", "fail"}
		sw.Hint = "The engine reports a swarm error; see the message above and dockerd's log."
	default:
		sw.Badge = Badge{s.Swarm.State, "neutral"}
	}
	var mem int64
	for _, n := range s.Swarm.Nodes {
		row := NodeRow{
			ID: n.ID, ShortID: shortID(n.ID), Hostname: n.Hostname, Role: n.Role, Address: n.Address,
			State: nodeStateBadge(n.State), Availability: availabilityBadge(n.Availability),
			CPUs: n.NCPU, Memory: bytesIEC(n.MemoryBytes), EngineVersion: n.EngineVersion, Leader: n.Leader,
		}
		if row.Hostname == "" {
			row.Hostname = row.ShortID
		}
		sw.Nodes = append(sw.Nodes, row)
		if n.Role == "manager" {
			sw.Managers++
		}
		if n.State == "ready" {
			sw.Ready++
		}
		sw.CPUs += n.NCPU
		mem += n.MemoryBytes
	}
	sw.Memory = bytesIEC(mem)
	// Leader first, then managers, then by name: the order people scan for.
	sort.SliceStable(sw.Nodes, func(i, j int) bool {
		a, b := sw.Nodes[i], sw.Nodes[j]
		if a.Leader != b.Leader {
			return a.Leader
		}
		if a.Role != b.Role {
			return a.Role == "manager"
		}
		return a.Hostname < b.Hostname
	})
	v.Swarm = sw
	return v
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func nodeStateBadge(s string) Badge {
	switch s {
	case "ready":
		return Badge{"Ready", "ok"}
	case "down", "disconnected":
		return Badge{titleCase(s), "fail"}
	case "":
		return Badge{"Unknown", "neutral"}
	}
	return Badge{titleCase(s), "warn"}
}

func availabilityBadge(s string) Badge {
	switch s {
	case "active":
		return Badge{"Active", "ok"}
	case "drain":
		return Badge{"Drain", "warn"}
	case "pause":
		return Badge{"Pause", "warn"}
	case "":
		return Badge{"Unknown", "neutral"}
	}
	return Badge{titleCase(s), "neutral"}
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

type dashboardView struct {
	Layout
	Greeting      string
	Welcome       bool
	Engine        EngineView
	ServerURL     string
	CLICommand    string
	Projects      []projectSummary
	MoreProjects  int
	ProjectsError string
}

// projectSummary is a project on the dashboard.
type projectSummary struct {
	Name, URL          string
	Apps, Environments int
}

// dashboardProjects is how many projects the dashboard lists.
const dashboardProjects = 5

func (u *ui) dashboard(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v := dashboardView{Layout: u.layout(r, &p, "Dashboard", "dashboard"), Engine: u.engineView(r.Context())}
	v.Greeting = greeting(time.Now()) + ", " + firstName(v.User)
	v.Welcome = r.URL.Query().Has("welcome")
	if n, ok := dashboardNotices[r.URL.Query().Get("notice")]; ok {
		v.Notice = &n
	}
	v.ServerURL = u.serverURL(r)
	v.CLICommand = fmt.Sprintf("berth login --server %s --email %s --password-stdin", v.ServerURL, p.User.Email)
	if err := u.dashboardProjects(r, p, &v); err != nil {
		u.d.Log.ErrorContext(r.Context(), "web: list projects", "err", err)
		v.ProjectsError = "The projects could not be listed. The error has been logged."
	}
	u.render(w, r, http.StatusOK, "dashboard", v)
}

func (u *ui) dashboardProjects(r *http.Request, p auth.Principal, v *dashboardView) error {
	if u.d.Apps == nil {
		return nil
	}
	projects, err := u.d.Apps.Projects(r.Context(), p)
	if errors.Is(err, deploy.ErrForbidden) {
		// A member with no grants sees no projects, which is no error.
		return nil
	} else if err != nil {
		return err
	}
	if len(projects) > dashboardProjects {
		v.MoreProjects = len(projects) - dashboardProjects
		projects = projects[:dashboardProjects]
	}
	for _, proj := range projects {
		apps, err := u.d.Apps.Apps(r.Context(), p, proj.Name)
		if err != nil {
			return err
		}
		envs, err := u.d.Apps.Environments(r.Context(), p, proj.Name)
		if err != nil {
			return err
		}
		v.Projects = append(v.Projects, projectSummary{Name: proj.Name, URL: projectURL(proj.Name), Apps: len(apps), Environments: len(envs)})
	}
	return nil
}

func greeting(t time.Time) string {
	switch h := t.Hour(); {
	case h < 5:
		return "Good evening"
	case h < 12:
		return "Good morning"
	case h < 18:
		return "Good afternoon"
	}
	return "Good evening"
}

// serverURL is the address this browser reached Berth at, for the CLI
// command. Behind a TLS-terminating proxy the request is plain HTTP, but the
// operator then runs with secure cookies, which says the public side is HTTPS.
func (u *ui) serverURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || u.d.SecureCookies {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

type systemView struct {
	Layout
	Engine EngineView
	Disk   diskView
	Build  version.Info
}

func (u *ui) system(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	v := systemView{Layout: u.layout(r, &p, "System", "system"), Engine: u.engineView(r.Context()), Disk: u.diskView(r.Context(), p), Build: version.Get()}
	u.render(w, r, http.StatusOK, "system", v)
}

type settingsView struct {
	Layout
	Organization string
	ServerURL    string
}

// nodesTable is what the nodes-table partial renders.
type nodesTable struct {
	Nodes  []NodeRow
	Detail bool // add address and node id columns
}

// Table is the compact nodes table of the dashboard.
func (s SwarmView) Table() nodesTable { return nodesTable{Nodes: s.Nodes} }

// DetailTable is the nodes table of the system page.
func (s SwarmView) DetailTable() nodesTable { return nodesTable{Nodes: s.Nodes, Detail: true} }
