package haproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// LogListener receives HAProxy's log from a ring buffer that forwards it to
// a unix socket: a "ring" section with "format raw" and a "server … unix@<path>"
// line, named by "log ring@<name>". Each worker connects once and sends its
// lines, each ended by '\n'; LogListener hands them to its writer in whole
// lines, several per Write.
//
// Why a ring and not `log stdout`: HAProxy writes a line to a file
// descriptor with one system call per line, and with several threads drops
// the lines that meet another thread's write (DroppedLogs). A ring takes
// every line under a lock, in memory, and a forwarder sends what has
// gathered in few writes; lines are lost only if the ring fills up.
type LogListener struct {
	path    string
	out     io.Writer
	closing atomic.Bool
	wg      sync.WaitGroup // the accept loops and one reader per connection

	mu      sync.Mutex
	ln      *net.UnixListener
	file    os.FileInfo   // the socket file ln made
	stop    chan struct{} // closed by Close
	watched chan struct{} // closed when watch has returned
}

// socketCheck is how often the socket file is checked. HAProxy's forwarder
// retries a failed connection at once, in a loop: were the file deleted
// (say, by a clean-up of the state directory), it would spin on a core
// until the file is back.
const socketCheck = 2 * time.Second

// ListenLog listens on the unix socket path (replacing a stale socket file)
// and writes what HAProxy sends to out, which must accept concurrent Writes
// (each worker has its own connection). A socket file that is deleted or
// replaced is made again within socketCheck. Close stops it.
func ListenLog(path string, out io.Writer) (*LogListener, error) {
	l := &LogListener{path: path, out: out, stop: make(chan struct{}), watched: make(chan struct{})}
	if err := l.listen(); err != nil {
		return nil, err
	}
	go l.watch()
	return l, nil
}

// listen makes the socket file (replacing what is at the path) and accepts
// on it; a previous listener stops accepting, its connections go on.
func (l *LogListener) listen() error {
	if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: l.path, Net: "unix"})
	if err != nil {
		return err
	}
	fi, err := os.Stat(l.path)
	if err == nil {
		err = os.Chmod(l.path, 0o600)
	}
	if err != nil {
		ln.Close()
		return err
	}
	l.mu.Lock()
	old := l.ln
	l.ln, l.file = ln, fi
	l.mu.Unlock()
	if old != nil {
		old.SetUnlinkOnClose(false) // the path is ln's now
		old.Close()
	}
	l.wg.Go(func() { l.accept(ln) })
	return nil
}

// watch makes the socket file again when it is gone or another file took
// its path, until Close.
func (l *LogListener) watch() {
	defer close(l.watched)
	t := time.NewTicker(socketCheck)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		fi, err := os.Stat(l.path)
		l.mu.Lock()
		same := err == nil && os.SameFile(fi, l.file)
		l.mu.Unlock()
		if !same {
			_ = l.listen() // tried again at the next check
		}
	}
}

func (l *LogListener) accept(ln *net.UnixListener) {
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			return // closed
		}
		fd, err := detach(conn)
		if err != nil {
			continue
		}
		l.wg.Go(func() {
			defer unix.Close(fd)
			l.readLines(fd)
		})
	}
}

// detach returns a blocking descriptor of conn's socket that Go's network
// poller does not watch, and closes conn: a line HAProxy sends while
// readLines pauses then wakes nobody.
func detach(conn *net.UnixConn) (int, error) {
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.Dup(int(s)) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Close stops accepting connections and returns once every connection has
// ended: at once for those HAProxy closed (a stopped worker), after a
// quarter of a second without data for the others.
func (l *LogListener) Close() error {
	l.closing.Store(true)
	close(l.stop)
	<-l.watched
	l.mu.Lock()
	err := l.ln.Close()
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

// Timing of readLines. A read is followed by a pause of gatherLines unless it
// filled the buffer, so that one read and one Write carry the lines of that
// time: the access log has a line per request, and a wake-up for each one
// would cost more than handling it. The ring holds far more than arrives
// meanwhile.
const (
	gatherLines = 5 * time.Millisecond
	idleOnClose = 250 * time.Millisecond
)

// readLines copies fd to l.out in whole lines until f ends, or, once Close
// was called, until it stays idle for idleOnClose. A line longer than the
// buffer is passed on in pieces, each ended by '\n'.
func (l *LogListener) readLines(fd int) {
	buf := make([]byte, 256<<10)
	n := 0
	for {
		// Wait in poll, not read, to notice Close.
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		k, err := unix.Poll(fds, int(idleOnClose/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			break
		}
		if k <= 0 {
			if l.closing.Load() {
				break
			}
			continue
		}
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		m = max(m, 0)
		n += m
		if end := bytes.LastIndexByte(buf[:n], '\n') + 1; end > 0 {
			_, _ = l.out.Write(buf[:end])
			n = copy(buf, buf[end:n])
		} else if n == len(buf) {
			_, _ = l.out.Write(append(buf[:n:n], '\n'))
			n = 0
		}
		if err != nil || m == 0 {
			break
		}
		if m < len(buf)/2 {
			time.Sleep(gatherLines)
		}
	}
	if n > 0 {
		_, _ = l.out.Write(append(buf[:n], '\n'))
	}
}
