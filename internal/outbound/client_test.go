package outbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testServer is an httptest server that counts the TCP connections it accepts.
type testServer struct {
	*httptest.Server
	conns atomic.Int64
}

func (s *testServer) port() string {
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	return port
}

// newServerOn starts a counting test server listening on addr ("127.0.0.1:0").
func newServerOn(t *testing.T, addr string, h http.Handler) (*testServer, error) {
	t.Helper()
	network := "tcp4"
	if strings.HasPrefix(addr, "[") {
		network = "tcp6"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	s := &testServer{Server: httptest.NewUnstartedServer(h)}
	s.Listener.Close()
	s.Listener = ln
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, nil
}

func newServer(t *testing.T, h http.Handler) *testServer {
	t.Helper()
	s, err := newServerOn(t, "127.0.0.1:0", h)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
}

// mapResolver answers from a fixed table and counts lookups.
type mapResolver struct {
	mu    sync.Mutex
	hosts map[string][]netip.Addr
	calls int
}

func (r *mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	addrs, ok := r.hosts[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func resolverFor(pairs ...string) *mapResolver {
	r := &mapResolver{hosts: map[string][]netip.Addr{}}
	for i := 0; i < len(pairs); i += 2 {
		for a := range strings.SplitSeq(pairs[i+1], ",") {
			r.hosts[pairs[i]] = append(r.hosts[pairs[i]], netip.MustParseAddr(a))
		}
	}
	return r
}

// resolverFunc adapts a function to Resolver.
type resolverFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (f resolverFunc) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f(ctx, network, host)
}

// failingResolver fails the test if any name is looked up.
func failingResolver(t *testing.T) Resolver {
	return resolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
		t.Errorf("unexpected lookup of %q", host)
		return nil, errors.New("no lookups expected")
	})
}

func allow(prefixes ...string) *Policy {
	p := &Policy{}
	for _, s := range prefixes {
		p.Allow = append(p.Allow, netip.MustParsePrefix(s))
	}
	return p
}

// do sends a request with a 5 s deadline so a broken policy cannot hang the test.
func do(t *testing.T, c *Client, method, target string, body io.Reader) (*Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	return c.Do(req, 0)
}

func TestNewTransportSettings(t *testing.T) {
	t.Parallel()
	c := New(Options{})
	tr := c.transport
	if tr.Proxy != nil {
		t.Error("Transport.Proxy is set; it must be nil")
	}
	if tr.MaxResponseHeaderBytes != 64<<10 || tr.MaxConnsPerHost != 0 || tr.MaxIdleConnsPerHost != 1024 ||
		tr.TLSClientConfig == nil || tr.TLSClientConfig.ClientSessionCache == nil ||
		tr.DialContext == nil || tr.DialTLSContext == nil || tr.IdleConnTimeout != 90*time.Second {
		t.Errorf("unexpected transport settings: %+v", tr)
	}
	if c.dialer.ControlContext == nil {
		t.Error("dialer has no ControlContext")
	}
	if c.maxBody != 64<<10 || c.maxRedirects != 5 || c.dialTimeout != 10*time.Second {
		t.Errorf("defaults: body %d redirects %d dial %s", c.maxBody, c.maxRedirects, c.dialTimeout)
	}
	c = New(Options{MaxIdleConnsPerHost: 3, MaxHeaderBytes: 1000, MaxBodyBytes: 10, MaxRedirects: 2, DialTimeout: time.Second})
	if c.transport.MaxConnsPerHost != 0 || c.transport.MaxIdleConnsPerHost != 3 || c.transport.MaxResponseHeaderBytes != 1000 ||
		c.maxBody != 10 || c.maxRedirects != 2 || c.dialTimeout != time.Second {
		t.Error("options not applied")
	}
}

func TestNewCopiesPolicy(t *testing.T) {
	t.Parallel()
	p := &Policy{}
	c := New(Options{Policy: p})
	p.AllowPrivate = true
	if err := c.CheckURL("http://127.0.0.1/"); !IsBlocked(err) {
		t.Errorf("policy changed after New took effect: %v", err)
	}
}

func TestDoBlockedByDefault(t *testing.T) {
	t.Parallel()
	s := newServer(t, okHandler())
	c := New(Options{})
	resp, err := do(t, c, http.MethodGet, s.URL, nil)
	if err == nil {
		t.Fatalf("got %d, want blocked", resp.StatusCode)
	}
	be, ok := errors.AsType[*BlockedError](err)
	if !ok || !IsBlocked(err) {
		t.Fatalf("error %v is not a *BlockedError", err)
	}
	if be.Addr != netip.MustParseAddr("127.0.0.1") || be.Reason != "loopback" || be.Host != "127.0.0.1" {
		t.Errorf("BlockedError = %+v", be)
	}
	if n := s.conns.Load(); n != 0 {
		t.Errorf("server saw %d connections, want 0", n)
	}
}

func TestDoAllowed(t *testing.T) {
	t.Parallel()
	s := newServer(t, okHandler())
	for name, p := range map[string]*Policy{
		"AllowPrivate": {AllowPrivate: true},
		"Allow":        allow("127.0.0.0/8"),
	} {
		c := New(Options{Policy: p})
		resp, err := do(t, c, http.MethodGet, s.URL, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.StatusCode != 200 || resp.Status != "200 OK" || string(resp.Body) != "ok" || resp.Truncated || resp.Duration <= 0 {
			t.Errorf("%s: response %+v", name, resp)
		}
		if resp.Header.Get("Content-Type") == "" {
			t.Errorf("%s: headers not returned: %v", name, resp.Header)
		}
		c.CloseIdle()
	}
	if s.conns.Load() == 0 {
		t.Error("server saw no connections")
	}
}

func TestDoUserAgent(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.UserAgent())
	}))
	c := New(Options{Policy: &Policy{AllowPrivate: true}, UserAgent: "asyncqueue/test"})
	resp, err := do(t, c, http.MethodGet, s.URL, nil)
	if err != nil || string(resp.Body) != "asyncqueue/test" {
		t.Errorf("default UA: %v %q", err, resp.Body)
	}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL, nil)
	req.Header.Set("User-Agent", "caller/1")
	if resp, err := c.Do(req, 0); err != nil || string(resp.Body) != "caller/1" {
		t.Errorf("caller UA: %v %q", err, resp.Body)
	}

	u, _ := url.Parse(s.URL)
	bare := (&http.Request{Method: http.MethodGet, URL: u}).WithContext(t.Context()) // nil Header
	if resp, err := c.Do(bare, 0); err != nil || string(resp.Body) != "asyncqueue/test" {
		t.Errorf("nil header: %v", err)
	}
}

func TestDoResolvedNameBlocked(t *testing.T) {
	t.Parallel()
	s := newServer(t, okHandler())
	r := resolverFor("internal.test", "127.0.0.1", "meta.test", "169.254.169.254", "both.test", "::1,127.0.0.1")
	for _, tt := range []struct {
		host, want string
		policy     *Policy
	}{
		{"internal.test", "internal.test resolves to 127.0.0.1 (loopback), which is blocked; start the server with --allow-private-targets or --allow-targets 127.0.0.1/32 to allow it", nil},
		{"both.test", "both.test resolves to ::1 (loopback), which is blocked", nil},
		{"meta.test", "meta.test resolves to 169.254.169.254 (cloud metadata), which is blocked; it stays blocked under --allow-private-targets", &Policy{AllowPrivate: true}},
	} {
		c := New(Options{Resolver: r, Policy: tt.policy})
		_, err := do(t, c, http.MethodGet, "http://"+net.JoinHostPort(tt.host, s.port())+"/", nil)
		be, ok := errors.AsType[*BlockedError](err)
		if !ok {
			t.Errorf("%s: got %v, want *BlockedError", tt.host, err)
			continue
		}
		if be.Host != tt.host || !strings.HasPrefix(be.Error(), tt.want) {
			t.Errorf("%s: %v\nwant prefix %s", tt.host, be, tt.want)
		}
	}
	if n := s.conns.Load(); n != 0 {
		t.Errorf("server saw %d connections, want 0", n)
	}
}

func TestDoResolvedNameAllowed(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Host) }))
	r := resolverFor("ok.test", "127.0.0.1")
	c := New(Options{Resolver: r, Policy: allow("127.0.0.1/32")})
	host := net.JoinHostPort("ok.test", s.port())
	resp, err := do(t, c, http.MethodGet, "http://"+host+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Body) != host {
		t.Errorf("Host header %q, want %q", resp.Body, host)
	}
	if r.calls != 1 {
		t.Errorf("resolver called %d times, want 1", r.calls)
	}
}

// TestDNSRebinding: the server listens on 127.0.0.1, which the policy refuses; 127.0.0.2
// is allowed but has no listener. A client that checked the name and then let the dialer
// resolve it again (rebinding), or that checked only some of the answers, would reach the
// server; the dial-time filter must never connect to it.
func TestDNSRebinding(t *testing.T) {
	t.Parallel()
	s := newServer(t, okHandler())
	policy := allow("127.0.0.2/32")
	safe, evil := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")
	resolvers := map[string]func() Resolver{
		"safe then evil": func() Resolver {
			var calls atomic.Int64
			return resolverFunc(func(context.Context, string, string) ([]netip.Addr, error) {
				if calls.Add(1) == 1 {
					return []netip.Addr{safe}, nil
				}
				return []netip.Addr{evil}, nil
			})
		},
		"evil first in list": func() Resolver {
			return resolverFunc(func(context.Context, string, string) ([]netip.Addr, error) {
				return []netip.Addr{evil, safe}, nil
			})
		},
		"evil last in list": func() Resolver {
			return resolverFunc(func(context.Context, string, string) ([]netip.Addr, error) {
				return []netip.Addr{safe, evil}, nil
			})
		},
		"evil as mapped IPv6": func() Resolver {
			return resolverFunc(func(context.Context, string, string) ([]netip.Addr, error) {
				return []netip.Addr{netip.AddrFrom16(evil.As16())}, nil
			})
		},
	}
	target := "http://rebind.test:" + s.port() + "/"
	for name, newResolver := range resolvers {
		for range 100 {
			c := New(Options{Policy: policy, Resolver: newResolver()})
			if resp, err := do(t, c, http.MethodGet, target, nil); err == nil {
				t.Fatalf("%s: got %d, want an error", name, resp.StatusCode)
			}
		}
	}
	if n := s.conns.Load(); n != 0 {
		t.Errorf("server on the blocked address saw %d connections, want 0", n)
	}
}

// TestControlHookWired bypasses the resolver filter and dials the blocked address
// through the client's own dialer: the ControlContext hook alone must refuse it.
func TestControlHookWired(t *testing.T) {
	t.Parallel()
	s := newServer(t, okHandler())
	c := New(Options{})
	conn, err := c.dialer.DialContext(t.Context(), "tcp", s.Listener.Addr().String())
	if err == nil {
		conn.Close()
		t.Fatal("dialer connected to a blocked address")
	}
	if !IsBlocked(err) {
		t.Errorf("got %v, want blocked", err)
	}
	if n := s.conns.Load(); n != 0 {
		t.Errorf("server saw %d connections, want 0", n)
	}
}

func TestRedirectToBlockedAddress(t *testing.T) {
	t.Parallel()
	var targets []string
	var victims []*testServer
	if v, err := newServerOn(t, "127.0.0.2:0", okHandler()); err == nil {
		victims = append(victims, v)
		targets = append(targets, v.URL+"/")
	} else {
		t.Logf("no listener on 127.0.0.2: %v", err)
	}
	if v, err := newServerOn(t, "[::1]:0", okHandler()); err == nil {
		victims = append(victims, v)
		targets = append(targets, v.URL+"/")
	} else {
		t.Logf("no listener on [::1]: %v", err)
	}
	targets = append(targets, "http://10.255.255.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]:1/", "http://0.0.0.0:1/")

	var hits atomic.Int64
	front := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		http.Redirect(w, r, r.URL.Query().Get("to"), code)
	}))
	c := New(Options{Policy: allow("127.0.0.1/32")})
	for _, to := range targets {
		for _, code := range []int{301, 302, 303, 307, 308} {
			u := fmt.Sprintf("%s/?code=%d&to=%s", front.URL, code, url.QueryEscape(to))
			resp, err := do(t, c, http.MethodPost, u, strings.NewReader("payload"))
			if err == nil {
				t.Errorf("%d to %s: got %d, want blocked", code, to, resp.StatusCode)
				continue
			}
			if !IsBlocked(err) {
				t.Errorf("%d to %s: got %v, want blocked", code, to, err)
			}
		}
	}
	if want := int64(5 * len(targets)); hits.Load() != want {
		t.Errorf("front served %d requests, want %d", hits.Load(), want)
	}
	for _, v := range victims {
		if n := v.conns.Load(); n != 0 {
			t.Errorf("redirect target %s saw %d connections, want 0", v.URL, n)
		}
	}
}

func TestRedirectLimit(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hop/"))
		if n > 0 {
			http.Redirect(w, r, fmt.Sprintf("/hop/%d", n-1), http.StatusFound)
			return
		}
		io.WriteString(w, "done")
	}))
	c := New(Options{Policy: allow("127.0.0.1/32")})
	resp, err := do(t, c, http.MethodGet, s.URL+"/hop/5", nil)
	if err != nil || string(resp.Body) != "done" {
		t.Fatalf("5 redirects: %v", err)
	}
	_, err = do(t, c, http.MethodGet, s.URL+"/hop/6", nil)
	if err == nil || !strings.Contains(err.Error(), "stopped after 5 redirects") {
		t.Fatalf("6 redirects: got %v, want stopped after 5 redirects", err)
	}
	if got := DescribeError(err, time.Second); got != "Network error: stopped after 5 redirects" {
		t.Errorf("DescribeError = %q", got)
	}

	c = New(Options{Policy: allow("127.0.0.1/32"), MaxRedirects: 2})
	if _, err := do(t, c, http.MethodGet, s.URL+"/hop/3", nil); err == nil || !strings.Contains(err.Error(), "stopped after 2 redirects") {
		t.Errorf("MaxRedirects 2: got %v", err)
	}
	c = New(Options{Policy: allow("127.0.0.1/32"), MaxRedirects: -1})
	resp, err = do(t, c, http.MethodGet, s.URL+"/hop/1", nil)
	if err != nil || resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/hop/0" {
		t.Errorf("MaxRedirects -1: %v %+v", err, resp)
	}
}

func TestRedirectMethods(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/")); err == nil {
			http.Redirect(w, r, "/final", code)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	}))
	c := New(Options{Policy: allow("127.0.0.1/32")})
	for code, want := range map[int]string{301: "GET ", 302: "GET ", 303: "GET ", 307: "POST body", 308: "POST body"} {
		resp, err := do(t, c, http.MethodPost, fmt.Sprintf("%s/r/%d", s.URL, code), strings.NewReader("body"))
		if err != nil {
			t.Fatalf("%d: %v", code, err)
		}
		if string(resp.Body) != want {
			t.Errorf("%d: final request %q, want %q", code, resp.Body, want)
		}
	}
}

func TestBodyCap(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		io.WriteString(w, strings.Repeat("x", n))
	}))
	c := New(Options{Policy: allow("127.0.0.1/32")})
	for _, tt := range []struct {
		n, wantLen int
		truncated  bool
	}{
		{0, 0, false},
		{64 << 10, 64 << 10, false},
		{64<<10 + 1, 64 << 10, true},
		{1 << 20, 64 << 10, true},
	} {
		resp, err := do(t, c, http.MethodGet, s.URL+"/?n="+strconv.Itoa(tt.n), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Body) != tt.wantLen || resp.Truncated != tt.truncated {
			t.Errorf("n=%d: len %d truncated %v, want %d %v", tt.n, len(resp.Body), resp.Truncated, tt.wantLen, tt.truncated)
		}
	}
	c = New(Options{Policy: allow("127.0.0.1/32"), MaxBodyBytes: 3})
	resp, err := do(t, c, http.MethodGet, s.URL+"/?n=5", nil)
	if err != nil || string(resp.Body) != "xxx" || !resp.Truncated {
		t.Errorf("MaxBodyBytes 3: %v %q %v", err, resp.Body, resp.Truncated)
	}
}

// TestEndlessBody streams up to 1 GiB with no Content-Length; the client must stop at the
// cap, close the connection (the handler's writes then fail) and allocate little.
// Not parallel, so the allocation count is not shared with other tests.
func TestEndlessBody(t *testing.T) {
	handlerDone := make(chan int64, 1)
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		chunk := []byte(strings.Repeat("x", 32<<10))
		var written int64
		for written < 1<<30 {
			n, err := w.Write(chunk)
			written += int64(n)
			if err != nil {
				break
			}
		}
		handlerDone <- written
	}))
	c := New(Options{Policy: allow("127.0.0.1/32")})

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	resp, err := do(t, c, http.MethodGet, s.URL, nil)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Truncated || len(resp.Body) != 64<<10 {
		t.Errorf("truncated %v len %d, want true %d", resp.Truncated, len(resp.Body), 64<<10)
	}
	if elapsed > 2*time.Second {
		t.Errorf("took %s", elapsed)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("allocated %d MiB while reading a capped body", alloc>>20)
	}
	select {
	case written := <-handlerDone:
		if written >= 1<<30 {
			t.Error("server wrote the whole GiB: the client kept reading")
		}
	case <-time.After(2 * time.Second):
		t.Error("server still writing 2s after the client finished: connection not closed")
	}
}

func TestHugeResponseHeaders(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("X-Big", strings.Repeat("h", n))
		io.WriteString(w, "ok")
	}))
	c := New(Options{Policy: allow("127.0.0.1/32")})
	_, err := do(t, c, http.MethodGet, s.URL+"/?n="+strconv.Itoa(20<<20), nil)
	if err == nil || !strings.Contains(err.Error(), "exceeded") {
		t.Errorf("20 MiB header: got %v, want a header-size error", err)
	}
	if resp, err := do(t, c, http.MethodGet, s.URL+"/?n="+strconv.Itoa(32<<10), nil); err != nil || len(resp.Header.Get("X-Big")) != 32<<10 {
		t.Errorf("32 KiB header under the 64 KiB cap: %v", err)
	}
	c = New(Options{Policy: allow("127.0.0.1/32"), MaxHeaderBytes: 4 << 10})
	if _, err := do(t, c, http.MethodGet, s.URL+"/?n="+strconv.Itoa(8<<10), nil); err == nil {
		t.Error("8 KiB header with a 4 KiB cap: want error")
	}
}

func TestDescribeErrorFromDo(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c := New(Options{Policy: &Policy{AllowPrivate: true}})
		_, err = do(t, c, http.MethodGet, "http://"+addr+"/", nil)
		if got := DescribeError(err, 30*time.Second); got != "Network error: connection refused" {
			t.Errorf("DescribeError = %q (err %v)", got, err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		var held []net.Conn
		var mu sync.Mutex
		go func() { // accept and never answer
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				held = append(held, conn)
				mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range held {
				c.Close()
			}
		})
		c := New(Options{Policy: &Policy{AllowPrivate: true}})
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
		_, err = c.Do(req, 0)
		if got := DescribeError(err, time.Second); got != "Request timeout after 1s" {
			t.Errorf("DescribeError = %q (err %v)", got, err)
		}
	})
	t.Run("blocked", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, okHandler())
		_, err := do(t, New(Options{}), http.MethodGet, s.URL, nil)
		want := "Blocked target: target address 127.0.0.1 (loopback) is blocked; start the server with --allow-private-targets or --allow-targets 127.0.0.1/32 to allow it"
		if got := DescribeError(err, time.Second); got != want {
			t.Errorf("DescribeError = %q", got)
		}
	})
	t.Run("no such host", func(t *testing.T) {
		t.Parallel()
		empty := resolverFunc(func(context.Context, string, string) ([]netip.Addr, error) { return nil, nil })
		for _, r := range []Resolver{resolverFor(), empty} {
			c := New(Options{Resolver: r})
			_, err := do(t, c, http.MethodGet, "http://example.invalid/", nil)
			if got := DescribeError(err, time.Second); got != "Network error: no such host example.invalid" {
				t.Errorf("DescribeError = %q (err %v)", got, err)
			}
		}
	})
	t.Run("server closes", func(t *testing.T) {
		t.Parallel()
		s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}))
		_, err := do(t, New(Options{Policy: &Policy{AllowPrivate: true}}), http.MethodGet, s.URL, nil)
		if got := DescribeError(err, time.Second); got != "Network error: server closed the connection" {
			t.Errorf("DescribeError = %q (err %v)", got, err)
		}
	})
}

func TestDescribeErrorShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err     error
		timeout time.Duration
		want    string
	}{
		{nil, time.Second, ""},
		{context.DeadlineExceeded, 30 * time.Second, "Request timeout after 30s"},
		{&url.Error{Op: "Get", URL: "http://x/", Err: context.DeadlineExceeded}, 90 * time.Second, "Request timeout after 90s"},
		{context.DeadlineExceeded, 1500 * time.Millisecond, "Request timeout after 2s"},
		{context.DeadlineExceeded, 200 * time.Millisecond, "Request timeout after 200ms"},
		{context.DeadlineExceeded, 0, "Request timeout"},
		{&url.Error{Op: "Get", URL: "http://x/", Err: context.Canceled}, time.Second, "Request canceled"},
		{&url.Error{Op: "Get", URL: "http://x/", Err: &net.DNSError{Err: "server misbehaving", Name: "x.test"}}, time.Second, "Network error: DNS lookup of x.test failed: server misbehaving"},
		{&url.Error{Op: "Get", URL: "http://x/", Err: errors.New("net/http: server response headers exceeded 65536 bytes; aborted")}, time.Second, "Network error: server response headers exceeded 65536 bytes; aborted"},
		{fmt.Errorf("wrapped: %w", &BlockedError{Addr: netip.MustParseAddr("10.0.0.1"), Reason: "private"}), time.Second, "Blocked target: target address 10.0.0.1 (private) is blocked; start the server with --allow-private-targets or --allow-targets 10.0.0.1/32 to allow it"},
	}
	for _, tt := range tests {
		if got := DescribeError(tt.err, tt.timeout); got != tt.want {
			t.Errorf("DescribeError(%v, %s) = %q, want %q", tt.err, tt.timeout, got, tt.want)
		}
	}
	if long := DescribeError(errors.New(strings.Repeat("é", 300)), time.Second); len(long) > 250 {
		t.Errorf("cause not shortened: %d bytes", len(long))
	}
}

// TestProxyEnvIgnored sets the proxy variables to a counting listener: the client must
// still go direct. Not parallel because of t.Setenv.
func TestProxyEnvIgnored(t *testing.T) {
	proxy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	var proxied atomic.Int64
	go func() {
		for {
			conn, err := proxy.Accept()
			if err != nil {
				return
			}
			proxied.Add(1)
			conn.Close()
		}
	}()
	proxyURL := "http://" + proxy.Addr().String()
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"} {
		t.Setenv(k, proxyURL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	s := newServer(t, okHandler())
	// A non-localhost name, because net/http never proxies localhost or loopback literals.
	target := "http://direct.test:" + s.port() + "/"
	c := New(Options{Policy: allow("127.0.0.1/32"), Resolver: resolverFor("direct.test", "127.0.0.1")})
	resp, err := do(t, c, http.MethodGet, target, nil)
	if err != nil || string(resp.Body) != "ok" {
		t.Fatalf("direct request: %v", err)
	}
	if n := proxied.Load(); n != 0 {
		t.Errorf("proxy saw %d connections, want 0", n)
	}
	if s.conns.Load() != 1 {
		t.Errorf("target saw %d connections, want 1", s.conns.Load())
	}

	// Canary: a transport that does read the environment reaches the proxy, so the
	// assertion above could have failed.
	canary := &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	if resp, err := canary.Do(req); err == nil {
		resp.Body.Close()
	}
	if proxied.Load() == 0 {
		t.Log("canary: net/http did not pick up the proxy variables (read once per process); check inconclusive")
	}
}
