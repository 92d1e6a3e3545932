// Package deploy_test measures Berth's deploy engine against raw Swarm on the
// same engine in the same run:
//
//	go test -run '^$' -bench . -benchtime 3x ./bench/deploy
//
// Update: deploy → every replica of the new version healthy, beside
// `docker service update` (start-first) of an identical service.
// Failure: a version failing its health check → the old one confirmed as the
// only one serving, beside Swarm's automatic rollback of the same update.
package deploy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/orchestrator"
	bswarm "github.com/berthpaas/berth/internal/orchestrator/swarm"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/testenv"
)

const replicas = 2

type rig struct {
	db     *store.DB
	mgr    *deploy.Manager
	p      auth.Principal
	docker *client.Client
}

func newRig(b *testing.B) *rig {
	host := testenv.Docker(b)
	dir := b.TempDir()
	probe := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-o", probe, "../../internal/probe/cmd/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build probe: %v\n%s", err, out)
	}
	db, err := store.Open(context.Background(), "", dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	key, _ := secrets.GenerateKey()
	keys, _ := secrets.New(key)
	cluster, err := bswarm.New(host, bswarm.WithProbe(bswarm.ProbeMount{HostPath: probe}))
	if err != nil {
		b.Fatal(err)
	}
	engine := deploy.NewEngine(db, cluster, keys, slog.New(slog.NewTextHandler(io.Discard, nil)),
		deploy.Options{PollInterval: 100 * time.Millisecond, ProblemGrace: 2 * time.Second, InstallID: store.NewID("bench")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { engine.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
	org, u := store.Organization{Name: "bench"}, store.User{Email: "bench@example.com", PasswordHash: "x"}
	if err := db.CompleteSetup(ctx, time.Now(), &org, &u); err != nil {
		b.Fatal(err)
	}
	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		b.Fatal(err)
	}
	return &rig{db: db, mgr: deploy.NewManager(db, keys, cluster, engine), p: auth.Principal{User: u, Organization: org}, docker: docker}
}

func (r *rig) app(b *testing.B) deploy.AppRef {
	ctx := context.Background()
	project := fmt.Sprintf("bench%d", time.Now().UnixNano()%1e6)
	if _, err := r.mgr.CreateProject(ctx, r.p, project); err != nil {
		b.Fatal(err)
	}
	ref := deploy.AppRef{Project: project, Environment: deploy.Production, Name: "web"}
	spec := app.DefaultSpec()
	spec.Image, spec.Port, spec.Replicas = "berth-fixture/hello:v1", 8080, replicas
	spec.Health = &app.HealthCheck{Type: app.HealthHTTP, Path: "/healthz", Interval: app.Duration(time.Second)}
	if _, err := r.mgr.CreateApp(ctx, r.p, deploy.CreateAppInput{Ref: ref, Spec: spec}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		r.mgr.DeleteApp(context.Background(), r.p, ref, false)
		r.mgr.DeleteProject(context.Background(), r.p, project)
	})
	r.deploy(b, ref, "berth-fixture/hello:v1", store.DeployLive)
	return ref
}

func (r *rig) deploy(b *testing.B, ref deploy.AppRef, image, want string) time.Duration {
	start := time.Now()
	d, err := r.mgr.Deploy(context.Background(), r.p, ref, deploy.DeployInput{Image: image})
	if err != nil {
		b.Fatal(err)
	}
	for {
		cur, err := r.db.Deployment(context.Background(), d.OrganizationID, d.ID)
		if err != nil {
			b.Fatal(err)
		}
		if store.DeploymentTerminal(cur.Status) {
			if cur.Status != want {
				b.Fatalf("deployment #%d ended %s (%s), want %s", cur.Seq, cur.Status, cur.Error, want)
			}
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawService is the same app as a plain Swarm service updated in place.
func (r *rig) rawService(b *testing.B) string {
	ctx := context.Background()
	n := uint64(replicas)
	name := fmt.Sprintf("bench-raw-%d", time.Now().UnixNano()%1e6)
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: map[string]string{orchestrator.LabelManaged: "true"}},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
			Image:       "berth-fixture/hello:v1",
			Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/hello", "-healthcheck"}, Interval: time.Second, Timeout: 2 * time.Second, Retries: 3},
		}},
		Mode:           swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &n}},
		UpdateConfig:   &swarm.UpdateConfig{Parallelism: 0, Order: swarm.UpdateOrderStartFirst, FailureAction: swarm.UpdateFailureActionRollback, Monitor: time.Second},
		RollbackConfig: &swarm.UpdateConfig{Parallelism: 0, Order: swarm.UpdateOrderStartFirst, Monitor: time.Second},
		EndpointSpec:   &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}
	if _, err := r.docker.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.docker.ServiceRemove(context.Background(), name) })
	r.waitRaw(b, name, "", "")
	return name
}

// updateRaw changes the image and waits for the update (or its rollback) to end.
func (r *rig) updateRaw(b *testing.B, name, image string, want swarm.UpdateState) time.Duration {
	ctx := context.Background()
	svc, _, err := r.docker.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
	if err != nil {
		b.Fatal(err)
	}
	spec := svc.Spec
	spec.TaskTemplate.ContainerSpec.Image = image
	start := time.Now()
	if _, err := r.docker.ServiceUpdate(ctx, name, svc.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
		b.Fatal(err)
	}
	r.waitRaw(b, name, want, image)
	return time.Since(start)
}

func (r *rig) waitRaw(b *testing.B, name string, want swarm.UpdateState, image string) {
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		svc, _, err := r.docker.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if want == "" {
			tasks, _ := r.docker.TaskList(ctx, swarm.TaskListOptions{})
			running := 0
			for _, t := range tasks {
				if t.ServiceID == svc.ID && t.Status.State == swarm.TaskStateRunning && t.DesiredState == swarm.TaskStateRunning {
					running++
				}
			}
			if running == replicas {
				return
			}
		} else if svc.UpdateStatus != nil && svc.UpdateStatus.State == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("raw service %s did not reach %q", name, want)
}

func BenchmarkUpdate(b *testing.B) {
	r := newRig(b)
	ref := r.app(b)
	raw := r.rawService(b)
	var berth, swarmd time.Duration
	images := []string{"berth-fixture/hello:v2", "berth-fixture/hello:v1"}
	for i := 0; b.Loop(); i++ {
		berth += r.deploy(b, ref, images[i%2], store.DeployLive)
		swarmd += r.updateRaw(b, raw, images[i%2], swarm.UpdateStateCompleted)
	}
	report(b, berth, swarmd)
}

func BenchmarkFailedUpdate(b *testing.B) {
	r := newRig(b)
	ref := r.app(b)
	raw := r.rawService(b)
	var berth, swarmd time.Duration
	for b.Loop() {
		berth += r.deploy(b, ref, "berth-fixture/hello:v3", store.DeployFailed)
		swarmd += r.updateRaw(b, raw, "berth-fixture/hello:v3", swarm.UpdateStateRollbackCompleted)
	}
	report(b, berth, swarmd)
}

func report(b *testing.B, berth, swarmd time.Duration) {
	n := float64(b.N)
	b.ReportMetric(berth.Seconds()/n, "berth-s/op")
	b.ReportMetric(swarmd.Seconds()/n, "swarm-s/op")
	b.ReportMetric(berth.Seconds()/swarmd.Seconds(), "berth/swarm")
}
