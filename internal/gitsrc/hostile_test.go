package gitsrc

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Hostile values are refused by validation: no git process starts, no
// directory is created, no server is contacted, and the command the
// attacker wanted never runs.
func TestHostileInputsRefusedBeforeExec(t *testing.T) {
	f := newFixture(t)
	srv := startHTTPServer(t, f.root, testToken)
	key, _ := GenerateDeployKey("k")
	sshSrv := startSSHServer(t, f.root, key)
	rec := recordExecs(t)
	tmp := t.TempDir()
	marker := filepath.Join(tmp, "pwned")
	touch := "touch " + marker
	good := httpRemote(srv, "app.git", testToken)
	goodSSH := sshRemote(sshSrv, "app.git", key, "")
	sha := f.commits[2]
	ref := func(r Ref) *Ref { return &r }
	withURL := func(u string) Remote { r := good; r.Source = Source{&URL{URL: u}}; return r }

	cases := map[string]FetchOptions{
		"upload-pack option as URL":      {Remote: withURL("--upload-pack=" + touch), Commit: sha},
		"upload-pack option, no spaces":  {Remote: withURL("--upload-pack=touch${IFS}" + marker), Commit: sha},
		"upload-pack option as branch":   {Remote: good, Ref: ref(Branch("--upload-pack=" + touch))},
		"upload-pack option as tag":      {Remote: good, Ref: ref(Tag("--upload-pack=" + touch))},
		"option as commit":               {Remote: good, Commit: "--upload-pack=" + touch},
		"ProxyCommand as ssh host":       {Remote: Remote{Source: Source{&URL{URL: "ssh://-oProxyCommand=" + strings.ReplaceAll(touch, " ", "$IFS") + "/repo.git"}}, DeployKey: key.PrivateKeyPEM}, Commit: sha},
		"ProxyCommand as scp host":       {Remote: Remote{Source: Source{&URL{URL: "-oProxyCommand=" + strings.ReplaceAll(touch, " ", "$IFS") + ":repo.git"}}, DeployKey: key.PrivateKeyPEM}, Commit: sha},
		"ext transport":                  {Remote: withURL("ext::sh -c " + strings.ReplaceAll(touch, " ", "% ")), Commit: sha},
		"ext transport, no spaces":       {Remote: withURL("ext::sh"), Commit: sha},
		"file transport":                 {Remote: withURL("file://" + f.root + "/app.git"), Commit: sha},
		"local path":                     {Remote: withURL(filepath.Join(f.root, "app.git")), Commit: sha},
		"credentials in URL":             {Remote: withURL(strings.Replace(srv.URL, "https://", "https://u:"+testToken+"@", 1) + "/app.git"), Commit: sha},
		"shell in branch":                {Remote: good, Ref: ref(Branch("main;rm -rf /"))},
		"dotdot branch":                  {Remote: good, Ref: ref(Branch("main/../../x"))},
		"newline in branch":              {Remote: good, Ref: ref(Branch("main\n" + touch))},
		"newline in URL":                 {Remote: withURL(srv.URL + "/app.git\n" + touch), Commit: sha},
		"abbreviated commit":             {Remote: good, Commit: sha[:12]},
		"header injection through token": {Remote: func() Remote { r := good; r.Token = "x\r\nX-Evil: 1"; return r }(), Commit: sha},
		"token on ssh":                   {Remote: func() Remote { r := goodSSH; r.Token = testToken; return r }(), Commit: sha},
		"ssh without deploy key":         {Remote: func() Remote { r := goodSSH; r.DeployKey = nil; return r }(), Commit: sha},
		"garbage pins":                   {Remote: func() Remote { r := goodSSH; r.KnownHosts = "not a known_hosts line"; return r }(), Commit: sha},
		"no commit and no ref":           {Remote: good},
		"empty source":                   {Remote: Remote{}, Commit: sha},
		"provider repo with dotdot":      {Remote: Remote{Source: Source{&GitHub{Repo: "../../etc"}}}, Commit: sha},
		"provider repo with option":      {Remote: Remote{Source: Source{&GitHub{Repo: "acme/--upload-pack=x"}}}, Commit: sha},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			o.Dir = filepath.Join(tmp, "co-"+strings.ReplaceAll(name, " ", "-"))
			_, err := Fetch(testCtx(t), o)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a validation error", err)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error echoes the input: %q", err)
			}
			if _, err := os.Stat(o.Dir); !os.IsNotExist(err) {
				t.Fatal("checkout directory was created")
			}
		})
	}
	for name, run := range map[string]func() error{
		"Resolve option branch": func() error { _, err := Resolve(testCtx(t), good, Branch("--upload-pack="+touch)); return err },
		"Resolve ext URL":       func() error { _, err := Resolve(testCtx(t), withURL("ext::sh"), Branch("main")); return err },
		"ListRefs option URL":   func() error { _, err := ListRefs(testCtx(t), withURL("--upload-pack="+touch)); return err },
	} {
		if err := run(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want a validation error", name, err)
		}
	}
	for _, dir := range []string{"relative/dir", tmp, tmp + "/a/../b", tmp + "/x\n"} {
		if _, err := Fetch(testCtx(t), FetchOptions{Remote: good, Commit: sha, Dir: dir}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Dir %q: err = %v, want a validation error", dir, err)
		}
	}

	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d git commands ran for hostile input, want 0: first %q", n, rec.all()[0].Args)
	}
	if n := srv.Requests(); n != 0 {
		t.Fatalf("HTTP server got %d requests", n)
	}
	if n := sshSrv.execs.Load(); n != 0 {
		t.Fatalf("SSH server ran %d commands", n)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("the injected command ran")
	}
}

// A hostile .gitmodules naming another host never receives the token, and
// forbidden transports in it are refused by git under Berth's settings.
func TestHostileSubmoduleURLs(t *testing.T) {
	f := newFixture(t)
	srv := startHTTPServer(t, f.root, testToken)
	other := startHTTPServer(t, f.root, "other-token")
	marker := filepath.Join(t.TempDir(), "pwned")
	var plainHits atomic.Int32 // git allows plain http by default; Berth does not
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(plain.Close)
	for name, url := range map[string]string{
		"other host": other.URL + "/sub.git",
		"plain http": plain.URL + "/sub.git",
		"git daemon": "git://" + strings.TrimPrefix(plain.URL, "http://") + "/sub.git",
		"ext":        "ext::sh -c touch% " + marker,
		"file":       "file://" + filepath.Join(f.root, "sub.git"),
	} {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			work := filepath.Join(base, "w")
			os.Mkdir(work, 0o755)
			fixtureGit(t, work, "init", "-q")
			os.WriteFile(filepath.Join(work, ".gitmodules"), []byte("[submodule \"lib\"]\n\tpath = lib\n\turl = "+url+"\n"), 0o644)
			fixtureGit(t, work, "add", ".gitmodules")
			fixtureGit(t, work, "update-index", "--add", "--cacheinfo", "160000,"+f.subTip+",lib")
			fixtureGit(t, work, "commit", "-q", "-m", "hostile")
			sha := fixtureGit(t, work, "rev-parse", "HEAD")
			repo := "hostile-" + strings.ReplaceAll(name, " ", "-") + ".git"
			fixtureGit(t, base, "clone", "-q", "--bare", work, filepath.Join(f.root, repo))
			r := httpRemote(srv, repo, testToken)
			r.CAFile = srv.CAFile
			_, err := Fetch(testCtx(t), FetchOptions{Remote: r, Commit: sha, Dir: filepath.Join(base, "co"), Submodules: true})
			if err == nil {
				t.Fatal("fetch with a hostile submodule succeeded")
			}
			t.Logf("error shown: %v", err)
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("error reveals the token: %v", err)
			}
		})
	}
	for _, h := range other.AuthSeen() {
		t.Errorf("the other host received credentials: %q", h)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("the ext:: submodule command ran")
	}
	if n := plainHits.Load(); n != 0 {
		t.Fatalf("a forbidden transport reached the network (%d connections)", n)
	}
}
