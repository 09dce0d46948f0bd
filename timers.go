package main

// Timers: the loader that keeps the horizon filled from the database, and what happens when
// a timer falls due (a claimless call, or a guarded write).

import (
	"context"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/timerq"
)

// loaderLoop refills the timer queue as the horizon moves, and forgets old idempotency keys.
func (d *dispatcher) loaderLoop() {
	t := time.NewTicker(TimerHorizon / 4)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-d.runCtx.Done():
			return
		case <-t.C:
		}
		if err := d.loadTimers(d.runCtx, false); err != nil && d.runCtx.Err() == nil {
			d.a.log.Error("load timers", "err", err)
		}
		d.a.sched.sweep()
		if i%40 == 0 { // every 10 minutes, in small batches that do not hold the writer long
			before := time.Now().Add(-IdempotencyWindow).UnixMilli()
			for range 100 {
				var n int64
				err := d.a.store.Write(d.runCtx, func(tx store.Tx) (err error) {
					n, err = tx.PruneIdempotency(before, 500)
					return err
				})
				if err != nil || n < 500 {
					break
				}
			}
		}
	}
}

// loadTimers moves the watermark to now+TimerHorizon, then reads the index from the old
// watermark up to the new one. At start-up it reads from the beginning, overdue timers first.
func (d *dispatcher) loadTimers(ctx context.Context, first bool) error {
	a := d.a
	until := time.Now().Add(TimerHorizon).UnixMilli()
	from, ok := a.sched.extendHorizon(until)
	if !ok {
		return nil
	}
	if first {
		from = math.MinInt64 + 1
	}
	return d.loadRange(ctx, from, until)
}

// reloadTimers reads every timer inside the horizon again (another node's changes may have
// been lost); those already queued stay as they are or move to what the database says.
func (d *dispatcher) reloadTimers(ctx context.Context) error {
	return d.loadRange(ctx, math.MinInt64+1, d.a.sched.horizon())
}

// loadRange queues the timers of schedules and tasks due in [from, until).
func (d *dispatcher) loadRange(ctx context.Context, from, until int64) error {
	a := d.a
	if err := a.loadScheduleTimers(ctx, from, until); err != nil { // schedules.go
		return err
	}

	afterDue, afterID := from-1, ""
	for {
		ts, err := a.store.DueBefore(ctx, afterDue, afterID, until, loaderPage)
		if err != nil {
			return err
		}
		for _, t := range ts {
			a.sched.timers.Push(t.ID, time.UnixMilli(t.DueAt))
		}
		if len(ts) < loaderPage {
			return nil
		}
		afterDue, afterID = ts[len(ts)-1].DueAt, ts[len(ts)-1].ID
	}
}

// fire handles timers that fell due. The database decides: a timer whose task has moved on
// (cancelled, signalled, rescheduled) is stale and ignored.
func (d *dispatcher) fire(es []timerq.Entry) {
	a := d.a
	es = d.fireSchedules(es) // schedule runs (schedules.go); the rest are tasks'
	for len(es) > 0 {
		batch := es[:min(len(es), 256)]
		es = es[len(batch):]
		if a.shared == nil {
			batch = d.callFirst(batch)
		} else { // on a shared store every call is claimed in the database first
			batch = d.claimFirst(batch)
		}
		if len(batch) == 0 {
			continue
		}
		err := a.store.Write(d.runCtx, func(tx store.Tx) error {
			now := time.Now()
			for _, e := range batch {
				if err := d.fireOne(tx, e.ID, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && d.runCtx.Err() == nil {
			// Popped from memory but not handled on disk (a full disk, an I/O error): the
			// loader has moved past them, so queue them again, or they would wait for a
			// restart. A timer the task got meanwhile is newer and stays.
			a.log.Error("fire timers; trying again in a second", "err", err, "timers", len(batch))
			retry := time.Now().Add(retryPause)
			for _, e := range batch {
				a.sched.timers.PushIfAbsent(e.ID, retry)
			}
		}
	}
}

// callFirst starts the delayed tasks among es that fell due, those whose flow may start a
// call at once (scheduler.tryStart), without writing a claim first: a call starts at once, and one write records claim and
// outcome together (record). Until then such a task is still delayed on disk, and
// a.inflight makes it behave as processing. A crash mid-call leaves it delayed and overdue,
// so it runs again after the restart: the same at-least-once as a crash after a written
// claim. The tasks are read in one query from the read pool, off the single writer.
//
// It returns the timers it leaves to the writer (fireOne): other statuses (deadlines,
// webhooks, polls), delayed tasks whose flow is at a limit or has others queued (the writer
// makes them pending, and the scheduler queues them), and tasks a cancel holds.
func (d *dispatcher) callFirst(es []timerq.Entry) []timerq.Entry {
	a := d.a
	var rest, held []timerq.Entry
	byID := make(map[string]*store.Task, len(es))
	var unread []string
	for _, e := range es {
		switch ok, cancelling := a.sched.calls.tryCall(e.ID); {
		case ok:
			held = append(held, e)
			if t := a.sched.upcoming.take(e.ID); t != nil {
				byID[e.ID] = t
			} else {
				unread = append(unread, e.ID)
			}
		case cancelling:
			rest = append(rest, e)
		} // otherwise its call is running: nothing to do
	}
	if len(unread) > 0 {
		ts, err := a.store.TasksByID(d.runCtx, unread)
		if err != nil {
			for _, e := range held {
				a.sched.calls.endCall(e.ID)
			}
			return append(rest, held...)
		}
		for _, t := range ts {
			byID[t.ID] = t
		}
	}
	for _, e := range held {
		t := byID[e.ID]
		switch {
		case t == nil: // deleted
			a.sched.calls.endCall(e.ID)
			continue
		case t.Status != store.StatusDelayed:
			a.sched.calls.endCall(e.ID)
			rest = append(rest, e)
			continue
		case t.DueAt == nil || *t.DueAt > store.NowMS(): // stale: its later timer is queued on its own
			a.sched.calls.endCall(e.ID)
			continue
		}
		f := flowOf(t)
		if ok, reason := a.sched.tryStart(f); !ok {
			a.metrics.slotWaits.WithLabelValues(reason).Inc()
			a.sched.calls.endCall(e.ID)
			rest = append(rest, e)
			continue
		}
		now := store.NowMS()
		if !a.sched.calls.confirm(e.ID, now) { // a cancel came
			a.sched.done(f)
			rest = append(rest, e)
			continue
		}
		disk := *t
		claim(t, now)
		d.launch(t, &disk, f)
	}
	return rest
}

// claimFirst is callFirst for a shared store, where a call starts only once its claim is
// written: the delayed tasks among es that fell due and whose flow may start a call at once
// are claimed together in one write (delayed → processing: no pending step, one statement),
// and their calls start. It returns the timers it leaves to fireOne: other statuses, tasks
// it has no copy of (another node's, reloaded ones) and flows at a limit.
func (d *dispatcher) claimFirst(es []timerq.Entry) []timerq.Entry {
	a := d.a
	var rest []timerq.Entry
	slots := make(map[string]flowRef, len(es)) // task id → the flow whose slot it took
	now := store.NowMS()
	for _, e := range es {
		t := a.sched.upcoming.take(e.ID)
		if t == nil || t.Status != store.StatusDelayed || t.DueAt == nil || *t.DueAt > now {
			rest = append(rest, e)
			continue
		}
		f := flowOf(t)
		if ok, reason := a.sched.tryStart(f); !ok {
			a.metrics.slotWaits.WithLabelValues(reason).Inc()
			rest = append(rest, e)
			continue
		}
		slots[e.ID] = f
	}
	if len(slots) == 0 {
		return rest
	}
	ids := slices.Collect(maps.Keys(slots))
	var claimed []*store.Task
	var busy []string
	err := a.store.Write(d.runCtx, func(tx store.Tx) (err error) {
		claimed, busy, err = tx.ClaimTasks(ids, store.NowMS())
		return err
	})
	if err != nil {
		for _, id := range ids {
			a.sched.done(slots[id])
			rest = append(rest, timerq.Entry{ID: id, Due: time.UnixMilli(now)}) // fire handles the failure
		}
		return rest
	}
	// Those not claimed changed meanwhile (their own timer, if any, is queued), or are busy.
	d.startClaimed(slots, claimed, busy)
	return rest
}

func (d *dispatcher) fireOne(tx store.Tx, id string, now time.Time) error {
	a := d.a
	t, err := tx.Task(id)
	if store.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	from := t.Status
	switch timerFired(t, now) {
	case timerStale:
		return nil // the task has no timer now, or a later one that is queued on its own
	case timerQueued:
		tx.AfterCommit(func() { a.sched.push(t.ID, flowOf(t), t.Priority, valueOr(t.DueAt)) })
		return nil
	case timerLeaseEnded:
		tx.AfterCommit(func() {
			a.log.Warn("the node running a call is gone (its claim's lease ended); the task runs again",
				"task", t.ID, "attempt", t.Attempts)
		})
	case timerPoll:
		tx.AfterCommit(func() {
			d.spawn(func() { d.poll(t) })
		})
	case timerWebhook:
		completedAt := t.CompletedAt
		tx.AfterCommit(func() {
			d.spawn(func() { d.deliverWebhook(t, completedAt) })
		})
	}
	if err := tx.UpdateTask(t, from); err != nil {
		return err
	}
	tx.AfterCommit(func() { a.scheduled(t) })
	return nil
}
