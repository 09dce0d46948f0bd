package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/signing"
)

// fake is a scripted API server that records what it was sent.
type fake struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []fakeReq
}

type fakeReq struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
}

func newFake(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *fake {
	f := &fake{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, fakeReq{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), string(b)})
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		h(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) last() fakeReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1]
}

func TestClientErrorMapping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status  int
		body    string
		header  string
		is      []error
		message string
		retry   time.Duration
	}{
		{404, `{"error":"Task not found"}`, "", []error{ErrNotFound}, "Task not found", 0},
		{409, `{"error":"Task cannot be cancelled (current: completed)"}`, "", []error{ErrConflict}, "Task cannot be cancelled (current: completed)", 0},
		{401, `{"error":"API key required"}`, "", []error{ErrUnauthorized}, "API key required", 0},
		{403, `{"error":"Access denied"}`, "", []error{ErrForbidden}, "Access denied", 0},
		{400, `{"error":"targetUrl is required"}`, "", []error{ErrInvalid}, "targetUrl is required", 0},
		{413, `{"error":"too large"}`, "", []error{ErrInvalid}, "too large", 0},
		{422, `{"error":"blocked"}`, "", []error{ErrInvalid}, "blocked", 0},
		{429, `{"error":"slow down"}`, "7", []error{ErrRateLimited}, "slow down", 7 * time.Second},
		{502, `<html>bad gateway</html>`, "", []error{ErrServer}, "Bad Gateway: <html>bad gateway</html>", 0},
	}
	all := []error{ErrNotFound, ErrConflict, ErrUnauthorized, ErrForbidden, ErrInvalid, ErrRateLimited, ErrServer}
	for _, tc := range cases {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			if tc.header != "" {
				w.Header().Set("Retry-After", tc.header)
			}
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
		})
		_, err := New(f.URL, "k").GetTask(context.Background(), "x")
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("%d: %v is not an *Error", tc.status, err)
		}
		if e.StatusCode != tc.status || e.Message != tc.message || e.RetryAfter != tc.retry {
			t.Errorf("%d: got %+v", tc.status, e)
		}
		if StatusCode(err) != tc.status {
			t.Errorf("StatusCode = %d", StatusCode(err))
		}
		for _, target := range all {
			want := errors.Is(target, tc.is[0])
			if got := errors.Is(err, target); got != want {
				t.Errorf("%d: errors.Is(err, %v) = %v", tc.status, target, got)
			}
		}
	}
	if !IsUnauthorized(&Error{StatusCode: 403}) || !IsNotFound(&Error{StatusCode: 404}) || IsConflict(errors.New("x")) {
		t.Error("Is helpers")
	}
}

func TestClientCreateTaskRequest(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Idempotent-Replayed", "true")
		io.WriteString(w, `{"task":{"id":"t1","status":"pending","createdAt":"2026-01-15T10:30:00.000Z",
			"delayUntil":null,"onComplete":{"status":"delivered","attempts":1,"lastError":null}},
			"signalToken":"abc","callbackUrl":"http://x/v1/callbacks/y"}`)
	})
	c := New(f.URL+"/", "async_key")
	until := time.Date(2026, 1, 15, 10, 30, 0, 0, time.FixedZone("x", 3600))
	res, err := c.CreateTask(context.Background(), CreateTaskRequest{
		TargetURL: "https://example.com/hook", Method: "PUT", Headers: map[string]string{"A": "tok_1"},
		Body: `{"x":1}`, Timeout: 1500 * time.Millisecond, DelayUntil: until, MaxRetries: Ptr(0),
		Priority: 9, WaitForSignal: true, MaxWaitTime: time.Hour, HeartbeatTimeout: time.Minute,
		IdempotencyKey: "idem-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	req := f.last()
	if req.Method != "POST" || req.Path != "/v1/tasks" {
		t.Errorf("sent %s %s", req.Method, req.Path)
	}
	if req.Header.Get("Authorization") != "Bearer async_key" || req.Header.Get("Idempotency-Key") != "idem-1" ||
		req.Header.Get("Content-Type") != "application/json" || req.Header.Get("User-Agent") != DefaultUserAgent {
		t.Errorf("headers %v", req.Header)
	}
	var got map[string]any
	json.Unmarshal([]byte(req.Body), &got)
	want := map[string]any{"targetUrl": "https://example.com/hook", "method": "PUT", "headers": map[string]any{"A": "tok_1"},
		"body": `{"x":1}`, "timeout": 1.5, "delayUntil": "2026-01-15T09:30:00Z", "maxRetries": 0.0, "priority": 9.0,
		"waitForSignal": true, "maxWaitTime": 3600.0, "heartbeatTimeout": 60.0}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("body\n got %s\nwant %s", gj, wj)
	}
	if res.Task.ID != "t1" || res.SignalToken != "abc" || res.CallbackURL != "http://x/v1/callbacks/y" || !res.Replayed ||
		res.Task.DelayUntil != nil || res.Task.OnComplete.Status != "delivered" ||
		!res.Task.CreatedAt.Equal(time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)) {
		t.Errorf("response %+v %+v", res, res.Task)
	}

	// Zero values are left to the server.
	b, _ := json.Marshal(CreateTaskRequest{TargetURL: "https://example.com"})
	if string(b) != `{"targetUrl":"https://example.com"}` {
		t.Errorf("minimal request %s", b)
	}
}

func TestClientRoutes(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/attempts"):
			io.WriteString(w, `{"attempts":[{"attempt":1,"startedAt":"2026-01-15T10:30:00.000Z","duration":12,"statusCode":200,"error":null}]}`)
		case r.URL.Path == "/v1/tasks":
			io.WriteString(w, `{"tasks":[{"id":"a","createdAt":"2026-01-15T10:30:00.000Z"}],"pagination":{"total":3,"limit":1,"offset":1,"hasMore":true}}`)
		case r.URL.Path == "/v1/tokens" && r.Method == "GET":
			io.WriteString(w, `{"tokens":[{"id":"tok_1","name":"n","createdAt":"2026-01-15T10:30:00.000Z"}]}`)
		case r.URL.Path == "/v1/providers":
			io.WriteString(w, `{"providers":[{"id":"fal","name":"fal","docs":"d","pollConfig":{"urlTemplate":"u","interval":2}}]}`)
		case strings.HasPrefix(r.URL.Path, "/v1/webhook-secret"):
			io.WriteString(w, `{"secret":"whsec_x"}`)
		case strings.HasPrefix(r.URL.Path, "/v1/signals/") && r.Method == "GET":
			io.WriteString(w, `{"task":{"id":"a","status":"waiting","expiresAt":"2026-01-15T10:30:00.000Z"}}`)
		case strings.Contains(r.URL.Path, "signal"):
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"task":{"id":"a","status":"pending"},"buffered":true}`)
		default:
			io.WriteString(w, `{"task":{"id":"a","status":"cancelled"},"deleted":true}`)
		}
	})
	ctx := context.Background()
	c := New(f.URL, "async_key")
	check := func(method, path, query string, auth bool) {
		t.Helper()
		r := f.last()
		if r.Method != method || r.Path != path || r.Query != query || (r.Header.Get("Authorization") != "") != auth {
			t.Errorf("sent %s %s?%s auth=%q, want %s %s?%s auth=%v", r.Method, r.Path, r.Query,
				r.Header.Get("Authorization"), method, path, query, auth)
		}
	}
	list, err := c.ListTasks(ctx, ListOptions{Status: []string{"waiting", "failed"}, Limit: 1, Offset: 1,
		CreatedAfter: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), TargetHost: "example.com"})
	if err != nil || len(list.Tasks) != 1 || !list.Pagination.HasMore || list.Pagination.Total != 3 {
		t.Fatalf("list %+v %v", list, err)
	}
	check("GET", "/v1/tasks", "createdAfter=2026-01-01T00%3A00%3A00Z&limit=1&offset=1&status=waiting%2Cfailed&targetHost=example.com", true)

	as, err := c.TaskAttempts(ctx, "a/b")
	if err != nil || len(as) != 1 || *as[0].StatusCode != 200 || as[0].DurationMS != 12 {
		t.Fatalf("attempts %+v %v", as, err)
	}
	check("GET", "/v1/tasks/a%2Fb/attempts", "", true)

	if _, err := c.CancelTask(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	check("POST", "/v1/tasks/a/cancel", "", true)
	if _, err := c.RetryTask(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	check("POST", "/v1/tasks/a/retry", "", true)
	if _, err := c.WaitTask(ctx, "a", 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	check("GET", "/v1/tasks/a", "wait=2", true)

	sr, err := c.Signal(ctx, "tok", Signal{Status: StatusFailed, Error: "no"})
	if err != nil || !sr.Buffered {
		t.Fatalf("signal %+v %v", sr, err)
	}
	check("POST", "/v1/signals/tok", "", false)
	if b := f.last().Body; b != `{"status":"failed","error":"no"}` {
		t.Errorf("signal body %s", b)
	}
	if _, err := c.SignalTask(ctx, "a", Signal{Status: StatusCompleted, Result: map[string]int{"n": 1}}); err != nil {
		t.Fatal(err)
	}
	check("POST", "/v1/tasks/a/signal", "", true)
	if st, err := c.SignalStatus(ctx, "tok"); err != nil || st.Status != "waiting" || st.ExpiresAt == nil {
		t.Fatalf("signal status %+v %v", st, err)
	}
	check("GET", "/v1/signals/tok", "", false)
	if _, err := c.Heartbeat(ctx, "tok", nil); err != nil {
		t.Fatal(err)
	}
	check("POST", "/v1/signals/tok/heartbeat", "", false)
	if b := f.last().Body; b != `{}` {
		t.Errorf("heartbeat body %s", b)
	}
	if _, err := c.ProviderCallback(ctx, "cb", map[string]string{"done": "yes"}); err != nil {
		t.Fatal(err)
	}
	check("POST", "/v1/callbacks/cb", "", false)

	if s, err := c.WebhookSecret(ctx); err != nil || s.Secret != "whsec_x" {
		t.Fatalf("secret %+v %v", s, err)
	}
	check("GET", "/v1/webhook-secret", "", true)
	if _, err := c.RotateWebhookSecret(ctx); err != nil {
		t.Fatal(err)
	}
	check("POST", "/v1/webhook-secret/rotate", "", true)
	if ts, err := c.ListTokens(ctx); err != nil || ts[0].ID != "tok_1" {
		t.Fatalf("tokens %+v %v", ts, err)
	}
	if err := c.DeleteToken(ctx, "tok_1"); err != nil {
		t.Fatal(err)
	}
	check("DELETE", "/v1/tokens/tok_1", "", true)
	ps, err := c.Providers(ctx)
	if err != nil || ps[0].PollConfig.Interval != 2 {
		t.Fatalf("providers %+v %v", ps, err)
	}
	check("GET", "/v1/providers", "", false)
}

func TestClientVerify(t *testing.T) {
	t.Parallel()
	secret, other := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_b3RoZXIgc2VjcmV0"
	body := []byte(`{"event":"task.completed"}`)
	now := time.Now()

	h := Sign(secret, now, body)
	if err := VerifySignature(secret, h, body, time.Minute); err != nil {
		t.Fatal(err)
	}
	// During a rotation two v1= values come; either secret verifies.
	rotated := h + "," + strings.SplitN(Sign(other, now, body), ",", 2)[1]
	for _, s := range []string{secret, other} {
		if err := VerifySignature(s, rotated, body, 0); err != nil {
			t.Errorf("rotated header with %s: %v", s, err)
		}
	}
	for name, tc := range map[string]struct {
		secret, header string
		body           []byte
		want           error
	}{
		"wrong secret":   {other, h, body, ErrSignatureMismatch},
		"changed body":   {secret, h, []byte(`{}`), ErrSignatureMismatch},
		"too old":        {secret, Sign(secret, now.Add(-2*time.Minute), body), body, ErrSignatureExpired},
		"from future":    {secret, Sign(secret, now.Add(2*time.Minute), body), body, ErrSignatureExpired},
		"empty header":   {secret, "", body, ErrSignatureMalformed},
		"no v1":          {secret, "t=123", body, ErrSignatureMalformed},
		"garbage":        {secret, "nonsense", body, ErrSignatureMalformed},
		"truncated hash": {secret, h[:len(h)-2], body, ErrSignatureMalformed},
	} {
		if err := VerifySignature(tc.secret, tc.header, tc.body, time.Minute); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}

	hdr := http.Header{}
	SignHeaders(hdr, secret, "msg_1", now, body)
	if err := VerifyWebhook(secret, hdr, body, 0); err != nil {
		t.Fatal(err)
	}
	if err := VerifyWebhook(other, hdr, body, 0); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("standard with other secret: %v", err)
	}
	if err := VerifyWebhook(secret, http.Header{}, body, 0); !errors.Is(err, ErrSignatureMalformed) {
		t.Errorf("standard without headers: %v", err)
	}
}

func TestClientVerifyHandler(t *testing.T) {
	t.Parallel()
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var got []string
	h := VerifyHandler(secret, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, string(b))
	}))
	send := func(body string, set func(http.Header)) int {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		set(r.Header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	body := `{"event":"task.failed"}`
	now := time.Now()
	codes := []int{
		send(body, func(h http.Header) { h.Set(SignatureHeader, Sign(secret, now, []byte(body))) }),
		send(body, func(h http.Header) { SignHeaders(h, secret, "m1", now, []byte(body)) }),
		send(body, func(h http.Header) { h.Set(SignatureHeader, Sign(secret, now, []byte("other"))) }),
		send(body, func(h http.Header) {}),
		send(body, func(h http.Header) {
			SignHeaders(h, secret, "m1", now, []byte(body))
			h.Del(SignatureHeader)
			h.Set(WebhookSignatureHeader, "v1,AAAA")
		}),
	}
	if want := []int{200, 200, 401, 401, 401}; !equalInts(codes, want) {
		t.Errorf("codes %v, want %v", codes, want)
	}
	if len(got) != 2 || got[0] != body || got[1] != body {
		t.Errorf("handler saw %q", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestClientWaitTaskLong(t *testing.T) {
	t.Parallel()
	// A wait longer than the server's 25 s is several long polls until the status changes.
	var n int
	var mu sync.Mutex
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		status := "waiting"
		if k >= 4 {
			status = "completed"
		}
		io.WriteString(w, `{"task":{"id":"a","status":"`+status+`"}}`)
	})
	task, err := New(f.URL, "k").WaitTask(context.Background(), "a", time.Hour)
	if err != nil || task.Status != "completed" {
		t.Fatalf("%+v %v", task, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 4 || f.reqs[0].Query != "" || f.reqs[1].Query != "wait=25" {
		t.Errorf("requests %+v", f.reqs)
	}
}

func TestClientAwaitTaskContext(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("wait") != "" {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
		io.WriteString(w, `{"task":{"id":"a","status":"waiting"}}`)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := New(f.URL, "k").AwaitTask(ctx, "a")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

func TestClientTransportErrorRedactsToken(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {})
	f.Close() // nothing listens any more
	token := strings.Repeat("ab", 32)
	c := New(f.URL, "k")
	_, err := c.Heartbeat(context.Background(), token, nil)
	if err == nil || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "/v1/signals/[REDACTED]/heartbeat") {
		t.Fatalf("error %v", err)
	}
	if StatusCode(err) != 0 {
		t.Errorf("a transport error has status %d", StatusCode(err))
	}
	if got := redactURL("http://h/v1/callbacks/abc"); got != "http://h/v1/callbacks/[REDACTED]" {
		t.Errorf("redactURL: %s", got)
	}
}

func TestClientVerifyConstants(t *testing.T) {
	t.Parallel()
	if SignatureHeader != signing.HeaderSignature || WebhookIDHeader != signing.HeaderWebhookID ||
		WebhookTimestampHeader != signing.HeaderWebhookTimestamp || WebhookSignatureHeader != signing.HeaderWebhookSignature ||
		DefaultTolerance != signing.DefaultTolerance {
		t.Error("client's signature constants differ from the server's")
	}
}

func TestClientWaitTaskJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, answer string
		wait         time.Duration
		query        string
		wantErr      bool
	}{
		{"no wait", `{"task":{"id":"a","status":"pending"},"extra":1}`, 0, "", false},
		{"one poll", `{"task":{"id":"a","status":"completed"}}`, 3 * time.Second, "wait=3", false},
		{"no task", `{"other":true}`, 0, "", true},
		{"not JSON", `{"task":`, time.Second, "wait=1", true},
	} {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.answer) })
		task, raw, err := New(f.URL, "k").WaitTaskJSON(context.Background(), "a", tc.wait)
		if q := f.last().Query; q != tc.query {
			t.Errorf("%s: query %q, want %q", tc.name, q, tc.query)
		}
		if tc.wantErr {
			if err == nil || task != nil {
				t.Errorf("%s: %+v %v, want an error", tc.name, task, err)
			}
			continue
		}
		if err != nil || task == nil || task.ID != "a" || string(raw) != tc.answer {
			t.Errorf("%s: %+v %s %v, want task a and the answer as written", tc.name, task, raw, err)
		}
	}
}
