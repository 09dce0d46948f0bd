package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

const taskCols = `id, team_id, status, target_url, target_host, method, headers, body, timeout_ms, delay_until,
	max_retries, retry_backoff, priority, on_complete_url, wait_for_signal, max_wait_ms,
	heartbeat_timeout_ms, retry_count, attempts, start_result, result, error, signal_hash,
	callback_hash, callback_nonce, provider, poll_config, poll_count, signal,
	buffered_signal, progress, last_heartbeat_at, on_complete, created_at, started_at,
	waiting_since, expires_at, completed_at, due_at, flow_key, schedule_id`

var (
	qInsertTask   = `insert into tasks (` + taskCols + `) values (?` + strings.Repeat(", ?", len(store.TaskColumns)-1) + `)`
	qTaskByID     = `select ` + taskCols + ` from tasks where id = ?`
	qTaskBySignal = `select ` + taskCols + ` from tasks where signal_hash = ? and signal_hash is not null`
	// A claim: the task goes to processing, one more attempt, no timer while its call runs.
	qClaimPending = `update tasks set status = 'processing', attempts = attempts + 1,
		started_at = coalesce(started_at, ?), due_at = null where id = ? and status = 'pending'
		returning ` + taskCols
	// The claim of a delayed task that is due (at the last ?).
	qClaimDelayed = `update tasks set status = 'processing', attempts = attempts + 1,
		started_at = coalesce(started_at, ?), due_at = null where id = ? and status = 'delayed' and due_at <= ?
		returning ` + taskCols
	qBufferedSignal = `select buffered_signal from tasks where id = ?`
	qTaskByCallback = `select ` + taskCols + ` from tasks where callback_hash = ? and callback_hash is not null`
	// Through (team_id, status, id), one range per team: no index of its own to keep up.
	qRecoverProcessing = `update tasks set status = 'pending', due_at = ?
		where team_id in (select id from teams) and status = 'processing' returning team_id`
	qInsertAttempt = `insert into attempts (task_id, attempt, started_at, duration_ms, status_code, error, response_body)
		values (?, ?, ?, ?, ?, ?, ?)`
)

// InsertTask adds a new task.
func (t *Tx) InsertTask(task *store.Task) error {
	_, err := t.exec(qInsertTask, taskArgs(task)...)
	if err != nil {
		return fmt.Errorf("insert task: %w", err)
	}
	t.Changed(task.ID)
	t.count(task.TeamID, "", task.Status, 1)
	return nil
}

// UpdateTask writes task, provided the row still has status from (compare-and-set). Only
// the columns that changed since this Tx read the task are written (every mutable column
// if it did not read it). Inside the single writer this never fails for a row read in the
// same Tx; it guards the read-modify-write against misuse.
func (t *Tx) UpdateTask(task *store.Task, from string) error {
	return t.update(t.readBefore(task.ID), task, from, guardStatus, task.ID, from)
}

// update runs one guarded update of task and records the change.
func (t *Tx) update(orig, task *store.Task, from, guard string, guardArgs ...any) error {
	n, err := t.updateDiff(orig, task, guard, guardArgs...)
	if err != nil {
		return fmt.Errorf("update task: %w", err)
	}
	if n != 1 {
		return store.ErrStale
	}
	t.Changed(task.ID)
	t.count(task.TeamID, from, task.Status, 1)
	return nil
}

// ClaimTasks claims those of ids that are pending, or delayed and due at now. Nothing is
// ever busy: this process is the database's only writer.
func (t *Tx) ClaimTasks(ids []string, now int64) ([]*store.Task, []string, error) {
	var out []*store.Task
	for _, id := range ids {
		from := store.StatusPending
		task, err := scanTask(t.queryRow(qClaimPending, now, id))
		if store.IsNotFound(err) {
			from = store.StatusDelayed
			task, err = scanTask(t.queryRow(qClaimDelayed, now, id, now))
		}
		if store.IsNotFound(err) {
			continue
		} else if err != nil {
			return nil, nil, fmt.Errorf("claim tasks: %w", err)
		}
		t.Changed(task.ID)
		t.count(task.TeamID, from, store.StatusProcessing, 1)
		out = append(out, task)
	}
	return out, nil, nil
}

// BufferedSignal reads just the early signal of a task.
func (t *Tx) BufferedSignal(id string) (*string, error) {
	var s *string
	err := t.get(&s, qBufferedSignal, id)
	return s, err
}

// UpdateTaskNoSignal writes a call's outcome (the columns that differ from orig, the task
// as on disk: claimed, or delayed when its claim was never written), provided its status
// is still orig's and no early signal arrived while the call was in flight (ErrStale
// otherwise).
func (t *Tx) UpdateTaskNoSignal(orig, task *store.Task) error {
	return t.update(orig, task, orig.Status, guardNoSignal, task.ID, orig.Status)
}

// UpdateTaskFrom writes what changed between orig, the task as it is on disk, and task,
// if its status is still orig's.
func (t *Tx) UpdateTaskFrom(orig, task *store.Task) error {
	return t.update(orig, task, orig.Status, guardStatus, task.ID, orig.Status)
}

// Task reads one task inside the write transaction; a later UpdateTask of it writes only
// what changed.
func (t *Tx) Task(id string) (*store.Task, error) { return t.readTask(qTaskByID, id) }

// TaskBySignal finds a task by the SHA-256 of its signal token.
func (t *Tx) TaskBySignal(hash []byte) (*store.Task, error) { return t.readTask(qTaskBySignal, hash) }

// TaskByCallback finds a task by the SHA-256 of its provider callback id.
func (t *Tx) TaskByCallback(hash []byte) (*store.Task, error) {
	return t.readTask(qTaskByCallback, hash)
}

// readTask reads the one task query finds and remembers it as read, for UpdateTask.
func (t *Tx) readTask(query string, arg any) (*store.Task, error) {
	task, err := scanTask(t.queryRow(query, arg))
	if err != nil {
		return nil, err
	}
	t.remember(task)
	return task, nil
}

// InsertAttempt records one call of a task's target.
func (t *Tx) InsertAttempt(a store.Attempt) error {
	var code any
	if a.StatusCode != nil {
		code = int64(*a.StatusCode)
	}
	_, err := t.exec(qInsertAttempt, a.TaskID, int64(a.Attempt), a.StartedAt, a.DurationMS, code, str(a.Error), str(a.ResponseBody))
	if err != nil {
		return fmt.Errorf("insert attempt: %w", err)
	}
	return nil
}

// RecoverProcessing returns tasks caught mid-call by a crash to pending, due now.
// Only safe while this process owns the database (the lock file guarantees it).
func (t *Tx) RecoverProcessing(now int64) (int64, error) {
	var rows []struct {
		TeamID string `db:"team_id"`
	}
	err := t.sel(&rows, qRecoverProcessing, now)
	if err != nil {
		return 0, fmt.Errorf("recover processing tasks: %w", err)
	}
	for _, r := range rows {
		t.count(r.TeamID, store.StatusProcessing, store.StatusPending, 1)
	}
	return int64(len(rows)), nil
}

// Task reads one task from the read pool.
func (s *Store) Task(ctx context.Context, id string) (*store.Task, error) {
	return s.readTask(ctx, qTaskByID, id)
}

// readTask reads the one task query finds, from the read pool.
func (s *Store) readTask(ctx context.Context, query string, arg any) (*store.Task, error) {
	st, err := s.rStmt(query)
	if err != nil {
		return nil, classify(err)
	}
	t, err := scanTask(st.QueryRowContext(ctx, arg))
	return t, classify(err)
}

// TasksByID reads the tasks with the given ids from the read pool, in no particular order;
// ids without a task are left out.
func (s *Store) TasksByID(ctx context.Context, ids []string) ([]*store.Task, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	// Padded to a power of two with repeats of the last id, so that a few prepared
	// statements serve every batch size.
	n := 1
	for n < len(ids) {
		n *= 2
	}
	args := make([]any, n)
	for i := range args {
		args[i] = ids[min(i, len(ids)-1)]
	}
	st, err := s.rStmt(`select ` + taskCols + ` from tasks where id in (?` + strings.Repeat(", ?", n-1) + `)`)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ts := make([]*store.Task, 0, len(ids))
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

// TaskBySignal finds a task by the SHA-256 of its signal token, from the read pool.
func (s *Store) TaskBySignal(ctx context.Context, hash []byte) (*store.Task, error) {
	return s.readTask(ctx, qTaskBySignal, hash)
}

// Attempts lists a task's attempts in order.
func (s *Store) Attempts(ctx context.Context, taskID string) ([]store.Attempt, error) {
	var as []store.Attempt
	err := s.sel(ctx, &as, `select task_id, attempt, started_at, duration_ms, status_code, error, response_body
		from attempts where task_id = ? order by attempt`, taskID)
	return as, err
}

// listCols is taskCols with each large column replaced by its stand-in when longer than
// max bytes, and an "omitted" column naming those. octet_length reads a value's size from
// its record header, so a left-out value is never loaded.
func listCols(max int) string {
	cols := make([]string, len(store.TaskColumns))
	for i, c := range store.TaskColumns {
		cols[i] = c.Name
	}
	var omitted []string
	for _, c := range store.LargeTaskColumns {
		i := slices.Index(cols, c.Name)
		cols[i] = fmt.Sprintf("(case when octet_length(%[1]s) > %[2]d then %[3]s else %[1]s end) as %[1]s", c.Name, max, c.Empty)
		omitted = append(omitted, fmt.Sprintf("iif(octet_length(%s) > %d, '%s,', '')", c.Name, max, c.Name))
	}
	return strings.Join(cols, ", ") + ", rtrim(" + strings.Join(omitted, " || ") + ", ',') as omitted"
}

// List returns one page of a team's tasks, newest first, and the total that match.
func (s *Store) List(ctx context.Context, f store.ListFilter) ([]store.ListedTask, int, error) {
	where := []string{"team_id = ?"}
	args := []any{f.TeamID}
	if len(f.Statuses) > 0 {
		where = append(where, "status in (?"+strings.Repeat(", ?", len(f.Statuses)-1)+")")
		for _, st := range f.Statuses {
			args = append(args, st)
		}
	}
	if f.CreatedAfter > 0 {
		where = append(where, "created_at > ?")
		args = append(args, f.CreatedAfter)
	}
	if f.CreatedBefore > 0 {
		where = append(where, "created_at < ?")
		args = append(args, f.CreatedBefore)
	}
	if f.TargetHost != "" {
		where = append(where, "target_host = ?")
		args = append(args, strings.ToLower(f.TargetHost))
	}
	if f.ScheduleID != "" {
		where = append(where, "schedule_id = ?")
		args = append(args, f.ScheduleID)
	}
	cond := strings.Join(where, " and ")
	var total int
	if f.CreatedAfter == 0 && f.CreatedBefore == 0 && f.TargetHost == "" && f.ScheduleID == "" {
		// Team and status filters only: the in-memory counts know the total.
		counts := s.statusCounts(f.TeamID)
		for st, n := range counts {
			if len(f.Statuses) == 0 || slices.Contains(f.Statuses, st) {
				total += int(n)
			}
		}
	} else if err := s.get(ctx, &total, `select count(*) from tasks where `+cond, args...); err != nil {
		return nil, 0, fmt.Errorf("count tasks: %w", err)
	}
	var tasks []store.ListedTask
	cols := taskCols + `, '' as omitted`
	if f.MaxField > 0 {
		cols = listCols(f.MaxField)
	}
	q := `select ` + cols + ` from tasks where ` + cond + ` order by id desc limit ? offset ?`
	if err := s.list.SelectContext(ctx, &tasks, q, append(args, f.Limit, f.Offset)...); err != nil {
		return nil, 0, fmt.Errorf("list tasks: %w", err)
	}
	return tasks, total, nil
}

// DueBefore pages through the timer index: timers with (due_at, id) after the cursor and
// due_at < until, in due order, at most limit. It reads only the partial index.
func (s *Store) DueBefore(ctx context.Context, afterDue int64, afterID string, until int64, limit int) ([]store.Timer, error) {
	var ts []store.Timer
	err := s.sel(ctx, &ts, `select id, due_at from tasks indexed by tasks_due_at_idx
		where due_at is not null and due_at < ? and (due_at > ? or (due_at = ? and id > ?))
		order by due_at, id limit ?`, until, afterDue, afterDue, afterID, limit)
	return ts, err
}

// escapeLike escapes the LIKE wildcards of s for use with `escape '\'`.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// PruneTasks deletes up to limit terminal tasks of a team that finished before cutoff and
// have no webhook still to deliver (their attempts go with them).
func (t *Tx) PruneTasks(teamID string, cutoff int64, limit int) (int, error) {
	var rows []struct {
		Status string `db:"status"`
	}
	err := t.sel(&rows, `delete from tasks where id in (select id from tasks
		where team_id = ? and completed_at is not null and completed_at < ? and due_at is null
		and status in ('completed', 'failed', 'timeout', 'cancelled') limit ?) returning status`, teamID, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("prune tasks: %w", err)
	}
	for _, r := range rows {
		t.countDeleted(teamID, r.Status, 1)
	}
	return len(rows), nil
}
