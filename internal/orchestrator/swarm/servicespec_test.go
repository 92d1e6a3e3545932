package swarm

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/app"
	"github.com/berthpaas/berth/internal/orchestrator"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

var testProbe = ProbeMount{HostPath: "/usr/local/bin/berth", Args: []string{"probe"}}

func baseRelease() orchestrator.Release {
	return orchestrator.Release{
		Service: "web-7",
		Alias:   "web",
		Network: "berth-env-prod",
		Image:   "registry.example.com/team/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Spec: app.Spec{
			Image:    "registry.example.com/team/web:1.4",
			Replicas: 2,
		},
		Labels: map[string]string{
			orchestrator.LabelApp:        "app_01",
			orchestrator.LabelDeployment: "dep_07",
			orchestrator.LabelRelease:    "7",
		},
	}
}

func TestServiceSpecGolden(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(r *orchestrator.Release)
		opts  SpecOptions
		check func(t *testing.T, got []byte)
	}{
		{name: "minimal", edit: func(r *orchestrator.Release) {}},
		{
			name: "web_full",
			opts: SpecOptions{Probe: testProbe, LogDriver: &rotatedLog},
			edit: func(r *orchestrator.Release) {
				r.Edge = true
				r.VolumePrefix = "web-app01"
				r.Env = map[string]string{"Z": "last", "A": "first", "DATABASE_URL": "postgres://x"}
				r.Spec = app.Spec{
					Command:         []string{"/app/server"},
					Args:            []string{"--listen", ":8080"},
					WorkingDir:      "/app",
					User:            "1000:1000",
					Port:            8080,
					Ports:           []app.PublishedPort{{Target: 25, Published: 2525}, {Target: 53, Published: 5353, Protocol: "udp"}},
					Replicas:        3,
					Resources:       app.Resources{CPULimit: 0.5, MemoryLimit: 256 << 20, CPUReservation: 0.25, MemoryReservation: 64 << 20},
					Restart:         "on-failure",
					Constraints:     []string{"node.role==worker"},
					Labels:          map[string]string{"team": "core", orchestrator.LabelApp: "spoofed"},
					StopGracePeriod: app.Duration(30 * time.Second),
					ReadOnly:        true,
					Health:          &app.HealthCheck{Type: app.HealthHTTP, Path: "healthz", ExpectStatus: 204, Interval: app.Duration(time.Second), Timeout: app.Duration(3 * time.Second), Retries: 5, StartPeriod: app.Duration(10 * time.Second)},
					Volumes:         []app.Volume{{Name: "data", Target: "/data"}, {Name: "cache", Target: "/cache", ReadOnly: true}},
				}
			},
			check: func(t *testing.T, got []byte) {
				if strings.Contains(string(got), "spoofed") {
					t.Error("a user label overrode Berth's berth.app label")
				}
			},
		},
		{
			name: "default_tcp_probe",
			opts: SpecOptions{Probe: ProbeMount{HostPath: "/tmp/probe", ContainerPath: "/probe"}},
			edit: func(r *orchestrator.Release) { r.Spec.Port = 3000 },
		},
		{
			name: "image_healthcheck_kept",
			opts: SpecOptions{Probe: testProbe},
			edit: func(r *orchestrator.Release) { r.Spec.Port = 3000; r.ImageHasHealthcheck = true },
		},
		{
			name: "command_health",
			edit: func(r *orchestrator.Release) {
				r.Spec.Health = &app.HealthCheck{Type: app.HealthCommand, Command: []string{"pg_isready", "-q"}}
			},
		},
		{
			name: "files_binds",
			opts: SpecOptions{FileIDs: map[string]string{
				FileName("web-app01", app.FileMount{Target: "/etc/web/config.yml", Content: "listen: 8080\n", Mode: 0o444}):                 "cfg1",
				FileName("web-app01", app.FileMount{Target: "/run/secrets/token", Content: "t0ken-DO-NOT-LEAK", Secret: true, Mode: 0o400}): "sec1",
			}},
			edit: func(r *orchestrator.Release) {
				r.VolumePrefix = "web-app01"
				r.Spec.Files = []app.FileMount{
					{Target: "/etc/web/config.yml", Content: "listen: 8080\n"}, // mode 0 = 0444
					{Target: "/run/secrets/token", Content: "t0ken-DO-NOT-LEAK", Secret: true, Mode: 0o400},
				}
				r.Spec.Binds = []app.BindMount{{Source: "/srv/shared", Target: "/shared", ReadOnly: true}, {Source: "/srv/uploads", Target: "/uploads"}}
			},
			check: func(t *testing.T, got []byte) {
				if strings.Contains(string(got), "t0ken") || strings.Contains(string(got), "listen") {
					t.Error("file content is in the service spec")
				}
			},
		},
		{
			name: "health_none",
			edit: func(r *orchestrator.Release) {
				r.Spec.Port = 80
				r.ImageHasHealthcheck = true
				r.Spec.Health = &app.HealthCheck{Type: app.HealthNone}
				r.Spec.Restart = "none"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := baseRelease()
			tt.edit(&r)
			spec, err := ServiceSpec(r, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(spec, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			if tt.check != nil {
				tt.check(t, got)
			}
			path := filepath.Join("testdata", tt.name+".golden.json")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestServiceSpecGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("spec differs from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

func TestServiceSpecHash(t *testing.T) {
	r := baseRelease()
	a, err := ServiceSpec(r, SpecOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ServiceSpec(r, SpecOptions{})
	ha, hb := a.Annotations.Labels[orchestrator.LabelSpecHash], b.Annotations.Labels[orchestrator.LabelSpecHash]
	if len(ha) != 64 || ha != hb {
		t.Fatalf("hash %q and %q: want the same 64 hex digits", ha, hb)
	}
	if got, _ := specHash(a); got != ha {
		t.Errorf("recomputed hash of the spec %s, label %s", got, ha)
	}
	r.Spec.Replicas = 3
	c, _ := ServiceSpec(r, SpecOptions{})
	if c.Annotations.Labels[orchestrator.LabelSpecHash] != ha {
		t.Error("changing replicas (scaling in place) changed the hash")
	}
	r.Spec.Args = []string{"-v"}
	d, _ := ServiceSpec(r, SpecOptions{})
	if d.Annotations.Labels[orchestrator.LabelSpecHash] == ha {
		t.Error("changing args kept the hash")
	}
	if _, ok := a.TaskTemplate.ContainerSpec.Labels[orchestrator.LabelSpecHash]; ok {
		t.Error("the hash label is on the containers")
	}
}

func TestServiceSpecErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(r *orchestrator.Release)
		opts SpecOptions
		want string
	}{
		{"no image", func(r *orchestrator.Release) { r.Image = "" }, SpecOptions{}, "image is empty"},
		{"no alias", func(r *orchestrator.Release) { r.Alias = "" }, SpecOptions{}, "alias is empty"},
		{"volumes without prefix", func(r *orchestrator.Release) { r.Spec.Volumes = []app.Volume{{Name: "d", Target: "/d"}} }, SpecOptions{}, "volume prefix"},
		{"file without config id", func(r *orchestrator.Release) {
			r.VolumePrefix = "p"
			r.Spec.Files = []app.FileMount{{Target: "/a", Content: "x"}}
		}, SpecOptions{}, "create it first"},
		{"files without prefix", func(r *orchestrator.Release) { r.Spec.Files = []app.FileMount{{Target: "/a", Content: "x"}} }, SpecOptions{}, "volume prefix"},
		{"bad restart", func(r *orchestrator.Release) { r.Spec.Restart = "always" }, SpecOptions{}, `restart: "always"`},
		{"bad protocol", func(r *orchestrator.Release) {
			r.Spec.Ports = []app.PublishedPort{{Target: 1, Published: 1, Protocol: "sctp"}}
		}, SpecOptions{}, "protocol"},
		{"tcp probe without binary", func(r *orchestrator.Release) { r.Spec.Port = 80 }, SpecOptions{}, "probe binary"},
		{"http without port", func(r *orchestrator.Release) { r.Spec.Health = &app.HealthCheck{Type: app.HealthHTTP} }, SpecOptions{Probe: testProbe}, "no port"},
		{"unknown health type", func(r *orchestrator.Release) { r.Spec.Health = &app.HealthCheck{Type: "grpc"} }, SpecOptions{}, `"grpc"`},
		{"empty command", func(r *orchestrator.Release) { r.Spec.Health = &app.HealthCheck{Type: app.HealthCommand} }, SpecOptions{}, "command is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := baseRelease()
			tt.edit(&r)
			_, err := ServiceSpec(r, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestFileName(t *testing.T) {
	f := app.FileMount{Target: "/etc/a", Content: "x"}
	n := FileName("web-app01", f)
	if !strings.HasPrefix(n, "web-app01-") || len(n) != len("web-app01-")+12 {
		t.Fatalf("FileName = %q, want web-app01- and 12 hex digits", n)
	}
	if g := FileName("web-app01", app.FileMount{Target: "/etc/a", Content: "x", Mode: app.DefaultFileMode}); g != n {
		t.Errorf("mode 0 and the default mode name different configs: %s, %s", n, g)
	}
	for _, other := range []app.FileMount{
		{Target: "/etc/b", Content: "x"},
		{Target: "/etc/a", Content: "y"},
		{Target: "/etc/a", Content: "x", Mode: 0o400},
		{Target: "/etc/a\x00x", Content: ""}, // separators keep target and content apart
	} {
		if g := FileName("web-app01", other); g == n {
			t.Errorf("%+v has the same name as %+v: %s", other, f, g)
		}
	}
}
