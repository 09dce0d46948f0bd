package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Schedule is a recurring task: at each run of Cron (in Timezone) or every Every, the
// server creates a task from Task, carrying the schedule's id in ScheduleID.
type Schedule struct {
	ID         string          `json:"id"`
	TeamID     string          `json:"teamId"`
	Cron       *string         `json:"cron"`  // five fields or @hourly-style; nil for an interval
	Every      *string         `json:"every"` // a Go duration such as 30s; nil for cron
	Timezone   string          `json:"timezone"`
	Task       json.RawMessage `json:"task"` // the create body of each run's task
	Paused     bool            `json:"paused"`
	NextRunAt  *time.Time      `json:"nextRunAt"` // nil while paused
	LastRunAt  *time.Time      `json:"lastRunAt"`
	LastTaskID *string         `json:"lastTaskId"`
	LastError  *string         `json:"lastError"` // why the last run made no task
	CreatedAt  time.Time       `json:"createdAt"`
	UpdatedAt  time.Time       `json:"updatedAt"`
}

// CreateScheduleRequest is the body of CreateSchedule: Cron or Every, not both.
type CreateScheduleRequest struct {
	Cron     string            `json:"cron,omitempty"`
	Every    time.Duration     `json:"-"` // at least one second
	Timezone string            `json:"timezone,omitempty"`
	Task     CreateTaskRequest `json:"task"` // its IdempotencyKey is not used
	Paused   bool              `json:"paused,omitempty"`
}

// MarshalJSON writes Every as a duration string.
func (r CreateScheduleRequest) MarshalJSON() ([]byte, error) {
	type plain CreateScheduleRequest
	v := struct {
		plain
		Every string `json:"every,omitempty"`
	}{plain: plain(r)}
	if r.Every > 0 {
		v.Every = r.Every.String()
	}
	return json.Marshal(v)
}

// UpdateScheduleRequest is the body of UpdateSchedule; nil fields stay as they are.
type UpdateScheduleRequest struct {
	Cron     *string            `json:"cron,omitempty"`
	Every    *string            `json:"every,omitempty"`
	Timezone *string            `json:"timezone,omitempty"`
	Task     *CreateTaskRequest `json:"task,omitempty"`
	Paused   *bool              `json:"paused,omitempty"`
}

type scheduleEnvelope struct {
	Schedule *Schedule `json:"schedule"`
}

func schedulePath(id string, rest string) string {
	return "/v1/schedules/" + url.PathEscape(id) + rest
}

func (c *Client) schedule(ctx context.Context, method, path string, body any) (*Schedule, error) {
	var out scheduleEnvelope
	if _, err := c.Do(ctx, &Request{Method: method, Path: path, Body: body}, &out); err != nil {
		return nil, err
	}
	return out.Schedule, nil
}

// CreateSchedule creates a schedule (POST /v1/schedules). A bad expression, time zone or
// task body is refused (IsInvalid) with a message naming the field.
func (c *Client) CreateSchedule(ctx context.Context, req CreateScheduleRequest) (*Schedule, error) {
	return c.schedule(ctx, http.MethodPost, "/v1/schedules", req)
}

// GetSchedule reads a schedule; another team's is not found (IsNotFound).
func (c *Client) GetSchedule(ctx context.Context, id string) (*Schedule, error) {
	return c.schedule(ctx, http.MethodGet, schedulePath(id, ""), nil)
}

// UpdateSchedule changes a schedule (PATCH /v1/schedules/:id).
func (c *Client) UpdateSchedule(ctx context.Context, id string, req UpdateScheduleRequest) (*Schedule, error) {
	return c.schedule(ctx, http.MethodPatch, schedulePath(id, ""), req)
}

// PauseSchedule stops a schedule's runs until ResumeSchedule.
func (c *Client) PauseSchedule(ctx context.Context, id string) (*Schedule, error) {
	return c.schedule(ctx, http.MethodPost, schedulePath(id, "/pause"), nil)
}

// ResumeSchedule runs a paused schedule again from its next run after now.
func (c *Client) ResumeSchedule(ctx context.Context, id string) (*Schedule, error) {
	return c.schedule(ctx, http.MethodPost, schedulePath(id, "/resume"), nil)
}

// TriggerSchedule makes one run now and returns its task.
func (c *Client) TriggerSchedule(ctx context.Context, id string) (*Task, error) {
	return c.task(ctx, http.MethodPost, schedulePath(id, "/trigger"), nil)
}

// DeleteSchedule deletes a schedule; the tasks it made stay.
func (c *Client) DeleteSchedule(ctx context.Context, id string) error {
	_, err := c.Do(ctx, &Request{Method: http.MethodDelete, Path: schedulePath(id, "")}, nil)
	return err
}

// ScheduleList is one page of schedules, newest first.
type ScheduleList struct {
	Schedules  []*Schedule `json:"schedules"`
	Pagination Pagination  `json:"pagination"`
}

// ListSchedules lists the team's schedules, newest first (limit 0 means the server's 20).
func (c *Client) ListSchedules(ctx context.Context, limit, offset int) (*ScheduleList, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	path := "/v1/schedules"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out ScheduleList
	if _, err := c.Do(ctx, &Request{Method: http.MethodGet, Path: path}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
