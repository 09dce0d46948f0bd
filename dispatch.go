package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/signing"
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

	workers sync.WaitGroup // calls, the claim loop, timer batches, polls and webhook deliveries
	loops   sync.WaitGroup

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
	go func() {
		defer d.workers.Done()
		f()
	}()
	return true
}

// orphan is a claimed task whose call was never started.
type orphan struct{ t, onDisk *store.Task }

// launch starts the call of a task that holds a slot of its flow (scheduler.next or
// tryStart) and is claimed. onDisk is nil, or, for a call started before its claim is
// written (callFirst), the task as it still is on disk.
func (d *dispatcher) launch(t, onDisk *store.Task) {
	if !d.spawn(func() { d.runClaimed(t, onDisk) }) {
		d.a.sched.done(flowOf(t))
		d.spawnMu.Lock()
		d.orphans = append(d.orphans, orphan{t, onDisk})
		d.spawnMu.Unlock()
	}
}

func (a *App) newDispatcher() *dispatcher {
	d := &dispatcher{a: a}
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
		a.log.Warn("callbacks interrupted by the last shutdown will run again", "tasks", recovered)
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
		batch = d.callFirst(batch)
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
		d.launch(t, &disk)
	}
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

// claimBatchMax caps how many pending tasks one claim write takes.
const claimBatchMax = 256

// claimLoop claims the pending tasks the scheduler lets start, as many per write as it
// gives, and starts their calls once the claim is durable. It does not wait for one claim
// to commit before taking the next slots that come free.
func (d *dispatcher) claimLoop() {
	a := d.a
	for {
		items, ok := a.sched.next(d.claimCtx, claimBatchMax)
		if !ok {
			return
		}
		var got []*store.Task
		a.store.WriteAsync(func(tx store.Tx) error {
			got = got[:0]
			now := store.NowMS()
			for _, it := range items {
				t, err := tx.ClaimTask(it.id, now)
				if store.IsNotFound(err) {
					continue // cancelled, or no longer pending
				} else if err != nil {
					return err
				}
				got = append(got, t)
			}
			return nil
		}, func(err error) {
			if err != nil {
				got = nil
				if d.runCtx.Err() == nil {
					a.log.Error("claim tasks", "err", err, "tasks", len(items))
					// Still pending on disk; offer them again once the database recovers.
					d.retryLater(d.claimCtx, func() {
						for _, it := range items {
							a.sched.push(it.id, it.flow, it.priority, it.due)
						}
					})
				}
			}
			claimed := make(map[string]bool, len(got))
			for _, t := range got {
				claimed[t.ID] = true
				d.launch(t, nil)
			}
			for _, it := range items {
				if !claimed[it.id] {
					a.sched.done(it.flow)
				}
			}
		})
	}
}

// runClaimed calls the target of a task that is processing, gives its flow's slot back and
// records the outcome.
func (d *dispatcher) runClaimed(t, onDisk *store.Task) {
	f := flowOf(t)
	released := false
	release := func() {
		if !released {
			released = true
			d.a.sched.done(f)
		}
	}
	defer release()
	if err := d.runCall(t, onDisk, f, release); err != nil && d.runCtx.Err() == nil {
		d.a.log.Error("run task", "task", t.ID, "err", err)
	}
}

func (d *dispatcher) runCall(t, onDisk *store.Task, f flowRef, release func()) error {
	a := d.a
	team, err := a.team(d.runCtx, t.TeamID)
	if err != nil {
		if onDisk != nil && d.runCtx.Err() == nil {
			// Nothing was called or written: let the task go and try again shortly.
			a.sched.calls.endCall(t.ID)
			a.sched.timers.Push(t.ID, time.Now().Add(retryPause))
		}
		return err
	}
	secrets := team.Secrets(store.NowMS())

	started := time.Now()
	var longCall *time.Timer
	var claimWritten chan bool
	if onDisk != nil {
		// A call started without a written claim gets one if it runs long, so that lists
		// and counts, which read the database, show it processing too.
		claimWritten = make(chan bool, 1)
		longCall = time.AfterFunc(claimLongCall, func() { claimWritten <- d.writeClaim(t, onDisk) })
	}
	res, callErr := d.call(t, secrets)
	if longCall != nil && !longCall.Stop() && <-claimWritten {
		onDisk = nil
	}
	if callErr != nil && d.callCtx.Err() != nil {
		return d.interrupted(t, onDisk)
	}
	// A target that asks to be left alone (429 or 503 with Retry-After) pauses its flow
	// before the slot is given back, so the flow's next task does not take it.
	wait := retryAfter(res, time.Now())
	if wait > 0 {
		a.sched.pauseUntil(f, time.Now().Add(wait))
	}
	release()
	// The call does not wait for the outcome's commit: the write joins a group commit.
	d.record(t, onDisk, f, started, res, callErr, wait)
	return nil
}

// call makes the task's HTTP request.
func (d *dispatcher) call(t *store.Task, secrets []string) (*outbound.Response, error) {
	ctx, cancel := context.WithTimeout(d.callCtx, time.Duration(t.TimeoutMS)*time.Millisecond)
	defer cancel()
	var body []byte
	if t.Body != nil && t.Method != http.MethodGet {
		body = []byte(d.a.withCallbackURL(t, *t.Body))
	}
	req, err := http.NewRequestWithContext(ctx, t.Method, d.a.withCallbackURL(t, t.TargetURL), bytes.NewReader(body))
	if err != nil {
		return nil, &permanentError{"Invalid target URL: " + err.Error()}
	}
	stored, err := t.HeaderMap()
	if err != nil {
		return nil, &permanentError{"Stored headers are unreadable: " + err.Error()}
	}
	hdrs, err := d.a.resolveHeaders(ctx, t.TeamID, stored)
	if err != nil {
		return nil, err
	}
	for k, v := range hdrs {
		req.Header.Set(k, v)
	}
	if len(body) > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-AsyncQueue-Task-Id", t.ID)
	req.Header.Set("X-AsyncQueue-Retry-Count", strconv.Itoa(t.RetryCount))
	signing.Headers(req.Header, secrets, t.ID, time.Now(), body)
	return d.a.out.Do(req)
}

// claimLongCall is how long a call started without a written claim runs before its claim
// is written after all.
const claimLongCall = time.Second

// writeClaim writes the claim of a task whose call started without one; false if it could
// not (the outcome's write then starts from the task as on disk).
func (d *dispatcher) writeClaim(t, onDisk *store.Task) bool {
	claimed := *t
	err := d.a.store.Write(context.Background(), func(tx store.Tx) error {
		return tx.UpdateTaskFrom(onDisk, &claimed)
	})
	if err != nil && d.runCtx.Err() == nil {
		d.a.log.Warn("write the claim of a long call", "task", t.ID, "err", err)
	}
	return err == nil
}

// interrupted returns a task whose call was cut short by shutdown to pending. One whose
// claim was never written is still delayed and overdue on disk: nothing to write.
func (d *dispatcher) interrupted(t, onDisk *store.Task) error {
	d.a.sched.calls.endCall(t.ID)
	if onDisk != nil {
		return nil
	}
	return d.a.store.Write(context.Background(), func(tx store.Tx) error {
		cur, err := tx.Task(t.ID)
		if err != nil || !unclaim(cur, store.NowMS()) {
			return err
		}
		return tx.UpdateTask(cur, store.StatusProcessing)
	})
}

// callResult is stored as result / startResult.
type callResult struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	Duration   int64             `json:"duration"`
	Truncated  bool              `json:"truncated,omitempty"`
}

func resultJSON(res *outbound.Response) string {
	cr := callResult{StatusCode: res.StatusCode, Headers: map[string]string{}, Body: string(res.Body),
		Duration: res.Duration.Milliseconds(), Truncated: res.Truncated}
	for k, v := range res.Header {
		if len(cr.Headers) >= MaxStoredHeaders {
			break
		}
		cr.Headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	buf := encodeBuffers.Get().(*bytes.Buffer)
	defer putEncodeBuffer(buf)
	json.NewEncoder(buf).Encode(&cr) // numbers, strings and a map of strings: it cannot fail
	return string(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}))
}

// MaxAttemptBody caps the answer kept with a failed attempt.
const MaxAttemptBody = 2 << 10

// failedBody is what a failed attempt keeps of the target's answer: its start, valid UTF-8.
func failedBody(b []byte) *string {
	if len(b) == 0 {
		return nil
	}
	if len(b) > MaxAttemptBody {
		b = b[:MaxAttemptBody]
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return &s
}

// record queues the write that stores an attempt and moves the task on (judgeCall,
// afterCall). The write is retried while the database refuses it, so the task does not
// stay processing until a restart.
func (d *dispatcher) record(t, onDisk *store.Task, f flowRef, started time.Time, res *outbound.Response, callErr error, wait time.Duration) {
	a := d.a
	dur := time.Since(started)
	v := judgeCall(res, callErr, time.Duration(t.TimeoutMS)*time.Millisecond, wait)
	errMsg := v.err
	a.sched.noteError(f, errMsg)
	a.observeCall(t, res, callErr, errMsg, dur)
	orig := *t    // as claimed
	disk := &orig // as on disk
	if onDisk != nil {
		disk = onDisk
	}
	d.writeRetrying(t.ID, func(tx store.Tx) error {
		at := store.Attempt{TaskID: t.ID, Attempt: t.Attempts, StartedAt: started.UnixMilli(), DurationMS: dur.Milliseconds()}
		if res != nil {
			at.StatusCode = &res.StatusCode
		}
		if errMsg != "" {
			at.Error = &errMsg
			if res != nil {
				at.ResponseBody = failedBody(res.Body)
			}
		}
		if err := tx.InsertAttempt(at); err != nil {
			return err
		}
		now := time.Now()
		if wait > 0 {
			if err := tx.PauseFlowUntil(f.team, f.key, now.Add(wait).UnixMilli(), now.UnixMilli()); err != nil {
				return err
			}
		}
		t := orig
		t.BufferedSignal = nil
		afterCall(&t, res, v, wait, now)
		// Only an early signal can change a task while its call is in flight. Usually none
		// came: one guarded update. Otherwise read it and decide again.
		err := tx.UpdateTaskNoSignal(disk, &t)
		if errors.Is(err, store.ErrStale) {
			if t.BufferedSignal, err = tx.BufferedSignal(orig.ID); err != nil {
				return err
			}
			t2 := orig
			t2.BufferedSignal = t.BufferedSignal
			afterCall(&t2, res, v, wait, now)
			t = t2
			err = tx.UpdateTask(&t, disk.Status)
		}
		if err != nil {
			return err
		}
		tx.AfterCommit(func() {
			a.scheduled(&t)
			a.sched.calls.endCall(t.ID)
		})
		return nil
	})
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

// observeCall counts and logs one call of a task's target.
func (a *App) observeCall(t *store.Task, res *outbound.Response, callErr error, errMsg string, dur time.Duration) {
	status, class := 0, ""
	switch {
	case res != nil:
		status = res.StatusCode
	default:
		class = callClass(callErr)
	}
	a.metrics.callback(status, class, dur)
	if a.log.Enabled(context.Background(), slog.LevelDebug) {
		a.log.Debug("callback", "task", t.ID, "team", t.TeamID, "attempt", t.Attempts, "status", status,
			"duration", dur.Round(time.Microsecond), "err", errMsg)
	}
}

// callClass is the metric label of a call that ended without an answer, by the type of its
// error, in the order outbound.DescribeError reads them.
func callClass(err error) string {
	if _, ok := errors.AsType[*permanentError](err); ok {
		return "error" // a deleted vault token, an invalid URL: nothing was sent
	}
	switch {
	case outbound.IsBlocked(err):
		return "blocked"
	case outbound.IsTimeout(err):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "error"
	}
	return "network"
}

// deliverWebhook POSTs the task's terminal event to onCompleteUrl and records the outcome.
func (d *dispatcher) deliverWebhook(t *store.Task, completedAt *int64) {
	a := d.a
	event := "task." + t.Status
	payload, _ := json.Marshal(map[string]any{"event": event, "task": a.taskJSON(t)})
	team, err := a.team(d.runCtx, t.TeamID)
	if err != nil {
		a.log.Error("webhook: load team", "task", t.ID, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(d.callCtx, WebhookTimeout)
	defer cancel()
	var res *outbound.Response
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, *t.OnCompleteURL, bytes.NewReader(payload))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-AsyncQueue-Task-Id", t.ID)
		req.Header.Set("X-AsyncQueue-Event", event)
		id := fmt.Sprintf("%s:%s:%d", t.ID, event, valueOr(completedAt))
		signing.Headers(req.Header, team.Secrets(store.NowMS()), id, time.Now(), payload)
		res, err = a.out.Do(req)
	}
	if err != nil && d.callCtx.Err() != nil {
		return // shutting down: the lease makes the timer fire again after restart
	}
	errMsg, permanent := judgeWebhook(res, err)
	outcome := "" // for the metric, counted once the write is durable
	werr := a.store.Write(context.Background(), func(tx store.Tx) error {
		outcome = ""
		cur, err := tx.Task(t.ID)
		if err != nil {
			return err
		}
		var damaged error
		if outcome, damaged = afterWebhook(cur, completedAt, errMsg, permanent, time.Now()); outcome == "" {
			return nil // retried since: this event is moot
		}
		if damaged != nil {
			a.log.Error("webhook delivery state; starting it again", "err", damaged)
		}
		if err := tx.UpdateTask(cur, cur.Status); err != nil {
			return err
		}
		tx.AfterCommit(func() { a.scheduled(cur) })
		return nil
	})
	if werr != nil {
		a.log.Error("webhook: record outcome", "task", t.ID, "err", werr)
		return
	}
	if outcome != "" {
		a.metrics.webhooks.WithLabelValues(outcome).Inc()
	}
	if errMsg != "" {
		a.log.Warn("webhook delivery failed", "task", t.ID, "event", event, "err", errMsg)
	} else {
		a.log.Debug("webhook delivered", "task", t.ID, "event", event)
	}
}

func valueOr(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
