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
		{"add domain", func(p auth.Principal) error { _, err := h.mgr.AddDomain(ctx, p, ref, DomainInput{Host: p.Role + ".example.com"}); return err }, false, true},
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
