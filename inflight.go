package main

import (
	"sync"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// inflight tracks delayed tasks whose call started before any claim was written (see
// dispatcher.callFirst). On disk such a task is still delayed, past its due time; this
// registry is what makes it behave as processing until the write of its outcome commits:
// the API shows it processing, a cancel is refused, and a second timer does not call it
// again. A call that runs long gets its claim written after all (claimLongCall).
//
// A timer takes a hold in two steps: tryCall before it reads the task, confirm after. A
// cancel holds the task too, from inside its write until that write has ended. A cancel
// that comes between the two steps wins: confirm then fails, and no call starts for a task
// whose cancel may already be committed. One that comes after confirm is refused. A timer
// that meets a cancel leaves the task to the writer, where the two are in order.
type inflight struct {
	mu sync.Mutex
	m  map[string]*hold
}

type hold struct {
	reading   bool  // a timer is reading the task (between tryCall and confirm)
	calling   bool  // its call is running
	aborted   bool  // a cancel came while reading: confirm fails
	cancels   int   // cancels' writes under way
	startedAt int64 // the call's start
}

func (f *inflight) get(id string) *hold {
	h := f.m[id]
	if h == nil {
		if f.m == nil {
			f.m = map[string]*hold{}
		}
		h = &hold{}
		f.m[id] = h
	}
	return h
}

// drop forgets id's hold once nobody holds it. Caller holds mu.
func (f *inflight) drop(id string, h *hold) {
	if !h.reading && !h.calling && h.cancels == 0 {
		delete(f.m, id)
	}
}

// tryCall is a timer's first step. It fails when a cancel holds id (cancelling), or
// another timer does (its call runs, or is about to).
func (f *inflight) tryCall(id string) (ok, cancelling bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.m[id]; h != nil {
		return false, h.cancels > 0 || h.aborted
	}
	f.get(id).reading = true
	return true, false
}

// confirm is a timer's second step, once its read found the task due: the call starting
// at startedAt holds id. False if a cancel came in between.
func (f *inflight) confirm(id string, startedAt int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.m[id]
	h.reading = false
	if h.aborted {
		h.aborted = false
		f.drop(id, h)
		return false
	}
	h.calling, h.startedAt = true, startedAt
	return true
}

// endCall lets go of a timer's hold: its read found nothing to call, or the outcome of its
// call is written, or the call was given up.
func (f *inflight) endCall(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.m[id]; h != nil {
		h.reading, h.calling = false, false
		f.drop(id, h)
	}
}

// holdCancel holds id for a cancel's write; false when its call is running (the task is
// processing).
func (f *inflight) holdCancel(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.get(id)
	if h.calling {
		return false
	}
	if h.reading {
		h.aborted = true
	}
	h.cancels++
	return true
}

// releaseCancel ends a cancel's hold.
func (f *inflight) releaseCancel(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h := f.m[id]; h != nil {
		h.cancels--
		f.drop(id, h)
	}
}

// view returns t as the API should show it: a delayed task whose call is running shows
// as processing, with its attempt counted and its start time, as if its claim were written.
func (f *inflight) view(t *store.Task) *store.Task {
	if t.Status != store.StatusDelayed {
		return t
	}
	f.mu.Lock()
	h := f.m[t.ID]
	calling := h != nil && h.calling
	var started int64
	if calling {
		started = h.startedAt
	}
	f.mu.Unlock()
	if !calling {
		return t
	}
	c := *t
	claim(&c, started)
	return &c
}

// upcoming keeps a copy of the delayed tasks due within the timer horizon as last written,
// so that a timer can start a claimless call without reading the task back: under a busy
// writer a read from the pool can wait milliseconds for the WAL index. a.scheduled, which
// runs after every committed change of a task, keeps it in step; a task that changed in a
// way it did not see is caught by the outcome's guarded write like any early signal.
// Large tasks are left out, and the whole is bounded.
type upcoming struct {
	mu    sync.Mutex
	m     map[string]*store.Task
	bytes int
}

const (
	upcomingTaskMax  = 16 << 10 // bytes of URL, headers and body
	upcomingTotalMax = 64 << 20
)

func taskSize(t *store.Task) int {
	n := 512 + len(t.TargetURL) + len(t.Headers)
	if t.Body != nil {
		n += len(*t.Body)
	}
	return n
}

// put keeps a copy of t, a delayed task just written, or forgets it if it is too large.
func (u *upcoming) put(t *store.Task) {
	c := *t
	due := *t.DueAt
	c.DueAt = &due
	u.mu.Lock()
	defer u.mu.Unlock()
	u.dropLocked(t.ID)
	if n := taskSize(&c); n <= upcomingTaskMax && u.bytes+n <= upcomingTotalMax {
		if u.m == nil {
			u.m = map[string]*store.Task{}
		}
		u.m[t.ID] = &c
		u.bytes += n
	}
}

// take removes and returns the copy of task id, or nil.
func (u *upcoming) take(id string) *store.Task {
	u.mu.Lock()
	defer u.mu.Unlock()
	t := u.m[id]
	u.dropLocked(id)
	return t
}

// drop forgets task id.
func (u *upcoming) drop(id string) {
	u.mu.Lock()
	u.dropLocked(id)
	u.mu.Unlock()
}

func (u *upcoming) dropLocked(id string) {
	if t, ok := u.m[id]; ok {
		u.bytes -= taskSize(t)
		delete(u.m, id)
	}
}
