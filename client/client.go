// Package client is the Go client of the asyncqueue HTTP API, plus the helpers a
// receiver needs to verify the signatures asyncqueue puts on callbacks and webhooks.
//
// Create a task and wait for its outcome:
//
//	c := client.New("http://localhost:8080", os.Getenv("ASYNCQUEUE_API_KEY"))
//	created, err := c.CreateTask(ctx, client.CreateTaskRequest{
//		TargetURL: "https://api.example.com/render",
//		Body:      `{"doc": 42}`,
//		Delay:     10 * time.Second,
//	})
//	if err != nil {
//		return err
//	}
//	task, err := c.AwaitTask(ctx, created.Task.ID) // long polls until completed, failed, timeout or cancelled
//
// Errors the API answers are *Error values; test them with IsNotFound, IsConflict and
// friends or with errors.Is(err, ErrNotFound).
//
// Verify a webhook in a receiver:
//
//	body, _ := io.ReadAll(r.Body)
//	err := client.VerifySignature(secret, r.Header.Get("X-AsyncQueue-Signature"), body, 5*time.Minute)
//
// or wrap the handler: client.VerifyHandler(secret, handler).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultUserAgent is sent unless WithUserAgent sets another.
const DefaultUserAgent = "asyncqueue-go-client"

// maxResponse bounds how much of a response the client reads.
const maxResponse = 64 << 20

// Client calls one asyncqueue server. It is safe for concurrent use.
type Client struct {
	base      string
	key       string
	hc        *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through hc. The default client has no
// overall timeout (long polls last up to 25 s): bound calls with their context instead.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the server at baseURL (such as "http://localhost:8080") that
// authenticates with apiKey. The key is not sent on the routes that take none (signals,
// heartbeats, providers).
func New(baseURL, apiKey string, opts ...Option) *Client {
	c := &Client{
		base:      strings.TrimRight(baseURL, "/"),
		key:       apiKey,
		hc:        &http.Client{},
		userAgent: DefaultUserAgent,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the server address the client talks to.
func (c *Client) BaseURL() string { return c.base }

// Request is one API call for Do.
type Request struct {
	Method string
	Path   string // from the root, with any query: "/v1/tasks?limit=5"
	Header http.Header
	// Body is sent as JSON: []byte and json.RawMessage as they are, anything else marshalled.
	// Nil sends no body.
	Body any
	// NoAuth leaves the API key out (the token routes need none).
	NoAuth bool
}

// Do sends r and decodes a 2xx JSON answer into out, unless out is nil. Pass a
// *json.RawMessage to keep the answer exactly as the server wrote it. Answers outside 2xx
// are returned as *Error; the response (with its body already read and closed) is returned
// whenever one arrived, so callers can read its headers.
func (c *Client) Do(ctx context.Context, r *Request, out any) (*http.Response, error) {
	var body io.Reader
	switch b := r.Body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	case json.RawMessage:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, fmt.Errorf("asyncqueue: encode request: %w", err)
		}
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, c.base+r.Path, body)
	if err != nil {
		return nil, fmt.Errorf("asyncqueue: %w", redactErr(err))
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if !r.NoAuth && c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, redactErr(err)
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	res.Body.Close()
	if err != nil {
		return res, fmt.Errorf("asyncqueue: read response: %w", err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return res, newError(res, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return res, fmt.Errorf("asyncqueue: decode response (HTTP %d): %w", res.StatusCode, err)
		}
	}
	return res, nil
}

// Error is an answer of the API outside 2xx: its status and the message of its
// {"error": "…"} body.
type Error struct {
	StatusCode int
	Message    string
	// RetryAfter is the server's Retry-After (429 answers), or 0.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.StatusCode)
}

// Status classes for errors.Is: errors.Is(err, client.ErrNotFound) holds for every
// *Error with status 404, and so on.
var (
	ErrNotFound     = errors.New("asyncqueue: not found")                           // 404
	ErrConflict     = errors.New("asyncqueue: conflict with the task's state")      // 409
	ErrUnauthorized = errors.New("asyncqueue: API key missing, invalid or revoked") // 401
	ErrForbidden    = errors.New("asyncqueue: access denied")                       // 403
	ErrInvalid      = errors.New("asyncqueue: request refused as invalid")          // 400, 413, 422
	ErrRateLimited  = errors.New("asyncqueue: rate limited")                        // 429
	ErrServer       = errors.New("asyncqueue: server error")                        // 5xx
)

// Is reports whether target is the status class of e (see ErrNotFound and the others).
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrInvalid:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusRequestEntityTooLarge ||
			e.StatusCode == http.StatusUnprocessableEntity
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrServer:
		return e.StatusCode >= 500
	}
	return false
}

// IsNotFound reports whether err is a 404 answer (unknown task, token or route).
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports whether err is a 409 answer: the task is in the wrong state, or an
// Idempotency-Key was reused with another body.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsUnauthorized reports whether err is a 401 (no or bad API key) or 403 (another team's
// resource) answer.
func IsUnauthorized(err error) bool {
	return errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden)
}

// IsInvalid reports whether err is a 400, 413 or 422 answer: the request must be fixed.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }

// IsRateLimited reports whether err is a 429 answer; see Error.RetryAfter.
func IsRateLimited(err error) bool { return errors.Is(err, ErrRateLimited) }

// StatusCode returns the HTTP status of an *Error in err's chain, or 0.
func StatusCode(err error) int {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.StatusCode
	}
	return 0
}

func newError(res *http.Response, raw []byte) *Error {
	e := &Error{StatusCode: res.StatusCode}
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		// Not the API's own answer (a proxy's error page, say): keep a little of it.
		e.Message = http.StatusText(res.StatusCode)
		if s := strings.TrimSpace(string(raw)); s != "" {
			if len(s) > 200 {
				s = s[:200] + "…"
			}
			e.Message += ": " + s
		}
	}
	if s := res.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	return e
}

// redactErr keeps signal tokens and callback ids out of the URL an error names (and so
// out of logs).
func redactErr(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		ue.URL = redactURL(ue.URL)
	}
	return err
}

// redactURL hides the credentials that travel in URL paths: signal tokens and callback ids.
func redactURL(u string) string {
	for _, p := range []string{"/v1/signals/", "/v1/callbacks/"} {
		if i := strings.Index(u, p); i >= 0 {
			rest := u[i+len(p):]
			tail := ""
			if j := strings.IndexAny(rest, "/?"); j >= 0 {
				tail = rest[j:]
			}
			return u[:i+len(p)] + "[REDACTED]" + tail
		}
	}
	return u
}
