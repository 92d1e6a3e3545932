package gitsrc

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshEvent is what the SSH client reports to the Berth process that ran
// git, through the status file, when it fails for a reason Berth must tell
// apart (host key, authentication).
type sshEvent struct {
	Event   string   `json:"event"` // "hostkey" or "auth"
	Host    string   `json:"host"`
	Pinned  []string `json:"pinned,omitempty"`
	Offered string   `json:"offered,omitempty"`
	Unknown bool     `json:"unknown,omitempty"`
}

// sshDialTimeout bounds connecting and the SSH handshake.
const sshDialTimeout = 30 * time.Second

// IsSSHInvocation reports whether git started this process as its ssh
// program (GIT_SSH pointing at the berth binary). main calls it first
// thing and hands over to SSHMain.
func IsSSHInvocation() bool {
	m := os.Getenv(envSSHMode)
	return m == "verify" || m == "tofu"
}

// SSHMain is the SSH client git runs instead of OpenSSH:
//
//	berth [-o SendEnv=GIT_PROTOCOL] [-p port] [-4|-6] [user@]host command
//
// It verifies the host key against the pinned known_hosts file (or, in
// trust-on-first-use mode, records the key of a host seen for the first
// time), authenticates with the deploy key, runs command and relays
// stdin, stdout, stderr and the exit status. It returns the exit code.
func SSHMain(args []string) int {
	c, err := parseSSHArgs(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-ssh:", err)
		return 255
	}
	code, err := c.run(os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-ssh:", err)
		return 255
	}
	return code
}

type sshCall struct {
	user, host, port string
	network          string
	sendProtocol     bool
	command          string
	// From the environment git passes down.
	mode, keyFile, knownFile, statusFile string
}

func parseSSHArgs(args []string) (*sshCall, error) {
	c := &sshCall{user: "git", port: "22", network: "tcp"}
	value := func(a, flag string) (string, error) {
		if len(a) > 2 {
			return a[2:], nil
		}
		if len(args) < 2 {
			return "", fmt.Errorf("option %s needs a value", flag)
		}
		v := args[1]
		args = args[1:]
		return v, nil
	}
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		switch {
		case a == "--":
			args = args[1:]
			goto positional
		case a == "-4":
			c.network = "tcp4"
		case a == "-6":
			c.network = "tcp6"
		case strings.HasPrefix(a, "-p"):
			v, err := value(a, "-p")
			if err != nil {
				return nil, err
			}
			if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
				return nil, errors.New("invalid port")
			}
			c.port = v
		case strings.HasPrefix(a, "-o"):
			v, err := value(a, "-o")
			if err != nil {
				return nil, err
			}
			if v != "SendEnv=GIT_PROTOCOL" {
				return nil, errors.New("unsupported option -o (only SendEnv=GIT_PROTOCOL is accepted)")
			}
			c.sendProtocol = true
		default:
			return nil, errors.New("unsupported option")
		}
		args = args[1:]
	}
positional:
	if len(args) != 2 {
		return nil, errors.New("usage: [-p port] [-o SendEnv=GIT_PROTOCOL] [user@]host command")
	}
	dest := args[0]
	if u, h, ok := strings.Cut(dest, "@"); ok {
		if err := checkSSHUser("host", u); err != nil {
			return nil, errors.New("invalid user name")
		}
		c.user, dest = u, h
	}
	dest = strings.TrimSuffix(strings.TrimPrefix(dest, "["), "]")
	if ip := net.ParseIP(dest); ip == nil {
		if err := checkHostname("host", dest); err != nil {
			return nil, errors.New("invalid host name")
		}
	}
	c.host = dest
	c.command = args[1]
	c.mode = os.Getenv(envSSHMode)
	c.keyFile = os.Getenv(envSSHKey)
	c.knownFile = os.Getenv(envSSHKnownHosts)
	c.statusFile = os.Getenv(envSSHStatus)
	return c, nil
}

func (c *sshCall) addr() string { return net.JoinHostPort(c.host, c.port) }

// report tells the parent Berth process why this connection failed.
func (c *sshCall) report(ev sshEvent) {
	if c.statusFile == "" {
		return
	}
	line, _ := json.Marshal(ev)
	f, err := os.OpenFile(c.statusFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	f.Write(append(line, '\n'))
}

func (c *sshCall) run(stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if c.keyFile == "" {
		return 0, fmt.Errorf("no deploy key configured for %s; add the source's deploy key", c.addr())
	}
	keyPEM, err := os.ReadFile(c.keyFile)
	if err != nil {
		return 0, fmt.Errorf("read deploy key: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		return 0, errors.New("the deploy key is not a valid SSH private key")
	}
	hk := &hostKeys{call: c}
	algos, err := hk.pinnedAlgorithms()
	if err != nil {
		return 0, err
	}
	cfg := &ssh.ClientConfig{
		User:              c.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   hk.check,
		HostKeyAlgorithms: algos,
		Timeout:           sshDialTimeout,
	}
	conn, err := (&net.Dialer{Timeout: sshDialTimeout}).Dial(c.network, c.addr())
	if err != nil {
		return 0, fmt.Errorf("connect to %s: %w", c.addr(), err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(sshDialTimeout))
	sc, chans, reqs, err := ssh.NewClientConn(conn, c.addr(), cfg)
	if err != nil {
		switch {
		case hk.err != nil:
			c.report(hk.event)
			return 0, hk.err
		case hk.ok:
			// The host was verified, so the handshake failed at authentication.
			c.report(sshEvent{Event: "auth", Host: c.addr()})
			return 0, fmt.Errorf("%s refused the deploy key %s for user %s; add the public key to the repository's deploy keys",
				c.addr(), ssh.FingerprintSHA256(signer.PublicKey()), c.user)
		default:
			return 0, fmt.Errorf("ssh handshake with %s: %w", c.addr(), err)
		}
	}
	conn.SetDeadline(time.Time{})
	client := ssh.NewClient(sc, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return 0, fmt.Errorf("open session on %s: %w", c.addr(), err)
	}
	defer sess.Close()
	if v := os.Getenv("GIT_PROTOCOL"); c.sendProtocol && v != "" {
		_ = sess.Setenv("GIT_PROTOCOL", v) // servers may refuse; git then falls back to v0
	}
	sess.Stdout, sess.Stderr = stdout, stderr
	// Not sess.Stdin: Wait would block until our stdin closes.
	in, err := sess.StdinPipe()
	if err != nil {
		return 0, err
	}
	if err := sess.Start(c.command); err != nil {
		return 0, fmt.Errorf("run command on %s: %w", c.addr(), err)
	}
	go func() {
		io.Copy(in, stdin)
		in.Close()
	}()
	err = sess.Wait()
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		return exitErr.ExitStatus(), nil
	default:
		return 0, fmt.Errorf("session on %s: %w", c.addr(), err)
	}
}

// hostKeys verifies (and in TOFU mode records) the server's host key.
type hostKeys struct {
	call  *sshCall
	ok    bool
	err   error
	event sshEvent
}

// pinnedKeys are the pinned keys for this host (nil when none).
func (h *hostKeys) pinnedKeys() ([]knownhosts.KnownKey, error) {
	data, err := os.ReadFile(h.call.knownFile)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	cb, err := knownhosts.New(h.call.knownFile)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	// Asking about a throwaway key lists the host's pinned keys in the error.
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	probe, _ := ssh.NewPublicKey(pub)
	var keyErr *knownhosts.KeyError
	if err := cb(h.call.addr(), tcpAddr(h.call), probe); errors.As(err, &keyErr) {
		return keyErr.Want, nil
	}
	return nil, nil
}

// pinnedAlgorithms restricts the host key algorithms to the pinned key
// types, so a server with several keys presents the one we know.
func (h *hostKeys) pinnedAlgorithms() ([]string, error) {
	keys, err := h.pinnedKeys()
	if err != nil {
		return nil, err
	}
	var algos []string
	for _, k := range keys {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			algos = append(algos, t)
		}
	}
	return algos, nil
}

func (h *hostKeys) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	addr := h.call.addr()
	offered := ssh.FingerprintSHA256(key)
	pinned, err := h.pinnedKeys()
	if err != nil {
		h.err = err
		return err
	}
	if len(pinned) == 0 {
		if h.call.mode == "tofu" {
			if err := h.record(key); err != nil {
				h.err = err
				return err
			}
			h.ok = true
			return nil
		}
		h.event = sshEvent{Event: "hostkey", Host: addr, Offered: offered, Unknown: true}
		h.err = &HostKeyError{Host: addr, Offered: offered, Unknown: true}
		return h.err
	}
	var fps []string
	for _, k := range pinned {
		if bytes.Equal(k.Key.Marshal(), key.Marshal()) {
			h.ok = true
			return nil
		}
		fps = append(fps, ssh.FingerprintSHA256(k.Key))
	}
	h.event = sshEvent{Event: "hostkey", Host: addr, Pinned: fps, Offered: offered}
	h.err = &HostKeyError{Host: addr, Pinned: fps, Offered: offered}
	return h.err
}

// record appends the host's key to the known_hosts file (first use).
func (h *hostKeys) record(key ssh.PublicKey) error {
	line := knownhosts.Line([]string{knownhosts.Normalize(h.call.addr())}, key)
	f, err := os.OpenFile(h.call.knownFile, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("record host key: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("record host key: %w", err)
	}
	return nil
}

// tcpAddr is the dialled address for knownhosts' IP check.
func tcpAddr(c *sshCall) net.Addr {
	port, _ := strconv.Atoi(c.port)
	if ip := net.ParseIP(c.host); ip != nil {
		return &net.TCPAddr{IP: ip, Port: port}
	}
	return &net.TCPAddr{IP: net.IPv4zero, Port: port}
}
