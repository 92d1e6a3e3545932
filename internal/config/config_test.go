package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	var c Config
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	opts := c.Options(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return &c, Load(fs, opts, func(k string) string { return env[k] })
}

func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "berth.yaml")
	os.WriteFile(file, []byte("listen: \":4000\"\ndata_dir: /from/file\nlog_level: debug\nsession_idle_timeout: 2h\n"), 0o600)

	c, err := load(t, []string{"--config", file, "--listen", ":5000"}, map[string]string{"BERTH_DATA_DIR": "/from/env"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":5000" {
		t.Errorf("flag should win: listen = %q", c.Listen)
	}
	if c.DataDir != "/from/env" {
		t.Errorf("env should beat file: data dir = %q", c.DataDir)
	}
	if c.LogLevel != "debug" || c.SessionIdle != 2*time.Hour {
		t.Errorf("file values not applied: level %q idle %s", c.LogLevel, c.SessionIdle)
	}
	if c.SessionLifetime != 7*24*time.Hour || !c.SwarmBootstrap {
		t.Errorf("defaults lost: lifetime %s bootstrap %v", c.SessionLifetime, c.SwarmBootstrap)
	}
}

func TestConfigFileFromEnv(t *testing.T) {
	file := filepath.Join(t.TempDir(), "berth.yaml")
	os.WriteFile(file, []byte("swarm_bootstrap: false\n"), 0o600)
	c, err := load(t, nil, map[string]string{"BERTH_CONFIG": file})
	if err != nil {
		t.Fatal(err)
	}
	if c.SwarmBootstrap {
		t.Error("swarm_bootstrap from the file named by BERTH_CONFIG was ignored")
	}
}

func TestRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown key", []string{"--config", write("a.yaml", "listen: x\nlisten_adress: y\n")}, nil, "unknown keys: listen_adress"},
		{"nested value", []string{"--config", write("b.yaml", "listen:\n  a: b\n")}, nil, "key listen"},
		{"bad duration in file", []string{"--config", write("c.yaml", "session_lifetime: forever\n")}, nil, "session_lifetime"},
		{"bad env", nil, map[string]string{"BERTH_PROXY_HTTP_PORT": "eighty"}, "BERTH_PROXY_HTTP_PORT"},
		{"missing file", []string{"--config", filepath.Join(dir, "none.yaml")}, nil, "config file"},
		{"not yaml", []string{"--config", write("d.yaml", "listen: [\n")}, nil, "config file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.args, tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestEmptyFileIsFine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "berth.yaml")
	os.WriteFile(file, nil, 0o600)
	if _, err := load(t, []string{"--config", file}, nil); err != nil {
		t.Fatal(err)
	}
}

// The README's configuration table is the documentation of record: every
// option must appear there with its flag and environment variable.
func TestREADMEDocumentsEveryOption(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	for _, o := range c.Options(pflag.NewFlagSet("x", pflag.ContinueOnError)) {
		row := "| `--" + o.Name + "` | `" + o.Env() + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md configuration table lacks a row starting %s", row)
		}
	}
}
