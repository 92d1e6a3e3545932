package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/webhook"
)

// AppSpec is app.Spec on the wire, with the same JSON names. It exists
// because the API documents durations as strings ("10s") and validates the
// document before app.Spec's own rules run; memory is in bytes.
type AppSpec struct {
	Image           string            `json:"image" required:"false" maxLength:"512" example:"nginx:1.27" doc:"Image reference: [registry[:port]/]name[:tag][@sha256:<digest>]. Required, except when creating an app built from git (then left out: its builds are tagged berth/<app id>)"`
	Command         []string          `json:"command,omitempty" maxItems:"64" doc:"Replaces the image's ENTRYPOINT: an argv list, run without a shell"`
	Args            []string          `json:"args,omitempty" maxItems:"256" doc:"Replaces the image's CMD"`
	WorkingDir      string            `json:"working_dir,omitempty" maxLength:"4096" doc:"Working directory inside the container"`
	User            string            `json:"user,omitempty" maxLength:"256" example:"1000:1000" doc:"User (and group) the process runs as"`
	Port            int               `json:"port,omitempty" example:"8080" doc:"Container port serving HTTP; 0 (default) means the app is not web-facing"`
	Ports           []PublishedPort   `json:"ports,omitempty" maxItems:"64" doc:"Ports published on every node's host network, bypassing the proxy"`
	Replicas        *int              `json:"replicas,omitempty" example:"2" doc:"Number of containers: 1 when left out; 0 keeps the app stopped"`
	Resources       Resources         `json:"resources" required:"false" doc:"Resource limits and reservations; zero means unset"`
	Restart         string            `json:"restart,omitempty" example:"any" doc:"Restart policy: any (default), on-failure or none"`
	Constraints     []string          `json:"constraints,omitempty" maxItems:"32" example:"[\"node.role==worker\"]" doc:"Swarm placement constraints"`
	Labels          map[string]string `json:"labels,omitempty" doc:"Labels on the service and its containers"`
	StopGracePeriod string            `json:"stop_grace_period,omitempty" maxLength:"32" example:"10s" doc:"Time between SIGTERM and SIGKILL, as a duration"`
	ReadOnly        bool              `json:"read_only,omitempty" doc:"Read-only root filesystem"`
	Health          *HealthCheck      `json:"health,omitempty" doc:"When a replica may receive traffic; left out: the image's HEALTHCHECK, else the port accepting connections"`
	Volumes         []Volume          `json:"volumes,omitempty" maxItems:"32" doc:"Named volumes owned by the app; they outlive deployments"`
	Files           []FileMount       `json:"files,omitempty" maxItems:"64" doc:"Files written into the containers, kept in the spec so every deployment pins its own copy"`
	Binds           []BindMount       `json:"binds,omitempty" maxItems:"32" doc:"Host paths mounted into the containers; setting or changing them needs the owner or admin role"`
}

// FileMount is a file with inline content mounted into the containers.
type FileMount struct {
	Target  string `json:"target" maxLength:"4096" example:"/etc/app/config.yml" doc:"Absolute path in the container"`
	Content string `json:"content" doc:"The file's content: UTF-8 text, 1 byte to under 500 KiB (2 MiB for all files). Responses replace a secret file's content with \"(secret, stored encrypted)\"; send that text back unchanged to keep the stored content"`
	Secret  bool   `json:"secret,omitempty" doc:"Deliver as a Docker secret (on a tmpfs, not shown by docker config inspect) instead of a config"`
	Mode    uint32 `json:"mode,omitempty" maximum:"511" example:"292" doc:"Permission bits as a number (decimal in JSON: 292 is 0444, the default)"`
}

// BindMount mounts a path of the node into the containers.
type BindMount struct {
	Source   string `json:"source" maxLength:"4096" example:"/srv/shared" doc:"Absolute path on the node; /etc, /proc, /sys, /dev, /boot, /root, /run, /var/run, /var/lib/docker and their parents are refused"`
	Target   string `json:"target" maxLength:"4096" example:"/shared" doc:"Absolute path in the container"`
	ReadOnly bool   `json:"read_only,omitempty" doc:"Mount read-only"`
}

// maxSpecBodyBytes bounds bodies holding an app spec: its files may hold
// app.MaxFilesTotal bytes, which JSON escaping can enlarge.
const maxSpecBodyBytes = 4*app.MaxFilesTotal + maxBodyBytes

// secretPlaceholder stands for a secret file's content in responses (the
// content is stored encrypted; the API never decrypts it).
func secretPlaceholder(string) string { return "(secret, stored encrypted)" }

// PublishedPort is a container port published on the nodes' host network.
type PublishedPort struct {
	Target    int    `json:"target" example:"5000" doc:"Container port"`
	Published int    `json:"published" example:"5000" doc:"Port on every node"`
	Protocol  string `json:"protocol,omitempty" example:"udp" doc:"tcp (default) or udp"`
}

// Resources are enforced through the containers' cgroups. Zero means unset.
type Resources struct {
	CPULimit          float64 `json:"cpu_limit,omitempty" example:"0.5" doc:"CPU cores"`
	MemoryLimit       int64   `json:"memory_limit,omitempty" example:"268435456" doc:"Bytes"`
	CPUReservation    float64 `json:"cpu_reservation,omitempty" doc:"CPU cores"`
	MemoryReservation int64   `json:"memory_reservation,omitempty" doc:"Bytes"`
}

// HealthCheck decides when a replica may receive traffic.
type HealthCheck struct {
	Type         string   `json:"type" example:"http" doc:"http, command or none"`
	Path         string   `json:"path,omitempty" example:"/healthz" doc:"http: request path, default /"`
	Port         int      `json:"port,omitempty" doc:"http: port, default the app's port"`
	ExpectStatus int      `json:"expect_status,omitempty" doc:"http: expected status; 0 means any 2xx or 3xx"`
	Command      []string `json:"command,omitempty" maxItems:"64" doc:"command: argv run inside the container, without a shell"`
	Interval     string   `json:"interval,omitempty" maxLength:"32" example:"5s" doc:"Duration between checks"`
	Timeout      string   `json:"timeout,omitempty" maxLength:"32" example:"3s" doc:"Duration a check may take"`
	Retries      int      `json:"retries,omitempty" doc:"Consecutive failures before a replica is unhealthy"`
	StartPeriod  string   `json:"start_period,omitempty" maxLength:"32" example:"30s" doc:"Duration after start during which failures do not count"`
}

// Volume is a named volume owned by the app, mounted at Target.
type Volume struct {
	Name         string `json:"name" example:"data" doc:"Volume name, unique in the app"`
	Target       string `json:"target" example:"/var/lib/data" doc:"Mount path in the container"`
	ReadOnly     bool   `json:"read_only,omitempty" doc:"Mount read-only"`
	SingleWriter bool   `json:"single_writer,omitempty" doc:"Deploy stop-first: the old release stops before the new one starts (downtime), because two writers would corrupt the data"`
}

// App is an application and its desired state.
type App struct {
	ID                  string  `json:"id" example:"app_4fk3mz2xq7bw6a5c" doc:"App id"`
	Name                string  `json:"name" example:"web" doc:"App name, unique in its environment; other apps of the environment reach it by this name"`
	Project             string  `json:"project" example:"shop" doc:"Project name"`
	Environment         string  `json:"environment" example:"production" doc:"Environment name"`
	Spec                AppSpec `json:"spec" doc:"What the next deployment runs"`
	Stopped             bool    `json:"stopped" doc:"Stopped by the user: scaled to zero until started"`
	CurrentDeploymentID string  `json:"current_deployment_id,omitempty" doc:"The live deployment; absent until one is live"`
	// Source is set by the operations that read it: creating an app and
	// showing one.
	Source    *AppSource `json:"source,omitempty" doc:"Where an app built from git gets its code and how it is built; absent for an app deployed from an image"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// AppSummary is an app in a list.
type AppSummary struct {
	ID                  string    `json:"id" example:"app_4fk3mz2xq7bw6a5c"`
	Name                string    `json:"name" example:"web"`
	Environment         string    `json:"environment" example:"production"`
	Image               string    `json:"image" example:"nginx:1.27"`
	Replicas            int       `json:"replicas"`
	Stopped             bool      `json:"stopped"`
	CurrentDeploymentID string    `json:"current_deployment_id,omitempty"`
	UpdatedAt           time.Time `json:"updated_at"`
}

// AppList is a project's apps.
type AppList struct {
	Apps []AppSummary `json:"apps"`
}

// AppStatus is what runs for an app.
type AppStatus struct {
	App      App         `json:"app"`
	Current  *Deployment `json:"current,omitempty" doc:"The live deployment; absent when none is"`
	InFlight *Deployment `json:"in_flight,omitempty" doc:"The oldest deployment not yet finished; absent when none is"`
	Release  Release     `json:"release" doc:"What the cluster reports about the current deployment's release"`
}

// Release is the cluster's view of one release (a Swarm service).
type Release struct {
	Service  string `json:"service,omitempty" example:"web-4fk3mz2x-3" doc:"Swarm service name"`
	Exists   bool   `json:"exists" doc:"The service exists in the cluster"`
	Desired  int    `json:"desired" doc:"Replicas asked for"`
	Running  int    `json:"running" doc:"Healthy replicas"`
	Tasks    []Task `json:"tasks" doc:"The latest task of each slot, then recent failures"`
	Failures int    `json:"failures" doc:"Recent failed tasks"`
	Problem  string `json:"problem,omitempty" doc:"Why the release cannot become healthy without a change"`
	// Unavailable says the cluster could not be asked; the other fields are then empty.
	Unavailable string `json:"unavailable,omitempty" doc:"Set when the cluster did not report on the release (e.g. the engine is unreachable)"`
}

// Task is one replica's latest attempt.
type Task struct {
	ID        string    `json:"id"`
	Slot      int       `json:"slot"`
	Node      string    `json:"node" doc:"Node hostname"`
	State     string    `json:"state" enum:"pending,starting,running,failed,shutdown"`
	Since     time.Time `json:"since"`
	Container string    `json:"container,omitempty"`
	ExitCode  int       `json:"exit_code,omitempty"`
	Message   string    `json:"message,omitempty" doc:"A failure in plain words"`
}

// CreateAppRequest creates an app. Nothing runs until it is deployed.
type CreateAppRequest struct {
	Name        string            `json:"name" maxLength:"64" example:"web" doc:"1–32 lowercase letters, digits and '-', starting with a letter"`
	Environment string            `json:"environment,omitempty" maxLength:"64" example:"production" doc:"Environment to create the app in; production when left out"`
	Spec        AppSpec           `json:"spec"`
	Env         map[string]string `json:"env,omitempty" doc:"App-scope environment variables, stored encrypted"`
	Git         *GitRequest       `json:"git,omitempty" doc:"Build the app from a git repository instead of deploying an image; spec.image is then left out"`
}

// DeployRequest deploys an app, optionally with a new image.
type DeployRequest struct {
	Image string `json:"image,omitempty" maxLength:"512" example:"nginx:1.27.1" doc:"Image to deploy, saved into the app's spec; the spec's image when left out"`
}

// RollbackRequest deploys an earlier deployment again.
type RollbackRequest struct {
	To string `json:"to" maxLength:"64" example:"#3" doc:"Deployment id, or its number as #3 or 3; it must have been live"`
}

// ScaleRequest changes the number of replicas.
type ScaleRequest struct {
	Replicas int `json:"replicas" minimum:"0" example:"3" doc:"Number of containers; 0 stops the app without forgetting it"`
}

// AppParams address an app: path and query parameters of the operations on
// one. (Exported because huma only reads parameters of exported embedded types.)
type AppParams struct {
	Project     string `path:"project" maxLength:"64" example:"shop" doc:"Project name"`
	App         string `path:"app" maxLength:"64" example:"web" doc:"App name"`
	Environment string `query:"environment" maxLength:"64" default:"production" example:"staging" doc:"Environment of the app"`
}

func (a AppParams) ref() deploy.AppRef {
	env := a.Environment
	if env == "" {
		env = deploy.Production
	}
	return deploy.AppRef{Project: a.Project, Environment: env, Name: a.App}
}

type appOutput struct{ Body App }

type appListOutput struct{ Body AppList }

type appStatusOutput struct{ Body AppStatus }

type createAppInput struct {
	ProjectParams
	Body CreateAppRequest
}

type updateSpecInput struct {
	AppParams
	Body AppSpec
}

type deleteAppInput struct {
	AppParams
	RemoveVolumes bool `query:"remove_volumes" doc:"Also delete the app's volumes and the data in them. Without it they are kept"`
}

type deployInput struct {
	AppParams
	Body *DeployRequest
}

type rollbackInput struct {
	AppParams
	Body RollbackRequest
}

type scaleInput struct {
	AppParams
	Body ScaleRequest
}

type deploymentAcceptedOutput struct{ Body Deployment }

// fieldAt re-homes a validation error of a nested document: field
// "ports[1].published" of the spec becomes "spec.ports[1].published".
func fieldAt(prefix string, err error) error {
	var fe *app.FieldError
	if errors.As(err, &fe) {
		return &app.FieldError{Field: prefix + fe.Field, Message: fe.Message}
	}
	return err
}

// spec converts the wire spec; prefix names where it sits in the body.
func (w AppSpec) spec(prefix string) (app.Spec, error) {
	s := app.Spec{
		Image: w.Image, Command: w.Command, Args: w.Args, WorkingDir: w.WorkingDir, User: w.User,
		Port: w.Port, Replicas: 1, Restart: w.Restart, Constraints: w.Constraints, Labels: w.Labels, ReadOnly: w.ReadOnly,
		Resources: app.Resources(w.Resources),
	}
	if w.Replicas != nil {
		s.Replicas = *w.Replicas
	}
	for _, p := range w.Ports {
		s.Ports = append(s.Ports, app.PublishedPort(p))
	}
	for _, v := range w.Volumes {
		s.Volumes = append(s.Volumes, app.Volume(v))
	}
	for _, f := range w.Files {
		s.Files = append(s.Files, app.FileMount(f))
	}
	for _, b := range w.Binds {
		s.Binds = append(s.Binds, app.BindMount(b))
	}
	var err error
	if s.StopGracePeriod, err = duration(prefix+"stop_grace_period", w.StopGracePeriod); err != nil {
		return app.Spec{}, err
	}
	if h := w.Health; h != nil {
		s.Health = &app.HealthCheck{Type: h.Type, Path: h.Path, Port: h.Port, ExpectStatus: h.ExpectStatus, Command: h.Command, Retries: h.Retries}
		for _, d := range []struct {
			field string
			in    string
			out   *app.Duration
		}{{"interval", h.Interval, &s.Health.Interval}, {"timeout", h.Timeout, &s.Health.Timeout}, {"start_period", h.StartPeriod, &s.Health.StartPeriod}} {
			if *d.out, err = duration(prefix+"health."+d.field, d.in); err != nil {
				return app.Spec{}, err
			}
		}
	}
	return s, nil
}

// keepSecrets gives back the stored content of secret files sent as the
// placeholder a read returned, so that a spec read, edited and written back
// keeps its secrets.
func keepSecrets(spec *app.Spec, stored app.Spec) {
	for i, f := range spec.Files {
		for _, old := range stored.Files {
			if f.Secret && old.Secret && f.Target == old.Target && f.Content == secretPlaceholder(old.Content) {
				spec.Files[i].Content = old.Content
			}
		}
	}
}

func duration(field, s string) (app.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, &app.FieldError{Field: field, Message: fmt.Sprintf("%q is not a duration; use a form such as 10s or 1m30s", s)}
	}
	return app.Duration(d), nil
}

// checkSpec converts and validates a wire spec as the manager will, so the
// errors name the field where it sits in the body.
func checkSpec(prefix string, w AppSpec) (app.Spec, error) {
	s, err := w.spec(prefix)
	if err != nil {
		return app.Spec{}, err
	}
	check := s
	check.Normalize()
	if err := check.Validate(); err != nil {
		return app.Spec{}, fieldAt(prefix, err)
	}
	return s, nil
}

// checkEnv validates variables, naming the first bad one (in key order) at
// field (the map) or field.KEY (its value; the value is never repeated).
func checkEnv(field string, vars map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		var fe *app.FieldError
		if err := app.ValidateEnvKey(k); errors.As(err, &fe) {
			return &app.FieldError{Field: field, Message: fe.Message}
		} else if err != nil {
			return err
		}
		if err := app.ValidateEnvValue(k, vars[k]); errors.As(err, &fe) {
			return &app.FieldError{Field: field + "." + k, Message: "value " + fe.Message}
		} else if err != nil {
			return err
		}
	}
	return nil
}

func appSpecOf(s app.Spec) AppSpec {
	w := AppSpec{
		Image: s.Image, Command: s.Command, Args: s.Args, WorkingDir: s.WorkingDir, User: s.User,
		Port: s.Port, Replicas: &s.Replicas, Restart: s.Restart, Constraints: s.Constraints, Labels: s.Labels, ReadOnly: s.ReadOnly,
		Resources: Resources(s.Resources),
	}
	for _, p := range s.Ports {
		w.Ports = append(w.Ports, PublishedPort(p))
	}
	for _, v := range s.Volumes {
		w.Volumes = append(w.Volumes, Volume(v))
	}
	for _, f := range s.Files {
		if f.Secret {
			f.Content = secretPlaceholder(f.Content) // never in a response
		}
		w.Files = append(w.Files, FileMount(f))
	}
	for _, b := range s.Binds {
		w.Binds = append(w.Binds, BindMount(b))
	}
	if s.StopGracePeriod != 0 {
		w.StopGracePeriod = s.StopGracePeriod.String()
	}
	if h := s.Health; h != nil {
		w.Health = &HealthCheck{Type: h.Type, Path: h.Path, Port: h.Port, ExpectStatus: h.ExpectStatus, Command: h.Command, Retries: h.Retries}
		for _, d := range []struct {
			in  app.Duration
			out *string
		}{{h.Interval, &w.Health.Interval}, {h.Timeout, &w.Health.Timeout}, {h.StartPeriod, &w.Health.StartPeriod}} {
			if d.in != 0 {
				*d.out = d.in.String()
			}
		}
	}
	return w
}

func appOf(a store.App, project, environment string) App {
	return App{
		ID: a.ID, Name: a.Name, Project: project, Environment: environment, Spec: appSpecOf(a.Spec),
		Stopped: a.Stopped, CurrentDeploymentID: a.CurrentDeploymentID, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
}

func appSummaryOf(a store.App, environment string) AppSummary {
	return AppSummary{
		ID: a.ID, Name: a.Name, Environment: environment, Image: a.Spec.Image, Replicas: a.Spec.Replicas,
		Stopped: a.Stopped, CurrentDeploymentID: a.CurrentDeploymentID, UpdatedAt: a.UpdatedAt,
	}
}

func releaseOf(service string, rs orchestrator.ReleaseState) Release {
	r := Release{Service: service, Exists: rs.Exists, Desired: rs.Desired, Running: rs.Running, Failures: rs.Failures, Problem: rs.Problem, Tasks: make([]Task, 0, len(rs.Tasks))}
	for _, t := range rs.Tasks {
		r.Tasks = append(r.Tasks, Task(t))
	}
	return r
}

func (s *server) registerApps() {
	tags := []string{"Apps"}
	appOp := func(op huma.Operation) huma.Operation {
		op.Tags = tags
		op.Errors = append(op.Errors, http.StatusNotFound)
		return op
	}
	register(s, appOp(huma.Operation{
		OperationID: "list-apps",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/apps",
		Summary:     "List a project's apps",
		Description: "Lists the apps of every environment of the project, by environment (production first), then name.",
	}), s.listApps)

	register(s, appOp(huma.Operation{
		OperationID: "create-app",
		Method:      http.MethodPost,
		Path:        Prefix + "/projects/{project}/apps",
		Summary:     "Create an app",
		Description: "Creates an app from an image in an environment of the project (production unless `environment` says otherwise), with its app-scope variables. " +
			"With `git` the app is built from a repository instead: `spec.image` is left out, and the answer's `source` has the webhook URL and, for SSH repositories, the deploy key to add to the repository. " +
			"The repository URL must be https://, ssh:// or git@host:path; other transports, local paths, option-like values, branch names starting with `-` or holding `..`, and build paths leaving the checkout answer 422 naming the field (`git.url`). " +
			"The access token is stored encrypted and never shown again. " +
			"Nothing runs until it is deployed. Every invalid field answers 422 naming it (`spec.ports[1].published`); a name already used in the environment answers 409.",
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusConflict},
		MaxBodyBytes:  maxSpecBodyBytes,
	}), s.createApp)

	register(s, appOp(huma.Operation{
		OperationID: "get-app",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/apps/{app}",
		Summary:     "Show an app and what runs for it",
		Description: "Returns the app with its current (live) deployment, the deployment in flight, and what the cluster reports about the current release: desired and healthy replicas and each task's slot, node, state and message. " +
			"An app built from git has its `source` (never its token or webhook secret). " +
			"When the cluster cannot be asked, `release.unavailable` says so and the rest of the answer stands.",
	}), s.getApp)

	register(s, appOp(huma.Operation{
		OperationID: "update-app-spec",
		Method:      http.MethodPut,
		Path:        Prefix + "/projects/{project}/apps/{app}/spec",
		Summary:     "Replace an app's spec",
		Description: "Replaces what the app's next deployment runs. It does not deploy: call deploy next. " +
			"A secret file sent with the placeholder content a read returned (`(secret, stored encrypted)`) keeps its stored content. " +
			"Setting or changing `binds` needs the owner or admin role (403).",
		MaxBodyBytes: maxSpecBodyBytes,
	}), s.updateSpec)

	register(s, appOp(huma.Operation{
		OperationID: "delete-app",
		Method:      http.MethodDelete,
		Path:        Prefix + "/projects/{project}/apps/{app}",
		Summary:     "Delete an app",
		Description: "Removes the app's releases from the cluster and deletes the app with its deployments and variables. " +
			"Its volumes, and the data in them, are kept unless `remove_volumes=true`.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusServiceUnavailable},
	}), s.deleteApp)

	register(s, appOp(huma.Operation{
		OperationID: "deploy-app",
		Method:      http.MethodPost,
		Path:        Prefix + "/projects/{project}/apps/{app}/deploy",
		Summary:     "Deploy an app",
		Description: "Queues a deployment of the app's spec, with `image` saved into the spec first when given, and answers 202 with it. " +
			"Follow it with the deployment's events. A stopped app is started by deploying it.",
		DefaultStatus: http.StatusAccepted,
	}), s.deployApp)

	register(s, appOp(huma.Operation{
		OperationID:   "rollback-app",
		Method:        http.MethodPost,
		Path:          Prefix + "/projects/{project}/apps/{app}/rollback",
		Summary:       "Roll an app back",
		Description:   "Queues a deployment of an earlier deployment's image digest, spec and variables, and answers 202 with it. The target must have been live; one that never became healthy answers 409.",
		DefaultStatus: http.StatusAccepted,
		Errors:        []int{http.StatusConflict},
	}), s.rollbackApp)

	register(s, appOp(huma.Operation{
		OperationID:   "restart-app",
		Method:        http.MethodPost,
		Path:          Prefix + "/projects/{project}/apps/{app}/restart",
		Summary:       "Restart an app",
		Description:   "Replaces the running containers without downtime: queues a new release of the current deployment's image and configuration and answers 202 with it. An app never deployed answers 409.",
		DefaultStatus: http.StatusAccepted,
		Errors:        []int{http.StatusConflict},
	}), s.restartApp)

	register(s, appOp(huma.Operation{
		OperationID:   "stop-app",
		Method:        http.MethodPost,
		Path:          Prefix + "/projects/{project}/apps/{app}/stop",
		Summary:       "Stop an app",
		Description:   "Scales the current release to zero and remembers it; start (or deploy) brings it back.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusServiceUnavailable},
	}), s.stopApp)

	register(s, appOp(huma.Operation{
		OperationID:   "start-app",
		Method:        http.MethodPost,
		Path:          Prefix + "/projects/{project}/apps/{app}/start",
		Summary:       "Start a stopped app",
		Description:   "Brings a stopped app back with its replica count.",
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusServiceUnavailable},
	}), s.startApp)

	register(s, appOp(huma.Operation{
		OperationID: "scale-app",
		Method:      http.MethodPost,
		Path:        Prefix + "/projects/{project}/apps/{app}/scale",
		Summary:     "Scale an app",
		Description: "Changes the current release's replicas in place (no new deployment) and remembers the count for later deployments.",
		Errors:      []int{http.StatusServiceUnavailable},
	}), s.scaleApp)
}

func (s *server) listApps(ctx context.Context, in *ProjectParams) (*appListOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	envs, err := s.deps.Apps.Environments(ctx, p, in.Project)
	if err != nil {
		return nil, err
	}
	apps, err := s.deps.Apps.Apps(ctx, p, in.Project)
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(envs))
	for _, e := range envs {
		names[e.ID] = e.Name
	}
	out := AppList{Apps: make([]AppSummary, 0, len(apps))}
	for _, a := range apps {
		out.Apps = append(out.Apps, appSummaryOf(a, names[a.EnvironmentID]))
	}
	return &appListOutput{Body: out}, nil
}

func (s *server) createApp(ctx context.Context, in *createAppInput) (*appOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	b := in.Body
	if b.Environment == "" {
		b.Environment = deploy.Production
	}
	// Everything is checked before anything is stored, and errors name the
	// field as it sits in the body.
	if err := app.ValidateName("name", b.Name); err != nil {
		return nil, err
	}
	if err := app.ValidateName("environment", b.Environment); err != nil {
		return nil, err
	}
	wire := b.Spec
	if b.Git != nil {
		if wire.Image != "" {
			return nil, &app.FieldError{Field: "spec.image", Message: "must be left out for an app built from git: its image is built from the repository"}
		}
		wire.Image = "berth/pending" // checked as any spec; the manager names the image
	}
	spec, err := checkSpec("spec.", wire)
	if err != nil {
		return nil, err
	}
	if err := checkEnv("env", b.Env); err != nil {
		return nil, err
	}
	var git deploy.GitInput
	if b.Git != nil {
		if git, err = gitInput(*b.Git); err != nil {
			return nil, err
		}
		git.WebhookBase = s.publicURL(ctx)
	}
	ref := deploy.AppRef{Project: in.Project, Environment: b.Environment, Name: b.Name}
	if _, err := s.deps.Apps.App(ctx, p, ref); err == nil {
		return nil, nameTaken(fmt.Sprintf("%s already has an app named %q", ref.Project, ref.Name))
	}
	create := deploy.CreateAppInput{Ref: ref, Spec: spec, Env: b.Env}
	if b.Git == nil {
		a, err := s.deps.Apps.CreateApp(ctx, p, create)
		if err != nil {
			return nil, err
		}
		s.log.InfoContext(ctx, "app created", "user_id", p.User.ID, "app", a.ID, "name", ref.String())
		return &appOutput{Body: appOf(a, in.Project, b.Environment)}, nil
	}
	a, src, err := s.deps.Apps.CreateGitApp(ctx, p, create, git)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "app created", "user_id", p.User.ID, "app", a.ID, "name", ref.String(), "source", string(src.Source.Kind()))
	out := appOf(a, in.Project, b.Environment)
	out.Source = s.sourceOf(ctx, src)
	return &appOutput{Body: out}, nil
}

func (s *server) getApp(ctx context.Context, in *AppParams) (*appStatusOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ref := in.ref()
	st, err := s.deps.Apps.AppStatus(ctx, p, ref)
	if err != nil {
		return nil, err
	}
	out := AppStatus{App: appOf(st.App, ref.Project, ref.Environment), Release: Release{Tasks: []Task{}}}
	if src, err := s.deps.Apps.GitSource(ctx, p, ref); err == nil {
		out.App.Source = s.sourceOf(ctx, src)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if st.Current != nil {
		d := deploymentOf(*st.Current)
		out.Current = &d
		out.Release = releaseOf(st.Current.Service, st.Release)
		if st.ReleaseError != "" {
			// The engine's error may name sockets and hosts: logged, not shown.
			s.log.WarnContext(ctx, "read release state", "app", st.App.ID, "service", st.Current.Service, "err", st.ReleaseError)
			out.Release.Unavailable = "the cluster did not report on this release; see GET " + Prefix + "/system/engine"
		}
	}
	if st.InFlight != nil {
		d := deploymentOf(*st.InFlight)
		out.InFlight = &d
	}
	return &appStatusOutput{Body: out}, nil
}

func (s *server) updateSpec(ctx context.Context, in *updateSpecInput) (*appOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	spec, err := checkSpec("", in.Body)
	if err != nil {
		return nil, err
	}
	ref := in.ref()
	cur, err := s.deps.Apps.App(ctx, p, ref)
	if err != nil {
		return nil, err
	}
	keepSecrets(&spec, cur.Spec)
	a, err := s.deps.Apps.UpdateSpec(ctx, p, ref, spec)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "app spec updated", "user_id", p.User.ID, "app", a.ID)
	return &appOutput{Body: appOf(a, ref.Project, ref.Environment)}, nil
}

func (s *server) deleteApp(ctx context.Context, in *deleteAppInput) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ref := in.ref()
	if err := s.deps.Apps.DeleteApp(ctx, p, ref, in.RemoveVolumes); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "app deleted", "user_id", p.User.ID, "name", ref.String(), "volumes_removed", in.RemoveVolumes)
	return nil, nil
}

func (s *server) deployApp(ctx context.Context, in *deployInput) (*deploymentAcceptedOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	var req DeployRequest
	if in.Body != nil {
		req = *in.Body
	}
	if req.Image != "" {
		if err := app.ValidateImage(req.Image); err != nil {
			return nil, err
		}
	}
	d, err := s.deps.Apps.Deploy(ctx, p, in.ref(), deploy.DeployInput{Image: req.Image})
	if err != nil {
		return nil, err
	}
	return s.queued(ctx, p, d), nil
}

func (s *server) rollbackApp(ctx context.Context, in *rollbackInput) (*deploymentAcceptedOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.deps.Apps.Rollback(ctx, p, in.ref(), in.Body.To)
	if err != nil {
		return nil, err
	}
	return s.queued(ctx, p, d), nil
}

func (s *server) restartApp(ctx context.Context, in *AppParams) (*deploymentAcceptedOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.deps.Apps.Restart(ctx, p, in.ref())
	if err != nil {
		return nil, err
	}
	return s.queued(ctx, p, d), nil
}

// queued logs a deployment a request queued and answers 202 with it.
func (s *server) queued(ctx context.Context, p auth.Principal, d store.Deployment) *deploymentAcceptedOutput {
	s.log.InfoContext(ctx, "deployment queued", "user_id", p.User.ID, "app", d.AppID, "deployment_id", d.ID, "seq", d.Seq, "reason", d.Reason)
	return &deploymentAcceptedOutput{Body: deploymentOf(d)}
}

func (s *server) stopApp(ctx context.Context, in *AppParams) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Apps.Stop(ctx, p, in.ref()); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "app stopped", "user_id", p.User.ID, "name", in.ref().String())
	return nil, nil
}

func (s *server) startApp(ctx context.Context, in *AppParams) (*struct{}, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.deps.Apps.Start(ctx, p, in.ref()); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "app started", "user_id", p.User.ID, "name", in.ref().String())
	return nil, nil
}

func (s *server) scaleApp(ctx context.Context, in *scaleInput) (*appOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ref := in.ref()
	a, err := s.deps.Apps.Scale(ctx, p, ref, in.Body.Replicas)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "app scaled", "user_id", p.User.ID, "app", a.ID, "replicas", in.Body.Replicas)
	return &appOutput{Body: appOf(a, ref.Project, ref.Environment)}, nil
}

// GitRequest says where an app built from git gets its code and how its
// image is built. The repository is url, or provider with repo (and
// base_url for a self-hosted server).
type GitRequest struct {
	URL          string            `json:"url,omitempty" maxLength:"2048" example:"https://git.example.com/shop/api.git" doc:"The repository: https://…, ssh://… or git@host:owner/repo.git. Leave out when giving provider and repo"`
	Connection   string            `json:"connection,omitempty" maxLength:"64" example:"gitea" doc:"The organization's git connection the repository is reached through (with repo): its token is used unless token is given, the webhook is created at the provider, and builds report commit statuses"`
	Provider     string            `json:"provider,omitempty" enum:"github,gitlab,gitea,bitbucket" doc:"The hosting service of repo; its webhooks are then verified its way"`
	Repo         string            `json:"repo,omitempty" maxLength:"512" example:"acme/api" doc:"With provider: owner/name (GitLab: group/…/name)"`
	BaseURL      string            `json:"base_url,omitempty" maxLength:"2048" example:"https://gitea.example.com" doc:"With provider: a self-hosted server (GitHub Enterprise, self-managed GitLab, Gitea); required for gitea, not allowed for bitbucket"`
	Branch       string            `json:"branch,omitempty" maxLength:"255" example:"main" doc:"The branch a deploy builds and pushes to deploy; main when left out"`
	Token        string            `json:"token,omitempty" maxLength:"4096" writeOnly:"true" doc:"Access token for a private repository over HTTPS. Stored encrypted and never returned: responses say has_token"`
	Dockerfile   string            `json:"dockerfile,omitempty" maxLength:"4096" example:"Dockerfile" doc:"The Dockerfile, relative to context; Dockerfile when left out"`
	Context      string            `json:"context,omitempty" maxLength:"4096" example:"." doc:"The build context, relative to the repository root; the root when left out"`
	Target       string            `json:"target,omitempty" maxLength:"128" doc:"The stage of a multi-stage Dockerfile to build; the last when left out"`
	BuildArgs    map[string]string `json:"build_args,omitempty" doc:"ARG values. They stay in the image's history: never put a secret in one"`
	BuildSecrets []string          `json:"build_secrets,omitempty" maxItems:"32" example:"[\"NPM_TOKEN\"]" doc:"Names of the app's variables given to the build as secrets (RUN --mount=type=secret,id=NAME); never stored in the image"`
	Submodules   bool              `json:"submodules,omitempty" doc:"Also fetch the repository's submodules"`
	Filter       *GitFilter        `json:"filter,omitempty" doc:"Which pushes deploy; pushes to branch when left out"`
}

// GitFilter says which pushes deploy an app built from git.
type GitFilter struct {
	Branches   []string `json:"branches" required:"false" maxItems:"64" example:"[\"main\",\"release/*\"]" doc:"Branches whose pushes deploy: names or patterns (release/*, hotfix/**); empty: no branch push deploys"`
	Tags       bool     `json:"tags" required:"false" doc:"Tag pushes deploy the tagged commit"`
	WatchPaths []string `json:"watch_paths" required:"false" maxItems:"64" example:"[\"src/**\"]" doc:"Deploy a branch push only when it changes a file matching one of these patterns; empty: every push"`
}

// AppSource is an app's git source as the API shows it: no token, no
// private key, no webhook secret.
type AppSource struct {
	Kind            string            `json:"kind" enum:"git,github,gitlab,gitea,bitbucket" doc:"git for a plain URL, else the provider"`
	CloneURL        string            `json:"clone_url" example:"https://github.com/acme/api.git" doc:"What git fetches"`
	Repo            string            `json:"repo,omitempty" example:"acme/api" doc:"The provider's repository"`
	BaseURL         string            `json:"base_url,omitempty" doc:"The provider's self-hosted server"`
	Branch          string            `json:"branch" example:"main"`
	Dockerfile      string            `json:"dockerfile,omitempty" example:"Dockerfile"`
	Context         string            `json:"context,omitempty" example:"."`
	Target          string            `json:"target,omitempty"`
	BuildArgs       map[string]string `json:"build_args,omitempty"`
	BuildSecrets    []string          `json:"build_secrets,omitempty" doc:"Names of the app's variables given to the build as secrets"`
	Submodules      bool              `json:"submodules,omitempty"`
	Filter          GitFilter         `json:"filter"`
	HasToken        bool              `json:"has_token" doc:"An access token is stored (it is never shown)"`
	DeployKey       string            `json:"deploy_key,omitempty" example:"ssh-ed25519 AAAA… shop-api" doc:"SSH repositories: the public key to add to the repository as a read-only deploy key"`
	KnownHosts      string            `json:"known_hosts,omitempty" doc:"SSH repositories: the host keys pinned at the first fetch"`
	WebhookURL      string            `json:"webhook_url" example:"https://berth.example.com/hooks/x7Qm…" doc:"Where the provider delivers push events; its secret is revealed by POST …/source/webhook-secret"`
	Provider        string            `json:"provider,omitempty" example:"github" doc:"Whose signature webhooks carry; absent for a plain URL, whose deliveries are recognised by their headers"`
	ProviderWebhook string            `json:"provider_webhook,omitempty" example:"created at https://gitea.example.com/acme/api" doc:"When the app was just created from a connection: whether its webhook was set up at the provider, or why not"`
}

// gitInput converts the wire form; errors name the field in the body.
func gitInput(g GitRequest) (deploy.GitInput, error) {
	in := deploy.GitInput{
		Branch: g.Branch, Token: g.Token,
		Build: store.BuildSettings{Dockerfile: g.Dockerfile, Context: g.Context, Target: g.Target, Args: g.BuildArgs, Secrets: g.BuildSecrets, Submodules: g.Submodules},
	}
	if g.Filter != nil {
		in.Filter = &webhook.Filter{Branches: g.Filter.Branches, Tags: g.Filter.Tags, WatchPaths: g.Filter.WatchPaths}
	}
	switch {
	case g.Connection != "" && (g.URL != "" || g.BaseURL != ""):
		return deploy.GitInput{}, &app.FieldError{Field: "git.connection", Message: "names the repository's server already: give repo (owner/name), not url or base_url"}
	case g.Connection != "" && g.Provider != "" && g.Provider != string(webhook.Gitea):
		return deploy.GitInput{}, &app.FieldError{Field: "git.provider", Message: "must be left out with a connection (its provider is the connection's)"}
	case g.Connection != "":
		in.Connection = g.Connection
		in.Source.Variant = &gitsrc.Gitea{Repo: g.Repo}
	case g.URL != "" && (g.Provider != "" || g.Repo != "" || g.BaseURL != ""):
		return deploy.GitInput{}, &app.FieldError{Field: "git.url", Message: "and provider/repo/base_url are two ways to name the repository: give one"}
	case g.URL != "":
		in.Source = gitsrc.Source{Variant: &gitsrc.URL{URL: g.URL}}
	case g.Provider == "" && (g.Repo != "" || g.BaseURL != ""):
		return deploy.GitInput{}, &app.FieldError{Field: "git.provider", Message: "is required with repo: github, gitlab, gitea or bitbucket"}
	case g.Provider != "":
		switch webhook.Provider(g.Provider) {
		case webhook.GitHub:
			in.Source.Variant = &gitsrc.GitHub{Repo: g.Repo, BaseURL: g.BaseURL}
		case webhook.GitLab:
			in.Source.Variant = &gitsrc.GitLab{Repo: g.Repo, BaseURL: g.BaseURL}
		case webhook.Gitea:
			in.Source.Variant = &gitsrc.Gitea{Repo: g.Repo, BaseURL: g.BaseURL}
		case webhook.Bitbucket:
			if g.BaseURL != "" {
				return deploy.GitInput{}, &app.FieldError{Field: "git.base_url", Message: "is not used with bitbucket (Bitbucket Cloud only)"}
			}
			in.Source.Variant = &gitsrc.Bitbucket{Repo: g.Repo}
		default:
			return deploy.GitInput{}, &app.FieldError{Field: "git.provider", Message: "must be github, gitlab, gitea or bitbucket"}
		}
	}
	// Neither: the manager answers that git.url is required.
	return in, nil
}

// sourceOf is the wire form of a git source, with its absolute webhook URL.
func (s *server) sourceOf(ctx context.Context, g deploy.GitSource) *AppSource {
	out := &AppSource{
		Kind: string(g.Source.Kind()), CloneURL: g.CloneURL, Branch: g.Branch,
		Dockerfile: g.Build.Dockerfile, Context: g.Build.Context, Target: g.Build.Target, BuildArgs: g.Build.Args, BuildSecrets: g.Build.Secrets, Submodules: g.Build.Submodules,
		Filter:   GitFilter{Branches: nonNil(g.Filter.Branches), Tags: g.Filter.Tags, WatchPaths: nonNil(g.Filter.WatchPaths)},
		HasToken: g.HasToken, DeployKey: g.DeployKey, KnownHosts: g.KnownHosts,
		WebhookURL: s.publicURL(ctx) + deploy.WebhookPath(g.WebhookID), Provider: string(g.Provider), ProviderWebhook: g.ProviderWebhook,
	}
	switch v := g.Source.Variant.(type) {
	case *gitsrc.GitHub:
		out.Repo, out.BaseURL = v.Repo, v.BaseURL
	case *gitsrc.GitLab:
		out.Repo, out.BaseURL = v.Repo, v.BaseURL
	case *gitsrc.Gitea:
		out.Repo, out.BaseURL = v.Repo, v.BaseURL
	case *gitsrc.Bitbucket:
		out.Repo = v.Repo
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// publicURL is where clients reach this server: the configured public URL,
// else the scheme and host the request came through.
func (s *server) publicURL(ctx context.Context) string {
	if s.deps.PublicURL != "" {
		return strings.TrimRight(s.deps.PublicURL, "/")
	}
	r := exchangeFrom(ctx).r
	if r == nil {
		return ""
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
