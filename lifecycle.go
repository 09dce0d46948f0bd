package main

// How a task moves (SPEC §3–§6). Every transition of a task's status is a function of the
// task, its inputs and the time, here, in the order a task meets them:
//
//	create ─→ pending / delayed ─(timer)─→ pending ─(claim)─→ processing ─(call)─┐
//	   ┌─────────────────────────────────────────────────────────────────────────┘
//	   ├─ answered, plain task ────────────────────────────→ completed
//	   ├─ answered, wait/signal or callback task ──────────→ waiting ─┬─ signal or callback → completed / failed
//	   │                                                              ├─ deadline, heartbeat → timeout
//	   ├─ answered, polling task ──────────────────────────→ polling ─┼─ poll or callback → completed / failed
//	   │                                                              └─ maxDuration → timeout
//	   ├─ retryable failure, retries left → delayed (backoff) → …
//	   └─ failure, none left (or permanent) ───────────────→ failed
//
// A signal or callback that comes before the call is answered is kept on the task and
// settles it as soon as the call is answered (not if the call finally fails).
// pending, delayed, waiting and polling tasks can be cancelled; failed, timed-out and
// cancelled ones retried. Finishing arms the completion webhook, whose deliveries are
// recorded on the task without changing its status.
//
// Nothing here reads or writes the database, calls out or touches the scheduler: the
// handlers, the dispatcher and the timers load a task, call these and write what they
// report (App.commit), so the rules can be tested on their own (lifecycle_test.go).

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/providers"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// change is what a transition did to a task: the caller writes it guarded on from (when
// write), records the event (when not ""), and hands the task to the scheduler after the
// commit (when reschedule).
type change struct {
	from       string  // the status as read: the write's compare-and-set
	write      bool    // the task changed
	reschedule bool    // its status or timer changed
	event      string  // the task event to record, or ""
	detail     *string // the event's detail (JSON)
}

// moved is a change of status or timer without an event.
func moved(from string) change { return change{from: from, write: true, reschedule: true} }

// Conflict is a transition the task's status does not allow: the API answers 409 with
// Format, naming the status the task shows in place of its %s.
type Conflict struct {
	Format string
	Status string // as read (a claimless call shows processing; see scheduler.view)
}

func (c *Conflict) Error() string { return fmt.Sprintf(c.Format, c.Status) }

// ---- Creation and the call ---------------------------------------------------------

// created gives a new task its first status: pending when it is due (a past delayUntil
// runs now), delayed until due otherwise, its timer rounded up to the millisecond so that
// it never fires early.
func created(t *store.Task, due, now time.Time) {
	if !due.After(now) {
		t.Status = store.StatusPending
		ms := now.UnixMilli()
		t.DueAt = &ms
		return
	}
	t.Status = store.StatusDelayed
	ms := due.Add(time.Millisecond - 1).UnixMilli()
	t.DueAt = &ms
}

// claim takes t for a call, as store.Tx.ClaimTasks does in SQL, for a task handed to a worker
// from memory: written claimed with its insert, or called before its claim is written
// (callFirst, and how scheduler.view shows it meanwhile).
func claim(t *store.Task, nowMS int64) {
	t.Status = store.StatusProcessing
	t.Attempts++
	if t.StartedAt == nil {
		t.StartedAt = &nowMS
	}
	t.DueAt = nil
}

// lease gives a claim made in memory on a shared store (several nodes) its lease: due_at is
// the claim's end, one timeout and store.LeaseSlack after now, as Tx.ClaimTasks writes it.
// If the node dies mid-call, the timer makes another node run the task again.
func lease(t *store.Task, nowMS int64) {
	end := nowMS + t.TimeoutMS + store.LeaseSlack.Milliseconds()
	t.DueAt = &end
}

// unclaim returns a task whose call shutdown cut short to pending, due now and its attempt
// not counted, so that it runs again after the restart. False if it is not processing.
func unclaim(t *store.Task, nowMS int64) bool {
	if t.Status != store.StatusProcessing {
		return false
	}
	t.Status = store.StatusPending
	t.Attempts--
	t.DueAt = &nowMS
	return true
}

// MaxRetryAfter caps how long a target's Retry-After can hold a task and pause its flow.
const MaxRetryAfter = time.Hour

// retryAfter is how long a 429 or 503 answer asks the caller to wait (its Retry-After, in
// seconds or as an HTTP date, capped at MaxRetryAfter); 0 for any other answer.
func retryAfter(res *outbound.Response, now time.Time) time.Duration {
	if res == nil || (res.StatusCode != http.StatusTooManyRequests && res.StatusCode != http.StatusServiceUnavailable) {
		return 0
	}
	v := strings.TrimSpace(res.Header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		d = time.Duration(min(max(n, 0), int64(MaxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// callVerdict is how a call's result counts (SPEC §3.3).
type callVerdict struct {
	answered  bool   // 2xx, 3xx after redirects, 4xx other than 429: the target took it
	permanent bool   // a failure no retry can fix (a deleted vault token, an invalid URL)
	err       string // the attempt's error; "" when answered
}

// judgeCall classifies a call's result: its response, or the error that left none. timeout
// is the task's per-attempt limit, wait the Retry-After the answer asked for.
func judgeCall(res *outbound.Response, callErr error, timeout, wait time.Duration) callVerdict {
	// 429 and 503 are the target asking to be called again later, not an answer.
	v := callVerdict{answered: callErr == nil && res.StatusCode < 500 && res.StatusCode != http.StatusTooManyRequests}
	perm, permanent := errors.AsType[*permanentError](callErr)
	v.permanent = permanent
	switch {
	case permanent:
		v.err = perm.msg
	case callErr != nil:
		v.err = outbound.DescribeError(callErr, timeout)
	case res.StatusCode == http.StatusTooManyRequests:
		v.err = fmt.Sprintf("Target busy: HTTP %d - %s", res.StatusCode, http.StatusText(res.StatusCode))
	case !v.answered:
		v.err = fmt.Sprintf("Server error: HTTP %d - %s", res.StatusCode, http.StatusText(res.StatusCode))
	}
	if wait > 0 {
		v.err += fmt.Sprintf(" (Retry-After: %gs)", wait.Round(time.Second).Seconds())
	}
	return v
}

// afterCall moves a processing task on after its call: answered → completed, waiting or
// polling (or straight to the state a buffered signal asks for); failed → retry after the
// backoff, or failed after the last retry. res is nil when the call failed without an answer.
func afterCall(t *store.Task, res *outbound.Response, v callVerdict, wait time.Duration, now time.Time) {
	switch {
	case v.answered && (t.PollConfig != nil || t.WaitForSignal || t.CallbackNonce != nil):
		// The call started the work; the task goes on waiting or polling, unless a signal
		// or provider callback already came, which settles it now.
		r := resultJSON(res)
		t.StartResult = &r
		t.Error = nil // an earlier attempt's failure is over
		if sig := bufferedSignal(t); sig != nil {
			resolve(t, sig, *t.BufferedSignal, now)
		} else if t.PollConfig != nil {
			startPolling(t, now)
		} else {
			startWaiting(t, now)
		}
	case v.answered:
		r := resultJSON(res)
		t.Result = &r
		t.Error = nil
		finish(t, store.StatusCompleted, now)
	case t.RetryCount < t.MaxRetries && !v.permanent:
		scheduleRetry(t, v.err, wait, now)
	default:
		// A buffered signal stays recorded on the task but is not applied.
		msg := v.err
		t.Error = &msg
		finish(t, store.StatusFailed, now)
	}
}

// bufferedSignal is the signal kept for t while its call ran, or nil. One that cannot be
// read (it is written only by receiveSignal, so never) is left unapplied rather than
// settling the task in some state nobody sent.
func bufferedSignal(t *store.Task) *signalBody {
	if t.BufferedSignal == nil {
		return nil
	}
	var sig signalBody
	if t.DecodeJSON("buffered_signal", t.BufferedSignal, &sig) != nil {
		return nil
	}
	return &sig
}

// Backoff is the wait before retry n (1-based): exponential 1, 2, 4, 8… s; linear 1, 2, 3… s.
func Backoff(kind string, n int) time.Duration {
	if kind == "linear" {
		return time.Duration(n) * time.Second
	}
	return time.Second << min(n-1, 20)
}

// scheduleRetry makes a failed call's task delayed until its next attempt: after the backoff,
// or after the target's Retry-After (wait) when that is longer.
func scheduleRetry(t *store.Task, errMsg string, wait time.Duration, now time.Time) {
	t.RetryCount++
	t.Error = &errMsg
	t.Status = store.StatusDelayed
	due := now.Add(max(Backoff(t.RetryBackoff, t.RetryCount), wait)).UnixMilli()
	t.DueAt = &due
}

// ---- Waiting and polling -------------------------------------------------------------

// startWaiting parks an answered wait/signal task until a signal or its deadline: maxWaitTime,
// or the heartbeat deadline when that comes first.
func startWaiting(t *store.Task, now time.Time) {
	ms := now.UnixMilli()
	exp := ms + t.MaxWaitMS
	t.Status = store.StatusWaiting
	t.WaitingSince = &ms
	t.ExpiresAt = &exp
	t.DueAt = &exp
	if t.HeartbeatTimeoutMS != nil {
		hb := min(exp, ms+*t.HeartbeatTimeoutMS)
		t.DueAt = &hb
	}
}

// startPolling parks an answered polling task until its first poll; maxDuration (one hour
// when neither template nor task says) is its deadline.
func startPolling(t *store.Task, now time.Time) {
	var cfg providers.PollConfig
	if err := t.DecodeJSON("poll_config", t.PollConfig, &cfg); err != nil {
		// Validated at create, so only a damaged row gets here: fail it, rather than poll
		// a zero config in a loop.
		msg := "Polling: " + err.Error()
		t.Error = &msg
		finish(t, store.StatusFailed, now)
		return
	}
	maxDur := DefaultPollMaxDuration
	if cfg.MaxDuration > 0 {
		maxDur = time.Duration(cfg.MaxDuration * float64(time.Second))
	}
	ms := now.UnixMilli()
	exp := now.Add(maxDur).UnixMilli()
	next := min(exp, now.Add(pollInterval(&cfg)).UnixMilli())
	t.Status = store.StatusPolling
	t.WaitingSince = &ms
	t.ExpiresAt = &exp
	t.DueAt = &next
	t.PollCount = 0
}

func pollInterval(cfg *providers.PollConfig) time.Duration {
	return time.Duration(cfg.Interval * float64(time.Second))
}

// afterPoll records what one poll of a polling task found: done → completed with the
// result; failed → failed; otherwise the next poll after interval, never past the deadline,
// with a transient error shown meanwhile. False when t is no longer polling (cancelled,
// called back or timed out while the poll ran): nothing to record.
func afterPoll(t *store.Task, out pollOutcome, interval time.Duration, now time.Time) bool {
	if t.Status != store.StatusPolling {
		return false
	}
	t.PollCount++
	switch {
	case out.done:
		t.Result, t.Error = out.result, nil
		finish(t, store.StatusCompleted, now)
	case out.failed:
		msg := out.err
		t.Error = &msg
		finish(t, store.StatusFailed, now)
	default:
		if out.transient != "" {
			msg := out.transient
			t.Error = &msg
		}
		next := min(*t.ExpiresAt, now.Add(interval).UnixMilli())
		t.DueAt = &next
	}
	return true
}

// ---- Signals and provider callbacks --------------------------------------------------

// What resolves a waiting task from outside; also the kind of the event recorded.
const (
	bySignal   = "signal"   // POST /v1/signals/{token} or /v1/tasks/{id}/signal
	byCallback = "callback" // a provider's POST /v1/callbacks/{id}; it also ends polling
)

// signalResult is what a signal or provider callback did to a task.
type signalResult struct {
	change
	buffered bool // kept until the call is answered (202)
	replayed bool // the same signal again: nothing changed
}

// receiveSignal resolves, buffers or refuses a signal (kind bySignal) or provider callback
// (byCallback) for t. canon is the signal's canonical form, kept on the task and compared
// for replays; detail is the event's, nil for canon itself. A deadline that has passed is applied first, so a
// signal after it finds the task timed out: the change then holds the timeout, to be
// written with the refusal.
func receiveSignal(t *store.Task, sig *signalBody, canon, kind string, detail *string, now time.Time) (signalResult, *Conflict) {
	if detail == nil {
		detail = &canon
	}
	r := signalResult{change: expireIfDue(t, now)}
	switch t.Status {
	case store.StatusWaiting, store.StatusPolling:
		if t.Status == store.StatusPolling && kind != byCallback {
			break // a polling task ends by its polls, or by its provider's callback
		}
		resolve(t, sig, canon, now)
		r.change = moved(r.from)
		r.event, r.detail = kind, detail
		return r, nil
	case store.StatusPending, store.StatusDelayed, store.StatusProcessing:
		// No lost early signal: keep it and apply it when the callback is answered.
		if t.BufferedSignal != nil {
			if kind == byCallback {
				return r, &Conflict{"Task is not in waiting/polling state (current: %s); a callback is already kept for it", t.Status}
			}
			if *t.BufferedSignal == canon {
				r.buffered, r.replayed = true, true
				return r, nil
			}
			return r, &Conflict{"A different signal is already buffered for this task (current: %s)", t.Status}
		}
		t.BufferedSignal = &canon
		r.write, r.buffered = true, true
		r.event, r.detail = "signal.buffered", detail
		if kind == byCallback {
			r.event = "callback.buffered"
		}
		return r, nil
	}
	if kind == byCallback {
		return r, &Conflict{"Task is not in waiting/polling state (current: %s)", t.Status}
	}
	if t.Signal != nil && *t.Signal == canon {
		r.replayed = true
		return r, nil
	}
	return r, &Conflict{"Task is not waiting (current: %s)", t.Status}
}

// resolve finishes a waiting (or just answered) task as a signal says: completed with its
// result, or failed with its error.
func resolve(t *store.Task, sig *signalBody, canon string, now time.Time) {
	t.Signal = &canon
	if sig.Status == store.StatusCompleted {
		if len(sig.Result) > 0 {
			r := string(sig.Result)
			t.Result = &r
		} else {
			t.Result = nil
		}
		t.Error = nil
		finish(t, store.StatusCompleted, now)
		return
	}
	t.Error = sig.Error
	finish(t, store.StatusFailed, now)
}

// receiveHeartbeat records a waiting task's proof of life, with its progress when given
// (nil keeps the last), and moves its heartbeat deadline on. Refused for a task not
// waiting, after applying a deadline that has passed.
func receiveHeartbeat(t *store.Task, progress *string, now time.Time) (change, *Conflict) {
	c := expireIfDue(t, now)
	if t.Status != store.StatusWaiting {
		return c, &Conflict{"Task is not waiting (current: %s)", t.Status}
	}
	ms := now.UnixMilli()
	t.LastHeartbeatAt = &ms
	if progress != nil {
		t.Progress = progress
	}
	if t.HeartbeatTimeoutMS != nil {
		due := min(*t.ExpiresAt, ms+*t.HeartbeatTimeoutMS)
		t.DueAt = &due
	}
	c = moved(store.StatusWaiting)
	c.event, c.detail = "heartbeat", t.Progress
	return c, nil
}

// ---- Deadlines and timers ------------------------------------------------------------

// timeoutDue reports whether a waiting or polling task's deadline has come: maxWaitTime or
// the heartbeat deadline for waiting tasks, maxDuration for polling ones.
func timeoutDue(t *store.Task, now time.Time) bool {
	ms := now.UnixMilli()
	switch t.Status {
	case store.StatusWaiting:
		return t.DueAt != nil && *t.DueAt <= ms
	case store.StatusPolling:
		return t.ExpiresAt != nil && *t.ExpiresAt <= ms
	}
	return false
}

// applyTimeout ends a task whose deadline has come, saying which one it was.
func applyTimeout(t *store.Task, now time.Time) {
	var msg string
	switch {
	case t.Status == store.StatusPolling:
		var limit float64
		if t.ExpiresAt != nil && t.WaitingSince != nil {
			limit = float64(*t.ExpiresAt-*t.WaitingSince) / 1000
		}
		msg = fmt.Sprintf("Polling did not finish within maxDuration (%gs)", limit)
	case t.ExpiresAt != nil && now.UnixMilli() >= *t.ExpiresAt:
		msg = fmt.Sprintf("No signal received within maxWaitTime (%gs)", float64(t.MaxWaitMS)/1000)
	default:
		msg = "Heartbeat timeout"
	}
	t.Error = &msg
	finish(t, store.StatusTimeout, now)
}

// expireIfDue applies a deadline that has passed but whose timer has not fired yet: a
// signal, heartbeat, callback or cancel that comes after the deadline finds the task timed
// out, whatever the timer queue's backlog. Signal, timeout and cancel are decided in one
// write, so exactly one of them wins.
func expireIfDue(t *store.Task, now time.Time) change {
	if !timeoutDue(t, now) {
		return change{from: t.Status}
	}
	c := moved(t.Status)
	applyTimeout(t, now)
	return c
}

// timerAction is what a task's timer falling due asks of the dispatcher.
type timerAction int

const (
	timerStale      timerAction = iota // nothing: the task has no timer now, or a later one
	timerQueued                        // already pending (a timer reloaded after a restart): queue it
	timerDueNow                        // delayed → pending: its call may start
	timerExpired                       // a deadline came: timed out
	timerPoll                          // polling: poll now, under a lease
	timerWebhook                       // finished: send its webhook (again), under a lease
	timerLeaseEnded                    // processing past its claim's lease → pending
)

// timerFired moves a task whose timer fell due, and says what else to do. The leases make
// the timer fire again after a crash mid-poll or mid-delivery.
func timerFired(t *store.Task, now time.Time) timerAction {
	if t.DueAt == nil || *t.DueAt > now.UnixMilli() {
		return timerStale
	}
	switch {
	case t.Status == store.StatusPending:
		return timerQueued
	case t.Status == store.StatusDelayed:
		t.Status = store.StatusPending
		return timerDueNow
	case t.Status == store.StatusProcessing:
		// Only on a shared store, where a claim has a lease: the node that claimed the task
		// died mid-call. It runs again, its attempt counted, as after a crash.
		t.Status = store.StatusPending
		ms := now.UnixMilli()
		t.DueAt = &ms
		return timerLeaseEnded
	case timeoutDue(t, now):
		applyTimeout(t, now)
		return timerExpired
	case t.Status == store.StatusPolling:
		lease := min(*t.ExpiresAt, now.Add(time.Duration(t.TimeoutMS)*time.Millisecond+pollLeaseSlack).UnixMilli())
		t.DueAt = &lease
		return timerPoll
	case store.Terminal(t.Status) && t.OnComplete != nil:
		lease := now.Add(webhookLease).UnixMilli()
		t.DueAt = &lease
		return timerWebhook
	}
	return timerStale
}

// pollLeaseSlack is how much longer than its timeout a poll's lease lasts.
const pollLeaseSlack = 5 * time.Second

// ---- Cancel and retry ----------------------------------------------------------------

// requestCancel cancels a pending, delayed, waiting or polling task: its signal token and
// callback id stop working with its status, and its timer goes (or becomes its webhook's).
func requestCancel(t *store.Task, now time.Time) (change, *Conflict) {
	c := expireIfDue(t, now)
	switch t.Status {
	case store.StatusPending, store.StatusDelayed, store.StatusWaiting, store.StatusPolling:
	default:
		return c, &Conflict{"Task cannot be cancelled (current: %s)", t.Status}
	}
	c = moved(t.Status)
	finish(t, store.StatusCancelled, now)
	return c, nil
}

// requestRetry runs a failed, timed-out or cancelled task again now, as if new, keeping its
// attempts. Its caller gives it a new signal token and callback id when it uses them.
func requestRetry(t *store.Task, now time.Time) (change, *Conflict) {
	switch t.Status {
	case store.StatusFailed, store.StatusTimeout, store.StatusCancelled:
	default:
		return change{from: t.Status}, &Conflict{"Task cannot be retried (current: %s); only failed, timeout and cancelled tasks can", t.Status}
	}
	c := moved(t.Status)
	ms := now.UnixMilli()
	t.Status = store.StatusPending
	t.RetryCount = 0
	t.StartResult, t.Result, t.Error = nil, nil, nil
	t.Signal, t.BufferedSignal, t.Progress, t.LastHeartbeatAt = nil, nil, nil, nil
	t.OnComplete = nil
	t.WaitingSince, t.ExpiresAt, t.CompletedAt = nil, nil, nil
	t.DueAt = &ms
	t.PollCount = 0
	return c, nil
}

// ---- The end, and the completion webhook ---------------------------------------------

// webhookArmedState is the onComplete of a task just finished.
const webhookArmedState = `{"status":"pending","attempts":0,"lastError":null}`

// finish moves t to a terminal status and arms its completion webhook, if any.
func finish(t *store.Task, status string, now time.Time) {
	ms := now.UnixMilli()
	t.Status = status
	t.CompletedAt = &ms
	t.DueAt = nil
	if t.OnCompleteURL != nil {
		// The webhook goes out as soon as this write is durable (App.scheduled), under a
		// lease: if the process dies before its outcome is written, the timer sends it again.
		s := webhookArmedState
		t.OnComplete = &s
		lease := now.Add(webhookLease).UnixMilli()
		t.DueAt = &lease // see webhookArmed
	}
}

// webhookArmed reports whether t was just finished (finish) and its completion webhook
// leased: pending, never attempted, due exactly one lease after its completion. A lease
// taken again by a timer, or a delivery's outcome, differs.
func webhookArmed(t *store.Task) bool {
	return store.Terminal(t.Status) && t.OnComplete != nil && t.CompletedAt != nil && t.DueAt != nil &&
		*t.DueAt == *t.CompletedAt+webhookLease.Milliseconds() && *t.OnComplete == webhookArmedState
}

// webhookState is the task's onComplete field.
type webhookState = store.Webhook

// judgeWebhook classifies one delivery of a completion webhook (SPEC §5.1): a 2xx answer
// delivers it (errMsg ""); a 5xx answer or a network error is worth a retry; any other
// answer is permanent, as retrying will not help.
func judgeWebhook(res *outbound.Response, err error) (errMsg string, permanent bool) {
	switch {
	case err != nil:
		return outbound.DescribeError(err, WebhookTimeout), false
	case res.StatusCode < 200 || res.StatusCode > 299:
		return fmt.Sprintf("HTTP %d - %s", res.StatusCode, http.StatusText(res.StatusCode)), res.StatusCode < 500
	}
	return "", false
}

// afterWebhook records one delivery of the webhook of t's end at completedAt: delivered;
// failed (a 4xx answer, permanent, or the last of WebhookRetries retries); or pending again
// after the backoff (1, 2, 4 s). errMsg is "" for a 2xx answer. It returns the outcome
// ("delivered", "failed" or "retry"), or "" when there is nothing to record: the task was
// retried since, and this event is moot. A stored state that cannot be read (written only
// here and by finish, so a damaged row) is counted afresh and returned as damaged.
func afterWebhook(t *store.Task, completedAt *int64, errMsg string, permanent bool, now time.Time) (outcome string, damaged error) {
	if !store.Terminal(t.Status) || t.OnComplete == nil || valueOr(t.CompletedAt) != valueOr(completedAt) {
		return "", nil
	}
	st, damaged := t.WebhookState()
	if damaged != nil {
		st = webhookState{}
	}
	st.Attempts++
	t.DueAt = nil
	switch {
	case errMsg == "":
		st.Status, st.LastError = "delivered", nil
		outcome = "delivered"
	case permanent || st.Attempts > WebhookRetries:
		st.Status, st.LastError = "failed", &errMsg
		outcome = "failed"
	default:
		st.Status, st.LastError = "pending", &errMsg
		outcome = "retry"
		due := now.Add(Backoff("exponential", st.Attempts)).UnixMilli()
		t.DueAt = &due
	}
	b, _ := json.Marshal(st) // strings and an int: cannot fail
	s := string(b)
	t.OnComplete = &s
	return outcome, damaged
}
