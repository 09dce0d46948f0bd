package sqlite

import (
	"context"
	"fmt"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

const scheduleCols = `id, team_id, cron, every, timezone, task, paused, next_run_at, last_run_at,
	last_task_id, last_error, created_at, updated_at`

// InsertSchedule adds a new schedule.
func (t *Tx) InsertSchedule(s *store.Schedule) error {
	_, err := t.namedExec(`insert into schedules (`+scheduleCols+`) values (:id, :team_id, :cron, :every,
		:timezone, :task, :paused, :next_run_at, :last_run_at, :last_task_id, :last_error, :created_at, :updated_at)`, s)
	if err != nil {
		return fmt.Errorf("insert schedule: %w", err)
	}
	return nil
}

// UpdateSchedule writes every mutable column of s.
func (t *Tx) UpdateSchedule(s *store.Schedule) error {
	res, err := t.namedExec(`update schedules set cron = :cron, every = :every, timezone = :timezone,
		task = :task, paused = :paused, next_run_at = :next_run_at, last_run_at = :last_run_at,
		last_task_id = :last_task_id, last_error = :last_error, updated_at = :updated_at where id = :id`, s)
	if err != nil {
		return fmt.Errorf("update schedule: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return store.ErrStale
	}
	return nil
}

// DeleteSchedule removes a schedule; the tasks it made stay, with their schedule id.
func (t *Tx) DeleteSchedule(id string) error {
	if _, err := t.exec(`delete from schedules where id = ?`, id); err != nil {
		return fmt.Errorf("delete schedule: %w", err)
	}
	return nil
}

// Schedule reads one schedule inside the write transaction.
func (t *Tx) Schedule(id string) (*store.Schedule, error) {
	var s store.Schedule
	if err := t.get(&s, `select `+scheduleCols+` from schedules where id = ?`, id); err != nil {
		return nil, err
	}
	return &s, nil
}

// Schedule reads one schedule from the read pool.
func (s *Store) Schedule(ctx context.Context, id string) (*store.Schedule, error) {
	var sc store.Schedule
	if err := s.get(ctx, &sc, `select `+scheduleCols+` from schedules where id = ?`, id); err != nil {
		return nil, err
	}
	return &sc, nil
}

// Schedules returns one page of a team's schedules, newest first, and how many it has.
func (s *Store) Schedules(ctx context.Context, teamID string, limit, offset int) ([]store.Schedule, int, error) {
	var total int
	if err := s.get(ctx, &total, `select count(*) from schedules where team_id = ?`, teamID); err != nil {
		return nil, 0, fmt.Errorf("count schedules: %w", err)
	}
	var out []store.Schedule
	if err := s.sel(ctx, &out, `select `+scheduleCols+` from schedules where team_id = ?
		order by id desc limit ? offset ?`, teamID, limit, offset); err != nil {
		return nil, 0, fmt.Errorf("list schedules: %w", err)
	}
	return out, total, nil
}

// SchedulesDueBefore lists the schedules whose next run falls in [from, until), through the
// partial index on next_run_at.
func (s *Store) SchedulesDueBefore(ctx context.Context, from, until int64) ([]store.Timer, error) {
	var ts []store.Timer
	err := s.sel(ctx, &ts, qSchedulesDue, from, until)
	return ts, err
}

const (
	qSchedulesDue = `select id, next_run_at as due_at from schedules indexed by schedules_next_run_at_idx
		where next_run_at is not null and next_run_at >= ? and next_run_at < ? order by next_run_at, id`
	qTasksOfSchedule = `select id from tasks where team_id = ? and schedule_id = ? order by id desc limit 20`
)
