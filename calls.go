package main

// Calls: the claim loop, a call from its slot to its outcome's write, and its metrics.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/signing"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// claimBatchMax caps how many pending tasks one claim write takes.
const claimBatchMax = 256

// busyRetry is when a claim that found its task's row locked by another node looks again
// (its timer then reads the task: still pending, it is queued again).
const busyRetry = 50 * time.Millisecond

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
		ids := make([]string, len(items))
		slots := make(map[string]flowRef, len(items))
		for i, it := range items {
			ids[i] = it.id
			slots[it.id] = it.flow
		}
		var got []*store.Task
		var busy []string // due, but another node holds the row: look again soon
		a.store.WriteAsync(func(tx store.Tx) (err error) {
			// Those no longer pending (cancelled, claimed elsewhere) are left out.
			got, busy, err = tx.ClaimTasks(ids, store.NowMS())
			return err
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
			d.startClaimed(slots, got, busy)
		})
	}
}

// startClaimed starts the calls of the tasks a claim took, gives back the slot of every
// other task that held one (slots: task id → its flow), and looks again soon at those
// another node held (busy).
func (d *dispatcher) startClaimed(slots map[string]flowRef, claimed []*store.Task, busy []string) {
	for _, id := range busy {
		d.a.sched.timers.PushIfAbsent(id, time.Now().Add(busyRetry))
	}
	for _, t := range claimed {
		f := slots[t.ID]
		delete(slots, t.ID)
		d.launch(t, nil, f)
	}
	for _, f := range slots {
		d.a.sched.done(f)
	}
}

// runClaimed calls the target of a task that is processing, gives the slot of its flow f
// back and records the outcome.
func (d *dispatcher) runClaimed(t, onDisk *store.Task, f flowRef) {
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
	var body []byte
	if t.Body != nil && t.Method != http.MethodGet {
		body = []byte(d.a.withCallbackURL(t, *t.Body))
	}
	req, err := http.NewRequestWithContext(d.callCtx, t.Method, d.a.withCallbackURL(t, t.TargetURL), bytes.NewReader(body))
	if err != nil {
		return nil, &permanentError{"Invalid target URL: " + err.Error()}
	}
	stored, err := t.HeaderMap()
	if err != nil {
		return nil, &permanentError{"Stored headers are unreadable: " + err.Error()}
	}
	hdrs, err := d.a.resolveHeaders(d.callCtx, t.TeamID, stored)
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
	return d.a.out.Do(req, time.Duration(t.TimeoutMS)*time.Millisecond)
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
	d.writeOutcome(t.ID, func(tx store.Tx) error {
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
