// Package timerq is an in-memory min-heap of named timers, with a loop that fires them when due.
package timerq

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// batchLimit caps how many entries Run hands to fire in one call, so a
// large backlog (for example after downtime) is delivered in bounded chunks.
const batchLimit = 1024

// Entry is one timer that fell due.
type Entry struct {
	ID  string
	Due time.Time
}

// item is one timer's identity; index is its position in the heap slice,
// kept current by Swap/Push/Pop so that Fix and Remove are O(log n).
type item struct {
	id    string
	index int
}

// slot is a heap element. The due time lives in the slice itself, not behind
// the pointer, so comparisons touch only contiguous memory.
type slot struct {
	due time.Time
	it  *item
}

// itemHeap implements heap.Interface. Ties on due are broken by id so the
// order is total and deterministic.
type itemHeap []slot

func (h itemHeap) Len() int { return len(h) }

func (h itemHeap) Less(i, j int) bool {
	if c := h[i].due.Compare(h[j].due); c != 0 {
		return c < 0
	}
	return h[i].it.id < h[j].it.id
}

func (h itemHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].it.index = i
	h[j].it.index = j
}

func (h *itemHeap) Push(x any) {
	s := x.(slot)
	s.it.index = len(*h)
	*h = append(*h, s)
}

func (h *itemHeap) Pop() any {
	old := *h
	n := len(old) - 1
	s := old[n]
	old[n] = slot{}
	s.it.index = -1
	*h = old[:n]
	return s
}

// Queue is a set of timers keyed by id, at most one per id. It is safe for
// concurrent use. The zero value is not usable; call New.
type Queue struct {
	mu   sync.Mutex
	h    itemHeap
	byID map[string]*item
	wake chan struct{}
}

// New returns an empty Queue.
func New() *Queue {
	return &Queue{
		byID: make(map[string]*item),
		wake: make(chan struct{}, 1),
	}
}

// Push sets id's timer to due, adding it or moving an existing one.
// If this makes the earliest due time earlier than it was (or the queue was
// empty), a value is sent on Wake without blocking.
func (q *Queue) Push(id string, due time.Time) { q.push(id, due, true) }

// PushIfAbsent is Push for an id without a timer: an existing timer is left as it is.
// It reports whether it added one.
func (q *Queue) PushIfAbsent(id string, due time.Time) bool { return q.push(id, due, false) }

func (q *Queue) push(id string, due time.Time, move bool) bool {
	q.mu.Lock()
	var prev time.Time
	hadTop := len(q.h) > 0
	if hadTop {
		prev = q.h[0].due
	}
	if it, ok := q.byID[id]; ok {
		if !move || q.h[it.index].due.Equal(due) {
			q.mu.Unlock()
			return false
		}
		q.h[it.index].due = due
		heap.Fix(&q.h, it.index)
	} else {
		it := &item{id: id}
		q.byID[id] = it
		heap.Push(&q.h, slot{due: due, it: it})
	}
	signal := !hadTop || q.h[0].due.Before(prev)
	q.mu.Unlock()
	if signal {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// Remove deletes id's timer and reports whether there was one.
func (q *Queue) Remove(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	it, ok := q.byID[id]
	if !ok {
		return false
	}
	heap.Remove(&q.h, it.index)
	delete(q.byID, id)
	return true
}

// PopDue removes and returns the timers with due <= now, earliest first
// (ties by id), at most max of them; max <= 0 means no limit.
func (q *Queue) PopDue(now time.Time, max int) []Entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Entry
	for len(q.h) > 0 && !q.h[0].due.After(now) && (max <= 0 || len(out) < max) {
		s := heap.Pop(&q.h).(slot)
		delete(q.byID, s.it.id)
		out = append(out, Entry{ID: s.it.id, Due: s.due})
	}
	return out
}

// Next returns the earliest due time, and false if the queue is empty.
func (q *Queue) Next() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.h) == 0 {
		return time.Time{}, false
	}
	return q.h[0].due, true
}

// Len returns the number of timers in the queue.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.h)
}

// Wake returns a channel (buffer 1) that receives a value when a Push makes
// the earliest due time earlier. Run consumes it; use Wake only when driving
// the queue with your own loop instead of Run.
func (q *Queue) Wake() <-chan struct{} { return q.wake }

// Run fires timers until ctx is done: it calls fire with each batch of due
// entries (earliest first, at most batchLimit per call), then sleeps on one
// time.Timer until the earliest due time, waking early when Push brings in an
// earlier timer. The clock is re-read after every wake, so a timer never fires
// before its due time. fire runs on Run's goroutine and should hand work off
// rather than block. Only one Run may be active per Queue.
func (q *Queue) Run(ctx context.Context, fire func([]Entry)) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		if batch := q.PopDue(time.Now(), batchLimit); len(batch) > 0 {
			fire(batch)
			continue
		}
		var expired <-chan time.Time
		if next, ok := q.Next(); ok {
			d := time.Until(next)
			if d <= 0 {
				continue
			}
			timer.Reset(d)
			expired = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
			timer.Stop()
		case <-expired:
		}
	}
}
