package deploy

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/authz"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/store"
)

// Every Manager operation asks for its permission: a viewer reads and
// changes nothing and sees no secret; a developer deploys but manages no
// registry and reads no engine-wide data; an unknown role may do nothing.
func TestManagerEnforcesPermissions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	project := fmt.Sprintf("perm%d", time.Now().UnixNano()%1e6)
	if _, err := h.mgr.CreateProject(ctx, h.p, project); err != nil {
		t.Fatal(err)
	}
	ref := AppRef{Project: project, Name: "web"}
	spec := app.DefaultSpec()
	spec.Image = "berth-fixture/hello:v1"
	if _, err := h.mgr.CreateApp(ctx, h.p, CreateAppInput{Ref: ref, Spec: spec}); err != nil {
		t.Fatal(err)
	}
	as := func(role string) auth.Principal { p := h.p; p.Role = role; return p }
	ops := []struct {
		name string
		run  func(p auth.Principal) error
		// roles allowed among viewer, developer and an unknown role
		viewer, developer bool
	}{
		{"list projects", func(p auth.Principal) error { _, err := h.mgr.Projects(ctx, p); return err }, true, true},
		{"read app", func(p auth.Principal) error { _, err := h.mgr.App(ctx, p, ref); return err }, true, true},
		{"create project", func(p auth.Principal) error { _, err := h.mgr.CreateProject(ctx, p, "x"+p.Role[:3]); return err }, false, true},
		{"set env", func(p auth.Principal) error {
			_, err := h.mgr.SetEnv(ctx, p, EnvScope{Scope: ScopeApp, Ref: ref}, map[string]string{})
			return err
		}, false, true},
		{"scale", func(p auth.Principal) error { _, err := h.mgr.Scale(ctx, p, ref, 1); return err }, false, true},
		{"webhook secret", func(p auth.Principal) error { _, err := h.mgr.WebhookSecret(ctx, p, ref); return err }, false, true},
		{"rotate webhook secret", func(p auth.Principal) error { _, err := h.mgr.RotateWebhookSecret(ctx, p, ref); return err }, false, true},
		{"update git source", func(p auth.Principal) error {
			_, err := h.mgr.UpdateGitSource(ctx, p, ref, GitChange{GitInput: GitInput{Source: gitsrc.Source{Variant: &gitsrc.URL{URL: "https://git.example.com/a/b.git"}}}})
			return err
		}, false, true},
		{"add domain", func(p auth.Principal) error {
			_, err := h.mgr.AddDomain(ctx, p, ref, DomainInput{Host: p.Role + ".example.com"})
			return err
		}, false, true},
		{"create registry", func(p auth.Principal) error {
			_, err := h.mgr.CreateRegistry(ctx, p, RegistryInput{Name: "r" + p.Role[:3], Server: "r.example.com", Username: "u", Password: "p"})
			return err
		}, false, false},
		{"list registries", func(p auth.Principal) error { _, err := h.mgr.Registries(ctx, p); return err }, true, true},
		{"disk use", func(p auth.Principal) error { _, err := h.mgr.DiskUsage(ctx, p); return err }, false, false},
	}
	for _, op := range ops {
		for role, want := range map[string]bool{authz.Viewer: op.viewer, authz.Developer: op.developer, "stranger": false} {
			err := op.run(as(role))
			if got := !errors.Is(err, ErrForbidden); got != want {
				t.Errorf("%s as %s: %v, want allowed=%v", op.name, role, err, want)
			}
		}
	}
}

// A member whose access comes from a grant sees and acts on that project
// (or environment) only: other projects do not exist for them.
func TestGrantsScopeToProjectAndEnvironment(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	suffix := fmt.Sprint(time.Now().UnixNano() % 1e6)
	a, b := "granted"+suffix, "hidden"+suffix
	spec := app.DefaultSpec()
	spec.Image = "berth-fixture/hello:v1"
	var projA store.Project
	for _, name := range []string{a, b} {
		proj, err := h.mgr.CreateProject(ctx, h.p, name)
		if err != nil {
			t.Fatal(err)
		}
		if name == a {
			projA = proj
		}
		if _, err := h.mgr.CreateEnvironment(ctx, h.p, name, "staging"); err != nil {
			t.Fatal(err)
		}
		for _, env := range []string{Production, "staging"} {
			if _, err := h.mgr.CreateApp(ctx, h.p, CreateAppInput{Ref: AppRef{Project: name, Environment: env, Name: "web"}, Spec: spec}); err != nil {
				t.Fatal(err)
			}
		}
	}
	dev := h.p
	dev.Role, dev.Grants = authz.Member, []store.Grant{{ProjectID: projA.ID, Role: authz.Developer}}

	projects, err := h.mgr.Projects(ctx, dev)
	if err != nil || len(projects) != 1 || projects[0].Name != a {
		t.Fatalf("projects of a developer of %s: %v, %v", a, projects, err)
	}
	if _, err := h.mgr.App(ctx, dev, AppRef{Project: b, Name: "web"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("app of an ungranted project: %v, want not found", err)
	}
	if _, err := h.mgr.Scale(ctx, dev, AppRef{Project: a, Name: "web"}, 1); err != nil {
		t.Errorf("scale in the granted project: %v", err)
	}
	if _, err := h.mgr.CreateProject(ctx, dev, "new"+suffix); !errors.Is(err, ErrForbidden) {
		t.Errorf("a project grant created a project: %v", err)
	}
	if _, err := h.mgr.Registries(ctx, dev); !errors.Is(err, ErrForbidden) {
		t.Errorf("a project grant listed the organization's registries: %v", err)
	}

	// A grant on staging alone: production is not there; project-wide
	// variables cannot be changed from it.
	staging, err := h.db.EnvironmentByName(ctx, h.p.Organization.ID, projA.ID, "staging")
	if err != nil {
		t.Fatal(err)
	}
	dev.Grants = []store.Grant{{ProjectID: projA.ID, EnvironmentID: staging.ID, Role: authz.Developer}}
	if apps, err := h.mgr.Apps(ctx, dev, a); err != nil || len(apps) != 1 || apps[0].EnvironmentID != staging.ID {
		t.Errorf("apps seen with a staging grant: %+v, %v", apps, err)
	}
	if _, err := h.mgr.App(ctx, dev, AppRef{Project: a, Environment: Production, Name: "web"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("production app with a staging grant: %v", err)
	}
	if _, err := h.mgr.Scale(ctx, dev, AppRef{Project: a, Environment: "staging", Name: "web"}, 1); err != nil {
		t.Errorf("scale in the granted environment: %v", err)
	}
	if _, err := h.mgr.SetEnv(ctx, dev, EnvScope{Scope: ScopeProject, Ref: AppRef{Project: a}}, map[string]string{"X": "1"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("project-wide variables from an environment grant: %v", err)
	}
	viewer := dev
	viewer.Grants = []store.Grant{{ProjectID: projA.ID, Role: authz.Viewer}}
	if _, err := h.mgr.Scale(ctx, viewer, AppRef{Project: a, Name: "web"}, 1); !errors.Is(err, ErrForbidden) {
		t.Errorf("a viewer grant scaled an app: %v", err)
	}
}
