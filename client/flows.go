package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Flow is a flow of the team: the calls of tasks to one target origin, or of tasks that
// share a flowKey. Its limits bound the calls in flight and their rate.
type Flow struct {
	Key           string     `json:"key"`
	InFlight      int        `json:"inFlight"`
	Pending       int        `json:"pending"`
	Parallelism   int        `json:"parallelism"`
	RatePerSecond *float64   `json:"ratePerSecond"` // nil: no rate limit
	Paused        bool       `json:"paused"`        // by hand, until ResumeFlow
	PausedUntil   *time.Time `json:"pausedUntil"`   // by a target's Retry-After
	LastError     *string    `json:"lastError"`
	LastErrorAt   *time.Time `json:"lastErrorAt"`
}

// FlowSettings are the limits PUT on a flow; nil fields go back to the server's defaults.
type FlowSettings struct {
	Parallelism   *int     `json:"parallelism"`
	RatePerSecond *float64 `json:"ratePerSecond"`
}

// ListFlows lists the team's flows (GET /v1/flows).
func (c *Client) ListFlows(ctx context.Context) ([]Flow, error) {
	var out struct {
		Flows []Flow `json:"flows"`
	}
	if _, err := c.Do(ctx, &Request{Method: http.MethodGet, Path: "/v1/flows"}, &out); err != nil {
		return nil, err
	}
	return out.Flows, nil
}

// GetFlow returns one flow (GET /v1/flows/:key); an unused key shows the defaults.
func (c *Client) GetFlow(ctx context.Context, key string) (*Flow, error) {
	return c.flow(ctx, http.MethodGet, flowPath(key, ""), nil)
}

// SetFlow sets a flow's limits (PUT /v1/flows/:key), also before it has tasks.
func (c *Client) SetFlow(ctx context.Context, key string, s FlowSettings) (*Flow, error) {
	return c.flow(ctx, http.MethodPut, flowPath(key, ""), s)
}

// PauseFlow stops a flow's calls until ResumeFlow; its tasks stay pending.
func (c *Client) PauseFlow(ctx context.Context, key string) (*Flow, error) {
	return c.flow(ctx, http.MethodPost, flowPath(key, "/pause"), nil)
}

// ResumeFlow ends a flow's pause, by hand or by a target's Retry-After.
func (c *Client) ResumeFlow(ctx context.Context, key string) (*Flow, error) {
	return c.flow(ctx, http.MethodPost, flowPath(key, "/resume"), nil)
}

func flowPath(key, suffix string) string { return "/v1/flows/" + url.PathEscape(key) + suffix }

func (c *Client) flow(ctx context.Context, method, path string, body any) (*Flow, error) {
	var out struct {
		Flow *Flow `json:"flow"`
	}
	if _, err := c.Do(ctx, &Request{Method: method, Path: path, Body: body}, &out); err != nil {
		return nil, err
	}
	return out.Flow, nil
}
