package edge

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/secrets"
	"github.com/berthpaas/berth/internal/store"
)

func newTestRouter(t *testing.T) (*Router, *store.DB) {
	t.Helper()
	db, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key, _ := secrets.GenerateKey()
	keys, _ := secrets.New(key)
	r, err := NewRouter(context.Background(), db, keys, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r, db
}

// The internal listener: proxy endpoints need the token; everything else is
// the control plane (once it has a public host), seeing the client HAProxy
// forwards for.
func TestInternalListener(t *testing.T) {
	r, db := newTestRouter(t)
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	get := func(path, token string, header ...string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Add(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(proxy.TablePath, ""); code != http.StatusUnauthorized {
		t.Errorf("table without a token: %d", code)
	}
	if code, _ := get(proxy.TablePath, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("table with a wrong token: %d", code)
	}
	if code, body := get(proxy.TablePath+"?after=-1", string(r.Token())); code != http.StatusOK || !strings.Contains(body, `"version"`) {
		t.Errorf("table with the token: %d %s", code, body)
	}
	if code, _ := get("/login", ""); code != http.StatusNotFound {
		t.Errorf("control plane without a public host: %d", code)
	}

	cp := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, req.RemoteAddr) })
	if err := r.ServeControlPlane(context.Background(), "berth.example.com", true, cp); err != nil {
		t.Fatal(err)
	}
	if code, body := get("/login", "", "X-Forwarded-For", "203.0.113.7, 10.0.0.1", "X-Forwarded-For", "198.51.100.9"); code != 200 || body != "198.51.100.9:0" {
		t.Errorf("forwarded client: %d %q, want the last X-Forwarded-For value", code, body)
	}
	certs, _ := db.AllCertificates(context.Background())
	if len(certs) != 1 || certs[0].Host != "berth.example.com" || certs[0].OrganizationID != "" {
		t.Errorf("control plane certificate: %+v", certs)
	}
	// A new public host forgets the old one's certificate.
	if err := r.ServeControlPlane(context.Background(), "paas.example.com", true, cp); err != nil {
		t.Fatal(err)
	}
	certs, _ = db.AllCertificates(context.Background())
	if len(certs) != 1 || certs[0].Host != "paas.example.com" {
		t.Errorf("after changing the public host: %+v", certs)
	}
	// Unused-certificate cleanup (a removed domain) leaves the install's alone.
	if err := db.DeleteUnusedCertificates(context.Background()); err != nil {
		t.Fatal(err)
	}
	if certs, _ = db.AllCertificates(context.Background()); len(certs) != 1 {
		t.Errorf("the control plane's certificate was deleted as unused")
	}
}
