package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// maxRetries bounds how often a batch runs again after a conflict or a lost connection.
const maxRetries = 6

type writeReq struct {
	ctx      context.Context
	fn       func(store.Tx) error
	done     func(error) // called once with the outcome
	answered bool
	tx       *Tx // of the batch's last run
}

func (r *writeReq) answer(err error) {
	r.answered = true
	r.done(classify(err))
}

// Write runs fn inside a write transaction and returns once it is committed (or failed).
// Concurrent calls share transactions (group commit); a failing fn does not undo the
// others. fn may run more than once (see the package comment).
func (s *Store) Write(ctx context.Context, fn func(store.Tx) error) error {
	errc := make(chan error, 1)
	req := &writeReq{ctx: ctx, fn: fn, done: func(err error) { errc <- err }}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return store.ErrClosed
	}
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	s.closeMu.RUnlock()
	// Once queued, the write happens whatever ctx does, so wait for its outcome.
	return <-errc
}

// WriteAsync queues fn like Write but returns at once; done gets the outcome once the
// commit is durable (on a writer goroutine, so it must be quick). It blocks only while the
// queue is full. After Close, done gets ErrClosed.
func (s *Store) WriteAsync(fn func(store.Tx) error, done func(error)) {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		done(store.ErrClosed)
		return
	}
	s.reqs <- &writeReq{ctx: context.Background(), fn: fn, done: done}
	s.closeMu.RUnlock()
}

// writer takes the writes queued when it starts a transaction (up to MaxBatch) and runs
// them together.
func (s *Store) writer() {
	defer s.writers.Done()
	for req := range s.reqs {
		reqs := []*writeReq{req}
	more:
		for len(reqs) < s.opts.MaxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break more
				}
				reqs = append(reqs, r)
			default:
				break more
			}
		}
		s.runBatch(reqs)
	}
}

// batch is the outcome of one run of a batch's transaction.
type batch struct {
	err        error
	redo       bool // a write failed half-way and was answered: run the others again
	committing bool // COMMIT was sent: a lost connection leaves the outcome unknown
	changed    []string
	states     []store.TaskChange // what changed, as the batch left it, for the other nodes
	flows      []store.FlowKey
	config     bool
}

func (b *batch) accept(t *Tx) {
	b.changed = append(b.changed, t.changed...)
	b.states = append(b.states, t.states...)
	b.flows = append(b.flows, t.flows...)
	b.config = b.config || t.config
}

// runBatch runs the writes in one transaction until it commits, fails for good, or every
// write failed on its own; then reports it.
func (s *Store) runBatch(reqs []*writeReq) {
	start := time.Now()
	var b *batch
	for retries := 0; ; {
		b = s.try(reqs)
		if b.redo {
			s.count(func(st *WriteStats) { st.Redos++ })
			continue // terminates: each redo answered one more write
		}
		if b.err != nil && !b.committing && retryable(b.err) && retries < maxRetries {
			retries++
			s.count(func(st *WriteStats) { st.Retries++ })
			time.Sleep(time.Duration(retries*retries) * 20 * time.Millisecond)
			continue
		}
		break
	}
	s.finish(reqs, b, time.Since(start))
}

func (s *Store) count(f func(*WriteStats)) {
	s.statsMu.Lock()
	f(&s.stats)
	s.statsMu.Unlock()
}

// batchTimeout bounds one run of a batch's transaction, waiting for a connection included:
// the server's statement_timeout bounds each statement, and this bounds a server that
// stopped answering at all (stopped, frozen, cut off), so that the write fails as
// unavailable (503) rather than hang.
func (s *Store) batchTimeout() time.Duration { return s.opts.StatementTimeout }

// try runs the unanswered writes of reqs in one transaction and commits it.
func (s *Store) try(reqs []*writeReq) *batch {
	b := &batch{}
	ctx, cancel := context.WithTimeout(context.Background(), s.batchTimeout())
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		b.err = fmt.Errorf("begin: %w", err)
		return b
	}
	rollback := func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		tx.Rollback(rctx) // on a lost connection this fails, and the server rolls back
		cancel()
	}
	for _, r := range reqs {
		if r.answered {
			continue
		}
		if r.ctx.Err() != nil {
			r.answer(r.ctx.Err())
			continue
		}
		t := &Tx{s: s, tx: tx, ctx: ctx}
		r.tx = t
		err := runFn(r.fn, t)
		if err == nil {
			b.accept(t)
			continue
		}
		if t.dbErr != nil && retryable(t.dbErr) {
			// Not this write's fault: a conflict with another transaction, or the connection.
			rollback()
			b.err = t.dbErr
			return b
		}
		r.answer(err)
		if t.wrote || t.dbErr != nil {
			// Its changes cannot be undone alone (a failed statement aborts the whole
			// PostgreSQL transaction): the others run again without it.
			rollback()
			b.redo = true
			return b
		}
	}
	if err := s.notify(ctx, tx, b); err != nil {
		rollback()
		b.err = fmt.Errorf("notify: %w", err)
		return b
	}
	b.committing = true
	if err := tx.Commit(ctx); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && retryable(err) {
			b.committing = false // the server refused it: nothing was kept
		}
		rollback()
		b.err = fmt.Errorf("commit: %w", err)
	}
	return b
}

// finish reports a batch: counters, OnBatch, OnCommit, each write's AfterCommit functions
// in order, then its caller. Concurrent batches report one at a time.
func (s *Store) finish(reqs []*writeReq, b *batch, took time.Duration) {
	s.finishMu.Lock()
	defer s.finishMu.Unlock()
	s.count(func(st *WriteStats) {
		st.Commits++
		st.Requests += int64(len(reqs))
	})
	if s.opts.OnBatch != nil {
		s.opts.OnBatch(len(reqs), took, b.err)
	}
	if b.err == nil && len(b.changed) > 0 && s.opts.OnCommit != nil {
		s.opts.OnCommit(b.changed)
	}
	for _, r := range reqs {
		if r.answered {
			continue
		}
		if b.err == nil {
			for _, f := range r.tx.after {
				f()
			}
		}
		r.answer(b.err)
	}
}

func runFn(fn func(store.Tx) error, t *Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write panicked: %v", r)
			t.wrote = true // it may have stopped half-way
		}
	}()
	return fn(t)
}

// Tx is one write's view of a shared write transaction; it implements store.Tx.
type Tx struct {
	s       *Store
	tx      pgx.Tx
	ctx     context.Context
	changed []string           // for OnCommit
	states  []store.TaskChange // for the other nodes: those of changed, and the recovered, pruned and schedules
	flows   []store.FlowKey
	config  bool
	after   []func()
	read    []*store.Task // tasks as this Tx read them, so updates write only changes
	wrote   bool          // a statement changed rows
	dbErr   error         // a statement failed: the transaction is aborted
}

// AfterCommit runs f once the transaction holding this write is committed.
func (t *Tx) AfterCommit(f func()) { t.after = append(t.after, f) }

// changedTask records that the task changed, for OnCommit and the other nodes.
func (t *Tx) changedTask(task *store.Task) {
	t.changed = append(t.changed, task.ID)
	t.quietly(task.ID, task.Status, task.DueAt)
}

// quietly records a change for the other nodes only (OnCommit is not told of recovered
// and pruned tasks, as on SQLite, nor of schedules).
func (t *Tx) quietly(id, status string, due *int64) {
	if due != nil {
		v := *due
		due = &v
	}
	t.states = append(t.states, store.TaskChange{ID: id, Status: status, DueAt: due})
}

// remember keeps a copy of a task as read, for UpdateTask.
func (t *Tx) remember(task *store.Task) {
	c := *task
	t.read = append(t.read, &c)
}

// readBefore returns the task with id as this Tx read it, or nil.
func (t *Tx) readBefore(id string) *store.Task {
	for i := len(t.read) - 1; i >= 0; i-- {
		if t.read[i].ID == id {
			return t.read[i]
		}
	}
	return nil
}

// failed notes a statement's error (which aborts the transaction) and returns it.
func (t *Tx) failed(err error) error {
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.dbErr = err
	}
	return err
}

// exec runs a statement; one that changes rows counts as a write.
func (t *Tx) exec(query string, args ...any) (pgconn.CommandTag, error) {
	tag, err := t.tx.Exec(t.ctx, query, args...)
	if err != nil {
		return tag, t.failed(err)
	}
	if tag.RowsAffected() > 0 {
		t.wrote = true
	}
	return tag, nil
}

// lock takes an advisory lock held until the commit; it changes no rows.
func (t *Tx) lock(query string, args ...any) error {
	_, err := t.tx.Exec(t.ctx, query, args...)
	return t.failed(err)
}

// get reads one row into dest (store.ErrNotFound if none).
func (t *Tx) get(query string, args []any, dest ...any) error {
	return notFound(t.failed(t.tx.QueryRow(t.ctx, query, args...).Scan(dest...)))
}

// getStruct reads one row into a struct by its db tags (store.ErrNotFound if none).
func txGetStruct[T any](t *Tx, query string, args ...any) (*T, error) {
	rows, err := t.tx.Query(t.ctx, query, args...)
	if err != nil {
		return nil, t.failed(err)
	}
	v, err := pgx.CollectOneRow(rows, pgx.RowToAddrOfStructByNameLax[T])
	return v, notFound(t.failed(err))
}
