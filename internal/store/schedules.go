package store

import (
	"context"
	"fmt"
)

// Schedule is one row of the schedules table: a task body made into a task at each run.
type Schedule struct {
	ID         string  `db:"id"`
	TeamID     string  `db:"team_id"`
	Cron       *string `db:"cron"`
	Every      *string `db:"every"`
	Timezone   string  `db:"timezone"`
	Task       string  `db:"task"`
	Paused     bool    `db:"paused"`
	NextRunAt  *int64  `db:"next_run_at"`
	LastRunAt  *int64  `db:"last_run_at"`
	LastTaskID *string `db:"last_task_id"`
	LastError  *string `db:"last_error"`
	CreatedAt  int64   `db:"created_at"`
	UpdatedAt  int64   `db:"updated_at"`
}

const scheduleCols = `id, team_id, cron, every, timezone, task, paused, next_run_at, last_run_at,
	last_task_id, last_error, created_at, updated_at`

// InsertSchedule adds a new schedule.
func (t *Tx) InsertSchedule(s *Schedule) error {
	_, err := t.NamedExec(`insert into schedules (`+scheduleCols+`) values (:id, :team_id, :cron, :every,
		:timezone, :task, :paused, :next_run_at, :last_run_at, :last_task_id, :last_error, :created_at, :updated_at)`, s)
	if err != nil {
		return fmt.Errorf("insert schedule: %w", err)
	}
	return nil
}

// UpdateSchedule writes every mutable column of s.
func (t *Tx) UpdateSchedule(s *Schedule) error {
	res, err := t.NamedExec(`update schedules set cron = :cron, every = :every, timezone = :timezone,
		task = :task, paused = :paused, next_run_at = :next_run_at, last_run_at = :last_run_at,
		last_task_id = :last_task_id, last_error = :last_error, updated_at = :updated_at where id = :id`, s)
	if err != nil {
		return fmt.Errorf("update schedule: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrStale
	}
	return nil
}

// DeleteSchedule removes a schedule; the tasks it made stay, with their schedule id.
func (t *Tx) DeleteSchedule(id string) error {
	if _, err := t.Exec(`delete from schedules where id = ?`, id); err != nil {
		return fmt.Errorf("delete schedule: %w", err)
	}
	return nil
}

// Schedule reads one schedule inside the write transaction.
func (t *Tx) Schedule(id string) (*Schedule, error) {
	var s Schedule
	if err := t.Get(&s, `select `+scheduleCols+` from schedules where id = ?`, id); err != nil {
		return nil, err
	}
	return &s, nil
}

// Schedule reads one schedule from the read pool.
func (s *Store) Schedule(ctx context.Context, id string) (*Schedule, error) {
	var sc Schedule
	if err := s.get(ctx, &sc, `select `+scheduleCols+` from schedules where id = ?`, id); err != nil {
		return nil, err
	}
	return &sc, nil
}

// Schedules returns one page of a team's schedules, newest first, and how many it has.
func (s *Store) Schedules(ctx context.Context, teamID string, limit, offset int) ([]Schedule, int, error) {
	var total int
	if err := s.get(ctx, &total, `select count(*) from schedules where team_id = ?`, teamID); err != nil {
		return nil, 0, fmt.Errorf("count schedules: %w", err)
	}
	var out []Schedule
	if err := s.sel(ctx, &out, `select `+scheduleCols+` from schedules where team_id = ?
		order by id desc limit ? offset ?`, teamID, limit, offset); err != nil {
		return nil, 0, fmt.Errorf("list schedules: %w", err)
	}
	return out, total, nil
}

// SchedulesDueBefore lists the schedules whose next run falls in [from, until), through the
// partial index on next_run_at.
func (s *Store) SchedulesDueBefore(ctx context.Context, from, until int64) ([]Timer, error) {
	var ts []Timer
	err := s.sel(ctx, &ts, qSchedulesDue, from, until)
	return ts, err
}

const (
	qSchedulesDue = `select id, next_run_at as due_at from schedules indexed by schedules_next_run_at_idx
		where next_run_at is not null and next_run_at >= ? and next_run_at < ? order by next_run_at, id`
	qTasksOfSchedule = `select id from tasks where team_id = ? and schedule_id = ? order by id desc limit 20`
)
