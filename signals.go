package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/iplimit"
	"github.com/asyncqueue/asyncqueue/internal/keys"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// signal is the body of POST /v1/signals/{token} and POST /v1/tasks/{id}/signal.
type signalBody struct {
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *string         `json:"error,omitempty"`
}

// DefaultSignalError is the error of a task failed by a signal that gave none.
const DefaultSignalError = "Failed by signal"

var (
	errBadToken     = &Error{http.StatusBadRequest, "Malformed signal token: expected 64 hexadecimal characters (0-9, a-f)"}
	errTokenUnknown = &Error{http.StatusNotFound, "Invalid or expired signal token"}
)

// parseSignal reads and validates a signal body and returns it with its canonical form,
// which is what "the same signal again" is compared by.
func parseSignal(r *http.Request) (*signalBody, string, error) {
	var sig signalBody
	if err := decodeJSON(r, &sig); err != nil {
		return nil, "", err
	}
	canon, err := checkSignal(&sig)
	if err != nil {
		return nil, "", err
	}
	return &sig, canon, nil
}

// checkSignal validates sig and puts it in its canonical form: the result compacted, no
// error on a completion, the default error on a failure that gives none.
func checkSignal(sig *signalBody) (canon string, err error) {
	if sig.Status != store.StatusCompleted && sig.Status != store.StatusFailed {
		return "", badRequest(`status must be "completed" or "failed", not %q`, sig.Status)
	}
	if len(sig.Result) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, sig.Result); err != nil {
			return "", badRequest("result must be valid JSON")
		}
		sig.Result = buf.Bytes()
		if string(sig.Result) == "null" {
			sig.Result = nil
		}
	}
	if sig.Status == store.StatusCompleted {
		sig.Error = nil
	} else {
		sig.Result = nil
		if sig.Error == nil || *sig.Error == "" {
			e := DefaultSignalError
			sig.Error = &e
		}
	}
	b, _ := json.Marshal(sig)
	return string(b), nil
}

// signalOutcome is what applying a signal did.
type signalOutcome struct {
	status   int // 200 or 202
	replayed bool
	task     *store.Task
	refused  *Error // answered after the commit (which may hold a timeout the signal ran into)
}

// applySignal resolves, buffers or refuses a signal (kind bySignal) or provider callback
// (byCallback, with its body as the event's detail) for task t, inside the write that read
// t, and writes what it did (receiveSignal).
func (a *App) applySignal(tx store.Tx, t *store.Task, sig *signalBody, canon, kind string, detail *string) (*signalOutcome, error) {
	now := time.Now()
	r, refused := receiveSignal(t, sig, canon, kind, detail, now)
	if err := a.commit(tx, t, r.change, now); err != nil {
		return nil, err
	}
	if refused != nil {
		return &signalOutcome{refused: a.refusal(refused, t)}, nil
	}
	out := &signalOutcome{status: http.StatusOK, replayed: r.replayed, task: t}
	if r.buffered {
		out.status = http.StatusAccepted
	}
	return out, nil
}

func (a *App) writeSignalOutcome(w http.ResponseWriter, o *signalOutcome) error {
	if o.refused != nil {
		return o.refused
	}
	if o.replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	resp := taskResponse{Task: a.taskJSON(o.task)}
	if o.status == http.StatusAccepted {
		resp.Buffered = true
	}
	return writeJSON(w, o.status, resp)
}

// signalByToken is POST /v1/signals/{token}: no API key, the token is the credential.
func (a *App) signalByToken(w http.ResponseWriter, r *http.Request) error {
	token := r.PathValue("token")
	if !keys.ValidToken(token) {
		return errBadToken
	}
	sig, canon, err := parseSignal(r)
	if err != nil {
		return err
	}
	h := keys.Hash(token)
	var out *signalOutcome
	err = a.store.Write(r.Context(), func(tx store.Tx) error {
		t, err := tx.TaskBySignal(h[:])
		if store.IsNotFound(err) {
			return errTokenUnknown
		} else if err != nil {
			return err
		}
		out, err = a.applySignal(tx, t, sig, canon, bySignal, nil)
		return err
	})
	if err != nil {
		return err
	}
	return a.writeSignalOutcome(w, out)
}

// signalTaskByID is POST /v1/tasks/{id}/signal: the same, with the API key.
func (a *App) signalTaskByID(w http.ResponseWriter, r *http.Request) error {
	id, err := taskIDParam(r)
	if err != nil {
		return err
	}
	sig, canon, bad := parseSignal(r)
	out, err := a.signalTeamTask(r.Context(), teamOf(r), id, sig, canon, bad)
	if err != nil {
		return err
	}
	return a.writeSignalOutcome(w, out)
}

// signalTeamTask applies a signal to task id of team, reading the task once inside the
// write. bad is why the signal's body was refused, if it was: it is answered only once the
// task is known to be the team's and to wait for signals, as the checks have always been
// ordered. A refusal (409) comes back as the error, after the write (which may hold a
// timeout the signal ran into) has committed. The API and the admin page both call it.
func (a *App) signalTeamTask(ctx context.Context, team, id string, sig *signalBody, canon string, bad error) (*signalOutcome, error) {
	var out *signalOutcome
	err := a.store.Write(ctx, func(tx store.Tx) error {
		t, err := tx.Task(id)
		if t, err = teamTask(t, err, team); err != nil {
			return err
		}
		if !t.WaitForSignal {
			return errorf(http.StatusConflict, "Task does not wait for a signal (create it with waitForSignal: true)")
		}
		if bad != nil {
			return bad
		}
		out, err = a.applySignal(tx, t, sig, canon, bySignal, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out.refused != nil {
		return nil, out.refused
	}
	return out, nil
}

// getSignal is GET /v1/signals/{token}: lets the token's holder check on it.
func (a *App) getSignal(w http.ResponseWriter, r *http.Request) error {
	token := r.PathValue("token")
	if !keys.ValidToken(token) {
		return errBadToken
	}
	h := keys.Hash(token)
	t, err := a.store.TaskBySignal(r.Context(), h[:])
	if store.IsNotFound(err) {
		return errTokenUnknown
	} else if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"task": map[string]any{
		"id": t.ID, "status": t.Status, "expiresAt": formatTime(t.ExpiresAt)}})
}

// heartbeat is POST /v1/signals/{token}/heartbeat: proof of life for a waiting task, with progress.
func (a *App) heartbeat(w http.ResponseWriter, r *http.Request) error {
	token := r.PathValue("token")
	if !keys.ValidToken(token) {
		return errBadToken
	}
	var body struct {
		Progress json.RawMessage `json:"progress"`
	}
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := decodeBytes(raw, &body); err != nil {
			return err
		}
	}
	// Compacted here, not in the writer; an invalid progress is refused at the same point
	// inside the write as before (after the token and status checks).
	var progress *string
	var progressErr error
	if len(body.Progress) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, body.Progress); err != nil {
			progressErr = badRequest("progress must be valid JSON")
		} else {
			p := buf.String()
			progress = &p
		}
	}
	h := keys.Hash(token)
	var done *store.Task
	var refused *Error
	err = a.store.Write(r.Context(), func(tx store.Tx) error {
		t, err := tx.TaskBySignal(h[:])
		if store.IsNotFound(err) {
			return errTokenUnknown
		} else if err != nil {
			return err
		}
		now := time.Now()
		c, conflict := receiveHeartbeat(t, progress, now)
		if conflict == nil && progressErr != nil {
			return progressErr
		}
		if err := a.commit(tx, t, c, now); err != nil {
			return err
		}
		if refused = a.refusal(conflict, t); refused == nil {
			done = t
		}
		return nil
	})
	if err != nil {
		return err
	}
	if refused != nil {
		return refused
	}
	return writeJSON(w, http.StatusOK, taskResponse{Task: a.taskJSON(done)})
}

// signalLimited applies the per-client-IP limit to every request of the signal endpoints,
// whatever its outcome.
func (a *App) signalLimited(h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return a.limited(a.signalLimit, "signal", h)
}

// limited applies a per-client-IP limit; the client IP is the socket peer unless a trusted
// proxy forwarded the request.
func (a *App) limited(l *iplimit.Limiter, what string, h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) (err error) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() { a.metrics.signal(what, rec.status, err) }()
		ip := iplimit.ClientIP(r, a.trusted)
		if ok, retry := l.Allow(ip); !ok {
			secs := int(retry.Round(time.Second) / time.Second)
			secs = max(secs, 1)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			return errorf(http.StatusTooManyRequests, "Too many %s requests from your address; retry in %d s", what, secs)
		}
		return h(rec, r)
	}
}
