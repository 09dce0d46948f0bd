package main

// Unit tests of the dispatcher's pure parts: backoff and the ready queue.

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		kind string
		n    int
		want time.Duration
	}{
		{"exponential", 1, 1 * time.Second},
		{"exponential", 2, 2 * time.Second},
		{"exponential", 3, 4 * time.Second},
		{"exponential", 4, 8 * time.Second},
		{"exponential", 5, 16 * time.Second},
		{"exponential", 10, 512 * time.Second},
		{"linear", 1, 1 * time.Second},
		{"linear", 2, 2 * time.Second},
		{"linear", 3, 3 * time.Second},
		{"linear", 10, 10 * time.Second},
	} {
		if got := Backoff(c.kind, c.n); got != c.want {
			t.Errorf("Backoff(%q, %d) = %v, want %v", c.kind, c.n, got, c.want)
		}
	}
}

// pop (for these tests) waits for the most urgent pending task and removes it, whether or not a worker is
// free; false once ctx is done or the queue is closed.
func (q *readyQueue) pop(ctx context.Context) (string, bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return "", false
		}
		if len(q.items) > 0 {
			it := heap.Pop(&q.items).(readyItem)
			delete(q.in, it.id)
			q.mu.Unlock()
			return it.id, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-q.claimWake:
		}
	}
}

// len is how many tasks are pending.
func (q *readyQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// utPopAll pops everything queued, without blocking.
func utPopAll(t *testing.T, q *readyQueue) []string {
	t.Helper()
	var out []string
	for q.len() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		id, ok := q.pop(ctx)
		cancel()
		if !ok {
			t.Fatalf("pop failed with %d items queued", q.len())
		}
		out = append(out, id)
	}
	return out
}

func TestReadyQueueOrder(t *testing.T) {
	t.Parallel()
	q := newReadyQueue()
	// priority desc, then due asc, then id asc; pushed in a scrambled order.
	q.push("p5-due20-b", 5, 20)
	q.push("p1-due1", 1, 1)
	q.push("p10-due30", 10, 30)
	q.push("p5-due20-a", 5, 20)
	q.push("p5-due10", 5, 10)
	q.push("p10-due5", 10, 5)
	q.push("p7-due100", 7, 100)
	q.push("p1-due0", 1, 0)
	want := []string{"p10-due5", "p10-due30", "p7-due100", "p5-due10", "p5-due20-a", "p5-due20-b", "p1-due0", "p1-due1"}
	if got := utPopAll(t, q); !slices.Equal(got, want) {
		t.Errorf("pop order %v, want %v", got, want)
	}
}

func TestReadyQueueDedupes(t *testing.T) {
	t.Parallel()
	q := newReadyQueue()
	q.push("a", 5, 1)
	q.push("a", 9, 0) // already queued: ignored, even with another priority
	q.push("b", 5, 2)
	q.push("a", 5, 1)
	if n := q.len(); n != 2 {
		t.Fatalf("len %d after pushing a three times and b once, want 2", n)
	}
	if got := utPopAll(t, q); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("pop order %v, want [a b]", got)
	}
	// Once popped, an id may be queued again.
	q.push("a", 5, 3)
	if got := utPopAll(t, q); !slices.Equal(got, []string{"a"}) {
		t.Errorf("re-pushed after pop: %v, want [a]", got)
	}
}

func TestReadyQueuePopWaitsAndStops(t *testing.T) {
	t.Parallel()
	q := newReadyQueue()

	// An empty queue blocks until the context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if id, ok := q.pop(ctx); ok {
		t.Errorf("pop on an empty queue returned %q", id)
	}
	cancel()

	// A waiting pop wakes on push.
	got := make(chan string, 1)
	go func() {
		id, _ := q.pop(context.Background())
		got <- id
	}()
	time.Sleep(20 * time.Millisecond)
	q.push("x", 5, 0)
	select {
	case id := <-got:
		if id != "x" {
			t.Errorf("woken pop returned %q, want x", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pop did not wake on push")
	}

	// After close, pop reports false and push is ignored.
	q.push("y", 5, 0)
	q.close()
	if id, ok := q.pop(context.Background()); ok {
		t.Errorf("pop after close returned %q", id)
	}
	q.push("z", 5, 0)
	if id, ok := q.pop(context.Background()); ok {
		t.Errorf("pop after close and push returned %q", id)
	}
}

func TestReadyQueueConcurrentWorkers(t *testing.T) {
	t.Parallel()
	q := newReadyQueue()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 500
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id, ok := q.pop(ctx)
				if !ok {
					return
				}
				mu.Lock()
				seen[id]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		id := fmt.Sprint("t", i)
		q.push(id, i%10+1, int64(i))
		q.push(id, i%10+1, int64(i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := len(seen)
		mu.Unlock()
		if done == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("workers popped %d distinct ids, want %d", len(seen), n)
	}
	total := 0
	for _, c := range seen {
		total += c
	}
	// A duplicate push is ignored only while the id is queued; a worker may pop it in between.
	if total > 2*n {
		t.Errorf("%d pops for %d ids", total, n)
	}
}

// Promises and claim batches never exceed the idle workers: a task is claimed (shown
// processing) only when a worker is free for it, and the most urgent pending ones go first.
func TestReadyQueuePromisesMatchIdleWorkers(t *testing.T) {
	t.Parallel()
	q := newReadyQueue()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	short := func() context.Context {
		c, cl := context.WithTimeout(ctx, 30*time.Millisecond)
		t.Cleanup(cl)
		return c
	}
	if q.reserve() {
		t.Fatal("a promise with no worker idle")
	}
	q.push("low", 1, 0)
	q.push("high", 9, 0)
	q.push("mid", 5, 0)
	if items, ok := q.claimBatch(short(), 10); ok {
		t.Fatalf("claimBatch with no worker idle: %v", items)
	}

	got := make(chan *store.Task, 2)
	worker := func() {
		tk, _ := q.take(ctx)
		got <- tk
	}
	go worker()
	go worker()
	for idle := 0; idle < 2; time.Sleep(time.Millisecond) {
		q.mu.Lock()
		idle = q.idle
		q.mu.Unlock()
	}
	items, ok := q.claimBatch(ctx, 10)
	if !ok || len(items) != 2 || items[0].id != "high" {
		t.Fatalf("claimBatch = %v %v, want [high mid]", items, ok)
	}
	if q.reserve() {
		t.Fatal("a promise beyond the two idle workers")
	}
	q.unreserve() // "mid" was not claimed after all: it frees a promise
	if !q.reserve() {
		t.Fatal("no promise after one was withdrawn")
	}
	q.handoff(&store.Task{ID: "high"})
	q.handoff(&store.Task{ID: "c"})
	for range 2 {
		select {
		case tk := <-got:
			if tk == nil || (tk.ID != "high" && tk.ID != "c") {
				t.Fatalf("a worker got %v", tk)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a handed-over task was not taken")
		}
	}
	if n := q.len(); n != 1 {
		t.Fatalf("%d pending left, want 1 (low)", n)
	}
}

// TestReadyQueueReserveWait: a due timer with no worker idle waits for one to come free
// (it then gets it), gives up after its limit, and stops at once when the context ends.
func TestReadyQueueReserveWait(t *testing.T) {
	t.Parallel()
	q := newReadyQueue()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if q.reserveWait(ctx, 20*time.Millisecond) {
		t.Fatal("a promise with no worker at all")
	}

	got := make(chan bool, 1)
	go func() { got <- q.reserveWait(ctx, time.Minute) }()
	select {
	case ok := <-got:
		t.Fatalf("reserveWait returned %v before any worker was idle", ok)
	case <-time.After(20 * time.Millisecond):
	}
	taken := make(chan *store.Task, 1)
	go func() {
		tk, _ := q.take(ctx)
		taken <- tk
	}()
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("reserveWait gave up although a worker came free")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reserveWait did not see the worker come free")
	}
	// The one idle worker is promised: a second wait finds none and times out.
	if q.reserveWait(ctx, 20*time.Millisecond) {
		t.Fatal("two promises for one idle worker")
	}
	q.handoff(&store.Task{ID: "a"})
	if tk := <-taken; tk == nil || tk.ID != "a" {
		t.Fatalf("the worker got %v, want a", tk)
	}

	stopped := make(chan bool, 1)
	go func() { stopped <- q.reserveWait(ctx, time.Minute) }()
	cancel()
	select {
	case ok := <-stopped:
		if ok {
			t.Fatal("a promise after the context ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reserveWait did not stop when its context ended")
	}
}
