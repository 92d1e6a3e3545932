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
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/edge"
	"github.com/berthpaas/berth/internal/logging"
	"github.com/berthpaas/berth/internal/orchestrator"
)

// registerProxy mounts the edge proxy's status page, when the server can
// describe the proxy.
func (u *ui) registerProxy(mux *http.ServeMux) {
	if u.d.ProxyStatus == nil {
		return
	}
	mux.HandleFunc("GET /proxy", u.signedIn(u.proxyPage))
	mux.HandleFunc("GET /proxy/status", u.signedIn(u.proxyFragment))
}

type proxyPageView struct {
	Layout
	Proxy proxyView
}

// proxyView is the part of the page that refreshes itself.
type proxyView struct {
	RefreshURL   string
	Enabled      bool
	Badge        Badge
	Service      string
	Image        string
	HTTPPort     int
	HTTPSPort    int
	AccessLog    bool
	TableVersion int64
	DeployError  string // why the service could not be deployed
	LoadError    string // why this page could not learn everything
	Current      int    // replicas serving the current table
	Replicas     []proxyReplicaRow
	// Holder is the listener holder's state on the nodes, in words.
	Holder       string
	HolderBadge  Badge
	Certificates []proxyCertRow
	Checked      time.Time
}

type proxyReplicaRow struct {
	Node      string
	Container string
	State     Badge
	Desired   string // Swarm's desired state when it differs from running, e.g. "shutdown"
	Version   int64
	Reported  bool // the replica has reported at least once
	Table     Badge
	HAProxy   string
	LastSeen  string // "3s ago"
	Seen      time.Time
	Problems  []string
}

type proxyCertRow struct {
	Host string
	certView
}

// Summary is the replicas line: "2 of 2 replicas serve the current table".
func (v proxyView) Summary() string {
	n := len(v.Replicas)
	switch {
	case n == 0:
		return "No replicas yet"
	case n == 1:
		return fmt.Sprintf("%d of 1 replica serves the current table", v.Current)
	}
	return fmt.Sprintf("%d of %d replicas serve the current table", v.Current, n)
}

// newProxyView reads the edge's status as of now.
func newProxyView(st edge.ProxyStatus, now time.Time) proxyView {
	v := proxyView{
		RefreshURL: "/proxy/status", Enabled: st.Enabled, Service: st.Service, Image: st.Image,
		HTTPPort: st.HTTPPort, HTTPSPort: st.HTTPSPort, AccessLog: st.AccessLog, TableVersion: st.TableVersion, DeployError: st.Error, Checked: now,
	}
	troubled := holderState(&v, st)
	for _, r := range st.Replicas {
		row := proxyReplicaRow{Node: r.Node, Container: r.Hostname}
		if row.Container == "" && len(r.ContainerID) >= 12 {
			row.Container = r.ContainerID[:12]
		}
		row.State = taskBadge(r.State)
		if r.TaskID == "" && r.State == "" {
			// A proxy that reports but that Swarm does not list.
			row.State = Badge{"Not in Swarm", "neutral"}
		}
		if r.Desired != "" && r.Desired != orchestrator.TaskRunning && r.Desired != r.State {
			row.Desired = r.Desired
		}
		if r.Error != "" {
			row.Problems = append(row.Problems, sentence(r.Error))
		}
		if rep := r.Report; rep != nil {
			row.Reported, row.Version, row.HAProxy, row.Seen = true, rep.Version, rep.HAProxyVersion, rep.LastReport
			row.LastSeen = sinceShort(rep.LastReport, now)
			if row.Node == "" {
				row.Node = rep.Node
			}
			row.Table = Badge{"Behind", "warn"}
			if rep.Version == st.TableVersion {
				row.Table = Badge{"Current", "ok"}
				v.Current++
			}
			for _, e := range rep.Errors {
				row.Problems = append(row.Problems, sentence(e))
			}
			if !rep.Fresh {
				row.Problems = append(row.Problems, "No report for "+humanDuration(now.Sub(rep.LastReport))+": it stopped, or cannot reach Berth's internal listener.")
			}
		} else {
			row.Table = Badge{"No report", "neutral"}
			if r.State == orchestrator.TaskRunning {
				row.Problems = append(row.Problems, "Has not reported yet: it may still be starting, or cannot reach Berth's internal listener.")
			}
		}
		if len(row.Problems) > 0 || row.Table.Tone != "ok" {
			troubled = true
		}
		v.Replicas = append(v.Replicas, row)
	}
	sort.SliceStable(v.Replicas, func(i, j int) bool { return v.Replicas[i].Node < v.Replicas[j].Node })
	for _, c := range st.Certificates {
		status := "pending"
		switch {
		case !c.NotAfter.IsZero():
			status = "issued"
		case c.LastError != "":
			status = "failed"
		}
		v.Certificates = append(v.Certificates, proxyCertRow{Host: c.Host, certView: certState(c.Source, status, c.Issuer, c.NotAfter, c.LastError, nil, now)})
	}
	switch {
	case !st.Enabled:
		v.Badge = Badge{"Off", "neutral"}
	case st.Error != "":
		v.Badge = Badge{"Not deployed", "fail"}
	case len(v.Replicas) == 0:
		v.Badge = Badge{"Starting", "info"}
	case v.Current == 0:
		v.Badge = Badge{"Not serving", "fail"}
	case troubled:
		v.Badge = Badge{"Degraded", "warn"}
	default:
		v.Badge = Badge{"Serving", "ok"}
	}
	return v
}

// holderState fills in the listener holder's line: running on every node
// the proxy runs on, or what is wrong. It says whether something is.
func holderState(v *proxyView, st edge.ProxyStatus) (troubled bool) {
	var running, problems []string
	for _, l := range st.Listeners {
		if l.State == orchestrator.TaskRunning {
			running = append(running, l.Node)
		} else if l.Error != "" {
			problems = append(problems, l.Node+": "+sentence(l.Error))
		}
	}
	switch {
	case len(problems) > 0:
		v.Holder, v.HolderBadge = strings.Join(problems, " "), Badge{"Failing", "fail"}
	case len(running) == 0:
		v.Holder, v.HolderBadge = "Not running: nothing holds the host ports yet.", Badge{"Starting", "info"}
	default:
		v.Holder, v.HolderBadge = "Holds the host ports on "+strings.Join(running, ", ")+".", Badge{"Running", "ok"}
	}
	return v.HolderBadge.Tone != "ok"
}

// sinceShort says how long ago t was to the second: "4s ago", "2m 05s ago".
func sinceShort(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < time.Second {
		return "just now"
	}
	return humanDuration(d) + " ago"
}

func (u *ui) proxyView(r *http.Request, p auth.Principal) proxyView {
	ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
	defer cancel()
	st, err := u.d.ProxyStatus(ctx, p.Organization.ID)
	v := newProxyView(st, time.Now())
	switch {
	case err == nil:
	case errors.Is(err, orchestrator.ErrEngineUnreachable) || errors.Is(err, context.DeadlineExceeded):
		v.LoadError = "The container engine did not answer, so the proxy's replicas are not known. The System page shows the engine's state."
	default:
		u.d.Log.ErrorContext(r.Context(), "web: proxy status", "err", err)
		v.LoadError = "Berth could not read all of the proxy's state because of an internal error. It has been logged"
		if id := logging.RequestID(r.Context()); id != "" {
			v.LoadError += " with request id " + id
		}
		v.LoadError += "."
	}
	if v.LoadError != "" && v.Badge.Tone == "ok" {
		v.Badge = Badge{"Unknown", "neutral"}
	}
	return v
}

func (u *ui) proxyPage(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if u.refused(w, r, p.Require(authz.ServerRead)) {
		return
	}
	v := proxyPageView{Layout: u.layout(r, &p, "Proxy", "proxy"), Proxy: u.proxyView(r, p)}
	u.render(w, r, http.StatusOK, "proxy", v)
}

// proxyFragment is the page's refresh every few seconds.
func (u *ui) proxyFragment(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !isHTMX(r) {
		http.Redirect(w, r, "/proxy", http.StatusSeeOther)
		return
	}
	if u.refused(w, r, p.Require(authz.ServerRead)) {
		return
	}
	u.renderTemplate(w, r, http.StatusOK, "proxy", "proxy-status", u.proxyView(r, p))
}
