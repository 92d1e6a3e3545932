package webhook

import (
	"fmt"
	"net/http"
)

// githubCommitCap is the longest commit list GitHub is known to send. Its
// documentation has said both that push payloads carry at most 20 commits
// and that this cap applies only to timeline events; with no commit count
// in the payload, a list of 20 or more is treated as possibly truncated.
const githubCommitCap = 20

type githubRepo struct {
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
	SSHURL   string `json:"ssh_url"`
	HTMLURL  string `json:"html_url"`
}

func (r githubRepo) repository() Repository {
	return Repository{FullName: r.FullName, CloneURL: r.CloneURL, SSHURL: r.SSHURL, WebURL: r.HTMLURL}
}

// githubCommit is also Gitea's commit shape.
type githubCommit struct {
	ID        string `json:"id"`
	Message   string `json:"message"`
	Timestamp string `json:"timestamp"`
	URL       string `json:"url"`
	Author    struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"author"`
	Added    []string `json:"added"`
	Removed  []string `json:"removed"`
	Modified []string `json:"modified"`
}

func (c githubCommit) commit() Commit {
	return Commit{
		ID: c.ID, Message: c.Message, URL: c.URL, Timestamp: parseTime(c.Timestamp),
		AuthorName: c.Author.Name, AuthorEmail: c.Author.Email,
	}
}

func (c githubCommit) pushCommit() pushCommit {
	return pushCommit{
		id: c.ID, added: c.Added, modified: c.Modified, removed: c.Removed,
		// json leaves a slice nil only when the key is absent or null.
		listed: c.Added != nil || c.Modified != nil || c.Removed != nil,
	}
}

type githubPush struct {
	Ref        string         `json:"ref"`
	Before     string         `json:"before"`
	After      string         `json:"after"`
	Forced     bool           `json:"forced"`
	Commits    []githubCommit `json:"commits"`
	HeadCommit *githubCommit  `json:"head_commit"`
	Repository githubRepo     `json:"repository"`
}

func parseGitHub(h http.Header, body []byte) ([]Event, error) {
	base, doc, err := delivery(GitHub, h, body, headerGitHubEvent, headerGitHubDelivery, false)
	if err != nil {
		return nil, err
	}
	name := base.Name

	switch name {
	case "ping":
		var ping struct {
			HookID     int64      `json:"hook_id"`
			Repository githubRepo `json:"repository"`
		}
		if err := decodeJSON(GitHub, "ping", doc, &ping); err != nil {
			return nil, err
		}
		base.Kind = KindPing
		base.Repo = ping.Repository.repository()
		base.Reason = fmt.Sprintf("GitHub ping for webhook %d: the webhook reaches Berth", ping.HookID)
		return []Event{base}, nil
	case "push":
	default:
		var other struct {
			Repository githubRepo `json:"repository"`
		}
		if err := decodeJSON(GitHub, name, doc, &other); err != nil {
			return nil, err
		}
		base.Repo = other.Repository.repository()
		return otherEvent(base, "GitHub event %q is not a push", name), nil
	}

	var p githubPush
	if err := decodeJSON(GitHub, "push", doc, &p); err != nil {
		return nil, err
	}
	base.Repo = p.Repository.repository()
	ps := push{
		ref: p.Ref, before: p.Before, after: p.After,
		total: -1, listCap: githubCommitCap, forced: p.Forced, filesListed: true,
	}
	if p.HeadCommit != nil {
		hc := p.HeadCommit.commit()
		ps.head, ps.headID = &hc, p.HeadCommit.ID
	}
	for _, c := range p.Commits {
		ps.commits = append(ps.commits, c.pushCommit())
	}
	ev, err := ps.event(base)
	if err != nil {
		return nil, err
	}
	return []Event{ev}, nil
}
