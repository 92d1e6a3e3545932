package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

const zeros = "0000000000000000000000000000000000000000"

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// sameEvent compares every field; timestamps by instant.
func sameEvent(t *testing.T, got, want Event) {
	t.Helper()
	if !got.HeadCommit.Timestamp.Equal(want.HeadCommit.Timestamp) {
		t.Errorf("HeadCommit.Timestamp = %v; want %v", got.HeadCommit.Timestamp, want.HeadCommit.Timestamp)
	}
	got.HeadCommit.Timestamp, want.HeadCommit.Timestamp = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("event mismatch\n got: %#v\nwant: %#v", got, want)
	}
}

var (
	ghRepo = Repository{FullName: "acme/api", CloneURL: "https://github.com/acme/api.git", SSHURL: "git@github.com:acme/api.git", WebURL: "https://github.com/acme/api"}
	ghHead = Commit{
		ID: "9049f1265b7d61be4a8904a9a27120d2064dab3b", Message: "Export: stream rows\n\nAvoids holding the whole export in memory.",
		AuthorName: "Ana Lima", AuthorEmail: "ana@acme.test", Timestamp: ts("2026-11-20T14:03:11+01:00"),
		URL: "https://github.com/acme/api/commit/9049f1265b7d61be4a8904a9a27120d2064dab3b",
	}
	glRepo = Repository{FullName: "acme/platform/api", CloneURL: "https://gitlab.acme.test/acme/platform/api.git", SSHURL: "git@gitlab.acme.test:acme/platform/api.git", WebURL: "https://gitlab.acme.test/acme/platform/api"}
	gtRepo = Repository{FullName: "acme/shop", CloneURL: "https://git.acme.test/acme/shop.git", SSHURL: "ssh://git@git.acme.test:2222/acme/shop.git", WebURL: "https://git.acme.test/acme/shop"}
	bbRepo = Repository{FullName: "acme/billing", CloneURL: "https://bitbucket.org/acme/billing.git", WebURL: "https://bitbucket.org/acme/billing"}
)

func ghHdr(event string) http.Header {
	return hdr("X-GitHub-Event", event, "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "Content-Type", "application/json")
}

// manyCommits returns n GitHub-shaped commits, each touching its own file.
func manyCommits(n int) []any {
	cs := make([]any, n)
	for i := range cs {
		cs[i] = map[string]any{
			"id":       fmt.Sprintf("%040x", i+1),
			"message":  fmt.Sprintf("change %d", i),
			"added":    []any{},
			"removed":  []any{},
			"modified": []any{fmt.Sprintf("docs/page%02d.md", i)},
		}
	}
	return cs
}

func pages(n int) []string {
	var ps []string
	for i := range n {
		ps = append(ps, fmt.Sprintf("docs/page%02d.md", i))
	}
	return ps
}

func TestParseGitHub(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		body []byte
		want Event
	}{
		{"push to branch", ghHdr("push"), fixture(t, "github/push.json"), Event{
			Provider: GitHub, Kind: KindPush, Name: "push", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Ref: "refs/heads/main", Branch: "main",
			Commit: "9049f1265b7d61be4a8904a9a27120d2064dab3b", Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
			Repo: ghRepo, HeadCommit: ghHead,
			ChangedFiles: []string{"cmd/api/main.go", "go.mod", "internal/export/buffer.go", "internal/export/csv.go"},
		}},
		{"annotated tag builds the tagged commit", ghHdr("push"), fixture(t, "github/tag.json"), Event{
			Provider: GitHub, Kind: KindTag, Name: "push", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Ref: "refs/tags/v1.4.0", Tag: "v1.4.0", Commit: "9049f1265b7d61be4a8904a9a27120d2064dab3b",
			Repo: ghRepo, HeadCommit: ghHead,
		}},
		{"branch deleted", ghHdr("push"), fixture(t, "github/delete.json"), Event{
			Provider: GitHub, Kind: KindOther, Name: "push", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Ref: "refs/heads/feature/login", Branch: "feature/login", Before: "4e6c2a0d8b1f3e5a7c9d0b2e4f6a8c0d1e3f5a7b",
			Repo: ghRepo, Reason: "branch feature/login was deleted",
		}},
		{"ping", ghHdr("ping"), fixture(t, "github/ping.json"), Event{
			Provider: GitHub, Kind: KindPing, Name: "ping", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Repo: ghRepo, Reason: "GitHub ping for webhook 498117720: the webhook reaches Berth",
		}},
		{"issues event ignored", ghHdr("issues"), fixture(t, "github/issues.json"), Event{
			Provider: GitHub, Kind: KindOther, Name: "issues", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Repo: ghRepo, Reason: `GitHub event "issues" is not a push`,
		}},
		{"pull_request ignored", ghHdr("pull_request"), []byte(`{"action":"synchronize","number":7,"before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"9049f1265b7d61be4a8904a9a27120d2064dab3b"}`), Event{
			Provider: GitHub, Kind: KindOther, Name: "pull_request", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Reason: `GitHub event "pull_request" is not a push`,
		}},
		{"20 commits: list may be cut, files unknown", ghHdr("push"), mutate(t, "github/push.json", func(m map[string]any) {
			m["commits"] = manyCommits(20)
		}), Event{
			Provider: GitHub, Kind: KindPush, Name: "push", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Ref: "refs/heads/main", Branch: "main",
			Commit: "9049f1265b7d61be4a8904a9a27120d2064dab3b", Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
			Repo: ghRepo, HeadCommit: ghHead,
		}},
		{"19 commits: files known", ghHdr("push"), mutate(t, "github/push.json", func(m map[string]any) {
			m["commits"] = manyCommits(19)
		}), Event{
			Provider: GitHub, Kind: KindPush, Name: "push", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Ref: "refs/heads/main", Branch: "main",
			Commit: "9049f1265b7d61be4a8904a9a27120d2064dab3b", Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
			Repo: ghRepo, HeadCommit: ghHead,
			ChangedFiles: pages(19),
		}},
		{"forced push: files unknown", ghHdr("push"), mutate(t, "github/push.json", func(m map[string]any) { m["forced"] = true }), Event{
			Provider: GitHub, Kind: KindPush, Name: "push", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Ref: "refs/heads/main", Branch: "main",
			Commit: "9049f1265b7d61be4a8904a9a27120d2064dab3b", Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
			Repo: ghRepo, HeadCommit: ghHead,
		}},
		{"new branch: no before, files unknown", ghHdr("push"), mutate(t, "github/push.json", func(m map[string]any) {
			m["before"], m["created"], m["ref"] = zeros, true, "refs/heads/release/2026.11"
		}), Event{
			Provider: GitHub, Kind: KindPush, Name: "push", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Ref: "refs/heads/release/2026.11", Branch: "release/2026.11",
			Commit: "9049f1265b7d61be4a8904a9a27120d2064dab3b",
			Repo:   ghRepo, HeadCommit: ghHead,
		}},
		{"empty commit: files known and empty", ghHdr("push"), mutate(t, "github/push.json", func(m map[string]any) {
			m["commits"] = []any{map[string]any{"id": "9049f1265b7d61be4a8904a9a27120d2064dab3b", "added": []any{}, "removed": []any{}, "modified": []any{}}}
		}), Event{
			Provider: GitHub, Kind: KindPush, Name: "push", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Ref: "refs/heads/main", Branch: "main",
			Commit: "9049f1265b7d61be4a8904a9a27120d2064dab3b", Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
			Repo: ghRepo, HeadCommit: ghHead, ChangedFiles: []string{},
		}},
		{"form-encoded payload", hdr("X-GitHub-Event", "ping", "X-GitHub-Delivery", "d-1", "Content-Type", "application/x-www-form-urlencoded"),
			[]byte("payload=" + url.QueryEscape(string(fixture(t, "github/ping.json")))), Event{
				Provider: GitHub, Kind: KindPing, Name: "ping", DeliveryID: "d-1",
				Repo: ghRepo, Reason: "GitHub ping for webhook 498117720: the webhook reaches Berth",
			}},
		{"notes ref is neither branch nor tag", ghHdr("push"), mutate(t, "github/delete.json", func(m map[string]any) {
			m["ref"], m["after"] = "refs/notes/commits", "9049f1265b7d61be4a8904a9a27120d2064dab3b"
		}), Event{
			Provider: GitHub, Kind: KindOther, Name: "push", DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			Ref: "refs/notes/commits", Repo: ghRepo, Reason: "ref refs/notes/commits is neither a branch nor a tag",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(GitHub, tt.h, tt.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			sameEvent(t, got, tt.want)
		})
	}
}

func glHdr(event string) http.Header {
	return hdr("X-Gitlab-Event", event, "X-Gitlab-Token", "t", "Idempotency-Key", "6e3b0a4c-1f2d-4e5a-9b8c-7d6e5f4a3b2c",
		"X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e", "Content-Type", "application/json")
}

func TestParseGitLab(t *testing.T) {
	const key = "6e3b0a4c-1f2d-4e5a-9b8c-7d6e5f4a3b2c"
	head := Commit{
		ID: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Message: "Fix rounding in totals\n\nCloses #88\n",
		AuthorName: "Ben Ode", AuthorEmail: "[REDACTED]", Timestamp: ts("2026-11-19T10:27:31+02:00"),
		URL: "https://gitlab.acme.test/acme/platform/api/-/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
	}
	tests := []struct {
		name string
		h    http.Header
		body []byte
		want Event
	}{
		{"push to branch", glHdr("Push Hook"), fixture(t, "gitlab/push.json"), Event{
			Provider: GitLab, Kind: KindPush, Name: "Push Hook", DeliveryID: key,
			Ref: "refs/heads/main", Branch: "main",
			Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
			Repo: glRepo, HeadCommit: head,
			ChangedFiles: []string{"internal/orders/legacy.go", "internal/orders/total.go", "internal/orders/total_test.go", "locale/ca.po"},
		}},
		{"delivery id from X-Gitlab-Event-UUID on older GitLab", hdr("X-Gitlab-Event", "Push Hook", "X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e"), fixture(t, "gitlab/push.json"), Event{
			Provider: GitLab, Kind: KindPush, Name: "Push Hook", DeliveryID: "13792a34-cac6-4fda-95a8-c58e00a3954e",
			Ref: "refs/heads/main", Branch: "main",
			Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
			Repo: glRepo, HeadCommit: head,
			ChangedFiles: []string{"internal/orders/legacy.go", "internal/orders/total.go", "internal/orders/total_test.go", "locale/ca.po"},
		}},
		{"annotated tag builds checkout_sha", glHdr("Tag Push Hook"), fixture(t, "gitlab/tag.json"), Event{
			Provider: GitLab, Kind: KindTag, Name: "Tag Push Hook", DeliveryID: key,
			Ref: "refs/tags/v2.0.0", Tag: "v2.0.0", Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
			Repo: glRepo, HeadCommit: Commit{ID: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
		}},
		{"branch deleted", glHdr("Push Hook"), fixture(t, "gitlab/delete.json"), Event{
			Provider: GitLab, Kind: KindOther, Name: "Push Hook", DeliveryID: key,
			Ref: "refs/heads/spike/cache", Branch: "spike/cache", Before: "3d9a2f61c0e8b7a4d5c6e7f8091a2b3c4d5e6f70",
			Repo: glRepo, Reason: "branch spike/cache was deleted",
		}},
		{"merge request ignored", glHdr("Merge Request Hook"), fixture(t, "gitlab/merge_request.json"), Event{
			Provider: GitLab, Kind: KindOther, Name: "Merge Request Hook", DeliveryID: key,
			Repo: glRepo, Reason: `GitLab event "Merge Request Hook" is not a push`,
		}},
		{"25 commits, 20 listed: files unknown", glHdr("Push Hook"), mutate(t, "gitlab/push.json", func(m map[string]any) {
			cs := manyCommits(19)
			m["commits"] = append(cs, m["commits"].([]any)[1])
			m["total_commits_count"] = 25
		}), Event{
			Provider: GitLab, Kind: KindPush, Name: "Push Hook", DeliveryID: key,
			Ref: "refs/heads/main", Branch: "main",
			Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
			Repo: glRepo, HeadCommit: head,
		}},
		{"rewind (no commits, no forced flag): files unknown", glHdr("Push Hook"), mutate(t, "gitlab/push.json", func(m map[string]any) {
			m["commits"], m["total_commits_count"] = []any{}, 0
		}), Event{
			Provider: GitLab, Kind: KindPush, Name: "Push Hook", DeliveryID: key,
			Ref: "refs/heads/main", Branch: "main",
			Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
			Repo: glRepo, HeadCommit: Commit{ID: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(GitLab, tt.h, tt.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			sameEvent(t, got, tt.want)
		})
	}
}

func gtHdr(event string) http.Header {
	return hdr("X-Gitea-Event", event, "X-Gitea-Event-Type", event, "X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473", "Content-Type", "application/json")
}

func TestParseGitea(t *testing.T) {
	const id = "f6266f16-1bf3-46a5-9ea4-602e06ead473"
	head := Commit{
		ID: "bffeb74224043ba2feb48d137756c8a9331c449a", Message: "checkout: retry payment capture\n",
		AuthorName: "Chen Wei", AuthorEmail: "chen@acme.test", Timestamp: ts("2026-11-21T09:15:47+08:00"),
		URL: "https://git.acme.test/acme/shop/commit/bffeb74224043ba2feb48d137756c8a9331c449a",
	}
	pushed := Event{
		Provider: Gitea, Kind: KindPush, Name: "push", DeliveryID: id,
		Ref: "refs/heads/main", Branch: "main",
		Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Before: "28e1879d029cb852e4844d9c718537df08844e03",
		Repo: gtRepo, HeadCommit: head,
	}
	withFiles := pushed
	withFiles.ChangedFiles = []string{"README.md", "docs/checkout.md", "src/checkout/capture.ts"}

	tests := []struct {
		name string
		h    http.Header
		body []byte
		want Event
	}{
		{"push to branch", gtHdr("push"), fixture(t, "gitea/push.json"), withFiles},
		{"test delivery is a ping", gtHdr("push"), fixture(t, "gitea/test_delivery.json"), Event{
			Provider: Gitea, Kind: KindPing, Name: "push", DeliveryID: id, Repo: gtRepo,
			Reason: "Gitea test delivery: the webhook reaches Berth",
		}},
		{"test delivery of a real head is a ping", gtHdr("push"), mutate(t, "gitea/test_delivery.json", func(m map[string]any) {
			m["before"], m["after"] = "bffeb74224043ba2feb48d137756c8a9331c449a", "bffeb74224043ba2feb48d137756c8a9331c449a"
		}), Event{
			Provider: Gitea, Kind: KindPing, Name: "push", DeliveryID: id, Repo: gtRepo,
			Reason: "Gitea test delivery: the webhook reaches Berth",
		}},
		{"tag deleted", gtHdr("push"), fixture(t, "gitea/delete.json"), Event{
			Provider: Gitea, Kind: KindOther, Name: "push", DeliveryID: id,
			Ref: "refs/tags/v0.9.0-rc.1", Tag: "v0.9.0-rc.1", Before: "7ac1e2f3b4c5d6e7f8091a2b3c4d5e6f7a8b9c0d",
			Repo: gtRepo, Reason: "tag v0.9.0-rc.1 was deleted",
		}},
		{"create event ignored", gtHdr("create"), fixture(t, "gitea/create.json"), Event{
			Provider: Gitea, Kind: KindOther, Name: "create", DeliveryID: id, Repo: gtRepo,
			Reason: `Gitea event "create" is not a push`,
		}},
		{"7 commits, 5 listed: files unknown", gtHdr("push"), mutate(t, "gitea/push.json", func(m map[string]any) {
			m["commits"] = manyCommits(5)
			m["total_commits"] = 7
		}), pushed},
		{"no total_commits (old Gitea): files unknown", gtHdr("push"), mutate(t, "gitea/push.json", func(m map[string]any) {
			delete(m, "total_commits")
		}), pushed},
		{"commits without file lists: files unknown", gtHdr("push"), mutate(t, "gitea/push.json", func(m map[string]any) {
			for _, c := range m["commits"].([]any) {
				c := c.(map[string]any)
				delete(c, "added")
				delete(c, "removed")
				delete(c, "modified")
			}
		}), pushed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(Gitea, tt.h, tt.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			sameEvent(t, got, tt.want)
		})
	}
}

func bbHdr(event string) http.Header {
	return hdr("X-Event-Key", event, "X-Hook-UUID", "{0a7d5c3e-1b2f-4c6d-8e9f-a0b1c2d3e4f5}",
		"X-Request-UUID", "2f1c7e6a-9b3d-4f08-a5c4-6e7d8f9a0b1c", "X-Attempt-Number", "1", "Content-Type", "application/json")
}

func TestParseBitbucket(t *testing.T) {
	const id = "2f1c7e6a-9b3d-4f08-a5c4-6e7d8f9a0b1c"
	head := Commit{
		ID: "e3b4e2a1f5c6d7b8a9c0d1e2f3a4b5c6d7e8f9a0", Message: "Invoices: add VAT breakdown\n",
		AuthorName: "Dara Quinn", AuthorEmail: "dara@acme.test", Timestamp: ts("2026-11-21T11:05:33+00:00"),
		URL: "https://bitbucket.org/acme/billing/commits/e3b4e2a1f5c6d7b8a9c0d1e2f3a4b5c6d7e8f9a0",
	}
	tests := []struct {
		name string
		h    http.Header
		body []byte
		want []Event
	}{
		{"push to branch: files never listed", bbHdr("repo:push"), fixture(t, "bitbucket/push.json"), []Event{{
			Provider: Bitbucket, Kind: KindPush, Name: "repo:push", DeliveryID: id,
			Ref: "refs/heads/main", Branch: "main",
			Commit: "e3b4e2a1f5c6d7b8a9c0d1e2f3a4b5c6d7e8f9a0", Before: "1e65c05c1d5171631d92438a13901ca7dae9618c",
			Repo: bbRepo, HeadCommit: head,
		}}},
		{"tag push and branch delete in one delivery", bbHdr("repo:push"), fixture(t, "bitbucket/multi.json"), []Event{{
			Provider: Bitbucket, Kind: KindTag, Name: "repo:push", DeliveryID: id,
			Ref: "refs/tags/v3.1.0", Tag: "v3.1.0", Commit: "e3b4e2a1f5c6d7b8a9c0d1e2f3a4b5c6d7e8f9a0",
			Repo: bbRepo, HeadCommit: head,
		}, {
			Provider: Bitbucket, Kind: KindOther, Name: "repo:push", DeliveryID: id,
			Ref: "refs/heads/hotfix/rounding", Branch: "hotfix/rounding", Before: "44aa22bb33cc55dd66ee77ff8800991122334455",
			Repo: bbRepo, Reason: "branch hotfix/rounding was deleted",
		}}},
		{"pull request ignored", bbHdr("pullrequest:created"), fixture(t, "bitbucket/pullrequest.json"), []Event{{
			Provider: Bitbucket, Kind: KindOther, Name: "pullrequest:created", DeliveryID: id,
			Repo: bbRepo, Reason: `Bitbucket event "pullrequest:created" is not a push`,
		}}},
		{"author without email falls back to the user", bbHdr("repo:push"), mutate(t, "bitbucket/push.json", func(m map[string]any) {
			ch := m["push"].(map[string]any)["changes"].([]any)[0].(map[string]any)
			ch["new"].(map[string]any)["target"].(map[string]any)["author"].(map[string]any)["raw"] = ""
		}), []Event{{
			Provider: Bitbucket, Kind: KindPush, Name: "repo:push", DeliveryID: id,
			Ref: "refs/heads/main", Branch: "main",
			Commit: "e3b4e2a1f5c6d7b8a9c0d1e2f3a4b5c6d7e8f9a0", Before: "1e65c05c1d5171631d92438a13901ca7dae9618c",
			Repo: bbRepo, HeadCommit: Commit{ID: head.ID, Message: head.Message, AuthorName: "Dara Quinn", Timestamp: head.Timestamp, URL: head.URL},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAll(Bitbucket, tt.h, tt.body)
			if err != nil {
				t.Fatalf("ParseAll: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("ParseAll returned %d events; want %d: %#v", len(got), len(tt.want), got)
			}
			for i := range got {
				sameEvent(t, got[i], tt.want[i])
			}
		})
	}

	if _, err := Parse(Bitbucket, bbHdr("repo:push"), fixture(t, "bitbucket/multi.json")); !errors.Is(err, ErrMultipleRefs) {
		t.Fatalf("Parse(two ref changes) = %v; want ErrMultipleRefs", err)
	}
}

func TestParseErrors(t *testing.T) {
	ghPush := fixture(t, "github/push.json")
	tests := []struct {
		name string
		p    Provider
		h    http.Header
		body []byte
		want error
		msg  string // the error must mention this
	}{
		{"invalid JSON", GitHub, ghHdr("push"), []byte(`{"ref": "refs/heads/main",`), ErrMalformed, "not valid JSON"},
		{"JSON of the wrong type", GitHub, ghHdr("push"), []byte(`{"ref": 42}`), ErrMalformed, "ref"},
		{"JSON array", Gitea, gtHdr("push"), []byte(`[]`), ErrMalformed, "Gitea push payload"},
		{"trailing garbage", GitLab, glHdr("Push Hook"), append(fixture(t, "gitlab/push.json"), '}'), ErrMalformed, "not valid JSON"},
		{"ping with bad JSON", GitHub, ghHdr("ping"), []byte(`zen`), ErrMalformed, "ping payload"},
		{"other event with bad JSON", Bitbucket, bbHdr("issue:created"), []byte(`<html>`), ErrMalformed, "not valid JSON"},
		{"empty body", GitHub, ghHdr("push"), nil, ErrMalformed, "empty"},
		{"null body", GitHub, ghHdr("push"), []byte(`null`), ErrMalformed, "no ref"},
		{"oversize", GitHub, ghHdr("push"), make([]byte, MaxBodySize+1), ErrTooLarge, "25 MiB"},
		{"missing event header", GitHub, hdr("X-GitHub-Delivery", "d"), ghPush, ErrMalformed, "X-GitHub-Event"},
		{"missing delivery header", GitHub, hdr("X-GitHub-Event", "push"), ghPush, ErrMalformed, "X-GitHub-Delivery"},
		{"duplicate delivery header", GitHub, hdr("X-GitHub-Event", "push", "X-GitHub-Delivery", "a", "X-GitHub-Delivery", "b"), ghPush, ErrMalformed, "2 times"},
		{"duplicate event header", Gitea, hdr("X-Gitea-Event", "push", "X-Gitea-Event", "issues", "X-Gitea-Delivery", "d"), fixture(t, "gitea/push.json"), ErrMalformed, "2 times"},
		{"control character in delivery id", GitHub, hdr("X-GitHub-Event", "push", "X-GitHub-Delivery", "a\x1b[31m"), ghPush, ErrMalformed, "printable ASCII"},
		{"overlong delivery id", Bitbucket, hdr("X-Event-Key", "repo:push", "X-Request-UUID", strings.Repeat("a", 129)), fixture(t, "bitbucket/push.json"), ErrMalformed, "128"},
		{"gitlab without any delivery id", GitLab, hdr("X-Gitlab-Event", "Push Hook"), fixture(t, "gitlab/push.json"), ErrMalformed, "Idempotency-Key nor X-Gitlab-Event-UUID"},
		{"bitbucket without X-Request-UUID", Bitbucket, hdr("X-Event-Key", "repo:push"), fixture(t, "bitbucket/push.json"), ErrMalformed, "X-Request-UUID"},
		{"branch starting with dash", GitHub, ghHdr("push"), mutate(t, "github/push.json", func(m map[string]any) { m["ref"] = "refs/heads/--upload-pack=touch /tmp/x" }), ErrMalformed, "starts with \"-\""},
		{"branch with ..", GitHub, ghHdr("push"), mutate(t, "github/push.json", func(m map[string]any) { m["ref"] = "refs/heads/a/../../etc" }), ErrMalformed, ".."},
		{"branch with space", Gitea, gtHdr("push"), mutate(t, "gitea/push.json", func(m map[string]any) { m["ref"] = "refs/heads/a b" }), ErrMalformed, "git does not allow"},
		{"tag with newline", GitLab, glHdr("Tag Push Hook"), mutate(t, "gitlab/tag.json", func(m map[string]any) { m["ref"] = "refs/tags/v1\nv2" }), ErrMalformed, "git does not allow"},
		{"ref outside refs/", GitHub, ghHdr("push"), mutate(t, "github/push.json", func(m map[string]any) { m["ref"] = "main" }), ErrMalformed, "refs/"},
		{"empty branch name", GitHub, ghHdr("push"), mutate(t, "github/push.json", func(m map[string]any) { m["ref"] = "refs/heads/" }), ErrMalformed, "empty"},
		{"after not a sha", GitHub, ghHdr("push"), mutate(t, "github/push.json", func(m map[string]any) { m["after"] = "--exec=sh" }), ErrMalformed, "after is not a commit id"},
		{"after missing", Gitea, gtHdr("push"), mutate(t, "gitea/push.json", func(m map[string]any) { delete(m, "after") }), ErrMalformed, "after is missing"},
		{"before not a sha", GitLab, glHdr("Push Hook"), mutate(t, "gitlab/push.json", func(m map[string]any) { m["before"] = "HEAD~1" }), ErrMalformed, "before is not a commit id"},
		{"bitbucket tag name with dash", Bitbucket, bbHdr("repo:push"), mutate(t, "bitbucket/multi.json", func(m map[string]any) {
			m["push"].(map[string]any)["changes"].([]any)[0].(map[string]any)["new"].(map[string]any)["name"] = "-v1"
		}), ErrMalformed, "starts with \"-\""},
		{"bitbucket change without refs", Bitbucket, bbHdr("repo:push"), []byte(`{"push":{"changes":[{"new":null,"old":null}]}}`), ErrMalformed, "neither new nor old"},
		{"form body without payload", GitHub, hdr("X-GitHub-Event", "push", "X-GitHub-Delivery", "d", "Content-Type", "application/x-www-form-urlencoded"), []byte("ref=refs/heads/main"), ErrMalformed, "payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := ParseAll(tt.p, tt.h, tt.body)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseAll = %#v, %v; want %v", evs, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not mention %q", err, tt.msg)
			}
		})
	}
}

func TestParseUnknownProvider(t *testing.T) {
	_, err := Parse("", ghHdr("push"), fixture(t, "github/push.json"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "provider" {
		t.Fatalf("Parse with no provider = %v; want a FieldError on provider", err)
	}
}

// The whole path an endpoint runs: a signed delivery verifies and parses;
// the same delivery sent to the wrong app (other secret) does not verify.
func TestVerifyThenParse(t *testing.T) {
	body := fixture(t, "gitea/push.json")
	h := gtHdr("push")
	h.Set("X-Gitea-Signature", hexHMAC(testSecret, body))
	if err := Verify(Gitea, testSecret, h, body); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	ev, err := Parse(Gitea, h, body)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if ev.Kind != KindPush || ev.Commit != "bffeb74224043ba2feb48d137756c8a9331c449a" {
		t.Fatalf("Parse = %v %s; want push of bffeb742", ev.Kind, ev.Commit)
	}
	if err := Verify(Gitea, []byte("other-app"), h, body); !errors.Is(err, ErrSignature) {
		t.Fatalf("Verify with another app's secret = %v; want ErrSignature", err)
	}
}
