package main

// The client commands: tasks, signal and tail talk to a running server over its HTTP API
// through package client, and never open the database (--db and --log-* do not apply).

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/asyncqueue/asyncqueue/client"
)

// Exit codes of the client commands, for scripts.
const (
	exitOther       = 1 // usage or any other error
	exitNotFound    = 2 // 404: no such task, token or vault token
	exitConflict    = 3 // 409: the task is in the wrong state
	exitAuth        = 4 // 401/403: API key missing, invalid or revoked, or another team's task
	exitInvalid     = 5 // 400/413/422: the request was refused as invalid
	exitRateLimited = 6 // 429
	exitServer      = 7 // 5xx, or the server could not be reached
)

const exitCodesHelp = `Exit codes: 0 ok, 1 usage or other error, 2 not found (404), 3 conflict or wrong
state (409), 4 authentication (401/403), 5 validation (400/413/422), 6 rate limited
(429), 7 server or network error.`

// exitError is an error that asks for a given exit code (kong.ExitCoder).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode is the process exit code the error asks for.
func (e *exitError) ExitCode() int { return e.code }

// exitCode is the process exit code for an error a command returned: the code it asks
// for (exitError, or any kong.ExitCoder), else 1.
func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return exitOther
}

// usageExit maps the code kong exits with on a command line it cannot parse (80) to 1,
// so that every usage error exits 1 as the client commands document; others pass.
func usageExit(code int) int {
	if code == 80 {
		return exitOther
	}
	return code
}

func usageError(format string, args ...any) error {
	return &exitError{exitOther, fmt.Errorf(format, args...)}
}

// ClientFlags are the flags of every client command.
type ClientFlags struct {
	URL    string `name:"url" help:"Base URL of the asyncqueue server." default:"http://localhost:8080" env:"ASYNCQUEUE_URL"`
	APIKey string `name:"api-key" help:"API key (async_…)." env:"ASYNCQUEUE_API_KEY"`
	JSON   bool   `name:"json" help:"Print the server's JSON answer instead of a table."`
}

// Help adds the exit codes to the help of every client command.
func (ClientFlags) Help() string { return exitCodesHelp }

func (f *ClientFlags) client() *client.Client {
	return client.New(f.URL, f.APIKey, client.WithUserAgent("asyncqueue-cli/"+Version()))
}

// call sends r and returns the answer as the server wrote it; errors carry exit codes.
func (f *ClientFlags) call(ctx context.Context, r *client.Request) (json.RawMessage, http.Header, error) {
	var raw json.RawMessage
	res, err := f.client().Do(ctx, r, &raw)
	if err != nil {
		return nil, nil, f.exitErr(err)
	}
	return raw, res.Header, nil
}

// exitErr gives an API or transport error its exit code.
func (f *ClientFlags) exitErr(err error) error {
	var e *client.Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.Canceled) {
			return &exitError{exitOther, err}
		}
		return &exitError{exitServer, err} // it names the URL
	}
	code := exitOther
	switch {
	case client.IsNotFound(err):
		code = exitNotFound
	case client.IsConflict(err):
		code = exitConflict
	case client.IsUnauthorized(err):
		code = exitAuth
		if f.APIKey == "" {
			err = fmt.Errorf("%w; set --api-key or ASYNCQUEUE_API_KEY", err)
		}
	case client.IsInvalid(err):
		code = exitInvalid
	case client.IsRateLimited(err):
		code = exitRateLimited // the message says when to retry
	case e.StatusCode >= 500:
		code = exitServer
	}
	return &exitError{code, err}
}

// print writes raw (for --json) or the table show writes.
func (f *ClientFlags) print(raw json.RawMessage, show func(w io.Writer)) error {
	if f.JSON {
		_, err := os.Stdout.Write(append(bytes.TrimSpace(raw), '\n'))
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	show(tw)
	return tw.Flush()
}

// decode reads raw into v; a malformed answer is a server error.
func decode(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return &exitError{exitServer, fmt.Errorf("unexpected answer from the server: %w", err)}
	}
	return nil
}

// TasksCmd groups the task commands.
type TasksCmd struct {
	Create   TasksCreateCmd   `cmd:"" help:"Create a task."`
	Get      TasksGetCmd      `cmd:"" help:"Show a task; --wait holds until its status changes."`
	List     TasksListCmd     `cmd:"" help:"List tasks, newest first."`
	Cancel   TasksCancelCmd   `cmd:"" help:"Cancel a pending, delayed, waiting or polling task."`
	Retry    TasksRetryCmd    `cmd:"" help:"Run a failed, timed-out or cancelled task again."`
	Attempts TasksAttemptsCmd `cmd:"" help:"List the calls made for a task."`
}

// Help adds the exit codes to `tasks --help`.
func (TasksCmd) Help() string { return exitCodesHelp }

// TasksCreateCmd is `asyncqueue tasks create`.
type TasksCreateCmd struct {
	ClientFlags
	TargetURL        string        `name:"target-url" required:"" help:"The absolute http(s) URL to call."`
	Method           string        `help:"GET, POST, PUT, PATCH or DELETE (server default POST)."`
	Header           []string      `short:"H" sep:"none" placeholder:"K=V" help:"A header to send; repeat for more. A value tok_… is read from the Token Vault when sending."`
	Body             string        `help:"Request body, sent as is."`
	BodyFile         string        `help:"Read the body from this file (- for stdin)." placeholder:"PATH"`
	Timeout          time.Duration `help:"Per-attempt timeout (server default 30s)."`
	Delay            time.Duration `help:"Run after this long, e.g. 90s or 2h."`
	DelayUntil       string        `help:"Run at this RFC 3339 time." placeholder:"TIME"`
	MaxRetries       *int          `placeholder:"N" help:"Retries after a failed attempt, 0-10 (server default 3)."`
	RetryBackoff     string        `help:"exponential (default) or linear."`
	Priority         int           `help:"1-10, higher runs first (server default 5)."`
	FlowKey          string        `name:"flow-key" help:"Put the task's calls in this flow (default: the target's origin); flows share limits."`
	OnCompleteURL    string        `name:"on-complete-url" help:"Signed webhook on the final status."`
	WaitForSignal    bool          `help:"After its call, wait for a signal (prints the one-time signal token)."`
	MaxWaitTime      time.Duration `help:"How long the task may wait for its signal (server default 30s)."`
	HeartbeatTimeout time.Duration `help:"Time a waiting task out without a heartbeat this often."`
	Provider         string        `help:"Poll a built-in provider template (fal, replicate, …)."`
	IdempotencyKey   string        `help:"Within 24 h the same key returns the first task instead of creating another."`
}

func (c *TasksCreateCmd) request() (client.CreateTaskRequest, error) {
	req := client.CreateTaskRequest{
		TargetURL: c.TargetURL, Method: c.Method, Body: c.Body, Timeout: c.Timeout, Delay: c.Delay,
		MaxRetries: c.MaxRetries, RetryBackoff: c.RetryBackoff, Priority: c.Priority, FlowKey: c.FlowKey,
		OnCompleteURL: c.OnCompleteURL, WaitForSignal: c.WaitForSignal, MaxWaitTime: c.MaxWaitTime,
		HeartbeatTimeout: c.HeartbeatTimeout, Provider: c.Provider, IdempotencyKey: c.IdempotencyKey,
	}
	for _, h := range c.Header {
		k, v, ok := strings.Cut(h, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return req, usageError("--header %q: want NAME=VALUE", h)
		}
		if req.Headers == nil {
			req.Headers = map[string]string{}
		}
		req.Headers[strings.TrimSpace(k)] = v
	}
	if c.BodyFile != "" {
		if c.Body != "" {
			return req, usageError("give --body or --body-file, not both")
		}
		var b []byte
		var err error
		if c.BodyFile == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(c.BodyFile)
		}
		if err != nil {
			return req, usageError("--body-file: %w", err)
		}
		req.Body = string(b)
	}
	if c.DelayUntil != "" {
		t, err := time.Parse(time.RFC3339Nano, c.DelayUntil)
		if err != nil {
			return req, usageError("--delay-until %q: want an RFC 3339 time such as 2026-01-15T10:30:00Z", c.DelayUntil)
		}
		req.DelayUntil = t
	}
	return req, nil
}

// Run creates the task.
func (c *TasksCreateCmd) Run(ctx context.Context) error {
	req, err := c.request()
	if err != nil {
		return err
	}
	r := &client.Request{Method: http.MethodPost, Path: "/v1/tasks", Body: req}
	if req.IdempotencyKey != "" {
		r.Header = http.Header{"Idempotency-Key": {req.IdempotencyKey}}
	}
	raw, hdr, err := c.call(ctx, r)
	if err != nil {
		return err
	}
	var out client.CreateTaskResponse
	if err := decode(raw, &out); err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		showTask(w, out.Task)
		if hdr.Get("Idempotent-Replayed") == "true" {
			fmt.Fprintln(w, "Replayed:\tyes, the first task with this idempotency key")
		}
		showCreated(w, &out)
	})
}

func showCreated(w io.Writer, out *client.CreateTaskResponse) {
	if out.SignalToken != "" {
		fmt.Fprintf(w, "Signal token:\t%s (shown only now: keep it)\n", out.SignalToken)
	}
	if out.CallbackURL != "" {
		fmt.Fprintf(w, "Callback URL:\t%s\n", out.CallbackURL)
	}
}

// TasksGetCmd is `asyncqueue tasks get`.
type TasksGetCmd struct {
	ClientFlags
	ID   string        `arg:"" help:"Task id."`
	Wait time.Duration `help:"Hold until the task's status changes, up to this long (long poll), e.g. 10s."`
}

// Run shows the task, after holding for a change of its status with --wait.
func (c *TasksGetCmd) Run(ctx context.Context) error {
	t, raw, err := c.client().WaitTaskJSON(ctx, c.ID, c.Wait)
	if err != nil {
		return c.exitErr(err)
	}
	return c.print(raw, func(w io.Writer) { showTask(w, t) })
}

// TasksListCmd is `asyncqueue tasks list`.
type TasksListCmd struct {
	ClientFlags
	Status        []string `help:"Only these statuses (comma-separated): pending, delayed, processing, waiting, polling, completed, failed, timeout, cancelled."`
	Limit         int      `help:"Page size, at most 100." default:"20"`
	Offset        int      `help:"Skip this many of the newest tasks."`
	TargetHost    string   `help:"Only tasks whose target URL has this host."`
	CreatedAfter  string   `help:"Only tasks created after this RFC 3339 time." placeholder:"TIME"`
	CreatedBefore string   `help:"Only tasks created before this RFC 3339 time." placeholder:"TIME"`
}

// Run lists the tasks.
func (c *TasksListCmd) Run(ctx context.Context) error {
	opts := client.ListOptions{Status: c.Status, Limit: c.Limit, Offset: c.Offset, TargetHost: c.TargetHost}
	for _, tf := range []struct {
		flag, value string
		dst         *time.Time
	}{{"--created-after", c.CreatedAfter, &opts.CreatedAfter}, {"--created-before", c.CreatedBefore, &opts.CreatedBefore}} {
		if tf.value == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, tf.value)
		if err != nil {
			return usageError("%s %q: want an RFC 3339 time such as 2026-01-15T10:30:00Z", tf.flag, tf.value)
		}
		*tf.dst = t
	}
	path := "/v1/tasks"
	if q := opts.Query().Encode(); q != "" {
		path += "?" + q
	}
	raw, _, err := c.call(ctx, &client.Request{Method: http.MethodGet, Path: path})
	if err != nil {
		return err
	}
	var list client.TaskList
	if err := decode(raw, &list); err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tSTATUS\tTARGET\tCREATED\tRETRIES\tERROR")
		for _, t := range list.Tasks {
			fmt.Fprintf(w, "%s\t%s\t%s %s\t%s\t%d/%d\t%s\n", t.ID, t.Status, t.Method, clip(t.TargetURL, 60),
				showTime(&t.CreatedAt), t.RetryCount, t.MaxRetries, clip(deref(t.Error), 60))
		}
		showPage(w, list.Pagination, len(list.Tasks), "tasks")
	})
}

// showPage writes where a page of n items stands in the list, and how to get the next one.
func showPage(w io.Writer, p client.Pagination, n int, noun string) {
	if n == 0 {
		fmt.Fprintf(w, "no %s (of %d)\n", noun, p.Total)
		return
	}
	fmt.Fprintf(w, "%d-%d of %d", p.Offset+1, p.Offset+n, p.Total)
	if p.HasMore {
		fmt.Fprintf(w, " (next page: --offset %d)", p.Offset+n)
	}
	fmt.Fprintln(w)
}

// TasksCancelCmd is `asyncqueue tasks cancel`.
type TasksCancelCmd struct {
	ClientFlags
	ID string `arg:"" help:"Task id."`
}

// Run cancels the task.
func (c *TasksCancelCmd) Run(ctx context.Context) error {
	return c.taskAction(ctx, "/v1/tasks/"+url.PathEscape(c.ID)+"/cancel")
}

// TasksRetryCmd is `asyncqueue tasks retry`.
type TasksRetryCmd struct {
	ClientFlags
	ID string `arg:"" help:"Task id."`
}

// Run retries the task.
func (c *TasksRetryCmd) Run(ctx context.Context) error {
	return c.taskAction(ctx, "/v1/tasks/"+url.PathEscape(c.ID)+"/retry")
}

// taskAction POSTs to path and shows the task (and any new signal token) it answers with.
func (f *ClientFlags) taskAction(ctx context.Context, path string) error {
	raw, _, err := f.call(ctx, &client.Request{Method: http.MethodPost, Path: path})
	if err != nil {
		return err
	}
	var out client.CreateTaskResponse
	if err := decode(raw, &out); err != nil {
		return err
	}
	return f.print(raw, func(w io.Writer) {
		showTask(w, out.Task)
		showCreated(w, &out)
	})
}

// TasksAttemptsCmd is `asyncqueue tasks attempts`.
type TasksAttemptsCmd struct {
	ClientFlags
	ID string `arg:"" help:"Task id."`
}

// Run lists the attempts.
func (c *TasksAttemptsCmd) Run(ctx context.Context) error {
	raw, _, err := c.call(ctx, &client.Request{Method: http.MethodGet, Path: "/v1/tasks/" + url.PathEscape(c.ID) + "/attempts"})
	if err != nil {
		return err
	}
	var out struct{ Attempts []client.Attempt }
	if err := decode(raw, &out); err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		fmt.Fprintln(w, "ATTEMPT\tSTARTED\tDURATION\tSTATUS\tERROR")
		for _, a := range out.Attempts {
			code := "-"
			if a.StatusCode != nil {
				code = strconv.Itoa(*a.StatusCode)
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", a.Attempt, showTime(&a.StartedAt),
				time.Duration(a.DurationMS)*time.Millisecond, code, clip(deref(a.Error), 80))
		}
	})
}

// SignalCmd is `asyncqueue signal`.
type SignalCmd struct {
	ClientFlags
	Token  string `arg:"" help:"The task's signal token (64 hex characters, from its create answer)."`
	Status string `required:"" enum:"completed,failed" help:"completed or failed."`
	Result string `help:"JSON stored as the result of a completed task, e.g. '{\"url\": \"…\"}'." placeholder:"JSON"`
	Error  string `help:"Reason stored on a failed task."`
}

// Run sends the signal. It needs no API key: the token is the credential.
func (c *SignalCmd) Run(ctx context.Context) error {
	sig := client.Signal{Status: c.Status, Error: c.Error}
	if c.Result != "" {
		if !json.Valid([]byte(c.Result)) {
			return usageError("--result must be JSON, e.g. '{\"ok\": true}' or '\"text\"'")
		}
		sig.Result = json.RawMessage(c.Result)
	}
	raw, hdr, err := c.call(ctx, &client.Request{Method: http.MethodPost,
		Path: "/v1/signals/" + url.PathEscape(c.Token), Body: sig, NoAuth: true})
	if err != nil {
		return err
	}
	var out client.SignalResult
	if err := decode(raw, &out); err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		showTask(w, out.Task)
		if out.Buffered {
			fmt.Fprintln(w, "Buffered:\tyes: applied as soon as the task's call is answered")
		}
		if hdr.Get("Idempotent-Replayed") == "true" {
			fmt.Fprintln(w, "Replayed:\tyes: this signal was already applied")
		}
	})
}

// TailCmd is `asyncqueue tail`.
type TailCmd struct {
	ClientFlags
	Status   []string      `help:"Only show changes to these statuses (comma-separated)."`
	Lines    int           `short:"n" help:"Show this many of the newest tasks first." default:"10"`
	Interval time.Duration `help:"How often to ask the server." default:"1s"`
}

// Help adds the output format and the exit codes to `tail --help`.
func (TailCmd) Help() string {
	return "Prints one line per change seen: time, task id, new status, what it was, method and target.\n" +
		"With --json, one task object per line instead. Stops on Ctrl-C.\n\n" + exitCodesHelp
}

// tailActive are the statuses a task can still leave.
var tailActive = []string{client.StatusPending, client.StatusDelayed, client.StatusProcessing,
	client.StatusWaiting, client.StatusPolling}

// tailRecheck bounds the tasks read one by one per round (tracked tasks that left both lists).
const tailRecheck = 20

// Run follows the tasks until ctx ends (Ctrl-C): each round it lists the newest tasks and
// the unfinished ones, and prints the tasks that are new or changed status since the last.
func (c *TailCmd) Run(ctx context.Context) error {
	for _, s := range c.Status {
		if !slices.Contains(tailActive, s) && !client.Terminal(s) {
			return usageError("--status %q is not a task status", s)
		}
	}
	if c.Interval < 100*time.Millisecond {
		return usageError("--interval must be at least 100ms")
	}
	known := map[string]string{} // task id → last status seen
	lastErr := ""
	first := true
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	for {
		tasks, err := c.round(ctx, known)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			// Keep following through outages and restarts; stop on what a retry cannot fix.
			if code := client.StatusCode(err); code >= 400 && code < 500 && code != http.StatusTooManyRequests {
				return c.exitErr(err)
			}
			if msg := err.Error(); msg != lastErr {
				fmt.Fprintln(os.Stderr, "asyncqueue tail:", msg, "(still trying)")
				lastErr = msg
			}
		default:
			if lastErr != "" {
				fmt.Fprintln(os.Stderr, "asyncqueue tail: reconnected")
				lastErr = ""
			}
			c.show(tasks, known, first)
			first = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// tailTask is a task of one round, with the JSON the server sent for it.
type tailTask struct {
	*client.Task
	raw json.RawMessage
}

// round reads the newest tasks, the unfinished ones and the tracked tasks missing from both.
func (c *TailCmd) round(ctx context.Context, known map[string]string) (map[string]tailTask, error) {
	cl := c.client()
	out := map[string]tailTask{}
	for _, status := range [][]string{nil, tailActive} {
		q := client.ListOptions{Status: status, Limit: 100}.Query().Encode()
		var page struct {
			Tasks []json.RawMessage `json:"tasks"`
		}
		if _, err := cl.Do(ctx, &client.Request{Method: http.MethodGet, Path: "/v1/tasks?" + q}, &page); err != nil {
			return nil, err
		}
		for _, raw := range page.Tasks {
			var t client.Task
			if err := json.Unmarshal(raw, &t); err != nil {
				return nil, err
			}
			out[t.ID] = tailTask{&t, raw}
		}
	}
	// A tracked unfinished task that is in neither list has finished (or fell behind 100
	// newer ones): read it to learn how.
	n := 0
	for id, status := range known {
		if _, ok := out[id]; ok || client.Terminal(status) || n == tailRecheck {
			continue
		}
		n++
		var one struct {
			Task json.RawMessage `json:"task"`
		}
		_, err := cl.Do(ctx, &client.Request{Method: http.MethodGet, Path: "/v1/tasks/" + url.PathEscape(id)}, &one)
		if client.IsNotFound(err) {
			delete(known, id)
			continue
		} else if err != nil {
			return nil, err
		}
		var t client.Task
		if err := json.Unmarshal(one.Task, &t); err != nil {
			return nil, err
		}
		out[t.ID] = tailTask{&t, one.Task}
	}
	return out, nil
}

// show prints what changed since known and updates it. The first round shows the newest
// c.Lines tasks as they are.
func (c *TailCmd) show(tasks map[string]tailTask, known map[string]string, first bool) {
	ids := make([]string, 0, len(tasks))
	for id := range tasks {
		ids = append(ids, id)
	}
	// Oldest first, as a log reads; ids are UUIDv7, so creation order.
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(tasks[a].CreatedAt.Compare(tasks[b].CreatedAt), strings.Compare(a, b))
	})
	var lines []string
	now := time.Now().Format(time.TimeOnly)
	for _, id := range ids {
		t := tasks[id]
		was, seen := known[id]
		known[id] = t.Status
		if (seen && was == t.Status) || (len(c.Status) > 0 && !slices.Contains(c.Status, t.Status)) {
			continue
		}
		change := "new"
		switch {
		case first:
			change = ""
		case seen:
			change = "was " + was
		}
		if c.JSON {
			lines = append(lines, string(compactJSON(t.raw)))
			continue
		}
		line := fmt.Sprintf("%s  %s  %-10s  %-15s  %s %s", now, t.ID, t.Status, change, t.Method, clip(t.TargetURL, 80))
		if t.Error != nil && t.Status == client.StatusFailed {
			line += "  " + clip(*t.Error, 100)
		}
		lines = append(lines, line)
	}
	if first && len(lines) > c.Lines {
		lines = lines[len(lines)-max(c.Lines, 0):]
	}
	for _, l := range lines {
		fmt.Println(l)
	}
	// Forget finished tasks that left the newest page, so memory stays bounded.
	for id, status := range known {
		if _, ok := tasks[id]; !ok && client.Terminal(status) {
			delete(known, id)
		}
	}
}

func compactJSON(raw json.RawMessage) []byte {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// showTask writes a task as "Field:\tvalue" lines.
func showTask(w io.Writer, t *client.Task) {
	if t == nil {
		return
	}
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	row("ID", t.ID)
	row("Status", t.Status)
	row("Target", strings.TrimSpace(t.Method+" "+t.TargetURL))
	if t.Priority != 0 {
		row("Priority", strconv.Itoa(t.Priority))
	}
	row("Flow", t.FlowKey)
	if t.MaxRetries != 0 || t.RetryCount != 0 {
		row("Retries", fmt.Sprintf("%d of %d (%s)", t.RetryCount, t.MaxRetries, t.RetryBackoff))
	}
	if t.WaitForSignal {
		row("Waits for signal", fmt.Sprintf("up to %gs", t.MaxWaitTime))
	}
	row("Provider", deref(t.Provider))
	if !t.CreatedAt.IsZero() {
		row("Created", showTime(&t.CreatedAt))
	}
	row("Delayed until", showTime(t.DelayUntil))
	row("Started", showTime(t.StartedAt))
	row("Waiting since", showTime(t.WaitingSince))
	row("Expires", showTime(t.ExpiresAt))
	row("Last heartbeat", showTime(t.LastHeartbeatAt))
	row("Progress", clip(string(t.Progress), 200))
	row("Completed", showTime(t.CompletedAt))
	row("Start result", showResult(t.StartResult))
	row("Result", showResult(t.Result))
	row("Error", deref(t.Error))
	if t.OnComplete != nil {
		s := fmt.Sprintf("%s after %d attempt(s)", t.OnComplete.Status, t.OnComplete.Attempts)
		if t.OnComplete.LastError != nil {
			s += ": " + *t.OnComplete.LastError
		}
		row("Webhook", s)
	}
}

// showResult shows a callback answer as "HTTP 200 in 12ms: body", anything else as JSON.
func showResult(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(raw, &probe) == nil && probe["statusCode"] != nil && probe["duration"] != nil {
		var r client.CallResult
		if json.Unmarshal(raw, &r) == nil {
			s := fmt.Sprintf("HTTP %d in %s", r.StatusCode, time.Duration(r.DurationMS)*time.Millisecond)
			if r.Body != "" {
				s += ": " + clip(r.Body, 200)
			}
			return s
		}
	}
	return clip(string(compactJSON(raw)), 200)
}

func showTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return formatMS(t.UnixMilli())
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// clip shortens s to n runes on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
