package swarm

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/berthpaas/berth/internal/orchestrator"
)

// The edge proxy (DESIGN.md decision 7) is `berth proxy` in an image built
// here from an HAProxy base image, run as a global service on the edge
// network with its ports published in host mode (decision 3: no ingress
// mesh). It pulls its routing table from the control plane with a token
// kept in a Swarm secret.

var _ orchestrator.Edge = (*Engine)(nil)

// ProxyImageRepo is the repository of proxy images; the tag says what the
// image was built from.
const ProxyImageRepo = "berth/proxy"

// proxyTokenName is the token's file name under /run/secrets.
const proxyTokenName = "berth-proxy-token"

// gwBridge is the bridge network through which a swarm node's containers
// reach the outside, and the host.
const gwBridge = "docker_gwbridge"

// proxyDockerfile builds the proxy image from base (an image id, so the image
// is exactly the one the tag was computed from).
//
// COPY runs as root whatever the base's USER, so no `USER root` and no RUN are
// needed: the image builds from bases without a shell, and a base without the
// haproxy user fails at the first step, before any intermediate image is left
// behind. The empty directories come from the build context. The official
// haproxy image stops with SIGUSR1 (HAProxy's soft stop); berth proxy wants
// SIGTERM, and ENTRYPOINT clears the base's CMD.
func proxyDockerfile(base string) string {
	return fmt.Sprintf(`FROM %s
COPY --chown=haproxy:haproxy state/ %s/
COPY --chown=haproxy:haproxy run/ /run/berth/
COPY berth /usr/local/bin/berth
USER haproxy
EXPOSE %d %d
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/berth", "proxy"]
`, base, orchestrator.ProxyStateDir, orchestrator.ProxyHTTPPort, orchestrator.ProxyHTTPSPort)
}

// proxyImageSource is the hash the proxy image's tag and LabelProxySource
// are made from: the base image id, the binary's sha256 and the Dockerfile
// (so a changed recipe rebuilds even with the same binary).
func proxyImageSource(baseID, binarySHA256 string) string {
	sum := sha256.Sum256([]byte(baseID + "\n" + binarySHA256 + "\n" + proxyDockerfile(baseID)))
	return hex.EncodeToString(sum[:])
}

func proxyImageTag(source string) string { return ProxyImageRepo + ":" + source[:12] }

// BuildProxyImage builds the proxy image from baseImage (pulled when it is not
// on this node) plus the berth binary at binaryPath, and returns its
// reference "berth/proxy:<hash>". The hash covers the base image id and the
// binary, so an existing image with that tag is the same image and is reused
// without building. The base image must be HAProxy's: it needs a user named
// haproxy (the official haproxy images and Debian's package have one).
func (e *Engine) BuildProxyImage(ctx context.Context, baseImage, binaryPath string) (string, error) {
	if baseImage == "" {
		return "", errors.New("building the proxy image: the base image is empty; want an HAProxy image such as haproxy:lts")
	}
	api := e.api
	base, err := e.api.ImageInspect(ctx, baseImage)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspecting the proxy base image %s: %w", baseImage, e.unreachable(err))
	}
	if err != nil {
		if err := e.pull(ctx, baseImage, nil); err != nil {
			return "", fmt.Errorf("proxy base image: %w", err)
		}
		if base, err = e.api.ImageInspect(ctx, baseImage); err != nil {
			return "", fmt.Errorf("inspecting the proxy base image %s after pulling it: %w", baseImage, err)
		}
	}

	// The binary streams from disk, for the hash and again for the build
	// context, through one open file: an upgrade that renames a new binary
	// into place does not change what this build reads, and one that writes
	// over it in place fails the build (the hashes differ) instead of
	// shipping bytes other than the tag says. Never held in memory: it is
	// tens of MB and this runs on every start.
	bin, err := os.Open(binaryPath)
	if err != nil {
		return "", fmt.Errorf("building the proxy image: reading the berth binary: %w", err)
	}
	defer bin.Close()
	binSum, binSize, err := hashFrom(bin)
	if err != nil {
		return "", fmt.Errorf("building the proxy image: reading the berth binary: %w", err)
	}

	source := proxyImageSource(base.ID, binSum)
	tag := proxyImageTag(source)
	if img, err := e.api.ImageInspect(ctx, tag); err == nil {
		if img.Config != nil && img.Config.Labels[orchestrator.LabelProxySource] == source {
			return tag, nil
		}
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("inspecting image %s: %w", tag, e.unreachable(err))
	}

	dockerfile := proxyDockerfile(base.ID)
	// The context streams through a pipe; the writer ends when the build
	// has read it or the pipe is closed below.
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeProxyContext(pw, dockerfile, bin, binSize, binSum))
	}()
	defer func() {
		pr.Close()
		<-done
	}()
	resp, err := api.ImageBuild(ctx, pr, build.ImageBuildOptions{
		Tags: []string{tag},
		Labels: map[string]string{
			orchestrator.LabelManaged:     "true",
			orchestrator.LabelRole:        orchestrator.RoleProxy,
			orchestrator.LabelProxySource: source,
		},
		// The classic builder exists on every supported engine, and this
		// Dockerfile needs nothing more.
		Version:     build.BuilderV1,
		Remove:      true,
		ForceRemove: true, // no containers left behind by a failed step
	})
	if err != nil {
		return "", fmt.Errorf("building the proxy image from %s: %w", baseImage, e.unreachable(err))
	}
	err = readBuildStream(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", fmt.Errorf("building the proxy image from %s (the base must be an HAProxy image with a user named haproxy): %w", baseImage, err)
	}
	if _, err := e.api.ImageInspect(ctx, tag); err != nil {
		return "", fmt.Errorf("the proxy image build from %s ended without producing %s: %w", baseImage, tag, err)
	}
	return tag, nil
}

// hashFrom returns the SHA-256 (hex) and size of what r holds from its start.
func hashFrom(r io.ReadSeeker) (string, int64, error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return "", 0, err
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// writeProxyContext writes the build context: the Dockerfile, the binary
// (root-owned, 0755; size bytes from the start of bin, which must hash to
// sum) and the empty directories the image needs.
func writeProxyContext(w io.Writer, dockerfile string, bin io.ReadSeeker, size int64, sum string) error {
	tw := tar.NewWriter(w)
	mtime := time.Unix(0, 0) // a stable context: nothing in it depends on when
	for _, d := range []string{"state/", "run/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime}); err != nil {
			return err
		}
	}
	file := func(name string, mode, size int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: size, ModTime: mtime})
	}
	if err := file("Dockerfile", 0o644, int64(len(dockerfile))); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, dockerfile); err != nil {
		return err
	}
	if _, err := bin.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := file("berth", 0o755, size); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.CopyN(tw, io.TeeReader(bin, h), size); err != nil {
		return fmt.Errorf("the berth binary changed while the proxy image was built: %w", err)
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		return errors.New("the berth binary changed while the proxy image was built; the next attempt uses the new one")
	}
	return tw.Close()
}

// buildTail is how many lines of build output a failed build's error keeps:
// the builder's own message ("The command … returned a non-zero code") says
// little without the lines before it.
const buildTail = 8

// readBuildStream reads the build's progress to its end, discarding it, and
// returns the build's error with the last lines of output.
func readBuildStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	var tail []string
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading the build output: %w", err)
		}
		if m.Error != nil {
			msg := strings.TrimSpace(m.Error.Message)
			if len(tail) > 0 {
				msg += "; last output: " + strings.Join(tail, " | ")
			}
			return errors.New(msg)
		}
		for _, line := range strings.Split(m.Stream, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				tail = append(tail, line)
			}
		}
		if len(tail) > buildTail {
			tail = slices.Clone(tail[len(tail)-buildTail:])
		}
	}
}

// dnsLabel is a lowercase DNS label, what Swarm service names and container
// host names can safely be.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// maxProxyName keeps "<name>-token-<12 hex>" within Swarm's 64 characters
// for secret names.
const maxProxyName = 64 - len("-token-") - 12

// maxSecretSize is Swarm's limit on a secret's content.
const maxSecretSize = 500 * 1024

// ValidateProxySpec checks s; the error wraps
// orchestrator.ErrInvalidProxySpec and names the field.
func ValidateProxySpec(s orchestrator.ProxySpec) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", orchestrator.ErrInvalidProxySpec, fmt.Sprintf(format, args...))
	}
	switch {
	case s.Name == "":
		return invalid("name is empty; want a DNS label such as berth-proxy")
	case len(s.Name) > maxProxyName || !dnsLabel.MatchString(s.Name):
		return invalid("name %q: want a DNS label of at most %d characters: lowercase letters, digits and inner hyphens", s.Name, maxProxyName)
	case strings.TrimSpace(s.Image) == "":
		return invalid("image is empty; build one with BuildProxyImage")
	case s.HTTPPort < 1 || s.HTTPPort > 65535:
		return invalid("HTTP port %d: want 1-65535", s.HTTPPort)
	case s.HTTPSPort < 1 || s.HTTPSPort > 65535:
		return invalid("HTTPS port %d: want 1-65535", s.HTTPSPort)
	case s.HTTPPort == s.HTTPSPort:
		return invalid("HTTP and HTTPS ports are both %d; want two different host ports", s.HTTPPort)
	case len(s.Token) == 0:
		return invalid("token is empty; the proxy needs one to authenticate to the control plane")
	case len(s.Token) > maxSecretSize:
		return invalid("token is %d bytes; want at most %d (Swarm's limit for a secret)", len(s.Token), maxSecretSize)
	case s.StopGrace < 0:
		return invalid("stop grace %s: want 0 (the default, %s) or more", s.StopGrace, orchestrator.DefaultProxyStopGrace)
	}
	u, err := url.Parse(s.ControlURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid("control URL %q: want an absolute http:// or https:// URL of the control plane's internal listener", s.ControlURL)
	}
	for i, c := range s.Constraints {
		if strings.TrimSpace(c) == "" {
			return invalid("constraint %d is empty; want an expression such as node.role==manager", i+1)
		}
	}
	return nil
}

// proxySecretName names the secret holding token: derived from the content,
// so a new token is a new secret (secrets are immutable) and the service
// update that switches to it rolls the proxy.
func proxySecretName(name string, token []byte) string {
	sum := sha256.Sum256(token)
	return name + "-token-" + hex.EncodeToString(sum[:])[:12]
}

func proxyVolumeName(name string) string { return name + "-state" }

// listenerServiceName is the proxy's listener holder, listenerVolumeName
// the volume through which the two meet.
func listenerServiceName(name string) string { return orchestrator.ProxyListenerService(name) }
func listenerVolumeName(name string) string  { return name + "-sockets" }

// proxyLabels are the labels of the proxy's service, containers, secrets and
// volume.
func proxyLabels(s orchestrator.ProxySpec) map[string]string {
	l := map[string]string{
		orchestrator.LabelManaged: "true",
		orchestrator.LabelRole:    orchestrator.RoleProxy,
		orchestrator.LabelProxy:   s.Name,
	}
	if s.InstallID != "" {
		l[orchestrator.LabelInstall] = s.InstallID
	}
	return l
}

// ProxyServiceSpec translates the proxy spec into its Swarm service, with the
// spec hash in orchestrator.LabelSpecHash. It is pure; the token secret is
// referenced by name only (its id is filled in by EnsureProxy), so the hash
// depends on the token's content, not on when its secret was created. Of
// o, it uses the edge network and the log driver (its access log has a line
// per request).
func ProxyServiceSpec(s orchestrator.ProxySpec, o SpecOptions) (swarm.ServiceSpec, error) {
	if err := ValidateProxySpec(s); err != nil {
		return swarm.ServiceSpec{}, err
	}
	edgeNetwork := o.EdgeNetwork
	if edgeNetwork == "" {
		edgeNetwork = orchestrator.EdgeNetwork
	}
	grace := s.StopGrace
	if grace == 0 {
		grace = orchestrator.DefaultProxyStopGrace
	}
	constraints := s.Constraints
	if constraints == nil {
		constraints = []string{"node.role==manager"}
	}
	labels := proxyLabels(s)
	delay, attempts := restartDelay, uint64(0)
	env := map[string]string{
		orchestrator.EnvProxyControlURL: s.ControlURL,
		// Swarm expands the template per task.
		orchestrator.EnvProxyNode:      "{{.Node.Hostname}}",
		orchestrator.EnvProxyListeners: orchestrator.ProxyListenersSocket,
		// The state volume is shared with the next proxy on the node
		// (start-first): what is this process's own is not.
		orchestrator.EnvProxyRunDir: "/run/berth",
	}
	if s.NoAccessLog {
		env[orchestrator.EnvProxyAccessLog] = "false"
	}

	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: s.Name, Labels: maps.Clone(labels)},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:           s.Image,
				Labels:          maps.Clone(labels),
				Env:             envList(env),
				StopSignal:      "SIGTERM",
				StopGracePeriod: &grace,
				// Healthy once HAProxy runs: a start-first update stops the
				// old proxy only then, and a new one that never gets there
				// rolls back without having replaced anything.
				Healthcheck: &container.HealthConfig{
					Test:     []string{"CMD", "/usr/local/bin/berth", "probe", "tcp", fmt.Sprintf("127.0.0.1:%d", orchestrator.ProxyStatsPort)},
					Interval: 2 * time.Second, Timeout: 2 * time.Second, StartPeriod: time.Minute, Retries: 3,
				},
				Mounts: []mount.Mount{{
					Type:   mount.TypeVolume,
					Source: proxyVolumeName(s.Name),
					Target: orchestrator.ProxyStateDir,
					// A new volume is filled from the image's directory,
					// owned by the haproxy user; labels apply when a task
					// creates the volume on its node.
					VolumeOptions: &mount.VolumeOptions{Labels: maps.Clone(labels)},
				}, listenersMount(labels)},
				Secrets: []*swarm.SecretReference{{
					SecretName: proxySecretName(s.Name, s.Token),
					// 0444: the proxy runs as the haproxy user, whose uid
					// differs between base images; only it and root run in
					// the container.
					File: &swarm.SecretReferenceFileTarget{Name: proxyTokenName, UID: "0", GID: "0", Mode: 0o444},
				}},
			},
			// Swarm's restart delay is fixed, not exponential: a crash-looping
			// proxy restarts every restartDelay.
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &delay, MaxAttempts: &attempts},
			Placement:     &swarm.Placement{Constraints: slices.Clone(constraints)},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: edgeNetwork}},
			LogDriver:     o.LogDriver,
		},
		Mode: swarm.ServiceMode{Global: &swarm.GlobalService{}},
		// The host ports are the listener holder's, so the new proxy starts
		// next to the old one and accepts on the same sockets before the old
		// one stops (nodes one at a time); a new proxy that fails within
		// the monitor period rolls the service back to the old one.
		UpdateConfig:   startFirst(swarm.UpdateFailureActionRollback),
		RollbackConfig: startFirst(swarm.UpdateFailureActionPause),
		EndpointSpec:   &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}
	return withSpecHash(spec)
}

func startFirst(onFailure string) *swarm.UpdateConfig {
	return &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst, FailureAction: onFailure, Monitor: 10 * time.Second}
}

func withSpecHash(spec swarm.ServiceSpec) (swarm.ServiceSpec, error) {
	hash, err := specHash(spec)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	spec.Annotations.Labels[orchestrator.LabelSpecHash] = hash
	return spec, nil
}

// listenersMount is the volume through which the proxy and the listener
// holder of a node meet.
func listenersMount(labels map[string]string) mount.Mount {
	return mount.Mount{
		Type:          mount.TypeVolume,
		Source:        listenerVolumeName(labels[orchestrator.LabelProxy]),
		Target:        path.Dir(orchestrator.ProxyListenersSocket),
		VolumeOptions: &mount.VolumeOptions{Labels: maps.Clone(labels)},
	}
}

// ListenerServiceSpec is the proxy's listener holder (`berth proxy listen`,
// internal/proxy/listeners): a global service on the host's network that
// binds the host ports once and hands the sockets to the proxy tasks of its
// node, so that neither a proxy update nor its own (which takes the sockets
// from its predecessor) refuses a connection. It runs as root, to bind
// ports below 1024; it reads nothing from the network, only hands out
// sockets, and its Unix socket is the proxy user's alone.
func ListenerServiceSpec(s orchestrator.ProxySpec) (swarm.ServiceSpec, error) {
	if err := ValidateProxySpec(s); err != nil {
		return swarm.ServiceSpec{}, err
	}
	constraints := s.Constraints
	if constraints == nil {
		constraints = []string{"node.role==manager"}
	}
	labels := proxyLabels(s)
	delay, attempts, grace := restartDelay, uint64(0), 5*time.Second
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: listenerServiceName(s.Name), Labels: maps.Clone(labels)},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:  s.Image,
				Labels: maps.Clone(labels),
				Args: []string{"listen", "--socket", orchestrator.ProxyListenersSocket, "--owner", "haproxy",
					"--http", ":" + strconv.Itoa(s.HTTPPort), "--https", ":" + strconv.Itoa(s.HTTPSPort)},
				User:            "root",
				StopSignal:      "SIGTERM",
				StopGracePeriod: &grace,
				Mounts:          []mount.Mount{listenersMount(labels)},
			},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &delay, MaxAttempts: &attempts},
			Placement:     &swarm.Placement{Constraints: slices.Clone(constraints)},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: "host"}},
		},
		Mode:           swarm.ServiceMode{Global: &swarm.GlobalService{}},
		UpdateConfig:   startFirst(swarm.UpdateFailureActionRollback),
		RollbackConfig: startFirst(swarm.UpdateFailureActionPause),
	}
	return withSpecHash(spec)
}

func (e *Engine) edgeNetwork() string {
	if e.spec.EdgeNetwork != "" {
		return e.spec.EdgeNetwork
	}
	return orchestrator.EdgeNetwork
}

// EnsureProxy creates the proxy's global service and its listener holder's,
// or updates them when their spec hash differs from s's; an unchanged spec
// changes nothing (so the proxy is not restarted). A new token gets a new
// secret; the proxy's older secrets are removed once no service spec refers
// to them, except the one the previous spec used, kept so that Swarm can
// roll a failed update back.
//
// A service of either name that is not a Berth proxy, or belongs to another
// installation, is an error wrapping orchestrator.ErrServiceConflict.
func (e *Engine) EnsureProxy(ctx context.Context, s orchestrator.ProxySpec) error {
	o, err := e.specOptions(ctx)
	if err != nil {
		return err
	}
	spec, err := ProxyServiceSpec(s, o)
	if err != nil {
		return err
	}
	holder, err := ListenerServiceSpec(s)
	if err != nil {
		return err
	}
	// Nothing is created for a proxy that cannot be: a foreign service of
	// its name, no edge network.
	if svc, err := e.inspectService(ctx, s.Name); err != nil {
		return err
	} else if svc != nil {
		if err := ownProxy(svc, s.InstallID); err != nil {
			return err
		}
	}
	if err := e.requireNetwork(ctx, e.edgeNetwork()); err != nil {
		return err
	}
	if _, err := e.ensureProxyService(ctx, &holder, s.InstallID, nil); err != nil {
		return err
	}
	svc, err := e.ensureProxyService(ctx, &spec, s.InstallID, func() error {
		secretID, err := e.ensureProxySecret(ctx, s)
		spec.TaskTemplate.ContainerSpec.Secrets[0].SecretID = secretID
		return err
	})
	if err != nil || svc == nil {
		return err
	}
	return e.pruneProxy(ctx, s.Name, svc)
}

// ensureProxyService creates or updates one of the proxy's services to spec
// unless its spec hash is already spec's; prepare, when not nil, runs before
// a create or an update. It returns the service as it is then.
func (e *Engine) ensureProxyService(ctx context.Context, spec *swarm.ServiceSpec, installID string, prepare func() error) (*swarm.Service, error) {
	name := spec.Annotations.Name
	for attempt := 0; ; attempt++ {
		svc, err := e.inspectService(ctx, name)
		if err != nil {
			return nil, err
		}
		if svc != nil {
			if err := ownProxy(svc, installID); err != nil {
				return nil, err
			}
			if svc.Spec.Labels[orchestrator.LabelSpecHash] == spec.Labels[orchestrator.LabelSpecHash] {
				return svc, nil
			}
		}
		if prepare != nil {
			if err := prepare(); err != nil {
				return nil, err
			}
		}
		if svc == nil {
			_, err = e.api.ServiceCreate(ctx, *spec, swarm.ServiceCreateOptions{})
			if err != nil && attempt < 3 && (cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err)) {
				continue // created concurrently: compare with it
			}
			if err != nil {
				return nil, fmt.Errorf("creating proxy service %s: %w", name, e.unreachable(err))
			}
		} else {
			_, err = e.api.ServiceUpdate(ctx, svc.ID, svc.Version, *spec, swarm.ServiceUpdateOptions{})
			if err != nil && attempt < 3 && strings.Contains(err.Error(), "update out of sequence") {
				continue // changed concurrently: compare again
			}
			if err != nil {
				return nil, fmt.Errorf("updating proxy service %s: %w", name, e.unreachable(err))
			}
		}
		return e.inspectService(ctx, name)
	}
}

// pruneProxy removes what earlier specs of the proxy left: secrets and images.
func (e *Engine) pruneProxy(ctx context.Context, name string, svc *swarm.Service) error {
	return errors.Join(e.pruneProxySecrets(ctx, name, svc), e.pruneProxyImages(ctx, svc))
}

// proxyImageMinAge keeps a proxy image that another installation on the same
// engine may have just built for a service it is about to create.
const proxyImageMinAge = time.Hour

// pruneProxyImages removes proxy images (one per Berth binary and base image
// ever run, ~50 MB of their own each) that neither svc's spec nor its
// previous one (kept for Swarm's rollback) names, once they are an hour old.
// An image a container still uses is left to a later run.
func (e *Engine) pruneProxyImages(ctx context.Context, svc *swarm.Service) error {
	keep := map[string]bool{}
	for _, spec := range []*swarm.ServiceSpec{&svc.Spec, svc.PreviousSpec} {
		if spec != nil && spec.TaskTemplate.ContainerSpec != nil {
			keep[spec.TaskTemplate.ContainerSpec.Image] = true
		}
	}
	images, err := e.api.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", orchestrator.LabelManaged+"=true"),
		filters.Arg("label", orchestrator.LabelRole+"="+orchestrator.RoleProxy))})
	if err != nil {
		return fmt.Errorf("listing proxy images: %w", e.unreachable(err))
	}
	var errs []error
	for _, img := range images {
		if slices.ContainsFunc(img.RepoTags, func(t string) bool { return keep[t] }) ||
			time.Since(time.Unix(img.Created, 0)) < proxyImageMinAge {
			continue
		}
		_, err := e.api.ImageRemove(ctx, img.ID, image.RemoveOptions{PruneChildren: true})
		if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
			errs = append(errs, fmt.Errorf("removing old proxy image %s: %w", img.ID, e.unreachable(err)))
		}
	}
	return errors.Join(errs...)
}

// ownProxy fails unless svc is a Berth proxy of this installation.
func ownProxy(svc *swarm.Service, installID string) error {
	l := svc.Spec.Labels
	if l[orchestrator.LabelManaged] != "true" || l[orchestrator.LabelRole] != orchestrator.RoleProxy {
		return fmt.Errorf("%w: service %s exists and is not a Berth proxy; remove it or give the proxy another name", orchestrator.ErrServiceConflict, svc.Spec.Name)
	}
	if installID != "" && l[orchestrator.LabelInstall] != installID {
		return fmt.Errorf("%w: proxy service %s belongs to Berth installation %q, not %q", orchestrator.ErrServiceConflict, svc.Spec.Name, l[orchestrator.LabelInstall], installID)
	}
	return nil
}

// requireNetwork fails in plain words when the network is missing: Bootstrap
// creates the edge network, with the subnet it needs.
func (e *Engine) requireNetwork(ctx context.Context, name string) error {
	list, err := e.api.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return fmt.Errorf("listing networks: %w", e.unreachable(err))
	}
	for _, n := range list {
		if n.Name == name { // the filter matches substrings
			return nil
		}
	}
	return fmt.Errorf("the edge network %s does not exist; bootstrap the engine first (it creates the network)", name)
}

// proxySecrets lists the proxy's secrets, name → id.
func (e *Engine) proxySecrets(ctx context.Context, name string) (map[string]string, error) {
	list, err := e.api.SecretList(ctx, swarm.SecretListOptions{Filters: filters.NewArgs(
		filters.Arg("label", orchestrator.LabelManaged+"=true"),
		filters.Arg("label", orchestrator.LabelRole+"="+orchestrator.RoleProxy),
		filters.Arg("label", orchestrator.LabelProxy+"="+name),
	)})
	if err != nil {
		return nil, fmt.Errorf("listing the secrets of proxy %s: %w", name, e.unreachable(err))
	}
	ids := make(map[string]string, len(list))
	for _, s := range list {
		ids[s.Spec.Name] = s.ID
	}
	return ids, nil
}

// ensureProxySecret creates the secret holding s.Token unless it exists and
// returns its id.
func (e *Engine) ensureProxySecret(ctx context.Context, s orchestrator.ProxySpec) (string, error) {
	name := proxySecretName(s.Name, s.Token)
	have, err := e.proxySecrets(ctx, s.Name)
	if err != nil {
		return "", err
	}
	if id, ok := have[name]; ok {
		return id, nil // same name, same content
	}
	resp, err := e.api.SecretCreate(ctx, swarm.SecretSpec{
		Annotations: swarm.Annotations{Name: name, Labels: proxyLabels(s)},
		Data:        s.Token,
	})
	if err == nil {
		return resp.ID, nil
	}
	if cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err) {
		// Created concurrently, or a secret of that name that is not ours.
		if have, err2 := e.proxySecrets(ctx, s.Name); err2 == nil && have[name] != "" {
			return have[name], nil
		}
		return "", fmt.Errorf("%w: a secret named %s exists and is not this proxy's; remove it (`docker secret rm %s`)", orchestrator.ErrServiceConflict, name, name)
	}
	return "", fmt.Errorf("creating the token secret of proxy %s: %w", s.Name, e.unreachable(err))
}

// pruneProxySecrets removes the proxy's secrets that neither svc's spec nor
// its previous spec (what a rollback returns to) refers to; with svc nil, all
// of them. Swarm refuses to remove one a service still uses, which is then
// left for the next call.
func (e *Engine) pruneProxySecrets(ctx context.Context, name string, svc *swarm.Service) error {
	have, err := e.proxySecrets(ctx, name)
	if err != nil {
		return err
	}
	used := map[string]bool{}
	if svc != nil {
		for _, spec := range []*swarm.ServiceSpec{&svc.Spec, svc.PreviousSpec} {
			if spec == nil || spec.TaskTemplate.ContainerSpec == nil {
				continue
			}
			for _, ref := range spec.TaskTemplate.ContainerSpec.Secrets {
				used[ref.SecretID] = true
			}
		}
	}
	var errs []error
	for secret, id := range have {
		if used[id] {
			continue
		}
		if err := e.api.SecretRemove(ctx, id); err != nil && !cerrdefs.IsNotFound(err) && !inUse(err) {
			errs = append(errs, fmt.Errorf("removing secret %s of proxy %s: %w", secret, name, e.unreachable(err)))
		}
	}
	return errors.Join(errs...)
}

// ProxyReplicas lists the latest task of the proxy on each node that runs it
// (or tried to), sorted by node name. A missing service has none.
func (e *Engine) ProxyReplicas(ctx context.Context, name string) ([]orchestrator.ProxyReplica, error) {
	out := []orchestrator.ProxyReplica{}
	svc, err := e.inspectService(ctx, name)
	if err != nil || svc == nil {
		return out, err
	}
	tasks, err := e.api.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", svc.ID))})
	if err != nil {
		return nil, fmt.Errorf("listing tasks of proxy %s: %w", name, e.unreachable(err))
	}
	latest := map[string]swarm.Task{} // node id → newest task
	for _, t := range tasks {
		if t.ServiceID != svc.ID {
			continue
		}
		if cur, ok := latest[t.NodeID]; !ok || t.Meta.CreatedAt.After(cur.Meta.CreatedAt) {
			latest[t.NodeID] = t
		}
	}
	hostnames := e.hostnames(ctx)
	for nodeID, t := range latest {
		// A node that no longer runs the proxy (drained, constraint no
		// longer met) keeps its last task in the history: leave it out,
		// unless it failed, which says why the node has no proxy.
		if !wantedRunning(t) && !failed(t) {
			continue
		}
		r := orchestrator.ProxyReplica{
			TaskID:  t.ID,
			NodeID:  nodeID,
			Node:    hostnames[nodeID],
			Desired: string(t.DesiredState),
			State:   string(t.Status.State),
			Error:   t.Status.Err,
		}
		if r.Node == "" {
			r.Node = nodeID
		}
		if cs := t.Spec.ContainerSpec; cs != nil {
			r.Image = cs.Image
		}
		if c := t.Status.ContainerStatus; c != nil && c.ContainerID != "" {
			r.ContainerID = c.ContainerID
			// The spec sets no hostname, so Docker's default applies.
			r.Hostname = c.ContainerID[:min(12, len(c.ContainerID))]
			if r.Error == "" && failed(t) && c.ExitCode != 0 {
				r.Error = "exited with code " + strconv.Itoa(c.ExitCode)
			}
		}
		if t.Status.State == swarm.TaskStateRunning {
			r.StartedAt = t.Status.Timestamp
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b orchestrator.ProxyReplica) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// wantedRunning says Swarm wants the task to run: desired state running, or
// ready while a restart delay or a stop-first update holds it back.
func wantedRunning(t swarm.Task) bool {
	switch t.DesiredState {
	case swarm.TaskStateShutdown, swarm.TaskStateComplete, swarm.TaskStateRemove, swarm.TaskStateOrphaned,
		swarm.TaskStateFailed, swarm.TaskStateRejected:
		return false
	}
	return true
}

// RemoveProxy removes the proxy's services (the proxy and its listener
// holder), secrets and sockets volume and, unless keepState, its state
// volume on this node, once the containers have released them (within the
// stop grace period). Volumes are per node: on a cluster, other nodes keep
// theirs. Removing a missing proxy is not an error.
func (e *Engine) RemoveProxy(ctx context.Context, name string, keepState bool) error {
	if name == "" {
		return fmt.Errorf("%w: name is empty", orchestrator.ErrInvalidProxySpec)
	}
	grace := orchestrator.DefaultProxyStopGrace
	for _, service := range []string{name, listenerServiceName(name)} {
		svc, err := e.inspectService(ctx, service)
		if err != nil {
			return err
		}
		if svc == nil {
			continue
		}
		if err := ownProxy(svc, ""); err != nil {
			return err
		}
		if cs := svc.Spec.TaskTemplate.ContainerSpec; cs != nil && cs.StopGracePeriod != nil {
			grace = max(grace, *cs.StopGracePeriod)
		}
		if err := e.api.ServiceRemove(ctx, svc.ID); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("removing proxy service %s: %w", service, e.unreachable(err))
		}
	}
	if err := e.pruneProxySecrets(ctx, name, nil); err != nil {
		return err
	}
	volumes := []string{listenerVolumeName(name)}
	if !keepState {
		volumes = append(volumes, proxyVolumeName(name))
	}
	for _, vol := range volumes {
		if err := e.removeProxyVolume(ctx, name, vol, grace); err != nil {
			return err
		}
	}
	return nil
}

// removeProxyVolume removes one of the proxy's volumes once no container
// uses it, waiting at most the stop grace period plus a margin for the
// containers to go.
func (e *Engine) removeProxyVolume(ctx context.Context, name, vol string, grace time.Duration) error {
	api := e.api
	v, err := api.VolumeInspect(ctx, vol)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspecting volume %s: %w", vol, e.unreachable(err))
	}
	if v.Labels[orchestrator.LabelProxy] != name || v.Labels[orchestrator.LabelManaged] != "true" {
		return fmt.Errorf("volume %s is not a volume of proxy %s (it lacks Berth's labels); left in place", vol, name)
	}
	ctx, cancel := context.WithTimeout(ctx, grace+30*time.Second)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		err := e.api.VolumeRemove(ctx, vol, false)
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		if !cerrdefs.IsConflict(err) {
			return fmt.Errorf("removing volume %s: %w", vol, e.unreachable(err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("volume %s is still in use by a container after the proxy was removed: %w", vol, err)
		case <-tick.C:
		}
	}
}

// GatewayAddr returns the IPv4 gateway of the docker_gwbridge network: the
// host's address as containers on overlay networks reach it (they cannot use
// 127.0.0.1). On a single-node install, the proxy reaches the control plane
// there; in a cluster, use the manager's advertise address instead.
func (e *Engine) GatewayAddr(ctx context.Context) (netip.Addr, error) {
	list, err := e.api.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", gwBridge))})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("listing networks: %w", e.unreachable(err))
	}
	for _, n := range list {
		if n.Name != gwBridge {
			continue
		}
		for _, c := range n.IPAM.Config {
			if a, err := netip.ParseAddr(c.Gateway); err == nil && a.Is4() {
				return a, nil
			}
		}
		// Without an explicit gateway, Docker gives the bridge the subnet's
		// first address.
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil && p.Addr().Is4() {
				return p.Masked().Addr().Next(), nil
			}
		}
		return netip.Addr{}, fmt.Errorf("network %s has no IPv4 subnet", gwBridge)
	}
	return netip.Addr{}, fmt.Errorf("%w: network %s does not exist; the engine creates it when it joins a swarm (`docker swarm init`)", orchestrator.ErrSwarmNotReady, gwBridge)
}
