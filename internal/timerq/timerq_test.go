package timerq

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func ids(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func woken(q *Queue) bool {
	select {
	case <-q.Wake():
		return true
	default:
		return false
	}
}

type push struct {
	id  string
	sec int
}

func TestOrdering(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		pushes []push
		remove []string
		popAt  int
		max    int
		want   []string
		left   int
	}{
		{"empty", nil, nil, 100, 0, nil, 0},
		{"sorted by due", []push{{"c", 3}, {"a", 1}, {"b", 2}}, nil, 100, 0, []string{"a", "b", "c"}, 0},
		{"ties broken by id", []push{{"b", 1}, {"c", 1}, {"a", 1}}, nil, 100, 0, []string{"a", "b", "c"}, 0},
		{"only due ones", []push{{"a", 1}, {"b", 5}, {"c", 2}}, nil, 2, 0, []string{"a", "c"}, 1},
		{"due exactly now", []push{{"a", 2}}, nil, 2, 0, []string{"a"}, 0},
		{"none due", []push{{"a", 2}}, nil, 1, 0, nil, 1},
		{"max limits", []push{{"a", 1}, {"b", 2}, {"c", 3}}, nil, 10, 2, []string{"a", "b"}, 1},
		{"negative max is unlimited", []push{{"a", 1}, {"b", 2}}, nil, 10, -1, []string{"a", "b"}, 0},
		{"move earlier", []push{{"a", 1}, {"b", 2}, {"c", 3}, {"c", 0}}, nil, 10, 0, []string{"c", "a", "b"}, 0},
		{"move later", []push{{"a", 1}, {"b", 2}, {"c", 3}, {"a", 9}}, nil, 10, 0, []string{"b", "c", "a"}, 0},
		{"move later past now", []push{{"a", 1}, {"b", 2}, {"a", 9}}, nil, 5, 0, []string{"b"}, 1},
		{"remove", []push{{"a", 1}, {"b", 2}, {"c", 3}}, []string{"b"}, 10, 0, []string{"a", "c"}, 0},
		{"remove top", []push{{"a", 1}, {"b", 2}, {"c", 3}}, []string{"a"}, 10, 0, []string{"b", "c"}, 0},
		{"remove unknown", []push{{"a", 1}}, []string{"zz"}, 10, 0, []string{"a"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := New()
			for _, p := range tt.pushes {
				q.Push(p.id, at(p.sec))
			}
			for _, id := range tt.remove {
				q.Remove(id)
			}
			got := ids(q.PopDue(at(tt.popAt), tt.max))
			if len(got) == 0 {
				got = nil
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("PopDue = %v, want %v", got, tt.want)
			}
			if q.Len() != tt.left {
				t.Errorf("Len = %d, want %d", q.Len(), tt.left)
			}
		})
	}
}

func TestRemoveAndNext(t *testing.T) {
	t.Parallel()
	q := New()
	if _, ok := q.Next(); ok {
		t.Fatal("Next on empty queue reported a timer")
	}
	q.Push("a", at(1))
	q.Push("b", at(2))
	if next, ok := q.Next(); !ok || !next.Equal(at(1)) {
		t.Fatalf("Next = %v, %v; want %v", next, ok, at(1))
	}
	if !q.Remove("a") {
		t.Fatal("Remove(a) = false")
	}
	if q.Remove("a") {
		t.Fatal("second Remove(a) = true")
	}
	if next, ok := q.Next(); !ok || !next.Equal(at(2)) {
		t.Fatalf("Next after Remove = %v, %v; want %v", next, ok, at(2))
	}
	if q.Len() != 1 {
		t.Fatalf("Len = %d, want 1", q.Len())
	}
	// A removed id can be pushed again.
	q.Push("a", at(3))
	if got := ids(q.PopDue(at(10), 0)); !slices.Equal(got, []string{"b", "a"}) {
		t.Fatalf("PopDue = %v", got)
	}
}

// PushIfAbsent adds a timer only for an id without one, and wakes Run as Push does.
func TestPushIfAbsent(t *testing.T) {
	t.Parallel()
	q := New()
	q.Push("a", at(5))
	woken(q)
	if q.PushIfAbsent("a", at(1)) {
		t.Fatal("PushIfAbsent(a) = true for an id with a timer")
	}
	if next, _ := q.Next(); !next.Equal(at(5)) || woken(q) {
		t.Fatalf("PushIfAbsent moved a's timer to %v (or woke Run)", next)
	}
	if !q.PushIfAbsent("b", at(2)) {
		t.Fatal("PushIfAbsent(b) = false for an id without a timer")
	}
	if !woken(q) {
		t.Fatal("a new earliest timer from PushIfAbsent did not wake Run")
	}
	if got := ids(q.PopDue(at(10), 0)); !slices.Equal(got, []string{"b", "a"}) {
		t.Fatalf("PopDue = %v, want [b a]", got)
	}
}

func TestWake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup []push
		push  push
		want  bool
	}{
		{"first timer", nil, push{"a", 5}, true},
		{"new earliest", []push{{"a", 5}}, push{"b", 4}, true},
		{"later than earliest", []push{{"a", 5}}, push{"b", 6}, false},
		{"equal to earliest", []push{{"a", 5}}, push{"b", 5}, false},
		{"existing moved to earliest", []push{{"a", 5}, {"b", 9}}, push{"b", 1}, true},
		{"top moved earlier", []push{{"a", 5}, {"b", 9}}, push{"a", 1}, true},
		{"top moved later", []push{{"a", 5}, {"b", 9}}, push{"a", 7}, false},
		{"unchanged", []push{{"a", 5}}, push{"a", 5}, false},
		{"non-top moved earlier but not earliest", []push{{"a", 5}, {"b", 9}}, push{"b", 6}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := New()
			for _, p := range tt.setup {
				q.Push(p.id, at(p.sec))
			}
			woken(q) // drain what setup caused
			q.Push(tt.push.id, at(tt.push.sec))
			if got := woken(q); got != tt.want {
				t.Errorf("wake = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWakeNeverBlocks(t *testing.T) {
	t.Parallel()
	q := New()
	for i := range 100 {
		q.Push(strconv.Itoa(i), at(-i)) // each is a new earliest; nobody reads Wake
	}
	if !woken(q) || woken(q) {
		t.Fatal("want exactly one buffered wake")
	}
}

// model is a sorted-slice reference implementation.
type model []Entry

func (m model) less(a, b Entry) int {
	if c := a.Due.Compare(b.Due); c != 0 {
		return c
	}
	if a.ID < b.ID {
		return -1
	}
	if a.ID > b.ID {
		return 1
	}
	return 0
}

func (m *model) remove(id string) bool {
	i := slices.IndexFunc(*m, func(e Entry) bool { return e.ID == id })
	if i < 0 {
		return false
	}
	*m = slices.Delete(*m, i, i+1)
	return true
}

func (m *model) push(id string, due time.Time) {
	m.remove(id)
	*m = append(*m, Entry{id, due})
	slices.SortFunc(*m, m.less)
}

func (m *model) popDue(now time.Time, max int) []Entry {
	n := 0
	for n < len(*m) && !(*m)[n].Due.After(now) && (max <= 0 || n < max) {
		n++
	}
	out := slices.Clone((*m)[:n])
	*m = (*m)[n:]
	return out
}

func TestRandomAgainstModel(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	q := New()
	var m model
	for op := range 10_000 {
		id := "t" + strconv.Itoa(r.IntN(300))
		switch k := r.IntN(10); {
		case k < 6:
			due := at(r.IntN(1000))
			q.Push(id, due)
			m.push(id, due)
		case k < 8:
			if got, want := q.Remove(id), m.remove(id); got != want {
				t.Fatalf("op %d: Remove(%s) = %v, want %v", op, id, got, want)
			}
		default:
			now, max := at(r.IntN(1000)), r.IntN(20)-5
			got, want := q.PopDue(now, max), m.popDue(now, max)
			if len(got) != len(want) {
				t.Fatalf("op %d: PopDue returned %d entries, want %d", op, len(got), len(want))
			}
			for i := range got {
				if got[i].ID != want[i].ID || !got[i].Due.Equal(want[i].Due) {
					t.Fatalf("op %d: PopDue[%d] = %v, want %v", op, i, got[i], want[i])
				}
			}
		}
		if q.Len() != len(m) {
			t.Fatalf("op %d: Len = %d, want %d", op, q.Len(), len(m))
		}
		next, ok := q.Next()
		if ok != (len(m) > 0) || (ok && !next.Equal(m[0].Due)) {
			t.Fatalf("op %d: Next = %v, %v; model %v", op, next, ok, m[:min(1, len(m))])
		}
	}
	// Drain and check the final order.
	got, want := q.PopDue(at(1000), 0), m.popDue(at(1000), 0)
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("final drain differs")
	}
}

func TestMillionOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	q := New()
	n := 1_000_000
	if raceEnabled {
		n = 100_000
	}
	for i := range n {
		q.Push(strconv.Itoa(i), t0.Add(time.Duration(r.Int64N(int64(24*time.Hour)))))
	}
	got := q.PopDue(t0.Add(24*time.Hour), 0)
	if len(got) != n {
		t.Fatalf("popped %d, want %d", len(got), n)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Due.Before(got[i-1].Due) {
			t.Fatalf("out of order at %d", i)
		}
	}
}

// fired records what Run delivered, with the fake time of each delivery.
type fired struct {
	mu  sync.Mutex
	got map[string]time.Time
}

func (f *fired) fire(es []Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for _, e := range es {
		if _, dup := f.got[e.ID]; dup {
			panic("fired twice: " + e.ID)
		}
		f.got[e.ID] = now
	}
}

func (f *fired) at(id string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts, ok := f.got[id]
	return ts, ok
}

// startRun starts q.Run in the current synctest bubble and stops it at cleanup.
func startRun(t *testing.T, q *Queue) *fired {
	f := &fired{got: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		q.Run(ctx, f.fire)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return f
}

func TestRunFiresAtDueInstant(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		q := New()
		offsets := map[string]time.Duration{
			"a": time.Second,
			"b": 3 * time.Second,
			"c": 3 * time.Second,
			"d": 90 * time.Minute,
			"e": 1500 * time.Millisecond,
			"z": -time.Hour, // overdue: fires at once
		}
		for id, d := range offsets {
			q.Push(id, start.Add(d))
		}
		f := startRun(t, q)
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		for id, d := range offsets {
			want := start.Add(max(d, 0))
			got, ok := f.at(id)
			if !ok {
				t.Errorf("%s never fired", id)
			} else if !got.Equal(want) {
				t.Errorf("%s fired at +%v, want +%v", id, got.Sub(start), want.Sub(start))
			}
		}
		if q.Len() != 0 {
			t.Errorf("Len = %d after all fired", q.Len())
		}
	})
}

func TestRunWakesForEarlierPush(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		q := New()
		f := startRun(t, q) // starts with an empty queue: sleeps with no timer
		time.Sleep(time.Second)
		q.Push("late", start.Add(time.Hour))
		time.Sleep(time.Second) // Run is now sleeping until +1h
		q.Push("early", start.Add(5*time.Second))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got, ok := f.at("early"); !ok || !got.Equal(start.Add(5*time.Second)) {
			t.Fatalf("early fired at %v (ok=%v), want +5s", got.Sub(start), ok)
		}
		if _, ok := f.at("late"); ok {
			t.Fatal("late fired too soon")
		}
		// Moving the sleeping top later must not fire it at its old time.
		q.Push("late", start.Add(2*time.Hour))
		time.Sleep(90 * time.Minute)
		synctest.Wait()
		if _, ok := f.at("late"); ok {
			t.Fatal("late fired at its old due time")
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got, ok := f.at("late"); !ok || !got.Equal(start.Add(2*time.Hour)) {
			t.Fatalf("late fired at %v (ok=%v), want +2h", got.Sub(start), ok)
		}
	})
}

func TestRunRemovePreventsFiring(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		q := New()
		q.Push("cancelled", start.Add(2*time.Second))
		q.Push("kept", start.Add(4*time.Second))
		f := startRun(t, q)
		time.Sleep(time.Second)
		if !q.Remove("cancelled") {
			t.Fatal("Remove = false")
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if _, ok := f.at("cancelled"); ok {
			t.Error("removed timer fired")
		}
		if got, ok := f.at("kept"); !ok || !got.Equal(start.Add(4*time.Second)) {
			t.Errorf("kept fired at %v (ok=%v), want +4s", got.Sub(start), ok)
		}
	})
}

func TestRunBatchesBacklog(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		q := New()
		const n = 3*batchLimit + 7
		for i := range n {
			q.Push(fmt.Sprintf("%05d", i), start.Add(-time.Duration(n-i)*time.Millisecond))
		}
		var (
			mu      sync.Mutex
			batches []int
			order   []string
		)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			q.Run(ctx, func(es []Entry) {
				mu.Lock()
				defer mu.Unlock()
				batches = append(batches, len(es))
				order = append(order, ids(es)...)
			})
		}()
		synctest.Wait()
		cancel()
		<-done
		if want := []int{batchLimit, batchLimit, batchLimit, 7}; !slices.Equal(batches, want) {
			t.Fatalf("batch sizes = %v, want %v", batches, want)
		}
		if !slices.IsSorted(order) {
			t.Fatal("backlog not delivered earliest first")
		}
		if !time.Now().Equal(start) {
			t.Fatal("overdue timers waited")
		}
	})
}

func TestRunReturnsOnCancel(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		q := New()
		q.Push("a", time.Now().Add(time.Hour))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			q.Run(ctx, func([]Entry) { t.Error("fired") })
			close(done)
		}()
		time.Sleep(time.Minute)
		cancel()
		<-done // synctest.Test would also fail if Run leaked
	})
}

// BenchmarkPushPop measures one Push plus one PopDue(…, 1) on a queue that
// holds 1M timers.
func BenchmarkPushPop(b *testing.B) {
	const n = 1_000_000
	r := rand.New(rand.NewPCG(5, 6))
	names := make([]string, 2*n)
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	q := New()
	for i := range n {
		q.Push(names[i], t0.Add(time.Duration(r.Int64N(int64(time.Hour)))))
	}
	far := t0.Add(24 * time.Hour)
	i := 0
	for b.Loop() {
		q.Push(names[n+i%n], t0.Add(time.Duration(r.Int64N(int64(time.Hour)))))
		if len(q.PopDue(far, 1)) != 1 {
			b.Fatal("nothing popped")
		}
		i++
	}
}
