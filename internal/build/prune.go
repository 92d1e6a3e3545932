package build

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types"
	dockerbuild "github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"
)

// Pruner is the subset of the Docker client Prune uses.
type Pruner interface {
	Info(ctx context.Context) (system.Info, error)
	ImageList(ctx context.Context, options image.ListOptions) ([]image.Summary, error)
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImageRemove(ctx context.Context, imageID string, options image.RemoveOptions) ([]image.DeleteResponse, error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ServiceList(ctx context.Context, options swarm.ServiceListOptions) ([]swarm.Service, error)
	TaskList(ctx context.Context, options swarm.TaskListOptions) ([]swarm.Task, error)
}

// CachePruner is the subset of the Docker client PruneBuildCache and
// DiskUsage use.
type CachePruner interface {
	DiskUsage(ctx context.Context, options types.DiskUsageOptions) (types.DiskUsage, error)
	BuildCachePrune(ctx context.Context, opts dockerbuild.CachePruneOptions) (*dockerbuild.CachePruneReport, error)
	ImagesPrune(ctx context.Context, pruneFilters filters.Args) (image.PruneReport, error)
	ClientVersion() string
}

var (
	_ Builder     = (*client.Client)(nil)
	_ Pruner      = (*client.Client)(nil)
	_ CachePruner = (*client.Client)(nil)
)

// Image is one image of an app.
type Image struct {
	ID      string
	Tags    []string
	Created time.Time
}

// SkippedImage is an image Prune would have removed but left in place.
type SkippedImage struct {
	Image
	Reason string // e.g. "used by container shop-api.1.x3f (running)"
}

// PruneReport says what Prune did with each of the app's images.
type PruneReport struct {
	Kept    []Image // the newest ones
	Removed []Image
	Skipped []SkippedImage
}

// Prune removes the images labelled berth.app=app beyond the newest keep.
// An image a container (running or not) or a service uses, including a
// service's previous spec (what a rollback returns to), is never removed:
// it is reported in Skipped with the reason. Volumes are never touched.
func Prune(ctx context.Context, cli Pruner, app string, keep int) (PruneReport, error) {
	var rep PruneReport
	if err := labelValue("app", app, true); err != nil {
		return rep, err
	}
	if keep < 0 {
		return rep, invalid("keep", "%d: want 0 or more images to keep", keep)
	}
	list, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelApp+"="+app))})
	if err != nil {
		return rep, fmt.Errorf("listing the images of %s: %w", app, err)
	}
	images := make([]Image, 0, len(list))
	for _, s := range list {
		img := Image{ID: s.ID, Tags: usableTags(s.RepoTags), Created: time.Unix(s.Created, 0)}
		if t, err := time.Parse(time.RFC3339Nano, s.Labels[LabelBuilt]); err == nil {
			img.Created = t
		} else if in, err := cli.ImageInspect(ctx, s.ID); err == nil {
			// The list has seconds; builds of one app can be closer than that.
			if t, err := time.Parse(time.RFC3339Nano, in.Created); err == nil {
				img.Created = t
			}
		}
		images = append(images, img)
	}
	slices.SortFunc(images, func(a, b Image) int {
		return cmp.Or(b.Created.Compare(a.Created), strings.Compare(a.ID, b.ID))
	})
	if len(images) <= keep {
		rep.Kept = images
		return rep, nil
	}
	rep.Kept = images[:keep]
	old := images[keep:]

	users, err := imageUsers(ctx, cli, old)
	if err != nil {
		return rep, err
	}
	for _, img := range old {
		if reason, ok := users[img.ID]; ok {
			rep.Skipped = append(rep.Skipped, SkippedImage{img, reason})
			continue
		}
		if reason, err := removeImage(ctx, cli, img); err != nil {
			return rep, err
		} else if reason != "" {
			rep.Skipped = append(rep.Skipped, SkippedImage{img, reason})
			continue
		}
		rep.Removed = append(rep.Removed, img)
	}
	return rep, nil
}

// usableTags drops the "<none>:<none>" placeholder of untagged images.
func usableTags(tags []string) []string {
	return slices.DeleteFunc(slices.Clone(tags), func(t string) bool { return t == "<none>:<none>" })
}

// imageUsers maps the ID of each image in imgs that something uses to a
// description of the first user found.
func imageUsers(ctx context.Context, cli Pruner, imgs []Image) (map[string]string, error) {
	users := map[string]string{}
	containers, err := cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("listing containers to keep the images they use: %w", err)
	}
	for _, c := range containers {
		if _, ok := users[c.ImageID]; !ok {
			name := c.ID[:min(12, len(c.ID))]
			if len(c.Names) > 0 {
				name = strings.TrimPrefix(c.Names[0], "/")
			}
			users[c.ImageID] = fmt.Sprintf("used by container %s (%s)", name, c.State)
		}
	}

	info, err := cli.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking the engine whether it manages a swarm: %w", err)
	}
	// Only a manager sees services and tasks; on a worker, the task
	// containers of this node are in the container list already.
	if !info.Swarm.ControlAvailable {
		return users, nil
	}
	refs := map[string]string{} // image reference → its user
	services, err := cli.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing services to keep the images they use: %w", err)
	}
	for _, s := range services {
		if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
			refs[cs.Image] = cmp.Or(refs[cs.Image], "used by service "+s.Spec.Name)
		}
		if s.PreviousSpec != nil && s.PreviousSpec.TaskTemplate.ContainerSpec != nil {
			r := s.PreviousSpec.TaskTemplate.ContainerSpec.Image
			refs[r] = cmp.Or(refs[r], "kept for rolling back service "+s.Spec.Name)
		}
	}
	tasks, err := cli.TaskList(ctx, swarm.TaskListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing service tasks to keep the images they use: %w", err)
	}
	for _, t := range tasks {
		if t.DesiredState == swarm.TaskStateShutdown || t.DesiredState == swarm.TaskStateRemove || t.Spec.ContainerSpec == nil {
			continue
		}
		r := t.Spec.ContainerSpec.Image
		refs[r] = cmp.Or(refs[r], "used by task "+t.ID[:min(12, len(t.ID))]+" of service "+t.ServiceID[:min(12, len(t.ServiceID))])
	}
	for _, img := range imgs {
		if _, ok := users[img.ID]; ok {
			continue
		}
		for ref, user := range refs {
			if refersTo(ref, img) {
				users[img.ID] = user + " (" + ref + ")"
				break
			}
		}
	}
	return users, nil
}

// refersTo reports whether the image reference ref (as a service spec
// holds it: "name:tag", "name:tag@sha256:…", "sha256:…") names img.
func refersTo(ref string, img Image) bool {
	if ref == img.ID || "sha256:"+ref == img.ID {
		return true
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false
	}
	// Locally built images have no repository digest; the tag decides.
	tagged := reference.TagNameOnly(reference.TrimNamed(named))
	if t, ok := named.(reference.Tagged); ok {
		if nt, err := reference.WithTag(reference.TrimNamed(named), t.Tag()); err == nil {
			tagged = nt
		}
	}
	for _, tag := range img.Tags {
		if n, err := reference.ParseNormalizedNamed(tag); err == nil && n.String() == tagged.String() {
			return true
		}
	}
	return false
}

// removeImage removes img's tags and with the last one the image. It
// returns a reason instead of removing when the engine refuses because
// something started using the image meanwhile.
func removeImage(ctx context.Context, cli Pruner, img Image) (string, error) {
	names := img.Tags
	if len(names) == 0 {
		names = []string{img.ID}
	}
	for _, n := range names {
		_, err := cli.ImageRemove(ctx, n, image.RemoveOptions{PruneChildren: true})
		switch {
		case err == nil, cerrdefs.IsNotFound(err):
		case cerrdefs.IsConflict(err):
			return "the engine keeps it: " + err.Error(), nil
		default:
			return "", fmt.Errorf("removing image %s (%s): %w", n, shortID(img.ID), err)
		}
	}
	return "", nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(12, len(id))]
}

// danglingMinAge keeps PruneBuildCache away from images a running classic
// build has just committed: until the build tags its result, each step's
// image is untagged, like any leftover of a failed build.
const danglingMinAge = time.Hour

// CacheReport says what PruneBuildCache found and did.
type CacheReport struct {
	Before    int64 // bytes of build cache found
	Reclaimed int64 // bytes the engine reported freed
	Pruned    bool  // whether Before was above the threshold
}

// PruneBuildCache prunes build cache when it takes more than maxBytes:
// BuildKit's cache down to maxBytes (what the engine keeps in use stays),
// and the classic builder's leftovers, the untagged images of failed and
// superseded builds older than an hour. Volumes are never touched.
func PruneBuildCache(ctx context.Context, cli CachePruner, maxBytes int64) (CacheReport, error) {
	var rep CacheReport
	if maxBytes < 0 {
		return rep, invalid("max bytes", "%d: want 0 or more", maxBytes)
	}
	du, err := cli.DiskUsage(ctx, types.DiskUsageOptions{})
	if err != nil {
		return rep, fmt.Errorf("reading the engine's disk usage: %w", err)
	}
	bk, classic := buildKitCache(du), danglingBytes(du)
	rep.Before = bk + classic
	if rep.Before <= maxBytes {
		return rep, nil
	}
	rep.Pruned = true
	if bk > 0 {
		opts := dockerbuild.CachePruneOptions{}
		// keep-storage became reserved-space in API 1.48; 0 means "keep nothing"
		// in both, which the client expresses by leaving the field out.
		if versions.LessThan(cli.ClientVersion(), "1.48") {
			opts.KeepStorage = maxBytes
		} else {
			opts.ReservedSpace = maxBytes
		}
		r, err := cli.BuildCachePrune(ctx, opts)
		if err != nil {
			return rep, fmt.Errorf("pruning the build cache: %w", err)
		}
		rep.Reclaimed += int64(r.SpaceReclaimed)
	}
	if classic > 0 {
		until := time.Now().Add(-danglingMinAge).UTC().Format(time.RFC3339)
		r, err := cli.ImagesPrune(ctx, filters.NewArgs(filters.Arg("dangling", "true"), filters.Arg("until", until)))
		if err != nil {
			return rep, fmt.Errorf("pruning untagged images left by builds: %w", err)
		}
		rep.Reclaimed += int64(r.SpaceReclaimed)
	}
	return rep, nil
}

// buildKitCache sums BuildKit's cache records, as "docker system df" does.
func buildKitCache(du types.DiskUsage) int64 {
	var n int64
	for _, r := range du.BuildCache {
		if r != nil && !r.Shared {
			n += r.Size
		}
	}
	return n
}

// danglingBytes sums what untagged images hold that no other image shares:
// the classic builder's cache of failed and superseded builds. (The
// untagged parents of tagged images share all their layers, so they add
// nothing.)
func danglingBytes(du types.DiskUsage) int64 {
	var n int64
	for _, s := range du.Images {
		if s == nil || len(usableTags(s.RepoTags)) > 0 || s.Containers > 0 {
			continue
		}
		if u := s.Size - max(s.SharedSize, 0); u > 0 {
			n += u
		}
	}
	return n
}

// Usage is the engine's disk use by kind, in bytes, for the UI. The three
// do not overlap: Images excludes what BuildCache counts.
type Usage struct {
	Images     int64 // image layers, tagged images and their parents
	BuildCache int64 // BuildKit's cache and the classic builder's untagged leftovers
	Volumes    int64 // named and anonymous volumes (never pruned by Berth)
}

// DiskUsage reports the engine's disk use by images, build cache and
// volumes.
func DiskUsage(ctx context.Context, cli CachePruner) (Usage, error) {
	du, err := cli.DiskUsage(ctx, types.DiskUsageOptions{})
	if err != nil {
		return Usage{}, fmt.Errorf("reading the engine's disk usage: %w", err)
	}
	dangling := danglingBytes(du)
	u := Usage{Images: max(du.LayersSize-dangling, 0), BuildCache: buildKitCache(du) + dangling}
	for _, v := range du.Volumes {
		if v != nil && v.UsageData != nil && v.UsageData.Size > 0 {
			u.Volumes += v.UsageData.Size
		}
	}
	return u, nil
}
