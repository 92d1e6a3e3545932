package web

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/deploy"
)

// The new-app form. Its inputs are flat (a memory text box, one textarea per
// list); parseAppForm turns them into a Spec and formError maps the
// validator's JSON-path field names ("ports[1].published",
// "resources.memory_limit") back onto the input that holds the value.

type appForm struct {
	CSRF      string
	Action    string
	FormError string
	Name      Field
	Env       Field // environment select
	Image     Field
	Port      Field
	Replicas  Field
	CPU       Field
	Memory    Field
	Vars      Field // .env textarea
	Health    Field // image default | http | command | none
	HealthArg Field // the path or the command
	Volumes   Field
	Ports     Field
}

// Health choices of the form; "" keeps the image's own HEALTHCHECK.
var healthChoices = []Option{
	{Value: "", Label: "Image default"},
	{Value: app.HealthHTTP, Label: "HTTP request"},
	{Value: app.HealthCommand, Label: "Command"},
	{Value: app.HealthNone, Label: "None"},
}

func newAppForm(csrf, action string, envs []string, env string) appForm {
	f := appForm{
		CSRF: csrf, Action: action,
		Name:      Field{ID: "app-name", Name: "name", Label: "Name", Type: "text", Required: true, Autofocus: true, MaxLength: app.MaxNameLength, Placeholder: "web", Code: true, Hint: "Lowercase letters, digits and '-'. Other apps of the environment reach it by this name."},
		Env:       Field{ID: "app-environment", Name: "environment", Label: "Environment", Type: "select", Required: true},
		Image:     Field{ID: "app-image", Name: "image", Label: "Image", Type: "text", Required: true, MaxLength: app.MaxImageLength, Placeholder: "nginx:1.27", Code: true, Hint: "Any image the server can pull, with a tag or a digest."},
		Port:      Field{ID: "app-port", Name: "port", Label: "HTTP port", Type: "number", Min: "0", Max: "65535", Placeholder: "8080", Hint: "The container port serving HTTP. Leave empty for workers."},
		Replicas:  Field{ID: "app-replicas", Name: "replicas", Label: "Replicas", Type: "number", Required: true, Value: "1", Min: "0", Max: strconv.Itoa(app.MaxReplicas)},
		CPU:       Field{ID: "app-cpu", Name: "cpu", Label: "CPU limit", Type: "text", Placeholder: "0.5", Hint: "Cores; empty for no limit."},
		Memory:    Field{ID: "app-memory", Name: "memory", Label: "Memory limit", Type: "text", Placeholder: "256m", Code: true, Hint: "Such as 256m or 1.5g; empty for no limit."},
		Vars:      Field{ID: "app-vars", Name: "vars", Label: "Variables", Type: "textarea", Rows: 5, Code: true, Placeholder: "DATABASE_URL=postgres://db/app\nLOG_LEVEL=info", Hint: "One KEY=value per line, as in a .env file. Stored encrypted."},
		Health:    Field{ID: "app-health", Name: "health", Label: "Health check", Type: "select", Hint: "Replicas get traffic once this passes."},
		HealthArg: Field{ID: "app-health-arg", Name: "health_arg", Label: "Path or command", Type: "text", Code: true, Placeholder: "/healthz", Hint: "For HTTP, the path to request; for a command, what to run in the container."},
		Volumes:   Field{ID: "app-volumes", Name: "volumes", Label: "Volumes", Type: "textarea", Rows: 2, Code: true, Placeholder: "data:/var/lib/app", Hint: "One name:/path per line; add :ro for read-only. Volumes outlive deployments."},
		Ports:     Field{ID: "app-ports", Name: "ports", Label: "Published ports", Type: "textarea", Rows: 2, Code: true, Placeholder: "2222:22\n5353:53/udp", Hint: "One published:container[/udp] per line, opened on every node and bypassing the proxy."},
	}
	if env == "" {
		env = deploy.Production
	}
	for _, e := range envs {
		f.Env.Options = append(f.Env.Options, Option{Value: e, Label: e, Selected: e == env})
	}
	f.Health.Options = append([]Option(nil), healthChoices...)
	return f
}

// fields lists the form's inputs, for fieldErrors.apply.
func (f *appForm) fields() []*Field {
	return []*Field{&f.Name, &f.Env, &f.Image, &f.Port, &f.Replicas, &f.CPU, &f.Memory, &f.Vars, &f.Health, &f.HealthArg, &f.Volumes, &f.Ports}
}

// fill puts the submitted values back into the form.
func (f *appForm) fill(get func(string) string) {
	for _, fl := range f.fields() {
		v := get(fl.Name)
		switch fl.Type {
		case "select":
			for i := range fl.Options {
				fl.Options[i].Selected = fl.Options[i].Value == v
			}
		default:
			fl.Value = v
		}
	}
}

// appInput is what the form asks for, parsed.
type appInput struct {
	Name, Environment string
	Spec              app.Spec
	Vars              map[string]string
}

// parseAppForm reads the form into a spec. Problems of its own (an
// unreadable number, a line without ':') go into errs under the input's
// name; the spec is then incomplete and must not be used.
func parseAppForm(get func(string) string, errs fieldErrors) appInput {
	in := appInput{Name: strings.TrimSpace(get("name")), Environment: get("environment"), Spec: app.DefaultSpec()}
	s := &in.Spec
	s.Image = strings.TrimSpace(get("image"))
	if v := strings.TrimSpace(get("port")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs["port"] = "must be a whole number between 1 and 65535"
		}
		s.Port = n
	}
	if v := strings.TrimSpace(get("replicas")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs["replicas"] = fmt.Sprintf("must be a whole number between 0 and %d", app.MaxReplicas)
		}
		s.Replicas = n
	}
	if v := strings.TrimSpace(get("cpu")); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			errs["cpu"] = "must be a number of cores, such as 0.5 or 2"
		}
		s.Resources.CPULimit = n
	}
	if v := get("memory"); strings.TrimSpace(v) != "" {
		n, err := parseMemory(v)
		if err != nil {
			errs["memory"] = err.Error()
		}
		s.Resources.MemoryLimit = n
	}
	switch arg := strings.TrimSpace(get("health_arg")); get("health") {
	case app.HealthHTTP:
		s.Health = &app.HealthCheck{Type: app.HealthHTTP, Path: arg}
	case app.HealthCommand:
		argv, err := splitArgs(arg)
		if err != nil {
			errs["health_arg"] = err.Error()
		}
		s.Health = &app.HealthCheck{Type: app.HealthCommand, Command: argv}
	case app.HealthNone:
		s.Health = &app.HealthCheck{Type: app.HealthNone}
	case "":
	default:
		errs["health"] = "must be one of the listed choices"
	}
	vols, err := parseVolumes(get("volumes"))
	if err != nil {
		errs["volumes"] = err.Error()
	}
	s.Volumes = vols
	ports, err := parsePorts(get("ports"))
	if err != nil {
		errs["ports"] = err.Error()
	}
	s.Ports = ports
	vars, err := parseDotEnv(get("vars"))
	if err != nil {
		errs["vars"] = err.Error()
	}
	in.Vars = vars
	return in
}

var listIndexRe = regexp.MustCompile(`^(ports|volumes)\[(\d+)\]\.?(.*)$`)

// formField maps a validator field name to the form input it came from and
// a message that reads after that input's label.
func formField(fe *app.FieldError) (name, msg string) {
	f, msg := fe.Field, fe.Message
	if m := listIndexRe.FindStringSubmatch(f); m != nil {
		i, _ := strconv.Atoi(m[2])
		part := map[string]string{"published": "published port", "target": "container port", "protocol": "protocol", "name": "volume name"}[m[3]]
		if m[1] == "volumes" && m[3] == "target" {
			part = "mount path"
		}
		if part == "" {
			part = m[3]
		}
		return m[1], fmt.Sprintf("line %d: %s %s", i+1, part, msg)
	}
	switch {
	case f == "resources.memory_limit", f == "resources.memory_reservation":
		return "memory", msg
	case f == "resources.cpu_limit", f == "resources.cpu_reservation":
		return "cpu", msg
	case f == "health.path", strings.HasPrefix(f, "health.command"):
		return "health_arg", msg
	case strings.HasPrefix(f, "health."):
		return "health", strings.TrimPrefix(f, "health.") + " " + msg
	case f == "key", f == "value", strings.HasPrefix(f, "env"), strings.HasPrefix(f, "vars"):
		return "vars", msg
	}
	return f, msg
}

// addAppFieldError records err when it is an *app.FieldError.
func addAppFieldError(errs fieldErrors, err error) bool {
	var fe *app.FieldError
	if !errors.As(err, &fe) {
		return false
	}
	name, msg := formField(fe)
	if _, dup := errs[name]; !dup {
		errs[name] = msg
	}
	return true
}

var memoryRe = regexp.MustCompile(`^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$`)

// parseMemory reads a memory size as people write it: "256m", "1.5G",
// "512MiB", "1gb". A number without a unit is MiB, the unit memory limits
// are usually given in.
func parseMemory(s string) (int64, error) {
	m := memoryRe.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size: write a number and a unit, such as 256m or 1.5g", strings.TrimSpace(s))
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]float64{"": 1 << 20, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m[2]]
	if strings.HasSuffix(strings.ToLower(strings.TrimSpace(s)), "b") && m[2] == "" {
		unit = 1 // "512b" is bytes
	}
	v := n * unit
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", strings.TrimSpace(s))
	}
	return int64(v), nil
}

// lines yields the non-blank, non-comment lines of a textarea with their
// 1-based numbers.
func lines(s string, yield func(n int, line string) error) error {
	for i, l := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if err := yield(i+1, l); err != nil {
			return err
		}
	}
	return nil
}

// parseVolumes reads "name:/path[:ro]" lines.
func parseVolumes(s string) ([]app.Volume, error) {
	var out []app.Volume
	err := lines(s, func(n int, l string) error {
		name, target, ok := strings.Cut(l, ":")
		if !ok {
			return fmt.Errorf("line %d: write name:/path, such as data:/var/lib/app", n)
		}
		v := app.Volume{Name: strings.TrimSpace(name), Target: strings.TrimSpace(target)}
		if t, ok := strings.CutSuffix(v.Target, ":ro"); ok {
			v.Target, v.ReadOnly = t, true
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// parsePorts reads "published:target[/tcp|/udp]" lines.
func parsePorts(s string) ([]app.PublishedPort, error) {
	var out []app.PublishedPort
	err := lines(s, func(n int, l string) error {
		l, proto, _ := strings.Cut(l, "/")
		pub, target, ok := strings.Cut(l, ":")
		p, err1 := strconv.Atoi(strings.TrimSpace(pub))
		t, err2 := strconv.Atoi(strings.TrimSpace(target))
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("line %d: write published:container with port numbers, such as 2222:22 or 5353:53/udp", n)
		}
		out = append(out, app.PublishedPort{Published: p, Target: t, Protocol: strings.ToLower(strings.TrimSpace(proto))})
		return nil
	})
	return out, err
}

// splitArgs splits a command line into arguments the way a shell would for
// plain words and quotes ('…' literal, "…" with \" and \\), without running
// a shell: distroless images have none.
func splitArgs(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("has an unclosed ' quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New(`has an unclosed " quote`)
			}
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// parseDotEnv reads the .env text of a form; an error names the line.
func parseDotEnv(text string) (map[string]string, error) {
	vars, _, err := app.ParseDotEnv(text)
	return vars, err
}
