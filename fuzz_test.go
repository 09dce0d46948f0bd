package main

// Fuzz targets for the inbound parsers of the HTTP API (issue 6, item 6). Their seeds (the
// f.Add calls below and any file under testdata/fuzz/<Name>/) run as ordinary tests; to fuzz:
//
//	go test -run '^$' -fuzz '^FuzzCreateTaskJSON$' -fuzztime 2m .
//
// The other targets of the project live beside the code they test: FuzzCheckURL and
// FuzzCheckAddr (internal/outbound), FuzzVerify (internal/signing: X-AsyncQueue-Signature
// and Standard Webhooks headers), FuzzValidAPIKey and FuzzValidToken (internal/keys),
// FuzzTemplatePath (internal/providers).

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// fuzzApp is an App with just what newTask needs: the default outbound policy (loopback and
// private literals are refused, as in production) and a vault key for callback ids.
func fuzzApp() *App {
	return &App{
		out:       outbound.New(outbound.Options{Policy: &outbound.Policy{}}),
		publicURL: "https://queue.example.com",
		vaultKey:  bytes.Repeat([]byte{7}, 32),
		sched:     newScheduler(DefaultMaxInFlight, DefaultFlowParallelism, nil), // taskJSON asks it how a task shows
	}
}

// fuzzWantClientError fails unless err is an *Error with a 4xx status.
func fuzzWantClientError(t *testing.T, what string, in []byte, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s(%q): error %T %v, want an *Error with a 4xx status", what, in, err, err)
	}
	if e.Status < 400 || e.Status > 499 {
		t.Fatalf("%s(%q): status %d (%s), want 4xx", what, in, e.Status, e.Message)
	}
	if e.Message == "" {
		t.Fatalf("%s(%q): %d with an empty message", what, in, e.Status)
	}
}

// FuzzCreateTaskJSON feeds arbitrary bodies to the create path (decodeBytes + newTask):
// it never panics, every refusal is a 4xx *Error, and whatever is accepted is within the
// limits of SPEC §3.1.
func FuzzCreateTaskJSON(f *testing.F) {
	for _, s := range []string{
		``,
		`{}`,
		`null`,
		`[]`,
		`{"targetUrl": "https://example.com/hook"}`,
		`{"callbackUrl": "https://example.com/x", "body": {"a": [1, 2, {"b": null}]}}`,
		`{"targetUrl": "https://example.com/hook", "method": "put", "headers": {"X-A": "1", "Authorization": "tok_abc"},
		  "body": "hello", "timeout": 12.5, "delay": 3, "maxRetries": 10, "retryBackoff": "linear", "priority": 10,
		  "onCompleteUrl": "https://example.com/done", "waitForSignal": true, "maxWaitTime": 3600, "heartbeatTimeout": 60}`,
		`{"targetUrl": "https://example.com", "delayUntil": "2030-01-15T10:30:00.123Z"}`,
		`{"targetUrl": "https://example.com", "delayUntil": "2001-01-01T00:00:00Z"}`,
		`{"targetUrl": "https://api.replicate.com/v1/predictions", "provider": "replicate"}`,
		`{"targetUrl": "https://api.example.com/jobs", "pollConfig": {"urlTemplate": "https://api.example.com/jobs/{startResult.body.id}",
		  "interval": 5, "statusPath": "state", "doneValues": ["done"], "failValues": ["error"], "resultPath": "output.url",
		  "errorPath": "message", "forwardAuth": true, "maxDuration": 1800}}`,
		`{"targetUrl": "https://api.example.com/run", "body": "{\"webhook\": \"{asyncqueue_callback_url}\"}", "maxWaitTime": 60}`,
		`{"targetUrl": "https://api.example.com/run/{asyncqueue_callback_url}"}`,
		`{"targetUrl": "http://127.0.0.1:8080/"}`,
		`{"targetUrl": "http://[::ffff:169.254.169.254]/"}`,
		`{"targetUrl": "http://0x7f.1/"}`,
		`{"targetUrl": "https://example.com", "timeout": 1e400}`,
		`{"targetUrl": "https://example.com", "priority": 1000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000}`,
		`{"targetUrl": "https://example.com", "maxRetries": -0.0, "delay": 1e-400}`,
		`{"targetUrl": "https://example.com", "maxWaitTime": NaN}`,
		`{"targetUrl": "https://example.com", "headers": {"X-A": "a\r\nX-B: b"}}`,
		`{"targetUrl": "https://example.com", "headers": {"webhook-signature": "v1,forged"}}`,
		`{"targetURL": "https://example.com"}`,
		`{"targetUrl": "https://example.com"} {}`,
		`{"targetUrl": "https://example.com", "body": [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}`,
		`{"targetUrl": "https://example.com", "provider": 7}`,
		`{"targetUrl": "https://example.com", "provider": "replicate", "waitForSignal": true}`,
		`{"targetUrl": "https://example.com", "pollConfig": "x"}`,
		`{"targetUrl": "https://example.com", "pollConfig": {"interval": 1e400}}`,
		`{"targetUrl": "https://例え.jp/パス", "method": " get "}`,
		"{\"targetUrl\": \"https://example.com\", \"body\": \"\xff\xfe\"}",
		strings.Repeat("[", 20000),
	} {
		f.Add([]byte(s))
	}
	a := fuzzApp()
	now := time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req createRequest
		err := decodeBytes(body, &req)
		if err != nil {
			fuzzWantClientError(t, "decodeBytes", body, err)
			return
		}
		task, err := a.newTask(&req, "team", now)
		if err != nil {
			fuzzWantClientError(t, "newTask", body, err)
			return
		}
		fuzzCheckTask(t, body, task, now)
		// What the API would answer must encode.
		if _, err := json.Marshal(map[string]any{"task": a.taskJSON(task)}); err != nil {
			t.Fatalf("%q: the accepted task does not encode: %v", body, err)
		}
	})
}

// fuzzCheckTask asserts the limits of SPEC §3.1 on a task newTask accepted.
func fuzzCheckTask(t *testing.T, body []byte, task *store.Task, now time.Time) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("accepted %q: "+format, append([]any{body}, args...)...)
	}
	u, err := url.Parse(task.TargetURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || len(task.TargetURL) > MaxURLLength {
		fail("targetUrl %q", task.TargetURL)
	}
	if task.OnCompleteURL != nil {
		if u, err := url.Parse(*task.OnCompleteURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			fail("onCompleteUrl %q", *task.OnCompleteURL)
		}
	}
	if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, task.Method) {
		fail("method %q", task.Method)
	}
	if task.TimeoutMS < 1000 || task.TimeoutMS > MaxTimeout.Milliseconds() {
		fail("timeout %d ms", task.TimeoutMS)
	}
	if task.MaxRetries < 0 || task.MaxRetries > 10 || task.Priority < 1 || task.Priority > 10 {
		fail("maxRetries %d priority %d", task.MaxRetries, task.Priority)
	}
	if task.MaxWaitMS < 1000 || task.MaxWaitMS > MaxWaitTime.Milliseconds() {
		fail("maxWaitTime %d ms", task.MaxWaitMS)
	}
	if task.HeartbeatTimeoutMS != nil && (!task.WaitForSignal || *task.HeartbeatTimeoutMS < 1000) {
		fail("heartbeatTimeout %d ms (waitForSignal %v)", *task.HeartbeatTimeoutMS, task.WaitForSignal)
	}
	if task.RetryBackoff != "exponential" && task.RetryBackoff != "linear" {
		fail("retryBackoff %q", task.RetryBackoff)
	}
	if task.DueAt == nil {
		fail("no due time")
	}
	switch task.Status {
	case store.StatusPending:
		if *task.DueAt != now.UnixMilli() {
			fail("pending but due at %d", *task.DueAt)
		}
	case store.StatusDelayed:
		if *task.DueAt <= now.UnixMilli() || *task.DueAt > now.Add(MaxWaitTime).UnixMilli() {
			fail("delayed until %d", *task.DueAt)
		}
	default:
		fail("status %q", task.Status)
	}
	var hdrs map[string]string
	if err := json.Unmarshal([]byte(task.Headers), &hdrs); err != nil || len(hdrs) > MaxHeaders {
		fail("headers %q", task.Headers)
	}
	for k, v := range hdrs {
		if _, err := validHeaders(map[string]string{k: v}); err != nil || strings.ContainsAny(v, "\r\n\x00") {
			fail("header %q: %q", k, v)
		}
	}
	if task.PollConfig != nil && (task.WaitForSignal || task.CallbackNonce != nil || !json.Valid([]byte(*task.PollConfig))) {
		fail("pollConfig %v with waitForSignal %v callback %v", *task.PollConfig, task.WaitForSignal, task.CallbackNonce != nil)
	}
	if usesCallback(task) != (task.CallbackNonce != nil) {
		fail("callback placeholder %v but callback nonce %v", usesCallback(task), task.CallbackNonce != nil)
	}
}

// FuzzSignalBody feeds arbitrary bodies to parseSignal, the parser of POST /v1/signals/{token}
// and /v1/tasks/{id}/signal: it never panics, every refusal is a 4xx *Error, and the canonical
// form it returns (which a retried signal is compared by) is valid JSON, consistent with the
// parsed signal and a fixed point: parsing it again gives it back.
func FuzzSignalBody(f *testing.F) {
	for _, s := range []string{
		``,
		`{}`,
		`null`,
		`{"status": "completed"}`,
		`{"status": "completed", "result": {"downloadUrl": "https://cdn.example.com/output.pdf", "n": [1, 2.5e3, true, null]}}`,
		`{"status": "completed", "result": null}`,
		`{"status": "completed", "result": "<script>&"}`,
		`{"status": "completed", "result": 1e400}`,
		`{"status": "completed", "result": 123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890}`,
		`{"status": "completed", "error": "ignored"}`,
		`{"status": "failed", "error": "Payment was declined"}`,
		`{"status": "failed", "error": ""}`,
		`{"status": "failed", "result": {"a": 1}}`,
		`{"status": "failed", "error": 7}`,
		`{"status": "cancelled"}`,
		`{"status": "COMPLETED"}`,
		`{"Status": "completed"}`,
		`{"status": "completed", "extra": 1}`,
		`{"status": "completed"} {"status": "failed"}`,
		`{"status": "completed", "status": "failed"}`,
		`{"status": "completed", "result": [[[[[[[[[[]]]]]]]]]]}`,
		"{\"status\": \"failed\", \"error\": \"\xff\\u0000\\ud800\"}",
		`{"status": "completed", "result": ` + strings.Repeat("[", 20000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sig, canon, err := parseSignal(httptest.NewRequest(http.MethodPost, "/v1/signals/x", bytes.NewReader(body)))
		if err != nil {
			fuzzWantClientError(t, "parseSignal", body, err)
			return
		}
		switch sig.Status {
		case store.StatusCompleted:
			if sig.Error != nil {
				t.Fatalf("%q: completed with an error %q", body, *sig.Error)
			}
		case store.StatusFailed:
			if sig.Error == nil || *sig.Error == "" || sig.Result != nil {
				t.Fatalf("%q: failed with error %v and result %s", body, sig.Error, sig.Result)
			}
		default:
			t.Fatalf("%q: accepted status %q", body, sig.Status)
		}
		if len(sig.Result) > 0 && !json.Valid(sig.Result) {
			t.Fatalf("%q: result %q is not JSON", body, sig.Result)
		}
		if !json.Valid([]byte(canon)) {
			t.Fatalf("%q: canonical form %q is not JSON", body, canon)
		}
		sig2, canon2, err := parseSignal(httptest.NewRequest(http.MethodPost, "/v1/signals/x", strings.NewReader(canon)))
		if err != nil {
			t.Fatalf("%q: its canonical form %q is refused: %v", body, canon, err)
		}
		if canon2 != canon || sig2.Status != sig.Status {
			t.Fatalf("%q: canonical form is not stable:\n  %s\n  %s", body, canon, canon2)
		}
	})
}

// FuzzRedactPath checks that the request log never shows a signal token or callback id:
// whenever a request path is one the server routes (at once, or through ServeMux's redirect
// to the cleaned path) to /v1/signals/{token}[/heartbeat] or /v1/callbacks/{id}, the
// 64-hex credential must not appear in redactPath's output.
func FuzzRedactPath(f *testing.F) {
	for _, s := range [][2]string{
		{"/v1/signals/", ""},
		{"/v1/signals/", "/heartbeat"},
		{"/v1/callbacks/", ""},
		{"/v1/tasks/", "/signal"},
		{"/v1/signals/", "/"},
		{"/v1/signals", ""},
		{"", ""},
	} {
		f.Add(s[0], []byte("seed"), s[1])
	}
	f.Fuzz(func(t *testing.T, before string, seed []byte, after string) {
		sum := sha256.Sum256(seed)
		tok := hex.EncodeToString(sum[:])
		p := before + tok + after
		got := redactPath(p)
		if !strings.Contains(got, tok) {
			return
		}
		if fuzzRoutesToCredential(p, tok) {
			t.Fatalf("redactPath(%q) = %q: the credential is in the request log line (ServeMux routes this path, "+
				"through its clean-path redirect, to a signal or callback endpoint)", p, got)
		}
	})
}

// fuzzRoutesToCredential reports whether the server would treat p (after the cleaning ServeMux
// applies) as a request to a signal or callback endpoint with credential tok.
func fuzzRoutesToCredential(p, tok string) bool {
	if !strings.HasPrefix(p, "/") {
		return false // net/http refuses such a request target before any handler runs
	}
	c := p
	trailing := strings.HasSuffix(c, "/") && c != "/"
	c = path.Clean(c)
	if trailing && c != "/" {
		c += "/"
	}
	switch c {
	case "/v1/signals/" + tok, "/v1/signals/" + tok + "/heartbeat", "/v1/callbacks/" + tok:
		return true
	}
	return false
}
