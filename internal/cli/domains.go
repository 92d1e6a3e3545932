package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
	"github.com/berthpaas/berth/internal/edge"
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
	cmd.AddCommand(domainAddCmd(), domainListCmd(), domainRemoveCmd(), domainCertCmd())
	return cmd
}

func domainAddCmd() *cobra.Command {
	var (
		in                     api.DomainRequest
		https, noWait          bool
		timeout                time.Duration
		maxBody, redirectTo    string
		redirectCode           int
		keepPath, fromApex     bool
		fromWWW, passwordStdin bool
		authUser               string
		headers                []string
	)
	cmd, _ := appCommand("add REF HOST", "Route a domain to an app, or redirect it", 2, func(cmd *cobra.Command, t *target, ref appRef, args []string) error {
		in.Host, in.HTTPS = args[0], &https
		in.TimeoutSeconds = int(timeout / time.Second)
		if timeout%time.Second != 0 {
			return fmt.Errorf("--timeout must be whole seconds, got %s", timeout)
		}
		if maxBody != "" {
			n, err := parseSize(maxBody)
			if err != nil {
				return fmt.Errorf("--max-body: %w", err)
			}
			in.MaxBodyBytes = n
		}
		if redirectTo != "" {
			in.Redirect = &api.DomainRedirect{To: redirectTo, Code: redirectCode, KeepPath: &keepPath}
		}
		for _, h := range headers {
			name, value, ok := strings.Cut(h, ":")
			if !ok {
				return fmt.Errorf("--header %q: want \"Name: value\"", h)
			}
			in.Headers = append(in.Headers, api.DomainHeader{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
		}
		// The alias is checked before anything is added, so a bad one adds nothing.
		alias, err := redirectAlias(in.Host, fromApex, fromWWW)
		if err != nil {
			return err
		}
		if authUser != "" {
			pw, err := readPassword(cmd, passwordStdin, !passwordStdin)
			if err != nil {
				return err
			}
			in.BasicAuth = &api.BasicAuthRequest{Username: authUser, Password: pw}
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
			a, err := t.client().AddDomain(cmd.Context(), ref, api.DomainRequest{Host: alias, HTTPS: &https,
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
	fl.StringVar(&in.PathPrefix, "path", "", "route only this path prefix and below, e.g. /api")
	fl.BoolVar(&in.StripPrefix, "strip-prefix", false, "remove the path prefix before the request reaches the app (or before a kept path is appended to a redirect)")
	fl.IntVar(&in.Port, "port", 0, "container port to send requests to (default: the app's HTTP port)")
	fl.BoolVar(&https, "https", true, "obtain a certificate through ACME and redirect HTTP to HTTPS once issued")
	fl.BoolVar(&noWait, "no-wait", false, "do not wait for the certificate")
	fl.DurationVar(&timeout, "timeout", 0, "how long the app may take to answer, 1s–1h (default: the proxy's 60s)")
	fl.StringVar(&maxBody, "max-body", "", "largest request body accepted, e.g. 10m or 512k (default: no limit)")
	fl.BoolVar(&in.Compress, "compress", false, "gzip text responses for clients that accept it")
	fl.StringVar(&redirectTo, "redirect-to", "", "redirect to this URL instead of routing to the app, e.g. https://www.example.com")
	fl.IntVar(&redirectCode, "redirect-code", 308, "redirect status: 301, 302, 307 or 308")
	fl.BoolVar(&keepPath, "keep-path", true, "append the request's path and query to the redirect URL")
	fl.BoolVar(&fromApex, "redirect-from-apex", false, "also redirect the apex domain (HOST without www.) to HOST")
	fl.BoolVar(&fromWWW, "redirect-from-www", false, "also redirect www.HOST to HOST")
	fl.StringVar(&authUser, "basic-auth-user", "", "ask every request for this user's password (prompted, or --basic-auth-password-stdin)")
	fl.BoolVar(&passwordStdin, "basic-auth-password-stdin", false, "read the basic auth password from stdin")
	fl.StringArrayVar(&headers, "header", nil, `set a response header, "Name: value" (repeatable)`)
	cmd.Example = "  berth domain add shop/web shop.example.com\n" +
		"  berth domain add shop/api example.com --path /api --strip-prefix --https=false\n" +
		"  berth domain add shop/web www.example.com --redirect-from-apex --compress --header 'Strict-Transport-Security: max-age=63072000'\n" +
		"  berth domain add shop/web old.example.com --redirect-to https://www.example.com --redirect-code 301\n" +
		"  echo \"$PREVIEW_PASSWORD\" | berth domain add shop/web preview.example.com --basic-auth-user preview --basic-auth-password-stdin"
	return cmd
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
					cert = "failed: " + printable(c.LastError)
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
			if r := d.Redirect; r != nil {
				target = fmt.Sprintf("%d %s", r.Code, r.To)
				if r.KeepPath != nil && *r.KeepPath {
					target += "/…"
				}
			}
			return []string{d.Host, path, target, yesNo(d.HTTPS), domainOptions(d), cert, issuer, expires}
		},
	}.command()
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
	var (
		flags  clientFlags
		output outputFlag
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the edge proxy: replicas, routing table version, certificates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := output.check(); err != nil {
				return err
			}
			t, err := flags.resolve(true)
			if err != nil {
				return err
			}
			st, err := t.client().ProxyStatus(cmd.Context())
			if err != nil {
				return t.authErr(err)
			}
			if output.json() {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			return printProxyStatus(cmd, st)
		},
	}
	flags.bind(cmd)
	output.bind(cmd)
	return cmd
}

func printProxyStatus(cmd *cobra.Command, st edge.ProxyStatus) error {
	out := cmd.OutOrStdout()
	if !st.Enabled {
		fmt.Fprintln(out, "The edge proxy is disabled on this server (berth server --proxy=false).")
	} else {
		fmt.Fprintf(out, "Service:        %s (%s)\nPorts:          HTTP %d, HTTPS %d\n", st.Service, orDash(st.Image), st.HTTPPort, st.HTTPSPort)
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
