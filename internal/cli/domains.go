package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/edge"
	"github.com/berthpaas/berth/internal/orchestrator"
)

// Domains lists an app's domains.
func (c *Client) Domains(ctx context.Context, ref appRef) ([]api.Domain, error) {
	var out api.DomainList
	return out.Domains, c.do(ctx, http.MethodGet, appPath(ref, "/domains"), nil, &out)
}

// AddDomain routes a domain to an app.
func (c *Client) AddDomain(ctx context.Context, ref appRef, in api.DomainRequest) (api.Domain, error) {
	var out api.Domain
	return out, c.do(ctx, http.MethodPost, appPath(ref, "/domains"), in, &out)
}

// Domain fetches one of an app's domains.
func (c *Client) Domain(ctx context.Context, ref appRef, domain string) (api.Domain, error) {
	var out api.Domain
	return out, c.do(ctx, http.MethodGet, appPath(ref, "/domains/"+url.PathEscape(domain)), nil, &out)
}

// UpdateDomain replaces a domain's options.
func (c *Client) UpdateDomain(ctx context.Context, ref appRef, domain string, in api.DomainRequest) (api.Domain, error) {
	var out api.Domain
	return out, c.do(ctx, http.MethodPut, appPath(ref, "/domains/"+url.PathEscape(domain)), in, &out)
}

// RemoveDomain removes a domain from an app.
func (c *Client) RemoveDomain(ctx context.Context, ref appRef, domain string) error {
	return c.do(ctx, http.MethodDelete, appPath(ref, "/domains/"+url.PathEscape(domain)), nil, nil)
}

// UploadCertificate sets a domain's certificate.
func (c *Client) UploadCertificate(ctx context.Context, ref appRef, domain string, in api.CertificateUpload) (api.Domain, error) {
	var out api.Domain
	return out, c.do(ctx, http.MethodPut, appPath(ref, "/domains/"+url.PathEscape(domain)+"/certificate"), in, &out)
}

// UseACME drops a domain's uploaded certificate.
func (c *Client) UseACME(ctx context.Context, ref appRef, domain string) (api.Domain, error) {
	var out api.Domain
	return out, c.do(ctx, http.MethodDelete, appPath(ref, "/domains/"+url.PathEscape(domain)+"/certificate"), nil, &out)
}

// ProxyStatus describes the edge proxy.
func (c *Client) ProxyStatus(ctx context.Context) (edge.ProxyStatus, error) {
	var out edge.ProxyStatus
	return out, c.do(ctx, http.MethodGet, api.Prefix+"/proxy", nil, &out)
}

func domainCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "domain",
		Aliases: []string{"domains"},
		Short:   "Route domains to apps, with automatic HTTPS",
		Long:    "Route domains (and path prefixes under them) to apps through the edge proxy. " + appRefHelp,
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(domainAddCmd(), domainUpdateCmd(), domainListCmd(), domainRemoveCmd(), domainCertCmd())
	return cmd
}

// domainFlags are the option flags berth domain add and berth domain update
// share. apply writes those given on the command line into a request: add
// starts from the defaults, update from the domain as it is.
type domainFlags struct {
	strip, https, compress, keepPath bool
	port, redirectCode               int
	timeout                          time.Duration
	maxBody, redirectTo, authUser    string
	passwordStdin                    bool
	headers                          []string
	// update only
	noRedirect, noBasicAuth, clearHeaders bool
}

// domainOptionFlags are the flags that change a domain's options.
var domainOptionFlags = []string{"strip-prefix", "port", "https", "timeout", "max-body", "compress", "redirect-to", "redirect-code", "keep-path",
	"basic-auth-user", "basic-auth-password-stdin", "header", "no-redirect", "no-basic-auth", "clear-headers"}

func (f *domainFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.strip, "strip-prefix", false, "remove the path prefix before the request reaches the app (or before a kept path is appended to a redirect)")
	fl.IntVar(&f.port, "port", 0, "container port to send requests to (default: the app's HTTP port)")
	fl.BoolVar(&f.https, "https", true, "obtain a certificate through ACME and redirect HTTP to HTTPS once issued")
	fl.DurationVar(&f.timeout, "timeout", 0, "how long the app may take to answer, 1s–1h (0: the proxy's 60s)")
	fl.StringVar(&f.maxBody, "max-body", "", "largest request body accepted, e.g. 10m or 512k (empty: no limit)")
	fl.BoolVar(&f.compress, "compress", false, "gzip text responses for clients that accept it")
	fl.StringVar(&f.redirectTo, "redirect-to", "", "redirect to this URL instead of routing to the app, e.g. https://www.example.com")
	fl.IntVar(&f.redirectCode, "redirect-code", 308, "redirect status: 301, 302, 307 or 308")
	fl.BoolVar(&f.keepPath, "keep-path", true, "append the request's path and query to the redirect URL")
	fl.StringVar(&f.authUser, "basic-auth-user", "", "ask every request for this user's password (prompted, or --basic-auth-password-stdin)")
	fl.BoolVar(&f.passwordStdin, "basic-auth-password-stdin", false, "read the basic auth password from stdin")
	fl.StringArrayVar(&f.headers, "header", nil, `set a response header, "Name: value" (repeatable)`)
}

// bindUpdate adds the flags that undo an option.
func (f *domainFlags) bindUpdate(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.noRedirect, "no-redirect", false, "stop redirecting: route to the app again (its HTTP port unless --port)")
	fl.BoolVar(&f.noBasicAuth, "no-basic-auth", false, "remove basic auth")
	fl.BoolVar(&f.clearHeaders, "clear-headers", false, "remove every response header (--header replaces the list instead)")
}

// apply writes the flags given on cmd's command line into req and leaves
// the rest as they are. Every error names its flag.
func (f *domainFlags) apply(cmd *cobra.Command, req *api.DomainRequest) error {
	given := cmd.Flags().Changed
	switch {
	case f.noRedirect && (given("redirect-to") || given("redirect-code") || given("keep-path")):
		return errors.New("--no-redirect and the --redirect-* flags contradict each other: give one")
	case f.noBasicAuth && (given("basic-auth-user") || given("basic-auth-password-stdin")):
		return errors.New("--no-basic-auth and --basic-auth-user contradict each other: give one")
	case f.clearHeaders && given("header"):
		return errors.New("--clear-headers and --header: give one (--header replaces the list)")
	}
	if given("strip-prefix") {
		req.StripPrefix = f.strip
	}
	if given("port") {
		req.Port = f.port
	}
	if given("https") {
		https := f.https
		req.HTTPS = &https
	}
	if given("timeout") {
		if f.timeout < 0 || f.timeout%time.Second != 0 {
			return fmt.Errorf("--timeout must be whole seconds, got %s", f.timeout)
		}
		req.TimeoutSeconds = int(f.timeout / time.Second)
	}
	if given("max-body") {
		req.MaxBodyBytes = 0
		if f.maxBody != "" {
			n, err := parseSize(f.maxBody)
			if err != nil {
				return fmt.Errorf("--max-body: %w", err)
			}
			req.MaxBodyBytes = n
		}
	}
	if given("compress") {
		req.Compress = f.compress
	}
	if err := f.applyRedirect(req, given); err != nil {
		return err
	}
	switch {
	case f.noBasicAuth:
		req.BasicAuth = nil
	case given("basic-auth-user") || given("basic-auth-password-stdin"):
		user := f.authUser
		if !given("basic-auth-user") {
			if req.BasicAuth == nil {
				return errors.New("--basic-auth-password-stdin: the domain has no basic auth; give --basic-auth-user too")
			}
			user = req.BasicAuth.Username
		}
		// An empty password keeps the current one: asked for only for new
		// basic auth, or when a new one comes on stdin.
		var pw string
		if req.BasicAuth == nil || f.passwordStdin {
			var err error
			if pw, err = readPassword(cmd, "basic-auth-password-stdin", f.passwordStdin, !f.passwordStdin); err != nil {
				return err
			}
		}
		req.BasicAuth = &api.BasicAuthRequest{Username: user, Password: pw}
	}
	if given("header") || f.clearHeaders {
		req.Headers = nil
		for _, h := range f.headers {
			name, value, ok := strings.Cut(h, ":")
			if !ok {
				return fmt.Errorf("--header %q: want \"Name: value\"", h)
			}
			req.Headers = append(req.Headers, api.DomainHeader{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
		}
	}
	return nil
}

// applyRedirect sets, changes or drops req's redirect. A domain that
// becomes a redirect drops what only a route to the app has (unless given,
// which the server then refuses); one that stops being one goes to the
// app's HTTP port unless --port says otherwise.
func (f *domainFlags) applyRedirect(req *api.DomainRequest, given func(string) bool) error {
	was := req.Redirect
	switch {
	case f.noRedirect || given("redirect-to") && f.redirectTo == "":
		req.Redirect = nil
	case given("redirect-to") || given("redirect-code") || given("keep-path"):
		r := api.DomainRedirect{Code: f.redirectCode}
		if was != nil {
			r = *was
		} else if !given("redirect-to") {
			return errors.New("--redirect-code and --keep-path change a redirect: the domain routes to the app, so give --redirect-to too")
		}
		if given("redirect-to") {
			r.To = f.redirectTo
		}
		if given("redirect-code") || was == nil {
			r.Code = f.redirectCode
		}
		if given("keep-path") || r.KeepPath == nil {
			keep := f.keepPath
			r.KeepPath = &keep
		}
		req.Redirect = &r
	}
	switch {
	case was == nil && req.Redirect != nil:
		if !given("port") {
			req.Port = 0
		}
		if !given("timeout") {
			req.TimeoutSeconds = 0
		}
		if !given("max-body") {
			req.MaxBodyBytes = 0
		}
		if !given("compress") {
			req.Compress = false
		}
	case was != nil && req.Redirect == nil && !given("port"):
		req.Port = 0
	}
	return nil
}

func domainAddCmd() *cobra.Command {
	var (
		f                 domainFlags
		path              string
		noWait            bool
		fromApex, fromWWW bool
	)
	cmd, _ := appCommand("add REF HOST", "Route a domain to an app, or redirect it", 2, func(cmd *cobra.Command, t *target, ref appRef, args []string) error {
		https := true
		in := api.DomainRequest{Host: args[0], PathPrefix: path, HTTPS: &https}
		if err := f.apply(cmd, &in); err != nil {
			return err
		}
		// The alias is checked before anything is added, so a bad one adds nothing.
		alias, err := redirectAlias(in.Host, fromApex, fromWWW)
		if err != nil {
			return err
		}
		d, err := t.client().AddDomain(cmd.Context(), ref, in)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if d.Redirect != nil {
			fmt.Fprintf(out, "%s%s now redirects to %s (%d)\n", d.Host, pathSuffix(d.PathPrefix), d.Redirect.To, d.Redirect.Code)
		} else {
			fmt.Fprintf(out, "Routed %s%s to %s (container port %d)\n", d.Host, pathSuffix(d.PathPrefix), ref, d.Port)
		}
		if alias != "" {
			scheme := "http"
			if d.HTTPS {
				scheme = "https"
			}
			keep := true
			a, err := t.client().AddDomain(cmd.Context(), ref, api.DomainRequest{Host: alias, HTTPS: in.HTTPS,
				Redirect: &api.DomainRedirect{To: scheme + "://" + d.Host, Code: 308, KeepPath: &keep}})
			if err != nil {
				return fmt.Errorf("%s was added, its redirect from %s was not: %w", d.Host, alias, err)
			}
			fmt.Fprintf(out, "%s now redirects to %s (%d)\n", a.Host, a.Redirect.To, a.Redirect.Code)
		}
		if !d.HTTPS || noWait {
			return nil
		}
		return awaitCertificate(cmd, t, ref, d)
	})
	fl := cmd.Flags()
	fl.StringVar(&path, "path", "", "route only this path prefix and below, e.g. /api")
	f.bind(cmd)
	fl.BoolVar(&noWait, "no-wait", false, "do not wait for the certificate")
	fl.BoolVar(&fromApex, "redirect-from-apex", false, "also redirect the apex domain (HOST without www.) to HOST")
	fl.BoolVar(&fromWWW, "redirect-from-www", false, "also redirect www.HOST to HOST")
	cmd.Example = "  berth domain add shop/web shop.example.com\n" +
		"  berth domain add shop/api example.com --path /api --strip-prefix --https=false\n" +
		"  berth domain add shop/web www.example.com --redirect-from-apex --compress --header 'Strict-Transport-Security: max-age=63072000'\n" +
		"  berth domain add shop/web old.example.com --redirect-to https://www.example.com --redirect-code 301\n" +
		"  echo \"$PREVIEW_PASSWORD\" | berth domain add shop/web preview.example.com --basic-auth-user preview --basic-auth-password-stdin"
	return cmd
}

func domainUpdateCmd() *cobra.Command {
	var (
		f      domainFlags
		noWait bool
	)
	cmd, _ := appCommand("update REF DOMAIN", "Change a domain's options (HOST, HOST/PATH or id): only those given", 2, func(cmd *cobra.Command, t *target, ref appRef, args []string) error {
		if !slices.ContainsFunc(domainOptionFlags, cmd.Flags().Changed) {
			return errors.New("nothing to change: give the options to change, e.g. --compress or --timeout 2m (see --help)")
		}
		cur, err := t.client().Domain(cmd.Context(), ref, args[0])
		if err != nil {
			return err
		}
		req := domainRequestOf(cur)
		if err := f.apply(cmd, &req); err != nil {
			return err
		}
		d, err := t.client().UpdateDomain(cmd.Context(), ref, cur.ID, req)
		if err != nil {
			return err
		}
		newPassword := req.BasicAuth != nil && req.BasicAuth.Password != ""
		fmt.Fprintf(cmd.OutOrStdout(), "Updated %s%s: %s\n", d.Host, pathSuffix(d.PathPrefix), strings.Join(domainChanges(cur, d, newPassword), ", "))
		if !d.HTTPS || cur.HTTPS || noWait {
			return nil
		}
		return awaitCertificate(cmd, t, ref, d)
	})
	f.bind(cmd)
	f.bindUpdate(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "do not wait for the certificate when HTTPS is turned on")
	cmd.Long += " Options whose flags are not given stay as they are (the defaults below are those of berth domain add). " +
		"The host and path of a domain cannot change: add the new one and remove the old. --header replaces the list of headers; " +
		"--basic-auth-user alone renames the user and keeps the password, which --basic-auth-password-stdin replaces."
	cmd.Example = "  berth domain update shop/web shop.example.com --compress --timeout 2m\n" +
		"  berth domain update shop/web example.com/api --https --no-wait\n" +
		"  berth domain update shop/web old.example.com --redirect-to https://www.example.com/new --redirect-code 302\n" +
		"  berth domain update shop/web old.example.com --no-redirect\n" +
		"  berth domain update shop/web preview.example.com --basic-auth-user reviewer          # keeps the password\n" +
		"  echo \"$NEW_PASSWORD\" | berth domain update shop/web preview.example.com --basic-auth-password-stdin\n" +
		"  berth domain update shop/web shop.example.com --no-basic-auth --clear-headers"
	return cmd
}

// domainRequestOf is the request that leaves d as it is: basic auth keeps
// its password, which the request leaves empty.
func domainRequestOf(d api.Domain) api.DomainRequest {
	https := d.HTTPS
	req := api.DomainRequest{Host: d.Host, PathPrefix: d.PathPrefix, StripPrefix: d.StripPrefix, Port: d.Port, HTTPS: &https,
		TimeoutSeconds: d.TimeoutSeconds, MaxBodyBytes: d.MaxBodyBytes, Compress: d.Compress, Headers: d.Headers}
	if r := d.Redirect; r != nil {
		c := *r
		req.Redirect = &c
	}
	if a := d.BasicAuth; a != nil {
		req.BasicAuth = &api.BasicAuthRequest{Username: a.Username}
	}
	return req
}

// domainChanges says in words what an update changed.
func domainChanges(old, d api.Domain, newPassword bool) []string {
	var c []string
	switch r := d.Redirect; {
	case r != nil && redirectTarget(r) != redirectTarget(old.Redirect):
		to := r.To
		if r.KeepPath != nil && *r.KeepPath {
			to += "/…"
		}
		c = append(c, fmt.Sprintf("redirects to %s (%d)", to, r.Code))
	case r == nil && old.Redirect != nil:
		c = append(c, fmt.Sprintf("routes to the app again (container port %d)", d.Port))
	case r == nil && old.Port != d.Port:
		c = append(c, fmt.Sprintf("container port %d", d.Port))
	}
	if old.StripPrefix != d.StripPrefix {
		c = append(c, map[bool]string{true: "prefix stripped", false: "prefix kept"}[d.StripPrefix])
	}
	if old.HTTPS != d.HTTPS {
		c = append(c, "HTTPS "+onOff(d.HTTPS))
	}
	if old.TimeoutSeconds != d.TimeoutSeconds && d.Redirect == nil {
		if d.TimeoutSeconds == 0 {
			c = append(c, "default timeout (60s)")
		} else {
			c = append(c, fmt.Sprintf("timeout %ds", d.TimeoutSeconds))
		}
	}
	if old.MaxBodyBytes != d.MaxBodyBytes && d.Redirect == nil {
		if d.MaxBodyBytes == 0 {
			c = append(c, "no body limit")
		} else {
			c = append(c, "max body "+formatBytes(d.MaxBodyBytes))
		}
	}
	if old.Compress != d.Compress && d.Redirect == nil {
		c = append(c, "gzip "+onOff(d.Compress))
	}
	switch a := d.BasicAuth; {
	case a == nil && old.BasicAuth != nil:
		c = append(c, "basic auth removed")
	case a != nil && (old.BasicAuth == nil || old.BasicAuth.Username != a.Username):
		c = append(c, "basic auth for "+printable(a.Username))
	case a != nil && newPassword:
		c = append(c, "new basic auth password")
	}
	if !slices.Equal(old.Headers, d.Headers) {
		if len(d.Headers) == 0 {
			c = append(c, "no headers")
		} else {
			c = append(c, fmt.Sprintf("%d header(s)", len(d.Headers)))
		}
	}
	if len(c) == 0 {
		return []string{"nothing changed"}
	}
	return c
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// redirectAlias is the other host of a www ↔ apex pair, or "" without
// either flag.
func redirectAlias(host string, fromApex, fromWWW bool) (string, error) {
	host = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(host), "."))
	switch {
	case fromApex && fromWWW:
		return "", fmt.Errorf("give --redirect-from-apex or --redirect-from-www, not both")
	case fromApex && !strings.HasPrefix(host, "www."):
		return "", fmt.Errorf("--redirect-from-apex needs a www. host, e.g. www.example.com")
	case fromApex:
		return strings.TrimPrefix(host, "www."), nil
	case fromWWW && strings.HasPrefix(host, "www."):
		return "", fmt.Errorf("--redirect-from-www needs a host without www., e.g. example.com")
	case fromWWW:
		return "www." + host, nil
	}
	return "", nil
}

// awaitCertificate follows a new HTTPS domain until its certificate is
// issued or fails, printing what happens and how long it took.
func awaitCertificate(cmd *cobra.Command, t *target, ref appRef, d api.Domain) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Requesting a certificate for %s from the ACME CA…\n", d.Host)
	began := time.Now()
	ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Minute)
	defer cancel()
	for {
		ds, err := t.client().Domains(ctx, ref)
		if err != nil {
			return err
		}
		for _, x := range ds {
			if x.ID != d.ID || x.Certificate == nil {
				continue
			}
			c := x.Certificate
			switch {
			case c.Status == "issued":
				fmt.Fprintf(out, "Certificate issued by %s, expires %s (%s)\nHTTP now redirects to https://%s%s\n",
					printable(c.Issuer), formatTime(c.NotAfter), time.Since(began).Round(100*time.Millisecond), d.Host, pathSuffix(d.PathPrefix))
				return nil
			case c.Status == "failed":
				return fmt.Errorf("certificate for %s not issued: %s (Berth retries at %s; the domain serves plain HTTP meanwhile)",
					d.Host, printable(c.LastError), formatTime(c.NextAttempt))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no certificate for %s after %s; see berth domain list %s", d.Host, time.Since(began).Round(time.Second), ref)
		case <-time.After(time.Second):
		}
	}
}

func pathSuffix(p string) string { return strings.TrimSuffix(p, "/") }

func domainListCmd() *cobra.Command {
	return listVerb[api.Domain]{
		use: "list REF", short: "List an app's domains and their certificates", args: cobra.ExactArgs(1),
		header: []string{"HOST", "PATH", "TARGET", "HTTPS", "OPTIONS", "CERTIFICATE", "ISSUER", "EXPIRES"},
		fetch: func(ctx context.Context, t *target, args []string) ([]api.Domain, error) {
			ref, err := parseAppRef(args[0])
			if err != nil {
				return nil, err
			}
			ds, err := t.client().Domains(ctx, ref)
			return ds, notFound(t, err, "app "+ref.String())
		},
		doc: func(ds []api.Domain) any { return api.DomainList{Domains: ds} },
		row: func(d api.Domain) []string {
			cert, issuer, expires := "-", "-", "-"
			if c := d.Certificate; c != nil {
				cert = c.Status
				if c.Status == "failed" {
					cert = "failed (below)"
				}
				if c.Issuer != "" {
					issuer = printable(c.Issuer)
				}
				if c.NotAfter != nil {
					expires = formatTime(c.NotAfter)
				}
			}
			path := d.PathPrefix
			if d.StripPrefix {
				path += " (stripped)"
			}
			target := fmt.Sprintf("port %d", d.Port)
			if d.Redirect != nil {
				target = redirectTarget(d.Redirect)
			}
			return []string{d.Host, path, target, yesNo(d.HTTPS), domainOptions(d), cert, issuer, expires}
		},
		note: func(d api.Domain) string {
			c := d.Certificate
			if c == nil || c.Status != "failed" {
				return ""
			}
			n := fmt.Sprintf("%s: certificate not issued: %s", d.Host, printable(c.LastError))
			if c.NextAttempt != nil {
				n += "; Berth retries at " + formatTime(c.NextAttempt)
			}
			return n
		},
	}.command()
}

// redirectTarget is a redirect as the list shows it: "308 https://x/…",
// the ellipsis for a kept path. "" for none.
func redirectTarget(r *api.DomainRedirect) string {
	if r == nil {
		return ""
	}
	target := fmt.Sprintf("%d %s", r.Code, r.To)
	if r.KeepPath != nil && *r.KeepPath {
		target += "/…"
	}
	return target
}

// domainOptions sums up a domain's options in one cell: "-" for none.
func domainOptions(d api.Domain) string {
	var o []string
	if d.TimeoutSeconds != 0 {
		o = append(o, fmt.Sprintf("timeout %ds", d.TimeoutSeconds))
	}
	if d.MaxBodyBytes != 0 {
		o = append(o, "max body "+formatBytes(d.MaxBodyBytes))
	}
	if d.Compress {
		o = append(o, "gzip")
	}
	if d.BasicAuth != nil {
		o = append(o, "auth "+printable(d.BasicAuth.Username))
	}
	if n := len(d.Headers); n > 0 {
		o = append(o, fmt.Sprintf("%d header(s)", n))
	}
	if len(o) == 0 {
		return "-"
	}
	return strings.Join(o, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func domainRemoveCmd() *cobra.Command {
	cmd, _ := appCommand("remove REF DOMAIN", "Stop routing a domain (HOST, HOST/PATH or id) to an app", 2, func(cmd *cobra.Command, t *target, ref appRef, args []string) error {
		if err := t.client().RemoveDomain(cmd.Context(), ref, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Removed %s from %s\n", args[0], ref)
		return nil
	})
	cmd.Aliases = []string{"rm"}
	return cmd
}

func domainCertCmd() *cobra.Command {
	var (
		certFile, keyFile string
		acme              bool
	)
	cmd, _ := appCommand("cert REF DOMAIN (--cert FILE --key FILE | --acme)", "Use your own certificate for an HTTPS domain, or go back to ACME", 2,
		func(cmd *cobra.Command, t *target, ref appRef, args []string) error {
			out := cmd.OutOrStdout()
			if acme {
				d, err := t.client().UseACME(cmd.Context(), ref, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s now gets its certificate from the ACME CA\n", d.Host)
				return awaitCertificate(cmd, t, ref, d)
			}
			if certFile == "" || keyFile == "" {
				return fmt.Errorf("give --cert and --key (PEM files), or --acme")
			}
			certPEM, err := os.ReadFile(certFile)
			if err != nil {
				return err
			}
			keyPEM, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			d, err := t.client().UploadCertificate(cmd.Context(), ref, args[0], api.CertificateUpload{CertPEM: string(certPEM), KeyPEM: string(keyPEM)})
			if err != nil {
				return err
			}
			c := d.Certificate
			fmt.Fprintf(out, "%s now serves your certificate (issuer %s, expires %s); Berth will not renew it\n", d.Host, printable(c.Issuer), formatTime(c.NotAfter))
			return nil
		})
	cmd.Args = cobra.ExactArgs(2)
	cmd.Flags().StringVar(&certFile, "cert", "", "PEM file: the certificate, then its intermediates")
	cmd.Flags().StringVar(&keyFile, "key", "", "PEM file: its private key")
	cmd.Flags().BoolVar(&acme, "acme", false, "drop the uploaded certificate and get one from the ACME CA")
	return cmd
}

// ProxyStatusCmd is `berth proxy status`; cmd/berth hangs it under the
// `berth proxy` command, which runs the proxy itself.
func ProxyStatusCmd() *cobra.Command {
	return showVerb[edge.ProxyStatus]{
		use: "status", short: "Show the edge proxy: replicas, routing table version, certificates",
		fetch: func(ctx context.Context, t *target) (edge.ProxyStatus, error) {
			st, err := t.client().ProxyStatus(ctx)
			return st, t.authErr(err)
		},
		print: func(w io.Writer, st edge.ProxyStatus, _ *target) error { return printProxyStatus(w, st) },
	}.command()
}

// holders says where the listener holder runs: "vm running", or why not.
func holders(ls []orchestrator.ProxyReplica) string {
	if len(ls) == 0 {
		return "none running: nothing holds the host ports"
	}
	var parts []string
	for _, l := range ls {
		part := orDash(l.Node) + " " + orDash(l.State)
		if l.Error != "" {
			part += " (" + printable(l.Error) + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

func printProxyStatus(out io.Writer, st edge.ProxyStatus) error {
	if !st.Enabled {
		fmt.Fprintln(out, "The edge proxy is disabled on this server (berth server --proxy=false).")
	} else {
		fmt.Fprintf(out, "Service:        %s (%s)\nPorts:          HTTP %d, HTTPS %d\n", st.Service, orDash(st.Image), st.HTTPPort, st.HTTPSPort)
		fmt.Fprintf(out, "Port holder:    %s\n", holders(st.Listeners))
		if st.AccessLog {
			fmt.Fprintf(out, "Access log:     on (docker service logs %s)\n", st.Service)
		} else {
			fmt.Fprintln(out, "Access log:     off (berth server --proxy-access-log=false): requests are counted, not written")
		}
	}
	fmt.Fprintf(out, "Routing table:  version %d\n", st.TableVersion)
	if st.Error != "" {
		fmt.Fprintf(out, "Problem:        %s\n", printable(st.Error))
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "REPLICA\tNODE\tSTATE\tTABLE\tHAPROXY\tLAST REPORT\tPROBLEMS")
	for _, r := range st.Replicas {
		table, haproxy, last, problems := "-", "-", "never", r.Error
		if rep := r.Report; rep != nil {
			table = fmt.Sprint(rep.Version)
			if rep.Version == st.TableVersion {
				table += " (current)"
			}
			haproxy = rep.HAProxyVersion
			last = time.Since(rep.LastReport).Round(time.Second).String() + " ago"
			if len(rep.Errors) > 0 {
				problems = strings.Join(rep.Errors, "; ")
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(r.Hostname), orDash(r.Node), orDash(r.State), table, haproxy, last, orDash(printable(problems)))
	}
	if len(st.Replicas) == 0 {
		fmt.Fprintln(w, "(no replica)")
	}
	w.Flush()
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CERTIFICATE\tSOURCE\tISSUER\tEXPIRES\tLAST ERROR")
	for _, c := range st.Certificates {
		expires := "-"
		if !c.NotAfter.IsZero() {
			expires = formatTime(&c.NotAfter)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.Host, c.Source, orDash(printable(c.Issuer)), expires, orDash(printable(c.LastError)))
	}
	if len(st.Certificates) == 0 {
		fmt.Fprintln(w, "(none)")
	}
	return w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatBytes writes n in the largest binary unit that holds it exactly, as
// parseSize reads it back: 1048576 → "1MiB".
func formatBytes(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%dB", n)
}
