package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/testenv"
)

func TestNormalizeRegistryServer(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"registry.example.com", "registry.example.com"},
		{"Registry.Example.COM:443", "registry.example.com:443"},
		{"localhost:5000", "localhost:5000"},
		{"127.0.0.1:5000", "127.0.0.1:5000"},
		{"ghcr.io", "ghcr.io"},
		{"index.docker.io", "docker.io"},
		{"", ""},
		{"https://registry.example.com", ""},
		{"registry.example.com/team", ""},
		{"registry.example.com ", ""},
		{"reg istry", ""},
		{"-rm.example.com", ""},
		{"registry.example.com:0", ""},
		{"registry.example.com:70000", ""},
		{"registry.example.com:", ""},
		{"user@registry.example.com", ""},
		{"registry..example.com", ""},
		{"registry.example.com\n", ""},
	} {
		got, err := NormalizeRegistryServer(c.in)
		var fe *app.FieldError
		switch {
		case c.want == "" && (!errors.As(err, &fe) || fe.Field != "server"):
			t.Errorf("NormalizeRegistryServer(%q) = %q, %v; want a server field error", c.in, got, err)
		case c.want != "" && (err != nil || got != c.want):
			t.Errorf("NormalizeRegistryServer(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// TestPrivateRegistry deploys from the htpasswd-protected registry of
// test/registry/start.sh: refused without credentials, live with them.
func TestPrivateRegistry(t *testing.T) {
	h := newHarness(t)
	reg := testenv.Registry(t)
	ctx := context.Background()

	// Without a local copy, resolving the image must pull it from the registry.
	if _, err := h.docker.ImageRemove(ctx, reg.Image, image.RemoveOptions{}); err != nil && !strings.Contains(err.Error(), "No such image") {
		t.Fatal(err)
	}

	project := fmt.Sprintf("reg%d", time.Now().UnixNano()%1e6)
	if _, err := h.mgr.CreateProject(ctx, h.p, project); err != nil {
		t.Fatal(err)
	}
	ref := AppRef{Project: project, Environment: Production, Name: "web"}
	spec := app.DefaultSpec()
	spec.Image, spec.Port, spec.Replicas = reg.Image, 8080, 1
	spec.Health = &app.HealthCheck{Type: app.HealthHTTP, Path: "/healthz", Interval: app.Duration(time.Second)}
	if _, err := h.mgr.CreateApp(ctx, h.p, CreateAppInput{Ref: ref, Spec: spec}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.mgr.DeleteApp(context.Background(), h.p, ref, true) })

	// No credentials: the deployment fails, saying why in plain words.
	d1 := h.wait(must(h.mgr.Deploy(ctx, h.p, ref, DeployInput{}))(t), store.DeployFailed)
	if !strings.Contains(d1.Error, "requires credentials") {
		t.Errorf("deployment without credentials failed with %q, want it to say the registry requires credentials", d1.Error)
	}

	// A wrong password: the test login says unauthorized.
	r, err := h.mgr.CreateRegistry(ctx, h.p, RegistryInput{Name: "local", Server: reg.Server, Username: reg.Username, Password: "wrong-" + reg.Password})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.mgr.TestRegistry(ctx, h.p, r.Name)
	if err != nil || res.OK || !strings.Contains(res.Message, "unauthorized") {
		t.Errorf("TestRegistry with a wrong password = %+v, %v; want not ok, unauthorized", res, err)
	}

	// The right password: the test login succeeds.
	password := reg.Password
	if _, err := h.mgr.UpdateRegistry(ctx, h.p, r.ID, RegistryUpdate{Password: &password}); err != nil {
		t.Fatal(err)
	}
	if res, err := h.mgr.TestRegistry(ctx, h.p, r.ID); err != nil || !res.OK {
		t.Fatalf("TestRegistry with the right password = %+v, %v", res, err)
	}
	stored, err := h.db.Registry(ctx, h.p.Organization.ID, r.ID)
	if err != nil || strings.Contains(stored.SealedPassword, reg.Password) {
		t.Errorf("the password is stored in plaintext: %v", err)
	}

	// A registry that does not answer is unreachable, not unauthorized.
	dead, err := h.mgr.CreateRegistry(ctx, h.p, RegistryInput{Name: "dead", Server: "127.0.0.1:1", Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := h.mgr.TestRegistry(ctx, h.p, dead.Name); err != nil || res.OK || !strings.Contains(res.Message, "unreachable") {
		t.Errorf("TestRegistry of a closed port = %+v, %v; want unreachable", res, err)
	}

	// With credentials the image is pulled and the app goes live.
	d2 := h.wait(must(h.mgr.Deploy(ctx, h.p, ref, DeployInput{}))(t), store.DeployLive)
	if !strings.HasPrefix(d2.ImageDigest, reg.Server+"/berth/hello@sha256:") {
		t.Errorf("image pinned to %q, want the registry's digest", d2.ImageDigest)
	}
	st, err := h.mgr.AppStatus(ctx, h.p, ref)
	if err != nil || st.Release.Running != 1 {
		t.Errorf("status = %+v, %v", st, err)
	}
}
