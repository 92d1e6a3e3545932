package cli

import (
	"strings"
	"testing"
)

func TestRegistryCommands(t *testing.T) {
	newAppServer(t)
	const pw = "registry-pw-cli-never-printed"
	r := mustRun(t, pw+"\n", "registry", "add", "ghcr", "ghcr.io", "--username", "bot", "--password-stdin")
	if !strings.Contains(r.stdout, "Added registry ghcr for ghcr.io") {
		t.Errorf("add: %q", r.stdout)
	}
	r = mustRun(t, "", "registry", "list")
	if !strings.Contains(r.stdout, "ghcr") || !strings.Contains(r.stdout, "bot") || strings.Contains(r.stdout, pw) {
		t.Errorf("list: %q", r.stdout)
	}
	if r := mustRun(t, "", "registry", "list", "-o", "json"); strings.Contains(r.stdout, pw) || !strings.Contains(r.stdout, `"has_password": true`) {
		t.Errorf("list json: %q", r.stdout)
	}
	if r := run(t, pw+"\n", "registry", "add", "bad", "https://x.example.com", "--username", "u", "--password-stdin"); r.err == nil || !strings.Contains(r.err.Error(), "server") {
		t.Errorf("add with a scheme: %v", r.err)
	}
	if r := run(t, "", "registry", "test", "nope"); r.err == nil || !strings.Contains(r.err.Error(), "registry nope not found") {
		t.Errorf("test unknown: %v", r.err)
	}
	mustRun(t, "", "registry", "remove", "ghcr")
	if r := mustRun(t, "", "registry", "list"); strings.Contains(r.stdout, "ghcr") {
		t.Errorf("after remove: %q", r.stdout)
	}
}
