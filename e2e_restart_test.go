package main

// End-to-end tests of durability across restarts and shutdowns (SPEC §1, §3.3, §4.5, §8), and a
// timer-lateness measurement that only logs its figures.

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// e2eDBStatus reads a task's status straight from the database file while the server is down.
func e2eDBStatus(t testing.TB, dbPath, id string) (status string, dueAt sql.NullInt64) {
	t.Helper()
	db := openDB(t, dbPath, false)
	defer db.Close()
	if err := db.QueryRow(rebind(dbPath, `select status, due_at from tasks where id = ?`), id).Scan(&status, &dueAt); err != nil {
		t.Fatalf("read task %s from %s: %v", id, dbPath, err)
	}
	return status, dueAt
}

// e2eFirstHitByTask maps X-AsyncQueue-Task-Id to the first request for it.
func e2eFirstHitByTask(hits []e2eHit) map[string]e2eHit {
	out := map[string]e2eHit{}
	for _, h := range hits {
		id := h.Header.Get("X-AsyncQueue-Task-Id")
		if _, ok := out[id]; !ok {
			out[id] = h
		}
	}
	return out
}

// TestE2ERestartDelayedTasksFire: delayed tasks survive a SIGKILL and fire after restart, roughly on time.
func TestE2ERestartDelayedTasksFire(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	due := map[string]time.Time{}
	for i := range 5 {
		id, _, cr := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "delay": 2 + 0.25*float64(i)})
		if cr.task()["status"] != "delayed" {
			t.Fatalf("created with delay: status %v", cr.task()["status"])
		}
		due[id] = e2eTime(t, cr.task()["delayUntil"], "delayUntil")
	}
	s.restart()
	readyAt := time.Now()
	hits := target.waitHits(t, len(due), 20*time.Second)
	first := e2eFirstHitByTask(hits)
	for id, d := range due {
		h, ok := first[id]
		if !ok {
			t.Errorf("task %s never called after restart", id)
			continue
		}
		late := h.At.Sub(d)
		t.Logf("task due %s (%.0f ms after restart ready): called %v late", d.Format("15:04:05.000"), d.Sub(readyAt).Seconds()*1000, late)
		if late < -500*time.Millisecond {
			t.Errorf("task %s called %v before its delayUntil", id, -late)
		}
		if late > 5*time.Second {
			t.Errorf("task %s called %v after its delayUntil; want roughly on time", id, late)
		}
		e2eWaitStatus(t, s, id, "completed", 10*time.Second)
	}
}

// TestE2ERestartWaitingTimesOut: waiting tasks still time out after a SIGKILL and restart.
func TestE2ERestartWaitingTimesOut(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	hook := newE2ETarget(t, nil)
	s := startServer(t, "")
	exp := map[string]time.Time{}
	tokens := map[string]string{}
	for range 3 {
		id, tok, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "waitForSignal": true, "maxWaitTime": 3, "onCompleteUrl": hook.URL})
		tokens[id] = tok
	}
	for id := range tokens {
		wt := e2eWaitStatus(t, s, id, "waiting", 10*time.Second)
		exp[id] = e2eTime(t, wt["expiresAt"], "expiresAt")
	}
	for id, e := range exp {
		if !time.Now().Before(e) {
			t.Logf("note: task %s expired before the restart (slow machine); the test then covers less", id)
		}
	}
	s.restart()
	for id, e := range exp {
		got := e2eWaitStatus(t, s, id, "timeout", 15*time.Second)
		done := e2eTime(t, got["completedAt"], "completedAt")
		t.Logf("task %s: timed out %v after expiresAt", id, done.Sub(e))
		if done.Before(e) {
			t.Errorf("task %s timed out at %v, before expiresAt %v", id, done, e)
		}
		if r := e2eCall(t, s, "POST", "/v1/signals/"+tokens[id], map[string]any{"status": "completed"}, sigNoKey...); r.Status != 409 {
			t.Errorf("signal after timeout = %d %s, want 409", r.Status, r.Raw)
		}
	}
	hook.waitHits(t, len(exp), 15*time.Second)
	for _, ev := range e2eEvents(t, hook.Hits()) {
		if ev.Event != "task.timeout" {
			t.Errorf("webhook event %q, want task.timeout", ev.Event)
		}
	}
	if n := len(target.Hits()); n != len(exp) {
		t.Errorf("target got %d calls, want %d (waiting tasks are not re-run)", n, len(exp))
	}
}

// TestE2ERestartTokensSurvive: the tokens of waiting tasks still work after a SIGKILL and restart.
func TestE2ERestartTokensSurvive(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id1, tok1, w1 := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600})
	id2, tok2, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600, "heartbeatTimeout": 600})
	s.restart()
	g := e2eCall(t, s, "GET", "/v1/signals/"+tok1, nil, sigNoKey...)
	if g.Status != 200 || g.task()["id"] != id1 || g.task()["status"] != "waiting" || g.task()["expiresAt"] != w1["expiresAt"] {
		t.Errorf("GET token after restart = %d %s", g.Status, g.Raw)
	}
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok2+"/heartbeat", map[string]any{"progress": "half"}, sigNoKey...); r.Status != 200 {
		t.Errorf("heartbeat after restart = %d %s", r.Status, r.Raw)
	}
	r := e2eCall(t, s, "POST", "/v1/signals/"+tok1, map[string]any{"status": "completed", "result": map[string]any{"after": "restart"}}, sigNoKey...)
	if r.Status != 200 || r.task()["status"] != "completed" || e2eJSON(r.task()["result"]) != `{"after":"restart"}` {
		t.Errorf("signal after restart = %d %s", r.Status, r.Raw)
	}
	r = e2eCall(t, s, "POST", "/v1/signals/"+tok2, map[string]any{"status": "failed", "error": "later"}, sigNoKey...)
	if r.Status != 200 || r.task()["status"] != "failed" || r.task()["error"] != "later" {
		t.Errorf("fail signal after restart = %d %s", r.Status, r.Raw)
	}
	if got := e2eGet(t, s, id2); e2eJSON(got["progress"]) != `"half"` {
		t.Errorf("progress = %v", got["progress"])
	}
	// Once more through a restart: the spent token stays spent, the replay still replays.
	s.restart()
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok1, map[string]any{"status": "completed", "result": map[string]any{"after": "restart"}}, sigNoKey...); r.Status != 200 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay after second restart = %d %q %s", r.Status, r.Header.Get("Idempotent-Replayed"), r.Raw)
	}
	if r := e2eCall(t, s, "POST", "/v1/signals/"+tok1, map[string]any{"status": "failed"}, sigNoKey...); r.Status != 409 {
		t.Errorf("different signal after second restart = %d %s", r.Status, r.Raw)
	}
	if n := len(target.Hits()); n != 2 {
		t.Errorf("target got %d calls, want 2", n)
	}
}

// TestE2ERestartInFlightCallRerun: a call cut short by SIGKILL is made again after restart
// (at least once), with the same X-AsyncQueue-Task-Id.
func TestE2ERestartInFlightCallRerun(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		if hit.N == 1 {
			e2eSleep(x, r, time.Minute) // hang until the caller goes away
			return
		}
		io.WriteString(w, "second time lucky")
	})
	s := startServer(t, "")
	id, _, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL, "body": `{"n":1}`})
	target.waitHits(t, 1, 10*time.Second)
	if got := e2eGet(t, s, id); got["status"] != "processing" {
		t.Fatalf("status with the call in flight = %v, want processing", got["status"])
	}
	s.restart()
	hits := target.waitHits(t, 2, 15*time.Second)
	for i, h := range hits {
		if h.Header.Get("X-AsyncQueue-Task-Id") != id || string(h.Body) != `{"n":1}` {
			t.Errorf("call %d: task id %q body %q", i, h.Header.Get("X-AsyncQueue-Task-Id"), h.Body)
		}
	}
	got := e2eWaitStatus(t, s, id, "completed", 10*time.Second)
	if sr := e2eObj(got["result"]); sr["body"] != "second time lucky" {
		t.Errorf("result = %v", got["result"])
	}
	a := e2eCall(t, s, "GET", "/v1/tasks/"+id+"/attempts", nil)
	atts, _ := a.Body["attempts"].([]any)
	if a.Status != 200 || len(atts) == 0 || e2eObj(atts[len(atts)-1])["statusCode"] != 200.0 {
		t.Errorf("attempts = %d %s, want the last one answered 200", a.Status, a.Raw)
	}
}

// TestE2EGracefulShutdownWaitsForCallback: SIGTERM lets a callback in flight finish, exits 0,
// and the task is completed (not re-run after restart).
func TestE2EGracefulShutdownWaitsForCallback(t *testing.T) {
	t.Parallel()
	var finished atomic.Bool
	target := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		if !e2eSleep(x, r, time.Second) {
			return
		}
		io.WriteString(w, "slow ok")
		finished.Store(true)
	})
	s := startServer(t, "")
	id, _, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL})
	target.waitHits(t, 1, 10*time.Second)
	if err := s.stop(); err != nil {
		t.Fatalf("SIGTERM with a callback in flight: %v\n%s", err, s.Logs())
	}
	if !finished.Load() {
		t.Errorf("the process exited before the in-flight callback finished")
	}
	if st, due := e2eDBStatus(t, s.db, id); st != "completed" {
		t.Errorf("status on disk after SIGTERM = %s (due %v), want completed", st, due)
	}
	s.restart()
	got := e2eWaitStatus(t, s, id, "completed", 10*time.Second)
	if sr := e2eObj(got["result"]); sr["body"] != "slow ok" {
		t.Errorf("result = %v", got["result"])
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(target.Hits()); n != 1 {
		t.Errorf("target got %d calls, want 1 (the finished call must not be repeated)", n)
	}
}

// TestE2EShutdownTimeoutReturnsToPending: with --shutdown-timeout 200ms a slow callback is cut
// short, the task goes back to pending on disk, the process exits 0, and it runs after restart.
func TestE2EShutdownTimeoutReturnsToPending(t *testing.T) {
	t.Parallel()
	var interrupted, completed atomic.Bool
	target := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		if hit.N == 1 {
			if e2eSleep(x, r, 5*time.Second) {
				completed.Store(true)
				io.WriteString(w, "too late")
			} else {
				interrupted.Store(true)
			}
			return
		}
		io.WriteString(w, "after restart")
	})
	s := startServer(t, "", "--shutdown-timeout", "200ms")
	id, _, _ := e2eCreate(t, s, map[string]any{"targetUrl": target.URL})
	target.waitHits(t, 1, 10*time.Second)
	if err := s.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, s.Logs())
	}
	deadline := time.Now().Add(3 * time.Second)
	for !interrupted.Load() && !completed.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if completed.Load() || !interrupted.Load() {
		t.Errorf("first call: interrupted=%v completed=%v; want it cut short by the 200 ms shutdown timeout", interrupted.Load(), completed.Load())
	}
	if st, due := e2eDBStatus(t, s.db, id); st != "pending" || !due.Valid {
		t.Errorf("status on disk after SIGTERM = %s (due_at %v), want pending with a due time", st, due)
	}
	s.restart()
	hits := target.waitHits(t, 2, 15*time.Second)
	if hits[1].Header.Get("X-AsyncQueue-Task-Id") != id {
		t.Errorf("second call for %q, want %q", hits[1].Header.Get("X-AsyncQueue-Task-Id"), id)
	}
	got := e2eWaitStatus(t, s, id, "completed", 10*time.Second)
	if sr := e2eObj(got["result"]); sr["body"] != "after restart" {
		t.Errorf("result = %v", got["result"])
	}
	if got["retryCount"] != 0.0 {
		t.Errorf("retryCount = %v, want 0: an interrupted call is not a failed attempt", got["retryCount"])
	}
}

// TestE2ERestartTimerDueWhileDown: timers that fell due while the server was down fire promptly
// after restart (a delayed task's call and a waiting task's timeout).
func TestE2ERestartTimerDueWhileDown(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	wid, _, wt := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 1})
	did, _, cr := e2eCreate(t, s, map[string]any{"targetUrl": target.URL + "/delayed", "delay": 1})
	s.kill()
	down := time.Now()
	dueD := e2eTime(t, cr.task()["delayUntil"], "delayUntil")
	expW := e2eTime(t, wt["expiresAt"], "expiresAt")
	if early := target.Hits(); len(early) != 1 {
		t.Logf("note: the delayed task was called before the kill (%d hits)", len(early))
	}
	time.Sleep(time.Until(dueD.Add(1500 * time.Millisecond)))
	if time.Now().Before(expW) {
		t.Fatalf("setup: waiting task not yet expired")
	}
	s.launch(false)
	ready := time.Now()
	t.Logf("down for %v", ready.Sub(down))

	var call e2eHit
	deadline := time.Now().Add(15 * time.Second)
	for {
		if h, ok := e2eFirstHitByTask(target.Hits())[did]; ok {
			call = h
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delayed task due while down never called after restart")
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := e2eWaitStatus(t, s, wid, "timeout", 15*time.Second)
	done := e2eTime(t, got["completedAt"], "completedAt")
	t.Logf("after restart ready: delayed call %v, timeout %v", call.At.Sub(ready), done.Sub(ready))
	if d := call.At.Sub(ready); d > 3*time.Second {
		t.Errorf("overdue delayed task called %v after restart, want promptly", d)
	}
	if d := done.Sub(ready); d > 3*time.Second {
		t.Errorf("overdue waiting task timed out %v after restart, want promptly", d)
	}
	e2eWaitStatus(t, s, did, "completed", 10*time.Second)
}

// A timer whose write fails (a trigger refuses it here, as a full disk would) fires again
// once the database takes the write, without a restart.
func TestE2EFailedTimerWriteRetried(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, _, wt := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 2})
	db := openDB(t, s.db, false)
	defer db.Close()
	refuse, allow := `create trigger test_refuse_expiry before update on tasks when old.status = 'waiting'
		begin select raise(abort, 'refused by the test'); end`, `drop trigger test_refuse_expiry`
	if onPostgres {
		if _, err := db.Exec(`create function test_refuse() returns trigger language plpgsql as
			$$ begin raise exception 'refused by the test'; end $$`); err != nil {
			t.Fatal(err)
		}
		refuse = `create trigger test_refuse_expiry before update on tasks for each row
			when (old.status = 'waiting') execute function test_refuse()`
		allow = `drop trigger test_refuse_expiry on tasks`
	}
	if _, err := db.Exec(refuse); err != nil {
		t.Fatal(err)
	}
	if exp := e2eTime(t, wt["expiresAt"], "expiresAt"); time.Until(exp) < 0 {
		t.Fatal("setup: the task expired before the trigger was in place")
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(s.Logs(), "refused by the test") {
		if time.Now().After(deadline) {
			t.Fatal("the expiry's write never failed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := aqtStr(s.call("GET", "/v1/tasks/"+id, nil).task(), "status"); st != "waiting" {
		t.Fatalf("status %q after the refused expiry, want waiting", st)
	}
	if _, err := db.Exec(allow); err != nil {
		t.Fatal(err)
	}
	e2eWaitStatus(t, s, id, "timeout", 10*time.Second)
}

// TestE2ETimerLateness measures (and only logs) timer lateness: ~300 delayed tasks as seen by the
// target, and ~300 maxWaitTime timeouts as recorded by the API.
func TestE2ETimerLateness(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement; skipped with -short")
	}
	// Not parallel: measured alone, before the parallel tests start.
	const n = 300
	target := newE2ETarget(t, nil)
	s := startServer(t, "")

	createAll := func(mk func(i int) map[string]any) []resp {
		out := make([]resp, n)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		next := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					r, err := e2eDo(s, "POST", "/v1/tasks", mk(i))
					if err == nil && r.Status != 201 {
						err = fmt.Errorf("create: %d %s", r.Status, r.Raw)
					}
					if err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					out[i] = r
				}
			}()
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		if firstErr != nil {
			t.Fatal(firstErr)
		}
		return out
	}

	// Delayed tasks: arrival at the target − delayUntil.
	start := time.Now()
	created := createAll(func(i int) map[string]any {
		return map[string]any{"targetUrl": target.URL, "delay": 1 + float64(i%100)/100}
	})
	t.Logf("created %d delayed tasks in %v", n, time.Since(start).Round(time.Millisecond))
	due := map[string]time.Time{}
	for _, r := range created {
		due[r.task()["id"].(string)] = e2eTime(t, r.task()["delayUntil"], "delayUntil")
	}
	deadline := time.Now().Add(30 * time.Second)
	var first map[string]e2eHit
	for {
		first = e2eFirstHitByTask(target.Hits())
		if len(first) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(first) < n {
		t.Fatalf("only %d of %d delayed tasks called within 30 s", len(first), n)
	}
	var late []time.Duration
	early := 0
	for id, d := range due {
		l := first[id].At.Sub(d)
		if l < 0 {
			early++
		}
		late = append(late, l)
	}
	t.Logf("delayed-task lateness (target arrival − delayUntil), n=%d: p50 %v  p99 %v  max %v  min %v  early %d",
		len(late), e2eQuantile(late, .5), e2eQuantile(late, .99), e2eQuantile(late, 1), e2eQuantile(late, 0), early)

	// Waiting tasks: completedAt − expiresAt.
	start = time.Now()
	created = createAll(func(i int) map[string]any {
		return map[string]any{"targetUrl": target.URL, "waitForSignal": true, "maxWaitTime": 1 + float64(i%100)/100}
	})
	t.Logf("created %d wait/signal tasks in %v", n, time.Since(start).Round(time.Millisecond))
	ids := map[string]bool{}
	for _, r := range created {
		ids[r.task()["id"].(string)] = true
	}
	deadline = time.Now().Add(40 * time.Second)
	var timedOut []map[string]any
	for {
		timedOut = timedOut[:0]
		for off := 0; ; off += 100 {
			r, err := e2eDo(s, "GET", fmt.Sprintf("/v1/tasks?status=timeout&limit=100&offset=%d", off), nil)
			if err != nil || r.Status != 200 {
				t.Fatalf("list: %v %d %s", err, r.Status, r.Raw)
			}
			ts, _ := r.Body["tasks"].([]any)
			for _, x := range ts {
				if m := e2eObj(x); ids[fmt.Sprint(m["id"])] {
					timedOut = append(timedOut, m)
				}
			}
			if len(ts) < 100 {
				break
			}
		}
		if len(timedOut) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(timedOut) < n {
		t.Fatalf("only %d of %d waiting tasks timed out within 40 s", len(timedOut), n)
	}
	late = late[:0]
	early = 0
	for _, m := range timedOut {
		l := e2eTime(t, m["completedAt"], "completedAt").Sub(e2eTime(t, m["expiresAt"], "expiresAt"))
		if l < 0 {
			early++
		}
		late = append(late, l)
	}
	t.Logf("timeout lateness (completedAt − expiresAt, ms resolution), n=%d: p50 %v  p99 %v  max %v  min %v  early %d",
		len(late), e2eQuantile(late, .5), e2eQuantile(late, .99), e2eQuantile(late, 1), e2eQuantile(late, 0), early)
	if strings.Contains(s.Logs(), `"level":"ERROR"`) {
		t.Logf("server logged errors during the measurement:\n%s", s.Logs())
	}
}

// TestE2ERestartSignalAfterExpiryRefused: a signal that arrives after maxWaitTime must not
// resolve the task ("If no signal arrives within maxWaitTime, the task times out automatically";
// "Tokens auto-expire based on maxWaitTime"; signal against timeout is one atomic change).
// Many waiting tasks expire while the server is down; right after restart the overdue timeouts
// are being applied and signals are sent for the tasks that expired last. Each must get 409 and
// end timeout — the task's own expiresAt is long past.
func TestE2ERestartSignalAfterExpiryRefused(t *testing.T) {
	t.Parallel()
	var targets []*e2eTarget
	for range 4 {
		targets = append(targets, newE2ETarget(t, nil))
	}
	s := startServer(t, "")
	const n = 1000
	type tk struct {
		id, tok string
		exp     time.Time
	}
	ks := make([]*tk, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var mu sync.Mutex
	var createErr error
	for i := range ks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := e2eDo(s, "POST", "/v1/tasks", map[string]any{"targetUrl": targets[i%len(targets)].URL, "waitForSignal": true, "maxWaitTime": 5})
			if err == nil && r.Status != 201 {
				err = fmt.Errorf("create: %d %s", r.Status, r.Raw)
			}
			if err != nil {
				mu.Lock()
				createErr = err
				mu.Unlock()
				return
			}
			ks[i] = &tk{id: r.task()["id"].(string), tok: r.Body["signalToken"].(string)}
		}()
	}
	wg.Wait()
	if createErr != nil {
		t.Fatal(createErr)
	}
	byID := map[string]*tk{}
	for _, k := range ks {
		byID[k.id] = k
	}
	// Wait until all are waiting, and read their expiresAt.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e2eCall(t, s, "GET", "/v1/tasks?status=waiting&limit=1", nil)
		if e2eObj(r.Body["pagination"])["total"] == float64(n) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all %d tasks waiting after 20 s: %v", n, r.Body["pagination"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	for off := 0; off < n; off += 100 {
		r := e2eCall(t, s, "GET", fmt.Sprintf("/v1/tasks?status=waiting&limit=100&offset=%d", off), nil)
		ts, _ := r.Body["tasks"].([]any)
		for _, x := range ts {
			m := e2eObj(x)
			if k := byID[fmt.Sprint(m["id"])]; k != nil {
				k.exp = e2eTime(t, m["expiresAt"], "expiresAt")
			}
		}
	}
	s.kill()
	for _, k := range ks {
		if k.exp.IsZero() {
			t.Fatalf("task %s: no expiresAt read", k.id)
		}
		if !time.Now().Before(k.exp) {
			t.Logf("note: task %s expired before the kill (slow machine)", k.id)
		}
	}
	// The timers fire in (due, id) order: probe the tasks that come last.
	sort.Slice(ks, func(i, j int) bool {
		if !ks[i].exp.Equal(ks[j].exp) {
			return ks[i].exp.After(ks[j].exp)
		}
		return ks[i].id > ks[j].id
	})
	time.Sleep(time.Until(ks[0].exp.Add(300 * time.Millisecond)))
	s.launch(false)
	probes := ks[:50]
	res := make([]resp, len(probes))
	errs := make([]error, len(probes))
	sent := make([]time.Time, len(probes))
	for i, k := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent[i] = time.Now()
			res[i], errs[i] = e2eDo(s, "POST", "/v1/signals/"+k.tok, map[string]any{"status": "completed", "result": "too late"}, sigNoKey...)
		}()
	}
	wg.Wait()
	accepted := 0
	for i, k := range probes {
		if errs[i] != nil {
			t.Fatalf("signal: %v", errs[i])
		}
		r := res[i]
		if r.Status == 200 {
			accepted++
			if accepted <= 3 {
				t.Errorf("task %s: signal sent %v after expiresAt %v was accepted: 200, task status %v completedAt %v result %v",
					k.id, sent[i].Sub(k.exp).Round(time.Millisecond), r.task()["expiresAt"], r.task()["status"], r.task()["completedAt"], e2eJSON(r.task()["result"]))
			}
			continue
		}
		if r.Status != 409 || r.Body["error"] != "Task is not waiting (current: timeout)" {
			t.Errorf("task %s: late signal = %d %s, want 409 Task is not waiting (current: timeout)", k.id, r.Status, r.Raw)
		}
	}
	if accepted > 0 {
		t.Errorf("%d of %d signals sent after their task's expiresAt resolved the task instead of being refused", accepted, len(probes))
	}
	// Everything ends timeout except what the (wrongly) accepted signals completed.
	deadline = time.Now().Add(20 * time.Second)
	for {
		r := e2eCall(t, s, "GET", "/v1/tasks?status=timeout&limit=1", nil)
		if e2eObj(r.Body["pagination"])["total"] == float64(n-accepted) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out tasks after restart: %v, want %d", r.Body["pagination"], n-accepted)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestE2ESignalTokenStoredHashed: only the SHA-256 of a signal token is stored; the token itself
// appears nowhere in the database files.
func TestE2ESignalTokenStoredHashed(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600})
	if err := s.stop(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	files, _ := filepath.Glob(s.db + "*")
	for name, b := range storedBytes(t, s.db, files...) {
		if bytes.Contains(b, []byte(tok)) || bytes.Contains(b, []byte(strings.ToUpper(tok))) {
			t.Errorf("%s contains the raw signal token", name)
		}
	}
	db := openDB(t, s.db, false)
	defer db.Close()
	var h []byte
	if err := db.QueryRow(rebind(s.db, `select signal_hash from tasks where id = ?`), id).Scan(&h); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(tok))
	if !bytes.Equal(h, want[:]) {
		t.Errorf("signal_hash = %x, want SHA-256 of the token %x", h, want)
	}
}
