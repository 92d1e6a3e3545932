package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dockerbuild "github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/berthpaas/berth/internal/testenv"
)

// baseImage is built by test/fixtures/build.sh: Debian minbase with a shell.
const baseImage = "berth-fixture/debian:bookworm"

// labelTest marks everything a test builds, intermediate images included
// (each test Dockerfile sets it right after FROM), so cleanup finds it all.
const labelTest = "berth.test"

// dockerClient returns a client of the test engine (skipping, or failing
// under CI=true, when there is none) and checks the base image is there.
func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("builds on the Docker Engine: skipped with -short")
	}
	host := testenv.Docker(t)
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.ImageInspect(context.Background(), baseImage); err != nil {
		t.Fatalf("base image %s: %v (run test/fixtures/build.sh)", baseImage, err)
	}
	return c
}

// uniqueName returns a name no other test run uses, valid as an app name,
// a label value and an image repository.
func uniqueName(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "berth-test-" + prefix + "-" + hex.EncodeToString(b)
}

// cleanupLabelled removes, when the test ends, every container and image
// labelled berth.test=id.
func cleanupLabelled(t *testing.T, cli *client.Client, id string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		f := filters.NewArgs(filters.Arg("label", labelTest+"="+id))
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			t.Errorf("cleanup: listing containers: %v", err)
		}
		for _, c := range cs {
			if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				t.Errorf("cleanup: removing container %s: %v", c.ID, err)
			}
		}
		// Children before parents: a parent with a child cannot go.
		for range 3 {
			imgs, err := cli.ImageList(ctx, image.ListOptions{All: true, Filters: f})
			if err != nil {
				t.Errorf("cleanup: listing images: %v", err)
				return
			}
			if len(imgs) == 0 {
				return
			}
			slices.SortFunc(imgs, func(a, b image.Summary) int { return int(b.Created - a.Created) })
			for _, img := range imgs {
				_, err := cli.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
				if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
					t.Errorf("cleanup: removing image %s: %v", img.ID, err)
				}
			}
		}
		if imgs, _ := cli.ImageList(ctx, image.ListOptions{All: true, Filters: f}); len(imgs) > 0 {
			t.Errorf("cleanup: %d images labelled %s=%s remain", len(imgs), labelTest, id)
		}
	})
}

// writeFiles creates files (slash paths → content) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// logRecorder collects the lines Build delivers.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) logf(l string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
}

func (r *logRecorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// apiRefused is a Builder that fails the test when called: inputs that
// must be refused before any call to the engine get one.
type apiRefused struct{ t *testing.T }

var _ Builder = apiRefused{}

func (a apiRefused) ImageBuild(context.Context, io.Reader, dockerbuild.ImageBuildOptions) (dockerbuild.ImageBuildResponse, error) {
	a.t.Errorf("the Docker Engine was called; the input should have been refused before")
	return dockerbuild.ImageBuildResponse{}, errors.New("apiRefused: no engine here")
}

func (a apiRefused) DialHijack(context.Context, string, string, map[string][]string) (net.Conn, error) {
	a.t.Errorf("the Docker Engine was called; the input should have been refused before")
	return nil, errors.New("apiRefused: no engine here")
}
