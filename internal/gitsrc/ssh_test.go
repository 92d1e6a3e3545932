package gitsrc

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func sshRemote(srv *sshServer, repo string, key DeployKey, pins string) Remote {
	return Remote{Source: Source{&URL{URL: "ssh://git@" + srv.Addr + "/" + repo}}, DeployKey: key.PrivateKeyPEM, KnownHosts: pins}
}

func TestSSHFetchTOFUThenPinned(t *testing.T) {
	f := newFixture(t)
	key, err := GenerateDeployKey("shop-api")
	if err != nil {
		t.Fatal(err)
	}
	srv := startSSHServer(t, f.root, key)
	ctx := testCtx(t)

	// First use: no pins; the host key is accepted and handed back.
	res, err := Resolve(ctx, sshRemote(srv, "app.git", key, ""), Branch("main"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != f.commits[2] {
		t.Fatalf("Resolve = %s, want %s", res.Commit, f.commits[2])
	}
	if len(res.LearnedHostKeys) != 1 {
		t.Fatalf("learned host keys = %q, want one line", res.LearnedHostKeys)
	}
	pin := res.LearnedHostKeys[0]
	hostPub := (*srv.hostKey.Load()).PublicKey()
	_, hosts, pub, _, _, err := ssh.ParseKnownHosts([]byte(pin))
	if err != nil || string(pub.Marshal()) != string(hostPub.Marshal()) || len(hosts) != 1 || !strings.HasPrefix(hosts[0], "[127.0.0.1]:") {
		t.Fatalf("learned line %q does not pin the server's key (%v)", pin, err)
	}

	// Pinned: exact older commit over SSH, with the server allowing ids.
	dir := filepath.Join(t.TempDir(), "co")
	co, err := Fetch(ctx, FetchOptions{Remote: sshRemote(srv, "app.git", key, pin+"\n"), Commit: f.commits[1], Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if co.Commit != f.commits[1] || readFile(t, filepath.Join(dir, "Dockerfile")) != "FROM scratch\n# v2\n" {
		t.Fatalf("checkout = %+v", co)
	}
	if len(co.LearnedHostKeys) != 0 {
		t.Fatalf("pinned fetch learned %q", co.LearnedHostKeys)
	}
	// Fallback over SSH (v0-only server) with a tag.
	tag := Tag("v1")
	co, err = Fetch(ctx, FetchOptions{Remote: sshRemote(srv, "strict.git", key, pin), Commit: f.commits[0], Ref: &tag, Dir: filepath.Join(t.TempDir(), "strict")})
	if err != nil || co.Commit != f.commits[0] {
		t.Fatalf("strict fetch: %+v, %v", co, err)
	}

	// The server's key changes: refused, naming host and both fingerprints.
	before := srv.execs.Load()
	newKey := newHostKey(t)
	srv.setHostKey(newKey)
	dir2 := filepath.Join(t.TempDir(), "co2")
	_, err = Fetch(ctx, FetchOptions{Remote: sshRemote(srv, "app.git", key, pin), Commit: f.commits[2], Dir: dir2})
	var hk *HostKeyError
	if !errors.As(err, &hk) || !errors.Is(err, ErrHostKey) {
		t.Fatalf("err = %v, want *HostKeyError", err)
	}
	msg := err.Error()
	t.Logf("error shown: %s", msg)
	for _, want := range []string{srv.Addr, ssh.FingerprintSHA256(hostPub), ssh.FingerprintSHA256(newKey.PublicKey())} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q does not mention %s", msg, want)
		}
	}
	if srv.execs.Load() != before {
		t.Fatal("upload-pack ran although the host key was wrong")
	}
	if _, err := os.Stat(dir2); !os.IsNotExist(err) {
		t.Fatal("failed fetch left its directory behind")
	}

	// Pins for another host only: this host is unknown, refused.
	other := strings.Replace(pin, "[127.0.0.1]", "[192.0.2.1]", 1)
	_, err = ListRefs(ctx, sshRemote(srv, "app.git", key, other))
	if !errors.As(err, &hk) || !hk.Unknown {
		t.Fatalf("unknown host: err = %v, want *HostKeyError{Unknown}", err)
	}
	t.Logf("error shown: %v", err)
}

func TestSSHWrongDeployKey(t *testing.T) {
	f := newFixture(t)
	good, _ := GenerateDeployKey("good")
	bad, _ := GenerateDeployKey("bad")
	srv := startSSHServer(t, f.root, good)
	ctx := testCtx(t)
	dir := filepath.Join(t.TempDir(), "co")
	_, err := Fetch(ctx, FetchOptions{Remote: sshRemote(srv, "app.git", bad, ""), Commit: f.commits[2], Dir: dir})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	t.Logf("error shown: %v", err)
	if !strings.Contains(err.Error(), bad.Fingerprint()) {
		t.Fatalf("error %q does not name the refused key", err)
	}
	if srv.execs.Load() != 0 {
		t.Fatal("upload-pack ran for an unauthorized key")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("failed fetch left its directory behind")
	}
}

func TestSSHSubmodulesAndListRefs(t *testing.T) {
	f := newFixture(t)
	key, _ := GenerateDeployKey("k")
	srv := startSSHServer(t, f.root, key)
	ctx := testCtx(t)
	list, err := ListRefs(ctx, sshRemote(srv, "app.git", key, ""))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Refs) != 3 || len(list.LearnedHostKeys) != 1 {
		t.Fatalf("ListRefs = %+v", list)
	}
	dir := filepath.Join(t.TempDir(), "co")
	_, err = Fetch(ctx, FetchOptions{Remote: sshRemote(srv, "super.git", key, list.LearnedHostKeys[0]), Commit: f.super, Dir: dir, Submodules: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "lib", "lib.txt")); got != "library\n" {
		t.Fatalf("lib/lib.txt = %q", got)
	}
}

func TestParseSSHArgs(t *testing.T) {
	good := []struct {
		args             []string
		user, host, port string
		proto            bool
	}{
		{[]string{"-o", "SendEnv=GIT_PROTOCOL", "-p", "2222", "git@example.com", "git-upload-pack '/a.git'"}, "git", "example.com", "2222", true},
		{[]string{"-p2222", "example.com", "git-upload-pack 'a.git'"}, "git", "example.com", "2222", false},
		{[]string{"-oSendEnv=GIT_PROTOCOL", "deploy@10.0.0.1", "cmd"}, "deploy", "10.0.0.1", "22", true},
		{[]string{"-6", "[::1]", "cmd"}, "git", "::1", "22", false},
	}
	for _, tc := range good {
		c, err := parseSSHArgs(tc.args)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if c.user != tc.user || c.host != tc.host || c.port != tc.port || c.sendProtocol != tc.proto {
			t.Fatalf("%q: got %+v", tc.args, c)
		}
	}
	bad := [][]string{
		{"-oProxyCommand=touch /tmp/x", "host", "cmd"},
		{"-o", "ProxyCommand=touch /tmp/x", "host", "cmd"},
		{"--", "-oProxyCommand=touch /tmp/x", "cmd"},
		{"-p", "22;id", "host", "cmd"},
		{"-F", "/etc/passwd", "host", "cmd"},
		{"host"},
		{"host", "cmd", "extra"},
		{"us er@host", "cmd"},
		{"host name", "cmd"},
	}
	for _, args := range bad {
		if _, err := parseSSHArgs(args); err == nil {
			t.Fatalf("%q: accepted", args)
		}
	}
}
