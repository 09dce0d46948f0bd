package main

// End-to-end tests of several nodes on one PostgreSQL database (SPEC §12): three real binaries
// share a database; the tests check that what one node commits the others act on, that every
// race is decided once, and that a node's death loses nothing.

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/pgtest"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// nodesFirstRunOnly skips t in the e2e suite's second run, where every server is on
// PostgreSQL (harness_test.go, onPostgres): these tests start their nodes on PostgreSQL in
// either run, and ran in the first.
func nodesFirstRunOnly(t *testing.T) {
	t.Helper()
	if onPostgres {
		t.Skip("on PostgreSQL in either run: already run in the first")
	}
}

// nodesVaultKey is the Token Vault key every node of a test shares.
const nodesVaultKey = "8d3f1c9a52e04b7f96a1d0c2e5b8a7f41c6e9d2b0a3f5e7c8b1d4a6f9e2c0b35"

// nodeName is the id of the i-th node of a test: nodeA, nodeB, …
func nodeName(i int) string { return "node" + string(rune('A'+i)) }

// startNodes starts n nodes (nodeA, nodeB, …) on the PostgreSQL database db, each on a free
// port of 127.0.0.1, and kills them at the end of the test. The first prints the bootstrap
// key; the others must print none, and share it.
func startNodes(t *testing.T, db string, n int, extra ...string) []*server {
	t.Helper()
	nodes := make([]*server, n)
	for i := range nodes {
		args := append([]string{"--vault-key", nodesVaultKey, "--node-id", nodeName(i)}, extra...)
		s := &server{t: t, db: db, args: args}
		s.launch(i == 0)
		t.Cleanup(s.kill)
		if i > 0 {
			if keyRE.MatchString(s.Logs()) {
				t.Errorf("%s printed a bootstrap key, on a database that has one already", nodeName(i))
			}
			s.key = nodes[0].key
		}
		nodes[i] = s
	}
	return nodes
}

// nodesWaitMembers waits until every node counts all of them live (asyncqueue_nodes in
// /metrics): each node runs its share of every flow's limits, by the live nodes it knows.
func nodesWaitMembers(t *testing.T, nodes []*server) {
	t.Helper()
	want := fmt.Sprintf("\nasyncqueue_nodes %d\n", len(nodes))
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range nodes {
		for {
			res, err := http.Get(s.base + "/metrics")
			var body []byte
			if err == nil {
				body, _ = io.ReadAll(res.Body)
				res.Body.Close()
			}
			if strings.Contains(string(body), want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not count %d live nodes after 30 s: %v %s", s.addr, len(nodes), err,
					regexp.MustCompile(`(?m)^asyncqueue_nodes .*$`).FindString(string(body)))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// nodeCall is one request a node target received.
type nodeCall struct {
	Task       string // X-AsyncQueue-Task-Id
	Start, End time.Time
	Aborted    bool // the caller went away before the answer (a killed node, a timeout)
	Header     http.Header
	Body       string
}

// nodeTarget is a target on 127.0.0.1 that every node calls: it records each call with its
// task id, and the most calls it had in flight at once. delay (nil: none) says how long it
// takes to answer 200.
type nodeTarget struct {
	URL   string
	delay func() time.Duration
	quit  chan struct{}

	mu                    sync.Mutex
	calls                 []nodeCall
	inFlight, maxInFlight int
}

func newNodeTarget(t *testing.T, delay func() time.Duration) *nodeTarget {
	t.Helper()
	tg := &nodeTarget{delay: delay, quit: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(tg.serve))
	tg.URL = srv.URL
	t.Cleanup(func() {
		close(tg.quit)
		srv.CloseClientConnections()
		srv.Close()
	})
	return tg
}

func (tg *nodeTarget) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c := nodeCall{Task: r.Header.Get("X-AsyncQueue-Task-Id"), Start: time.Now(), Header: r.Header.Clone(), Body: string(body)}
	tg.mu.Lock()
	tg.inFlight++
	tg.maxInFlight = max(tg.maxInFlight, tg.inFlight)
	tg.mu.Unlock()
	if tg.delay != nil {
		select {
		case <-time.After(tg.delay()):
		case <-r.Context().Done():
			c.Aborted = true
		case <-tg.quit:
			c.Aborted = true
		}
	}
	c.End = time.Now()
	tg.mu.Lock()
	tg.inFlight--
	tg.calls = append(tg.calls, c)
	tg.mu.Unlock()
	if !c.Aborted {
		io.WriteString(w, "ok")
	}
}

// Calls returns the finished calls so far (aborted ones included).
func (tg *nodeTarget) Calls() []nodeCall {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return slices.Clone(tg.calls)
}

// byTask groups the finished calls by task id.
func (tg *nodeTarget) byTask() map[string][]nodeCall {
	out := map[string][]nodeCall{}
	for _, c := range tg.Calls() {
		out[c.Task] = append(out[c.Task], c)
	}
	return out
}

// InFlight returns the calls in flight now and the most there were at once.
func (tg *nodeTarget) InFlight() (now, most int) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.inFlight, tg.maxInFlight
}

// waitTasks waits until calls for at least n distinct tasks have finished.
func (tg *nodeTarget) waitTasks(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := len(tg.byTask())
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("target called for %d tasks after %v, want %d", got, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nodesCallsBy counts the callbacks each node logged ("callback" lines at debug level) for
// the tasks in ids (all tasks when ids is nil).
func nodesCallsBy(nodes []*server, ids map[string]bool) map[string]int {
	out := map[string]int{}
	for i, s := range nodes {
		for _, l := range aqtJSONLines(s.Logs()) {
			if l["msg"] != "callback" {
				continue
			}
			if id, _ := l["task"].(string); ids == nil || ids[id] {
				out[nodeName(i)]++
			}
		}
	}
	return out
}

// nodesCreate creates the tasks made by body(i) for i in [0, n), spread over the nodes by
// workers at once, and returns their ids in order. Any answer but 201 fails the test.
func nodesCreate(t *testing.T, nodes []*server, n, workers int, body func(i int) map[string]any) []string {
	t.Helper()
	ids := make([]string, n)
	errs := make(chan string, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := nodes[i%len(nodes)]
				r, err := e2eDo(s, "POST", "/v1/tasks", body(i))
				if err != nil || r.Status != http.StatusCreated {
					errs <- fmt.Sprintf("create %d on %s: %v %d %s", i, nodeName(i%len(nodes)), err, r.Status, r.Raw)
					continue
				}
				ids[i] = aqtStr(r.task(), "id")
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	return ids
}

// nodesCount returns pagination.total of GET /v1/tasks?status=statuses on s.
func nodesCount(t *testing.T, s *server, statuses string) int {
	t.Helper()
	r := s.call("GET", "/v1/tasks?limit=1&status="+statuses, nil)
	aqtWant(t, r, http.StatusOK, "list "+statuses)
	p := aqtObj(r.Body, "pagination")
	if p == nil {
		t.Fatalf("list %s: no pagination in %s", statuses, r.Raw)
	}
	return int(aqtNum(p, "total"))
}

// nodesWaitDone waits until s counts no task pending, delayed or processing.
func nodesWaitDone(t *testing.T, s *server, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := nodesCount(t, s, "pending,delayed,processing")
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks still pending, delayed or processing after %v", n, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// nodesStatuses lists every task of the team with one of statuses: id → status.
func nodesStatuses(t *testing.T, s *server, statuses string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for off := 0; ; off += 100 {
		r := s.call("GET", fmt.Sprintf("/v1/tasks?limit=100&offset=%d&status=%s", off, statuses), nil)
		aqtWant(t, r, http.StatusOK, "list "+statuses)
		list, _ := r.Body["tasks"].([]any)
		for _, x := range list {
			m, _ := x.(map[string]any)
			out[aqtStr(m, "id")] = aqtStr(m, "status")
		}
		if len(list) < 100 {
			return out
		}
	}
}

// TestE2ENodesCreateSignalLongPoll: a task created on node A and signalled on node B wakes a
// long poll held on node C.
func TestE2ENodesCreateSignalLongPoll(t *testing.T) {
	t.Parallel()
	nodesFirstRunOnly(t)
	db := pgtest.Database(t)
	tg := newNodeTarget(t, nil)
	nodes := startNodes(t, db, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]

	r := a.call("POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL, "waitForSignal": true, "maxWaitTime": 120})
	aqtWant(t, r, http.StatusCreated, "create on nodeA")
	id := aqtStr(r.task(), "id")
	tok, _ := r.Body["signalToken"].(string)
	c.waitStatus(id, "waiting", 30*time.Second)

	type answer struct {
		r   resp
		err error
		at  time.Time
	}
	polled := make(chan answer, 1)
	go func() {
		r, err := e2eDo(c, "GET", "/v1/tasks/"+id+"?wait=20", nil)
		polled <- answer{r, err, time.Now()}
	}()
	select {
	case p := <-polled:
		t.Fatalf("the long poll on nodeC answered before any change: %v %d %s", p.err, p.r.Status, p.r.Raw)
	case <-time.After(time.Second):
	}
	sent := time.Now()
	g, err := e2eDo(b, "POST", "/v1/signals/"+tok, map[string]any{"status": "completed", "result": map[string]any{"by": "nodeB"}}, "X-API-Key", "")
	if err != nil || g.Status != http.StatusOK {
		t.Fatalf("signal on nodeB: %v %d %s", err, g.Status, g.Raw)
	}
	p := <-polled
	if p.err != nil || p.r.Status != http.StatusOK {
		t.Fatalf("long poll on nodeC: %v %d %s", p.err, p.r.Status, p.r.Raw)
	}
	woke := p.at.Sub(sent)
	t.Logf("the long poll on nodeC answered %v after the signal on nodeB", woke)
	if st := aqtStr(p.r.task(), "status"); st != "completed" {
		t.Fatalf("the long poll on nodeC answered %v after the signal with status %q, want completed\nnodeC logs:\n%s", woke, st, c.Logs())
	}
	if woke > 5*time.Second {
		t.Errorf("the long poll on nodeC woke %v after the signal on nodeB; want well within the 20 s wait", woke)
	}
	if res := aqtObj(a.call("GET", "/v1/tasks/"+id, nil).task(), "result"); res["by"] != "nodeB" {
		t.Errorf("nodeA reads result %v, want the signal's {by: nodeB}", res)
	}
}

// TestE2ENodesKillOneMidLoad: 2,000 tasks created over three nodes, one node SIGKILLed while
// they run. Every acknowledged task completes, exactly once (one completion webhook id each),
// and the killed node's calls are run again by the others once their lease ends; a task may
// reach the target twice only when one of its calls was in flight on the killed node.
func TestE2ENodesKillOneMidLoad(t *testing.T) {
	t.Parallel()
	nodesFirstRunOnly(t)
	db := pgtest.Database(t)
	tg := newNodeTarget(t, func() time.Duration { return time.Duration(50+rand.IntN(150)) * time.Millisecond })
	hook := newNodeTarget(t, nil)
	nodes := startNodes(t, db, 3)
	victim := nodes[2]
	// A short timeout makes the lease of the victim's calls (timeout + store.LeaseSlack) end
	// within the test.
	body := map[string]any{"targetUrl": tg.URL + "/work", "timeout": 3, "maxRetries": 3, "onCompleteUrl": hook.URL + "/done"}

	const total = 2000
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		failures []string
		dead     atomic.Bool
	)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var last string
				for try := 0; ; try++ {
					s := nodes[(i+try)%len(nodes)]
					if s == victim && dead.Load() {
						continue
					}
					r, err := e2eDo(s, "POST", "/v1/tasks", body)
					if err == nil && r.Status == http.StatusCreated {
						mu.Lock()
						acked[aqtStr(r.task(), "id")] = true
						mu.Unlock()
						break
					}
					last = fmt.Sprintf("%v %d %s", err, r.Status, r.Raw)
					if s != victim && try >= 10 {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("create %d: %s", i, last))
						mu.Unlock()
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	start := time.Now()
	go func() {
		for i := range total {
			next <- i
		}
		close(next)
	}()
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= total/3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	inFlight, _ := tg.InFlight()
	dead.Store(true)
	killAt := time.Now()
	victim.kill()
	killed := time.Now() // the victim may start calls until the signal lands
	wg.Wait()
	created := time.Since(start)
	if len(failures) > 0 {
		t.Fatalf("%d creates on the live nodes failed; first: %s", len(failures), failures[0])
	}
	t.Logf("%d tasks acknowledged in %v; %s SIGKILLed after %d, with %d calls in flight at the target",
		len(acked), created.Round(time.Millisecond), nodeName(2), total/3, inFlight)
	if len(acked) != total {
		t.Fatalf("%d tasks acknowledged, want %d", len(acked), total)
	}

	a := nodes[0]
	nodesWaitDone(t, a, 90*time.Second-time.Since(killAt))
	deadline := time.Now().Add(20 * time.Second)
	webhooks := func() map[string]map[string]bool { // task → distinct webhook ids of task.completed
		out := map[string]map[string]bool{}
		for _, c := range hook.Calls() {
			if c.Header.Get("X-AsyncQueue-Event") != "task.completed" {
				continue
			}
			if out[c.Task] == nil {
				out[c.Task] = map[string]bool{}
			}
			out[c.Task][c.Header.Get("webhook-id")] = true
		}
		return out
	}
	hooks := webhooks()
	for time.Now().Before(deadline) {
		missing := 0
		for id := range acked {
			if len(hooks[id]) == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
		hooks = webhooks()
	}
	done := time.Since(killAt)

	// Every acknowledged task completed, and nothing ended otherwise.
	completed := nodesStatuses(t, a, "completed")
	lost := 0
	for id := range acked {
		if completed[id] != "completed" {
			if lost++; lost <= 5 {
				t.Errorf("acknowledged task %s is not completed: %v", id, a.call("GET", "/v1/tasks/"+id, nil).task()["status"])
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged tasks not completed", lost, len(acked))
	}
	if n := nodesCount(t, a, "failed,timeout,cancelled"); n != 0 {
		t.Errorf("%d tasks ended failed, timed out or cancelled; want none", n)
	}

	// Each completed exactly once: one completion webhook id per task.
	noHook, twice := 0, 0
	for id := range completed {
		switch n := len(hooks[id]); {
		case n == 0:
			noHook++
		case n > 1:
			if twice++; twice <= 5 {
				t.Errorf("task %s completed %d times: webhook ids %v", id, n, hooks[id])
			}
		}
	}
	if noHook > 0 {
		t.Errorf("%d completed tasks got no task.completed webhook", noHook)
	}

	// The target saw each task at least once; twice only when a call was in flight on the
	// killed node (or a call timed out and was retried).
	calls := tg.byTask()
	var atKill, retried, unexplained int
	var rerun []time.Duration // from a cut call's start to the task's next call
	for id := range acked {
		cs := calls[id]
		if len(cs) == 0 {
			t.Errorf("task %s completed without reaching the target", id)
			continue
		}
		if len(cs) == 1 {
			continue
		}
		slices.SortFunc(cs, func(x, y nodeCall) int { return x.Start.Compare(y.Start) })
		var nearKill, aborted bool
		for i, c := range cs[:len(cs)-1] {
			// In flight at the kill, or answered just before it (the outcome not yet committed).
			nearKill = nearKill || (c.Start.Before(killed) && c.End.After(killAt.Add(-2*time.Second)))
			aborted = aborted || c.Aborted
			// A call the kill cut held a lease of timeout + store.LeaseSlack from its claim (a
			// moment before the call): no node may run the task again before it ends.
			if c.Aborted && c.End.Sub(killAt).Abs() < 2*time.Second {
				again := cs[i+1].Start.Sub(c.Start)
				rerun = append(rerun, again)
				if again < store.LeaseSlack {
					t.Errorf("task %s, cut by the kill, ran again %v after the cut call began, before the lease (3 s + %v) could end",
						id, again.Round(time.Millisecond), store.LeaseSlack)
				}
			}
		}
		switch {
		case nearKill:
			atKill++
		case aborted:
			if retried++; retried <= 5 {
				t.Logf("task %s: a call cut (a timeout?) away from the kill (%s), then run again: %s",
					id, killAt.Format("15:04:05.000"), callTimes(cs))
			}
		default:
			if unexplained++; unexplained <= 5 {
				t.Errorf("task %s reached the target %d times (at %v), none of them in flight at the kill (%v)",
					id, len(cs), callTimes(cs), killAt.Format("15:04:05.000"))
			}
		}
	}
	abortedAtKill := 0
	for _, c := range tg.Calls() {
		if c.Aborted && c.End.Sub(killAt).Abs() < 2*time.Second {
			abortedAtKill++
		}
	}
	t.Logf("all done %v after the kill; callbacks by node: %v; %d calls cut by the kill; tasks called twice: %d in flight at the kill, %d retried after a timeout, %d unexplained",
		done.Round(time.Millisecond), nodesCallsBy(nodes, nil), abortedAtKill, atKill, retried, unexplained)
	if len(rerun) > 0 {
		slices.Sort(rerun)
		t.Logf("the cut tasks ran again %v to %v after their cut call began", rerun[0].Round(time.Millisecond), rerun[len(rerun)-1].Round(time.Millisecond))
	}
	if abortedAtKill == 0 {
		t.Errorf("the kill cut no call in flight: the killed node held no lease, so the test proved nothing about leases")
	}
	if atKill < abortedAtKill {
		t.Errorf("%d calls were cut by the kill but only %d tasks were called again", abortedAtKill, atKill)
	}
}

// callTimes formats when each call started.
func callTimes(cs []nodeCall) string {
	var b strings.Builder
	for i, c := range cs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s–%s%s", c.Start.Format("15:04:05.000"), c.End.Format("15:04:05.000"), map[bool]string{true: " aborted"}[c.Aborted])
	}
	return b.String()
}

// TestE2ENodesStartTakesNoLiveCall: a node that starts while the others have calls in flight
// resets none of them (only a node's own calls come back when it restarts): each task reaches
// the target once.
func TestE2ENodesStartTakesNoLiveCall(t *testing.T) {
	t.Parallel()
	nodesFirstRunOnly(t)
	db := pgtest.Database(t)
	tg := newNodeTarget(t, func() time.Duration { return 3 * time.Second })
	nodes := startNodes(t, db, 2)
	ids := nodesCreate(t, nodes, 10, 4, func(int) map[string]any {
		return map[string]any{"targetUrl": tg.URL, "timeout": 10}
	})
	deadline := time.Now().Add(20 * time.Second)
	for n, _ := tg.InFlight(); n < len(ids); n, _ = tg.InFlight() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d calls in flight after 20 s", n, len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
	late := &server{t: t, db: db, args: []string{"--vault-key", nodesVaultKey, "--node-id", nodeName(2)}, key: nodes[0].key}
	late.launch(false)
	t.Cleanup(late.kill)
	for _, id := range ids {
		late.waitStatus(id, "completed", 30*time.Second)
	}
	time.Sleep(500 * time.Millisecond) // room for a second call to show up
	calls := tg.byTask()
	for _, id := range ids {
		if n := len(calls[id]); n != 1 {
			t.Errorf("task %s reached the target %d times, want once: %s", id, n, callTimes(calls[id]))
		}
	}
}

// TestE2ENodesTimersFireOnce: 200 tasks created over three nodes, all due at the same
// instant, reach the target exactly once each, none early.
func TestE2ENodesTimersFireOnce(t *testing.T) {
	t.Parallel()
	nodesFirstRunOnly(t)
	db := pgtest.Database(t)
	tg := newNodeTarget(t, nil)
	nodes := startNodes(t, db, 3)
	due := time.Now().Add(6 * time.Second).UTC().Truncate(time.Millisecond)
	ids := nodesCreate(t, nodes, 200, 8, func(int) map[string]any {
		return map[string]any{"targetUrl": tg.URL, "delayUntil": due.Format("2006-01-02T15:04:05.000Z")}
	})
	if time.Now().After(due) {
		t.Logf("creating the timers took past their due time: they fire at once")
	}
	tg.waitTasks(t, len(ids), time.Until(due)+60*time.Second)
	nodesWaitDone(t, nodes[0], 30*time.Second)
	time.Sleep(time.Second) // room for a second firing to show up

	calls := tg.byTask()
	var late []time.Duration
	for _, id := range ids {
		cs := calls[id]
		if len(cs) != 1 {
			t.Errorf("task %s reached the target %d times, want once: %s", id, len(cs), callTimes(cs))
			continue
		}
		if cs[0].Start.Before(due.Add(-20 * time.Millisecond)) { // "within a few milliseconds" (SPEC §4.5)
			t.Errorf("task %s called at %s, before its due time %s", id, cs[0].Start.Format("15:04:05.000"), due.Format("15:04:05.000"))
		}
		late = append(late, cs[0].Start.Sub(due))
	}
	if n := len(calls); n != len(ids) {
		t.Errorf("target called for %d tasks, want %d", n, len(ids))
	}
	completed := nodesStatuses(t, nodes[0], "completed")
	for _, id := range ids {
		if completed[id] == "" {
			t.Errorf("task %s is not completed", id)
		}
	}
	slices.Sort(late)
	if len(late) > 0 {
		t.Logf("200 timers: lateness median %v, max %v; callbacks by node: %v",
			late[len(late)/2].Round(time.Millisecond), late[len(late)-1].Round(time.Millisecond), nodesCallsBy(nodes, nil))
	}
}

// TestE2ENodesSignalRace: 50 signals at once on one token, spread over three nodes: exactly
// one is applied (200), every other gets the spec's 409 for a used token, and the task
// completes once, with the winner's result.
func TestE2ENodesSignalRace(t *testing.T) {
	t.Parallel()
	nodesFirstRunOnly(t)
	db := pgtest.Database(t)
	tg := newNodeTarget(t, nil)
	hook := newNodeTarget(t, nil)
	nodes := startNodes(t, db, 3)
	r := nodes[0].call("POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL, "waitForSignal": true, "maxWaitTime": 300,
		"onCompleteUrl": hook.URL})
	aqtWant(t, r, http.StatusCreated, "create")
	id := aqtStr(r.task(), "id")
	tok, _ := r.Body["signalToken"].(string)
	for _, s := range nodes {
		s.waitStatus(id, "waiting", 30*time.Second)
	}

	const n = 50
	type answer struct {
		i   int
		r   resp
		err error
	}
	answers := make(chan answer, n)
	gate := make(chan struct{})
	for i := range n {
		go func() {
			<-gate
			body := map[string]any{"status": "completed", "result": map[string]any{"signal": i}}
			r, err := e2eDo(nodes[i%len(nodes)], "POST", "/v1/signals/"+tok, body, "X-API-Key", "")
			answers <- answer{i, r, err}
		}()
	}
	close(gate)
	winner := -1
	statuses := map[int]int{}
	for range n {
		a := <-answers
		if a.err != nil {
			t.Errorf("signal %d on %s: %v", a.i, nodeName(a.i%len(nodes)), a.err)
			continue
		}
		statuses[a.r.Status]++
		switch a.r.Status {
		case http.StatusOK:
			if winner >= 0 {
				t.Errorf("signals %d and %d both answered 200: %s", winner, a.i, a.r.Raw)
			}
			winner = a.i
		case http.StatusConflict:
			if e := aqtErr(a.r); e != "Task is not waiting (current: completed)" {
				t.Errorf("signal %d on %s: 409 %q, want \"Task is not waiting (current: completed)\"", a.i, nodeName(a.i%len(nodes)), e)
			}
		default:
			t.Errorf("signal %d on %s: %d %s, want 200 once and 409 otherwise", a.i, nodeName(a.i%len(nodes)), a.r.Status, a.r.Raw)
		}
	}
	t.Logf("answers by status: %v; winner: signal %d on %s", statuses, winner, nodeName(max(winner, 0)%len(nodes)))
	if winner < 0 {
		t.Fatal("no signal answered 200")
	}
	for _, s := range nodes {
		task := s.waitStatus(id, "completed", 10*time.Second)
		if res := aqtObj(task, "result"); res["signal"] != float64(winner) {
			t.Errorf("%s reads result %v, want the winner's {signal: %d}", s.addr, res, winner)
		}
	}
	var signals int
	e := nodes[1].call("GET", "/v1/tasks/"+id+"/events", nil)
	evs, _ := e.Body["events"].([]any)
	for _, x := range evs {
		if m, _ := x.(map[string]any); m["kind"] == "signal" {
			signals++
		}
	}
	if signals != 1 {
		t.Errorf("%d signal events, want 1: %s", signals, e.Raw)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(hook.Calls()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // room for a second webhook to show up
	ids := map[string]bool{}
	for _, c := range hook.Calls() {
		ids[c.Header.Get("webhook-id")] = true
	}
	if len(ids) != 1 {
		t.Errorf("completion webhooks with %d distinct ids %v, want 1", len(ids), ids)
	}
}

// TestE2ENodesFlowLimits: a flow's parallelism set on node A holds across the three nodes,
// and a pause made on node A stops calls from nodes B and C.
func TestE2ENodesFlowLimits(t *testing.T) {
	t.Parallel()
	nodesFirstRunOnly(t)
	db := pgtest.Database(t)
	tg := newNodeTarget(t, func() time.Duration { return 300 * time.Millisecond })
	nodes := startNodes(t, db, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const key = "limited"
	nodesWaitMembers(t, nodes)
	aqtWant(t, a.call("PUT", flowPath(key), map[string]any{"parallelism": 2}), http.StatusOK, "set parallelism on nodeA")
	time.Sleep(1500 * time.Millisecond) // settings reach the other nodes within a second (SPEC §12)
	// Every node shows the flow's setting (not its own share of it).
	for _, s := range nodes {
		f := s.call("GET", flowPath(key), nil)
		aqtWant(t, f, http.StatusOK, "get flow")
		if fl := aqtObj(f.Body, "flow"); fl == nil || aqtNum(fl, "parallelism") != 2 {
			t.Errorf("%s shows the flow as %s, want parallelism 2", s.addr, f.Raw)
		}
	}

	ids := nodesCreate(t, nodes, 30, 6, func(int) map[string]any {
		return map[string]any{"targetUrl": tg.URL, "flowKey": key}
	})
	tg.waitTasks(t, len(ids), 60*time.Second)
	if _, most := tg.InFlight(); most > 2 {
		t.Errorf("the target had %d calls of the flow in flight at once, want at most 2 (callbacks by node: %v)", most, nodesCallsBy(nodes, nil))
	} else {
		t.Logf("at most %d calls in flight; callbacks by node: %v", most, nodesCallsBy(nodes, nil))
	}
	nodesWaitDone(t, a, 30*time.Second)

	// Paused on A: B and C make no call.
	aqtWant(t, a.call("POST", flowPath(key, "/pause"), nil), http.StatusOK, "pause on nodeA")
	time.Sleep(1500 * time.Millisecond)
	before := len(tg.Calls())
	held := nodesCreate(t, nodes[1:], 10, 4, func(int) map[string]any {
		return map[string]any{"targetUrl": tg.URL, "flowKey": key}
	})
	time.Sleep(3 * time.Second)
	if n := len(tg.Calls()) - before; n > 0 {
		t.Errorf("%d calls of the flow paused on nodeA were made (callbacks by node: %v)", n, nodesCallsBy(nodes, nil))
	}
	for _, s := range []*server{b, c} {
		f := s.call("GET", flowPath(key), nil)
		if fl := aqtObj(f.Body, "flow"); fl == nil || fl["paused"] != true {
			t.Errorf("%s shows the flow as %s, want paused", s.addr, f.Raw)
		}
	}
	for _, id := range held {
		if st := aqtStr(b.call("GET", "/v1/tasks/"+id, nil).task(), "status"); st != "pending" {
			t.Errorf("task %s of the paused flow is %q, want pending", id, st)
		}
	}

	// Resumed on C: they all run, still two at a time.
	aqtWant(t, c.call("POST", flowPath(key, "/resume"), nil), http.StatusOK, "resume on nodeC")
	tg.waitTasks(t, len(ids)+len(held), 60*time.Second)
	if _, most := tg.InFlight(); most > 2 {
		t.Errorf("after the resume the target had %d calls in flight at once, want at most 2", most)
	}
}

// nodesAdmin is a session of a node's admin page.
type nodesAdmin struct {
	t      *testing.T
	s      *server
	client *http.Client
	csrf   string
}

// nodesLogin logs in to s's admin page with key.
func nodesLogin(t *testing.T, s *server, key string) *nodesAdmin {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	ad := &nodesAdmin{t: t, s: s, client: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	status, page := ad.post("/login", url.Values{"key": {key}, "next": {"/keys"}})
	m := csrfRE.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil {
		t.Fatalf("admin login on %s: %d, no CSRF token in %s", s.addr, status, page)
	}
	ad.csrf = m[1]
	return ad
}

// post sends a form (with the session's CSRF token), follows the redirect and returns the page.
func (ad *nodesAdmin) post(path string, form url.Values) (int, string) {
	ad.t.Helper()
	if ad.csrf != "" {
		form.Set("csrf", ad.csrf)
	}
	res, err := ad.client.PostForm(ad.s.base+path, form)
	if err != nil {
		ad.t.Fatalf("admin POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// createKey makes a key named name on the admin page and returns it and its id.
func (ad *nodesAdmin) createKey(name string) (raw, id string) {
	ad.t.Helper()
	status, page := ad.post("/keys", url.Values{"name": {name}})
	raw = keyRE.FindString(page)
	row := regexp.MustCompile(`<tr data-key="([^"]+)">\s*<td data-label="Key"><code>[^<]*</code></td>\s*<td data-label="Name">` + regexp.QuoteMeta(name) + `\b`)
	m := row.FindStringSubmatch(page)
	if status != http.StatusOK || raw == "" || m == nil {
		ad.t.Fatalf("create key %q on the admin page: %d, no new key or row in %s", name, status, page)
	}
	return raw, m[1]
}

// TestE2ENodesSettingsFollow: an API key revoked on node A is refused on node B within about
// a second; a webhook secret rotated on node A signs the calls node B makes.
func TestE2ENodesSettingsFollow(t *testing.T) {
	t.Parallel()
	nodesFirstRunOnly(t)
	db := pgtest.Database(t)
	tg := newNodeTarget(t, nil)
	nodes := startNodes(t, db, 2)
	a, b := nodes[0], nodes[1]

	ad := nodesLogin(t, a, a.key)
	for i := range 3 {
		raw, id := ad.createKey(fmt.Sprintf("revoked-%d", i))
		// B knows the key (and may keep it in its cache) before it is revoked.
		for _, s := range nodes {
			aqtWant(t, s.call("GET", "/v1/tasks?limit=1", nil, "X-API-Key", raw), http.StatusOK, "new key on "+s.addr)
		}
		status, page := ad.post("/keys/"+id+"/revoke", url.Values{})
		if status != http.StatusOK || !strings.Contains(page, "revoked") {
			t.Fatalf("revoke on nodeA's admin page: %d %s", status, page)
		}
		revoked := time.Now()
		for {
			r := b.call("GET", "/v1/tasks?limit=1", nil, "X-API-Key", raw)
			if r.Status == http.StatusUnauthorized {
				t.Logf("key %d revoked on nodeA: refused on nodeB after %v", i, time.Since(revoked).Round(time.Millisecond))
				break
			}
			if r.Status != http.StatusOK {
				t.Fatalf("revoked key on nodeB: %d %s", r.Status, r.Raw)
			}
			if time.Since(revoked) > 5*time.Second {
				t.Fatalf("a key revoked on nodeA is still accepted by nodeB %v later (want within about 1 s)", time.Since(revoked))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A call made by B before the rotation carries one signature, with the old secret.
	old := e2eSecret(t, a)
	// calledBy names the node that logged the call of task id (a line may come a little
	// after the task is completed).
	calledBy := func(id string) string {
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for i, s := range nodes {
				for _, l := range aqtJSONLines(s.Logs()) {
					if l["msg"] == "callback" && l["task"] == id {
						return nodeName(i)
					}
				}
			}
		}
		return ""
	}
	// byB creates tasks on B until one is called by B, and returns that call.
	byB := func(what string) nodeCall {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			id := aqtStr(aqtCreate(t, b, map[string]any{"targetUrl": tg.URL}), "id")
			b.waitStatus(id, "completed", 20*time.Second)
			if calledBy(id) == "nodeB" {
				return tg.byTask()[id][0]
			}
		}
		t.Fatalf("%s: no task created on nodeB was called by nodeB in 30 s", what)
		return nodeCall{}
	}
	c0 := byB("before the rotation")
	if err := e2eVerify(c0.Header, []byte(c0.Body), old); err != nil {
		t.Fatalf("nodeB's call before the rotation: %v", err)
	}

	r := a.call("POST", "/v1/webhook-secret/rotate", nil)
	aqtWant(t, r, http.StatusOK, "rotate on nodeA")
	nw, _ := r.Body["secret"].(string)
	rotated := time.Now()
	if got := e2eSecret(t, b); got != nw {
		t.Errorf("nodeB's GET /v1/webhook-secret = %q after the rotation on nodeA, want %q", got, nw)
	}
	for {
		c := byB("after the rotation")
		err := e2eVerify(c.Header, []byte(c.Body), nw, old)
		if err == nil {
			t.Logf("nodeB signs with the secret rotated on nodeA after %v", c.Start.Sub(rotated).Round(time.Millisecond))
			break
		}
		if c.Start.Sub(rotated) > 5*time.Second {
			t.Fatalf("nodeB's call %v after the rotation on nodeA: %v", c.Start.Sub(rotated), err)
		}
	}
	c1 := byB("once the rotation is known")
	if err := e2eVerify(c1.Header, []byte(c1.Body), nw, old); err != nil {
		t.Errorf("nodeB's next call: %v", err)
	}
}

// TestE2ENodesRefuseWithoutVaultKey: on PostgreSQL a node without --vault-key refuses to start,
// with a message naming the flag (every node must share one key).
func TestE2ENodesRefuseWithoutVaultKey(t *testing.T) {
	t.Parallel()
	nodesFirstRunOnly(t)
	db := pgtest.Database(t)
	addr := freePort(t)
	p := aqtStart(t, nil, "serve", "--db", db, "--addr", addr, "--node-id", "nodeA", "--allow-targets", "127.0.0.0/8")
	code := p.waitExit(30 * time.Second)
	if code == -1 {
		t.Fatalf("a node without --vault-key on PostgreSQL still runs after 30 s:\n%s", p.Logs())
	}
	if code == 0 || !strings.Contains(p.Logs(), "--vault-key") {
		t.Errorf("a node without --vault-key: exit %d, want a failure naming --vault-key:\n%s", code, p.Logs())
	}
	if res, err := http.Get("http://" + addr + "/readyz"); err == nil {
		res.Body.Close()
		t.Errorf("a node refused for want of --vault-key answers /readyz: %d", res.StatusCode)
	}
	// The same command with the key starts: the key was what it missed.
	startNodes(t, db, 1)
}
