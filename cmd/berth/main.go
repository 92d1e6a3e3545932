// Command berth is Berth's single binary: the control plane (berth server),
// diagnostics (berth doctor, berth version) and the CLI client.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/cli"
	"github.com/berthpaas/berth/internal/config"
	"github.com/berthpaas/berth/internal/doctor"
	"github.com/berthpaas/berth/internal/gitsrc"
	"github.com/berthpaas/berth/internal/logging"
	"github.com/berthpaas/berth/internal/orchestrator/swarm"
	"github.com/berthpaas/berth/internal/probe"
	"github.com/berthpaas/berth/internal/server"
	"github.com/berthpaas/berth/internal/version"
)

func main() {
	if gitsrc.IsSSHInvocation() { // git runs this binary as its ssh program
		os.Exit(gitsrc.SSHMain(os.Args[1:]))
	}
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Berth turns a server with Docker into your own platform-as-a-service",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serverCmd(), versionCmd(), doctorCmd(), probeCmd(), proxyCmd(), backupCmd(), restoreCmd())
	cli.AddCommands(root)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		var exit exitError
		if !errors.As(err, &exit) {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(1)
	}
}

// exitError ends the process with status 1 after the command has already said why.
type exitError struct{}

func (exitError) Error() string { return "exit 1" }

// serverFlags binds the configuration table to a command's flags.
func serverFlags(cmd *cobra.Command) (*config.Config, func() error) {
	var cfg config.Config
	opts := cfg.Options(cmd.Flags())
	return &cfg, func() error { return config.Load(cmd.Flags(), opts, os.Getenv) }
}

func serverCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: web UI, API and background workers",
		Long: "Run the control plane. Every flag can also be set with a BERTH_* environment variable\n" +
			"(--data-dir is BERTH_DATA_DIR) or a key in the YAML file named by --config (data_dir).",
		Args: cobra.NoArgs,
	}
	cfg, load := serverFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := load(); err != nil {
			return err
		}
		log, err := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)
		if err != nil {
			return err
		}
		return server.Run(cmd.Context(), *cfg, log)
	}
	return cmd
}

func versionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and Docker API version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version.Get()
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "berth %s\ncommit      %s\ngo          %s\ndocker api  %s (negotiates down to %s)\n",
				v.Version, v.Commit, v.GoVersion, v.DockerAPI, v.MinDockerAPI)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// probeCmd is the health probe release containers run (bind-mounted berth
// binary): `berth probe http URL --expect 200` or `berth probe tcp HOST:PORT`.
func probeCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "probe",
		Short:              "Health probe run inside release containers",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := probe.Main(args); code != 0 {
				os.Exit(code)
			}
			return nil
		},
	}
}

func doctorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that this machine can run Berth, and say how to fix what is wrong",
		Long:  "Check the Docker Engine, Swarm, IPVS, the ports Berth needs, the data directory and the health\nprobe (this binary, which must be statically linked). Accepts the same configuration as berth server. Exits non-zero when a check fails.",
		Args:  cobra.NoArgs,
	}
	cfg, load := serverFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := load(); err != nil {
			return err
		}
		engine, err := swarm.New(cfg.DockerHost)
		if err != nil {
			return err
		}
		defer engine.Close()
		ctx, cancel := context.WithTimeout(cmd.Context(), 20*time.Second)
		defer cancel()
		exe, _ := os.Executable() // empty: the probe goes unchecked
		checks := doctor.Run(ctx, doctor.Options{
			Engine: engine, Listen: cfg.Listen, HTTPPort: cfg.ProxyHTTPPort, HTTPSPort: cfg.ProxyHTTPSPort, DataDir: cfg.DataDir, Probe: exe,
		})
		if !doctor.Print(cmd.OutOrStdout(), checks) {
			return exitError{}
		}
		return nil
	}
	return cmd
}
