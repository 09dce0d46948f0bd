package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// The service functions behind the API routes and the admin actions, called directly.

// statusOf is the HTTP status an error from a service function answers with (200 for nil).
func statusOf(err error) int {
	var e *Error
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &e):
		return e.Status
	}
	return -1 // not an *Error: an internal failure
}

func TestServiceCancelAndRetry(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	other, _ := e.newTeam("other")
	ctx := context.Background()
	missing := uuid.NewString()
	finished := func(st string) func(*store.Task) {
		return func(t *store.Task) {
			now := store.NowMS()
			t.Status, t.CompletedAt, t.DueAt, t.DelayUntil = st, &now, nil, nil
		}
	}
	for _, c := range []struct {
		name   string
		team   string // the task's team; the call is made for e.teamID
		mut    func(*store.Task)
		cancel int    // the status cancel answers with
		then   string // the task's status after it
	}{
		{"delayed", e.teamID, nil, http.StatusOK, store.StatusCancelled},
		{"pending", e.teamID, func(t *store.Task) { t.Status = store.StatusPending }, http.StatusOK, store.StatusCancelled},
		{"waiting", e.teamID, func(t *store.Task) { t.Status, t.WaitForSignal = store.StatusWaiting, true }, http.StatusOK, store.StatusCancelled},
		{"completed", e.teamID, finished(store.StatusCompleted), http.StatusConflict, store.StatusCompleted},
		{"processing", e.teamID, func(t *store.Task) { t.Status = store.StatusProcessing }, http.StatusConflict, store.StatusProcessing},
		{"another team's", other, nil, http.StatusForbidden, store.StatusDelayed},
	} {
		task := e.insertTask(c.team, c.mut)
		got, err := e.a.cancelTeamTask(ctx, e.teamID, task.ID)
		if statusOf(err) != c.cancel {
			t.Errorf("cancel %s: %v (%d), want %d", c.name, err, statusOf(err), c.cancel)
		}
		if err == nil && (got == nil || got.Status != store.StatusCancelled) {
			t.Errorf("cancel %s: returned %+v", c.name, got)
		}
		if st := e.task(task.ID).Status; st != c.then {
			t.Errorf("cancel %s: stored status %s, want %s", c.name, st, c.then)
		}
	}
	if _, err := e.a.cancelTeamTask(ctx, e.teamID, missing); statusOf(err) != http.StatusNotFound {
		t.Errorf("cancel of an unknown task: %v", err)
	}
	if _, err := e.a.cancelTeamTask(ctx, e.teamID, e.insertTask(e.teamID, finished(store.StatusCancelled)).ID); err == nil ||
		err.Error() != "Task cannot be cancelled (current: cancelled)" {
		t.Errorf("cancel of a cancelled task: %v", err)
	}

	for _, c := range []struct {
		name  string
		team  string
		mut   func(*store.Task)
		retry int
		token bool // a new signal token comes back
	}{
		{"failed", e.teamID, finished(store.StatusFailed), http.StatusOK, false},
		{"timed out", e.teamID, finished(store.StatusTimeout), http.StatusOK, false},
		{"cancelled, waits for a signal", e.teamID, func(t *store.Task) {
			finished(store.StatusCancelled)(t)
			t.WaitForSignal = true
		}, http.StatusOK, true},
		{"completed", e.teamID, finished(store.StatusCompleted), http.StatusConflict, false},
		{"delayed", e.teamID, nil, http.StatusConflict, false},
		{"another team's", other, finished(store.StatusFailed), http.StatusForbidden, false},
	} {
		task := e.insertTask(c.team, c.mut)
		got, token, err := e.a.retryTeamTask(ctx, e.teamID, task.ID)
		if statusOf(err) != c.retry {
			t.Errorf("retry %s: %v (%d), want %d", c.name, err, statusOf(err), c.retry)
			continue
		}
		if (token != "") != c.token {
			t.Errorf("retry %s: token %q, want one: %v", c.name, token, c.token)
		}
		if err != nil {
			if got != nil || e.task(task.ID).Status != task.Status {
				t.Errorf("retry %s refused but the task changed: %+v", c.name, got)
			}
			continue
		}
		if got.Status != store.StatusPending || got.CompletedAt != nil || got.DueAt == nil {
			t.Errorf("retry %s: returned %+v", c.name, got)
		}
	}
	if _, _, err := e.a.retryTeamTask(ctx, e.teamID, missing); statusOf(err) != http.StatusNotFound {
		t.Errorf("retry of an unknown task: %v", err)
	}
}

func TestServiceSignal(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	other, _ := e.newTeam("other")
	ctx := context.Background()
	badBody := badRequest("result must be valid JSON")
	waits := func(st string) func(*store.Task) {
		return func(t *store.Task) { t.Status, t.WaitForSignal = st, true }
	}
	for _, c := range []struct {
		name   string
		task   func() string // the task's id
		bad    error
		status int    // 200, 202, or the refusal's status
		then   string // the stored status after, "" to skip
	}{
		{"waiting", func() string { return e.waitingTask(e.teamID).ID }, nil, http.StatusOK, store.StatusCompleted},
		{"pending: buffered", func() string { return e.insertTask(e.teamID, waits(store.StatusPending)).ID }, nil, http.StatusAccepted, store.StatusPending},
		{"processing: buffered", func() string { return e.insertTask(e.teamID, waits(store.StatusProcessing)).ID }, nil, http.StatusAccepted, store.StatusProcessing},
		{"does not wait", func() string { return e.insertTask(e.teamID, nil).ID }, nil, http.StatusConflict, store.StatusDelayed},
		{"already failed", func() string {
			return e.insertTask(e.teamID, func(t *store.Task) {
				waits(store.StatusFailed)(t)
				t.DueAt, t.DelayUntil = nil, nil
			}).ID
		}, nil, http.StatusConflict, store.StatusFailed},
		{"another team's", func() string { return e.waitingTask(other).ID }, nil, http.StatusForbidden, store.StatusWaiting},
		{"unknown, bad body", uuid.NewString, badBody, http.StatusNotFound, ""},
		{"another team's, bad body", func() string { return e.waitingTask(other).ID }, badBody, http.StatusForbidden, store.StatusWaiting},
		{"does not wait, bad body", func() string { return e.insertTask(e.teamID, nil).ID }, badBody, http.StatusConflict, store.StatusDelayed},
		{"waiting, bad body", func() string { return e.waitingTask(e.teamID).ID }, badBody, http.StatusBadRequest, store.StatusWaiting},
	} {
		id := c.task()
		sig := &signalBody{Status: store.StatusCompleted, Result: json.RawMessage(`{"ok": true}`)}
		canon, err := checkSignal(sig)
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.a.signalTeamTask(ctx, e.teamID, id, sig, canon, c.bad)
		got := statusOf(err)
		if err == nil {
			got = out.status
		}
		if got != c.status {
			t.Errorf("%s: %d (%v), want %d", c.name, got, err, c.status)
		}
		if c.then != "" {
			if st := e.task(id).Status; st != c.then {
				t.Errorf("%s: stored status %s, want %s", c.name, st, c.then)
			}
		}
	}
}

func TestCheckSignal(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		sig   signalBody
		canon string // "" when refused
	}{
		{signalBody{Status: "completed", Result: json.RawMessage(`{ "a" : 1 }`)}, `{"status":"completed","result":{"a":1}}`},
		{signalBody{Status: "completed", Result: json.RawMessage(`null`), Error: str("x")}, `{"status":"completed"}`},
		{signalBody{Status: "failed", Result: json.RawMessage(`1`)}, `{"status":"failed","error":"Failed by signal"}`},
		{signalBody{Status: "failed", Error: str("")}, `{"status":"failed","error":"Failed by signal"}`},
		{signalBody{Status: "failed", Error: str("no")}, `{"status":"failed","error":"no"}`},
		{signalBody{Status: "done"}, ""},
		{signalBody{Status: "completed", Result: json.RawMessage(`{`)}, ""},
	} {
		sig := c.sig
		canon, err := checkSignal(&sig)
		if c.canon == "" {
			if statusOf(err) != http.StatusBadRequest {
				t.Errorf("%+v: %q %v, want 400", c.sig, canon, err)
			}
			continue
		}
		if err != nil || canon != c.canon {
			t.Errorf("%+v: %q %v, want %q", c.sig, canon, err, c.canon)
		}
	}
}

func TestServiceVaultTokens(t *testing.T) {
	t.Parallel()
	e := setupAdmin(t)
	other, _ := e.newTeam("other")
	ctx := context.Background()
	for _, c := range []struct {
		name, value string
		status      int
	}{
		{"  api  ", "secret", http.StatusOK},
		{"   ", "secret", http.StatusBadRequest},
		{strings.Repeat("n", MaxTokenName+1), "secret", http.StatusBadRequest},
		{"big", strings.Repeat("v", MaxTokenValue+1), http.StatusBadRequest},
		{"empty", "", http.StatusBadRequest},
		{"crlf", "a\r\nX-Injected: 1", http.StatusBadRequest},
		{"control", "a\x01b", http.StatusBadRequest},
	} {
		v, err := e.a.storeToken(ctx, e.teamID, c.name, c.value)
		if statusOf(err) != c.status {
			t.Errorf("store %q: %v, want %d", c.name, err, c.status)
		}
		if err == nil && (v.Name != strings.TrimSpace(c.name) || v.TeamID != e.teamID) {
			t.Errorf("store %q: %+v", c.name, v)
		}
	}
	v, err := e.a.storeToken(ctx, e.teamID, "mine", "secret")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		team, id string
		status   int
	}{
		{e.teamID, "nope", http.StatusBadRequest},
		{other, v.ID, http.StatusNotFound}, // another team cannot delete it
		{e.teamID, v.ID, http.StatusOK},
		{e.teamID, v.ID, http.StatusNotFound}, // gone
	} {
		if err := e.a.destroyToken(ctx, c.team, c.id); statusOf(err) != c.status {
			t.Errorf("destroy %s as %s: %v, want %d", c.id, c.team, err, c.status)
		}
	}
}

func TestAnswerFor(t *testing.T) {
	t.Parallel()
	var logged strings.Builder
	a := &App{log: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, c := range []struct {
		err       error
		status    int // 0: nothing to answer
		message   string
		closeConn bool
		logs      string
	}{
		{errTaskNotFound, http.StatusNotFound, "Task not found", false, ""},
		{fmt.Errorf("write: %w", errorf(http.StatusConflict, "busy")), http.StatusConflict, "busy", false, ""},
		{&http.MaxBytesError{Limit: 10}, http.StatusRequestEntityTooLarge, "Request body is larger than 10 bytes", true, ""},
		{fmt.Errorf("read: %w", context.Canceled), 0, "", false, ""},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), http.StatusRequestTimeout, "Request body was not received in time", true, "request timed out"},
		{errors.New("disk on fire"), http.StatusInternalServerError, "Internal error", false, "disk on fire"},
	} {
		logged.Reset()
		r := httptest.NewRequest("POST", "/v1/signals/"+strings.Repeat("ab", 32), nil)
		e, closeConn := a.answerFor(r, c.err, "request failed")
		switch {
		case c.status == 0 && e != nil:
			t.Errorf("%v: answered %+v, want nothing", c.err, e)
		case c.status != 0 && (e == nil || e.Status != c.status || e.Message != c.message):
			t.Errorf("%v: %+v, want %d %q", c.err, e, c.status, c.message)
		case closeConn != c.closeConn:
			t.Errorf("%v: closeConn %v", c.err, closeConn)
		}
		if c.logs == "" && logged.Len() > 0 || !strings.Contains(logged.String(), c.logs) {
			t.Errorf("%v: logged %q, want %q", c.err, logged.String(), c.logs)
		}
		if strings.Contains(logged.String(), strings.Repeat("ab", 32)) {
			t.Errorf("%v: the log shows the signal token: %s", c.err, logged.String())
		}
	}
}
