package proxy_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
)

// BenchmarkContainerLogLine measures what each access log line costs once
// the proxy runs in a container, which the throughput bench (a proxy writing
// to a file) does not see: the CPU time dockerd, containerd and the
// container's shim spend on the lines a container writes, with the json-file
// driver Berth gives its services (max-size 20m, max-file 5), less what the
// same container costs with the none driver (creating, starting, removing).
func BenchmarkContainerLogLine(b *testing.B) {
	testenv.Docker(b)
	need(b, "docker", "docker.io")
	image := logWriterImage(b)
	const lines = 300_000
	var withLog, without time.Duration
	for b.Loop() {
		withLog += containerLogCPU(b, image, lines, "--log-driver", "json-file", "--log-opt", "max-size=20m", "--log-opt", "max-file=5")
		without += containerLogCPU(b, image, lines, "--log-driver", "none")
	}
	perLine := float64(withLog-without) / float64(b.N*lines) / float64(time.Microsecond)
	b.ReportMetric(perLine, "µs/line")
	printf("### Container output: dockerd + containerd + shim CPU per access log line\n\n")
	printf("%d access log lines per container, %d pair(s) of runs: json-file %v, none %v in all: **%.2f µs per line** (the none run's start and stop taken off).\n\n",
		lines, b.N, withLog, without, perLine)
}

// logWriterImage builds testdata/logwriter without cgo and imports it as
// the only file of an image.
func logWriterImage(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "logwriter")
	build := exec.Command("go", "build", "-o", bin, "./testdata/logwriter")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build logwriter: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "logwriter", Mode: 0o755, Size: int64(len(data))}); err != nil {
		b.Fatal(err)
	}
	tw.Write(data)
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	const image = "berth-bench/logwriter:1"
	imp := exec.Command("docker", "import", "--change", `ENTRYPOINT ["/logwriter"]`, "-", image)
	imp.Stdin = &layer
	if out, err := imp.CombinedOutput(); err != nil {
		b.Fatalf("docker import: %v\n%s", err, out)
	}
	return image
}

// containerLogCPU runs image writing lines with the given docker run
// options and returns the CPU time the engine's processes spent from before
// the start until the lines were written.
func containerLogCPU(b *testing.B, image string, lines int, opts ...string) time.Duration {
	b.Helper()
	dir := b.TempDir()
	done := filepath.Join(dir, "done")
	before := cpuTime(engineProcesses())
	args := append([]string{"run", "-d", "-v", dir + ":/out"}, opts...)
	out, err := exec.Command("docker", append(args, image, strconv.Itoa(lines), "/out/done")...).CombinedOutput()
	if err != nil {
		b.Fatalf("docker run: %v\n%s", err, out)
	}
	id := strings.TrimSpace(string(out))
	defer exec.Command("docker", "rm", "-f", id).Run()
	testenv.Eventually(b, 2*time.Minute, "the container wrote its lines", func() error {
		if _, err := os.Stat(done); err != nil {
			return fmt.Errorf("%d lines not written yet", lines)
		}
		return nil
	})
	// The engine may still be copying the last lines: wait until its
	// processes have been idle for 300 ms.
	spent := cpuTime(engineProcesses())
	for range 50 {
		time.Sleep(300 * time.Millisecond)
		now := cpuTime(engineProcesses())
		if now == spent {
			break
		}
		spent = now
	}
	return spent - before
}

// engineProcesses are the pids of dockerd, containerd and the containers'
// shims.
func engineProcesses() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		switch name := strings.TrimSpace(string(comm)); {
		case err != nil:
		case name == "dockerd", name == "containerd", strings.HasPrefix(name, "containerd-shim"):
			pids = append(pids, pid)
		}
	}
	return pids
}
