package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Task statuses. The last four are terminal.
const (
	StatusPending    = "pending"    // due, waiting for a worker
	StatusDelayed    = "delayed"    // not due yet
	StatusProcessing = "processing" // callback in flight
	StatusWaiting    = "waiting"    // callback answered; waiting for a signal or provider callback
	StatusPolling    = "polling"    // polling a provider
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusTimeout    = "timeout"
	StatusCancelled  = "cancelled"
)

// Terminal reports whether status is final: completed, failed, timeout or cancelled.
func Terminal(status string) bool {
	switch status {
	case StatusCompleted, StatusFailed, StatusTimeout, StatusCancelled:
		return true
	}
	return false
}

// MaxWait is the longest the server holds one long poll (GET /v1/tasks/:id?wait=N).
const MaxWait = 25 * time.Second

// Task is a task as the API shows it. Durations are in seconds, as in the API.
type Task struct {
	ID               string            `json:"id"`
	TeamID           string            `json:"teamId"`
	Status           string            `json:"status"`
	TargetURL        string            `json:"targetUrl"`
	Method           string            `json:"method"`
	Headers          map[string]string `json:"headers"` // vault references (tok_…) stay as they are
	Body             *string           `json:"body"`
	Timeout          float64           `json:"timeout"` // seconds
	DelayUntil       *time.Time        `json:"delayUntil"`
	MaxRetries       int               `json:"maxRetries"`
	RetryBackoff     string            `json:"retryBackoff"`
	Priority         int               `json:"priority"`
	FlowKey          string            `json:"flowKey"` // the flow its calls belong to (see Flows)
	OnCompleteURL    *string           `json:"onCompleteUrl"`
	WaitForSignal    bool              `json:"waitForSignal"`
	MaxWaitTime      float64           `json:"maxWaitTime"`      // seconds
	HeartbeatTimeout *float64          `json:"heartbeatTimeout"` // seconds
	RetryCount       int               `json:"retryCount"`
	// StartResult is the callback's answer of a wait/signal or polling task (see CallResult).
	StartResult json.RawMessage `json:"startResult"`
	// Result is the callback's answer of a plain task (see CallResult), or the result a
	// signal or provider gave.
	Result          json.RawMessage  `json:"result"`
	Error           *string          `json:"error"`
	Progress        json.RawMessage  `json:"progress"` // from the last heartbeat
	LastHeartbeatAt *time.Time       `json:"lastHeartbeatAt"`
	BufferedSignal  json.RawMessage  `json:"bufferedSignal"` // a signal that arrived before the callback was answered
	OnComplete      *WebhookDelivery `json:"onComplete"`
	Provider        *string          `json:"provider"`
	PollConfig      *PollConfig      `json:"pollConfig"`
	CallbackID      *string          `json:"callbackId"`
	CreatedAt       time.Time        `json:"createdAt"`
	StartedAt       *time.Time       `json:"startedAt"`
	WaitingSince    *time.Time       `json:"waitingSince"`
	ExpiresAt       *time.Time       `json:"expiresAt"`
	CompletedAt     *time.Time       `json:"completedAt"`
	ScheduleID      *string          `json:"scheduleId"` // the schedule whose run made it
	// Omitted names the fields a list page left out of this task because they are
	// longer than 16 KiB (ListTasks only); GetTask returns them.
	Omitted []string `json:"omitted,omitempty"`
}

// Terminal reports whether the task has reached a final status.
func (t *Task) Terminal() bool { return Terminal(t.Status) }

// UnmarshalJSON decodes a task; JSON null leaves the json.RawMessage fields nil.
func (t *Task) UnmarshalJSON(b []byte) error {
	type plain Task // without this method
	if err := json.Unmarshal(b, (*plain)(t)); err != nil {
		return err
	}
	for _, f := range []*json.RawMessage{&t.StartResult, &t.Result, &t.Progress, &t.BufferedSignal} {
		if string(*f) == "null" {
			*f = nil
		}
	}
	return nil
}

// CallResult is the recorded answer of a callback: Task.Result of a plain task,
// Task.StartResult of a wait/signal or polling task.
type CallResult struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
	DurationMS int64             `json:"duration"`            // milliseconds
	Truncated  bool              `json:"truncated,omitempty"` // the body was cut to the stored limit
}

// CallResult decodes Result as a callback answer; nil when the task has no result.
func (t *Task) CallResult() (*CallResult, error) { return callResult(t.Result) }

// StartCallResult decodes StartResult; nil when the task has none.
func (t *Task) StartCallResult() (*CallResult, error) { return callResult(t.StartResult) }

func callResult(raw json.RawMessage) (*CallResult, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var r CallResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("asyncqueue: result is not a callback answer: %w", err)
	}
	return &r, nil
}

// WebhookDelivery is the state of a task's onCompleteUrl webhook.
type WebhookDelivery struct {
	Status    string  `json:"status"` // pending, delivered or failed
	Attempts  int     `json:"attempts"`
	LastError *string `json:"lastError"`
}

// PollConfig tells asyncqueue how to poll a provider until its job is done. In a
// CreateTaskRequest that also names a Provider, the fields set here override the template's.
type PollConfig struct {
	URLTemplate       string   `json:"urlTemplate,omitempty"` // with {startResult.body.<path>} placeholders
	Interval          float64  `json:"interval,omitempty"`    // seconds
	StatusPath        string   `json:"statusPath,omitempty"`
	DoneValues        []string `json:"doneValues,omitempty"`
	FailValues        []string `json:"failValues,omitempty"`
	ResultPath        string   `json:"resultPath,omitempty"`
	ResultURLTemplate string   `json:"resultUrlTemplate,omitempty"`
	ErrorPath         string   `json:"errorPath,omitempty"`
	ForwardAuth       bool     `json:"forwardAuth,omitempty"`
	AuthHeaders       []string `json:"authHeaders,omitempty"`
	MaxDuration       float64  `json:"maxDuration,omitempty"` // seconds
}

// CreateTaskRequest is the body of POST /v1/tasks. Zero values leave a field to the
// server's default (noted per field).
type CreateTaskRequest struct {
	TargetURL string            // required: the absolute http(s) URL to call
	Method    string            // default POST
	Headers   map[string]string // values "tok_…" are resolved from the Token Vault when sending
	Body      string            // sent as is; none when empty
	Timeout   time.Duration     // per attempt, default 30 s
	// Delay or DelayUntil hold the task back; give at most one.
	Delay         time.Duration
	DelayUntil    time.Time
	MaxRetries    *int   // default 3; use Ptr(0) for no retries
	RetryBackoff  string // "exponential" (default) or "linear"
	Priority      int    // 1…10, default 5; higher runs first
	FlowKey       string // share a flow's limits with other tasks; default: the target's origin
	OnCompleteURL string // signed webhook on the final status
	WaitForSignal bool
	MaxWaitTime   time.Duration // how long the task may wait for its signal; default 30 s
	// HeartbeatTimeout times a waiting task out when no heartbeat or signal comes this often.
	HeartbeatTimeout time.Duration
	Provider         string      // a template of Providers
	PollConfig       *PollConfig // custom polling

	// IdempotencyKey is sent as the Idempotency-Key header: within 24 h the same key returns
	// the first task (CreateTaskResponse.Replayed) instead of creating another.
	IdempotencyKey string
}

// Ptr returns a pointer to v, for optional fields such as CreateTaskRequest.MaxRetries.
func Ptr[T any](v T) *T { return &v }

// MarshalJSON writes the request as the API expects it: durations in seconds, times in RFC 3339.
func (r CreateTaskRequest) MarshalJSON() ([]byte, error) {
	secs := func(d time.Duration) *float64 {
		if d == 0 {
			return nil
		}
		s := d.Seconds()
		return &s
	}
	var until *string
	if !r.DelayUntil.IsZero() {
		s := r.DelayUntil.UTC().Format(time.RFC3339Nano)
		until = &s
	}
	var body *string
	if r.Body != "" {
		body = &r.Body
	}
	return json.Marshal(struct {
		TargetURL        string            `json:"targetUrl"`
		Method           string            `json:"method,omitempty"`
		Headers          map[string]string `json:"headers,omitempty"`
		Body             *string           `json:"body,omitempty"`
		Timeout          *float64          `json:"timeout,omitempty"`
		DelayUntil       *string           `json:"delayUntil,omitempty"`
		Delay            *float64          `json:"delay,omitempty"`
		MaxRetries       *int              `json:"maxRetries,omitempty"`
		RetryBackoff     string            `json:"retryBackoff,omitempty"`
		Priority         int               `json:"priority,omitempty"`
		FlowKey          string            `json:"flowKey,omitempty"`
		OnCompleteURL    string            `json:"onCompleteUrl,omitempty"`
		WaitForSignal    bool              `json:"waitForSignal,omitempty"`
		MaxWaitTime      *float64          `json:"maxWaitTime,omitempty"`
		HeartbeatTimeout *float64          `json:"heartbeatTimeout,omitempty"`
		Provider         string            `json:"provider,omitempty"`
		PollConfig       *PollConfig       `json:"pollConfig,omitempty"`
	}{
		r.TargetURL, r.Method, r.Headers, body, secs(r.Timeout), until, secs(r.Delay), r.MaxRetries,
		r.RetryBackoff, r.Priority, r.FlowKey, r.OnCompleteURL, r.WaitForSignal, secs(r.MaxWaitTime),
		secs(r.HeartbeatTimeout), r.Provider, r.PollConfig,
	})
}

// CreateTaskResponse is the answer of CreateTask and RetryTask.
type CreateTaskResponse struct {
	Task *Task `json:"task"`
	// SignalToken resolves a wait/signal task (Client.Signal). It is shown only in this
	// answer: keep it. Never repeated on an idempotent replay.
	SignalToken string `json:"signalToken,omitempty"`
	// CallbackURL is where a provider reports back, for tasks that use {asyncqueue_callback_url}.
	CallbackURL string `json:"callbackUrl,omitempty"`
	// Replayed is true when an IdempotencyKey matched an earlier task, which is returned.
	Replayed bool `json:"-"`
}

// CreateTask creates a task (POST /v1/tasks). A nil error means the task is stored durably.
func (c *Client) CreateTask(ctx context.Context, req CreateTaskRequest) (*CreateTaskResponse, error) {
	r := &Request{Method: http.MethodPost, Path: "/v1/tasks", Body: req}
	if req.IdempotencyKey != "" {
		r.Header = http.Header{"Idempotency-Key": {req.IdempotencyKey}}
	}
	var out CreateTaskResponse
	res, err := c.Do(ctx, r, &out)
	if err != nil {
		return nil, err
	}
	out.Replayed = res.Header.Get("Idempotent-Replayed") == "true"
	return &out, nil
}

type taskEnvelope struct {
	Task *Task `json:"task"`
}

func (c *Client) task(ctx context.Context, method, path string, body any) (*Task, error) {
	var out taskEnvelope
	if _, err := c.Do(ctx, &Request{Method: method, Path: path, Body: body}, &out); err != nil {
		return nil, err
	}
	return out.Task, nil
}

func taskPath(id string, rest ...string) string {
	return "/v1/tasks/" + url.PathEscape(id) + strings.Join(rest, "")
}

// GetTask reads a task (GET /v1/tasks/:id).
func (c *Client) GetTask(ctx context.Context, id string) (*Task, error) {
	return c.task(ctx, http.MethodGet, taskPath(id), nil)
}

// WaitTask reads a task, holding the request until its status changes or wait has passed
// (long poll, GET /v1/tasks/:id?wait=N). The wait is counted in whole seconds; the server
// holds one request at most MaxWait, so a longer wait is made of several requests. A
// terminal task is answered at once.
func (c *Client) WaitTask(ctx context.Context, id string, wait time.Duration) (*Task, error) {
	t, _, err := c.WaitTaskJSON(ctx, id, wait)
	return t, err
}

// WaitTaskJSON is WaitTask that also returns the server's last answer exactly as it was
// written ({"task": …}), for callers that show the server's own JSON.
func (c *Client) WaitTaskJSON(ctx context.Context, id string, wait time.Duration) (*Task, json.RawMessage, error) {
	if wait <= 0 {
		return c.taskJSON(ctx, taskPath(id))
	}
	deadline := time.Now().Add(wait)
	var first *Task
	if wait > MaxWait {
		// Several polls: learn the status they must see change.
		t, raw, err := c.taskJSON(ctx, taskPath(id))
		if err != nil || t.Terminal() {
			return t, raw, err
		}
		first = t
	}
	for {
		left := time.Until(deadline)
		secs := min(int((left+time.Second-1)/time.Second), int(MaxWait/time.Second))
		if secs < 1 {
			secs = 1
		}
		t, raw, err := c.taskJSON(ctx, taskPath(id, "?wait="+strconv.Itoa(secs)))
		if err != nil || first == nil || t.Status != first.Status || t.Terminal() || time.Until(deadline) <= 0 {
			return t, raw, err
		}
	}
}

// taskJSON reads the task at path, keeping the answer as the server wrote it.
func (c *Client) taskJSON(ctx context.Context, path string) (*Task, json.RawMessage, error) {
	var raw json.RawMessage
	if _, err := c.Do(ctx, &Request{Method: http.MethodGet, Path: path}, &raw); err != nil {
		return nil, nil, err
	}
	var out taskEnvelope
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, nil, fmt.Errorf("asyncqueue: decode response: %w", err)
	}
	if out.Task == nil {
		return nil, nil, errors.New("asyncqueue: the server answered without a task")
	}
	return out.Task, raw, nil
}

// AwaitTask long polls a task until its status is one of statuses or, with none given,
// until it is terminal; a terminal task is returned even when its status is not listed
// (it will not change again). Bound it with ctx: when ctx ends it returns the last task
// seen (possibly nil) with ctx's error.
func (c *Client) AwaitTask(ctx context.Context, id string, statuses ...string) (*Task, error) {
	var last *Task
	for {
		t, err := c.WaitTask(ctx, id, MaxWait)
		if err != nil {
			if ctx.Err() != nil {
				return last, fmt.Errorf("asyncqueue: await task %s: %w", id, ctx.Err())
			}
			return last, err
		}
		last = t
		if slices.Contains(statuses, t.Status) || t.Terminal() {
			return t, nil
		}
	}
}

// ListOptions filter and page GET /v1/tasks. Zero values are left out.
type ListOptions struct {
	Status        []string // any of these statuses
	Limit         int      // page size, default 20, at most 100
	Offset        int
	CreatedAfter  time.Time
	CreatedBefore time.Time
	TargetHost    string // only tasks whose targetUrl has this host
	ScheduleID    string // only tasks made by this schedule's runs
}

// Query returns the options as URL query parameters.
func (o ListOptions) Query() url.Values {
	q := url.Values{}
	if len(o.Status) > 0 {
		q.Set("status", strings.Join(o.Status, ","))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Offset > 0 {
		q.Set("offset", strconv.Itoa(o.Offset))
	}
	if !o.CreatedAfter.IsZero() {
		q.Set("createdAfter", o.CreatedAfter.UTC().Format(time.RFC3339Nano))
	}
	if !o.CreatedBefore.IsZero() {
		q.Set("createdBefore", o.CreatedBefore.UTC().Format(time.RFC3339Nano))
	}
	if o.TargetHost != "" {
		q.Set("targetHost", o.TargetHost)
	}
	if o.ScheduleID != "" {
		q.Set("scheduleId", o.ScheduleID)
	}
	return q
}

// TaskList is one page of tasks, newest first.
type TaskList struct {
	Tasks      []*Task    `json:"tasks"`
	Pagination Pagination `json:"pagination"`
}

// Pagination says where a page lies in the whole list.
type Pagination struct {
	Total   int  `json:"total"`
	Limit   int  `json:"limit"`
	Offset  int  `json:"offset"`
	HasMore bool `json:"hasMore"`
}

// ListTasks lists the team's tasks, newest first (GET /v1/tasks).
func (c *Client) ListTasks(ctx context.Context, opts ListOptions) (*TaskList, error) {
	path := "/v1/tasks"
	if q := opts.Query().Encode(); q != "" {
		path += "?" + q
	}
	var out TaskList
	if _, err := c.Do(ctx, &Request{Method: http.MethodGet, Path: path}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CancelTask cancels a pending, delayed, waiting or polling task; its signal token stops
// working. Any other status is a 409 (IsConflict).
func (c *Client) CancelTask(ctx context.Context, id string) (*Task, error) {
	return c.task(ctx, http.MethodPost, taskPath(id, "/cancel"), nil)
}

// RetryTask runs a failed, timed-out or cancelled task again now, keeping its attempt
// history. A wait/signal task gets a new SignalToken. Any other status is a 409.
func (c *Client) RetryTask(ctx context.Context, id string) (*CreateTaskResponse, error) {
	var out CreateTaskResponse
	if _, err := c.Do(ctx, &Request{Method: http.MethodPost, Path: taskPath(id, "/retry")}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Attempt is one call made for a task.
type Attempt struct {
	Attempt    int       `json:"attempt"` // 1, 2, …
	StartedAt  time.Time `json:"startedAt"`
	DurationMS int64     `json:"duration"`   // milliseconds
	StatusCode *int      `json:"statusCode"` // nil when no answer came
	Error      *string   `json:"error"`
	// ResponseBody is the start (up to 2 KiB) of a failed call's answer (a 5xx, a 429).
	ResponseBody *string `json:"responseBody"`
}

// TaskAttempts lists every call made for a task, oldest first (GET /v1/tasks/:id/attempts).
func (c *Client) TaskAttempts(ctx context.Context, id string) ([]Attempt, error) {
	var out struct {
		Attempts []Attempt `json:"attempts"`
	}
	if _, err := c.Do(ctx, &Request{Method: http.MethodGet, Path: taskPath(id, "/attempts")}, &out); err != nil {
		return nil, err
	}
	return out.Attempts, nil
}
