package webhook

import "net/http"

type giteaPush struct {
	Ref          string         `json:"ref"`
	Before       string         `json:"before"`
	After        string         `json:"after"`
	TotalCommits *int           `json:"total_commits"`
	Commits      []githubCommit `json:"commits"`
	HeadCommit   *githubCommit  `json:"head_commit"`
	Repository   githubRepo     `json:"repository"`
}

// parseGitea reads Gitea's push payload, which follows GitHub's shape.
// Gitea lists at most [ui] FEED_MAX_COMMIT_NUM commits (5 by default) and
// counts all of them in total_commits (sent since Gitea 1.18); without the
// count the list is treated as possibly truncated.
func parseGitea(h http.Header, body []byte) ([]Event, error) {
	base, doc, err := delivery(Gitea, h, body, headerGiteaEvent, headerGiteaDelivery, false)
	if err != nil {
		return nil, err
	}
	name := base.Name

	if name != "push" {
		var other struct {
			Repository githubRepo `json:"repository"`
		}
		if err := decodeJSON(Gitea, name, doc, &other); err != nil {
			return nil, err
		}
		base.Repo = other.Repository.repository()
		return otherEvent(base, "Gitea event %q is not a push", name), nil
	}

	var p giteaPush
	if err := decodeJSON(Gitea, "push", doc, &p); err != nil {
		return nil, err
	}
	base.Repo = p.Repository.repository()
	// "Test delivery" in Gitea's webhook settings sends a push of the
	// default branch whose before and after are the same commit (all zeros
	// in recent versions). A real push never leaves the ref where it was.
	if p.After != "" && p.Before == p.After {
		base.Kind = KindPing
		base.Reason = "Gitea test delivery: the webhook reaches Berth"
		return []Event{base}, nil
	}
	ps := push{ref: p.Ref, before: p.Before, after: p.After, total: -1, filesListed: true}
	if p.TotalCommits != nil {
		ps.total = *p.TotalCommits
	} else {
		ps.listCap = 1 // no count: any list may have been cut
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
