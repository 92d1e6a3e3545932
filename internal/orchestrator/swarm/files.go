package swarm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/berthpaas/berth/internal/orchestrator"
)

// File mounts (app.Spec.Files) become Docker configs, or secrets, named by
// FileName. They are immutable and shared by every release of the app whose
// file is the same, so they are created before the service that uses them
// and removed only once no service of the app references them (PruneFiles).

// ensureFiles creates the release's missing configs and secrets and returns
// the spec options (specOptions) with their ids (SpecOptions.FileIDs).
func (e *Engine) ensureFiles(ctx context.Context, r orchestrator.Release) (SpecOptions, error) {
	opts, err := e.specOptions(ctx)
	if err != nil || len(r.Spec.Files) == 0 {
		return opts, err
	}
	appID := r.Labels[orchestrator.LabelApp]
	if appID == "" || r.VolumePrefix == "" {
		return opts, fmt.Errorf("release %s: files need the app label and the volume prefix", r.Service)
	}
	configs, secrets, err := e.fileIDs(ctx, appID)
	if err != nil {
		return opts, err
	}
	labels := map[string]string{orchestrator.LabelManaged: "true", orchestrator.LabelApp: appID}
	if v := r.Labels[orchestrator.LabelInstall]; v != "" {
		labels[orchestrator.LabelInstall] = v
	}
	opts.FileIDs = map[string]string{}
	for _, f := range r.Spec.Files {
		name := FileName(r.VolumePrefix, f)
		have := configs
		if f.Secret {
			have = secrets
		}
		id, ok := have[name]
		if !ok {
			ann := swarm.Annotations{Name: name, Labels: maps.Clone(labels)}
			if f.Secret {
				var resp swarm.SecretCreateResponse
				resp, err = e.api.SecretCreate(ctx, swarm.SecretSpec{Annotations: ann, Data: []byte(f.Content)})
				id = resp.ID
			} else {
				var resp swarm.ConfigCreateResponse
				resp, err = e.api.ConfigCreate(ctx, swarm.ConfigSpec{Annotations: ann, Data: []byte(f.Content)})
				id = resp.ID
			}
			if err != nil && (cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err)) {
				// Created concurrently: same name, so same content.
				if configs, secrets, err = e.fileIDs(ctx, appID); err == nil {
					if f.Secret {
						id = secrets[name]
					} else {
						id = configs[name]
					}
					if id == "" {
						err = fmt.Errorf("%s exists but carries no label of app %s", name, appID)
					}
				}
			}
			if err != nil {
				return opts, fmt.Errorf("creating the %s for file %s: %w", fileKind(f.Secret), f.Target, e.unreachable(err))
			}
			have[name] = id
		}
		opts.FileIDs[name] = id
	}
	return opts, nil
}

func fileKind(secret bool) string {
	if secret {
		return "secret"
	}
	return "config"
}

// fileIDs lists the app's configs and secrets, name → id.
func (e *Engine) fileIDs(ctx context.Context, appID string) (configs, secrets map[string]string, err error) {
	f := filters.NewArgs(filters.Arg("label", orchestrator.LabelManaged+"=true"), filters.Arg("label", orchestrator.LabelApp+"="+appID))
	cl, err := e.api.ConfigList(ctx, swarm.ConfigListOptions{Filters: f})
	if err != nil {
		return nil, nil, fmt.Errorf("listing configs: %w", e.unreachable(err))
	}
	sl, err := e.api.SecretList(ctx, swarm.SecretListOptions{Filters: f})
	if err != nil {
		return nil, nil, fmt.Errorf("listing secrets: %w", e.unreachable(err))
	}
	configs, secrets = make(map[string]string, len(cl)), make(map[string]string, len(sl))
	for _, c := range cl {
		configs[c.Spec.Name] = c.ID
	}
	for _, s := range sl {
		secrets[s.Spec.Name] = s.ID
	}
	return configs, secrets, nil
}

// PruneFiles removes the app's configs and secrets that no service of the
// app references. One still in use (a service created meanwhile) is kept.
func (e *Engine) PruneFiles(ctx context.Context, appID string) error {
	if appID == "" {
		return errors.New("pruning files: the app id is empty")
	}
	services, err := e.api.ServiceList(ctx, swarm.ServiceListOptions{
		Filters: filters.NewArgs(filters.Arg("label", orchestrator.LabelApp+"="+appID)),
	})
	if err != nil {
		return fmt.Errorf("listing services: %w", e.unreachable(err))
	}
	used := map[string]bool{}
	for _, s := range services {
		if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
			for _, c := range cs.Configs {
				used[c.ConfigID] = true
			}
			for _, c := range cs.Secrets {
				used[c.SecretID] = true
			}
		}
	}
	configs, secrets, err := e.fileIDs(ctx, appID)
	if err != nil {
		return err
	}
	var errs []error
	remove := func(kind, name, id string, rm func(context.Context, string) error) {
		if used[id] {
			return
		}
		if err := rm(ctx, id); err != nil && !cerrdefs.IsNotFound(err) && !inUse(err) {
			errs = append(errs, fmt.Errorf("removing %s %s: %w", kind, name, e.unreachable(err)))
		}
	}
	for name, id := range configs {
		remove("config", name, id, e.api.ConfigRemove)
	}
	for name, id := range secrets {
		remove("secret", name, id, e.api.SecretRemove)
	}
	return errors.Join(errs...)
}

// inUse: Swarm refuses to remove a config or secret a service references
// (InvalidArgument with this text on the engines Berth supports).
func inUse(err error) bool {
	return cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "in use")
}
