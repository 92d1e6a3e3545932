package e2e

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/testenv"
)

// TestContainerImage builds Berth's own image (the repository's Dockerfile,
// on the fixture Debian base since no registry is reachable) and runs the
// server in it the documented way: the Docker socket and the data directory
// mounted at the same path as on the host, where the server puts its health
// probe for release containers.
func TestContainerImage(t *testing.T) {
	testenv.Docker(t)
	bin := binary(t)
	ctxDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(ctxDir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "bin", "berth"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	image := "berth-test/berth:e2e"
	docker := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	docker("build", "-q", "--build-arg", "BASE=berth-fixture/debian:bookworm", "-t", image, "-f", "../../Dockerfile", ctxDir)
	t.Cleanup(func() { exec.Command("docker", "image", "rm", "-f", image).Run() })
	if v := docker("run", "--rm", image, "version"); !strings.HasPrefix(v, "berth ") {
		t.Errorf("berth version in the image: %q", v)
	}
	if v := docker("run", "--rm", "--entrypoint", "git", image, "--version"); !strings.HasPrefix(v, "git version") {
		t.Errorf("git in the image: %q", v)
	}

	dataDir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	id := docker("run", "-d", "--network", "host", "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", dataDir+":"+dataDir,
		"-e", "BERTH_DATA_DIR="+dataDir, "-e", "BERTH_PROBE_PATH="+dataDir+"/probe/berth", "-e", "BERTH_LISTEN="+addr, "-e", "BERTH_PROXY=false", image)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			logs, _ := exec.Command("docker", "logs", id).CombinedOutput()
			t.Fatalf("the server in the container is not ready on %s (database and engine): %v\n%s", addr, err, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	probe, err := os.ReadFile(filepath.Join(dataDir, "probe", "berth"))
	if err != nil || !bytes.Equal(probe, b) {
		t.Errorf("the health probe on the host path: %v (same as the binary: %v)", err, bytes.Equal(probe, b))
	}
	if _, err := os.Stat(filepath.Join(dataDir, "berth.db")); err != nil {
		t.Errorf("the database is not in the mounted data directory: %v", err)
	}
}
