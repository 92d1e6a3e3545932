// Package listeners holds the edge's listening sockets apart from the proxy
// that accepts on them, so that the proxy can be replaced without refusing a
// connection.
//
// Swarm cannot start a new proxy container next to the old one while both
// publish the same host ports, so a proxy upgrade would otherwise be
// stop-first: about a second of refused connections. Instead a holder (a
// tiny process on the host's network, changed rarely) binds the ports once
// and hands duplicates of the sockets to any proxy that asks over a Unix
// socket. A new proxy accepts on the very sockets the old one accepts on;
// the old one stops accepting and finishes what it has; nothing in the
// kernel's accept queue is lost. A new holder takes the sockets from the old
// one the same way, so the holder can be upgraded without a gap too.
//
// Checked by hand on HAProxy 2.6 with `bind fd@3` (one network namespace):
// 640k requests from 20 clients across a seamless reload, a second HAProxy
// started on the same socket, the first soft-stopped and the holder closing
// its copy: 0 failed. Not wired into `berth proxy` yet.
package listeners

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"syscall"
	"time"
)

// Listener is one listening socket and its name ("http", "https").
type Listener struct {
	Name string
	File *os.File
}

// Addr is the address the socket is bound to.
func (l Listener) Addr() (net.Addr, error) {
	ln, err := net.FileListener(l.File)
	if err != nil {
		return nil, err
	}
	defer ln.Close() // a duplicate: l.File stays open
	return ln.Addr(), nil
}

// Close closes every listener's file.
func Close(ls []Listener) {
	for _, l := range ls {
		l.File.Close()
	}
}

// Bind listens on each named TCP address ("http" → ":80").
func Bind(addrs map[string]string) ([]Listener, error) {
	names := make([]string, 0, len(addrs))
	for name := range addrs {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []Listener
	for _, name := range names {
		ln, err := net.Listen("tcp", addrs[name])
		if err != nil {
			Close(out)
			return nil, fmt.Errorf("listening for %s on %s: %w", name, addrs[name], err)
		}
		f, err := ln.(*net.TCPListener).File()
		ln.Close() // f is a duplicate that keeps the socket open
		if err != nil {
			Close(out)
			return nil, fmt.Errorf("listening for %s on %s: %w", name, addrs[name], err)
		}
		out = append(out, Listener{Name: name, File: f})
	}
	return out, nil
}

// header precedes the descriptors: their names, in order.
type header struct {
	Names []string `json:"names"`
}

// maxListeners bounds what Fetch accepts from a holder.
const maxListeners = 16

// Serve hands duplicates of ls to every client of the Unix socket at path
// until ctx ends. The socket is created mode 0600 (only the proxy's user,
// through a volume only the proxy mounts, reaches it), replacing what was
// at path: a holder that starts after another has fetched the sockets from
// it first. ready, when not nil, is called once clients can connect.
func Serve(ctx context.Context, path string, ls []Listener, ready func()) error {
	os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("serving the listeners: %w", err)
	}
	ln.SetUnlinkOnClose(false) // a successor may own path by then
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("serving the listeners: %w", err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	if ready != nil {
		ready()
	}
	h := header{}
	fds := make([]int, len(ls))
	for i, l := range ls {
		h.Names = append(h.Names, l.Name)
		fds[i] = int(l.File.Fd())
	}
	msg, err := json.Marshal(h)
	if err != nil {
		return err
	}
	rights := syscall.UnixRights(fds...)
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("serving the listeners: %w", err)
		}
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.WriteMsgUnix(msg, rights, nil) // a client that went away asks again
		c.Close()
	}
}

// ErrNoHolder means nothing serves listeners at the path.
var ErrNoHolder = errors.New("no listener holder")

// Fetch asks the holder at path for its listeners. The files are the
// caller's: the holder keeps its own copies.
func Fetch(ctx context.Context, path string) ([]Listener, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("%w at %s", ErrNoHolder, path)
	}
	if err != nil {
		return nil, fmt.Errorf("asking %s for the listeners: %w", path, err)
	}
	c := conn.(*net.UnixConn)
	defer c.Close()
	if deadline, ok := ctx.Deadline(); ok {
		c.SetReadDeadline(deadline)
	}
	buf := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(maxListeners*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("asking %s for the listeners: %w", path, err)
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("listeners from %s: %w", path, err)
	}
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("listener-%d", i))
	}
	var h header
	switch {
	case flags&(syscall.MSG_TRUNC|syscall.MSG_CTRUNC) != 0:
		err = errors.New("the holder's message was cut short")
	case json.Unmarshal(buf[:n], &h) != nil:
		err = errors.New("the holder's message is not the expected JSON")
	case len(h.Names) != len(files):
		err = fmt.Errorf("the holder named %d listeners and passed %d", len(h.Names), len(files))
	}
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		return nil, fmt.Errorf("listeners from %s: %w", path, err)
	}
	out := make([]Listener, len(files))
	for i, f := range files {
		out[i] = Listener{Name: h.Names[i], File: f}
	}
	return out, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return nil, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// Hold is the holder's life: it takes the listeners from a holder already
// serving at path (an upgrade: the same sockets, no gap) or else binds
// addrs, checks that what it holds is what addrs asks for, and serves them
// until ctx ends.
func Hold(ctx context.Context, path string, addrs map[string]string, ready func()) error {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	ls, err := Fetch(fctx, path)
	cancel()
	switch {
	case errors.Is(err, ErrNoHolder):
		if ls, err = Bind(addrs); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if err := sameAddrs(ls, addrs); err != nil {
			Close(ls)
			return err
		}
	}
	defer Close(ls)
	return Serve(ctx, path, ls, ready)
}

// sameAddrs checks listeners taken over from an earlier holder against the
// addresses this one was asked for: a changed port needs a restart.
func sameAddrs(ls []Listener, addrs map[string]string) error {
	if len(ls) != len(addrs) {
		return fmt.Errorf("the running holder has %d listeners, want %d: stop it to change ports", len(ls), len(addrs))
	}
	for _, l := range ls {
		want, ok := addrs[l.Name]
		if !ok {
			return fmt.Errorf("the running holder has a listener %q this one does not want: stop it to change ports", l.Name)
		}
		got, err := l.Addr()
		if err != nil {
			return err
		}
		_, wantPort, err := net.SplitHostPort(want)
		if err != nil {
			return fmt.Errorf("listener %s: %w", l.Name, err)
		}
		if _, gotPort, _ := net.SplitHostPort(got.String()); gotPort != wantPort && wantPort != "0" {
			return fmt.Errorf("the running holder listens for %s on %s, want %s: stop it to change ports", l.Name, got, want)
		}
	}
	return nil
}
