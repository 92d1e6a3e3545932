// Package reconcile is the pure core of drift repair: given the releases the
// database says should run and the services found in the cluster, it computes
// the actions that converge the cluster. It performs no I/O.
package reconcile

import (
	"fmt"
	"sort"
)

// Desired is a release that should be running: an app's current, live deployment.
type Desired struct {
	App        string // app id
	Deployment string // deployment id
	Service    string // Swarm service name
	Replicas   int    // 0 when the app is stopped
}

// Actual is a Berth-managed service found in the cluster.
type Actual struct {
	App        string // berth.app label
	Deployment string // berth.deployment label
	Service    string
	Replicas   int
	Drifted    bool // its spec no longer matches what Berth created
}

// Kind of action.
type Kind string

const (
	Create Kind = "create" // recreate a missing release from its deployment
	Reset  Kind = "reset"  // a release changed by hand: remove and recreate it
	Scale  Kind = "scale"  // set the replica count
	Remove Kind = "remove" // a release no deployment owns any more
)

// Action is one step towards the desired state, with the reason users see.
type Action struct {
	Kind       Kind   `json:"kind"`
	App        string `json:"app"`
	Deployment string `json:"deployment"`
	Service    string `json:"service"`
	Replicas   int    `json:"replicas,omitempty"`
	Reason     string `json:"reason"`
}

// Compute returns the actions that make actual match desired. Services of
// apps with a deployment in flight are left to the deploy engine (busy).
func Compute(desired []Desired, actual []Actual, busy map[string]bool) []Action {
	var out []Action
	found := map[string]Actual{}
	for _, a := range actual {
		found[a.Service] = a
	}
	wanted := map[string]bool{}
	for _, d := range desired {
		wanted[d.Service] = true
		if busy[d.App] {
			continue
		}
		a, ok := found[d.Service]
		switch {
		case !ok:
			out = append(out, Action{Kind: Create, App: d.App, Deployment: d.Deployment, Service: d.Service, Replicas: d.Replicas,
				Reason: "the release's service is missing from the cluster (removed by hand?); recreating it"})
		case a.Drifted:
			out = append(out, Action{Kind: Reset, App: d.App, Deployment: d.Deployment, Service: d.Service, Replicas: d.Replicas,
				Reason: "the release's service was changed outside Berth; resetting it to the deployed configuration"})
		case a.Replicas != d.Replicas:
			out = append(out, Action{Kind: Scale, App: d.App, Deployment: d.Deployment, Service: d.Service, Replicas: d.Replicas,
				Reason: fmt.Sprintf("the release runs %d replicas, %d are wanted", a.Replicas, d.Replicas)})
		}
	}
	for _, a := range actual {
		if wanted[a.Service] || busy[a.App] {
			continue
		}
		out = append(out, Action{Kind: Remove, App: a.App, Deployment: a.Deployment, Service: a.Service,
			Reason: "no live deployment owns this release any more"})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}
