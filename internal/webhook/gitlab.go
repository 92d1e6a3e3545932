package webhook

import "net/http"

type gitlabCommit struct {
	ID        string `json:"id"`
	Message   string `json:"message"`
	Timestamp string `json:"timestamp"`
	URL       string `json:"url"`
	Author    struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"author"`
	Added    []string `json:"added"`
	Modified []string `json:"modified"`
	Removed  []string `json:"removed"`
}

type gitlabProject struct {
	PathWithNamespace string `json:"path_with_namespace"`
	WebURL            string `json:"web_url"`
	GitHTTPURL        string `json:"git_http_url"`
	GitSSHURL         string `json:"git_ssh_url"`
}

func (p gitlabProject) repository() Repository {
	return Repository{FullName: p.PathWithNamespace, CloneURL: p.GitHTTPURL, SSHURL: p.GitSSHURL, WebURL: p.WebURL}
}

type gitlabPush struct {
	ObjectKind        string         `json:"object_kind"`
	Ref               string         `json:"ref"`
	Before            string         `json:"before"`
	After             string         `json:"after"`
	CheckoutSHA       *string        `json:"checkout_sha"`
	TotalCommitsCount *int           `json:"total_commits_count"`
	Commits           []gitlabCommit `json:"commits"`
	Project           gitlabProject  `json:"project"`
}

// parseGitLab reads project webhooks. GitLab's "Test" button sends an
// ordinary Push Hook built from the default branch's latest commits, with
// nothing marking it as a test, so it is parsed (and may deploy) like a
// real push.
func parseGitLab(h http.Header, body []byte) ([]Event, error) {
	// Idempotency-Key stays the same when GitLab retries a delivery;
	// X-Gitlab-Event-UUID is older (GitLab before 17.x sends only it).
	idHeader := headerIdempotencyKey
	if len(h.Values(idHeader)) == 0 {
		idHeader = headerGitLabEventUUID
		if len(h.Values(idHeader)) == 0 {
			return nil, malformed("neither %s nor %s header is set", headerIdempotencyKey, headerGitLabEventUUID)
		}
	}
	base, doc, err := delivery(GitLab, h, body, headerGitLabEvent, idHeader, true)
	if err != nil {
		return nil, err
	}
	name := base.Name

	if name != "Push Hook" && name != "Tag Push Hook" {
		var other struct {
			Project gitlabProject `json:"project"`
		}
		if err := decodeJSON(GitLab, name, doc, &other); err != nil {
			return nil, err
		}
		base.Repo = other.Project.repository()
		return otherEvent(base, "GitLab event %q is not a push", name), nil
	}

	var p gitlabPush
	if err := decodeJSON(GitLab, "push", doc, &p); err != nil {
		return nil, err
	}
	base.Repo = p.Project.repository()
	// GitLab lists at most the newest 20 commits and counts all of them in
	// total_commits_count.
	ps := push{ref: p.Ref, before: p.Before, after: p.After, total: -1, listCap: 20, filesListed: true}
	if p.TotalCommitsCount != nil {
		ps.total = *p.TotalCommitsCount
	}
	head := p.After
	if p.CheckoutSHA != nil && *p.CheckoutSHA != "" {
		ps.headID = *p.CheckoutSHA
		head = *p.CheckoutSHA
	}
	for _, c := range p.Commits {
		ps.commits = append(ps.commits, pushCommit{
			id: c.ID, added: c.Added, modified: c.Modified, removed: c.Removed,
			listed: c.Added != nil || c.Modified != nil || c.Removed != nil,
		})
		if c.ID != "" && equalFoldID(c.ID, head) {
			hc := Commit{
				ID: c.ID, Message: c.Message, URL: c.URL, Timestamp: parseTime(c.Timestamp),
				AuthorName: c.Author.Name, AuthorEmail: c.Author.Email,
			}
			ps.head = &hc
		}
	}
	ev, err := ps.event(base)
	if err != nil {
		return nil, err
	}
	return []Event{ev}, nil
}
