package main

import (
	"sync"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// Outcome writes during a burst of timers.
//
// When many timers fall due together (2,000 tasks created in one go with the same delay),
// every call's outcome write competes with the next due calls for the same cores, and on
// SQLite the single writer's CPU is CPU those calls wait for: they go out late, and a
// late burst makes the transport open connections it would not need otherwise. So while
// further timers keep falling due (the next within burstGap), the outcome writes of
// finished calls wait in memory, for at most holdMax and up to holdCap of them, and go to
// the writer together when the burst is over. The calls go out on time; their outcomes
// are durable that much later. A crash in between leaves such a task as it was before its
// call, and it is called again after the restart: the same at-least-once as a crash during
// the call. A clean shutdown writes them (holdLoop, once the calls have ended). On a shared
// store (PostgreSQL) the writes cost the database's CPU, not this process's, and are never
// held.
const (
	burstGap = 5 * time.Millisecond
	holdMax  = 250 * time.Millisecond
	holdCap  = 10000
)

// holding reports whether an outcome write that comes at now waits, given the earliest
// queued timer (next, if any), since when the oldest held write waits and how many do.
func holding(now, next time.Time, hasNext bool, since time.Time, held int) bool {
	if held >= holdCap || (held > 0 && now.Sub(since) >= holdMax) {
		return false
	}
	return hasNext && next.Sub(now) < burstGap
}

type heldWrite struct {
	taskID string
	fn     func(store.Tx) error
}

// outcomeHold is the writes held back during a burst.
type outcomeHold struct {
	mu    sync.Mutex
	held  []heldWrite
	since time.Time
	kick  chan struct{} // buffer 1: the first held write wakes holdLoop
}

func newOutcomeHold() *outcomeHold { return &outcomeHold{kick: make(chan struct{}, 1)} }

// add holds w if a burst is under way and reports whether it did. When the hold is over
// (too long, too many, or no more timers due), it returns false and hands back what was
// held, to be written now with w.
func (h *outcomeHold) add(w heldWrite, now, next time.Time, hasNext bool) (bool, []heldWrite) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !holding(now, next, hasNext, h.since, len(h.held)) {
		return false, h.takeLocked()
	}
	if len(h.held) == 0 {
		h.since = now
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
	h.held = append(h.held, w)
	return true, nil
}

// release reports whether the hold is over at now, and hands back what was held then.
func (h *outcomeHold) release(now, next time.Time, hasNext bool) (bool, []heldWrite) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.held) > 0 && holding(now, next, hasNext, h.since, len(h.held)) {
		return false, nil
	}
	return true, h.takeLocked()
}

// takeAll ends the hold whatever the timers, and hands back what was held.
func (h *outcomeHold) takeAll() []heldWrite {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.takeLocked()
}

func (h *outcomeHold) takeLocked() []heldWrite {
	out := h.held
	h.held = nil
	return out
}

// writeOutcome queues the write of a call's outcome, or holds it during a burst of timers.
func (d *dispatcher) writeOutcome(taskID string, fn func(store.Tx) error) {
	w := heldWrite{taskID, fn}
	if d.a.shared == nil {
		next, ok := d.a.sched.timers.Next()
		held, out := d.hold.add(w, time.Now(), next, ok)
		if held {
			return
		}
		d.writeHeld(out)
	}
	d.writeRetrying(taskID, fn)
}

func (d *dispatcher) writeHeld(ws []heldWrite) {
	for _, w := range ws {
		d.writeRetrying(w.taskID, w.fn)
	}
}

// holdLoop writes the held outcomes once their burst is over, checking every burstGap while
// some are held; when the dispatcher stops (after the calls have ended) it writes what is left.
func (d *dispatcher) holdLoop() {
	var tick *time.Ticker
	var ticks <-chan time.Time // nil while nothing is held
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		select {
		case <-d.runCtx.Done():
			d.writeHeld(d.hold.takeAll())
			return
		case <-d.hold.kick:
			if tick == nil {
				tick = time.NewTicker(burstGap)
				ticks = tick.C
			}
		case <-ticks:
			next, ok := d.a.sched.timers.Next()
			if over, out := d.hold.release(time.Now(), next, ok); over {
				d.writeHeld(out)
				tick.Stop()
				tick, ticks = nil, nil
			}
		}
	}
}
