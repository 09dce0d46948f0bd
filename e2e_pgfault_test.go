package main

// End-to-end fault tests on PostgreSQL (SPEC §12 "Operations"): each test runs its own
// PostgreSQL cluster (internal/pgtest.NewCluster) and stops, restarts or crashes it under
// running nodes. Writes must answer 503 meanwhile, /readyz must say so, and the nodes must
// recover by themselves without losing anything they acknowledged.

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/pgtest"
)

// pgReady returns the status of s's /readyz (0 when it does not answer).
func pgReady(s *server) int {
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Get(s.base + "/readyz")
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// pgWaitReady waits until s's /readyz answers want (or, with want 0, anything but 200).
func pgWaitReady(t *testing.T, s *server, want int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := pgReady(s)
		if got == want || (want == 0 && got != http.StatusOK) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("/readyz answers %d %v after the change, want %d\nlogs:\n%s", got, timeout, want, s.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pgProblems returns the WARN and ERROR lines of a server's logs (the last 20).
func pgProblems(logs string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-20):], "\n")
}

// pgWaitCompleted waits until every task of ids is completed on s.
func pgWaitCompleted(t *testing.T, s *server, ids []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		completed := nodesStatuses(t, s, "completed")
		var missing []string
		for _, id := range ids {
			if completed[id] == "" {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for i, id := range missing {
				if i == 5 {
					break
				}
				task := s.call("GET", "/v1/tasks/"+id, nil).task()
				t.Errorf("acknowledged task %s: status %v, error %v", id, task["status"], task["error"])
			}
			t.Fatalf("%d of %d acknowledged tasks not completed %v later", len(missing), len(ids), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestE2EPGStopped: with PostgreSQL stopped, a running node answers writes 503 (not 500,
// and no later than its statement timeout) and /readyz fails; once PostgreSQL is back the
// node recovers by itself, and every task it acknowledged, before or after, completes.
func TestE2EPGStopped(t *testing.T) {
	t.Parallel()
	nodesFirstRunOnly(t)
	cl := pgtest.NewCluster(t)
	tg := newNodeTarget(t, nil)
	s := startNodes(t, cl.URL, 1)[0]

	// Ten run now; ten fall due while PostgreSQL is down; one waits for a signal.
	var acked []string
	for i := range 20 {
		body := map[string]any{"targetUrl": tg.URL}
		if i%2 == 1 {
			body["delay"] = 3
		}
		acked = append(acked, aqtStr(aqtCreate(t, s, body), "id"))
	}
	dueBy := time.Now().Add(3 * time.Second)
	r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL, "waitForSignal": true, "maxWaitTime": 300})
	aqtWant(t, r, http.StatusCreated, "create a wait/signal task")
	waiting := aqtStr(r.task(), "id")
	tok, _ := r.Body["signalToken"].(string)
	acked = append(acked, waiting)
	tg.waitTasks(t, 11, 30*time.Second)
	s.waitStatus(waiting, "waiting", 30*time.Second)
	signal := map[string]any{"status": "completed", "result": "after the outage"}

	cl.Stop()
	for i := range 5 {
		start := time.Now()
		r, err := e2eDo(s, "POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL})
		took := time.Since(start)
		switch {
		case err != nil:
			t.Fatalf("create %d with PostgreSQL stopped: %v after %v", i, err, took)
		case r.Status == http.StatusCreated:
			t.Errorf("create %d acknowledged (201) with PostgreSQL stopped", i)
			acked = append(acked, aqtStr(r.task(), "id"))
		case r.Status != http.StatusServiceUnavailable || aqtErr(r) == "":
			t.Errorf("create %d with PostgreSQL stopped: %d %s, want 503 with an error", i, r.Status, r.Raw)
		}
		if took > 20*time.Second {
			t.Errorf("create %d with PostgreSQL stopped answered after %v, beyond the statement timeout", i, took)
		}
	}
	if g, err := e2eDo(s, "POST", "/v1/signals/"+tok, signal, "X-API-Key", ""); err != nil || g.Status != http.StatusServiceUnavailable {
		t.Errorf("a signal with PostgreSQL stopped: %v %d %s, want 503", err, g.Status, g.Raw)
	}
	if g := s.call("GET", "/v1/tasks/"+acked[0], nil); g.Status >= 500 && g.Status != http.StatusServiceUnavailable {
		t.Errorf("a read with PostgreSQL stopped: %d %s, want 200 or 503", g.Status, g.Raw)
	}
	pgWaitReady(t, s, 0, 15*time.Second)
	if st := pgReady(s); st != http.StatusServiceUnavailable {
		t.Errorf("/readyz with PostgreSQL stopped: %d, want 503", st)
	}
	time.Sleep(time.Until(dueBy.Add(time.Second))) // the delayed tasks fall due while it is down

	cl.Start()
	back := pgWaitReady(t, s, http.StatusOK, 60*time.Second)
	t.Logf("/readyz ok %v after PostgreSQL started again", back.Round(time.Millisecond))
	for i := range 10 {
		r, err := e2eDo(s, "POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL})
		if err != nil || r.Status != http.StatusCreated {
			t.Fatalf("create %d after PostgreSQL is back and /readyz ok: %v %d %s\nlogs:\n%s", i, err, r.Status, r.Raw, s.Logs())
		}
		acked = append(acked, aqtStr(r.task(), "id"))
	}
	// The signal refused meanwhile is sent again (as a client retries a 503) and applies.
	if g, err := e2eDo(s, "POST", "/v1/signals/"+tok, signal, "X-API-Key", ""); err != nil || g.Status != http.StatusOK {
		t.Errorf("the signal again after the outage: %v %d %s, want 200", err, g.Status, g.Raw)
	}
	pgWaitCompleted(t, s, acked, 60*time.Second)
	calls := tg.byTask()
	for _, id := range acked {
		if len(calls[id]) == 0 {
			t.Errorf("task %s completed without reaching the target", id)
		}
	}
}

// TestE2EPGRestartMidLoad: a few hundred tasks stream into two nodes while PostgreSQL is
// restarted cleanly, then crashed and started again. Creates meanwhile answer 201 or 503
// (never another 5xx), and every acknowledged task completes.
func TestE2EPGRestartMidLoad(t *testing.T) {
	t.Parallel()
	nodesFirstRunOnly(t)
	cl := pgtest.NewCluster(t)
	tg := newNodeTarget(t, func() time.Duration { return time.Duration(10+rand.IntN(40)) * time.Millisecond })
	nodes := startNodes(t, cl.URL, 2)

	const want = 400
	var (
		mu               sync.Mutex
		acked            []string
		refused, netErrs int
		other            []string
		stop             = make(chan struct{})
		wg               sync.WaitGroup
		body             = map[string]any{"targetUrl": tg.URL, "timeout": 5}
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r, err := e2eDo(nodes[(w+i)%len(nodes)], "POST", "/v1/tasks", body)
				mu.Lock()
				switch {
				case err != nil:
					netErrs++
				case r.Status == http.StatusCreated:
					acked = append(acked, aqtStr(r.task(), "id"))
				case r.Status == http.StatusServiceUnavailable:
					refused++
				default:
					other = append(other, fmt.Sprintf("%d %s", r.Status, r.Raw))
				}
				n := len(acked)
				mu.Unlock()
				if n >= want {
					return
				}
				time.Sleep(40 * time.Millisecond)
			}
		}()
	}
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(halt) // before the nodes are killed
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitFor := func(n int) {
		deadline := time.Now().Add(60 * time.Second)
		for count() < n {
			if time.Now().After(deadline) {
				halt()
				t.Fatalf("%d tasks acknowledged after 60 s, want %d (503: %d, network errors: %d)\nlogs:\n%s", count(), n, refused, netErrs, nodes[0].Logs())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(want / 4)
	cl.Restart()
	t.Logf("PostgreSQL restarted after %d acknowledged tasks", count())
	waitFor(want * 5 / 8)
	cl.Kill()
	time.Sleep(500 * time.Millisecond)
	cl.Start()
	t.Logf("PostgreSQL crashed and started again after %d acknowledged tasks", count())
	waitFor(want)
	halt()
	t.Logf("%d tasks acknowledged; %d creates answered 503, %d failed on the network, %d otherwise", len(acked), refused, netErrs, len(other))
	for i, o := range other {
		if i == 5 {
			break
		}
		t.Errorf("a create during the restarts answered neither 201 nor 503: %s", o)
	}

	for _, s := range nodes {
		pgWaitReady(t, s, http.StatusOK, 60*time.Second)
	}
	pgWaitCompleted(t, nodes[0], acked, 90*time.Second)
	if n := nodesCount(t, nodes[1], "failed,timeout,cancelled"); n != 0 {
		t.Errorf("%d tasks ended failed, timed out or cancelled; want none", n)
	}
	t.Logf("callbacks by node: %v", nodesCallsBy(nodes, nil))
}

// TestE2EPGUnreachable: with PostgreSQL frozen (every process stopped, connections open: as
// behind a dropped network, where the server's own statement timeouts cannot fire), writes
// answer 503 within the statement timeout (15 s) rather than hang, and /readyz fails; thawed,
// the node recovers by itself and completes every task it acknowledged.
func TestE2EPGUnreachable(t *testing.T) {
	t.Parallel()
	nodesFirstRunOnly(t)
	cl := pgtest.NewCluster(t)
	tg := newNodeTarget(t, nil)
	s := startNodes(t, cl.URL, 1)[0]
	var acked []string
	for range 5 {
		acked = append(acked, aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL}), "id"))
	}
	pgWaitCompleted(t, s, acked, 30*time.Second)

	cl.Freeze()
	type answer struct {
		r    resp
		err  error
		took time.Duration
	}
	answers := make(chan answer, 3)
	for range cap(answers) {
		go func() {
			start := time.Now()
			r, err := e2eDoWith(&http.Client{Timeout: 30 * time.Second}, s, "POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL})
			answers <- answer{r, err, time.Since(start)}
		}()
	}
	for range cap(answers) {
		a := <-answers
		switch {
		case a.err != nil:
			t.Errorf("create with PostgreSQL unreachable: %v after %v, want 503 within the statement timeout", a.err, a.took)
		case a.r.Status == http.StatusCreated:
			t.Errorf("create acknowledged (201) with PostgreSQL unreachable")
			acked = append(acked, aqtStr(a.r.task(), "id"))
		case a.r.Status != http.StatusServiceUnavailable:
			t.Errorf("create with PostgreSQL unreachable: %d %s after %v, want 503", a.r.Status, a.r.Raw, a.took)
		case a.took > 25*time.Second:
			t.Errorf("create with PostgreSQL unreachable answered 503 after %v, beyond the 15 s statement timeout", a.took)
		default:
			t.Logf("create with PostgreSQL unreachable: 503 after %v", a.took.Round(time.Millisecond))
		}
	}
	if t.Failed() {
		t.Logf("the node's warnings and errors meanwhile:\n%s", pgProblems(s.Logs()))
	}
	deadline := time.Now().Add(30 * time.Second)
	for st := pgReady(s); st != http.StatusServiceUnavailable; st = pgReady(s) {
		if time.Now().After(deadline) {
			t.Errorf("/readyz with PostgreSQL unreachable: %d (0: no answer in 10 s) after 30 s, want 503", st)
			break
		}
	}

	cl.Thaw()
	back := pgWaitReady(t, s, http.StatusOK, 60*time.Second)
	t.Logf("/readyz ok %v after PostgreSQL was thawed", back.Round(time.Millisecond))
	deadline = time.Now().Add(30 * time.Second)
	for n := 0; n < 5; {
		r, err := e2eDo(s, "POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL})
		if err == nil && r.Status == http.StatusCreated {
			acked = append(acked, aqtStr(r.task(), "id"))
			n++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("create 30 s after PostgreSQL was thawed: %v %d %s\nlogs:\n%s", err, r.Status, r.Raw, s.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	pgWaitCompleted(t, s, acked, 60*time.Second)
}
