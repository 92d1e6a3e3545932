package audit

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/auth"
)

func TestCanRead(t *testing.T) {
	for role, want := range map[string]bool{"owner": true, "admin": true, "developer": false, "viewer": false, "": false, "Owner": false} {
		if got := CanRead(auth.Principal{Role: role}); got != want {
			t.Errorf("role %q: CanRead %v, want %v", role, got, want)
		}
	}
}

func TestActionNames(t *testing.T) {
	ops := map[string]string{
		"deploy-app": "app.deploy", "create-project": "project.create", "replace-env": "env.replace",
		"login": "auth.login", "create-token-with-password": "auth.login", "update-app-spec": "app.update",
		"revoke-token": "token.revoke", "verify-audit": "audit.verify",
	}
	for id, want := range ops {
		if got := ActionForOperation(id); got != want {
			t.Errorf("operation %s: %q, want %q", id, got, want)
		}
	}
	routes := map[string]string{
		"POST /projects/{project}/apps/{app}/deploy":                    "app.deploy",
		"POST /projects/{project}/apps/{app}/restart":                   "app.restart",
		"POST /projects/{project}/apps/{app}/deployments/{id}/rollback": "app.rollback",
		"POST /projects":       "project.create",
		"POST /login":          "auth.login",
		"POST /somewhere":      "web POST /somewhere",
		"POST /things/{id}/do": "thing.do",
	}
	for pattern, want := range routes {
		if got := ActionForRoute(pattern); got != want {
			t.Errorf("route %s: %q, want %q", pattern, got, want)
		}
	}
}

func TestResultOf(t *testing.T) {
	for status, want := range map[int]string{200: "ok", 201: "ok", 303: "ok", 401: "denied", 403: "denied", 429: "denied", 404: "failed", 409: "failed", 422: "failed", 500: "failed"} {
		if got := ResultOf(status); got != want {
			t.Errorf("%d: %q, want %q", status, got, want)
		}
	}
}

func TestSummariesHoldNoSecretValues(t *testing.T) {
	const secret = "pl4nted-s3cret"
	body := `{"name":"web","image":"nginx:1","password":"` + secret + `","token":"` + secret + `","env":{"API_KEY":"` + secret + `"},` +
		`"files":[{"path":"/x","content":"` + secret + `"}],"email":"` + secret + `","key_pem":"` + secret + `","replicas":3,"https":true,"deep":{"a":{"b":{"c":"` + secret + `"}}}}`
	got := SummarizeJSON([]byte(body), false)
	if strings.Contains(got, secret) {
		t.Fatalf("summary holds the secret: %s", got)
	}
	for _, want := range []string{`"name":"web"`, `"image":"nginx:1"`, `"replicas":3`, `"https":true`, `"API_KEY":"[redacted]"`, `"password":"[redacted]"`, `"files":"[1 items]"`} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %s lacks %s", got, want)
		}
	}
	if got := SummarizeJSON([]byte(`{"password":"`+secret), false); strings.Contains(got, secret) || got != `{"body_bytes":27}` {
		t.Errorf("broken JSON: %s", got)
	}
	if got := SummarizeJSON([]byte(body), true); strings.Contains(got, secret) {
		t.Errorf("truncated body: %s", got)
	}
	form := url.Values{"csrf_token": {secret}, "name": {"web"}, "dotenv": {"K=" + secret}, "password": {secret}}
	if got := SummarizeForm(form); strings.Contains(got, secret) || !strings.Contains(got, `"name":"web"`) || strings.Contains(got, "csrf_token") {
		t.Errorf("form summary: %s", got)
	}
	if got := SummarizeReveal("app", []string{"B", "A"}); got != `{"scope":"app","variables":["A","B"]}` {
		t.Errorf("reveal summary: %s", got)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Time{
		"1h":                   now.Add(-time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"2026-01-31":           time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC),
		"2026-01-31T10:00:00Z": time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC),
	}
	for in, want := range cases {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-1h", "1.5d", "d", "2026-13-01"} {
		if _, err := ParseTime(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTargets(t *testing.T) {
	if got := PathParams("/api/v1/projects/{project}/apps/{app}/domains/{domain}"); strings.Join(got, ",") != "project,app,domain" {
		t.Errorf("PathParams: %v", got)
	}
	if got := Target("project", "shop", "environment", "", "app", "web"); got != "project=shop app=web" {
		t.Errorf("Target: %q", got)
	}
	field := func(v map[string]string) func(string) string { return func(k string) string { return v[k] } }
	cases := []struct {
		action, target string
		fields         map[string]string
		want           string
	}{
		{"project.create", "", map[string]string{"name": "shop"}, "project=shop"},
		{"app.create", "project=shop", map[string]string{"name": "web"}, "project=shop app=web"},
		{"domain.add", "project=shop app=web", map[string]string{"host": "a.example.com", "name": "x"}, "project=shop app=web domain=a.example.com"},
		{"app.deploy", "project=shop app=web", map[string]string{"name": "x"}, "project=shop app=web"},
		{"project.create", "", map[string]string{"name": "has space"}, ""},
	}
	for _, c := range cases {
		if got := WithCreated(c.action, c.target, field(c.fields)); got != c.want {
			t.Errorf("WithCreated(%s, %q): %q, want %q", c.action, c.target, got, c.want)
		}
	}
}
