package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Config is what `berth login` remembers between commands.
type Config struct {
	Server string `json:"server"`
	Token  string `json:"token"`
	Email  string `json:"email"`
}

// configPath is $BERTH_CLI_CONFIG, else $XDG_CONFIG_HOME/berth/cli.json, else
// ~/.config/berth/cli.json.
func configPath(getenv func(string) string) (string, error) {
	if p := getenv("BERTH_CLI_CONFIG"); p != "" {
		return p, nil
	}
	if dir := getenv("XDG_CONFIG_HOME"); dir != "" {
		return filepath.Join(dir, "berth", "cli.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the CLI config file: set BERTH_CLI_CONFIG or HOME: %w", err)
	}
	return filepath.Join(home, ".config", "berth", "cli.json"), nil
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	} else if err != nil {
		return c, fmt.Errorf("read CLI config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("CLI config %s is not valid (%v): fix it, or delete it and run berth login", path, err)
	}
	return c, nil
}

// saveConfig writes the config atomically: a temporary file in the same
// directory (mode 0600, in a 0700 directory), synced, then renamed over the
// old one, so a crash never leaves a half-written file holding a token.
func saveConfig(path string, c Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create CLI config directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".cli-*.json.tmp")
	if err != nil {
		return fmt.Errorf("write CLI config: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write CLI config: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write CLI config: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write CLI config: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write CLI config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write CLI config: %w", err)
	}
	// Make the rename itself durable.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
