package store

import (
	"encoding/json"
	"fmt"
)

// Task statuses.
const (
	StatusPending    = "pending"
	StatusDelayed    = "delayed"
	StatusProcessing = "processing"
	StatusWaiting    = "waiting"
	StatusPolling    = "polling"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusTimeout    = "timeout"
	StatusCancelled  = "cancelled"
)

// Terminal reports whether status is final.
func Terminal(status string) bool {
	switch status {
	case StatusCompleted, StatusFailed, StatusTimeout, StatusCancelled:
		return true
	}
	return false
}

// Task is one row of the tasks table. Times are Unix milliseconds; JSON columns are raw text.
type Task struct {
	ID                 string  `db:"id"`
	TeamID             string  `db:"team_id"`
	Status             string  `db:"status"`
	TargetURL          string  `db:"target_url"`
	TargetHost         string  `db:"target_host"`
	Method             string  `db:"method"`
	Headers            string  `db:"headers"`
	Body               *string `db:"body"`
	TimeoutMS          int64   `db:"timeout_ms"`
	DelayUntil         *int64  `db:"delay_until"`
	MaxRetries         int     `db:"max_retries"`
	RetryBackoff       string  `db:"retry_backoff"`
	Priority           int     `db:"priority"`
	OnCompleteURL      *string `db:"on_complete_url"`
	WaitForSignal      bool    `db:"wait_for_signal"`
	MaxWaitMS          int64   `db:"max_wait_ms"`
	HeartbeatTimeoutMS *int64  `db:"heartbeat_timeout_ms"`
	RetryCount         int     `db:"retry_count"`
	Attempts           int     `db:"attempts"`
	StartResult        *string `db:"start_result"`
	Result             *string `db:"result"`
	Error              *string `db:"error"`
	SignalHash         []byte  `db:"signal_hash"`
	CallbackHash       []byte  `db:"callback_hash"`
	CallbackNonce      []byte  `db:"callback_nonce"`
	Provider           *string `db:"provider"`
	PollConfig         *string `db:"poll_config"`
	PollCount          int     `db:"poll_count"`
	Signal             *string `db:"signal"`
	BufferedSignal     *string `db:"buffered_signal"`
	Progress           *string `db:"progress"`
	LastHeartbeatAt    *int64  `db:"last_heartbeat_at"`
	OnComplete         *string `db:"on_complete"`
	CreatedAt          int64   `db:"created_at"`
	StartedAt          *int64  `db:"started_at"`
	WaitingSince       *int64  `db:"waiting_since"`
	ExpiresAt          *int64  `db:"expires_at"`
	CompletedAt        *int64  `db:"completed_at"`
	DueAt              *int64  `db:"due_at"`
	FlowKey            *string `db:"flow_key"`    // as given at create; nil: the target's origin
	ScheduleID         *string `db:"schedule_id"` // the schedule whose run made the task

}

// Attempt is one row of the attempts table.
type Attempt struct {
	TaskID     string  `db:"task_id" json:"-"`
	Attempt    int     `db:"attempt" json:"attempt"`
	StartedAt  int64   `db:"started_at" json:"-"`
	DurationMS int64   `db:"duration_ms" json:"duration"`
	StatusCode *int    `db:"status_code" json:"statusCode"`
	Error      *string `db:"error" json:"error"`
	// ResponseBody is the start of a failed call's answer (a 5xx, a 429), kept to show why.
	ResponseBody *string `db:"response_body" json:"responseBody"`
}

// ListFilter selects tasks for List.
type ListFilter struct {
	TeamID        string
	Statuses      []string
	CreatedAfter  int64 // ms, 0 = none
	CreatedBefore int64
	TargetHost    string
	ScheduleID    string
	Limit, Offset int
	// MaxField, when above 0, bounds what a page holds: a large column (headers, body,
	// results, progress, signals, error) longer than this many bytes is read as empty
	// ('{}' for headers, null for the rest) and named in ListedTask.Omitted.
	MaxField int
}

// ListedTask is a task of a page, with the columns its page left out.
type ListedTask struct {
	Task
	Omitted string `db:"omitted"` // comma-separated column names, "" when none
}

// Timer is a task's durable due time.
type Timer struct {
	ID    string `db:"id"`
	DueAt int64  `db:"due_at"`
}

// Event is something a task received from outside: a signal, a heartbeat, a provider callback.
type Event struct {
	ID     int64   `db:"id" json:"-"`
	TaskID string  `db:"task_id" json:"-"`
	At     int64   `db:"at" json:"-"`
	Kind   string  `db:"kind" json:"kind"`
	Detail *string `db:"detail" json:"-"`
	// DetailOmitted says EventsBounded left out a detail longer than its bound.
	DetailOmitted bool `db:"detail_omitted" json:"-"`
}

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
	err := t.DecodeJSON("on_complete", t.OnComplete, &w)
	return w, err
}

// DecodeJSON decodes raw, the task's JSON-text column named column (for the error), into
// v; v is left as it is when the column is null.
func (t *Task) DecodeJSON(column string, raw *string, v any) error {
	if raw == nil {
		return nil
	}
	if err := json.Unmarshal([]byte(*raw), v); err != nil {
		return &CorruptError{t.ID, column, err}
	}
	return nil
}
