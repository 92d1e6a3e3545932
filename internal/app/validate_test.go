package app

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func validSpec() Spec {
	s := DefaultSpec()
	s.Image = "ghcr.io/acme/web:1.4"
	s.Port = 8080
	return s
}

func sec(n int) Duration { return Duration(time.Duration(n) * time.Second) }

func TestDefaultSpec(t *testing.T) {
	s := DefaultSpec()
	if s.Replicas != 1 || s.Restart != "any" || s.StopGracePeriod != sec(10) {
		t.Errorf("DefaultSpec() = %+v, want 1 replica, restart any, 10s grace", s)
	}
}

func TestNormalize(t *testing.T) {
	s := Spec{
		Image:    "nginx",
		Port:     8080,
		Replicas: 0,
		Ports:    []PublishedPort{{Target: 53, Published: 53}, {Target: 53, Published: 53, Protocol: "udp"}},
		Health:   &HealthCheck{Type: HealthHTTP},
	}
	s.Normalize()
	want := Spec{
		Image:           "nginx",
		Port:            8080,
		Replicas:        0, // stopped stays stopped
		Restart:         "any",
		StopGracePeriod: sec(10),
		Ports:           []PublishedPort{{Target: 53, Published: 53, Protocol: "tcp"}, {Target: 53, Published: 53, Protocol: "udp"}},
		Health:          &HealthCheck{Type: HealthHTTP, Path: "/", Port: 8080, Interval: sec(2), Timeout: sec(2), Retries: 3},
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("Normalize:\n got %+v %+v\nwant %+v %+v", s, *s.Health, want, *want.Health)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("normalized spec invalid: %v", err)
	}

	// Set values are kept; a short interval caps the default timeout.
	h := &HealthCheck{Type: HealthCommand, Command: []string{"true"}, Interval: sec(1), Retries: 5, StartPeriod: sec(30)}
	s = Spec{Image: "nginx", Restart: "none", StopGracePeriod: sec(3), Health: h}
	s.Normalize()
	wantH := HealthCheck{Type: HealthCommand, Command: []string{"true"}, Interval: sec(1), Timeout: sec(1), Retries: 5, StartPeriod: sec(30)}
	if s.Restart != "none" || s.StopGracePeriod != sec(3) || !reflect.DeepEqual(*s.Health, wantH) {
		t.Errorf("Normalize changed set values: %+v %+v", s, *s.Health)
	}
	if h.Timeout != 0 {
		t.Error("Normalize modified the caller's HealthCheck through the pointer")
	}

	s = Spec{Image: "nginx", Health: &HealthCheck{Type: HealthNone}}
	s.Normalize()
	if !reflect.DeepEqual(*s.Health, HealthCheck{Type: HealthNone}) {
		t.Errorf("Normalize filled a none check: %+v", *s.Health)
	}
}

func TestValidateAcceptsValidSpecs(t *testing.T) {
	full := validSpec()
	full.Command = []string{"/app/server"}
	full.Args = []string{"--listen", ":8080", strings.Repeat("x", MaxArgLength)}
	full.WorkingDir = "/srv/app"
	full.User = "1000:1000"
	full.Ports = []PublishedPort{{Target: 53, Published: 53, Protocol: "udp"}, {Target: 53, Published: 53}, {Target: 22, Published: 2222, Protocol: "tcp"}}
	full.Replicas = 100
	full.Resources = Resources{CPULimit: 2, CPUReservation: 0.5, MemoryLimit: 512 << 20, MemoryReservation: 6 << 20}
	full.Restart = "on-failure"
	full.Constraints = []string{"node.role==worker", "node.labels.zone != eu-1", "engine.labels.gpu==true", "node.platform.arch==x86_64", "node.hostname==node-1.example.com"}
	full.Labels = map[string]string{"team": "payments", "com.example.owner": "a@b.c", "x": ""}
	full.StopGracePeriod = Duration(10 * time.Minute)
	full.ReadOnly = true
	full.Health = &HealthCheck{Type: HealthHTTP, Path: "/healthz?full=1", Port: 9090, ExpectStatus: 204, Interval: sec(300), Timeout: sec(300), Retries: 20, StartPeriod: Duration(10 * time.Minute)}
	full.Volumes = []Volume{{Name: "data", Target: "/var/lib/data", SingleWriter: true}, {Name: "cache", Target: "/cache", ReadOnly: true}}

	for name, s := range map[string]Spec{
		"minimal":         {Image: "nginx"},
		"default":         validSpec(),
		"full":            full,
		"stopped":         func() Spec { s := validSpec(); s.Replicas = 0; return s }(),
		"user name":       func() Spec { s := validSpec(); s.User = "www-data"; return s }(),
		"user name:group": func() Spec { s := validSpec(); s.User = "_app:staff"; return s }(),
		"user uid":        func() Spec { s := validSpec(); s.User = "0"; return s }(),
		"health command": func() Spec {
			s := validSpec()
			s.Health = &HealthCheck{Type: HealthCommand, Command: []string{"pg_isready"}}
			return s
		}(),
		"health none": func() Spec { s := validSpec(); s.Health = &HealthCheck{Type: HealthNone}; return s }(),
		"health http": func() Spec { s := validSpec(); s.Health = &HealthCheck{Type: HealthHTTP}; return s }(),
		"health own port": func() Spec {
			s := validSpec()
			s.Port = 0
			s.Health = &HealthCheck{Type: HealthHTTP, Port: 9000}
			return s
		}(),
		"cpu limit only": func() Spec { s := validSpec(); s.Resources.CPUReservation = 4; return s }(),
		"files and binds": func() Spec {
			s := validSpec()
			s.Volumes = []Volume{{Name: "data", Target: "/data"}}
			s.Files = []FileMount{
				{Target: "/etc/app/config.yml", Content: "a: 1\n"},
				{Target: "/run/secrets/token", Content: strings.Repeat("x", MaxFileSize-1), Secret: true, Mode: 0o400},
				{Target: "/data/x", Content: "x", Mode: 0o777},
			}
			s.Binds = []BindMount{{Source: "/srv/shared", Target: "/shared", ReadOnly: true}, {Source: "/var/lib/dockerish", Target: "/d"}, {Source: "/etcetera", Target: "/e"}}
			return s
		}(),
	} {
		if err := s.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v, want nil", name, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Spec)
		field  string
		msg    string // part of the message
	}{
		{"no image", func(s *Spec) { s.Image = "" }, "image", "required"},
		{"bad image", func(s *Spec) { s.Image = "Foo" }, "image", "lowercase"},
		{"empty command element", func(s *Spec) { s.Command = []string{"/bin/app", ""} }, "command[1]", "empty"},
		{"NUL in arg", func(s *Spec) { s.Args = []string{"a\x00b"} }, "args[0]", "NUL"},
		{"long arg", func(s *Spec) { s.Args = []string{strings.Repeat("x", MaxArgLength+1)} }, "args[0]", "4096"},
		{"too many args", func(s *Spec) { s.Args = make([]string, 65) }, "args", "limit is 64"},
		{"relative working dir", func(s *Spec) { s.WorkingDir = "srv" }, "working_dir", "absolute"},
		{"user with space", func(s *Spec) { s.User = "root --privileged" }, "user", "not a valid user"},
		{"user uppercase", func(s *Spec) { s.User = "Admin" }, "user", "not a valid user"},
		{"user empty group", func(s *Spec) { s.User = "app:" }, "user", "not a valid user"},
		{"user uid too big", func(s *Spec) { s.User = "4294967296" }, "user", "not a valid user"},
		{"user leading dash", func(s *Spec) { s.User = "-u" }, "user", "not a valid user"},
		{"port negative", func(s *Spec) { s.Port = -1 }, "port", "between 1 and 65535"},
		{"port too big", func(s *Spec) { s.Port = 65536 }, "port", "between 1 and 65535"},
		{"published 0", func(s *Spec) { s.Ports = []PublishedPort{{Target: 80, Published: 0}} }, "ports[0].published", "between 1 and 65535"},
		{"target too big", func(s *Spec) { s.Ports = []PublishedPort{{Target: 70000, Published: 80}} }, "ports[0].target", "between 1 and 65535"},
		{"bad protocol", func(s *Spec) { s.Ports = []PublishedPort{{Target: 80, Published: 80, Protocol: "sctp"}} }, "ports[0].protocol", "tcp or udp"},
		{"duplicate published", func(s *Spec) {
			s.Ports = []PublishedPort{{Target: 80, Published: 80}, {Target: 81, Published: 81}, {Target: 82, Published: 80, Protocol: "tcp"}}
		}, "ports[2].published", "80/tcp is already published by ports[0]"},
		{"replicas negative", func(s *Spec) { s.Replicas = -1 }, "replicas", "between 0"},
		{"replicas too many", func(s *Spec) { s.Replicas = 101 }, "replicas", "100"},
		{"cpu negative", func(s *Spec) { s.Resources.CPULimit = -0.5 }, "resources.cpu_limit", "between 0"},
		{"cpu NaN", func(s *Spec) { s.Resources.CPULimit = math.NaN() }, "resources.cpu_limit", "between 0"},
		{"cpu too many", func(s *Spec) { s.Resources.CPUReservation = 513 }, "resources.cpu_reservation", "512"},
		{"cpu reservation over limit", func(s *Spec) { s.Resources.CPULimit = 1; s.Resources.CPUReservation = 2 }, "resources.cpu_reservation", "must not exceed"},
		{"memory too small", func(s *Spec) { s.Resources.MemoryLimit = 4 << 20 }, "resources.memory_limit", "6 MiB"},
		{"memory negative", func(s *Spec) { s.Resources.MemoryLimit = -1 }, "resources.memory_limit", "6 MiB"},
		{"memory reservation negative", func(s *Spec) { s.Resources.MemoryReservation = -1 }, "resources.memory_reservation", "positive"},
		{"memory reservation over limit", func(s *Spec) { s.Resources.MemoryLimit = 64 << 20; s.Resources.MemoryReservation = 65 << 20 }, "resources.memory_reservation", "must not exceed"},
		{"restart", func(s *Spec) { s.Restart = "always" }, "restart", "any, on-failure or none"},
		{"constraint op", func(s *Spec) { s.Constraints = []string{"node.role==manager", "node.role=worker"} }, "constraints[1]", "not a supported placement constraint"},
		{"constraint attribute", func(s *Spec) { s.Constraints = []string{"node.ip==1.2.3.4"} }, "constraints[0]", "node.hostname"},
		{"constraint injection", func(s *Spec) { s.Constraints = []string{"node.role==worker\nnode.role==manager"} }, "constraints[0]", "not a supported"},
		{"constraint empty", func(s *Spec) { s.Constraints = []string{""} }, "constraints[0]", "not a supported"},
		{"label reserved", func(s *Spec) { s.Labels = map[string]string{"berth.app": "x"} }, `labels["berth.app"]`, "reserves"},
		{"label docker", func(s *Spec) { s.Labels = map[string]string{"com.docker.stack.namespace": "x"} }, `labels["com.docker.stack.namespace"]`, "Docker reserves"},
		{"label uppercase", func(s *Spec) { s.Labels = map[string]string{"a": "ok", "Team": "x"} }, `labels["Team"]`, "lowercase"},
		{"label trailing dot", func(s *Spec) { s.Labels = map[string]string{"team.": "x"} }, `labels["team."]`, "ending with a letter or digit"},
		{"label empty key", func(s *Spec) { s.Labels = map[string]string{"": "x"} }, `labels[""]`, "key must be"},
		{"label long key", func(s *Spec) { s.Labels = map[string]string{strings.Repeat("a", 129): "x"} }, `labels["` + strings.Repeat("a", 129) + `"]`, "limit is 128"},
		{"label newline", func(s *Spec) { s.Labels = map[string]string{"team": "a\nb"} }, `labels["team"]`, "newlines"},
		{"label long value", func(s *Spec) { s.Labels = map[string]string{"team": strings.Repeat("v", 1025)} }, `labels["team"]`, "limit is 1024"},
		{"label first sorted", func(s *Spec) { s.Labels = map[string]string{"z.": "", "b.": "", "berth.x": ""} }, `labels["b."]`, "key must be"},
		{"stop grace negative", func(s *Spec) { s.StopGracePeriod = -1 }, "stop_grace_period", "between 0s and 10m"},
		{"stop grace long", func(s *Spec) { s.StopGracePeriod = Duration(11 * time.Minute) }, "stop_grace_period", "between 0s and 10m"},
		{"health type", func(s *Spec) { s.Health = &HealthCheck{Type: "tcp"} }, "health.type", "http, command or none"},
		{"health type empty", func(s *Spec) { s.Health = &HealthCheck{Path: "/"} }, "health.type", "http, command or none"},
		{"health path relative", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, Path: "healthz"} }, "health.path", "start with '/'"},
		{"health path space", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, Path: "/a b"} }, "health.path", "whitespace"},
		{"health path CRLF", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, Path: "/\r\nHost: x"} }, "health.path", "control"},
		{"health path long", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, Path: "/" + strings.Repeat("a", 1024)} }, "health.path", "limit is 1024"},
		{"health needs port", func(s *Spec) { s.Port = 0; s.Health = &HealthCheck{Type: HealthHTTP} }, "health.port", "set port or health.port"},
		{"health port", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, Port: 70000} }, "health.port", "between 1 and 65535"},
		{"health status", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, ExpectStatus: 99} }, "health.expect_status", "between 100 and 599"},
		{"health status big", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, ExpectStatus: 600} }, "health.expect_status", "between 100 and 599"},
		{"health command missing", func(s *Spec) { s.Health = &HealthCheck{Type: HealthCommand} }, "health.command", "required"},
		{"health command element", func(s *Spec) { s.Health = &HealthCheck{Type: HealthCommand, Command: []string{"curl", ""}} }, "health.command[1]", "empty"},
		{"health interval short", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, Interval: Duration(500 * time.Millisecond)} }, "health.interval", "between 1s and 5m"},
		{"health interval long", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, Interval: sec(301)} }, "health.interval", "between 1s and 5m"},
		{"health timeout over interval", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, Interval: sec(5), Timeout: sec(6)} }, "health.timeout", "at most health.interval"},
		{"health timeout short", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, Timeout: Duration(time.Millisecond)} }, "health.timeout", "at least 1s"},
		{"health retries", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, Retries: 21} }, "health.retries", "between 1 and 20"},
		{"health retries negative", func(s *Spec) { s.Health = &HealthCheck{Type: HealthCommand, Command: []string{"true"}, Retries: -1} }, "health.retries", "between 1 and 20"},
		{"health start period", func(s *Spec) { s.Health = &HealthCheck{Type: HealthHTTP, StartPeriod: Duration(11 * time.Minute)} }, "health.start_period", "between 0s and 10m"},
		{"volume name", func(s *Spec) { s.Volumes = []Volume{{Name: "Data", Target: "/data"}} }, "volumes[0].name", "lowercase"},
		{"volume name missing", func(s *Spec) { s.Volumes = []Volume{{Target: "/data"}} }, "volumes[0].name", "required"},
		{"volume target relative", func(s *Spec) { s.Volumes = []Volume{{Name: "data", Target: "data"}} }, "volumes[0].target", "absolute"},
		{"volume target root", func(s *Spec) { s.Volumes = []Volume{{Name: "data", Target: "/"}} }, "volumes[0].target", "root"},
		{"volume target root dot", func(s *Spec) { s.Volumes = []Volume{{Name: "data", Target: "/./"}} }, "volumes[0].target", "root"},
		{"volume target dotdot", func(s *Spec) { s.Volumes = []Volume{{Name: "data", Target: "/data/../etc"}} }, "volumes[0].target", `".."`},
		{"volume duplicate name", func(s *Spec) { s.Volumes = []Volume{{Name: "data", Target: "/a"}, {Name: "data", Target: "/b"}} }, "volumes[1].name", "already used by volumes[0]"},
		{"volume duplicate target", func(s *Spec) { s.Volumes = []Volume{{Name: "a", Target: "/data"}, {Name: "b", Target: "/data/"}} }, "volumes[1].target", "already the target of volumes[0]"},
		{"file target relative", func(s *Spec) { s.Files = []FileMount{{Target: "etc/app.yml"}} }, "files[0].target", "absolute"},
		{"file target root", func(s *Spec) { s.Files = []FileMount{{Target: "/"}} }, "files[0].target", "root"},
		{"file target dotdot", func(s *Spec) { s.Files = []FileMount{{Target: "/etc/../x"}} }, "files[0].target", `".."`},
		{"file target unclean", func(s *Spec) { s.Files = []FileMount{{Target: "/etc//app.yml"}} }, "files[0].target", `"/etc/app.yml"`},
		{"file target trailing slash", func(s *Spec) { s.Files = []FileMount{{Target: "/etc/app/"}} }, "files[0].target", "clean"},
		{"file target newline", func(s *Spec) { s.Files = []FileMount{{Target: "/etc/a\nb"}} }, "files[0].target", "control"},
		{"file target NUL", func(s *Spec) { s.Files = []FileMount{{Target: "/etc/a\x00b"}} }, "files[0].target", "control"},
		{"file too big", func(s *Spec) { s.Files = []FileMount{{Target: "/a", Content: strings.Repeat("x", MaxFileSize)}} }, "files[0].content", "500 KiB"},
		{"files too big in all", func(s *Spec) {
			big := strings.Repeat("x", MaxFileSize-1)
			for i := range 5 {
				s.Files = append(s.Files, FileMount{Target: "/f" + strconv.Itoa(i), Content: big})
			}
		}, "files", "2 MiB"},
		{"file empty", func(s *Spec) { s.Files = []FileMount{{Target: "/a"}} }, "files[0].content", "empty"},
		{"file mode", func(s *Spec) {
			s.Files = []FileMount{{Target: "/a", Content: "x"}, {Target: "/b", Content: "x", Mode: 0o1777}}
		}, "files[1].mode", "0777"},
		{"file duplicate target", func(s *Spec) { s.Files = []FileMount{{Target: "/a", Content: "x"}, {Target: "/a", Content: "y"}} }, "files[1].target", "already the target of files[0]"},
		{"file on volume target", func(s *Spec) {
			s.Volumes = []Volume{{Name: "data", Target: "/data/"}}
			s.Files = []FileMount{{Target: "/data"}}
		}, "files[0].target", "already the target of volumes[0]"},
		{"bind source relative", func(s *Spec) { s.Binds = []BindMount{{Source: "srv", Target: "/srv"}} }, "binds[0].source", "absolute"},
		{"bind source dotdot", func(s *Spec) { s.Binds = []BindMount{{Source: "/srv/../etc", Target: "/srv"}} }, "binds[0].source", `".."`},
		{"bind source unclean", func(s *Spec) { s.Binds = []BindMount{{Source: "/srv/./x", Target: "/srv"}} }, "binds[0].source", "clean"},
		{"bind source root", func(s *Spec) { s.Binds = []BindMount{{Source: "/", Target: "/host"}} }, "binds[0].source", "root"},
		{"bind docker socket", func(s *Spec) {
			s.Binds = []BindMount{{Source: "/srv", Target: "/srv"}, {Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"}}
		}, "binds[1].source", "/var/run"},
		{"bind run docker socket", func(s *Spec) { s.Binds = []BindMount{{Source: "/run/docker.sock", Target: "/s"}} }, "binds[0].source", "/run"},
		{"bind etc", func(s *Spec) { s.Binds = []BindMount{{Source: "/etc", Target: "/e"}} }, "binds[0].source", "/etc"},
		{"bind under etc", func(s *Spec) { s.Binds = []BindMount{{Source: "/etc/shadow", Target: "/e"}} }, "binds[0].source", "/etc"},
		{"bind proc", func(s *Spec) { s.Binds = []BindMount{{Source: "/proc", Target: "/p"}} }, "binds[0].source", "/proc"},
		{"bind sys", func(s *Spec) { s.Binds = []BindMount{{Source: "/sys/fs/cgroup", Target: "/c"}} }, "binds[0].source", "/sys"},
		{"bind dev", func(s *Spec) { s.Binds = []BindMount{{Source: "/dev", Target: "/d"}} }, "binds[0].source", "/dev"},
		{"bind boot", func(s *Spec) { s.Binds = []BindMount{{Source: "/boot", Target: "/b"}} }, "binds[0].source", "/boot"},
		{"bind root home", func(s *Spec) { s.Binds = []BindMount{{Source: "/root/.ssh", Target: "/r"}} }, "binds[0].source", "/root"},
		{"bind docker data", func(s *Spec) { s.Binds = []BindMount{{Source: "/var/lib/docker/volumes", Target: "/v"}} }, "binds[0].source", "/var/lib/docker"},
		{"bind parent of docker data", func(s *Spec) { s.Binds = []BindMount{{Source: "/var", Target: "/v"}} }, "binds[0].source", "/var/lib/docker"},
		{"bind target root", func(s *Spec) { s.Binds = []BindMount{{Source: "/srv", Target: "/"}} }, "binds[0].target", "root"},
		{"bind target unclean", func(s *Spec) { s.Binds = []BindMount{{Source: "/srv", Target: "/srv/"}} }, "binds[0].target", "clean"},
		{"bind duplicate file target", func(s *Spec) {
			s.Files = []FileMount{{Target: "/etc/app.yml", Content: "x"}}
			s.Binds = []BindMount{{Source: "/srv/app.yml", Target: "/etc/app.yml"}}
		}, "binds[0].target", "already the target of files[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.modify(&s)
			err := s.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError for %s", err, tt.field)
			}
			if fe.Field != tt.field {
				t.Errorf("field = %q, want %q (message %q)", fe.Field, tt.field, fe.Message)
			}
			if !strings.Contains(fe.Message, tt.msg) {
				t.Errorf("message = %q, want it to contain %q", fe.Message, tt.msg)
			}
			if err.Error() != fe.Field+" "+fe.Message {
				t.Errorf("Error() = %q, want field + space + message", err)
			}
		})
	}
}

// Validate reports the first problem in field order.
func TestValidateFirstProblem(t *testing.T) {
	s := Spec{Image: "", Port: -1, Replicas: -1}
	if err := s.Validate(); err == nil || err.(*FieldError).Field != "image" {
		t.Errorf("Validate() = %v, want the image error first", err)
	}
	s.Image = "nginx"
	if err := s.Validate(); err == nil || err.(*FieldError).Field != "port" {
		t.Errorf("Validate() = %v, want the port error next", err)
	}
}

func TestNormalizeFileMode(t *testing.T) {
	s := validSpec()
	s.Files = []FileMount{{Target: "/a", Content: "x"}, {Target: "/b", Content: "x", Mode: 0o400}}
	s.Normalize()
	if s.Files[0].Mode != 0o444 || s.Files[1].Mode != 0o400 {
		t.Errorf("modes after Normalize: %#o, %#o; want 0444 (default), 0400 (kept)", s.Files[0].Mode, s.Files[1].Mode)
	}
}
