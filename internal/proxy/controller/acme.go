package controller

import (
	"io"
	"net/http"
	"strings"

	"github.com/berthpaas/berth/internal/proxy"
)

// serveChallenge answers ACME HTTP-01 challenges from the applied table:
// GET /.well-known/acme-challenge/<token> → the key authorization. HAProxy
// sends it these requests from every host, on HTTP and HTTPS, before routing.
// The challenges are in memory only, so a table that changes only them needs
// no HAProxy change at all.
func (c *controller) serveChallenge(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, proxy.ACMEPathPrefix)
	var keyAuth string
	if ok && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if m := c.challenges.Load(); m != nil {
			keyAuth, ok = (*m)[token]
		}
	}
	if !ok || keyAuth == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, keyAuth)
}
