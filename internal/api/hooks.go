package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/audit"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/webhook"
)

// WebhookPattern is the route of the webhook receiver, outside /api/v1: it
// is public, and the provider's signature authenticates each delivery.
const WebhookPattern = "POST /hooks/{id}"

// WebhookSecret is an app's webhook secret with what a provider needs to
// sign its deliveries.
type WebhookSecret struct {
	Secret          string `json:"secret" doc:"The secret to enter in the provider's webhook settings. Revealing it is recorded in the audit log"`
	WebhookURL      string `json:"webhook_url" example:"https://berth.example.com/hooks/x7Qm…" doc:"The payload URL"`
	Provider        string `json:"provider,omitempty" example:"github" doc:"The provider whose signature is checked; absent for a plain git URL (any of the four, recognised by its headers)"`
	SignatureHeader string `json:"signature_header,omitempty" example:"X-Hub-Signature-256" doc:"The header that carries the signature (GitLab: the secret itself)"`
	ContentType     string `json:"content_type" example:"application/json" doc:"The payload format to choose in the provider's settings"`
}

// WebhookAnswer is the answer to a webhook delivery that was accepted or
// ignored; refusals are problem documents.
type WebhookAnswer struct {
	Message string        `json:"message" example:"build #3 of 3f2c1ab4d5e6 queued" doc:"What was done with the delivery, or why nothing was"`
	Build   *WebhookBuild `json:"build,omitempty" doc:"The build a push queued"`
}

// WebhookBuild is the build a delivery queued, as the provider sees it.
type WebhookBuild struct {
	ID     string `json:"id" example:"bld_4fk3mz2xq7bw6a5c"`
	Seq    int    `json:"seq" example:"3"`
	Status string `json:"status" example:"queued"`
	Ref    string `json:"ref" example:"refs/heads/main"`
	Commit string `json:"commit" example:"3f2c1ab4d5e6f708192a3b4c5d6e7f8091a2b3c4"`
}

type sourceOutput struct{ Body AppSource }

type webhookSecretOutput struct{ Body WebhookSecret }

// signatureRejected is what a delivery with a missing or wrong signature is
// told; which of the two it was is for the log only.
const signatureRejected = "the delivery's signature is missing or does not match this app's webhook secret"

func (s *server) registerHooks(mux *http.ServeMux) {
	appOp := func(op huma.Operation) huma.Operation {
		op.Tags = []string{"Apps"}
		op.Errors = append(op.Errors, http.StatusNotFound)
		return op
	}
	register(s, appOp(huma.Operation{
		OperationID: "get-app-source",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/apps/{app}/source",
		Summary:     "Show an app's git source",
		Description: "Returns where an app built from git gets its code, how it is built, which pushes deploy it, its webhook URL and, for SSH repositories, the public deploy key and pinned host keys. " +
			"Never the access token or the webhook secret. An app deployed from an image answers 404.",
	}), s.getSource)

	register(s, appOp(huma.Operation{
		OperationID: "reveal-webhook-secret",
		Method:      http.MethodPost,
		Path:        Prefix + "/projects/{project}/apps/{app}/source/webhook-secret",
		Summary:     "Reveal an app's webhook secret",
		Description: "Returns the secret the provider signs webhook deliveries with, the webhook URL, and which header carries the signature. " +
			"Each reveal is recorded in the audit log (`webhook-secret.reveal`) before the secret is sent; if it cannot be recorded, the secret is not sent (500). " +
			"An app deployed from an image answers 404.",
	}), s.revealWebhookSecret)

	register(s, appOp(huma.Operation{
		OperationID: "update-app-source",
		Method:      http.MethodPut,
		Path:        Prefix + "/projects/{project}/apps/{app}/source",
		Summary:     "Change an app's git source",
		Description: "Replaces where an app built from git gets its code, how it is built and which pushes deploy it, with the same fields as `git` when the app was created. " +
			"A token left out keeps the stored one; `remove_token` removes it. The webhook URL and secret stay. A repository on another host forgets the SSH host keys pinned for the old one; " +
			"an SSH repository without a deploy key gets one (in the answer, to add to the repository). Nothing is rebuilt: the next build, by push or deploy, uses the new source. " +
			"An app deployed from an image answers 404.",
		Errors: []int{http.StatusUnprocessableEntity},
	}), s.updateSource)

	register(s, appOp(huma.Operation{
		OperationID: "rotate-webhook-secret",
		Method:      http.MethodPost,
		Path:        Prefix + "/projects/{project}/apps/{app}/source/webhook-secret/rotate",
		Summary:     "Give an app a new webhook secret",
		Description: "Replaces the secret webhook deliveries are signed with and returns the new one, to enter in the provider's settings: deliveries signed with the old secret are refused from then on. " +
			"Needs the permissions to change the app and to reveal its secrets; recorded in the audit log (`webhook-secret.rotate`) before the secret is sent. An app deployed from an image answers 404.",
	}), s.rotateWebhookSecret)

	mux.Handle(WebhookPattern, http.HandlerFunc(s.receiveWebhook))
	s.documentWebhook()
}

func (s *server) getSource(ctx context.Context, in *AppParams) (*sourceOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	src, err := s.deps.Apps.GitSource(ctx, p, in.ref())
	if err != nil {
		return nil, err
	}
	return &sourceOutput{Body: *s.sourceOf(ctx, src)}, nil
}

func (s *server) revealWebhookSecret(ctx context.Context, in *AppParams) (*webhookSecretOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ref := in.ref()
	secret, err := s.deps.Apps.WebhookSecret(ctx, p, ref)
	if err != nil {
		return nil, err
	}
	target := audit.Target("project", ref.Project, "environment", ref.Environment, "app", ref.Name)
	if err := s.recordSecretReveal(ctx, p, "webhook-secret.reveal", target, `{"revealed":"webhook secret"}`); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "webhook secret revealed", "user_id", p.User.ID, "name", ref.String())
	return s.webhookSecretOf(ctx, p, ref, secret)
}

// webhookSecretOf is secret with what the app's provider needs next to it.
func (s *server) webhookSecretOf(ctx context.Context, p auth.Principal, ref deploy.AppRef, secret string) (*webhookSecretOutput, error) {
	src, err := s.deps.Apps.GitSource(ctx, p, ref)
	if err != nil {
		return nil, err
	}
	return &webhookSecretOutput{Body: WebhookSecret{
		Secret: secret, WebhookURL: s.sourceOf(ctx, src).WebhookURL, Provider: string(src.Provider),
		SignatureHeader: src.Provider.SignatureHeader(), ContentType: "application/json",
	}}, nil
}

// GitSourceRequest replaces an app's git source.
type GitSourceRequest struct {
	GitRequest
	RemoveToken bool `json:"remove_token,omitempty" doc:"Remove the stored access token (the repository is public, or reached over SSH)"`
}

type updateSourceInput struct {
	AppParams
	Body GitSourceRequest
}

func (s *server) updateSource(ctx context.Context, in *updateSourceInput) (*sourceOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	git, err := gitInput(in.Body.GitRequest)
	if err != nil {
		return nil, err
	}
	ref := in.ref()
	src, err := s.deps.Apps.UpdateGitSource(ctx, p, ref, deploy.GitChange{GitInput: git, RemoveToken: in.Body.RemoveToken})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "git source changed", "user_id", p.User.ID, "name", ref.String(), "source", string(src.Source.Kind()))
	return &sourceOutput{Body: *s.sourceOf(ctx, src)}, nil
}

func (s *server) rotateWebhookSecret(ctx context.Context, in *AppParams) (*webhookSecretOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	ref := in.ref()
	secret, err := s.deps.Apps.RotateWebhookSecret(ctx, p, ref)
	if err != nil {
		return nil, err
	}
	target := audit.Target("project", ref.Project, "environment", ref.Environment, "app", ref.Name)
	if err := s.recordSecretReveal(ctx, p, "webhook-secret.rotate", target, `{"revealed":"new webhook secret"}`); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "webhook secret rotated", "user_id", p.User.ID, "name", ref.String())
	return s.webhookSecretOf(ctx, p, ref, secret)
}

// receiveWebhook takes a provider's delivery. It needs no credentials: the
// manager checks the signature against the app's secret before anything is
// parsed or queued. Refusals are problem documents.
func (s *server) receiveWebhook(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, err := webhook.ReadBody(http.MaxBytesReader(w, r.Body, webhook.MaxBodySize))
	if errors.Is(err, webhook.ErrTooLarge) {
		s.log.InfoContext(ctx, "webhook delivery refused", "status", http.StatusRequestEntityTooLarge)
		writeRawProblem(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	} else if err != nil {
		writeRawProblem(w, http.StatusBadRequest, "the delivery's body could not be read")
		return
	}
	res, err := s.deps.Apps.Webhook(ctx, r.PathValue("id"), r.Header, body)
	if err != nil {
		s.log.ErrorContext(ctx, "webhook delivery failed", "err", err)
		writeRawProblem(w, http.StatusInternalServerError, internalErrorMessage)
		return
	}
	msg := res.Message
	if res.Status == http.StatusUnauthorized {
		msg = signatureRejected
	}
	if res.Status >= 400 {
		s.log.InfoContext(ctx, "webhook delivery refused", "status", res.Status, "reason", res.Message)
		writeRawProblem(w, res.Status, msg)
		return
	}
	out := WebhookAnswer{Message: msg}
	if b := res.Build; b != nil {
		out.Build = &WebhookBuild{ID: b.ID, Seq: b.Seq, Status: b.Status, Ref: b.Ref, Commit: b.Commit}
		s.log.InfoContext(ctx, "webhook delivery queued a build", "app", b.AppID, "build_id", b.ID, "seq", b.Seq, "commit", b.Commit)
	} else {
		s.log.InfoContext(ctx, "webhook delivery ignored", "status", res.Status, "reason", res.Message)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(res.Status)
	json.NewEncoder(w).Encode(out)
}

// documentWebhook adds the receiver, a plain handler, to the OpenAPI
// document.
func (s *server) documentWebhook() {
	oapi := s.api.OpenAPI()
	reg := oapi.Components.Schemas
	answer := &huma.Response{Description: "Accepted or ignored", Content: map[string]*huma.MediaType{
		"application/json": {Schema: reg.Schema(reflect.TypeFor[WebhookAnswer](), true, "WebhookAnswer")},
	}}
	problem := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{
			"application/problem+json": {Schema: reg.Schema(reflect.TypeFor[huma.ErrorModel](), true, "ErrorModel")},
		}}
	}
	oapi.AddOperation(&huma.Operation{
		OperationID: "receive-webhook",
		Method:      http.MethodPost,
		Path:        "/hooks/{id}",
		Metadata:    map[string]any{metaPublic: true}, // served outside huma; signed by the provider
		Tags:        []string{"Builds"},
		Summary:     "Receive a git provider's webhook",
		Description: "Where GitHub, GitLab, Gitea and Bitbucket Cloud deliver push events for one app (its `source.webhook_url`). No credentials: each delivery must carry the provider's signature made with the app's webhook secret " +
			"(GitHub `X-Hub-Signature-256`, Gitea `X-Gitea-Signature`, Bitbucket `X-Hub-Signature`: `sha256=` HMAC-SHA256 of the body; GitLab `X-Gitlab-Token`: the secret), else 401 and nothing is queued. " +
			"A delivery id seen before is ignored (200), as are pings, other events and pushes the app's filter does not deploy (200 with the reason). " +
			"A push that deploys queues a build of the pushed commit (202). Bodies over 25 MiB answer 413, malformed ones 400.",
		Security: []map[string][]string{},
		Parameters: []*huma.Param{{
			Name: "id", In: "path", Required: true, Description: "The app's webhook id: the last segment of its webhook URL",
			Schema: &huma.Schema{Type: huma.TypeString, MaxLength: new(1024)},
		}},
		RequestBody: &huma.RequestBody{Required: true, Description: "The provider's payload, exactly as sent (the signature covers these bytes)", Content: map[string]*huma.MediaType{
			"application/json": {Schema: &huma.Schema{Type: huma.TypeObject, Description: "The provider's push (or ping) event"}},
		}},
		Responses: map[string]*huma.Response{
			"200": answer,
			"202": answer,
			"400": problem("Not the provider's payload, or a delivery of a plain git URL without a known event header"),
			"401": problem("Signature missing or wrong"),
			"404": problem("No app has this webhook URL"),
			"413": problem("Body over 25 MiB"),
			"500": problem("Internal server error"),
		},
	})
}

// recordSecretReveal records that p is about to see a secret, before it is
// sent, and tells the record middleware it is recorded. It fails closed:
// without a record, no secret.
func (s *server) recordSecretReveal(ctx context.Context, p auth.Principal, action, target, summary string) error {
	if s.deps.Audit == nil {
		return nil
	}
	r := exchangeFrom(ctx).r
	ev := audit.Event{
		OrganizationID: p.Organization.ID, Actor: audit.ActorOf(p), Action: action, Target: target,
		SourceIP: auth.ClientIP(r), UserAgent: r.UserAgent(), Status: http.StatusOK, Summary: summary,
	}
	if err := s.deps.Audit.Record(context.WithoutCancel(ctx), ev); err != nil {
		// Logged by the recorder; the generic 500 keeps problem from logging it again.
		return huma.Error500InternalServerError(internalErrorMessage)
	}
	if n := audit.NoteFrom(ctx); n != nil {
		n.Recorded = true
	}
	return nil
}
