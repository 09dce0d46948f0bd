// Package outbound is the HTTP client that calls user-supplied URLs, with the address policy that keeps it off private networks.
package outbound

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"
)

// Defaults for the zero values in Options.
const (
	defaultMaxRedirects   = 5
	defaultMaxBodyBytes   = 64 << 10
	defaultMaxHeaderBytes = 64 << 10
	defaultDialTimeout    = 10 * time.Second
	defaultMaxIdlePerHost = 1024

	tlsHandshakeTimeout = 10 * time.Second
	idleConnTimeout     = 90 * time.Second
	keepAlive           = 30 * time.Second
	// tlsSessions is how many TLS sessions are kept for resumption, one per host.
	tlsSessions = 4096
	// minDialAttempt is the least time one address gets when the dial deadline is
	// shared among several resolved addresses (the figure net.Dialer uses).
	minDialAttempt = 2 * time.Second
)

// Options for New; zero values take the documented defaults.
type Options struct {
	Policy         *Policy       // nil: public unicast only
	UserAgent      string        // set on every request if the request has none
	MaxRedirects   int           // default 5; negative: never follow, return the 3xx response
	MaxBodyBytes   int64         // stored body cap, default 64 << 10
	MaxHeaderBytes int64         // response header cap, default 64 << 10
	DialTimeout    time.Duration // DNS lookup plus connect, default 10s
	Resolver       Resolver      // default net.DefaultResolver; injectable for DNS-rebinding tests
	// MaxIdleConnsPerHost is how many keep-alive connections per host are kept for reuse
	// (default 1024). Connections in use are not capped here: the scheduler bounds the
	// calls in flight, so a call never waits for a connection after its deadline started.
	MaxIdleConnsPerHost int
}

// Resolver looks up the addresses of a host; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Client sends requests to user-supplied URLs through one net/http Transport. It is safe
// for concurrent use.
type Client struct {
	policy       *Policy
	resolver     Resolver
	userAgent    string
	maxRedirects int
	maxBody      int64
	dialTimeout  time.Duration
	dialer       *net.Dialer
	turns        dialTurns
	transport    *http.Transport
	http         *http.Client
}

// Response is a completed exchange with the body already read (up to the cap) and closed.
type Response struct {
	StatusCode int
	Status     string
	Header     http.Header
	Body       []byte
	Truncated  bool          // the body was longer than MaxBodyBytes and was cut
	Duration   time.Duration // from sending the request to the end of the stored body
}

// New returns a Client. The policy is copied, so later changes to o.Policy have no effect.
func New(o Options) *Client {
	p := &Policy{}
	if o.Policy != nil {
		p.AllowPrivate = o.Policy.AllowPrivate
		p.Allow = slices.Clone(o.Policy.Allow)
	}
	var resolver Resolver = net.DefaultResolver
	if o.Resolver != nil {
		resolver = o.Resolver
	}
	idlePerHost := cmp.Or(max(o.MaxIdleConnsPerHost, 0), defaultMaxIdlePerHost)
	maxHeader := cmp.Or(max(o.MaxHeaderBytes, 0), defaultMaxHeaderBytes)
	c := &Client{
		policy:       p,
		resolver:     resolver,
		userAgent:    o.UserAgent,
		maxRedirects: cmp.Or(o.MaxRedirects, defaultMaxRedirects),
		maxBody:      cmp.Or(max(o.MaxBodyBytes, 0), defaultMaxBodyBytes),
		dialTimeout:  cmp.Or(max(o.DialTimeout, 0), defaultDialTimeout),
		dialer:       &net.Dialer{KeepAlive: keepAlive, ControlContext: p.control},
	}
	c.transport = &http.Transport{
		Proxy:                  nil, // never from the environment: a proxy would hide the real target from the policy
		DialContext:            c.dialContext,
		DialTLSContext:         c.dialTLS,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: maxHeader,
		MaxIdleConnsPerHost:    idlePerHost,
		MaxIdleConns:           0, // bounded per host, and by the idle timeout
		IdleConnTimeout:        idleConnTimeout,
		// Thousands of calls to one https host reuse connections; a new connection
		// resumes its host's TLS session instead of a full handshake. dialTLS uses this
		// config, to which net/http adds HTTP/2 when it sets itself up.
		TLSClientConfig: &tls.Config{ClientSessionCache: tls.NewLRUClientSessionCache(tlsSessions)},
		// Over HTTP/2, nothing goes into HPACK's table of headers already sent: a call's
		// task id, signature and time are new on every call, so indexing them only
		// evicted the entries before, costing both ends CPU per call for no bytes saved.
		// 1 is the least net/http takes (0 means its 4 KiB default).
		HTTP2: &http.HTTP2Config{MaxEncoderHeaderTableSize: 1},
	}
	c.http = &http.Client{Transport: c.transport, CheckRedirect: c.checkRedirect}
	return c
}

func (c *Client) checkRedirect(_ *http.Request, via []*http.Request) error {
	if c.maxRedirects < 0 {
		return http.ErrUseLastResponse
	}
	// via holds the requests already sent, so len(via) is the number of this redirect.
	if len(via) > c.maxRedirects {
		return fmt.Errorf("stopped after %d redirects", c.maxRedirects)
	}
	return nil
}

// Do sends req with timeout (none when ≤ 0) counted from when it is sent: when it has a
// connection, or starts dialing one; waiting for a dial's turn (see dialTurns) does not
// count. The request's own context still applies whole. Redirects are followed up to
// MaxRedirects, each hop checked again by the dial-time policy (303 → GET, 301/302 POST →
// GET, 307/308 keep method and body, as net/http does), all within the one timeout. It reads
// at most MaxBodyBytes of the body, then stops reading, and closes it. A blocked address
// gives an error that errors.As unwraps to *BlockedError; a timeout, one IsTimeout knows.
// A request without a User-Agent gets the client's (redirects carry it on).
func (c *Client) Do(req *http.Request, timeout time.Duration) (*Response, error) {
	if c.userAgent != "" && req.Header.Get("User-Agent") == "" {
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Header.Set("User-Agent", c.userAgent)
	}
	s, ctx := newSend(req.Context(), timeout, &c.turns)
	defer s.end()
	res, err := c.exchange(req.WithContext(ctx))
	if err != nil && s.timedOut(ctx) && !errors.Is(err, errSendTimeout) {
		// HTTP/2 reports the context's error, not its cause: say it was the timeout.
		err = fmt.Errorf("%w (%w)", errSendTimeout, err)
	}
	if res != nil {
		res.Duration = time.Since(s.sentAt())
	}
	return res, err
}

func (c *Client) exchange(req *http.Request) (*Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close() // unread remainder: the connection is dropped instead of drained
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	truncated := int64(len(body)) > c.maxBody
	if truncated {
		body = body[:c.maxBody]
	}
	return &Response{
		StatusCode: resp.StatusCode,
		Status:     resp.Status,
		Header:     resp.Header,
		Body:       body,
		Truncated:  truncated,
	}, nil
}

// CloseIdle closes idle keep-alive connections.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

// dialContext opens a plain connection, and starts the timeout of the send it is for. For
// plain http it takes no turn (see dialTurns): a TCP connect costs little, and waiting for
// a freed connection instead made a burst later, not cheaper.
func (c *Client) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if s := sendFrom(ctx); s != nil {
		s.start()
	}
	return c.dialAllowed(ctx, network, address)
}

// dialTLS opens a TLS connection when its turn comes; the turn lasts until the handshake
// is done, since the handshake is what a burst of new connections costs.
func (c *Client) dialTLS(ctx context.Context, network, address string) (net.Conn, error) {
	done, err := c.turns.wait(ctx, address)
	if err != nil {
		return nil, err
	}
	defer done()
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	conn, err := c.dialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	cfg := c.transport.TLSClientConfig.Clone()
	cfg.ServerName = host
	tc := tls.Client(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// dialAllowed resolves the host itself, drops every address the policy refuses and
// dials the rest by IP literal, so a resolver cannot answer differently between check and connect.
func (c *Client) dialAllowed(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.dialTimeout)
	defer cancel()

	var candidates []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		candidates = []netip.Addr{a}
	} else {
		candidates, err = c.resolver.LookupNetIP(ctx, ipNetwork(network), host)
		if err != nil {
			return nil, err
		}
	}

	var allowed []netip.Addr
	var blocked *BlockedError
	for _, a := range candidates {
		a = a.Unmap()
		if (network == "tcp4" && !a.Is4()) || (network == "tcp6" && !a.Is6()) {
			continue
		}
		if err := c.policy.CheckAddr(a); err != nil {
			if blocked == nil {
				errors.As(err, &blocked)
			}
			continue
		}
		allowed = append(allowed, a)
	}
	if len(allowed) == 0 {
		if blocked != nil {
			blocked.Host = host
			return nil, blocked
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}

	var firstErr error
	for i, a := range allowed {
		attemptCtx, attemptCancel := c.attemptContext(ctx, len(allowed)-i)
		conn, err := c.dialer.DialContext(attemptCtx, network, net.JoinHostPort(a.String(), port))
		attemptCancel()
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// attemptContext shares what is left of the dial deadline among the remaining addresses,
// giving each at least minDialAttempt, so one black-holed address cannot use it all.
func (c *Client) attemptContext(ctx context.Context, remaining int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || remaining <= 1 {
		return context.WithCancel(ctx)
	}
	share := time.Until(deadline) / time.Duration(remaining)
	return context.WithTimeout(ctx, max(share, minDialAttempt))
}

func ipNetwork(network string) string {
	switch network {
	case "tcp4":
		return "ip4"
	case "tcp6":
		return "ip6"
	}
	return "ip"
}
