package outbound

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// plainClient is a client that may call 127.0.0.1, with o's other options.
func plainClient(o Options) *Client {
	if o.Policy == nil {
		o.Policy = allow("127.0.0.1/32")
	}
	return New(o)
}

// idleConns is the number of idle connections in the lean path's pool.
func idleConns(c *Client) int {
	c.plain.mu.Lock()
	defer c.plain.mu.Unlock()
	return c.plain.idle.n
}

// checkPoolEmpty fails if, after CloseIdle, the lean path still counts a connection or a
// waiter anywhere: a leaked slot would block a host for ever.
func checkPoolEmpty(t *testing.T, c *Client) {
	t.Helper()
	c.CloseIdle()
	c.plain.mu.Lock()
	defer c.plain.mu.Unlock()
	for addr, h := range c.plain.hosts {
		t.Errorf("host %s still has %d open, %d idle, %d waiting", addr, h.open, len(h.idle), len(h.waiters))
	}
	if c.plain.idle.n != 0 {
		t.Errorf("idle list holds %d connections", c.plain.idle.n)
	}
}

// rawServer is a TCP listener on 127.0.0.1 whose connections are served by handle, for
// servers that must misbehave. It counts the connections it accepts.
type rawServer struct {
	ln    net.Listener
	conns atomic.Int64
	mu    sync.Mutex
	open  []net.Conn
}

func newRawServer(t *testing.T, handle func(conn net.Conn, br *bufio.Reader, n int64)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			n := s.conns.Add(1)
			s.mu.Lock()
			s.open = append(s.open, conn)
			s.mu.Unlock()
			go handle(conn, bufio.NewReader(conn), n)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.open {
			c.Close()
		}
	})
	return s
}

func (s *rawServer) URL() string { return "http://" + s.ln.Addr().String() }

// readRequest reads one request and its whole body from a raw connection.
func readRequest(br *bufio.Reader) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

func TestPlainKeepAlive(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	}))
	c := plainClient(Options{})
	for i := range 10 {
		method, body, want := http.MethodGet, io.Reader(nil), "GET "
		if i%2 == 1 {
			method, body, want = http.MethodPost, strings.NewReader("p"+strconv.Itoa(i)), "POST p"+strconv.Itoa(i)
		}
		resp, err := do(t, c, method, s.URL+"/", body)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if string(resp.Body) != want {
			t.Errorf("call %d: body %q, want %q", i, resp.Body, want)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("server saw %d connections for 10 sequential calls, want 1", n)
	}
	if n := idleConns(c); n != 1 {
		t.Errorf("lean pool holds %d idle connections, want 1 (did the request take the lean path?)", n)
	}
	checkPoolEmpty(t, c)
}

func TestPlainBodyCap(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if r.URL.Query().Has("chunked") {
			for range n {
				io.WriteString(w, "y")
				w.(http.Flusher).Flush()
			}
			return
		}
		io.WriteString(w, strings.Repeat("x", n))
	}))
	c := plainClient(Options{MaxBodyBytes: 10})
	call := func(query string, wantLen int, truncated bool) {
		t.Helper()
		resp, err := do(t, c, http.MethodGet, s.URL+"/?"+query, nil)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		if len(resp.Body) != wantLen || resp.Truncated != truncated {
			t.Errorf("%s: len %d truncated %v, want %d %v", query, len(resp.Body), resp.Truncated, wantLen, truncated)
		}
	}
	call("n=10", 10, false)
	call("n=10", 10, false)
	if n := s.conns.Load(); n != 1 {
		t.Fatalf("fully read bodies: %d connections, want 1", n)
	}
	// Do reads up to the cap plus one byte: a body just that long is read to its end, and
	// its connection kept, as net/http would.
	call("n=11", 10, true)
	call("n=3", 3, false)
	if n := s.conns.Load(); n != 1 {
		t.Fatalf("body of the cap plus one: %d connections, want 1", n)
	}
	call("n=15", 10, true) // unread bytes: the connection must be dropped, not drained
	call("n=3", 3, false)
	if n := s.conns.Load(); n != 2 {
		t.Errorf("after a truncated body: %d connections, want 2", n)
	}
	call("n=20&chunked", 10, true)
	call("n=5&chunked", 5, false)
	call("n=1", 1, false)
	if n := s.conns.Load(); n != 3 {
		t.Errorf("after a truncated chunked body: %d connections, want 3", n)
	}
	checkPoolEmpty(t, c)
}

func TestPlainChunkedResponse(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for _, part := range []string{"hello ", "chunked ", "world"} {
			io.WriteString(w, part)
			w.(http.Flusher).Flush()
		}
	}))
	c := plainClient(Options{})
	for range 3 {
		resp, err := do(t, c, http.MethodGet, s.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Body) != "hello chunked world" || resp.Truncated {
			t.Errorf("body %q truncated %v", resp.Body, resp.Truncated)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections for complete chunked bodies, want 1", n)
	}
}

func TestPlainConnectionClose(t *testing.T) {
	t.Parallel()
	var sawClose atomic.Int64
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Close {
			sawClose.Add(1)
		}
		if r.URL.Query().Has("close") {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "ok")
	}))
	c := plainClient(Options{})
	for range 3 {
		if _, err := do(t, c, http.MethodGet, s.URL+"/?close", nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.conns.Load(); n != 3 {
		t.Errorf("responses with Connection: close: %d connections, want 3", n)
	}
	// A request that asks for the close itself.
	for range 2 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL, nil)
		req.Close = true
		if _, err := c.Do(req); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.conns.Load(); n != 5 {
		t.Errorf("requests with Close: %d connections, want 5", n)
	}
	if sawClose.Load() != 2 {
		t.Errorf("server saw Connection: close on %d requests, want 2", sawClose.Load())
	}
	if n := idleConns(c); n != 0 {
		t.Errorf("%d idle connections kept, want 0", n)
	}
}

func TestPlainHTTP10(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(conn net.Conn, br *bufio.Reader, _ int64) {
		defer conn.Close()
		for {
			req, _, err := readRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/keepalive" {
				io.WriteString(conn, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nka")
				continue
			}
			// Close-delimited body, no Content-Length.
			io.WriteString(conn, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold server")
			return
		}
	})
	c := plainClient(Options{})
	for range 2 {
		resp, err := do(t, c, http.MethodGet, s.URL()+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Status != "200 OK" || string(resp.Body) != "old server" || resp.Header.Get("Content-Type") != "text/plain" {
			t.Errorf("response %+v", resp)
		}
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("close-delimited HTTP/1.0 bodies: %d connections, want 2", n)
	}
	for range 2 {
		resp, err := do(t, c, http.MethodGet, s.URL()+"/keepalive", nil)
		if err != nil || string(resp.Body) != "ka" {
			t.Fatalf("HTTP/1.0 keep-alive: %v", err)
		}
	}
	if n := s.conns.Load(); n != 3 {
		t.Errorf("HTTP/1.0 keep-alive: %d connections in all, want 3", n)
	}
	checkPoolEmpty(t, c)
}

func TestPlainHeaderTooLarge(t *testing.T) {
	t.Parallel()
	var written atomic.Int64
	raw := newRawServer(t, func(conn net.Conn, br *bufio.Reader, _ int64) {
		defer conn.Close()
		if _, _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nX-Endless: ")
		chunk := bytes.Repeat([]byte("h"), 4<<10)
		for written.Load() < 1<<30 {
			n, err := conn.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	c := plainClient(Options{MaxHeaderBytes: 4 << 10})
	_, err := do(t, c, http.MethodGet, raw.URL(), nil)
	if got, want := DescribeError(err, time.Second), "Network error: server response headers exceeded 4096 bytes; aborted"; got != want {
		t.Errorf("endless header: DescribeError = %q, want %q", got, want)
	}
	if written.Load() >= 1<<30 {
		t.Error("the client read a whole GiB of header")
	}

	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("X-Big", strings.Repeat("h", n))
		io.WriteString(w, "ok")
	}))
	c = plainClient(Options{})
	if _, err := do(t, c, http.MethodGet, s.URL+"/?n="+strconv.Itoa(100<<10), nil); err == nil || !strings.Contains(err.Error(), "exceeded 65536 bytes") {
		t.Errorf("100 KiB header with the default cap: got %v, want a header-size error", err)
	}
	if resp, err := do(t, c, http.MethodGet, s.URL+"/?n="+strconv.Itoa(60<<10), nil); err != nil || len(resp.Header.Get("X-Big")) != 60<<10 {
		t.Errorf("60 KiB header under the cap: %v", err)
	}
	// The limit is for the headers only: a body beyond it is read as usual.
	if resp, err := do(t, c, http.MethodGet, s.URL+"/?n=100", nil); err != nil || string(resp.Body) != "ok" {
		t.Errorf("small header: %v", err)
	}
}

// silentServer accepts connections and never answers; with headers set it sends a response
// head announcing more body than it ever sends.
func silentServer(t *testing.T, head string) *rawServer {
	return newRawServer(t, func(conn net.Conn, br *bufio.Reader, _ int64) {
		if head == "" {
			return // the cleanup closes it
		}
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(conn, head)
	})
}

func TestPlainTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	for name, head := range map[string]string{
		"headers": "",
		"body":    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := silentServer(t, head)
			c := plainClient(Options{})

			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL(), nil)
			_, err := c.Do(req)
			if got := DescribeError(err, 200*time.Millisecond); got != "Request timeout after 200ms" {
				t.Errorf("deadline: DescribeError = %q (err %v)", got, err)
			}

			ctx, cancel = context.WithCancel(t.Context())
			defer cancel()
			time.AfterFunc(100*time.Millisecond, cancel)
			req, _ = http.NewRequestWithContext(ctx, http.MethodGet, s.URL(), nil)
			_, err = c.Do(req)
			if got := DescribeError(err, time.Second); got != "Request canceled" {
				t.Errorf("cancel: DescribeError = %q (err %v)", got, err)
			}
			checkPoolEmpty(t, c)
		})
	}
}

// TestPlainStaleConn: the server answers one request, then closes that connection as the
// next request arrives, without reading it (as a server does whose idle timeout fires at
// that moment). The client must send the request again on a new connection, body
// included, and the server must handle exactly one copy of it.
func TestPlainStaleConn(t *testing.T) {
	t.Parallel()
	type seen struct{ method, body string }
	var mu sync.Mutex
	var handled []seen
	s := newRawServer(t, func(conn net.Conn, br *bufio.Reader, n int64) {
		defer conn.Close()
		for first := true; ; first = false {
			if !first && n == 1 {
				br.Peek(1) // the next request is arriving: drop the connection unread
				return
			}
			req, body, err := readRequest(br)
			if err != nil {
				return
			}
			mu.Lock()
			handled = append(handled, seen{req.Method, string(body)})
			mu.Unlock()
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c := plainClient(Options{})
	if _, err := do(t, c, http.MethodGet, s.URL(), nil); err != nil {
		t.Fatal(err)
	}
	resp, err := do(t, c, http.MethodPost, s.URL(), strings.NewReader("payload"))
	if err != nil {
		t.Fatalf("POST on a stale connection: %v", err)
	}
	if string(resp.Body) != "ok" {
		t.Errorf("body %q", resp.Body)
	}
	mu.Lock()
	if want := []seen{{"GET", ""}, {"POST", "payload"}}; !slices.Equal(handled, want) {
		t.Errorf("server handled %v, want %v", handled, want)
	}
	mu.Unlock()
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	checkPoolEmpty(t, c)
}

// TestPlainStaleConnNoGetBody: a body that cannot be produced again is not retried; the
// stale connection's error is returned.
func TestPlainStaleConnNoGetBody(t *testing.T) {
	t.Parallel()
	var handled atomic.Int64
	s := newRawServer(t, func(conn net.Conn, br *bufio.Reader, _ int64) {
		defer conn.Close()
		if _, _, err := readRequest(br); err != nil {
			return
		}
		handled.Add(1)
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		br.Peek(1)
	})
	c := plainClient(Options{})
	if _, err := do(t, c, http.MethodGet, s.URL(), nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL(), io.NopCloser(strings.NewReader("payload")))
	req.ContentLength = 7
	req.GetBody = nil
	_, err := c.Do(req)
	if got := DescribeError(err, time.Second); got != "Network error: server closed the connection" && got != "Network error: connection reset by peer" {
		t.Errorf("DescribeError = %q (err %v)", got, err)
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (no retry without GetBody)", n)
	}
	if handled.Load() != 1 {
		t.Errorf("server handled %d requests, want 1", handled.Load())
	}
}

// TestPlainFreshConnNotRetried: a failure on a connection dialled for the request is the
// answer; it is not retried.
func TestPlainFreshConnNotRetried(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(conn net.Conn, br *bufio.Reader, _ int64) {
		defer conn.Close()
		http.ReadRequest(br)
	})
	c := plainClient(Options{})
	_, err := do(t, c, http.MethodGet, s.URL(), nil)
	if got := DescribeError(err, time.Second); got != "Network error: server closed the connection" {
		t.Errorf("DescribeError = %q (err %v)", got, err)
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	checkPoolEmpty(t, c)
}

// TestPlainIdleConnChecked: a connection the server closed while it sat idle, or on which
// the server sent bytes nobody asked for, is not used: even a body without GetBody goes
// out, and the stray bytes are never read as the response.
func TestPlainIdleConnChecked(t *testing.T) {
	t.Parallel()
	if !canPeek {
		t.Skip("idle connections are not checked on this platform")
	}
	sent := make(chan struct{}, 10)
	s := newRawServer(t, func(conn net.Conn, br *bufio.Reader, _ int64) {
		defer conn.Close()
		for {
			req, body, err := readRequest(br)
			if err != nil {
				return
			}
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body)+2, "ok"+string(body))
			switch req.URL.Path {
			case "/close":
				conn.Close()
				sent <- struct{}{}
				return
			case "/stray":
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
				sent <- struct{}{}
			}
		}
	})
	c := plainClient(Options{})
	for i, path := range []string{"/close", "/stray"} {
		if _, err := do(t, c, http.MethodGet, s.URL()+path, nil); err != nil {
			t.Fatal(err)
		}
		<-sent
		waitIdleStale(t, c)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+"/", io.NopCloser(strings.NewReader("!")))
		req.ContentLength = 1
		req.GetBody = nil
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("after %s: %v", path, err)
		}
		if string(resp.Body) != "ok!" {
			t.Errorf("after %s: body %q, want %q", path, resp.Body, "ok!")
		}
		if n := s.conns.Load(); n != int64(2+i) {
			t.Errorf("after %s: %d connections, want %d", path, n, 2+i)
		}
	}
}

// waitIdleStale waits until the FIN or the stray bytes the server sent have reached the
// pooled connection's socket (or the connection was not pooled at all).
func waitIdleStale(t *testing.T, c *Client) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		c.plain.mu.Lock()
		pc := c.plain.idle.front
		stale := pc == nil || !pc.peek.isAlive()
		c.plain.mu.Unlock()
		if stale {
			return
		}
	}
	t.Error("the idle connection still looks usable 5s after the server closed it or wrote to it")
}

func TestPlainUnsolicitedBytesInBuffer(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(conn net.Conn, br *bufio.Reader, n int64) {
		defer conn.Close()
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			// The extra bytes come in the same write, so they land in the client's buffer.
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n%dHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray", n)
		}
	})
	c := plainClient(Options{})
	for i := range 2 {
		resp, err := do(t, c, http.MethodGet, s.URL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := strconv.Itoa(i+1) + "H"; string(resp.Body) != want {
			t.Errorf("call %d: body %q, want %q", i, resp.Body, want)
		}
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestPlainInformationalResponses(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, func(conn net.Conn, br *bufio.Reader, _ int64) {
		defer conn.Close()
		for {
			if _, _, err := readRequest(br); err != nil {
				return
			}
			io.WriteString(conn, "HTTP/1.1 100 Continue\r\n\r\n"+
				"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"+
				"HTTP/1.1 201 Created\r\nX-Final: yes\r\nContent-Length: 4\r\n\r\ndone")
		}
	})
	c := plainClient(Options{})
	for range 2 {
		resp, err := do(t, c, http.MethodPost, s.URL(), strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 201 || string(resp.Body) != "done" || resp.Header.Get("X-Final") != "yes" || resp.Header.Get("Link") != "" {
			t.Errorf("response %d %q %v", resp.StatusCode, resp.Body, resp.Header)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

func TestPlainHead(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		if r.Method != http.MethodHead {
			io.WriteString(w, strings.Repeat("x", 100))
		}
	}))
	c := plainClient(Options{})
	for _, method := range []string{http.MethodHead, http.MethodHead, http.MethodGet} {
		resp, err := do(t, c, method, s.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"HEAD": 0, "GET": 100}[method]; len(resp.Body) != want {
			t.Errorf("%s: %d body bytes, want %d", method, len(resp.Body), want)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

func TestPlainRedirects(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/")); err == nil {
			http.Redirect(w, r, "/final?from="+strconv.Itoa(code), code)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), b)
	}))
	c := plainClient(Options{})
	for code, want := range map[int]string{
		303: "GET /final?from=303 ",
		307: "POST /final?from=307 body",
		308: "POST /final?from=308 body",
		302: "GET /final?from=302 ",
	} {
		resp, err := do(t, c, http.MethodPost, fmt.Sprintf("%s/r/%d", s.URL, code), strings.NewReader("body"))
		if err != nil {
			t.Fatalf("%d: %v", code, err)
		}
		if string(resp.Body) != want {
			t.Errorf("%d: final request %q, want %q", code, resp.Body, want)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections for redirects on one host, want 1", n)
	}

	// A hop to an address the policy refuses is blocked at dial time on the lean path too.
	blocked := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.2:1/", http.StatusFound)
	}))
	if _, err := do(t, c, http.MethodGet, blocked.URL, nil); !IsBlocked(err) {
		t.Errorf("redirect to 127.0.0.2: got %v, want blocked", err)
	}
}

// TestPlainRedirectDropsAuthorization: as net/http does, Authorization survives a redirect
// on the same host and is dropped on a redirect to another one.
func TestPlainRedirectDropsAuthorization(t *testing.T) {
	t.Parallel()
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to := r.URL.Query().Get("to"); to != "" {
			http.Redirect(w, r, to, http.StatusFound)
			return
		}
		fmt.Fprintf(w, "auth=%q", r.Header.Get("Authorization"))
	})
	a, b := newServer(t, echo), newServer(t, echo)
	r := resolverFor("a.test", "127.0.0.1", "b.test", "127.0.0.1")
	c := plainClient(Options{Resolver: r})
	aURL, bURL := "http://a.test:"+a.port(), "http://b.test:"+b.port()
	for to, want := range map[string]string{
		aURL + "/final": `auth="Bearer secret"`,
		bURL + "/final": `auth=""`,
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, aURL+"/?to="+url.QueryEscape(to), nil)
		req.Header.Set("Authorization", "Bearer secret")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Body) != want {
			t.Errorf("redirect to %s: %s, want %s", to, resp.Body, want)
		}
	}
}

func TestPlainHeaderInjection(t *testing.T) {
	t.Parallel()
	s := newServer(t, okHandler())
	c := plainClient(Options{})
	for name, set := range map[string]func(*http.Request){
		"CRLF in value":     func(r *http.Request) { r.Header.Set("X-Note", "a\r\nX-Evil: 1") },
		"LF in value":       func(r *http.Request) { r.Header.Set("X-Note", "a\nX-Evil: 1") },
		"NUL in value":      func(r *http.Request) { r.Header.Set("X-Note", "a\x00b") },
		"CRLF in agent":     func(r *http.Request) { r.Header.Set("User-Agent", "ua\r\nX-Evil: 1") },
		"space in name":     func(r *http.Request) { r.Header["X Evil"] = []string{"1"} },
		"colon in name":     func(r *http.Request) { r.Header["X-Evil:"] = []string{"1"} },
		"empty name":        func(r *http.Request) { r.Header[""] = []string{"1"} },
		"CRLF in Host":      func(r *http.Request) { r.Host = "a.test\r\nX-Evil: 1" },
		"space in method":   func(r *http.Request) { r.Method = "GET / HTTP/1.1\r\nX:" },
		"CRLF in opaque":    func(r *http.Request) { r.URL.Opaque = "/a\r\nX-Evil: 1" },
		"CRLF in raw query": func(r *http.Request) { r.URL.RawQuery = "a=\r\nX-Evil: 1" },
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL, strings.NewReader("body"))
		set(req)
		if _, err := c.Do(req); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if n := s.conns.Load(); n != 0 {
		t.Errorf("server saw %d connections, want 0: an invalid request was sent", n)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL, nil)
	req.Header.Set("X-Tab", "a\tb")
	if _, err := c.Do(req); err != nil {
		t.Errorf("a tab in a value is allowed: %v", err)
	}
}

func TestPlainMaxConnsPerHost(t *testing.T) {
	t.Parallel()
	var open, maxOpen, total atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(50 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			total.Add(1)
			storeMax(&maxOpen, open.Add(1))
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	c := plainClient(Options{MaxConnsPerHost: 2})
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if resp, err := do(t, c, http.MethodGet, s.URL, nil); err != nil || string(resp.Body) != "ok" {
				t.Errorf("call: %v", err)
			}
		})
	}
	wg.Wait()
	if m := maxOpen.Load(); m > 2 {
		t.Errorf("server saw %d connections open at once, want at most 2", m)
	}
	if n := total.Load(); n > 2 {
		t.Errorf("server saw %d connections, want at most 2 (waiters take the freed ones)", n)
	}
	checkPoolEmpty(t, c)
}

// storeMax raises m to n if n is larger.
func storeMax(m *atomic.Int64, n int64) {
	for {
		old := m.Load()
		if n <= old || m.CompareAndSwap(old, n) {
			return
		}
	}
}

// TestPlainWaitForConnTimeout: a request waiting for a free connection gives up when its
// context does, and leaves nothing behind in the pool.
func TestPlainWaitForConnTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	c := plainClient(Options{MaxConnsPerHost: 1})
	done := make(chan error)
	go func() {
		_, err := do(t, c, http.MethodGet, s.URL+"/slow", nil)
		done <- err
	}()
	for s.conns.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/fast", nil)
	_, err := c.Do(req)
	if got := DescribeError(err, 100*time.Millisecond); got != "Request timeout after 100ms" {
		t.Errorf("waiting for a connection: DescribeError = %q (err %v)", got, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if resp, err := do(t, c, http.MethodGet, s.URL+"/fast", nil); err != nil || string(resp.Body) != "ok" {
		t.Fatalf("after the wait: %v", err)
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
	checkPoolEmpty(t, c)
}

// captured is what a raw server saw of one request.
type captured struct {
	head   string // request line and header lines, in the order sent
	req    *http.Request
	body   string
	header http.Header
}

// captureServer answers each request with "ok" and Connection: close (the tee that records
// the head may read past it) and sends what it saw on the channel.
func captureServer(t *testing.T) (*rawServer, chan captured) {
	ch := make(chan captured, 10)
	s := newRawServer(t, func(conn net.Conn, br *bufio.Reader, _ int64) {
		defer conn.Close()
		var head bytes.Buffer
		req, err := http.ReadRequest(bufio.NewReader(io.TeeReader(br, &head)))
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		h, _, _ := strings.Cut(head.String(), "\r\n\r\n")
		ch <- captured{head: h, req: req, body: string(body), header: req.Header}
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
	})
	return s, ch
}

func TestPlainRequestShape(t *testing.T) {
	t.Parallel()
	s, seen := captureServer(t)
	c := plainClient(Options{UserAgent: "asyncqueue/test"})

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+"/a%20b/c?q=1&r=%2F", bytes.NewReader([]byte(`{"a":1}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	req.Header["x-lower"] = []string{"kept as written"}
	req.Header.Set("Content-Length", "999")   // ignored: ContentLength rules
	req.Header.Set("Transfer-Encoding", "gz") // ignored
	req.Host = "virtual.test"
	if _, err := c.Do(req); err != nil {
		t.Fatal(err)
	}
	got := <-seen
	if got.req.Method != "POST" || got.req.RequestURI != "/a%20b/c?q=1&r=%2F" || got.req.Host != "virtual.test" {
		t.Errorf("request line or host: %s %s host %s", got.req.Method, got.req.RequestURI, got.req.Host)
	}
	for k, want := range map[string][]string{
		"User-Agent":      {"asyncqueue/test"},
		"Content-Length":  {"7"},
		"Content-Type":    {"application/json"},
		"X-Multi":         {"one", "two"},
		"Accept-Encoding": {"gzip"},
	} {
		if !slices.Equal(got.header[k], want) {
			t.Errorf("%s: %q, want %q", k, got.header[k], want)
		}
	}
	if !strings.Contains(got.head, "\r\nx-lower: kept as written") {
		t.Errorf("non-canonical header not sent as written:\n%s", got.head)
	}
	if got.body != `{"a":1}` || len(got.req.TransferEncoding) != 0 {
		t.Errorf("body %q transfer-encoding %v", got.body, got.req.TransferEncoding)
	}
	if !strings.HasPrefix(got.head, "POST /a%20b/c?q=1&r=%2F HTTP/1.1\r\nHost: virtual.test\r\n") {
		t.Errorf("head:\n%s", got.head)
	}
	if strings.Count(got.head, "Host:") != 1 || strings.Count(got.head, "Content-Length:") != 1 {
		t.Errorf("duplicate headers:\n%s", got.head)
	}

	// Content-Length by method and body, as net/http: POST/PUT/PATCH announce an empty body,
	// GET and DELETE do not; a body of unknown length is read and sent with its length.
	for _, tt := range []struct {
		method string
		body   io.Reader
		want   []string // Content-Length values
		data   string
	}{
		{"POST", nil, []string{"0"}, ""},
		{"PUT", nil, []string{"0"}, ""},
		{"PATCH", nil, []string{"0"}, ""},
		{"GET", nil, nil, ""},
		{"DELETE", nil, nil, ""},
		{"POST", io.MultiReader(strings.NewReader("unknown "), strings.NewReader("length")), []string{"14"}, "unknown length"},
		{"POST", io.MultiReader(), []string{"0"}, ""},
		{"DELETE", io.MultiReader(strings.NewReader("x")), []string{"1"}, "x"},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), tt.method, s.URL()+"/", tt.body)
		if _, err := c.Do(req); err != nil {
			t.Fatalf("%s: %v", tt.method, err)
		}
		got := <-seen
		if !slices.Equal(got.header["Content-Length"], tt.want) || got.body != tt.data || len(got.req.TransferEncoding) != 0 {
			t.Errorf("%s body %v: Content-Length %q body %q TE %v, want %q %q", tt.method, tt.body != nil, got.header["Content-Length"], got.body, got.req.TransferEncoding, tt.want, tt.data)
		}
	}

	// User-Agent: the caller's, else the client's, else net/http's default; an explicitly
	// empty one with no client agent sends none. Accept-Encoding of the caller is kept.
	plain := plainClient(Options{})
	for _, tt := range []struct {
		c      *Client
		header http.Header
		want   []string
	}{
		{c, http.Header{"User-Agent": {"caller/1"}}, []string{"caller/1"}},
		{c, http.Header{"User-Agent": {""}}, []string{"asyncqueue/test"}},
		{plain, nil, []string{"Go-http-client/1.1"}},
		{plain, http.Header{"User-Agent": {""}}, nil},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL()+"/", nil)
		req.Header = tt.header
		before := maps.Clone(tt.header)
		if _, err := tt.c.Do(req); err != nil {
			t.Fatal(err)
		}
		if got := (<-seen).header["User-Agent"]; !slices.Equal(got, tt.want) {
			t.Errorf("header %v: User-Agent %q, want %q", tt.header, got, tt.want)
		}
		if !maps.EqualFunc(req.Header, before, slices.Equal) {
			t.Errorf("Do changed the caller's header: %v", req.Header)
		}
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL()+"/", nil)
	req.Header.Set("Accept-Encoding", "identity")
	if _, err := c.Do(req); err != nil {
		t.Fatal(err)
	}
	if got := (<-seen).header["Accept-Encoding"]; !slices.Equal(got, []string{"identity"}) {
		t.Errorf("caller's Accept-Encoding: %q", got)
	}
}

// TestPlainSameAsNetHTTP sends the same requests down the lean path and through
// http.Transport: the server must see the same requests.
func TestPlainSameAsNetHTTP(t *testing.T) {
	t.Parallel()
	s, seen := captureServer(t)
	lean := plainClient(Options{UserAgent: "asyncqueue/test"})
	std := plainClient(Options{UserAgent: "asyncqueue/test"})
	std.http.Transport = stdOnly{std.transport, "asyncqueue/test"}
	for _, tt := range []struct {
		method, path, body string
		header             http.Header
	}{
		{"GET", "/", "", nil},
		{"GET", "/x?y=1", "", http.Header{"X-A": {"1", "2"}, "Authorization": {"Bearer t"}}},
		{"POST", "/hook", `{"k":"v"}`, http.Header{"Content-Type": {"application/json"}}},
		{"POST", "/empty", "", nil},
		{"PUT", "/p", "data", http.Header{"Range": {"bytes=0-1"}}},
		{"DELETE", "/d", "", http.Header{"Connection": {"close"}}},
		{"OPTIONS", "/o", "", http.Header{"User-Agent": {"other/2"}}},
	} {
		var got [2]captured
		for i, c := range []*Client{lean, std} {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, s.URL()+tt.path, body)
			for k, vv := range tt.header {
				req.Header[k] = vv
			}
			if _, err := c.Do(req); err != nil {
				t.Fatal(err)
			}
			got[i] = <-seen
		}
		l, n := got[0], got[1]
		if l.req.Method != n.req.Method || l.req.RequestURI != n.req.RequestURI || l.req.Host != n.req.Host || l.body != n.body ||
			!maps.EqualFunc(l.header, n.header, slices.Equal) {
			t.Errorf("%s %s:\nlean:     %s\nnet/http: %s", tt.method, tt.path, l.head, n.head)
		}
	}
}

// stdOnly sends every request through net/http with the client's User-Agent, as the client
// did before the lean path.
type stdOnly struct {
	tr        *http.Transport
	userAgent string
}

func (s stdOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", s.userAgent)
	}
	return s.tr.RoundTrip(req)
}

func TestPlainGzip(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("empty") {
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			io.WriteString(w, "identity")
			return
		}
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		io.WriteString(zw, "hello gzip")
		zw.Close()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		w.Write(b.Bytes())
	}))
	c := plainClient(Options{})
	for range 2 {
		resp, err := do(t, c, http.MethodGet, s.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(resp.Body) != "hello gzip" || resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Content-Length") != "" {
			t.Errorf("decoded: body %q header %v", resp.Body, resp.Header)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections after gzip bodies, want 1", n)
	}
	resp, err := do(t, c, http.MethodGet, s.URL+"/?empty", nil)
	if err != nil || resp.StatusCode != http.StatusNoContent || len(resp.Body) != 0 {
		t.Errorf("204 with Content-Encoding gzip: %v %+v", err, resp)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if zr, err := gzip.NewReader(bytes.NewReader(resp.Body)); err != nil || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("caller's own gzip request must stay encoded: %v %v", err, resp.Header)
	} else if b, _ := io.ReadAll(zr); string(b) != "hello gzip" {
		t.Errorf("encoded body decodes to %q", b)
	}
}

func TestPlainIdleTimeout(t *testing.T) {
	t.Parallel()
	s := newServer(t, okHandler())
	c := plainClient(Options{})
	if _, err := do(t, c, http.MethodGet, s.URL, nil); err != nil {
		t.Fatal(err)
	}
	// Age the idle connection past the timeout: it must not be taken.
	c.plain.mu.Lock()
	c.plain.idle.front.idleAt = time.Now().Add(-idleConnTimeout - time.Second)
	c.plain.mu.Unlock()
	if _, err := do(t, c, http.MethodGet, s.URL, nil); err != nil {
		t.Fatal(err)
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	if n := idleConns(c); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
	checkPoolEmpty(t, c)
}

// TestPlainIdleSweep: an idle connection is closed after the idle timeout even if no
// request comes by to find it stale.
func TestPlainIdleSweep(t *testing.T) {
	t.Parallel()
	s := newServer(t, okHandler())
	c := plainClient(Options{})
	c.plain.idleTimeout = 20 * time.Millisecond
	for _, path := range []string{"/a", "/b"} { // the second arms the sweeper again
		if _, err := do(t, c, http.MethodGet, s.URL+path, nil); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for idleConns(c) > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := idleConns(c); n != 0 {
			t.Fatalf("%s: %d idle connections left after the idle timeout", path, n)
		}
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	checkPoolEmpty(t, c)
}

func TestPlainCloseIdle(t *testing.T) {
	t.Parallel()
	closed := make(chan struct{}, 10)
	s := httptest.NewUnstartedServer(okHandler())
	var conns atomic.Int64
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed:
			closed <- struct{}{}
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	c := plainClient(Options{})
	if _, err := do(t, c, http.MethodGet, s.URL, nil); err != nil {
		t.Fatal(err)
	}
	c.CloseIdle()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("CloseIdle did not close the lean path's idle connection")
	}
	if _, err := do(t, c, http.MethodGet, s.URL, nil); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestPlainMaxIdleTotal: past the total idle limit the least recently used idle connection
// is closed.
func TestPlainMaxIdleTotal(t *testing.T) {
	t.Parallel()
	servers := []*testServer{newServer(t, okHandler()), newServer(t, okHandler()), newServer(t, okHandler())}
	c := plainClient(Options{})
	c.plain.maxIdle = 2
	for _, s := range servers {
		if _, err := do(t, c, http.MethodGet, s.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := idleConns(c); n != 2 {
		t.Errorf("%d idle connections, want 2", n)
	}
	for _, s := range slices.Backward(servers) {
		if _, err := do(t, c, http.MethodGet, s.URL, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []int64{2, 1, 1} {
		if n := servers[i].conns.Load(); n != want {
			t.Errorf("server %d: %d connections, want %d", i, n, want)
		}
	}
	checkPoolEmpty(t, c)
}

func TestPlainBodyLengthMismatch(t *testing.T) {
	t.Parallel()
	s := newServer(t, okHandler())
	c := plainClient(Options{})
	for _, tt := range []struct {
		length int64
		body   string
	}{{10, "short"}, {2, "longer"}} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL, io.NopCloser(strings.NewReader(tt.body)))
		req.ContentLength = tt.length
		if _, err := c.Do(req); err == nil || !strings.Contains(err.Error(), "ContentLength") {
			t.Errorf("ContentLength %d with %q: got %v", tt.length, tt.body, err)
		}
	}
	checkPoolEmpty(t, c)
}

// closeCounter is a request body that counts its Close calls.
type closeCounter struct {
	io.Reader
	closes atomic.Int64
}

func (c *closeCounter) Close() error { c.closes.Add(1); return nil }

func TestPlainClosesRequestBody(t *testing.T) {
	t.Parallel()
	s := newServer(t, okHandler())
	c := plainClient(Options{})
	for name, set := range map[string]func(*http.Request){
		"sent":           func(*http.Request) {},
		"unknown size":   func(r *http.Request) { r.ContentLength = 0 },
		"invalid header": func(r *http.Request) { r.Header.Set("X", "\n") },
		"canceled": func(r *http.Request) {
			ctx, cancel := context.WithCancel(r.Context())
			cancel()
			*r = *r.WithContext(ctx)
		},
	} {
		body := &closeCounter{Reader: strings.NewReader("body")}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL, body)
		req.ContentLength = 4
		set(req)
		c.Do(req)
		if n := body.closes.Load(); n == 0 {
			t.Errorf("%s: request body not closed", name)
		}
	}
}

// TestPlainConcurrent hammers one host from many goroutines with a small connection limit,
// some calls canceled while they wait, send or read: every call ends, and the pool's
// counts come back to zero.
func TestPlainConcurrent(t *testing.T) {
	t.Parallel()
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for i := range n {
			fmt.Fprintf(w, "%d,", i)
			if i%50 == 0 {
				w.(http.Flusher).Flush()
			}
		}
	}))
	c := plainClient(Options{MaxConnsPerHost: 3, MaxBodyBytes: 1000})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				ctx, cancel := context.WithCancel(t.Context())
				if (g+i)%5 == 0 {
					time.AfterFunc(time.Duration(i%3)*time.Millisecond, cancel)
				}
				var body io.Reader
				if i%2 == 0 {
					body = strings.NewReader("some body")
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/?n=%d", s.URL, (g*i)%400), body)
				_, err := c.Do(req)
				if err != nil && ctx.Err() == nil {
					t.Errorf("call %d/%d: %v", g, i, err)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	checkPoolEmpty(t, c)
}

func TestPlainEligible(t *testing.T) {
	t.Parallel()
	for target, want := range map[string]bool{
		"http://example.com/":       true,
		"http://127.0.0.1:8080/x?y": true,
		"http://[::1]:80/":          true,
		"https://example.com/":      false,
		"http://bücher.example/":    false,
		"http://[fe80::1%25eth0]/":  false,
		"http:///no-host":           false,
	} {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		req := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
		if got := plainEligible(req); got != want {
			t.Errorf("%s: %v, want %v", target, got, want)
		}
	}
	u, _ := url.Parse("http://example.com/")
	for name, req := range map[string]*http.Request{
		"CONNECT":           {Method: http.MethodConnect, URL: u},
		"Transfer-Encoding": {Method: http.MethodPost, URL: u, TransferEncoding: []string{"chunked"}},
		"Trailer":           {Method: http.MethodPost, URL: u, Trailer: http.Header{"X": nil}},
		"Upgrade":           {Method: http.MethodGet, URL: u, Header: http.Header{"Upgrade": {"websocket"}}},
		"IDN Host":          {Method: http.MethodGet, URL: u, Host: "bücher.example"},
	} {
		if plainEligible(req) {
			t.Errorf("%s: eligible for the lean path", name)
		}
	}
}

// TestPlainHTTPSUsesNetHTTP: https goes through net/http, with the client's User-Agent put
// on a copy of the request, and nothing lands in the lean pool.
func TestPlainHTTPSUsesNetHTTP(t *testing.T) {
	t.Parallel()
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, r.UserAgent())
	}))
	t.Cleanup(s.Close)
	c := plainClient(Options{UserAgent: "asyncqueue/test"})
	c.transport.TLSClientConfig = s.Client().Transport.(*http.Transport).TLSClientConfig
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Body) != "HTTP/1.1 asyncqueue/test" {
		t.Errorf("body %q", resp.Body)
	}
	if req.Header.Get("User-Agent") != "" {
		t.Error("Do changed the caller's request")
	}
	if n := idleConns(c); n != 0 {
		t.Errorf("%d idle connections in the lean pool after an https call", n)
	}
}
