package main

// End-to-end tests of flow control (SPEC §10): slow and hanging targets, backpressure,
// flow limits and their API, against the real binary.

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/client"
)

// flowPath is the API path of a flow.
func flowPath(key string, suffix ...string) string {
	return "/v1/flows/" + url.PathEscape(key) + strings.Join(suffix, "")
}

// flowOfList finds key in GET /v1/flows.
func flowOfList(t *testing.T, s *server, key string, headers ...string) map[string]any {
	t.Helper()
	r := s.call("GET", "/v1/flows", nil, headers...)
	aqtWant(t, r, http.StatusOK, "list flows")
	list, _ := r.Body["flows"].([]any)
	for _, f := range list {
		if m, _ := f.(map[string]any); aqtStr(m, "key") == key {
			return m
		}
	}
	return nil
}

// A target that hangs holds only its own flow's slots: other targets' tasks, of the same
// team and of another team, are called at once.
func TestE2EFlowsHangingTargetDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	keyB := aqtTeamCreate(t, s.db, "teamb")
	gate := aqtNewGate(t)
	hang := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) { gate.Wait(r) })
	healthy := aqtNewTarget(t, nil)

	for i := range 300 {
		key := []string{}
		if i%2 == 1 {
			key = []string{"X-API-Key", keyB}
		}
		aqtCreate(t, s, map[string]any{"targetUrl": hang.URL + "/hang", "timeout": 120, "maxRetries": 0}, key...)
	}
	hang.WaitHits(t, 300, 60*time.Second) // all 300 in flight at once, none waiting for a worker

	created := map[string]time.Time{}
	for i := range 20 {
		key := []string{}
		if i%2 == 1 {
			key = []string{"X-API-Key", keyB}
		}
		created[aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": fmt.Sprintf("%s/ok/%d", healthy.URL, i)}, key...), "id")] = time.Now()
	}
	hits := healthy.WaitHits(t, 20, 30*time.Second)
	for _, h := range hits {
		id := h.Header.Get("X-AsyncQueue-Task-Id")
		if d := h.At.Sub(created[id]); d > 5*time.Second {
			t.Errorf("task %s to a healthy target was called %v after its create, behind a hanging target", id, d)
		}
	}
	f := flowOfList(t, s, originOf(hang.URL))
	if f == nil || aqtNum(f, "inFlight") != 150 {
		t.Errorf("team A's flow of the hanging target: %v, want 150 in flight", f)
	}
}

// 429 and 503 are retried, not answers; Retry-After (seconds or an HTTP date) delays the
// task and pauses its flow, so the flow's other tasks wait too.
func TestE2EFlowsBackpressure(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	var n atomic.Int32
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/busy-seconds" && n.Add(1) == 1:
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
		case r.URL.Path == "/busy-date" && n.Add(1) == 1:
			w.Header().Set("Retry-After", time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		case r.URL.Path == "/always-429":
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":"slow down"}`)
		default:
			fmt.Fprint(w, "done")
		}
	})
	key := originOf(tg.URL)

	t.Run("seconds", func(t *testing.T) {
		first := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/busy-seconds", "maxRetries": 2}), "id")
		hits := tg.WaitHits(t, 1, 10*time.Second)
		// The flow is paused: a second task of it waits for the pause too.
		time.Sleep(100 * time.Millisecond)
		f := flowOfList(t, s, key)
		if f == nil || f["pausedUntil"] == nil || !strings.Contains(aqtStr(f, "lastError"), "429") {
			t.Fatalf("flow after a 429 with Retry-After: %v", f)
		}
		other := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/other"}), "id")
		done := s.waitStatus(first, "completed", 20*time.Second)
		s.waitStatus(other, "completed", 20*time.Second)
		all := tg.Hits()
		retry, otherHit := all[1], tg.HitsOn("/other")[0]
		if d := retry.At.Sub(hits[0].At); d < 1900*time.Millisecond {
			t.Errorf("retried %v after a 429 with Retry-After: 2", d)
		}
		if d := otherHit.At.Sub(hits[0].At); d < 1900*time.Millisecond {
			t.Errorf("another task of the paused flow was called %v after the 429", d)
		}
		if done["error"] != nil || aqtNum(aqtObj(done, "result"), "statusCode") != 200 || aqtNum(done, "retryCount") != 1 {
			t.Errorf("task after a 429 then 200: %v", done)
		}
	})
	t.Run("http-date", func(t *testing.T) {
		n.Store(0)
		before := len(tg.Hits())
		id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/busy-date", "maxRetries": 2}), "id")
		s.waitStatus(id, "completed", 20*time.Second)
		hits := tg.Hits()[before:]
		if len(hits) != 2 || hits[1].At.Sub(hits[0].At) < 1900*time.Millisecond {
			t.Errorf("503 with an HTTP-date Retry-After 3 s ahead: %d hits, gap %v", len(hits), hits[len(hits)-1].At.Sub(hits[0].At))
		}
	})
	t.Run("no-retries-left", func(t *testing.T) {
		id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/always-429", "maxRetries": 1}), "id")
		task := s.waitStatus(id, "failed", 20*time.Second)
		if !strings.Contains(aqtStr(task, "error"), "HTTP 429") || task["result"] != nil {
			t.Errorf("a task whose target kept answering 429: %v", task)
		}
		if n := len(tg.HitsOn("/always-429")); n != 2 {
			t.Errorf("429 without Retry-After: %d calls, want 2 (one retry after the backoff)", n)
		}
		// Each failed attempt keeps its status and the start of the answer.
		for _, at := range aqtAttempts(t, s, id) {
			if aqtNum(at, "statusCode") != 429 || aqtStr(at, "responseBody") != `{"error":"slow down"}` {
				t.Errorf("attempt of a 429: %v", at)
			}
		}
	})
}

// A paused flow makes no calls and keeps its tasks pending (cancel still works); its
// settings survive a restart; resume lets the tasks go.
func TestE2EFlowsPauseResumeAndRestart(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, nil)
	key := originOf(tg.URL)

	// Settable before the flow has tasks.
	r := s.call("POST", flowPath(key, "/pause"), nil)
	aqtWant(t, r, http.StatusOK, "pause")
	if f := aqtObj(r.Body, "flow"); f["paused"] != true || aqtStr(f, "key") != key {
		t.Fatalf("pause answered %s", r.Raw)
	}
	var ids []string
	for i := range 5 {
		ids = append(ids, aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": fmt.Sprintf("%s/t%d", tg.URL, i)}), "id"))
	}
	delayed := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/delayed", "delay": 0.3}), "id")
	time.Sleep(time.Second)
	if n := len(tg.Hits()); n != 0 {
		t.Fatalf("a paused flow made %d calls", n)
	}
	if st := aqtStr(s.call("GET", "/v1/tasks/"+delayed, nil).task(), "status"); st != "pending" {
		t.Errorf("a delayed task of a paused flow is %q once due, want pending", st)
	}
	aqtWant(t, s.call("POST", "/v1/tasks/"+ids[0]+"/cancel", nil), http.StatusOK, "cancel in a paused flow")
	if f := flowOfList(t, s, key); f == nil || aqtNum(f, "pending") != 5 || f["paused"] != true {
		t.Errorf("paused flow: %v, want 5 pending", f)
	}

	s.restart()
	time.Sleep(500 * time.Millisecond)
	if n := len(tg.Hits()); n != 0 {
		t.Fatalf("after a restart the paused flow made %d calls", n)
	}
	aqtWant(t, s.call("POST", flowPath(key, "/resume"), nil), http.StatusOK, "resume")
	for _, id := range append(ids[1:], delayed) {
		s.waitStatus(id, "completed", 20*time.Second)
	}
	if n := len(tg.Hits()); n != 5 {
		t.Errorf("after resume: %d calls, want 5 (the cancelled task not called)", n)
	}
}

// A flow's parallelism is never exceeded; a flowKey groups several targets in one flow;
// a rate is held.
func TestE2EFlowsLimits(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	var cur, peak atomic.Int32
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		c := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if c <= p || peak.CompareAndSwap(p, c) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	})
	tg2 := httptest.NewServer(tg.srv.Config.Handler) // a second origin with the same counter
	t.Cleanup(tg2.Close)

	r := s.call("PUT", flowPath("shared"), map[string]any{"parallelism": 3})
	aqtWant(t, r, http.StatusOK, "set parallelism")
	var ids []string
	for i := range 30 {
		target := tg.URL
		if i%2 == 1 {
			target = tg2.URL
		}
		task := aqtCreate(t, s, map[string]any{"targetUrl": fmt.Sprintf("%s/p%d", target, i), "flowKey": "shared"})
		if aqtStr(task, "flowKey") != "shared" {
			t.Fatalf("task shows flowKey %q", aqtStr(task, "flowKey"))
		}
		ids = append(ids, aqtStr(task, "id"))
	}
	for _, id := range ids {
		s.waitStatus(id, "completed", 30*time.Second)
	}
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrency %d over two targets in one flow of parallelism 3, want 3", p)
	}

	// Rate: 5 per second.
	aqtWant(t, s.call("PUT", flowPath("rated"), map[string]any{"ratePerSecond": 5}), http.StatusOK, "set rate")
	before := len(tg.Hits())
	ids = nil
	for i := range 15 {
		ids = append(ids, aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": fmt.Sprintf("%s/r%d", tg.URL, i), "flowKey": "rated"}), "id"))
	}
	for _, id := range ids {
		s.waitStatus(id, "completed", 30*time.Second)
	}
	hits := tg.Hits()[before:]
	for i := range hits {
		n := 0
		for _, h := range hits[i:] {
			if h.At.Sub(hits[i].At) < time.Second {
				n++
			}
		}
		if n > 6 {
			t.Fatalf("%d calls within one second of a flow limited to 5/s", n)
		}
	}
	if f := flowOfList(t, s, "rated"); f == nil || aqtNum(f, "ratePerSecond") != 5 || aqtNum(f, "parallelism") != float64(DefaultFlowParallelism) {
		t.Errorf("rated flow shows %v", f)
	}
}

func TestE2EFlowsBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	for _, c := range []struct {
		method, path string
		body         any
		want         string
	}{
		{"PUT", flowPath("k"), map[string]any{"parallelism": 0}, "parallelism"},
		{"PUT", flowPath("k"), map[string]any{"parallelism": 2.5}, "parallelism"},
		{"PUT", flowPath("k"), map[string]any{"ratePerSecond": -1}, "ratePerSecond"},
		{"PUT", flowPath("k"), map[string]any{"ratePerSecond": "fast"}, "ratePerSecond"},
		{"PUT", flowPath("k"), map[string]any{"parallelizm": 3}, "parallelizm"},
		{"PUT", flowPath(strings.Repeat("k", 101)), map[string]any{}, "flow key"},
		{"POST", "/v1/tasks", map[string]any{"targetUrl": "http://127.0.0.1:1/", "flowKey": strings.Repeat("x", 101)}, "flowKey"},
		{"POST", "/v1/tasks", map[string]any{"targetUrl": "http://127.0.0.1:1/", "flowKey": "a\x01b"}, "flowKey"},
		{"POST", "/v1/tasks", map[string]any{"targetUrl": "http://127.0.0.1:1/", "flowKey": ""}, "flowKey"},
	} {
		r := s.call(c.method, c.path, c.body)
		if r.Status != http.StatusBadRequest || !strings.Contains(aqtErr(r), c.want) {
			t.Errorf("%s %s %v: %d %s, want 400 naming %s", c.method, c.path, c.body, r.Status, r.Raw, c.want)
		}
	}
	// Another team does not see this team's flow settings.
	aqtWant(t, s.call("PUT", flowPath("mine"), map[string]any{"parallelism": 2}), http.StatusOK, "set")
	keyB := aqtTeamCreate(t, s.db, "teamb")
	if f := flowOfList(t, s, "mine", "X-API-Key", keyB); f != nil {
		t.Errorf("team B sees team A's flow: %v", f)
	}
	r := s.call("GET", flowPath("mine"), nil, "X-API-Key", keyB)
	if f := aqtObj(r.Body, "flow"); r.Status != 200 || aqtNum(f, "parallelism") != float64(DefaultFlowParallelism) {
		t.Errorf("team B reads flow 'mine' as %s, want its own defaults", r.Raw)
	}
}

// A target that answers 413 before reading a large body: that answer is the result. A
// target that closes each connection after answering: every attempt reaches it once.
func TestE2EFlowsOneCallPerAttempt(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	early := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge) // without reading the body
	}))
	t.Cleanup(early.Close)
	id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": early.URL, "body": strings.Repeat("x", 900_000), "maxRetries": 0}), "id")
	task := s.waitStatus(id, "completed", 20*time.Second)
	if aqtNum(aqtObj(task, "result"), "statusCode") != 413 {
		t.Errorf("early 413: task %v, want it completed with the 413", task)
	}

	// The target closes the connection right after each answer, while the client may
	// already be sending the next request on it.
	var mu sync.Mutex
	seen := map[string]int{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				mu.Lock()
				seen[req.Header.Get("X-AsyncQueue-Task-Id")]++
				mu.Unlock()
				// Keep-alive is not refused: the client may reuse a connection we close.
				fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}()
		}
	}()
	var ids []string
	for i := range 40 {
		ids = append(ids, aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": fmt.Sprintf("http://%s/c%d", ln.Addr(), i), "maxRetries": 0}), "id"))
	}
	called := 0
	for _, id := range ids {
		s.call("GET", "/v1/tasks/"+id+"?wait=20", nil)
		task := s.call("GET", "/v1/tasks/"+id, nil).task()
		mu.Lock()
		n := seen[id]
		mu.Unlock()
		attempts := len(aqtAttempts(t, s, id))
		// A request lost on a connection the target closed is an attempt that failed
		// (nothing is known to have arrived), never one sent again.
		if n > attempts || attempts != 1 {
			t.Errorf("task %s (%s): the target saw %d calls for %d attempts", id, aqtStr(task, "status"), n, attempts)
		}
		called += n
	}
	if called < len(ids)/2 {
		t.Errorf("the target saw only %d of %d tasks", called, len(ids))
	}
}

// SIGKILL with thousands of calls in flight: after the restart every task runs again and
// completes; none is lost.
func TestE2EFlowsKillWithThousandsInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: thousands of calls")
	}
	t.Parallel()
	s := startServer(t, "")
	var slow atomic.Bool
	slow.Store(true)
	var inFlight atomic.Int32
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			inFlight.Add(1)
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		}
	})
	const n = 2000
	ids := make([]string, 0, n)
	for i := range n {
		ids = append(ids, aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": fmt.Sprintf("%s/k%d", tg.URL, i), "timeout": 60}), "id"))
	}
	deadline := time.Now().Add(60 * time.Second)
	for inFlight.Load() < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := inFlight.Load(); got < n {
		t.Fatalf("%d of %d calls in flight at once, want all", got, n)
	}
	s.kill()
	slow.Store(false)
	s.launch(false)
	for _, id := range ids {
		s.waitStatus(id, "completed", 60*time.Second)
	}
}

// The CLI and the Go client reach every flow route.
func TestE2EFlowsCLIAndClient(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	conn := []string{"--url", s.base, "--api-key", s.key}
	out := aqtCLIOK(t, append([]string{"flows", "set", "https://api.example.com:443", "--parallelism", "2", "--rate", "3"}, conn...)...)
	if !strings.Contains(out, "Parallelism:  2") || !strings.Contains(out, "Rate/s:       3") {
		t.Errorf("flows set printed:\n%s", out)
	}
	aqtCLIOK(t, append([]string{"flows", "pause", "https://api.example.com:443"}, conn...)...)
	out = aqtCLIOK(t, append([]string{"flows", "list"}, conn...)...)
	if !strings.Contains(out, "https://api.example.com:443") || !strings.Contains(out, "yes") {
		t.Errorf("flows list printed:\n%s", out)
	}
	if _, errOut, code := aqtCLI(t, append([]string{"flows", "set", "k", "--parallelism", "0"}, conn...)...); code == 0 ||
		!strings.Contains(errOut, "parallelism") {
		t.Errorf("flows set --parallelism 0: exit %d, %s", code, errOut)
	}

	c := client.New(s.base, s.key)
	ctx := t.Context()
	f, err := c.ResumeFlow(ctx, "https://api.example.com:443")
	if err != nil || f.Paused || f.Parallelism != 2 || f.RatePerSecond == nil || *f.RatePerSecond != 3 {
		t.Fatalf("ResumeFlow: %+v %v", f, err)
	}
	if f, err = c.SetFlow(ctx, "https://api.example.com:443", client.FlowSettings{}); err != nil || f.Parallelism != DefaultFlowParallelism || f.RatePerSecond != nil {
		t.Fatalf("SetFlow back to defaults: %+v %v", f, err)
	}
	if _, err = c.PauseFlow(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	fs, err := c.ListFlows(ctx)
	if err != nil || len(fs) != 2 || fs[1].Key != "other" || !fs[1].Paused {
		t.Fatalf("ListFlows: %+v %v", fs, err)
	}
	if f, err = c.GetFlow(ctx, "other"); err != nil || !f.Paused {
		t.Fatalf("GetFlow: %+v %v", f, err)
	}
}
