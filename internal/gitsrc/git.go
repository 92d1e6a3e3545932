package gitsrc

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Remote is a Source plus what it takes to reach it. Secrets are only ever
// passed to git through its environment or a private temporary file,
// never in its arguments.
type Remote struct {
	Source Source
	// Token authenticates HTTPS fetches (a provider access token or
	// password); it is sent as HTTP basic auth with TokenUser.
	Token string
	// TokenUser is the basic-auth user sent with Token; empty picks the
	// provider's convention (x-access-token, oauth2, x-token-auth, git).
	TokenUser string
	// DeployKey is the unsealed PEM private key for SSH sources.
	DeployKey []byte
	// KnownHosts are the pinned known_hosts lines for SSH sources; any
	// other host (or key) is refused. Empty means trust on first use: the
	// key of every host contacted is accepted, unless a key recorded
	// earlier in the same operation contradicts it, and returned in the
	// result's LearnedHostKeys for the caller to store and show.
	KnownHosts string
	// CAFile is a PEM bundle of extra CAs for HTTPS (private CAs).
	CAFile string
}

// Mask replaces every occurrence of each non-empty secret in s with "***".
// Longer secrets are replaced first so a secret containing another is
// masked whole.
func Mask(s string, secrets ...string) string {
	sorted := make([]string, 0, len(secrets))
	for _, sec := range secrets {
		if sec != "" {
			sorted = append(sorted, sec)
		}
	}
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	for _, sec := range sorted {
		s = strings.ReplaceAll(s, sec, "***")
	}
	return s
}

// Environment variables that switch the berth binary into its SSH client
// role (see SSHMain) and tell it what to use.
const (
	envSSHMode       = "BERTH_GIT_SSH_MODE" // "verify" or "tofu"
	envSSHKey        = "BERTH_GIT_SSH_KEY"  // path of the deploy key (PEM)
	envSSHKnownHosts = "BERTH_GIT_SSH_KNOWN_HOSTS"
	envSSHStatus     = "BERTH_GIT_SSH_STATUS" // where the client reports failures for the parent
)

// maxStderr bounds how much of git's diagnostics an error carries.
const maxStderr = 16 << 10

// maxStdout bounds what Berth reads from git's standard output (ls-remote of
// a huge repository, log output).
const maxStdout = 64 << 20

// passEnv are the operator's variables git may need: where programs are,
// and how to reach the network.
var passEnv = []string{"PATH", "TMPDIR", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "all_proxy"}

// execHook, when set by tests, sees every command before it runs.
var execHook func(cmd *exec.Cmd)

// sshProgram is the program git runs as GIT_SSH: this very binary.
var sshProgram = os.Executable

// session is the controlled world one operation's git commands run in: an
// empty HOME holding the deploy key and known_hosts files, and an
// environment built from scratch.
type session struct {
	url       string
	transport Transport
	home      string
	env       []string
	secrets   []string
	known     string // known_hosts file path
	status    string // SSH client status file path
	pinned    []byte // known_hosts content before the operation
}

func (r Remote) validate() (string, Transport, error) {
	u, err := r.Source.CloneURL()
	if err != nil {
		return "", "", err
	}
	tr, err := parseRemoteURL("url", u)
	if err != nil {
		return "", "", err
	}
	if r.Token != "" {
		if tr != TransportHTTPS {
			return "", "", invalid("token", "is only used with https:// sources; SSH uses the deploy key")
		}
		if strings.ContainsAny(r.Token, "\r\n\x00") || !utf8.ValidString(r.Token) {
			return "", "", invalid("token", "must not contain line breaks or NUL")
		}
	}
	if r.TokenUser != "" {
		if strings.ContainsAny(r.TokenUser, ":\r\n\x00") {
			return "", "", invalid("token_user", "must not contain \":\", line breaks or NUL")
		}
	}
	if len(r.DeployKey) > 0 {
		if tr != TransportSSH {
			return "", "", invalid("deploy_key", "is only used with SSH sources")
		}
		if _, err := ssh.ParsePrivateKey(r.DeployKey); err != nil {
			return "", "", invalid("deploy_key", "is not a valid unencrypted SSH private key")
		}
	} else if tr == TransportSSH {
		return "", "", invalid("deploy_key", "is required for SSH sources")
	}
	if r.KnownHosts != "" {
		if tr != TransportSSH {
			return "", "", invalid("known_hosts", "is only used with SSH sources")
		}
		if err := checkKnownHosts(r.KnownHosts); err != nil {
			return "", "", err
		}
	}
	if r.CAFile != "" {
		if err := checkPlain("ca_file", r.CAFile); err != nil {
			return "", "", err
		}
		if !filepath.IsAbs(r.CAFile) {
			return "", "", invalid("ca_file", "must be an absolute path")
		}
	}
	return u, tr, nil
}

// checkKnownHosts refuses pins that are not all valid known_hosts lines.
func checkKnownHosts(s string) error {
	rest := []byte(s)
	for len(bytes.TrimSpace(rest)) > 0 {
		var err error
		_, _, _, _, rest, err = ssh.ParseKnownHosts(rest)
		if err != nil {
			return invalid("known_hosts", "must be known_hosts lines (\"host ssh-ed25519 AAAA…\")")
		}
	}
	return nil
}

func newSession(r Remote, u string, tr Transport) (*session, error) {
	home, err := os.MkdirTemp("", "berth-git-")
	if err != nil {
		return nil, fmt.Errorf("gitsrc: %w", err)
	}
	s := &session{url: u, transport: tr, home: home}
	if err := s.setup(r); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *session) setup(r Remote) error {
	templates := filepath.Join(s.home, "templates")
	if err := os.Mkdir(templates, 0o700); err != nil {
		return fmt.Errorf("gitsrc: %w", err)
	}
	env := []string{
		"HOME=" + s.home,
		"XDG_CONFIG_HOME=" + filepath.Join(s.home, ".config"),
		"LC_ALL=C",
		"LANG=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=",
		"SSH_ASKPASS=",
		"GIT_TEMPLATE_DIR=" + templates,
		"GIT_ALLOW_PROTOCOL=https:ssh",
	}
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	// Configuration through GIT_CONFIG_* reaches every git process this one
	// starts (remote helpers, submodules), unlike a config file in the
	// repository, and never shows in an argument list.
	cfg := [][2]string{
		{"protocol.allow", "never"},
		{"protocol.https.allow", "always"},
		{"protocol.ssh.allow", "always"},
		{"credential.helper", ""},
		{"core.hooksPath", "/dev/null"},
		{"core.fsmonitor", "false"},
		{"advice.detachedHead", "false"},
		{"init.defaultBranch", "main"},
		{"fetch.recurseSubmodules", "false"},
		{"gc.auto", "0"},
		{"maintenance.auto", "false"},
	}
	if r.Token != "" {
		user := r.TokenUser
		if user == "" {
			user = tokenUser(r.Source.Kind())
		}
		basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + r.Token))
		// Scoped to the source's origin: a submodule on another host (say,
		// named by a hostile .gitmodules) never sees the token.
		cfg = append(cfg, [2]string{"http." + originOf(s.url) + ".extraHeader", "Authorization: Basic " + basic})
		s.secrets = append(s.secrets, r.Token, basic)
	}
	env = append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(len(cfg)))
	for i, kv := range cfg {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	if r.CAFile != "" {
		env = append(env, "GIT_SSL_CAINFO="+r.CAFile)
	}

	// SSH: git runs this binary as its ssh program (no shell is involved,
	// unlike GIT_SSH_COMMAND); the files it needs live in the private HOME.
	exe, err := sshProgram()
	if err != nil {
		return fmt.Errorf("gitsrc: locate berth binary for SSH: %w", err)
	}
	s.known = filepath.Join(s.home, "known_hosts")
	s.status = filepath.Join(s.home, "ssh-status")
	s.pinned = []byte(r.KnownHosts)
	if err := os.WriteFile(s.known, s.pinned, 0o600); err != nil {
		return fmt.Errorf("gitsrc: %w", err)
	}
	mode := "verify"
	if strings.TrimSpace(r.KnownHosts) == "" {
		mode = "tofu"
	}
	env = append(env, "GIT_SSH="+exe, "GIT_SSH_VARIANT=ssh",
		envSSHMode+"="+mode, envSSHKnownHosts+"="+s.known, envSSHStatus+"="+s.status)
	if len(r.DeployKey) > 0 {
		keyFile := filepath.Join(s.home, "deploy_key")
		if err := os.WriteFile(keyFile, r.DeployKey, 0o600); err != nil {
			return fmt.Errorf("gitsrc: %w", err)
		}
		env = append(env, envSSHKey+"="+keyFile)
	}
	s.env = env
	return nil
}

// originOf is scheme://host[:port]/ of an https URL, the scope for
// http.<url>.* settings.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host + "/"
}

func (s *session) close() { os.RemoveAll(s.home) }

// learned are the known_hosts lines the SSH client recorded on first use.
func (s *session) learned() []string {
	if s.known == "" {
		return nil
	}
	now, err := os.ReadFile(s.known)
	if err != nil || len(now) <= len(s.pinned) {
		return nil
	}
	var lines []string
	for _, l := range strings.Split(string(now[len(s.pinned):]), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// git runs one git command in dir and returns its standard output.
func (s *session) git(ctx context.Context, dir string, args ...string) (string, error) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return "", fmt.Errorf("gitsrc: git is not installed on this host: %w", err)
	}
	cmd := exec.CommandContext(ctx, gitPath, args...)
	cmd.Dir = dir
	// Never discover a repository above the one we work in (or above HOME
	// for commands that need none): its config could name programs to run.
	cmd.Env = append(append([]string(nil), s.env...), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
	var stdout, stderr capBuffer
	stdout.max, stderr.max = maxStdout, maxStderr
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	killGroup(cmd)
	if execHook != nil {
		execHook(cmd)
	}
	os.Remove(s.status)
	runErr := cmd.Run()
	if runErr == nil {
		return stdout.String(), nil
	}
	ge := &GitError{
		Args:     maskAll(args, s.secrets),
		ExitCode: -1,
		Output:   Mask(stderr.String(), s.secrets...),
		Err:      runErr,
	}
	var exitErr *exec.ExitError
	if errors.As(runErr, &exitErr) && exitErr.Exited() {
		ge.ExitCode = exitErr.ExitCode()
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		ge.Err = ctxErr
		ge.ExitCode = -1
	}
	if sshErr := s.sshFailure(); sshErr != nil {
		if hk, ok := sshErr.(*HostKeyError); ok {
			return "", hk
		}
		ge.Kind = sshErr
	} else {
		ge.Kind = classify(ge.Output)
	}
	return "", ge
}

// sshFailure reads what the SSH client reported, if it failed.
func (s *session) sshFailure() error {
	data, err := os.ReadFile(s.status)
	if err != nil {
		return nil
	}
	var ev sshEvent
	for _, line := range bytes.Split(data, []byte("\n")) {
		var e sshEvent
		if json.Unmarshal(line, &e) == nil && e.Event != "" {
			ev = e
		}
	}
	switch ev.Event {
	case "hostkey":
		return &HostKeyError{Host: ev.Host, Pinned: ev.Pinned, Offered: ev.Offered, Unknown: ev.Unknown}
	case "auth":
		return ErrAuth
	}
	return nil
}

// classify maps git's diagnostics to a sentinel. git reports these
// conditions only as text; this is the one place that reads it.
func classify(out string) error {
	lower := strings.ToLower(out)
	for _, m := range []string{"authentication failed", "could not read username", "could not read password",
		"returned error: 401", "returned error: 403", "http basic: access denied", "permission denied (publickey"} {
		if strings.Contains(lower, m) {
			return ErrAuth
		}
	}
	for _, m := range []string{"couldn't find remote ref", "no such remote ref"} {
		if strings.Contains(lower, m) {
			return ErrRefNotFound
		}
	}
	// A commit asked for by id that the server will not (or cannot) send.
	for _, m := range []string{"not our ref", "unadvertised object"} {
		if strings.Contains(lower, m) {
			return ErrCommitNotFound
		}
	}
	return nil
}

func maskAll(args, secrets []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = Mask(a, secrets...)
	}
	return out
}

// capBuffer keeps the first max bytes written and drops the rest, so a
// chatty or hostile server cannot exhaust memory.
type capBuffer struct {
	bytes.Buffer
	max       int
	truncated bool
}

func (b *capBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room < len(p) {
		b.truncated = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

func (b *capBuffer) String() string {
	if b.truncated {
		return b.Buffer.String() + "\n[output truncated]"
	}
	return b.Buffer.String()
}
