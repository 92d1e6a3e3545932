package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInvitationAndMemberCommands(t *testing.T) {
	srv := newAppServer(t)
	ownerConfig := filepath.Join(t.TempDir(), "owner.json")
	graceConfig := filepath.Join(t.TempDir(), "grace.json")
	cfg, err := loadConfig(mustConfigPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := saveConfig(ownerConfig, cfg); err != nil {
		t.Fatal(err)
	}
	asOwner := func() { t.Setenv("BERTH_CLI_CONFIG", ownerConfig) }
	asGrace := func() { t.Setenv("BERTH_CLI_CONFIG", graceConfig) }
	asOwner()
	mustRun(t, "", "project", "create", "shop")

	mustFail(t, "--role is required", "", "invite", "create", "grace@example.com")
	r := mustRun(t, "", "invite", "create", "grace@example.com", "--role", "developer")
	link := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(link, srv.url+"/invitations/accept?token=") || strings.Contains(link, "\n") {
		t.Fatalf("invite create printed %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "shown only once") {
		t.Errorf("invite create stderr %q", r.stderr)
	}
	r = mustRun(t, "", "invite", "list")
	if !strings.Contains(r.stdout, "grace@example.com") || !strings.Contains(r.stdout, "pending") || strings.Contains(r.stdout, "token=") {
		t.Errorf("invite list:\n%s", r.stdout)
	}

	// Grace accepts from a machine without a login: her account is created
	// and the CLI is logged in to it, on the server the link names.
	asGrace()
	mustFail(t, "not an invitation link", "", "invite", "accept", "https://x.example.com/nothing")
	r = mustRun(t, password+"\n", "invite", "accept", link, "--name", "Grace", "--password-stdin")
	if !strings.Contains(r.stdout, "Joined Default as developer") || !strings.Contains(r.stdout, "Logged in to "+srv.url+" as grace@example.com") {
		t.Errorf("invite accept: %s", r.stdout)
	}
	if c := readConfig(t, graceConfig); c.Server != srv.url || c.Email != "grace@example.com" || !strings.HasPrefix(c.Token, "berth_") {
		t.Errorf("grace's config %+v", c)
	}
	r = mustRun(t, "", "whoami")
	if !strings.Contains(r.stdout, "grace@example.com") || !strings.Contains(r.stdout, "developer") {
		t.Errorf("whoami: %s", r.stdout)
	}
	mustFail(t, "not valid", password+"\n", "invite", "accept", link, "--password-stdin")
	mustFail(t, "does not allow member.invite", "", "invite", "create", "henry@example.com", "--role", "viewer")

	asOwner()
	r = mustRun(t, "", "member", "list")
	if !strings.Contains(r.stdout, "grace@example.com") || !strings.Contains(r.stdout, "developer") {
		t.Errorf("member list:\n%s", r.stdout)
	}
	r = mustRun(t, "", "member", "role", "grace@example.com", "member")
	if !strings.Contains(r.stdout, "grace@example.com is now member") {
		t.Errorf("member role: %s", r.stdout)
	}
	mustFail(t, "write PROJECT or PROJECT/ENVIRONMENT", "", "member", "grant", "grace@example.com", "shop/a/b", "viewer")
	r = mustRun(t, "", "member", "grant", "grace@example.com", "shop/production", "developer")
	if !strings.Contains(r.stdout, "shop/production\tdeveloper") {
		t.Errorf("member grant: %s", r.stdout)
	}
	mustFail(t, "see berth member list", "", "member", "role", "nobody@example.com", "viewer")

	asGrace()
	r = mustRun(t, "", "project", "list")
	if !strings.Contains(r.stdout, "shop") {
		t.Errorf("granted member's projects: %s", r.stdout)
	}

	asOwner()
	mustRun(t, "", "member", "grant", "grace@example.com", "shop/production", "none")
	r = mustRun(t, "", "member", "remove", "grace@example.com")
	if !strings.Contains(r.stdout, "Removed grace@example.com") {
		t.Errorf("member remove: %s", r.stdout)
	}
	asGrace()
	mustFail(t, "not logged in", "", "whoami")

	asOwner()
	r = mustRun(t, "", "invite", "create", "henry@example.com", "--role", "viewer")
	var id string
	for _, line := range strings.Split(mustRun(t, "", "invite", "list").stdout, "\n") {
		if strings.Contains(line, "henry@example.com") {
			id = strings.Fields(line)[0]
		}
	}
	mustRun(t, "", "invite", "revoke", id)
	mustFail(t, "no pending invitation", "", "invite", "revoke", id)
	asGrace()
	mustFail(t, "not valid", password+"\n", "invite", "accept", strings.TrimSpace(r.stdout), "--password-stdin")

	// Leaving: confirmed, refused to the owner, and the end of the login.
	asOwner()
	mustFail(t, "confirm with --yes", "", "org", "leave")
	mustFail(t, "transfer ownership first", "", "org", "leave", "--yes")
	link = strings.TrimSpace(mustRun(t, "", "invite", "create", "ivy@example.com", "--role", "viewer").stdout)
	t.Setenv("BERTH_CLI_CONFIG", filepath.Join(t.TempDir(), "ivy.json"))
	mustRun(t, password+"\n", "invite", "accept", link, "--name", "Ivy", "--password-stdin")
	if r := mustRun(t, "", "org", "leave", "--yes"); !strings.Contains(r.stdout, "Left the organization") {
		t.Errorf("org leave: %s", r.stdout)
	}
	mustFail(t, "not logged in", "", "whoami")
}

func TestOrgCommands(t *testing.T) {
	srv := newAppServer(t)
	path := mustConfigPath(t)
	before := readConfig(t, path)
	r := mustRun(t, "", "org", "list")
	if !strings.Contains(r.stdout, "*") || !strings.Contains(r.stdout, "Default") || !strings.Contains(r.stdout, "owner") {
		t.Errorf("org list:\n%s", r.stdout)
	}
	r = mustRun(t, "", "org", "create", "Rival Labs")
	if !strings.Contains(r.stdout, `berth org switch "Rival Labs"`) {
		t.Errorf("org create: %s", r.stdout)
	}
	mustFail(t, "not a member of an organization named", "", "org", "switch", "Nope")
	r = mustRun(t, "", "org", "switch", "Rival Labs")
	if !strings.Contains(r.stdout, "Switched to Rival Labs") {
		t.Errorf("org switch: %s", r.stdout)
	}
	after := readConfig(t, path)
	if after.Token == before.Token || after.Server != srv.url || after.Email != before.Email {
		t.Errorf("config after switch %+v (before %+v)", after, before)
	}
	// The previous token is revoked, like berth login's.
	if _, err := NewClient(srv.url, before.Token).Me(t.Context()); err == nil {
		t.Error("the previous token still works")
	}
	r = mustRun(t, "", "whoami")
	if !strings.Contains(r.stdout, "Rival Labs") {
		t.Errorf("whoami after switch: %s", r.stdout)
	}
	mustFail(t, "nothing to change", "", "org", "set")
	mustFail(t, "two-factor", "", "org", "set", "--require-2fa")
	mustRun(t, "", "org", "switch", "Default")

	// Tokens limited to a role.
	r = mustRun(t, "", "token", "create", "dash", "--role", "viewer")
	tok := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(tok, "berth_") || !strings.Contains(r.stderr, "limited to viewer") {
		t.Errorf("token create --role: %q %q", r.stdout, r.stderr)
	}
	r = mustRun(t, "", "token", "list")
	if !strings.Contains(r.stdout, "ROLE") || !strings.Contains(r.stdout, "viewer") {
		t.Errorf("token list:\n%s", r.stdout)
	}
	t.Setenv("BERTH_TOKEN", tok)
	mustFail(t, "limited to the viewer role", "", "project", "create", "x")
}

func mustConfigPath(t *testing.T) string {
	t.Helper()
	p, err := configPath(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
