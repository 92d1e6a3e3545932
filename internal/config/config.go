// Package config owns Berth's server configuration: one table of options that is
// read from flags, BERTH_* environment variables and an optional YAML file, in
// that order of precedence, and rendered as the documentation table.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Config is the control plane's configuration.
type Config struct {
	ConfigFile      string
	Listen          string
	DataDir         string
	DatabaseURL     string
	PublicURL       string
	DockerHost      string
	SwarmBootstrap  bool
	AdvertiseAddr   string
	EdgeSubnet      string
	LogFormat       string
	LogLevel        string
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	ShutdownTimeout time.Duration
	ProxyHTTPPort   int
	ProxyHTTPSPort  int
	Proxy           bool
	ProxyAccessLog  bool
	ProxyName       string
	ProxyBaseImage  string
	InternalListen  string
	BaseDomain      string
	DrainTimeout    time.Duration
	ACMEDirectory   string
	ACMEEmail       string
	ACMECAFile      string
	ACMEEABKeyID    string
	ACMEEABHMACKey  string
	ACMEDNSProvider string
	// ACMEDNSSettings holds the DNS provider's credentials: never log it.
	ACMEDNSSettings string
	BuildTimeout    time.Duration
	BuildKeepImages int
	BuildCacheMax   int
	GitCAFile       string
	BuildRegistry   string
	GitPrivateHosts bool
	// SMTPURL may hold a password: never log it.
	SMTPURL   string
	SMTPFrom  string
	ProbePath string
}

// Option is one configuration setting: a flag --Name, an environment variable
// BERTH_NAME and a key name in the config file.
type Option struct {
	Name    string
	Usage   string
	Default string
	value   pflag.Value
}

// Env is the environment variable that sets the option.
func (o Option) Env() string {
	return "BERTH_" + strings.ToUpper(strings.ReplaceAll(o.Name, "-", "_"))
}

// FileKey is the option's key in the YAML config file.
func (o Option) FileKey() string { return strings.ReplaceAll(o.Name, "-", "_") }

// Options registers every option on fs, bound to c, and returns the table.
// c holds the defaults afterwards.
func (c *Config) Options(fs *pflag.FlagSet) []Option {
	var opts []Option
	add := func(name, usage string, bind func()) {
		bind()
		f := fs.Lookup(name)
		opts = append(opts, Option{Name: name, Usage: usage, Default: f.DefValue, value: f.Value})
	}
	add("config", "path of a YAML config file (unknown keys are rejected)", func() {
		fs.StringVar(&c.ConfigFile, "config", "", "path of a YAML config file (unknown keys are rejected)")
	})
	str := func(p *string, name, def, usage string) {
		add(name, usage, func() { fs.StringVar(p, name, def, usage) })
	}
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		add(name, usage, func() { fs.DurationVar(p, name, def, usage) })
	}
	boolean := func(p *bool, name string, def bool, usage string) {
		add(name, usage, func() { fs.BoolVar(p, name, def, usage) })
	}
	num := func(p *int, name string, def int, usage string) {
		add(name, usage, func() { fs.IntVar(p, name, def, usage) })
	}
	str(&c.Listen, "listen", ":3000", "address the web UI and API listen on")
	str(&c.DataDir, "data-dir", "./data", "directory for the SQLite database and local state")
	str(&c.DatabaseURL, "database-url", "", "postgres://… to use PostgreSQL; empty uses SQLite in the data dir")
	str(&c.PublicURL, "public-url", "", "URL users reach Berth at (https://… marks cookies Secure; its host may run first-run setup)")
	str(&c.DockerHost, "docker-host", "", "Docker Engine endpoint; empty uses DOCKER_HOST or the local socket")
	boolean(&c.SwarmBootstrap, "swarm-bootstrap", true, "initialise a single-node Swarm at start when Swarm is inactive")
	str(&c.AdvertiseAddr, "advertise-addr", "", "Swarm advertise address for the bootstrap; empty uses the address of the default route")
	str(&c.EdgeSubnet, "edge-subnet", "10.240.0.0/16", "subnet of the berth-edge overlay network")
	str(&c.LogFormat, "log-format", "auto", "log format: auto (text on a terminal, JSON otherwise), text or json")
	str(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	dur(&c.SessionIdle, "session-idle-timeout", 24*time.Hour, "a browser session ends after this long without use")
	dur(&c.SessionLifetime, "session-lifetime", 7*24*time.Hour, "a browser session ends this long after login, used or not")
	dur(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may take to finish at shutdown")
	num(&c.ProxyHTTPPort, "proxy-http-port", 80, "host port of the edge proxy for HTTP")
	num(&c.ProxyHTTPSPort, "proxy-https-port", 443, "host port of the edge proxy for HTTPS")
	boolean(&c.Proxy, "proxy", true, "run the edge proxy (berth proxy) as a global Swarm service")
	boolean(&c.ProxyAccessLog, "proxy-access-log", true, "the edge proxies write every request as a JSON line to their container output (off: requests are still counted for metrics)")
	str(&c.ProxyName, "proxy-name", "berth-proxy", "Swarm service name of the edge proxy")
	str(&c.ProxyBaseImage, "proxy-base-image", "haproxy:lts", "HAProxy image the edge proxy image is built from")
	str(&c.InternalListen, "internal-listen", "", "address of the proxies' internal listener; empty uses port 7381 on the docker_gwbridge gateway (never a public address)")
	str(&c.BaseDomain, "base-domain", "", "wildcard base domain: every web-facing app answers on <app>-<project>.<base-domain>")
	dur(&c.DrainTimeout, "drain-timeout", 30*time.Second, "how long a replaced release may finish in-flight requests before it is removed")
	str(&c.ACMEDirectory, "acme-directory", "https://acme-v02.api.letsencrypt.org/directory", "ACME directory URL certificates are requested from")
	str(&c.ACMEEmail, "acme-email", "", "contact email of the ACME account (expiry notices)")
	str(&c.ACMECAFile, "acme-ca-file", "", "PEM file of extra CA certificates to trust for the ACME directory (a private or test CA)")
	str(&c.ACMEEABKeyID, "acme-eab-kid", "", "external account binding key id, for CAs that require one")
	str(&c.ACMEEABHMACKey, "acme-eab-hmac", "", "external account binding HMAC key (base64url)")
	str(&c.ACMEDNSProvider, "acme-dns-provider", "", "DNS provider for DNS-01 validation, which wildcard domains need: rfc2136 or cloudflare; empty turns wildcards off")
	str(&c.ACMEDNSSettings, "acme-dns-settings", "", "the DNS provider's settings as key=value pairs separated by commas, e.g. nameserver=ns1.example.com:53,tsig_key=berth.,tsig_secret=… (secret; never logged)")
	dur(&c.BuildTimeout, "build-timeout", 30*time.Minute, "a build running longer is stopped and fails")
	num(&c.BuildKeepImages, "build-keep-images", 5, "built images kept per app (older ones are removed unless a release uses them)")
	num(&c.BuildCacheMax, "build-cache-max-mb", 10240, "the Docker build cache is pruned when it grows above this many MB")
	str(&c.GitCAFile, "git-ca-file", "", "PEM file of extra CA certificates to trust for git over HTTPS (a private git server)")
	str(&c.BuildRegistry, "build-registry", "", "registry and path built images are pushed to, e.g. registry.example.com/berth (needed with more than one node; its credential is the organization's registry of that host); empty keeps images on the building node")
	str(&c.ProbePath, "probe-path", "", "host path release containers mount their health probe (this binary) from; berth server copies itself there at start. Empty: this executable's own path, right when berth runs on the host (in a container, use a path in a directory mounted at the same path on the host)")
	str(&c.SMTPURL, "smtp-url", "", "SMTP server for invitation emails: smtp://[user:password@]host[:port] (STARTTLS when offered) or smtps://… (secret; never logged); empty: invitation links are shown to copy")
	str(&c.SMTPFrom, "smtp-from", "", "sender of Berth's emails, e.g. Berth <berth@example.com> (needed with --smtp-url)")
	add("git-private-hosts", "allow git repositories on loopback, private and link-local addresses", func() {
		fs.BoolVar(&c.GitPrivateHosts, "git-private-hosts", true, "allow git repositories on loopback, private and link-local addresses (turn off when users you do not trust create apps: it stops them reaching internal services through git)")
	})
	return opts
}

// Load fills the options that no flag set from the environment and then from
// the config file. getenv is os.Getenv outside tests.
func Load(fs *pflag.FlagSet, opts []Option, getenv func(string) string) error {
	byKey := map[string]Option{}
	for _, o := range opts {
		byKey[o.FileKey()] = o
	}
	path := ""
	if f := fs.Lookup("config"); f != nil && f.Changed {
		path = f.Value.String()
	} else if v := getenv("BERTH_CONFIG"); v != "" {
		path = v
	}
	file, err := readFile(path, byKey)
	if err != nil {
		return err
	}
	for _, o := range opts {
		if f := fs.Lookup(o.Name); f != nil && f.Changed {
			continue
		}
		if v := getenv(o.Env()); v != "" {
			if err := o.value.Set(v); err != nil {
				return fmt.Errorf("environment variable %s: %w", o.Env(), err)
			}
			continue
		}
		if v, ok := file[o.FileKey()]; ok {
			if err := o.value.Set(v); err != nil {
				return fmt.Errorf("config file %s: key %s: %w", path, o.FileKey(), err)
			}
		}
	}
	return nil
}

func readFile(path string, known map[string]Option) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var doc map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	out := map[string]string{}
	var unknown []string
	for k, n := range doc {
		if _, ok := known[k]; !ok || k == "config" {
			unknown = append(unknown, k)
			continue
		}
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("config file %s: key %s: expected a single value", path, k)
		}
		out[k] = n.Value
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("config file %s: unknown keys: %s", path, strings.Join(unknown, ", "))
	}
	return out, nil
}
