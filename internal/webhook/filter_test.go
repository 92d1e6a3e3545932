package webhook

import (
	"errors"
	"strings"
	"testing"
)

func TestShouldDeploy(t *testing.T) {
	push := func(branch string, files []string) Event {
		return Event{Provider: GitHub, Kind: KindPush, Ref: "refs/heads/" + branch, Branch: branch,
			Commit: "9049f1265b7d61be4a8904a9a27120d2064dab3b", ChangedFiles: files}
	}
	tag := Event{Provider: GitLab, Kind: KindTag, Ref: "refs/tags/v2.0.0", Tag: "v2.0.0", Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}
	main := Filter{Branches: []string{"main"}}

	tests := []struct {
		name   string
		cfg    Filter
		ev     Event
		deploy bool
		reason string
	}{
		{"deploy branch", main, push("main", []string{"x"}), true, "push to branch main at 9049f1265b7d"},
		{"other branch", Filter{Branches: []string{"prod"}}, push("main", nil), false, "branch main is not deploy branch prod"},
		{"several deploy branches", Filter{Branches: []string{"prod", "release/*"}}, push("feature/x", nil), false, "branch feature/x is none of the deploy branches prod, release/*"},
		{"glob branch", Filter{Branches: []string{"prod", "release/*"}}, push("release/2026.11", nil), true, "push to branch release/2026.11"},
		{"glob does not cross /", Filter{Branches: []string{"release/*"}}, push("release/a/b", nil), false, "branch release/a/b is not deploy branch release/*"},
		{"** crosses /", Filter{Branches: []string{"release/**"}}, push("release/a/b", nil), true, "push to branch release/a/b"},
		{"exact name is not a prefix", main, push("main2", nil), false, "branch main2 is not deploy branch main"},
		{"no deploy branches", Filter{Tags: true}, push("main", nil), false, "no deploy branch is configured"},
		{"tag with tags off", main, tag, false, "tag v2.0.0 was pushed but tag deploys are off"},
		{"tag with tags on", Filter{Branches: []string{"main"}, Tags: true}, tag, true, "tag v2.0.0 points to da1560886d4f"},
		{"tag ignores watch paths", Filter{Tags: true, WatchPaths: []string{"src/**"}}, tag, true, "tag v2.0.0"},
		{"watch path matches", Filter{Branches: []string{"main"}, WatchPaths: []string{"src/**", "go.mod"}}, push("main", []string{"README.md", "src/api/main.go"}), true, "src/api/main.go matches watch path src/**"},
		{"no watch path matches", Filter{Branches: []string{"main"}, WatchPaths: []string{"src/**", "go.mod"}}, push("main", []string{"README.md", "docs/a.md"}), false, "no changed file matches the watch paths src/**, go.mod"},
		{"empty change set", Filter{Branches: []string{"main"}, WatchPaths: []string{"**"}}, push("main", []string{}), false, "no changed file matches"},
		{"unknown files deploy", Filter{Branches: []string{"main"}, WatchPaths: []string{"src/**"}}, push("main", nil), true, "changed files are not known, so watch paths were not applied"},
		{"branch checked before watch paths", Filter{Branches: []string{"prod"}, WatchPaths: []string{"**"}}, push("main", []string{"a"}), false, "branch main is not deploy branch prod"},
		{"ping", main, Event{Kind: KindPing, Reason: "GitHub ping for webhook 1: the webhook reaches Berth"}, false, "GitHub ping for webhook 1"},
		{"deleted branch", main, Event{Kind: KindOther, Branch: "main", Reason: "branch main was deleted"}, false, "branch main was deleted"},
		{"other event", main, Event{Kind: KindOther, Reason: `GitHub event "issues" is not a push`}, false, `"issues" is not a push`},
		{"zero event", main, Event{}, false, "unknown event kind"},
		{"invalid filter deploys nothing", Filter{Branches: []string{"main", "-x"}}, push("main", nil), false, "deploy filter is invalid: branches[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deploy, reason := ShouldDeploy(tt.cfg, tt.ev)
			if deploy != tt.deploy || !strings.Contains(reason, tt.reason) {
				t.Fatalf("ShouldDeploy = %v, %q; want %v, containing %q", deploy, reason, tt.deploy, tt.reason)
			}
		})
	}
}

func TestFirstToDeploy(t *testing.T) {
	cfg := Filter{Branches: []string{"main"}}
	evs, err := ParseAll(Bitbucket, bbHdr("repo:push"), fixture(t, "bitbucket/multi.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, reason := FirstToDeploy(cfg, evs); ok || reason != "tag v3.1.0 was pushed but tag deploys are off; branch hotfix/rounding was deleted" {
		t.Fatalf("FirstToDeploy = %v, %q; want no deploy with both reasons", ok, reason)
	}
	cfg.Tags = true
	ev, ok, _ := FirstToDeploy(cfg, evs)
	if !ok || ev.Tag != "v3.1.0" {
		t.Fatalf("FirstToDeploy with tags on = %v, %+v; want the tag", ok, ev)
	}
	if _, ok, reason := FirstToDeploy(cfg, nil); ok || reason == "" {
		t.Fatalf("FirstToDeploy(nil) = %v, %q; want no deploy with a reason", ok, reason)
	}
}

func TestFilterValidate(t *testing.T) {
	ok := Filter{Branches: []string{"main", "release/*", "hotfix/**", "v[0-9]*"}, Tags: true, WatchPaths: []string{"src/**", "**/*.go", "docs/*.md"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(%+v) = %v; want nil", ok, err)
	}
	tests := []struct {
		cfg   Filter
		field string
		msg   string
	}{
		{Filter{Branches: []string{"-main"}}, "branches[0]", `"-main"`},
		{Filter{Branches: []string{"main", "a..b"}}, "branches[1]", `".."`},
		{Filter{Branches: []string{"feat ure"}}, "branches[0]", "git does not allow"},
		{Filter{Branches: []string{"-*"}}, "branches[0]", `starts with "-"`},
		{Filter{Branches: []string{"release/["}}, "branches[0]", "not a valid pattern"},
		{Filter{Branches: []string{""}}, "branches[0]", "empty"},
		{Filter{Branches: []string{"x.lock"}}, "branches[0]", ".lock"},
		{Filter{WatchPaths: []string{"src/**", "src/**.go"}}, "watch_paths[1]", `"src/**.go"`},
		{Filter{WatchPaths: []string{"/etc/**"}}, "watch_paths[0]", "relative to the repository root"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(fe.Message, tt.msg) {
			t.Errorf("Validate(%+v) = %v; want a FieldError on %s mentioning %q", tt.cfg, err, tt.field, tt.msg)
		}
	}
	// Every problem is reported, not just the first.
	err := Filter{Branches: []string{"-a"}, WatchPaths: []string{"["}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "branches[0]") || !strings.Contains(err.Error(), "watch_paths[0]") {
		t.Fatalf("Validate = %v; want both fields named", err)
	}
}

func TestParseProvider(t *testing.T) {
	for _, p := range Providers {
		got, err := ParseProvider(string(p))
		if err != nil || got != p {
			t.Errorf("ParseProvider(%q) = %q, %v", p, got, err)
		}
	}
	for _, s := range []string{"", "GitHub", "gitlab.com", "bitbucket-server", "gogs"} {
		_, err := ParseProvider(s)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "provider" || !strings.Contains(fe.Message, "allowed: github, gitlab, gitea, bitbucket") {
			t.Errorf("ParseProvider(%q) = %v; want a FieldError on provider listing the allowed names", s, err)
		}
	}
	var p Provider
	if err := p.UnmarshalText([]byte("gitea")); err != nil || p != Gitea {
		t.Fatalf("UnmarshalText(gitea) = %v, %q", err, p)
	}
	if err := p.UnmarshalText([]byte("svn")); err == nil || p != Gitea {
		t.Fatalf("UnmarshalText(svn) = %v and changed p to %q; want an error and p unchanged", err, p)
	}
}
