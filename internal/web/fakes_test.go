package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"sync"
	"time"

	"github.com/berthpaas/berth/internal/orchestrator"
)

// fakeReleases is a cluster in memory: a release becomes healthy as soon as
// it is created, unless problem is set. Logs returns the lines in logs.
type fakeReleases struct {
	mu       sync.Mutex
	services map[string]*fakeService
	volumes  []string // removed volumes
	problem  string
	logs     []orchestrator.LogLine
}

type fakeService struct {
	labels   map[string]string
	replicas int
	created  time.Time
}

var _ orchestrator.Releases = (*fakeReleases)(nil)

func newFakeReleases() *fakeReleases {
	return &fakeReleases{services: map[string]*fakeService{}}
}

func (f *fakeReleases) EnsureNetwork(context.Context, string, map[string]string) error { return nil }
func (f *fakeReleases) RemoveNetwork(context.Context, string) error                    { return nil }

func (f *fakeReleases) ResolveImage(_ context.Context, ref string, _ *orchestrator.RegistryAuth) (orchestrator.ResolvedImage, error) {
	sum := sha256.Sum256([]byte(ref))
	return orchestrator.ResolvedImage{Ref: ref + "@sha256:" + hex.EncodeToString(sum[:])}, nil
}

func (f *fakeReleases) CreateRelease(_ context.Context, r orchestrator.Release) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.services[r.Service]; !ok {
		f.services[r.Service] = &fakeService{labels: maps.Clone(r.Labels), replicas: r.Spec.Replicas, created: time.Now()}
	}
	return nil
}

func (f *fakeReleases) ReleaseState(_ context.Context, service string) (orchestrator.ReleaseState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.services[service]
	if !ok {
		return orchestrator.ReleaseState{}, nil
	}
	st := orchestrator.ReleaseState{Exists: true, Desired: s.replicas, Problem: f.problem}
	for i := range s.replicas {
		t := orchestrator.Task{ID: service + "-t" + string(rune('a'+i)), Slot: i + 1, Node: "berth-1", State: orchestrator.TaskRunning, Since: s.created}
		if f.problem != "" {
			t.State, t.Message, t.ExitCode = orchestrator.TaskFailed, f.problem, 1
		} else {
			st.Running++
		}
		st.Tasks = append(st.Tasks, t)
	}
	return st, nil
}

func (f *fakeReleases) ScaleRelease(_ context.Context, service string, replicas int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.services[service]; ok {
		s.replicas = replicas
	}
	return nil
}

func (f *fakeReleases) RemoveRelease(_ context.Context, service string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.services, service)
	return nil
}

func (f *fakeReleases) Services(_ context.Context, labels map[string]string) ([]orchestrator.ServiceInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []orchestrator.ServiceInfo
	for name, s := range f.services {
		match := true
		for k, v := range labels {
			if s.labels[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, orchestrator.ServiceInfo{Name: name, Labels: maps.Clone(s.labels), Replicas: s.replicas})
		}
	}
	return out, nil
}

func (f *fakeReleases) Logs(_ context.Context, _ string, opts orchestrator.LogOptions, out func(orchestrator.LogLine) error) error {
	f.mu.Lock()
	lines := append([]orchestrator.LogLine(nil), f.logs...)
	f.mu.Unlock()
	if opts.Tail > 0 && len(lines) > opts.Tail {
		lines = lines[len(lines)-opts.Tail:]
	}
	for _, l := range lines {
		if err := out(l); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeReleases) RemoveVolume(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.volumes = append(f.volumes, name)
	return nil
}

func (f *fakeReleases) PruneFiles(context.Context, string) error { return nil }

func (f *fakeReleases) removedVolumes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.volumes...)
}
