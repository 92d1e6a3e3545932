// Package orchestrator owns Berth's view of a container cluster: the domain
// types describing an engine and its nodes, and the Engine interface the
// control plane consumes to inspect and prepare a cluster. Implementations live
// in subpackages (swarm/ for Docker Swarm through the Engine API), so another
// backend can be added without touching the control plane.
package orchestrator

import (
	"context"
	"errors"
)

// LabelManaged marks every Docker object Berth creates (value "true"), so Berth
// can tell its objects from the operator's and clean up only its own.
const LabelManaged = "berth.managed"

// EdgeNetwork is the overlay network shared by the proxy and web-facing
// services. Databases never join it.
const EdgeNetwork = "berth-edge"

// EdgeSubnet is the default subnet of EdgeNetwork: large, because every task
// of every web-facing service takes an address on it (dnsrr, no VIPs).
const EdgeSubnet = "10.240.0.0/16"

// Errors returned by Engine implementations, wrapped with detail; check them
// with errors.Is.
var (
	// ErrEngineUnreachable means the engine did not answer (not running,
	// wrong address, no permission on the socket).
	ErrEngineUnreachable = errors.New("docker engine unreachable")
	// ErrSwarmNotReady means the engine is not an active swarm manager, so
	// cluster objects (services, overlay networks) cannot be created.
	ErrSwarmNotReady = errors.New("swarm not ready")
	// ErrNetworkConflict means a network with Berth's name exists but cannot
	// be used as it is (wrong driver, not attachable).
	ErrNetworkConflict = errors.New("network conflict")
)

// Engine is what the control plane needs from a cluster's container engine.
type Engine interface {
	// Ping checks that the engine answers; the error wraps ErrEngineUnreachable
	// when it does not.
	Ping(ctx context.Context) error
	// Status describes the engine and its cluster. It never fails: an
	// unreachable engine is reported as Reachable=false with a user-safe Error.
	Status(ctx context.Context) EngineStatus
	// Bootstrap prepares the engine for Berth: initialises the swarm when
	// asked to and creates the edge network. It is idempotent.
	Bootstrap(ctx context.Context, opts BootstrapOptions) (BootstrapResult, error)
	// Close releases the connection to the engine.
	Close() error
}

// EngineStatus describes a container engine as Berth sees it.
type EngineStatus struct {
	Reachable bool `json:"reachable"`
	// Error is a user-safe message saying why the engine is unreachable.
	Error         string      `json:"error,omitempty"`
	ServerVersion string      `json:"server_version"`
	APIVersion    string      `json:"api_version"` // negotiated between Berth and the engine
	OS            string      `json:"os"`
	Arch          string      `json:"arch"`
	KernelVersion string      `json:"kernel_version"`
	NCPU          int         `json:"ncpu"`
	MemoryBytes   int64       `json:"memory_bytes"`
	Swarm         SwarmStatus `json:"swarm"`
}

// Swarm node states as the engine reports them (SwarmStatus.State).
const (
	SwarmInactive = "inactive"
	SwarmPending  = "pending"
	SwarmActive   = "active"
	SwarmError    = "error"
	SwarmLocked   = "locked"
)

// SwarmStatus describes the engine's swarm membership.
type SwarmStatus struct {
	State     string `json:"state"` // inactive|pending|active|error|locked
	NodeID    string `json:"node_id,omitempty"`
	IsManager bool   `json:"is_manager"`
	// Error is the engine's own message when State is "error".
	Error string `json:"error,omitempty"`
	// Nodes is listed only when the engine is a manager.
	Nodes []Node `json:"nodes"`
}

// Node is one member of a cluster.
type Node struct {
	ID            string `json:"id"`
	Hostname      string `json:"hostname"`
	Role          string `json:"role"`         // manager|worker
	State         string `json:"state"`        // ready|down|unknown|disconnected
	Availability  string `json:"availability"` // active|pause|drain
	Address       string `json:"address"`
	EngineVersion string `json:"engine_version"`
	NCPU          int    `json:"ncpu"`
	MemoryBytes   int64  `json:"memory_bytes"`
	Leader        bool   `json:"leader"`
}

// BootstrapOptions says how to prepare an engine.
type BootstrapOptions struct {
	// InitSwarm initialises a single-manager swarm when the engine is not
	// part of one. Without it, Bootstrap fails on an inactive engine.
	InitSwarm bool
	// AdvertiseAddr is the address other nodes use to reach this manager.
	// Empty means: for a local engine (unix socket), the source address of
	// the host's default route, or 127.0.0.1 on a host without one (which
	// limits the swarm to this host); for a remote engine, the engine's own
	// choice.
	AdvertiseAddr string
	// EdgeNetwork is the name of the edge overlay network; empty means
	// EdgeNetwork.
	EdgeNetwork string
	// EdgeSubnet is the edge network's subnet when Bootstrap creates it;
	// empty means EdgeSubnet.
	EdgeSubnet string
}

// BootstrapResult says what Bootstrap changed.
type BootstrapResult struct {
	SwarmInitialized bool `json:"swarm_initialized"`
	NetworkCreated   bool `json:"network_created"`
	// AdvertiseAddr is the address the swarm was initialised with, when
	// SwarmInitialized.
	AdvertiseAddr string `json:"advertise_addr,omitempty"`
}
