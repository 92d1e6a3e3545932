package authz

import (
	"strings"
	"testing"
)

func TestBuiltinRolesAreNested(t *testing.T) {
	seen := map[Permission]bool{}
	for _, p := range All {
		if seen[p] {
			t.Errorf("%s listed twice", p)
		}
		seen[p] = true
	}
	for i := 0; i+1 < len(Builtin); i++ {
		if !Builtin[i].Covers(Builtin[i+1]) || Builtin[i+1].Covers(Builtin[i]) {
			t.Errorf("%s must strictly cover %s", Builtin[i].Name, Builtin[i+1].Name)
		}
	}
	for _, r := range Builtin {
		for _, p := range r.Permissions {
			if !seen[p] {
				t.Errorf("%s has %s, which All does not list", r.Name, p)
			}
		}
	}
}

func TestViewerChangesNothingAndSeesNoSecret(t *testing.T) {
	for _, p := range All {
		write := !strings.HasSuffix(string(p), ".read") && p != AppLogs && p != TokenWrite
		if write && Can(Viewer, p) {
			t.Errorf("viewer has %s", p)
		}
	}
	if !Can(Viewer, ProjectRead) || !Can(Viewer, AppLogs) {
		t.Error("viewer cannot read projects or logs")
	}
	if Can(Member, ProjectRead) || Can(Member, MemberRead) || !Can(Member, OrgRead) {
		t.Error("a member without grants sees more than the organization")
	}
}

func TestOwnerOnly(t *testing.T) {
	for _, p := range []Permission{OrgWrite, AuditWrite} {
		if !Can(Owner, p) || Can(Admin, p) || Can(Developer, p) {
			t.Errorf("%s: owner %v admin %v developer %v; want only the owner", p, Can(Owner, p), Can(Admin, p), Can(Developer, p))
		}
	}
	if Can(Developer, ServerExec) || Can(Developer, MemberInvite) || Can(Developer, AuditRead) {
		t.Error("developer has a host, member or audit permission")
	}
}

func TestCoversAndUnknownRoles(t *testing.T) {
	cases := []struct {
		grantor, granted string
		want             bool
	}{
		{Owner, Owner, true}, {Admin, Owner, false}, {Viewer, Member, true}, {Member, Viewer, false}, {Admin, Admin, true}, {Admin, Developer, true},
		{Developer, Admin, false}, {Viewer, Developer, false}, {Viewer, Viewer, true},
		{"root", Viewer, false}, {Owner, "root", false}, {"", "", false},
	}
	for _, c := range cases {
		if got := Covers(c.grantor, c.granted); got != c.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", c.grantor, c.granted, got, c.want)
		}
	}
	if Can("", ProjectRead) || Can("Owner", ProjectRead) {
		t.Error("an unknown role (names are case-sensitive) has a permission")
	}
}
