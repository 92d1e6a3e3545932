package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/store"
)

// Deployment is one attempt to run an app's spec as a new release. Its
// sealed environment never leaves the server.
type Deployment struct {
	ID              string     `json:"id" example:"dep_4fk3mz2xq7bw6a5c" doc:"Deployment id"`
	Seq             int        `json:"seq" example:"3" doc:"Number of the deployment within its app (#3)"`
	Status          string     `json:"status" example:"live" doc:"queued, starting, switching, draining, live, retired, failed, cancelled or superseded"`
	Reason          string     `json:"reason" example:"image nginx:1.27.1" doc:"Why it was made"`
	Image           string     `json:"image" example:"nginx:1.27.1" doc:"Image reference as given"`
	ImageDigest     string     `json:"image_digest,omitempty" example:"nginx@sha256:…" doc:"The image pinned when the deployment started"`
	Service         string     `json:"service,omitempty" example:"web-4fk3mz2x-3" doc:"Swarm service of its release"`
	PreviousService string     `json:"previous_service,omitempty" doc:"The release it replaces"`
	CreatedBy       string     `json:"created_by" example:"ada@example.com" doc:"Who asked for it"`
	Error           string     `json:"error,omitempty" doc:"Why it failed or was cancelled"`
	RollbackOf      string     `json:"rollback_of,omitempty" doc:"For a rollback: the deployment it restores"`
	CancelRequested bool       `json:"cancel_requested,omitempty" doc:"A cancellation was asked for and is under way"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at,omitempty" doc:"When it left the queue"`
	FinishedAt      *time.Time `json:"finished_at,omitempty" doc:"When it reached a final status"`
}

// DeploymentStep is one line of a deployment's progress log.
type DeploymentStep struct {
	Seq     int       `json:"seq" doc:"Position in the deployment's log, from 1"`
	At      time.Time `json:"at"`
	Message string    `json:"message" example:"1 of 2 replicas healthy"`
}

// DeploymentDetail is a deployment with the spec it ran and its steps.
type DeploymentDetail struct {
	Deployment
	Spec  AppSpec          `json:"spec" doc:"The spec this deployment runs"`
	Steps []DeploymentStep `json:"steps"`
}

// DeploymentList is an app's deployments, newest first.
type DeploymentList struct {
	Deployments []Deployment `json:"deployments"`
}

// DeploymentStatus is the status event of a deployment's event stream.
type DeploymentStatus struct {
	Status string `json:"status" example:"starting"`
	Error  string `json:"error,omitempty"`
}

// StreamError ends an event stream that failed after it started.
type StreamError struct {
	Message string `json:"message"`
}

type deploymentPath struct {
	AppParams
	ID string `path:"id" maxLength:"64" example:"dep_4fk3mz2xq7bw6a5c" doc:"Deployment id, or its number as 3 or #3 (%233)"`
}

type listDeploymentsInput struct {
	AppParams
	Limit int `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"How many of the newest deployments to list"`
}

type deploymentListOutput struct{ Body DeploymentList }

type deploymentDetailOutput struct{ Body DeploymentDetail }

func deploymentOf(d store.Deployment) Deployment {
	return Deployment{
		ID: d.ID, Seq: d.Seq, Status: d.Status, Reason: d.Reason, Image: d.Image, ImageDigest: d.ImageDigest,
		Service: d.Service, PreviousService: d.PreviousService, CreatedBy: d.CreatedBy, Error: d.Error,
		RollbackOf: d.RollbackOf, CancelRequested: d.CancelRequested,
		CreatedAt: d.CreatedAt, StartedAt: d.StartedAt, FinishedAt: d.FinishedAt,
	}
}

func stepOf(st store.DeploymentStep) DeploymentStep {
	return DeploymentStep{Seq: st.Seq, At: st.At, Message: st.Message}
}

// eventsPollInterval is how often a deployment's event stream reads the store.
const eventsPollInterval = 300 * time.Millisecond

func (s *server) registerDeployments() {
	tags := []string{"Deployments"}
	register(s, huma.Operation{
		OperationID: "list-deployments",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/apps/{app}/deployments",
		Tags:        tags,
		Summary:     "List an app's deployments",
		Description: "Lists the app's newest deployments first.",
		Errors:      []int{http.StatusNotFound},
	}, s.listDeployments)

	register(s, huma.Operation{
		OperationID: "get-deployment",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/apps/{app}/deployments/{id}",
		Tags:        tags,
		Summary:     "Show a deployment",
		Description: "Returns a deployment with the spec it runs and its steps. `id` is a deployment id or the deployment's number (`3` or `#3`).",
		Errors:      []int{http.StatusNotFound},
	}, s.getDeployment)

	register(s, huma.Operation{
		OperationID: "cancel-deployment",
		Method:      http.MethodPost,
		Path:        Prefix + "/projects/{project}/apps/{app}/deployments/{id}/cancel",
		Tags:        tags,
		Summary:     "Cancel a deployment",
		Description: "Asks for a queued or starting deployment to stop and answers 202: its release is removed and the current one keeps serving. " +
			"A deployment past that point answers 409.",
		DefaultStatus: http.StatusAccepted,
		Errors:        []int{http.StatusNotFound, http.StatusConflict},
	}, s.cancelDeployment)

	registerStream(s, huma.Operation{
		OperationID: "follow-deployment",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/apps/{app}/deployments/{id}/events",
		Tags:        tags,
		Summary:     "Follow a deployment",
		Description: "Streams a deployment's progress as Server-Sent Events: every step so far and then as it happens (`event: step`), " +
			"and the status whenever it changes (`event: status`). The stream ends after a final status (live, failed, cancelled, superseded, retired). " +
			"An unknown deployment answers 404 before the stream starts; a failure after it started ends it with `event: error`.",
		Errors: []int{http.StatusNotFound},
	}, map[string]any{"step": DeploymentStep{}, "status": DeploymentStatus{}, "error": StreamError{}}, s.followDeployment)
}

func (s *server) listDeployments(ctx context.Context, in *listDeploymentsInput) (*deploymentListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ds, err := s.deps.Apps.Deployments(ctx, p, in.ref(), in.Limit)
	if err != nil {
		return nil, err
	}
	out := DeploymentList{Deployments: make([]Deployment, 0, len(ds))}
	for _, d := range ds {
		out.Deployments = append(out.Deployments, deploymentOf(d))
	}
	return &deploymentListOutput{Body: out}, nil
}

func (s *server) getDeployment(ctx context.Context, in *deploymentPath) (*deploymentDetailOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.deps.Apps.FindDeployment(ctx, p, in.ref(), in.ID)
	if err != nil {
		return nil, err
	}
	steps, err := s.deps.Apps.Steps(ctx, p, d)
	if err != nil {
		return nil, err
	}
	out := DeploymentDetail{Deployment: deploymentOf(d), Spec: appSpecOf(d.Spec), Steps: make([]DeploymentStep, 0, len(steps))}
	for _, st := range steps {
		out.Steps = append(out.Steps, stepOf(st))
	}
	return &deploymentDetailOutput{Body: out}, nil
}

func (s *server) cancelDeployment(ctx context.Context, in *deploymentPath) (*deploymentAcceptedOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.deps.Apps.Cancel(ctx, p, in.ref(), in.ID)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "deployment cancel requested", "user_id", p.User.ID, "app", d.AppID, "deployment_id", d.ID, "seq", d.Seq)
	return &deploymentAcceptedOutput{Body: deploymentOf(d)}, nil
}

// followDeployment checks the deployment exists (so a wrong id is a 404,
// not an empty stream) and returns the loop that polls the store for its
// steps and status.
func (s *server) followDeployment(ctx context.Context, in *deploymentPath) (streamFunc, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ref := in.ref()
	d, err := s.deps.Apps.FindDeployment(ctx, p, ref, in.ID)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, send sendFunc) error {
		return s.pollDeployment(ctx, p, ref, d.ID, send)
	}, nil
}

func (s *server) pollDeployment(ctx context.Context, p auth.Principal, ref deploy.AppRef, id string, send sendFunc) error {
	lastStep, status, errMsg := 0, "", ""
	settled := false
	for {
		d, err := s.deps.Apps.FindDeployment(ctx, p, ref, id)
		if err != nil {
			return err
		}
		terminal := store.DeploymentTerminal(d.Status)
		// The engine records a step or two right after the final transition
		// ("Deployment #3 is live"); wait one more interval to include them.
		if terminal && !settled {
			settled = true
		} else {
			steps, err := s.deps.Apps.Steps(ctx, p, d)
			if err != nil {
				return err
			}
			for _, st := range steps {
				if st.Seq > lastStep {
					if err := send("step", stepOf(st)); err != nil {
						return err
					}
					lastStep = st.Seq
				}
			}
			if d.Status != status || d.Error != errMsg {
				if err := send("status", DeploymentStatus{Status: d.Status, Error: d.Error}); err != nil {
					return err
				}
				status, errMsg = d.Status, d.Error
			}
			if terminal {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(eventsPollInterval):
		}
	}
}
