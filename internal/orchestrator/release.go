package orchestrator

import (
	"context"
	"errors"
	"time"

	"github.com/berthpaas/berth/internal/app"
)

// Labels Berth puts on release services (besides LabelManaged), so the
// reconciler can map what runs back to the database.
const (
	LabelApp        = "berth.app"        // app id
	LabelDeployment = "berth.deployment" // deployment id
	LabelRelease    = "berth.release"    // release sequence number within the app
	LabelNetwork    = "berth.network"    // on networks: the environment id they serve
	// LabelInstall names the Berth installation that owns a release, so a
	// control plane never touches another's services on a shared Swarm.
	LabelInstall = "berth.install"
	// LabelSpecHash holds the sha256 of the service spec Berth created (the
	// spec without this label), so drift can be detected (ServiceInfo.SpecHash).
	LabelSpecHash = "berth.spec-hash"
)

// VolumeName is the Docker volume that holds an app's volume name: prefix is
// the app's Release.VolumePrefix. Docker volumes are per node and global in
// name, so the prefix makes them unique per app and stable across releases.
func VolumeName(prefix, name string) string {
	return prefix + "-" + name
}

// Errors returned by Releases implementations, wrapped with a plain-words
// explanation; check them with errors.Is.
var (
	// ErrImageNotFound: the image is neither on the node nor in its registry.
	ErrImageNotFound = errors.New("image not found")
	// ErrImageUnauthorized: the registry refused the credentials.
	ErrImageUnauthorized = errors.New("registry refused the credentials")
	// ErrRegistryUnreachable: the image is not on the node and its registry
	// did not answer; retrying later may succeed.
	ErrRegistryUnreachable = errors.New("registry unreachable")
	// ErrServiceConflict: the service name is taken by another deployment.
	ErrServiceConflict = errors.New("service name taken")
	// ErrServiceNotFound: no service of that name.
	ErrServiceNotFound = errors.New("service not found")
)

// Release is one deployment of an app, run as its own Swarm service next to
// the app's other releases (DESIGN.md 3b). All of an app's releases carry the
// same network alias, so other services reach the app by name throughout.
type Release struct {
	Service string // Swarm service name, unique in the cluster
	Alias   string // the app's stable name on its environment's network
	Network string // the environment's overlay network
	Edge    bool   // also join berth-edge (the app is web-facing)
	Image   string // pinned reference from ResolveImage
	// ImageHasHealthcheck is ResolvedImage.HasHealthcheck: with Spec.Health
	// nil, the image's own HEALTHCHECK then gates the release instead of
	// Berth's default TCP probe of Spec.Port.
	ImageHasHealthcheck bool
	Spec                app.Spec // what to run; Spec.Image is ignored in favour of Image
	// VolumePrefix names the app's Docker volumes: Spec.Volumes[i] is the
	// volume VolumeName(VolumePrefix, Name). It must be unique per app and the
	// same for all its releases, e.g. "<alias>-<app id>"; required when the
	// spec has volumes or files (it prefixes their configs' names too).
	VolumePrefix string
	// Env is the resolved environment. Plaintext secrets: never log a Release.
	Env    map[string]string
	Labels map[string]string // LabelApp, LabelDeployment, LabelRelease …
	// Auth is the registry credential for pulling Image, nil for public images.
	Auth *RegistryAuth
}

// RegistryAuth is a credential for an image registry.
type RegistryAuth struct {
	Server   string
	Username string
	Password string
}

// ResolvedImage is an image reference pinned to one image.
type ResolvedImage struct {
	// Ref is "name@sha256:<manifest digest>" for an image from a registry,
	// or the image id "sha256:…" for an image that exists only on this node
	// (built here, never pushed): Swarm runs either without asking a
	// registry. An image id works only on the node that has the image.
	Ref string
	// HasHealthcheck says the image declares its own HEALTHCHECK.
	HasHealthcheck bool
}

// Task states of a replica, as plain as Swarm's.
const (
	TaskPending  = "pending"  // accepted, not yet started (pulling, waiting for a node)
	TaskStarting = "starting" // container started, health check not yet passing
	TaskRunning  = "running"  // running and healthy (or has no health check)
	TaskFailed   = "failed"   // exited, rejected or killed
	TaskShutdown = "shutdown" // stopped on purpose
)

// Task is one replica's latest attempt.
type Task struct {
	ID        string    `json:"id"`
	Slot      int       `json:"slot"`
	Node      string    `json:"node"` // hostname
	State     string    `json:"state"`
	Since     time.Time `json:"since"`
	Container string    `json:"container,omitempty"`
	ExitCode  int       `json:"exit_code,omitempty"`
	// Message explains a failure in plain words: "image not found: …",
	// "out of memory (OOM-killed)", "health check failing: <probe output>",
	// "no node satisfies the placement constraints", "crash looping (exit code 1)".
	Message string `json:"message,omitempty"`
}

// ReleaseState is what Swarm is doing with a release.
type ReleaseState struct {
	Exists   bool   `json:"exists"`
	Desired  int    `json:"desired"`
	Running  int    `json:"running"` // healthy replicas
	Tasks    []Task `json:"tasks"`   // the latest task of each slot, then recent failures
	Failures int    `json:"failures"`
	// Problem is set when the release cannot become healthy without a change
	// (image missing, no node fits, crash loop, failing health check …).
	Problem string `json:"problem,omitempty"`
}

// ServiceInfo is a Berth-managed service as found in the cluster.
type ServiceInfo struct {
	ID       string
	Name     string
	Labels   map[string]string
	Replicas int
	// SpecHash is the hash Berth stored when it created the service; a
	// service changed by hand no longer matches its recomputed hash.
	SpecHash string
	// Drifted says the live spec no longer hashes to SpecHash: someone
	// changed the service outside Berth (replica counts excepted).
	Drifted bool
}

// LogOptions select container log lines.
type LogOptions struct {
	Tail       int       // last N lines; 0 means all
	Since      time.Time // zero means from the start
	Follow     bool
	Timestamps bool
}

// LogLine is one line of a replica's output.
type LogLine struct {
	Time   time.Time `json:"time"`
	Task   string    `json:"task"` // task id
	Slot   int       `json:"slot"`
	Stream string    `json:"stream"` // stdout or stderr
	Text   string    `json:"text"`
}

// Releases is what the deploy engine needs to run releases on a cluster.
type Releases interface {
	// EnsureNetwork creates the attachable overlay network if missing.
	EnsureNetwork(ctx context.Context, name string, labels map[string]string) error
	// RemoveNetwork removes a network; a missing one is not an error.
	RemoveNetwork(ctx context.Context, name string) error
	// ResolveImage pulls ref on this node if needed and returns the pinned
	// reference and what the release needs to know about the image; the
	// error says in plain words why not (not found, unauthorized, registry
	// unreachable).
	ResolveImage(ctx context.Context, ref string, auth *RegistryAuth) (ResolvedImage, error)
	// CreateRelease creates the release's service. Creating a service that
	// already exists with the same name is not an error (idempotent resume).
	CreateRelease(ctx context.Context, r Release) error
	// ReleaseState reports the release's replicas and tasks.
	ReleaseState(ctx context.Context, service string) (ReleaseState, error)
	// ScaleRelease changes a release's replica count in place.
	ScaleRelease(ctx context.Context, service string, replicas int) error
	// RemoveRelease removes the service (its containers stop with their
	// grace period); a missing service is not an error.
	RemoveRelease(ctx context.Context, service string) error
	// Services lists Berth-managed release services whose labels match.
	Services(ctx context.Context, labels map[string]string) ([]ServiceInfo, error)
	// Logs streams the release's container logs until ctx ends or, without
	// Follow, the logs are exhausted.
	Logs(ctx context.Context, service string, opts LogOptions, out func(LogLine) error) error
	// RemoveVolume deletes a named volume (only on an explicit request).
	RemoveVolume(ctx context.Context, name string) error
	// PruneFiles removes the app's file mounts (configs, secrets) that no
	// service of the app uses any more. CreateRelease creates them, shared
	// by the releases whose files are the same, so RemoveRelease cannot.
	PruneFiles(ctx context.Context, appID string) error
}
