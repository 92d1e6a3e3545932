// Package edge is the control plane's side of the edge router: it builds the
// routing table from the database, serves it to the `berth proxy` replicas on
// the internal listener, collects their status reports, and tells the deploy
// engine when a traffic switch is live everywhere and when an old release has
// drained. It also issues and renews certificates (certs.go).
package edge

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/store"
)

// FullWeight is the weight of a release that takes all of its app's traffic.
const FullWeight = 100

// State is everything the routing table is built from.
type State struct {
	Apps []store.App
	// Places names each app's project and environment (for default domains).
	Places map[string]store.AppPlace
	// Current are the apps' current deployments; Active the ones in flight.
	Current, Active []store.Deployment
	Domains         []store.Domain
	// Certs are the issued certificates with their keys opened.
	Certs []Cert
	// Challenges are pending ACME HTTP-01 challenges, token → key authorization.
	Challenges map[string]string
	// BaseDomain, when set, gives every web-facing app a default host
	// <app>-<project>[-<environment>].<BaseDomain>.
	BaseDomain string
	// Control, when set, routes Berth's own public host to the control plane.
	Control *ControlTarget
}

// Cert is a certificate ready to serve.
type Cert struct {
	Host            string
	CertPEM, KeyPEM string
}

// Build turns the state into a routing table (without a version). It is pure:
// the same state gives the same table.
//
// Each web-facing app is one routing target per container port its domains
// use. Its releases: the current deployment's service at FullWeight; a
// release still starting at weight 0 (HAProxy resolves and checks it before
// it gets traffic, so the switch is a weight change); while a deployment
// switches or drains, the release it replaces at weight 0, so requests in
// flight finish and the proxies can report when it has none left.
func Build(s State) proxy.Table {
	cur := map[string]store.Deployment{}
	for _, d := range s.Current {
		cur[d.AppID] = d
	}
	active := map[string][]store.Deployment{}
	for _, d := range s.Active {
		active[d.AppID] = append(active[d.AppID], d)
	}
	certs := map[string]bool{}
	var t proxy.Table
	for _, c := range s.Certs {
		certs[c.Host] = true
		t.Certificates = append(t.Certificates, proxy.Certificate{Name: CertName(c.Host), CertPEM: c.CertPEM, KeyPEM: c.KeyPEM})
	}
	for tok, ka := range s.Challenges {
		t.Challenges = append(t.Challenges, proxy.Challenge{Token: tok, KeyAuth: ka})
	}
	slices.SortFunc(t.Challenges, func(a, b proxy.Challenge) int { return strings.Compare(a.Token, b.Token) })

	byID := map[string]store.App{}
	exists := map[string]bool{}
	targets := map[string][]target{} // app id → targets routed to
	used := map[string]bool{}        // hosts with a stored domain
	for _, a := range s.Apps {
		exists[a.ID] = true
		if a.Spec.Port > 0 {
			byID[a.ID] = a
		}
	}
	for _, d := range s.Domains {
		used[d.Host] = true
		r := proxy.Route{
			Host: d.Host, PathPrefix: d.PathPrefix, StripPrefix: d.StripPrefix,
			// Redirect only once a certificate is there: before, HTTPS would
			// answer with the fallback certificate.
			HTTPSRedirect: d.HTTPS && certs[d.Host],
			Timeout:       d.Timeout, MaxBody: d.MaxBody,
		}
		if d.AuthUser != "" {
			r.BasicAuth = &proxy.BasicAuth{User: d.AuthUser, PasswordHash: d.AuthHash}
		}
		for _, h := range d.Headers {
			r.Headers = append(r.Headers, proxy.Header{Name: h.Name, Value: h.Value})
		}
		if d.RedirectTo != "" {
			// A redirect needs its app to exist, not to be web-facing.
			if !exists[d.AppID] {
				continue
			}
			r.Redirect = &proxy.Redirect{To: d.RedirectTo, Code: d.RedirectCode, KeepPath: d.RedirectKeepPath}
			t.Routes = append(t.Routes, r)
			continue
		}
		a, ok := byID[d.AppID]
		if !ok {
			continue
		}
		tg := target{port: cmp.Or(d.Port, a.Spec.Port), compress: d.Compress}
		if !slices.Contains(targets[a.ID], tg) {
			targets[a.ID] = append(targets[a.ID], tg)
		}
		r.AppID = tg.id(a)
		t.Routes = append(t.Routes, r)
	}
	if s.BaseDomain != "" {
		for _, a := range s.Apps {
			pl, ok := s.Places[a.ID]
			host := DefaultHost(a.Name, pl, s.BaseDomain)
			if _, web := byID[a.ID]; !web || !ok || used[host] || len(host)-len(s.BaseDomain)-1 > 63 {
				continue
			}
			used[host] = true
			if tg := (target{port: a.Spec.Port}); !slices.Contains(targets[a.ID], tg) {
				targets[a.ID] = append(targets[a.ID], tg)
			}
			t.Routes = append(t.Routes, proxy.Route{Host: host, AppID: TargetID(a, a.Spec.Port)})
		}
	}
	for _, a := range s.Apps {
		if len(targets[a.ID]) == 0 {
			continue
		}
		rels := releases(cur[a.ID], active[a.ID])
		health := healthOf(cur[a.ID].Spec, a.Spec)
		slices.SortFunc(targets[a.ID], func(x, y target) int { return strings.Compare(x.id(a), y.id(a)) })
		for _, tg := range targets[a.ID] {
			pa := proxy.App{ID: tg.id(a), Name: a.Name, Compress: tg.compress}
			for _, r := range rels {
				rel := proxy.Release{Service: r.service, Port: tg.port, Weight: r.weight}
				if tg.port == a.Spec.Port {
					rel.Health = health
				}
				pa.Releases = append(pa.Releases, rel)
			}
			t.Apps = append(t.Apps, pa)
		}
	}
	if c := s.Control; c != nil && c.Host != "" && c.Addr != "" {
		// First, so that it wins over any domain claiming the same host.
		t.Apps = append(t.Apps, proxy.App{ID: ControlPlaneID, Name: "Berth control plane", Address: c.Addr})
		t.Routes = slices.Insert(t.Routes, 0, proxy.Route{Host: c.Host, AppID: ControlPlaneID, HTTPSRedirect: c.HTTPS && certs[c.Host]})
	}
	return t
}

// ControlPlaneID is the routing target of the control plane itself.
const ControlPlaneID = "berth-control-plane"

// ControlTarget is Berth's own public host and where the proxies reach the
// control plane for it.
type ControlTarget struct {
	Host  string
	Addr  string // IP:port of the internal listener
	HTTPS bool   // the public URL is https: get a certificate, then redirect
}

// target is one backend of an app: HAProxy compresses per backend, so a
// compressing domain gets its own.
type target struct {
	port     int
	compress bool
}

func (tg target) id(a store.App) string {
	if tg.compress {
		return TargetID(a, tg.port) + "-gz"
	}
	return TargetID(a, tg.port)
}

type weighted struct {
	service string
	weight  int
}

func releases(cur store.Deployment, active []store.Deployment) []weighted {
	var out []weighted
	add := func(service string, w int) {
		if service == "" || slices.ContainsFunc(out, func(x weighted) bool { return x.service == service }) {
			return
		}
		out = append(out, weighted{service, w})
	}
	add(cur.Service, FullWeight)
	for _, d := range active {
		switch d.Status {
		case store.DeployStarting:
			add(d.Service, 0)
		case store.DeploySwitching, store.DeployDraining:
			add(d.Service, 0) // current once switched: added above at FullWeight
			add(d.PreviousService, 0)
		}
	}
	return out
}

// healthOf is the active check the proxy runs: the current release's HTTP
// health check (the app's spec before anything was deployed). HAProxy checks
// per backend, so every release of the app gets the same one; other check
// types leave the proxy with TCP checks.
func healthOf(deployed, spec app.Spec) *proxy.HealthCheck {
	h := spec.Health
	if deployed.Image != "" {
		h = deployed.Health
	}
	if h == nil || h.Type != app.HealthHTTP || (h.Port != 0 && h.Port != cmp.Or(deployed.Port, spec.Port)) {
		return nil
	}
	return &proxy.HealthCheck{Path: cmp.Or(h.Path, "/"), ExpectStatus: h.ExpectStatus}
}

// TargetID names an app's routing target for a container port: the app id for
// its own HTTP port, the id and the port for others (and "-gz" after either
// for the target of compressing domains).
func TargetID(a store.App, port int) string {
	if port == a.Spec.Port {
		return a.ID
	}
	return a.ID + "-" + strconv.Itoa(port)
}

// DefaultHost is an app's generated host under base:
// <app>-<project> for production, <app>-<environment>-<project> otherwise.
func DefaultHost(appName string, pl store.AppPlace, base string) string {
	label := appName + "-" + pl.Project
	if pl.Environment != "production" {
		label = appName + "-" + pl.Environment + "-" + pl.Project
	}
	return label + "." + base
}

// CertName is the proxy's name for a host's certificate.
func CertName(host string) string {
	sum := sha256.Sum256([]byte(host))
	return "crt-" + hex.EncodeToString(sum[:10])
}
