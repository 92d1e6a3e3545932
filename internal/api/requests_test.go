package api_test

import (
	"bytes"
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
	"github.com/berthpaas/berth/internal/orchestrator"
	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

// newRequestsEnv is newAppEnv with a real edge router behind the requests
// operation; report posts a proxy status to its internal listener.
func newRequestsEnv(t *testing.T) (a *appEnv, report func(proxy.Status)) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	router, err := edge.NewRouter(ctx, db, keys, slog.New(slog.DiscardHandler), edge.Options{})
	if err != nil {
		t.Fatal(err)
	}
	internal := httptest.NewServer(router.Handler())
	t.Cleanup(internal.Close)
	rel := &fakeReleases{states: map[string]orchestrator.ReleaseState{}}
	logger := slog.New(slog.DiscardHandler)
	engine := deploy.NewEngine(db, rel, keys, logger, deploy.Options{})
	e := &env{t: t, clock: &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}, logs: &lockedBuffer{}, secrets: &secretSet{}}
	mux := http.NewServeMux()
	api.Register(mux, api.Deps{
		Auth:         auth.New(db, auth.Options{Now: e.clock.Now}),
		Engine:       fakeEngine{},
		Apps:         deploy.NewManager(db, keys, rel, engine),
		Log:          slog.New(slog.NewJSONHandler(e.logs, nil)),
		SetupAllowed: func(*http.Request) bool { return true },
		Requests:     router.AppRequests,
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.setup()
	a = &appEnv{env: e, db: db, dataDir: dir, releases: rel, token: e.tokenLogin("test", "").Token}
	report = func(st proxy.Status) {
		t.Helper()
		b, _ := json.Marshal(st)
		req, _ := http.NewRequest("POST", internal.URL+proxy.StatusPath, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+string(router.Token()))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("status report: %s", res.Status)
		}
	}
	return a, report
}

func TestAppRequests(t *testing.T) {
	a, report := newRequestsEnv(t)
	a.call(http.StatusCreated, "POST", "/projects", map[string]string{"name": "shop"})
	web := a.createApp("shop", "web", nil)
	other := a.createApp("shop", "api", nil)
	const path = "/projects/shop/apps/web/requests"

	a.expect(http.StatusUnauthorized, request{method: "GET", path: "/api/v1" + path})

	// Nothing counted yet: zeroes, every list present.
	var got api.AppRequests
	a.call(http.StatusOK, "GET", path, nil).json(t, &got)
	if got.Window != "5m0s" || got.Requests != 0 || got.Codes["2xx"] != 0 || len(got.Codes) != 5 ||
		got.Releases == nil || len(got.Rates) != 30 || got.Recent == nil {
		t.Errorf("before any traffic: %+v", got)
	}

	started := time.Now()
	tr := proxy.ReleaseTraffic{App: web.ID, Release: "berth-web-1", Codes: [5]int64{0, 8, 0, 1, 1}, DurationMs: 100}
	tr.Latency[1] = 10
	report(proxy.Status{ID: "p1", StartedAt: started,
		Traffic: []proxy.ReleaseTraffic{tr, {App: other.ID, Release: "berth-api-1", Codes: [5]int64{0, 100}}},
		Recent: []proxy.Request{
			{Time: started.Add(2 * time.Millisecond), App: web.ID + "-9090", Release: "berth-web-1", Method: "POST", Host: "shop.example.com", Path: "/b", Status: 500, DurationMs: 9},
			{Time: started.Add(time.Millisecond), App: web.ID, Release: "berth-web-1", Method: "GET", Host: "shop.example.com", Path: "/a", Status: 200, DurationMs: 7},
			{Time: started, App: other.ID, Method: "GET", Host: "api.example.com", Path: "/x", Status: 200},
		}})
	a.call(http.StatusOK, "GET", path+"?window=15m", nil).json(t, &got)
	if got.Window != "15m0s" || got.Requests != 10 || got.Codes["2xx"] != 8 || got.Codes["5xx"] != 1 || got.ErrorRate != 0.1 ||
		got.Rate <= 0 || got.P50Ms <= 5 || got.P95Ms > 10 {
		t.Errorf("totals: %+v", got.RequestTotals)
	}
	if len(got.Releases) != 1 || got.Releases[0].Release != "berth-web-1" || got.Releases[0].Requests != 10 {
		t.Errorf("releases: %+v", got.Releases)
	}
	if len(got.Recent) != 2 || got.Recent[0].Path != "/b" || got.Recent[0].Status != 500 || got.Recent[1].Path != "/a" {
		t.Errorf("recent (this app's only, newest first): %+v", got.Recent)
	}

	for _, w := range []string{"2h", "10s", "soon"} {
		fieldError(t, a.call(http.StatusUnprocessableEntity, "GET", path+"?window="+w, nil), "query.window", "1m to 1h")
	}
	a.call(http.StatusNotFound, "GET", "/projects/shop/apps/nope/requests", nil)

	rival := a.secondOrganization("eve@example.com")
	res := a.expect(http.StatusNotFound, request{method: "GET", path: "/api/v1" + path, bearer: rival})
	if strings.Contains(string(res.body), "shop.example.com") {
		t.Errorf("another organization sees the requests: %s", res.body)
	}
}
