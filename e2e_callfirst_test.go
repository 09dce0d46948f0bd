package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A delayed task's call starts before any claim is written (dispatcher.callFirst). While
// it runs the task must still look and behave as processing, get its claim written if the
// call runs long, and end with one write as if it had been claimed.
func TestE2EDelayedCallBeforeClaim(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	gate := aqtNewGate(t)
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) { gate.Wait(r) })
	id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL, "delay": 0.3}), "id")
	tg.WaitHits(t, 1, 10*time.Second)

	got := s.call("GET", "/v1/tasks/"+id, nil).task()
	if aqtStr(got, "status") != "processing" || aqtStr(got, "startedAt") == "" {
		t.Errorf("during its call: status %q, startedAt %q; want processing with a start time",
			aqtStr(got, "status"), aqtStr(got, "startedAt"))
	}
	r := s.call("POST", "/v1/tasks/"+id+"/cancel", nil)
	if r.Status != http.StatusConflict || !strings.Contains(aqtErr(r), "current: processing") {
		t.Errorf("cancel during its call: %d %s; want 409 current: processing", r.Status, r.Raw)
	}

	// A call that runs long gets its claim written: lists, which read the database,
	// find it processing too.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := s.call("GET", "/v1/tasks?status=processing", nil)
		tasks, _ := l.Body["tasks"].([]any)
		if len(tasks) == 1 && aqtStr(tasks[0].(map[string]any), "id") == id {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the long call's task is not listed as processing: %s", l.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := s.call("POST", "/v1/tasks/"+id+"/cancel", nil); r.Status != http.StatusConflict {
		t.Errorf("cancel after the claim is written: %d %s; want 409", r.Status, r.Raw)
	}

	gate.Open()
	done := s.waitStatus(id, "completed", 10*time.Second)
	if aqtNum(aqtObj(done, "result"), "statusCode") != 200 {
		t.Errorf("result %v, want statusCode 200", done["result"])
	}
	if as := aqtAttempts(t, s, id); len(as) != 1 || aqtNum(as[0], "attempt") != 1 {
		t.Errorf("attempts %v, want one, numbered 1", as)
	}
	if n := len(tg.Hits()); n != 1 {
		t.Errorf("target called %d times, want once", n)
	}

	// A short call: no claim written, one write at the end, counted once.
	id2 := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/short", "delay": 0.2}), "id")
	s.waitStatus(id2, "completed", 10*time.Second)
	if as := aqtAttempts(t, s, id2); len(as) != 1 {
		t.Errorf("short call: attempts %v, want one", as)
	}
}

// A signal that arrives while a delayed task's claimless call runs is buffered, and the
// task goes straight to the signalled state when the call is answered.
func TestE2EDelayedCallBeforeClaimEarlySignal(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	gate := aqtNewGate(t)
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) { gate.Wait(r) })
	r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL, "delay": 0.2, "waitForSignal": true})
	aqtWant(t, r, http.StatusCreated, "create")
	id, token := aqtStr(r.task(), "id"), aqtStr(r.Body, "signalToken")
	tg.WaitHits(t, 1, 10*time.Second)

	sig := s.call("POST", "/v1/signals/"+token, map[string]any{"status": "completed", "result": map[string]any{"ok": true}})
	aqtWant(t, sig, http.StatusAccepted, "early signal")
	if aqtStr(sig.task(), "status") != "processing" {
		t.Errorf("early signal answered with status %q, want processing", aqtStr(sig.task(), "status"))
	}
	gate.Open()
	done := s.waitStatus(id, "completed", 10*time.Second)
	if res := aqtObj(done, "result"); res == nil || res["ok"] != true {
		t.Errorf("result %v, want the signal's {ok: true}", done["result"])
	}
}

// A crash while a delayed task's claimless call runs leaves it delayed and overdue on
// disk: after the restart it is called again and completes (at least once).
func TestE2EDelayedCallBeforeClaimCrash(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	var hits atomic.Int32
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			<-r.Context().Done() // the first call hangs until the server dies
		}
	})
	id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL, "delay": 0.2, "timeout": 30}), "id")
	tg.WaitHits(t, 1, 10*time.Second)
	s.restart() // well within claimLongCall: no claim on disk
	tg.WaitHits(t, 2, 15*time.Second)
	s.waitStatus(id, "completed", 10*time.Second)
	if as := aqtAttempts(t, s, id); len(as) != 1 {
		t.Errorf("attempts %v, want the one that was answered", as)
	}
}

// Cancels racing the timers of the tasks they cancel: each task is either cancelled and
// never called, or refused as processing and called once, never both.
func TestE2EDelayedCancelRace(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	var mu sync.Mutex
	calls := map[string]int{}
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.Header.Get("X-AsyncQueue-Task-Id")]++
		mu.Unlock()
	})
	const n = 200
	due := time.Now().Add(2 * time.Second).Truncate(time.Millisecond)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL, "delayUntil": due.UTC().Format(time.RFC3339Nano)}), "id")
	}
	// Cancel from 16 goroutines, from just before the moment all fall due to just after.
	codes := make([]int, n)
	var wg sync.WaitGroup
	time.Sleep(time.Until(due.Add(-15 * time.Millisecond)))
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 16 {
				r := s.call("POST", "/v1/tasks/"+ids[i]+"/cancel", nil)
				codes[i] = r.Status
				if r.Status == http.StatusConflict && !strings.Contains(aqtErr(r), "current: processing") &&
					!strings.Contains(aqtErr(r), "current: completed") {
					t.Errorf("cancel %s: %s", ids[i], r.Raw)
				}
			}
		}()
	}
	wg.Wait()
	cancelled := 0
	for i, id := range ids {
		if codes[i] == http.StatusOK {
			cancelled++
			continue
		}
		s.waitStatus(id, "completed", 10*time.Second)
	}
	time.Sleep(time.Second) // a call that should not happen has had time to
	mu.Lock()
	defer mu.Unlock()
	for i, id := range ids {
		switch {
		case codes[i] == http.StatusOK && calls[id] != 0:
			t.Errorf("task %s: cancelled (200) but called %d times", id, calls[id])
		case codes[i] == http.StatusConflict && calls[id] != 1:
			t.Errorf("task %s: refused (409) but called %d times", id, calls[id])
		case codes[i] != http.StatusOK && codes[i] != http.StatusConflict:
			t.Errorf("task %s: cancel answered %d", id, codes[i])
		}
	}
	t.Logf("%d of %d cancelled before their call", cancelled, n)
}

// While timers keep falling due, the outcome writes of their calls wait in memory
// (outcomes.go). A clean shutdown in the middle of such a burst writes them: after the
// restart no task that was called before it is called again, and every task completes.
func TestE2EBurstOutcomesWrittenAtShutdown(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, nil)
	const n = 600
	base := time.Now().Add(4 * time.Second)
	ids := make([]string, n)
	var wg sync.WaitGroup
	var next atomic.Int32
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				// Due 2 ms apart for 1.2 s: one long burst.
				due := base.Add(time.Duration(i) * 2 * time.Millisecond)
				r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": fmt.Sprintf("%s/t/%d", tg.URL, i),
					"delayUntil": due.UTC().Format(time.RFC3339Nano)})
				if r.Status != http.StatusCreated {
					t.Errorf("create %d: %d %s", i, r.Status, r.Raw)
					return
				}
				ids[i] = aqtStr(r.task(), "id")
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if time.Now().After(base) {
		t.Fatalf("creating %d tasks took past their first due time", n)
	}
	tg.WaitHits(t, n/3, 20*time.Second)
	if err := s.stop(); err != nil {
		t.Fatalf("SIGTERM during the burst: %v", err)
	}
	before := len(tg.Hits())
	s.launch(false)
	for _, id := range ids {
		s.waitStatus(id, "completed", 30*time.Second)
	}
	calls := map[string]int{}
	for _, h := range tg.Hits() {
		calls[h.Path]++
	}
	for path, c := range calls {
		if c != 1 {
			t.Errorf("%s called %d times, want once (%d calls before the shutdown)", path, c, before)
		}
	}
	if len(calls) != n {
		t.Errorf("%d tasks called, want %d", len(calls), n)
	}
}
