//go:build unix

package outbound

import (
	"net"
	"syscall"
)

// peeker tells whether an idle connection can carry another request: the server may have
// closed it while it sat in the pool, or sent bytes nobody asked for, which must never be
// read as the next response. http.Transport learns both from the read it keeps pending on
// every idle connection; the lean path has no goroutine for that, so it looks once, without
// blocking, just before reuse.
type peeker struct {
	raw   syscall.RawConn
	fn    func(fd uintptr) bool // p.peek, bound once
	alive bool                  // the result of the last peek
	buf   [1]byte
}

func (p *peeker) init(conn net.Conn) {
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			p.raw = raw
			p.fn = p.peek
		}
	}
}

// isAlive reports whether the connection is open with nothing unread on it.
func (p *peeker) isAlive() bool {
	if p.raw == nil {
		return true
	}
	if err := p.raw.Read(p.fn); err != nil {
		return false
	}
	return p.alive
}

// peek runs with the socket, which the runtime keeps non-blocking: a recv with MSG_PEEK
// returns at once, consuming nothing. Only "would block" means open and quiet.
func (p *peeker) peek(fd uintptr) bool {
	for {
		n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK)
		if err == syscall.EINTR {
			continue
		}
		// n == 0 without an error is the server's FIN; n > 0 is an unsolicited byte.
		p.alive = n <= 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true
	}
}

// canPeek: idle connections are checked before reuse on this platform.
const canPeek = true
