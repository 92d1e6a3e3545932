package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/berthpaas/berth/internal/testenv"
)

type appStatus struct {
	App struct {
		ID string `json:"id"`
	} `json:"app"`
	Current *struct {
		ID     string `json:"id"`
		Seq    int    `json:"seq"`
		Status string `json:"status"`
	} `json:"current"`
	InFlight *struct {
		ID     string `json:"id"`
		Seq    int    `json:"seq"`
		Status string `json:"status"`
	} `json:"in_flight"`
	Release struct {
		Desired int `json:"desired"`
		Running int `json:"running"`
		Tasks   []struct {
			State string `json:"state"`
		} `json:"tasks"`
	} `json:"release"`
}

// The applications issue's "done when", as written, against the real binary,
// plus a kill -9 of the server in the middle of a deployment.
func TestAppsDoneWhen(t *testing.T) {
	docker := testenv.Docker(t)
	port := testenv.FreePort(t)
	data := filepath.Join(t.TempDir(), "data")
	s := startServerAt(t, "127.0.0.1", port, "BERTH_DATA_DIR="+data)
	cfg := filepath.Join(t.TempDir(), "cli.json")
	pass := "apps-Passphrase-1"
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, errOut, err := cli(t, cfg, stdin, args...)
		if err != nil {
			t.Fatalf("berth %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	run(pass, "setup", "--server", s.URL, "--email", "admin@example.com", "--password-stdin")
	run(pass, "login", "--server", s.URL, "--email", "admin@example.com", "--password-stdin")

	project := fmt.Sprintf("shop%d", time.Now().UnixNano()%1e5)
	ref := project + "/web"
	run("", "project", "create", project)
	run("", "app", "create", ref, "--image", "berth-fixture/hello:v1", "--port", "8080", "--replicas", "2", "--env", "GREETING=hi")
	t.Cleanup(func() { cli(t, cfg, "", "app", "delete", ref, "--yes") })

	out := run("", "app", "deploy", ref, "--wait")
	if !strings.Contains(out, "live") {
		t.Errorf("deploy --wait output lacks the live step:\n%s", out)
	}
	var st appStatus
	if err := json.Unmarshal([]byte(run("", "app", "status", ref, "--output", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Current == nil || st.Current.Seq != 1 || st.Release.Running != 2 || st.Release.Desired != 2 || len(st.Release.Tasks) < 2 {
		t.Fatalf("status after the first deploy: %+v", st)
	}

	run("", "app", "deploy", ref, "--image", "berth-fixture/hello:v2", "--wait")
	history := run("", "app", "deployments", ref)
	for _, want := range []string{"live", "retired", "hello:v2", "hello:v1"} {
		if !strings.Contains(history, want) {
			t.Errorf("deployments lack %q:\n%s", want, history)
		}
	}
	run("", "app", "rollback", ref, "--to", "1", "--wait")
	if logs := run("", "logs", ref, "--tail", "20"); !strings.Contains(logs, "listening on :8080 version v1") {
		t.Errorf("logs after the rollback to v1:\n%s", logs)
	}

	// kill -9 while the next deployment is starting; the restarted server finishes it.
	run("", "app", "deploy", ref, "--image", "berth-fixture/hello:v2")
	deadline := time.Now().Add(30 * time.Second)
	for {
		st = appStatus{}
		json.Unmarshal([]byte(run("", "app", "status", ref, "--output", "json")), &st)
		if st.InFlight != nil && st.InFlight.Status == "starting" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment never reached starting: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	killed := st.InFlight.Seq
	s.cmd.Process.Kill()
	<-s.done
	startServerAt(t, "127.0.0.1", port, "BERTH_DATA_DIR="+data)
	deadline = time.Now().Add(90 * time.Second)
	for {
		st = appStatus{}
		json.Unmarshal([]byte(run("", "app", "status", ref, "--output", "json")), &st)
		if st.Current != nil && st.Current.Seq == killed && st.InFlight == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deployment #%d did not finish after the restart: %+v", killed, st)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := services(t, docker, st.App.ID); n != 1 {
		t.Errorf("%d services for the app after the restart, want exactly 1", n)
	}

	run("", "app", "delete", ref, "--yes")
	if n := services(t, docker, st.App.ID); n != 0 {
		t.Errorf("%d services left after delete", n)
	}
	run("", "project", "delete", project)
}

func services(t *testing.T, host, appID string) int {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list, err := c.ServiceList(context.Background(), swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", "berth.app="+appID))})
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}
