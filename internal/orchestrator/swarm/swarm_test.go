package swarm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/testenv"
)

// newEngine connects to the test engine (skipping without one, see testenv).
func newEngine(t *testing.T) (e *Engine, host string) {
	t.Helper()
	host = testenv.Docker(t)
	e, err := New(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, host
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// testNetwork returns a network name unique to this test, removed when the
// test ends, so tests never touch a running install's berth-edge.
func testNetwork(t *testing.T, host string) (name string, docker *client.Client) {
	t.Helper()
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		t.Fatal(err)
	}
	name = "berth-test-edge-" + randomSuffix(t)
	t.Cleanup(func() {
		defer c.Close()
		c2, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.NetworkRemove(c2, name); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove test network %s: %v", name, err)
		}
	})
	return name, c
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func TestStatusReportsActiveSwarm(t *testing.T) {
	e, host := newEngine(t)
	// The engine is bootstrapped by scripts/deps.sh; Bootstrap only makes the
	// test independent of that (it is idempotent).
	name, _ := testNetwork(t, host)
	if _, err := e.Bootstrap(ctx(t), orchestrator.BootstrapOptions{InitSwarm: true, AdvertiseAddr: "127.0.0.1", EdgeNetwork: name, EdgeSubnet: "10.241.0.0/16"}); err != nil {
		t.Fatal(err)
	}

	st := e.Status(ctx(t))
	t.Logf("status: %+v", st)
	if !st.Reachable {
		t.Fatalf("engine unreachable: %s", st.Error)
	}
	if st.Error != "" {
		t.Errorf("reachable engine reports error %q", st.Error)
	}
	if st.ServerVersion == "" || st.APIVersion == "" {
		t.Errorf("missing versions: server %q, API %q", st.ServerVersion, st.APIVersion)
	}
	if st.OS == "" || st.Arch == "" || st.KernelVersion == "" || st.NCPU < 1 || st.MemoryBytes <= 0 {
		t.Errorf("incomplete engine description: %+v", st)
	}
	if st.Swarm.State != orchestrator.SwarmActive || !st.Swarm.IsManager || st.Swarm.NodeID == "" {
		t.Fatalf("swarm = %+v, want an active manager", st.Swarm)
	}
	if len(st.Swarm.Nodes) < 1 {
		t.Fatalf("active swarm lists no nodes")
	}
	var self *orchestrator.Node
	for i, n := range st.Swarm.Nodes {
		if n.ID == st.Swarm.NodeID {
			self = &st.Swarm.Nodes[i]
		}
	}
	if self == nil {
		t.Fatalf("node list %+v lacks this node %s", st.Swarm.Nodes, st.Swarm.NodeID)
	}
	if self.Role != "manager" || self.State != "ready" || self.Hostname == "" || self.EngineVersion == "" || self.NCPU < 1 || self.MemoryBytes <= 0 {
		t.Errorf("this node = %+v, want a ready manager with its resources", *self)
	}
	if len(st.Swarm.Nodes) == 1 && !self.Leader {
		t.Errorf("the only manager is not the leader: %+v", *self)
	}
}

func TestBootstrapCreatesEdgeNetworkIdempotently(t *testing.T) {
	e, host := newEngine(t)
	name, docker := testNetwork(t, host)
	const subnet = "10.241.0.0/16"
	opts := orchestrator.BootstrapOptions{InitSwarm: true, AdvertiseAddr: "127.0.0.1", EdgeNetwork: name, EdgeSubnet: subnet}

	first, err := e.Bootstrap(ctx(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !first.NetworkCreated {
		t.Errorf("first Bootstrap: NetworkCreated = false, want true")
	}
	second, err := e.Bootstrap(ctx(t), opts)
	if err != nil {
		t.Fatalf("second Bootstrap: %v", err)
	}
	if second.NetworkCreated || second.SwarmInitialized {
		t.Errorf("second Bootstrap changed something: %+v", second)
	}

	n, err := docker.NetworkInspect(ctx(t), name, network.InspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", name, err)
	}
	if n.Driver != "overlay" || !n.Attachable || n.Scope != "swarm" {
		t.Errorf("network driver=%q attachable=%t scope=%q, want an attachable swarm overlay", n.Driver, n.Attachable, n.Scope)
	}
	if n.Labels[orchestrator.LabelManaged] != "true" {
		t.Errorf("labels = %v, want %s=true", n.Labels, orchestrator.LabelManaged)
	}
	if len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != subnet {
		t.Errorf("IPAM config = %+v, want subnet %s", n.IPAM.Config, subnet)
	}

	// Only one network carries the name (CheckDuplicate is honoured on old APIs).
	list, err := docker.NetworkList(ctx(t), network.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, l := range list {
		if l.Name == name {
			count++
		}
	}
	if count != 1 {
		t.Errorf("%d networks named %s, want 1", count, name)
	}
}

func TestBootstrapRejectsNonOverlayNetwork(t *testing.T) {
	e, host := newEngine(t)
	name, docker := testNetwork(t, host)
	if _, err := docker.NetworkCreate(ctx(t), name, network.CreateOptions{Driver: "bridge"}); err != nil {
		t.Fatal(err)
	}

	_, err := e.Bootstrap(ctx(t), orchestrator.BootstrapOptions{InitSwarm: true, EdgeNetwork: name, EdgeSubnet: "10.241.0.0/16"})
	if !errors.Is(err, orchestrator.ErrNetworkConflict) {
		t.Fatalf("Bootstrap over a bridge network: err = %v, want ErrNetworkConflict", err)
	}
	if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "bridge") {
		t.Errorf("error %q should name the network and its driver", err)
	}
}

func TestBootstrapRejectsBadSubnet(t *testing.T) {
	e, _ := newEngine(t)
	_, err := e.Bootstrap(ctx(t), orchestrator.BootstrapOptions{EdgeNetwork: "unused", EdgeSubnet: "10.241.0.0"})
	if err == nil || !strings.Contains(err.Error(), "10.241.0.0") {
		t.Fatalf("err = %v, want an error naming the bad subnet", err)
	}
}

func TestUnreachableEngine(t *testing.T) {
	e, err := New("unix:///nonexistent.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	st := e.Status(ctx(t))
	t.Logf("status: %+v", st)
	if st.Reachable {
		t.Fatalf("Status of a missing socket: Reachable = true")
	}
	if !strings.Contains(st.Error, "/nonexistent.sock") || !strings.Contains(st.Error, "dockerd") {
		t.Errorf("Error = %q, want the address and a hint to start dockerd", st.Error)
	}

	if err := e.Ping(ctx(t)); !errors.Is(err, orchestrator.ErrEngineUnreachable) {
		t.Errorf("Ping: err = %v, want ErrEngineUnreachable", err)
	}
	if _, err := e.Bootstrap(ctx(t), orchestrator.BootstrapOptions{InitSwarm: true}); !errors.Is(err, orchestrator.ErrEngineUnreachable) {
		t.Errorf("Bootstrap: err = %v, want ErrEngineUnreachable", err)
	}
}
