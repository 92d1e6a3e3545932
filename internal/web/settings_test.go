package web

import (
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/deploy"
)

// settingsValues is the settings form as the page fills it for the app
// appFormValues creates; tests change what they need.
func settingsValues(tok string) url.Values {
	return url.Values{
		"csrf_token": {tok}, "image": {"nginx:1.27"}, "port": {"8080"}, "replicas": {"2"}, "cpu": {"0.5"}, "memory": {"256m"},
		"health": {"http"}, "health_arg": {"/healthz"}, "volumes": {"data:/var/lib/app"}, "ports": {""},
		"command": {""}, "args": {""}, "files": {""}, "secret_files": {""}, "binds": {""},
	}
}

func TestSettingsFormSavesSpec(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")
	b.createApp("shop", appFormValues(tok, "web"))
	ref := deploy.AppRef{Project: "shop", Name: "web"}

	page := b.get("/projects/shop/apps/web/settings")
	mustContain(t, "settings form", page.body, `action="/projects/shop/apps/web/settings"`, `name="csrf_token"`,
		`id="app-image" name="image" type="text" value="nginx:1.27"`, `value="256m"`, `value="0.5"`, `<option value="http" selected>`,
		">data:/var/lib/app</textarea>", `name="binds"`, "Save settings", "Delete web")
	if p := b.post("/projects/shop/apps/web/settings", url.Values{"image": {"nginx:1.28"}}); p.status != http.StatusForbidden {
		t.Errorf("save without token: %d, want 403", p.status)
	}

	form := settingsValues(tok)
	form.Set("image", "nginx:1.28")
	form.Set("memory", "1g")
	form.Set("cpu", "")
	form.Set("volumes", "data:/var/lib/app:single-writer\ncache:/cache:ro")
	form.Set("ports", "5353:53/udp")
	form.Set("command", `/bin/sh -c "exec nginx -g 'daemon off;'"`)
	form.Set("args", "serve\n--name=a b\n")
	form.Set("health", "")
	form.Set("files", "--- /etc/app/config.yml\r\nlisten: 80\r\nlog: info\r\n--- /etc/app/motd\r\nhello")
	form.Set("secret_files", "--- /run/secrets/key\nhunter2\n")
	form.Set("binds", "/srv/shared:/shared:ro")
	p := b.post("/projects/shop/apps/web/settings", form)
	if p.status != http.StatusSeeOther || p.location() != "/projects/shop/apps/web/settings?notice=spec-saved" {
		t.Fatalf("save: %d → %q\n%s", p.status, p.location(), p.body)
	}
	a, err := e.apps.App(t.Context(), e.owner(), ref)
	if err != nil {
		t.Fatal(err)
	}
	s := a.Spec
	if s.Image != "nginx:1.28" || s.Resources.MemoryLimit != 1<<30 || s.Resources.CPULimit != 0 || s.Health != nil || s.Replicas != 2 {
		t.Errorf("stored spec %+v", s)
	}
	if want := []app.Volume{{Name: "data", Target: "/var/lib/app", SingleWriter: true}, {Name: "cache", Target: "/cache", ReadOnly: true}}; !reflect.DeepEqual(s.Volumes, want) {
		t.Errorf("volumes %+v", s.Volumes)
	}
	if !reflect.DeepEqual(s.Command, []string{"/bin/sh", "-c", "exec nginx -g 'daemon off;'"}) || !reflect.DeepEqual(s.Args, []string{"serve", "--name=a b"}) {
		t.Errorf("command %q args %q", s.Command, s.Args)
	}
	if len(s.Files) != 3 || s.Files[0].Content != "listen: 80\nlog: info\n" || s.Files[1].Content != "hello\n" ||
		!s.Files[2].Secret || !app.IsSealed(s.Files[2].Content) {
		t.Errorf("files %+v", s.Files)
	}
	if len(s.Binds) != 1 || s.Binds[0].Source != "/srv/shared" || !s.Binds[0].ReadOnly {
		t.Errorf("binds %+v", s.Binds)
	}
	if ds, _ := e.apps.Deployments(t.Context(), e.owner(), ref, 10); len(ds) != 0 {
		t.Errorf("saving deployed: %+v", ds)
	}

	// The page after saving offers to deploy, and shows the spec back: the
	// secret as its placeholder, so that saving it unchanged keeps it.
	page = b.get(p.location())
	mustContain(t, "saved page", page.body, "Saved.", "Deploy to apply it", `action="/projects/shop/apps/web/deploy"`,
		"--- /run/secrets/key\n(secret, stored encrypted)\n</textarea>", "--- /etc/app/motd\nhello\n", `value="/bin/sh -c &#34;exec nginx -g &#39;daemon off;&#39;&#34;"`,
		"data:/var/lib/app:single-writer\ncache:/cache:ro</textarea>")
	mustNotContain(t, "saved page", page.body, "hunter2")
	sealed := s.Files[2].Content
	form.Set("secret_files", "--- /run/secrets/key\n(secret, stored encrypted)\n")
	form.Set("image", "nginx:1.29")
	if p := b.post("/projects/shop/apps/web/settings", form); p.status != http.StatusSeeOther {
		t.Fatalf("save again: %d\n%s", p.status, p.body)
	}
	a, _ = e.apps.App(t.Context(), e.owner(), ref)
	if a.Spec.Image != "nginx:1.29" || len(a.Spec.Files) != 3 || a.Spec.Files[2].Content != sealed {
		t.Errorf("placeholder did not keep the secret: %+v", a.Spec.Files)
	}
	// A placeholder under a new path has nothing to keep.
	form.Set("secret_files", "--- /run/secrets/other\n(secret, stored encrypted)\n")
	p = b.post("/projects/shop/apps/web/settings", form)
	mustContain(t, "moved placeholder", p.body, `id="app-secret-files-error"`, "only keeps the content stored for that path")
}

func TestSettingsFormInvalidChangesNothing(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	tok := b.csrf("/projects/shop/apps/new")
	b.createApp("shop", appFormValues(tok, "web"))
	ref := deploy.AppRef{Project: "shop", Name: "web"}
	before, err := e.apps.App(t.Context(), e.owner(), ref)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, field, value, wantID, wantText string }{
		{"memory unit", "memory", "lots", "app-memory-error", "Memory limit &#34;lots&#34; is not a size"},
		{"memory below Docker's minimum", "memory", "1m", "app-memory-error", "at least 6 MiB"},
		{"port out of range", "port", "70000", "app-port-error", "HTTP port"},
		{"port not a number", "port", "http", "app-port-error", "must be a whole number"},
		{"volume without path", "volumes", "data", "app-volumes-error", "Volumes line 1: write name:/path"},
		{"volume relative path", "volumes", "data:var/lib", "app-volumes-error", "Volumes line 1: mount path must be an absolute path"},
		{"file without header", "files", "listen: 80\n", "app-files-error", "start each file with a line --- /path"},
		{"bind relative", "binds", "srv:/x", "app-binds-error", "Bind mounts"},
		{"command quote", "command", `sh -c 'x`, "app-command-error", "unclosed"},
	}
	for _, c := range cases {
		form := settingsValues(tok)
		form.Set("image", "nginx:1.28") // must not be saved along
		form.Set(c.field, c.value)
		p := b.post("/projects/shop/apps/web/settings", form)
		if p.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422", c.name, p.status)
			continue
		}
		mustContain(t, c.name, p.body, `id="`+c.wantID+`"`, c.wantText, "Nothing was saved", `value="nginx:1.28"`, "Delete web")
	}
	after, err := e.apps.App(t.Context(), e.owner(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before.Spec, after.Spec) {
		t.Errorf("an invalid form changed the spec:\n%+v\n%+v", before.Spec, after.Spec)
	}
}

// The test server has one user, the owner, and no way to add a member, so
// the refusal of binds to other roles is checked on the form and on the
// manager rather than through a developer's session.
func TestSettingsBindsNeedOwnerOrAdmin(t *testing.T) {
	spec := app.DefaultSpec()
	spec.Binds = []app.BindMount{{Source: "/srv", Target: "/srv", ReadOnly: true}}
	f := specForm("tok", "/x", spec, false)
	if !f.BindsLocked || f.Binds.Value != "/srv:/srv:ro" || !strings.Contains(f.Binds.Hint, "owners and admins") {
		t.Errorf("developer's form: locked %v, value %q, hint %q", f.BindsLocked, f.Binds.Value, f.Binds.Hint)
	}
	if specForm("tok", "/x", spec, true).BindsLocked {
		t.Error("owner's form is locked")
	}

	e := newTestEnv(t)
	b := e.browser()
	b.setupOwner()
	b.createProject("shop")
	b.createApp("shop", appFormValues(b.csrf("/projects/shop/apps/new"), "web"))
	dev := e.owner()
	if !canBind(dev) {
		t.Fatalf("owner role %q may not bind", dev.Role)
	}
	dev.Role = "developer"
	if canBind(dev) {
		t.Error("a developer may bind")
	}
	ref := deploy.AppRef{Project: "shop", Name: "web"}
	a, _ := e.apps.App(t.Context(), e.owner(), ref)
	s := a.Spec
	s.Binds = spec.Binds
	if _, err := e.apps.UpdateSpec(t.Context(), dev, ref, s); err == nil {
		t.Error("a developer set binds")
	}
}

func TestFileBlocksRoundTrip(t *testing.T) {
	files := []app.FileMount{
		{Target: "/a", Content: "one\ntwo\n", Mode: 0o400},
		{Target: "/b", Content: "--- not a header: no path\n\n"},
		{Target: "/s", Content: "sealed:xyz", Secret: true},
	}
	got, err := parseFileBlocks(formatFileBlocks(files, false), false, files)
	if err != nil || !reflect.DeepEqual(got, files[:2]) {
		t.Errorf("plain files: %+v, %v", got, err)
	}
	got, err = parseFileBlocks(formatFileBlocks(files, true), true, files)
	if err != nil || !reflect.DeepEqual(got, files[2:]) {
		t.Errorf("secret files: %+v, %v", got, err)
	}
}

func TestJoinArgsRoundTrip(t *testing.T) {
	for _, argv := range [][]string{{"a", "b c"}, {"sh", "-c", "echo 'hi'"}, {`x"y`, `back\slash q'"`}, {""}} {
		got, err := splitArgs(joinArgs(argv))
		if err != nil || !reflect.DeepEqual(got, argv) {
			t.Errorf("splitArgs(joinArgs(%q)) = %q, %v (%s)", argv, got, err, joinArgs(argv))
		}
	}
}
