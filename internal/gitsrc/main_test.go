package gitsrc

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/berthpaas/berth/internal/testenv/gitserver"
)

func TestMain(m *testing.M) {
	// Fetch points GIT_SSH at the running binary; in tests that is this
	// test binary, which must then behave as berth does.
	if IsSSHInvocation() {
		os.Exit(SSHMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fixtureGit runs git for building test repositories, isolated from the
// developer's configuration. It is the tests' git, not the product's.
var fixtureGit = gitserver.Git

// fixture is a directory of bare repositories served by the test servers.
type fixture struct {
	root string
	// app: commits[0] (oldest, tagged v1, annotated) … commits[2] (main's tip);
	// branch feature/x at commits[1]. strict is a copy that is served
	// without fetch-by-id support.
	commits []string
	subTip  string // sub.git's only commit
	super   string // super.git's commit (with submodule lib -> sub.git)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{root: filepath.Join(base, "srv")}
	if err := os.Mkdir(f.root, 0o755); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(base, "work")
	os.Mkdir(work, 0o755)
	fixtureGit(t, work, "init", "-q")
	for i, content := range []string{"FROM scratch\n# v1\n", "FROM scratch\n# v2\n", "FROM scratch\n# v3\n"} {
		if err := os.WriteFile(filepath.Join(work, "Dockerfile"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		fixtureGit(t, work, "add", "Dockerfile")
		fixtureGit(t, work, "commit", "-q", "-m", "commit "+string(rune('1'+i))+"\n\nbody line")
		f.commits = append(f.commits, fixtureGit(t, work, "rev-parse", "HEAD"))
		switch i {
		case 0:
			fixtureGit(t, work, "tag", "-a", "v1", "-m", "release v1")
		case 1:
			fixtureGit(t, work, "branch", "feature/x")
		}
	}
	fixtureGit(t, base, "clone", "-q", "--bare", work, filepath.Join(f.root, "app.git"))
	fixtureGit(t, filepath.Join(f.root, "app.git"), "config", "uploadpack.allowAnySHA1InWant", "true")
	fixtureGit(t, base, "clone", "-q", "--bare", work, filepath.Join(f.root, "strict.git"))

	sub := filepath.Join(base, "subwork")
	os.Mkdir(sub, 0o755)
	fixtureGit(t, sub, "init", "-q")
	os.WriteFile(filepath.Join(sub, "lib.txt"), []byte("library\n"), 0o644)
	fixtureGit(t, sub, "add", "lib.txt")
	fixtureGit(t, sub, "commit", "-q", "-m", "lib")
	f.subTip = fixtureGit(t, sub, "rev-parse", "HEAD")
	fixtureGit(t, base, "clone", "-q", "--bare", sub, filepath.Join(f.root, "sub.git"))

	super := filepath.Join(base, "superwork")
	os.Mkdir(super, 0o755)
	fixtureGit(t, super, "init", "-q")
	os.WriteFile(filepath.Join(super, ".gitmodules"), []byte("[submodule \"lib\"]\n\tpath = lib\n\turl = ../sub.git\n"), 0o644)
	os.WriteFile(filepath.Join(super, "main.txt"), []byte("main\n"), 0o644)
	fixtureGit(t, super, "add", ".gitmodules", "main.txt")
	fixtureGit(t, super, "update-index", "--add", "--cacheinfo", "160000,"+f.subTip+",lib")
	fixtureGit(t, super, "commit", "-q", "-m", "super with submodule")
	f.super = fixtureGit(t, super, "rev-parse", "HEAD")
	fixtureGit(t, base, "clone", "-q", "--bare", super, filepath.Join(f.root, "super.git"))
	return f
}

// execRecorder records every git command the package starts.
type execRecorder struct {
	mu   sync.Mutex
	cmds []*exec.Cmd
}

func recordExecs(t *testing.T) *execRecorder {
	t.Helper()
	r := &execRecorder{}
	execHook = func(cmd *exec.Cmd) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.cmds = append(r.cmds, cmd)
	}
	t.Cleanup(func() { execHook = nil })
	return r
}

func (r *execRecorder) all() []*exec.Cmd {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*exec.Cmd(nil), r.cmds...)
}
