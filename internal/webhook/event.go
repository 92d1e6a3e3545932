package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Kind classifies a delivery.
type Kind string

const (
	KindPush  Kind = "push"  // commits pushed to a branch
	KindTag   Kind = "tag"   // a tag created or moved
	KindPing  Kind = "ping"  // the provider testing the webhook; answer 200
	KindOther Kind = "other" // anything not deployable; Reason says what
)

// Event is one ref update (or one non-push delivery) in provider-neutral
// form. For Kind push and tag, Ref, Branch or Tag, and Commit are set and
// have been validated (git ref-name rules plus no leading "-"; Commit is 40
// or 64 lower-case hex digits), so they are safe to hand to git as
// arguments. For ping and other, Reason says why nothing is deployed.
type Event struct {
	Provider   Provider
	Kind       Kind
	Name       string // the provider's event name: "push", "Push Hook", "repo:push"
	DeliveryID string // dedupe by (app, DeliveryID); see the package comment

	Ref    string // full ref: "refs/heads/main", "refs/tags/v1.2.0"
	Branch string // set for Kind push, and for a deleted branch
	Tag    string // set for Kind tag, and for a deleted tag
	// Commit is the commit to build: the branch head after the push, or the
	// commit a tag points to (for annotated tags the payload's "after" is
	// the tag object, so the head commit's id is used). Empty for deletions.
	Commit string
	// Before is the ref's commit before the push; empty when the push
	// created the ref.
	Before string

	Repo       Repository
	HeadCommit Commit

	// ChangedFiles is the sorted union of files added, modified and removed
	// by the pushed commits. Nil means unknown — the provider does not list
	// files (Bitbucket), the list may be truncated (more commits than the
	// payload carries), or the push created the ref, was forced or was a tag
	// — and watch paths then let the deploy through. Empty but non-nil
	// means the commits changed no file.
	ChangedFiles []string

	// Reason explains Kind ping and other in plain words: "GitHub event
	// \"issues\" is not a push", "branch main was deleted".
	Reason string
}

// Repository is the repository named by the payload. The URLs are for
// display and for checking the delivery matches the app's source; builds
// fetch from the app's configured source, not from here.
type Repository struct {
	FullName string // "owner/name", GitLab "group/subgroup/name"
	CloneURL string // HTTPS clone URL
	SSHURL   string // SSH clone URL, when the payload has one
	WebURL   string
}

// Commit describes the head commit of a push.
type Commit struct {
	ID          string
	Message     string
	AuthorName  string
	AuthorEmail string
	Timestamp   time.Time // zero when the payload has none or it is unparseable
	URL         string
}

// Parse reads a delivery that Verify has accepted into one Event. A
// Bitbucket push that updates several refs at once is ErrMultipleRefs;
// ParseAll handles every case and is what the endpoint should call.
func Parse(p Provider, h http.Header, body []byte) (Event, error) {
	evs, err := ParseAll(p, h, body)
	if err != nil {
		return Event{}, err
	}
	if len(evs) > 1 {
		return Event{}, fmt.Errorf("%w (%s push with %d ref changes)", ErrMultipleRefs, p.Title(), len(evs))
	}
	return evs[0], nil
}

// ParseAll reads a delivery that Verify has accepted. It returns one Event
// per updated ref — always exactly one, except for a Bitbucket push of
// several branches or tags — all with the same DeliveryID. Errors wrap
// ErrMalformed or ErrTooLarge.
func ParseAll(p Provider, h http.Header, body []byte) ([]Event, error) {
	if len(body) > MaxBodySize {
		return nil, ErrTooLarge
	}
	switch p {
	case GitHub:
		return parseGitHub(h, body)
	case GitLab:
		return parseGitLab(h, body)
	case Gitea:
		return parseGitea(h, body)
	case Bitbucket:
		return parseBitbucket(h, body)
	}
	_, err := ParseProvider(string(p))
	return nil, err
}

// headerValue returns the single value of a required header. Header values
// are not signed, so they are held to printable ASCII and a sane length
// before they reach logs, reasons and storage keys.
func headerValue(h http.Header, name string, allowSpace bool) (string, error) {
	vs := h.Values(name)
	switch {
	case len(vs) == 0 || (len(vs) == 1 && vs[0] == ""):
		return "", malformed("%s header is not set", name)
	case len(vs) > 1:
		return "", malformed("%s header is given %d times; want exactly one", name, len(vs))
	}
	v := vs[0]
	if len(v) > 128 {
		return "", malformed("%s header is longer than 128 bytes", name)
	}
	for _, c := range []byte(v) {
		if c < 0x20 || c > 0x7e || (c == ' ' && !allowSpace) {
			return "", malformed("%s header contains a character other than printable ASCII", name)
		}
	}
	return v, nil
}

// delivery reads what every provider's delivery starts with: the event
// name and delivery id headers (eventSpaces: the name may hold spaces, as
// GitLab's "Push Hook"), and the JSON payload.
func delivery(p Provider, h http.Header, body []byte, eventHeader, idHeader string, eventSpaces bool) (Event, []byte, error) {
	name, err := headerValue(h, eventHeader, eventSpaces)
	if err != nil {
		return Event{}, nil, err
	}
	id, err := headerValue(h, idHeader, false)
	if err != nil {
		return Event{}, nil, err
	}
	doc, err := payloadJSON(h, body)
	if err != nil {
		return Event{}, nil, err
	}
	return Event{Provider: p, Name: name, DeliveryID: id}, doc, nil
}

// payloadJSON returns the JSON document of a delivery. GitHub and Gitea can
// also be set to post application/x-www-form-urlencoded with the JSON in a
// "payload" field; the signature covers the form body, so Verify is
// unaffected.
func payloadJSON(h http.Header, body []byte) ([]byte, error) {
	if len(body) == 0 {
		return nil, malformed("body is empty; want a JSON payload")
	}
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return body, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, malformed("form-encoded body does not parse: %v", err)
	}
	vs := form["payload"]
	if len(vs) != 1 || vs[0] == "" {
		return nil, malformed("form-encoded body needs exactly one non-empty \"payload\" field")
	}
	return []byte(vs[0]), nil
}

func decodeJSON(p Provider, what string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return malformed("%s %s payload is not valid JSON (at byte %d): %v", p.Title(), what, syn.Offset, err)
		case errors.As(err, &typ) && typ.Field == "":
			return malformed("%s %s payload is a JSON %s; want an object", p.Title(), what, typ.Value)
		case errors.As(err, &typ):
			return malformed("%s %s payload has %s where %s is expected (field %q)", p.Title(), what, typ.Value, typ.Type, typ.Field)
		}
		return malformed("%s %s payload is not valid JSON: %v", p.Title(), what, err)
	}
	return nil
}

// push is a provider's push payload reduced to what the decision needs.
type push struct {
	ref    string
	before string // may be empty or all zeros: the ref was created
	after  string // all zeros: the ref was deleted
	// headID is the commit the payload says the ref now points to. Only
	// tags use it: for an annotated tag "after" is the tag object.
	headID  string
	head    *Commit
	commits []pushCommit
	// total is the provider's count of pushed commits, -1 when it sends
	// none; listCap is the longest commit list it sends, 0 when unknown.
	total, listCap int
	forced         bool
	filesListed    bool // false: the provider never lists changed files
}

type pushCommit struct {
	id                       string
	added, modified, removed []string
	listed                   bool // the commit carried file lists at all
}

// event turns a push into an Event with the delivery's identity filled in.
func (ps push) event(base Event) (Event, error) {
	ev := base
	title := base.Provider.Title()
	if ps.ref == "" {
		return Event{}, malformed("%s push payload has no ref", title)
	}
	ev.Ref = ps.ref
	var short, kind string
	switch {
	case strings.HasPrefix(ps.ref, "refs/heads/"):
		short, kind = strings.TrimPrefix(ps.ref, "refs/heads/"), "branch"
	case strings.HasPrefix(ps.ref, "refs/tags/"):
		short, kind = strings.TrimPrefix(ps.ref, "refs/tags/"), "tag"
	}
	if err := checkRefName(ps.ref, short); err != nil {
		return Event{}, malformed("%s push payload ref: %v", title, err)
	}
	after, err := commitID("after", ps.after, false)
	if err != nil {
		return Event{}, malformed("%s push payload: %v", title, err)
	}
	before, err := commitID("before", ps.before, true)
	if err != nil {
		return Event{}, malformed("%s push payload: %v", title, err)
	}
	if kind == "" {
		ev.Kind = KindOther
		ev.Reason = fmt.Sprintf("ref %s is neither a branch nor a tag", ps.ref)
		return ev, nil
	}
	if kind == "branch" {
		ev.Branch = short
	} else {
		ev.Tag = short
	}
	if !isZero(before) {
		ev.Before = before
	}
	if isZero(after) {
		ev.Kind = KindOther
		ev.Reason = fmt.Sprintf("%s %s was deleted", kind, short)
		return ev, nil
	}

	ev.Commit = after
	if kind == "tag" && ps.headID != "" {
		id, err := commitID("head commit id", ps.headID, false)
		if err != nil || isZero(id) {
			return Event{}, malformed("%s push payload: invalid head commit id", title)
		}
		ev.Commit = id
	}
	if ps.head != nil {
		ev.HeadCommit = *ps.head
	}
	if ev.HeadCommit.ID == "" {
		ev.HeadCommit.ID = ev.Commit
	}

	if kind == "branch" {
		ev.Kind = KindPush
		ev.ChangedFiles = ps.changedFiles(ev.Before == "")
	} else {
		ev.Kind = KindTag
	}
	return ev, nil
}

// changedFiles is nil whenever the list could be incomplete: a watch-path
// filter must never skip a deploy because the payload left a file out.
func (ps push) changedFiles(created bool) []string {
	switch {
	case !ps.filesListed, created, ps.forced, len(ps.commits) == 0:
		// A push that created the ref has no base to compare with; a forced
		// push or one listing no commits (a rewind) changed files that no
		// listed commit names.
		return nil
	case ps.total >= 0 && ps.total > len(ps.commits):
		return nil
	case ps.total < 0 && ps.listCap > 0 && len(ps.commits) >= ps.listCap:
		return nil
	}
	files := []string{}
	for _, c := range ps.commits {
		if !c.listed {
			return nil
		}
		for _, list := range [][]string{c.added, c.modified, c.removed} {
			for _, f := range list {
				if f != "" {
					files = append(files, f)
				}
			}
		}
	}
	slices.Sort(files)
	return slices.Compact(files)
}

func isZero(sha string) bool { return strings.Trim(sha, "0") == "" }

// commitID validates a SHA-1 or SHA-256 object id; all zeros is the
// provider's "no commit". Null or empty is allowed only where optional.
func commitID(field, s string, optional bool) (string, error) {
	if s == "" {
		if optional {
			return "", nil
		}
		return "", fmt.Errorf("%s is missing", field)
	}
	s = strings.ToLower(s)
	if len(s) != 40 && len(s) != 64 {
		return "", fmt.Errorf("%s is not a commit id (want 40 or 64 hex digits)", field)
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", fmt.Errorf("%s is not a commit id (want 40 or 64 hex digits)", field)
		}
	}
	return s, nil
}

// parseTime accepts RFC 3339, which all four providers use; anything else
// leaves the timestamp zero rather than reject a genuine push over it.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func otherEvent(base Event, format string, args ...any) []Event {
	base.Kind = KindOther
	base.Reason = fmt.Sprintf(format, args...)
	return []Event{base}
}

func equalFoldID(a, b string) bool { return strings.EqualFold(a, b) }
