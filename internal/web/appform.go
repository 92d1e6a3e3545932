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
	// ImageFromBuilds: a git app's image is set by each build, not here.
	ImageFromBuilds bool
	CSRF            string
	Action          string
	FormError       string
	Name            Field
	Env             Field // environment select
	Image           Field
	Port            Field
	Replicas        Field
	CPU             Field
	Memory          Field
	Vars            Field // .env textarea
	Health          Field // image default | http | command | none
	HealthArg       Field // the path or the command
	Volumes         Field
	Ports           Field
	// The settings form's extra inputs; the new-app page leaves them out,
	// and empty they add nothing to a spec.
	Command     Field
	Args        Field
	Files       Field
	SecretFiles Field
	Binds       Field
	BindsLocked bool // the user may not change binds: the field is shown disabled
	// The new-app form's choice of source: an image, or a git repository
	// built by Berth. Without JavaScript both sets of inputs show and the
	// radio decides.
	SourceGit bool
	Git       gitForm
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
		Name:        Field{ID: "app-name", Name: "name", Label: "Name", Type: "text", Required: true, Autofocus: true, MaxLength: app.MaxNameLength, Placeholder: "web", Code: true, Hint: "Lowercase letters, digits and '-'. Other apps of the environment reach it by this name."},
		Env:         Field{ID: "app-environment", Name: "environment", Label: "Environment", Type: "select", Required: true},
		Image:       Field{ID: "app-image", Name: "image", Label: "Image", Type: "text", Required: true, MaxLength: app.MaxImageLength, Placeholder: "nginx:1.27", Code: true, Hint: "Any image the server can pull, with a tag or a digest."},
		Port:        Field{ID: "app-port", Name: "port", Label: "HTTP port", Type: "number", Min: "0", Max: "65535", Placeholder: "8080", Hint: "The container port serving HTTP. Leave empty for workers."},
		Replicas:    Field{ID: "app-replicas", Name: "replicas", Label: "Replicas", Type: "number", Required: true, Value: "1", Min: "0", Max: strconv.Itoa(app.MaxReplicas)},
		CPU:         Field{ID: "app-cpu", Name: "cpu", Label: "CPU limit", Type: "text", Placeholder: "0.5", Hint: "Cores; empty for no limit."},
		Memory:      Field{ID: "app-memory", Name: "memory", Label: "Memory limit", Type: "text", Placeholder: "256m", Code: true, Hint: "Such as 256m or 1.5g; empty for no limit."},
		Vars:        Field{ID: "app-vars", Name: "vars", Label: "Variables", Type: "textarea", Rows: 5, Code: true, Placeholder: "DATABASE_URL=postgres://db/app\nLOG_LEVEL=info", Hint: "One KEY=value per line, as in a .env file. Stored encrypted."},
		Health:      Field{ID: "app-health", Name: "health", Label: "Health check", Type: "select", Hint: "Replicas get traffic once this passes."},
		HealthArg:   Field{ID: "app-health-arg", Name: "health_arg", Label: "Path or command", Type: "text", Code: true, Placeholder: "/healthz", Hint: "For HTTP, the path to request; for a command, what to run in the container."},
		Volumes:     Field{ID: "app-volumes", Name: "volumes", Label: "Volumes", Type: "textarea", Rows: 2, Code: true, Placeholder: "data:/var/lib/app", Hint: "One name:/path per line; add :ro for read-only, :single-writer to stop the old release before the new one starts. Volumes outlive deployments."},
		Ports:       Field{ID: "app-ports", Name: "ports", Label: "Published ports", Type: "textarea", Rows: 2, Code: true, Placeholder: "2222:22\n5353:53/udp", Hint: "One published:container[/udp] per line, opened on every node and bypassing the proxy."},
		Command:     Field{ID: "app-command", Name: "command", Label: "Command", Type: "text", Code: true, Placeholder: "/bin/server --verbose", Hint: "Replaces the image's ENTRYPOINT; split into arguments like a shell would ('…' and \"…\" quote), but run without one. Empty: the image's own."},
		Args:        Field{ID: "app-args", Name: "args", Label: "Arguments", Type: "textarea", Rows: 2, Code: true, Placeholder: "serve\n--port=8080", Hint: "Replace the image's CMD: one argument per line, taken as written. Empty: the image's own."},
		Files:       Field{ID: "app-files", Name: "files", Label: "Files", Type: "textarea", Rows: 6, Code: true, Placeholder: fileBlockMarker + "/etc/app/config.yml\nlisten: 8080\nlog: info", Hint: "Each file starts with a line " + fileBlockMarker + "/path/in/container; the lines after it, up to the next such line, are its content (it ends with a newline). Text only, under 500 KiB."},
		SecretFiles: Field{ID: "app-secret-files", Name: "secret_files", Label: "Secret files", Type: "textarea", Rows: 3, Code: true, Placeholder: fileBlockMarker + "/run/secrets/api-key\ns3cr3t", Hint: "Written like Files, delivered as Docker secrets and stored encrypted. A stored file shows " + secretPlaceholder + " instead of its content: leave that line as it is to keep the content."},
		Binds:       Field{ID: "app-binds", Name: "binds", Label: "Bind mounts", Type: "textarea", Rows: 2, Code: true, Placeholder: "/srv/shared:/shared:ro", Hint: "One /path/on/node:/path/in/container[:ro] per line. A host path can hand over the node: only owners and admins may change these."},
	}
	if env == "" {
		env = deploy.Production
	}
	for _, e := range envs {
		f.Env.Options = append(f.Env.Options, Option{Value: e, Label: e, Selected: e == env})
	}
	f.Health.Options = append([]Option(nil), healthChoices...)
	f.Git = newGitForm()
	return f
}

// fields lists the form's inputs, for fieldErrors.apply.
func (f *appForm) fields() []*Field {
	return append([]*Field{&f.Name, &f.Env, &f.Image, &f.Port, &f.Replicas, &f.CPU, &f.Memory, &f.Vars, &f.Health, &f.HealthArg, &f.Volumes, &f.Ports,
		&f.Command, &f.Args, &f.Files, &f.SecretFiles, &f.Binds}, f.Git.fields()...)
}

// fill puts the submitted values back into the form; a password (the
// access token) is never sent back.
func (f *appForm) fill(get func(string) string) {
	fillFields(f.fields(), get)
	f.SourceGit = get("source") == sourceGit
}

// fillFields puts submitted values back into fields: selects and
// checkboxes as chosen, text as typed, never a password.
func fillFields(fields []*Field, get func(string) string) {
	for _, fl := range fields {
		v := get(fl.Name)
		switch fl.Type {
		case "select":
			for i := range fl.Options {
				fl.Options[i].Selected = fl.Options[i].Value == v
			}
		case "checkbox":
			fl.Checked = v == "on"
		case "password":
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
	parseSpecForm(get, errs, &in.Spec)
	vars, err := parseDotEnv(get("vars"))
	if err != nil {
		errs["vars"] = err.Error()
	}
	in.Vars = vars
	return in
}

// parseSpecForm writes the form's spec inputs into s, which keeps what the
// form has no input for. An empty input clears its part (no limit, the
// image's own command), except replicas, which is required.
func parseSpecForm(get func(string) string, errs fieldErrors, s *app.Spec) {
	s.Image = strings.TrimSpace(get("image"))
	s.Port = 0
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
	s.Resources.CPULimit = 0
	if v := strings.TrimSpace(get("cpu")); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			errs["cpu"] = "must be a number of cores, such as 0.5 or 2"
		}
		s.Resources.CPULimit = n
	}
	s.Resources.MemoryLimit = 0
	if v := get("memory"); strings.TrimSpace(v) != "" {
		n, err := parseMemory(v)
		if err != nil {
			errs["memory"] = err.Error()
		}
		s.Resources.MemoryLimit = n
	}
	s.Health = nil
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
	s.Command = nil
	if v := strings.TrimSpace(get("command")); v != "" {
		argv, err := splitArgs(v)
		if err != nil {
			errs["command"] = err.Error()
		}
		s.Command = argv
	}
	s.Args = nil
	for l := range strings.SplitSeq(strings.ReplaceAll(get("args"), "\r\n", "\n"), "\n") {
		if strings.TrimSpace(l) != "" {
			s.Args = append(s.Args, l)
		}
	}
	stored := s.Files
	s.Files = nil
	for _, kind := range []struct {
		name   string
		secret bool
	}{{"files", false}, {"secret_files", true}} {
		files, err := parseFileBlocks(get(kind.name), kind.secret, stored)
		if err != nil {
			errs[kind.name] = err.Error()
		}
		s.Files = append(s.Files, files...)
	}
	binds, err := parseBinds(get("binds"))
	if err != nil {
		errs["binds"] = err.Error()
	}
	s.Binds = binds
}

var listIndexRe = regexp.MustCompile(`^(ports|volumes|files|binds|command|args)\[(\d+)\]\.?(.*)$`)

// formField maps a validator field name to the form input it came from and
// a message that reads after that input's label.
func formField(fe *app.FieldError) (name, msg string) {
	f, msg := fe.Field, fe.Message
	if name, msg, ok := gitFormField(f, msg); ok {
		return name, msg
	}
	if m := listIndexRe.FindStringSubmatch(f); m != nil {
		i, _ := strconv.Atoi(m[2])
		part := map[string]string{"published": "published port", "target": "container port", "protocol": "protocol", "name": "volume name", "source": "node path", "content": "content"}[m[3]]
		switch {
		case m[1] == "command" || m[1] == "args":
			return m[1], fmt.Sprintf("argument %d %s", i+1, msg)
		case m[1] == "files":
			return m[1], fmt.Sprintf("file %d: %s %s", i+1, m[3], msg)
		case m[1] == "volumes" && m[3] == "target":
			part = "mount path"
		case m[1] == "binds" && m[3] == "target":
			part = "path in the container"
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

// parseVolumes reads "name:/path[:ro][:single-writer]" lines.
func parseVolumes(s string) ([]app.Volume, error) {
	var out []app.Volume
	err := lines(s, func(n int, l string) error {
		name, target, ok := strings.Cut(l, ":")
		if !ok {
			return fmt.Errorf("line %d: write name:/path, such as data:/var/lib/app", n)
		}
		v := app.Volume{Name: strings.TrimSpace(name), Target: strings.TrimSpace(target)}
		for {
			if t, ok := strings.CutSuffix(v.Target, ":ro"); ok && !v.ReadOnly {
				v.Target, v.ReadOnly = t, true
			} else if t, ok := strings.CutSuffix(v.Target, ":single-writer"); ok && !v.SingleWriter {
				v.Target, v.SingleWriter = t, true
			} else {
				break
			}
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

// fileBlockMarker starts a file in the Files and Secret files textareas.
const fileBlockMarker = "--- "

// secretPlaceholder stands for a stored secret file's content in the form,
// as it does in the API.
const secretPlaceholder = "(secret, stored encrypted)"

// parseFileBlocks reads files written as blocks: a line "--- /path", then
// the content up to the next such line. Content always ends with a newline,
// so that a file written back by formatFileBlocks reads back the same. A
// secret block that still holds the placeholder keeps the stored content,
// and every file keeps the mode stored for its path.
func parseFileBlocks(text string, secret bool, stored []app.FileMount) ([]app.FileMount, error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var (
		out []app.FileMount
		cur *app.FileMount
	)
	for i, l := range strings.SplitAfter(text, "\n") {
		if target, ok := strings.CutPrefix(strings.TrimRight(l, "\n"), fileBlockMarker); ok && strings.HasPrefix(strings.TrimSpace(target), "/") {
			out = append(out, app.FileMount{Target: strings.TrimSpace(target), Secret: secret})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil {
			if strings.TrimSpace(l) == "" {
				continue
			}
			return nil, fmt.Errorf("line %d: start each file with a line %s/path/in/container", i+1, fileBlockMarker)
		}
		cur.Content += l
	}
	for i := range out {
		f := &out[i]
		if f.Content != "" && !strings.HasSuffix(f.Content, "\n") {
			f.Content += "\n"
		}
		placeholder := secret && strings.TrimSpace(f.Content) == secretPlaceholder
		for _, old := range stored {
			if old.Target != f.Target || old.Secret != secret {
				continue
			}
			f.Mode = old.Mode
			if placeholder {
				f.Content, placeholder = old.Content, false
			}
		}
		if placeholder {
			return nil, fmt.Errorf("%s: write its content; %s only keeps the content stored for that path", f.Target, secretPlaceholder)
		}
	}
	return out, nil
}

// formatFileBlocks writes files of one kind for parseFileBlocks, secret
// contents as the placeholder.
func formatFileBlocks(files []app.FileMount, secret bool) string {
	var b strings.Builder
	for _, f := range files {
		if f.Secret != secret {
			continue
		}
		content := f.Content
		if secret {
			content = secretPlaceholder
		}
		b.WriteString(fileBlockMarker + f.Target + "\n" + content)
		if !strings.HasSuffix(content, "\n") {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// parseBinds reads "/node/path:/container/path[:ro]" lines.
func parseBinds(s string) ([]app.BindMount, error) {
	var out []app.BindMount
	err := lines(s, func(n int, l string) error {
		parts := strings.Split(l, ":")
		if len(parts) < 2 || len(parts) > 3 || len(parts) == 3 && parts[2] != "ro" {
			return fmt.Errorf("line %d: write /path/on/node:/path/in/container, with :ro to mount read-only", n)
		}
		out = append(out, app.BindMount{Source: strings.TrimSpace(parts[0]), Target: strings.TrimSpace(parts[1]), ReadOnly: len(parts) == 3})
		return nil
	})
	return out, err
}

// specForm is the settings form: the app form without name, environment
// and variables, filled from a spec.
func specForm(csrf, action string, s app.Spec, canBind bool) appForm {
	f := newAppForm(csrf, action, nil, "")
	f.Image.Value = s.Image
	if s.Port > 0 {
		f.Port.Value = strconv.Itoa(s.Port)
	}
	f.Replicas.Value = strconv.Itoa(s.Replicas)
	if s.Resources.CPULimit > 0 {
		f.CPU.Value = strconv.FormatFloat(s.Resources.CPULimit, 'f', -1, 64)
	}
	if s.Resources.MemoryLimit > 0 {
		f.Memory.Value = formatMemory(s.Resources.MemoryLimit)
	}
	health := ""
	if h := s.Health; h != nil {
		health = h.Type
		switch h.Type {
		case app.HealthHTTP:
			f.HealthArg.Value = h.Path
		case app.HealthCommand:
			f.HealthArg.Value = joinArgs(h.Command)
		}
	}
	for i := range f.Health.Options {
		f.Health.Options[i].Selected = f.Health.Options[i].Value == health
	}
	var vols, ports, binds []string
	for _, v := range s.Volumes {
		l := v.Name + ":" + v.Target
		if v.ReadOnly {
			l += ":ro"
		}
		if v.SingleWriter {
			l += ":single-writer"
		}
		vols = append(vols, l)
	}
	for _, p := range s.Ports {
		l := fmt.Sprintf("%d:%d", p.Published, p.Target)
		if p.Protocol == "udp" {
			l += "/udp"
		}
		ports = append(ports, l)
	}
	for _, b := range s.Binds {
		l := b.Source + ":" + b.Target
		if b.ReadOnly {
			l += ":ro"
		}
		binds = append(binds, l)
	}
	f.Volumes.Value, f.Ports.Value, f.Binds.Value = strings.Join(vols, "\n"), strings.Join(ports, "\n"), strings.Join(binds, "\n")
	f.Command.Value = joinArgs(s.Command)
	f.Args.Value = strings.Join(s.Args, "\n")
	f.Files.Value, f.SecretFiles.Value = formatFileBlocks(s.Files, false), formatFileBlocks(s.Files, true)
	f.Image.Autofocus, f.Name.Autofocus = false, false
	f.BindsLocked = !canBind
	if !canBind {
		f.Binds.Hint = "Only owners and admins may change bind mounts: a host path can hand over the node. The ones set are kept."
	}
	return f
}

// joinArgs writes argv so that splitArgs reads it back.
func joinArgs(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"") {
			a = "'" + a + "'"
			if strings.Contains(a[1:len(a)-1], "'") {
				a = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(argv[i]) + `"`
			}
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// formatMemory writes bytes for parseMemory: in the largest binary unit
// that divides them, else in bytes.
func formatMemory(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"t", 40}, {"g", 30}, {"m", 20}, {"k", 10}} {
		if n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "b"
}
