package swarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/berthpaas/berth/internal/orchestrator"
)

var _ orchestrator.Releases = (*Engine)(nil)

// EnsureNetwork creates the attachable overlay network name, labelled
// berth.managed plus labels, unless it exists; an existing network must be an
// attachable overlay.
func (e *Engine) EnsureNetwork(ctx context.Context, name string, labels map[string]string) error {
	_, err := e.ensureOverlay(ctx, name, "", labels)
	return err
}

// RemoveNetwork removes the network; a missing one is not an error.
func (e *Engine) RemoveNetwork(ctx context.Context, name string) error {
	if err := e.api.NetworkRemove(ctx, name); err != nil && !cerrdefs.IsNotFound(err) {
		if cerrdefs.IsConflict(err) || cerrdefs.IsPermissionDenied(err) || strings.Contains(err.Error(), "in use") {
			return fmt.Errorf("network %s is still in use by services or containers; remove them first: %w", name, err)
		}
		return fmt.Errorf("removing network %s: %w", name, err)
	}
	return nil
}

// RemoveVolume deletes the named volume on this node; a missing one is not an
// error. Volumes are per node: on a cluster, each node that ran the app holds
// its own copy.
func (e *Engine) RemoveVolume(ctx context.Context, name string) error {
	if err := e.api.VolumeRemove(ctx, name, false); err != nil && !cerrdefs.IsNotFound(err) {
		if cerrdefs.IsConflict(err) {
			return fmt.Errorf("volume %s is in use by a container; stop the app first: %w", name, err)
		}
		return fmt.Errorf("removing volume %s: %w", name, err)
	}
	return nil
}

// ResolveImage pins ref to one image: a reference already pinned by digest
// and present is used as is; otherwise the image is inspected on this node,
// pulled when missing, and pinned to its repository digest, or to its image
// id when it has none (built on this node, never pushed or pulled).
func (e *Engine) ResolveImage(ctx context.Context, ref string, auth *orchestrator.RegistryAuth) (orchestrator.ResolvedImage, error) {
	img, err := e.api.ImageInspect(ctx, ref)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return orchestrator.ResolvedImage{}, fmt.Errorf("inspecting image %s: %w", ref, e.unreachable(err))
	}
	if err != nil {
		if err := e.pull(ctx, ref, auth); err != nil {
			return orchestrator.ResolvedImage{}, err
		}
		if img, err = e.api.ImageInspect(ctx, ref); err != nil {
			return orchestrator.ResolvedImage{}, fmt.Errorf("inspecting image %s after pulling it: %w", ref, err)
		}
	}
	res := orchestrator.ResolvedImage{Ref: pin(ref, img.ID, img.RepoDigests)}
	if img.Config != nil && img.Config.Healthcheck != nil {
		t := img.Config.Healthcheck.Test
		res.HasHealthcheck = len(t) > 0 && t[0] != "NONE"
	}
	return res, nil
}

// pin returns the reference Swarm should run: ref itself when it names a
// digest, else "name@sha256:…" from the repo digest of ref's repository, else
// the image id.
func pin(ref, id string, repoDigests []string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return id // an image id or a short id: the image id pins it
	}
	if _, ok := named.(reference.Canonical); ok {
		return ref
	}
	for _, rd := range repoDigests {
		d, err := reference.ParseNormalizedNamed(rd)
		if err != nil {
			continue
		}
		if c, ok := d.(reference.Canonical); ok && d.Name() == named.Name() {
			pinned, err := reference.WithDigest(reference.TrimNamed(named), c.Digest())
			if err == nil {
				return reference.FamiliarString(pinned)
			}
		}
	}
	return id
}

// pull pulls ref and reads the progress stream to its end: the daemon
// reports many failures inside the stream, after a 200 answer.
func (e *Engine) pull(ctx context.Context, ref string, auth *orchestrator.RegistryAuth) error {
	var opts image.PullOptions
	if auth != nil {
		enc, err := encodeAuth(auth)
		if err != nil {
			return err
		}
		opts.RegistryAuth = enc
	}
	rc, err := e.api.ImagePull(ctx, ref, opts)
	if err == nil {
		err = readPullStream(rc)
		rc.Close()
	}
	if err == nil {
		return nil
	}
	if client := e.unreachable(err); errors.Is(client, orchestrator.ErrEngineUnreachable) {
		return fmt.Errorf("pulling image %s: %w", ref, client)
	}
	return pullError(ref, err)
}

func readPullStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if m.Error != nil {
			return m.Error
		}
	}
}

// pullError says in plain words why a pull failed. Registries and the daemon
// report these as text, not typed errors, so the text is what there is.
func pullError(ref string, err error) error {
	msg := err.Error()
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "no basic auth credentials"):
		// A registry with basic auth, pulled from without credentials.
		return fmt.Errorf("%w: image %s: the registry requires credentials; add them for its server under Settings → Registries: %s", orchestrator.ErrImageUnauthorized, ref, msg)
	case cerrdefs.IsUnauthorized(err) || strings.Contains(low, "unauthorized") || strings.Contains(low, "authentication required") ||
		strings.Contains(low, "incorrect username or password"):
		return fmt.Errorf("%w: image %s: the registry refused the credentials: %s", orchestrator.ErrImageUnauthorized, ref, msg)
	case strings.Contains(low, "no such host") || strings.Contains(low, "connection refused") || strings.Contains(low, "i/o timeout") ||
		strings.Contains(low, "network is unreachable") || strings.Contains(low, "tls handshake timeout") || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: image %s not found on this node, and its registry is unreachable: %s", orchestrator.ErrRegistryUnreachable, ref, msg)
	case cerrdefs.IsNotFound(err) || strings.Contains(low, "not found") || strings.Contains(low, "pull access denied") ||
		strings.Contains(low, "does not exist") || strings.Contains(low, "manifest unknown"):
		// "pull access denied" is also what a registry says for a private
		// repository without credentials: say both.
		return fmt.Errorf("%w: image %s not found (checked this node and the registry; if the image is private, check the registry credentials): %s", orchestrator.ErrImageNotFound, ref, msg)
	default:
		return fmt.Errorf("pulling image %s: %w", ref, err)
	}
}

func encodeAuth(a *orchestrator.RegistryAuth) (string, error) {
	enc, err := registry.EncodeAuthConfig(registry.AuthConfig{
		Username:      a.Username,
		Password:      a.Password,
		ServerAddress: a.Server,
	})
	if err != nil {
		return "", fmt.Errorf("encoding registry credentials for %s: %w", a.Server, err)
	}
	return enc, nil
}

// CreateRelease creates the release's service. A service of that name with
// the same deployment label is the same release created before (a resumed
// deployment) and is left as it is; one with another deployment label is an
// error wrapping orchestrator.ErrServiceConflict.
//
// The release's files (configs and secrets) are created first when missing.
func (e *Engine) CreateRelease(ctx context.Context, r orchestrator.Release) error {
	if err := validate(r); err != nil {
		return fmt.Errorf("release %s: %w", r.Service, err)
	}
	specOpts, err := e.ensureFiles(ctx, r)
	if err != nil {
		return err
	}
	spec, err := ServiceSpec(r, specOpts)
	if err != nil {
		return err
	}
	if existing, err := e.sameRelease(ctx, r); existing || err != nil {
		return err
	}
	opts := swarm.ServiceCreateOptions{QueryRegistry: false} // images are pinned already
	if r.Auth != nil {
		if opts.EncodedRegistryAuth, err = encodeAuth(r.Auth); err != nil {
			return err
		}
	}
	if _, err := e.api.ServiceCreate(ctx, spec, opts); err != nil {
		if cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err) {
			// Created concurrently since sameRelease looked.
			if existing, err2 := e.sameRelease(ctx, r); existing || err2 != nil {
				return err2
			}
		}
		return fmt.Errorf("creating service %s: %w", r.Service, e.unreachable(err))
	}
	return nil
}

// sameRelease reports whether r's service exists as r (same deployment), and
// fails when the name is taken by something else.
func (e *Engine) sameRelease(ctx context.Context, r orchestrator.Release) (bool, error) {
	svc, err := e.inspectService(ctx, r.Service)
	if err != nil || svc == nil {
		return false, err
	}
	want, got := r.Labels[orchestrator.LabelDeployment], svc.Spec.Labels[orchestrator.LabelDeployment]
	if svc.Spec.Labels[orchestrator.LabelManaged] == "true" && got == want {
		return true, nil
	}
	return false, fmt.Errorf("%w: service %s exists and belongs to deployment %q, not %q", orchestrator.ErrServiceConflict, r.Service, got, want)
}

// inspectService returns nil, nil when the service does not exist.
func (e *Engine) inspectService(ctx context.Context, name string) (*swarm.Service, error) {
	svc, _, err := e.api.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspecting service %s: %w", name, e.unreachable(err))
	}
	// The API finds services by id prefix and name; insist on the name.
	if svc.Spec.Name != name {
		return nil, nil
	}
	return &svc, nil
}

// ScaleRelease sets the release's replica count in place.
func (e *Engine) ScaleRelease(ctx context.Context, service string, replicas int) error {
	if replicas < 0 {
		return fmt.Errorf("scaling %s: replicas %d; want 0 or more", service, replicas)
	}
	// A concurrent update bumps the version; retry on that conflict.
	for attempt := 0; ; attempt++ {
		svc, err := e.inspectService(ctx, service)
		if err != nil {
			return err
		}
		if svc == nil {
			return fmt.Errorf("scaling %s: %w", service, orchestrator.ErrServiceNotFound)
		}
		if svc.Spec.Mode.Replicated == nil {
			return fmt.Errorf("scaling %s: the service is not replicated", service)
		}
		n := uint64(replicas)
		if r := svc.Spec.Mode.Replicated.Replicas; r != nil && *r == n {
			return nil
		}
		spec := svc.Spec
		spec.Mode.Replicated.Replicas = &n
		_, err = e.api.ServiceUpdate(ctx, svc.ID, svc.Version, spec, swarm.ServiceUpdateOptions{})
		if err == nil {
			return nil
		}
		if attempt < 3 && strings.Contains(err.Error(), "update out of sequence") {
			continue
		}
		return fmt.Errorf("scaling %s to %d: %w", service, replicas, e.unreachable(err))
	}
}

// RemoveRelease removes the service and returns; its containers then stop
// asynchronously, each with its stop grace period (watch ReleaseState or the
// task list to see them gone). A missing service is not an error.
func (e *Engine) RemoveRelease(ctx context.Context, service string) error {
	svc, err := e.inspectService(ctx, service)
	if err != nil || svc == nil {
		return err
	}
	if err := e.api.ServiceRemove(ctx, svc.ID); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("removing service %s: %w", service, e.unreachable(err))
	}
	return nil
}

// Services lists the Berth-managed services carrying all of labels.
func (e *Engine) Services(ctx context.Context, labels map[string]string) ([]orchestrator.ServiceInfo, error) {
	f := filters.NewArgs(filters.Arg("label", orchestrator.LabelManaged+"=true"))
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	list, err := e.api.ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", e.unreachable(err))
	}
	var netNames map[string]string // network id → name, listed when needed
	out := make([]orchestrator.ServiceInfo, 0, len(list))
	for _, s := range list {
		info := orchestrator.ServiceInfo{
			ID:       s.ID,
			Name:     s.Spec.Name,
			Labels:   maps.Clone(s.Spec.Labels),
			SpecHash: s.Spec.Labels[orchestrator.LabelSpecHash],
		}
		if s.Spec.Mode.Replicated != nil && s.Spec.Mode.Replicated.Replicas != nil {
			info.Replicas = int(*s.Spec.Mode.Replicated.Replicas)
		}
		if info.SpecHash != "" {
			if netNames == nil && len(s.Spec.TaskTemplate.Networks) > 0 {
				if netNames, err = e.networkNames(ctx); err != nil {
					return nil, err
				}
			}
			live, err := specHash(liveSpec(s.Spec, netNames))
			info.Drifted = err == nil && live != info.SpecHash
		}
		out = append(out, info)
	}
	return out, nil
}

func (e *Engine) networkNames(ctx context.Context) (map[string]string, error) {
	nets, err := e.api.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing networks: %w", e.unreachable(err))
	}
	names := make(map[string]string, len(nets))
	for _, n := range nets {
		names[n.ID] = n.Name
	}
	return names, nil
}

// liveSpec undoes what the engine changes in a spec it stores, so that an
// unchanged service hashes as it did when ServiceSpec made it: the engine
// fills in the default isolation and runtime, and replaces network names
// with ids.
func liveSpec(spec swarm.ServiceSpec, netNames map[string]string) swarm.ServiceSpec {
	if cs := spec.TaskTemplate.ContainerSpec; cs != nil && cs.Isolation == "default" {
		c := *cs
		c.Isolation = ""
		spec.TaskTemplate.ContainerSpec = &c
	}
	if spec.TaskTemplate.Runtime == swarm.RuntimeContainer {
		spec.TaskTemplate.Runtime = ""
	}
	nets := slices.Clone(spec.TaskTemplate.Networks)
	for i, n := range nets {
		if name, ok := netNames[n.Target]; ok {
			nets[i].Target = name
		}
	}
	spec.TaskTemplate.Networks = nets
	return spec
}
