package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/auth"
	"github.com/berthpaas/berth/internal/deploy"
	"github.com/berthpaas/berth/internal/edge"
	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

func TestAppRequestsCommand(t *testing.T) {
	isolate(t)
	db, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _ := secrets.GenerateKey()
	keys, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	rel := &fakeReleases{}
	log := slog.New(slog.DiscardHandler)
	var asked time.Duration
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	mux := http.NewServeMux()
	api.Register(mux, api.Deps{
		Auth: auth.New(db, auth.Options{}), Engine: fakeEngine{},
		Apps:         deploy.NewManager(db, keys, rel, deploy.NewEngine(db, rel, keys, log, deploy.Options{})),
		Log:          log,
		SetupAllowed: func(*http.Request) bool { return true },
		Requests: func(_ string, window time.Duration) edge.AppRequests {
			asked = window
			return edge.AppRequests{Window: window,
				Totals:   edge.Totals{Requests: 40, Codes: [5]int64{0, 38, 0, 0, 2}, Rate: 0.13, ErrorRate: 0.05, P50Ms: 12.5, P95Ms: 240},
				Releases: []edge.ReleaseRequests{{Release: "berth-shop-web-3", Totals: edge.Totals{Requests: 40, Rate: 0.13, ErrorRate: 0.05, P50Ms: 12.5, P95Ms: 240}}},
				Recent:   []proxy.Request{{Time: at, Method: "GET", Host: "shop.example.com", Path: "/api/cart", Status: 502, DurationMs: 31, Release: "berth-shop-web-3"}},
			}
		},
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mustRun(t, password+"\n", "setup", "--server", srv.URL, "--email", email, "--password-stdin")
	mustRun(t, password+"\n", "login", "--server", srv.URL, "--email", email, "--password-stdin")
	mustRun(t, "", "project", "create", "shop")
	mustRun(t, "", "app", "create", "shop/web", "--image", "nginx:1.27", "--port", "80")

	r := mustRun(t, "", "app", "requests", "shop/web", "--window", "15m")
	if asked != 15*time.Minute {
		t.Errorf("window asked %s, want 15m", asked)
	}
	for _, want := range []string{"window    15m0s", "requests  40 (2xx 38, 5xx 2)", "rate      0.13 req/s", "errors    5.00% 5xx",
		"latency   p50 12.5 ms, p95 240.0 ms", "berth-shop-web-3", "502", "/api/cart", "31 ms"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	var out api.AppRequests
	if err := json.Unmarshal([]byte(mustRun(t, "", "app", "requests", "shop/web", "-o", "json").stdout), &out); err != nil || out.Requests != 40 || asked != 5*time.Minute {
		t.Errorf("json: %+v %v (window %s)", out, err, asked)
	}
	mustFail(t, "1m to 1h", "", "app", "requests", "shop/web", "--window", "2h")
	mustFail(t, "not found", "", "app", "requests", "shop/nope")
}
