package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/build"
	"github.com/berthpaas/berth/internal/store"
)

// Build secret names are variable names, each once, at most 32: anything
// else is refused on create and on change, naming git.build_secrets and
// the bad entry, and changes nothing. Valid names are kept in their order.
func TestGitBuildSecretsValidated(t *testing.T) {
	t.Parallel()
	g := newGitApp(t, "")
	ctx := context.Background()
	before, err := g.mgr.GitSource(ctx, g.p, g.ref)
	if err != nil {
		t.Fatal(err)
	}
	many := make([]string, maxBuildSecrets+1)
	for i := range many {
		many[i] = fmt.Sprintf("SECRET_%d", i)
	}
	for _, tc := range []struct {
		name    string
		secrets []string
		mention string
	}{
		{"bad name", []string{"NPM_TOKEN", "1TOKEN"}, `"1TOKEN" is not a valid variable name`},
		{"empty name", []string{""}, `"" is not a valid variable name`},
		{"duplicate", []string{"A_TOKEN", "B_TOKEN", "A_TOKEN"}, "names A_TOKEN twice"},
		{"too many", many, "has 33 names; the limit is 32"},
	} {
		in := GitInput{Source: before.Source, Branch: "main", Build: store.BuildSettings{Secrets: tc.secrets}}
		_, _, err := g.mgr.CreateGitApp(ctx, g.p, CreateAppInput{Ref: AppRef{Project: g.ref.Project, Name: "other"}, Spec: app.DefaultSpec()}, in)
		var fe *app.FieldError
		if !errors.As(err, &fe) || fe.Field != "git.build_secrets" || !strings.Contains(fe.Message, tc.mention) {
			t.Errorf("create, %s: %v; want a git.build_secrets error saying %q", tc.name, err, tc.mention)
		}
		_, err = g.mgr.UpdateGitSource(ctx, g.p, g.ref, GitChange{GitInput: in})
		if !errors.As(err, &fe) || fe.Field != "git.build_secrets" || !strings.Contains(fe.Message, tc.mention) {
			t.Errorf("update, %s: %v; want a git.build_secrets error saying %q", tc.name, err, tc.mention)
		}
	}
	if apps, _ := g.mgr.Apps(ctx, g.p, g.ref.Project); len(apps) != 1 {
		t.Errorf("%d apps after refused creations, want only the first", len(apps))
	}
	if now, _ := g.mgr.GitSource(ctx, g.p, g.ref); len(now.Build.Secrets) != 0 {
		t.Errorf("refused changes stored build secrets %v", now.Build.Secrets)
	}

	want := []string{"Z_TOKEN", "A_TOKEN"}
	if _, err := g.mgr.UpdateGitSource(ctx, g.p, g.ref, GitChange{GitInput: GitInput{Source: before.Source, Branch: "main", Build: store.BuildSettings{Secrets: want}}}); err != nil {
		t.Fatal(err)
	}
	if now, _ := g.mgr.GitSource(ctx, g.p, g.ref); !slices.Equal(now.Build.Secrets, want) {
		t.Errorf("stored build secrets %v, want %v in that order", now.Build.Secrets, want)
	}
}

// A build secret naming no variable of the app fails the build before it
// fetches, saying which and how to set it; nothing is built or deployed.
func TestGitBuildSecretMissingVariable(t *testing.T) {
	t.Parallel()
	g := newGitApp(t, "")
	ctx := context.Background()
	src, err := g.mgr.GitSource(ctx, g.p, g.ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.mgr.SetEnv(ctx, g.p, EnvScope{Scope: ScopeApp, Ref: g.ref}, map[string]string{"OTHER": "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.mgr.UpdateGitSource(ctx, g.p, g.ref, GitChange{GitInput: GitInput{Source: src.Source, Branch: "main",
		Build: store.BuildSettings{Secrets: []string{"OTHER", "NPM_TOKEN"}}}}); err != nil {
		t.Fatal(err)
	}
	b := g.waitBuild(g.start(), store.BuildFailed)
	want := fmt.Sprintf(`build secret NPM_TOKEN: the app has no variable of that name; set it with "berth env set %s NPM_TOKEN=…"`, g.ref)
	if !strings.Contains(b.Error, want) {
		t.Errorf("build error %q, want it to say %q", b.Error, want)
	}
	if log := g.log(b); strings.Contains(log, "Fetching") || b.Commit != "" || b.ImageID != "" {
		t.Errorf("the build went on (commit %q, image %q):\n%s", b.Commit, b.ImageID, log)
	}
	if _, err := g.db.Deployment(ctx, b.OrganizationID, b.DeploymentID); err == nil {
		t.Error("a build refused for a missing variable created its deployment")
	}
}

// A build secret is the app's variable (the narrowest scope wins), mounted
// for the RUN step that asks for it: the build reads it, its output masks
// it, and neither the image's history nor its config holds it.
func TestGitBuildSecrets(t *testing.T) {
	t.Parallel()
	g := newGitApp(t, "")
	ctx := context.Background()
	const value = "expected-value-5b1e9c"
	sum := sha256.Sum256([]byte(value))
	// The Dockerfile checks the value by its hash: written out, it would be
	// in the image's history by the Dockerfile's own doing. The run's own
	// echo keeps the step out of the cache of earlier runs, which would
	// skip it (a secret is not part of a step's cache key).
	g.repo.Commit(t, map[string]string{"Dockerfile": "FROM berth-fixture/debian:bookworm\n" +
		"COPY --from=berth-fixture/hello:v1 /hello /hello\n" +
		"RUN --mount=type=secret,id=BUILD_TOKEN echo run " + fmt.Sprint(time.Now().UnixNano()) + " && cat /run/secrets/BUILD_TOKEN && echo && " +
		`test "$(sha256sum < /run/secrets/BUILD_TOKEN | cut -d' ' -f1)" = "` + hex.EncodeToString(sum[:]) + "\"\n" +
		"ENV PORT=8080\nENTRYPOINT [\"/hello\"]\n"}, "reads a build secret")
	src, err := g.mgr.GitSource(ctx, g.p, g.ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.mgr.UpdateGitSource(ctx, g.p, g.ref, GitChange{GitInput: GitInput{Source: src.Source, Branch: "main",
		Build: store.BuildSettings{Secrets: []string{"BUILD_TOKEN"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.mgr.SetEnv(ctx, g.p, EnvScope{Scope: ScopeProject, Ref: g.ref}, map[string]string{"BUILD_TOKEN": "the-project-value"}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.mgr.SetEnv(ctx, g.p, EnvScope{Scope: ScopeApp, Ref: g.ref}, map[string]string{"BUILD_TOKEN": value}); err != nil {
		t.Fatal(err)
	}

	b := g.waitBuild(g.start(), store.BuildSucceeded)
	log := g.log(b)
	if strings.Contains(log, value) || !strings.Contains(log, build.Masked) || !strings.Contains(log, "Build secrets (values masked): BUILD_TOKEN") {
		t.Errorf("build log: want the secret named and its printed value masked, never shown:\n%s", log)
	}
	hist, err := g.docker.ImageHistory(ctx, b.ImageID)
	if err != nil {
		t.Fatal(err)
	}
	var mounted bool
	for _, h := range hist {
		mounted = mounted || strings.Contains(h.CreatedBy, "/run/secrets/BUILD_TOKEN")
		if strings.Contains(h.CreatedBy, value) || strings.Contains(h.Comment, value) {
			t.Errorf("image history holds the secret: %q", h.CreatedBy)
		}
	}
	if !mounted {
		t.Errorf("the image's history lacks the step that read the secret: %+v", hist)
	}
	img, err := g.docker.ImageInspect(ctx, b.ImageID)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := fmt.Sprint(img.Config.Env, img.Config.Labels); strings.Contains(cfg, value) {
		t.Errorf("image config holds the secret: %s", cfg)
	}
	d, err := g.db.Deployment(ctx, b.OrganizationID, b.DeploymentID)
	if err != nil {
		t.Fatal(err)
	}
	g.wait(d, store.DeployLive)
}
