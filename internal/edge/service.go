package edge

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/internal/orchestrator"
)

// DefaultInternalPort is the internal listener's port when none is configured.
const DefaultInternalPort = 7381

// ProxyConfig says how to run the proxy service.
type ProxyConfig struct {
	Name      string // Swarm service name
	BaseImage string // HAProxy image the proxy image is built from
	Binary    string // the berth binary copied into the image
	HTTPPort  int    // host ports
	HTTPSPort int
	// Listen is the internal listener's address; an empty host means the
	// docker_gwbridge gateway, an empty value that gateway's DefaultInternalPort.
	Listen    string
	InstallID string
	// NoAccessLog: the proxies count requests but write no access log.
	NoAccessLog bool
}

// proxyState is what RunProxy knows, for the status page.
type proxyState struct {
	mu         sync.Mutex
	cfg        ProxyConfig
	image      string
	controlURL string
	lastError  string
	ensuredAt  time.Time
}

// RunProxy serves the internal listener and keeps the proxy service deployed
// until ctx ends: it builds the proxy image, creates or updates the service,
// and checks again every minute, so a service removed by hand comes back.
// Failures are retried with backoff and shown on the proxy status page.
func (r *Router) RunProxy(ctx context.Context, eng orchestrator.Edge, cfg ProxyConfig) {
	r.proxy.mu.Lock()
	r.proxy.cfg = cfg
	r.proxy.mu.Unlock()
	delay := time.Second
	retry := func(err error) bool {
		r.proxy.setError(err)
		r.log.Warn("edge proxy not ready; retrying", "err", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Minute)
		return true
	}
	var ln net.Listener
	var controlURL string
	for ln == nil {
		var err error
		if ln, controlURL, err = r.listen(ctx, eng, cfg.Listen); err != nil && !retry(err) {
			return
		}
	}
	srv := &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	r.log.Info("internal listener for the edge proxies", "addr", ln.Addr().String(), "control_url", controlURL)
	r.proxy.mu.Lock()
	r.proxy.controlURL = controlURL
	r.proxy.mu.Unlock()
	r.mu.Lock()
	r.control.Addr = strings.TrimPrefix(controlURL, "http://")
	r.mu.Unlock()
	if _, err := r.Publish(ctx); err != nil {
		r.log.Warn("edge: publish routing table", "err", err)
	}

	for {
		image, err := eng.BuildProxyImage(ctx, cfg.BaseImage, cfg.Binary)
		if err == nil {
			err = eng.EnsureProxy(ctx, orchestrator.ProxySpec{
				Name: cfg.Name, Image: image, HTTPPort: cfg.HTTPPort, HTTPSPort: cfg.HTTPSPort,
				ControlURL: controlURL, Token: r.Token(), InstallID: cfg.InstallID, NoAccessLog: cfg.NoAccessLog,
			})
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !retry(err) {
				return
			}
			continue
		}
		delay = time.Second
		r.proxy.mu.Lock()
		r.proxy.image, r.proxy.lastError, r.proxy.ensuredAt = image, "", time.Now()
		r.proxy.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Minute):
		}
	}
}

func (p *proxyState) setError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastError = err.Error()
}

// listen opens the internal listener. It must never face the internet: by
// default it binds the docker_gwbridge gateway, an address only this host
// and its containers reach.
func (r *Router) listen(ctx context.Context, eng orchestrator.Edge, addr string) (net.Listener, string, error) {
	host, port := "", strconv.Itoa(DefaultInternalPort)
	if addr != "" {
		var err error
		if host, port, err = net.SplitHostPort(addr); err != nil {
			return nil, "", fmt.Errorf("internal-listen %q: %w", addr, err)
		}
	}
	reach := host
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		gw, err := eng.GatewayAddr(ctx)
		if err != nil {
			return nil, "", err
		}
		reach = gw.String()
		if host == "" {
			host = reach
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, "", fmt.Errorf("internal listener: %w", err)
	}
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return ln, "http://" + net.JoinHostPort(reach, port), nil
}

// ProxyStatus is the edge as the status page shows it.
type ProxyStatus struct {
	Enabled bool   `json:"enabled"`
	Service string `json:"service,omitempty"`
	Image   string `json:"image,omitempty"`
	// TableVersion is the routing table's current version; each replica
	// says which one it serves.
	TableVersion int64 `json:"table_version"`
	HTTPPort     int   `json:"http_port,omitempty"`
	HTTPSPort    int   `json:"https_port,omitempty"`
	// AccessLog says whether the proxies write their access log (to their
	// container output); off, they only count requests.
	AccessLog bool `json:"access_log"`
	// Error says why the proxy service could not be deployed, if it could not.
	Error    string          `json:"error,omitempty"`
	Replicas []ReplicaStatus `json:"replicas"`
	// Listeners are the tasks of the listener holder, which holds the host
	// ports for the proxies of its node.
	Listeners    []orchestrator.ProxyReplica `json:"listeners"`
	Certificates []CertificateRow            `json:"certificates"`
}

// ReplicaStatus joins what Swarm says of a proxy task with what the proxy
// reported.
type ReplicaStatus struct {
	orchestrator.ProxyReplica
	Report *Replica `json:"report,omitempty"`
}

// CertificateRow is one certificate on the status page.
type CertificateRow struct {
	Host      string    `json:"host"`
	Source    string    `json:"source"`
	Issuer    string    `json:"issuer,omitempty"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// Status describes the proxy service, its replicas and the organization's
// certificates.
func (r *Router) Status(ctx context.Context, eng orchestrator.Edge, orgID string) (ProxyStatus, error) {
	r.proxy.mu.Lock()
	st := ProxyStatus{Enabled: r.proxy.cfg.Name != "", Service: r.proxy.cfg.Name, Image: r.proxy.image,
		HTTPPort: r.proxy.cfg.HTTPPort, HTTPSPort: r.proxy.cfg.HTTPSPort, AccessLog: !r.proxy.cfg.NoAccessLog, Error: r.proxy.lastError,
		Replicas: []ReplicaStatus{}, Listeners: []orchestrator.ProxyReplica{}, Certificates: []CertificateRow{}}
	r.proxy.mu.Unlock()
	st.TableVersion = r.Table().Version
	reports := map[string]Replica{}
	for _, rep := range r.Replicas() {
		reports[rep.ID] = rep
	}
	if st.Enabled {
		tasks, err := eng.ProxyReplicas(ctx, st.Service)
		if err != nil {
			return st, err
		}
		if st.Listeners, err = eng.ProxyReplicas(ctx, orchestrator.ProxyListenerService(st.Service)); err != nil {
			return st, err
		}
		for _, t := range tasks {
			row := ReplicaStatus{ProxyReplica: t}
			if rep, ok := reports[t.Hostname]; ok && t.Hostname != "" {
				row.Report = &rep
				delete(reports, t.Hostname)
			}
			st.Replicas = append(st.Replicas, row)
		}
	}
	// Proxies reporting that Swarm does not list (another host, a proxy run
	// by hand): shown too, so nothing serving traffic is invisible.
	for _, rep := range reports {
		st.Replicas = append(st.Replicas, ReplicaStatus{ProxyReplica: orchestrator.ProxyReplica{Hostname: rep.ID, Node: rep.Node}, Report: &rep})
	}
	certs, err := r.db.Certificates(ctx, orgID)
	if err != nil {
		return st, err
	}
	for _, c := range certs {
		row := CertificateRow{Host: c.Host, Source: c.Source, Issuer: c.Issuer, LastError: c.LastError}
		if c.CertPEM != "" {
			row.NotAfter = c.NotAfter
		}
		st.Certificates = append(st.Certificates, row)
	}
	return st, nil
}
