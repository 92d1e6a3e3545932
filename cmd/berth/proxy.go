package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/cli"
	"github.com/berthpaas/berth/internal/logging"
	"github.com/berthpaas/berth/internal/proxy/controller"
	"github.com/berthpaas/berth/internal/proxy/listeners"
)

// proxyCmd runs the edge controller inside the proxy container.
func proxyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the edge proxy: HAProxy driven by the routing table of the control plane",
		Long: "Run the edge proxy controller, which supervises HAProxy, pulls the routing table from the\n" +
			"control plane's internal listener and keeps the last good one in --state-dir, so it keeps\n" +
			"serving while the control plane is away. Every flag can also be set with the environment\n" +
			"variable shown in its description. Runs until SIGINT or SIGTERM.",
		Args: cobra.NoArgs,
	}
	var cfg controller.Config
	var logLevel string
	accessLog := true
	hostname, _ := os.Hostname()
	f := cmd.Flags()
	env := map[string]string{} // flag → environment variable
	str := func(p *string, name, envName, def, usage string) {
		f.StringVar(p, name, def, usage+" ("+envName+")")
		env[name] = envName
	}
	num := func(p *int, name, envName string, def int, usage string) {
		f.IntVar(p, name, def, usage+" ("+envName+")")
		env[name] = envName
	}
	str(&cfg.ControlURL, "control-url", "BERTH_PROXY_CONTROL_URL", "", "control plane internal URL, required")
	str(&cfg.TokenFile, "token-file", "BERTH_PROXY_TOKEN_FILE", "/run/secrets/berth-proxy-token", "file holding the proxy token")
	str(&cfg.StateDir, "state-dir", "BERTH_PROXY_STATE_DIR", "/var/lib/berth-proxy", "state directory: the last good table and the default certificate")
	str(&cfg.RunDir, "run-dir", "BERTH_PROXY_RUN_DIR", "", "this process's HAProxy configuration, maps, certificates and sockets (default: run/ in the state directory)")
	str(&cfg.Listeners, "listeners", "BERTH_PROXY_LISTENERS", "", "Unix socket of the listener holder (berth proxy listen) whose sockets HAProxy accepts on, instead of binding the ports")
	num(&cfg.HTTPPort, "http-port", "BERTH_PROXY_HTTP_PORT", 8080, "HTTP listener port")
	num(&cfg.HTTPSPort, "https-port", "BERTH_PROXY_HTTPS_PORT", 8443, "HTTPS listener port, 0 for none")
	num(&cfg.StatsPort, "stats-port", "BERTH_PROXY_STATS_PORT", 8404, "Prometheus metrics port (/metrics)")
	num(&cfg.Threads, "threads", "BERTH_PROXY_THREADS", 0, "HAProxy threads (0: half the node's cores, at least one)")
	str(&cfg.ID, "id", "BERTH_PROXY_ID", hostname, "replica id in status reports")
	str(&cfg.Node, "node", "BERTH_PROXY_NODE", "", "Swarm node the replica runs on")
	str(&logLevel, "log-level", "BERTH_PROXY_LOG_LEVEL", "info", "debug, info, warn or error")
	f.BoolVar(&accessLog, "access-log", true, "write every request as a JSON line to standard error; off, requests are still counted for the metrics (BERTH_PROXY_ACCESS_LOG)")
	env["access-log"] = "BERTH_PROXY_ACCESS_LOG"

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		for name, envName := range env {
			if v, ok := os.LookupEnv(envName); ok && !f.Changed(name) {
				if err := f.Set(name, v); err != nil {
					return fmt.Errorf("%s: %w", envName, err)
				}
			}
		}
		if cfg.ControlURL == "" {
			return fmt.Errorf("--control-url (BERTH_PROXY_CONTROL_URL) is required")
		}
		log, err := logging.New(os.Stderr, "json", logLevel)
		if err != nil {
			return err
		}
		cfg.Log, cfg.NoAccessLog = log, !accessLog
		return controller.Run(cmd.Context(), cfg)
	}
	cmd.AddCommand(cli.ProxyStatusCmd(), proxyListenCmd())
	return cmd
}

// proxyListenCmd holds the host ports' listening sockets for the proxies of
// its node (internal/proxy/listeners).
func proxyListenCmd() *cobra.Command {
	var socket, owner, httpAddr, httpsAddr string
	cmd := &cobra.Command{
		Use:   "listen",
		Short: "Hold the edge's listening sockets and hand them to the proxies of this node",
		Long: "Bind the HTTP and HTTPS ports once and hand the sockets to every proxy that asks on --socket,\n" +
			"so a proxy is replaced without refusing a connection. A new holder takes the sockets from\n" +
			"the one already serving --socket. Runs until SIGINT or SIGTERM; the proxies keep the sockets.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.New(os.Stderr, "json", "info")
			if err != nil {
				return err
			}
			addrs := map[string]string{"http": httpAddr}
			if httpsAddr != "" {
				addrs["https"] = httpsAddr
			}
			uid, gid := -1, -1
			if owner != "" {
				u, err := user.Lookup(owner)
				if err != nil {
					return fmt.Errorf("--owner: %w", err)
				}
				uid, _ = strconv.Atoi(u.Uid)
				gid, _ = strconv.Atoi(u.Gid)
			}
			return listeners.Hold(cmd.Context(), socket, addrs, func() {
				if err := os.Chown(socket, uid, gid); err != nil {
					log.Error("handing the socket to its owner", "socket", socket, "owner", owner, "err", err)
					return
				}
				log.Info("holding the listeners", "socket", socket, "http", httpAddr, "https", httpsAddr)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", "/run/berth-proxy/listeners.sock", "Unix socket the proxies ask for the listeners")
	f.StringVar(&owner, "owner", "", "user the Unix socket belongs to (the proxy's); empty keeps the holder's")
	f.StringVar(&httpAddr, "http", ":80", "HTTP address")
	f.StringVar(&httpsAddr, "https", ":443", "HTTPS address, empty for none")
	return cmd
}
