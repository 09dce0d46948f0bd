package main

import (
	"container/heap"
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/timerq"
	"golang.org/x/time/rate"
)

// The scheduler is everything the dispatcher keeps in memory to decide what runs when. Its
// one entry point for the rest of the server is committed, which handlers, timers and the
// store's commit callbacks call with a task as just written; the dispatcher alone takes
// work from it. It holds:
//
//   - the timers due within the horizon (timers), and the horizon itself: every timer due
//     before it is in timers, later ones wait in the database for the loader;
//   - copies of the delayed tasks due soon (upcoming), so that a timer can start a call
//     without reading its task back, and the holds of those calls (calls);
//   - the pending tasks by team and flow, the calls in flight, and each flow's limits.
//
// The rest of this comment is about the last: it decides which due task's call starts
// next (SPEC §10):
//
//   - calls in flight are bounded by a global ceiling and, per flow, by its parallelism;
//   - a flow may have a rate (token bucket) and may be paused, by hand or until a time a
//     target named with Retry-After;
//   - a flow at any of its limits is skipped and holds nothing: its tasks stay pending and
//     the next flow's go;
//   - when slots are scarce they go to teams in turn and, within a team, to flows in turn;
//     within a flow, to the most urgent task (priority, then due time, then id).
//
// A call takes a slot when it is picked (next) or started directly (tryStart) and gives it
// back when it ends (done). Nothing here does I/O; the clock is injected, so the whole of
// it is tested without a server.
type scheduler struct {
	timers   *timerq.Queue
	upcoming upcoming // delayed tasks due soon, as last written
	calls    inflight // delayed tasks whose call runs before a claim is written

	horizonMu   sync.Mutex
	loadedUntil int64 // every timer due before it is in timers

	mu          sync.Mutex
	now         func() time.Time
	maxInFlight int
	parallelism int // a flow's parallelism unless set
	// On a shared store, this node's place among the live nodes: each node runs its share
	// of every flow's parallelism and rate, so that together they keep the flow's limits.
	rank, nodes int

	inFlight int
	flows    map[flowRef]*flowQ
	teams    map[string]*teamQ
	ring     []*teamQ // teams with queued tasks, served in turn
	nextTeam int
	index    map[string]*schedItem // queued task id → its item
	closed   bool

	wake chan struct{} // something may have become runnable
}

// flowRef names a flow: a team's flow key.
type flowRef struct{ team, key string }

// FlowSettings are a flow's stored settings; zero values mean the defaults.
type FlowSettings struct {
	Parallelism   int       // 0: the server's --flow-parallelism
	RatePerSecond float64   // 0: no rate limit
	Paused        bool      // paused by hand until resumed
	PausedUntil   time.Time // paused by a target's Retry-After (zero: not)
}

// flowQ is a flow's queue and state.
type flowQ struct {
	ref      flowRef
	items    itemHeap
	inFlight int
	set      FlowSettings
	limiter  *rate.Limiter // nil without a rate
	stored   bool          // has stored settings (kept while idle)
	lastErr  string
	lastAt   time.Time
	inRing   bool
}

// teamQ is a team's ring of flows with queued tasks.
type teamQ struct {
	id     string
	flows  []*flowQ
	next   int
	inRing bool
}

// schedItem is a queued task.
type schedItem struct {
	id       string
	priority int
	due      int64
	flow     *flowQ
	index    int
}

// picked is a task whose call may start: it holds a slot of its flow until done.
type picked struct {
	id   string
	flow flowRef
	// For a claim that failed, to queue it again.
	priority int
	due      int64
}

type itemHeap []*schedItem

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if h[i].priority != h[j].priority {
		return h[i].priority > h[j].priority
	}
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].id < h[j].id
}
func (h itemHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *itemHeap) Push(x any) {
	it := x.(*schedItem)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.index = -1
	return it
}

// Scheduler defaults.
const (
	DefaultMaxInFlight     = 10000
	DefaultFlowParallelism = 5000
	// rateBurstWindow is how much of a flow's rate may go at once after it idled.
	rateBurstWindow = 50 * time.Millisecond
	// flowErrorKeep is how long an idle flow is kept to show its last error.
	flowErrorKeep = time.Hour
)

func newScheduler(maxInFlight, parallelism int, now func() time.Time) *scheduler {
	if now == nil {
		now = time.Now
	}
	return &scheduler{
		timers: timerq.New(),
		now:    now, maxInFlight: max(maxInFlight, 1), parallelism: max(parallelism, 1), nodes: 1,
		flows: map[flowRef]*flowQ{}, teams: map[string]*teamQ{}, index: map[string]*schedItem{},
		wake: make(chan struct{}, 1),
	}
}

func (s *scheduler) signal() { wake(s.wake) }

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// flow returns f's state, made on first use. Caller holds mu.
func (s *scheduler) flow(f flowRef) *flowQ {
	fq := s.flows[f]
	if fq == nil {
		fq = &flowQ{ref: f}
		s.flows[f] = fq
	}
	return fq
}

// parallelismOf is fq's parallelism over all nodes: its own, or the server's default.
func (s *scheduler) parallelismOf(fq *flowQ) int {
	if fq.set.Parallelism > 0 {
		return fq.set.Parallelism
	}
	return s.parallelism
}

// shareOf is this node's share of fq's parallelism (all of it on one node).
func (s *scheduler) shareOf(fq *flowQ) int { return share(s.parallelismOf(fq), s.rank, s.nodes) }

// share is node rank's part of a limit of n calls shared by nodes: n/nodes, and one more
// for the first n%nodes ranks, so that the parts add up to n.
func share(n, rank, nodes int) int {
	if nodes <= 1 {
		return n
	}
	p := n / nodes
	if rank < n%nodes {
		p++
	}
	return p
}

// limiter makes a flow's token bucket for this node's share of rate (nil without a rate).
func (s *scheduler) limiter(rps float64) *rate.Limiter {
	if rps <= 0 {
		return nil
	}
	rps /= float64(s.nodes)
	burst := max(1, int(rps*rateBurstWindow.Seconds()))
	l := rate.NewLimiter(rate.Limit(rps), burst)
	l.AllowN(s.now(), burst) // start empty: no burst right after a change
	return l
}

// setNodes tells the scheduler this node's rank among n live nodes (SPEC §12): its flows
// take rank's share of their limits from now on.
func (s *scheduler) setNodes(rank, n int) {
	s.mu.Lock()
	if n < 1 {
		n, rank = 1, 0
	}
	changed := s.rank != rank || s.nodes != n
	s.rank, s.nodes = rank, n
	if changed {
		for _, fq := range s.flows {
			fq.limiter = s.limiter(fq.set.RatePerSecond)
		}
	}
	s.mu.Unlock()
	if changed {
		s.signal()
	}
}

// blocked says why fq cannot start a call at now ("" if it can), and when that may change
// by itself (zero: only an event will change it).
func (s *scheduler) blocked(fq *flowQ, now time.Time) (reason string, until time.Time) {
	switch {
	case fq.set.Paused:
		return "paused", time.Time{}
	case now.Before(fq.set.PausedUntil):
		return "paused", fq.set.PausedUntil
	case fq.inFlight >= s.shareOf(fq):
		return "parallelism", time.Time{}
	case fq.limiter != nil:
		if tokens := fq.limiter.TokensAt(now); tokens < 1 {
			need := (1 - tokens) / float64(fq.limiter.Limit())
			return "rate", now.Add(time.Duration(math.Ceil(need * float64(time.Second))))
		}
	}
	return "", time.Time{}
}

// take gives fq's next call a slot. Caller holds mu and has checked blocked.
func (s *scheduler) take(fq *flowQ, now time.Time) {
	fq.inFlight++
	s.inFlight++
	if fq.limiter != nil {
		fq.limiter.AllowN(now, 1)
	}
}

// push queues a pending task in its flow; a task already queued stays as it is.
func (s *scheduler) push(id string, f flowRef, priority int, due int64) {
	s.mu.Lock()
	if s.closed || s.index[id] != nil {
		s.mu.Unlock()
		return
	}
	fq := s.flow(f)
	it := &schedItem{id: id, priority: priority, due: due, flow: fq}
	heap.Push(&fq.items, it)
	s.index[id] = it
	s.activate(fq)
	s.mu.Unlock()
	s.signal()
}

// activate puts fq in its team's ring and the team in the ring of teams. Caller holds mu.
func (s *scheduler) activate(fq *flowQ) {
	if fq.inRing {
		return
	}
	tq := s.teams[fq.ref.team]
	if tq == nil {
		tq = &teamQ{id: fq.ref.team}
		s.teams[fq.ref.team] = tq
	}
	fq.inRing = true
	tq.flows = append(tq.flows, fq)
	if !tq.inRing {
		tq.inRing = true
		s.ring = append(s.ring, tq)
	}
}

// deactivate takes fq, now empty, out of its team's ring. Caller holds mu.
func (s *scheduler) deactivate(fq *flowQ) {
	if !fq.inRing {
		return
	}
	fq.inRing = false
	tq := s.teams[fq.ref.team]
	if i := slices.Index(tq.flows, fq); i >= 0 {
		tq.flows = slices.Delete(tq.flows, i, i+1)
		if tq.next > i {
			tq.next--
		}
	}
	if len(tq.flows) == 0 {
		tq.inRing = false
		if i := slices.Index(s.ring, tq); i >= 0 {
			s.ring = slices.Delete(s.ring, i, i+1)
			if s.nextTeam > i {
				s.nextTeam--
			}
		}
		delete(s.teams, tq.id)
	}
	s.forget(fq)
}

// forget drops an idle flow nobody needs to see. Caller holds mu.
func (s *scheduler) forget(fq *flowQ) {
	if fq.inRing || fq.inFlight > 0 || fq.stored || fq.set.Paused || s.now().Before(fq.set.PausedUntil) {
		return
	}
	if fq.lastErr != "" && s.now().Sub(fq.lastAt) < flowErrorKeep {
		return
	}
	delete(s.flows, fq.ref)
}

// remove drops a queued task (cancelled, or no longer pending); false if it was not queued.
func (s *scheduler) remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.index[id]
	if it == nil {
		return false
	}
	delete(s.index, id)
	heap.Remove(&it.flow.items, it.index)
	if len(it.flow.items) == 0 {
		s.deactivate(it.flow)
	}
	return true
}

// pick takes up to n queued tasks that may start now, one slot each: one task per team per
// turn, and within a team one per flow per turn. It also returns when a flow that is
// waiting for time (a rate, a Retry-After) may go (zero: none is).
func (s *scheduler) pick(n int) (out []picked, wakeAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for len(out) < n && s.inFlight < s.maxInFlight && len(s.ring) > 0 {
		progressed := false
		for range len(s.ring) {
			if len(out) >= n || s.inFlight >= s.maxInFlight || len(s.ring) == 0 {
				break
			}
			s.nextTeam %= len(s.ring)
			tq := s.ring[s.nextTeam]
			p, ok, until := s.pickFlow(tq, now)
			if !until.IsZero() && (wakeAt.IsZero() || until.Before(wakeAt)) {
				wakeAt = until
			}
			if ok {
				out = append(out, p)
				progressed = true
			}
			if tq.inRing {
				s.nextTeam++
			} // else the ring closed up over it: the next team is at the same place
		}
		if !progressed {
			break
		}
	}
	return out, wakeAt
}

// pickFlow takes the most urgent task of tq's next flow that may start. Caller holds mu.
func (s *scheduler) pickFlow(tq *teamQ, now time.Time) (picked, bool, time.Time) {
	var wakeAt time.Time
	for range len(tq.flows) {
		tq.next %= len(tq.flows)
		fq := tq.flows[tq.next]
		reason, until := s.blocked(fq, now)
		if reason != "" {
			if !until.IsZero() && (wakeAt.IsZero() || until.Before(wakeAt)) {
				wakeAt = until
			}
			tq.next++
			continue
		}
		it := heap.Pop(&fq.items).(*schedItem)
		delete(s.index, it.id)
		s.take(fq, now)
		tq.next++
		if len(fq.items) == 0 {
			s.deactivate(fq)
		}
		return picked{id: it.id, flow: fq.ref, priority: it.priority, due: it.due}, true, wakeAt
	}
	return picked{}, false, wakeAt
}

// next waits until queued tasks may start, then picks up to n of them; false once ctx is
// done or the scheduler is closed.
func (s *scheduler) next(ctx context.Context, n int) ([]picked, bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed || ctx.Err() != nil {
			return nil, false
		}
		out, wakeAt := s.pick(n)
		if len(out) > 0 {
			return out, true
		}
		var tc <-chan time.Time
		if !wakeAt.IsZero() {
			d := max(wakeAt.Sub(s.now()), time.Millisecond)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-s.wake:
		case <-tc:
		}
	}
}

// tryStart gives a slot to a task of flow f that is due now, if it may start at once: the
// ceiling has room, the flow is under its limits and has no queued task that would go
// first. Otherwise it says why not ("ceiling", "parallelism", "rate", "paused", "queue").
func (s *scheduler) tryStart(f flowRef) (ok bool, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, "closed"
	}
	if s.inFlight >= s.maxInFlight {
		return false, "ceiling"
	}
	fq := s.flow(f)
	now := s.now()
	if len(fq.items) > 0 {
		return false, "queue"
	}
	if reason, _ := s.blocked(fq, now); reason != "" {
		s.forget(fq)
		return false, reason
	}
	s.take(fq, now)
	return true, ""
}

// done gives back the slot of a call of flow f that ended (or never started).
func (s *scheduler) done(f flowRef) {
	s.mu.Lock()
	fq := s.flows[f]
	if fq != nil && fq.inFlight > 0 {
		fq.inFlight--
		s.inFlight--
		s.forget(fq)
	}
	s.mu.Unlock()
	s.signal()
}

// setFlow applies stored settings (from the API, or loaded at start-up).
func (s *scheduler) setFlow(f flowRef, set FlowSettings, stored bool) {
	s.mu.Lock()
	fq := s.flow(f)
	fq.set = set
	fq.stored = stored
	fq.limiter = s.limiter(set.RatePerSecond)
	s.forget(fq)
	s.mu.Unlock()
	s.signal()
}

// pauseUntil pauses flow f until t (a target's Retry-After), unless it is paused longer.
func (s *scheduler) pauseUntil(f flowRef, t time.Time) {
	s.mu.Lock()
	fq := s.flow(f)
	if t.After(fq.set.PausedUntil) {
		fq.set.PausedUntil = t
	}
	s.mu.Unlock()
	s.signal()
}

// noteError records the last failure of a call of flow f ("" clears nothing).
func (s *scheduler) noteError(f flowRef, msg string) {
	if msg == "" {
		return
	}
	s.mu.Lock()
	if fq := s.flows[f]; fq != nil {
		fq.lastErr, fq.lastAt = msg, s.now()
	}
	s.mu.Unlock()
}

// flowStat is what the API shows of a flow.
type flowStat struct {
	Key         string
	InFlight    int
	Pending     int
	Parallelism int
	Settings    FlowSettings
	LastError   string
	LastErrorAt time.Time
}

// stats lists team's flows, by key.
func (s *scheduler) stats(team string) []flowStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []flowStat
	for ref, fq := range s.flows {
		if ref.team != team {
			continue
		}
		out = append(out, s.statOf(fq))
	}
	slices.SortFunc(out, func(a, b flowStat) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// stat returns one flow's figures (a flow nobody used yet shows its defaults).
func (s *scheduler) stat(f flowRef) flowStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fq := s.flows[f]; fq != nil {
		return s.statOf(fq)
	}
	return flowStat{Key: f.key, Parallelism: s.parallelism}
}

func (s *scheduler) statOf(fq *flowQ) flowStat {
	return flowStat{Key: fq.ref.key, InFlight: fq.inFlight, Pending: len(fq.items), Parallelism: s.parallelismOf(fq),
		Settings: fq.set, LastError: fq.lastErr, LastErrorAt: fq.lastAt}
}

// totals returns the calls in flight and the flows paused now, for /metrics.
func (s *scheduler) totals() (inFlight, paused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, fq := range s.flows {
		if fq.set.Paused || now.Before(fq.set.PausedUntil) {
			paused++
		}
	}
	return s.inFlight, paused
}

// sweep forgets idle flows whose last error is old; run now and then.
func (s *scheduler) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fq := range s.flows {
		s.forget(fq)
	}
}

// close stops next; queued tasks stay pending on disk.
func (s *scheduler) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.signal()
}

// committed takes a task as its write just committed it and puts its next event where it
// belongs: the ready queue when it is due to run, the timer queue when its timer falls
// inside the horizon, nowhere otherwise. It reports whether the write armed the task's
// completion webhook, which the caller then sends at once (webhookArmed).
func (s *scheduler) committed(t *store.Task, now time.Time) (sendWebhook bool) {
	if t.Status == store.StatusDelayed && t.DueAt != nil && *t.DueAt < now.Add(TimerHorizon).UnixMilli() {
		s.upcoming.put(t)
	} else {
		s.upcoming.drop(t.ID)
	}
	if t.Status == store.StatusPending {
		s.timers.Remove(t.ID)
		s.push(t.ID, flowOf(t), t.Priority, valueOr(t.DueAt))
		return false
	}
	s.remove(t.ID) // cancelled, or moved on some other way while queued
	if t.DueAt == nil || t.Status == store.StatusProcessing {
		s.timers.Remove(t.ID)
		return false
	}
	s.timerAt(t.ID, t.DueAt)
	return webhookArmed(t)
}

// foreignGrace is how long past its due time a task another node wrote waits before this
// node acts on it: the node that wrote it acts on time, and its next write reaches here
// and moves or drops this timer. Only when that node is gone or saturated does this one
// take over.
const foreignGrace = time.Second

// foreign takes a task (or schedule) as another node's write just left it (on a shared
// store): it leaves this node's ready queue unless still pending, and its timer, if any,
// is kept here foreignGrace late, as a standby for the node that wrote it.
func (s *scheduler) foreign(tc store.TaskChange) {
	s.upcoming.drop(tc.ID)
	if tc.Status != store.StatusPending {
		s.remove(tc.ID)
	}
	if tc.DueAt == nil {
		s.timerAt(tc.ID, nil)
		return
	}
	due := *tc.DueAt + foreignGrace.Milliseconds()
	s.timerAt(tc.ID, &due)
}

// timerAt puts id's timer at due when that falls inside the horizon, and takes it out
// otherwise (nil due: no timer). Under horizonMu, so that the loader either sees the
// change or has already moved the horizon past it.
func (s *scheduler) timerAt(id string, due *int64) {
	s.horizonMu.Lock()
	defer s.horizonMu.Unlock()
	if due != nil && *due < s.loadedUntil {
		s.timers.Push(id, time.UnixMilli(*due))
	} else {
		s.timers.Remove(id)
	}
}

// extendHorizon moves the horizon to until and returns where it was; false if it is
// already there. The caller then loads the timers due in [from, until).
func (s *scheduler) extendHorizon(until int64) (from int64, ok bool) {
	s.horizonMu.Lock()
	defer s.horizonMu.Unlock()
	if until <= s.loadedUntil {
		return 0, false
	}
	from, s.loadedUntil = s.loadedUntil, until
	return from, true
}

// horizon is the time before which every timer is in timers.
func (s *scheduler) horizon() int64 {
	s.horizonMu.Lock()
	defer s.horizonMu.Unlock()
	return s.loadedUntil
}

// loaded reports whether the timers were loaded once since start.
func (s *scheduler) loaded() bool {
	s.horizonMu.Lock()
	defer s.horizonMu.Unlock()
	return s.loadedUntil > 0
}

// view returns t as the API should show it (inflight.view).
func (s *scheduler) view(t *store.Task) *store.Task { return s.calls.view(t) }
