package main

import (
	"testing"
	"time"
)

func TestHolding(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	ms := time.Millisecond
	cases := []struct {
		name    string
		next    time.Duration // from now
		hasNext bool
		waited  time.Duration // the oldest held write's wait
		held    int
		want    bool
	}{
		{"no timers", 0, false, 0, 0, false},
		{"next timer far", 50 * ms, true, 0, 0, false},
		{"next timer just outside the gap", burstGap, true, 0, 0, false},
		{"next timer within the gap", burstGap - ms, true, 0, 0, true},
		{"next timer overdue", -3 * ms, true, 0, 0, true},
		{"burst goes on, held a while", ms, true, holdMax - ms, 10, true},
		{"burst goes on, held too long", ms, true, holdMax, 10, false},
		{"burst goes on, too many held", ms, true, 0, holdCap, false},
		{"burst over with writes held", 20 * ms, true, 10 * ms, 10, false},
	}
	for _, c := range cases {
		now := t0.Add(time.Hour)
		got := holding(now, now.Add(c.next), c.hasNext, now.Add(-c.waited), c.held)
		if got != c.want {
			t.Errorf("%s: holding = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestOutcomeHold(t *testing.T) {
	h := newOutcomeHold()
	now := time.Unix(1_800_000_000, 0)
	soon := func() time.Time { return now.Add(time.Millisecond) }

	// No burst: nothing is held.
	if held, out := h.add(heldWrite{taskID: "a"}, now, now.Add(time.Second), true); held || out != nil {
		t.Fatalf("add without a burst: held %v, handed back %d", held, len(out))
	}
	// A burst: writes are held, and the first wakes the loop.
	for _, id := range []string{"b", "c"} {
		if held, _ := h.add(heldWrite{taskID: id}, now, soon(), true); !held {
			t.Fatalf("add %s during a burst: not held", id)
		}
	}
	select {
	case <-h.kick:
	default:
		t.Fatal("the first held write did not wake the loop")
	}
	// Still a burst: release keeps them.
	now = now.Add(10 * time.Millisecond)
	if over, out := h.release(now, soon(), true); over || out != nil {
		t.Fatalf("release during the burst: over %v, %d handed back", over, len(out))
	}
	// Held for holdMax: the next write is not held, and the held ones come back with it.
	now = now.Add(holdMax)
	held, out := h.add(heldWrite{taskID: "d"}, now, soon(), true)
	if held || len(out) != 2 || out[0].taskID != "b" || out[1].taskID != "c" {
		t.Fatalf("add after holdMax: held %v, handed back %v", held, out)
	}
	// A new burst, then it ends: release hands everything back.
	h.add(heldWrite{taskID: "e"}, now, soon(), true)
	now = now.Add(time.Millisecond)
	over, out := h.release(now, now.Add(time.Second), true)
	if !over || len(out) != 1 || out[0].taskID != "e" {
		t.Fatalf("release after the burst: over %v, handed back %v", over, out)
	}
	// Shutdown takes whatever is held, burst or not.
	h.add(heldWrite{taskID: "f"}, now, soon(), true)
	if out := h.takeAll(); len(out) != 1 {
		t.Fatalf("takeAll at shutdown handed back %v", out)
	}
	// Nothing held: release says the hold is over.
	if over, out := h.release(now, soon(), true); !over || out != nil {
		t.Fatalf("release with nothing held: over %v, handed back %v", over, out)
	}
}
