package main

import (
	"bytes"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/berthpaas/berth/internal/config"
)

// RenderOptions renders the server's configuration table (the options of
// berth server and berth doctor) from internal/config, with each option's
// flag, environment variable, file key and default.
func RenderOptions() []byte {
	var cfg config.Config
	opts := cfg.Options(pflag.NewFlagSet("server", pflag.ContinueOnError))
	var b bytes.Buffer
	b.WriteString(generatedBy("internal/config"))
	b.WriteString("# Server options\n\n")
	b.WriteString("Every option of `berth server` (and `berth doctor`, which takes the same ones) can be " +
		"given as a flag, as a `BERTH_*` environment variable, or as a key in the YAML file named by " +
		"`--config`. Flags beat the environment, which beats the file; unknown keys in the file are an error. " +
		"See [Configuration](../configuration.md) for how to use them.\n\n")
	b.WriteString("| Flag | Environment | File key | Default | Meaning |\n|---|---|---|---|---|\n")
	for _, o := range opts {
		key, def := "`"+o.FileKey()+"`", "—"
		if o.Name == "config" {
			key = "—" // the file cannot name itself
		}
		if o.Default != "" {
			def = "`" + o.Default + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s | %s |\n", o.Name, o.Env(), key, def, mdCell(o.Usage))
	}
	b.WriteString("\nDurations are written like `90s`, `15m` or `24h`; booleans as `true` or `false`.\n")
	return b.Bytes()
}
