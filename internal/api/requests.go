package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/berthpaas/berth/internal/edge"
)

// AppRequests is an app's traffic through the edge over a window.
type AppRequests struct {
	Window        string    `json:"window" example:"5m" doc:"The window the figures cover"`
	CountingSince time.Time `json:"counting_since" doc:"When the control plane started counting: a window reaching further back counts from then"`
	RequestTotals
	Releases []ReleaseRequests `json:"releases" doc:"The figures per release service, busiest first; an empty release is requests the proxy answered itself (no server up)"`
	Rates    []RatePoint       `json:"rates" doc:"The request rate in 30 equal steps over the window, oldest first"`
	Recent   []RecentRequest   `json:"recent" doc:"The app's latest requests (at most 50), newest first"`
}

// RequestTotals are the figures of a window.
type RequestTotals struct {
	Requests  int64            `json:"requests" doc:"Requests answered in the window"`
	Rate      float64          `json:"rate" doc:"Requests per second"`
	ErrorRate float64          `json:"error_rate" minimum:"0" maximum:"1" doc:"Share of 5xx responses"`
	P50Ms     float64          `json:"p50_ms" doc:"Median latency in milliseconds, estimated from histogram buckets; 0 without requests"`
	P95Ms     float64          `json:"p95_ms" doc:"95th percentile latency in milliseconds, estimated from histogram buckets; 0 without requests"`
	Codes     map[string]int64 `json:"codes" example:"{\"1xx\":0,\"2xx\":1200,\"3xx\":4,\"4xx\":17,\"5xx\":2}" doc:"Responses by status class"`
}

// ReleaseRequests are one release's figures.
type ReleaseRequests struct {
	Release string `json:"release" doc:"Release service"`
	RequestTotals
}

// RatePoint is the request rate in the step ending at.
type RatePoint struct {
	At   time.Time `json:"at"`
	Rate float64   `json:"rate" doc:"Requests per second"`
}

// RecentRequest is one logged request.
type RecentRequest struct {
	Time       time.Time `json:"time"`
	Method     string    `json:"method"`
	Host       string    `json:"host"`
	Path       string    `json:"path" doc:"Without the query string; long paths are cut"`
	Status     int       `json:"status" doc:"Response status; -1 when the client left before one"`
	DurationMs int64     `json:"duration_ms"`
	Release    string    `json:"release,omitempty" doc:"Release service that answered; empty when the proxy answered itself"`
}

type requestsInput struct {
	AppParams
	Window string `query:"window" maxLength:"16" default:"5m" example:"15m" doc:"How far back: a duration from 1m to 1h"`
}

type requestsOutput struct{ Body AppRequests }

func (s *server) registerRequests() {
	if s.deps.Requests == nil {
		return
	}
	register(s, huma.Operation{
		OperationID: "get-app-requests",
		Method:      http.MethodGet,
		Path:        Prefix + "/projects/{project}/apps/{app}/requests",
		Summary:     "Show an app's requests",
		Description: "Returns what the edge proxies counted for the app over the window: request rate, share of 5xx, p50/p95 latency (estimated from histogram buckets), the same per release, the rate over time, and the latest requests across the proxies. " +
			"Counting starts when the control plane starts and is kept in memory for an hour.",
		Tags:   []string{"Apps"},
		Errors: []int{http.StatusNotFound},
	}, s.appRequests)
}

// parseWindow reads the window query parameter.
func parseWindow(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Minute || d > edge.MaxWindow {
		msg := "window must be a duration from 1m to 1h, such as 5m"
		return 0, huma.Error422UnprocessableEntity(msg, &huma.ErrorDetail{Location: "query.window", Message: msg})
	}
	return d, nil
}

func (s *server) appRequests(ctx context.Context, in *requestsInput) (*requestsOutput, error) {
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	window, err := parseWindow(in.Window)
	if err != nil {
		return nil, err
	}
	a, err := s.deps.Apps.App(ctx, p, in.ref())
	if err != nil {
		return nil, err
	}
	return &requestsOutput{Body: AppRequestsOf(s.deps.Requests(a.ID, window))}, nil
}

// AppRequestsOf turns the edge's figures into the API's.
func AppRequestsOf(w edge.AppRequests) AppRequests {
	out := AppRequests{Window: w.Window.String(), CountingSince: w.Since, RequestTotals: totalsOf(w.Totals),
		Releases: make([]ReleaseRequests, 0, len(w.Releases)), Rates: make([]RatePoint, 0, len(w.Rates)),
		Recent: make([]RecentRequest, 0, len(w.Recent))}
	for _, r := range w.Releases {
		out.Releases = append(out.Releases, ReleaseRequests{Release: r.Release, RequestTotals: totalsOf(r.Totals)})
	}
	for _, p := range w.Rates {
		out.Rates = append(out.Rates, RatePoint{At: p.At, Rate: p.Rate})
	}
	for _, r := range w.Recent {
		out.Recent = append(out.Recent, RecentRequest{Time: r.Time, Method: r.Method, Host: r.Host, Path: r.Path,
			Status: r.Status, DurationMs: r.DurationMs, Release: r.Release})
	}
	return out
}

var codeClasses = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func totalsOf(t edge.Totals) RequestTotals {
	codes := make(map[string]int64, len(codeClasses))
	for i, c := range codeClasses {
		codes[c] = t.Codes[i]
	}
	return RequestTotals{Requests: t.Requests, Rate: t.Rate, ErrorRate: t.ErrorRate, P50Ms: t.P50Ms, P95Ms: t.P95Ms, Codes: codes}
}
