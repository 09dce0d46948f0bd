package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

func testApp() *App {
	return &App{out: outbound.New(outbound.Options{Policy: &outbound.Policy{}})}
}

// TestNewTaskValidation checks each rule of SPEC §3.1: the status and that the message names the field.
func TestNewTaskValidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body   string
		status int
		field  string
	}{
		{`{}`, 400, "targetUrl"},
		{`{"targetUrl": ""}`, 400, "targetUrl"},
		{`{"targetUrl": "/relative"}`, 400, "targetUrl"},
		{`{"targetUrl": "ftp://example.com/x"}`, 400, "targetUrl"},
		{`{"targetUrl": "javascript:alert(1)"}`, 400, "targetUrl"},
		{`{"targetUrl": "https://example.com", "callbackUrl": "https://example.com"}`, 400, "callbackUrl"},
		{`{"targetUrl": "http://127.0.0.1:8080/"}`, 422, "--allow-private-targets"},
		{`{"targetUrl": "http://169.254.169.254/latest"}`, 422, "targetUrl"},
		{`{"targetUrl": "https://example.com", "onCompleteUrl": "http://10.0.0.1/"}`, 422, "onCompleteUrl"},
		{`{"targetUrl": "https://example.com", "method": "TRACE"}`, 400, "method"},
		// One limit for target URLs, named with the field (it once said 4096 and meant 2048).
		{`{"targetUrl": "https://example.com/` + strings.Repeat("a", 2100) + `"}`, 400, "targetUrl is longer than 2048 characters"},
		{`{"targetUrl": "https://example.com", "onCompleteUrl": "https://example.com/` + strings.Repeat("a", 3000) + `"}`, 400, "onCompleteUrl is longer than 2048"},
		{`{"targetUrl": "https://example.com", "timeout": 0}`, 400, "timeout"},
		{`{"targetUrl": "https://example.com", "timeout": 3601}`, 400, "timeout"},
		{`{"targetUrl": "https://example.com", "maxRetries": 11}`, 400, "maxRetries"},
		{`{"targetUrl": "https://example.com", "maxRetries": 1.5}`, 400, "maxRetries"},
		{`{"targetUrl": "https://example.com", "priority": 0}`, 400, "priority"},
		{`{"targetUrl": "https://example.com", "priority": 11}`, 400, "priority"},
		{`{"targetUrl": "https://example.com", "retryBackoff": "cubic"}`, 400, "retryBackoff"},
		{`{"targetUrl": "https://example.com", "maxWaitTime": 0}`, 400, "maxWaitTime"},
		{`{"targetUrl": "https://example.com", "maxWaitTime": 31536001}`, 400, "maxWaitTime"},
		{`{"targetUrl": "https://example.com", "delay": 5, "delayUntil": "2030-01-01T00:00:00Z"}`, 400, "delay"},
		{`{"targetUrl": "https://example.com", "delay": -1}`, 400, "delay"},
		{`{"targetUrl": "https://example.com", "delayUntil": "tomorrow"}`, 400, "delayUntil"},
		{`{"targetUrl": "https://example.com", "headers": {"Host": "x"}}`, 400, "Host"},
		{`{"targetUrl": "https://example.com", "headers": {"Content-Length": "1"}}`, 400, "Content-Length"},
		{`{"targetUrl": "https://example.com", "headers": {"Bad Name": "1"}}`, 400, "Bad Name"},
		{`{"targetUrl": "https://example.com", "headers": {"X-A": "a\r\nX-B: b"}}`, 400, "X-A"},
		{`{"targetUrl": "https://example.com", "headers": {"X-AsyncQueue-Task-Id": "x"}}`, 400, "X-AsyncQueue-Task-Id"},
		{`{"targetUrl": "https://example.com", "body": 12}`, 400, "body"},
		{`{"targetUrl": "https://example.com", "heartbeatTimeout": 5}`, 400, "heartbeatTimeout"},
		{`{"targetUrl": "https://example.com", "timeout": "30"}`, 400, "timeout"},
		{`{"targetUrl": "https://example.com", "waitForSignal": "yes"}`, 400, "waitForSignal"},
		{`{"targetURL": "https://example.com"}`, 400, "targetURL"},
		{`[1, 2]`, 400, "JSON object"},
		{`{"targetUrl": "https://example.com"} {}`, 400, "one JSON object"},
		{`{"targetUrl": `, 400, "JSON"},
		{``, 400, "JSON object"},
	}
	a := testApp()
	for _, c := range cases {
		var req createRequest
		err := decodeBytes([]byte(c.body), &req)
		if err == nil {
			_, err = a.newTask(&req, "team", time.Now())
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: error %v, want an *Error with status %d", c.body, err, c.status)
			continue
		}
		if e.Status != c.status || !strings.Contains(e.Message, c.field) {
			t.Errorf("%s: %d %q, want %d naming %q", c.body, e.Status, e.Message, c.status, c.field)
		}
	}
}

func TestNewTaskDefaults(t *testing.T) {
	t.Parallel()
	a := testApp()
	now := time.Now()
	var req createRequest
	if err := decodeBytes([]byte(`{"callbackUrl": "https://example.com/x", "body": {"a": 1}}`), &req); err != nil {
		t.Fatal(err)
	}
	task, err := a.newTask(&req, "team", now)
	if err != nil {
		t.Fatal(err)
	}
	if task.TargetURL != "https://example.com/x" || task.Method != http.MethodPost || task.TimeoutMS != 30000 ||
		task.MaxRetries != 3 || task.RetryBackoff != "exponential" || task.Priority != 5 || task.MaxWaitMS != 30000 ||
		task.Status != store.StatusPending || task.WaitForSignal || *task.Body != `{"a":1}` {
		b, _ := json.Marshal(task)
		t.Errorf("defaults wrong: %s", b)
	}

	// null stands for "absent" for provider and pollConfig alike: a plain task.
	req = createRequest{}
	if err := decodeBytes([]byte(`{"targetUrl": "https://example.com/x", "provider": null, "pollConfig": null}`), &req); err != nil {
		t.Fatal(err)
	}
	if task, err = a.newTask(&req, "team", now); err != nil || task.PollConfig != nil || task.Provider != nil {
		t.Errorf("provider and pollConfig null: %v, %+v; want a plain task", err, task)
	}

	req = createRequest{}
	if err := decodeBytes([]byte(`{"targetUrl": "https://example.com/x", "delay": 2.5}`), &req); err != nil {
		t.Fatal(err)
	}
	task, err = a.newTask(&req, "team", now)
	if err != nil {
		t.Fatal(err)
	}
	// The due time is rounded up to the millisecond, so the timer never fires early.
	if task.Status != store.StatusDelayed || *task.DueAt != now.Add(2500*time.Millisecond+time.Millisecond-1).UnixMilli() {
		t.Errorf("delay 2.5: status %s due %d", task.Status, *task.DueAt)
	}

	req = createRequest{}
	if err := decodeBytes([]byte(`{"targetUrl": "https://example.com/x", "delayUntil": "2001-01-01T00:00:00Z"}`), &req); err != nil {
		t.Fatal(err)
	}
	if task, err = a.newTask(&req, "team", now); err != nil || task.Status != store.StatusPending {
		t.Errorf("delayUntil in the past: %v %v, want pending now", task, err)
	}
}

func TestRedactPath(t *testing.T) {
	t.Parallel()
	tok := strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		"/v1/signals/" + tok:                "/v1/signals/[REDACTED]",
		"/v1/signals/" + tok + "/heartbeat": "/v1/signals/[REDACTED]/heartbeat",
		"/v1/callbacks/" + tok:              "/v1/callbacks/[REDACTED]",
		"/v1/tasks/x":                       "/v1/tasks/x",
	} {
		if got := redactPath(in); got != want {
			t.Errorf("redactPath(%q) = %q, want %q", in, got, want)
		}
	}
}
