package main

// Table tests of the task lifecycle (lifecycle.go): every transition and every refusal, on
// tasks in memory and a fixed clock; no server, no database.

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// now is the tests' clock.
var now = time.UnixMilli(1_800_000_000_000)

func ms(d time.Duration) int64 { return now.Add(d).UnixMilli() }

func ptr[T any](v T) *T { return &v }

// lcTask is a task as created with the defaults: pending, due now.
func lcTask(mods ...func(*store.Task)) *store.Task {
	t := &store.Task{ID: "019d2b00-1234-7000-a000-000000000001", TeamID: "team", Status: store.StatusPending,
		TargetURL: "https://example.com/hook", Method: http.MethodPost, Headers: "{}", TimeoutMS: 30_000,
		MaxRetries: 3, RetryBackoff: "exponential", Priority: 5, MaxWaitMS: 30_000, CreatedAt: ms(-time.Minute),
		DueAt: ptr(ms(-time.Minute))}
	for _, m := range mods {
		m(t)
	}
	return t
}

func status(s string) func(*store.Task) { return func(t *store.Task) { t.Status = s } }

func waitsForSignal(t *store.Task) { t.WaitForSignal = true }

func withWebhook(t *store.Task) { t.OnCompleteURL = ptr("https://example.com/done") }

// waitingFor makes t a wait/signal task that has been waiting for d, with its deadline
// (maxWaitTime, or the heartbeat's when given) still to come unless d passed it.
func waitingFor(d time.Duration, heartbeat time.Duration) func(*store.Task) {
	return func(t *store.Task) {
		t.WaitForSignal = true
		t.Status = store.StatusWaiting
		startWaiting(t, now.Add(-d))
		if heartbeat > 0 {
			t.HeartbeatTimeoutMS = ptr(heartbeat.Milliseconds())
			due := min(*t.ExpiresAt, *t.WaitingSince+heartbeat.Milliseconds())
			t.DueAt = &due
		}
	}
}

const pollCfg = `{"urlTemplate":"https://p.example.com/jobs/{startResult.body.id}","interval":5,"statusPath":"status","doneValues":["done"],"failValues":["failed"],"forwardAuth":false,"maxDuration":60}`

func polls(t *store.Task) { t.PollConfig = ptr(pollCfg) }

// pollingFor makes t a polling task that has been polling for d (maxDuration 60 s).
func pollingFor(d time.Duration) func(*store.Task) {
	return func(t *store.Task) {
		t.PollConfig = ptr(pollCfg)
		startPolling(t, now.Add(-d))
	}
}

// sigOf is a signal as parseSignal gives it, with its canonical form.
func sigOf(st string, result, errMsg string) (*signalBody, string) {
	s := &signalBody{Status: st}
	if result != "" {
		s.Result = json.RawMessage(result)
	}
	if errMsg != "" {
		s.Error = &errMsg
	}
	b, _ := json.Marshal(s)
	return s, string(b)
}

func reply(code int, header ...string) *outbound.Response {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &outbound.Response{StatusCode: code, Header: h, Body: []byte(`{"id":"job-1"}`), Duration: 12 * time.Millisecond}
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func i64(p *int64) string {
	if p == nil {
		return "<nil>"
	}
	return time.UnixMilli(*p).Sub(now).String()
}

func TestClaim(t *testing.T) {
	t.Parallel()
	task := lcTask()
	claim(task, now.UnixMilli())
	if task.Status != store.StatusProcessing || task.Attempts != 1 || task.DueAt != nil || *task.StartedAt != now.UnixMilli() {
		t.Fatalf("first claim: status %s, attempts %d, due %s, started %s", task.Status, task.Attempts, i64(task.DueAt), i64(task.StartedAt))
	}
	claim(task, ms(time.Minute)) // a retry's claim keeps the first start
	if task.Attempts != 2 || *task.StartedAt != now.UnixMilli() {
		t.Fatalf("second claim: attempts %d, started %s", task.Attempts, i64(task.StartedAt))
	}
}

func TestJudgeCall(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	blocked := &outbound.BlockedError{Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback"}
	for _, c := range []struct {
		name      string
		res       *outbound.Response
		err       error
		wait      time.Duration
		answered  bool
		permanent bool
		msg       string
	}{
		{"200", reply(200), nil, 0, true, false, ""},
		{"201", reply(201), nil, 0, true, false, ""},
		{"3xx not followed", reply(304), nil, 0, true, false, ""},
		{"404", reply(404), nil, 0, true, false, ""},
		{"413", reply(413), nil, 0, true, false, ""},
		{"429", reply(429), nil, 0, false, false, "Target busy: HTTP 429 - Too Many Requests"},
		{"429 with Retry-After", reply(429), nil, 30 * time.Second, false, false, "Target busy: HTTP 429 - Too Many Requests (Retry-After: 30s)"},
		{"500", reply(500), nil, 0, false, false, "Server error: HTTP 500 - Internal Server Error"},
		{"503 with Retry-After", reply(503), nil, 2 * time.Second, false, false, "Server error: HTTP 503 - Service Unavailable (Retry-After: 2s)"},
		{"connection refused", nil, refused, 0, false, false, "Network error: connection refused"},
		{"timeout", nil, context.DeadlineExceeded, 0, false, false, "Request timeout after 30s"},
		{"blocked", nil, blocked, 0, false, false, "Blocked target: " + blocked.Error()},
		{"deleted vault token", nil, &permanentError{"Vault token tok_x (header A) was deleted"}, 0, false, true, "Vault token tok_x (header A) was deleted"},
	} {
		v := judgeCall(c.res, c.err, 30*time.Second, c.wait)
		if v.answered != c.answered || v.permanent != c.permanent || v.err != c.msg {
			t.Errorf("%s: got answered %v permanent %v %q, want %v %v %q", c.name, v.answered, v.permanent, v.err, c.answered, c.permanent, c.msg)
		}
	}
}

func TestAfterCall(t *testing.T) {
	t.Parallel()
	_, doneCanon := sigOf(store.StatusCompleted, `{"ok":true}`, "")
	_, failCanon := sigOf(store.StatusFailed, "", "Declined")
	buffered := func(canon string) func(*store.Task) { return func(t *store.Task) { t.BufferedSignal = ptr(canon) } }
	retried := func(n int) func(*store.Task) { return func(t *store.Task) { t.RetryCount = n } }
	failedBefore := func(t *store.Task) { t.Error = ptr("Server error: HTTP 500 - Internal Server Error") }
	linear := func(t *store.Task) { t.RetryBackoff = "linear" }
	callback := func(t *store.Task) { t.CallbackNonce = []byte("nonce") }
	heartbeat := func(t *store.Task) { t.HeartbeatTimeoutMS = ptr(int64(10_000)) }
	v := func(res *outbound.Response, err error, wait time.Duration) callVerdict {
		return judgeCall(res, err, 30*time.Second, wait)
	}
	for _, c := range []struct {
		name    string
		task    *store.Task
		res     *outbound.Response
		verdict callVerdict
		wait    time.Duration
		status  string
		due     *int64 // nil: none
		retries int
		err     string
		check   func(*store.Task) string // more to check, "" when right
	}{
		{name: "200: completed with the answer", task: lcTask(failedBefore), res: reply(200), status: store.StatusCompleted,
			check: func(t *store.Task) string {
				var r callResult
				if t.Result == nil || json.Unmarshal([]byte(*t.Result), &r) != nil || r.StatusCode != 200 || r.Body != `{"id":"job-1"}` || r.Duration != 12 {
					return "result " + str(t.Result)
				}
				if *t.CompletedAt != now.UnixMilli() {
					return "completedAt " + i64(t.CompletedAt)
				}
				return ""
			}},
		{name: "201 with a webhook: completed, webhook armed", task: lcTask(withWebhook), res: reply(201), status: store.StatusCompleted,
			due: ptr(ms(webhookLease)), check: func(t *store.Task) string {
				if !webhookArmed(t) {
					return "webhook not armed"
				}
				return ""
			}},
		{name: "404 is an answer", task: lcTask(), res: reply(404), status: store.StatusCompleted},
		{name: "413 is an answer", task: lcTask(), res: reply(413), status: store.StatusCompleted},
		{name: "500, retries left: delayed by the backoff", task: lcTask(), res: reply(500), status: store.StatusDelayed,
			due: ptr(ms(time.Second)), retries: 1, err: "Server error: HTTP 500 - Internal Server Error"},
		{name: "500, third retry: 4 s", task: lcTask(retried(2)), res: reply(500), status: store.StatusDelayed,
			due: ptr(ms(4 * time.Second)), retries: 3, err: "Server error: HTTP 500 - Internal Server Error"},
		{name: "500, linear, third retry: 3 s", task: lcTask(retried(2), linear), res: reply(500), status: store.StatusDelayed,
			due: ptr(ms(3 * time.Second)), retries: 3, err: "Server error: HTTP 500 - Internal Server Error"},
		{name: "429 with Retry-After: not before it", task: lcTask(), res: reply(429), wait: 30 * time.Second, status: store.StatusDelayed,
			due: ptr(ms(30 * time.Second)), retries: 1, err: "Target busy: HTTP 429 - Too Many Requests (Retry-After: 30s)"},
		{name: "503 with a Retry-After shorter than the backoff", task: lcTask(retried(1)), res: reply(503), wait: time.Second,
			status: store.StatusDelayed, due: ptr(ms(2 * time.Second)), retries: 2, err: "Server error: HTTP 503 - Service Unavailable (Retry-After: 1s)"},
		{name: "500, no retries left: failed", task: lcTask(retried(3)), res: reply(500), status: store.StatusFailed,
			retries: 3, err: "Server error: HTTP 500 - Internal Server Error"},
		{name: "network error, retries left", task: lcTask(), verdict: v(nil, context.DeadlineExceeded, 0), status: store.StatusDelayed,
			due: ptr(ms(time.Second)), retries: 1, err: "Request timeout after 30s"},
		{name: "network error, none left, with a webhook", task: lcTask(retried(3), withWebhook), verdict: v(nil, context.DeadlineExceeded, 0),
			status: store.StatusFailed, due: ptr(ms(webhookLease)), retries: 3, err: "Request timeout after 30s"},
		{name: "permanent error, retries left: failed at once", task: lcTask(), verdict: v(nil, &permanentError{"Invalid target URL: x"}, 0),
			status: store.StatusFailed, err: "Invalid target URL: x"},
		{name: "wait/signal answered: waiting until maxWaitTime", task: lcTask(waitsForSignal, failedBefore), res: reply(200),
			status: store.StatusWaiting, due: ptr(ms(30 * time.Second)), check: func(t *store.Task) string {
				if t.StartResult == nil || t.Result != nil || *t.WaitingSince != now.UnixMilli() || *t.ExpiresAt != ms(30*time.Second) {
					return "startResult " + str(t.StartResult) + ", waitingSince " + i64(t.WaitingSince) + ", expiresAt " + i64(t.ExpiresAt)
				}
				return ""
			}},
		{name: "wait/signal with heartbeat: due at the heartbeat", task: lcTask(waitsForSignal, heartbeat), res: reply(200),
			status: store.StatusWaiting, due: ptr(ms(10 * time.Second))},
		{name: "callback task answered: waiting", task: lcTask(callback), res: reply(202), status: store.StatusWaiting,
			due: ptr(ms(30 * time.Second))},
		{name: "polling task answered: first poll after interval", task: lcTask(polls), res: reply(200), status: store.StatusPolling,
			due: ptr(ms(5 * time.Second)), check: func(t *store.Task) string {
				if *t.ExpiresAt != ms(time.Minute) || t.StartResult == nil {
					return "expiresAt " + i64(t.ExpiresAt)
				}
				return ""
			}},
		{name: "buffered completed signal: completed with its result", task: lcTask(waitsForSignal, buffered(doneCanon)), res: reply(200),
			status: store.StatusCompleted, check: func(t *store.Task) string {
				if str(t.Result) != `{"ok":true}` || str(t.Signal) != doneCanon || t.StartResult == nil {
					return "result " + str(t.Result) + ", signal " + str(t.Signal)
				}
				return ""
			}},
		{name: "buffered failed signal: failed with its error", task: lcTask(waitsForSignal, buffered(failCanon)), res: reply(200),
			status: store.StatusFailed, err: "Declined"},
		{name: "buffered callback on a polling task: completed", task: lcTask(polls, callback, buffered(doneCanon)), res: reply(200),
			status: store.StatusCompleted},
		{name: "unreadable buffered signal: waiting", task: lcTask(waitsForSignal, buffered("{")), res: reply(200),
			status: store.StatusWaiting, due: ptr(ms(30 * time.Second))},
		{name: "failed call with a buffered signal: failed, signal kept", task: lcTask(waitsForSignal, retried(3), buffered(doneCanon)),
			res: reply(500), status: store.StatusFailed, retries: 3, err: "Server error: HTTP 500 - Internal Server Error",
			check: func(t *store.Task) string {
				if str(t.BufferedSignal) != doneCanon || t.Signal != nil || t.Result != nil {
					return "buffered " + str(t.BufferedSignal) + ", signal " + str(t.Signal)
				}
				return ""
			}},
	} {
		claim(c.task, ms(-time.Second))
		verdict := c.verdict
		if c.res != nil {
			verdict = v(c.res, nil, c.wait)
		}
		afterCall(c.task, c.res, verdict, c.wait, now)
		got := c.task
		wantDue := "<nil>"
		if c.due != nil {
			wantDue = i64(c.due)
		}
		if got.Status != c.status || i64(got.DueAt) != wantDue || got.RetryCount != c.retries || (c.err == "" && got.Error != nil) ||
			(c.err != "" && str(got.Error) != c.err) {
			t.Errorf("%s: got %s due %s retries %d error %q; want %s due %s retries %d error %q", c.name,
				got.Status, i64(got.DueAt), got.RetryCount, str(got.Error), c.status, wantDue, c.retries, c.err)
			continue
		}
		if c.check != nil {
			if msg := c.check(got); msg != "" {
				t.Errorf("%s: %s", c.name, msg)
			}
		}
	}
}

func TestReceiveSignal(t *testing.T) {
	t.Parallel()
	done, doneCanon := sigOf(store.StatusCompleted, `{"url":"x"}`, "")
	fail, failCanon := sigOf(store.StatusFailed, "", "Payment was declined")
	cbBody := `{"job":"done"}`
	cbResult, _ := json.Marshal(callResult{StatusCode: 200, Headers: map[string]string{}, Body: cbBody})
	cb, cbCanon := sigOf(store.StatusCompleted, string(cbResult), "")
	withBuffered := func(canon string) func(*store.Task) { return func(t *store.Task) { t.BufferedSignal = ptr(canon) } }
	signalled := func(canon string) func(*store.Task) { return func(t *store.Task) { t.Signal = ptr(canon) } }
	for _, c := range []struct {
		name     string
		task     *store.Task
		sig      *signalBody
		canon    string
		kind     string
		status   string // afterwards
		write    bool
		resched  bool
		event    string
		buffered bool
		replayed bool
		conflict string // the refusal's message, with the status it names
	}{
		{"waiting + completed", lcTask(waitingFor(time.Second, 0)), done, doneCanon, bySignal,
			store.StatusCompleted, true, true, "signal", false, false, ""},
		{"waiting + failed", lcTask(waitingFor(time.Second, 0)), fail, failCanon, bySignal,
			store.StatusFailed, true, true, "signal", false, false, ""},
		{"waiting past maxWaitTime: timed out, refused", lcTask(waitingFor(31*time.Second, 0)), done, doneCanon, bySignal,
			store.StatusTimeout, true, true, "", false, false, "Task is not waiting (current: timeout)"},
		{"waiting past the heartbeat deadline", lcTask(waitingFor(11*time.Second, 10*time.Second)), done, doneCanon, bySignal,
			store.StatusTimeout, true, true, "", false, false, "Task is not waiting (current: timeout)"},
		{"pending: buffered", lcTask(waitsForSignal), done, doneCanon, bySignal,
			store.StatusPending, true, false, "signal.buffered", true, false, ""},
		{"delayed: buffered", lcTask(waitsForSignal, status(store.StatusDelayed)), done, doneCanon, bySignal,
			store.StatusDelayed, true, false, "signal.buffered", true, false, ""},
		{"processing: buffered", lcTask(waitsForSignal, status(store.StatusProcessing)), fail, failCanon, bySignal,
			store.StatusProcessing, true, false, "signal.buffered", true, false, ""},
		{"processing, same signal buffered: replayed", lcTask(status(store.StatusProcessing), withBuffered(doneCanon)), done, doneCanon, bySignal,
			store.StatusProcessing, false, false, "", true, true, ""},
		{"processing, another signal buffered: refused", lcTask(status(store.StatusProcessing), withBuffered(failCanon)), done, doneCanon, bySignal,
			store.StatusProcessing, false, false, "", false, false, "A different signal is already buffered for this task (current: processing)"},
		{"completed by the same signal: replayed", lcTask(status(store.StatusCompleted), signalled(doneCanon)), done, doneCanon, bySignal,
			store.StatusCompleted, false, false, "", false, true, ""},
		{"completed by another signal: refused", lcTask(status(store.StatusCompleted), signalled(doneCanon)), fail, failCanon, bySignal,
			store.StatusCompleted, false, false, "", false, false, "Task is not waiting (current: completed)"},
		{"cancelled: refused", lcTask(status(store.StatusCancelled)), done, doneCanon, bySignal,
			store.StatusCancelled, false, false, "", false, false, "Task is not waiting (current: cancelled)"},
		{"timeout: refused", lcTask(status(store.StatusTimeout)), done, doneCanon, bySignal,
			store.StatusTimeout, false, false, "", false, false, "Task is not waiting (current: timeout)"},
		{"polling: a signal is refused", lcTask(pollingFor(time.Second)), done, doneCanon, bySignal,
			store.StatusPolling, false, false, "", false, false, "Task is not waiting (current: polling)"},
		{"callback, waiting", lcTask(waitingFor(time.Second, 0)), cb, cbCanon, byCallback,
			store.StatusCompleted, true, true, "callback", false, false, ""},
		{"callback, polling", lcTask(pollingFor(time.Second)), cb, cbCanon, byCallback,
			store.StatusCompleted, true, true, "callback", false, false, ""},
		{"callback, polling past maxDuration", lcTask(pollingFor(61 * time.Second)), cb, cbCanon, byCallback,
			store.StatusTimeout, true, true, "", false, false, "Task is not in waiting/polling state (current: timeout)"},
		{"callback, processing: buffered", lcTask(status(store.StatusProcessing)), cb, cbCanon, byCallback,
			store.StatusProcessing, true, false, "callback.buffered", true, false, ""},
		{"callback, processing, one kept: refused even if the same", lcTask(status(store.StatusProcessing), withBuffered(cbCanon)), cb, cbCanon, byCallback,
			store.StatusProcessing, false, false, "", false, false, "Task is not in waiting/polling state (current: processing); a callback is already kept for it"},
		{"callback, completed: refused, no replay", lcTask(status(store.StatusCompleted), signalled(cbCanon)), cb, cbCanon, byCallback,
			store.StatusCompleted, false, false, "", false, false, "Task is not in waiting/polling state (current: completed)"},
	} {
		task := c.task
		from := task.Status
		before := task.BufferedSignal
		var detail *string
		if c.kind == byCallback {
			detail = &cbBody
		}
		r, conflict := receiveSignal(task, c.sig, c.canon, c.kind, detail, now)
		gotConflict := ""
		if conflict != nil {
			gotConflict = conflict.Error()
		}
		if task.Status != c.status || r.write != c.write || r.reschedule != c.resched || r.event != c.event ||
			r.buffered != c.buffered || r.replayed != c.replayed || gotConflict != c.conflict || (r.write && r.from != from) {
			t.Errorf("%s: got %s write %v resched %v event %q buffered %v replayed %v from %s conflict %q", c.name,
				task.Status, r.write, r.reschedule, r.event, r.buffered, r.replayed, r.from, gotConflict)
			continue
		}
		switch {
		case r.event == "signal" || r.event == "signal.buffered":
			if str(r.detail) != c.canon {
				t.Errorf("%s: event detail %s, want the canonical signal", c.name, str(r.detail))
			}
		case r.event != "":
			if str(r.detail) != cbBody {
				t.Errorf("%s: event detail %s, want the callback's body", c.name, str(r.detail))
			}
		}
		switch {
		case r.buffered && !r.replayed:
			if str(task.BufferedSignal) != c.canon {
				t.Errorf("%s: buffered %s", c.name, str(task.BufferedSignal))
			}
		case r.event == bySignal || r.event == byCallback:
			if str(task.Signal) != c.canon || task.CompletedAt == nil || *task.CompletedAt != now.UnixMilli() {
				t.Errorf("%s: signal %s completedAt %s", c.name, str(task.Signal), i64(task.CompletedAt))
			}
			if c.sig.Status == store.StatusCompleted && str(task.Result) != string(c.sig.Result) {
				t.Errorf("%s: result %s", c.name, str(task.Result))
			}
			if c.sig.Status == store.StatusFailed && str(task.Error) != *c.sig.Error {
				t.Errorf("%s: error %s", c.name, str(task.Error))
			}
		default:
			if task.BufferedSignal != before {
				t.Errorf("%s: buffered signal changed", c.name)
			}
		}
	}
}

// A resolved task with an onCompleteUrl has its webhook armed; one without has no timer.
func TestReceiveSignalArmsWebhook(t *testing.T) {
	t.Parallel()
	sig, canon := sigOf(store.StatusCompleted, "", "")
	with := lcTask(waitingFor(time.Second, 0), withWebhook)
	receiveSignal(with, sig, canon, bySignal, nil, now)
	if !webhookArmed(with) || with.Result != nil {
		t.Errorf("with a webhook: armed %v, result %s", webhookArmed(with), str(with.Result))
	}
	without := lcTask(waitingFor(time.Second, 0))
	receiveSignal(without, sig, canon, bySignal, nil, now)
	if without.DueAt != nil || without.OnComplete != nil {
		t.Errorf("without a webhook: due %s, onComplete %s", i64(without.DueAt), str(without.OnComplete))
	}
}

func TestReceiveHeartbeat(t *testing.T) {
	t.Parallel()
	progressed := func(t *store.Task) { t.Progress = ptr(`{"pct":10}`) }
	// beatenAgo: the last heartbeat came d ago, with the given heartbeat timeout.
	beatenAgo := func(d, timeout time.Duration) func(*store.Task) {
		return func(t *store.Task) {
			t.HeartbeatTimeoutMS = ptr(timeout.Milliseconds())
			t.LastHeartbeatAt = ptr(ms(-d))
			t.DueAt = ptr(min(*t.ExpiresAt, ms(timeout-d)))
		}
	}
	for _, c := range []struct {
		name     string
		task     *store.Task
		progress *string
		status   string
		due      int64
		progOut  string
		write    bool
		conflict string
	}{
		{"heartbeat timeout: deadline moves on", lcTask(waitingFor(5*time.Second, 10*time.Second)), ptr(`{"pct":50}`),
			store.StatusWaiting, ms(10 * time.Second), `{"pct":50}`, true, ""},
		{"near maxWaitTime: never past it", lcTask(waitingFor(25*time.Second, 0), beatenAgo(9*time.Second, 10*time.Second)), nil,
			store.StatusWaiting, ms(5 * time.Second), "<nil>", true, ""},
		{"no progress given: the last is kept", lcTask(waitingFor(5*time.Second, 10*time.Second), progressed), nil,
			store.StatusWaiting, ms(10 * time.Second), `{"pct":10}`, true, ""},
		{"no heartbeat timeout: due stays at maxWaitTime", lcTask(waitingFor(5*time.Second, 0)), nil,
			store.StatusWaiting, ms(25 * time.Second), "<nil>", true, ""},
		{"past the heartbeat deadline: timed out, refused", lcTask(waitingFor(11*time.Second, 10*time.Second)), nil,
			store.StatusTimeout, 0, "<nil>", true, "Task is not waiting (current: timeout)"},
		{"processing: refused", lcTask(waitsForSignal, status(store.StatusProcessing)), nil,
			store.StatusProcessing, 0, "<nil>", false, "Task is not waiting (current: processing)"},
		{"completed: refused", lcTask(waitsForSignal, status(store.StatusCompleted)), nil,
			store.StatusCompleted, 0, "<nil>", false, "Task is not waiting (current: completed)"},
	} {
		task := c.task
		ch, conflict := receiveHeartbeat(task, c.progress, now)
		got := ""
		if conflict != nil {
			got = conflict.Error()
		}
		if task.Status != c.status || got != c.conflict || ch.write != c.write {
			t.Errorf("%s: got %s conflict %q write %v", c.name, task.Status, got, ch.write)
			continue
		}
		if conflict != nil {
			continue
		}
		if *task.DueAt != c.due || str(task.Progress) != c.progOut || *task.LastHeartbeatAt != now.UnixMilli() ||
			ch.event != "heartbeat" || str(ch.detail) != c.progOut || ch.from != store.StatusWaiting || !ch.reschedule {
			t.Errorf("%s: due %s progress %s lastHeartbeat %s event %q detail %s", c.name, i64(task.DueAt),
				str(task.Progress), i64(task.LastHeartbeatAt), ch.event, str(ch.detail))
		}
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		task *store.Task
		due  bool
		msg  string
	}{
		{"waiting, before maxWaitTime", lcTask(waitingFor(29*time.Second, 0)), false, ""},
		{"waiting, at maxWaitTime", lcTask(waitingFor(30*time.Second, 0)), true, "No signal received within maxWaitTime (30s)"},
		{"waiting, heartbeat deadline passed", lcTask(waitingFor(10*time.Second, 10*time.Second)), true, "Heartbeat timeout"},
		{"waiting, heartbeat deadline to come", lcTask(waitingFor(9*time.Second, 10*time.Second)), false, ""},
		{"polling, before maxDuration", lcTask(pollingFor(59 * time.Second)), false, ""},
		{"polling, at maxDuration", lcTask(pollingFor(60 * time.Second)), true, "Polling did not finish within maxDuration (60s)"},
		{"processing: no deadline", lcTask(status(store.StatusProcessing)), false, ""},
		{"delayed and overdue: a timer, not a deadline", lcTask(status(store.StatusDelayed)), false, ""},
		{"completed: no deadline", lcTask(status(store.StatusCompleted)), false, ""},
	} {
		if got := timeoutDue(c.task, now); got != c.due {
			t.Errorf("%s: timeoutDue = %v", c.name, got)
			continue
		}
		from := c.task.Status
		ch := expireIfDue(c.task, now)
		if !c.due {
			if ch.write || c.task.Status != from {
				t.Errorf("%s: not due, but changed to %s", c.name, c.task.Status)
			}
			continue
		}
		if !ch.write || !ch.reschedule || ch.from != from || c.task.Status != store.StatusTimeout ||
			str(c.task.Error) != c.msg || *c.task.CompletedAt != now.UnixMilli() || c.task.DueAt != nil {
			t.Errorf("%s: got %s %q from %s due %s", c.name, c.task.Status, str(c.task.Error), ch.from, i64(c.task.DueAt))
		}
	}
}

func TestRequestCancel(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		task     *store.Task
		status   string
		write    bool
		conflict string
	}{
		{"pending", lcTask(), store.StatusCancelled, true, ""},
		{"delayed", lcTask(status(store.StatusDelayed)), store.StatusCancelled, true, ""},
		{"waiting", lcTask(waitingFor(time.Second, 0)), store.StatusCancelled, true, ""},
		{"polling", lcTask(pollingFor(time.Second)), store.StatusCancelled, true, ""},
		{"waiting past its deadline: timed out", lcTask(waitingFor(time.Minute, 0)), store.StatusTimeout, true, "Task cannot be cancelled (current: timeout)"},
		{"processing", lcTask(status(store.StatusProcessing)), store.StatusProcessing, false, "Task cannot be cancelled (current: processing)"},
		{"completed", lcTask(status(store.StatusCompleted)), store.StatusCompleted, false, "Task cannot be cancelled (current: completed)"},
		{"failed", lcTask(status(store.StatusFailed)), store.StatusFailed, false, "Task cannot be cancelled (current: failed)"},
		{"timeout", lcTask(status(store.StatusTimeout)), store.StatusTimeout, false, "Task cannot be cancelled (current: timeout)"},
		{"cancelled", lcTask(status(store.StatusCancelled)), store.StatusCancelled, false, "Task cannot be cancelled (current: cancelled)"},
	} {
		from := c.task.Status
		ch, conflict := requestCancel(c.task, now)
		got := ""
		if conflict != nil {
			got = conflict.Error()
		}
		if c.task.Status != c.status || ch.write != c.write || got != c.conflict || (ch.write && (ch.from != from || !ch.reschedule)) {
			t.Errorf("%s: got %s write %v from %s conflict %q", c.name, c.task.Status, ch.write, ch.from, got)
		}
		if c.conflict == "" && (c.task.DueAt != nil || *c.task.CompletedAt != now.UnixMilli()) {
			t.Errorf("%s: cancelled with due %s completedAt %s", c.name, i64(c.task.DueAt), i64(c.task.CompletedAt))
		}
	}
	// With a webhook, the cancel arms it (task.cancelled).
	task := lcTask(status(store.StatusDelayed), withWebhook)
	if _, c := requestCancel(task, now); c != nil || !webhookArmed(task) {
		t.Errorf("cancel with a webhook: conflict %v, armed %v", c, webhookArmed(task))
	}
}

func TestRequestRetry(t *testing.T) {
	t.Parallel()
	spent := func(t *store.Task) {
		t.Attempts, t.RetryCount, t.PollCount = 4, 3, 7
		t.StartResult, t.Result, t.Error = ptr(`{}`), ptr(`{}`), ptr("x")
		t.Signal, t.BufferedSignal, t.Progress, t.LastHeartbeatAt = ptr("s"), ptr("b"), ptr("p"), ptr(ms(-time.Second))
		t.OnComplete = ptr(`{"status":"delivered","attempts":1,"lastError":null}`)
		t.WaitingSince, t.ExpiresAt, t.CompletedAt, t.DueAt = ptr(ms(-time.Hour)), ptr(ms(-time.Minute)), ptr(ms(-time.Minute)), nil
	}
	for _, st := range allStatuses {
		task := lcTask(spent, status(st))
		ch, conflict := requestRetry(task, now)
		switch st {
		case store.StatusFailed, store.StatusTimeout, store.StatusCancelled:
			if conflict != nil || !ch.write || !ch.reschedule || ch.from != st {
				t.Errorf("%s: conflict %v, write %v from %s", st, conflict, ch.write, ch.from)
				continue
			}
			if task.Status != store.StatusPending || *task.DueAt != now.UnixMilli() || task.Attempts != 4 || task.RetryCount != 0 ||
				task.PollCount != 0 || task.StartResult != nil || task.Result != nil || task.Error != nil || task.Signal != nil ||
				task.BufferedSignal != nil || task.Progress != nil || task.LastHeartbeatAt != nil || task.OnComplete != nil ||
				task.WaitingSince != nil || task.ExpiresAt != nil || task.CompletedAt != nil {
				t.Errorf("%s: not reset: %+v", st, task)
			}
		default:
			want := "Task cannot be retried (current: " + st + "); only failed, timeout and cancelled tasks can"
			if conflict == nil || conflict.Error() != want || ch.write || task.Status != st {
				t.Errorf("%s: conflict %v write %v status %s", st, conflict, ch.write, task.Status)
			}
		}
	}
}

func TestStartPollingUnreadableConfig(t *testing.T) {
	t.Parallel()
	task := lcTask(func(t *store.Task) { t.PollConfig = ptr(`{"interval":"soon"}`) })
	startPolling(task, now)
	if task.Status != store.StatusFailed || task.Error == nil {
		t.Errorf("got %s %s, want failed with an error", task.Status, str(task.Error))
	}
}

func TestAfterPoll(t *testing.T) {
	t.Parallel()
	result := `{"video":"v.mp4"}`
	for _, c := range []struct {
		name   string
		task   *store.Task
		out    pollOutcome
		ok     bool
		status string
		due    string
		err    string
	}{
		{"done", lcTask(pollingFor(10 * time.Second)), pollOutcome{done: true, result: &result}, true, store.StatusCompleted, "<nil>", "<nil>"},
		{"failed", lcTask(pollingFor(10 * time.Second)), pollOutcome{failed: true, err: "Provider reported status failed"}, true,
			store.StatusFailed, "<nil>", "Provider reported status failed"},
		{"still running", lcTask(pollingFor(10 * time.Second)), pollOutcome{}, true, store.StatusPolling, "5s", "<nil>"},
		{"transient error: shown, polled again", lcTask(pollingFor(10 * time.Second)), pollOutcome{transient: "Polling: HTTP 502 - Bad Gateway"}, true,
			store.StatusPolling, "5s", "Polling: HTTP 502 - Bad Gateway"},
		{"next poll never past maxDuration", lcTask(pollingFor(58 * time.Second)), pollOutcome{}, true, store.StatusPolling, "2s", "<nil>"},
		{"cancelled meanwhile", lcTask(status(store.StatusCancelled)), pollOutcome{done: true, result: &result}, false, store.StatusCancelled, "", ""},
	} {
		polls := c.task.PollCount
		ok := afterPoll(c.task, c.out, 5*time.Second, now)
		if ok != c.ok || c.task.Status != c.status {
			t.Errorf("%s: got %v %s", c.name, ok, c.task.Status)
			continue
		}
		if !ok {
			continue
		}
		if i64(c.task.DueAt) != c.due || str(c.task.Error) != c.err || c.task.PollCount != polls+1 {
			t.Errorf("%s: due %s error %s polls %d", c.name, i64(c.task.DueAt), str(c.task.Error), c.task.PollCount)
		}
		if c.out.done && str(c.task.Result) != result {
			t.Errorf("%s: result %s", c.name, str(c.task.Result))
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		kind string
		n    int
		want time.Duration
	}{
		{"exponential", 1, 1 * time.Second},
		{"exponential", 2, 2 * time.Second},
		{"exponential", 3, 4 * time.Second},
		{"exponential", 4, 8 * time.Second},
		{"exponential", 5, 16 * time.Second},
		{"exponential", 10, 512 * time.Second},
		{"linear", 1, 1 * time.Second},
		{"linear", 2, 2 * time.Second},
		{"linear", 3, 3 * time.Second},
		{"linear", 10, 10 * time.Second},
	} {
		if got := Backoff(c.kind, c.n); got != c.want {
			t.Errorf("Backoff(%q, %d) = %v, want %v", c.kind, c.n, got, c.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		res  *outbound.Response
		want time.Duration
	}{
		{nil, 0},
		{reply(429), 0},
		{reply(429, "Retry-After", "30"), 30 * time.Second},
		{reply(503, "Retry-After", " 2 "), 2 * time.Second},
		{reply(500, "Retry-After", "30"), 0}, // only 429 and 503 ask to wait
		{reply(200, "Retry-After", "30"), 0},
		{reply(429, "Retry-After", "-5"), 0},
		{reply(429, "Retry-After", "999999"), MaxRetryAfter},
		{reply(429, "Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), 90 * time.Second},
		{reply(503, "Retry-After", now.Add(-time.Minute).Format(http.TimeFormat)), 0},
		{reply(503, "Retry-After", now.Add(48*time.Hour).Format(http.TimeFormat)), MaxRetryAfter},
		{reply(429, "Retry-After", "soon"), 0},
	} {
		var v string
		code := 0
		if c.res != nil {
			v, code = c.res.Header.Get("Retry-After"), c.res.StatusCode
		}
		if got := retryAfter(c.res, now); got != c.want {
			t.Errorf("retryAfter(%d, %q) = %v, want %v", code, v, got, c.want)
		}
	}
}

// webhookArmed tells a task finish just ended from every later state of its webhook.
func TestWebhookArmed(t *testing.T) {
	t.Parallel()
	task := lcTask(withWebhook)
	finish(task, store.StatusCompleted, now)
	if !webhookArmed(task) || *task.DueAt != ms(webhookLease) {
		t.Fatal("a task just finished with an onCompleteUrl is not armed")
	}
	relet := *task
	later := ms(webhookLease + time.Second)
	relet.DueAt = &later // a timer took the lease again
	delivered := *task
	delivered.OnComplete = ptr(`{"status":"pending","attempts":1,"lastError":"HTTP 500"}`)
	none := lcTask()
	finish(none, store.StatusFailed, now)
	for name, c := range map[string]*store.Task{"lease taken again": &relet, "attempted": &delivered, "no webhook": none} {
		if webhookArmed(c) {
			t.Errorf("%s: armed", name)
		}
	}
	if none.DueAt != nil || none.OnComplete != nil {
		t.Errorf("no webhook: due %s onComplete %s", i64(none.DueAt), str(none.OnComplete))
	}
}

func TestAfterWebhook(t *testing.T) {
	t.Parallel()
	finished := func(attempts int) *store.Task {
		task := lcTask(withWebhook)
		finish(task, store.StatusCompleted, now.Add(-time.Minute))
		if attempts > 0 {
			b, _ := json.Marshal(webhookState{Status: "pending", Attempts: attempts, LastError: ptr("HTTP 500 - Internal Server Error")})
			task.OnComplete = ptr(string(b))
		}
		return task
	}
	for _, c := range []struct {
		name      string
		task      *store.Task
		errMsg    string
		permanent bool
		outcome   string
		state     webhookState
		due       string
	}{
		{"2xx", finished(0), "", false, "delivered", webhookState{Status: "delivered", Attempts: 1, LastError: nil}, "<nil>"},
		{"5xx, first try: again in 1 s", finished(0), "HTTP 500 - Internal Server Error", false, "retry",
			webhookState{Status: "pending", Attempts: 1, LastError: ptr("HTTP 500 - Internal Server Error")}, "1s"},
		{"network error, second try: 2 s", finished(1), "Network error: connection refused", false, "retry",
			webhookState{Status: "pending", Attempts: 2, LastError: ptr("Network error: connection refused")}, "2s"},
		{"third try: 4 s", finished(2), "HTTP 502 - Bad Gateway", false, "retry",
			webhookState{Status: "pending", Attempts: 3, LastError: ptr("HTTP 502 - Bad Gateway")}, "4s"},
		{"after the last retry: failed", finished(3), "HTTP 502 - Bad Gateway", false, "failed",
			webhookState{Status: "failed", Attempts: 4, LastError: ptr("HTTP 502 - Bad Gateway")}, "<nil>"},
		{"4xx: failed at once", finished(0), "HTTP 404 - Not Found", true, "failed",
			webhookState{Status: "failed", Attempts: 1, LastError: ptr("HTTP 404 - Not Found")}, "<nil>"},
		{"delivered after a retry", finished(1), "", false, "delivered", webhookState{Status: "delivered", Attempts: 2, LastError: nil}, "<nil>"},
	} {
		completedAt := *c.task.CompletedAt
		got, damaged := afterWebhook(c.task, &completedAt, c.errMsg, c.permanent, now)
		if damaged != nil {
			t.Errorf("%s: damaged: %v", c.name, damaged)
		}
		var st webhookState
		if err := json.Unmarshal([]byte(str(c.task.OnComplete)), &st); err != nil {
			t.Errorf("%s: onComplete %s: %v", c.name, str(c.task.OnComplete), err)
			continue
		}
		if got != c.outcome || st.Status != c.state.Status || st.Attempts != c.state.Attempts ||
			str(st.LastError) != str(c.state.LastError) || i64(c.task.DueAt) != c.due {
			t.Errorf("%s: got %q %+v lastError %s due %s", c.name, got, st, str(st.LastError), i64(c.task.DueAt))
		}
		if c.task.Status != store.StatusCompleted {
			t.Errorf("%s: the webhook changed the task's status to %s", c.name, c.task.Status)
		}
	}
	// Moot: the task was retried since, or finished again at another time.
	retried := finished(0)
	retried.Status = store.StatusFailed
	completedAt := *retried.CompletedAt
	if _, c := requestRetry(retried, now); c != nil {
		t.Fatal(c)
	}
	if got, _ := afterWebhook(retried, &completedAt, "", false, now); got != "" || retried.OnComplete != nil {
		t.Errorf("retried since: %q, onComplete %s", got, str(retried.OnComplete))
	}
	// A state that cannot be read: this delivery is counted as the first, and reported.
	damaged := finished(0)
	damaged.OnComplete = ptr("{")
	at := *damaged.CompletedAt
	if got, err := afterWebhook(damaged, &at, "", false, now); got != "delivered" || err == nil ||
		str(damaged.OnComplete) != `{"status":"delivered","attempts":1,"lastError":null}` {
		t.Errorf("damaged state: %q %v, onComplete %s", got, err, str(damaged.OnComplete))
	}
	again := finished(0)
	earlier := completedAt - 1000
	if got, _ := afterWebhook(again, &earlier, "", false, now); got != "" || str(again.OnComplete) != webhookArmedState {
		t.Errorf("an earlier end's delivery: %q, onComplete %s", got, str(again.OnComplete))
	}
}

func TestCallClass(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want string
	}{
		{&outbound.BlockedError{Addr: netip.MustParseAddr("10.0.0.1"), Reason: "private"}, "blocked"},
		{context.DeadlineExceeded, "timeout"},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, "timeout"},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "network"},
		{&net.DNSError{Name: "x.invalid", IsNotFound: true}, "network"},
		{errors.New("server closed the connection"), "network"},
		{context.Canceled, "error"},
		{&permanentError{"Invalid target URL: x"}, "error"},
	} {
		if got := callClass(c.err); got != c.want {
			t.Errorf("callClass(%v) = %q, want %q", c.err, got, c.want)
		}
		// The label agrees with the message the task would show.
		prefix := map[string]string{"blocked": "Blocked target", "timeout": "Request timeout", "network": "Network error"}[c.want]
		if msg := outbound.DescribeError(c.err, time.Second); !strings.HasPrefix(msg, prefix) {
			t.Errorf("%v: class %s, message %q", c.err, c.want, msg)
		}
	}
}

func TestTimerFired(t *testing.T) {
	t.Parallel()
	due := func(d time.Duration) func(*store.Task) { return func(t *store.Task) { t.DueAt = ptr(ms(d)) } }
	noTimer := func(t *store.Task) { t.DueAt = nil }
	finished := func(t *store.Task) {
		t.OnCompleteURL = ptr("https://example.com/done")
		finish(t, store.StatusFailed, now.Add(-webhookLease))
	}
	for _, c := range []struct {
		name   string
		task   *store.Task
		action timerAction
		status string
		due    string
	}{
		{"pending (reloaded)", lcTask(), timerQueued, store.StatusPending, "-1m0s"},
		{"delayed, due", lcTask(status(store.StatusDelayed), due(-time.Millisecond)), timerDueNow, store.StatusPending, "-1ms"},
		{"delayed, due later: stale", lcTask(status(store.StatusDelayed), due(time.Second)), timerStale, store.StatusDelayed, "1s"},
		{"no timer: stale", lcTask(status(store.StatusDelayed), noTimer), timerStale, store.StatusDelayed, "<nil>"},
		{"processing past its lease (shared store): runs again", lcTask(status(store.StatusProcessing), due(-time.Second)), timerLeaseEnded, store.StatusPending, "0s"},
		{"processing, lease to come", lcTask(status(store.StatusProcessing), due(time.Second)), timerStale, store.StatusProcessing, "1s"},
		{"waiting at maxWaitTime", lcTask(waitingFor(30*time.Second, 0)), timerExpired, store.StatusTimeout, "<nil>"},
		{"waiting at its heartbeat deadline", lcTask(waitingFor(10*time.Second, 10*time.Second)), timerExpired, store.StatusTimeout, "<nil>"},
		{"waiting, deadline to come", lcTask(waitingFor(10*time.Second, 0)), timerStale, store.StatusWaiting, "20s"},
		{"polling: poll under a lease", lcTask(pollingFor(5 * time.Second)), timerPoll, store.StatusPolling, "35s"},
		{"polling: the lease ends at maxDuration", lcTask(pollingFor(50*time.Second), due(0)), timerPoll, store.StatusPolling, "10s"},
		{"polling past maxDuration", lcTask(pollingFor(60 * time.Second)), timerExpired, store.StatusTimeout, "<nil>"},
		{"finished: webhook under a lease", lcTask(finished), timerWebhook, store.StatusFailed, webhookLease.String()},
		{"finished, webhook done, stray timer", lcTask(finished, func(t *store.Task) { t.OnComplete = nil }), timerStale, store.StatusFailed, "0s"},
	} {
		got := timerFired(c.task, now)
		if got != c.action || c.task.Status != c.status || i64(c.task.DueAt) != c.due {
			t.Errorf("%s: got action %d, %s due %s; want %d, %s due %s", c.name, got, c.task.Status, i64(c.task.DueAt), c.action, c.status, c.due)
		}
	}
}

func TestLease(t *testing.T) {
	t.Parallel()
	task := lcTask()
	task.TimeoutMS = 5000
	claim(task, now.UnixMilli())
	lease(task, now.UnixMilli())
	if got, want := i64(task.DueAt), (5*time.Second + store.LeaseSlack).String(); got != want {
		t.Fatalf("lease ends %s after now, want %s", got, want)
	}
	// The lease ends while the task is still processing: the claim's node is gone.
	late := now.Add(5*time.Second + store.LeaseSlack)
	if a := timerFired(task, late); a != timerLeaseEnded || task.Status != store.StatusPending || task.Attempts != 1 {
		t.Fatalf("at the lease's end: action %d, %s, attempts %d", a, task.Status, task.Attempts)
	}
}

func TestUnclaim(t *testing.T) {
	t.Parallel()
	task := lcTask()
	claim(task, ms(-time.Second))
	if !unclaim(task, now.UnixMilli()) || task.Status != store.StatusPending || task.Attempts != 0 || *task.DueAt != now.UnixMilli() {
		t.Errorf("processing: got %s attempts %d due %s", task.Status, task.Attempts, i64(task.DueAt))
	}
	for _, st := range []string{store.StatusPending, store.StatusDelayed, store.StatusWaiting, store.StatusCompleted, store.StatusCancelled} {
		task := lcTask(status(st))
		if unclaim(task, now.UnixMilli()) || task.Status != st {
			t.Errorf("%s: unclaimed", st)
		}
	}
}

func TestJudgeWebhook(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		res       *outbound.Response
		err       error
		msg       string
		permanent bool
	}{
		{reply(200), nil, "", false},
		{reply(204), nil, "", false},
		{reply(301), nil, "HTTP 301 - Moved Permanently", true},
		{reply(404), nil, "HTTP 404 - Not Found", true},
		{reply(429), nil, "HTTP 429 - Too Many Requests", true},
		{reply(500), nil, "HTTP 500 - Internal Server Error", false},
		{reply(503), nil, "HTTP 503 - Service Unavailable", false},
		{nil, context.DeadlineExceeded, "Request timeout after 10s", false},
		{nil, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "Network error: connection refused", false},
	} {
		code := 0
		if c.res != nil {
			code = c.res.StatusCode
		}
		if msg, perm := judgeWebhook(c.res, c.err); msg != c.msg || perm != c.permanent {
			t.Errorf("%d %v: got %q %v, want %q %v", code, c.err, msg, perm, c.msg, c.permanent)
		}
	}
}

func TestCreated(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		due    time.Time
		status string
		dueAt  string
	}{
		{"due now", now, store.StatusPending, "0s"},
		{"delayUntil in the past: now", now.Add(-time.Hour), store.StatusPending, "0s"},
		{"delayed", now.Add(90 * time.Second), store.StatusDelayed, "1m30s"},
		{"a fraction of a millisecond: rounded up", now.Add(1500 * time.Microsecond), store.StatusDelayed, "2ms"},
	} {
		task := &store.Task{}
		created(task, c.due, now)
		if task.Status != c.status || i64(task.DueAt) != c.dueAt {
			t.Errorf("%s: got %s due %s", c.name, task.Status, i64(task.DueAt))
		}
	}
}
