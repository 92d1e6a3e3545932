package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostileInputsRefusedBeforeTheEngine feeds Build what a user could
// put in an app's settings or a repository; each must be refused with an
// error naming the field, without a call to the engine.
func TestHostileInputsRefusedBeforeTheEngine(t *testing.T) {
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.txt": "outside the checkout"})

	// newCheckout makes a checkout with a Dockerfile and a subdirectory.
	newCheckout := func(t *testing.T) string {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{
			"Dockerfile":     "FROM " + baseImage + "\n",
			"app/Dockerfile": "FROM " + baseImage + "\n",
			"app/main.go":    "package main\n",
		})
		return dir
	}
	symlink := func(t *testing.T, target, link string) {
		t.Helper()
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // changes the checkout
		opts  func(o *Options)
		field string // the InvalidError's field; "" for another sentinel
		want  error
	}{
		{name: "dockerfile ../x", opts: func(o *Options) { o.Dockerfile = "../x" }, field: "dockerfile"},
		{name: "dockerfile escaping through a subdirectory", opts: func(o *Options) { o.Context = "app"; o.Dockerfile = "../Dockerfile" }, field: "dockerfile"},
		{name: "dockerfile not clean", opts: func(o *Options) { o.Dockerfile = "app/../../Dockerfile" }, field: "dockerfile"},
		{name: "dockerfile absolute", opts: func(o *Options) { o.Dockerfile = "/etc/passwd" }, field: "dockerfile"},
		{name: "dockerfile with a backslash", opts: func(o *Options) { o.Dockerfile = `..\Dockerfile` }, field: "dockerfile"},
		{name: "dockerfile with a newline", opts: func(o *Options) { o.Dockerfile = "Dockerfile\n--target=x" }, field: "dockerfile"},
		{name: "dockerfile missing", opts: func(o *Options) { o.Dockerfile = "nope.Dockerfile" }, field: "dockerfile"},
		{name: "dockerfile is a directory", opts: func(o *Options) { o.Dockerfile = "app" }, field: "dockerfile"},
		{name: "dockerfile symlink out of the checkout", setup: func(t *testing.T, dir string) {
			symlink(t, filepath.Join(outside, "secret.txt"), filepath.Join(dir, "Evil.Dockerfile"))
		}, opts: func(o *Options) { o.Dockerfile = "Evil.Dockerfile" }, field: "dockerfile"},
		{name: "context ..", opts: func(o *Options) { o.Context = ".." }, field: "context"},
		{name: "context absolute", opts: func(o *Options) { o.Context = outside }, field: "context"},
		{name: "context symlink out of the checkout", setup: func(t *testing.T, dir string) {
			symlink(t, outside, filepath.Join(dir, "linked"))
		}, opts: func(o *Options) { o.Context = "linked"; o.Dockerfile = "secret.txt" }, field: "context"},
		{name: "dir relative", opts: func(o *Options) { o.Dir = "checkout" }, field: "dir"},
		{name: "symlink in the context pointing outside", setup: func(t *testing.T, dir string) {
			symlink(t, "../../../etc/passwd", filepath.Join(dir, "app", "passwd"))
		}, field: "context"},
		{name: "absolute symlink in the context", setup: func(t *testing.T, dir string) {
			symlink(t, filepath.Join(outside, "secret.txt"), filepath.Join(dir, "secret.txt"))
		}, field: "context"},
		{name: "build arg name with =", opts: func(o *Options) { o.BuildArgs = map[string]string{"A=B": "x"} }, field: "build arg"},
		{name: "build arg name with a newline", opts: func(o *Options) { o.BuildArgs = map[string]string{"A\nRUN rm -rf /": "x"} }, field: "build arg"},
		{name: "build arg name with a space", opts: func(o *Options) { o.BuildArgs = map[string]string{"A B": "x"} }, field: "build arg"},
		{name: "build arg name starting with a digit", opts: func(o *Options) { o.BuildArgs = map[string]string{"1A": "x"} }, field: "build arg"},
		{name: "build arg name empty", opts: func(o *Options) { o.BuildArgs = map[string]string{"": "x"} }, field: "build arg"},
		{name: "build arg value with NUL", opts: func(o *Options) { o.BuildArgs = map[string]string{"A": "x\x00y"} }, field: "build arg"},
		{name: "tag uppercase", opts: func(o *Options) { o.Tags = []string{"Berth/Shop:1"} }, field: "tag"},
		{name: "tag with an uppercase host", opts: func(o *Options) { o.Tags = []string{"Berth/shop:1"} }, field: "tag"},
		{name: "tag with a space", opts: func(o *Options) { o.Tags = []string{"berth/shop:1 2"} }, field: "tag"},
		{name: "tag with a leading space", opts: func(o *Options) { o.Tags = []string{" berth/shop:1"} }, field: "tag"},
		{name: "tag option-like", opts: func(o *Options) { o.Tags = []string{"--rm"} }, field: "tag"},
		{name: "tag with a digest", opts: func(o *Options) {
			o.Tags = []string{"berth/shop@sha256:" + strings.Repeat("a", 64)}
		}, field: "tag"},
		{name: "target with a space", opts: func(o *Options) { o.Target = "build stage" }, field: "target"},
		{name: "target option-like", opts: func(o *Options) { o.Target = "-x" }, field: "target"},
		{name: "app missing", opts: func(o *Options) { o.App = "" }, field: "app"},
		{name: "app with a newline", opts: func(o *Options) { o.App = "shop\napi" }, field: "app"},
		{name: "commit not hex", opts: func(o *Options) { o.Commit = "main; rm -rf /" }, field: "commit"},
		{name: "deployment id with a slash", opts: func(o *Options) { o.DeploymentID = "../x" }, field: "deployment id"},
		{name: "memory below the engine's minimum", opts: func(o *Options) { o.Builder, o.Memory = Classic, 1024 }, field: "memory"},
		{name: "negative cpus", opts: func(o *Options) { o.Builder, o.CPUs = Classic, -1 }, field: "cpus"},
		{name: "secrets on the classic builder", opts: func(o *Options) { o.Builder, o.Secrets = Classic, map[string]string{"npm_token": "t0k3n"} }, want: ErrSecretsNeedBuildKit},
		{name: "unknown builder", opts: func(o *Options) { o.Builder = "kaniko" }, field: "builder"},
		{name: "memory limit on BuildKit", opts: func(o *Options) { o.Memory = 64 << 20 }, field: "builder"},
		{name: "cpu limit on BuildKit", opts: func(o *Options) { o.Builder, o.CPUs = BuildKit, 1 }, field: "builder"},
		{name: "context above the limit", setup: func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"big.bin": strings.Repeat("x", 4096)})
		}, opts: func(o *Options) { o.MaxContextBytes = 1024 }, want: ErrContextTooLarge},
		{name: "bad .dockerignore", setup: func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{".dockerignore": "[unclosed\n"})
		}, field: "dockerignore"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newCheckout(t)
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			opts := Options{Dir: dir, App: "shop/api", Tags: []string{"berth/shop-api:1"}}
			if tt.opts != nil {
				tt.opts(&opts)
			}
			_, err := Build(context.Background(), apiRefused{t}, opts, func(l string) { t.Errorf("output for refused input: %q", l) })
			if err == nil {
				t.Fatal("Build accepted the input")
			}
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("error %q; want %v", err, tt.want)
				}
				return
			}
			var ie *InvalidError
			if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %q (%T); want an *InvalidError", err, err)
			}
			if ie.Field != tt.field {
				t.Errorf("error %q names field %q; want %q", err, ie.Field, tt.field)
			}
			if strings.Contains(err.Error(), "outside the checkout") {
				t.Errorf("error %q shows the content of a file outside the checkout", err)
			}
		})
	}
}

// TestSecretsRefusedWithPlainMessage checks the words a user reads when a
// build on the classic builder declares secrets.
func TestSecretsRefusedWithPlainMessage(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + baseImage + "\n"})
	_, err := Build(context.Background(), apiRefused{t}, Options{Dir: dir, App: "a", Builder: Classic, Secrets: map[string]string{"npm": "hunter2-secret"}}, nil)
	if !errors.Is(err, ErrSecretsNeedBuildKit) {
		t.Fatalf("error %v; want ErrSecretsNeedBuildKit", err)
	}
	for _, want := range []string{"build secrets need BuildKit", "build args", "image history"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "hunter2-secret") {
		t.Errorf("message %q shows the secret", err)
	}
}

func TestTags(t *testing.T) {
	got := Tags("berth/shop-api", "3f2a1c0", "d-42")
	want := []string{"berth/shop-api:3f2a1c0", "berth/shop-api:d-42"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Tags = %q; want %q", got, want)
	}
	for _, tag := range got {
		if err := validTag(tag); err != nil {
			t.Errorf("Tags made %q, which Build refuses: %v", tag, err)
		}
	}
}
