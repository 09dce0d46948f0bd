package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Signal resolves a waiting task.
type Signal struct {
	Status string `json:"status"`           // StatusCompleted or StatusFailed
	Result any    `json:"result,omitempty"` // any JSON value, stored on a completed task
	Error  string `json:"error,omitempty"`  // for failed; the server's default is "Failed by signal"
}

// SignalResult is the answer to a signal.
type SignalResult struct {
	Task *Task `json:"task"`
	// Buffered: the task had not been answered yet (pending, delayed, processing); the
	// signal is kept and applied as soon as the callback is answered (HTTP 202).
	Buffered bool `json:"buffered,omitempty"`
	// Replayed: this exact signal was already applied; the answer repeats it.
	Replayed bool `json:"-"`
}

// Signal resolves the task that token belongs to (POST /v1/signals/:token). It needs no
// API key: the one-time token is the credential. The same signal again is answered again
// (Replayed); any other signal to a resolved task is a 409 (IsConflict), an unknown token
// a 404 (IsNotFound).
func (c *Client) Signal(ctx context.Context, token string, sig Signal) (*SignalResult, error) {
	return c.signal(ctx, &Request{Method: http.MethodPost, Path: signalPath(token), Body: sig, NoAuth: true})
}

// SignalTask resolves a waiting task by its id with the API key (POST /v1/tasks/:id/signal),
// for back-ends that keep task ids rather than tokens.
func (c *Client) SignalTask(ctx context.Context, id string, sig Signal) (*SignalResult, error) {
	return c.signal(ctx, &Request{Method: http.MethodPost, Path: taskPath(id, "/signal"), Body: sig})
}

func (c *Client) signal(ctx context.Context, r *Request) (*SignalResult, error) {
	var out SignalResult
	res, err := c.Do(ctx, r, &out)
	if err != nil {
		return nil, err
	}
	out.Replayed = res.Header.Get("Idempotent-Replayed") == "true"
	return &out, nil
}

func signalPath(token string) string { return "/v1/signals/" + url.PathEscape(token) }

// SignalState is what the holder of a signal token may see of its task.
type SignalState struct {
	ID        string     `json:"id"`
	Status    string     `json:"status"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

// SignalStatus checks a signal token without an API key (GET /v1/signals/:token).
func (c *Client) SignalStatus(ctx context.Context, token string) (*SignalState, error) {
	var out struct {
		Task *SignalState `json:"task"`
	}
	if _, err := c.Do(ctx, &Request{Method: http.MethodGet, Path: signalPath(token), NoAuth: true}, &out); err != nil {
		return nil, err
	}
	return out.Task, nil
}

// Heartbeat tells asyncqueue that the work behind a waiting task is alive
// (POST /v1/signals/:token/heartbeat), storing progress (any JSON value; nil for none). It
// keeps a task with a HeartbeatTimeout from timing out.
func (c *Client) Heartbeat(ctx context.Context, token string, progress any) (*Task, error) {
	body := map[string]any{}
	if progress != nil {
		body["progress"] = progress
	}
	var out taskEnvelope
	r := &Request{Method: http.MethodPost, Path: signalPath(token) + "/heartbeat", Body: body, NoAuth: true}
	if _, err := c.Do(ctx, r, &out); err != nil {
		return nil, err
	}
	return out.Task, nil
}

// ProviderCallback posts payload (any JSON value) to a task's provider callback
// (POST /v1/callbacks/:callbackId, no API key), as the provider would: the task completes
// with payload as its result body. callbackID is Task.CallbackID, the last part of
// CreateTaskResponse.CallbackURL.
func (c *Client) ProviderCallback(ctx context.Context, callbackID string, payload any) (*SignalState, error) {
	var out struct {
		Task *SignalState `json:"task"`
	}
	r := &Request{Method: http.MethodPost, Path: "/v1/callbacks/" + url.PathEscape(callbackID), Body: payload, NoAuth: true}
	if payload == nil {
		r.Body = json.RawMessage("null")
	}
	if _, err := c.Do(ctx, r, &out); err != nil {
		return nil, err
	}
	return out.Task, nil
}
