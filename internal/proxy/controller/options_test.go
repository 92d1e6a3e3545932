package controller

import (
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/testenv"
)

// optionsUpstream answers a page of text and tells whether it saw an
// Authorization header.
func optionsUpstream(t *testing.T) proxy.Release {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "path=%s auth=%q %s", r.URL.RequestURI(), r.Header.Get("Authorization"), strings.Repeat("<p>berth</p>", 200))
	}))
	t.Cleanup(s.Close)
	return proxy.Release{Service: "web-r1", Port: s.Listener.Addr().(*net.TCPAddr).Port, Weight: 100}
}

// TestDomainOptions runs the per-domain options through a real HAProxy:
// redirects (changed at runtime, no reload), basic auth, response headers
// (on the app's answers and HAProxy's own) and gzip.
func TestDomainOptions(t *testing.T) {
	cp := newControlPlane(t, "s3cret")
	rel := optionsUpstream(t)
	h := start(t, newConfig(t, cp, startDNS(t), "s3cret"))
	hash, err := bcrypt.GenerateFromPassword([]byte(`pa ss"w#rd`), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	auth := &proxy.BasicAuth{User: "alice", PasswordHash: string(hash)}
	table := func(v int64, apexCode int) proxy.Table {
		return proxy.Table{
			Version: v,
			Apps: []proxy.App{
				{ID: "app_web", Name: "Web", Releases: []proxy.Release{rel}},
				{ID: "app_web-gz", Name: "Web", Compress: true, Releases: []proxy.Release{rel}},
			},
			Routes: []proxy.Route{
				{Host: "example.test", Redirect: &proxy.Redirect{To: "https://www.example.test", Code: apexCode, KeepPath: true}},
				{Host: "www.example.test", PathPrefix: "/old", StripPrefix: true, Redirect: &proxy.Redirect{To: "http://docs.example.test/v2/", Code: 302}},
				{Host: "www.example.test", AppID: "app_web-gz",
					Headers: []proxy.Header{{Name: "Strict-Transport-Security", Value: "max-age=63072000"}, {Name: "X-Note", Value: `say "hi" \ $HOME #no-comment`}}},
				{Host: "private.test", AppID: "app_web", BasicAuth: auth,
					Headers: []proxy.Header{{Name: "X-Robots-Tag", Value: "noindex"}}},
			},
		}
	}
	cp.SetTable(table(1, 308))
	cp.waitStatus(t, "version 1", versionIs(1))

	type answer struct {
		code    int
		header  http.Header
		body    string
		gzipped bool
	}
	do := func(host, path string, mod func(*http.Request)) answer {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.url(path), nil)
		req.Host = host
		if mod != nil {
			mod(req)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body io.Reader = resp.Body
		gz := resp.Header.Get("Content-Encoding") == "gzip"
		if gz {
			if body, err = gzip.NewReader(resp.Body); err != nil {
				t.Fatal(err)
			}
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		return answer{resp.StatusCode, resp.Header, string(b), gz}
	}

	// Redirects: apex to www keeping path and query; a prefix, stripped, to
	// a fixed URL.
	if a := do("example.test", "/a/b?x=1&y=2", nil); a.code != 308 || a.header.Get("Location") != "https://www.example.test/a/b?x=1&y=2" {
		t.Errorf("apex redirect: %d Location %q, want 308 https://www.example.test/a/b?x=1&y=2", a.code, a.header.Get("Location"))
	}
	if a := do("example.test", "/", nil); a.header.Get("Location") != "https://www.example.test/" {
		t.Errorf("apex redirect of /: Location %q", a.header.Get("Location"))
	}
	if a := do("www.example.test", "/old/page?q=1", nil); a.code != 302 || a.header.Get("Location") != "http://docs.example.test/v2/" {
		t.Errorf("fixed redirect: %d Location %q, want 302 http://docs.example.test/v2/", a.code, a.header.Get("Location"))
	}
	// The ACME challenge path of a redirect domain stays open.
	if a := do("example.test", proxy.ACMEPathPrefix+"tok", nil); a.code == 308 {
		t.Errorf("challenge path redirected: %d", a.code)
	}

	// Headers, exactly as configured, and gzip only where asked for.
	a := do("www.example.test", "/page", func(r *http.Request) { r.Header.Set("Accept-Encoding", "gzip") })
	if a.code != 200 || !strings.HasPrefix(a.body, "path=/page") {
		t.Fatalf("www: %d %.60q", a.code, a.body)
	}
	if got := a.header.Get("X-Note"); got != `say "hi" \ $HOME #no-comment` {
		t.Errorf("X-Note = %q", got)
	}
	if a.header.Get("Strict-Transport-Security") != "max-age=63072000" || !a.gzipped {
		t.Errorf("www: HSTS %q, gzipped %v; want the header and gzip", a.header.Get("Strict-Transport-Security"), a.gzipped)
	}
	if a := do("www.example.test", "/page", func(r *http.Request) { r.Header.Set("Accept-Encoding", "identity") }); a.gzipped {
		t.Error("gzipped for a client that does not accept it")
	}
	if a := do("private.test", "/", func(r *http.Request) {
		r.Header.Set("Accept-Encoding", "gzip")
		r.SetBasicAuth("alice", `pa ss"w#rd`)
	}); a.gzipped || a.header.Get("Strict-Transport-Security") != "" {
		t.Errorf("private.test: gzipped %v, HSTS %q; want neither (options are per domain)", a.gzipped, a.header.Get("Strict-Transport-Security"))
	}

	// Basic auth: 401 with a realm, the header on HAProxy's own answer too;
	// the app never sees the credentials.
	a = do("private.test", "/", nil)
	if a.code != 401 || a.header.Get("WWW-Authenticate") != `Basic realm="private.test"` || a.header.Get("X-Robots-Tag") != "noindex" {
		t.Errorf("no credentials: %d WWW-Authenticate %q X-Robots-Tag %q", a.code, a.header.Get("WWW-Authenticate"), a.header.Get("X-Robots-Tag"))
	}
	if a := do("private.test", "/", func(r *http.Request) { r.SetBasicAuth("alice", "wrong") }); a.code != 401 {
		t.Errorf("wrong password: %d, want 401", a.code)
	}
	if a := do("private.test", "/", func(r *http.Request) { r.SetBasicAuth("bob", `pa ss"w#rd`) }); a.code != 401 {
		t.Errorf("wrong user: %d, want 401", a.code)
	}
	a = do("private.test", "/in", func(r *http.Request) { r.SetBasicAuth("alice", `pa ss"w#rd`) })
	if a.code != 200 || !strings.HasPrefix(a.body, `path=/in auth="" `) {
		t.Errorf("right credentials: %d %.60q, want 200 without Authorization at the app", a.code, a.body)
	}
	if a := do("private.test", proxy.ACMEPathPrefix+"tok", nil); a.code == 401 {
		t.Error("challenge path asks for credentials")
	}

	// A redirect change is a map update: no reload.
	before := h.workers()
	cp.SetTable(table(2, 301))
	cp.waitStatus(t, "version 2", versionIs(2))
	testenv.Eventually(t, 10*time.Second, "apex answers 301", func() error {
		if a := do("example.test", "/x", nil); a.code != 301 || a.header.Get("Location") != "https://www.example.test/x" {
			return fmt.Errorf("%d %q", a.code, a.header.Get("Location"))
		}
		return nil
	})
	if after := h.workers(); !slices.Equal(before, after) {
		t.Errorf("workers %v → %v: a redirect change reloaded HAProxy", before, after)
	}

	// Basic auth taken off a domain, then given back with another user:
	// each change is live (the userlist is in the configuration, so this
	// is a reload; a keep-alive connection to the old worker gets one more
	// answer by the old rules).
	auth = nil
	cp.SetTable(table(3, 301))
	cp.waitStatus(t, "version 3", versionIs(3))
	testenv.Eventually(t, 10*time.Second, "private.test open", func() error {
		if a := do("private.test", "/", nil); a.code != 200 {
			return fmt.Errorf("%d without credentials, want 200", a.code)
		}
		return nil
	})
	auth = &proxy.BasicAuth{User: "carol", PasswordHash: string(hash)}
	cp.SetTable(table(4, 301))
	cp.waitStatus(t, "version 4", versionIs(4))
	testenv.Eventually(t, 10*time.Second, "private.test for carol only", func() error {
		if a := do("private.test", "/", func(r *http.Request) { r.SetBasicAuth("alice", `pa ss"w#rd`) }); a.code != 401 {
			return fmt.Errorf("alice gets %d, want 401", a.code)
		}
		if a := do("private.test", "/", func(r *http.Request) { r.SetBasicAuth("carol", `pa ss"w#rd`) }); a.code != 200 {
			return fmt.Errorf("carol gets %d, want 200", a.code)
		}
		return nil
	})
}
