package postgres

import (
	"context"
	"fmt"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

const scheduleCols = `id, team_id, cron, every, timezone, task, paused, next_run_at, last_run_at,
	last_task_id, last_error, created_at, updated_at`

// InsertSchedule adds a new schedule.
func (t *Tx) InsertSchedule(s *store.Schedule) error {
	_, err := t.exec(`insert into schedules (`+scheduleCols+`) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		s.ID, s.TeamID, s.Cron, s.Every, s.Timezone, s.Task, s.Paused, s.NextRunAt, s.LastRunAt,
		s.LastTaskID, s.LastError, s.CreatedAt, s.UpdatedAt)
	if err != nil {
		return fmt.Errorf("insert schedule: %w", err)
	}
	t.quietly(s.ID, "", s.NextRunAt) // its timer, for the other nodes
	return nil
}

// UpdateSchedule writes every mutable field of s (ErrStale if it no longer exists).
func (t *Tx) UpdateSchedule(s *store.Schedule) error {
	tag, err := t.exec(`update schedules set cron = $1, every = $2, timezone = $3, task = $4, paused = $5,
		next_run_at = $6, last_run_at = $7, last_task_id = $8, last_error = $9, updated_at = $10 where id = $11`,
		s.Cron, s.Every, s.Timezone, s.Task, s.Paused, s.NextRunAt, s.LastRunAt, s.LastTaskID, s.LastError, s.UpdatedAt, s.ID)
	if err != nil {
		return fmt.Errorf("update schedule: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return store.ErrStale
	}
	t.quietly(s.ID, "", s.NextRunAt)
	return nil
}

// DeleteSchedule removes a schedule; the tasks it made stay, with its id.
func (t *Tx) DeleteSchedule(id string) error {
	if _, err := t.exec(`delete from schedules where id = $1`, id); err != nil {
		return fmt.Errorf("delete schedule: %w", err)
	}
	t.quietly(id, "", nil)
	return nil
}

// Schedule reads one schedule for update.
func (t *Tx) Schedule(id string) (*store.Schedule, error) {
	return txGetStruct[store.Schedule](t, `select `+scheduleCols+` from schedules where id = $1 for update`, id)
}

// Schedule reads one schedule (ErrNotFound if none).
func (s *Store) Schedule(ctx context.Context, id string) (*store.Schedule, error) {
	return getStruct[store.Schedule](ctx, s, `select `+scheduleCols+` from schedules where id = $1`, id)
}

// Schedules returns one page of a team's schedules, newest first, and how many it has.
func (s *Store) Schedules(ctx context.Context, teamID string, limit, offset int) ([]store.Schedule, int, error) {
	var total int
	if err := s.get(ctx, `select count(*) from schedules where team_id = $1`, []any{teamID}, &total); err != nil {
		return nil, 0, fmt.Errorf("count schedules: %w", err)
	}
	out, err := selectStructs[store.Schedule](ctx, s, `select `+scheduleCols+` from schedules where team_id = $1
		order by id desc limit $2 offset $3`, teamID, limit, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("list schedules: %w", err)
	}
	return out, total, nil
}

// SchedulesDueBefore lists the schedules whose next run falls in [from, until), in due
// order, through the partial index on next_run_at.
func (s *Store) SchedulesDueBefore(ctx context.Context, from, until int64) ([]store.Timer, error) {
	return selectStructs[store.Timer](ctx, s, `select id, next_run_at as due_at from schedules
		where next_run_at is not null and next_run_at >= $1 and next_run_at < $2 order by next_run_at, id`, from, until)
}
