package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/asyncqueue/asyncqueue/internal/store"

	"github.com/jackc/pgx/v5"
)

var (
	qInsertTask = `insert into tasks (` + taskCols + `, claimed_by) values (` + placeholders(1, len(store.TaskColumns)+1) + `)`
	qTaskByID   = `select ` + taskCols + ` from tasks where id = $1`
	// Through the partial unique indexes.
	qTaskBySignal   = `select ` + taskCols + ` from tasks where signal_hash = $1 and signal_hash is not null`
	qTaskByCallback = `select ` + taskCols + ` from tasks where callback_hash = $1 and callback_hash is not null`
	// A claim: those of the ids that are due at $1 (pending, or delayed and due) go to
	// processing, one more attempt, held by this node until their lease (due_at) ends;
	// locked in id order (two batches never wait on each other crosswise), skipping rows
	// another transaction holds.
	qClaimTasks = `with c as (select id from tasks where id = any($4)
			and (status = 'pending' or (status = 'delayed' and due_at <= $1))
			order by id for update skip locked)
		update tasks t set status = 'processing', attempts = t.attempts + 1,
		started_at = coalesce(t.started_at, $1), claimed_by = $2, due_at = $1 + t.timeout_ms + $3
		from c where t.id = c.id
		returning ` + taskColsOf("t")
	// Those of the ids still due (last committed, without a lock): held by another transaction.
	qStillDue = `select id from tasks where id = any($1)
		and (status = 'pending' or (status = 'delayed' and due_at <= $2))`
	qBufferedSignal = `select buffered_signal from tasks where id = $1 for update`
	// Through tasks_claimed_by_idx: only this node's claims.
	qRecoverProcessing = `update tasks set status = 'pending', due_at = $1, claimed_by = null
		where claimed_by = $2 and status = 'processing' returning id`
	qInsertAttempt = `insert into attempts (task_id, attempt, started_at, duration_ms, status_code, error, response_body)
		values ($1, $2, $3, $4, $5, $6, $7)`
)

// InsertTask adds a new task; one inserted as processing is held by this node.
func (t *Tx) InsertTask(task *store.Task) error {
	var claim any
	if task.Status == store.StatusProcessing {
		claim = t.s.opts.Node
	}
	if _, err := t.exec(qInsertTask, append(taskArgs(task), claim)...); err != nil {
		return fmt.Errorf("insert task: %w", err)
	}
	t.wrote = true
	t.changedTask(task)
	return nil
}

// UpdateTask writes task, provided the row still has status from (compare-and-set). Only
// the columns that changed since this Tx read the task are written (every mutable column
// if it did not read it).
func (t *Tx) UpdateTask(task *store.Task, from string) error {
	return t.update(t.readBefore(task.ID), task, from, guardStatus, task.ID, from)
}

// update runs one guarded update of task and records the change.
func (t *Tx) update(orig, task *store.Task, from, guard string, guardArgs ...any) error {
	n, err := t.updateDiff(orig, task, from, guard, guardArgs...)
	if err != nil {
		return fmt.Errorf("update task: %w", err)
	}
	if n != 1 {
		return store.ErrStale
	}
	t.changedTask(task)
	return nil
}

// UpdateTaskNoSignal writes a call's outcome if its status and attempts are still orig's
// and no early signal arrived while the call was in flight (ErrStale otherwise).
func (t *Tx) UpdateTaskNoSignal(orig, task *store.Task) error {
	return t.update(orig, task, orig.Status, guardNoSignalAttempts, task.ID, orig.Status, orig.Attempts)
}

// UpdateTaskFrom writes what changed between orig, the task as stored, and task, if its
// status and attempts are still orig's.
func (t *Tx) UpdateTaskFrom(orig, task *store.Task) error {
	return t.update(orig, task, orig.Status, guardStatusAttempt, task.ID, orig.Status, orig.Attempts)
}

// ClaimTasks claims those of ids that are pending, or delayed and due at now, in one
// statement; busy are those still due that another transaction holds.
func (t *Tx) ClaimTasks(ids []string, now int64) ([]*store.Task, []string, error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	rows, err := t.tx.Query(t.ctx, qClaimTasks, now, t.s.opts.Node, store.LeaseSlack.Milliseconds(), ids)
	if err != nil {
		return nil, nil, fmt.Errorf("claim tasks: %w", t.failed(err))
	}
	claimed, err := scanTasks(rows)
	if err != nil {
		return nil, nil, fmt.Errorf("claim tasks: %w", t.failed(err))
	}
	if len(claimed) > 0 {
		t.wrote = true
	}
	got := make(map[string]bool, len(claimed))
	for _, task := range claimed {
		got[task.ID] = true
		t.changedTask(task)
	}
	var busy []string
	if len(claimed) < len(ids) {
		rest := make([]string, 0, len(ids)-len(claimed))
		for _, id := range ids {
			if !got[id] {
				rest = append(rest, id)
			}
		}
		rows, err := t.tx.Query(t.ctx, qStillDue, rest, now)
		if err != nil {
			return nil, nil, fmt.Errorf("claim tasks: %w", t.failed(err))
		}
		if busy, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return nil, nil, fmt.Errorf("claim tasks: %w", t.failed(err))
		}
	}
	return claimed, busy, nil
}

// BufferedSignal reads just the early signal of a task, locking its row.
func (t *Tx) BufferedSignal(id string) (*string, error) {
	var s *string
	err := t.get(qBufferedSignal, []any{id}, &s)
	return s, err
}

// Task reads one task for update; a later UpdateTask of it writes only what changed.
func (t *Tx) Task(id string) (*store.Task, error) { return t.readTask(qTaskByID, id) }

// TaskBySignal reads for update the task with the SHA-256 of a signal token.
func (t *Tx) TaskBySignal(hash []byte) (*store.Task, error) { return t.readTask(qTaskBySignal, hash) }

// TaskByCallback reads for update the task with the SHA-256 of a provider callback id.
func (t *Tx) TaskByCallback(hash []byte) (*store.Task, error) {
	return t.readTask(qTaskByCallback, hash)
}

// readTask reads the one task query finds, locking its row, and remembers it as read.
func (t *Tx) readTask(query string, arg any) (*store.Task, error) {
	task, err := scanTask(t.tx.QueryRow(t.ctx, query+" for update", arg))
	if err != nil {
		return nil, notFound(t.failed(err))
	}
	t.remember(task)
	return task, nil
}

// InsertAttempt records one call of a task's target.
func (t *Tx) InsertAttempt(a store.Attempt) error {
	var code any
	if a.StatusCode != nil {
		code = int32(*a.StatusCode)
	}
	if _, err := t.exec(qInsertAttempt, a.TaskID, int32(a.Attempt), a.StartedAt, a.DurationMS, code, str(a.Error), str(a.ResponseBody)); err != nil {
		return fmt.Errorf("insert attempt: %w", err)
	}
	return nil
}

// RecoverProcessing returns this node's claims (tasks caught mid-call when it stopped) to
// pending, due at now. Other nodes' claims are left to their leases.
func (t *Tx) RecoverProcessing(now int64) (int64, error) {
	rows, err := t.tx.Query(t.ctx, qRecoverProcessing, now, t.s.opts.Node)
	if err != nil {
		return 0, fmt.Errorf("recover processing tasks: %w", t.failed(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("recover processing tasks: %w", t.failed(err))
	}
	if len(ids) > 0 {
		t.wrote = true
	}
	for _, id := range ids {
		t.quietly(id, store.StatusPending, &now)
	}
	return int64(len(ids)), nil
}

// PruneTasks deletes up to limit terminal tasks of a team that finished before cutoff and
// have no webhook still to deliver (their attempts and events go with them).
func (t *Tx) PruneTasks(teamID string, cutoff int64, limit int) (int, error) {
	rows, err := t.tx.Query(t.ctx, `delete from tasks where id in (select id from tasks
		where team_id = $1 and completed_at is not null and completed_at < $2 and due_at is null
		and status in ('completed', 'failed', 'timeout', 'cancelled') limit $3 for update skip locked) returning id`,
		teamID, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("prune tasks: %w", t.failed(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("prune tasks: %w", t.failed(err))
	}
	if len(ids) > 0 {
		t.wrote = true
	}
	for _, id := range ids {
		t.quietly(id, "", nil)
	}
	return len(ids), nil
}

// Task reads one task.
func (s *Store) Task(ctx context.Context, id string) (*store.Task, error) {
	return s.readTask(ctx, qTaskByID, id)
}

// readTask reads the one task query finds.
func (s *Store) readTask(ctx context.Context, query string, arg any) (*store.Task, error) {
	t, err := scanTask(s.pool.QueryRow(ctx, query, arg))
	return t, classify(notFound(err))
}

// TasksByID reads the tasks with the given ids, in no particular order; ids without a task
// are left out.
func (s *Store) TasksByID(ctx context.Context, ids []string) ([]*store.Task, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `select `+taskCols+` from tasks where id = any($1)`, ids)
	if err != nil {
		return nil, classify(err)
	}
	ts, err := scanTasks(rows)
	return ts, classify(err)
}

// scanTasks reads every row of taskCols, and closes rows.
func scanTasks(rows pgx.Rows) ([]*store.Task, error) {
	defer rows.Close()
	var ts []*store.Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, rows.Err()
}

// TaskBySignal finds a task by the SHA-256 of its signal token.
func (s *Store) TaskBySignal(ctx context.Context, hash []byte) (*store.Task, error) {
	return s.readTask(ctx, qTaskBySignal, hash)
}

// Attempts lists a task's attempts in order.
func (s *Store) Attempts(ctx context.Context, taskID string) ([]store.Attempt, error) {
	return selectStructs[store.Attempt](ctx, s, `select task_id, attempt, started_at, duration_ms, status_code, error, response_body
		from attempts where task_id = $1 order by attempt`, taskID)
}

// listCols is taskCols with each large column replaced by its stand-in when longer than
// max bytes, and an "omitted" column naming those.
func listCols(max int) string {
	cols := make([]string, len(store.TaskColumns))
	for i, c := range store.TaskColumns {
		cols[i] = c.Name
	}
	var omitted []string
	for _, c := range store.LargeTaskColumns {
		i := slices.Index(cols, c.Name)
		cols[i] = fmt.Sprintf("(case when octet_length(%[1]s) > %[2]d then %[3]s else %[1]s end) as %[1]s", c.Name, max, c.Empty)
		omitted = append(omitted, fmt.Sprintf("(case when octet_length(%s) > %d then '%s,' else '' end)", c.Name, max, c.Name))
	}
	return strings.Join(cols, ", ") + ", rtrim(" + strings.Join(omitted, " || ") + ", ',') as omitted"
}

// where builds a condition from clauses with ? placeholders, numbered from $1.
type where struct {
	clauses []string
	args    []any
}

func (w *where) add(clause string, args ...any) {
	w.clauses = append(w.clauses, clause)
	w.args = append(w.args, args...)
}

func (w *where) String() string { return numbered(strings.Join(w.clauses, " and "), 1) }

// List returns one page of a team's tasks, newest first, and the total that match.
func (s *Store) List(ctx context.Context, f store.ListFilter) ([]store.ListedTask, int, error) {
	var w where
	w.add("team_id = ?", f.TeamID)
	if len(f.Statuses) > 0 {
		w.add("status = any(?)", f.Statuses)
	}
	if f.CreatedAfter > 0 {
		w.add("created_at > ?", f.CreatedAfter)
	}
	if f.CreatedBefore > 0 {
		w.add("created_at < ?", f.CreatedBefore)
	}
	if f.TargetHost != "" {
		w.add("target_host = ?", strings.ToLower(f.TargetHost))
	}
	if f.ScheduleID != "" {
		w.add("schedule_id = ?", f.ScheduleID)
	}
	cond := w.String()
	var total int
	if err := s.get(ctx, `select count(*) from tasks where `+cond, w.args, &total); err != nil {
		return nil, 0, fmt.Errorf("count tasks: %w", err)
	}
	cols := taskCols + `, '' as omitted`
	if f.MaxField > 0 {
		cols = listCols(f.MaxField)
	}
	n := len(w.args)
	q := fmt.Sprintf(`select %s from tasks where %s order by id desc limit $%d offset $%d`, cols, cond, n+1, n+2)
	rows, err := s.pool.Query(ctx, q, append(w.args, f.Limit, f.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list tasks: %w", classify(err))
	}
	defer rows.Close()
	var tasks []store.ListedTask
	for rows.Next() {
		var omitted string
		t, err := scanTask(rows, &omitted)
		if err != nil {
			return nil, 0, fmt.Errorf("list tasks: %w", classify(err))
		}
		tasks = append(tasks, store.ListedTask{Task: *t, Omitted: omitted})
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list tasks: %w", classify(err))
	}
	return tasks, total, nil
}

// DueBefore pages through the timer index: timers with (due_at, id) after the cursor and
// due_at < until, in due order, at most limit.
func (s *Store) DueBefore(ctx context.Context, afterDue int64, afterID string, until int64, limit int) ([]store.Timer, error) {
	return selectStructs[store.Timer](ctx, s, `select id, due_at from tasks
		where due_at is not null and due_at < $1 and (due_at, id) > ($2, $3)
		order by due_at, id limit $4`, until, afterDue, afterID, limit)
}

// escapeLike escapes the LIKE wildcards of s for use with `escape '\'`.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
