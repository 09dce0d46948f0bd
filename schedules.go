package main

// Schedules (SPEC §11): a task body made into an ordinary task at each run of a cron
// expression or an interval. A schedule's next run is a durable timer like a task's: the
// schedules table holds next_run_at, the loader brings the runs due within the horizon into
// the timer queue, and the timer's fire makes the run's task and moves the schedule in one
// write transaction, so a crash never leaves two tasks (or none) for one run.
//
// Decisions:
//   - Overlap: every run makes a new task, whether or not the previous run's task is still
//     going. A schedule is a clock, not a lock; a target that must not overlap can refuse
//     (any 4xx answers the call) or the user can pick a longer period.
//   - Catch-up: runs missed while the server was down (or while the fire was late) collapse
//     into one run, made at start-up; the next run is then the first one after now.
//   - Resume: a paused schedule resumes at its next run after now; runs that fell due while
//     paused are not made up.
//   - Trigger: one extra run now; the schedule's timer does not move.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/asyncqueue/asyncqueue/internal/keys"
	"github.com/asyncqueue/asyncqueue/internal/schedule"
	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/timerq"
)

// scheduleIDPrefix starts every schedule id; a task id (a UUID) never does, so the timer
// queue can hold both.
const scheduleIDPrefix = "sch_"

// Run kinds and outcomes, the labels of asyncqueue_schedule_runs_total.
const (
	runScheduled = "scheduled" // on time
	runCatchUp   = "catchup"   // late, standing in for the runs missed meanwhile
	runTrigger   = "trigger"   // POST /v1/schedules/{id}/trigger
)

var errScheduleNotFound = &Error{http.StatusNotFound, "Schedule not found"}

func isScheduleID(id string) bool { return strings.HasPrefix(id, scheduleIDPrefix) }

// ScheduleJSON is a schedule as the API shows it.
type ScheduleJSON struct {
	ID         string          `json:"id"`
	TeamID     string          `json:"teamId"`
	Cron       *string         `json:"cron"`
	Every      *string         `json:"every"`
	Timezone   string          `json:"timezone"`
	Task       json.RawMessage `json:"task"`
	Paused     bool            `json:"paused"`
	NextRunAt  *string         `json:"nextRunAt"`
	LastRunAt  *string         `json:"lastRunAt"`
	LastTaskID *string         `json:"lastTaskId"`
	LastError  *string         `json:"lastError"`
	CreatedAt  string          `json:"createdAt"`
	UpdatedAt  string          `json:"updatedAt"`
}

func scheduleJSON(s *store.Schedule) *ScheduleJSON {
	return &ScheduleJSON{ID: s.ID, TeamID: s.TeamID, Cron: s.Cron, Every: s.Every, Timezone: s.Timezone,
		Task: json.RawMessage(s.Task), Paused: s.Paused, NextRunAt: formatTime(s.NextRunAt),
		LastRunAt: formatTime(s.LastRunAt), LastTaskID: s.LastTaskID, LastError: s.LastError,
		CreatedAt: *formatTime(&s.CreatedAt), UpdatedAt: *formatTime(&s.UpdatedAt)}
}

// scheduleRequest is the body of POST and PATCH /v1/schedules. Pointers tell "absent" from zero.
type scheduleRequest struct {
	Cron     *string         `json:"cron"`
	Every    *string         `json:"every"`
	Timezone *string         `json:"timezone"`
	Task     json.RawMessage `json:"task"`
	Paused   *bool           `json:"paused"`
}

// specOf parses a stored schedule's expression.
func specOf(s *store.Schedule) (*schedule.Spec, error) {
	return schedule.Parse(valueOrEmpty(s.Cron), valueOrEmpty(s.Every), s.Timezone)
}

func valueOrEmpty(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// specError turns a schedule definition error into a 400 naming the field.
func specError(err error) error {
	var fe *schedule.FieldError
	if errors.As(err, &fe) {
		return badRequest("%s: %s", fe.Field, fe.Message)
	}
	return err
}

// validScheduleTask checks a schedule's task body exactly as POST /v1/tasks would (unknown
// fields, addresses and the outbound policy, vault references) and returns it compact.
func (a *App) validScheduleTask(ctx context.Context, teamID string, raw json.RawMessage, now time.Time) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", badRequest("task is required: the create body (as for POST /v1/tasks) of the task each run makes")
	}
	if raw[0] != '{' {
		return "", badRequest("task must be a JSON object: the create body of the task each run makes")
	}
	var req createRequest
	if err := decodeBytes(raw, &req); err != nil {
		return "", taskFieldError(err)
	}
	if _, err := a.newTask(&req, teamID, now); err != nil {
		return "", taskFieldError(err)
	}
	if err := a.checkTokenRefs(ctx, teamID, req.Headers); err != nil {
		return "", taskFieldError(err)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "", badRequest("task must be a JSON object")
	}
	return b.String(), nil
}

// taskFieldError prefixes a task validation error with the field that holds the task.
func taskFieldError(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return &Error{e.Status, "task: " + e.Message}
	}
	return err
}

// createSchedule is POST /v1/schedules.
func (a *App) createSchedule(w http.ResponseWriter, r *http.Request) error {
	teamID := teamOf(r)
	now := time.Now()
	var req scheduleRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	spec, err := schedule.Parse(valueOrEmpty(req.Cron), valueOrEmpty(req.Every), valueOrEmpty(req.Timezone))
	if err != nil {
		return specError(err)
	}
	body, err := a.validScheduleTask(r.Context(), teamID, req.Task, now)
	if err != nil {
		return err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	s := &store.Schedule{ID: scheduleIDPrefix + id.String(), TeamID: teamID, Task: body,
		Timezone: spec.Location().String(), CreatedAt: now.UnixMilli(), UpdatedAt: now.UnixMilli()}
	if spec.Every() > 0 {
		s.Every = optString(strings.TrimSpace(*req.Every))
	} else {
		s.Cron = optString(strings.TrimSpace(*req.Cron))
	}
	s.Paused = req.Paused != nil && *req.Paused
	if !s.Paused {
		next := spec.Next(now).UnixMilli()
		s.NextRunAt = &next
	}
	err = a.store.Write(r.Context(), func(tx store.Tx) error {
		if err := tx.InsertSchedule(s); err != nil {
			return err
		}
		tx.AfterCommit(func() { a.armSchedule(s) })
		return nil
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/schedules/"+s.ID)
	return writeJSON(w, http.StatusCreated, map[string]any{"schedule": scheduleJSON(s)})
}

// loadSchedule reads a schedule of the caller's team; another team's is not found.
func (a *App) loadSchedule(r *http.Request) (*store.Schedule, error) {
	id := r.PathValue("id")
	if _, err := uuid.Parse(strings.TrimPrefix(id, scheduleIDPrefix)); err != nil || !isScheduleID(id) {
		return nil, badRequest("%q is not a schedule id (sch_…)", id)
	}
	return a.teamSchedule(r.Context(), id, teamOf(r))
}

// teamSchedule reads schedule id of team; another team's is not found.
func (a *App) teamSchedule(ctx context.Context, id, team string) (*store.Schedule, error) {
	s, err := a.store.Schedule(ctx, id)
	if store.IsNotFound(err) {
		return nil, errScheduleNotFound
	} else if err != nil {
		return nil, err
	}
	if s.TeamID != team {
		return nil, errScheduleNotFound
	}
	return s, nil
}

// getSchedule is GET /v1/schedules/{id}.
func (a *App) getSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := a.loadSchedule(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"schedule": scheduleJSON(s)})
}

// listSchedules is GET /v1/schedules, newest first.
func (a *App) listSchedules(w http.ResponseWriter, r *http.Request) error {
	limit, err := queryInt(r, "limit", 20, 1, 100)
	if err != nil {
		return err
	}
	offset, err := queryInt(r, "offset", 0, 0, math.MaxInt32)
	if err != nil {
		return err
	}
	ss, total, err := a.store.Schedules(r.Context(), teamOf(r), limit, offset)
	if err != nil {
		return err
	}
	out := make([]*ScheduleJSON, len(ss))
	for i := range ss {
		out[i] = scheduleJSON(&ss[i])
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"schedules": out,
		"pagination": map[string]any{"total": total, "limit": limit, "offset": offset,
			"hasMore": offset+len(ss) < total},
	})
}

// changeSchedule reads the schedule again inside a write, lets change edit it, writes it and
// re-arms its timer. change returns a *Error to refuse.
func (a *App) changeSchedule(ctx context.Context, id string, change func(s *store.Schedule, now time.Time) error) (*store.Schedule, error) {
	var done *store.Schedule
	err := a.store.Write(ctx, func(tx store.Tx) error {
		s, err := tx.Schedule(id)
		if store.IsNotFound(err) {
			return errScheduleNotFound
		} else if err != nil {
			return err
		}
		now := time.Now()
		if err := change(s, now); err != nil {
			return err
		}
		s.UpdatedAt = now.UnixMilli()
		if err := tx.UpdateSchedule(s); err != nil {
			return err
		}
		done = s
		tx.AfterCommit(func() { a.armSchedule(s) })
		return nil
	})
	return done, err
}

// patchSchedule is PATCH /v1/schedules/{id}: any of the create fields. A new expression or
// time zone, or a resume, computes the next run from now.
func (a *App) patchSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := a.loadSchedule(r)
	if err != nil {
		return err
	}
	var req scheduleRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	cronExpr, every, tz := valueOrEmpty(s.Cron), valueOrEmpty(s.Every), s.Timezone
	if req.Cron != nil && req.Every != nil && *req.Cron != "" && *req.Every != "" {
		return specError(&schedule.FieldError{Field: "cron", Message: "give cron or every, not both"})
	}
	if req.Cron != nil && *req.Cron != "" {
		cronExpr, every = strings.TrimSpace(*req.Cron), ""
	}
	if req.Every != nil && *req.Every != "" {
		cronExpr, every = "", strings.TrimSpace(*req.Every)
	}
	if req.Timezone != nil {
		tz = *req.Timezone
	}
	spec, err := schedule.Parse(cronExpr, every, tz)
	if err != nil {
		return specError(err)
	}
	retime := cronExpr != valueOrEmpty(s.Cron) || every != valueOrEmpty(s.Every) || spec.Location().String() != s.Timezone
	var body string
	if req.Task != nil {
		if body, err = a.validScheduleTask(r.Context(), s.TeamID, req.Task, time.Now()); err != nil {
			return err
		}
	}
	s, err = a.changeSchedule(r.Context(), s.ID, func(s *store.Schedule, now time.Time) error {
		s.Cron, s.Every, s.Timezone = optString(cronExpr), optString(every), spec.Location().String()
		if body != "" {
			s.Task = body
		}
		paused := s.Paused
		if req.Paused != nil {
			paused = *req.Paused
		}
		switch {
		case paused:
			s.NextRunAt = nil
		case s.Paused || retime || s.NextRunAt == nil:
			next := spec.Next(now).UnixMilli()
			s.NextRunAt = &next
		}
		s.Paused = paused
		return nil
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"schedule": scheduleJSON(s)})
}

// scheduleChange is the handler of POST /v1/schedules/{id}/pause (no runs until resumed)
// and …/resume (runs again from the next run after now): it reads the team's schedule,
// applies change and answers with the schedule as it is now.
func (a *App) scheduleChange(change func(context.Context, *store.Schedule) (*store.Schedule, error)) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		s, err := a.loadSchedule(r)
		if err != nil {
			return err
		}
		if s, err = change(r.Context(), s); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]any{"schedule": scheduleJSON(s)})
	}
}

// pauseTeamSchedule pauses s, a schedule read for its team. The API and the admin page
// both call it, as they do the three below.
func (a *App) pauseTeamSchedule(ctx context.Context, s *store.Schedule) (*store.Schedule, error) {
	return a.changeSchedule(ctx, s.ID, func(s *store.Schedule, now time.Time) error {
		s.Paused, s.NextRunAt = true, nil
		return nil
	})
}

// resumeTeamSchedule makes s run again from its next run after now.
func (a *App) resumeTeamSchedule(ctx context.Context, s *store.Schedule) (*store.Schedule, error) {
	return a.changeSchedule(ctx, s.ID, func(s *store.Schedule, now time.Time) error {
		if !s.Paused && s.NextRunAt != nil {
			return nil // running already: keep its next run
		}
		spec, err := specOf(s)
		if err != nil {
			return err
		}
		next := spec.Next(now).UnixMilli()
		s.Paused, s.NextRunAt = false, &next
		return nil
	})
}

// deleteSchedule is DELETE /v1/schedules/{id}. The tasks it made stay.
func (a *App) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := a.loadSchedule(r)
	if err != nil {
		return err
	}
	if err := a.deleteTeamSchedule(r.Context(), s); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"deleted": true, "id": s.ID})
}

// deleteTeamSchedule deletes s and drops its timer.
func (a *App) deleteTeamSchedule(ctx context.Context, s *store.Schedule) error {
	return a.store.Write(ctx, func(tx store.Tx) error {
		if err := tx.DeleteSchedule(s.ID); err != nil {
			return err
		}
		tx.AfterCommit(func() { a.sched.timers.Remove(s.ID) })
		return nil
	})
}

// triggerSchedule is POST /v1/schedules/{id}/trigger: one run now, beside the schedule's own.
func (a *App) triggerSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := a.loadSchedule(r)
	if err != nil {
		return err
	}
	task, err := a.triggerTeamSchedule(r.Context(), s)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]any{"task": a.taskJSON(task)})
}

// triggerTeamSchedule makes one run of s now and returns its task.
func (a *App) triggerTeamSchedule(ctx context.Context, s *store.Schedule) (*store.Task, error) {
	var task *store.Task
	var runErr error
	err := a.store.Write(ctx, func(tx store.Tx) error {
		s, err := tx.Schedule(s.ID)
		if store.IsNotFound(err) {
			return errScheduleNotFound
		} else if err != nil {
			return err
		}
		if task, runErr, err = a.makeRun(tx, s, time.Now(), ""); err != nil {
			return err
		}
		return tx.UpdateSchedule(s)
	})
	if err != nil {
		return nil, err
	}
	a.countRun(runTrigger, runErr)
	if runErr != nil {
		// The stored body no longer makes a valid task (a target the policy now blocks, a
		// deleted vault token): say so rather than pretend a run happened.
		return nil, taskFieldError(runErr)
	}
	return task, nil
}

// makeRun makes one run's task inside tx and records the run on s (the caller writes s).
// With a key, the run is recorded under an idempotency key, and a run whose key is known
// makes no second task. A body that no longer makes a valid task (a target the policy now
// blocks, say) is recorded on s as lastError and returned as runErr: the run is spent all
// the same. err is a storage error, which fails the write.
func (a *App) makeRun(tx store.Tx, s *store.Schedule, now time.Time, key string) (task *store.Task, runErr, err error) {
	nowMS := now.UnixMilli()
	s.LastRunAt = &nowMS
	if task, runErr = a.runTask(s, now); runErr != nil {
		msg := runErr.Error()
		s.LastError = &msg
		return nil, runErr, nil
	}
	if key != "" {
		if prev, err := tx.Idempotency(s.TeamID, key, now.Add(-IdempotencyWindow).UnixMilli()); err == nil {
			s.LastTaskID, s.LastError = &prev.TaskID, nil
			return nil, nil, nil // made before: a crash cut the run short after its task was written
		} else if !store.IsNotFound(err) {
			return nil, nil, err
		}
		h := sha256.Sum256([]byte(s.Task))
		if err := tx.PutIdempotency(&store.Idempotency{TeamID: s.TeamID, Key: key, RequestHash: h[:],
			TaskID: task.ID, CreatedAt: nowMS}); err != nil {
			return nil, nil, err
		}
	}
	if err := tx.InsertTask(task); err != nil {
		return nil, nil, err
	}
	s.LastTaskID, s.LastError = &task.ID, nil
	tx.AfterCommit(func() { a.scheduled(task) })
	return task, nil, nil
}

// runTask builds the task a run of s makes, from its stored create body, as POST /v1/tasks
// would at now.
func (a *App) runTask(s *store.Schedule, now time.Time) (*store.Task, error) {
	var req createRequest
	if err := decodeBytes([]byte(s.Task), &req); err != nil {
		return nil, err
	}
	t, err := a.newTask(&req, s.TeamID, now)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	t.ID = id.String()
	if t.WaitForSignal {
		// Nobody receives this token: a run's waiting task is signalled with the API key
		// (POST /v1/tasks/{id}/signal), its id arriving in X-AsyncQueue-Task-Id.
		_, h := keys.NewToken()
		t.SignalHash = h[:]
	}
	sid := s.ID
	t.ScheduleID = &sid
	return t, nil
}

// runKey is the idempotency key of the run of schedule id due at due (Unix ms).
func runKey(id string, due int64) string { return fmt.Sprintf("schedule:%s:%d", id, due) }

// fireSchedules starts the runs among timers that fell due and returns the other timers.
// Each run is its own write, started at once, so that runs due together share a group
// commit rather than wait for each other's.
func (d *dispatcher) fireSchedules(es []timerq.Entry) []timerq.Entry {
	rest := es[:0:0]
	for _, e := range es {
		if !isScheduleID(e.ID) {
			rest = append(rest, e)
			continue
		}
		d.spawn(func() { d.a.fireSchedule(d.runCtx, e.ID) })
	}
	return rest
}

// fireSchedule makes the run of schedule id that fell due, and moves the schedule to its
// next run, in one write. The database decides: a paused, deleted or re-timed schedule's
// timer is stale.
func (a *App) fireSchedule(ctx context.Context, id string) {
	var kind string
	var runErr error
	err := a.store.Write(ctx, func(tx store.Tx) error {
		kind, runErr = "", nil
		s, err := tx.Schedule(id)
		if store.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		now := time.Now()
		if s.Paused || s.NextRunAt == nil {
			return nil
		}
		if *s.NextRunAt > now.UnixMilli() {
			tx.AfterCommit(func() { a.armSchedule(s) }) // a stale timer may have replaced its own
			return nil
		}
		spec, err := specOf(s)
		if err != nil {
			msg := err.Error()
			s.LastError, s.NextRunAt, s.Paused = &msg, nil, true // cannot happen: validated when stored
			return tx.UpdateSchedule(s)
		}
		due := time.UnixMilli(*s.NextRunAt)
		kind = runScheduled
		if spec.Missed(due, now) {
			kind = runCatchUp
		}
		if _, runErr, err = a.makeRun(tx, s, now, runKey(s.ID, *s.NextRunAt)); err != nil {
			return err // the write fails and the timer comes back
		}
		next := spec.After(due, now)
		if next.IsZero() {
			s.NextRunAt = nil
		} else {
			ms := next.UnixMilli()
			s.NextRunAt = &ms
		}
		s.UpdatedAt = now.UnixMilli()
		if err := tx.UpdateSchedule(s); err != nil {
			return err
		}
		tx.AfterCommit(func() { a.armSchedule(s) })
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			a.log.Error("schedule run; trying again in a second", "schedule", id, "err", err)
			a.sched.timers.PushIfAbsent(id, time.Now().Add(retryPause))
		}
		return
	}
	if kind != "" {
		a.countRun(kind, runErr)
		if runErr != nil {
			a.log.Warn("schedule run made no task", "schedule", id, "err", runErr)
		}
	}
}

func (a *App) countRun(kind string, runErr error) {
	outcome := "created"
	if runErr != nil {
		outcome = "invalid"
	}
	a.metrics.scheduleRuns.WithLabelValues(kind, outcome).Inc()
}

// armSchedule puts a committed schedule's next run in the timer queue when it falls inside
// the horizon (the loader brings later ones), and takes it out when it has none.
func (a *App) armSchedule(s *store.Schedule) {
	next := s.NextRunAt
	if s.Paused {
		next = nil
	}
	a.sched.timerAt(s.ID, next)
}

// loadScheduleTimers brings the schedules' runs due in [from, until) into the timer queue;
// the loader calls it with each new stretch of the horizon.
func (a *App) loadScheduleTimers(ctx context.Context, from, until int64) error {
	ts, err := a.store.SchedulesDueBefore(ctx, from, until)
	if err != nil {
		return err
	}
	for _, t := range ts {
		a.sched.timers.Push(t.ID, time.UnixMilli(t.DueAt))
	}
	return nil
}
