package postgres

import (
	"context"
	"fmt"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// InsertEvent adds to a task's history.
func (t *Tx) InsertEvent(taskID string, at int64, kind string, detail *string) error {
	_, err := t.exec(`insert into task_events (task_id, at, kind, detail) values ($1, $2, $3, $4)`, taskID, at, kind, detail)
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
	detail := "detail, false as detail_omitted"
	if maxDetail > 0 {
		detail = fmt.Sprintf(`(case when octet_length(detail) > %[1]d then null else detail end) as detail,
			coalesce(octet_length(detail) > %[1]d, false) as detail_omitted`, maxDetail)
	}
	return selectStructs[store.Event](ctx, s, `select * from (select id, task_id, at, kind, `+detail+` from task_events
		where task_id = $1 order by id desc limit $2) as newest order by id`, taskID, limit)
}
