package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// TestPruneKeepsNewestAndSkipsImagesInUse builds four images of one app,
// puts the oldest in a (stopped) container and the second in a service's
// spec, and prunes keeping one: the third goes, the rest stay, and the two
// in use are reported as skipped with their user.
func TestPruneKeepsNewestAndSkipsImagesInUse(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	ctx := context.Background()
	id := uniqueName(t, "prune")
	cleanupLabelled(t, cli, id)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Dockerfile": "FROM " + baseImage + "\nLABEL berth.test=" + id + "\nRUN echo layer > /layer\n"})
	repo := "berth-test/" + id
	var ids []string
	for i := 1; i <= 4; i++ {
		res, err := Build(ctx, cli, Options{Dir: dir, App: id, DeploymentID: fmt.Sprintf("d-%d", i), Tags: []string{fmt.Sprintf("%s:d-%d", repo, i)}}, nil)
		if err != nil {
			t.Fatalf("build %d: %v", i, err)
		}
		ids = append(ids, res.ImageID)
	}
	// Another app's image must not be touched.
	other, err := Build(ctx, cli, Options{Dir: dir, App: id + "-other", DeploymentID: "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanupImage(t, cli, other.ImageID)

	c, err := cli.ContainerCreate(ctx, &container.Config{Image: repo + ":d-1", Cmd: []string{"true"}, Labels: map[string]string{labelTest: id}}, nil, nil, nil, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) })

	info, err := cli.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	withService := info.Swarm.ControlAvailable
	if withService {
		zero := uint64(0)
		s, err := cli.ServiceCreate(ctx, swarm.ServiceSpec{
			Annotations:  swarm.Annotations{Name: id, Labels: map[string]string{labelTest: id}},
			TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: repo + ":d-2", Command: []string{"sleep", "1"}}},
			Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &zero}},
		}, swarm.ServiceCreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cli.ServiceRemove(context.Background(), s.ID) })
	} else {
		t.Log("the engine is no swarm manager: the service case is not exercised")
	}

	rep, err := Prune(ctx, cli, id, 1)
	if err != nil {
		t.Fatal(err)
	}
	imageIDs := func(imgs []Image) []string {
		var out []string
		for _, i := range imgs {
			out = append(out, i.ID)
		}
		return out
	}
	if got := imageIDs(rep.Kept); !slices.Equal(got, ids[3:]) {
		t.Errorf("kept %q; want the newest %q", got, ids[3:])
	}
	wantRemoved := ids[2:3]
	if !withService {
		wantRemoved = []string{ids[2], ids[1]}
	}
	if got := imageIDs(rep.Removed); !slices.Equal(got, wantRemoved) {
		t.Errorf("removed %q; want %q", got, wantRemoved)
	}
	skipped := map[string]string{}
	for _, s := range rep.Skipped {
		skipped[s.ID] = s.Reason
	}
	if r := skipped[ids[0]]; !strings.Contains(r, "used by container "+id) {
		t.Errorf("image 1 skipped for %q; want the container that uses it", r)
	}
	if withService {
		if r := skipped[ids[1]]; !strings.Contains(r, "used by service "+id) {
			t.Errorf("image 2 skipped for %q; want the service that uses it", r)
		}
	}
	for _, gone := range wantRemoved {
		if _, err := cli.ImageInspect(ctx, gone); !cerrdefs.IsNotFound(err) {
			t.Errorf("image %s after prune: %v; want it gone", gone, err)
		}
	}
	for _, kept := range append([]string{ids[0], ids[3], other.ImageID}, map[bool][]string{true: {ids[1]}}[withService]...) {
		if _, err := cli.ImageInspect(ctx, kept); err != nil {
			t.Errorf("image %s after prune: %v; want it kept", kept, err)
		}
	}

	// Keeping more than there are removes nothing.
	rep, err = Prune(ctx, cli, id, 10)
	if err != nil || len(rep.Removed) != 0 || len(rep.Skipped) != 0 {
		t.Errorf("Prune keeping 10: %+v, %v; want nothing removed or skipped", rep, err)
	}
}

func cleanupImage(t *testing.T, cli *client.Client, ref string) {
	t.Cleanup(func() {
		_, err := cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleanup: removing image %s: %v", ref, err)
		}
	})
}

// TestPruneBuildCacheAndDiskUsage loads an untagged image made in 2001
// (what a failed classic build leaves, aged) and checks DiskUsage counts
// it as build cache and PruneBuildCache removes it only above the
// threshold, and never an untagged image of a minute ago.
//
// Pruning with a threshold of 0 also prunes the engine's unused BuildKit
// cache and other untagged images over an hour old: what Berth does on a
// host whose cache is over its threshold.
func TestPruneBuildCacheAndDiskUsage(t *testing.T) {
	t.Parallel()
	cli := dockerClient(t)
	ctx := context.Background()
	const layerBytes = 1 << 20
	imgID := loadUntaggedImage(t, cli, layerBytes, time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
	cleanupImage(t, cli, imgID)
	// An untagged image of a minute ago may be a step of a build that runs.
	freshID := loadUntaggedImage(t, cli, 1024, time.Now().Add(-time.Minute))
	cleanupImage(t, cli, freshID)

	u, err := DiskUsage(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	if u.BuildCache < layerBytes || u.Images <= 0 {
		t.Errorf("disk usage %+v; want build cache of at least the untagged image's %d bytes, and images", u, layerBytes)
	}

	rep, err := PruneBuildCache(ctx, cli, 1<<50)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pruned || rep.Before < layerBytes {
		t.Errorf("below the threshold: %+v; want nothing pruned and at least %d bytes found", rep, layerBytes)
	}
	if _, err := cli.ImageInspect(ctx, imgID); err != nil {
		t.Fatalf("the untagged image went below the threshold: %v", err)
	}

	rep, err = PruneBuildCache(ctx, cli, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pruned || rep.Reclaimed < layerBytes {
		t.Errorf("above the threshold: %+v; want pruned, at least %d bytes reclaimed", rep, layerBytes)
	}
	if _, err := cli.ImageInspect(ctx, imgID); !cerrdefs.IsNotFound(err) {
		t.Errorf("the old untagged image after pruning: %v; want it gone", err)
	}
	if _, err := cli.ImageInspect(ctx, freshID); err != nil {
		t.Errorf("the untagged image of a minute ago after pruning: %v; want it kept", err)
	}
}

// loadUntaggedImage loads an image with one layer of n random bytes,
// created at created and without a tag, and returns its ID.
func loadUntaggedImage(t *testing.T, cli *client.Client, n int, createdAt time.Time) string {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	data := make([]byte, n)
	_, _ = rand.Read(data)
	if err := tw.WriteHeader(&tar.Header{Name: "junk", Mode: 0o644, Size: int64(n), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Close()
	diffID := fmt.Sprintf("sha256:%x", sha256.Sum256(layer.Bytes()))
	created := createdAt.UTC().Format(time.RFC3339)
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": created,
		"config":  map[string]any{"Cmd": []string{"true"}},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history": []map[string]any{{"created": created, "created_by": "berth build test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(config)
	configName := hex.EncodeToString(sum[:]) + ".json"
	layerName := strings.TrimPrefix(diffID, "sha256:") + "/layer.tar"
	manifest, _ := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": nil, "Layers": []string{layerName}}})

	var archive bytes.Buffer
	aw := tar.NewWriter(&archive)
	for _, f := range []struct {
		name string
		data []byte
	}{{configName, config}, {layerName, layer.Bytes()}, {"manifest.json", manifest}} {
		if err := aw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		aw.Write(f.data)
	}
	aw.Close()
	resp, err := cli.ImageLoad(context.Background(), &archive)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := "sha256:" + hex.EncodeToString(sum[:])
	in, err := cli.ImageInspect(context.Background(), id)
	if err != nil {
		t.Fatalf("loading the test image: %v (%s)", err, out)
	}
	if len(in.RepoTags) != 0 {
		t.Fatalf("the loaded image has tags %q; want none", in.RepoTags)
	}
	return id
}
