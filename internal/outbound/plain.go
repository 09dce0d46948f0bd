package outbound

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// plainBufSize is the size of each connection's read and write buffer (net/http's too).
const plainBufSize = 4 << 10

// defaultUserAgent is what net/http sends when a request has no User-Agent header.
const defaultUserAgent = "Go-http-client/1.1"

// router is the http.Client's RoundTripper: plain http:// requests take the lean path of
// plainTransport, everything else (https, and the few http requests plainEligible leaves
// alone) goes through net/http. The http.Client above it still does redirects, CheckRedirect
// and the header stripping on cross-host redirects, so every hop is routed on its own.
type router struct {
	plain     *plainTransport
	std       *http.Transport
	userAgent string
}

// RoundTrip sends one hop of a request down the path its URL calls for.
func (r *router) RoundTrip(req *http.Request) (*http.Response, error) {
	if plainEligible(req) {
		return r.plain.RoundTrip(req)
	}
	// net/http writes its own User-Agent when the header is missing; a RoundTripper must not
	// change the caller's request, so the client's agent goes on a copy.
	if r.userAgent != "" && req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context())
		if req.Header == nil {
			req.Header = make(http.Header)
		}
		req.Header.Set("User-Agent", r.userAgent)
	}
	return r.std.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of both paths; it is what
// http.Client.CloseIdleConnections calls.
func (r *router) CloseIdleConnections() {
	r.plain.CloseIdleConnections()
	r.std.CloseIdleConnections()
}

// plainEligible reports whether the lean path can send req exactly as net/http would. It
// leaves to net/http what it does not implement: https, non-ASCII (IDN) hosts, IPv6 zones,
// CONNECT, protocol upgrades, and requests with their own Transfer-Encoding or trailers.
func plainEligible(req *http.Request) bool {
	u := req.URL
	if u == nil || u.Scheme != "http" || u.Host == "" || req.Method == http.MethodConnect ||
		len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 {
		return false
	}
	if !plainHost(u.Host) || (req.Host != "" && !plainHost(req.Host)) {
		return false
	}
	_, upgrade := req.Header["Upgrade"]
	return !upgrade
}

// plainHost reports whether a host[:port] is ASCII without a zone, so that it needs neither
// IDNA conversion nor zone removal before it is dialled or sent as the Host header.
func plainHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if h[i] >= 0x80 || h[i] == '%' {
			return false
		}
	}
	return true
}

// plainTransport is a lean HTTP/1.1 RoundTripper for plain http:// requests. It writes the
// request by hand into the connection's buffer, reads the response with http.ReadResponse
// and keeps its own pool of keep-alive connections, all on the caller's goroutine: none of
// http.Transport's two goroutines per connection and channel hand-offs per request.
// Connections are made only through dial (Client.dialContext), so the address policy holds.
type plainTransport struct {
	dial        func(ctx context.Context, network, address string) (net.Conn, error)
	userAgent   string // sent when the request has none
	maxPerHost  int    // open connections per host:port, and so idle ones too
	maxIdle     int    // idle connections in total
	idleTimeout time.Duration
	maxHeader   int64 // bytes of status line and headers per response

	mu       sync.Mutex
	hosts    map[string]*plainHostConns // by host:port; present while it has a connection or a waiter
	idle     idleList                   // every idle connection, most recently used first
	sweeper  *time.Timer                // closes connections idle for too long
	sweeping bool                       // sweeper is armed
}

// plainHostConns is the pool of one host:port.
type plainHostConns struct {
	open    int               // connections dialling, in use or idle: at most maxPerHost
	idle    []*plainConn      // idle connections, the most recently used last (taken LIFO)
	waiters []chan *plainConn // requests waiting for a slot, first come first served
}

func newPlainTransport(dial func(context.Context, string, string) (net.Conn, error), userAgent string, maxPerHost int, maxHeader int64) *plainTransport {
	return &plainTransport{
		dial:        dial,
		userAgent:   userAgent,
		maxPerHost:  maxPerHost,
		maxIdle:     maxIdleConns,
		idleTimeout: idleConnTimeout,
		maxHeader:   maxHeader,
		hosts:       make(map[string]*plainHostConns),
	}
}

// plainRequest is a validated request with everything one attempt needs to write it.
type plainRequest struct {
	req     *http.Request
	ctx     context.Context
	addr    string // host:port to dial
	host    string // Host header
	uri     string // request target
	method  string
	ua      string // User-Agent header; "" sends none
	gzip    bool   // Accept-Encoding: gzip is added here, so the response is decoded here
	close   bool   // the request asks for the connection to be closed
	connHdr bool   // the caller's Connection header already says close

	length   int64         // Content-Length to send; -1 sends none
	buf      []byte        // a body of unknown length, read in full
	streamed bool          // the body has a known length and is copied from the request
	body     io.ReadCloser // the streamed body; nil once sent or closed
}

// RoundTrip sends req on a pooled or new connection. A reused connection that turns out to
// be stale (it fails on write, or ends before any byte of the response) is replaced by a
// freshly dialled one once, if the body can be sent again.
func (t *plainTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var pr plainRequest
	if err := t.prepare(req, &pr); err != nil {
		closeRequestBody(req)
		return nil, err
	}
	defer pr.closeBody()
	if err := pr.ctx.Err(); err != nil {
		return nil, err
	}
	fresh := false
	for {
		pc, err := t.getConn(pr.ctx, pr.addr, fresh)
		if err != nil {
			return nil, err
		}
		resp, stale, err := pc.roundTrip(&pr)
		if err == nil {
			return resp, nil
		}
		if !stale || fresh || !pr.rewind() {
			return nil, err
		}
		fresh = true
	}
}

// prepare checks req the way net/http would before sending anything and works out its
// request line, headers and body into pr.
func (t *plainTransport) prepare(req *http.Request, pr *plainRequest) error {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	} else if !validToken(method) {
		return fmt.Errorf("invalid method %q", method)
	}
	*pr = plainRequest{req: req, ctx: req.Context(), method: method, length: -1}

	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !validHostHeader(host) {
		return fmt.Errorf("invalid Host header %q", host)
	}
	pr.host = host
	pr.addr = req.URL.Host // host:port as net.JoinHostPort would write it
	if req.URL.Port() == "" {
		pr.addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	pr.uri = req.URL.RequestURI()
	if hasControlByte(pr.uri) {
		return fmt.Errorf("request URL %q contains a control character", pr.uri)
	}

	hasUA := false
	acceptEncoding, rangeHdr := "", ""
	for k, vv := range req.Header {
		if !validToken(k) {
			return fmt.Errorf("invalid header field name %q", k)
		}
		for _, v := range vv {
			if !validHeaderValue(v) {
				// The value is left out: it may be a secret.
				return fmt.Errorf("invalid header field value for %q", k)
			}
		}
		if len(vv) == 0 {
			if k == "User-Agent" {
				hasUA = true
			}
			continue
		}
		switch k {
		case "User-Agent":
			hasUA = true
			pr.ua = trimOWS(vv[0])
		case "Accept-Encoding":
			acceptEncoding = vv[0]
		case "Range":
			rangeHdr = vv[0]
		case "Connection":
			pr.connHdr = hasToken(vv, "close")
		}
	}
	if pr.ua == "" {
		if t.userAgent != "" {
			pr.ua = t.userAgent
		} else if !hasUA {
			pr.ua = defaultUserAgent
		}
	}
	pr.close = req.Close || pr.connHdr
	// As net/http: ask for gzip (and decode it) unless the caller chose an encoding or a range.
	pr.gzip = acceptEncoding == "" && rangeHdr == "" && method != http.MethodHead

	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	switch {
	case body == nil && req.ContentLength > 0:
		return fmt.Errorf("request ContentLength is %d but it has no body", req.ContentLength)
	case body != nil && req.ContentLength > 0:
		pr.body, pr.length, pr.streamed = body, req.ContentLength, true
	case body != nil:
		// Unknown length: read it all, so it goes out with a Content-Length (and can be resent).
		b, err := io.ReadAll(body)
		body.Close()
		if err != nil {
			return fmt.Errorf("read request body: %w", err)
		}
		pr.buf, pr.length = b, int64(len(b))
	}
	if pr.length <= 0 {
		// As net/http: these methods announce an empty body, the others send no Content-Length.
		pr.length = -1
		if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
			pr.length = 0
		}
	}
	return nil
}

// rewind makes the body ready to be sent again for a retry; false if it cannot be.
func (pr *plainRequest) rewind() bool {
	if !pr.streamed {
		return true // no body, or one held in memory
	}
	pr.closeBody()
	if pr.req.GetBody == nil {
		return false
	}
	b, err := pr.req.GetBody()
	if err != nil {
		return false
	}
	pr.body = b
	return true
}

// closeBody closes the streamed body if it is still open (a RoundTripper always closes it).
func (pr *plainRequest) closeBody() {
	if pr.body != nil {
		pr.body.Close()
		pr.body = nil
	}
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// plainConn is one connection of the lean path with its buffers. It is owned by one request
// at a time: taken from the pool (or dialled), then given back or closed when its response
// body ends.
type plainConn struct {
	t       *plainTransport
	addr    string
	conn    net.Conn
	cr      connReader
	br      *bufio.Reader
	bw      *bufio.Writer
	reused  bool      // it has carried a request before
	idleAt  time.Time // when it went idle
	prev    *plainConn
	next    *plainConn
	stop    func() bool // stops the current request's context.AfterFunc
	abortFn func()      // pc.abort, bound once
	lr      io.LimitedReader
	src     bodySource
	scratch [20]byte
	peek    peeker
}

// dialConn makes a new connection to addr; the caller holds one of the host's slots, which
// is handed on if the dial fails.
func (t *plainTransport) dialConn(ctx context.Context, addr string) (*plainConn, error) {
	conn, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		t.freeSlot(addr)
		if cerr := ctx.Err(); cerr != nil && !IsBlocked(err) {
			return nil, fmt.Errorf("dial %s: %w", addr, cerr)
		}
		return nil, err
	}
	pc := &plainConn{t: t, addr: addr, conn: conn}
	pc.cr = connReader{conn: conn, left: -1}
	pc.br = bufio.NewReaderSize(&pc.cr, plainBufSize)
	pc.bw = bufio.NewWriterSize(conn, plainBufSize)
	pc.abortFn = pc.abort
	pc.peek.init(conn)
	return pc, nil
}

// abortedDeadline is a deadline long past, set to make blocked reads and writes return at once.
var abortedDeadline = time.Unix(1, 0)

// abort runs when the request's context ends: it unblocks any read or write on the connection.
func (pc *plainConn) abort() { pc.conn.SetDeadline(abortedDeadline) }

// watch applies ctx to the connection: its deadline as the connection's, its cancellation
// through an AfterFunc that aborts the I/O in progress.
func (pc *plainConn) watch(ctx context.Context) {
	if d, ok := ctx.Deadline(); ok {
		pc.conn.SetDeadline(d)
	}
	if ctx.Done() != nil {
		pc.stop = context.AfterFunc(ctx, pc.abortFn)
	}
}

// unwatch stops watching the context; false if its AfterFunc has already started, so the
// connection may carry an aborted deadline.
func (pc *plainConn) unwatch() bool {
	if pc.stop == nil {
		return true
	}
	ok := pc.stop()
	pc.stop = nil
	return ok
}

// close closes the connection and frees its slot.
func (pc *plainConn) close() {
	pc.unwatch()
	pc.conn.Close()
	pc.t.freeSlot(pc.addr)
}

// finish ends an exchange whose response has been read completely: the connection goes back
// to the pool if keep allows and nothing else is in the way, else it is closed.
func (pc *plainConn) finish(keep bool) {
	if !pc.unwatch() || pc.br.Buffered() > 0 { // bytes beyond the response: never parse them as the next one
		keep = false
	}
	if keep && pc.conn.SetDeadline(time.Time{}) != nil {
		keep = false
	}
	if !keep {
		pc.close()
		return
	}
	pc.reused = true
	pc.t.put(pc)
}

// roundTrip sends one request on pc and reads the response headers. stale reports that a
// reused connection failed before the server could have answered, so a retry on a new one
// may succeed. On error the connection is closed.
func (pc *plainConn) roundTrip(pr *plainRequest) (resp *http.Response, stale bool, err error) {
	ctx := pr.ctx
	pc.watch(ctx)
	pc.cr.n = 0
	if err := pc.writeRequest(pr); err != nil {
		pc.close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, false, fmt.Errorf("write request: %w", cerr)
		}
		_, isBody := errors.AsType[*bodyError](err)
		return nil, pc.reused && !isBody, err
	}
	resp, err = pc.readResponse(pr)
	if err != nil {
		noAnswer := pc.cr.n == 0
		pc.close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, false, fmt.Errorf("read response: %w", cerr)
		}
		stale = pc.reused && noAnswer && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET))
		return nil, stale, err
	}

	keep := !pr.close && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if resp.Body == http.NoBody {
		pc.finish(keep)
	} else {
		resp.Body = &plainBody{pc: pc, body: resp.Body, ctx: ctx, keep: keep}
	}
	if pr.gzip && strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		// As net/http: decode what it asked for and drop the headers that describe the encoded form.
		resp.Body = &gzipBody{body: resp.Body}
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		resp.Uncompressed = true
	}
	return resp, false, nil
}

// writeRequest writes the request line, headers and body into the connection's buffer and
// flushes it once (more often only for a body larger than the buffer).
func (pc *plainConn) writeRequest(pr *plainRequest) error {
	w := pc.bw
	w.WriteString(pr.method)
	w.WriteByte(' ')
	w.WriteString(pr.uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(pr.host)
	w.WriteString("\r\n")
	if pr.ua != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(pr.ua)
		w.WriteString("\r\n")
	}
	for k, vv := range pr.req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // written from the request's fields, as net/http does
		}
		for _, v := range vv {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(trimOWS(v))
			w.WriteString("\r\n")
		}
	}
	if pr.req.Close && !pr.connHdr {
		w.WriteString("Connection: close\r\n")
	}
	if pr.gzip {
		w.WriteString("Accept-Encoding: gzip\r\n")
	}
	if pr.length >= 0 {
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(pc.scratch[:0], pr.length, 10))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")

	switch {
	case pr.buf != nil:
		w.Write(pr.buf)
	case pr.body != nil:
		if err := pc.writeBody(pr); err != nil {
			return err
		}
	}
	return w.Flush()
}

// writeBody copies exactly pr.length bytes of the streamed body and closes it; a body that
// is shorter or longer than its ContentLength is an error, as in net/http.
func (pc *plainConn) writeBody(pr *plainRequest) error {
	pc.src = bodySource{r: pr.body}
	pc.lr = io.LimitedReader{R: &pc.src, N: pr.length}
	n, err := io.Copy(pc.bw, &pc.lr)
	if err == nil && n == pr.length {
		if m, _ := pc.src.Read(pc.scratch[:1]); m > 0 {
			err = &bodyError{fmt.Errorf("request body is longer than its ContentLength %d", pr.length)}
		}
	}
	srcErr := pc.src.err
	pr.closeBody()
	pc.src = bodySource{}
	pc.lr = io.LimitedReader{}
	switch {
	case srcErr != nil:
		return &bodyError{fmt.Errorf("read request body: %w", srcErr)}
	case err != nil:
		return err
	case n < pr.length:
		return &bodyError{fmt.Errorf("request body has %d bytes, its ContentLength says %d", n, pr.length)}
	}
	return nil
}

// readResponse reads the response headers, skipping 1xx informational responses (not 101,
// which is final). The status lines and headers of all of them together may take up to
// maxHeader bytes; the body that follows is not limited.
func (pc *plainConn) readResponse(pr *plainRequest) (*http.Response, error) {
	pc.cr.left = pc.t.maxHeader
	defer func() { pc.cr.left = -1 }()
	for {
		resp, err := http.ReadResponse(pc.br, pr.req)
		if err != nil {
			if pc.cr.exceeded {
				pc.cr.exceeded = false
				return nil, fmt.Errorf("server response headers exceeded %d bytes; aborted", pc.t.maxHeader)
			}
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode <= 199 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		return resp, nil
	}
}

// connReader sits under the connection's bufio.Reader: it counts the bytes read (so a retry
// can tell that nothing of the response arrived) and, while left >= 0, stops reading after
// left more bytes, which bounds the memory a response's headers can take.
type connReader struct {
	conn     net.Conn
	n        int64 // bytes read since the request was written
	left     int64 // bytes still allowed; -1: no limit
	exceeded bool  // the limit was hit
}

var errHeaderLimit = errors.New("response header limit reached")

func (r *connReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		r.exceeded = true
		return 0, errHeaderLimit
	}
	if r.left > 0 && int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.conn.Read(p)
	r.n += int64(n)
	if r.left > 0 {
		r.left -= int64(n)
	}
	return n, err
}

// bodySource records the error of the request body it reads, so a failure of the body is
// told apart from a failure of the connection.
type bodySource struct {
	r   io.Reader
	err error
}

func (s *bodySource) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// bodyError is a request body that could not be sent as declared: the caller's fault, not
// the connection's, so it is never retried.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// plainBody is a lean-path response body. At its clean end it hands the connection back to
// the pool (when the exchange allows keep-alive); closed before that, it closes the
// connection instead of draining it, so an oversized or endless body costs nothing more.
// It is not safe for concurrent use.
type plainBody struct {
	pc   *plainConn    // nil once the connection is released or closed
	body io.ReadCloser // from http.ReadResponse; reads from pc.br
	ctx  context.Context
	keep bool
	err  error // returned by every Read after the end, a failure or Close
}

func (b *plainBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.body.Read(p)
	if err == nil {
		return n, nil
	}
	pc := b.pc
	b.pc = nil
	if err == io.EOF {
		pc.finish(b.keep)
		b.err = io.EOF
		return n, io.EOF
	}
	pc.close()
	if cerr := b.ctx.Err(); cerr != nil {
		err = cerr // the abort's deadline error would read as a timeout even for a cancel
	}
	b.err = err
	return n, err
}

func (b *plainBody) Close() error {
	if b.pc != nil {
		b.pc.close()
		b.pc = nil
	}
	if b.err == nil || b.err == io.EOF {
		b.err = http.ErrBodyReadAfterClose
	}
	return nil
}

// gzipBody decodes a gzip response body that the lean path asked for, as net/http does.
type gzipBody struct {
	body io.ReadCloser
	zr   *gzip.Reader
	err  error // from starting the decoder
}

func (g *gzipBody) Read(p []byte) (int, error) {
	if g.zr == nil {
		if g.err == nil {
			g.zr, g.err = gzip.NewReader(g.body)
		}
		if g.err != nil {
			return 0, g.err
		}
	}
	return g.zr.Read(p)
}

func (g *gzipBody) Close() error { return g.body.Close() }

// getConn returns a connection to addr: the most recently used idle one that is still
// usable, else a new one if the host is under maxPerHost, else the first one that frees up
// (waiting no longer than ctx allows). fresh skips the idle ones.
func (t *plainTransport) getConn(ctx context.Context, addr string, fresh bool) (*plainConn, error) {
	for {
		pc, wait, expired := t.take(addr, fresh)
		for _, old := range expired {
			old.conn.Close()
		}
		if wait != nil {
			select {
			case pc = <-wait:
			case <-ctx.Done():
				t.cancelWait(addr, wait)
				return nil, fmt.Errorf("wait for a connection to %s: %w", addr, ctx.Err())
			}
		}
		if pc == nil {
			return t.dialConn(ctx, addr)
		}
		if pc.peek.isAlive() {
			return pc, nil
		}
		pc.close() // closed by the server while idle, or it sent bytes nobody asked for
	}
}

// take does getConn's work under the lock. It returns an idle connection, or nil and no
// wait channel for a slot to dial in, or a channel that will deliver either. expired are
// idle connections past idleTimeout, already removed, for the caller to close.
func (t *plainTransport) take(addr string, fresh bool) (pc *plainConn, wait chan *plainConn, expired []*plainConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hosts[addr]
	if h == nil {
		h = &plainHostConns{}
		t.hosts[addr] = h
	}
	if n := len(h.idle); n > 0 {
		if time.Since(h.idle[n-1].idleAt) > t.idleTimeout {
			// LIFO: the rest are older still.
			expired = slices.Clone(h.idle)
			for _, old := range expired {
				t.idle.remove(old)
			}
			h.open -= len(h.idle)
			clear(h.idle) // the backing array must not keep closed connections and their buffers alive
			h.idle = h.idle[:0]
		} else if !fresh {
			pc = h.idle[n-1]
			h.idle[n-1] = nil
			h.idle = h.idle[:n-1]
			t.idle.remove(pc)
			return pc, nil, expired
		} else if h.open >= t.maxPerHost {
			// A retry must dial: make room by closing the oldest idle one.
			old := h.idle[0]
			h.idle = slices.Delete(h.idle, 0, 1)
			t.idle.remove(old)
			h.open--
			expired = append(expired, old)
		}
	}
	if h.open < t.maxPerHost {
		h.open++
		return nil, nil, expired
	}
	wait = make(chan *plainConn, 1)
	h.waiters = append(h.waiters, wait)
	return nil, wait, expired
}

// cancelWait withdraws a waiter whose context ended. If a connection or a slot was handed
// to it in the meantime, that goes on to the next waiter or back to the pool.
func (t *plainTransport) cancelWait(addr string, wait chan *plainConn) {
	t.mu.Lock()
	h := t.hosts[addr]
	if i := slices.Index(h.waiters, wait); i >= 0 {
		h.waiters = slices.Delete(h.waiters, i, i+1)
		t.dropHostIfUnused(addr, h)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	if pc := <-wait; pc != nil {
		t.put(pc)
	} else {
		t.freeSlot(addr)
	}
}

// freeSlot gives up one of addr's connections (closed, or a failed dial): the first
// waiter may dial in its place.
func (t *plainTransport) freeSlot(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hosts[addr]
	if len(h.waiters) > 0 {
		w := h.waiters[0]
		h.waiters = slices.Delete(h.waiters, 0, 1)
		w <- nil
		return
	}
	h.open--
	t.dropHostIfUnused(addr, h)
}

// dropHostIfUnused forgets a host with no connection and no waiter, so the map does not
// grow with every host ever called. t.mu is held.
func (t *plainTransport) dropHostIfUnused(addr string, h *plainHostConns) {
	if h.open == 0 && len(h.waiters) == 0 {
		delete(t.hosts, addr)
	}
}

// put hands a connection whose exchange ended cleanly to the first waiter for its host, or
// makes it idle. Past maxIdle in total, the least recently used idle connection is closed.
func (t *plainTransport) put(pc *plainConn) {
	t.mu.Lock()
	h := t.hosts[pc.addr]
	if len(h.waiters) > 0 {
		w := h.waiters[0]
		h.waiters = slices.Delete(h.waiters, 0, 1)
		t.mu.Unlock()
		w <- pc
		return
	}
	pc.idleAt = time.Now()
	h.idle = append(h.idle, pc)
	t.idle.pushFront(pc)
	var evicted *plainConn
	if t.idle.n > t.maxIdle {
		evicted = t.idle.back
		t.removeIdle(evicted)
	}
	if !t.sweeping {
		t.sweeping = true
		if t.sweeper == nil {
			t.sweeper = time.AfterFunc(t.idleTimeout, t.sweep)
		} else {
			t.sweeper.Reset(t.idleTimeout)
		}
	}
	t.mu.Unlock()
	if evicted != nil {
		evicted.conn.Close()
	}
}

// removeIdle takes an idle connection out of the pool for closing. t.mu is held.
func (t *plainTransport) removeIdle(pc *plainConn) {
	t.idle.remove(pc)
	h := t.hosts[pc.addr]
	if i := slices.Index(h.idle, pc); i >= 0 {
		h.idle = slices.Delete(h.idle, i, i+1)
	}
	h.open--
	t.dropHostIfUnused(pc.addr, h) // idle connections mean no waiters
}

// sweep closes the connections idle for longer than idleTimeout, so a host called once does
// not keep a socket open for ever, and re-arms itself for the next one to expire.
func (t *plainTransport) sweep() {
	t.mu.Lock()
	var expired []*plainConn
	now := time.Now()
	for pc := t.idle.back; pc != nil && now.Sub(pc.idleAt) >= t.idleTimeout; pc = t.idle.back {
		t.removeIdle(pc)
		expired = append(expired, pc)
	}
	if t.idle.back != nil {
		t.sweeper.Reset(t.idle.back.idleAt.Add(t.idleTimeout).Sub(now))
	} else {
		t.sweeping = false
	}
	t.mu.Unlock()
	for _, pc := range expired {
		pc.conn.Close()
	}
}

// CloseIdleConnections closes every idle connection of the lean path.
func (t *plainTransport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*plainConn
	for pc := t.idle.back; pc != nil; pc = t.idle.back {
		t.removeIdle(pc)
		idle = append(idle, pc)
	}
	t.mu.Unlock()
	for _, pc := range idle {
		pc.conn.Close()
	}
}

// idleList links the idle connections of all hosts, the most recently used at the front.
type idleList struct {
	front, back *plainConn
	n           int
}

func (l *idleList) pushFront(pc *plainConn) {
	pc.prev, pc.next = nil, l.front
	if l.front != nil {
		l.front.prev = pc
	} else {
		l.back = pc
	}
	l.front = pc
	l.n++
}

func (l *idleList) remove(pc *plainConn) {
	if pc.prev != nil {
		pc.prev.next = pc.next
	} else {
		l.front = pc.next
	}
	if pc.next != nil {
		pc.next.prev = pc.prev
	} else {
		l.back = pc.prev
	}
	pc.prev, pc.next = nil, nil
	l.n--
}

// tokenBytes marks the bytes of an HTTP token (RFC 9110 §5.6.2), which header names and
// methods are made of.
var tokenBytes = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~") {
		t[c] = true
	}
	return t
}()

// hostBytes marks the bytes allowed in a Host header: those of a registered name, an IP
// literal in brackets and a port.
var hostBytes = func() (t [256]bool) {
	t = tokenBytes
	for _, c := range []byte("^`|#") {
		t[c] = false
	}
	for _, c := range []byte("()+,;=:[]") {
		t[c] = true
	}
	return t
}()

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenBytes[s[i]] {
			return false
		}
	}
	return true
}

// validHeaderValue refuses every control byte but tab: CR and LF above all, which would let
// a value start a header (or a request) of its own.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func hasControlByte(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

func validHostHeader(h string) bool {
	for i := 0; i < len(h); i++ {
		if !hostBytes[h[i]] {
			return false
		}
	}
	return true
}

// trimOWS trims the spaces and tabs around a header value.
func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

// hasToken reports whether a comma-separated header (Connection) lists token, in any case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(trimOWS(part), token) {
				return true
			}
		}
	}
	return false
}
