// Command proxystub stands in for `berth proxy` in the swarm package's proxy
// tests: it serves, on the HTTP listener its node's holder hands out (it is
// the holder too, as `proxystub listen`), a JSON report of what the proxy container
// gives it (environment, token secret, state volume, user), and fetches the
// control URL with the token, so a test sees the whole path from the host.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthpaas/berth/internal/proxy/listeners"
)

const (
	tokenFile = "/run/secrets/berth-proxy-token"
	stateDir  = "/var/lib/berth-proxy"
)

// report is what GET / answers.
type report struct {
	Args          []string `json:"args"`
	ControlURL    string   `json:"control_url"`
	Node          string   `json:"node"`
	Hostname      string   `json:"hostname"`
	UID           int      `json:"uid"`
	TokenSHA256   string   `json:"token_sha256"`
	TokenError    string   `json:"token_error,omitempty"`
	StateWritable bool     `json:"state_writable"`
	StateError    string   `json:"state_error,omitempty"`
	// Boots counts this container's starts and its predecessors' with the
	// same state volume: a kept volume makes it grow across updates.
	Boots         int    `json:"boots"`
	ControlStatus int    `json:"control_status"`
	ControlBody   string `json:"control_body,omitempty"`
	ControlError  string `json:"control_error,omitempty"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if len(os.Args) > 2 && os.Args[2] == "listen" { // berth proxy listen
		hold(ctx, os.Args[3:])
		return
	}
	if len(os.Args) > 3 && os.Args[1] == "probe" { // the health check: berth probe tcp ADDR
		c, err := net.DialTimeout("tcp", os.Args[3], time.Second)
		if err != nil {
			os.Exit(1)
		}
		c.Close()
		return
	}
	// Where the real proxy's HAProxy serves its metrics, for the health check.
	stats, err := net.Listen("tcp", ":8404")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			c, err := stats.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	boots, err := countBoot()
	if err != nil {
		log.Printf("counting boots: %v", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			io.WriteString(w, "pong")
			return
		}
		rep := inspect(r.Context())
		rep.Boots = boots
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rep)
	})}
	ln := proxyListener(ctx)
	// A stop serves every connection already accepted, as HAProxy's soft
	// stop does; the next proxy accepts on the same socket meanwhile. Not
	// Shutdown at once: it closes a new connection whose request it reads
	// after Shutdown began, without an answer.
	var mu sync.Mutex
	busy := map[net.Conn]bool{} // accepted, request not answered yet
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if st == http.StateNew || st == http.StateActive {
			busy[c] = true
		} else {
			delete(busy, c)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		ln.Close()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			n := len(busy)
			mu.Unlock()
			if n == 0 {
				break
			}
		}
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		log.Fatal(err)
	}
	<-done
}

// hold is `berth proxy listen`: the listener holder, as the real one.
func hold(ctx context.Context, args []string) {
	f := flag.NewFlagSet("listen", flag.ExitOnError)
	socket := f.String("socket", "", "")
	owner := f.String("owner", "", "")
	httpAddr := f.String("http", "", "")
	httpsAddr := f.String("https", "", "")
	f.Parse(args)
	u, err := user.Lookup(*owner)
	if err != nil {
		log.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = listeners.Hold(ctx, *socket, map[string]string{"http": *httpAddr, "https": *httpsAddr}, func() {
		if err := os.Chown(*socket, uid, gid); err != nil {
			log.Fatal(err)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
}

// proxyListener is the HTTP listener the holder of this node hands out,
// waiting for it as the real proxy does.
func proxyListener(ctx context.Context) net.Listener {
	socket := os.Getenv("BERTH_PROXY_LISTENERS")
	for {
		ls, err := listeners.Fetch(ctx, socket)
		if err == nil {
			for _, l := range ls {
				if l.Name == "http" {
					ln, err := net.FileListener(l.File)
					if err != nil {
						log.Fatal(err)
					}
					listeners.Close(ls)
					return ln
				}
			}
			log.Fatalf("the holder has no http listener")
		}
		if ctx.Err() != nil {
			os.Exit(0)
		}
		log.Printf("waiting for the listeners: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
}

func countBoot() (int, error) {
	p := filepath.Join(stateDir, "boots")
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	n++
	return n, os.WriteFile(p, []byte(strconv.Itoa(n)), 0o644)
}

func inspect(ctx context.Context) report {
	rep := report{
		Args:       os.Args[1:],
		ControlURL: os.Getenv("BERTH_PROXY_CONTROL_URL"),
		Node:       os.Getenv("BERTH_PROXY_NODE"),
		UID:        os.Getuid(),
	}
	rep.Hostname, _ = os.Hostname()
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		rep.TokenError = err.Error()
	} else {
		sum := sha256.Sum256(token)
		rep.TokenSHA256 = hex.EncodeToString(sum[:])
	}
	if err := writeReadBack(); err != nil {
		rep.StateError = err.Error()
	} else {
		rep.StateWritable = true
	}
	if rep.ControlURL != "" {
		rep.ControlStatus, rep.ControlBody, err = fetch(ctx, rep.ControlURL, token)
		if err != nil {
			rep.ControlError = err.Error()
		}
	}
	return rep
}

func writeReadBack() error {
	p := filepath.Join(stateDir, "probe")
	want := strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
		return err
	}
	got, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if string(got) != want {
		return fmt.Errorf("read back %q, wrote %q", got, want)
	}
	return nil
}

func fetch(ctx context.Context, url string, token []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+string(token))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), err
}
