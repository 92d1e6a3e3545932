package edge

import (
	"reflect"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/store"
)

func webApp(id, name string, port int) store.App {
	return store.App{ID: id, Name: name, Spec: app.Spec{Image: "hello:v1", Port: port,
		Health: &app.HealthCheck{Type: app.HealthHTTP, Path: "/healthz", ExpectStatus: 200}}}
}

func dep(appID, status, service, previous string, port int) store.Deployment {
	return store.Deployment{AppID: appID, Status: status, Service: service, PreviousService: previous,
		Spec: app.Spec{Image: "hello:v2", Port: port, Health: &app.HealthCheck{Type: app.HealthHTTP, Path: "/healthz", ExpectStatus: 200}}}
}

func releasesOf(t *testing.T, tbl proxy.Table, id string) map[string]int {
	t.Helper()
	for _, a := range tbl.Apps {
		if a.ID == id {
			out := map[string]int{}
			for _, r := range a.Releases {
				out[r.Service] = r.Weight
			}
			return out
		}
	}
	t.Fatalf("no target %s in %+v", id, tbl.Apps)
	return nil
}

// The table follows a deployment through its statuses: the new release joins
// at weight 0 while it starts, takes all traffic once switched while the old
// one stays at 0 to drain, and the old one leaves when the deployment is live.
func TestBuildFollowsADeployment(t *testing.T) {
	web := webApp("app_web", "web", 8080)
	domains := []store.Domain{{AppID: "app_web", Host: "web.example.test", PathPrefix: "/", Port: 8080}}
	v1 := dep("app_web", store.DeployLive, "web-r1", "", 8080)
	steps := []struct {
		name    string
		current store.Deployment
		active  []store.Deployment
		want    map[string]int
	}{
		{"live", v1, nil, map[string]int{"web-r1": FullWeight}},
		{"starting", v1, []store.Deployment{dep("app_web", store.DeployStarting, "web-r2", "web-r1", 8080)}, map[string]int{"web-r1": FullWeight, "web-r2": 0}},
		{"switching before current moves", v1, []store.Deployment{dep("app_web", store.DeploySwitching, "web-r2", "web-r1", 8080)}, map[string]int{"web-r1": FullWeight, "web-r2": 0}},
		{"switched", dep("app_web", store.DeploySwitching, "web-r2", "web-r1", 8080), []store.Deployment{dep("app_web", store.DeploySwitching, "web-r2", "web-r1", 8080)}, map[string]int{"web-r1": 0, "web-r2": FullWeight}},
		{"draining", dep("app_web", store.DeployDraining, "web-r2", "web-r1", 8080), []store.Deployment{dep("app_web", store.DeployDraining, "web-r2", "web-r1", 8080)}, map[string]int{"web-r1": 0, "web-r2": FullWeight}},
		{"live again", dep("app_web", store.DeployLive, "web-r2", "web-r1", 8080), nil, map[string]int{"web-r2": FullWeight}},
		{"first deploy starting", store.Deployment{}, []store.Deployment{dep("app_web", store.DeployStarting, "web-r1", "", 8080)}, map[string]int{"web-r1": 0}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var cur []store.Deployment
			if s.current.Service != "" {
				cur = []store.Deployment{s.current}
			}
			tbl := Build(State{Apps: []store.App{web}, Current: cur, Active: s.active, Domains: domains})
			got := releasesOf(t, tbl, "app_web")
			if len(got) != len(s.want) {
				t.Fatalf("releases %v, want %v", got, s.want)
			}
			for svc, w := range s.want {
				if gw, ok := got[svc]; !ok || gw != w {
					t.Errorf("release %s weight %d (present %v), want %d", svc, gw, ok, w)
				}
			}
			if err := tbl.Validate(); err != nil {
				t.Errorf("table does not validate: %v", err)
			}
		})
	}
}

func TestBuildRoutesDomainsPortsAndDefaults(t *testing.T) {
	web := webApp("app_web", "web", 8080)
	worker := store.App{ID: "app_worker", Name: "worker", Spec: app.Spec{Image: "w:1"}} // not web-facing
	api := webApp("app_api", "api", 3000)
	api.Spec.Health = &app.HealthCheck{Type: app.HealthCommand, Command: []string{"true"}}
	s := State{
		Apps:    []store.App{web, worker, api},
		Places:  map[string]store.AppPlace{"app_web": {Project: "shop", Environment: "production"}, "app_api": {Project: "shop", Environment: "staging"}, "app_worker": {Project: "shop", Environment: "production"}},
		Current: []store.Deployment{dep("app_web", store.DeployLive, "web-r1", "", 8080), {AppID: "app_api", Status: store.DeployLive, Service: "api-r4", Spec: api.Spec}},
		Domains: []store.Domain{
			{AppID: "app_web", Host: "shop.example.com", PathPrefix: "/", Port: 8080, HTTPS: true},
			{AppID: "app_web", Host: "shop.example.com", PathPrefix: "/metrics", Port: 9090},
			{AppID: "app_api", Host: "taken.apps.example.net", PathPrefix: "/", Port: 3000},
		},
		Certs:      []Cert{{Host: "shop.example.com", CertPEM: "C", KeyPEM: "K"}},
		Challenges: map[string]string{"tok2": "ka2", "tok1": "ka1"},
		BaseDomain: "apps.example.net",
	}
	tbl := Build(s)
	routes := map[string]proxy.Route{}
	for _, r := range tbl.Routes {
		routes[proxy.MapKey(r)] = r
	}
	want := map[string]string{
		"shop.example.com":          "app_web",
		"shop.example.com/metrics":  "app_web-9090",
		"taken.apps.example.net":    "app_api",
		"web-shop.apps.example.net": "app_web",
		// api's default host is free: it is generated with the environment.
		"api-staging-shop.apps.example.net": "app_api",
	}
	if len(routes) != len(want) {
		t.Errorf("routes %+v", tbl.Routes)
	}
	for k, id := range want {
		if routes[k].AppID != id {
			t.Errorf("route %s → %q, want %q", k, routes[k].AppID, id)
		}
	}
	if !routes["shop.example.com"].HTTPSRedirect || routes["shop.example.com/metrics"].HTTPSRedirect {
		t.Errorf("HTTPS redirect only where a certificate exists: %+v", routes)
	}
	if got := releasesOf(t, tbl, "app_web-9090"); got["web-r1"] != FullWeight {
		t.Errorf("second port target releases %v", got)
	}
	for _, a := range tbl.Apps {
		health := a.Releases[0].Health
		switch a.ID {
		case "app_web":
			if health == nil || health.Path != "/healthz" || health.ExpectStatus != 200 {
				t.Errorf("web health %+v", health)
			}
		case "app_web-9090", "app_api":
			if health != nil {
				t.Errorf("%s: an HTTP check only applies on the app's port with an HTTP health check, got %+v", a.ID, health)
			}
		case "app_worker":
			t.Errorf("an app without HTTP port is routed")
		}
	}
	if len(tbl.Certificates) != 1 || tbl.Certificates[0].Name != CertName("shop.example.com") || tbl.Certificates[0].KeyPEM != "K" {
		t.Errorf("certificates %+v", tbl.Certificates)
	}
	if len(tbl.Challenges) != 2 || tbl.Challenges[0].Token != "tok1" {
		t.Errorf("challenges not sorted: %+v", tbl.Challenges)
	}
	if err := tbl.Validate(); err != nil {
		t.Errorf("table does not validate: %v", err)
	}
	if got := Build(s); !reflect.DeepEqual(got, tbl) {
		t.Errorf("Build is not deterministic")
	}
}

// A domain's options reach its route; a compressing domain gets a target
// of its own; a redirect domain needs no target (nor a web-facing app).
func TestBuildDomainOptions(t *testing.T) {
	web := webApp("app_web", "web", 8080)
	worker := store.App{ID: "app_worker", Name: "worker"}
	hs := []store.Header{{Name: "X-Frame-Options", Value: "DENY"}}
	s := State{
		Apps:    []store.App{web, worker},
		Current: []store.Deployment{dep("app_web", store.DeployLive, "web-r1", "", 8080)},
		Domains: []store.Domain{
			{AppID: "app_web", Host: "www.example.com", PathPrefix: "/", Port: 8080, Timeout: 90 * time.Second, MaxBody: 4096,
				Compress: true, Headers: hs, AuthUser: "alice", AuthHash: "$2a$05$abcdefghijklmnopqrstuuE7ZfIHTCaDIGdV1wSlEwN1Y.RO6WKVO"},
			{AppID: "app_web", Host: "www.example.com", PathPrefix: "/api", Port: 8080},
			{AppID: "app_web", Host: "example.com", PathPrefix: "/", HTTPS: true, RedirectTo: "https://www.example.com", RedirectCode: 308, RedirectKeepPath: true},
			{AppID: "app_worker", Host: "old.example.com", PathPrefix: "/", RedirectTo: "https://www.example.com/moved", RedirectCode: 302},
			{AppID: "app_gone", Host: "gone.example.com", PathPrefix: "/", RedirectTo: "https://www.example.com", RedirectCode: 302},
		},
		Certs: []Cert{{Host: "example.com", CertPEM: "C", KeyPEM: "K"}},
	}
	tbl := Build(s)
	if err := tbl.Validate(); err != nil {
		t.Fatalf("table does not validate: %v", err)
	}
	routes := map[string]proxy.Route{}
	for _, r := range tbl.Routes {
		routes[proxy.MapKey(r)] = r
	}
	if len(routes) != 4 {
		t.Errorf("routes %+v; want 4 (no redirect for a deleted app)", tbl.Routes)
	}
	www := routes["www.example.com"]
	if www.AppID != "app_web-gz" || www.Timeout != 90*time.Second || www.MaxBody != 4096 || www.Redirect != nil ||
		www.BasicAuth == nil || www.BasicAuth.User != "alice" || !reflect.DeepEqual(www.Headers, []proxy.Header{{Name: "X-Frame-Options", Value: "DENY"}}) {
		t.Errorf("www route = %+v", www)
	}
	if routes["www.example.com/api"].AppID != "app_web" {
		t.Errorf("uncompressed route of the same app → %q, want app_web", routes["www.example.com/api"].AppID)
	}
	apex := routes["example.com"]
	if apex.AppID != "" || !apex.HTTPSRedirect || apex.Redirect == nil || *apex.Redirect != (proxy.Redirect{To: "https://www.example.com", Code: 308, KeepPath: true}) {
		t.Errorf("apex route = %+v (%+v)", apex, apex.Redirect)
	}
	if r := routes["old.example.com"]; r.Redirect == nil || r.Redirect.Code != 302 {
		t.Errorf("redirect of an app without HTTP port = %+v", r)
	}
	ids := map[string]bool{}
	for _, a := range tbl.Apps {
		ids[a.ID] = a.Compress
	}
	if want := map[string]bool{"app_web": false, "app_web-gz": true}; !reflect.DeepEqual(ids, want) {
		t.Errorf("targets (id → compress) = %v, want %v", ids, want)
	}
	if got := releasesOf(t, tbl, "app_web-gz"); got["web-r1"] != FullWeight {
		t.Errorf("compressing target releases %v", got)
	}
}

// Berth's own host goes to the control plane, ahead of any domain claiming
// it, and redirects to HTTPS only once its certificate exists.
func TestBuildRoutesTheControlPlane(t *testing.T) {
	web := webApp("app_web", "web", 8080)
	s := State{
		Apps:    []store.App{web},
		Current: []store.Deployment{dep("app_web", store.DeployLive, "web-r1", "", 8080)},
		Domains: []store.Domain{{AppID: "app_web", Host: "berth.example.com", PathPrefix: "/", Port: 8080}},
		Control: &ControlTarget{Host: "berth.example.com", Addr: "172.18.0.1:7381", HTTPS: true},
	}
	tbl, errs := proxy.ValidRoutes(Build(s))
	if len(tbl.Routes) != 1 || tbl.Routes[0].AppID != ControlPlaneID || tbl.Routes[0].HTTPSRedirect {
		t.Fatalf("routes %+v (dropped: %v)", tbl.Routes, errs)
	}
	s.Certs = []Cert{{Host: "berth.example.com", CertPEM: "C", KeyPEM: "K"}}
	if tbl := Build(s); !tbl.Routes[0].HTTPSRedirect {
		t.Errorf("no redirect once the certificate exists: %+v", tbl.Routes[0])
	}
	s.Control.Addr = "" // the internal listener is not up yet
	for _, r := range Build(s).Routes {
		if r.AppID == ControlPlaneID {
			t.Errorf("control plane routed without an address")
		}
	}
}
