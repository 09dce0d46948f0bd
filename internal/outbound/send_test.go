package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A send's timeout starts when the request is sent, not when the send is made.
func TestSendTimeoutStartsWhenSent(t *testing.T) {
	t.Parallel()
	var turns dialTurns
	s, ctx := newSend(context.Background(), 30*time.Millisecond, &turns)
	defer s.end()
	time.Sleep(100 * time.Millisecond) // waiting for a turn, say: the timeout has not started
	if ctx.Err() != nil {
		t.Fatal("the timeout ran before the request was sent")
	}
	s.start()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the timeout never ran out after the request was sent")
	}
	if !s.timedOut(ctx) {
		t.Errorf("cause %v, want the send's timeout", context.Cause(ctx))
	}
	if !IsTimeout(context.Cause(ctx)) {
		t.Error("IsTimeout does not know the send's timeout")
	}
}

// fillTurns takes every turn to addr and returns the function that gives them back.
func fillTurns(t *testing.T, d *dialTurns, addr string) func() {
	var dones []func()
	for range dialsPerHost {
		done, err := d.wait(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		dones = append(dones, done)
	}
	return func() {
		for _, done := range dones {
			done()
		}
	}
}

func TestDialTurns(t *testing.T) {
	t.Parallel()
	const addr = "example.com:443"

	t.Run("a call that got a freed connection does not dial", func(t *testing.T) {
		var d dialTurns
		defer fillTurns(t, &d, addr)()
		s, ctx := newSend(context.Background(), 0, &d)
		defer s.end()
		keepReusing(&d, addr)
		errc := make(chan error, 1)
		go func() {
			_, err := d.wait(ctx, addr)
			errc <- err
		}()
		time.Sleep(2 * minStall)
		select {
		case err := <-errc:
			t.Fatalf("the dial did not wait for its turn while connections came free: %v", err)
		default:
		}
		s.nextHop(addr)
		s.gotConn(httpGotConn(true))
		if err := <-errc; !errors.Is(err, errDialNotNeeded) {
			t.Errorf("wait = %v, want errDialNotNeeded", err)
		}
	})

	t.Run("a freed turn goes to the next dial", func(t *testing.T) {
		var d dialTurns
		giveBack := fillTurns(t, &d, addr)
		keepReusing(&d, addr)
		got := make(chan func(), 1)
		go func() {
			done, err := d.wait(context.Background(), addr)
			if err != nil {
				t.Error(err)
			}
			got <- done
		}()
		time.Sleep(3 * minStall)
		if len(got) != 0 {
			t.Fatal("a dial started past the limit while connections came free")
		}
		giveBack()
		(<-got)()
		d.mu.Lock()
		defer d.mu.Unlock()
		if len(d.hosts) != 0 {
			t.Errorf("%d hosts left after every dial ended", len(d.hosts))
		}
	})

	t.Run("a host whose connections stay busy gets twice the dials after a window", func(t *testing.T) {
		var d dialTurns
		defer fillTurns(t, &d, addr)()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done, err := d.wait(ctx, addr)
		if err != nil {
			t.Fatalf("the dial never started: %v", err)
		}
		done()
		if took := time.Since(start); took < minStall {
			t.Errorf("started after %v, before a stall could be seen", took)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		// Doubled by the window, and one more for the dial that ended meanwhile.
		if l := d.hosts[addr].limit; l != 2*dialsPerHost+1 {
			t.Errorf("limit %d after one stalled window, want %d", l, 2*dialsPerHost+1)
		}
	})
	t.Run("each dial that ends while none is reused adds a turn", func(t *testing.T) {
		var d dialTurns
		giveBack := fillTurns(t, &d, addr)
		d.mu.Lock()
		h := d.hosts[addr]
		h.progress = time.Now().Add(time.Hour) // no stall: only the dials' ends count
		h.lastReuse = time.Now().Add(-time.Hour)
		h.users++ // the entry stays while the round ends
		d.mu.Unlock()
		giveBack()
		d.mu.Lock()
		if h.limit != 2*dialsPerHost || len(h.free) != 2*dialsPerHost {
			t.Errorf("after a round of %d dials and no reuse: limit %d, %d free; want %d of each",
				dialsPerHost, h.limit, len(h.free), 2*dialsPerHost)
		}
		d.mu.Unlock()
		d.reused(addr)
		for range dialsPerHost {
			done, err := d.wait(context.Background(), addr)
			if err != nil {
				t.Fatal(err)
			}
			done()
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if h.limit != 2*dialsPerHost {
			t.Errorf("limit %d after dials that ended while connections were reused, want %d", h.limit, 2*dialsPerHost)
		}
	})
}

// keepReusing makes addr's connections look busy being reused, from now on.
func keepReusing(d *dialTurns, addr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hosts[addr]
	h.lastReuse = time.Now().Add(time.Hour)
	h.progress = h.lastReuse
}

func httpGotConn(reused bool) httptrace.GotConnInfo { return httptrace.GotConnInfo{Reused: reused} }

// tries runs try up to 3 times, until it reports no problem. How fast a machine under load
// (the race detector, other packages' tests) makes handshakes moves these figures; a client
// without turns, or whose turns never grow, misses in every try.
func tries(t *testing.T, try func() (problem string)) {
	var problem string
	for range 3 {
		if problem = try(); problem == "" {
			return
		}
		t.Log(problem)
	}
	t.Error(problem)
}

// A burst of calls to an HTTP/1.1 https target that answers quickly reuses the
// connections that come free instead of opening one per call.
func TestTLSBurstReusesFreedConnections(t *testing.T) {
	t.Parallel()
	// 8 calls a millisecond, as timers falling due; under the race detector, which slows
	// every handshake, fewer calls all at once.
	n, perMS, most := 2000, 8, 500
	if raceEnabled {
		n, perMS, most = 300, 300, 150
	}
	tries(t, func() string {
		tc := newTLSCounter(t, time.Millisecond, true)
		c := trusting(tc)
		var wg sync.WaitGroup
		for i := range n {
			if i%perMS == 0 {
				time.Sleep(time.Millisecond)
			}
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, tc.URL, nil)
				if _, err := c.Do(req, 30*time.Second); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if conns := tc.conns.Load(); conns > int64(most) {
			return fmt.Sprintf("%d connections for a burst of %d calls", conns, n)
		}
		return ""
	})
}

// Calls to an HTTP/1.1 https target that holds its connections long, and is slow to
// accept new ones, are not held back by the turns: they all get a connection of their own.
func TestTLSSlowTargetGetsAllItsConnections(t *testing.T) {
	t.Parallel()
	// The target holds each call for six handshakes' time: long enough for the turns to
	// double from 16 to all n, a round of dials each. (Turns that never grew would get
	// there too, reusing freed connections, but later; a handful at a time would not.)
	n, answerAfter, handshake := 300, 600*time.Millisecond, 100*time.Millisecond
	if raceEnabled {
		// Each handshake costs the race detector's CPU at both ends: fewer, slower ones.
		n, answerAfter, handshake = 200, 1200*time.Millisecond, 200*time.Millisecond
	}
	tries(t, func() string {
		var inFlight, peak atomic.Int64
		tc := startTLSCounter(t, true, func() {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(answerAfter)
		}, func(l net.Listener) net.Listener { return slowStart{l, handshake} })
		burst(t, trusting(tc), tc.URL, n)
		if p := peak.Load(); p < int64(n*2/3) {
			return fmt.Sprintf("at most %d of %d calls at the target at once: new connections were held back", p, n)
		}
		return ""
	})
}

// slowStart delays each accepted connection's first read, so its TLS handshake ends a
// round trip later, as a far target's does; connections are still accepted at once.
type slowStart struct {
	net.Listener
	delay time.Duration
}

func (l slowStart) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &slowConn{Conn: c, delay: l.delay}, nil
}

type slowConn struct {
	net.Conn
	delay time.Duration
	once  sync.Once
}

func (c *slowConn) Read(p []byte) (int, error) {
	c.once.Do(func() { time.Sleep(c.delay) })
	return c.Conn.Read(p)
}
