package controller

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/internal/proxy"
	"github.com/berthpaas/berth/internal/proxy/haproxy"
)

// reloadTimeout bounds one validated reload (check, re-exec, new worker).
const reloadTimeout = time.Minute

// plan is a table made ready for HAProxy: the part of it that is valid, what
// was left out, and the files that serve it.
type plan struct {
	table    proxy.Table // the valid part
	problems []string    // what was left out, in plain words

	config, routeMap, pathMap, crtList []byte
	certs                              map[string][]byte // certificate name → PEM file (chain, key)
	challenges                         map[string]string // token → key authorization
}

// prepare validates t, item by item, and renders the files for its valid
// part. An error here is a bug, not a bad table.
func (c *controller) prepare(t proxy.Table) (*plan, error) {
	valid, errs := proxy.ValidRoutes(t)
	p := &plan{}
	for _, err := range errs {
		p.problems = append(p.problems, describe(t, err))
	}
	var problems []string
	valid.Certificates, p.certs, problems = validCertificates(t.Certificates)
	p.problems = append(p.problems, problems...)
	valid.Challenges, p.challenges, problems = validChallenges(t.Challenges)
	p.problems = append(p.problems, problems...)
	p.table = valid

	var err error
	if p.config, err = proxy.Render(valid, c.opts); err != nil {
		return nil, err
	}
	if p.crtList, err = proxy.RenderCrtList(valid, c.opts); err != nil {
		return nil, err
	}
	p.routeMap = proxy.RenderMap(valid)
	p.pathMap = proxy.RenderPathMap(valid)
	return p, nil
}

// describe says in plain words which item of t a validation error dropped.
func describe(t proxy.Table, err error) string {
	var fe *proxy.FieldError
	if !errors.As(err, &fe) {
		return err.Error()
	}
	_, field, _ := strings.Cut(fe.Field, "].")
	var i int
	if _, serr := fmt.Sscanf(fe.Field, "routes[%d]", &i); serr == nil && i < len(t.Routes) {
		r := t.Routes[i]
		return fmt.Sprintf("route %q → app %q not applied: %s: %s", r.Host+r.PathPrefix, r.AppID, field, fe.Message)
	}
	if _, serr := fmt.Sscanf(fe.Field, "apps[%d]", &i); serr == nil && i < len(t.Apps) {
		return fmt.Sprintf("app %q not applied, nor its routes: %s: %s", t.Apps[i].ID, field, fe.Message)
	}
	return fe.Error()
}

// apply makes HAProxy serve t: through the Runtime API when the rendered
// configuration only differs in server weights, by a validated seamless
// reload otherwise. A table HAProxy refuses leaves the previous one serving.
// Only an applied table is saved and becomes the applied version.
func (c *controller) apply(ctx context.Context, t proxy.Table) error {
	start := time.Now()
	next, err := c.prepare(t)
	if err != nil {
		return err
	}
	c.mu.Lock()
	prev := c.current
	c.mu.Unlock()

	// HAProxy logs requests by the new table before commit.
	c.traffic.setTable(next.table)
	how := "runtime"
	if !sameButWeights(prev.table, next.table, c.opts) {
		how = "reload"
	} else if err := c.applyRuntime(ctx, prev, next); err != nil {
		c.log.Warn("runtime update failed, reloading instead", "version", t.Version, "err", err)
		how = "reload"
	}
	if how == "reload" {
		if err := c.reload(ctx, prev, next); err != nil {
			return err
		}
	}
	if err := saveTable(c.tablePath, t); err != nil {
		c.log.Error("saving the applied table failed; a restart would serve an older one", "err", err)
		next.problems = append(next.problems, "the table could not be saved for restarts: "+err.Error())
	}
	c.commit(next)
	c.removeStaleCerts(next)
	c.log.Info("routing table applied", "version", t.Version, "how", how, "took", time.Since(start),
		"routes", len(next.table.Routes), "apps", len(next.table.Apps), "certificates", len(next.table.Certificates),
		"problems", len(next.problems))
	for _, pr := range next.problems {
		c.log.Warn("part of the routing table not applied", "version", t.Version, "problem", pr)
	}
	return nil
}

// commit records p as what HAProxy serves.
func (c *controller) commit(p *plan) {
	c.mu.Lock()
	c.current, c.errs = p, p.problems
	c.mu.Unlock()
	c.traffic.setTable(p.table)
	c.challenges.Store(&p.challenges)
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// failed records that table version v could not be applied.
func (c *controller) failed(v int64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(slices.Clone(c.current.problems),
		fmt.Sprintf("table version %d not applied, still serving version %d: %v", v, c.current.table.Version, err))
}

// sameButWeights reports whether a and b render the same configuration once
// server weights (and the version comment) are set aside.
func sameButWeights(a, b proxy.Table, o proxy.Options) bool {
	ca, errA := proxy.Render(withoutWeights(a), o)
	cb, errB := proxy.Render(withoutWeights(b), o)
	return errA == nil && errB == nil && bytes.Equal(ca, cb)
}

// withoutWeights keeps what the configuration depends on: the apps, with
// every weight 0, and the routes (basic auth and response headers are
// rules of the configuration; the rest of a route is a map entry).
func withoutWeights(t proxy.Table) proxy.Table {
	out := proxy.Table{Apps: make([]proxy.App, len(t.Apps)), Routes: t.Routes}
	for i, a := range t.Apps {
		a.Releases = slices.Clone(a.Releases)
		for j := range a.Releases {
			a.Releases[j].Weight = 0
		}
		out.Apps[i] = a
	}
	return out
}

// applyRuntime changes the running worker to next without a reload. The
// files are written first, so a crash restart at any point comes back with
// next; a failure leaves the caller to reload from them.
func (c *controller) applyRuntime(ctx context.Context, prev, next *plan) error {
	if err := c.writeFiles(next); err != nil {
		return err
	}
	// The active configuration is what a crash restart loads. next's differs
	// from it in weights only, so it is as valid; without this a restart
	// would bring back the old weights.
	if err := writeFileAtomic(c.hcfg.ActivePath(), next.config, 0o600); err != nil {
		return err
	}
	if err := c.updateMap(ctx, prev.table, next.table); err != nil {
		return err
	}
	if err := c.updateWeights(ctx, prev.table, next.table); err != nil {
		return err
	}
	if c.opts.HTTPSPort == 0 {
		return nil
	}
	return c.updateCerts(ctx, prev, next)
}

// mapEntries are the entries of the route map (proxy.RenderMap).
func mapEntries(t proxy.Table) map[string]string {
	m := make(map[string]string, len(t.Routes))
	for _, r := range t.Routes {
		m[proxy.MapKey(r)] = proxy.MapValue(r)
	}
	return m
}

// pathMapEntries are the entries of the path map (proxy.RenderPathMap).
func pathMapEntries(t proxy.Table) map[string]string {
	hosts := proxy.PathHosts(t.Routes)
	m := make(map[string]string, len(hosts))
	for _, h := range hosts {
		m[h] = proxy.PathMapValue
	}
	return m
}

// updateMap changes the route map and the path map from prev's entries to
// next's. Path map entries are added before the route map changes and
// removed after, so a host never has prefix routes it is not looked up for.
func (c *controller) updateMap(ctx context.Context, prev, next proxy.Table) error {
	oldPaths, curPaths := pathMapEntries(prev), pathMapEntries(next)
	if err := c.updateMapFile(ctx, c.opts.PathMapPath, oldPaths, mergeMaps(oldPaths, curPaths)); err != nil {
		return err
	}
	if err := c.updateMapFile(ctx, c.opts.MapPath, mapEntries(prev), mapEntries(next)); err != nil {
		return err
	}
	return c.updateMapFile(ctx, c.opts.PathMapPath, mergeMaps(oldPaths, curPaths), curPaths)
}

// mergeMaps returns the entries of a and b, b's where both have a key.
func mergeMaps(a, b map[string]string) map[string]string {
	m := maps.Clone(a)
	maps.Copy(m, b)
	return m
}

// updateMapFile changes the map at path from the entries old to cur.
func (c *controller) updateMapFile(ctx context.Context, path string, old, cur map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		v, had := old[k]
		var err error
		switch {
		case !had:
			err = c.rt.AddMapEntry(ctx, path, k, cur[k])
		case v != cur[k]:
			err = c.rt.SetMapEntry(ctx, path, k, cur[k])
		}
		if err != nil {
			return err
		}
	}
	for _, k := range slices.Sorted(maps.Keys(old)) {
		if _, keep := cur[k]; !keep {
			if err := c.rt.DelMapEntry(ctx, path, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// updateWeights sets the weight of every slot of each release whose weight
// changed. Raises go first, so that moving traffic from one release to
// another never leaves a moment where every weight is 0.
func (c *controller) updateWeights(ctx context.Context, prev, next proxy.Table) error {
	type change struct {
		backend, prefix string
		weight          int
	}
	old := make(map[string]int)
	for _, a := range prev.Apps {
		for _, r := range a.Releases {
			old[a.ID+"/"+r.Service] = r.Weight
		}
	}
	var up, down []change
	for _, a := range next.Apps {
		for _, r := range a.Releases {
			w, ok := old[a.ID+"/"+r.Service]
			ch := change{proxy.BackendName(a.ID), proxy.ServerPrefix(r.Service), r.Weight}
			switch {
			case !ok || w == r.Weight:
			case r.Weight > w:
				up = append(up, ch)
			default:
				down = append(down, ch)
			}
		}
	}
	slots := cmp.Or(c.opts.SlotsPerRelease, proxy.DefaultSlotsPerRelease)
	for _, ch := range append(up, down...) {
		for i := 1; i <= slots; i++ {
			if err := c.rt.SetServerWeight(ctx, ch.backend, ch.prefix+strconv.Itoa(i), ch.weight); err != nil {
				return err
			}
		}
	}
	return nil
}

// updateCerts adds, replaces and removes certificates in the running worker.
func (c *controller) updateCerts(ctx context.Context, prev, next *plan) error {
	for _, name := range slices.Sorted(maps.Keys(next.certs)) {
		file, data := proxy.CertFile(c.opts.CertDir, name), next.certs[name]
		old, had := prev.certs[name]
		switch {
		case !had:
			if err := c.rt.NewSSLCert(ctx, file); err != nil {
				return err
			}
			if err := c.setCert(ctx, file, data); err != nil {
				return err
			}
			if err := c.rt.AddCrtListEntry(ctx, c.opts.CrtListPath, file); err != nil {
				return err
			}
		case !bytes.Equal(old, data):
			if err := c.setCert(ctx, file, data); err != nil {
				return err
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(prev.certs)) {
		if _, keep := next.certs[name]; keep {
			continue
		}
		file := proxy.CertFile(c.opts.CertDir, name)
		if err := c.rt.DelCrtListEntry(ctx, c.opts.CrtListPath, file); err != nil {
			return err
		}
		if err := c.rt.DelSSLCert(ctx, file); err != nil {
			return err
		}
	}
	return nil
}

// setCert replaces a certificate's chain and key in one transaction.
func (c *controller) setCert(ctx context.Context, file string, data []byte) error {
	if err := c.rt.SetSSLCert(ctx, file, data); err != nil {
		return err
	}
	if err := c.rt.CommitSSLCert(ctx, file); err != nil {
		_ = c.rt.AbortSSLCert(ctx, file)
		return err
	}
	return nil
}

// reload writes next's files and has HAProxy reload them. A configuration
// HAProxy refuses puts prev's files back, so they match what keeps serving.
func (c *controller) reload(ctx context.Context, prev, next *plan) error {
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	// The new worker starts from the old one's server addresses and health
	// rather than unresolved until its first DNS answer.
	if state, err := c.rt.ServersStateFile(ctx); err != nil {
		c.log.Warn("could not save server state before the reload; new servers start unresolved", "err", err)
	} else if err := writeFileAtomic(c.opts.ServerStatePath, configWeightsWin(state), 0o600); err != nil {
		return err
	}
	if err := c.writeFiles(next); err != nil {
		return err
	}
	err := c.proc.Reload(ctx)
	var refused *haproxy.ConfigError
	if errors.As(err, &refused) {
		if werr := c.writeFiles(prev); werr != nil {
			c.log.Error("restoring the files of the running table failed", "err", werr)
		}
	}
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return nil
}

// configWeightsWin rewrites a `show servers state` dump so that loading it
// never overrides the weights of the new configuration. HAProxy restores a
// server's runtime weight (srv_uweight) when its configured weight
// (srv_iweight) did not change; the controller renders every weight into the
// configuration, so the configuration must always win.
func configWeightsWin(state []byte) []byte {
	lines := strings.Split(string(state), "\n")
	u, i := -1, -1
	for n, line := range lines {
		f := strings.Fields(line)
		if strings.HasPrefix(line, "# ") {
			u, i = slices.Index(f, "srv_uweight")-1, slices.Index(f, "srv_iweight")-1
			continue
		}
		if u < 0 || i < 0 || len(f) <= max(u, i) {
			continue
		}
		f[u] = f[i]
		lines[n] = strings.Join(f, " ")
	}
	return []byte(strings.Join(lines, "\n"))
}

// serverStateHeader is an empty `show servers state`: HAProxy warns about a
// missing or empty state file, not about this.
const serverStateHeader = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"

// writeServerStateHeader starts every run without stale server state: the
// tasks may have moved while the proxy was down.
func writeServerStateHeader(path string) error {
	return writeFileAtomic(path, []byte(serverStateHeader), 0o600)
}

// writeFiles writes every file of p: certificates first, so the crt-list
// and configuration never name a missing one.
func (c *controller) writeFiles(p *plan) error {
	for _, name := range slices.Sorted(maps.Keys(p.certs)) {
		if err := writeFileAtomic(proxy.CertFile(c.opts.CertDir, name), p.certs[name], 0o600); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{c.opts.CrtListPath, p.crtList}, {c.opts.MapPath, p.routeMap}, {c.opts.PathMapPath, p.pathMap},
		{c.hcfg.ConfigPath, p.config}} {
		if err := writeFileAtomic(f.path, f.data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// removeStaleCerts deletes the certificate files p does not use.
func (c *controller) removeStaleCerts(p *plan) {
	entries, err := os.ReadDir(c.opts.CertDir)
	if err != nil {
		c.log.Warn("listing certificate files failed", "err", err)
		return
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".pem")
		if _, used := p.certs[name]; ok && used {
			continue
		}
		if err := os.Remove(filepath.Join(c.opts.CertDir, e.Name())); err != nil {
			c.log.Warn("removing a stale certificate file failed", "err", err)
		}
	}
}
