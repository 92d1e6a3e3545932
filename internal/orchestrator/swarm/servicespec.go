package swarm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/orchestrator"
)

// DefaultProbePath is where release containers see the health probe.
const DefaultProbePath = "/.berth/probe"

// Health check defaults when the app's HealthCheck leaves a field zero. The
// interval decides how soon a new release counts as healthy (Engine 20.10
// runs the first probe one interval after the start), so it is short; the
// start period, for the implicit port check only, is generous because
// failures within it do not count, and a probe that passes ends it at once.
const (
	DefaultHealthInterval    = 2 * time.Second
	DefaultHealthTimeout     = 2 * time.Second
	DefaultHealthRetries     = 3
	DefaultHealthStartPeriod = 30 * time.Second
)

// restartDelay is how long Swarm waits before replacing a failed task.
const restartDelay = 2 * time.Second

// ProbeMount says where the health probe binary (package probe) is on the
// nodes and how release containers run it. It is bind-mounted read-only into
// containers whose health check uses it (HTTP checks and the default TCP
// check), because images FROM scratch have no curl and the host cannot reach
// overlay addresses.
//
// On a single node HostPath is the berth executable with Args ["probe"]; on
// several nodes the file must exist at HostPath on every node that may run
// the release (the agent will put it there).
type ProbeMount struct {
	HostPath      string   // absolute path on the node
	ContainerPath string   // where containers see it; empty means DefaultProbePath
	Args          []string // arguments before the check, e.g. ["probe"] for `berth probe http …`
	// Interpreter is the probe's dynamic loader when it is dynamically
	// linked (probe.Interpreter), to explain health checks that fail
	// because an image lacks it; empty for a static probe.
	Interpreter string
}

// SpecOptions are the cluster-wide settings ServiceSpec needs besides the
// release.
type SpecOptions struct {
	Probe ProbeMount
	// EdgeNetwork is the network web-facing releases join; empty means
	// orchestrator.EdgeNetwork.
	EdgeNetwork string
	// FileIDs maps the names of the release's Docker configs and secrets
	// (FileName) to their ids, which service specs reference. CreateRelease
	// fills it in after creating them, so that ServiceSpec stays pure.
	FileIDs map[string]string
	// LogDriver is the containers' log driver; nil means the engine's
	// default. Engine methods fill it in (see Engine.logDriver).
	LogDriver *swarm.Driver
}

// FileName names the Docker config (or secret) holding file f of the app
// whose Release.VolumePrefix is prefix. Configs and secrets are immutable, so
// the name is derived from what they hold: a release whose file is unchanged
// reuses the previous release's, a changed file gets a new one.
func FileName(prefix string, f app.FileMount) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%o\x00%s", f.Target, fileMode(f), f.Content)
	return prefix + "-" + hex.EncodeToString(h.Sum(nil))[:12]
}

func fileMode(f app.FileMount) uint32 {
	if f.Mode == 0 {
		return app.DefaultFileMode
	}
	return f.Mode
}

// ServiceSpec translates a release into the Swarm service that runs it. It is
// pure: the same release and options give the same spec, whose hash is stored
// in the orchestrator.LabelSpecHash label.
//
// Networking (DESIGN.md 3, 3b): endpoint mode dnsrr, never a VIP; the service
// joins the environment network with the app's alias, so all of an app's
// releases answer to it. A web-facing release also joins the edge network
// without the alias: the edge network is shared by every project, where two
// apps may have the same alias, so the proxy addresses a release by its
// service name (unique in the cluster), which resolves to its tasks.
func ServiceSpec(r orchestrator.Release, o SpecOptions) (swarm.ServiceSpec, error) {
	s := r.Spec
	if err := validate(r); err != nil {
		return swarm.ServiceSpec{}, fmt.Errorf("release %s: %w", r.Service, err)
	}

	labels := map[string]string{}
	maps.Copy(labels, s.Labels)
	maps.Copy(labels, r.Labels) // Berth's labels win over the user's
	labels[orchestrator.LabelManaged] = "true"

	cs := &swarm.ContainerSpec{
		Image:    r.Image,
		Labels:   maps.Clone(labels),
		Command:  s.Command,
		Args:     s.Args,
		Env:      envList(r.Env),
		Dir:      s.WorkingDir,
		User:     s.User,
		ReadOnly: s.ReadOnly,
	}
	if s.StopGracePeriod > 0 {
		d := time.Duration(s.StopGracePeriod)
		cs.StopGracePeriod = &d
	}
	volumeLabels := map[string]string{orchestrator.LabelManaged: "true"}
	if id := r.Labels[orchestrator.LabelApp]; id != "" {
		volumeLabels[orchestrator.LabelApp] = id
	}
	for _, v := range s.Volumes {
		cs.Mounts = append(cs.Mounts, mount.Mount{
			Type:     mount.TypeVolume,
			Source:   orchestrator.VolumeName(r.VolumePrefix, v.Name),
			Target:   v.Target,
			ReadOnly: v.ReadOnly,
			// Labels apply when the task creates the volume on its node.
			VolumeOptions: &mount.VolumeOptions{Labels: maps.Clone(volumeLabels)},
		})
	}
	for _, b := range s.Binds {
		cs.Mounts = append(cs.Mounts, mount.Mount{Type: mount.TypeBind, Source: b.Source, Target: b.Target, ReadOnly: b.ReadOnly})
	}
	for _, f := range s.Files {
		name := FileName(r.VolumePrefix, f)
		id := o.FileIDs[name]
		if id == "" {
			return swarm.ServiceSpec{}, fmt.Errorf("release %s: file %s: no id for its %s %s; create it first", r.Service, f.Target, fileKind(f.Secret), name)
		}
		file := &swarm.ConfigReferenceFileTarget{Name: f.Target, UID: "0", GID: "0", Mode: os.FileMode(fileMode(f))}
		if f.Secret {
			cs.Secrets = append(cs.Secrets, &swarm.SecretReference{SecretID: id, SecretName: name,
				File: (*swarm.SecretReferenceFileTarget)(file)})
		} else {
			cs.Configs = append(cs.Configs, &swarm.ConfigReference{ConfigID: id, ConfigName: name, File: file})
		}
	}
	hc, usesProbe, err := healthcheck(r, o.Probe)
	if err != nil {
		return swarm.ServiceSpec{}, fmt.Errorf("release %s: %w", r.Service, err)
	}
	cs.Healthcheck = hc
	if usesProbe {
		cs.Mounts = append(cs.Mounts, mount.Mount{
			Type:     mount.TypeBind,
			Source:   o.Probe.HostPath,
			Target:   probePath(o.Probe),
			ReadOnly: true,
		})
	}

	restart := swarm.RestartPolicyConditionAny
	switch s.Restart {
	case "on-failure":
		restart = swarm.RestartPolicyConditionOnFailure
	case "none":
		restart = swarm.RestartPolicyConditionNone
	}
	delay, attempts := restartDelay, uint64(0)

	networks := []swarm.NetworkAttachmentConfig{{Target: r.Network, Aliases: []string{r.Alias}}}
	if r.Edge {
		edge := o.EdgeNetwork
		if edge == "" {
			edge = orchestrator.EdgeNetwork
		}
		networks = append(networks, swarm.NetworkAttachmentConfig{Target: edge})
	}

	endpoint := &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR}
	for _, p := range s.Ports {
		proto := swarm.PortConfigProtocolTCP
		if p.Protocol == "udp" {
			proto = swarm.PortConfigProtocolUDP
		}
		endpoint.Ports = append(endpoint.Ports, swarm.PortConfig{
			Protocol:      proto,
			TargetPort:    uint32(p.Target),
			PublishedPort: uint32(p.Published),
			PublishMode:   swarm.PortConfigPublishModeHost,
		})
	}

	replicas := uint64(s.Replicas)
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: r.Service, Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: cs,
			Resources:     resources(s.Resources),
			RestartPolicy: &swarm.RestartPolicy{Condition: restart, Delay: &delay, MaxAttempts: &attempts},
			Networks:      networks,
			LogDriver:     o.LogDriver,
		},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		EndpointSpec: endpoint,
	}
	if len(s.Constraints) > 0 {
		spec.TaskTemplate.Placement = &swarm.Placement{Constraints: s.Constraints}
	}

	hash, err := specHash(spec)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	spec.Annotations.Labels[orchestrator.LabelSpecHash] = hash
	return spec, nil
}

// specHash is the sha256 of the spec's JSON without the hash label and
// without the replica count, which ScaleRelease changes in place (compare
// ServiceInfo.Replicas for that). encoding/json writes struct fields in order
// and map keys sorted, so the JSON is canonical for a given client library
// version.
func specHash(spec swarm.ServiceSpec) (string, error) {
	spec.Annotations.Labels = maps.Clone(spec.Annotations.Labels)
	delete(spec.Annotations.Labels, orchestrator.LabelSpecHash)
	if spec.Mode.Replicated != nil {
		spec.Mode.Replicated = &swarm.ReplicatedService{}
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("hashing service spec: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func validate(r orchestrator.Release) error {
	s := r.Spec
	switch {
	case r.Service == "":
		return fmt.Errorf("service name is empty")
	case r.Image == "":
		return fmt.Errorf("image is empty: resolve the image first")
	case r.Network == "":
		return fmt.Errorf("network is empty")
	case r.Alias == "":
		return fmt.Errorf("alias is empty")
	case s.Replicas < 0:
		return fmt.Errorf("replicas: %d; want 0 or more", s.Replicas)
	case (len(s.Volumes) > 0 || len(s.Files) > 0) && r.VolumePrefix == "":
		return fmt.Errorf("volume prefix is empty; it is required when the app has volumes or files")
	}
	switch s.Restart {
	case "", "any", "on-failure", "none":
	default:
		return fmt.Errorf("restart: %q; want any, on-failure or none", s.Restart)
	}
	for _, p := range s.Ports {
		if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
			return fmt.Errorf("port %d: protocol %q; want tcp or udp", p.Target, p.Protocol)
		}
		if p.Target < 1 || p.Target > 65535 || p.Published < 1 || p.Published > 65535 {
			return fmt.Errorf("port %d:%d: ports must be 1-65535", p.Published, p.Target)
		}
	}
	return nil
}

func envList(env map[string]string) []string {
	if len(env) == 0 {
		return nil
	}
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

func resources(r app.Resources) *swarm.ResourceRequirements {
	var req swarm.ResourceRequirements
	if r.CPULimit > 0 || r.MemoryLimit > 0 {
		req.Limits = &swarm.Limit{NanoCPUs: nanoCPUs(r.CPULimit), MemoryBytes: r.MemoryLimit}
	}
	if r.CPUReservation > 0 || r.MemoryReservation > 0 {
		req.Reservations = &swarm.Resources{NanoCPUs: nanoCPUs(r.CPUReservation), MemoryBytes: r.MemoryReservation}
	}
	if req.Limits == nil && req.Reservations == nil {
		return nil
	}
	return &req
}

func nanoCPUs(cores float64) int64 { return int64(cores*1e9 + 0.5) }

func probePath(p ProbeMount) string {
	if p.ContainerPath != "" {
		return p.ContainerPath
	}
	return DefaultProbePath
}

// healthcheck maps the app's health check to the container's. Swarm reports
// a task as "starting" until its container's health check passes and only
// then "running", which is the signal that a release is healthy.
//
//	Health nil, image has a HEALTHCHECK  the image's (nil: not overridden)
//	Health nil, Spec.Port > 0            probe tcp 127.0.0.1:<port>
//	Health nil, no port                  none: running means started
//	Type ""                              the TCP probe with the given timings
//	                                     (app validation keeps users from it)
//	http                                 probe http http://127.0.0.1:<port><path>
//	command                              the command, inside the container
//	none                                 disabled, even the image's
func healthcheck(r orchestrator.Release, p ProbeMount) (hc *container.HealthConfig, usesProbe bool, err error) {
	s := r.Spec
	h := s.Health
	if h == nil {
		if r.ImageHasHealthcheck || s.Port <= 0 {
			return nil, false, nil
		}
		h = &app.HealthCheck{} // defaults, with the TCP test below
	}

	var test []string
	probe := func(args ...string) error {
		if p.HostPath == "" {
			return fmt.Errorf("health check needs the probe binary, and the engine has none configured")
		}
		test = append([]string{"CMD", probePath(p)}, p.Args...)
		test = append(test, args...)
		return nil
	}
	timeout := dur(h.Timeout, DefaultHealthTimeout)
	// The probe gives up a little before Docker kills it, so the health
	// log holds the probe's reason rather than Docker's timeout notice.
	probeTimeout := max(timeout-timeout/5, 100*time.Millisecond).String()

	switch h.Type {
	case "":
		if err := probe("tcp", "127.0.0.1:"+strconv.Itoa(s.Port), "--timeout", probeTimeout); err != nil {
			return nil, false, err
		}
		usesProbe = true
	case app.HealthHTTP:
		port := h.Port
		if port == 0 {
			port = s.Port
		}
		if port <= 0 {
			return nil, false, fmt.Errorf("http health check: no port (set health.port or the app's port)")
		}
		path := h.Path
		if path == "" {
			path = "/"
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		args := []string{"http", "http://127.0.0.1:" + strconv.Itoa(port) + path}
		if h.ExpectStatus != 0 {
			args = append(args, "--expect", strconv.Itoa(h.ExpectStatus))
		}
		args = append(args, "--timeout", probeTimeout)
		if err := probe(args...); err != nil {
			return nil, false, err
		}
		usesProbe = true
	case app.HealthCommand:
		if len(h.Command) == 0 {
			return nil, false, fmt.Errorf("command health check: the command is empty")
		}
		test = append([]string{"CMD"}, h.Command...)
	case app.HealthNone:
		return &container.HealthConfig{Test: []string{"NONE"}}, false, nil
	default:
		return nil, false, fmt.Errorf("health check type %q; want http, command or none", h.Type)
	}

	retries := h.Retries
	if retries <= 0 {
		retries = DefaultHealthRetries
	}
	// A declared check has the start period it declares (none by default),
	// so a failing release is found in seconds; only the implicit port check,
	// which knows nothing of the app, grants a slow starter time.
	start := time.Duration(h.StartPeriod)
	if h.Type == "" {
		start = dur(h.StartPeriod, DefaultHealthStartPeriod)
	}
	return &container.HealthConfig{
		Test:        test,
		Interval:    dur(h.Interval, DefaultHealthInterval),
		Timeout:     timeout,
		Retries:     retries,
		StartPeriod: start,
	}, usesProbe, nil
}

func dur(d app.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}
