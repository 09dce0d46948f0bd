package main

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// stampArrivals asks the kernel to stamp the data that reaches ln's connections with its
// receive time: set on the listening socket, the option is inherited by each connection it
// accepts, and the kernel turns its stamping on once, not per connection. ln is returned as
// it is if it cannot be stamped.
func stampArrivals(ln net.Listener) net.Listener {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return ln
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return ln
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return ln
	}
	return stampingListener{tl}
}

type stampingListener struct{ *net.TCPListener }

func (l stampingListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return c, nil
	}
	sc := &stampedConn{TCPConn: c, rc: rc}
	sc.recv = sc.recvmsg // bound once: a closure made per read would be allocated per read
	return sc, nil
}

// stampedConn reads with recvmsg to get each read's receive time (SCM_TIMESTAMPNS: that of
// the last segment the read consumed). Writes and everything else are the TCPConn's own.
type stampedConn struct {
	*net.TCPConn
	rc   syscall.RawConn
	last atomic.Int64 // Unix ns

	mu   sync.Mutex // one Read at a time: the fields below carry its arguments and results
	recv func(fd uintptr) bool
	buf  []byte
	oob  [8]uint64 // room for one cmsghdr and a timespec, 8-byte aligned
	n    int
	oobn int
	err  error
}

func (c *stampedConn) lastReceived() int64 { return c.last.Load() }

// Read is net.Conn's Read, with the errors TCPConn.Read would give.
func (c *stampedConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = b
	defer func() { c.buf = nil }()
	if err := c.rc.Read(c.recv); err != nil {
		if oe, ok := err.(*net.OpError); ok { // "raw-read": report it as TCPConn.Read does
			oe.Op = "read"
		}
		return 0, err
	}
	if c.err != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(),
			Err: os.NewSyscallError("recvmsg", c.err)}
	}
	if c.n == 0 {
		return 0, io.EOF
	}
	c.last.Store(c.stamp()) // 0 when this read had none: an older stamp must not stand for it
	return c.n, nil
}

// recvmsg is the RawConn read callback: false asks to wait until the socket is readable.
func (c *stampedConn) recvmsg(fd uintptr) bool {
	oob := (*[unsafe.Sizeof(c.oob)]byte)(unsafe.Pointer(&c.oob))[:]
	for {
		c.n, c.oobn, _, _, c.err = syscall.Recvmsg(int(fd), c.buf, oob, 0)
		if c.err != syscall.EINTR {
			break
		}
	}
	if c.err == syscall.EAGAIN {
		return false
	}
	if c.err != nil {
		c.n = 0
	}
	return true
}

// stamp returns the receive time (Unix ns) the last recvmsg's control message carried; 0
// if none.
func (c *stampedConn) stamp() int64 {
	var ts syscall.Timespec
	if c.oobn < syscall.CmsgLen(int(unsafe.Sizeof(ts))) {
		return 0
	}
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&c.oob))
	if h.Level != syscall.SOL_SOCKET || h.Type != syscall.SCM_TIMESTAMPNS {
		return 0
	}
	ts = *(*syscall.Timespec)(unsafe.Add(unsafe.Pointer(&c.oob), syscall.CmsgLen(0)))
	return ts.Nano()
}
