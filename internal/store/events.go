package store

import (
	"context"
	"fmt"
)

// Event is something a task received from outside: a signal, a heartbeat, a provider callback.
type Event struct {
	ID     int64   `db:"id" json:"-"`
	TaskID string  `db:"task_id" json:"-"`
	At     int64   `db:"at" json:"-"`
	Kind   string  `db:"kind" json:"kind"`
	Detail *string `db:"detail" json:"-"`
}

// InsertEvent adds to a task's history.
func (t *Tx) InsertEvent(taskID string, at int64, kind string, detail *string) error {
	_, err := t.Exec(`insert into task_events (task_id, at, kind, detail) values (?, ?, ?, ?)`, taskID, at, kind, detail)
	if err != nil {
		return fmt.Errorf("insert task event: %w", err)
	}
	return nil
}

// Events returns a task's newest events, oldest first, at most limit.
func (s *Store) Events(ctx context.Context, taskID string, limit int) ([]Event, error) {
	var es []Event
	err := s.sel(ctx, &es, `select * from (select id, task_id, at, kind, detail from task_events
		where task_id = ? order by id desc limit ?) order by id`, taskID, limit)
	return es, err
}
