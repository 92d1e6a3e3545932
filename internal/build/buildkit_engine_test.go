package build

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	dockerbuild "github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// TestBuildSecrets gives a build a secret: the step that mounts it reads
// it, the log shows it masked, and neither the next step, the image's
// history nor its files hold it.
func TestBuildSecrets(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	id := uniqueName(t, "secrets")
	cleanupLabelled(t, cli, id)
	value := "npm-" + id
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM ` + baseImage + `
LABEL berth.test=` + id + `
RUN --mount=type=secret,id=NPM_TOKEN echo "token is $(cat /run/secrets/NPM_TOKEN)" && cp /run/secrets/NPM_TOKEN /copied
RUN test ! -e /run/secrets/NPM_TOKEN && echo "not mounted here"
`})
	var log logRecorder
	res, err := Build(context.Background(), cli, Options{Dir: dir, App: id, Secrets: map[string]string{"NPM_TOKEN": value}}, log.logf)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.text())
	}
	if !printed(log.lines, "token is "+Masked) || !printed(log.lines, "not mounted here") {
		t.Errorf("the steps did not print what they should:\n%s", log.text())
	}
	if strings.Contains(log.text(), value) {
		t.Errorf("the log shows the secret:\n%s", log.text())
	}
	hist, err := cli.ImageHistory(context.Background(), res.ImageID)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hist {
		if strings.Contains(h.CreatedBy, value) || strings.Contains(h.Comment, value) {
			t.Errorf("the image history holds the secret: %q", h.CreatedBy)
		}
	}
	// What a step copies on purpose stays, and shows the value was real;
	// the mount itself left nothing.
	out := runInImage(t, cli, res.ImageID, "cat /copied; test ! -s /run/secrets/NPM_TOKEN && echo clean")
	if out != value+"clean\n" {
		t.Errorf("the image's files: %q; want the copy and no mounted secret", out)
	}
}

// TestBuildWithoutBuildKit runs builds on an engine that refuses BuildKit
// (the real engine, with that refusal injected): a build falls back to the
// classic builder and says so; a build with secrets is refused instead of
// leaking them into build args.
func TestBuildWithoutBuildKit(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	id := uniqueName(t, "nobk")
	cleanupLabelled(t, cli, id)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + baseImage + "\nLABEL berth.test=" + id + "\nRUN echo built\n"})
	engine := withoutBuildKit{cli}
	var log logRecorder
	res, err := Build(context.Background(), engine, Options{Dir: dir, App: id}, log.logf)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.text())
	}
	if !strings.HasPrefix(log.text(), "This Docker Engine has no BuildKit: building with the classic builder") || !strings.Contains(log.text(), "Step 3/5 : RUN echo built") {
		t.Errorf("the build did not say it fell back, or did not run on the classic builder:\n%s", log.text())
	}
	if !strings.HasPrefix(res.ImageID, "sha256:") {
		t.Errorf("image id %q", res.ImageID)
	}
	_, err = Build(context.Background(), engine, Options{Dir: dir, App: id, Secrets: map[string]string{"NPM_TOKEN": "s3cret-value"}}, nil)
	if !errors.Is(err, ErrSecretsNeedBuildKit) || strings.Contains(err.Error(), "s3cret-value") {
		t.Errorf("error %v; want ErrSecretsNeedBuildKit, without the value", err)
	}
	// Asked for BuildKit by name, a build does not fall back.
	if _, err := Build(context.Background(), engine, Options{Dir: dir, App: id, Builder: BuildKit}, nil); err == nil || !noBuildKit(err) {
		t.Errorf("error %v; want the engine's refusal", err)
	}
}

// TestBuildResendsALostContext builds on an engine that loses the context
// of the first build it is sent, as Engine 20.10 does when a build cache
// prune overlaps the build: Build sends it again, once.
func TestBuildResendsALostContext(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	id := uniqueName(t, "lost")
	cleanupLabelled(t, cli, id)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + baseImage + "\nLABEL berth.test=" + id + "\nRUN echo built " + id + "\n"})
	engine := &losingContext{Client: cli, losses: 1}
	var log logRecorder
	if _, err := Build(context.Background(), engine, Options{Dir: dir, App: id}, log.logf); err != nil {
		t.Fatalf("build: %v\n%s", err, log.text())
	}
	if engine.calls != 2 || !strings.HasPrefix(log.text(), "The engine lost the build context") || !printed(log.lines, "built "+id) {
		t.Errorf("%d builds sent; want 2, the second one built:\n%s", engine.calls, log.text())
	}
	engine = &losingContext{Client: cli, losses: 2}
	_, err := Build(context.Background(), engine, Options{Dir: dir, App: id}, nil)
	if engine.calls != 2 || !contextLost(err) {
		t.Errorf("%d builds sent, error %v; want 2 and the engine's error", engine.calls, err)
	}
}

// losingContext is the engine with a fault: the first losses builds fail as
// when the engine loses their context.
type losingContext struct {
	*client.Client
	losses, calls int
}

func (e *losingContext) ImageBuild(ctx context.Context, r io.Reader, o dockerbuild.ImageBuildOptions) (dockerbuild.ImageBuildResponse, error) {
	e.calls++
	if e.calls > e.losses {
		return e.Client.ImageBuild(ctx, r, o)
	}
	_, _ = io.Copy(io.Discard, r)
	const msg = `failed to solve with frontend dockerfile.v0: failed to read downloaded context: Get \"http://build-context-x1\": context not found`
	body := `{"errorDetail":{"message":"` + msg + `"},"error":"` + msg + `"}` + "\n"
	return dockerbuild.ImageBuildResponse{Body: io.NopCloser(strings.NewReader(body))}, nil
}

// withoutBuildKit is the engine with a fault: it refuses BuildKit builds the
// way an engine without BuildKit does.
type withoutBuildKit struct{ *client.Client }

func (e withoutBuildKit) ImageBuild(ctx context.Context, r io.Reader, o dockerbuild.ImageBuildOptions) (dockerbuild.ImageBuildResponse, error) {
	if o.Version == dockerbuild.BuilderBuildKit {
		_, _ = io.Copy(io.Discard, r)
		return dockerbuild.ImageBuildResponse{}, errors.New("Error response from daemon: buildkit not supported by this daemon")
	}
	return e.Client.ImageBuild(ctx, r, o)
}

// runInImage runs script in a container of img and returns its output.
func runInImage(t *testing.T, cli *client.Client, img, script string) string {
	t.Helper()
	ctx := context.Background()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Cmd: []string{"sh", "-c", script}, Labels: map[string]string{labelTest: "run"}}, nil, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitC, errC := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-errC:
		t.Fatal(err)
	}
	logs, err := cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var out strings.Builder
	if _, err := stdcopy.StdCopy(&out, &out, logs); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
