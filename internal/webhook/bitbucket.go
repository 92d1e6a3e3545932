package webhook

import (
	"fmt"
	"net/http"
	"strings"
)

type bitbucketTarget struct {
	Hash    string `json:"hash"`
	Message string `json:"message"`
	Date    string `json:"date"`
	Author  struct {
		Raw  string `json:"raw"` // "Name <email>"
		User *struct {
			DisplayName string `json:"display_name"`
		} `json:"user"`
	} `json:"author"`
	Links struct {
		HTML struct {
			Href string `json:"href"`
		} `json:"html"`
	} `json:"links"`
}

type bitbucketRef struct {
	Type   string          `json:"type"` // "branch" or "tag"
	Name   string          `json:"name"`
	Target bitbucketTarget `json:"target"`
}

type bitbucketRepo struct {
	FullName string `json:"full_name"`
	Links    struct {
		HTML struct {
			Href string `json:"href"`
		} `json:"html"`
	} `json:"links"`
}

func (r bitbucketRepo) repository() Repository {
	rep := Repository{FullName: r.FullName, WebURL: r.Links.HTML.Href}
	// The payload has no clone links; on Bitbucket Cloud the HTTPS clone
	// URL is the web URL with .git appended.
	if rep.WebURL != "" {
		rep.CloneURL = strings.TrimSuffix(rep.WebURL, "/") + ".git"
	}
	return rep
}

type bitbucketPush struct {
	Push struct {
		Changes []struct {
			New    *bitbucketRef `json:"new"` // null: the ref was deleted
			Old    *bitbucketRef `json:"old"` // null: the ref was created
			Forced bool          `json:"forced"`
		} `json:"changes"`
	} `json:"push"`
	Repository bitbucketRepo `json:"repository"`
}

// parseBitbucket reads Bitbucket Cloud's repo:push. One delivery can carry
// several ref changes; each becomes an Event. Bitbucket Cloud has no ping;
// "diagnostics:ping" is what Bitbucket Data Center's "Test connection"
// sends and is answered as one. Push payloads never list changed files.
func parseBitbucket(h http.Header, body []byte) ([]Event, error) {
	base, doc, err := delivery(Bitbucket, h, body, headerBitbucketEvent, headerBitbucketDelivery, false)
	if err != nil {
		return nil, err
	}
	name := base.Name

	if name != "repo:push" {
		var other struct {
			Repository bitbucketRepo `json:"repository"`
		}
		if err := decodeJSON(Bitbucket, name, doc, &other); err != nil {
			return nil, err
		}
		base.Repo = other.Repository.repository()
		if name == "diagnostics:ping" {
			base.Kind = KindPing
			base.Reason = "Bitbucket test connection: the webhook reaches Berth"
			return []Event{base}, nil
		}
		return otherEvent(base, "Bitbucket event %q is not a push", name), nil
	}

	var p bitbucketPush
	if err := decodeJSON(Bitbucket, "push", doc, &p); err != nil {
		return nil, err
	}
	base.Repo = p.Repository.repository()
	if len(p.Push.Changes) == 0 {
		return otherEvent(base, "Bitbucket push changes no ref"), nil
	}
	var evs []Event
	for _, c := range p.Push.Changes {
		ref := c.New
		if ref == nil {
			ref = c.Old
		}
		if ref == nil {
			return nil, malformed("Bitbucket push payload has a change with neither new nor old ref")
		}
		var full string
		switch ref.Type {
		case "branch":
			full = "refs/heads/" + ref.Name
		case "tag":
			full = "refs/tags/" + ref.Name
		default:
			// Only git refs deploy; old Mercurial named_branch/bookmark.
			ev := base
			ev.Kind = KindOther
			ev.Reason = fmt.Sprintf("Bitbucket %s %q is neither a git branch nor a tag", ref.Type, ref.Name)
			evs = append(evs, ev)
			continue
		}
		ps := push{ref: full, total: -1, forced: c.Forced, filesListed: false}
		if c.Old != nil {
			ps.before = c.Old.Target.Hash
		}
		if c.New == nil {
			ps.after = strings.Repeat("0", 40)
		} else {
			t := c.New.Target
			ps.after = t.Hash
			name, email := splitAuthor(t.Author.Raw)
			if name == "" && t.Author.User != nil {
				name = t.Author.User.DisplayName
			}
			ps.head = &Commit{
				ID: t.Hash, Message: t.Message, URL: t.Links.HTML.Href, Timestamp: parseTime(t.Date),
				AuthorName: name, AuthorEmail: email,
			}
		}
		ev, err := ps.event(base)
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// splitAuthor splits git's "Name <email>" form.
func splitAuthor(raw string) (name, email string) {
	raw = strings.TrimSpace(raw)
	i := strings.LastIndexByte(raw, '<')
	if i < 0 || !strings.HasSuffix(raw, ">") {
		return raw, ""
	}
	return strings.TrimSpace(raw[:i]), raw[i+1 : len(raw)-1]
}
