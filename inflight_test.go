package main

import (
	"testing"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// The holds that keep a claimless call and a cancel apart, step by step.
func TestInflightHolds(t *testing.T) {
	var f inflight
	delayed := &store.Task{ID: "a", Status: store.StatusDelayed, Attempts: 2}

	// A cancel between a timer's read and its confirm wins; the timer then leaves the task
	// to the writer while the cancel is under way.
	if ok, _ := f.tryCall("a"); !ok {
		t.Fatal("tryCall on a free task failed")
	}
	if !f.holdCancel("a") {
		t.Fatal("a cancel during the timer's read was refused")
	}
	if f.confirm("a", 100) {
		t.Fatal("confirm succeeded after a cancel came")
	}
	if ok, cancelling := f.tryCall("a"); ok || !cancelling {
		t.Fatalf("tryCall during a cancel = %v, %v; want refused, cancelling", ok, cancelling)
	}
	f.releaseCancel("a")
	if len(f.m) != 0 {
		t.Fatalf("holds left after the cancel: %v", f.m)
	}

	// Once the call is confirmed a cancel is refused, a second timer is turned away, and the
	// task shows as processing until the call ends.
	if ok, _ := f.tryCall("a"); !ok || !f.confirm("a", 100) {
		t.Fatal("a timer could not take a free task")
	}
	if f.holdCancel("a") {
		t.Fatal("a cancel during the call was let through")
	}
	if ok, cancelling := f.tryCall("a"); ok || cancelling {
		t.Fatalf("second timer during the call = %v, %v; want refused, not cancelling", ok, cancelling)
	}
	v := f.view(delayed)
	if v.Status != store.StatusProcessing || v.Attempts != 3 || v.StartedAt == nil || *v.StartedAt != 100 || v.DueAt != nil {
		t.Errorf("view during the call = %+v; want processing, attempt 3, started 100, no timer", v)
	}
	if delayed.Status != store.StatusDelayed {
		t.Error("view changed the task it was given")
	}
	if w := f.view(&store.Task{ID: "a", Status: store.StatusCompleted}); w.Status != store.StatusCompleted {
		t.Errorf("view of a written outcome = %s; want it as on disk", w.Status)
	}
	f.endCall("a")
	if v := f.view(delayed); v.Status != store.StatusDelayed {
		t.Errorf("view after the call = %s; want delayed", v.Status)
	}
	if len(f.m) != 0 {
		t.Fatalf("holds left after the call: %v", f.m)
	}

	// A read that finds nothing to call lets go.
	f.tryCall("b")
	f.endCall("b")
	if ok, _ := f.tryCall("b"); !ok {
		t.Error("tryCall after endCall failed")
	}
}

// upcoming keeps a copy of what it was given, hands each out once, leaves out large tasks
// and keeps its byte count right.
func TestUpcoming(t *testing.T) {
	var u upcoming
	due := int64(1000)
	body := "small"
	a := &store.Task{ID: "a", Status: store.StatusDelayed, DueAt: &due, Body: &body}
	u.put(a)
	due = 2000 // the caller's later changes do not reach the copy
	got := u.take("a")
	if got == nil || *got.DueAt != 1000 || got == a {
		t.Fatalf("take = %+v; want a copy due at 1000", got)
	}
	if u.take("a") != nil {
		t.Error("a task was handed out twice")
	}
	big := string(make([]byte, upcomingTaskMax))
	u.put(&store.Task{ID: "big", Status: store.StatusDelayed, DueAt: &due, Body: &big})
	if u.take("big") != nil {
		t.Error("a task over upcomingTaskMax was kept")
	}
	u.put(a)
	u.put(a) // again: replaces, not double-counts
	u.drop("a")
	if u.bytes != 0 || len(u.m) != 0 {
		t.Errorf("after drop: %d bytes, %d tasks; want none", u.bytes, len(u.m))
	}
}
