package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
			Detail string         `json:"detail"`
			Errors []FieldProblem `json:"errors"`
		}
		if json.Unmarshal(b, &doc) == nil {
			p.Detail, p.Fields = doc.Detail, doc.Errors
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
