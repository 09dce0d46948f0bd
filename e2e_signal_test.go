package main

// End-to-end tests of wait/signal (SPEC §4, seeds/wait-signal.txt) against the real binary.
// The helpers at the top (e2e…) are shared by e2e_webhook_test.go and e2e_restart_test.go.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

// e2eHit is one request a test target received.
type e2eHit struct {
	N      int // 1-based arrival order
	Method string
	Path   string
	Header http.Header
	Body   []byte
	At     time.Time
}

// e2eTarget is an httptest server on 127.0.0.1 that records every request.
type e2eTarget struct {
	*httptest.Server
	quit chan struct{} // closed at cleanup so blocked handlers return
	mu   sync.Mutex
	hits []e2eHit
}

// newE2ETarget starts a recording target. h decides the answer (nil: 200 {"ok":true}); it may block,
// but should select on r.Context().Done() and x.quit.
func newE2ETarget(t testing.TB, h func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request)) *e2eTarget {
	x := &e2eTarget{quit: make(chan struct{})}
	x.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		x.mu.Lock()
		hit := e2eHit{N: len(x.hits) + 1, Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()}
		x.hits = append(x.hits, hit)
		x.mu.Unlock()
		if h == nil {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
			return
		}
		h(x, hit, w, r)
	}))
	t.Cleanup(func() {
		close(x.quit)
		x.Server.CloseClientConnections()
		x.Server.Close()
	})
	return x
}

// Hits returns a copy of the requests received so far.
func (x *e2eTarget) Hits() []e2eHit {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]e2eHit(nil), x.hits...)
}

// waitHits waits until at least n requests arrived and returns them.
func (x *e2eTarget) waitHits(t testing.TB, n int, timeout time.Duration) []e2eHit {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		hs := x.Hits()
		if len(hs) >= n {
			return hs
		}
		if time.Now().After(deadline) {
			t.Fatalf("target got %d requests after %v, want at least %d", len(hs), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// e2eSleep sleeps d unless the request or the target ends first; true when it slept all of d.
func e2eSleep(x *e2eTarget, r *http.Request, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	case <-x.quit:
		return false
	}
}

var e2eClient = &http.Client{
	Timeout:   60 * time.Second,
	Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 30 * time.Second},
}

// e2eDo is server.call without testing.T, for use from goroutines. Header pairs with an empty
// value delete the header (as in call).
func e2eDo(s *server, method, path string, body any, headers ...string) (resp, error) {
	return e2eDoWith(e2eClient, s, method, path, body, headers...)
}

// e2eDoWith is e2eDo through client.
func e2eDoWith(client *http.Client, s *server, method, path string, body any, headers ...string) (resp, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		return resp{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", s.key)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	res, err := client.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	json.Unmarshal(raw, &out.Body)
	return out, nil
}

// e2eCall is server.call with a client timeout (a hung server fails the test instead of hanging it).
func e2eCall(t testing.TB, s *server, method, path string, body any, headers ...string) resp {
	t.Helper()
	r, err := e2eDo(s, method, path, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// sigNoKey removes the API key from a request (signal endpoints need none).
var sigNoKey = []string{"X-API-Key", ""}

var (
	e2eHex64RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	e2eTimeRE  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	e2eUUIDRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

// e2eCreate creates a task and fails the test unless it answers 201; it returns the task id,
// the signal token (if any) and the whole response.
func e2eCreate(t testing.TB, s *server, body map[string]any) (string, string, resp) {
	t.Helper()
	r, err := e2eDo(s, "POST", "/v1/tasks", body)
	if err != nil {
		t.Fatalf("create task: %v", err)
	}
	if r.Status != http.StatusCreated {
		t.Fatalf("create task: %d %s, want 201", r.Status, r.Raw)
	}
	id, _ := r.task()["id"].(string)
	if id == "" {
		t.Fatalf("create task: no task id in %s", r.Raw)
	}
	tok, _ := r.Body["signalToken"].(string)
	return id, tok, r
}

// e2eGet reads a task (no long poll).
func e2eGet(t testing.TB, s *server, id string) map[string]any {
	t.Helper()
	r, err := e2eDo(s, "GET", "/v1/tasks/"+id, nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("GET task %s: %v %d %s", id, err, r.Status, r.Raw)
	}
	return r.task()
}

// e2eWaitStatus is waitStatus without calling s.t (so it is safe for subtests and goroutine-free
// callers with their own t).
func e2eWaitStatus(t testing.TB, s *server, id, want string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]any
	// Plain polling: a long poll holds until the status changes from what the server sees at
	// request time, so it can sleep through a short-lived wanted status.
	for time.Now().Before(deadline) {
		r, err := e2eDo(s, "GET", "/v1/tasks/"+id, nil)
		if err == nil {
			last = r.task()
			if last != nil && last["status"] == want {
				return last
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("task %s: status %v after %v, want %s (task %v)", id, last["status"], timeout, want, last)
	return nil
}

// e2eWaitTerminal waits until a task reaches a terminal status and returns it.
func e2eWaitTerminal(t testing.TB, s *server, id string, timeout time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]any
	for q := ""; time.Now().Before(deadline); q = "?wait=1" {
		r, err := e2eDo(s, "GET", "/v1/tasks/"+id+q, nil)
		if err == nil {
			last = r.task()
			switch last["status"] {
			case "completed", "failed", "timeout", "cancelled":
				return last
			}
		}
	}
	t.Fatalf("task %s: not terminal after %v (task %v)", id, timeout, last)
	return nil
}

// e2eTime parses an API time, checking its format (RFC 3339 UTC with milliseconds).
func e2eTime(t testing.TB, v any, field string) time.Time {
	t.Helper()
	s, _ := v.(string)
	if !e2eTimeRE.MatchString(s) {
		t.Fatalf("%s = %v, want an RFC 3339 UTC time with milliseconds", field, v)
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s = %q: %v", field, s, err)
	}
	return tm
}

func e2eObj(v any) map[string]any { m, _ := v.(map[string]any); return m }

func e2eJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// e2eSecret is the team's current webhook secret.
func e2eSecret(t testing.TB, s *server) string {
	t.Helper()
	r, err := e2eDo(s, "GET", "/v1/webhook-secret", nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("GET /v1/webhook-secret: %v %d %s", err, r.Status, r.Raw)
	}
	sec, _ := r.Body["secret"].(string)
	if !strings.HasPrefix(sec, "whsec_") {
		t.Fatalf("webhook secret %q does not start with whsec_", sec)
	}
	if b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, "whsec_")); err != nil || len(b) != 32 {
		t.Fatalf("webhook secret %q is not whsec_ + base64 of 32 bytes (%d bytes, %v)", sec, len(b), err)
	}
	return sec
}

// e2eVerify checks, independently of internal/signing, that a request carries exactly
// len(secrets) signatures in both schemes, and that each secret verifies one of them.
//
//	X-AsyncQueue-Signature: t=<unix>,v1=<hex HMAC-SHA256(key = whole secret string, "<t>.<body>")>…
//	webhook-signature: v1,<base64 HMAC-SHA256(key = base64-decode(after whsec_), "<id>.<ts>.<body>")>…
func e2eVerify(h http.Header, body []byte, secrets ...string) error {
	now := time.Now().Unix()
	// X-AsyncQueue-Signature
	sig := h.Get("X-AsyncQueue-Signature")
	if sig == "" {
		return fmt.Errorf("no X-AsyncQueue-Signature header")
	}
	var ts string
	var v1s []string
	for _, f := range strings.Split(sig, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			return fmt.Errorf("X-AsyncQueue-Signature %q: field %q has no '='", sig, f)
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			v1s = append(v1s, v)
		}
	}
	tsn, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("X-AsyncQueue-Signature %q: bad t", sig)
	}
	if d := now - tsn; d > 300 || d < -300 {
		return fmt.Errorf("X-AsyncQueue-Signature t=%d is %d s away from now", tsn, d)
	}
	if len(v1s) != len(secrets) {
		return fmt.Errorf("X-AsyncQueue-Signature %q has %d v1= values, want %d", sig, len(v1s), len(secrets))
	}
	for i, sec := range secrets {
		m := hmac.New(sha256.New, []byte(sec))
		m.Write([]byte(ts + "."))
		m.Write(body)
		want := hex.EncodeToString(m.Sum(nil))
		found := false
		for _, v := range v1s {
			if hmac.Equal([]byte(v), []byte(want)) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("X-AsyncQueue-Signature %q: no v1= matches secret #%d", sig, i)
		}
	}
	// Standard Webhooks
	id, wts, wsig := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || wts == "" || wsig == "" {
		return fmt.Errorf("missing Standard Webhooks headers: id=%q timestamp=%q signature=%q", id, wts, wsig)
	}
	wtsn, err := strconv.ParseInt(wts, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook-timestamp %q is not unix seconds", wts)
	}
	if d := now - wtsn; d > 300 || d < -300 {
		return fmt.Errorf("webhook-timestamp %d is %d s away from now", wtsn, d)
	}
	var b64s []string
	for _, f := range strings.Fields(wsig) {
		ver, v, ok := strings.Cut(f, ",")
		if !ok {
			return fmt.Errorf("webhook-signature %q: %q is not <version>,<sig>", wsig, f)
		}
		if ver == "v1" {
			b64s = append(b64s, v)
		}
	}
	if len(b64s) != len(secrets) {
		return fmt.Errorf("webhook-signature %q has %d v1 signatures, want %d", wsig, len(b64s), len(secrets))
	}
	for i, sec := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(sec, "whsec_"))
		if err != nil {
			return fmt.Errorf("secret #%d is not whsec_+base64: %v", i, err)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + wts + "."))
		m.Write(body)
		want := base64.StdEncoding.EncodeToString(m.Sum(nil))
		found := false
		for _, v := range b64s {
			if hmac.Equal([]byte(v), []byte(want)) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("webhook-signature %q: no v1 signature matches secret #%d", wsig, i)
		}
	}
	return nil
}

// e2eEvent is a decoded onCompleteUrl delivery.
type e2eEvent struct {
	Event string         `json:"event"`
	Task  map[string]any `json:"task"`
	Hit   e2eHit         `json:"-"`
}

func e2eEvents(t testing.TB, hits []e2eHit) []e2eEvent {
	t.Helper()
	out := make([]e2eEvent, 0, len(hits))
	for _, h := range hits {
		var ev e2eEvent
		if err := json.Unmarshal(h.Body, &ev); err != nil {
			t.Fatalf("webhook body is not JSON: %v: %s", err, h.Body)
		}
		ev.Hit = h
		out = append(out, ev)
	}
	return out
}

func e2eQuantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

// waitingTask creates a wait/signal task against target and waits until it is waiting.
func e2eWaitingTask(t testing.TB, s *server, target string, extra map[string]any) (string, string, map[string]any) {
	t.Helper()
	body := map[string]any{"targetUrl": target, "waitForSignal": true}
	for k, v := range extra {
		body[k] = v
	}
	id, tok, _ := e2eCreate(t, s, body)
	task := e2eWaitStatus(t, s, id, "waiting", 20*time.Second)
	return id, tok, task
}

// ---------------------------------------------------------------------------------------------
// The seed walkthrough
// ---------------------------------------------------------------------------------------------

// TestE2ESignalWalkthrough follows seeds/wait-signal.txt: create, callback, waiting, signal,
// replay, conflicting signal, webhook.
func TestE2ESignalWalkthrough(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Target", "yes")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		io.WriteString(w, `{"accepted":true}`)
	})
	hook := newE2ETarget(t, nil)
	s := startServer(t, "")
	secret := e2eSecret(t, s)

	const orderBody = `{"orderId": "order_123"}`
	created := time.Now()
	id, token, cr := e2eCreate(t, s, map[string]any{
		"targetUrl":     target.URL + "/start-process",
		"method":        "POST",
		"body":          orderBody,
		"waitForSignal": true,
		"maxWaitTime":   3600,
		"onCompleteUrl": hook.URL + "/webhook",
	})
	ct := cr.task()
	if !e2eUUIDRE.MatchString(id) {
		t.Errorf("task id %q is not a UUIDv7", id)
	}
	if ct["status"] != "pending" || ct["waitForSignal"] != true || ct["maxWaitTime"] != 3600.0 {
		t.Errorf("created task = status %v waitForSignal %v maxWaitTime %v, want pending true 3600", ct["status"], ct["waitForSignal"], ct["maxWaitTime"])
	}
	if !e2eHex64RE.MatchString(token) {
		t.Fatalf("signalToken = %q, want 64 lowercase hex characters", token)
	}

	// The callback.
	hit := target.waitHits(t, 1, 10*time.Second)[0]
	if hit.Method != "POST" || hit.Path != "/start-process" {
		t.Errorf("callback = %s %s, want POST /start-process", hit.Method, hit.Path)
	}
	if string(hit.Body) != orderBody {
		t.Errorf("callback body = %q, want %q", hit.Body, orderBody)
	}
	if ct := hit.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("callback Content-Type = %q, want application/json", ct)
	}
	if got := hit.Header.Get("X-AsyncQueue-Task-Id"); got != id {
		t.Errorf("X-AsyncQueue-Task-Id = %q, want %q", got, id)
	}
	if got := hit.Header.Get("X-AsyncQueue-Retry-Count"); got != "0" {
		t.Errorf("X-AsyncQueue-Retry-Count = %q, want 0", got)
	}
	if ua := hit.Header.Get("User-Agent"); !strings.HasPrefix(ua, "asyncqueue/") {
		t.Errorf("User-Agent = %q, want asyncqueue/<version>", ua)
	}
	if err := e2eVerify(hit.Header, hit.Body, secret); err != nil {
		t.Errorf("callback signature: %v", err)
	}

	// Waiting, with startResult, waitingSince and expiresAt.
	wt := e2eWaitStatus(t, s, id, "waiting", 10*time.Second)
	sr := e2eObj(wt["startResult"])
	if sr == nil {
		t.Fatalf("waiting task has no startResult: %v", wt)
	}
	if sr["statusCode"] != 200.0 || sr["body"] != `{"accepted":true}` {
		t.Errorf("startResult = %v, want statusCode 200 and the target's body", sr)
	}
	if d, ok := sr["duration"].(float64); !ok || d < 0 {
		t.Errorf("startResult.duration = %v, want milliseconds", sr["duration"])
	}
	found := false
	for k, v := range e2eObj(sr["headers"]) {
		if strings.EqualFold(k, "X-Target") && v == "yes" {
			found = true
		}
	}
	if !found {
		t.Errorf("startResult.headers = %v, want the target's X-Target: yes", sr["headers"])
	}
	ws := e2eTime(t, wt["waitingSince"], "waitingSince")
	exp := e2eTime(t, wt["expiresAt"], "expiresAt")
	if exp.Sub(ws) != 3600*time.Second {
		t.Errorf("expiresAt - waitingSince = %v, want 1h", exp.Sub(ws))
	}
	if ws.Before(created.Add(-2*time.Second)) || ws.After(time.Now().Add(2*time.Second)) {
		t.Errorf("waitingSince %v is not around now", ws)
	}
	if wt["result"] != nil {
		t.Errorf("waiting task has result %v before any signal", wt["result"])
	}

	// The token is never shown again.
	for _, path := range []string{"/v1/tasks/" + id, "/v1/tasks?limit=100", "/v1/tasks/" + id + "/attempts"} {
		r := e2eCall(t, s, "GET", path, nil)
		if r.Status != 200 || strings.Contains(r.Raw, token) {
			t.Errorf("GET %s: status %d, shows the token: %v", path, r.Status, strings.Contains(r.Raw, token))
		}
		if _, ok := r.task()["signalToken"]; ok {
			t.Errorf("GET %s has a signalToken field", path)
		}
	}

	// GET /v1/signals/:token, without an API key.
	g := e2eCall(t, s, "GET", "/v1/signals/"+token, nil, sigNoKey...)
	if g.Status != 200 {
		t.Fatalf("GET /v1/signals/:token = %d %s", g.Status, g.Raw)
	}
	if gt := g.task(); gt["id"] != id || gt["status"] != "waiting" || gt["expiresAt"] != wt["expiresAt"] {
		t.Errorf("GET /v1/signals/:token task = %v, want id, status waiting, expiresAt %v", gt, wt["expiresAt"])
	}

	// The signal, without an API key.
	sig := map[string]any{"status": "completed", "result": map[string]any{"downloadUrl": "https://cdn.example.com/output.pdf"}}
	r := e2eCall(t, s, "POST", "/v1/signals/"+token, sig, sigNoKey...)
	if r.Status != 200 {
		t.Fatalf("signal = %d %s, want 200", r.Status, r.Raw)
	}
	if r.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("first signal carries Idempotent-Replayed: %q", r.Header.Get("Idempotent-Replayed"))
	}
	st := r.task()
	if st["id"] != id || st["status"] != "completed" || e2eJSON(st["result"]) != `{"downloadUrl":"https://cdn.example.com/output.pdf"}` {
		t.Errorf("signal answer task = %v, want completed with the signal's result", st)
	}
	if e2eJSON(st["startResult"]) != e2eJSON(wt["startResult"]) {
		t.Errorf("startResult changed by the signal: %v → %v", wt["startResult"], st["startResult"])
	}
	e2eTime(t, st["completedAt"], "completedAt")
	got := e2eGet(t, s, id)
	if got["status"] != "completed" || e2eJSON(got["result"]) != e2eJSON(st["result"]) {
		t.Errorf("GET after signal = %v", got)
	}

	// The same signal again: 200 + Idempotent-Replayed.
	r2 := e2eCall(t, s, "POST", "/v1/signals/"+token, sig, sigNoKey...)
	if r2.Status != 200 || r2.Header.Get("Idempotent-Replayed") != "true" || r2.task()["status"] != "completed" {
		t.Errorf("same signal again = %d Idempotent-Replayed=%q %s, want 200 true", r2.Status, r2.Header.Get("Idempotent-Replayed"), r2.Raw)
	}
	// A different one: 409.
	r3 := e2eCall(t, s, "POST", "/v1/signals/"+token, map[string]any{"status": "failed", "error": "Payment was declined"}, sigNoKey...)
	if r3.Status != 409 || r3.Body["error"] != "Task is not waiting (current: completed)" {
		t.Errorf("different signal = %d %s, want 409 Task is not waiting (current: completed)", r3.Status, r3.Raw)
	}
	if got := e2eGet(t, s, id); got["status"] != "completed" || got["error"] != nil {
		t.Errorf("task changed by a refused signal: %v", got)
	}

	// The webhook.
	hs := hook.waitHits(t, 1, 10*time.Second)
	evs := e2eEvents(t, hs)
	if evs[0].Event != "task.completed" || evs[0].Task["id"] != id || evs[0].Task["status"] != "completed" ||
		e2eJSON(evs[0].Task["result"]) != e2eJSON(st["result"]) {
		t.Errorf("webhook = %s", hs[0].Body)
	}
	if hs[0].Path != "/webhook" || hs[0].Method != "POST" {
		t.Errorf("webhook request = %s %s", hs[0].Method, hs[0].Path)
	}
	if err := e2eVerify(hs[0].Header, hs[0].Body, secret); err != nil {
		t.Errorf("webhook signature: %v", err)
	}
	if strings.Contains(string(hs[0].Body), token) {
		t.Errorf("webhook payload contains the signal token")
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(hook.Hits()); n != 1 {
		t.Errorf("webhook target got %d deliveries, want 1", n)
	}
	if strings.Contains(s.Logs(), token) {
		t.Errorf("the server log contains the signal token")
	}
}

// TestE2ESignalFail: {"status":"failed","error":"Payment was declined"} fails the task with that error.
func TestE2ESignalFail(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600})
	r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "failed", "error": "Payment was declined"}, sigNoKey...)
	if r.Status != 200 || r.task()["status"] != "failed" || r.task()["error"] != "Payment was declined" {
		t.Fatalf("fail signal = %d %s, want 200 failed with the error", r.Status, r.Raw)
	}
	got := e2eGet(t, s, id)
	if got["status"] != "failed" || got["error"] != "Payment was declined" || got["result"] != nil {
		t.Errorf("task after fail signal = status %v error %v result %v", got["status"], got["error"], got["result"])
	}
	if got["startResult"] == nil {
		t.Errorf("startResult lost by the fail signal")
	}
	r2 := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "failed", "error": "Payment was declined"}, sigNoKey...)
	if r2.Status != 200 || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("same fail signal again = %d %q", r2.Status, r2.Header.Get("Idempotent-Replayed"))
	}
	r3 := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "completed"}, sigNoKey...)
	if r3.Status != 409 || r3.Body["error"] != "Task is not waiting (current: failed)" {
		t.Errorf("completing a failed task = %d %s", r3.Status, r3.Raw)
	}
}

// TestE2ESignalFailDefaultError: a failed signal without error → "Failed by signal".
func TestE2ESignalFailDefaultError(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, wt := e2eWaitingTask(t, s, target.URL, nil)
	// Without maxWaitTime the default is 30 s.
	if wt["maxWaitTime"] != 30.0 {
		t.Errorf("default maxWaitTime = %v, want 30", wt["maxWaitTime"])
	}
	if d := e2eTime(t, wt["expiresAt"], "expiresAt").Sub(e2eTime(t, wt["waitingSince"], "waitingSince")); d != 30*time.Second {
		t.Errorf("expiresAt - waitingSince = %v, want the default 30 s", d)
	}
	r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "failed"}, sigNoKey...)
	if r.Status != 200 {
		t.Fatalf("fail signal = %d %s", r.Status, r.Raw)
	}
	if got := e2eGet(t, s, id); got["status"] != "failed" || got["error"] != "Failed by signal" {
		t.Errorf("task = status %v error %v, want failed / Failed by signal", got["status"], got["error"])
	}
}

// TestE2ESignalBadBodies: the signal body is validated (status required, unknown fields refused)
// without spending the token.
func TestE2ESignalBadBodies(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600})
	for _, body := range []string{`{}`, `{"status":"done"}`, `{"status":"completed","reslt":1}`, `not json`, ``} {
		r := e2eCall(t, s, "POST", "/v1/signals/"+tok, body, sigNoKey...)
		if r.Status != 400 || r.Body["error"] == nil {
			t.Errorf("signal body %q = %d %s, want 400 with an error", body, r.Status, r.Raw)
		}
	}
	if got := e2eGet(t, s, id); got["status"] != "waiting" {
		t.Fatalf("task after bad signals = %v, want still waiting", got["status"])
	}
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "completed"}, sigNoKey...); r.Status != 200 {
		t.Errorf("good signal after bad ones = %d %s", r.Status, r.Raw)
	}
}

// TestE2ESignalMaxWaitTimeout: no signal within maxWaitTime → timeout, and the token is then refused.
func TestE2ESignalMaxWaitTimeout(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	hook := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, wt := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 1, "onCompleteUrl": hook.URL})
	exp := e2eTime(t, wt["expiresAt"], "expiresAt")
	if d := exp.Sub(e2eTime(t, wt["waitingSince"], "waitingSince")); d != time.Second {
		t.Errorf("expiresAt - waitingSince = %v, want 1s", d)
	}
	got := e2eWaitStatus(t, s, id, "timeout", 10*time.Second)
	done := e2eTime(t, got["completedAt"], "completedAt")
	if done.Before(exp) {
		t.Errorf("timed out at %v, before expiresAt %v", done, exp)
	}
	if e, _ := got["error"].(string); e == "" {
		t.Errorf("timed-out task has no error message")
	}
	if got["result"] != nil {
		t.Errorf("timed-out task has a result: %v", got["result"])
	}
	r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "completed"}, sigNoKey...)
	if r.Status != 409 || r.Body["error"] != "Task is not waiting (current: timeout)" {
		t.Errorf("signal after timeout = %d %s, want 409 Task is not waiting (current: timeout)", r.Status, r.Raw)
	}
	evs := e2eEvents(t, hook.waitHits(t, 1, 10*time.Second))
	if evs[0].Event != "task.timeout" || evs[0].Task["status"] != "timeout" {
		t.Errorf("webhook = %s", evs[0].Hit.Body)
	}
}

// TestE2ESignalCancelWaiting: cancelling a waiting task invalidates the token and removes the timeout.
func TestE2ESignalCancelWaiting(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	hook := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, wt := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 2, "onCompleteUrl": hook.URL})
	exp := e2eTime(t, wt["expiresAt"], "expiresAt")
	c := e2eCall(t, s, "POST", "/v1/tasks/"+id+"/cancel", nil)
	if c.Status != 200 || c.task()["status"] != "cancelled" {
		t.Fatalf("cancel waiting = %d %s, want 200 cancelled", c.Status, c.Raw)
	}
	completedAt := c.task()["completedAt"]
	r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "completed"}, sigNoKey...)
	if r.Status != 409 || r.Body["error"] != "Task is not waiting (current: cancelled)" {
		t.Errorf("signal after cancel = %d %s, want 409 Task is not waiting (current: cancelled)", r.Status, r.Raw)
	}
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok+"/heartbeat", nil, sigNoKey...); r.Status == 200 {
		t.Errorf("heartbeat after cancel = 200, want refused")
	}
	if r := e2eCall(t, s, "POST", "/v1/tasks/"+id+"/cancel", nil); r.Status != 409 || r.Body["error"] != "Task cannot be cancelled (current: cancelled)" {
		t.Errorf("second cancel = %d %s", r.Status, r.Raw)
	}
	// Past the old expiry: no timeout happens.
	time.Sleep(time.Until(exp) + 1500*time.Millisecond)
	got := e2eGet(t, s, id)
	if got["status"] != "cancelled" || got["completedAt"] != completedAt {
		t.Errorf("after old expiry: status %v completedAt %v (was %v), want cancelled unchanged", got["status"], got["completedAt"], completedAt)
	}
	hook.waitHits(t, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	evs := e2eEvents(t, hook.Hits())
	if len(evs) != 1 || evs[0].Event != "task.cancelled" {
		var names []string
		for _, e := range evs {
			names = append(names, e.Event)
		}
		t.Errorf("webhook events = %v, want exactly [task.cancelled]", names)
	}
}

// TestE2ESignalMalformedToken: anything but 64 lowercase hex characters is 400, before any lookup.
func TestE2ESignalMalformedToken(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	_, tok, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600})
	bad := map[string]string{
		"63 chars":           tok[:63],
		"65 chars":           tok + "a",
		"non-hex":            "g" + tok[1:],
		"uppercase of token": strings.ToUpper(tok),
		"one upper char":     "A" + tok[1:],
		"empty-ish":          "0",
	}
	for name, b := range bad {
		if b == tok {
			continue
		}
		for _, c := range []struct{ method, suffix string }{{"POST", ""}, {"GET", ""}, {"POST", "/heartbeat"}} {
			var body any
			if c.method == "POST" && c.suffix == "" {
				body = map[string]any{"status": "completed"}
			}
			r := e2eCall(t, s, c.method, "/v1/signals/"+b+c.suffix, body, sigNoKey...)
			msg, _ := r.Body["error"].(string)
			if r.Status != 400 || !strings.Contains(strings.ToLower(msg), "token") {
				t.Errorf("%s %s /v1/signals/<%s>%s = %d %s, want 400 naming the token", name, c.method, name, c.suffix, r.Status, r.Raw)
			}
		}
	}
	// A malformed token is refused even with a malformed body: the token is checked first.
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok[:63], `{"nope":`, sigNoKey...); r.Status != 400 || !strings.Contains(strings.ToLower(fmt.Sprint(r.Body["error"])), "token") {
		t.Errorf("malformed token + malformed body = %d %s, want the token error", r.Status, r.Raw)
	}
	// The real token still works (nothing above spent it).
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "completed"}, sigNoKey...); r.Status != 200 {
		t.Errorf("real token after malformed ones = %d %s", r.Status, r.Raw)
	}
}

// TestE2ESignalUnknownToken: a well-formed unknown token is 404 "Invalid or expired signal token".
func TestE2ESignalUnknownToken(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	unknown := strings.Repeat("ab", 32)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/signals/" + unknown, map[string]any{"status": "completed"}},
		{"GET", "/v1/signals/" + unknown, nil},
		{"POST", "/v1/signals/" + unknown + "/heartbeat", map[string]any{"progress": 1}},
	} {
		r := e2eCall(t, s, c.method, c.path, c.body, sigNoKey...)
		if r.Status != 404 || r.Body["error"] != "Invalid or expired signal token" {
			t.Errorf("%s %s = %d %s, want 404 Invalid or expired signal token", c.method, c.path, r.Status, r.Raw)
		}
	}
}

// TestE2ESignalByTaskID: POST /v1/tasks/:id/signal with the API key resolves like the token.
func TestE2ESignalByTaskID(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600})
	sig := map[string]any{"status": "completed", "result": map[string]any{"approvedBy": "manager"}}
	if r := e2eCall(t, s, "POST", "/v1/tasks/"+id+"/signal", sig, sigNoKey...); r.Status != 401 {
		t.Errorf("signal by id without key = %d, want 401", r.Status)
	}
	r := e2eCall(t, s, "POST", "/v1/tasks/"+id+"/signal", sig)
	if r.Status != 200 || r.task()["status"] != "completed" || e2eJSON(r.task()["result"]) != `{"approvedBy":"manager"}` {
		t.Fatalf("signal by id = %d %s", r.Status, r.Raw)
	}
	r2 := e2eCall(t, s, "POST", "/v1/tasks/"+id+"/signal", sig)
	if r2.Status != 200 || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("same signal by id again = %d %q", r2.Status, r2.Header.Get("Idempotent-Replayed"))
	}
	// The same signal through the token is also a replay: it is one task.
	r3 := e2eCall(t, s, "POST", "/v1/signals/"+tok, sig, sigNoKey...)
	if r3.Status != 200 || r3.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("same signal by token after by-id = %d %q", r3.Status, r3.Header.Get("Idempotent-Replayed"))
	}
	r4 := e2eCall(t, s, "POST", "/v1/tasks/"+id+"/signal", map[string]any{"status": "failed"})
	if r4.Status != 409 || r4.Body["error"] != "Task is not waiting (current: completed)" {
		t.Errorf("different signal by id = %d %s", r4.Status, r4.Raw)
	}
	// Failing by id.
	id2, _, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600})
	r5 := e2eCall(t, s, "POST", "/v1/tasks/"+id2+"/signal", map[string]any{"status": "failed", "error": "Rejected by reviewer"})
	if r5.Status != 200 || r5.task()["status"] != "failed" || r5.task()["error"] != "Rejected by reviewer" {
		t.Errorf("fail by id = %d %s", r5.Status, r5.Raw)
	}
}

// TestE2ESignalEarlyBuffered: a signal that arrives while the callback is still in flight is
// answered 202 {"buffered":true} and applied as soon as the target answers.
func TestE2ESignalEarlyBuffered(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	target := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		case <-x.quit:
			return
		}
		io.WriteString(w, `started`)
	})
	hook := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "waitForSignal": true, "maxWaitTime": 3600, "onCompleteUrl": hook.URL})
	target.waitHits(t, 1, 10*time.Second)
	if got := e2eGet(t, s, id); got["status"] != "processing" {
		t.Fatalf("task with callback in flight = %v, want processing", got["status"])
	}
	sig := map[string]any{"status": "completed", "result": map[string]any{"early": true}}
	r := e2eCall(t, s, "POST", "/v1/signals/"+tok, sig, sigNoKey...)
	if r.Status != 202 || r.Body["buffered"] != true || r.task()["id"] != id {
		t.Fatalf("early signal = %d %s, want 202 buffered:true", r.Status, r.Raw)
	}
	if got := e2eGet(t, s, id); got["status"] != "processing" {
		t.Errorf("task after buffered signal = %v, want still processing", got["status"])
	}
	// The same early signal again is fine; a different one is not.
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok, sig, sigNoKey...); r.Status != 202 {
		t.Errorf("same early signal again = %d %s, want 202", r.Status, r.Raw)
	}
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "failed"}, sigNoKey...); r.Status != 409 {
		t.Errorf("different early signal = %d %s, want 409", r.Status, r.Raw)
	}
	close(release)
	got := e2eWaitTerminal(t, s, id, 10*time.Second)
	if got["status"] != "completed" || e2eJSON(got["result"]) != `{"early":true}` {
		t.Fatalf("after the target answered: status %v result %v, want completed with the signal's result", got["status"], got["result"])
	}
	if sr := e2eObj(got["startResult"]); sr == nil || sr["body"] != "started" {
		t.Errorf("startResult = %v, want the callback's answer", got["startResult"])
	}
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok, sig, sigNoKey...); r.Status != 200 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the early signal after it was applied = %d %q, want 200 replay", r.Status, r.Header.Get("Idempotent-Replayed"))
	}
	evs := e2eEvents(t, hook.waitHits(t, 1, 10*time.Second))
	if evs[0].Event != "task.completed" {
		t.Errorf("webhook event = %s", evs[0].Event)
	}
}

// TestE2ESignalEarlyWhileDelayed: a signal for a delayed task is buffered too.
func TestE2ESignalEarlyWhileDelayed(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, cr := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "waitForSignal": true, "delay": 1})
	if cr.task()["status"] != "delayed" {
		t.Fatalf("created with delay: status %v", cr.task()["status"])
	}
	r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "failed", "error": "Cancelled upstream"}, sigNoKey...)
	if r.Status != 202 || r.Body["buffered"] != true {
		t.Fatalf("signal on delayed task = %d %s, want 202 buffered", r.Status, r.Raw)
	}
	got := e2eWaitTerminal(t, s, id, 10*time.Second)
	if got["status"] != "failed" || got["error"] != "Cancelled upstream" {
		t.Errorf("after the delayed callback: %v / %v, want failed / Cancelled upstream", got["status"], got["error"])
	}
	if n := len(target.Hits()); n != 1 {
		t.Errorf("target got %d calls, want 1", n)
	}
}

// TestE2ESignalEarlyThenCallbackFails: a buffered signal is not applied when the callback finally fails.
func TestE2ESignalEarlyThenCallbackFails(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	target := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		case <-x.quit:
			return
		}
		http.Error(w, "boom", 500)
	})
	s := startServer(t, "")
	id, tok, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "waitForSignal": true, "maxRetries": 0})
	target.waitHits(t, 1, 10*time.Second)
	r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "completed", "result": map[string]any{"x": 1}}, sigNoKey...)
	if r.Status != 202 || r.Body["buffered"] != true {
		t.Fatalf("early signal = %d %s, want 202 buffered", r.Status, r.Raw)
	}
	close(release)
	got := e2eWaitTerminal(t, s, id, 10*time.Second)
	if got["status"] != "failed" {
		t.Fatalf("status = %v, want failed (the callback failed)", got["status"])
	}
	if got["error"] != "Server error: HTTP 500 - Internal Server Error" {
		t.Errorf("error = %v, want Server error: HTTP 500 - Internal Server Error", got["error"])
	}
	if got["result"] != nil {
		t.Errorf("result = %v, want none: the buffered signal must not be applied", got["result"])
	}
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "completed", "result": map[string]any{"x": 1}}, sigNoKey...); r.Status != 409 {
		t.Errorf("signal after the failed callback = %d %s, want 409", r.Status, r.Raw)
	}
	if got := e2eGet(t, s, id); got["status"] != "failed" {
		t.Errorf("status later = %v", got["status"])
	}
}

// TestE2EHeartbeat: heartbeats keep a task with heartbeatTimeout alive and store progress; without
// them it times out with "Heartbeat timeout".
func TestE2EHeartbeat(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, cr := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "waitForSignal": true, "maxWaitTime": 60, "heartbeatTimeout": 1})
	if cr.task()["heartbeatTimeout"] != 1.0 {
		t.Errorf("heartbeatTimeout = %v, want 1", cr.task()["heartbeatTimeout"])
	}
	// Heartbeat from the start; before the task waits they are refused (409).
	var first time.Time
	deadline := time.Now().Add(15 * time.Second)
	n := 0
	var last resp
	for {
		if time.Now().After(deadline) {
			t.Fatalf("heartbeats never accepted; last %d %s", last.Status, last.Raw)
		}
		n++
		r, err := e2eDo(s, "POST", "/v1/signals/"+tok+"/heartbeat", map[string]any{"progress": map[string]any{"percent": n}}, sigNoKey...)
		if err != nil {
			t.Fatal(err)
		}
		last = r
		switch r.Status {
		case 200:
			if first.IsZero() {
				first = time.Now()
			}
		case 409:
			if !first.IsZero() {
				t.Fatalf("heartbeat refused after being accepted: %s (task %v)", r.Raw, e2eGet(t, s, id))
			}
		default:
			t.Fatalf("heartbeat = %d %s", r.Status, r.Raw)
		}
		if !first.IsZero() && time.Since(first) > 1800*time.Millisecond {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	got := e2eGet(t, s, id)
	if got["status"] != "waiting" {
		t.Fatalf("after 1.8 s of heartbeats every 300 ms: status %v, want waiting (error %v)", got["status"], got["error"])
	}
	if e2eJSON(got["progress"]) != fmt.Sprintf(`{"percent":%d}`, n) {
		t.Errorf("progress = %v, want the last heartbeat's {percent:%d}", e2eJSON(got["progress"]), n)
	}
	hb := e2eTime(t, got["lastHeartbeatAt"], "lastHeartbeatAt")
	if time.Since(hb) > 5*time.Second || hb.Before(e2eTime(t, got["waitingSince"], "waitingSince")) {
		t.Errorf("lastHeartbeatAt = %v, not a recent heartbeat", hb)
	}
	// A heartbeat without a body is accepted and keeps the progress.
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok+"/heartbeat", nil, sigNoKey...); r.Status != 200 {
		t.Errorf("heartbeat without body = %d %s", r.Status, r.Raw)
	}
	if got := e2eGet(t, s, id); e2eJSON(got["progress"]) != fmt.Sprintf(`{"percent":%d}`, n) {
		t.Errorf("progress after empty heartbeat = %v", e2eJSON(got["progress"]))
	}
	// Stop: it times out on the heartbeat deadline, long before maxWaitTime.
	got = e2eWaitStatus(t, s, id, "timeout", 10*time.Second)
	if got["error"] != "Heartbeat timeout" {
		t.Errorf("error = %v, want Heartbeat timeout", got["error"])
	}
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok+"/heartbeat", nil, sigNoKey...); r.Status != 409 {
		t.Errorf("heartbeat after timeout = %d %s, want 409", r.Status, r.Raw)
	}
}

// TestE2ESignalRaceOneToken: 50 concurrent signals on one token → exactly one wins; identical
// ones are replays, different ones 409; the webhook is delivered exactly once.
func TestE2ESignalRaceOneToken(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	hook := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600, "onCompleteUrl": hook.URL})

	const n = 50
	bodies := make([]map[string]any, n)
	for i := range bodies {
		switch {
		case i%2 == 0:
			bodies[i] = map[string]any{"status": "completed", "result": map[string]any{"v": "same"}}
		case i%3 == 0:
			bodies[i] = map[string]any{"status": "failed", "error": fmt.Sprintf("no %d", i)}
		default:
			bodies[i] = map[string]any{"status": "completed", "result": map[string]any{"v": i}}
		}
	}
	results := make([]resp, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = e2eDo(s, "POST", "/v1/signals/"+tok, bodies[i], sigNoKey...)
		}()
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("signal %d: %v", i, errs[i])
		}
		if r.Status == 200 && r.Header.Get("Idempotent-Replayed") == "" {
			if winner >= 0 {
				t.Errorf("signals %d and %d both won", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatalf("no signal won: %v", results[0].Raw)
	}
	final := e2eGet(t, s, id)
	wb := bodies[winner]
	if final["status"] != wb["status"] {
		t.Errorf("final status %v, winner sent %v", final["status"], wb["status"])
	}
	if wb["status"] == "completed" && e2eJSON(final["result"]) != e2eJSON(wb["result"]) {
		t.Errorf("final result %v, winner sent %v", e2eJSON(final["result"]), e2eJSON(wb["result"]))
	}
	same := func(a, b map[string]any) bool { return e2eJSON(a) == e2eJSON(b) }
	counts := map[string]int{}
	for i, r := range results {
		if i == winner {
			continue
		}
		switch {
		case r.Status == 200 && r.Header.Get("Idempotent-Replayed") == "true":
			counts["replay"]++
			if !same(bodies[i], wb) {
				t.Errorf("signal %d (%v) answered as a replay of a different winning signal (%v)", i, bodies[i], wb)
			}
		case r.Status == 409:
			counts["409"]++
			if same(bodies[i], wb) {
				t.Errorf("signal %d identical to the winner got 409, want a 200 replay", i)
			}
			if want := fmt.Sprintf("Task is not waiting (current: %s)", wb["status"]); r.Body["error"] != want {
				t.Errorf("signal %d: 409 %v, want %q", i, r.Body["error"], want)
			}
		default:
			t.Errorf("signal %d: %d %s", i, r.Status, r.Raw)
		}
	}
	t.Logf("winner #%d %v; %v", winner, e2eJSON(wb), counts)

	hook.waitHits(t, 1, 10*time.Second)
	time.Sleep(1500 * time.Millisecond)
	if hs := hook.Hits(); len(hs) != 1 {
		t.Errorf("onCompleteUrl got %d deliveries, want exactly 1", len(hs))
	}
}

// TestE2ESignalTimeoutCancelRace: on many tasks, signal and cancel sent right around expiry →
// every task ends in exactly one terminal state, consistent with the answers, and one webhook each.
func TestE2ESignalTimeoutCancelRace(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	hook := newE2ETarget(t, nil)
	s := startServer(t, "")
	const n = 30
	type tk struct {
		id, tok string
		exp     time.Time
		sig     resp
		can     resp
		sigErr  error
		canErr  error
	}
	tasks := make([]*tk, n)
	for i := range tasks {
		id, tok, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "waitForSignal": true, "maxWaitTime": 1, "onCompleteUrl": hook.URL})
		tasks[i] = &tk{id: id, tok: tok}
	}
	// expiresAt is known once each is waiting. Reading it may take longer than maxWaitTime on
	// a slow machine; tasks that already timed out still take part (both requests then must be 409).
	for _, k := range tasks {
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := e2eGet(t, s, k.id)
			if got["expiresAt"] != nil {
				k.exp = e2eTime(t, got["expiresAt"], "expiresAt")
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s never got expiresAt: %v", k.id, got)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	for i, k := range tasks {
		offset := time.Duration(i%7-3) * 10 * time.Millisecond // -30 ms … +30 ms around expiry
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(k.exp.Add(offset)))
			var inner sync.WaitGroup
			inner.Add(2)
			go func() {
				defer inner.Done()
				k.sig, k.sigErr = e2eDo(s, "POST", "/v1/signals/"+k.tok, map[string]any{"status": "completed", "result": i}, sigNoKey...)
			}()
			go func() {
				defer inner.Done()
				k.can, k.canErr = e2eDo(s, "POST", "/v1/tasks/"+k.id+"/cancel", nil)
			}()
			inner.Wait()
		}()
	}
	wg.Wait()
	outcomes := map[string]int{}
	final := map[string]string{}
	for _, k := range tasks {
		if k.sigErr != nil || k.canErr != nil {
			t.Fatalf("task %s: %v %v", k.id, k.sigErr, k.canErr)
		}
		got := e2eWaitTerminal(t, s, k.id, 10*time.Second)
		st, _ := got["status"].(string)
		final[k.id] = st
		outcomes[st]++
		switch {
		case k.sig.Status == 200 && k.can.Status == 200:
			t.Errorf("task %s: both signal and cancel answered 200 (final %s)", k.id, st)
		case k.sig.Status == 200:
			if st != "completed" || k.can.Status != 409 {
				t.Errorf("task %s: signal won but final %s, cancel %d", k.id, st, k.can.Status)
			}
		case k.can.Status == 200:
			if st != "cancelled" || k.sig.Status != 409 {
				t.Errorf("task %s: cancel won but final %s, signal %d", k.id, st, k.sig.Status)
			}
		case k.sig.Status == 409 && k.can.Status == 409:
			if st != "timeout" {
				t.Errorf("task %s: signal and cancel refused but final %s", k.id, st)
			}
		default:
			t.Errorf("task %s: signal %d %s, cancel %d %s", k.id, k.sig.Status, k.sig.Raw, k.can.Status, k.can.Raw)
		}
	}
	t.Logf("outcomes: %v", outcomes)
	// Exactly one webhook per task, naming its final state.
	deadline := time.Now().Add(20 * time.Second)
	for len(hook.Hits()) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	per := map[string][]string{}
	for _, ev := range e2eEvents(t, hook.Hits()) {
		id, _ := ev.Task["id"].(string)
		per[id] = append(per[id], ev.Event)
	}
	for _, k := range tasks {
		evs := per[k.id]
		if len(evs) != 1 || evs[0] != "task."+final[k.id] {
			t.Errorf("task %s (final %s): webhook events %v, want exactly [task.%s]", k.id, final[k.id], evs, final[k.id])
		}
	}
	// Tokens of finished tasks stay refused, whatever the outcome.
	for _, k := range tasks {
		r := e2eCall(t, s, "POST", "/v1/signals/"+k.tok, map[string]any{"status": "failed"}, sigNoKey...)
		if r.Status != 409 {
			t.Errorf("task %s (final %s): late signal = %d %s, want 409", k.id, final[k.id], r.Status, r.Raw)
		}
	}
}

// TestE2ESignalRetryNewToken: retrying a timed-out wait/signal task returns a new token; the old
// one no longer resolves it.
func TestE2ESignalRetryNewToken(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, old, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 1})
	e2eWaitStatus(t, s, id, "timeout", 10*time.Second)
	r := e2eCall(t, s, "POST", "/v1/tasks/"+id+"/retry", nil)
	nw, _ := r.Body["signalToken"].(string)
	if r.Status != 200 || !e2eHex64RE.MatchString(nw) || nw == old {
		t.Fatalf("retry = %d %s, want 200 with a new 64-hex signalToken", r.Status, r.Raw)
	}
	e2eWaitStatus(t, s, id, "waiting", 10*time.Second)
	if r := e2eCall(t, s, "POST", "/v1/signals/"+old, map[string]any{"status": "completed"}, sigNoKey...); r.Status == 200 {
		t.Errorf("old token after retry = 200 %s, want refused", r.Raw)
	}
	if r := e2eCall(t, s, "POST", "/v1/signals/"+nw, map[string]any{"status": "completed"}, sigNoKey...); r.Status != 200 || r.task()["status"] != "completed" {
		t.Errorf("new token = %d %s", r.Status, r.Raw)
	}
}

// TestE2ESignalBufferedSurvivesRetry: a signal buffered while the task waits for a retry is applied
// when a later attempt is answered ("if the callback finally fails" — an intermediate failure does
// not drop it).
func TestE2ESignalBufferedSurvivesRetry(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		if hit.N == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "second attempt")
	})
	s := startServer(t, "")
	id, tok, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "waitForSignal": true, "maxRetries": 2, "retryBackoff": "linear"})
	e2eWaitStatus(t, s, id, "delayed", 10*time.Second)
	r := e2eCall(t, s, "POST", "/v1/signals/"+tok, map[string]any{"status": "completed", "result": []int{1, 2}}, sigNoKey...)
	if r.Status != 202 || r.Body["buffered"] != true {
		t.Fatalf("signal while waiting for a retry = %d %s, want 202 buffered", r.Status, r.Raw)
	}
	got := e2eWaitTerminal(t, s, id, 10*time.Second)
	if got["status"] != "completed" || e2eJSON(got["result"]) != `[1,2]` || got["retryCount"] != 1.0 {
		t.Errorf("after the retry: status %v result %v retryCount %v, want completed [1,2] 1", got["status"], e2eJSON(got["result"]), got["retryCount"])
	}
	if sr := e2eObj(got["startResult"]); sr["body"] != "second attempt" {
		t.Errorf("startResult = %v", got["startResult"])
	}
}
