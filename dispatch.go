package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/timerq"
)

// Timer and delivery settings.
const (
	// TimerHorizon is how far ahead timers are held in memory; later ones wait in the index.
	TimerHorizon     = time.Minute
	loaderPage       = 5000
	WebhookTimeout   = 10 * time.Second
	WebhookRetries   = 3
	webhookLease     = 30 * time.Second
	MaxStoredHeaders = 50
)

// dispatcher runs the timer loop, the loader that refills it, and the calls the scheduler
// lets start, each on a goroutine of its own.
type dispatcher struct {
	a *App

	runCtx     context.Context // timers, loader: cancelled last
	stopRun    context.CancelFunc
	claimCtx   context.Context // workers stop claiming when it is done
	stopClaim  context.CancelFunc
	callCtx    context.Context // in-flight calls: cancelled only when the drain times out
	cancelCall context.CancelFunc

	hold    *outcomeHold   // outcome writes held during a burst of timers (outcomes.go)
	workers sync.WaitGroup // calls, the claim loop, timer batches, polls and webhook deliveries
	loops   sync.WaitGroup

	idle chan func() // goroutines that finished their work and wait a moment for more

	spawnMu  sync.Mutex
	stopping bool
	orphans  []orphan // claimed, but launched after the drain began
}

// spawn runs f in a goroutine the shutdown drain waits for; once stopping, it runs nothing
// and returns false (what f would do stays due in the database and happens after the restart).
func (d *dispatcher) spawn(f func()) bool {
	d.spawnMu.Lock()
	if d.stopping {
		d.spawnMu.Unlock()
		return false
	}
	d.workers.Add(1)
	d.spawnMu.Unlock()
	select {
	case d.idle <- f:
	default:
		go d.work(f)
	}
	return true
}

// workerIdle is how long a goroutine that finished its work waits for the next. A call
// grows its goroutine's stack several times over (net/http's client is deep); one that
// goes on to the next call keeps its stack instead of growing a fresh one again.
const workerIdle = time.Second

// work runs f, then what spawn hands it, until none comes for workerIdle or the dispatcher
// stops.
func (d *dispatcher) work(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		d.workers.Done()
		idle.Reset(workerIdle) // a tick while f ran is discarded (Go 1.23 timers)
		select {
		case f = <-d.idle:
		case <-idle.C:
			return
		case <-d.runCtx.Done():
			return
		}
	}
}

// orphan is a claimed task whose call was never started.
type orphan struct{ t, onDisk *store.Task }

// launch starts the call of a task that holds a slot of its flow f (scheduler.next or
// tryStart) and is claimed. onDisk is nil, or, for a call started before its claim is
// written (callFirst), the task as it still is on disk.
func (d *dispatcher) launch(t, onDisk *store.Task, f flowRef) {
	if !d.spawn(func() { d.runClaimed(t, onDisk, f) }) {
		d.a.sched.done(f)
		d.spawnMu.Lock()
		d.orphans = append(d.orphans, orphan{t, onDisk})
		d.spawnMu.Unlock()
	}
}

func (a *App) newDispatcher() *dispatcher {
	d := &dispatcher{a: a, hold: newOutcomeHold(), idle: make(chan func())}
	a.disp = d
	d.runCtx, d.stopRun = context.WithCancel(context.Background())
	d.claimCtx, d.stopClaim = context.WithCancel(context.Background())
	d.callCtx, d.cancelCall = context.WithCancel(context.Background())
	return d
}

// start recovers interrupted calls, loads the timers due within the horizon and starts the loops.
func (d *dispatcher) start(ctx context.Context) error {
	a := d.a
	var recovered int64
	err := a.store.Write(ctx, func(tx store.Tx) error {
		var err error
		recovered, err = tx.RecoverProcessing(store.NowMS())
		return err
	})
	if err != nil {
		return err
	}
	if recovered > 0 {
		a.log.Warn("callbacks interrupted by this node's last shutdown will run again", "tasks", recovered)
	}
	if err := a.loadFlows(ctx); err != nil {
		return fmt.Errorf("load flows: %w", err)
	}
	if err := d.loadTimers(ctx, true); err != nil {
		return fmt.Errorf("load timers: %w", err)
	}
	d.loops.Add(2)
	go func() {
		defer d.loops.Done()
		a.sched.timers.Run(d.runCtx, func(es []timerq.Entry) {
			now := time.Now()
			for _, e := range es {
				a.metrics.timerLag.Observe(now.Sub(e.Due).Seconds())
			}
			d.spawn(func() { d.fire(es) })
		})
	}()
	go func() {
		defer d.loops.Done()
		d.loaderLoop()
	}()
	d.loops.Add(1)
	go func() {
		defer d.loops.Done()
		d.pruneLoop(a.cfg.Retention)
	}()
	if a.shared == nil {
		d.loops.Add(1)
		go func() {
			defer d.loops.Done()
			d.holdLoop()
		}()
	} else {
		if err := d.readMembership(ctx); err != nil {
			return fmt.Errorf("read the live nodes: %w", err)
		}
		d.loops.Add(2)
		go func() {
			defer d.loops.Done()
			d.followChanges(d.runCtx)
		}()
		go func() {
			defer d.loops.Done()
			d.membershipLoop(d.runCtx)
		}()
	}
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		d.claimLoop()
	}()
	return nil
}

// stop drains: no new claims, in-flight calls get up to timeout, then they are cancelled
// and their tasks go back to pending.
func (d *dispatcher) stop(timeout time.Duration) {
	d.spawnMu.Lock()
	d.stopping = true
	d.spawnMu.Unlock()
	d.stopClaim()
	d.a.sched.close()
	done := make(chan struct{})
	go func() { d.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		d.a.log.Warn("shutdown timeout: interrupting callbacks still in flight; they return to pending")
		d.cancelCall()
		<-done
	}
	d.spawnMu.Lock()
	orphans := d.orphans
	d.orphans = nil
	d.spawnMu.Unlock()
	for _, o := range orphans {
		if err := d.interrupted(o.t, o.onDisk); err != nil {
			d.a.log.Error("return task to pending", "task", o.t.ID, "err", err)
		}
	}
	d.stopRun()
	d.loops.Wait()
	d.cancelCall()
}

// scheduled hands a committed task to the scheduler (scheduler.committed), and sends its
// completion webhook when the write that ended it leased one. Handlers, timers and the
// store's commit callbacks call it after every committed change of a task.
func (a *App) scheduled(t *store.Task) {
	if a.log.Enabled(context.Background(), slog.LevelDebug) {
		a.log.Debug("task state", "task", t.ID, "team", t.TeamID, "status", t.Status, "attempt", t.Attempts,
			"retries", t.RetryCount)
	}
	if a.sched.committed(t, time.Now()) && a.disp != nil {
		// Sent now, not through a timer fire that would write the lease first; the lease's
		// timer covers a crash.
		completedAt := t.CompletedAt
		a.disp.spawn(func() { a.disp.deliverWebhook(t, completedAt) })
	}
}

// writeRetrying queues a write without waiting for it. While the database refuses it (disk
// full) it is queued again after retryPause; at shutdown it is dropped, for the restart's
// recovery to handle.
func (d *dispatcher) writeRetrying(taskID string, fn func(store.Tx) error) {
	d.a.store.WriteAsync(fn, func(err error) {
		if err == nil || d.callCtx.Err() != nil {
			return
		}
		d.a.log.Error("record callback outcome; retrying", "task", taskID, "err", err)
		d.retryLater(d.callCtx, func() { d.writeRetrying(taskID, fn) })
	})
}

// retryPause is how long work the database refused (a full disk, an I/O error) waits
// before it is tried again: an outcome's write, a claim, a timer's fire or a call whose
// team could not be read.
const retryPause = time.Second

// retryLater runs f after retryPause on a goroutine the shutdown drain waits for; it is
// dropped once ctx is done (the drain's stage that f belongs to), for the restart to pick
// up from the database.
func (d *dispatcher) retryLater(ctx context.Context, f func()) {
	d.spawn(func() {
		t := time.NewTimer(retryPause)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			f()
		}
	})
}

func valueOr(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
