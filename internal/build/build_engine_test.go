package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/berthpaas/berth/internal/testenv"
)

// The tests in this file run real builds on the test engine (see
// testenv.Docker). Every Dockerfile sets LABEL berth.test=<unique> right
// after FROM so that cleanupLabelled finds the intermediate images too.
// Most run on both builders.

// builders runs f once per builder of the engine, in parallel.
func builders(t *testing.T, f func(t *testing.T, builder string)) {
	for _, b := range []string{BuildKit, Classic} {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			f(t, b)
		})
	}
}

// stepPrefix is the "#3 " BuildKit puts before what a step prints.
var stepPrefix = regexp.MustCompile(`^#\d+ `)

// printed reports whether a step printed the line want.
func printed(lines []string, want string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return stepPrefix.ReplaceAllString(l, "") == want })
}

// cachedSteps lists the steps after FROM a build took from the cache.
func cachedSteps(lines []string) []string {
	var cached []string
	names := map[string]string{} // BuildKit: "#3" → the step
	for i, l := range lines {
		n, rest, _ := strings.Cut(l, " ")
		switch {
		case l == " ---> Using cache" && i > 0: // classic: after its step's line
			cached = append(cached, lines[i-1])
		case stepPrefix.MatchString(l) && rest == "CACHED" && names[n] != "" && !strings.HasPrefix(names[n], "[internal]") && !strings.Contains(names[n], "] FROM "):
			cached = append(cached, names[n])
		case stepPrefix.MatchString(l) && strings.HasPrefix(rest, "["):
			names[n] = rest
		}
	}
	return cached
}

func TestBuildMultiStageTargetAndBuildArgs(t *testing.T) {
	t.Parallel()
	builders(t, testMultiStageTargetAndBuildArgs)
}

func testMultiStageTargetAndBuildArgs(t *testing.T, builder string) {
	cli := dockerClient(t)
	id := uniqueName(t, "stages")
	cleanupLabelled(t, cli, id)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM ` + baseImage + ` AS base
LABEL berth.test=` + id + `
RUN echo base > /base.txt

FROM base AS builder
ARG GREETING
RUN test "$GREETING" = "hello world" && echo "greeting is $GREETING" && echo built > /built.txt
RUN test -f /base.txt && test -f /built.txt
LABEL stage=builder

FROM base AS final
RUN echo "the final stage ran although the target is builder" && exit 1
`})
	var log logRecorder
	repo := "berth-test/" + id
	res, err := Build(context.Background(), cli, Options{
		Dir: dir, Target: "builder", BuildArgs: map[string]string{"GREETING": "hello world"}, Builder: builder,
		App: id, Commit: "3f2a1c0", DeploymentID: "d-1", Tags: Tags(repo, "3f2a1c0", "d-1"),
	}, log.logf)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.text())
	}
	out := log.text()
	if !strings.Contains(out, "greeting is hello world") {
		t.Errorf("the build arg did not reach RUN; output:\n%s", out)
	}
	if strings.Contains(out, "final stage ran") {
		t.Errorf("the stage after the target ran; output:\n%s", out)
	}
	if !strings.HasPrefix(res.ImageID, "sha256:") {
		t.Errorf("image id %q", res.ImageID)
	}
	if res.Duration <= 0 || len(res.Tail) == 0 || res.Tail[len(res.Tail)-1] != log.lines[len(log.lines)-1] {
		t.Errorf("result duration %v, tail %q; want the last lines logged", res.Duration, res.Tail)
	}
	in, err := cli.ImageInspect(context.Background(), repo+":d-1")
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != res.ImageID {
		t.Errorf("tag d-1 is %s; want the built image %s", in.ID, res.ImageID)
	}
	if in2, err := cli.ImageInspect(context.Background(), repo+":3f2a1c0"); err != nil || in2.ID != res.ImageID {
		t.Errorf("tag 3f2a1c0: %v, %v; want the built image", in2.ID, err)
	}
	want := map[string]string{LabelApp: id, LabelCommit: "3f2a1c0", LabelDeployment: "d-1", "stage": "builder"}
	for k, v := range want {
		if in.Config.Labels[k] != v {
			t.Errorf("label %s = %q; want %q", k, in.Config.Labels[k], v)
		}
	}
}

func TestBuildDockerignoreAndDockerfilePath(t *testing.T) {
	t.Parallel()
	builders(t, testDockerignoreAndDockerfilePath)
}

func testDockerignoreAndDockerfilePath(t *testing.T, builder string) {
	cli := dockerClient(t)
	id := uniqueName(t, "ignore")
	cleanupLabelled(t, cli, id)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"docker/app.Dockerfile": `FROM ` + baseImage + `
LABEL berth.test=` + id + `
COPY . /ctx
RUN test ! -e /ctx/secret.env || (echo "secret.env reached the image" && exit 1)
RUN echo "listing:" $(cd /ctx && find . -mindepth 1 | sort)
`,
		".dockerignore": "secret.env\nlogs\n!logs/keep.log\n**/*.tmp\n",
		"secret.env":    "TOKEN=should-not-be-sent",
		"main.go":       "package main\n",
		"logs/keep.log": "keep",
		"logs/drop.log": "drop",
		"deep/x/y.tmp":  "tmp",
	})
	if err := os.Symlink("main.go", filepath.Join(dir, "link.go")); err != nil {
		t.Fatal(err)
	}
	var log logRecorder
	_, err := Build(context.Background(), cli, Options{Dir: dir, Dockerfile: "docker/app.Dockerfile", App: id, Builder: builder}, log.logf)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.text())
	}
	want := "listing: ./.dockerignore ./deep ./deep/x ./docker ./docker/app.Dockerfile ./link.go ./logs ./logs/keep.log ./main.go"
	if !printed(log.lines, want) {
		t.Errorf("the image's /ctx does not hold what .dockerignore leaves; want the line %q in:\n%s", want, log.text())
	}
}

func TestBuildFailingStepSaysWhich(t *testing.T) {
	t.Parallel()
	builders(t, testFailingStepSaysWhich)
}

func testFailingStepSaysWhich(t *testing.T, builder string) {
	cli := dockerClient(t)
	id := uniqueName(t, "fail")
	cleanupLabelled(t, cli, id)
	dir := t.TempDir()
	const failing = `RUN echo "compiling with $TOKEN" && echo "main.go:3: undefined: foo" >&2 && exit 2`
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM ` + baseImage + `
LABEL berth.test=` + id + `
RUN echo preparing
ARG TOKEN
` + failing + `
RUN echo "never reached"
`})
	const token = "tok-4f9b2c7e1d"
	var log logRecorder
	_, err := Build(context.Background(), cli, Options{Dir: dir, App: id, BuildArgs: map[string]string{"TOKEN": token}, Mask: []string{token}, Builder: builder}, log.logf)
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T); want *Error\n%s", err, err, log.text())
	}
	// Classic: six steps, and two it appends for the labels that change.
	// BuildKit counts FROM and RUN only, and names a step with its args
	// expanded.
	step, exit := "Step 5/8 : "+failing, "returned a non-zero code: 2"
	if builder == BuildKit {
		step, exit = "[3/4] "+strings.ReplaceAll(failing, "$TOKEN", Masked), "exit code: 2"
	}
	if be.Step != step {
		t.Errorf("step %q; want %q", be.Step, step)
	}
	if !strings.Contains(be.Reason, exit) {
		t.Errorf("reason %q; want the exit code", be.Reason)
	}
	if !slices.Contains(be.Output, "main.go:3: undefined: foo") || !slices.Contains(be.Output, "compiling with ****") {
		t.Errorf("step output %q; want the step's stdout and stderr, token masked", be.Output)
	}
	if slices.Contains(be.Output, "preparing") {
		t.Errorf("step output %q holds the previous step's output", be.Output)
	}
	msg := err.Error()
	if !strings.Contains(msg, step) || !strings.Contains(msg, "main.go:3: undefined: foo") {
		t.Errorf("message %q does not name the step and its output", msg)
	}
	if strings.Contains(msg, token) || strings.Contains(log.text(), token) {
		t.Errorf("the masked value shows in the message or the log:\n%s\n%s", msg, log.text())
	}
	if strings.Contains(log.text(), "never reached") {
		t.Errorf("the build went on after the failing step:\n%s", log.text())
	}
}

func TestBuildMissingBaseImage(t *testing.T) {
	t.Parallel()
	builders(t, testMissingBaseImage)
}

func testMissingBaseImage(t *testing.T, builder string) {
	cli := dockerClient(t)
	id := uniqueName(t, "nobase")
	dir := t.TempDir()
	base := "berth-fixture/does-not-exist:" + id[len(id)-10:]
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + base + "\nRUN true\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := Build(ctx, cli, Options{Dir: dir, App: id, Builder: builder}, nil)
	var be *Error
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T); want *Error", err, err)
	}
	if be.MissingBase != base {
		t.Errorf("missing base %q; want %q", be.MissingBase, base)
	}
	if !strings.Contains(err.Error(), `base image "`+base+`" is not on this Docker Engine and could not be pulled`) {
		t.Errorf("message %q does not say the base image is missing", err)
	}
}

// TestBuildCancel cancels a build whose step sleeps for five minutes: Build
// must return within seconds and the step's process must be gone.
func TestBuildCancel(t *testing.T) {
	t.Parallel()
	builders(t, testCancel)
}

func testCancel(t *testing.T, builder string) {
	cli := dockerClient(t)
	id := uniqueName(t, "cancel")
	cleanupLabelled(t, cli, id)
	dir := t.TempDir()
	// A duration no other process has, to find the step's sleep by.
	sleep := fmt.Sprintf("300.%d", time.Now().UnixNano()%1e9)
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM ` + baseImage + `
LABEL berth.test=` + id + `
RUN echo "sleeping now" && sleep ` + sleep + `
`})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelledAt time.Time
	var mu sync.Mutex
	logf := func(l string) {
		mu.Lock()
		defer mu.Unlock()
		if printed([]string{l}, "sleeping now") && cancelledAt.IsZero() {
			for i := 0; !sleeping(sleep); i++ {
				if i == 100 {
					t.Errorf("no process sleep %s while the step runs: the check below cannot see it", sleep)
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			cancelledAt = time.Now()
			cancel()
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := Build(ctx, cli, Options{Dir: dir, App: id, Builder: builder}, logf)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("Build did not return within 2 minutes")
	}
	mu.Lock()
	defer mu.Unlock()
	if cancelledAt.IsZero() {
		t.Fatalf("the step never started: %v", err)
	}
	returned := time.Since(cancelledAt)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v; want context.Canceled", err)
	}
	if returned > 10*time.Second {
		t.Errorf("Build returned %v after the cancel; want seconds", returned)
	}
	// The engine kills the step when the request closes; the classic
	// builder's step container, which inherits the Dockerfile's berth.test
	// label, is removed too.
	f := filters.NewArgs(filters.Arg("label", labelTest+"="+id))
	deadline := time.Now().Add(20 * time.Second)
	for {
		cs, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 && !sleeping(sleep) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled step lives on: %d containers, sleep %s running: %v", len(cs), sleep, sleeping(sleep))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("Build returned %v after the cancel; the step was gone %v after it", returned, time.Since(cancelledAt).Round(time.Millisecond))
}

// sleeping reports whether the step's sleep runs (on this machine, the
// test engine's: see testenv.Docker).
func sleeping(d string) bool { return len(testenv.Processes("sleep "+d)) > 0 }

// TestBuildCacheReuse builds one app twice: the second build reuses the
// layers; with NoCache it does not.
func TestBuildCacheReuse(t *testing.T) {
	t.Parallel()
	builders(t, testCacheReuse)
}

func testCacheReuse(t *testing.T, builder string) {
	cli := dockerClient(t)
	id := uniqueName(t, "cache")
	cleanupLabelled(t, cli, id)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": `FROM ` + baseImage + `
LABEL berth.test=` + id + `
COPY main.go /src/
RUN echo compiled > /app
`,
		// Unique, so that BuildKit, whose cache LABEL does not key, has
		// nothing of an earlier run to reuse.
		"main.go": "package main // " + id + "\n",
	})
	build := func(deployment string, noCache bool) (Result, []string) {
		t.Helper()
		var log logRecorder
		res, err := Build(context.Background(), cli, Options{Dir: dir, App: id, DeploymentID: deployment, NoCache: noCache, Builder: builder}, log.logf)
		if err != nil {
			t.Fatalf("build %s: %v\n%s", deployment, err, log.text())
		}
		return res, log.lines
	}
	r1, out1 := build("d-1", false)
	if c := cachedSteps(out1); len(c) > 0 {
		t.Fatalf("the first build of a new app took %q from the cache:\n%s", c, strings.Join(out1, "\n"))
	}
	// A new checkout of the same commit: same files, new modification times.
	later := time.Now().Add(time.Hour)
	for _, f := range []string{"Dockerfile", "main.go"} {
		if err := os.Chtimes(filepath.Join(dir, f), later, later); err != nil {
			t.Fatal(err)
		}
	}
	r2, out2 := build("d-2", false)
	want := 2 // COPY and RUN, and on the classic builder both LABELs
	if builder == Classic {
		want = 4
	}
	if c := cachedSteps(out2); len(c) != want {
		t.Errorf("the rebuild took %q from the cache; want %d steps:\n%s", c, want, strings.Join(out2, "\n"))
	}
	if r1.ImageID == r2.ImageID {
		t.Errorf("both deployments have image %s; want one image each (their labels differ)", r1.ImageID)
	}
	_, out3 := build("d-3", true)
	if c := cachedSteps(out3); len(c) > 0 {
		t.Errorf("NoCache build took %q from the cache:\n%s", c, strings.Join(out3, "\n"))
	}
}

// TestBuildResourceLimits checks the memory and CPU limits reach the
// containers of RUN steps on the classic builder (BuildKit refuses them).
func TestBuildResourceLimits(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	id := uniqueName(t, "limits")
	cleanupLabelled(t, cli, id)
	dir := t.TempDir()
	// cgroup v1 and v2 name the files differently.
	writeFiles(t, dir, map[string]string{"Dockerfile": `FROM ` + baseImage + `
LABEL berth.test=` + id + `
RUN echo "memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"; echo "cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max)"
`})
	var log logRecorder
	if _, err := Build(context.Background(), cli, Options{Dir: dir, App: id, Memory: 64 << 20, CPUs: 0.5, Builder: Classic}, log.logf); err != nil {
		t.Fatalf("build: %v\n%s", err, log.text())
	}
	for _, want := range []string{"memory=67108864", "cpu=50000"} {
		if !slices.Contains(log.lines, want) {
			t.Errorf("no line %q in:\n%s", want, log.text())
		}
	}
}
