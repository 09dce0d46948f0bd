package main

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// readyQueue is where due tasks meet workers. A worker runs a task handed to it in memory,
// claimed one of three ways, none with a write of its own:
//   - at create, when a worker is idle, the write that creates the task claims it (a
//     promise, reserve, holds that worker until the write is durable: handoff);
//   - at timer fire, when a worker is idle, a delayed task is handed over unclaimed and
//     its claim is written with its outcome (dispatcher.callFirst, inflight.go);
//   - otherwise the task waits here, pending, in run order (priority, then due time, then
//     id), and the claim loop claims as many at once as there are idle workers.
//
// So a task shows processing only once a worker is free for it; one behind busy workers
// stays pending (and can be cancelled), and priority decides who goes next.
type readyQueue struct {
	mu     sync.Mutex
	items  readyHeap
	in     map[string]bool
	closed bool

	claimed  []*store.Task // claimed, handed over, not yet taken by a worker
	idle     int           // workers waiting in take
	reserved int           // promises to idle workers whose claim is not yet durable

	workerWake chan struct{} // claimed tasks are waiting
	claimWake  chan struct{} // pending items or free workers may have appeared
	idleWake   chan struct{} // a worker came free (for reserveWait)
}

type readyItem struct {
	id       string
	priority int
	due      int64
}

type readyHeap []readyItem

func (h readyHeap) Len() int { return len(h) }
func (h readyHeap) Less(i, j int) bool {
	if h[i].priority != h[j].priority {
		return h[i].priority > h[j].priority
	}
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].id < h[j].id
}
func (h readyHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *readyHeap) Push(x any)   { *h = append(*h, x.(readyItem)) }
func (h *readyHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newReadyQueue() *readyQueue {
	return &readyQueue{in: map[string]bool{}, workerWake: make(chan struct{}, 1), claimWake: make(chan struct{}, 1),
		idleWake: make(chan struct{}, 1)}
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// free is how many more tasks may be promised to workers. Caller holds mu.
func (q *readyQueue) free() int { return q.idle - q.reserved - len(q.claimed) }

// push queues a pending task for the claim loop (once; later pushes of a queued id are
// ignored).
func (q *readyQueue) push(id string, priority int, due int64) {
	q.mu.Lock()
	if q.in[id] || q.closed {
		q.mu.Unlock()
		return
	}
	q.in[id] = true
	heap.Push(&q.items, readyItem{id, priority, due})
	q.mu.Unlock()
	wake(q.claimWake)
}

// claimBatch waits until pending tasks and idle workers are both there, then removes up
// to max of the most urgent tasks, one promise each; the caller claims them and hands them
// over (handoff) or withdraws the promise (unreserve). false once ctx is done or closed.
func (q *readyQueue) claimBatch(ctx context.Context, max int) ([]readyItem, bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, false
		}
		if n := min(q.free(), len(q.items), max); n > 0 {
			items := make([]readyItem, n)
			for i := range items {
				items[i] = heap.Pop(&q.items).(readyItem)
				delete(q.in, items[i].id)
			}
			q.reserved += n
			q.mu.Unlock()
			return items, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-q.claimWake:
		}
	}
}

// take waits for a claimed task; false once ctx is done or the queue is closed.
func (q *readyQueue) take(ctx context.Context) (*store.Task, bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, false
		}
		if len(q.claimed) > 0 {
			t := q.claimed[0]
			q.claimed[0] = nil
			q.claimed = q.claimed[1:]
			more := len(q.claimed) > 0
			q.mu.Unlock()
			if more { // pass the baton so another idle worker wakes
				wake(q.workerWake)
			}
			return t, true
		}
		q.idle++
		pending := len(q.items) > 0
		q.mu.Unlock()
		if pending {
			wake(q.claimWake)
		}
		wake(q.idleWake)
		select {
		case <-ctx.Done():
		case <-q.workerWake:
		}
		q.mu.Lock()
		q.idle--
		q.mu.Unlock()
		if ctx.Err() != nil {
			return nil, false
		}
	}
}

// reserve promises the next hand-off to an idle worker; false when none is free.
func (q *readyQueue) reserve() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.free() <= 0 {
		return false
	}
	q.reserved++
	return true
}

// reserveWait is reserve that waits up to max for a worker to come free; false if none
// did, or ctx ended.
func (q *readyQueue) reserveWait(ctx context.Context, max time.Duration) bool {
	if q.reserve() {
		return true
	}
	timeout := time.NewTimer(max)
	defer timeout.Stop()
	for {
		select {
		case <-q.idleWake:
			if q.reserve() {
				// Pass the wake on: another waiter may find a second worker free.
				wake(q.idleWake)
				return true
			}
		case <-timeout.C:
			return q.reserve()
		case <-ctx.Done():
			return false
		}
	}
}

// unreserve withdraws a promise whose task was not claimed.
func (q *readyQueue) unreserve() {
	q.mu.Lock()
	q.reserved--
	q.mu.Unlock()
	wake(q.claimWake)
}

// handoff delivers a promised, claimed task to a worker.
func (q *readyQueue) handoff(t *store.Task) {
	q.mu.Lock()
	q.reserved--
	q.claimed = append(q.claimed, t)
	q.mu.Unlock()
	wake(q.workerWake)
}

// drainClaimed returns the claimed tasks no worker took before shutdown.
func (q *readyQueue) drainClaimed() []*store.Task {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.claimed
	q.claimed = nil
	return c
}

// close stops the queue; waiting workers and the claim loop leave through their contexts.
func (q *readyQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	wake(q.claimWake)
}
