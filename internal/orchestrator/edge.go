package orchestrator

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// ErrInvalidProxySpec: a ProxySpec field is missing or out of range; the
// wrapping error names the field and says what is allowed.
var ErrInvalidProxySpec = errors.New("invalid proxy spec")

// Labels and paths of the edge proxy (DESIGN.md decision 7): `berth proxy`
// runs as a global Swarm service whose image is built from an HAProxy base
// image plus the berth binary.
const (
	// LabelRole says what a Berth object is for; the proxy's service, its
	// token secrets and its state volume carry RoleProxy.
	LabelRole = "berth.role"
	RoleProxy = "proxy"
	// LabelProxy names the proxy service a secret or volume belongs to, so
	// rotation and removal touch only that proxy's objects.
	LabelProxy = "berth.proxy"
	// LabelProxySource, on a proxy image, is the sha256 of what it was built
	// from (base image id, berth binary, Dockerfile).
	LabelProxySource = "berth.proxy.source"

	// ProxyTokenFile is where proxy containers read the token that
	// authenticates them to the control plane.
	ProxyTokenFile = "/run/secrets/berth-proxy-token"
	// ProxyStateDir is the proxy's state volume (last good routing table,
	// certificates), kept across restarts and upgrades.
	ProxyStateDir = "/var/lib/berth-proxy"
	// ProxyHTTPPort and ProxyHTTPSPort are the ports the proxy listens on
	// inside its container (unprivileged: it runs as the haproxy user).
	ProxyHTTPPort  = 8080
	ProxyHTTPSPort = 8443
	// ProxyStatsPort is HAProxy's Prometheus exporter in the container; the
	// proxy's health check connects to it: it answers once HAProxy runs.
	ProxyStatsPort = 8404

	// ProxyListenersSocket is where the proxy asks the listener holder of
	// its node for the sockets of the host ports (internal/proxy/listeners),
	// on a volume only the two services mount.
	ProxyListenersSocket = "/run/berth-proxy/listeners.sock"

	// Environment of proxy containers.
	EnvProxyControlURL = "BERTH_PROXY_CONTROL_URL" // where to pull the routing table
	EnvProxyNode       = "BERTH_PROXY_NODE"        // the Swarm node's hostname
	EnvProxyListeners  = "BERTH_PROXY_LISTENERS"   // ProxyListenersSocket
	EnvProxyRunDir     = "BERTH_PROXY_RUN_DIR"     // the container's own files and sockets
	EnvProxyAccessLog  = "BERTH_PROXY_ACCESS_LOG"  // "false" turns the access log off

	// DefaultProxyStopGrace is ProxySpec.StopGrace when zero.
	DefaultProxyStopGrace = 10 * time.Second
)

// ProxyListenerService names the listener holder of proxy name: the
// service that binds the host ports and hands the sockets to the proxy.
func ProxyListenerService(name string) string { return name + "-listen" }

// ProxySpec is the edge proxy service as the control plane wants it.
type ProxySpec struct {
	Name  string // service name, a DNS label, e.g. "berth-proxy"
	Image string // from Edge.BuildProxyImage
	// HTTPPort and HTTPSPort are the host ports (80 and 443 in production)
	// the listener holder binds on every node that runs the proxy.
	HTTPPort, HTTPSPort int
	// ControlURL is the control plane's internal listener as the proxy
	// containers reach it (on a single node, via Edge.GatewayAddr).
	ControlURL string
	// Token authenticates the proxy to the control plane. It is stored in a
	// Swarm secret named after its content: a new token rolls the proxy.
	// Plaintext: never log a ProxySpec.
	Token     []byte
	InstallID string // orchestrator.LabelInstall of the service
	// Constraints place the proxy; nil means ["node.role==manager"].
	Constraints []string
	// StopGrace is how long the proxy has to drain after SIGTERM; zero means
	// DefaultProxyStopGrace.
	StopGrace time.Duration
	// NoAccessLog turns the proxies' access log off: they still count
	// every request for the metrics and the Requests view.
	NoAccessLog bool
}

// ProxyReplica is the latest task of the proxy on one node.
type ProxyReplica struct {
	TaskID string `json:"task_id"`
	NodeID string `json:"node_id"`
	Node   string `json:"node"` // node hostname, as BERTH_PROXY_NODE says
	// ContainerID is empty until the task has a container. Hostname is the
	// container's hostname, which the proxy reports as its id: Docker's
	// default, the first 12 characters of the container id.
	ContainerID string `json:"container_id,omitempty"`
	Hostname    string `json:"hostname,omitempty"`
	Image       string `json:"image"`
	Desired     string `json:"desired"` // Swarm's desired state: running, shutdown …
	State       string `json:"state"`   // Swarm's task state: pending, running, failed …
	// Error is Swarm's or the engine's message for a task that failed or
	// cannot start.
	Error string `json:"error,omitempty"`
	// StartedAt is when the task started running; zero when it is not
	// running.
	StartedAt time.Time `json:"started_at,omitzero"`
}

// Edge is what the control plane needs to run the edge proxy on a cluster.
type Edge interface {
	// BuildProxyImage builds (once per base image and binary) the proxy
	// image from baseImage plus the berth binary at binaryPath and returns
	// its reference.
	BuildProxyImage(ctx context.Context, baseImage, binaryPath string) (string, error)
	// EnsureProxy creates the proxy service or updates it when the spec
	// changed; an unchanged spec changes nothing.
	EnsureProxy(ctx context.Context, s ProxySpec) error
	// ProxyReplicas lists the proxy's replicas; none when the service does
	// not exist.
	ProxyReplicas(ctx context.Context, name string) ([]ProxyReplica, error)
	// RemoveProxy removes the service and its secrets, and its state volume
	// unless keepState. A missing proxy is not an error.
	RemoveProxy(ctx context.Context, name string, keepState bool) error
	// GatewayAddr is the address at which containers on overlay networks
	// reach a process on this engine's host.
	GatewayAddr(ctx context.Context) (netip.Addr, error)
}
