package main

// End-to-end tests of package client against the real binary, and of the README's
// signature verification snippets (Go, Node, Python) against signatures the server made.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/client"
)

// ecTarget is a callback target: /ok answers 200 {"ok":true}, /fail answers 500; it
// records the headers of each call.
type ecTarget struct {
	*httptest.Server
	mu   sync.Mutex
	hdrs []http.Header
}

func ecNewTarget(t *testing.T) *ecTarget {
	tg := &ecTarget{}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		tg.mu.Lock()
		tg.hdrs = append(tg.hdrs, r.Header.Clone())
		tg.mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/fail") {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(tg.Close)
	return tg
}

func ecCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ecMust(f())(t) is f's value, or the end of the test if f failed.
func ecMust[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestE2EClientTasks(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := ecNewTarget(t)
	c := client.New(s.base, s.key)
	ctx := ecCtx(t)

	// Create, then wait for completion with long polls.
	created := ecMust(c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: tg.URL + "/ok", Body: `{"n":1}`,
		Headers: map[string]string{"X-Test": "yes"}, Priority: 7, MaxRetries: client.Ptr(0)}))(t)
	if created.SignalToken != "" || created.Task.Priority != 7 || created.Task.MaxRetries != 0 ||
		created.Task.Headers["X-Test"] != "yes" || created.Task.CreatedAt.IsZero() {
		t.Fatalf("created %+v", created.Task)
	}
	id := created.Task.ID
	task := ecMust(c.AwaitTask(ctx, id))(t)
	res := ecMust(task.CallResult())(t)
	if task.Status != client.StatusCompleted || res == nil || res.StatusCode != 200 || res.Body != `{"ok":true}` ||
		task.CompletedAt == nil || task.StartResult != nil {
		t.Fatalf("completed task %+v result %+v", task, res)
	}
	if got := ecMust(c.GetTask(ctx, id))(t); got.Status != client.StatusCompleted || got.ID != id {
		t.Fatalf("get %+v", got)
	}
	as := ecMust(c.TaskAttempts(ctx, id))(t)
	if len(as) != 1 || as[0].Attempt != 1 || as[0].StatusCode == nil || *as[0].StatusCode != 200 || as[0].StartedAt.IsZero() {
		t.Fatalf("attempts %+v", as)
	}

	// A failing target with no retries fails with the server's error.
	failed := ecMust(c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: tg.URL + "/fail", MaxRetries: client.Ptr(0)}))(t)
	task = ecMust(c.AwaitTask(ctx, failed.Task.ID))(t)
	if task.Status != client.StatusFailed || task.Error == nil || !strings.Contains(*task.Error, "HTTP 500") {
		t.Fatalf("failed task %+v", task)
	}

	// List with filters.
	list := ecMust(c.ListTasks(ctx, client.ListOptions{Status: []string{client.StatusCompleted}}))(t)
	if len(list.Tasks) != 1 || list.Tasks[0].ID != id || list.Pagination.Total != 1 || list.Pagination.HasMore {
		t.Fatalf("list completed %+v", list)
	}
	list = ecMust(c.ListTasks(ctx, client.ListOptions{TargetHost: "127.0.0.1", Limit: 1,
		CreatedAfter: time.Now().Add(-time.Hour)}))(t)
	if len(list.Tasks) != 1 || list.Tasks[0].ID != failed.Task.ID || list.Pagination.Total != 2 || !list.Pagination.HasMore {
		t.Fatalf("list newest first %+v", list.Pagination)
	}

	// A delayed task: a long poll answers after its wait when nothing changes.
	delayed := ecMust(c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: tg.URL + "/ok", Delay: time.Hour}))(t)
	if delayed.Task.Status != client.StatusDelayed || delayed.Task.DelayUntil == nil {
		t.Fatalf("delayed %+v", delayed.Task)
	}
	start := time.Now()
	task = ecMust(c.WaitTask(ctx, delayed.Task.ID, time.Second))(t)
	if task.Status != client.StatusDelayed || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("long poll: %s after %v", task.Status, time.Since(start))
	}

	// Cancel, cancel again (409), retry (runs now), retry a completed task (409).
	task = ecMust(c.CancelTask(ctx, delayed.Task.ID))(t)
	if task.Status != client.StatusCancelled {
		t.Fatalf("cancelled %+v", task)
	}
	_, err := c.CancelTask(ctx, delayed.Task.ID)
	if !client.IsConflict(err) || !strings.Contains(err.Error(), "current: cancelled") {
		t.Fatalf("second cancel: %v", err)
	}
	retried := ecMust(c.RetryTask(ctx, delayed.Task.ID))(t)
	if retried.Task.Status != client.StatusPending || retried.SignalToken != "" {
		t.Fatalf("retried %+v", retried.Task)
	}
	if task = ecMust(c.AwaitTask(ctx, delayed.Task.ID))(t); task.Status != client.StatusCompleted {
		t.Fatalf("retried task ended %s", task.Status)
	}
	if _, err := c.RetryTask(ctx, id); !client.IsConflict(err) {
		t.Fatalf("retry of a completed task: %v", err)
	}

	// Idempotency-Key: the same request returns the first task; another body is a conflict.
	req := client.CreateTaskRequest{TargetURL: tg.URL + "/ok", Delay: time.Hour, IdempotencyKey: "ec-idem-1"}
	first := ecMust(c.CreateTask(ctx, req))(t)
	again := ecMust(c.CreateTask(ctx, req))(t)
	if first.Replayed || !again.Replayed || again.Task.ID != first.Task.ID {
		t.Fatalf("idempotent replay: first %v/%s again %v/%s", first.Replayed, first.Task.ID, again.Replayed, again.Task.ID)
	}
	req.Body = "other"
	if _, err := c.CreateTask(ctx, req); !client.IsConflict(err) {
		t.Fatalf("same key, other body: %v", err)
	}
}

func TestE2EClientSignal(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := ecNewTarget(t)
	c := client.New(s.base, s.key)
	worker := client.New(s.base, "") // the token routes need no API key
	ctx := ecCtx(t)

	created := ecMust(c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: tg.URL + "/ok", WaitForSignal: true,
		MaxWaitTime: time.Hour, HeartbeatTimeout: 30 * time.Minute}))(t)
	token := created.SignalToken
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(token) || !created.Task.WaitForSignal ||
		created.Task.MaxWaitTime != 3600 || created.Task.HeartbeatTimeout == nil || *created.Task.HeartbeatTimeout != 1800 {
		t.Fatalf("created %+v token %q", created.Task, token)
	}
	task := ecMust(c.AwaitTask(ctx, created.Task.ID, client.StatusWaiting))(t)
	start := ecMust(task.StartCallResult())(t)
	if task.Status != client.StatusWaiting || start == nil || start.StatusCode != 200 || task.ExpiresAt == nil {
		t.Fatalf("waiting %+v", task)
	}
	st := ecMust(worker.SignalStatus(ctx, token))(t)
	if st.ID != created.Task.ID || st.Status != client.StatusWaiting || st.ExpiresAt == nil || !st.ExpiresAt.Equal(*task.ExpiresAt) {
		t.Fatalf("signal status %+v", st)
	}
	task = ecMust(worker.Heartbeat(ctx, token, map[string]int{"percent": 50}))(t)
	if string(task.Progress) != `{"percent":50}` || task.LastHeartbeatAt == nil {
		t.Fatalf("heartbeat: progress %s at %v", task.Progress, task.LastHeartbeatAt)
	}

	sig := client.Signal{Status: client.StatusCompleted, Result: map[string]string{"url": "https://cdn.example.com/x"}}
	res := ecMust(worker.Signal(ctx, token, sig))(t)
	if res.Task.Status != client.StatusCompleted || string(res.Task.Result) != `{"url":"https://cdn.example.com/x"}` ||
		res.Replayed || res.Buffered {
		t.Fatalf("signalled %+v", res)
	}
	// The same signal again is answered again; another one is refused.
	if res = ecMust(worker.Signal(ctx, token, sig))(t); !res.Replayed || res.Task.Status != client.StatusCompleted {
		t.Fatalf("replayed signal %+v", res)
	}
	_, err := worker.Signal(ctx, token, client.Signal{Status: client.StatusFailed})
	if !client.IsConflict(err) || !strings.Contains(err.Error(), "Task is not waiting (current: completed)") {
		t.Fatalf("second signal: %v", err)
	}
	if _, err := worker.Heartbeat(ctx, token, nil); !client.IsConflict(err) {
		t.Fatalf("heartbeat after signal: %v", err)
	}

	// By task id with the API key; and a signal that comes early is buffered.
	other := ecMust(c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: tg.URL + "/ok", WaitForSignal: true}))(t)
	ecMust(c.AwaitTask(ctx, other.Task.ID, client.StatusWaiting))(t)
	res = ecMust(c.SignalTask(ctx, other.Task.ID, client.Signal{Status: client.StatusFailed, Error: "rejected"}))(t)
	if res.Task.Status != client.StatusFailed || res.Task.Error == nil || *res.Task.Error != "rejected" {
		t.Fatalf("signal by id %+v", res.Task)
	}
	early := ecMust(c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: tg.URL + "/ok", WaitForSignal: true, Delay: time.Hour}))(t)
	res = ecMust(worker.Signal(ctx, early.SignalToken, client.Signal{Status: client.StatusCompleted}))(t)
	if !res.Buffered || res.Task.Status != client.StatusDelayed || res.Task.BufferedSignal == nil {
		t.Fatalf("early signal %+v", res)
	}
	if _, err := c.SignalTask(ctx, created.Task.ID, sig); err != nil {
		t.Fatalf("same signal by id after the token's: %v", err)
	}

	// Unknown and malformed tokens.
	_, err = worker.Signal(ctx, strings.Repeat("0", 64), sig)
	if !client.IsNotFound(err) || !strings.Contains(err.Error(), "Invalid or expired signal token") {
		t.Fatalf("unknown token: %v", err)
	}
	_, err = worker.SignalStatus(ctx, "abc")
	if !client.IsInvalid(err) || client.StatusCode(err) != 400 {
		t.Fatalf("malformed token: %v", err)
	}
}

func TestE2EClientVaultAndProviders(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := ecNewTarget(t)
	c := client.New(s.base, s.key)
	ctx := ecCtx(t)

	tok := ecMust(c.CreateToken(ctx, "target auth", "Bearer secret-value"))(t)
	if !strings.HasPrefix(tok.ID, "tok_") || tok.Name != "target auth" || tok.CreatedAt.IsZero() {
		t.Fatalf("token %+v", tok)
	}
	toks := ecMust(c.ListTokens(ctx))(t)
	if len(toks) != 1 || toks[0].ID != tok.ID {
		t.Fatalf("tokens %+v", toks)
	}
	created := ecMust(c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: tg.URL + "/ok",
		Headers: map[string]string{"Authorization": tok.ID}}))(t)
	if created.Task.Headers["Authorization"] != tok.ID {
		t.Fatalf("the task shows %q, want the reference", created.Task.Headers["Authorization"])
	}
	if task := ecMust(c.AwaitTask(ctx, created.Task.ID))(t); task.Status != client.StatusCompleted {
		t.Fatalf("task %s", task.Status)
	}
	tg.mu.Lock()
	got := tg.hdrs[len(tg.hdrs)-1].Get("Authorization")
	tg.mu.Unlock()
	if got != "Bearer secret-value" {
		t.Fatalf("target got Authorization %q", got)
	}
	if err := c.DeleteToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteToken(ctx, tok.ID); !client.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
	_, err := c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: tg.URL + "/ok", Headers: map[string]string{"Authorization": tok.ID}})
	if !client.IsInvalid(err) || !strings.Contains(err.Error(), tok.ID) {
		t.Fatalf("task naming a deleted token: %v", err)
	}

	ps := ecMust(client.New(s.base, "").Providers(ctx))(t)
	ids := map[string]bool{}
	for _, p := range ps {
		ids[p.ID] = p.PollConfig.URLTemplate != "" && p.PollConfig.Interval > 0
	}
	for _, id := range []string{"fal", "replicate", "runwayml", "luma", "elevenlabs-dubbing", "stability-video"} {
		if !ids[id] {
			t.Errorf("provider %s missing or without poll config: %+v", id, ps)
		}
	}
}

func TestE2EClientErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	c := client.New(s.base, s.key)
	ctx := ecCtx(t)

	_, err := c.GetTask(ctx, "0197a0c8-0000-7000-8000-000000000000")
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != 404 || e.Message != "Task not found" || !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown task: %#v", err)
	}
	if _, err := c.GetTask(ctx, "not-a-uuid"); !client.IsInvalid(err) {
		t.Fatalf("bad id: %v", err)
	}
	_, err = c.CreateTask(ctx, client.CreateTaskRequest{})
	if !errors.As(err, &e) || e.StatusCode != 400 || !strings.Contains(e.Message, "targetUrl is required") {
		t.Fatalf("missing targetUrl: %v", err)
	}
	_, err = c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: "http://example.com", Priority: 11})
	if !client.IsInvalid(err) || !strings.Contains(err.Error(), "priority") {
		t.Fatalf("priority 11: %v", err)
	}
	_, err = c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: "http://10.1.2.3/x"})
	if client.StatusCode(err) != 422 || !client.IsInvalid(err) {
		t.Fatalf("private target: %v", err)
	}

	// Authentication: no key, a wrong key, another team's task.
	_, err = client.New(s.base, "").ListTasks(ctx, client.ListOptions{})
	if !client.IsUnauthorized(err) || !strings.Contains(err.Error(), "API key required") {
		t.Fatalf("no key: %v", err)
	}
	_, err = client.New(s.base, "async_"+strings.Repeat("x", 49)).ListTasks(ctx, client.ListOptions{})
	if !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("wrong key: %v", err)
	}
	mine := ecMust(c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: "http://127.0.0.1:9/x", Delay: time.Hour}))(t)
	out, err := exec.Command(binPath, "--db", s.db, "teams", "create", "ec-other").Output()
	if err != nil {
		t.Fatalf("teams create: %v", err)
	}
	_, err = client.New(s.base, strings.TrimSpace(string(out))).GetTask(ctx, mine.Task.ID)
	if !errors.Is(err, client.ErrForbidden) || !client.IsUnauthorized(err) {
		t.Fatalf("another team's task: %v", err)
	}

	// Transport errors are not *client.Error.
	dead := client.New("http://"+freePort(t), s.key)
	if _, err := dead.GetTask(ctx, mine.Task.ID); err == nil || client.StatusCode(err) != 0 {
		t.Fatalf("no server: %v", err)
	}
}

func TestE2EClientRateLimited(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--signal-rate-limit", "2")
	worker := client.New(s.base, "")
	ctx := ecCtx(t)
	token := strings.Repeat("a", 64)
	var err error
	for range 3 {
		_, err = worker.SignalStatus(ctx, token)
	}
	var e *client.Error
	if !client.IsRateLimited(err) || !errors.As(err, &e) || e.RetryAfter < time.Second {
		t.Fatalf("third request: %#v", err)
	}
}

// ecReceiver is the README's Go receiver: it verifies X-AsyncQueue-Signature and parses
// the event. It also keeps what it received for the Node and Python snippets.
type ecReceiver struct {
	secret func() string
	mu     sync.Mutex
	got    []ecReceived
}

type ecReceived struct {
	header http.Header
	body   []byte
	event  *client.Event
	err    error
}

func (rc *ecReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secret := rc.secret()
	// As in the README:
	body, _ := io.ReadAll(r.Body)
	if err := client.VerifySignature(secret, r.Header.Get("X-AsyncQueue-Signature"), body, 5*time.Minute); err != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		rc.add(ecReceived{r.Header.Clone(), body, nil, err})
		return
	}
	ev, _ := client.ParseEvent(body) // {"event": "task.completed", "task": {…}}
	log.Println(ev.Event, ev.Task.ID, ev.Task.Status)
	// Beyond the README: the Standard Webhooks headers verify too.
	rc.add(ecReceived{r.Header.Clone(), body, ev, client.VerifyWebhook(secret, r.Header, body, 0)})
}

func (rc *ecReceiver) add(x ecReceived) {
	rc.mu.Lock()
	rc.got = append(rc.got, x)
	rc.mu.Unlock()
}

func (rc *ecReceiver) wait(t *testing.T, n int) ecReceived {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		rc.mu.Lock()
		if len(rc.got) >= n {
			x := rc.got[n-1]
			rc.mu.Unlock()
			return x
		}
		rc.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("receiver: fewer than %d requests after 20 s", n)
	return ecReceived{}
}

// TestE2EClientReadmeVerify runs the README's receiver snippets on webhooks the server
// signed: Go in process, Node and Python (when installed) on the same header and body.
func TestE2EClientReadmeVerify(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := ecNewTarget(t)
	c := client.New(s.base, s.key)
	ctx := ecCtx(t)

	sec := ecMust(c.WebhookSecret(ctx))(t)
	if !strings.HasPrefix(sec.Secret, "whsec_") || sec.PreviousSecretExpiresAt != nil {
		t.Fatalf("secret %+v", sec)
	}
	var mu sync.Mutex
	current := sec.Secret
	rc := &ecReceiver{secret: func() string { mu.Lock(); defer mu.Unlock(); return current }}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)

	created := ecMust(c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: tg.URL + "/ok", OnCompleteURL: hook.URL}))(t)
	got := rc.wait(t, 1)
	if got.err != nil || got.event == nil || got.event.Event != "task.completed" || got.event.Task.ID != created.Task.ID ||
		got.event.Task.Status != client.StatusCompleted {
		t.Fatalf("webhook: %+v", got)
	}
	// The callback to the target was signed with the same secret.
	tg.mu.Lock()
	th := tg.hdrs[0]
	tg.mu.Unlock()
	if th.Get(client.SignatureHeader) == "" || th.Get(client.WebhookIDHeader) == "" {
		t.Fatalf("callback headers %v", th)
	}
	cases := []ecCase{{sec.Secret, got.header.Get(client.SignatureHeader), got.body, true}}

	// After a rotation both secrets sign: two v1= values, each verifies.
	rot := ecMust(c.RotateWebhookSecret(ctx))(t)
	if rot.Secret == sec.Secret || rot.PreviousSecretExpiresAt == nil {
		t.Fatalf("rotated %+v", rot)
	}
	mu.Lock()
	current = rot.Secret
	mu.Unlock()
	ecMust(c.CreateTask(ctx, client.CreateTaskRequest{TargetURL: tg.URL + "/ok", OnCompleteURL: hook.URL}))(t)
	got = rc.wait(t, 2)
	h := got.header.Get(client.SignatureHeader)
	if got.err != nil || strings.Count(h, "v1=") != 2 {
		t.Fatalf("webhook after rotation: %v, header %q", got.err, h)
	}
	for _, secret := range []string{sec.Secret, rot.Secret} {
		if err := client.VerifySignature(secret, h, got.body, 0); err != nil {
			t.Errorf("rotated header with %.10s…: %v", secret, err)
		}
		cases = append(cases, ecCase{secret, h, got.body, true})
	}
	tampered := append([]byte(nil), got.body...)
	tampered[len(tampered)/2] ^= 1
	cases = append(cases,
		ecCase{"whsec_not-the-secret", h, got.body, false},
		ecCase{rot.Secret, h, tampered, false},
		ecCase{rot.Secret, strings.Replace(h, "t=", "t=1", 1), got.body, false}, // far future
		ecCase{rot.Secret, "", got.body, false},
		ecCase{rot.Secret, "t=abc," + strings.SplitN(h, ",", 2)[1], got.body, false},
	)
	ecRunSnippets(t, cases)
}

// ecSnippet returns the code of the README's fenced block in lang that contains marker.
func ecSnippet(t *testing.T, lang, marker string) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(readme), "```"+lang+"\n")[1:] {
		code, _, _ := strings.Cut(block, "```")
		if strings.Contains(code, marker) {
			return code
		}
	}
	t.Fatalf("README has no ```%s block with %q", lang, marker)
	return ""
}

// ecCase is one request for the README's Node and Python verifiers, and their expected verdict.
type ecCase struct {
	Secret string `json:"secret"`
	Header string `json:"header"`
	Body   []byte `json:"body"` // base64 in JSON
	Want   bool   `json:"want"`
}

// ecRunSnippets runs the README's Node and Python verifiers on each case (one process per
// language) and checks their verdicts; a missing interpreter skips its language.
func ecRunSnippets(t *testing.T, cases []ecCase) {
	t.Helper()
	dir := t.TempDir()
	fixture := filepath.Join(dir, "cases.json")
	b, _ := json.Marshal(cases)
	if err := os.WriteFile(fixture, b, 0o600); err != nil {
		t.Fatal(err)
	}
	langs := []struct{ bin, lang, marker, main, file string }{
		{"node", "js", "createHmac", `
const cases = JSON.parse(require("node:fs").readFileSync(process.argv[2], "utf8"));
for (const c of cases) console.log(verifyAsyncQueue(c.secret, c.header, Buffer.from(c.body, "base64")));
`, "verify.js"},
		{"python3", "python", "compare_digest", `
import base64, json, sys
for c in json.load(open(sys.argv[1])):
    print("true" if verify_asyncqueue(c["secret"], c["header"], base64.b64decode(c["body"])) else "false")
`, "verify.py"},
	}
	for _, l := range langs {
		bin, err := exec.LookPath(l.bin)
		if err != nil {
			t.Logf("%s not installed: README %s snippet not run", l.bin, l.lang)
			continue
		}
		src := filepath.Join(dir, l.file)
		if err := os.WriteFile(src, []byte(ecSnippet(t, l.lang, l.marker)+l.main), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, src, fixture).CombinedOutput()
		if err != nil {
			t.Fatalf("%s README snippet: %v\n%s", l.bin, err, out)
		}
		got := strings.Fields(string(out))
		if len(got) != len(cases) {
			t.Fatalf("%s README snippet printed %q for %d cases", l.bin, out, len(cases))
		}
		for i, c := range cases {
			if want := strconv.FormatBool(c.Want); got[i] != want {
				t.Errorf("%s README snippet, case %d: %s, want %s (header %q)", l.bin, i, got[i], want, c.Header)
			}
		}
		t.Logf("%s README snippet: %d signatures checked", l.bin, len(cases))
	}
}
