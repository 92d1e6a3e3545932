package controller

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/proxy"
)

// What apps need from their edge beyond short GETs: WebSocket upgrades,
// responses streamed as they are written, large uploads, and requests that
// take longer than the default server timeout when the route allows it.
func TestProtocolsThroughTheProxy(t *testing.T) {
	var longCalls atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ws":
			// A minimal upgrade: echo lines back until the client closes.
			if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
				http.Error(w, "want an upgrade", http.StatusBadRequest)
				return
			}
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			// RFC 6455's example key and its accept value: HAProxy checks them.
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
			rw.Flush()
			for {
				line, err := rw.ReadString('\n')
				if err != nil {
					return
				}
				rw.WriteString("echo " + line)
				rw.Flush()
			}
		case "/stream":
			for i := range 3 {
				fmt.Fprintf(w, "part %d\n", i)
				http.NewResponseController(w).Flush()
				time.Sleep(300 * time.Millisecond)
			}
		case "/upload":
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		case "/long":
			longCalls.Add(1)
			time.Sleep(3 * time.Second)
			io.WriteString(w, "done")
		}
	}))
	defer app.Close()
	port := app.Listener.Addr().(*net.TCPAddr).Port

	cp := newControlPlane(t, "s3cret")
	h := start(t, newConfig(t, cp, startDNS(t), "s3cret"))
	table := webTable(1, proxy.Release{Service: "web-r1", Port: port, Weight: 100})
	// The route's own timeout, shorter than the 3 s request: answered 504.
	table.Routes[0].Timeout = time.Second
	table.Routes = append(table.Routes, proxy.Route{Host: "slow.test", AppID: "app_web", Timeout: 10 * time.Second, MaxBody: 64 << 20})
	cp.SetTable(table)
	cp.waitStatus(t, "release up", releasesUp(1, "web-r1"))
	addr := fmt.Sprintf("127.0.0.1:%d", h.cfg.HTTPPort)

	t.Run("websocket", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: web.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		// Messages both ways, with a pause longer than the route's 1 s
		// timeout: a tunnel has its own (timeout tunnel).
		for i, msg := range []string{"one", "two"} {
			if i > 0 {
				time.Sleep(1500 * time.Millisecond)
			}
			fmt.Fprintf(c, "%s\n", msg)
			got, err := br.ReadString('\n')
			if err != nil || got != "echo "+msg+"\n" {
				t.Fatalf("message %q: got %q, %v", msg, got, err)
			}
		}
	})

	t.Run("streaming", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.url("/stream"), nil)
		req.Host = "web.test"
		began := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		first, err := bufio.NewReader(resp.Body).ReadString('\n')
		// The first part arrives before the app has written the rest (~600 ms).
		if err != nil || first != "part 0\n" || time.Since(began) > 500*time.Millisecond {
			t.Errorf("first part %q after %s (%v): the response is buffered, not streamed", first, time.Since(began), err)
		}
	})

	t.Run("large upload", func(t *testing.T) {
		body := make([]byte, 32<<20)
		rand.Read(body)
		req, _ := http.NewRequest(http.MethodPost, h.url("/upload"), bytes.NewReader(body))
		req.Host = "slow.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body)); string(got) != want {
			t.Errorf("upload arrived as %q, want %q", got, want)
		}
		// Over the route's limit: refused before it reaches the app.
		req, _ = http.NewRequest(http.MethodPost, h.url("/upload"), bytes.NewReader(make([]byte, 65<<20)))
		req.Host = "slow.test"
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("body over max_body: %s, want 413", resp.Status)
			}
		}
	})

	t.Run("long request", func(t *testing.T) {
		if code, body, err := h.get("slow.test", "/long"); err != nil || code != 200 || body != "done" {
			t.Errorf("3 s request on a route with a 10 s timeout: %d %q %v", code, body, err)
		}
		longCalls.Store(0)
		began := time.Now()
		if code, _, err := h.get("web.test", "/long"); err != nil || code != http.StatusGatewayTimeout {
			t.Errorf("3 s request on a route with a 1 s timeout: %d %v, want 504", code, err)
		}
		// Once: a timed-out request is not replayed on the slow app.
		if n := longCalls.Load(); n != 1 {
			t.Errorf("the app saw the timed-out GET %d times (504 after %s), want once", n, time.Since(began).Round(time.Millisecond))
		}
	})
}
