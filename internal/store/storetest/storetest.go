// Package storetest is the contract every store backend keeps, as tests: a backend's own
// test runs Run with a way to open a fresh, empty store of its kind.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// Backend is one implementation of store.Store under test.
type Backend struct {
	Name string
	// Open returns a new, empty store; the test closes it (closing twice must be safe).
	Open func(t *testing.T) store.Store
	// OpenSmall, if set, returns a new, empty store that can hold no more than about a
	// megabyte, to check that a full database answers store.ErrFull.
	OpenSmall func(t *testing.T) store.Store
	// NoBackup says the backend does not copy its database itself (PostgreSQL: pg_dump
	// does): Backup must then fail with an error, and the store stay usable.
	NoBackup bool
}

// RunAll runs the contract on each backend, as a subtest named after it.
func RunAll(t *testing.T, backends []Backend) {
	for _, b := range backends {
		t.Run(b.Name, func(t *testing.T) { Run(t, b) })
	}
}

// Run runs every case of the contract on a fresh store of b.
func Run(t *testing.T, b Backend) {
	cases := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"InsertAndRead", testInsertAndRead},
		{"NotFound", testNotFound},
		{"CompareAndSet", testCompareAndSet},
		{"FailedWriteKeepsNothing", testFailedWriteKeepsNothing},
		{"WriteAsyncAndClose", testWriteAsyncAndClose},
		{"Idempotency", testIdempotency},
		{"ClaimDue", testClaimDue},
		{"ClaimTasks", testClaimTasks},
		{"SignalAndCallbackLookups", testLookups},
		{"Counts", testCounts},
		{"RecoverAndPrune", testRecoverAndPrune},
		{"TeamsAndKeys", testTeamsAndKeys},
		{"Vault", testVault},
		{"Flows", testFlows},
		{"Schedules", testSchedules},
		{"EventsAndAttempts", testEventsAndAttempts},
		{"PingAndBackup", testPingAndBackup},
		{"AdminPages", testAdminPages},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := b.Open(t)
			t.Cleanup(func() { s.Close() })
			if c.name == "PingAndBackup" && b.NoBackup {
				testPingNoBackup(t, s)
				return
			}
			c.fn(t, s)
		})
	}
	t.Run("Full", func(t *testing.T) {
		if b.OpenSmall == nil {
			t.Skip("the backend cannot be made small")
		}
		s := b.OpenSmall(t)
		t.Cleanup(func() { s.Close() })
		testFull(t, s)
	})
}

var ctx = context.Background()

// write runs fn in a write and fails the test on an error.
func write(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Write(ctx, fn); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// team creates a team named name and returns its id.
func team(t *testing.T, s store.Store, name string) string {
	t.Helper()
	id := "team-" + name
	write(t, s, func(tx store.Tx) error {
		return tx.InsertTeam(&store.Team{ID: id, Name: name, WebhookSecret: "secret-" + name, CreatedAt: 1})
	})
	return id
}

func ptr[T any](v T) *T { return &v }

// ClaimOne claims the task id through Tx.ClaimTasks, the stores' one claim, with the errors
// a claim of one reads best: store.ErrStale when another transaction holds its row (try
// again shortly), store.ErrNotFound when it is not due (no longer pending, or gone).
func ClaimOne(tx store.Tx, id string, now int64) (*store.Task, error) {
	claimed, busy, err := tx.ClaimTasks([]string{id}, now)
	switch {
	case err != nil:
		return nil, err
	case len(claimed) == 1:
		return claimed[0], nil
	case len(busy) == 1:
		return nil, store.ErrStale
	}
	return nil, store.ErrNotFound
}

// newTask is a valid task of team in status; id must sort like a UUIDv7 for the pages.
func newTask(team, id, status string) *store.Task {
	return &store.Task{ID: id, TeamID: team, Status: status, TargetURL: "https://example.com/a",
		TargetHost: "example.com", Method: "POST", Headers: `{"X-A":"1"}`, Body: ptr(`{"n":1}`),
		TimeoutMS: 30_000, MaxRetries: 3, RetryBackoff: "exponential", MaxWaitMS: 60_000, CreatedAt: 1000}
}

func insert(t *testing.T, s store.Store, tasks ...*store.Task) {
	t.Helper()
	write(t, s, func(tx store.Tx) error {
		for _, task := range tasks {
			if err := tx.InsertTask(task); err != nil {
				return err
			}
		}
		return nil
	})
}

func get(t *testing.T, s store.Store, id string) *store.Task {
	t.Helper()
	got, err := s.Task(ctx, id)
	if err != nil {
		t.Fatalf("Task(%s): %v", id, err)
	}
	return got
}

func testInsertAndRead(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	want := newTask(tm, "00000000-0000-7000-8000-000000000001", store.StatusDelayed)
	want.DelayUntil, want.DueAt = ptr[int64](5000), ptr[int64](5000)
	want.SignalHash, want.Priority, want.WaitForSignal = []byte{1, 2, 3}, 2, true
	want.FlowKey, want.HeartbeatTimeoutMS = ptr("flow-1"), ptr[int64](9000)
	insert(t, s, want)
	if got := get(t, s, want.ID); !reflect.DeepEqual(got, want) {
		t.Errorf("Task read back\n got %+v\nwant %+v", got, want)
	}
	write(t, s, func(tx store.Tx) error {
		got, err := tx.Task(want.ID)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Tx.Task read back\n got %+v\nwant %+v", got, want)
		}
		return nil
	})
	other := newTask(tm, "00000000-0000-7000-8000-000000000002", store.StatusPending)
	insert(t, s, other)
	got, err := s.TasksByID(ctx, []string{other.ID, "missing", want.ID})
	if err != nil || len(got) != 2 {
		t.Fatalf("TasksByID = %d tasks, %v; want 2", len(got), err)
	}
	page, total, err := s.List(ctx, store.ListFilter{TeamID: tm, Limit: 10})
	if err != nil || total != 2 || len(page) != 2 || page[0].ID != other.ID {
		t.Fatalf("List = %d tasks (first %v), total %d, %v; want both, newest first", len(page), page, total, err)
	}
	page, total, err = s.List(ctx, store.ListFilter{TeamID: tm, Statuses: []string{store.StatusPending}, Limit: 10})
	if err != nil || total != 1 || len(page) != 1 || page[0].ID != other.ID {
		t.Fatalf("List(pending) = %d tasks, total %d, %v; want the pending one", len(page), total, err)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	checks := map[string]func() error{
		"Task":         func() error { _, err := s.Task(ctx, "missing"); return err },
		"TaskBySignal": func() error { _, err := s.TaskBySignal(ctx, []byte("missing")); return err },
		"Team":         func() error { _, err := s.Team(ctx, "missing"); return err },
		"Schedule":     func() error { _, err := s.Schedule(ctx, "missing"); return err },
		"APIKeyByHash": func() error { _, err := s.APIKeyByHash(ctx, []byte("missing")); return err },
		"VaultToken":   func() error { _, err := s.VaultToken(ctx, tm, "missing"); return err },
		"AdminSession": func() error { _, err := s.AdminSession(ctx, []byte("missing"), 0); return err },
	}
	txChecks := map[string]func(tx store.Tx) error{
		"Tx.Task":           func(tx store.Tx) error { _, err := tx.Task("missing"); return err },
		"Tx.TaskBySignal":   func(tx store.Tx) error { _, err := tx.TaskBySignal([]byte("missing")); return err },
		"Tx.TaskByCallback": func(tx store.Tx) error { _, err := tx.TaskByCallback([]byte("missing")); return err },
		"Tx.Team":           func(tx store.Tx) error { _, err := tx.Team("missing"); return err },
		"Tx.TeamByName":     func(tx store.Tx) error { _, err := tx.TeamByName("missing"); return err },
		"Tx.APIKeyTeam":     func(tx store.Tx) error { _, err := tx.APIKeyTeam("missing"); return err },
		"Tx.Flow":           func(tx store.Tx) error { _, err := tx.Flow(tm, "missing"); return err },
		"Tx.Schedule":       func(tx store.Tx) error { _, err := tx.Schedule("missing"); return err },
		"Tx.Idempotency":    func(tx store.Tx) error { _, err := tx.Idempotency(tm, "missing", 0); return err },
	}
	for name, f := range txChecks {
		checks[name] = func() error {
			var inner error
			err := s.Write(ctx, func(tx store.Tx) error { inner = f(tx); return inner })
			if !errors.Is(err, inner) {
				return fmt.Errorf("the write returned %v, not its function's error %v", err, inner)
			}
			return err
		}
	}
	for name, f := range checks {
		if err := f(); !errors.Is(err, store.ErrNotFound) || !store.IsNotFound(err) {
			t.Errorf("%s of a missing row: %v, want ErrNotFound", name, err)
		}
	}
}

func testCompareAndSet(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	task := newTask(tm, "00000000-0000-7000-8000-000000000001", store.StatusWaiting)
	insert(t, s, task)
	// A stale status: nothing is written.
	err := s.Write(ctx, func(tx store.Tx) error {
		got, err := tx.Task(task.ID)
		if err != nil {
			return err
		}
		got.Status, got.Result = store.StatusCompleted, ptr(`{"ok":true}`)
		return tx.UpdateTask(got, store.StatusPending)
	})
	if !errors.Is(err, store.ErrStale) {
		t.Fatalf("UpdateTask from the wrong status: %v, want ErrStale", err)
	}
	if got := get(t, s, task.ID); got.Status != store.StatusWaiting || got.Result != nil {
		t.Fatalf("after a stale update the task is %s with result %v; want it unchanged", got.Status, got.Result)
	}
	// The right status: written.
	write(t, s, func(tx store.Tx) error {
		got, err := tx.Task(task.ID)
		if err != nil {
			return err
		}
		got.Status, got.Result, got.CompletedAt = store.StatusCompleted, ptr(`{"ok":true}`), ptr[int64](2000)
		return tx.UpdateTask(got, store.StatusWaiting)
	})
	if got := get(t, s, task.ID); got.Status != store.StatusCompleted || got.Result == nil || *got.CompletedAt != 2000 {
		t.Fatalf("after the update the task is %+v", got)
	}
	// UpdateTaskNoSignal refuses once an early signal is buffered; UpdateTaskFrom does not.
	running := newTask(tm, "00000000-0000-7000-8000-000000000002", store.StatusProcessing)
	insert(t, s, running)
	write(t, s, func(tx store.Tx) error {
		got, err := tx.Task(running.ID)
		if err != nil {
			return err
		}
		got.BufferedSignal = ptr(`{"early":true}`)
		return tx.UpdateTask(got, store.StatusProcessing)
	})
	outcome := *running
	outcome.Status, outcome.Result = store.StatusCompleted, ptr(`{}`)
	if err := s.Write(ctx, func(tx store.Tx) error { return tx.UpdateTaskNoSignal(running, &outcome) }); !errors.Is(err, store.ErrStale) {
		t.Fatalf("UpdateTaskNoSignal with a buffered signal: %v, want ErrStale", err)
	}
	var buffered *string
	write(t, s, func(tx store.Tx) error {
		var err error
		buffered, err = tx.BufferedSignal(running.ID)
		return err
	})
	if buffered == nil || *buffered != `{"early":true}` {
		t.Fatalf("BufferedSignal = %v", buffered)
	}
	outcome.BufferedSignal = buffered
	write(t, s, func(tx store.Tx) error { return tx.UpdateTaskFrom(running, &outcome) })
	if got := get(t, s, running.ID); got.Status != store.StatusCompleted {
		t.Fatalf("UpdateTaskFrom left the task %s", got.Status)
	}
}

func testFailedWriteKeepsNothing(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	boom := errors.New("boom")
	var after atomic.Int32
	err := s.Write(ctx, func(tx store.Tx) error {
		tx.AfterCommit(func() { after.Add(1) })
		if err := tx.InsertTask(newTask(tm, "00000000-0000-7000-8000-000000000001", store.StatusPending)); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want fn's error", err)
	}
	if _, err := s.Task(ctx, "00000000-0000-7000-8000-000000000001"); !store.IsNotFound(err) {
		t.Fatalf("the failed write's task: %v, want not found", err)
	}
	if n := after.Load(); n != 0 {
		t.Fatalf("AfterCommit of a failed write ran %d times", n)
	}
	if counts, err := s.StatusCounts(ctx, tm); err != nil || counts[store.StatusPending] != 0 {
		t.Fatalf("counts after a failed write: %v, %v", counts, err)
	}
	// A successful write's AfterCommit functions run once each, in order, before Write returns.
	var order []int
	write(t, s, func(tx store.Tx) error {
		order = order[:0] // fn may run again
		tx.AfterCommit(func() { order = append(order, 1) })
		tx.AfterCommit(func() { order = append(order, 2) })
		return tx.InsertTask(newTask(tm, "00000000-0000-7000-8000-000000000002", store.StatusPending))
	})
	if !reflect.DeepEqual(order, []int{1, 2}) {
		t.Fatalf("AfterCommit ran %v, want [1 2]", order)
	}
}

func testWriteAsyncAndClose(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	done := make(chan error, 1)
	s.WriteAsync(func(tx store.Tx) error {
		return tx.InsertTask(newTask(tm, "00000000-0000-7000-8000-000000000001", store.StatusPending))
	}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("WriteAsync: %v", err)
	}
	get(t, s, "00000000-0000-7000-8000-000000000001")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Write(ctx, func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Write after Close: %v, want ErrClosed", err)
	}
	s.WriteAsync(func(store.Tx) error { return nil }, func(err error) { done <- err })
	if err := <-done; !errors.Is(err, store.ErrClosed) {
		t.Fatalf("WriteAsync after Close: %v, want ErrClosed", err)
	}
}

func testIdempotency(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	key := &store.Idempotency{TeamID: tm, Key: "k1", RequestHash: []byte{9}, TaskID: "task-1", CreatedAt: 1000}
	write(t, s, func(tx store.Tx) error { return tx.PutIdempotency(key) })
	var got *store.Idempotency
	write(t, s, func(tx store.Tx) error {
		var err error
		got, err = tx.Idempotency(tm, "k1", 500)
		return err
	})
	if !reflect.DeepEqual(got, key) {
		t.Fatalf("Idempotency = %+v, want %+v", got, key)
	}
	// Expired: not found, and a new use replaces it.
	err := s.Write(ctx, func(tx store.Tx) error { _, err := tx.Idempotency(tm, "k1", 2000); return err })
	if !store.IsNotFound(err) {
		t.Fatalf("an expired key: %v, want not found", err)
	}
	write(t, s, func(tx store.Tx) error {
		return tx.PutIdempotency(&store.Idempotency{TeamID: tm, Key: "k1", RequestHash: []byte{8}, TaskID: "task-2", CreatedAt: 3000})
	})
	write(t, s, func(tx store.Tx) error {
		var err error
		got, err = tx.Idempotency(tm, "k1", 2000)
		return err
	})
	if got.TaskID != "task-2" {
		t.Fatalf("the replaced key names %s, want task-2", got.TaskID)
	}
	var pruned int64
	write(t, s, func(tx store.Tx) error {
		var err error
		pruned, err = tx.PruneIdempotency(4000, 10)
		return err
	})
	if pruned != 1 {
		t.Fatalf("PruneIdempotency = %d, want 1", pruned)
	}
}

func testClaimDue(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	a := newTask(tm, "00000000-0000-7000-8000-000000000001", store.StatusPending)
	a.DueAt = ptr[int64](100)
	b := newTask(tm, "00000000-0000-7000-8000-000000000002", store.StatusDelayed)
	b.DueAt = ptr[int64](100)
	c := newTask(tm, "00000000-0000-7000-8000-000000000003", store.StatusDelayed)
	c.DueAt = ptr[int64](300)
	insert(t, s, a, b, c, newTask(tm, "00000000-0000-7000-8000-000000000004", store.StatusPending))
	timers, err := s.DueBefore(ctx, 0, "", 1000, 10)
	want := []store.Timer{{ID: a.ID, DueAt: 100}, {ID: b.ID, DueAt: 100}, {ID: c.ID, DueAt: 300}}
	if err != nil || !reflect.DeepEqual(timers, want) {
		t.Fatalf("DueBefore = %v, %v; want %v", timers, err, want)
	}
	// Paging on (due_at, id), and the until bound.
	timers, err = s.DueBefore(ctx, 100, a.ID, 300, 10)
	if err != nil || !reflect.DeepEqual(timers, want[1:2]) {
		t.Fatalf("DueBefore after the first = %v, %v; want %v", timers, err, want[1:2])
	}
	var claimed *store.Task
	write(t, s, func(tx store.Tx) error {
		var err error
		claimed, err = ClaimOne(tx, a.ID, 150)
		return err
	})
	// No timer while the call runs; on a shared store, the claim's lease instead.
	var wantDue *int64
	if _, shared := s.(store.Shared); shared {
		wantDue = ptr(150 + a.TimeoutMS + store.LeaseSlack.Milliseconds())
	}
	if claimed.Status != store.StatusProcessing || claimed.Attempts != 1 || !reflect.DeepEqual(claimed.DueAt, wantDue) ||
		claimed.StartedAt == nil || *claimed.StartedAt != 150 {
		t.Fatalf("the claim returned %+v (due %v, want %v)", claimed, claimed.DueAt, wantDue)
	}
	if got := get(t, s, a.ID); !reflect.DeepEqual(got, claimed) {
		t.Fatalf("the claimed task as stored\n got %+v\nwant %+v", got, claimed)
	}
	// A task no longer pending is not claimed twice.
	if err := s.Write(ctx, func(tx store.Tx) error { _, err := ClaimOne(tx, a.ID, 160); return err }); !store.IsNotFound(err) {
		t.Fatalf("a second claim: %v, want not found", err)
	}
	if got := get(t, s, a.ID); got.Attempts != 1 {
		t.Fatalf("attempts after a refused claim = %d, want 1", got.Attempts)
	}
}

// ClaimTasks claims the pending and the due delayed tasks among its ids, in one go.
func testClaimTasks(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	id := func(i int) string { return fmt.Sprintf("00000000-0000-7000-8000-%012d", i) }
	pending := newTask(tm, id(1), store.StatusPending)
	due := newTask(tm, id(2), store.StatusDelayed)
	due.DueAt = ptr[int64](100)
	later := newTask(tm, id(3), store.StatusDelayed)
	later.DueAt = ptr[int64](500)
	waiting := newTask(tm, id(4), store.StatusWaiting)
	waiting.DueAt = ptr[int64](100)
	insert(t, s, pending, due, later, waiting)
	ids := []string{id(1), id(2), id(3), id(4), id(5)} // 5: no such task
	var claimed []*store.Task
	var busy []string
	write(t, s, func(tx store.Tx) error {
		var err error
		claimed, busy, err = tx.ClaimTasks(ids, 200)
		return err
	})
	got := map[string]*store.Task{}
	for _, c := range claimed {
		got[c.ID] = c
	}
	if len(claimed) != 2 || got[id(1)] == nil || got[id(2)] == nil || len(busy) != 0 {
		t.Fatalf("ClaimTasks claimed %d tasks (%v), busy %v; want the pending and the due delayed one", len(claimed), got, busy)
	}
	for _, c := range claimed {
		if c.Status != store.StatusProcessing || c.Attempts != 1 || c.StartedAt == nil || *c.StartedAt != 200 {
			t.Fatalf("claimed task %+v; want processing, attempt 1, started at 200", c)
		}
		if stored := get(t, s, c.ID); !reflect.DeepEqual(stored, c) {
			t.Fatalf("the claimed task as stored\n got %+v\nwant %+v", stored, c)
		}
	}
	if got := get(t, s, id(3)); got.Status != store.StatusDelayed {
		t.Fatalf("a delayed task not due yet was claimed: %+v", got)
	}
	counts, err := s.StatusCounts(ctx, tm)
	if err != nil || counts[store.StatusProcessing] != 2 || counts[store.StatusPending] != 0 || counts[store.StatusDelayed] != 1 {
		t.Fatalf("counts after ClaimTasks = %v, %v", counts, err)
	}
	// Claimed once only.
	write(t, s, func(tx store.Tx) error {
		var err error
		claimed, busy, err = tx.ClaimTasks(ids, 300)
		return err
	})
	if len(claimed) != 0 || len(busy) != 0 {
		t.Fatalf("a second ClaimTasks claimed %d, busy %v", len(claimed), busy)
	}
}

func testLookups(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	task := newTask(tm, "00000000-0000-7000-8000-000000000001", store.StatusWaiting)
	task.SignalHash, task.CallbackHash, task.CallbackNonce = []byte("sig-hash"), []byte("cb-hash"), []byte("nonce")
	insert(t, s, task, newTask(tm, "00000000-0000-7000-8000-000000000002", store.StatusWaiting))
	if got, err := s.TaskBySignal(ctx, []byte("sig-hash")); err != nil || got.ID != task.ID {
		t.Fatalf("TaskBySignal = %v, %v", got, err)
	}
	write(t, s, func(tx store.Tx) error {
		bySignal, err := tx.TaskBySignal([]byte("sig-hash"))
		if err != nil {
			return err
		}
		byCallback, err := tx.TaskByCallback([]byte("cb-hash"))
		if err != nil {
			return err
		}
		if bySignal.ID != task.ID || byCallback.ID != task.ID {
			t.Errorf("lookups found %s and %s, want %s", bySignal.ID, byCallback.ID, task.ID)
		}
		// Read for update: the update writes what changed since.
		byCallback.Status, byCallback.Signal, byCallback.SignalHash = store.StatusCompleted, ptr(`{"s":1}`), nil
		return tx.UpdateTask(byCallback, store.StatusWaiting)
	})
	if _, err := s.TaskBySignal(ctx, []byte("sig-hash")); !store.IsNotFound(err) {
		t.Fatalf("a cleared signal hash still finds the task: %v", err)
	}
	if got := get(t, s, task.ID); got.Signal == nil || *got.Signal != `{"s":1}` || string(got.CallbackHash) != "cb-hash" {
		t.Fatalf("after the update: %+v", got)
	}
}

func testCounts(t *testing.T, s store.Store) {
	a, b := team(t, s, "a"), team(t, s, "b")
	insert(t, s, newTask(a, "00000000-0000-7000-8000-000000000001", store.StatusPending),
		newTask(a, "00000000-0000-7000-8000-000000000002", store.StatusPending),
		newTask(a, "00000000-0000-7000-8000-000000000003", store.StatusWaiting),
		newTask(b, "00000000-0000-7000-8000-000000000004", store.StatusDelayed))
	write(t, s, func(tx store.Tx) error {
		_, err := ClaimOne(tx, "00000000-0000-7000-8000-000000000001", 10)
		return err
	})
	check := func(team string, want map[string]int64) {
		t.Helper()
		got, err := s.StatusCounts(ctx, team)
		if err != nil {
			t.Fatal(err)
		}
		for st, n := range got {
			if n == 0 {
				delete(got, st)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("StatusCounts(%q) = %v, want %v", team, got, want)
		}
	}
	check(a, map[string]int64{store.StatusPending: 1, store.StatusProcessing: 1, store.StatusWaiting: 1})
	check(b, map[string]int64{store.StatusDelayed: 1})
	check("", map[string]int64{store.StatusPending: 1, store.StatusProcessing: 1, store.StatusWaiting: 1, store.StatusDelayed: 1})
	byTeam, err := s.TeamStatusCounts(ctx)
	if err != nil || byTeam[a][store.StatusWaiting] != 1 || byTeam[b][store.StatusDelayed] != 1 {
		t.Fatalf("TeamStatusCounts = %v, %v", byTeam, err)
	}
}

func testRecoverAndPrune(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	done := newTask(tm, "00000000-0000-7000-8000-000000000001", store.StatusCompleted)
	done.CompletedAt = ptr[int64](100)
	webhook := newTask(tm, "00000000-0000-7000-8000-000000000002", store.StatusFailed)
	webhook.CompletedAt, webhook.DueAt = ptr[int64](100), ptr[int64](200) // its webhook is still due
	recent := newTask(tm, "00000000-0000-7000-8000-000000000003", store.StatusCompleted)
	recent.CompletedAt = ptr[int64](900)
	insert(t, s, done, webhook, recent, newTask(tm, "00000000-0000-7000-8000-000000000004", store.StatusProcessing))
	var recovered int64
	var pruned int
	write(t, s, func(tx store.Tx) error {
		var err error
		if recovered, err = tx.RecoverProcessing(500); err != nil {
			return err
		}
		pruned, err = tx.PruneTasks(tm, 500, 10)
		return err
	})
	if recovered != 1 || pruned != 1 {
		t.Fatalf("recovered %d and pruned %d, want 1 and 1", recovered, pruned)
	}
	if got := get(t, s, "00000000-0000-7000-8000-000000000004"); got.Status != store.StatusPending || got.DueAt == nil || *got.DueAt != 500 {
		t.Fatalf("the recovered task: %s due %v", got.Status, got.DueAt)
	}
	if _, err := s.Task(ctx, done.ID); !store.IsNotFound(err) {
		t.Fatalf("the pruned task: %v", err)
	}
	counts, _ := s.StatusCounts(ctx, tm)
	if counts[store.StatusCompleted] != 1 || counts[store.StatusFailed] != 1 || counts[store.StatusPending] != 1 || counts[store.StatusProcessing] != 0 {
		t.Fatalf("counts after recover and prune: %v", counts)
	}
}

func testTeamsAndKeys(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	team(t, s, "b")
	key := &store.APIKey{ID: "key-1", TeamID: tm, Hash: []byte("hash-1"), Prefix: "aq_1", Name: "ci", CreatedAt: 5}
	var teams int
	write(t, s, func(tx store.Tx) error {
		if err := tx.InsertAPIKey(key); err != nil {
			return err
		}
		byName, err := tx.TeamByName("a")
		if err != nil || byName.ID != tm {
			return fmt.Errorf("TeamByName = %v, %v", byName, err)
		}
		teams, err = tx.CountTeams()
		return err
	})
	if teams != 2 {
		t.Fatalf("CountTeams = %d", teams)
	}
	if got, err := s.APIKeyByHash(ctx, []byte("hash-1")); err != nil || !reflect.DeepEqual(got, key) {
		t.Fatalf("APIKeyByHash = %+v, %v", got, err)
	}
	if ks, err := s.APIKeys(ctx, tm); err != nil || len(ks) != 1 {
		t.Fatalf("APIKeys = %v, %v", ks, err)
	}
	if all, err := s.Teams(ctx); err != nil || len(all) != 2 {
		t.Fatalf("Teams = %v, %v", all, err)
	}
	var revoked, again bool
	write(t, s, func(tx store.Tx) error {
		owner, err := tx.APIKeyTeam("key-1")
		if err != nil || owner != tm {
			return fmt.Errorf("APIKeyTeam = %q, %v", owner, err)
		}
		if revoked, err = tx.RevokeAPIKey(tm, "key-1", 7); err != nil {
			return err
		}
		again, err = tx.RevokeAPIKey(tm, "key-1", 8)
		return err
	})
	if !revoked || again {
		t.Fatalf("RevokeAPIKey = %v then %v, want true then false", revoked, again)
	}
	write(t, s, func(tx store.Tx) error { return tx.RotateSecret(tm, "new", 1000) })
	got, err := s.Team(ctx, tm)
	if err != nil || got.WebhookSecret != "new" || got.PrevWebhookSecret == nil || *got.PrevWebhookSecret != "secret-a" {
		t.Fatalf("after RotateSecret: %+v, %v", got, err)
	}
	if secrets := got.Secrets(999); !reflect.DeepEqual(secrets, []string{"new", "secret-a"}) {
		t.Fatalf("Secrets during the overlap = %v", secrets)
	}
	// Sessions: a live one is found; once its key is revoked it is not.
	sess := &store.AdminSession{IDHash: []byte("sess"), TeamID: tm, KeyID: "key-2", CreatedAt: 1, ExpiresAt: 100}
	write(t, s, func(tx store.Tx) error {
		if err := tx.InsertAPIKey(&store.APIKey{ID: "key-2", TeamID: tm, Hash: []byte("hash-2"), Prefix: "aq_2", CreatedAt: 6}); err != nil {
			return err
		}
		return tx.InsertAdminSession(sess)
	})
	if a, err := s.AdminSession(ctx, []byte("sess"), 50); err != nil || a.TeamName != "a" || a.KeyPrefix != "aq_2" {
		t.Fatalf("AdminSession = %+v, %v", a, err)
	}
	if _, err := s.AdminSession(ctx, []byte("sess"), 150); !store.IsNotFound(err) {
		t.Fatalf("an expired session: %v", err)
	}
	write(t, s, func(tx store.Tx) error { return tx.DeleteAdminSession([]byte("sess")) })
	if _, err := s.AdminSession(ctx, []byte("sess"), 50); !store.IsNotFound(err) {
		t.Fatalf("a deleted session: %v", err)
	}
}

func testVault(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	tok := &store.VaultToken{ID: "tok_1", TeamID: tm, Name: "stripe", Sealed: []byte("sealed"), CreatedAt: 3}
	write(t, s, func(tx store.Tx) error { return tx.InsertVaultToken(tok) })
	if got, err := s.VaultToken(ctx, tm, "tok_1"); err != nil || !reflect.DeepEqual(got, tok) {
		t.Fatalf("VaultToken = %+v, %v", got, err)
	}
	if _, err := s.VaultToken(ctx, "other-team", "tok_1"); !store.IsNotFound(err) {
		t.Fatalf("another team's token: %v", err)
	}
	var deleted bool
	write(t, s, func(tx store.Tx) error {
		var err error
		deleted, err = tx.DeleteVaultToken(tm, "tok_1", 9)
		return err
	})
	got, err := s.VaultToken(ctx, tm, "tok_1")
	if !deleted || err != nil || got.DeletedAt == nil || len(got.Sealed) != 0 {
		t.Fatalf("after DeleteVaultToken (%v): %+v, %v; want the row kept without its value", deleted, got, err)
	}
	if live, err := s.VaultTokens(ctx, tm); err != nil || len(live) != 0 {
		t.Fatalf("VaultTokens after the delete = %v, %v", live, err)
	}
}

func testFlows(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	f := &store.Flow{TeamID: tm, Key: "api", Parallelism: ptr(3), RatePerSecond: ptr(2.5), UpdatedAt: 1}
	write(t, s, func(tx store.Tx) error { return tx.PutFlow(f) })
	write(t, s, func(tx store.Tx) error {
		if err := tx.PauseFlowUntil(tm, "api", 500, 2); err != nil {
			return err
		}
		return tx.PauseFlowUntil(tm, "api", 400, 3) // earlier: the later pause stays
	})
	var got *store.Flow
	write(t, s, func(tx store.Tx) error {
		var err error
		got, err = tx.Flow(tm, "api")
		return err
	})
	if *got.Parallelism != 3 || *got.RatePerSecond != 2.5 || got.PausedUntil == nil || *got.PausedUntil != 500 {
		t.Fatalf("Flow = %+v", got)
	}
	write(t, s, func(tx store.Tx) error { return tx.PauseFlowUntil(tm, "new", 700, 4) })
	all, err := s.Flows(ctx)
	if err != nil || len(all) != 2 || all[1].Key != "new" || all[1].Parallelism != nil {
		t.Fatalf("Flows = %+v, %v", all, err)
	}
}

func testSchedules(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	sc := &store.Schedule{ID: "sch_1", TeamID: tm, Every: ptr("1m"), Timezone: "UTC",
		Task: `{"targetUrl":"https://example.com"}`, NextRunAt: ptr[int64](600), CreatedAt: 1, UpdatedAt: 1}
	write(t, s, func(tx store.Tx) error { return tx.InsertSchedule(sc) })
	if got, err := s.Schedule(ctx, "sch_1"); err != nil || !reflect.DeepEqual(got, sc) {
		t.Fatalf("Schedule = %+v, %v", got, err)
	}
	if due, err := s.SchedulesDueBefore(ctx, 0, 1000); err != nil || !reflect.DeepEqual(due, []store.Timer{{ID: "sch_1", DueAt: 600}}) {
		t.Fatalf("SchedulesDueBefore = %v, %v", due, err)
	}
	write(t, s, func(tx store.Tx) error {
		got, err := tx.Schedule("sch_1")
		if err != nil {
			return err
		}
		got.Paused, got.NextRunAt = true, nil
		return tx.UpdateSchedule(got)
	})
	if due, err := s.SchedulesDueBefore(ctx, 0, 1000); err != nil || len(due) != 0 {
		t.Fatalf("a paused schedule is due: %v, %v", due, err)
	}
	page, total, err := s.Schedules(ctx, tm, 10, 0)
	if err != nil || total != 1 || len(page) != 1 || !page[0].Paused {
		t.Fatalf("Schedules = %+v, %d, %v", page, total, err)
	}
	write(t, s, func(tx store.Tx) error { return tx.DeleteSchedule("sch_1") })
	if err := s.Write(ctx, func(tx store.Tx) error { return tx.UpdateSchedule(sc) }); !errors.Is(err, store.ErrStale) {
		t.Fatalf("UpdateSchedule of a deleted schedule: %v, want ErrStale", err)
	}
}

func testEventsAndAttempts(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	task := newTask(tm, "00000000-0000-7000-8000-000000000001", store.StatusWaiting)
	insert(t, s, task)
	long := strings.Repeat("x", 100)
	write(t, s, func(tx store.Tx) error {
		for i, kind := range []string{"signal.buffered", "heartbeat", "signal"} {
			detail := ptr(fmt.Sprintf(`{"i":%d}`, i))
			if kind == "heartbeat" {
				detail = &long
			}
			if err := tx.InsertEvent(task.ID, int64(10+i), kind, detail); err != nil {
				return err
			}
		}
		return tx.InsertAttempt(store.Attempt{TaskID: task.ID, Attempt: 1, StartedAt: 5, DurationMS: 7,
			StatusCode: ptr(503), Error: ptr("HTTP 503"), ResponseBody: ptr("busy")})
	})
	es, err := s.Events(ctx, task.ID, 2)
	if err != nil || len(es) != 2 || es[0].Kind != "heartbeat" || es[1].Kind != "signal" {
		t.Fatalf("Events(limit 2) = %+v, %v; want the newest two, oldest first", es, err)
	}
	es, err = s.EventsBounded(ctx, task.ID, 10, 50)
	if err != nil || len(es) != 3 || es[1].Detail != nil || !es[1].DetailOmitted || es[2].Detail == nil || es[2].DetailOmitted {
		t.Fatalf("EventsBounded = %+v, %v; want the long detail left out", es, err)
	}
	as, err := s.Attempts(ctx, task.ID)
	if err != nil || len(as) != 1 || *as[0].StatusCode != 503 || *as[0].ResponseBody != "busy" {
		t.Fatalf("Attempts = %+v, %v", as, err)
	}
}

func testPingAndBackup(t *testing.T, s store.Store) {
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	tm := team(t, s, "a")
	insert(t, s, newTask(tm, "00000000-0000-7000-8000-000000000001", store.StatusPending),
		newTask(tm, "00000000-0000-7000-8000-000000000002", store.StatusPending))
	n, err := s.Backup(ctx, filepath.Join(t.TempDir(), "copy.db"))
	if err != nil || n != 2 {
		t.Fatalf("Backup = %d tasks, %v; want 2", n, err)
	}
}

// testPingNoBackup checks a backend that leaves backups to another tool: Backup fails
// with an error, and the store still answers.
func testPingNoBackup(t *testing.T, s store.Store) {
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if n, err := s.Backup(ctx, filepath.Join(t.TempDir(), "copy.db")); err == nil {
		t.Fatalf("Backup = %d tasks, no error; want an error saying how to back up", n)
	}
	tm := team(t, s, "a")
	insert(t, s, newTask(tm, "00000000-0000-7000-8000-000000000001", store.StatusPending))
	get(t, s, "00000000-0000-7000-8000-000000000001")
}

// testFull fills a small store until a write fails: it must fail with ErrFull, keep
// nothing of the failed write, and leave the store usable for reads.
func testFull(t *testing.T, s store.Store) {
	tm := team(t, s, "a")
	body := strings.Repeat("x", 64<<10)
	var err error
	var i int
	for i = 0; i < 200 && err == nil; i++ {
		task := newTask(tm, fmt.Sprintf("00000000-0000-7000-8000-%012d", i), store.StatusPending)
		task.Body = &body
		err = s.Write(ctx, func(tx store.Tx) error { return tx.InsertTask(task) })
	}
	if !errors.Is(err, store.ErrFull) {
		t.Fatalf("after %d large tasks the write failed with %v, want ErrFull", i, err)
	}
	if _, err := s.Task(ctx, fmt.Sprintf("00000000-0000-7000-8000-%012d", i-1)); !store.IsNotFound(err) {
		t.Fatalf("the failed write's task: %v, want not found", err)
	}
	counts, err := s.StatusCounts(ctx, tm)
	if err != nil || counts[store.StatusPending] != int64(i-1) {
		t.Fatalf("counts after a full database: %v, %v; want %d pending", counts, err, i-1)
	}
}

// testAdminPages checks the admin page's reads: keyset pages, filters, search, the
// overview's figures, and a list page that leaves out large columns.
func testAdminPages(t *testing.T, s store.Store) {
	tm, other := team(t, s, "a"), team(t, s, "b")
	id := func(i int) string { return fmt.Sprintf("00000000-0000-7000-8000-%012d", i) }
	statuses := []string{"", store.StatusPending, store.StatusWaiting, store.StatusFailed, store.StatusCompleted, store.StatusWaiting}
	var tasks []*store.Task
	for i := 1; i <= 5; i++ {
		task := newTask(tm, id(i), statuses[i])
		task.CreatedAt = int64(i) * 60_000
		tasks = append(tasks, task)
	}
	tasks[1].ExpiresAt, tasks[4].ExpiresAt = ptr[int64](500), ptr[int64](300)
	tasks[2].Error, tasks[2].CompletedAt = ptr("Boom: the target said no"), ptr[int64](120_000)
	tasks[3].CompletedAt = ptr[int64](125_000)
	tasks[0].Body = ptr(strings.Repeat("b", 100))
	tasks = append(tasks, newTask(other, id(6), store.StatusPending))
	insert(t, s, tasks...)

	ids := func(rows []store.TaskRow) []string {
		var out []string
		for _, r := range rows {
			out = append(out, r.ID)
		}
		return out
	}
	for _, c := range []struct {
		name string
		f    store.PageFilter
		want []string
		more bool
	}{
		{"first page", store.PageFilter{Limit: 2}, []string{id(5), id(4)}, true},
		{"older page", store.PageFilter{Limit: 2, Before: id(4)}, []string{id(3), id(2)}, true},
		{"newer page", store.PageFilter{Limit: 2, After: id(2)}, []string{id(4), id(3)}, true},
		{"last page", store.PageFilter{Limit: 2, Before: id(2)}, []string{id(1)}, false},
		{"status", store.PageFilter{Limit: 5, Status: store.StatusWaiting}, []string{id(5), id(2)}, false},
		{"statuses", store.PageFilter{Limit: 5, Statuses: []string{store.StatusFailed, store.StatusCompleted}}, []string{id(4), id(3)}, false},
		{"search", store.PageFilter{Limit: 5, Search: "BOOM"}, []string{id(3)}, false},
		{"search by id", store.PageFilter{Limit: 5, Search: id(2), SearchIsID: true}, []string{id(2)}, false},
		{"search of a literal wildcard", store.PageFilter{Limit: 5, Search: "%"}, nil, false},
	} {
		c.f.TeamID = tm
		p, err := s.TaskPage(ctx, c.f)
		if err != nil || !reflect.DeepEqual(ids(p.Rows), c.want) || p.More != c.more {
			t.Errorf("TaskPage(%s) = %v (more %v), %v; want %v (more %v)", c.name, ids(p.Rows), p.More, err, c.want, c.more)
		}
	}
	if got, err := s.NewestTaskID(ctx, tm); err != nil || got != id(5) {
		t.Errorf("NewestTaskID = %q, %v", got, err)
	}
	if got, err := s.TeamTaskIDs(ctx, tm, []string{id(1), id(6), "missing"}); err != nil || !reflect.DeepEqual(got, []string{id(1)}) {
		t.Errorf("TeamTaskIDs = %v, %v; want only the team's own", got, err)
	}
	pm, err := s.PerMinute(ctx, tm, 0)
	if err != nil || pm[1] == nil || pm[1].Created != 1 || pm[2] == nil || pm[2].Created != 1 || pm[2].Failed != 1 || pm[2].Completed != 1 {
		t.Errorf("PerMinute = %v, %v", pm, err)
	}
	if got, err := s.OldestPending(ctx, tm); err != nil || got == nil || got.ID != id(1) {
		t.Errorf("OldestPending = %+v, %v", got, err)
	}
	if got, err := s.ExpiringSoonest(ctx, tm, 1); err != nil || len(got) != 1 || got[0].ID != id(5) {
		t.Errorf("ExpiringSoonest = %+v, %v", got, err)
	}
	if got, err := s.OldestPending(ctx, "nobody"); err != nil || got != nil {
		t.Errorf("OldestPending of a team without tasks = %+v, %v", got, err)
	}
	page, total, err := s.List(ctx, store.ListFilter{TeamID: tm, Limit: 2, Offset: 3, MaxField: 50})
	if err != nil || total != 5 || len(page) != 2 || page[1].ID != id(1) || page[1].Body != nil || page[1].Omitted != "body" ||
		page[0].Body == nil || page[0].Omitted != "" {
		t.Errorf("List with MaxField = %+v, %d, %v; want the long body of task 1 left out", page, total, err)
	}
	page, total, err = s.List(ctx, store.ListFilter{TeamID: tm, Limit: 10, TargetHost: "EXAMPLE.com", CreatedAfter: 120_000})
	if err != nil || total != 3 || len(page) != 3 {
		t.Errorf("List by host and creation = %d tasks, total %d, %v; want 3", len(page), total, err)
	}
}
