package webhook

import (
	"errors"
	"fmt"
	"strings"
)

// Filter is an app's rule for which pushes deploy.
type Filter struct {
	// Branches are the deploy branches: exact names ("main") or patterns
	// with the ValidateGlob syntax ("release/*", "hotfix/**"). Empty means
	// no branch push deploys (an app may deploy from tags only).
	Branches []string `json:"branches"`
	// Tags makes tag pushes deploy the tagged commit.
	Tags bool `json:"tags"`
	// WatchPaths, when set, limit branch deploys to pushes that change a
	// matching file (ValidateGlob syntax). Pushes whose changed files are
	// unknown deploy anyway.
	WatchPaths []string `json:"watch_paths"`
}

// Validate checks every branch and watch-path pattern and returns all
// problems, each a *FieldError naming the field and the pattern.
func (f Filter) Validate() error {
	var errs []error
	for i, b := range f.Branches {
		if err := validateBranchPattern(b); err != nil {
			errs = append(errs, &FieldError{
				Field:   fmt.Sprintf("branches[%d]", i),
				Message: fmt.Sprintf("%q %v; want a branch name like main or a pattern like release/*", b, err),
			})
		}
	}
	for i, g := range f.WatchPaths {
		if err := ValidateGlob(g); err != nil {
			errs = append(errs, &FieldError{
				Field:   fmt.Sprintf("watch_paths[%d]", i),
				Message: fmt.Sprintf("%q %v; want a path pattern like src/**, **/*.go or docs/*.md", g, err),
			})
		}
	}
	return errors.Join(errs...)
}

func validateBranchPattern(p string) error {
	if err := ValidateGlob(p); err != nil {
		return err
	}
	// With each wildcard and class replaced by a plain character the
	// pattern must still be a name git accepts: no leading "-", no "..",
	// no spaces or control characters.
	if err := checkName(literalize(p)); err != nil {
		return fmt.Errorf("is not a valid branch name: %v", err)
	}
	return nil
}

// literalize replaces "*", "?" and "[...]" with "x" and unescapes "\c".
// Call it only on patterns ValidateGlob accepts.
func literalize(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*', '?':
			b.WriteByte('x')
		case '\\':
			i++
			if i < len(p) {
				b.WriteByte(p[i])
			}
		case '[':
			j := strings.IndexByte(p[i+1:], ']')
			if j < 0 {
				j = len(p) - i - 1
			}
			i += j + 1
			b.WriteByte('x')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// MatchBranch reports whether branch is one of f's deploy branches.
func (f Filter) MatchBranch(branch string) bool {
	for _, b := range f.Branches {
		if b == branch || MatchGlob(b, branch) {
			return true
		}
	}
	return false
}

// ShouldDeploy decides whether ev deploys under cfg and says why in words
// fit for the delivery log shown to users. An invalid cfg deploys nothing.
func ShouldDeploy(cfg Filter, ev Event) (bool, string) {
	if err := cfg.Validate(); err != nil {
		return false, "the app's deploy filter is invalid: " + err.Error()
	}
	switch ev.Kind {
	case KindPing:
		return false, orDefault(ev.Reason, "ping: nothing to deploy")
	case KindOther:
		return false, orDefault(ev.Reason, "not a push")
	case KindTag:
		if !cfg.Tags {
			return false, fmt.Sprintf("tag %s was pushed but tag deploys are off", ev.Tag)
		}
		return true, fmt.Sprintf("tag %s points to %s", ev.Tag, short(ev.Commit))
	case KindPush:
	default:
		return false, fmt.Sprintf("unknown event kind %q", ev.Kind)
	}

	switch {
	case len(cfg.Branches) == 0:
		return false, fmt.Sprintf("branch %s was pushed but no deploy branch is configured", ev.Branch)
	case !cfg.MatchBranch(ev.Branch) && len(cfg.Branches) == 1:
		return false, fmt.Sprintf("branch %s is not deploy branch %s", ev.Branch, cfg.Branches[0])
	case !cfg.MatchBranch(ev.Branch):
		return false, fmt.Sprintf("branch %s is none of the deploy branches %s", ev.Branch, strings.Join(cfg.Branches, ", "))
	}
	why := fmt.Sprintf("push to branch %s at %s", ev.Branch, short(ev.Commit))
	if len(cfg.WatchPaths) == 0 {
		return true, why
	}
	if ev.ChangedFiles == nil {
		return true, why + "; the changed files are not known, so watch paths were not applied"
	}
	match, ok := matchPaths(cfg.WatchPaths, ev.ChangedFiles)
	if !ok {
		return false, fmt.Sprintf("no changed file matches the watch paths %s", strings.Join(cfg.WatchPaths, ", "))
	}
	return true, why + "; " + match
}

// FirstToDeploy applies ShouldDeploy to the events of one delivery (see
// ParseAll) and returns the first that deploys. When none does, reason
// joins every event's reason.
func FirstToDeploy(cfg Filter, evs []Event) (ev Event, deploy bool, reason string) {
	var reasons []string
	for _, e := range evs {
		ok, why := ShouldDeploy(cfg, e)
		if ok {
			return e, true, why
		}
		reasons = append(reasons, why)
	}
	if len(reasons) == 0 {
		return Event{}, false, "the delivery has no events"
	}
	return Event{}, false, strings.Join(reasons, "; ")
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
