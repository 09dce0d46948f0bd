package store

import (
	"encoding/json"
	"fmt"
)

// A task keeps some fields as JSON text (headers, on_complete, poll_config,
// buffered_signal, start_result …). These accessors decode them with the error checked:
// a column that does not decode is reported as a *CorruptError, never read as empty.

// CorruptError says a stored JSON column of a task does not decode.
type CorruptError struct {
	TaskID string
	Column string
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("task %s: stored %s does not decode: %v", e.TaskID, e.Column, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Webhook is the delivery state of a task's completion webhook (its on_complete column).
type Webhook struct {
	Status    string  `json:"status"` // pending, delivered or failed
	Attempts  int     `json:"attempts"`
	LastError *string `json:"lastError"`
}

// HeaderMap decodes the task's headers; nil when it has none.
func (t *Task) HeaderMap() (map[string]string, error) {
	if t.Headers == "{}" || t.Headers == "" { // most tasks: no decoder, no map
		return nil, nil
	}
	var h map[string]string
	if err := json.Unmarshal([]byte(t.Headers), &h); err != nil {
		return nil, &CorruptError{t.ID, "headers", err}
	}
	return h, nil
}

// WebhookState decodes the task's webhook delivery state; the zero Webhook when it has none.
func (t *Task) WebhookState() (Webhook, error) {
	var w Webhook
	err := t.DecodeJSON("on_complete", &w)
	return w, err
}

// DecodeJSON decodes the task's JSON column named column (poll_config, buffered_signal,
// start_result, result, signal, progress or on_complete) into v; v is left as it is when
// the column is null.
func (t *Task) DecodeJSON(column string, v any) error {
	var raw *string
	switch column {
	case "poll_config":
		raw = t.PollConfig
	case "buffered_signal":
		raw = t.BufferedSignal
	case "start_result":
		raw = t.StartResult
	case "result":
		raw = t.Result
	case "signal":
		raw = t.Signal
	case "progress":
		raw = t.Progress
	case "on_complete":
		raw = t.OnComplete
	default:
		return fmt.Errorf("store: task has no JSON column %q", column)
	}
	if raw == nil {
		return nil
	}
	if err := json.Unmarshal([]byte(*raw), v); err != nil {
		return &CorruptError{t.ID, column, err}
	}
	return nil
}
