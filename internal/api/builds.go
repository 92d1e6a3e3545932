package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/store"
)

// BuildApp names the app a build belongs to.
type BuildApp struct {
	Project     string `json:"project" example:"shop"`
	Environment string `json:"environment" example:"production"`
	Name        string `json:"name" example:"api"`
}

// Build is one build of an app's commit from git.
type Build struct {
	ID              string     `json:"id" example:"bld_4fk3mz2xq7bw6a5c" doc:"Build id"`
	Seq             int        `json:"seq" example:"3" doc:"Number of the build within its app (#3)"`
	App             BuildApp   `json:"app"`
	Status          string     `json:"status" enum:"queued,running,succeeded,failed,cancelled"`
	Trigger         string     `json:"trigger" enum:"push,manual" doc:"push: a webhook delivery; manual: a deploy"`
	Ref             string     `json:"ref" example:"refs/heads/main" doc:"The branch or tag built"`
	Commit          string     `json:"commit,omitempty" example:"3f2c1ab4…" doc:"The commit built; absent until a build of the branch head has fetched it"`
	Author          string     `json:"author,omitempty" doc:"The commit's author"`
	Message         string     `json:"message,omitempty" doc:"The first line of the commit's message"`
	DeploymentID    string     `json:"deployment_id" example:"dep_m2q7bw6a5c4fk3zx" doc:"The deployment a successful build creates (it exists once the build succeeded)"`
	Image           string     `json:"image,omitempty" example:"berth/app-4fk3mz2xq7bw6a5c:3f2c1ab4…" doc:"The image built"`
	Error           string     `json:"error,omitempty" doc:"Why it failed or was cancelled"`
	CreatedBy       string     `json:"created_by" example:"ada@example.com" doc:"Who or what started it"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty" doc:"When it left the queue"`
	FinishedAt      *time.Time `json:"finished_at,omitempty" doc:"When it ended"`
	DurationSeconds *float64   `json:"duration_seconds,omitempty" example:"42.5" doc:"From start to end; absent until it ended"`
}

// BuildList is an app's builds, newest first.
type BuildList struct {
	Builds []Build `json:"builds"`
}

// QueuedBuild is a build running or waiting in the organization's queue.
type QueuedBuild struct {
	Build
	Waiting string `json:"waiting,omitempty" example:"the app's previous build still runs" doc:"Why a queued build has not started"`
}

// BuildQueue is the organization's running and waiting builds, oldest first.
type BuildQueue struct {
	Builds []QueuedBuild `json:"builds"`
}

// BuildLogLine is one line of a build's output.
type BuildLogLine struct {
	Seq  int       `json:"seq" doc:"Position in the build's output, from 1; pass the last one seen as after"`
	At   time.Time `json:"at"`
	Line string    `json:"line"`
}

// BuildLogPage is a page of a build's output.
type BuildLogPage struct {
	Lines  []BuildLogLine `json:"lines"`
	Next   int            `json:"next" doc:"Pass as after for the following lines"`
	Status string         `json:"status" enum:"queued,running,succeeded,failed,cancelled" doc:"The build's status when the page was read"`
	Ended  bool           `json:"ended" doc:"The build has ended and this page holds its last line: there will be no more"`
}

// BuildStatus is an event of a build's log stream: the status whenever it
// changes ("status") and, last, the final one ("end").
type BuildStatus struct {
	Status string `json:"status" example:"running"`
	Error  string `json:"error,omitempty"`
}

// DiskUsage is what the container engine's storage holds.
type DiskUsage struct {
	ImagesBytes     int64 `json:"images_bytes" doc:"Image layers and tagged images"`
	BuildCacheBytes int64 `json:"build_cache_bytes" doc:"The build cache and the builder's untagged leftovers"`
	VolumesBytes    int64 `json:"volumes_bytes" doc:"Volumes (never pruned by Berth)"`
}

// StartBuildRequest builds an app from git.
type StartBuildRequest struct {
	Commit string `json:"commit,omitempty" maxLength:"64" example:"3f2c1ab4d5e6f708192a3b4c5d6e7f8091a2b3c4" doc:"The full commit id to build; the head of the app's branch when left out"`
}

// BuildParams address a build. (Exported because huma only reads
// parameters of exported embedded types.)
type BuildParams struct {
	ID string `path:"id" maxLength:"64" example:"bld_4fk3mz2xq7bw6a5c" doc:"Build id"`
}

type listBuildsInput struct {
	AppParams
	Limit int `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"How many of the newest builds to list"`
}

type startBuildInput struct {
	AppParams
	Body *StartBuildRequest
}

type buildLogInput struct {
	BuildParams
	After int `query:"after" minimum:"0" doc:"Only lines after this one (the next of the previous page)"`
	Limit int `query:"limit" minimum:"1" maximum:"5000" default:"1000" doc:"At most this many lines"`
}

type buildStreamInput struct {
	BuildParams
	After int `query:"after" minimum:"0" doc:"Only lines after this one"`
}

type buildOutput struct{ Body Build }

type buildListOutput struct{ Body BuildList }

type buildQueueOutput struct{ Body BuildQueue }

type buildLogOutput struct{ Body BuildLogPage }

type diskUsageOutput struct{ Body DiskUsage }

// buildLogBatch is how many lines a log stream reads from the store at once.
const buildLogBatch = 500

func buildOf(b store.Build, names BuildApp) Build {
	out := Build{
		ID: b.ID, Seq: b.Seq, App: names, Status: b.Status, Trigger: b.Trigger, Ref: b.Ref, Commit: b.Commit,
		Author: b.Author, Message: b.Message, DeploymentID: b.DeploymentID, Image: b.Image, Error: b.Error,
		CreatedBy: b.CreatedBy, CreatedAt: b.CreatedAt, StartedAt: b.StartedAt, FinishedAt: b.FinishedAt,
	}
	if b.StartedAt != nil && b.FinishedAt != nil {
		d := b.FinishedAt.Sub(*b.StartedAt).Seconds()
		out.DurationSeconds = &d
	}
	return out
}

func buildAppOf(ref deploy.AppRef) BuildApp {
	return BuildApp{Project: ref.Project, Environment: ref.Environment, Name: ref.Name}
}

// build reads a build of the caller's organization by id, with its app's names.
func (s *server) build(ctx context.Context, p auth.Principal, id string) (store.Build, BuildApp, error) {
	b, err := s.deps.Apps.Build(ctx, p, id)
	if err != nil {
		return store.Build{}, BuildApp{}, err
	}
	ref, err := s.deps.Apps.AppRef(ctx, p, b.AppID)
	if err != nil {
		return store.Build{}, BuildApp{}, err
	}
	return b, BuildApp{Project: ref.Project, Environment: ref.Environment, Name: ref.Name}, nil
}

func (s *server) registerBuilds() {
	tags := []string{"Builds"}
	register(s, huma.Operation{
		OperationID: "list-builds",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/apps/{app}/builds",
		Tags:        tags,
		Summary:     "List an app's builds",
		Description: "Lists the builds of an app built from git, newest first. An app deployed from an image has none.",
		Errors:      []int{http.StatusNotFound},
	}, s.listBuilds)

	register(s, huma.Operation{
		OperationID: "start-build",
		Method:      http.MethodPost,
		Path:        Prefix + "/projects/{project}/apps/{app}/builds",
		Tags:        tags,
		Summary:     "Build and deploy an app from git",
		Description: "Queues a build of `commit`, or of the head of the app's branch, and answers 202 with it. A build that succeeds deploys its image (its `deployment_id`). " +
			"A queued build of the same app is superseded: the newest wins. An app deployed from an image answers 409; deploy it instead.",
		DefaultStatus: http.StatusAccepted,
		Errors:        []int{http.StatusNotFound, http.StatusConflict},
	}, s.startBuild)

	register(s, huma.Operation{
		OperationID: "get-build-queue",
		Method:      http.MethodGet,
		Path:        Prefix + "/builds",
		Tags:        tags,
		Summary:     "Show the build queue",
		Description: "Lists the organization's running and queued builds, oldest first; a queued one says why it waits (`waiting`).",
	}, s.buildQueue)

	register(s, huma.Operation{
		OperationID: "get-build",
		Method:      http.MethodGet,
		Path:        Prefix + "/builds/{id}",
		Tags:        tags,
		Summary:     "Show a build",
		Description: "Returns a build of the organization by id.",
		Errors:      []int{http.StatusNotFound},
	}, s.getBuild)

	register(s, huma.Operation{
		OperationID: "cancel-build",
		Method:      http.MethodPost,
		Path:        Prefix + "/builds/{id}/cancel",
		Tags:        tags,
		Summary:     "Cancel a build",
		Description: "Cancels a queued build (it never starts) or a running one (it is stopped in the engine) and answers with it; its deployment is never created. " +
			"A build that has ended answers 409.",
		Errors: []int{http.StatusNotFound, http.StatusConflict},
	}, s.cancelBuild)

	register(s, huma.Operation{
		OperationID: "get-build-log",
		Method:      http.MethodGet,
		Path:        Prefix + "/builds/{id}/log",
		Tags:        tags,
		Summary:     "Read a build's output",
		Description: "Returns the build's output lines after `after`, with the cursor of the next page and whether the build has ended with this page.",
		Errors:      []int{http.StatusNotFound},
	}, s.buildLog)

	registerStream(s, huma.Operation{
		OperationID: "follow-build-log",
		Method:      http.MethodGet,
		Path:        Prefix + "/builds/{id}/log/stream",
		Tags:        tags,
		Summary:     "Follow a build's output",
		Description: "Streams the build's output as Server-Sent Events: the lines after `after` and then as they are written (`event: line`), the status whenever it changes (`event: status`), " +
			"and, once the build has ended and every line was sent, `event: end` with the final status; the stream ends there. " +
			"An unknown build answers 404 before the stream starts; a failure after it started ends it with `event: error`.",
		Errors: []int{http.StatusNotFound},
	}, map[string]any{"line": BuildLogLine{}, "status": BuildStatus{}, "end": BuildStatus{}, "error": StreamError{}}, s.followBuildLog)

	register(s, huma.Operation{
		OperationID: "get-disk-usage",
		Method:      http.MethodGet,
		Path:        Prefix + "/system/disk",
		Tags:        []string{"System"},
		Summary:     "Show the engine's disk use",
		Description: "Returns what the container engine's images, build cache and volumes take, in bytes. The whole engine's, so owners and admins only (403). " +
			"A server that does not build answers 409.",
		Errors: []int{http.StatusForbidden, http.StatusConflict},
	}, s.diskUsage)
}

func (s *server) listBuilds(ctx context.Context, in *listBuildsInput) (*buildListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ref := in.ref()
	bs, err := s.deps.Apps.Builds(ctx, p, ref, in.Limit)
	if err != nil {
		return nil, err
	}
	out := BuildList{Builds: make([]Build, 0, len(bs))}
	for _, b := range bs {
		out.Builds = append(out.Builds, buildOf(b, buildAppOf(ref)))
	}
	return &buildListOutput{Body: out}, nil
}

func (s *server) startBuild(ctx context.Context, in *startBuildInput) (*buildOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	var commit string
	if in.Body != nil {
		commit = in.Body.Commit
	}
	if commit != "" {
		if err := gitsrc.ValidateCommit(commit); err != nil {
			return nil, &app.FieldError{Field: "commit", Message: "must be a full commit id of 40 or 64 lowercase hex digits"}
		}
	}
	ref := in.ref()
	b, err := s.deps.Apps.StartBuild(ctx, p, ref, commit)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "build queued", "user_id", p.User.ID, "app", b.AppID, "build_id", b.ID, "seq", b.Seq, "commit", b.Commit)
	return &buildOutput{Body: buildOf(b, buildAppOf(ref))}, nil
}

func (s *server) buildQueue(ctx context.Context, _ *struct{}) (*buildQueueOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	qs, err := s.deps.Apps.BuildQueue(ctx, p)
	if err != nil {
		return nil, err
	}
	out := BuildQueue{Builds: make([]QueuedBuild, 0, len(qs))}
	for _, q := range qs {
		app := BuildApp{Project: q.Ref.Project, Environment: q.Ref.Environment, Name: q.Ref.Name}
		out.Builds = append(out.Builds, QueuedBuild{Build: buildOf(q.Build, app), Waiting: q.Waiting})
	}
	return &buildQueueOutput{Body: out}, nil
}

func (s *server) getBuild(ctx context.Context, in *BuildParams) (*buildOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	b, names, err := s.build(ctx, p, in.ID)
	if err != nil {
		return nil, err
	}
	return &buildOutput{Body: buildOf(b, names)}, nil
}

func (s *server) cancelBuild(ctx context.Context, in *BuildParams) (*buildOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	b, names, err := s.build(ctx, p, in.ID)
	if err != nil {
		return nil, err
	}
	b, err = s.deps.Apps.CancelBuild(ctx, p, b)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "build cancelled", "user_id", p.User.ID, "app", b.AppID, "build_id", b.ID, "seq", b.Seq)
	return &buildOutput{Body: buildOf(b, names)}, nil
}

func (s *server) buildLog(ctx context.Context, in *buildLogInput) (*buildLogOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	// The status is read before the lines: a build's output is stored
	// before it ends, so an ended build's lines read after are all of them.
	b, err := s.deps.Apps.Build(ctx, p, in.ID)
	if err != nil {
		return nil, err
	}
	lines, err := s.deps.Apps.BuildLog(ctx, p, b, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := BuildLogPage{Lines: make([]BuildLogLine, 0, len(lines)), Next: in.After, Status: b.Status}
	for _, l := range lines {
		out.Lines = append(out.Lines, BuildLogLine(l))
		out.Next = l.Seq
	}
	out.Ended = store.BuildTerminal(b.Status) && len(lines) < in.Limit
	return &buildLogOutput{Body: out}, nil
}

// followBuildLog checks the build exists (a wrong id is a 404, not an empty
// stream) and returns the loop that polls the store for its output.
func (s *server) followBuildLog(ctx context.Context, in *buildStreamInput) (streamFunc, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	b, err := s.deps.Apps.Build(ctx, p, in.ID)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, send sendFunc) error {
		return s.pollBuildLog(ctx, p, b.ID, in.After, send)
	}, nil
}

func (s *server) pollBuildLog(ctx context.Context, p auth.Principal, id string, after int, send sendFunc) error {
	var last BuildStatus
	for {
		b, err := s.deps.Apps.Build(ctx, p, id)
		if err != nil {
			return err
		}
		for {
			lines, err := s.deps.Apps.BuildLog(ctx, p, b, after, buildLogBatch)
			if err != nil {
				return err
			}
			for _, l := range lines {
				if err := send("line", BuildLogLine(l)); err != nil {
					return err
				}
				after = l.Seq
			}
			if len(lines) < buildLogBatch {
				break
			}
		}
		if st := (BuildStatus{Status: b.Status, Error: b.Error}); st != last {
			if store.BuildTerminal(b.Status) {
				return send("end", st)
			}
			if err := send("status", st); err != nil {
				return err
			}
			last = st
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(eventsPollInterval):
		}
	}
}

func (s *server) diskUsage(ctx context.Context, _ *struct{}) (*diskUsageOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.deps.Apps.DiskUsage(ctx, p)
	if err != nil {
		return nil, err
	}
	return &diskUsageOutput{Body: DiskUsage{ImagesBytes: u.Images, BuildCacheBytes: u.BuildCache, VolumesBytes: u.Volumes}}, nil
}
