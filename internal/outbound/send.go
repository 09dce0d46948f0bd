package outbound

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptrace"
	"sync"
	"time"
)

// A burst of calls to one host finds every connection busy, and net/http then dials a new
// one for each call, even when a connection comes free a moment later: the call takes that
// one and the dial goes on. Against an HTTP/1.1 https target, a burst of 2,000 calls opened
// about 2,000 connections, each with its TLS handshake, and arrived half a second late.
//
// So new connections to a host take turns: at first at most dialsPerHost are dialed
// (connect and TLS handshake) at once. A call whose dial waits for its turn takes a freed
// connection as soon as one comes, and then does not dial at all. While the host's
// connections keep coming free, that is all. While none does, the limit grows, up to
// maxDialsPerHost: by one for each dial that ends (it doubles with each round of dials,
// as in TCP's slow start, so a busy machine whose handshakes slow down also grows slowly),
// and it doubles for each stall window in which no dial ended either (a far or silent
// target). So a slow API still gets a connection per call within a few rounds.
const (
	dialsPerHost    = 16
	maxDialsPerHost = 4096
	minStall        = 100 * time.Millisecond
	firstDialTime   = 20 * time.Millisecond // what a dial is taken to last until one has ended
)

// errDialNotNeeded ends a dial whose call got a connection while the dial waited its turn.
// net/http drops it: the call it was for is already served.
var errDialNotNeeded = errors.New("dial not needed: the call got a freed connection")

// errSendTimeout is the cause of a call's context when its own timeout ran out.
var errSendTimeout = fmt.Errorf("call timeout: %w", context.DeadlineExceeded)

// dialTurns is where the dials to each host take their turns.
type dialTurns struct {
	mu    sync.Mutex
	hosts map[string]*hostTurns
}

type hostTurns struct {
	free      chan struct{} // one token per dial that may start now
	limit     int           // dials at once: dialsPerHost, more while no connection comes free
	users     int           // dials holding or waiting for a turn; the entry goes at zero
	waiting   int           // dials waiting for a turn
	watched   bool          // a watch goroutine runs for the waiting dials
	lastReuse time.Time     // when a call last got a connection that had served one before
	progress  time.Time     // when a connection was last reused or a dial ended
	grownAt   time.Time     // when the limit last doubled
	dialTime  time.Duration // how long the host's dials take (a moving average)
}

// stallWindow is how long nothing must move at h before its limit doubles: minStall, or
// twice what its dials take when that is longer (the machine is busy, or the target far).
func (h *hostTurns) stallWindow() time.Duration { return max(minStall, 2*h.dialTime) }

func newHostTurns(now time.Time) *hostTurns {
	h := &hostTurns{free: make(chan struct{}, maxDialsPerHost), limit: dialsPerHost, lastReuse: now,
		progress: now, grownAt: now, dialTime: firstDialTime}
	for range h.limit {
		h.free <- struct{}{}
	}
	return h
}

// reused notes that a call to addr got a connection another call had freed.
func (d *dialTurns) reused(addr string) {
	d.mu.Lock()
	if h := d.hosts[addr]; h != nil {
		h.lastReuse = time.Now()
		h.progress = h.lastReuse
	}
	d.mu.Unlock()
}

// watch doubles h's limit each window in which dials waited and nothing moved: no
// connection reused, no dial ended (a far or silent target). It ends when no dial waits:
// one goroutine per stalled host, not a timer per dial.
func (d *dialTurns) watch(h *hostTurns) {
	t := time.NewTicker(minStall / 4)
	defer t.Stop()
	for now := range t.C {
		d.mu.Lock()
		if h.waiting == 0 {
			h.watched = false
			d.mu.Unlock()
			return
		}
		if w := h.stallWindow(); now.Sub(h.progress) >= w && now.Sub(h.grownAt) >= w {
			h.grownAt = now
			h.add(h.limit)
		}
		d.mu.Unlock()
	}
}

// end ends a dial's turn. A dial that ends while no connection to the host is being
// reused gives its turn back twice: as in TCP's slow start, the limit then doubles with
// each round of dials, as fast as the dials end, so a burst that slows the handshakes
// (the machine is busy) also slows the growth. d.mu is held.
func (h *hostTurns) end(now time.Time, took time.Duration) {
	stalled := now.Sub(h.lastReuse) >= h.stallWindow()
	h.progress = now
	h.dialTime += (took - h.dialTime) / 4
	if stalled {
		h.add(1)
	}
	h.free <- struct{}{}
}

// add raises the limit by up to n turns. d.mu is held.
func (h *hostTurns) add(n int) {
	for range min(n, maxDialsPerHost-h.limit) {
		h.free <- struct{}{}
		h.limit++
	}
}

// wait returns when a dial to addr may start, with the function that ends its turn. It
// returns errDialNotNeeded when the call behind ctx got a connection first (or ended).
func (d *dialTurns) wait(ctx context.Context, addr string) (done func(), err error) {
	d.mu.Lock()
	if d.hosts == nil {
		d.hosts = map[string]*hostTurns{}
	}
	h := d.hosts[addr]
	if h == nil {
		h = newHostTurns(time.Now())
		d.hosts[addr] = h
	}
	h.users++
	select {
	case <-h.free:
		d.mu.Unlock()
		return d.turn(h, addr), nil
	default:
	}
	h.waiting++
	if !h.watched {
		h.watched = true
		go d.watch(h)
	}
	d.mu.Unlock()
	var served <-chan struct{}
	if s := sendFrom(ctx); s != nil {
		served = s.servedChan()
	}
	select {
	case <-h.free:
		d.mu.Lock()
		h.waiting--
		d.mu.Unlock()
		return d.turn(h, addr), nil
	case <-served:
		err = errDialNotNeeded
	case <-ctx.Done():
		err = ctx.Err()
	}
	d.mu.Lock()
	h.waiting--
	d.leaveLocked(h, addr)
	d.mu.Unlock()
	return nil, err
}

// turn returns the function that ends a turn taken now.
func (d *dialTurns) turn(h *hostTurns, addr string) func() {
	began := time.Now()
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		now := time.Now()
		h.end(now, now.Sub(began))
		d.leaveLocked(h, addr)
	}
}

// leaveLocked ends a dial's use of h; the entry goes with its last user. d.mu is held.
func (d *dialTurns) leaveLocked(h *hostTurns, addr string) {
	if h.users--; h.users == 0 {
		delete(d.hosts, addr)
	}
}

// A send is one Do: it knows when the request got a connection, and it starts the
// request's timeout only when the request is sent, that is when it has a connection or
// starts dialing one, never while it waits for a dial's turn.
type send struct {
	timeout time.Duration
	cancel  context.CancelCauseFunc
	turns   *dialTurns

	mu      sync.Mutex
	served  chan struct{} // closed when the current hop has a connection, or the send ended
	open    bool          // served is not closed yet
	started time.Time     // when the timeout started; zero before
	timer   *time.Timer
	addr    string // the current hop's host:port
}

type sendKey struct{}

func sendFrom(ctx context.Context) *send {
	s, _ := ctx.Value(sendKey{}).(*send)
	return s
}

// newSend returns the context a request is sent with: parent, plus timeout (none when ≤ 0)
// from the moment it is sent.
func newSend(parent context.Context, timeout time.Duration, turns *dialTurns) (*send, context.Context) {
	ctx, cancel := context.WithCancelCause(parent)
	s := &send{timeout: timeout, cancel: cancel, turns: turns, served: make(chan struct{}), open: true}
	ctx = context.WithValue(ctx, sendKey{}, s)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GetConn: s.nextHop,
		GotConn: s.gotConn,
	})
	return s, ctx
}

// nextHop: a request (the first, or a redirect's) wants a connection.
func (s *send) nextHop(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addr = addr
	if !s.open {
		s.served, s.open = make(chan struct{}), true
	}
}

func (s *send) servedChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

func (s *send) gotConn(info httptrace.GotConnInfo) {
	s.mu.Lock()
	s.serve()
	s.startLocked()
	addr := s.addr
	s.mu.Unlock()
	if info.Reused {
		s.turns.reused(addr)
	}
}

func (s *send) serve() {
	if s.open {
		close(s.served)
		s.open = false
	}
}

// start starts the timeout, once.
func (s *send) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startLocked()
}

func (s *send) startLocked() {
	if !s.started.IsZero() {
		return
	}
	s.started = time.Now()
	if s.timeout > 0 {
		s.timer = time.AfterFunc(s.timeout, func() { s.cancel(errSendTimeout) })
	}
}

// sentAt is when the request was sent (now if it never was).
func (s *send) sentAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started.IsZero() {
		return time.Now()
	}
	return s.started
}

// end stops the timeout and ends the waits of dials started for this send.
func (s *send) end() {
	s.mu.Lock()
	s.serve()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.cancel(context.Canceled)
}

// timedOut reports whether the send ended because its own timeout ran out.
func (s *send) timedOut(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errSendTimeout)
}
