package gitsrc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// RefKind is a branch or a tag.
type RefKind string

const (
	RefBranch RefKind = "branch"
	RefTag    RefKind = "tag"
)

// Ref names a branch or tag by its short name.
type Ref struct {
	Kind RefKind
	Name string // "main", "v1.2.0"
}

// Branch is the Ref of a branch.
func Branch(name string) Ref { return Ref{Kind: RefBranch, Name: name} }

// Tag is the Ref of a tag.
func Tag(name string) Ref { return Ref{Kind: RefTag, Name: name} }

// Validate checks the name by git's ref rules.
func (r Ref) Validate() error {
	switch r.Kind {
	case RefBranch:
		return ValidateBranch(r.Name)
	case RefTag:
		return ValidateTag(r.Name)
	default:
		return invalid("ref", "must be a branch or a tag")
	}
}

// FullName is refs/heads/<name> or refs/tags/<name>.
func (r Ref) FullName() string {
	if r.Kind == RefTag {
		return "refs/tags/" + r.Name
	}
	return "refs/heads/" + r.Name
}

// RemoteRef is one branch or tag the remote advertises.
type RemoteRef struct {
	Ref
	Commit string // for annotated tags, the commit the tag points to
}

// RefList is the result of ListRefs.
type RefList struct {
	Refs []RemoteRef // branches then tags, each sorted by name
	// LearnedHostKeys are known_hosts lines recorded on first use (SSH
	// sources with no pins); the caller stores them as the new pins.
	LearnedHostKeys []string
}

// Resolved is the result of Resolve.
type Resolved struct {
	Commit          string
	LearnedHostKeys []string
}

// FetchOptions says what to fetch and where.
type FetchOptions struct {
	Remote Remote
	// Commit is the full id to check out. When empty, the tip of Ref is
	// checked out (prefer Resolve first, then Fetch of that commit, so
	// the build record and the checkout agree).
	Commit string
	// Ref is the branch or tag holding Commit. It is needed when the
	// server refuses to serve a commit by id (protocol v0 servers without
	// uploadpack.allowAnySHA1InWant): then Ref is fetched shallow and
	// deepened until Commit appears. It is not used to check that a
	// commit fetched by id belongs to the ref.
	Ref *Ref
	// Dir is the checkout directory. It must not exist; its parent must.
	// On failure Fetch removes it.
	Dir string
	// Submodules fetches submodules (shallow, recursively). Off by default.
	Submodules bool
	// MaxDepth bounds the history fetched when deepening to find Commit
	// (default 1000).
	MaxDepth int
}

// Checkout is a fetched working tree at one commit.
type Checkout struct {
	Dir         string
	Commit      string
	Author      string
	AuthorEmail string
	Subject     string
	CommitTime  time.Time // committer date
	// LearnedHostKeys are known_hosts lines recorded on first use. They
	// are returned with an error too: the host was seen even if the fetch
	// then failed (say, the deploy key was not added yet).
	LearnedHostKeys []string
}

const defaultMaxDepth = 1000

// Fetch checks out exactly one commit into a fresh directory with a
// shallow fetch. Inputs are validated before anything runs.
func Fetch(ctx context.Context, o FetchOptions) (Checkout, error) {
	u, tr, err := o.Remote.validate()
	if err != nil {
		return Checkout{}, err
	}
	if o.Commit != "" {
		if err := ValidateCommit(o.Commit); err != nil {
			return Checkout{}, err
		}
	}
	if o.Ref != nil {
		if err := o.Ref.Validate(); err != nil {
			return Checkout{}, err
		}
	}
	if o.Commit == "" && o.Ref == nil {
		return Checkout{}, invalid("commit", "is required (or give a branch or tag to check out its tip)")
	}
	if o.MaxDepth < 0 {
		return Checkout{}, invalid("max_depth", "must not be negative")
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = defaultMaxDepth
	}
	if err := checkPlain("dir", o.Dir); err != nil || !filepath.IsAbs(o.Dir) || filepath.Clean(o.Dir) != o.Dir {
		return Checkout{}, invalid("dir", "must be a clean absolute path")
	}
	if _, err := os.Lstat(o.Dir); err == nil {
		return Checkout{}, invalid("dir", "must not exist yet")
	}

	s, err := newSession(o.Remote, u, tr)
	if err != nil {
		return Checkout{}, err
	}
	defer s.close()
	if err := os.Mkdir(o.Dir, 0o700); err != nil {
		return Checkout{}, fmt.Errorf("gitsrc: create checkout directory: %w", err)
	}
	co, err := fetchInto(ctx, s, o)
	if err != nil {
		os.RemoveAll(o.Dir)
		return Checkout{LearnedHostKeys: s.learned()}, err
	}
	co.LearnedHostKeys = s.learned()
	return co, nil
}

func fetchInto(ctx context.Context, s *session, o FetchOptions) (Checkout, error) {
	dir := o.Dir
	if _, err := s.git(ctx, dir, "init", "--quiet"); err != nil {
		return Checkout{}, err
	}
	if _, err := s.git(ctx, dir, "remote", "add", "--", "origin", s.url); err != nil {
		return Checkout{}, err
	}
	sha := o.Commit
	if sha != "" {
		_, err := s.git(ctx, dir, "fetch", "--quiet", "--no-tags", "--depth=1", "--", "origin", sha)
		if err != nil {
			if fatal(err) {
				return Checkout{}, err
			}
			if o.Ref == nil {
				if errors.Is(err, ErrCommitNotFound) {
					return Checkout{}, fmt.Errorf("the server would not send commit %s by id; give the branch or tag that contains it: %w", sha, err)
				}
				return Checkout{}, err
			}
			if err := deepenUntil(ctx, s, dir, *o.Ref, sha, o.MaxDepth); err != nil {
				return Checkout{}, err
			}
		}
	} else {
		if _, err := s.git(ctx, dir, "fetch", "--quiet", "--no-tags", "--depth=1", "--", "origin", o.Ref.FullName()); err != nil {
			return Checkout{}, refErr(err, *o.Ref)
		}
		out, err := s.git(ctx, dir, "rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}")
		if err != nil {
			return Checkout{}, err
		}
		sha = strings.TrimSpace(out)
		if err := ValidateCommit(sha); err != nil {
			return Checkout{}, fmt.Errorf("gitsrc: git reported an unexpected commit id for %s", o.Ref.FullName())
		}
	}
	if _, err := s.git(ctx, dir, "checkout", "--quiet", "--detach", sha, "--"); err != nil {
		return Checkout{}, err
	}
	if o.Submodules {
		if _, err := s.git(ctx, dir, "submodule", "update", "--init", "--recursive", "--depth", "1", "--"); err != nil {
			return Checkout{}, err
		}
	}
	return describe(ctx, s, dir, sha)
}

// deepenUntil fetches ref shallow and deepens it tenfold at a time, up to
// maxDepth, until sha is present and reachable from it.
func deepenUntil(ctx context.Context, s *session, dir string, ref Ref, sha string, maxDepth int) error {
	for depth := 1; ; depth *= 10 {
		if depth > maxDepth {
			depth = maxDepth
		}
		if _, err := s.git(ctx, dir, "fetch", "--quiet", "--no-tags", "--depth="+strconv.Itoa(depth), "--", "origin", ref.FullName()); err != nil {
			return refErr(err, ref)
		}
		if _, err := s.git(ctx, dir, "merge-base", "--is-ancestor", sha, "FETCH_HEAD"); err == nil {
			return nil
		}
		if depth >= maxDepth {
			return fmt.Errorf("%w: %s is not within the last %d commits of %s", ErrCommitNotFound, sha, maxDepth, ref.FullName())
		}
	}
}

func refErr(err error, ref Ref) error {
	if errors.Is(err, ErrRefNotFound) {
		return fmt.Errorf("%s %q not found on the remote: %w", ref.Kind, ref.Name, err)
	}
	return err
}

// fatal errors end a fetch at once; retrying another way cannot help.
func fatal(err error) bool {
	return errors.Is(err, ErrAuth) || errors.Is(err, ErrHostKey) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func describe(ctx context.Context, s *session, dir, sha string) (Checkout, error) {
	out, err := s.git(ctx, dir, "log", "-1", "--no-show-signature", "--format=%H%x00%an%x00%ae%x00%ct%x00%s", sha, "--")
	if err != nil {
		return Checkout{}, err
	}
	f := strings.SplitN(strings.TrimSuffix(out, "\n"), "\x00", 5)
	if len(f) != 5 || f[0] != sha {
		return Checkout{}, fmt.Errorf("gitsrc: unexpected git log output for %s", sha)
	}
	secs, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return Checkout{}, fmt.Errorf("gitsrc: unexpected commit time for %s", sha)
	}
	return Checkout{Dir: dir, Commit: sha, Author: f[1], AuthorEmail: f[2], CommitTime: time.Unix(secs, 0).UTC(), Subject: f[4]}, nil
}

// Resolve asks the remote which commit a branch or tag points to (for
// "deploy latest commit"); annotated tags resolve to their commit.
func Resolve(ctx context.Context, r Remote, ref Ref) (Resolved, error) {
	if err := ref.Validate(); err != nil {
		return Resolved{}, err
	}
	patterns := []string{"--", ref.FullName()}
	if ref.Kind == RefTag {
		patterns = append(patterns, ref.FullName()+"^{}") // the peeled commit of an annotated tag
	}
	refs, learned, err := lsRemote(ctx, r, patterns...)
	if err != nil {
		return Resolved{LearnedHostKeys: learned}, err
	}
	for _, rr := range refs {
		if rr.Ref == ref {
			return Resolved{Commit: rr.Commit, LearnedHostKeys: learned}, nil
		}
	}
	return Resolved{LearnedHostKeys: learned}, fmt.Errorf("%w: %s %q", ErrRefNotFound, ref.Kind, ref.Name)
}

// ListRefs lists the remote's branches and tags.
func ListRefs(ctx context.Context, r Remote) (RefList, error) {
	refs, learned, err := lsRemote(ctx, r, "--heads", "--tags", "--")
	return RefList{Refs: refs, LearnedHostKeys: learned}, err
}

// lsRemote runs `git ls-remote <flags…> -- <url> [patterns…]`; args holds
// the flags, "--", then the patterns.
func lsRemote(ctx context.Context, r Remote, args ...string) ([]RemoteRef, []string, error) {
	u, tr, err := r.validate()
	if err != nil {
		return nil, nil, err
	}
	s, err := newSession(r, u, tr)
	if err != nil {
		return nil, nil, err
	}
	defer s.close()
	var argv []string
	argv = append(argv, "ls-remote")
	dash := 0
	for i, a := range args {
		if a == "--" {
			dash = i
			break
		}
	}
	argv = append(argv, args[:dash+1]...)
	argv = append(argv, u)
	argv = append(argv, args[dash+1:]...)
	out, err := s.git(ctx, s.home, argv...)
	if err != nil {
		return nil, s.learned(), err
	}
	return parseLsRemote(out), s.learned(), nil
}

// parseLsRemote reads "<sha>\t<ref>" lines. Names git would not accept are
// skipped, so nothing odd reaches the UI; peeled tags ("^{}") replace the
// tag object's id with the commit's.
func parseLsRemote(out string) []RemoteRef {
	byName := map[string]*RemoteRef{}
	var order []string
	for _, line := range strings.Split(out, "\n") {
		sha, name, ok := strings.Cut(line, "\t")
		if !ok || ValidateCommit(sha) != nil {
			continue
		}
		peeled := strings.HasSuffix(name, "^{}")
		name = strings.TrimSuffix(name, "^{}")
		var ref Ref
		switch {
		case strings.HasPrefix(name, "refs/heads/"):
			ref = Branch(strings.TrimPrefix(name, "refs/heads/"))
		case strings.HasPrefix(name, "refs/tags/"):
			ref = Tag(strings.TrimPrefix(name, "refs/tags/"))
		default:
			continue
		}
		if ref.Validate() != nil {
			continue
		}
		if rr, ok := byName[name]; ok {
			if peeled {
				rr.Commit = sha
			}
			continue
		}
		byName[name] = &RemoteRef{Ref: ref, Commit: sha}
		order = append(order, name)
	}
	refs := make([]RemoteRef, 0, len(order))
	for _, n := range order {
		refs = append(refs, *byName[n])
	}
	sort.SliceStable(refs, func(i, j int) bool {
		if refs[i].Kind != refs[j].Kind {
			return refs[i].Kind == RefBranch
		}
		return refs[i].Name < refs[j].Name
	})
	return refs
}
