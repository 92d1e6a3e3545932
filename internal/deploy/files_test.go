package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	dswarm "github.com/docker/docker/api/types/swarm"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// Files become configs and secrets named by their content: a changed file
// gets a new one, the old one goes once no release uses it, and deleting the
// app removes them all. Secret content never appears in the service spec.
func TestDeployFiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	project := fmt.Sprintf("files%d", time.Now().UnixNano()%1e6)
	if _, err := h.mgr.CreateProject(ctx, h.p, project); err != nil {
		t.Fatal(err)
	}
	ref := AppRef{Project: project, Environment: Production, Name: "web"}
	const token = "tok-S3CRET-never-in-a-spec"
	spec := webSpec("berth-fixture/hello:v1")
	spec.Volumes = nil
	spec.Replicas = 1
	spec.Files = []app.FileMount{
		{Target: "/etc/hello/greeting.txt", Content: "hello, files\n"},
		{Target: "/run/secrets/token", Content: token, Secret: true, Mode: 0o400},
	}
	a, err := h.mgr.CreateApp(ctx, h.p, CreateAppInput{Ref: ref, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			h.mgr.DeleteApp(context.Background(), h.p, ref, false)
		}
	})

	d1 := h.wait(must(h.mgr.Deploy(ctx, h.p, ref, DeployInput{}))(t), store.DeployLive)
	svc, raw, err := h.docker.ServiceInspectWithRaw(ctx, d1.Service, dswarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Encrypted at rest: the app's spec and every deployment's copy of it.
	for _, f := range []string{"berth.db", "berth.db-wal"} {
		if b, err := os.ReadFile(filepath.Join(h.dir, f)); err == nil && strings.Contains(string(b), token) {
			t.Errorf("the secret file's content is in plaintext in %s", f)
		}
	}
	if strings.Contains(string(raw), token) {
		t.Fatal("the secret's content is in the service spec")
	}
	cfg1, sec1 := fileRefs(t, svc.Spec.TaskTemplate.ContainerSpec)
	if cfg1.File == nil || cfg1.File.Name != "/etc/hello/greeting.txt" || cfg1.File.Mode != 0o444 ||
		sec1.File == nil || sec1.File.Name != "/run/secrets/token" || sec1.File.Mode != 0o400 {
		t.Fatalf("service references config %+v and secret %+v", cfg1, sec1)
	}
	if c, _, err := h.docker.ConfigInspectWithRaw(ctx, cfg1.ConfigID); err != nil || string(c.Spec.Data) != "hello, files\n" || c.Spec.Labels[orchestrator.LabelManaged] != "true" {
		t.Errorf("config %s: %q, labels %v, %v", cfg1.ConfigName, c.Spec.Data, c.Spec.Labels, err)
	}
	if _, raw, err := h.docker.SecretInspectWithRaw(ctx, sec1.SecretID); err != nil || strings.Contains(string(raw), token) {
		t.Errorf("secret %s inspects with its content, or not at all (%v)", sec1.SecretName, err)
	}
	if infos := h.services(a.ID); len(infos) != 1 {
		t.Fatalf("services %v", infos)
	}
	if list, _ := h.cluster.Services(ctx, map[string]string{orchestrator.LabelApp: a.ID}); len(list) != 1 || list[0].Drifted {
		t.Errorf("the release with files reads as drifted: %+v", list)
	}

	// The running task's container spec references both under their targets.
	// (Their content cannot be read back without exec: docker cp sees the
	// image's empty mount point, and the image has no cat.)
	tasks, err := h.docker.TaskList(ctx, dswarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", svc.ID), filters.Arg("desired-state", "running"))})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("tasks: %d, %v", len(tasks), err)
	}
	tc, ts := fileRefs(t, tasks[0].Spec.ContainerSpec)
	if tc.ConfigID != cfg1.ConfigID || tc.File.Name != cfg1.File.Name || ts.SecretID != sec1.SecretID || ts.File.Name != sec1.File.Name {
		t.Errorf("the task references config %+v and secret %+v", tc, ts)
	}

	// A changed file is a new config; the old one is pruned after the drain;
	// the unchanged secret is reused.
	spec.Files[0].Content = "hello again\n"
	if _, err := h.mgr.UpdateSpec(ctx, h.p, ref, spec); err != nil {
		t.Fatal(err)
	}
	d2 := h.wait(must(h.mgr.Deploy(ctx, h.p, ref, DeployInput{}))(t), store.DeployLive)
	svc2, _, err := h.docker.ServiceInspectWithRaw(ctx, d2.Service, dswarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg2, sec2 := fileRefs(t, svc2.Spec.TaskTemplate.ContainerSpec)
	if cfg2.ConfigName == cfg1.ConfigName || cfg2.ConfigID == cfg1.ConfigID {
		t.Errorf("changed content kept config %s", cfg1.ConfigName)
	}
	if sec2.SecretID != sec1.SecretID {
		t.Errorf("the unchanged secret was recreated: %s, then %s", sec1.SecretName, sec2.SecretName)
	}
	configs, secretList := appFiles(t, h, a.ID)
	if len(configs) != 1 || configs[0] != cfg2.ConfigName || len(secretList) != 1 || secretList[0] != sec1.SecretName {
		t.Errorf("after the drain the app has configs %v and secrets %v, want [%s] and [%s]", configs, secretList, cfg2.ConfigName, sec1.SecretName)
	}

	// Deleting the app removes them.
	deleted = true
	if err := h.mgr.DeleteApp(ctx, h.p, ref, false); err != nil {
		t.Fatal(err)
	}
	if configs, secretList := appFiles(t, h, a.ID); len(configs)+len(secretList) != 0 {
		t.Errorf("after deleting the app, configs %v and secrets %v remain", configs, secretList)
	}
}

func fileRefs(t *testing.T, cs *dswarm.ContainerSpec) (dswarm.ConfigReference, dswarm.SecretReference) {
	t.Helper()
	if cs == nil || len(cs.Configs) != 1 || len(cs.Secrets) != 1 || cs.Configs[0].File == nil || cs.Secrets[0].File == nil {
		t.Fatalf("container spec does not reference one config and one secret: %+v", cs)
	}
	return *cs.Configs[0], *cs.Secrets[0]
}

// appFiles lists the names of the app's configs and secrets.
func appFiles(t *testing.T, h *harness, appID string) (configs, secretNames []string) {
	t.Helper()
	f := filters.NewArgs(filters.Arg("label", orchestrator.LabelApp+"="+appID))
	cl, err := h.docker.ConfigList(context.Background(), dswarm.ConfigListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	sl, err := h.docker.SecretList(context.Background(), dswarm.SecretListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cl {
		configs = append(configs, c.Spec.Name)
	}
	for _, s := range sl {
		secretNames = append(secretNames, s.Spec.Name)
	}
	return configs, secretNames
}

// Only owners and admins may set bind mounts; anyone may keep those set.
func TestBindsNeedOwnerOrAdmin(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _ := secrets.GenerateKey()
	keys, _ := secrets.New(key)
	org, u := store.Organization{Name: "Acme"}, store.User{Email: "dev@example.com", PasswordHash: "x"}
	if err := db.CompleteSetup(ctx, time.Now(), &org, &u); err != nil {
		t.Fatal(err)
	}
	m := NewManager(db, keys, nil, nil) // nothing here reaches the cluster
	owner := auth.Principal{User: u, Organization: org, Role: store.RoleOwner}
	admin, dev := owner, owner
	admin.Role, dev.Role = "admin", "developer"
	if _, err := m.CreateProject(ctx, owner, "shop"); err != nil {
		t.Fatal(err)
	}
	binds := []app.BindMount{{Source: "/srv/shared", Target: "/shared", ReadOnly: true}}
	spec := app.DefaultSpec()
	spec.Image = "nginx"
	withBinds := spec
	withBinds.Binds = binds

	forbidden := func(err error) {
		t.Helper()
		var fe *ForbiddenError
		if !errors.As(err, &fe) || !errors.Is(err, ErrForbidden) || !strings.Contains(fe.Message, "bind mounts need the owner or admin role") {
			t.Errorf("error %v, want a ForbiddenError about bind mounts", err)
		}
	}
	_, err = m.CreateApp(ctx, dev, CreateAppInput{Ref: AppRef{Project: "shop", Name: "dev"}, Spec: withBinds})
	forbidden(err)
	if _, err := m.App(ctx, owner, AppRef{Project: "shop", Name: "dev"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused app was stored: %v", err)
	}
	if _, err := m.CreateApp(ctx, dev, CreateAppInput{Ref: AppRef{Project: "shop", Name: "plain"}, Spec: spec}); err != nil {
		t.Errorf("a developer's app without binds: %v", err)
	}
	_, err = m.UpdateSpec(ctx, dev, AppRef{Project: "shop", Name: "plain"}, withBinds)
	forbidden(err)

	for _, p := range []auth.Principal{owner, admin} {
		name := "by-" + p.Role
		if _, err := m.CreateApp(ctx, p, CreateAppInput{Ref: AppRef{Project: "shop", Name: name}, Spec: withBinds}); err != nil {
			t.Errorf("%s creating an app with binds: %v", p.Role, err)
		}
	}
	// A developer may edit an app whose binds an admin set, keeping them,
	// but not change or add them.
	ref := AppRef{Project: "shop", Name: "by-admin"}
	keep := withBinds
	keep.Replicas = 3
	if _, err := m.UpdateSpec(ctx, dev, ref, keep); err != nil {
		t.Errorf("a developer keeping the binds: %v", err)
	}
	changed := keep
	changed.Binds = []app.BindMount{{Source: "/srv/shared", Target: "/shared"}} // now writable
	_, err = m.UpdateSpec(ctx, dev, ref, changed)
	forbidden(err)
	if a, _ := m.App(ctx, owner, ref); len(a.Spec.Binds) != 1 || !a.Spec.Binds[0].ReadOnly {
		t.Errorf("binds after the refused change: %+v", a.Spec.Binds)
	}
}
