package web

import (
	"fmt"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/store"
)

// App states as the UI summarises them; appState decides which applies.
const (
	stateLive      = "live"
	stateDeploying = "deploying"
	stateDegraded  = "degraded"
	stateFailed    = "failed"
	stateStopped   = "stopped"
	stateNew       = "new"     // never deployed
	stateUnknown   = "unknown" // the engine did not answer
)

var stateBadges = map[string]Badge{
	stateLive:      {"Live", "ok"},
	stateDeploying: {"Deploying", "info"},
	stateDegraded:  {"Degraded", "warn"},
	stateFailed:    {"Failed", "fail"},
	stateStopped:   {"Stopped", "neutral"},
	stateNew:       {"Not deployed", "neutral"},
	stateUnknown:   {"Unknown", "neutral"},
}

// appState sums up what runs for an app. latest is its newest deployment
// (nil when it has none): an app whose last attempt failed and that has
// nothing live is failed, not "not deployed".
func appState(st deploy.Status, latest *store.Deployment) string {
	switch {
	case st.InFlight != nil:
		return stateDeploying
	case st.App.Stopped:
		return stateStopped
	case st.Current == nil:
		if latest != nil && latest.Status == store.DeployFailed {
			return stateFailed
		}
		return stateNew
	case st.Release.Problem != "":
		return stateFailed
	case !st.Release.Exists || st.Release.Running < st.Release.Desired:
		return stateDegraded
	}
	return stateLive
}

// deployBadge is a deployment's status in words.
func deployBadge(d store.Deployment) Badge {
	switch d.Status {
	case store.DeployQueued:
		if d.CancelRequested {
			return Badge{"Cancelling", "warn"}
		}
		return Badge{"Queued", "neutral"}
	case store.DeployStarting:
		if d.CancelRequested {
			return Badge{"Cancelling", "warn"}
		}
		return Badge{"Starting", "info"}
	case store.DeploySwitching:
		return Badge{"Switching", "info"}
	case store.DeployDraining:
		return Badge{"Draining", "info"}
	case store.DeployLive:
		return Badge{"Live", "ok"}
	case store.DeployRetired:
		return Badge{"Retired", "neutral"}
	case store.DeployFailed:
		return Badge{"Failed", "fail"}
	case store.DeployCancelled:
		return Badge{"Cancelled", "warn"}
	case store.DeploySuperseded:
		return Badge{"Superseded", "neutral"}
	}
	return Badge{titleCase(d.Status), "neutral"}
}

func taskBadge(state string) Badge {
	switch state {
	case orchestrator.TaskRunning:
		return Badge{"Running", "ok"}
	case orchestrator.TaskStarting:
		return Badge{"Starting", "info"}
	case orchestrator.TaskPending:
		return Badge{"Pending", "info"}
	case orchestrator.TaskFailed:
		return Badge{"Failed", "fail"}
	case orchestrator.TaskShutdown:
		return Badge{"Shut down", "neutral"}
	}
	return Badge{titleCase(state), "neutral"}
}

// shortDigest turns "nginx@sha256:0123…" or "sha256:0123…" into "0123456789ab".
func shortDigest(ref string) string {
	_, d, ok := strings.Cut(ref, "sha256:")
	if !ok {
		return ""
	}
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// humanDuration says how long something took: "48s", "2m 05s", "1h 12m".
func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "—"
	case d < time.Second:
		return "<1s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

// bytesShort formats a memory limit the way people type it: 256m, 1.5g.
func bytesShort(n int64) string {
	switch {
	case n <= 0:
		return ""
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dg", n>>30)
	case n >= 1<<30 && (n*10)%(1<<30) == 0:
		return fmt.Sprintf("%.1fg", float64(n)/(1<<30))
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dm", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dk", n>>10)
	}
	return fmt.Sprintf("%db", n)
}
