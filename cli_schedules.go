package main

// `asyncqueue schedules …`: the schedule commands, clients of a running server like `tasks`.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/asyncqueue/asyncqueue/client"
)

// SchedulesCmd groups the schedule commands.
type SchedulesCmd struct {
	Create  SchedulesCreateCmd  `cmd:"" help:"Create a schedule: a task made at each run of --cron or --every."`
	List    SchedulesListCmd    `cmd:"" help:"List schedules, newest first."`
	Get     SchedulesGetCmd     `cmd:"" help:"Show a schedule."`
	Pause   SchedulesPauseCmd   `cmd:"" help:"Pause a schedule: no runs until resumed."`
	Resume  SchedulesResumeCmd  `cmd:"" help:"Resume a paused schedule from its next run after now."`
	Trigger SchedulesTriggerCmd `cmd:"" help:"Run a schedule once now (its own runs go on)."`
	Delete  SchedulesDeleteCmd  `cmd:"" help:"Delete a schedule; the tasks it made stay."`
}

func (SchedulesCmd) Help() string { return exitCodesHelp }

// SchedulesCreateCmd is `asyncqueue schedules create`: the task flags of `tasks create`,
// plus when to run.
type SchedulesCreateCmd struct {
	TasksCreateCmd
	Cron     string `help:"Cron expression: five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, @monthly, @yearly." xor:"when"`
	Every    string `help:"Run at this interval, at least 1s, e.g. 30s, 5m, 1h." xor:"when"`
	Timezone string `help:"IANA time zone of the cron expression (default UTC), e.g. Europe/Berlin."`
	Paused   bool   `help:"Create it paused."`
}

// Run creates the schedule.
func (c *SchedulesCreateCmd) Run(ctx context.Context) error {
	task, err := c.request()
	if err != nil {
		return err
	}
	if task.IdempotencyKey != "" {
		return usageError("--idempotency-key does not apply to schedules: each run has its own")
	}
	body := map[string]any{"task": task}
	if c.Cron != "" {
		body["cron"] = c.Cron
	}
	if c.Every != "" {
		body["every"] = c.Every
	}
	if c.Timezone != "" {
		body["timezone"] = c.Timezone
	}
	if c.Paused {
		body["paused"] = true
	}
	return c.scheduleCall(ctx, http.MethodPost, "/v1/schedules", body)
}

// scheduleCall sends a request answered with one schedule and shows it.
func (f *ClientFlags) scheduleCall(ctx context.Context, method, path string, body any) error {
	raw, _, err := f.call(ctx, &client.Request{Method: method, Path: path, Body: body})
	if err != nil {
		return err
	}
	var out struct{ Schedule *client.Schedule }
	if err := decode(raw, &out); err != nil {
		return err
	}
	if out.Schedule == nil {
		return &exitError{exitServer, fmt.Errorf("the server answered without a schedule")}
	}
	return f.print(raw, func(w io.Writer) { showSchedule(w, out.Schedule) })
}

func scheduleWhen(s *client.Schedule) string {
	if s.Cron != nil {
		return "cron " + *s.Cron + " (" + s.Timezone + ")"
	}
	return "every " + deref(s.Every)
}

func showSchedule(w io.Writer, s *client.Schedule) {
	fmt.Fprintf(w, "ID:\t%s\n", s.ID)
	fmt.Fprintf(w, "Runs:\t%s\n", scheduleWhen(s))
	fmt.Fprintf(w, "Paused:\t%v\n", s.Paused)
	fmt.Fprintf(w, "Next run:\t%s\n", showTime(s.NextRunAt))
	fmt.Fprintf(w, "Last run:\t%s\n", showTime(s.LastRunAt))
	if s.LastTaskID != nil {
		fmt.Fprintf(w, "Last task:\t%s\n", *s.LastTaskID)
	}
	if s.LastError != nil {
		fmt.Fprintf(w, "Last error:\t%s\n", *s.LastError)
	}
	fmt.Fprintf(w, "Task:\t%s\n", clip(string(s.Task), 200))
	fmt.Fprintf(w, "Created:\t%s\n", showTime(&s.CreatedAt))
}

// SchedulesListCmd is `asyncqueue schedules list`.
type SchedulesListCmd struct {
	ClientFlags
	Limit  int `help:"Page size, at most 100." default:"20"`
	Offset int `help:"Skip this many of the newest schedules."`
}

// Run lists the schedules.
func (c *SchedulesListCmd) Run(ctx context.Context) error {
	q := url.Values{"limit": {strconv.Itoa(c.Limit)}}
	if c.Offset > 0 {
		q.Set("offset", strconv.Itoa(c.Offset))
	}
	raw, _, err := c.call(ctx, &client.Request{Method: http.MethodGet, Path: "/v1/schedules?" + q.Encode()})
	if err != nil {
		return err
	}
	var list client.ScheduleList
	if err := decode(raw, &list); err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tRUNS\tPAUSED\tNEXT RUN\tLAST RUN\tLAST TASK")
		for _, s := range list.Schedules {
			fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\t%s\n", s.ID, clip(scheduleWhen(s), 50), s.Paused,
				showTime(s.NextRunAt), showTime(s.LastRunAt), deref(s.LastTaskID))
		}
		showPage(w, list.Pagination, len(list.Schedules), "schedules")
	})
}

// SchedulesGetCmd is `asyncqueue schedules get`.
type SchedulesGetCmd struct {
	ClientFlags
	ID string `arg:"" help:"Schedule id (sch_…)."`
}

// Run shows the schedule.
func (c *SchedulesGetCmd) Run(ctx context.Context) error {
	return c.scheduleCall(ctx, http.MethodGet, "/v1/schedules/"+url.PathEscape(c.ID), nil)
}

// SchedulesPauseCmd is `asyncqueue schedules pause`.
type SchedulesPauseCmd struct {
	ClientFlags
	ID string `arg:"" help:"Schedule id (sch_…)."`
}

// Run pauses the schedule.
func (c *SchedulesPauseCmd) Run(ctx context.Context) error {
	return c.scheduleCall(ctx, http.MethodPost, "/v1/schedules/"+url.PathEscape(c.ID)+"/pause", nil)
}

// SchedulesResumeCmd is `asyncqueue schedules resume`.
type SchedulesResumeCmd struct {
	ClientFlags
	ID string `arg:"" help:"Schedule id (sch_…)."`
}

// Run resumes the schedule.
func (c *SchedulesResumeCmd) Run(ctx context.Context) error {
	return c.scheduleCall(ctx, http.MethodPost, "/v1/schedules/"+url.PathEscape(c.ID)+"/resume", nil)
}

// SchedulesTriggerCmd is `asyncqueue schedules trigger`.
type SchedulesTriggerCmd struct {
	ClientFlags
	ID string `arg:"" help:"Schedule id (sch_…)."`
}

// Run makes one run now and shows its task.
func (c *SchedulesTriggerCmd) Run(ctx context.Context) error {
	raw, _, err := c.call(ctx, &client.Request{Method: http.MethodPost, Path: "/v1/schedules/" + url.PathEscape(c.ID) + "/trigger"})
	if err != nil {
		return err
	}
	var out struct{ Task *client.Task }
	if err := decode(raw, &out); err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) { showTask(w, out.Task) })
}

// SchedulesDeleteCmd is `asyncqueue schedules delete`.
type SchedulesDeleteCmd struct {
	ClientFlags
	ID string `arg:"" help:"Schedule id (sch_…)."`
}

// Run deletes the schedule.
func (c *SchedulesDeleteCmd) Run(ctx context.Context) error {
	raw, _, err := c.call(ctx, &client.Request{Method: http.MethodDelete, Path: "/v1/schedules/" + url.PathEscape(c.ID)})
	if err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) { fmt.Fprintf(w, "Deleted:\t%s\n", c.ID) })
}
