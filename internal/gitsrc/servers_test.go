package gitsrc

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/berthpaas/berth/internal/testenv/gitserver"
)

// startHTTPServer serves root's repositories over HTTPS with token, and
// strict.git as an old server would (protocol v0 only).
func startHTTPServer(t *testing.T, root, token string) *gitserver.Server {
	t.Helper()
	return gitserver.Start(t, gitserver.Options{Root: root, Token: token, ProtocolV0: []string{"strict.git"}})
}

// sshServer serves git-upload-pack over SSH to one authorized key.
type sshServer struct {
	Addr    string // 127.0.0.1:port
	root    string
	hostKey atomic.Pointer[ssh.Signer]
	allowed ssh.PublicKey
	execs   atomic.Int32 // upload-pack processes started
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func newHostKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startSSHServer(t *testing.T, root string, allowed DeployKey) *sshServer {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(allowed.AuthorizedKey()))
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{root: root, allowed: pub}
	hk := newHostKey(t)
	s.hostKey.Store(&hk)
	s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = s.ln.Addr().String()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		s.ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *sshServer) setHostKey(k ssh.Signer) { s.hostKey.Store(&k) }

func (s *sshServer) serve(c net.Conn) {
	defer c.Close()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if string(key.Marshal()) == string(s.allowed.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(*s.hostKey.Load())
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(ch, creqs)
		}()
	}
}

func (s *sshServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var gitProtocol string
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil && kv.Name == "GIT_PROTOCOL" {
				gitProtocol = kv.Value
				req.Reply(true, nil)
				continue
			}
			req.Reply(false, nil)
		case "exec":
			var p struct{ Command string }
			if ssh.Unmarshal(req.Payload, &p) != nil {
				req.Reply(false, nil)
				return
			}
			dir, ok := s.repoFor(p.Command)
			if !ok {
				req.Reply(false, nil)
				return
			}
			req.Reply(true, nil)
			s.execs.Add(1)
			if filepath.Base(dir) == "strict.git" {
				gitProtocol = "" // an old server: protocol v0 only
			}
			cmd := exec.Command("git-upload-pack", "--", dir)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.root, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
			if gitProtocol != "" {
				cmd.Env = append(cmd.Env, "GIT_PROTOCOL="+gitProtocol)
			}
			cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
			status := uint32(0)
			if err := cmd.Run(); err != nil {
				status = 1
				var ee *exec.ExitError
				if errors.As(err, &ee) && ee.ExitCode() > 0 {
					status = uint32(ee.ExitCode())
				}
			}
			b := make([]byte, 4)
			binary.BigEndian.PutUint32(b, status)
			ch.SendRequest("exit-status", false, b)
			return
		default:
			req.Reply(false, nil)
		}
	}
}

// repoFor parses "git-upload-pack '<path>'" (git's single-quoting) and
// confines the path to the server's root.
func (s *sshServer) repoFor(command string) (string, bool) {
	arg, ok := strings.CutPrefix(command, "git-upload-pack ")
	if !ok || len(arg) < 2 || arg[0] != '\'' || arg[len(arg)-1] != '\'' {
		return "", false
	}
	p := strings.ReplaceAll(arg[1:len(arg)-1], `'\''`, `'`)
	if strings.ContainsAny(p, "'\x00") {
		return "", false
	}
	dir := filepath.Join(s.root, filepath.Clean("/"+p))
	if rel, err := filepath.Rel(s.root, dir); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", false
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", false
	}
	return dir, true
}
