package app

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Limits enforced by Validate.
const (
	MaxArgs            = 64
	MaxArgLength       = 4096
	MaxPathLength      = 4096
	MaxReplicas        = 100
	MaxCPUs            = 512
	MinMemoryLimit     = 6 << 20 // Docker refuses less than 6 MiB
	MaxStopGracePeriod = 10 * time.Minute
	MaxLabelKeyLength  = 128
	MaxLabelValueLen   = 1024
	MaxConstraintLen   = 256
	MaxHealthPathLen   = 1024
	MaxFileSize        = 500 << 10 // Swarm's limit for a config or secret (exclusive)
	MaxFiles           = 64
	MaxFilesTotal      = 2 << 20 // all files' content: every deployment stores a copy
	MaxBinds           = 32
	MaxFileMode        = 0o777
)

// DefaultFileMode is the permission of a file mount whose Mode is 0.
const DefaultFileMode = 0o444

// deniedBindSources are host paths that hand over the node: a bind of one of
// them, of anything under one, or of a directory holding one is refused.
var deniedBindSources = []string{
	"/etc", "/proc", "/sys", "/dev", "/boot", "/root",
	"/var/lib/docker", "/var/run", "/run", // docker.sock lives in /run and /var/run
}

// Defaults filled in by DefaultSpec and Normalize.
const (
	DefaultRestart         = "any"
	DefaultStopGracePeriod = 10 * time.Second
	DefaultProtocol        = "tcp"
	DefaultHealthPath      = "/"
	DefaultHealthInterval  = 2 * time.Second
	DefaultHealthTimeout   = 2 * time.Second
	DefaultHealthRetries   = 3
)

// DefaultSpec is the starting point for a new application: one replica,
// restarted on any exit, 10s to stop.
func DefaultSpec() Spec {
	return Spec{
		Replicas:        1,
		Restart:         DefaultRestart,
		StopGracePeriod: Duration(DefaultStopGracePeriod),
	}
}

// Normalize fills unset fields with their defaults, so that the stored Spec
// says what runs. It never changes Replicas: 0 is a deliberate "stopped", and
// only DefaultSpec starts from 1. A StopGracePeriod of 0 cannot be told apart
// from "unset" in JSON and becomes 10s.
//
// Health: an http check gets Path "/" and Port = Spec.Port (copied, so a later
// change of Spec.Port does not move it); http and command checks get Interval
// 2s, Timeout 2s (at most Interval), Retries 3. Call Normalize before Validate
// when storing; Validate accepts the unset forms too.
func (s *Spec) Normalize() {
	if s.Restart == "" {
		s.Restart = DefaultRestart
	}
	if s.StopGracePeriod == 0 {
		s.StopGracePeriod = Duration(DefaultStopGracePeriod)
	}
	for i := range s.Files {
		if s.Files[i].Mode == 0 {
			s.Files[i].Mode = DefaultFileMode
		}
	}
	for i := range s.Ports {
		if s.Ports[i].Protocol == "" {
			s.Ports[i].Protocol = DefaultProtocol
		}
	}
	if s.Health != nil {
		h := s.Health.withDefaults(s.Port)
		s.Health = &h
	}
}

// withDefaults returns h with unset fields defaulted; Validate checks the
// result, so that an un-normalized Spec is judged by what it would become.
func (h HealthCheck) withDefaults(specPort int) HealthCheck {
	if h.Type != HealthHTTP && h.Type != HealthCommand {
		return h
	}
	if h.Type == HealthHTTP {
		if h.Path == "" {
			h.Path = DefaultHealthPath
		}
		if h.Port == 0 {
			h.Port = specPort
		}
	}
	if h.Interval == 0 {
		h.Interval = Duration(DefaultHealthInterval)
	}
	if h.Timeout == 0 {
		h.Timeout = min(Duration(DefaultHealthTimeout), h.Interval)
	}
	if h.Retries == 0 {
		h.Retries = DefaultHealthRetries
	}
	return h
}

var (
	userPartRe   = regexp.MustCompile(`^(?:[a-z_][a-z0-9_-]*|[0-9]+)$`)
	constraintRe = regexp.MustCompile(`^(?:node\.(?:id|hostname|role|platform\.os|platform\.arch|labels\.[A-Za-z0-9_.-]+)|engine\.labels\.[A-Za-z0-9_.-]+)[ \t]*(?:==|!=)[ \t]*[A-Za-z0-9_.:-]+$`)
	labelKeyRe   = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$`)
)

// Validate returns the first problem with s as a *FieldError, checking fields
// in declaration order. Unset fields that Normalize would fill are accepted.
func (s Spec) Validate() error {
	if err := ValidateImage(s.Image); err != nil {
		return err
	}
	if err := validateArgv("command", s.Command, false); err != nil {
		return err
	}
	if err := validateArgv("args", s.Args, false); err != nil {
		return err
	}
	if s.WorkingDir != "" {
		if err := validateContainerPath("working_dir", s.WorkingDir, true); err != nil {
			return err
		}
	}
	if s.User != "" {
		if err := validateUser(s.User); err != nil {
			return err
		}
	}
	if s.Port < 0 || s.Port > 65535 {
		return fe("port", "must be between 1 and 65535, or 0 when the app serves no HTTP (got %d)", s.Port)
	}
	if err := validatePorts(s.Ports); err != nil {
		return err
	}
	if s.Replicas < 0 || s.Replicas > MaxReplicas {
		return fe("replicas", "must be between 0 (stopped) and %d (got %d)", MaxReplicas, s.Replicas)
	}
	if err := s.Resources.validate(); err != nil {
		return err
	}
	switch s.Restart {
	case "", "any", "on-failure", "none":
	default:
		return fe("restart", "must be one of any, on-failure or none (got %q)", s.Restart)
	}
	for i, c := range s.Constraints {
		if len(c) > MaxConstraintLen || !constraintRe.MatchString(c) {
			return fe(fmt.Sprintf("constraints[%d]", i),
				"%q is not a supported placement constraint: use node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>, then == or !=, then a value of letters, digits, '_', '.', ':' or '-'", c)
		}
	}
	if err := validateLabels(s.Labels); err != nil {
		return err
	}
	if s.StopGracePeriod < 0 || time.Duration(s.StopGracePeriod) > MaxStopGracePeriod {
		return fe("stop_grace_period", "must be between 0s and 10m (got %s)", s.StopGracePeriod)
	}
	if s.Health != nil {
		if err := s.Health.withDefaults(s.Port).validate(s.Port); err != nil {
			return err
		}
	}
	if err := validateVolumes(s.Volumes); err != nil {
		return err
	}
	return s.validateMounts()
}

func fe(field, format string, args ...any) error {
	return &FieldError{field, fmt.Sprintf(format, args...)}
}

func validateArgv(field string, argv []string, required bool) error {
	if required && len(argv) == 0 {
		return fe(field, "is required: give the program and its arguments as a list")
	}
	if len(argv) > MaxArgs {
		return fe(field, "has %d elements; the limit is %d", len(argv), MaxArgs)
	}
	for i, a := range argv {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case a == "":
			return fe(f, "must not be empty")
		case strings.IndexByte(a, 0) >= 0:
			return fe(f, "must not contain NUL bytes")
		case len(a) > MaxArgLength:
			return fe(f, "is %d bytes long; the limit is %d", len(a), MaxArgLength)
		}
	}
	return nil
}

// validateContainerPath checks an absolute path inside the container.
func validateContainerPath(field, p string, rootOK bool) error {
	switch {
	case len(p) > MaxPathLength:
		return fe(field, "is %d bytes long; the limit is %d", len(p), MaxPathLength)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return fe(field, "must not contain control characters")
	case !strings.HasPrefix(p, "/"):
		return fe(field, "must be an absolute path starting with '/' (got %q)", p)
	case !rootOK && path.Clean(p) == "/":
		return fe(field, "must not be the root directory '/'")
	}
	return nil
}

func validateUser(u string) error {
	user, group, hasGroup := strings.Cut(u, ":")
	ok := len(u) <= 256 && userPartRe.MatchString(user) && (!hasGroup || userPartRe.MatchString(group))
	for _, part := range []string{user, group} {
		if ok && part != "" && part[0] >= '0' && part[0] <= '9' {
			_, err := strconv.ParseUint(part, 10, 32)
			ok = err == nil
		}
	}
	if !ok {
		return fe("user", "%q is not a valid user: use a name or numeric id, optionally followed by ':' and a group name or id (names: lowercase letters, digits, '_' and '-', not starting with a digit or '-')", u)
	}
	return nil
}

func validatePorts(ports []PublishedPort) error {
	seen := make(map[string]int, len(ports))
	for i, p := range ports {
		field := func(name string) string { return fmt.Sprintf("ports[%d].%s", i, name) }
		if p.Target < 1 || p.Target > 65535 {
			return fe(field("target"), "must be between 1 and 65535 (got %d)", p.Target)
		}
		if p.Published < 1 || p.Published > 65535 {
			return fe(field("published"), "must be between 1 and 65535 (got %d)", p.Published)
		}
		proto := p.Protocol
		if proto == "" {
			proto = DefaultProtocol
		}
		if proto != "tcp" && proto != "udp" {
			return fe(field("protocol"), "must be tcp or udp (got %q)", p.Protocol)
		}
		key := fmt.Sprintf("%d/%s", p.Published, proto)
		if j, dup := seen[key]; dup {
			return fe(field("published"), "%s is already published by ports[%d]", key, j)
		}
		seen[key] = i
	}
	return nil
}

func (r Resources) validate() error {
	cpu := func(field string, v float64) error {
		if math.IsNaN(v) || v < 0 || v > MaxCPUs {
			return fe(field, "must be between 0 (unlimited) and %d cores (got %v)", MaxCPUs, v)
		}
		return nil
	}
	if err := cpu("resources.cpu_limit", r.CPULimit); err != nil {
		return err
	}
	if err := cpu("resources.cpu_reservation", r.CPUReservation); err != nil {
		return err
	}
	if r.CPULimit > 0 && r.CPUReservation > r.CPULimit {
		return fe("resources.cpu_reservation", "must not exceed resources.cpu_limit (%v > %v)", r.CPUReservation, r.CPULimit)
	}
	if r.MemoryLimit < 0 || r.MemoryLimit > 0 && r.MemoryLimit < MinMemoryLimit {
		return fe("resources.memory_limit", "must be 0 (unlimited) or at least 6 MiB (%d bytes), Docker's minimum (got %d)", MinMemoryLimit, r.MemoryLimit)
	}
	if r.MemoryReservation < 0 {
		return fe("resources.memory_reservation", "must be 0 (none) or a positive number of bytes (got %d)", r.MemoryReservation)
	}
	if r.MemoryLimit > 0 && r.MemoryReservation > r.MemoryLimit {
		return fe("resources.memory_reservation", "must not exceed resources.memory_limit (%d > %d bytes)", r.MemoryReservation, r.MemoryLimit)
	}
	return nil
}

func validateLabels(labels map[string]string) error {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first problem must not depend on map order
	for _, k := range keys {
		field := "labels[" + strconv.Quote(k) + "]"
		switch {
		case len(k) > MaxLabelKeyLength:
			return fe(field, "key is %d characters long; the limit is %d", len(k), MaxLabelKeyLength)
		case !labelKeyRe.MatchString(k):
			return fe(field, "key must be lowercase letters, digits, '.', '_' and '-', starting and ending with a letter or digit")
		case strings.HasPrefix(k, "berth."):
			return fe(field, "key must not start with \"berth.\", which Berth reserves for its own labels")
		case strings.HasPrefix(k, "com.docker."):
			return fe(field, "key must not start with \"com.docker.\", which Docker reserves")
		}
		v := labels[k]
		switch {
		case len(v) > MaxLabelValueLen:
			return fe(field, "value is %d bytes long; the limit is %d", len(v), MaxLabelValueLen)
		case strings.IndexFunc(v, unicode.IsControl) >= 0:
			return fe(field, "value must not contain newlines or other control characters")
		}
	}
	return nil
}

// validate checks a health check after withDefaults.
func (h HealthCheck) validate(specPort int) error {
	switch h.Type {
	case HealthNone:
		return nil // nothing else is used
	case HealthHTTP:
		switch {
		case !strings.HasPrefix(h.Path, "/"):
			return fe("health.path", "must start with '/' (got %q)", h.Path)
		case len(h.Path) > MaxHealthPathLen:
			return fe("health.path", "is %d bytes long; the limit is %d", len(h.Path), MaxHealthPathLen)
		case strings.IndexFunc(h.Path, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
			return fe("health.path", "must not contain whitespace or control characters (percent-encode them)")
		}
		if h.Port == 0 && specPort == 0 {
			return fe("health.port", "is required for an http check when the app has no port: set port or health.port")
		}
		if h.Port < 1 || h.Port > 65535 {
			return fe("health.port", "must be between 1 and 65535, or 0 to use port (got %d)", h.Port)
		}
		if h.ExpectStatus != 0 && (h.ExpectStatus < 100 || h.ExpectStatus > 599) {
			return fe("health.expect_status", "must be 0 (any 2xx or 3xx) or an HTTP status between 100 and 599 (got %d)", h.ExpectStatus)
		}
	case HealthCommand:
		if err := validateArgv("health.command", h.Command, true); err != nil {
			return err
		}
	default:
		return fe("health.type", "must be one of http, command or none (got %q)", h.Type)
	}
	switch {
	case h.Interval < Duration(time.Second) || h.Interval > Duration(5*time.Minute):
		return fe("health.interval", "must be between 1s and 5m (got %s)", h.Interval)
	case h.Timeout < Duration(time.Second) || h.Timeout > h.Interval:
		return fe("health.timeout", "must be at least 1s and at most health.interval (%s) (got %s)", h.Interval, h.Timeout)
	case h.Retries < 1 || h.Retries > 20:
		return fe("health.retries", "must be between 1 and 20 (got %d)", h.Retries)
	case h.StartPeriod < 0 || h.StartPeriod > Duration(10*time.Minute):
		return fe("health.start_period", "must be between 0s and 10m (got %s)", h.StartPeriod)
	}
	return nil
}

func validateVolumes(vols []Volume) error {
	names := make(map[string]int, len(vols))
	targets := make(map[string]int, len(vols))
	for i, v := range vols {
		field := func(name string) string { return fmt.Sprintf("volumes[%d].%s", i, name) }
		if err := ValidateName(field("name"), v.Name); err != nil {
			return err
		}
		if j, dup := names[v.Name]; dup {
			return fe(field("name"), "%q is already used by volumes[%d]", v.Name, j)
		}
		names[v.Name] = i
		if err := validateContainerPath(field("target"), v.Target, false); err != nil {
			return err
		}
		if slices.Contains(strings.Split(v.Target, "/"), "..") {
			return fe(field("target"), "must not contain \"..\" (got %q)", v.Target)
		}
		t := path.Clean(v.Target)
		if j, dup := targets[t]; dup {
			return fe(field("target"), "%q is already the target of volumes[%d]", v.Target, j)
		}
		targets[t] = i
	}
	return nil
}

// validateMounts checks files and binds, and that no two mounts of any kind
// share a target.
func (s Spec) validateMounts() error {
	targets := make(map[string]string, len(s.Volumes)+len(s.Files)+len(s.Binds))
	for i, v := range s.Volumes {
		targets[path.Clean(v.Target)] = fmt.Sprintf("volumes[%d]", i)
	}
	target := func(field, t string) error {
		if err := validateMountPath(field, t); err != nil {
			return err
		}
		if other, dup := targets[t]; dup {
			return fe(field, "%q is already the target of %s", t, other)
		}
		targets[t] = strings.TrimSuffix(field, ".target")
		return nil
	}
	if len(s.Files) > MaxFiles {
		return fe("files", "has %d files; the limit is %d", len(s.Files), MaxFiles)
	}
	for i, f := range s.Files {
		field := func(name string) string { return fmt.Sprintf("files[%d].%s", i, name) }
		if err := target(field("target"), f.Target); err != nil {
			return err
		}
		switch {
		case IsSealed(f.Content):
			// Encrypted by the control plane, after this check passed on the plaintext.
		case f.Content == "":
			return fe(field("content"), "must not be empty: Swarm cannot deliver an empty file")
		case len(f.Content) >= MaxFileSize:
			return fe(field("content"), "is %d bytes long; it must be shorter than %d bytes (500 KiB), Swarm's limit", len(f.Content), MaxFileSize)
		}
		if f.Mode > MaxFileMode {
			return fe(field("mode"), "must be permission bits between 0 and 0777 (got %#o)", f.Mode)
		}
	}
	total := 0
	for _, f := range s.Files {
		total += len(f.Content)
	}
	if total > MaxFilesTotal {
		return fe("files", "hold %d bytes in all; the limit is %d bytes (2 MiB), as every deployment keeps a copy", total, MaxFilesTotal)
	}
	if len(s.Binds) > MaxBinds {
		return fe("binds", "has %d bind mounts; the limit is %d", len(s.Binds), MaxBinds)
	}
	for i, b := range s.Binds {
		field := func(name string) string { return fmt.Sprintf("binds[%d].%s", i, name) }
		if err := validateMountPath(field("source"), b.Source); err != nil {
			return err
		}
		for _, d := range deniedBindSources {
			if under(b.Source, d) || under(d, b.Source) {
				return fe(field("source"), "%q must not be, contain or be inside %s: mounting it would hand the node to the app", b.Source, d)
			}
		}
		if err := target(field("target"), b.Target); err != nil {
			return err
		}
	}
	return nil
}

// validateMountPath checks a mount's absolute path: cleaned, not the root,
// no ".." segment, no control characters.
func validateMountPath(field, p string) error {
	if err := validateContainerPath(field, p, false); err != nil {
		return err
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return fe(field, "must not contain \"..\" (got %q)", p)
	}
	if path.Clean(p) != p {
		return fe(field, "must be a clean path, without a trailing '/', \"//\" or \".\" segments: write %q (got %q)", path.Clean(p), p)
	}
	return nil
}

// under reports whether clean absolute path p is dir or inside it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}
