package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/proxy/haproxy"
)

// Retry delays of the pull loop after a failure.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// maxTableBytes bounds a table download (certificates make tables large).
const maxTableBytes = 64 << 20

// errUnauthorized is the control plane refusing the proxy token.
var errUnauthorized = errors.New("the control plane refused the proxy token (check the token file)")

// pullLoop long-polls the control plane for tables newer than the applied
// one and applies them, until ctx ends. Failures are retried with backoff;
// HAProxy keeps serving the applied table meanwhile.
func (c *controller) pullLoop(ctx context.Context) {
	backoff := minBackoff
	retry := func(level slog.Level, msg string, args ...any) {
		c.log.Log(ctx, level, msg, append(args, "retry_in", backoff.String())...)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
	for ctx.Err() == nil {
		t, err := c.fetch(ctx, c.appliedVersion())
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			retry(slog.LevelWarn, "pulling the routing table failed, serving the last one", "err", err)
		case t == nil: // nothing new
			backoff = minBackoff
		default:
			if err := c.apply(ctx, *t); err != nil {
				if ctx.Err() != nil {
					return
				}
				c.failed(t.Version, err)
				retry(slog.LevelError, "applying the routing table failed, serving the last one", "version", t.Version, "err", err)
				continue
			}
			backoff = minBackoff
		}
	}
}

// fetch asks for a table newer than after: nil when there is none yet.
func (c *controller) fetch(ctx context.Context, after int64) (*proxy.Table, error) {
	url := c.cfg.ControlURL + proxy.TablePath + "?after=" + strconv.FormatInt(after, 10)
	req, err := c.request(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var t proxy.Table
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxTableBytes)).Decode(&t); err != nil {
			return nil, fmt.Errorf("decoding the routing table: %w", err)
		}
		return &t, nil
	case http.StatusNoContent:
		return nil, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, fmt.Errorf("GET %s: %s: %w", proxy.TablePath, resp.Status, errUnauthorized)
	default:
		return nil, fmt.Errorf("GET %s: unexpected status %s", proxy.TablePath, resp.Status)
	}
}

// request builds a control plane request carrying the proxy token.
func (c *controller) request(ctx context.Context, method, url string, body []byte) (*http.Request, error) {
	token, err := os.ReadFile(c.cfg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("proxy token: %w", err)
	}
	tok := strings.TrimSpace(string(token))
	if tok == "" {
		return nil, fmt.Errorf("proxy token: %s is empty", c.cfg.TokenFile)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// statusLoop reports the status every second, and at once after a table
// was applied, until ctx ends. Failures never stop serving.
func (c *controller) statusLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
		if err := c.report(ctx); err != nil && ctx.Err() == nil {
			c.log.Debug("reporting the proxy status failed", "err", err)
		}
	}
}

func (c *controller) report(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st := c.status(ctx)
	var marks map[string]uint64
	st.Traffic, st.Recent, marks = c.traffic.snapshot()
	body, err := json.Marshal(st)
	if err != nil {
		return err
	}
	req, err := c.request(ctx, http.MethodPost, c.cfg.ControlURL+proxy.StatusPath, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s", proxy.StatusPath, resp.Status)
	}
	c.traffic.reported(marks)
	return nil
}

// status is what this replica serves now, with each release's load.
func (c *controller) status(ctx context.Context) proxy.Status {
	c.mu.Lock()
	t, errs := c.current.table, slices.Clone(c.errs)
	c.mu.Unlock()
	s := proxy.Status{
		ID: c.cfg.ID, Node: c.cfg.Node, Version: t.Version, HAProxyVersion: c.haproxyVersion,
		StartedAt: c.startedAt, Errors: errs,
	}
	if old, err := c.proc.OldWorkers(ctx); err == nil {
		s.OldWorkers = len(old)
	}
	stats, err := c.rt.Stats(ctx)
	if err != nil {
		c.log.Debug("reading server stats failed", "err", err)
		return s
	}
	s.Releases = releaseStatus(t, stats)
	return s
}

// releaseStatus sums the server rows of each release's slots.
func releaseStatus(t proxy.Table, stats []haproxy.ServerStat) map[string]proxy.ReleaseStatus {
	out := make(map[string]proxy.ReleaseStatus)
	type key struct{ backend, prefix string }
	services := make(map[key]string)
	for _, a := range t.Apps {
		for _, r := range a.Releases {
			services[key{proxy.BackendName(a.ID), proxy.ServerPrefix(r.Service)}] = r.Service
			out[r.Service] = proxy.ReleaseStatus{}
		}
	}
	for _, st := range stats {
		// A slot is <prefix><n>; the prefix ends at the last '-'.
		i := strings.LastIndexByte(st.Server, '-')
		if i < 0 {
			continue
		}
		if _, err := strconv.Atoi(st.Server[i+1:]); err != nil {
			continue
		}
		svc, ok := services[key{st.Backend, st.Server[:i+1]}]
		if !ok {
			continue
		}
		rs := out[svc]
		rs.Sessions += st.Sessions
		// "DRAIN" is a healthy server taken out of load balancing.
		if strings.HasPrefix(st.Status, "UP") || st.Status == "DRAIN" {
			rs.Up++
		}
		if st.Addr != "" {
			rs.Servers++
		}
		out[svc] = rs
	}
	return out
}
