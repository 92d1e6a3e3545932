package proxy

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.cfg from the current output")

// goldenOptions are fixed so golden files do not depend on the machine.
var goldenOptions = Options{RuntimeSocket: "/run/berth/haproxy.sock", MapPath: "/etc/berth/proxy/routes.map"}

func app(id string, rels ...Release) App {
	return App{ID: id, Name: "App " + id, Releases: rels}
}

func rel(service string, weight int) Release {
	return Release{Service: service, Port: 8080, Weight: weight}
}

// goldenCases are the tables whose rendering is pinned in testdata.
var goldenCases = []struct {
	name  string
	table Table
}{
	{"empty", Table{Version: 1}},
	{"one_app_one_route", Table{
		Version: 2,
		Apps: []App{{ID: "app_web", Name: "Web", Releases: []Release{{
			Service: "web-r1", Port: 3000, Weight: 100,
			Health: &HealthCheck{Path: "/healthz", Interval: 3 * time.Second, ExpectStatus: 200},
		}}}},
		Routes: []Route{{Host: "www.example.com", AppID: "app_web"}},
	}},
	{"canary_80_20", Table{
		Version: 3,
		Apps:    []App{app("app_shop", rel("shop-r8", 20), rel("shop-r7", 80))},
		Routes:  []Route{{Host: "shop.example.com", PathPrefix: "/", AppID: "app_shop", Timeout: 2 * time.Minute, MaxBody: 10 << 20}},
	}},
	{"path_prefix_strip", Table{
		Version: 4,
		Apps:    []App{app("app_site", rel("site-r1", 100)), app("app_api", rel("api-r3", 100))},
		Routes: []Route{
			{Host: "example.com", PathPrefix: "/api/v1", StripPrefix: true, AppID: "app_api", Timeout: 1500 * time.Millisecond},
			{Host: "example.com", AppID: "app_site"},
		},
	}},
	{"https_redirect", Table{
		Version: 5,
		Apps:    []App{app("app_secure", rel("secure-r2", 256))},
		Routes:  []Route{{Host: "secure.example.org", AppID: "app_secure", HTTPSRedirect: true}},
	}},
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Render(tc.table, goldenOptions)
			if err != nil {
				t.Fatal(err)
			}
			got := append(cfg, "\n# ---- route map ----\n"...)
			got = append(got, RenderMap(tc.table)...)
			path := filepath.Join("testdata", tc.name+".golden.cfg")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("rendering differs from %s (go test -update to accept):\n%s", path, got)
			}
			// Determinism: shuffled input, same output.
			again, _ := Render(reversed(tc.table), goldenOptions)
			if !bytes.Equal(again, cfg) || !bytes.Equal(RenderMap(reversed(tc.table)), RenderMap(tc.table)) {
				t.Error("output depends on the order of apps, releases or routes")
			}
		})
	}
}

func reversed(t Table) Table {
	out := Table{Version: t.Version}
	for i := len(t.Routes) - 1; i >= 0; i-- {
		out.Routes = append(out.Routes, t.Routes[i])
	}
	for i := len(t.Apps) - 1; i >= 0; i-- {
		a := t.Apps[i]
		a.Releases = nil
		for j := len(t.Apps[i].Releases) - 1; j >= 0; j-- {
			a.Releases = append(a.Releases, t.Apps[i].Releases[j])
		}
		out.Apps = append(out.Apps, a)
	}
	return out
}

// haproxyCheck runs the real "haproxy -c" on a configuration rendered with
// the map file and socket in a temporary directory, failing on any error or
// warning.
func haproxyCheck(t *testing.T, tb Table) {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("haproxy not found and CI=true")
		}
		t.Skip("haproxy not installed")
	}
	dir := t.TempDir()
	o := Options{RuntimeSocket: filepath.Join(dir, "admin.sock"), MapPath: filepath.Join(dir, "routes.map")}
	cfg, err := Render(tb, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(o.MapPath, RenderMap(tb), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	// -dW turns warnings into errors.
	out, err := exec.Command(bin, "-dW", "-c", "-f", cfgPath).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("WARNING")) || bytes.Contains(out, []byte("ALERT")) {
		t.Fatalf("haproxy -c: %v\n%s\n--- config ---\n%s", err, out, cfg)
	}
	if !strings.Contains(string(out), "Configuration file is valid") {
		t.Fatalf("haproxy -c did not confirm the configuration:\n%s", out)
	}
}

func TestRenderHAProxyAccepts(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) { haproxyCheck(t, tc.table) })
	}
}
