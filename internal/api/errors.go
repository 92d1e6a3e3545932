package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/forge"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/store"
	"github.com/berthpaas/berth/internal/webhook"
)

// Messages clients see; stable so scripts and the CLI can rely on them.
const (
	internalErrorMessage  = "internal server error; the server log has the details"
	unauthenticatedDetail = "not signed in, or the session or token has expired or been revoked"
)

// problem maps an error from a handler or the authentication step to the
// problem the client sees. It is the one place where errors become HTTP
// statuses; an unexpected error is logged here, once, with the request's
// context, and answered with a generic 500.
func (s *server) problem(ctx context.Context, err error) error {
	var (
		field     *auth.FieldError
		appField  *app.FieldError
		gitField  *gitsrc.ValidationError
		hookField *webhook.FieldError
		busy      *deploy.ConflictError
		forbidden *deploy.ForbiddenError
		denied    *auth.ForbiddenError
		throttled *auth.ThrottledError
		locked    *auth.SecondFactorLockedError
		provider  *forge.Error
		status    huma.StatusError
	)
	switch {
	case errors.As(err, &field):
		return fieldProblem(field)
	case errors.As(err, &appField):
		return fieldProblem((*auth.FieldError)(appField))
	case errors.As(err, &gitField):
		// The manager names git fields itself; this is the backstop that
		// keeps bad input from ever becoming a 500.
		return fieldProblem(&auth.FieldError{Field: gitField.Field, Message: gitField.Reason})
	case errors.As(err, &hookField):
		return fieldProblem((*auth.FieldError)(hookField))
	case errors.As(err, &throttled):
		secs := max(1, int(math.Ceil(throttled.RetryAfter.Seconds())))
		return huma.ErrorWithHeaders(
			huma.Error429TooManyRequests(fmt.Sprintf("too many failed sign-in attempts; try again in %d seconds", secs)),
			http.Header{"Retry-After": {strconv.Itoa(secs)}})
	case errors.Is(err, auth.ErrInvalidCredentials):
		return huma.Error401Unauthorized("invalid email or password")
	case errors.Is(err, auth.ErrSecondFactorRequired):
		return typedProblem(http.StatusUnauthorized, ProblemOTPRequired, "two-factor login is on for this account: repeat the request with otp (the code from your authenticator app) or recovery_code")
	case errors.Is(err, auth.ErrInvalidSecondFactor):
		return typedProblem(http.StatusUnauthorized, ProblemOTPInvalid, "the code is not right, has expired or was already used")
	case errors.As(err, &locked):
		secs := max(1, int(math.Ceil(locked.Until.Sub(s.deps.Auth.Now()).Seconds())))
		return huma.ErrorWithHeaders(typedProblem(http.StatusTooManyRequests, ProblemOTPLocked, locked.Error()),
			http.Header{"Retry-After": {strconv.Itoa(secs)}})
	case errors.Is(err, auth.ErrPendingLoginExpired):
		return huma.Error401Unauthorized(auth.ErrPendingLoginExpired.Error())
	case errors.Is(err, auth.ErrTwoFactorEnabled), errors.Is(err, auth.ErrTwoFactorNotEnabled), errors.Is(err, auth.ErrNoPendingEnrolment):
		return huma.Error409Conflict(err.Error())
	case errors.Is(err, auth.ErrTwoFactorUnavailable):
		return huma.Error409Conflict(err.Error())
	case errors.Is(err, auth.ErrUnauthenticated):
		return huma.ErrorWithHeaders(huma.Error401Unauthorized(unauthenticatedDetail),
			http.Header{"WWW-Authenticate": {`Bearer realm="berth"`}})
	case errors.Is(err, auth.ErrSetupDone):
		return huma.Error409Conflict("setup is already complete: an owner account exists; sign in instead")
	case errors.Is(err, store.ErrNotFound):
		return huma.Error404NotFound("not found")
	case errors.Is(err, store.ErrConflict):
		return huma.Error409Conflict("already exists")
	case errors.Is(err, store.ErrNotEmpty):
		return huma.Error409Conflict("project still has applications")
	case errors.As(err, &denied):
		// Written for users ("your role (viewer) cannot grant admin …").
		return huma.Error403Forbidden(denied.Message)
	case errors.Is(err, auth.ErrInvitationInvalid):
		return huma.Error410Gone(auth.ErrInvitationInvalid.Error())
	case errors.As(err, &forbidden):
		// Written for users ("binds: bind mounts need …").
		return huma.Error403Forbidden(forbidden.Message)
	case errors.Is(err, deploy.ErrForbidden):
		return huma.Error403Forbidden("your role does not allow this")
	case errors.As(err, &busy):
		// Written for users ("deployment #3 is live; only …").
		return huma.Error409Conflict(busy.Message)
	case errors.Is(err, deploy.ErrBusy):
		return huma.Error409Conflict("the app is busy; try again when its deployment has finished")
	case errors.As(err, &provider):
		// Written for users, naming the provider and what to do; never the token.
		if errors.Is(err, forge.ErrNotFound) {
			return huma.Error404NotFound(provider.Error())
		}
		return huma.Error502BadGateway(provider.Error())
	case errors.Is(err, forge.ErrInvalid):
		return huma.Error422UnprocessableEntity(err.Error())
	case errors.Is(err, orchestrator.ErrEngineUnreachable):
		return huma.Error503ServiceUnavailable("the container engine is unreachable; see GET " + Prefix + "/system/engine")
	case errors.As(err, &status):
		// Already a problem, built by a handler with a user-safe message.
		return err
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client went away; nobody reads the answer and nothing failed.
		return huma.Error500InternalServerError(internalErrorMessage)
	}
	s.log.ErrorContext(ctx, "api request failed", "err", err)
	return huma.Error500InternalServerError(internalErrorMessage)
}

// typedProblem is a problem whose type URI clients can branch on.
func typedProblem(status int, typ, detail string) *huma.ErrorModel {
	return &huma.ErrorModel{Type: typ, Title: http.StatusText(status), Status: status, Detail: detail}
}

// fieldProblem is the 422 for invalid input to one field.
func fieldProblem(fe *auth.FieldError) error {
	msg := fe.Field + " " + fe.Message
	return huma.Error422UnprocessableEntity(msg, &huma.ErrorDetail{Location: "body." + fe.Field, Message: msg})
}

// writeProblem answers with the problem for err outside an operation's
// handler (in middleware), with its headers.
func (s *server) writeProblem(hctx huma.Context, err error) {
	perr := s.problem(hctx.Context(), err)
	var he huma.HeadersError
	if errors.As(perr, &he) {
		for k, vs := range he.GetHeaders() {
			for _, v := range vs {
				hctx.AppendHeader(k, v)
			}
		}
	}
	var m *huma.ErrorModel
	if !errors.As(perr, &m) {
		m = &huma.ErrorModel{Status: http.StatusInternalServerError, Detail: internalErrorMessage}
	}
	details := make([]error, len(m.Errors))
	for i, d := range m.Errors {
		details[i] = d
	}
	huma.WriteErr(s.api, hctx, m.Status, m.Detail, details...)
}

// scrubProblem is a response transformer applied to every problem, including
// those huma writes for invalid requests before a handler runs. It drops the
// echoed values (huma echoes the offending input, which may be a password),
// words validation messages so they name the field, and hides internals of
// any 5xx that did not come through problem.
func (s *server) scrubProblem(hctx huma.Context, _ string, v any) (any, error) {
	m, ok := v.(*huma.ErrorModel)
	if !ok {
		return v, nil
	}
	if m.Status >= 500 {
		if m.Detail != internalErrorMessage {
			// huma's own failures (e.g. reading the body) reach here unlogged.
			s.log.ErrorContext(hctx.Context(), "api request failed", "status", m.Status, "err", m.Detail, "operation", hctx.Operation().OperationID)
		}
		m.Detail, m.Errors = internalErrorMessage, nil
		return m, nil
	}
	var msgs []string
	bodySyntax := false
	for _, d := range m.Errors {
		if d == nil {
			continue
		}
		d.Value = nil
		if name, ok := strings.CutPrefix(d.Message, "expected required property "); ok && (d.Location == "body" || strings.HasPrefix(d.Location, "body.")) {
			name = strings.TrimSuffix(name, " to be present")
			d.Location, d.Message = d.Location+"."+name, name+" is required"
		} else if d.Message == "unexpected property" {
			name := d.Location[strings.LastIndex(d.Location, ".")+1:]
			d.Message = name + " is not a known field"
		} else if d.Location == "body" && m.Status == http.StatusBadRequest {
			bodySyntax = true
			d.Message = "malformed JSON: " + d.Message
		}
		msgs = append(msgs, d.Message)
	}
	if m.Detail == "validation failed" {
		switch {
		case bodySyntax:
			m.Detail = "the request body is not valid JSON"
		case len(msgs) > 0:
			m.Detail = strings.Join(msgs, "; ")
		}
	}
	return m, nil
}
