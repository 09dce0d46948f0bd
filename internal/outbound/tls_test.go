package outbound

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tlsCounter is an https target that counts new connections, the handshakes that resumed
// a session instead of a full one, and the connections that speak HTTP/2.
type tlsCounter struct {
	*httptest.Server
	conns, resumed, full, h2 atomic.Int64
}

func newTLSCounter(t testing.TB, answerAfter time.Duration, http1 bool) *tlsCounter {
	return startTLSCounter(t, http1, func() { time.Sleep(answerAfter) }, nil)
}

// startTLSCounter starts a tlsCounter that runs handle for each request, on the listener
// wrap returns (the plain one when wrap is nil).
func startTLSCounter(t testing.TB, http1 bool, handle func(), wrap func(net.Listener) net.Listener) *tlsCounter {
	tc := &tlsCounter{}
	tc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handle()
		fmt.Fprint(w, "ok")
	}))
	var seen sync.Map
	tc.Config.ConnState = func(c net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			tc.conns.Add(1)
		case http.StateActive: // the handshake is done
			if tlc, ok := c.(*tls.Conn); ok {
				if _, dup := seen.LoadOrStore(c, true); !dup {
					if tlc.ConnectionState().NegotiatedProtocol == "h2" {
						tc.h2.Add(1)
					}
					if tlc.ConnectionState().DidResume {
						tc.resumed.Add(1)
					} else {
						tc.full.Add(1)
					}
				}
			}
		}
	}
	if http1 {
		tc.TLS = &tls.Config{NextProtos: []string{"http/1.1"}}
	} else {
		tc.EnableHTTP2 = true
	}
	if wrap != nil {
		tc.Listener = wrap(tc.Listener)
	}
	tc.StartTLS()
	t.Cleanup(tc.Close)
	return tc
}

// trusting returns a client that trusts the target's certificate.
func trusting(tc *tlsCounter) *Client {
	c := New(Options{Policy: &Policy{AllowPrivate: true}})
	c.transport.TLSClientConfig.RootCAs = tc.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	return c
}

// burst sends n requests at once and waits for all.
func burst(t testing.TB, c *Client, url string, n int) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
			if _, err := c.Do(req, 0); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Many calls in flight to one https host reuse their connections from burst to burst, and
// a new connection resumes its host's TLS session: no full handshake per call.
func TestTLSKeepAliveAndResumption(t *testing.T) {
	t.Parallel()
	tc := newTLSCounter(t, 20*time.Millisecond, true)
	c := trusting(tc)
	const inFlight = 200
	for range 5 {
		burst(t, c, tc.URL, inFlight)
	}
	// Over HTTP/1.1 each call in flight needs its own connection; after the first burst
	// they are reused.
	if n := tc.conns.Load(); n > inFlight {
		t.Errorf("%d connections for 5 bursts of %d calls: keep-alive does not hold", n, inFlight)
	}
	// Connections closed (idle timeout, a target restart): the next ones resume.
	c.CloseIdle()
	fullBefore := tc.full.Load()
	burst(t, c, tc.URL, 20)
	if tc.resumed.Load() == 0 {
		t.Errorf("no TLS session resumed after the connections closed (%d full handshakes before, %d after)",
			fullBefore, tc.full.Load()-fullBefore)
	}
}

// BenchmarkTLSCallsInFlight is thousands of calls to one https host that answers after
// 50 ms, as the dispatcher makes them. It reports the connections opened and the full TLS
// handshakes per call: keep-alive and session resumption keep both far below one.
func BenchmarkTLSCallsInFlight(b *testing.B) {
	tc := newTLSCounter(b, 50*time.Millisecond, true) // HTTP/1.1: one connection per call in flight, the worst case
	c := trusting(tc)
	const inFlight = 1000
	b.ResetTimer()
	for b.Loop() {
		burst(b, c, tc.URL, inFlight)
	}
	calls := float64(b.N * inFlight)
	b.ReportMetric(float64(tc.conns.Load())/calls, "conns/call")
	b.ReportMetric(float64(tc.full.Load())/calls, "full-handshakes/call")
}

// countingListener counts the bytes its connections read.
type countingListener struct {
	net.Listener
	read *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	return countingConn{c, l.read}, err
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// Over HTTP/2 a header value sent before is sent again in full, not as an index into the
// HPACK table: a repeated value costs the target as many bytes as a new one of its length.
func TestHTTP2IndexesNoHeader(t *testing.T) {
	t.Parallel()
	var read atomic.Int64
	tc := startTLSCounter(t, false, func() {}, func(l net.Listener) net.Listener { return countingListener{l, &read} })
	c := trusting(tc)
	send := func(value string) int64 {
		before := read.Load()
		req, _ := http.NewRequest(http.MethodGet, tc.URL, nil)
		req.Header.Set("X-Repeat", value)
		res, err := c.Do(req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
		return read.Load() - before
	}
	same := strings.Repeat("a", 64)
	send(same) // the connection's preface and settings, and the value's first sending
	again := send(same)
	fresh := send(strings.Repeat("c", 64)) // as long, as many bits per character, never sent
	if tc.h2.Load() != 1 || tc.conns.Load() != 1 {
		t.Fatalf("%d connections, %d of them HTTP/2: want the three calls on one HTTP/2 connection", tc.conns.Load(), tc.h2.Load())
	}
	// Huffman-coded, the value is 40 bytes; an index would be 1 or 2. The rest of the two
	// calls is alike but for a byte or two of framing.
	if again < fresh-16 {
		t.Errorf("a repeated 64-byte header value cost the target %d bytes, a new one %d: it was indexed", again, fresh)
	}
}
