package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/berthpaas/berth/internal/config"
)

func TestServerOptionsCoverConfig(t *testing.T) {
	var cfg config.Config
	opts := cfg.Options(pflag.NewFlagSet("x", pflag.ContinueOnError))
	page := string(RenderOptions())
	for _, o := range opts {
		if !strings.Contains(page, "| `--"+o.Name+"` | `"+o.Env()+"` |") {
			t.Errorf("server-options.md lacks --%s", o.Name)
		}
	}
}
