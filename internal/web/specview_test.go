package web

import (
	"fmt"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/app"
)

// The configuration card lists files and host paths, never a file's content.
func TestSpecOfFilesAndBinds(t *testing.T) {
	s := app.Spec{
		Files: []app.FileMount{
			{Target: "/etc/app.yml", Content: "listen: 80\n"},
			{Target: "/run/secrets/key", Content: "s3cr3t", Secret: true, Mode: 0o400},
		},
		Binds: []app.BindMount{{Source: "/srv/shared", Target: "/shared", ReadOnly: true}},
	}
	v := specOf(s)
	want := []string{"/etc/app.yml (config, 11 B, 0444)", "/run/secrets/key (secret, stored encrypted, 0400)"}
	if fmt.Sprint(v.Files) != fmt.Sprint(want) {
		t.Errorf("files %q, want %q", v.Files, want)
	}
	if len(v.Binds) != 1 || v.Binds[0] != "/srv/shared → /shared (read-only)" {
		t.Errorf("binds %q", v.Binds)
	}
	if strings.Contains(fmt.Sprint(v), "s3cr3t") || strings.Contains(fmt.Sprint(v), "listen") {
		t.Error("file content in the view")
	}
}
