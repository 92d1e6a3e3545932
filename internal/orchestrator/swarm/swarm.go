// Package swarm implements orchestrator.Engine on Docker Swarm through the
// Docker Engine API, negotiating the API version so it works with Engine 20.10
// (API 1.41) up to current releases.
package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/berthpaas/berth/internal/orchestrator"
)

// dockerAPI is the subset of the Docker client's methods Engine uses.
type dockerAPI interface {
	Ping(ctx context.Context) (types.Ping, error)
	ServerVersion(ctx context.Context) (types.Version, error)
	Info(ctx context.Context) (system.Info, error)
	ClientVersion() string
	DaemonHost() string
	NodeList(ctx context.Context, options swarm.NodeListOptions) ([]swarm.Node, error)
	SwarmInit(ctx context.Context, req swarm.InitRequest) (string, error)
	NetworkList(ctx context.Context, options network.ListOptions) ([]network.Summary, error)
	NetworkCreate(ctx context.Context, name string, options network.CreateOptions) (network.CreateResponse, error)
	NetworkRemove(ctx context.Context, networkID string) error
	VolumeRemove(ctx context.Context, volumeID string, force bool) error
	VolumeInspect(ctx context.Context, volumeID string) (volume.Volume, error)
	ImageBuild(ctx context.Context, buildContext io.Reader, options build.ImageBuildOptions) (build.ImageBuildResponse, error)
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImagePull(ctx context.Context, refStr string, options image.PullOptions) (io.ReadCloser, error)
	ImageList(ctx context.Context, options image.ListOptions) ([]image.Summary, error)
	ImageRemove(ctx context.Context, imageID string, options image.RemoveOptions) ([]image.DeleteResponse, error)
	RegistryLogin(ctx context.Context, auth registry.AuthConfig) (registry.AuthenticateOKBody, error)
	ServiceCreate(ctx context.Context, service swarm.ServiceSpec, options swarm.ServiceCreateOptions) (swarm.ServiceCreateResponse, error)
	ServiceInspectWithRaw(ctx context.Context, serviceID string, opts swarm.ServiceInspectOptions) (swarm.Service, []byte, error)
	ServiceUpdate(ctx context.Context, serviceID string, version swarm.Version, service swarm.ServiceSpec, options swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error)
	ServiceRemove(ctx context.Context, serviceID string) error
	ServiceList(ctx context.Context, options swarm.ServiceListOptions) ([]swarm.Service, error)
	ServiceLogs(ctx context.Context, serviceID string, options container.LogsOptions) (io.ReadCloser, error)
	TaskList(ctx context.Context, options swarm.TaskListOptions) ([]swarm.Task, error)
	TaskLogs(ctx context.Context, taskID string, options container.LogsOptions) (io.ReadCloser, error)
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	ConfigCreate(ctx context.Context, config swarm.ConfigSpec) (swarm.ConfigCreateResponse, error)
	ConfigList(ctx context.Context, options swarm.ConfigListOptions) ([]swarm.Config, error)
	ConfigRemove(ctx context.Context, id string) error
	SecretCreate(ctx context.Context, secret swarm.SecretSpec) (swarm.SecretCreateResponse, error)
	SecretList(ctx context.Context, options swarm.SecretListOptions) ([]swarm.Secret, error)
	SecretRemove(ctx context.Context, id string) error
	Close() error
}

var _ dockerAPI = (*client.Client)(nil)

var _ orchestrator.Engine = (*Engine)(nil)

// statusTimeout bounds Status when the caller's context has no deadline: a
// status page must answer even when a TCP engine black-holes packets.
const statusTimeout = 10 * time.Second

// Engine is a Docker Engine, standalone or a swarm node.
type Engine struct {
	api  dockerAPI
	spec SpecOptions      // how releases become services
	now  func() time.Time // injectable clock (ReleaseState's timings)

	logMu    sync.Mutex
	logKnown bool          // logs is known (see specOptions)
	logs     *swarm.Driver // the log driver services get
}

// Option configures an Engine.
type Option func(*Engine)

// WithProbe sets where the health probe binary is on the nodes (see
// ProbeMount). Without it, releases whose health check needs the probe (HTTP
// checks, and the default TCP check of an app's port) cannot be created.
func WithProbe(p ProbeMount) Option { return func(e *Engine) { e.spec.Probe = p } }

// WithEdgeNetwork names the edge network web-facing releases join (default
// orchestrator.EdgeNetwork).
func WithEdgeNetwork(name string) Option { return func(e *Engine) { e.spec.EdgeNetwork = name } }

// New connects to the Docker Engine at host ("unix:///var/run/docker.sock",
// "tcp://10.0.0.2:2376", …). An empty host means the DOCKER_HOST environment
// (with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH), or the local default socket.
// No connection is made until the first call.
func New(host string, opts ...Option) (*Engine, error) {
	copts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		copts = append(copts, client.WithHost(host))
	}
	c, err := client.NewClientWithOpts(copts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", host, err)
	}
	e := &Engine{api: c, now: time.Now}
	for _, o := range opts {
		o(e)
	}
	return e, nil
}

// Close releases the client's idle connections.
func (e *Engine) Close() error {
	return e.api.Close()
}

// Ping checks that the engine answers.
func (e *Engine) Ping(ctx context.Context) error {
	if _, err := e.api.Ping(ctx); err != nil {
		return e.unreachable(err)
	}
	return nil
}

// unreachable wraps a failed call as orchestrator.ErrEngineUnreachable when
// it is a connection failure, and as a plain wrapped error otherwise.
func (e *Engine) unreachable(err error) error {
	if client.IsErrConnectionFailed(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w at %s: %w", orchestrator.ErrEngineUnreachable, e.api.DaemonHost(), err)
	}
	return fmt.Errorf("docker engine at %s: %w", e.api.DaemonHost(), err)
}

// unreachableMessage is the user-safe explanation of a failed connection: the
// engine address and what to do, without Go error chains.
func (e *Engine) unreachableMessage(err error) string {
	host := e.api.DaemonHost()
	switch {
	case errors.Is(err, syscall.EACCES):
		return fmt.Sprintf("permission denied on the Docker socket %s: run berth as root or as a member of the docker group", host)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("the Docker Engine at %s did not answer in time", host)
	case client.IsErrConnectionFailed(err):
		return fmt.Sprintf("cannot connect to the Docker Engine at %s: is dockerd running? (set DOCKER_HOST to use another engine)", host)
	default:
		return fmt.Sprintf("the Docker Engine at %s failed to answer: %s", host, err)
	}
}

// Status describes the engine, its swarm and, on a manager, the swarm's nodes.
func (e *Engine) Status(ctx context.Context) orchestrator.EngineStatus {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, statusTimeout)
		defer cancel()
	}

	// ServerVersion is the first versioned call, so it negotiates the API
	// version that ClientVersion reports afterwards.
	down := func(err error) orchestrator.EngineStatus {
		return orchestrator.EngineStatus{
			Error: e.unreachableMessage(err),
			Swarm: orchestrator.SwarmStatus{Nodes: []orchestrator.Node{}},
		}
	}
	v, err := e.api.ServerVersion(ctx)
	if err != nil {
		return down(err)
	}
	info, err := e.api.Info(ctx)
	if err != nil {
		return down(err)
	}

	st := orchestrator.EngineStatus{
		Reachable:     true,
		ServerVersion: v.Version,
		APIVersion:    e.api.ClientVersion(),
		OS:            v.Os,
		Arch:          v.Arch,
		KernelVersion: info.KernelVersion,
		NCPU:          info.NCPU,
		MemoryBytes:   info.MemTotal,
		Swarm: orchestrator.SwarmStatus{
			State:     string(info.Swarm.LocalNodeState),
			NodeID:    info.Swarm.NodeID,
			IsManager: info.Swarm.ControlAvailable,
			Error:     info.Swarm.Error,
			Nodes:     []orchestrator.Node{},
		},
	}
	if st.Swarm.State == "" {
		st.Swarm.State = orchestrator.SwarmInactive
	}
	if st.Swarm.State == orchestrator.SwarmActive && st.Swarm.IsManager {
		nodes, err := e.api.NodeList(ctx, swarm.NodeListOptions{})
		if err != nil {
			// The engine answered moments ago; a failed node list is a
			// degraded swarm (e.g. lost quorum), which the state shows.
			st.Swarm.State = orchestrator.SwarmError
			st.Swarm.Error = fmt.Sprintf("listing swarm nodes: %s", err)
		}
		for _, n := range nodes {
			st.Swarm.Nodes = append(st.Swarm.Nodes, nodeFromSwarm(n))
		}
	}
	return st
}

func nodeFromSwarm(n swarm.Node) orchestrator.Node {
	node := orchestrator.Node{
		ID:            n.ID,
		Hostname:      n.Description.Hostname,
		Role:          string(n.Spec.Role),
		State:         string(n.Status.State),
		Availability:  string(n.Spec.Availability),
		Address:       n.Status.Addr,
		EngineVersion: n.Description.Engine.EngineVersion,
		NCPU:          int(n.Description.Resources.NanoCPUs / 1e9),
		MemoryBytes:   n.Description.Resources.MemoryBytes,
	}
	if n.ManagerStatus != nil {
		node.Leader = n.ManagerStatus.Leader
	}
	return node
}

// Bootstrap initialises the swarm (when opts.InitSwarm and the engine is not
// in one) and creates the edge overlay network when it is missing. Running it
// again changes nothing.
func (e *Engine) Bootstrap(ctx context.Context, opts orchestrator.BootstrapOptions) (orchestrator.BootstrapResult, error) {
	var res orchestrator.BootstrapResult
	if opts.EdgeNetwork == "" {
		opts.EdgeNetwork = orchestrator.EdgeNetwork
	}
	if opts.EdgeSubnet == "" {
		opts.EdgeSubnet = orchestrator.EdgeSubnet
	}
	if _, err := netip.ParsePrefix(opts.EdgeSubnet); err != nil {
		return res, fmt.Errorf("edge subnet %q: want a CIDR prefix such as %s: %w", opts.EdgeSubnet, orchestrator.EdgeSubnet, err)
	}

	info, err := e.api.Info(ctx)
	if err != nil {
		return res, e.unreachable(err)
	}
	switch state := info.Swarm.LocalNodeState; state {
	case swarm.LocalNodeStateActive:
		if !info.Swarm.ControlAvailable {
			return res, fmt.Errorf("%w: this engine is a swarm worker; point Berth at a manager node", orchestrator.ErrSwarmNotReady)
		}
	case swarm.LocalNodeStateInactive, "":
		if !opts.InitSwarm {
			return res, fmt.Errorf("%w: the engine is not part of a swarm; initialise one (`docker swarm init`) or bootstrap with swarm initialisation enabled", orchestrator.ErrSwarmNotReady)
		}
		addr := opts.AdvertiseAddr
		if addr == "" {
			addr = e.defaultAdvertiseAddr()
		}
		_, err := e.api.SwarmInit(ctx, swarm.InitRequest{
			ListenAddr:    "0.0.0.0:2377",
			AdvertiseAddr: addr,
		})
		if err != nil {
			if addr == "" {
				// The engine chose, and fails when the host has several addresses.
				return res, fmt.Errorf("initialising swarm (set the advertise address if the engine cannot choose one): %w", err)
			}
			return res, fmt.Errorf("initialising swarm (advertise address %s): %w", addr, err)
		}
		res.SwarmInitialized = true
		res.AdvertiseAddr = addr
	case swarm.LocalNodeStateLocked:
		return res, fmt.Errorf("%w: the swarm is locked; unlock it with `docker swarm unlock`", orchestrator.ErrSwarmNotReady)
	default: // pending, error
		return res, fmt.Errorf("%w: swarm state is %q: %s", orchestrator.ErrSwarmNotReady, state, info.Swarm.Error)
	}

	created, err := e.ensureOverlay(ctx, opts.EdgeNetwork, opts.EdgeSubnet, nil)
	if err != nil {
		return res, err
	}
	res.NetworkCreated = created
	return res, nil
}

// ensureOverlay creates the attachable overlay network name (with subnet, or
// one the engine picks when subnet is empty; labelled berth.managed plus
// labels) unless it exists, and checks that an existing one is usable.
func (e *Engine) ensureOverlay(ctx context.Context, name, subnet string, labels map[string]string) (created bool, err error) {
	// The name filter matches substrings, so compare names exactly.
	list, err := e.api.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return false, fmt.Errorf("listing networks: %w", err)
	}
	for _, n := range list {
		if n.Name != name {
			continue
		}
		// A swarm network the managers have not allocated yet (just
		// created, here or concurrently) is listed without its driver.
		if n.Driver != "overlay" && n.Driver != "" || !n.Attachable {
			return false, fmt.Errorf("%w: network %q exists with driver %q, attachable=%t; Berth needs an attachable overlay network: remove it (`docker network rm %s`) or use another network name",
				orchestrator.ErrNetworkConflict, name, n.Driver, n.Attachable, name)
		}
		return false, nil
	}

	all := maps.Clone(labels)
	if all == nil {
		all = map[string]string{}
	}
	all[orchestrator.LabelManaged] = "true"
	create := network.CreateOptions{
		Driver:     "overlay",
		Scope:      "swarm",
		Attachable: true,
		Labels:     all,
	}
	if subnet != "" {
		create.IPAM = &network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: subnet}}}
	}
	if _, err = e.api.NetworkCreate(ctx, name, create); err != nil {
		if subnet == "" {
			return false, fmt.Errorf("creating overlay network %q: %w", name, err)
		}
		return false, fmt.Errorf("creating overlay network %q (subnet %s): %w", name, subnet, err)
	}
	return true, nil
}

// defaultAdvertiseAddr picks the swarm advertise address when none is
// configured: for a local engine, the source address of the default route
// (what other hosts most likely reach this one on), or 127.0.0.1 on a host
// without a route; for a remote engine, "" lets the engine choose.
func (e *Engine) defaultAdvertiseAddr() string {
	if !strings.HasPrefix(e.api.DaemonHost(), "unix://") {
		return ""
	}
	// Connecting a UDP socket sends nothing; it only asks the kernel which
	// source address it would route from. 192.0.2.1 is TEST-NET-1.
	conn, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		return "127.0.0.1"
	}
	defer conn.Close()
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
		return a.IP.String()
	}
	return "127.0.0.1"
}
