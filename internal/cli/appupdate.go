package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berthpaas/berth/internal/api"
)

// UpdateSpec replaces an app's spec; it does not deploy it.
func (c *Client) UpdateSpec(ctx context.Context, ref appRef, spec api.AppSpec) (api.App, error) {
	var out api.App
	return out, c.do(ctx, http.MethodPut, appPath(ref, "/spec"), spec, &out)
}

// clearable are the parts of a spec --clear removes, by the flag that sets them.
var clearable = []string{"arg", "bind", "command", "file", "health", "publish", "secret-file", "volume"}

// specFlagNames are berth app update's flags that change the spec.
var specFlagNames = []string{"image", "port", "replicas", "cpu", "memory", "publish", "volume", "file", "secret-file",
	"bind", "health-path", "health-cmd", "command", "arg", "clear"}

func appUpdateCmd() *cobra.Command {
	var (
		sf        specFlags
		clear     []string
		deployNow bool
		wait      bool
	)
	var given func(string) bool
	cmd, _ := appCommand("update REF [flags]", "Change an app's spec; it applies on the next deployment", 1, func(cmd *cobra.Command, t *target, ref appRef, _ []string) error {
		for _, c := range clear {
			if !slices.Contains(clearable, c) {
				return fmt.Errorf("--clear %q: use one of %s", c, strings.Join(clearable, ", "))
			}
			if c == "health" && (given("health-path") || given("health-cmd")) {
				return errors.New("--clear health and --health-path or --health-cmd: give one")
			}
			if given(c) {
				return fmt.Errorf("--clear %s and --%s: give one", c, c)
			}
		}
		if !slices.ContainsFunc(specFlagNames, given) {
			return errors.New("nothing to change: give the flags to change, e.g. --image nginx:1.28 (see berth app update --help)")
		}
		if wait && !deployNow {
			return errors.New("--wait follows a deployment: add --deploy")
		}
		st, err := t.client().AppStatus(cmd.Context(), ref)
		if err != nil {
			return err
		}
		old := st.App.Spec
		spec := cloneSpec(old)
		if err := sf.apply(&spec, given); err != nil {
			return err
		}
		for _, c := range clear {
			clearPart(&spec, c)
		}
		out := cmd.OutOrStdout()
		changes := specChanges(old, spec)
		if len(changes) == 0 {
			fmt.Fprintf(out, "The spec of %s already is so: nothing changed\n", ref)
		} else {
			if _, err := t.client().UpdateSpec(cmd.Context(), ref, spec); err != nil {
				return err
			}
			fmt.Fprintf(out, "Updated %s:\n", ref)
			for _, c := range changes {
				fmt.Fprintf(out, "  %s\n", c)
			}
		}
		if !deployNow {
			if len(changes) > 0 {
				fmt.Fprintf(out, "Deploy it: berth app deploy %s\n", ref)
			}
			return nil
		}
		d, err := t.client().Deploy(cmd.Context(), ref, api.DeployRequest{})
		if err != nil {
			return err
		}
		return queued(cmd, t, ref, d, wait)
	})
	cmd.Long += "\n\nOnly the flags given change the spec; a repeatable flag replaces its whole list " +
		"(--file the plain files, --secret-file the secret ones). --clear removes a part. " +
		"Variables are changed with berth env."
	cmd.Example = "  berth app update shop/web --image nginx:1.28 --memory 512m\n" +
		"  berth app update shop/web --volume data:/data --volume cache:/cache:ro --deploy --wait\n" +
		"  berth app update shop/web --clear health --clear arg"
	given = cmd.Flags().Changed
	sf.bind(cmd, "image to run, e.g. nginx:1.28")
	cmd.Flags().StringArrayVar(&clear, "clear", nil, "remove a part of the spec: "+strings.Join(clearable, ", ")+" (repeatable)")
	cmd.Flags().BoolVar(&deployNow, "deploy", false, "deploy the app once updated")
	cmd.Flags().BoolVar(&wait, "wait", false, "with --deploy, follow the deployment; exit 1 unless it goes live")
	return cmd
}

func clearPart(s *api.AppSpec, part string) {
	switch part {
	case "arg":
		s.Args = nil
	case "bind":
		s.Binds = nil
	case "command":
		s.Command = nil
	case "health":
		s.Health = nil
	case "publish":
		s.Ports = nil
	case "volume":
		s.Volumes = nil
	case "file", "secret-file":
		secret := part == "secret-file"
		s.Files = slices.DeleteFunc(s.Files, func(f api.FileMount) bool { return f.Secret == secret })
	}
}

// cloneSpec copies the parts of a spec that apply and clearPart replace or
// change, so that the fetched spec stays as it was for specChanges.
func cloneSpec(s api.AppSpec) api.AppSpec {
	c := s
	c.Files = slices.Clone(s.Files)
	return c
}

// specChanges words what differs between two specs, one line a part.
func specChanges(old, cur api.AppSpec) []string {
	replicas := func(s api.AppSpec) string {
		if s.Replicas == nil {
			return "1"
		}
		return strconv.Itoa(*s.Replicas)
	}
	port := func(s api.AppSpec) string {
		if s.Port == 0 {
			return "none"
		}
		return strconv.Itoa(s.Port)
	}
	cpu := func(s api.AppSpec) string {
		if s.Resources.CPULimit == 0 {
			return "no limit"
		}
		return strconv.FormatFloat(s.Resources.CPULimit, 'f', -1, 64)
	}
	memory := func(s api.AppSpec) string {
		if s.Resources.MemoryLimit == 0 {
			return "no limit"
		}
		return formatSize(s.Resources.MemoryLimit)
	}
	health := func(s api.AppSpec) string {
		switch {
		case s.Health == nil:
			return "image default"
		case s.Health.Path != "":
			return s.Health.Type + " " + s.Health.Path
		case len(s.Health.Command) > 0:
			return s.Health.Type + " " + quoteWords(s.Health.Command)
		}
		return s.Health.Type
	}
	list := func(n int, item func(i int) string) string {
		if n == 0 {
			return "none"
		}
		items := make([]string, n)
		for i := range items {
			items[i] = item(i)
		}
		return strings.Join(items, ", ")
	}
	words := func(argv []string) string {
		if len(argv) == 0 {
			return "image default"
		}
		return quoteWords(argv)
	}
	parts := []struct {
		name string
		show func(api.AppSpec) string
		same func() bool
	}{
		{"image", func(s api.AppSpec) string { return s.Image }, nil},
		{"command", func(s api.AppSpec) string { return words(s.Command) }, nil},
		{"args", func(s api.AppSpec) string { return words(s.Args) }, nil},
		{"port", port, nil},
		{"replicas", replicas, nil},
		{"cpu", cpu, nil},
		{"memory", memory, nil},
		{"health", health, nil},
		{"published ports", func(s api.AppSpec) string {
			return list(len(s.Ports), func(i int) string {
				p := s.Ports[i]
				out := fmt.Sprintf("%d:%d", p.Published, p.Target)
				if p.Protocol != "" && p.Protocol != "tcp" {
					out += "/" + p.Protocol
				}
				return out
			})
		}, nil},
		{"volumes", func(s api.AppSpec) string {
			return list(len(s.Volumes), func(i int) string {
				v := s.Volumes[i]
				out := v.Name + ":" + v.Target
				if v.ReadOnly {
					out += ":ro"
				}
				if v.SingleWriter {
					out += ":single-writer"
				}
				return out
			})
		}, nil},
		// Contents are compared, not shown: a changed file reads "(changed)".
		{"files", func(s api.AppSpec) string {
			return list(len(s.Files), func(i int) string {
				f := s.Files[i]
				if f.Secret {
					return f.Target + " (secret)"
				}
				return f.Target
			})
		}, func() bool { return reflect.DeepEqual(old.Files, cur.Files) }},
		{"binds", func(s api.AppSpec) string {
			return list(len(s.Binds), func(i int) string {
				b := s.Binds[i]
				out := b.Source + ":" + b.Target
				if b.ReadOnly {
					out += ":ro"
				}
				return out
			})
		}, nil},
	}
	var out []string
	for _, p := range parts {
		before, after := p.show(old), p.show(cur)
		switch {
		case before != after:
			out = append(out, fmt.Sprintf("%s: %s → %s", p.name, before, after))
		case p.same != nil && !p.same():
			out = append(out, fmt.Sprintf("%s: %s (changed)", p.name, after))
		}
	}
	return out
}

// quoteWords writes argv so that splitWords reads it back.
func quoteWords(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// formatSize writes bytes in the largest binary unit that divides them.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"t", 40}, {"g", 30}, {"m", 20}, {"k", 10}} {
		if n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
