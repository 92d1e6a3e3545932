package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/version"
)

// Client is a typed client of Berth's REST API. It decodes responses into the
// API's own wire types and errors into *ProblemError or *UnreachableError.
type Client struct {
	server string // base URL without a trailing slash
	token  string
	http   *http.Client
}

// NewClient returns a client of the server at base (normalised by
// normalizeServer), authenticating with token when it is not empty.
func NewClient(server, token string) *Client {
	return &Client{
		server: server,
		token:  token,
		http: &http.Client{
			Timeout: 30 * time.Second,
			// A redirect would turn a POST into a GET and drop its body; say so instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// ProblemError is an RFC 9457 problem answered by the server.
type ProblemError struct {
	Status int
	Type   string // the problem type URI, e.g. api.ProblemOTPRequired
	Detail string
	Fields []FieldProblem
}

// FieldProblem is one entry of a problem's errors list.
type FieldProblem struct {
	Message  string `json:"message"`
	Location string `json:"location"`
}

func (e *ProblemError) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = fmt.Sprintf("the server answered %d %s", e.Status, http.StatusText(e.Status))
	}
	for _, f := range e.Fields {
		if f.Message != "" && !strings.Contains(msg, f.Message) {
			msg += "\n  " + strings.TrimPrefix(f.Location, "body.") + ": " + f.Message
		}
	}
	return msg
}

// UnreachableError means the server could not be reached at all.
type UnreachableError struct {
	Server string
	Err    error
}

func (e *UnreachableError) Error() string {
	msg := fmt.Sprintf("cannot reach the Berth server at %s: is `berth server` running?", e.Server)
	if !errors.Is(e.Err, syscall.ECONNREFUSED) {
		msg += " (" + e.Err.Error() + ")"
	}
	return msg
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// do sends in as JSON (when not nil) and decodes a 2xx answer into out (when
// not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "berth-cli/"+version.Version)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is in the message already
		}
		var nerr net.Error
		if ctx.Err() == nil && (errors.As(err, &nerr) || errors.Is(err, syscall.ECONNREFUSED)) {
			return &UnreachableError{Server: c.server, Err: err}
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	switch {
	case res.StatusCode >= 300 && res.StatusCode < 400:
		return fmt.Errorf("the server at %s redirects to %s: use that address as --server", c.server, res.Header.Get("Location"))
	case res.StatusCode >= 400:
		p := &ProblemError{Status: res.StatusCode}
		var doc struct {
			Type   string         `json:"type"`
			Detail string         `json:"detail"`
			Errors []FieldProblem `json:"errors"`
		}
		if json.Unmarshal(b, &doc) == nil {
			p.Type, p.Detail, p.Fields = doc.Type, doc.Detail, doc.Errors
		}
		return p
	}
	if out == nil || res.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("the server at %s answered %s %s with something that is not Berth's API (%v)", c.server, method, path, err)
	}
	return nil
}

// Setup creates the owner account on a fresh install.
func (c *Client) Setup(ctx context.Context, in api.SetupRequest) (api.SetupResult, error) {
	var out api.SetupResult
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/setup", in, &out)
}

// TwoFactor is the caller's two-factor status.
func (c *Client) TwoFactor(ctx context.Context) (api.TwoFactorStatus, error) {
	var out api.TwoFactorStatus
	return out, c.do(ctx, http.MethodGet, api.Prefix+"/me/two-factor", nil, &out)
}

// EnrolTwoFactor starts two-factor enrolment.
func (c *Client) EnrolTwoFactor(ctx context.Context) (api.TwoFactorEnrolment, error) {
	var out api.TwoFactorEnrolment
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/me/two-factor", nil, &out)
}

// ConfirmTwoFactor completes enrolment and returns the recovery codes.
func (c *Client) ConfirmTwoFactor(ctx context.Context, otp string) (api.RecoveryCodes, error) {
	var out api.RecoveryCodes
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/me/two-factor/confirm", api.ConfirmTwoFactorRequest{OTP: otp}, &out)
}

// DisableTwoFactor turns two-factor login off.
func (c *Client) DisableTwoFactor(ctx context.Context, in api.DisableTwoFactorRequest) (api.CredentialsChanged, error) {
	var out api.CredentialsChanged
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/me/two-factor/disable", in, &out)
}

// RegenerateRecoveryCodes replaces the recovery codes.
func (c *Client) RegenerateRecoveryCodes(ctx context.Context, in api.SecondFactorRequest) (api.RecoveryCodes, error) {
	var out api.RecoveryCodes
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/me/two-factor/recovery-codes", in, &out)
}

// TokenLogin signs in with a password and issues an API token.
func (c *Client) TokenLogin(ctx context.Context, in api.TokenLoginRequest) (api.IssuedToken, error) {
	var out api.IssuedToken
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/auth/tokens", in, &out)
}

// Logout revokes the token the client uses.
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, api.Prefix+"/auth/logout", nil, nil)
}

// Me describes the caller.
func (c *Client) Me(ctx context.Context) (api.Me, error) {
	var out api.Me
	return out, c.do(ctx, http.MethodGet, api.Prefix+"/me", nil, &out)
}

// Tokens lists the caller's API tokens.
func (c *Client) Tokens(ctx context.Context) ([]api.APIToken, error) {
	var out api.TokenList
	return out.Tokens, c.do(ctx, http.MethodGet, api.Prefix+"/tokens", nil, &out)
}

// CreateToken issues an API token for the caller.
func (c *Client) CreateToken(ctx context.Context, in api.CreateTokenRequest) (api.IssuedToken, error) {
	var out api.IssuedToken
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/tokens", in, &out)
}

// RevokeToken revokes one of the caller's tokens.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, api.Prefix+"/tokens/"+url.PathEscape(id), nil, nil)
}

// The operations on projects, apps, variables and deployments. Names in paths
// are escaped; the server validates them.

func projectPath(project string) string {
	return api.Prefix + "/projects/" + url.PathEscape(project)
}

// appPath is an app's path, with the environment in the query.
func appPath(ref appRef, suffix string) string {
	return projectPath(ref.Project) + "/apps/" + url.PathEscape(ref.Name) + suffix + "?environment=" + url.QueryEscape(ref.Environment)
}

// Projects lists the organization's projects.
func (c *Client) Projects(ctx context.Context) ([]api.Project, error) {
	var out api.ProjectList
	return out.Projects, c.do(ctx, http.MethodGet, api.Prefix+"/projects", nil, &out)
}

// CreateProject creates a project with its production environment.
func (c *Client) CreateProject(ctx context.Context, name string) (api.Project, error) {
	var out api.Project
	return out, c.do(ctx, http.MethodPost, api.Prefix+"/projects", api.CreateProjectRequest{Name: name}, &out)
}

// Project shows a project with its environments and apps.
func (c *Client) Project(ctx context.Context, name string) (api.ProjectDetail, error) {
	var out api.ProjectDetail
	return out, c.do(ctx, http.MethodGet, projectPath(name), nil, &out)
}

// RenameProject renames a project.
func (c *Client) RenameProject(ctx context.Context, name, newName string) (api.Project, error) {
	var out api.Project
	return out, c.do(ctx, http.MethodPatch, projectPath(name), api.RenameProjectRequest{Name: newName}, &out)
}

// DeleteProject deletes an empty project.
func (c *Client) DeleteProject(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, projectPath(name), nil, nil)
}

// Environments lists a project's environments.
func (c *Client) Environments(ctx context.Context, project string) ([]api.Environment, error) {
	var out api.EnvironmentList
	return out.Environments, c.do(ctx, http.MethodGet, projectPath(project)+"/environments", nil, &out)
}

// CreateEnvironment adds an environment to a project.
func (c *Client) CreateEnvironment(ctx context.Context, project, name string) (api.Environment, error) {
	var out api.Environment
	return out, c.do(ctx, http.MethodPost, projectPath(project)+"/environments", api.CreateEnvironmentRequest{Name: name}, &out)
}

// Apps lists a project's apps.
func (c *Client) Apps(ctx context.Context, project string) ([]api.AppSummary, error) {
	var out api.AppList
	return out.Apps, c.do(ctx, http.MethodGet, projectPath(project)+"/apps", nil, &out)
}

// CreateApp creates an app.
func (c *Client) CreateApp(ctx context.Context, project string, in api.CreateAppRequest) (api.App, error) {
	var out api.App
	return out, c.do(ctx, http.MethodPost, projectPath(project)+"/apps", in, &out)
}

// AppStatus shows an app and what runs for it.
func (c *Client) AppStatus(ctx context.Context, ref appRef) (api.AppStatus, error) {
	var out api.AppStatus
	return out, c.do(ctx, http.MethodGet, appPath(ref, ""), nil, &out)
}

// DeleteApp deletes an app, and its volumes when removeVolumes is set.
func (c *Client) DeleteApp(ctx context.Context, ref appRef, removeVolumes bool) error {
	path := appPath(ref, "")
	if removeVolumes {
		path += "&remove_volumes=true"
	}
	return c.do(ctx, http.MethodDelete, path, nil, nil)
}

// Deploy queues a deployment of the app.
func (c *Client) Deploy(ctx context.Context, ref appRef, in api.DeployRequest) (api.Deployment, error) {
	var out api.Deployment
	return out, c.do(ctx, http.MethodPost, appPath(ref, "/deploy"), in, &out)
}

// Rollback queues a deployment of an earlier one.
func (c *Client) Rollback(ctx context.Context, ref appRef, to string) (api.Deployment, error) {
	var out api.Deployment
	return out, c.do(ctx, http.MethodPost, appPath(ref, "/rollback"), api.RollbackRequest{To: to}, &out)
}

// Restart queues a new release of the current deployment.
func (c *Client) Restart(ctx context.Context, ref appRef) (api.Deployment, error) {
	var out api.Deployment
	return out, c.do(ctx, http.MethodPost, appPath(ref, "/restart"), nil, &out)
}

// Stop scales the app to zero.
func (c *Client) Stop(ctx context.Context, ref appRef) error {
	return c.do(ctx, http.MethodPost, appPath(ref, "/stop"), nil, nil)
}

// Start brings a stopped app back.
func (c *Client) Start(ctx context.Context, ref appRef) error {
	return c.do(ctx, http.MethodPost, appPath(ref, "/start"), nil, nil)
}

// Scale changes the app's replicas.
func (c *Client) Scale(ctx context.Context, ref appRef, replicas int) (api.App, error) {
	var out api.App
	return out, c.do(ctx, http.MethodPost, appPath(ref, "/scale"), api.ScaleRequest{Replicas: replicas}, &out)
}

// Deployments lists the app's newest deployments.
func (c *Client) Deployments(ctx context.Context, ref appRef, limit int) ([]api.Deployment, error) {
	var out api.DeploymentList
	return out.Deployments, c.do(ctx, http.MethodGet, appPath(ref, "/deployments")+"&limit="+strconv.Itoa(limit), nil, &out)
}

// Deployment shows a deployment by id or number (3, #3).
func (c *Client) Deployment(ctx context.Context, ref appRef, id string) (api.DeploymentDetail, error) {
	var out api.DeploymentDetail
	return out, c.do(ctx, http.MethodGet, appPath(ref, "/deployments/"+url.PathEscape(id)), nil, &out)
}

// CancelDeployment asks for a queued or starting deployment to stop.
func (c *Client) CancelDeployment(ctx context.Context, ref appRef, id string) (api.Deployment, error) {
	var out api.Deployment
	return out, c.do(ctx, http.MethodPost, appPath(ref, "/deployments/"+url.PathEscape(id)+"/cancel"), nil, &out)
}

// envPath is the variables endpoint with the scope's query.
func envPath(s envScope, reveal bool) string {
	q := url.Values{"scope": {s.scope}}
	if s.environment != "" {
		q.Set("environment", s.environment)
	}
	if s.app != "" {
		q.Set("app", s.app)
	}
	if reveal {
		q.Set("reveal", "true")
	}
	return projectPath(s.project) + "/env?" + q.Encode()
}

// Env lists a scope's variables, masked unless reveal.
func (c *Client) Env(ctx context.Context, s envScope, reveal bool) ([]api.EnvVar, error) {
	var out api.EnvVarList
	return out.Vars, c.do(ctx, http.MethodGet, envPath(s, reveal), nil, &out)
}

// ReplaceEnv replaces every variable of a scope.
func (c *Client) ReplaceEnv(ctx context.Context, s envScope, in api.ReplaceEnvRequest) (api.EnvChange, error) {
	var out api.EnvChange
	return out, c.do(ctx, http.MethodPut, envPath(s, false), in, &out)
}

// UpdateEnv changes some variables of a scope.
func (c *Client) UpdateEnv(ctx context.Context, s envScope, in api.UpdateEnvRequest) (api.EnvChange, error) {
	var out api.EnvChange
	return out, c.do(ctx, http.MethodPatch, envPath(s, false), in, &out)
}

// stream reads a Server-Sent Events operation, calling fn with each event's
// name and data until the server ends the stream, fn returns an error, or
// ctx ends. Errors before the stream starts are *ProblemError as for do.
func (c *Client) stream(ctx context.Context, path string, fn func(event string, data []byte) error) error {
	res, err := c.open(ctx, path, "text/event-stream")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20) // a log line may be long
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event != "" || len(data) > 0 {
				if err := fn(event, data); err != nil {
					return err
				}
			}
			event, data = "", nil
		case strings.HasPrefix(line, ":"): // comment, keep-alive
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")...)
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("the event stream from %s broke off: %w", c.server, err)
	}
	return ctx.Err()
}

// open GETs path for a body read as it arrives (a followed stream, an
// export): no overall timeout. A status other than 200 is a *ProblemError,
// an unreachable server an *UnreachableError, as for do.
func (c *Client) open(ctx context.Context, path, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.server+path, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("User-Agent", "berth-cli/"+version.Version)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := &http.Client{CheckRedirect: c.http.CheckRedirect, Transport: c.http.Transport}
	res, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, &UnreachableError{Server: c.server, Err: err}
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		p := &ProblemError{Status: res.StatusCode}
		var doc struct {
			Detail string         `json:"detail"`
			Errors []FieldProblem `json:"errors"`
		}
		if b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20)); err == nil && json.Unmarshal(b, &doc) == nil {
			p.Detail, p.Fields = doc.Detail, doc.Errors
		}
		return nil, p
	}
	return res, nil
}
