// Command proxystub stands in for `berth proxy` in the swarm package's proxy
// tests: it serves, on :8080, a JSON report of what the proxy container
// gives it (environment, token secret, state volume, user), and fetches the
// control URL with the token, so a test sees the whole path from the host.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	boots, err := countBoot()
	if err != nil {
		log.Printf("counting boots: %v", err)
	}
	srv := &http.Server{Addr: ":8080", ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := inspect(r.Context())
		rep.Boots = boots
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rep)
	})}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
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
