// Package app owns the application domain that is independent of storage and
// orchestration: what an application's desired state is (Spec), the rules
// that make it valid, names, image references and .env files.
package app

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Spec is everything that decides what runs for an application, except its
// environment variables (kept encrypted, by scope, and resolved into each
// deployment). A deployment pins a copy of the Spec it ran.
type Spec struct {
	// Image is a reference such as "nginx:1.27" or "registry.example.com/team/api@sha256:…".
	Image string `json:"image"`
	// Command overrides the image's ENTRYPOINT; Args its CMD.
	Command    []string `json:"command,omitempty"`
	Args       []string `json:"args,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	User       string   `json:"user,omitempty"`
	// Port is the container port serving HTTP; 0 means the app is not web-facing
	// (it does not join berth-edge and gets no domains).
	Port int `json:"port,omitempty"`
	// Ports are published on every node in host mode, bypassing the proxy.
	Ports     []PublishedPort `json:"ports,omitempty"`
	Replicas  int             `json:"replicas"`
	Resources Resources       `json:"resources"`
	// Restart is the restart policy condition: "any" (default), "on-failure" or "none".
	Restart     string            `json:"restart,omitempty"`
	Constraints []string          `json:"constraints,omitempty"` // Swarm placement constraints, e.g. "node.role==worker"
	Labels      map[string]string `json:"labels,omitempty"`      // user labels on the service and containers
	// StopGracePeriod is how long a container gets between SIGTERM and SIGKILL.
	StopGracePeriod Duration     `json:"stop_grace_period,omitempty"`
	ReadOnly        bool         `json:"read_only,omitempty"` // read-only root filesystem
	Health          *HealthCheck `json:"health,omitempty"`    // nil: the image's HEALTHCHECK, else wait for the port
	Volumes         []Volume     `json:"volumes,omitempty"`
	// Files are written into the containers from content kept in the spec,
	// so every deployment pins its own copy of them.
	Files []FileMount `json:"files,omitempty"`
	// Binds mount host paths into the containers; only owners and admins
	// may set them (deploy.Manager checks), since a host path can hand over
	// the node.
	Binds []BindMount `json:"binds,omitempty"`
}

// FileMount is a file with inline content, delivered to the containers as a
// Docker config, or as a Docker secret (on a tmpfs, and not shown by
// `docker config inspect`) when Secret is set.
type FileMount struct {
	Target  string `json:"target"` // absolute path in the container
	Content string `json:"content"`
	Secret  bool   `json:"secret,omitempty"`
	// Mode is the file's permission bits; 0 means DefaultFileMode (0444).
	Mode uint32 `json:"mode,omitempty"`
}

// BindMount mounts a path of the node the container runs on.
type BindMount struct {
	Source   string `json:"source"` // absolute path on the node
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// PublishedPort is a container port published on the nodes' host network.
type PublishedPort struct {
	Target    int    `json:"target"`
	Published int    `json:"published"`
	Protocol  string `json:"protocol,omitempty"` // "tcp" (default) or "udp"
}

// Resources are enforced through the containers' cgroups. Zero means unset.
type Resources struct {
	CPULimit          float64 `json:"cpu_limit,omitempty"` // cores, e.g. 0.5
	MemoryLimit       int64   `json:"memory_limit,omitempty"`
	CPUReservation    float64 `json:"cpu_reservation,omitempty"`
	MemoryReservation int64   `json:"memory_reservation,omitempty"`
}

// Health check types.
const (
	HealthHTTP    = "http"
	HealthCommand = "command"
	HealthNone    = "none" // never gate on health (not recommended)
)

// HealthCheck decides when a replica may receive traffic.
type HealthCheck struct {
	Type         string   `json:"type"`
	Path         string   `json:"path,omitempty"`          // http: request path, default "/"
	Port         int      `json:"port,omitempty"`          // http: default Spec.Port
	ExpectStatus int      `json:"expect_status,omitempty"` // http: 0 means any 2xx/3xx
	Command      []string `json:"command,omitempty"`       // command: argv run inside the container
	Interval     Duration `json:"interval,omitempty"`
	Timeout      Duration `json:"timeout,omitempty"`
	Retries      int      `json:"retries,omitempty"`
	StartPeriod  Duration `json:"start_period,omitempty"`
}

// Volume is a named Docker volume owned by the app, mounted at Target. It
// outlives releases and redeploys; deleting the app keeps it unless asked.
type Volume struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// SingleWriter makes deployments stop-first: the old release stops before
	// the new one starts, because two writers would corrupt the data.
	SingleWriter bool `json:"single_writer,omitempty"`
}

// SealedPrefix starts the content of a secret file once the control plane has
// encrypted it for storage; the plaintext exists only in the Docker secret.
const SealedPrefix = "berth-sealed:"

// IsSealed reports whether file content is encrypted at rest.
func IsSealed(content string) bool { return strings.HasPrefix(content, SealedPrefix) }

// Duration is a time.Duration that reads and writes JSON as "30s", "1m30s".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string such as "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"10s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: use a form such as 10s, 1m30s", s)
	}
	*d = Duration(v)
	return nil
}
