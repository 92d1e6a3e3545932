package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/cli"
	"github.com/berthpaas/berth/internal/logging"
	"github.com/berthpaas/berth/internal/proxy/controller"
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
	str(&cfg.StateDir, "state-dir", "BERTH_PROXY_STATE_DIR", "/var/lib/berth-proxy", "state directory: HAProxy files, certificates, last good table")
	num(&cfg.HTTPPort, "http-port", "BERTH_PROXY_HTTP_PORT", 8080, "HTTP listener port")
	num(&cfg.HTTPSPort, "https-port", "BERTH_PROXY_HTTPS_PORT", 8443, "HTTPS listener port, 0 for none")
	num(&cfg.StatsPort, "stats-port", "BERTH_PROXY_STATS_PORT", 8404, "Prometheus metrics port (/metrics)")
	str(&cfg.ID, "id", "BERTH_PROXY_ID", hostname, "replica id in status reports")
	str(&cfg.Node, "node", "BERTH_PROXY_NODE", "", "Swarm node the replica runs on")
	str(&logLevel, "log-level", "BERTH_PROXY_LOG_LEVEL", "info", "debug, info, warn or error")

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
		cfg.Log = log
		return controller.Run(cmd.Context(), cfg)
	}
	cmd.AddCommand(cli.ProxyStatusCmd())
	return cmd
}
