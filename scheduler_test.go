package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// fakeClock is an injected clock for the scheduler's tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)} }
func fr(team, key string) flowRef        { return flowRef{team, key} }
func ids(ps []picked) (out []string) {
	for _, p := range ps {
		out = append(out, p.id)
	}
	return out
}

func TestSchedulerPriorityWithinFlow(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := newScheduler(100, 100, c.now)
	f := fr("A", "https://a:443")
	s.push("low-old", f, 1, 1)
	s.push("high-new", f, 9, 5)
	s.push("high-old", f, 9, 2)
	s.push("mid", f, 5, 1)
	s.push("mid", f, 7, 0) // already queued: stays as it was
	got, _ := s.pick(10)
	if want := []string{"high-old", "high-new", "mid", "low-old"}; !slices.Equal(ids(got), want) {
		t.Fatalf("order %v, want %v", ids(got), want)
	}
}

// Slots go to teams in turn, and within a team to flows in turn: team A's backlog of
// many tasks in one flow delays team B's task by at most one turn.
func TestSchedulerFairTeamsAndFlows(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := newScheduler(100, 100, c.now)
	for i := range 50 {
		s.push(fmt.Sprintf("a1-%02d", i), fr("A", "one"), 5, int64(i))
	}
	for i := range 3 {
		s.push(fmt.Sprintf("a2-%d", i), fr("A", "two"), 5, int64(i))
	}
	s.push("b1", fr("B", "one"), 1, 100) // lowest priority, latest: still goes in B's turn
	got := ids(first(s.pick(6)))
	want := []string{"a1-00", "b1", "a2-0", "a1-01", "a2-1", "a1-02"}
	if !slices.Equal(got, want) {
		t.Fatalf("picked %v, want %v", got, want)
	}
}

func first(p []picked, _ time.Time) []picked { return p }

func TestSchedulerCeilingAndParallelism(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := newScheduler(5, 2, c.now)
	slow := fr("A", "slow")
	for i := range 10 {
		s.push(fmt.Sprintf("s%d", i), slow, 5, int64(i))
	}
	got, _ := s.pick(10)
	if len(got) != 2 {
		t.Fatalf("flow at parallelism 2 started %d calls", len(got))
	}
	// The slow flow is at its limit: it is skipped, and another flow's task goes at once.
	if ok, why := s.tryStart(fr("A", "fast")); !ok {
		t.Fatalf("another flow's task could not start: %s", why)
	}
	if ok, why := s.tryStart(slow); ok || why != "queue" {
		t.Fatalf("a task of a flow with queued tasks started directly (%v, %s)", ok, why)
	}
	s.setFlow(fr("B", "b"), FlowSettings{Parallelism: 10}, true)
	for i := range 5 {
		s.push(fmt.Sprintf("b%d", i), fr("B", "b"), 5, int64(i))
	}
	got, _ = s.pick(10)
	if len(got) != 2 { // ceiling 5: 2 + 1 already, 2 more
		t.Fatalf("ceiling 5 let %d more start, want 2", len(got))
	}
	if ok, why := s.tryStart(fr("C", "c")); ok || why != "ceiling" {
		t.Fatalf("tryStart past the ceiling: %v %s", ok, why)
	}
	// B was served last, so a freed slot goes to A, and the next one to B.
	s.done(slow)
	got, _ = s.pick(10)
	if len(got) != 1 || got[0].flow != slow {
		t.Fatalf("freed slot went to %v, want A's turn", got)
	}
	s.done(fr("B", "b"))
	got, _ = s.pick(10)
	if len(got) != 1 || got[0].flow != fr("B", "b") {
		t.Fatalf("freed slot went to %v, want B's turn", got)
	}
	in, _ := s.totals()
	if in != 5 {
		t.Fatalf("in flight %d, want 5", in)
	}
}

func TestSchedulerRate(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := newScheduler(1000, 1000, c.now)
	f := fr("A", "rated")
	s.setFlow(f, FlowSettings{RatePerSecond: 10}, true)
	for i := range 100 {
		s.push(fmt.Sprintf("t%03d", i), f, 5, int64(i))
	}
	started := 0
	for range 20 { // two seconds in 100 ms steps
		got, wake := s.pick(100)
		started += len(got)
		for _, p := range got {
			s.done(p.flow)
		}
		if len(got) == 0 && wake.IsZero() {
			t.Fatal("a rate-limited flow gave no time to wake at")
		}
		c.add(100 * time.Millisecond)
	}
	if started < 18 || started > 21 {
		t.Fatalf("10/s over 2 s started %d calls", started)
	}
}

func TestSchedulerPauses(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := newScheduler(100, 100, c.now)
	f := fr("A", "f")
	s.push("t1", f, 5, 1)
	s.pauseUntil(f, c.now().Add(30*time.Second))
	got, wake := s.pick(10)
	if len(got) != 0 || !wake.Equal(c.now().Add(30*time.Second)) {
		t.Fatalf("paused flow: picked %v, wake %v", ids(got), wake)
	}
	if _, paused := s.totals(); paused != 1 {
		t.Fatalf("paused flows %d, want 1", paused)
	}
	c.add(30 * time.Second)
	if got, _ = s.pick(10); len(got) != 1 {
		t.Fatal("the flow did not resume after its Retry-After")
	}
	s.done(f)

	s.setFlow(f, FlowSettings{Paused: true}, true)
	s.push("t2", f, 5, 2)
	c.add(time.Hour)
	if got, wake = s.pick(10); len(got) != 0 || !wake.IsZero() {
		t.Fatalf("paused by hand: picked %v, wake %v", ids(got), wake)
	}
	if ok, why := s.tryStart(fr("A", "f")); ok || why != "queue" {
		t.Fatalf("tryStart in a paused flow: %v %s", ok, why)
	}
	st := s.stat(f)
	if st.Pending != 1 || !st.Settings.Paused {
		t.Fatalf("stat %+v", st)
	}
	s.setFlow(f, FlowSettings{}, true)
	if got, _ = s.pick(10); len(got) != 1 || got[0].id != "t2" {
		t.Fatal("resume did not let the task go")
	}
}

func TestSchedulerRemoveAndForget(t *testing.T) {
	t.Parallel()
	c := newClock()
	s := newScheduler(100, 100, c.now)
	s.push("x", fr("A", "f"), 5, 1)
	s.push("y", fr("A", "f"), 5, 2)
	if !s.remove("x") || s.remove("x") {
		t.Fatal("remove")
	}
	got, _ := s.pick(10)
	if !slices.Equal(ids(got), []string{"y"}) {
		t.Fatalf("picked %v", ids(got))
	}
	s.noteError(fr("A", "f"), "Server error: HTTP 500")
	s.done(fr("A", "f"))
	if st := s.stats("A"); len(st) != 1 || st[0].LastError == "" {
		t.Fatalf("an idle flow with a recent error is shown: %+v", st)
	}
	c.add(2 * flowErrorKeep)
	s.sweep()
	if st := s.stats("A"); len(st) != 0 {
		t.Fatalf("idle flow kept: %+v", st)
	}
	if len(s.flows) != 0 || len(s.teams) != 0 || len(s.ring) != 0 || len(s.index) != 0 {
		t.Fatalf("state left: %d flows %d teams %d ring %d index", len(s.flows), len(s.teams), len(s.ring), len(s.index))
	}
}

func TestSchedulerNextWakes(t *testing.T) {
	t.Parallel()
	s := newScheduler(1, 10, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan []picked, 1)
	go func() {
		p, _ := s.next(ctx, 10)
		got <- p
	}()
	s.push("a", fr("A", "f"), 5, 1)
	p := <-got
	if len(p) != 1 {
		t.Fatalf("next gave %v", p)
	}
	s.push("b", fr("A", "f"), 5, 2)
	go func() {
		p, _ := s.next(ctx, 10)
		got <- p
	}()
	select {
	case p := <-got:
		t.Fatalf("next past the ceiling gave %v", p)
	case <-time.After(50 * time.Millisecond):
	}
	s.done(fr("A", "f"))
	if p := <-got; len(p) != 1 || p[0].id != "b" {
		t.Fatalf("after a slot came free next gave %v", p)
	}
	s.close()
	if _, ok := s.next(ctx, 10); ok {
		t.Fatal("next after close")
	}
}

// committed puts each task where its status says: pending ones in the ready queue, timers
// due within the horizon in the timer queue (with a copy of a delayed task), nothing for a
// call in progress or a timer beyond the horizon; it reports an armed webhook.
func TestSchedulerCommitted(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ms := func(d time.Duration) *int64 { v := now.Add(d).UnixMilli(); return &v }
	task := func(id string, status string, due *int64) *store.Task {
		return &store.Task{ID: id, TeamID: "A", TargetURL: "https://a.example/x", Status: status, DueAt: due}
	}
	s := newScheduler(10, 10, func() time.Time { return now })
	if _, ok := s.extendHorizon(now.Add(TimerHorizon).UnixMilli()); !ok || !s.loaded() {
		t.Fatal("horizon not extended")
	}
	if _, ok := s.extendHorizon(now.UnixMilli()); ok {
		t.Fatal("the horizon moved back")
	}

	if s.committed(task("p", store.StatusPending, ms(0)), now) {
		t.Error("pending task: webhook reported")
	}
	if got, _ := s.pick(10); len(got) != 1 || got[0].id != "p" {
		t.Errorf("pending task not ready: %v", ids(got))
	}

	s.committed(task("soon", store.StatusDelayed, ms(time.Second)), now)
	s.committed(task("later", store.StatusDelayed, ms(2*TimerHorizon)), now)
	if n := s.timers.Len(); n != 1 {
		t.Errorf("%d timers, want 1 (the one within the horizon)", n)
	}
	if c := s.upcoming.take("soon"); c == nil {
		t.Error("no copy of a delayed task due soon")
	}

	// The same task moving on: its timer goes, and so does a queued pending entry.
	s.committed(task("soon", store.StatusProcessing, nil), now)
	if n := s.timers.Len(); n != 0 {
		t.Errorf("%d timers after the task started, want 0", n)
	}

	done := task("done", store.StatusCompleted, nil)
	state := webhookArmedState
	done.OnComplete = &state
	done.CompletedAt = ms(0)
	done.DueAt = ms(webhookLease)
	if !s.committed(done, now) {
		t.Error("armed webhook not reported")
	}
	if n := s.timers.Len(); n != 1 {
		t.Errorf("%d timers, want the webhook's lease", n)
	}
}

func TestShare(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ n, nodes int }{{5000, 1}, {5000, 3}, {2, 3}, {1, 3}, {7, 2}, {0, 2}} {
		sum := 0
		for rank := range c.nodes {
			p := share(c.n, rank, c.nodes)
			if p < c.n/c.nodes || p > c.n/c.nodes+1 {
				t.Errorf("share(%d, %d, %d) = %d: not an even part", c.n, rank, c.nodes, p)
			}
			sum += p
		}
		if sum != c.n {
			t.Errorf("%d shared by %d nodes: the parts add up to %d", c.n, c.nodes, sum)
		}
	}
}

// Three nodes with a flow of parallelism 2: the first two ranks run one call each, the
// third none; a rate is split evenly.
func TestSchedulerNodesShareLimits(t *testing.T) {
	t.Parallel()
	f := fr("A", "shared")
	for rank, want := range []int{1, 1, 0} {
		c := newClock()
		s := newScheduler(100, 100, c.now)
		s.setNodes(rank, 3)
		s.setFlow(f, FlowSettings{Parallelism: 2}, true)
		for i := range 5 {
			s.push(fmt.Sprintf("t%d", i), f, 5, int64(i))
		}
		if got, _ := s.pick(10); len(got) != want {
			t.Errorf("rank %d of 3 started %d calls of a flow of parallelism 2, want %d", rank, len(got), want)
		}
	}

	c := newClock()
	s := newScheduler(1000, 1000, c.now)
	s.setFlow(f, FlowSettings{RatePerSecond: 30}, true)
	s.setNodes(0, 3) // after the flow: its bucket is remade for the share
	for i := range 100 {
		s.push(fmt.Sprintf("t%03d", i), f, 5, int64(i))
	}
	started := 0
	for range 20 {
		got, _ := s.pick(100)
		started += len(got)
		for _, p := range got {
			s.done(p.flow)
		}
		c.add(100 * time.Millisecond)
	}
	if started < 18 || started > 21 {
		t.Fatalf("a third of 30/s over 2 s started %d calls, want about 20", started)
	}
}

// Another node's write: a task no longer pending leaves this node's queue, and a timer is
// kept foreignGrace late, as a standby.
func TestSchedulerForeign(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	s := newScheduler(10, 10, func() time.Time { return now })
	s.extendHorizon(now.Add(TimerHorizon).UnixMilli())
	f := flowRef{"A", "https://a.example"}
	s.push("q", f, 5, now.UnixMilli())
	due := now.UnixMilli()
	s.foreign(store.TaskChange{ID: "q", Status: store.StatusProcessing, DueAt: &due})
	if got, _ := s.pick(10); len(got) != 0 {
		t.Errorf("a task another node claimed is still queued here: %v", ids(got))
	}
	if es := s.timers.PopDue(now.Add(foreignGrace-time.Millisecond), 10); len(es) != 0 {
		t.Errorf("the standby timer fired before the grace: %v", es)
	}
	if es := s.timers.PopDue(now.Add(foreignGrace), 10); len(es) != 1 || es[0].ID != "q" {
		t.Errorf("no standby timer at due+grace: %v", es)
	}
	s.foreign(store.TaskChange{ID: "q", Status: store.StatusDelayed, DueAt: &due})
	s.foreign(store.TaskChange{ID: "q", Status: store.StatusCompleted})
	if n := s.timers.Len(); n != 0 {
		t.Error("a finished task kept its timer")
	}
}
