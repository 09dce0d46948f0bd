package main

// End-to-end tests of the task API (SPEC §2, §3) against the real binary.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/asyncqueue/asyncqueue/internal/keys"
)

// aqtTimeRE is an API time: RFC 3339, UTC, milliseconds.
var aqtTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// aqtHexTokenRE is a signal token.
var aqtHexTokenRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// aqtHit is one request received by a test target.
type aqtHit struct {
	At     time.Time
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   string
}

// aqtTarget is an httptest server on 127.0.0.1 that records every request.
type aqtTarget struct {
	URL  string
	srv  *httptest.Server
	mu   sync.Mutex
	hits []aqtHit
}

// aqtNewTarget starts a target; h answers after the hit is recorded (nil: 200 "ok").
func aqtNewTarget(t *testing.T, h http.HandlerFunc) *aqtTarget {
	t.Helper()
	tg := &aqtTarget{}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		tg.hits = append(tg.hits, aqtHit{At: time.Now(), Method: r.Method, Path: r.URL.Path,
			Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(b)})
		tg.mu.Unlock()
		if h == nil {
			io.WriteString(w, "ok")
			return
		}
		h(w, r)
	}))
	tg.URL = tg.srv.URL
	t.Cleanup(func() {
		tg.srv.CloseClientConnections()
		tg.srv.Close()
	})
	return tg
}

// Hits returns a copy of the requests received so far.
func (tg *aqtTarget) Hits() []aqtHit {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return slices.Clone(tg.hits)
}

// HitsOn returns the requests received on path.
func (tg *aqtTarget) HitsOn(path string) []aqtHit {
	var out []aqtHit
	for _, h := range tg.Hits() {
		if h.Path == path {
			out = append(out, h)
		}
	}
	return out
}

// WaitHits waits until the target has received at least n requests.
func (tg *aqtTarget) WaitHits(t *testing.T, n int, timeout time.Duration) []aqtHit {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		hs := tg.Hits()
		if len(hs) >= n {
			return hs
		}
		if time.Now().After(deadline) {
			t.Fatalf("target got %d requests after %v, want %d", len(hs), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// aqtGate holds target handlers until it is opened (or the request goes away).
type aqtGate struct {
	ch   chan struct{}
	once sync.Once
}

func aqtNewGate(t *testing.T) *aqtGate {
	g := &aqtGate{ch: make(chan struct{})}
	t.Cleanup(g.Open)
	return g
}

func (g *aqtGate) Open() { g.once.Do(func() { close(g.ch) }) }

func (g *aqtGate) Wait(r *http.Request) {
	select {
	case <-g.ch:
	case <-r.Context().Done():
	}
}

// aqtAfterRevoke calls path with a key just revoked by the offline CLI. The server may trust
// a verified key for a short while (auth.go KeyCacheTTL, 1 s), so it polls for up to 3 s.
func aqtAfterRevoke(t *testing.T, s *server, path, key string) resp {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		r := s.call("GET", path, nil, "X-API-Key", key)
		if r.Status == http.StatusUnauthorized || time.Now().After(deadline) {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// aqtErr returns the "error" of a response.
func aqtErr(r resp) string {
	s, _ := r.Body["error"].(string)
	return s
}

func aqtWant(t *testing.T, r resp, status int, what string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.Status, status, r.Raw)
	}
}

// aqtCreate creates a task and fails the test unless it gets 201.
func aqtCreate(t *testing.T, s *server, body map[string]any, headers ...string) map[string]any {
	t.Helper()
	r := s.call("POST", "/v1/tasks", body, headers...)
	aqtWant(t, r, http.StatusCreated, fmt.Sprintf("create %v", body))
	task := r.task()
	if task == nil {
		t.Fatalf("create: no task in %s", r.Raw)
	}
	return task
}

func aqtStr(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func aqtNum(m map[string]any, k string) float64 {
	f, _ := m[k].(float64)
	return f
}

func aqtObj(m map[string]any, k string) map[string]any {
	o, _ := m[k].(map[string]any)
	return o
}

func aqtAttempts(t *testing.T, s *server, id string) []map[string]any {
	t.Helper()
	r := s.call("GET", "/v1/tasks/"+id+"/attempts", nil)
	aqtWant(t, r, http.StatusOK, "attempts")
	list, ok := r.Body["attempts"].([]any)
	if !ok {
		t.Fatalf("attempts: no list in %s", r.Raw)
	}
	out := make([]map[string]any, len(list))
	for i, a := range list {
		out[i], _ = a.(map[string]any)
	}
	return out
}

func TestE2EAPICreateRejectsBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--allow-private-targets")
	const ok = "http://127.0.0.1:9/hook"
	with := func(kv ...any) map[string]any {
		m := map[string]any{"targetUrl": ok}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name   string
		body   any
		status int
		want   []string // substrings of the error message
	}{
		{"missing targetUrl", map[string]any{"method": "POST"}, 400, []string{"targetUrl"}},
		{"empty targetUrl", map[string]any{"targetUrl": ""}, 400, []string{"targetUrl"}},
		{"relative URL", map[string]any{"targetUrl": "/hook"}, 400, []string{"targetUrl"}},
		{"ftp URL", map[string]any{"targetUrl": "ftp://example.com/file"}, 400, []string{"targetUrl"}},
		{"javascript URL", map[string]any{"targetUrl": "javascript:alert(1)"}, 400, []string{"targetUrl"}},
		{"method TRACE", with("method", "TRACE"), 400, []string{"method"}},
		{"timeout 0", with("timeout", 0), 400, []string{"timeout"}},
		{"timeout 3601", with("timeout", 3601), 400, []string{"timeout"}},
		{"timeout string", with("timeout", "30"), 400, []string{"timeout"}},
		{"maxRetries 11", with("maxRetries", 11), 400, []string{"maxRetries"}},
		{"maxRetries -1", with("maxRetries", -1), 400, []string{"maxRetries"}},
		{"maxRetries 2.5", with("maxRetries", 2.5), 400, []string{"maxRetries"}},
		{"priority 0", with("priority", 0), 400, []string{"priority"}},
		{"priority 11", with("priority", 11), 400, []string{"priority"}},
		{"retryBackoff cubic", with("retryBackoff", "cubic"), 400, []string{"retryBackoff"}},
		{"maxWaitTime 0", with("maxWaitTime", 0), 400, []string{"maxWaitTime"}},
		{"maxWaitTime 31536001", with("maxWaitTime", 31536001), 400, []string{"maxWaitTime"}},
		{"delay and delayUntil", with("delay", 5, "delayUntil", "2030-01-01T00:00:00Z"), 400, []string{"delay", "delayUntil"}},
		{"delayUntil tomorrow", with("delayUntil", "tomorrow"), 400, []string{"delayUntil"}},
		{"header Host", with("headers", map[string]string{"Host": "example.com"}), 400, []string{"headers", "Host"}},
		{"header Content-Length", with("headers", map[string]string{"Content-Length": "5"}), 400, []string{"headers", "Content-Length"}},
		{"header Transfer-Encoding", with("headers", map[string]string{"Transfer-Encoding": "chunked"}), 400, []string{"headers", "Transfer-Encoding"}},
		{"header Connection", with("headers", map[string]string{"Connection": "close"}), 400, []string{"headers", "Connection"}},
		{"header name with space", with("headers", map[string]string{"X Bad": "1"}), 400, []string{"headers", "X Bad"}},
		{"header value with CRLF", with("headers", map[string]string{"X-Ok": "a\r\nInjected: 1"}), 400, []string{"headers", "X-Ok"}},
		{"header value with LF", with("headers", map[string]string{"X-Ok": "a\nb"}), 400, []string{"headers", "X-Ok"}},
		{"header value with \\x01", with("headers", map[string]string{"X-A": "a\x01b"}), 400, []string{"headers", "X-A", "0x01"}},
		{"header value with \\x0b", with("headers", map[string]string{"X-A": "a\x0bb"}), 400, []string{"headers", "X-A", "0x0b"}},
		{"header value with DEL", with("headers", map[string]string{"X-A": "a\x7fb"}), 400, []string{"headers", "X-A", "0x7f"}},
		{"header names differing in case", with("headers", map[string]string{"x-dup": "lower", "X-Dup": "canon", "X-DUP": "upper"}), 400, []string{"headers", "X-DUP", "X-Dup", "case"}},
		{"unknown field", with("colour", "blue"), 400, []string{"colour"}},
		{"unknown field targetURL (wrong case)", map[string]any{"targetURL": ok}, 400, []string{"targetURL"}},
		{"unknown field MaxRetries (wrong case)", with("MaxRetries", 2), 400, []string{"MaxRetries"}},
		{"field body a number", with("body", 42), 400, []string{"body"}},
		{"request body a number", `42`, 400, []string{"JSON object"}},
		{"not JSON at all", `hello`, 400, []string{"JSON"}},
		{"JSON array at top level", `[{"targetUrl":"` + ok + `"}]`, 400, []string{"JSON object"}},
		{"empty body", ``, 400, []string{"JSON"}},
		{"trailing garbage", `{"targetUrl":"` + ok + `"} garbage`, 400, nil},
		{"second object after the first", `{"targetUrl":"` + ok + `"}{"targetUrl":"` + ok + `"}`, 400, nil},
		{"trailing closing brace", `{"targetUrl":"` + ok + `"}}`, 400, nil},
		{"trailing closing bracket", `{"targetUrl":"` + ok + `"}]`, 400, nil},
		{"heartbeatTimeout without waitForSignal", with("heartbeatTimeout", 10), 400, []string{"heartbeatTimeout", "waitForSignal"}},
		{"targetUrl and callbackUrl", with("callbackUrl", ok), 400, []string{"targetUrl", "callbackUrl"}},
		{"cloud metadata under --allow-private-targets", map[string]any{"targetUrl": "http://169.254.169.254/latest/meta-data/"}, 422, []string{"targetUrl", "169.254.169.254"}},
		{"cloud metadata as onCompleteUrl", with("onCompleteUrl", "http://169.254.169.254/"), 422, []string{"onCompleteUrl"}},
	}
	for _, c := range cases {
		r := s.call("POST", "/v1/tasks", c.body)
		msg := aqtErr(r)
		switch {
		case r.Status >= 500:
			t.Errorf("%s: server error %d: %s", c.name, r.Status, r.Raw)
			continue
		case r.Status != c.status:
			t.Errorf("%s: status %d, want %d: %s", c.name, r.Status, c.status, r.Raw)
			continue
		case msg == "":
			t.Errorf("%s: no {\"error\": ...} in %s", c.name, r.Raw)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error %q does not name %q", c.name, msg, w)
			}
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
	}

	// A body over --max-body (1 MiB) is 413. Only 64 KiB over: the server closes the
	// connection after its answer, and a client still sending much more would see a reset
	// instead of the answer.
	big := map[string]any{"targetUrl": ok, "body": strings.Repeat("x", 1<<20+64<<10)}
	r := s.call("POST", "/v1/tasks", big)
	if r.Status != http.StatusRequestEntityTooLarge || aqtErr(r) == "" {
		t.Errorf("body over 1 MiB: status %d, want 413 with an error: %.300s", r.Status, r.Raw)
	}

	// callbackUrl alone is an alias of targetUrl.
	r = s.call("POST", "/v1/tasks", map[string]any{"callbackUrl": ok, "delay": 3600})
	aqtWant(t, r, http.StatusCreated, "callbackUrl alias")
	if got := aqtStr(r.task(), "targetUrl"); got != ok {
		t.Errorf("callbackUrl alias: targetUrl %q, want %q", got, ok)
	}

	// None of the refused requests created a task.
	r = s.call("GET", "/v1/tasks?limit=100", nil)
	aqtWant(t, r, http.StatusOK, "list")
	if total := aqtNum(aqtObj(r.Body, "pagination"), "total"); total != 1 {
		t.Errorf("after the refused requests the team has %v tasks, want 1 (the callbackUrl one): %.500s", total, r.Raw)
	}
}

func TestE2EAPICreateRejectsPrivateTargetByDefault(t *testing.T) {
	t.Parallel()
	// The harness opens 127.0.0.0/8 unless an --allow-* flag is given; this one changes nothing.
	s := startServer(t, "", "--allow-private-targets=false")
	for _, u := range []string{"http://127.0.0.1/", "http://localhost:8080/x", "http://10.1.2.3/", "http://[::1]/"} {
		r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": u})
		if r.Status != http.StatusUnprocessableEntity {
			t.Errorf("%s: status %d, want 422: %s", u, r.Status, r.Raw)
			continue
		}
		if msg := aqtErr(r); !strings.Contains(msg, "--allow-private-targets") || !strings.Contains(msg, "targetUrl") {
			t.Errorf("%s: error %q should name targetUrl and --allow-private-targets", u, msg)
		}
	}
	r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": "http://169.254.169.254/"})
	if r.Status != http.StatusUnprocessableEntity {
		t.Errorf("metadata: status %d, want 422: %s", r.Status, r.Raw)
	}
	r = s.call("POST", "/v1/tasks", map[string]any{"targetUrl": "https://example.com/", "onCompleteUrl": "http://127.0.0.1:1/"})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(aqtErr(r), "onCompleteUrl") {
		t.Errorf("private onCompleteUrl: status %d, want 422 naming onCompleteUrl: %s", r.Status, r.Raw)
	}
	// Poll URLs whose host is written out are checked like targetUrl (SPEC §7).
	poll := func(field, tmpl string) map[string]any {
		cfg := map[string]any{"urlTemplate": "https://example.com/jobs/{startResult.body.id}", "interval": 5,
			"statusPath": "status", "doneValues": []string{"done"}}
		cfg[field] = tmpl
		return map[string]any{"targetUrl": "https://example.com/", "pollConfig": cfg}
	}
	for _, c := range []struct{ field, tmpl string }{
		{"urlTemplate", "http://127.0.0.1:18210/s/{startResult.body.id}"},
		{"urlTemplate", "http://[::1]/status?id={startResult.body.id}"},
		{"urlTemplate", "http://169.254.169.254/latest"},
		{"resultUrlTemplate", "http://10.0.0.1/result/{startResult.body.id}"},
	} {
		r = s.call("POST", "/v1/tasks", poll(c.field, c.tmpl))
		if r.Status != http.StatusUnprocessableEntity || !strings.Contains(aqtErr(r), "pollConfig."+c.field) {
			t.Errorf("pollConfig.%s %s: status %d, want 422 naming the field: %s", c.field, c.tmpl, r.Status, r.Raw)
		}
	}
	// A host made by the start response is checked when it is known, at call time.
	r = s.call("POST", "/v1/tasks", poll("urlTemplate", "{startResult.body.url}"))
	if r.Status != http.StatusCreated {
		t.Errorf("whole-URL poll template: status %d, want 201: %s", r.Status, r.Raw)
	}
}

func TestE2EAPIAuth(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, nil)
	id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL, "delay": 3600}), "id")

	r := s.call("GET", "/v1/tasks", nil, "X-API-Key", "")
	aqtWant(t, r, http.StatusUnauthorized, "no key")
	if len(r.Body) != 1 || aqtErr(r) != "API key required" {
		t.Errorf("no key: body %s, want {\"error\":\"API key required\"}", r.Raw)
	}

	unknown, _ := keys.NewAPIKey()
	for name, k := range map[string]string{
		"garbage":                   "garbage",
		"bad checksum":              "async_" + strings.Repeat("A", 49),
		"well-formed but unknown":   unknown,
		"bootstrap key with suffix": s.key + "x",
	} {
		r := s.call("GET", "/v1/tasks", nil, "X-API-Key", k)
		if r.Status != http.StatusUnauthorized || aqtErr(r) != "Invalid or revoked API key" {
			t.Errorf("%s key: %d %s, want 401 Invalid or revoked API key", name, r.Status, r.Raw)
		}
		r = s.call("GET", "/v1/tasks", nil, "X-API-Key", "", "Authorization", "Bearer "+k)
		if r.Status != http.StatusUnauthorized || aqtErr(r) != "Invalid or revoked API key" {
			t.Errorf("%s key as Bearer: %d %s, want 401 Invalid or revoked API key", name, r.Status, r.Raw)
		}
	}

	// Authorization: Bearer works as well as X-API-Key.
	r = s.call("GET", "/v1/tasks/"+id, nil, "X-API-Key", "", "Authorization", "Bearer "+s.key)
	aqtWant(t, r, http.StatusOK, "Bearer")
	if aqtStr(r.task(), "id") != id {
		t.Errorf("Bearer: got %s", r.Raw)
	}

	// A key made with the CLI works until it is revoked.
	extra := aqtKeysCreate(t, s.db)
	r = s.call("GET", "/v1/tasks/"+id, nil, "X-API-Key", extra)
	aqtWant(t, r, http.StatusOK, "CLI key")
	aqtCLIOK(t, "--db", s.db, "keys", "revoke", aqtKeyID(t, s.db, extra))
	r = aqtAfterRevoke(t, s, "/v1/tasks/"+id, extra)
	if r.Status != http.StatusUnauthorized || aqtErr(r) != "Invalid or revoked API key" {
		t.Errorf("revoked key: %d %s, want 401 Invalid or revoked API key", r.Status, r.Raw)
	}

	// Another team's key sees nothing of this team.
	keyB := aqtTeamCreate(t, s.db, "teamb")
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/tasks/" + id},
		{"GET", "/v1/tasks/" + id + "/attempts"},
		{"POST", "/v1/tasks/" + id + "/cancel"},
		{"POST", "/v1/tasks/" + id + "/retry"},
	} {
		r := s.call(c.method, c.path, nil, "X-API-Key", keyB)
		if r.Status != http.StatusForbidden || aqtErr(r) != "Access denied" {
			t.Errorf("team B %s %s: %d %s, want 403 Access denied", c.method, c.path, r.Status, r.Raw)
		}
	}
	r = s.call("GET", "/v1/tasks", nil, "X-API-Key", keyB)
	aqtWant(t, r, http.StatusOK, "team B list")
	if total := aqtNum(aqtObj(r.Body, "pagination"), "total"); total != 0 {
		t.Errorf("team B lists %v tasks, want 0: %s", total, r.Raw)
	}
	if st := aqtStr(s.call("GET", "/v1/tasks/"+id, nil).task(), "status"); st != "delayed" {
		t.Errorf("after team B's attempts the task is %q, want delayed", st)
	}
}

func TestE2EAPICreateDefaults(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, nil)
	before := time.Now()
	r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL + "/hook"})
	aqtWant(t, r, http.StatusCreated, "create")
	if _, ok := r.Body["signalToken"]; ok {
		t.Errorf("a task without waitForSignal got a signalToken: %s", r.Raw)
	}
	task := r.task()
	want := map[string]any{
		"status": "pending", "targetUrl": tg.URL + "/hook", "method": "POST", "timeout": 30.0,
		"maxRetries": 3.0, "retryBackoff": "exponential", "priority": 5.0, "maxWaitTime": 30.0,
		"waitForSignal": false, "retryCount": 0.0,
	}
	for k, v := range want {
		if task[k] != v {
			t.Errorf("%s = %#v, want %#v", k, task[k], v)
		}
	}
	if h, ok := task["headers"].(map[string]any); !ok || len(h) != 0 {
		t.Errorf("headers = %#v, want {}", task["headers"])
	}
	for _, k := range []string{"body", "delayUntil", "onCompleteUrl", "result", "error", "completedAt"} {
		if task[k] != nil {
			t.Errorf("%s = %#v, want null", k, task[k])
		}
	}
	if aqtStr(task, "teamId") == "" {
		t.Errorf("no teamId: %s", r.Raw)
	}
	id := aqtStr(task, "id")
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != id {
		t.Errorf("id %q is not a canonical UUIDv7 (err %v)", id, err)
	}
	created := aqtStr(task, "createdAt")
	if !aqtTimeRE.MatchString(created) {
		t.Errorf("createdAt %q is not RFC 3339 UTC with milliseconds", created)
	} else if ct, _ := time.Parse(time.RFC3339, created); ct.Before(before.Add(-2*time.Second)) || ct.After(time.Now().Add(2*time.Second)) {
		t.Errorf("createdAt %s is not now (%s)", created, before.UTC().Format(time.RFC3339Nano))
	}

	done := s.waitStatus(id, "completed", 15*time.Second)
	for _, k := range []string{"createdAt", "startedAt", "completedAt"} {
		if v := aqtStr(done, k); !aqtTimeRE.MatchString(v) {
			t.Errorf("%s %q is not RFC 3339 UTC with milliseconds", k, v)
		}
	}
	res := aqtObj(done, "result")
	if aqtNum(res, "statusCode") != 200 || aqtStr(res, "body") != "ok" {
		t.Errorf("result = %#v, want statusCode 200 body ok", res)
	}
	if _, ok := res["duration"].(float64); !ok {
		t.Errorf("result.duration = %#v, want a number (ms)", res["duration"])
	}
	hits := tg.Hits()
	if len(hits) != 1 {
		t.Fatalf("target got %d calls, want 1", len(hits))
	}
	h := hits[0]
	if h.Method != "POST" || h.Header.Get("X-AsyncQueue-Task-Id") != id || h.Header.Get("X-AsyncQueue-Retry-Count") != "0" ||
		!strings.HasPrefix(h.Header.Get("User-Agent"), "asyncqueue/") {
		t.Errorf("callback %s with headers %v", h.Method, h.Header)
	}

	// UUIDv7: later tasks sort after earlier ones.
	id2 := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/hook", "delay": 3600}), "id")
	if id2 <= id {
		t.Errorf("second id %s does not sort after first %s", id2, id)
	}
}

func TestE2EAPIDelay(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, nil)
	created := time.Now()
	task := aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/delayed", "delay": 2})
	if st := aqtStr(task, "status"); st != "delayed" {
		t.Errorf("delay 2: status %q, want delayed", st)
	}
	du := aqtStr(task, "delayUntil")
	if dt, err := time.Parse(time.RFC3339, du); !aqtTimeRE.MatchString(du) || err != nil ||
		dt.Sub(created) < time.Second || dt.Sub(created) > 3*time.Second {
		t.Errorf("delayUntil %q, want about 2 s after %s", du, created.UTC().Format(time.RFC3339Nano))
	}
	hits := tg.WaitHits(t, 1, 10*time.Second)
	if el := hits[0].At.Sub(created); el < 1600*time.Millisecond || el > 5*time.Second {
		t.Errorf("delay 2: target called %v after create, want about 2 s", el)
	}
	s.waitStatus(aqtStr(task, "id"), "completed", 10*time.Second)

	created = time.Now()
	past := aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/past", "delayUntil": "2020-01-01T00:00:00Z"})
	if st := aqtStr(past, "status"); st != "pending" {
		t.Errorf("delayUntil in the past: status %q, want pending", st)
	}
	hits = tg.WaitHits(t, 2, 5*time.Second)
	if el := hits[1].At.Sub(created); el > 3*time.Second {
		t.Errorf("delayUntil in the past: target called %v after create, want at once", el)
	}
	s.waitStatus(aqtStr(past, "id"), "completed", 10*time.Second)
}

// A create is created, and its delay counts, from when its handler started: createdAt lies
// between sending the request and reading the answer, on every system, and delayUntil is
// createdAt plus the delay.
func TestE2EAPIDelayCountsFromCreatedAt(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	sent := time.Now()
	task := aqtCreate(t, s, map[string]any{"targetUrl": "http://127.0.0.1:9/later", "delay": 30})
	answered := time.Now()
	created, err1 := time.Parse(time.RFC3339, aqtStr(task, "createdAt"))
	due, err2 := time.Parse(time.RFC3339, aqtStr(task, "delayUntil"))
	if err1 != nil || err2 != nil {
		t.Fatalf("createdAt %v, delayUntil %v", err1, err2)
	}
	// createdAt has millisecond precision, truncated.
	if created.Before(sent.Truncate(time.Millisecond)) || created.After(answered) {
		t.Errorf("createdAt %s: want between sending (%s) and the answer (%s)", created.Format(time.StampMilli),
			sent.Format(time.StampMilli), answered.Format(time.StampMilli))
	}
	if d := due.Sub(created); d < 30*time.Second || d > 30*time.Second+time.Millisecond {
		t.Errorf("delayUntil is %v after createdAt, want 30 s", d)
	}
}

func TestE2EAPILongPoll(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	gate := aqtNewGate(t)
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) { gate.Wait(r) })
	id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL}), "id")
	tg.WaitHits(t, 1, 10*time.Second) // processing now

	go func() {
		time.Sleep(700 * time.Millisecond)
		gate.Open()
	}()
	start := time.Now()
	r := s.call("GET", "/v1/tasks/"+id+"?wait=5", nil)
	el := time.Since(start)
	aqtWant(t, r, http.StatusOK, "long poll")
	if st := aqtStr(r.task(), "status"); st != "completed" {
		t.Errorf("long poll answered with status %q, want completed", st)
	}
	if el < 400*time.Millisecond || el > 4*time.Second {
		t.Errorf("long poll took %v; want it to hold until the change (~0.7 s) and answer well before 5 s", el)
	}

	// A terminal task answers at once.
	start = time.Now()
	r = s.call("GET", "/v1/tasks/"+id+"?wait=5", nil)
	if el := time.Since(start); r.Status != 200 || el > 2*time.Second {
		t.Errorf("long poll on a completed task: %d after %v", r.Status, el)
	}
	r = s.call("GET", "/v1/tasks/"+id+"?wait=abc", nil)
	if r.Status != http.StatusBadRequest {
		t.Errorf("wait=abc: %d, want 400", r.Status)
	}
}

func TestE2EAPIList(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, nil)
	localURL := strings.Replace(tg.URL, "127.0.0.1", "localhost", 1)

	var ids, created []string
	add := func(body map[string]any) map[string]any {
		task := aqtCreate(t, s, body)
		ids = append(ids, aqtStr(task, "id"))
		created = append(created, aqtStr(task, "createdAt"))
		time.Sleep(5 * time.Millisecond) // distinct createdAt milliseconds
		return task
	}
	add(map[string]any{"targetUrl": tg.URL + "/a", "delay": 3600})
	add(map[string]any{"targetUrl": tg.URL + "/b", "delay": 3600})
	add(map[string]any{"targetUrl": localURL + "/c", "delay": 3600})
	add(map[string]any{"targetUrl": tg.URL + "/d?next=http://localhost/x", "delay": 3600})
	add(map[string]any{"targetUrl": localURL + "/e", "delay": 3600})
	done := add(map[string]any{"targetUrl": tg.URL + "/f"})
	s.waitStatus(aqtStr(done, "id"), "completed", 15*time.Second)
	aqtWant(t, s.call("POST", "/v1/tasks/"+ids[1]+"/cancel", nil), 200, "cancel")

	list := func(q string) ([]string, map[string]any) {
		t.Helper()
		r := s.call("GET", "/v1/tasks"+q, nil)
		aqtWant(t, r, http.StatusOK, "list "+q)
		arr, ok := r.Body["tasks"].([]any)
		if !ok {
			t.Fatalf("list %s: no tasks array: %s", q, r.Raw)
		}
		var out []string
		for _, x := range arr {
			out = append(out, aqtStr(x.(map[string]any), "id"))
		}
		return out, aqtObj(r.Body, "pagination")
	}
	rev := func(idx ...int) []string {
		var out []string
		for i := len(idx) - 1; i >= 0; i-- {
			out = append(out, ids[idx[i]])
		}
		return out
	}
	check := func(q string, want []string, total float64, hasMore bool) {
		t.Helper()
		got, p := list(q)
		if !slices.Equal(got, want) {
			t.Errorf("list %s: ids %v, want %v", q, got, want)
		}
		if aqtNum(p, "total") != total || p["hasMore"] != hasMore {
			t.Errorf("list %s: pagination %v, want total %v hasMore %v", q, p, total, hasMore)
		}
	}

	check("", rev(0, 1, 2, 3, 4, 5), 6, false) // newest first
	check("?status=cancelled", rev(1), 1, false)
	check("?status=cancelled,completed", rev(1, 5), 2, false)
	check("?status=cancelled&status=completed", rev(1, 5), 2, false) // repeated, as generated clients send it
	check("?status=cancelled&status=completed,delayed", rev(0, 1, 2, 3, 4, 5), 6, false)
	check("?status=cancelled,cancelled&status=cancelled", rev(1), 1, false)
	check("?status=delayed", rev(0, 2, 3, 4), 4, false)
	check("?status=waiting", nil, 0, false)
	check("?limit=2", rev(4, 5), 6, true)
	check("?limit=2&offset=2", rev(2, 3), 6, true)
	check("?limit=2&offset=4", rev(0, 1), 6, false)
	check("?limit=2&offset=5", rev(0), 6, false)
	check("?status=delayed&limit=1&offset=1", rev(3), 4, true)
	check("?createdAfter="+created[2], rev(3, 4, 5), 3, false)
	check("?createdBefore="+created[2], rev(0, 1), 2, false)
	check("?createdAfter="+created[0]+"&createdBefore="+created[3], rev(1, 2), 2, false)
	check("?targetHost=localhost", rev(2, 4), 2, false)
	check("?targetHost=127.0.0.1", rev(0, 1, 3, 5), 4, false)

	_, p := list("?limit=1000")
	if aqtNum(p, "limit") != 100 {
		t.Errorf("limit=1000: pagination.limit %v, want 100 (clamped)", p["limit"])
	}
	_, p = list("?limit=3&offset=1")
	if aqtNum(p, "limit") != 3 || aqtNum(p, "offset") != 1 {
		t.Errorf("limit=3&offset=1: pagination %v", p)
	}

	for _, q := range []string{"?status=bogus", "?status=delayed,bogus", "?limit=0", "?limit=x", "?offset=-1", "?createdAfter=yesterday"} {
		r := s.call("GET", "/v1/tasks"+q, nil)
		if r.Status != http.StatusBadRequest || aqtErr(r) == "" {
			t.Errorf("list %s: %d %s, want 400", q, r.Status, r.Raw)
		}
	}
	r := s.call("GET", "/v1/tasks?status=bogus", nil)
	if !strings.Contains(aqtErr(r), "bogus") {
		t.Errorf("bad status: error %q does not name the value", aqtErr(r))
	}
}

func TestE2EAPICancel(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--max-in-flight", "1")
	gate := aqtNewGate(t)
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			gate.Wait(r)
		}
	})

	// delayed → cancelled; its timer must not fire.
	delayedAt := time.Now()
	delayed := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/delayed", "delay": 1}), "id")
	r := s.call("POST", "/v1/tasks/"+delayed+"/cancel", nil)
	aqtWant(t, r, http.StatusOK, "cancel delayed")
	if st := aqtStr(r.task(), "status"); st != "cancelled" || !aqtTimeRE.MatchString(aqtStr(r.task(), "completedAt")) {
		t.Errorf("cancel delayed: status %q completedAt %v", st, r.task()["completedAt"])
	}

	// pending → cancelled: the only worker is busy, so the task stays pending.
	blocker := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/block"}), "id")
	tg.WaitHits(t, 1, 10*time.Second)
	pending := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/pending"}), "id")
	if st := aqtStr(s.call("GET", "/v1/tasks/"+pending, nil).task(), "status"); st != "pending" {
		t.Fatalf("task behind a busy worker is %q, want pending", st)
	}
	r = s.call("POST", "/v1/tasks/"+pending+"/cancel", nil)
	aqtWant(t, r, http.StatusOK, "cancel pending")
	if st := aqtStr(r.task(), "status"); st != "cancelled" {
		t.Errorf("cancel pending: status %q", st)
	}
	r = s.call("POST", "/v1/tasks/"+pending+"/cancel", nil)
	if r.Status != http.StatusConflict || aqtErr(r) != "Task cannot be cancelled (current: cancelled)" {
		t.Errorf("cancel twice: %d %s", r.Status, r.Raw)
	}

	gate.Open()
	s.waitStatus(blocker, "completed", 10*time.Second)
	// A task queued after the cancelled one runs; by then the worker has passed the cancelled one.
	after := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/after"}), "id")
	s.waitStatus(after, "completed", 10*time.Second)
	if wait := time.Until(delayedAt.Add(2500 * time.Millisecond)); wait > 0 {
		time.Sleep(wait) // past the cancelled delayed task's due time
	}
	for _, p := range []string{"/delayed", "/pending"} {
		if n := len(tg.HitsOn(p)); n != 0 {
			t.Errorf("cancelled task's target %s was called %d times", p, n)
		}
	}
	for _, id := range []string{delayed, pending} {
		if st := aqtStr(s.call("GET", "/v1/tasks/"+id, nil).task(), "status"); st != "cancelled" {
			t.Errorf("cancelled task %s is now %q", id, st)
		}
	}

	r = s.call("POST", "/v1/tasks/"+after+"/cancel", nil)
	if r.Status != http.StatusConflict || aqtErr(r) != "Task cannot be cancelled (current: completed)" {
		t.Errorf("cancel completed: %d %s, want 409 Task cannot be cancelled (current: completed)", r.Status, r.Raw)
	}
	r = s.call("POST", "/v1/tasks/"+uuid.Must(uuid.NewV7()).String()+"/cancel", nil)
	if r.Status != http.StatusNotFound {
		t.Errorf("cancel unknown task: %d %s, want 404", r.Status, r.Raw)
	}
}

func TestE2EAPIRetry(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	var mu sync.Mutex
	flaky := 0
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(http.StatusInternalServerError)
		case "/flaky": // 500 the first time, then 200
			mu.Lock()
			flaky++
			n := flaky
			mu.Unlock()
			if n == 1 {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}
	})

	// A failed task runs again; its attempt history is kept.
	id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/fail", "maxRetries": 0}), "id")
	s.waitStatus(id, "failed", 15*time.Second)
	r := s.call("POST", "/v1/tasks/"+id+"/retry", nil)
	aqtWant(t, r, http.StatusOK, "retry failed")
	if st := aqtStr(r.task(), "status"); st != "pending" {
		t.Errorf("retry: status %q, want pending", st)
	}
	if _, ok := r.Body["signalToken"]; ok {
		t.Errorf("retry of a plain task returned a signalToken")
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(tg.HitsOn("/fail")) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(tg.HitsOn("/fail")); n != 2 {
		t.Fatalf("after retry the target was called %d times, want 2", n)
	}
	final := s.waitStatus(id, "failed", 15*time.Second)
	if aqtStr(final, "error") != "Server error: HTTP 500 - Internal Server Error" {
		t.Errorf("error after retry: %v", final["error"])
	}
	as := aqtAttempts(t, s, id)
	if len(as) != 2 || aqtNum(as[0], "attempt") != 1 || aqtNum(as[1], "attempt") != 2 ||
		aqtNum(as[0], "statusCode") != 500 || aqtNum(as[1], "statusCode") != 500 {
		t.Errorf("attempts after retry: %v, want attempts 1 and 2 with status 500", as)
	}

	// A wait/signal task gets a new token; the old one stops working.
	r = s.call("POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL + "/flaky", "waitForSignal": true,
		"maxRetries": 0, "maxWaitTime": 120})
	aqtWant(t, r, http.StatusCreated, "create wait task")
	wid := aqtStr(r.task(), "id")
	oldToken, _ := r.Body["signalToken"].(string)
	if !aqtHexTokenRE.MatchString(oldToken) {
		t.Fatalf("signalToken %q is not 64 hex", oldToken)
	}
	s.waitStatus(wid, "failed", 15*time.Second)
	r = s.call("POST", "/v1/tasks/"+wid+"/retry", nil)
	aqtWant(t, r, http.StatusOK, "retry wait task")
	newToken, _ := r.Body["signalToken"].(string)
	if !aqtHexTokenRE.MatchString(newToken) || newToken == oldToken {
		t.Fatalf("retry of a wait task: signalToken %q (old %q), want a new 64-hex token", newToken, oldToken)
	}
	s.waitStatus(wid, "waiting", 15*time.Second)
	sig := map[string]any{"status": "completed", "result": map[string]any{"ok": true}}
	r = s.call("POST", "/v1/signals/"+oldToken, sig)
	if r.Status != http.StatusNotFound || aqtErr(r) != "Invalid or expired signal token" {
		t.Errorf("old token after retry: %d %s, want 404 Invalid or expired signal token", r.Status, r.Raw)
	}
	r = s.call("POST", "/v1/signals/"+newToken, sig)
	aqtWant(t, r, http.StatusOK, "signal with the new token")
	if st := aqtStr(r.task(), "status"); st != "completed" {
		t.Errorf("signal with the new token: status %q", st)
	}

	// Only failed, timeout and cancelled tasks can be retried.
	r = s.call("POST", "/v1/tasks/"+wid+"/retry", nil)
	if r.Status != http.StatusConflict || !strings.Contains(aqtErr(r), "(current: completed)") {
		t.Errorf("retry completed: %d %s, want 409 naming the status", r.Status, r.Raw)
	}
	delayed := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL, "delay": 3600}), "id")
	r = s.call("POST", "/v1/tasks/"+delayed+"/retry", nil)
	if r.Status != http.StatusConflict {
		t.Errorf("retry delayed: %d %s, want 409", r.Status, r.Raw)
	}
	// A cancelled task can be retried and runs now.
	aqtWant(t, s.call("POST", "/v1/tasks/"+delayed+"/cancel", nil), 200, "cancel")
	aqtWant(t, s.call("POST", "/v1/tasks/"+delayed+"/retry", nil), 200, "retry cancelled")
	s.waitStatus(delayed, "completed", 15*time.Second)
}

func TestE2EAPIIdempotencyKey(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, nil)
	keyB := aqtTeamCreate(t, s.db, "teamb")
	body := map[string]any{"targetUrl": tg.URL, "waitForSignal": true, "delay": 3600}

	r1 := s.call("POST", "/v1/tasks", body, "Idempotency-Key", "order-42")
	aqtWant(t, r1, http.StatusCreated, "first")
	id := aqtStr(r1.task(), "id")
	if tok, _ := r1.Body["signalToken"].(string); !aqtHexTokenRE.MatchString(tok) {
		t.Errorf("first create: signalToken %v", r1.Body["signalToken"])
	}
	if r1.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("first create has Idempotent-Replayed")
	}

	r2 := s.call("POST", "/v1/tasks", body, "Idempotency-Key", "order-42")
	aqtWant(t, r2, http.StatusOK, "replay")
	if r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: Idempotent-Replayed %q, want true", r2.Header.Get("Idempotent-Replayed"))
	}
	if got := aqtStr(r2.task(), "id"); got != id {
		t.Errorf("replay: task %s, want %s", got, id)
	}
	if _, ok := r2.Body["signalToken"]; ok {
		t.Errorf("replay repeated the one-time signalToken: %s", r2.Raw)
	}

	diff := map[string]any{"targetUrl": tg.URL, "waitForSignal": true, "delay": 3599}
	r3 := s.call("POST", "/v1/tasks", diff, "Idempotency-Key", "order-42")
	if r3.Status != http.StatusConflict || aqtErr(r3) == "" {
		t.Errorf("same key, different body: %d %s, want 409", r3.Status, r3.Raw)
	}

	// Another team's identical key is independent.
	r4 := s.call("POST", "/v1/tasks", body, "Idempotency-Key", "order-42", "X-API-Key", keyB)
	aqtWant(t, r4, http.StatusCreated, "team B")
	idB := aqtStr(r4.task(), "id")
	if idB == id || aqtStr(r4.task(), "teamId") == aqtStr(r1.task(), "teamId") {
		t.Errorf("team B got task %s of team %s, want a new task of its own", idB, aqtStr(r4.task(), "teamId"))
	}
	if _, ok := r4.Body["signalToken"]; !ok {
		t.Errorf("team B's first create has no signalToken")
	}
	r5 := s.call("POST", "/v1/tasks", body, "Idempotency-Key", "order-42", "X-API-Key", keyB)
	if r5.Status != http.StatusOK || aqtStr(r5.task(), "id") != idB {
		t.Errorf("team B replay: %d %s, want 200 with %s", r5.Status, r5.Raw, idB)
	}

	// A different key creates another task.
	r6 := s.call("POST", "/v1/tasks", body, "Idempotency-Key", "order-43")
	aqtWant(t, r6, http.StatusCreated, "other key")

	r := s.call("GET", "/v1/tasks", nil)
	if total := aqtNum(aqtObj(r.Body, "pagination"), "total"); total != 2 {
		t.Errorf("team A has %v tasks, want 2", total)
	}
}

func TestE2EAPIPriorityOrder(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--max-in-flight", "1")
	gate := aqtNewGate(t)
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			gate.Wait(r)
		}
	})
	aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/block", "priority": 1})
	tg.WaitHits(t, 1, 10*time.Second)

	var ids []string
	for _, p := range []struct {
		path string
		prio int
	}{{"/p3", 3}, {"/p9", 9}, {"/p1", 1}, {"/p4a", 4}, {"/p10", 10}, {"/p5", 5}, {"/p4b", 4}, {"/p7", 7}, {"/p2", 2}} {
		ids = append(ids, aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + p.path, "priority": p.prio}), "id"))
		time.Sleep(2 * time.Millisecond)
	}
	for _, id := range ids {
		if st := aqtStr(s.call("GET", "/v1/tasks/"+id, nil).task(), "status"); st != "pending" {
			t.Fatalf("queued task %s is %q, want pending", id, st)
		}
	}
	gate.Open()
	hits := tg.WaitHits(t, 10, 20*time.Second)
	var got []string
	for _, h := range hits[1:] {
		got = append(got, h.Path)
	}
	want := []string{"/p10", "/p9", "/p7", "/p5", "/p4a", "/p4b", "/p3", "/p2", "/p1"}
	if !slices.Equal(got, want) {
		t.Errorf("run order %v, want %v", got, want)
	}
}

// aqtCheckGaps checks that consecutive calls are apart by about want (coarse bounds).
func aqtCheckGaps(t *testing.T, hits []aqtHit, want []time.Duration) {
	t.Helper()
	for i := 1; i < len(hits) && i <= len(want); i++ {
		gap := hits[i].At.Sub(hits[i-1].At)
		w := want[i-1]
		if gap < w*8/10 || gap > w+2*time.Second {
			t.Errorf("gap before attempt %d: %v, want about %v", i+1, gap.Round(time.Millisecond), w)
		}
	}
}

func TestE2EAPIRetriesExponential(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL, "maxRetries": 3}), "id")
	task := s.waitStatus(id, "failed", 40*time.Second)
	time.Sleep(300 * time.Millisecond)
	hits := tg.Hits()
	if len(hits) != 4 {
		t.Fatalf("target called %d times, want 4 (1 + maxRetries 3)", len(hits))
	}
	aqtCheckGaps(t, hits, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second})
	for i, h := range hits {
		if got := h.Header.Get("X-AsyncQueue-Retry-Count"); got != fmt.Sprint(i) {
			t.Errorf("attempt %d: X-AsyncQueue-Retry-Count %q, want %d", i+1, got, i)
		}
	}
	const msg = "Server error: HTTP 500 - Internal Server Error"
	if aqtStr(task, "error") != msg {
		t.Errorf("error %q, want %q", task["error"], msg)
	}
	if aqtNum(task, "retryCount") != 3 {
		t.Errorf("retryCount %v, want 3", task["retryCount"])
	}
	as := aqtAttempts(t, s, id)
	if len(as) != 4 {
		t.Fatalf("attempts: %d entries, want 4: %v", len(as), as)
	}
	for i, a := range as {
		if aqtNum(a, "attempt") != float64(i+1) || aqtNum(a, "statusCode") != 500 || aqtStr(a, "error") != msg ||
			!aqtTimeRE.MatchString(aqtStr(a, "startedAt")) {
			t.Errorf("attempt %d: %v", i+1, a)
		}
		if d, ok := a["duration"].(float64); !ok || d < 0 || d > 5000 {
			t.Errorf("attempt %d: duration %v, want milliseconds", i+1, a["duration"])
		}
	}
	for i := 1; i < len(as); i++ {
		a, _ := time.Parse(time.RFC3339, aqtStr(as[i-1], "startedAt"))
		b, _ := time.Parse(time.RFC3339, aqtStr(as[i], "startedAt"))
		if !b.After(a) {
			t.Errorf("attempt %d started at %v, not after attempt %d at %v", i+1, b, i, a)
		}
	}
}

func TestE2EAPIRetriesLinear(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL, "maxRetries": 2, "retryBackoff": "linear"}), "id")
	task := s.waitStatus(id, "failed", 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	hits := tg.Hits()
	if len(hits) != 3 {
		t.Fatalf("target called %d times, want 3", len(hits))
	}
	aqtCheckGaps(t, hits, []time.Duration{time.Second, 2 * time.Second})
	if aqtStr(task, "error") != "Server error: HTTP 502 - Bad Gateway" {
		t.Errorf("error %q", task["error"])
	}
	if n := len(aqtAttempts(t, s, id)); n != 3 {
		t.Errorf("attempts: %d, want 3", n)
	}
}

func TestE2EAPICallbackOutcomes(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/404":
			http.NotFound(w, r)
		case "/hang":
			<-r.Context().Done()
		case "/big":
			w.Write([]byte(strings.Repeat("a", 200<<10)))
		}
	})
	notFound := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/404"}), "id")
	hang := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/hang", "timeout": 1, "maxRetries": 0}), "id")
	closed := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": "http://" + freePort(t) + "/", "maxRetries": 0}), "id")
	big := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/big"}), "id")

	// 4xx counts as answered.
	task := s.waitStatus(notFound, "completed", 15*time.Second)
	if res := aqtObj(task, "result"); aqtNum(res, "statusCode") != 404 {
		t.Errorf("404 target: result %v", res)
	}
	if task["error"] != nil {
		t.Errorf("404 target: error %v, want null", task["error"])
	}
	if n := len(tg.HitsOn("/404")); n != 1 {
		t.Errorf("404 target called %d times, want 1", n)
	}
	if as := aqtAttempts(t, s, notFound); len(as) != 1 || aqtNum(as[0], "statusCode") != 404 || as[0]["error"] != nil {
		t.Errorf("404 target: attempts %v", as)
	}

	task = s.waitStatus(hang, "failed", 15*time.Second)
	if aqtStr(task, "error") != "Request timeout after 1s" {
		t.Errorf("timeout: error %q, want Request timeout after 1s", task["error"])
	}
	if as := aqtAttempts(t, s, hang); len(as) != 1 || as[0]["statusCode"] != nil {
		t.Errorf("timeout: attempts %v, want one without a status code", as)
	} else if d := aqtNum(as[0], "duration"); d < 800 || d > 5000 {
		t.Errorf("timeout: attempt duration %v ms, want about 1000", d)
	}

	task = s.waitStatus(closed, "failed", 15*time.Second)
	if e := aqtStr(task, "error"); !strings.HasPrefix(e, "Network error:") {
		t.Errorf("closed port: error %q, want Network error: …", e)
	}

	task = s.waitStatus(big, "completed", 15*time.Second)
	res := aqtObj(task, "result")
	if res["truncated"] != true {
		t.Errorf("200 KiB response: truncated %v, want true", res["truncated"])
	}
	if b := aqtStr(res, "body"); len(b) == 0 || len(b) >= 200<<10 || strings.Trim(b, "a") != "" {
		t.Errorf("200 KiB response: stored body of %d bytes, want a cut prefix", len(b))
	}
}

// aqtJSONLines parses the JSON log lines of a server.
func aqtJSONLines(logs string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}
