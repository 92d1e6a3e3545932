package reconcile

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestCompute(t *testing.T) {
	cases := []struct {
		name    string
		desired []Desired
		actual  []Actual
		busy    map[string]bool
	}{
		{name: "converged",
			desired: []Desired{{App: "a1", Deployment: "d1", Service: "web-1", Replicas: 2}},
			actual:  []Actual{{App: "a1", Deployment: "d1", Service: "web-1", Replicas: 2}}},
		{name: "deleted-by-hand",
			desired: []Desired{{App: "a1", Deployment: "d1", Service: "web-1", Replicas: 2}, {App: "a2", Deployment: "d9", Service: "api-3", Replicas: 1}},
			actual:  []Actual{{App: "a2", Deployment: "d9", Service: "api-3", Replicas: 1}}},
		{name: "changed-by-hand",
			desired: []Desired{{App: "a1", Deployment: "d1", Service: "web-1", Replicas: 2}},
			actual:  []Actual{{App: "a1", Deployment: "d1", Service: "web-1", Replicas: 2, Drifted: true}}},
		{name: "scaled-by-hand-and-stopped-app",
			desired: []Desired{{App: "a1", Deployment: "d1", Service: "web-1", Replicas: 2}, {App: "a2", Deployment: "d2", Service: "worker-4", Replicas: 0}},
			actual:  []Actual{{App: "a1", Deployment: "d1", Service: "web-1", Replicas: 5}, {App: "a2", Deployment: "d2", Service: "worker-4", Replicas: 1}}},
		{name: "orphans-removed",
			desired: []Desired{{App: "a1", Deployment: "d2", Service: "web-2", Replicas: 1}},
			actual:  []Actual{{App: "a1", Deployment: "d1", Service: "web-1", Replicas: 1}, {App: "a1", Deployment: "d2", Service: "web-2", Replicas: 1}, {App: "gone", Deployment: "d7", Service: "old-7", Replicas: 1}}},
		{name: "deploy-in-flight-left-alone",
			desired: []Desired{{App: "a1", Deployment: "d1", Service: "web-1", Replicas: 2}},
			actual:  []Actual{{App: "a1", Deployment: "d2", Service: "web-2", Replicas: 2}},
			busy:    map[string]bool{"a1": true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.MarshalIndent(Compute(tc.desired, tc.actual, tc.busy), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(want) != string(got)+"\n" {
				t.Errorf("actions differ from %s:\ngot  %s\nwant %s", path, got, want)
			}
		})
	}
}

// Applying the actions to the actual state converges it: a second Compute
// on the result has nothing left to do.
func TestComputeConverges(t *testing.T) {
	desired := []Desired{{App: "a1", Deployment: "d1", Service: "web-1", Replicas: 2}, {App: "a2", Deployment: "d2", Service: "api-2", Replicas: 3}}
	actual := []Actual{{App: "a1", Deployment: "d1", Service: "web-1", Replicas: 1, Drifted: true}, {App: "a3", Deployment: "d3", Service: "x-1", Replicas: 1}}
	state := map[string]Actual{}
	for _, a := range actual {
		state[a.Service] = a
	}
	for _, a := range Compute(desired, actual, nil) {
		switch a.Kind {
		case Create, Reset, Scale:
			state[a.Service] = Actual{App: a.App, Deployment: a.Deployment, Service: a.Service, Replicas: a.Replicas}
		case Remove:
			delete(state, a.Service)
		}
	}
	var after []Actual
	for _, a := range state {
		after = append(after, a)
	}
	if left := Compute(desired, after, nil); len(left) != 0 {
		t.Fatalf("not converged after one round: %+v", left)
	}
}
