package sqlite

import (
	"context"
	"fmt"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// InsertEvent adds to a task's history.
func (t *Tx) InsertEvent(taskID string, at int64, kind string, detail *string) error {
	_, err := t.exec(`insert into task_events (task_id, at, kind, detail) values (?, ?, ?, ?)`, taskID, at, kind, detail)
	if err != nil {
		return fmt.Errorf("insert task event: %w", err)
	}
	return nil
}

// Events returns a task's newest events, oldest first, at most limit.
func (s *Store) Events(ctx context.Context, taskID string, limit int) ([]store.Event, error) {
	return s.EventsBounded(ctx, taskID, limit, 0)
}

// EventsBounded is Events with each detail longer than maxDetail bytes left out (nil, and
// DetailOmitted set); 0 keeps every detail.
func (s *Store) EventsBounded(ctx context.Context, taskID string, limit, maxDetail int) ([]store.Event, error) {
	detail := "detail, 0 as detail_omitted"
	if maxDetail > 0 {
		detail = fmt.Sprintf("(case when octet_length(detail) > %[1]d then null else detail end) as detail, octet_length(detail) > %[1]d as detail_omitted", maxDetail)
	}
	var es []store.Event
	err := s.sel(ctx, &es, `select * from (select id, task_id, at, kind, `+detail+` from task_events
		where task_id = ? order by id desc limit ?) order by id`, taskID, limit)
	return es, err
}
