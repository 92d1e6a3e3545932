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
	ln      *net.UnixListener
	out     io.Writer
	closing atomic.Bool
	wg      sync.WaitGroup // the accept loop and one reader per connection
}

// ListenLog listens on the unix socket path (replacing a stale socket file)
// and writes what HAProxy sends to out, which must accept concurrent Writes
// (each worker has its own connection). Close stops it.
func ListenLog(path string, out io.Writer) (*LogListener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	l := &LogListener{ln: ln, out: out}
	l.wg.Go(l.accept)
	return l, nil
}

func (l *LogListener) accept() {
	for {
		conn, err := l.ln.AcceptUnix()
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
	err := l.ln.Close()
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
