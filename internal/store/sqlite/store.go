// Package sqlite is the SQLite backend of the store: one writer connection fed by a
// group-commit loop, and a pool of read-only connections on the same file.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// SchemaVersion is stored in PRAGMA user_version; a database written by a newer
// asyncqueue is refused rather than misread. schema.sql is version 1; each entry of
// migrations moves a database one version up.
var SchemaVersion = 1 + len(migrations)

// Defaults for Options.
const (
	DefaultBusyTimeout = 10 * time.Second
	DefaultReaders     = 4
	DefaultMaxBatch    = 512
	DefaultCommitHold  = time.Millisecond
)

// A batch is held (Options.CommitHold) only while batches are ready to commit with holdFrom
// writes or more on average, and only until it holds holdUntil.
const (
	holdFrom  = 8
	holdUntil = 32
)

// Options configure Open.
type Options struct {
	Schema   string // the embedded schema.sql
	Sync     string // "full" (default) or "normal"
	Readers  int
	MaxBatch int // write requests committed together at most
	// CommitHold is how long, under sync=full and under load (batches ready to commit with 8
	// writes or more, on average), a batch that is ready to commit but still small (under 32
	// writes) waits for more. Each commit costs the same whatever its size (the WAL frames of
	// every index's last page, an fsync, the wake-ups around it): a few more writes per commit
	// leave more CPU for the requests themselves. 0 means DefaultCommitHold; negative, no hold.
	CommitHold time.Duration
	// OnCommit is called after each commit with the ids of the tasks it changed.
	OnCommit func(taskIDs []string)
	// MaxSize caps the database file in bytes (0: no cap); writes past it fail with SQLITE_FULL.
	MaxSize int64
	// OnBatch is called after each transaction with its number of write requests, how long
	// it took from BEGIN to the end of COMMIT, and its error.
	OnBatch func(requests int, took time.Duration, err error)
}

// Store is an SQLite database; it implements store.Store. All writes go through Write.
type Store struct {
	wdb *sqlx.DB // the writer handle: its one connection is held by the write loop (wc); a second is opened for backups
	rdb *sqlx.DB // read-only pool
	// list reads pages of tasks (List) through a small cache of its own: a page of big
	// tasks walks every overflow page of their large columns, and through R's caches that
	// would cost up to their full size per connection, and evict the hot pages.
	list *sqlx.DB

	opts  Options
	reqs  chan *writeReq
	done  chan struct{}
	close sync.Once

	// Under sync=full the writer connection runs synchronous=NORMAL and the WAL is synced
	// here instead, on a second goroutine: batch N+1 runs while batch N's fsync is under
	// way, and nobody hears of batch N (callers, AfterCommit, OnCommit) until it is on disk.
	syncWAL bool
	walPath string
	wal     *os.File // opened on first use; reopened if the WAL file is replaced

	holdTimer *time.Timer // the write loop's, for hold; made on first use

	statsMu sync.Mutex
	stats   WriteStats

	// wc is the writer connection, held by the write loop for the store's life. Its
	// transactions are plain BEGIN/COMMIT statements and its statements are prepared on it,
	// so a write runs them directly instead of rebinding each to a database/sql Tx.
	wc *sqlx.Conn

	// Prepared statements, by SQL text: parsing SQL cost more than running it. The writer's
	// hot ones are prepared at Open, others after their first use (notePrepare).
	stmtMu    sync.Mutex
	wStmts    map[string]preparedStmt // on the writer connection
	toPrepare []string                // for wStmts, before the next transaction
	rStmts    map[string]*sqlx.Stmt   // on the read pool (prepared per connection on first use)

	countMu sync.Mutex
	counts  map[countKey]int64
}

// WriteStats count the group commits.
type WriteStats struct {
	Commits  int64
	Requests int64
	Redos    int64 // batches rolled back and run again because a write failed half-way
}

type writeReq struct {
	ctx      context.Context
	fn       func(store.Tx) error
	done     func(error) // called once with the outcome, from the write loop
	answered bool
	tx       *Tx
	async    bool // queued by WriteAsync: nobody waits for its answer
}

func (r *writeReq) answer(err error) {
	r.answered = true
	r.done(classify(err))
}

func dsn(path string, readOnly bool, cacheKiB int) string {
	q := url.Values{}
	// busy_timeout first so the connection waits instead of failing while WAL is switched on.
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(wal)")
	// NORMAL: SQLite does not sync the WAL at each commit. Under sync=full the store does
	// it itself after each commit (Store.syncWAL), before anyone hears of the write.
	q.Add("_pragma", "synchronous(normal)")
	q.Add("_pragma", "foreign_keys(on)")
	q.Add("_pragma", "temp_store(memory)")
	q.Add("_pragma", fmt.Sprintf("cache_size(-%d)", cacheKiB))
	q.Add("_pragma", "journal_size_limit(67108864)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Page caches: the writer connection's, each reader's, and each list reader's (Store.list).
const (
	writerCacheKiB = 8000
	readerCacheKiB = 32000
	listCacheKiB   = 1000
	listReaders    = 2
)

// Open opens (creating if needed) the database at path and starts the write loop.
func Open(path string, o Options) (*Store, error) {
	s, err := open(path, o)
	if err != nil {
		return nil, Explain(path, err)
	}
	return s, nil
}

func open(path string, o Options) (*Store, error) {
	o.Sync = strings.ToLower(cmp.Or(o.Sync, "full"))
	if o.Sync != "full" && o.Sync != "normal" {
		return nil, fmt.Errorf("sync must be full or normal, not %q", o.Sync)
	}
	o.Readers = cmp.Or(o.Readers, DefaultReaders)
	o.MaxBatch = cmp.Or(o.MaxBatch, DefaultMaxBatch)
	o.CommitHold = cmp.Or(o.CommitHold, DefaultCommitHold)

	w, err := sqlx.Open("sqlite", dsn(path, false, readerCacheKiB))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)

	var mode string
	if err := w.Get(&mode, "pragma journal_mode"); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if mode != "wal" {
		w.Close()
		return nil, fmt.Errorf("open database %s: journal_mode is %q, WAL could not be enabled", path, mode)
	}
	if o.MaxSize > 0 {
		var pageSize int64
		if err := w.Get(&pageSize, "pragma page_size"); err != nil {
			w.Close()
			return nil, err
		}
		if _, err := w.Exec(fmt.Sprintf("pragma max_page_count = %d", max(1, o.MaxSize/pageSize))); err != nil {
			w.Close()
			return nil, fmt.Errorf("set max size: %w", err)
		}
	}
	if err := migrate(w, o.Schema); err != nil {
		w.Close()
		return nil, err
	}

	r, err := sqlx.Open("sqlite", dsn(path, true, readerCacheKiB))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	r.SetMaxOpenConns(o.Readers)
	r.SetMaxIdleConns(o.Readers)
	lr, err := sqlx.Open("sqlite", dsn(path, true, listCacheKiB))
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	lr.SetMaxOpenConns(listReaders)
	lr.SetMaxIdleConns(listReaders)

	s := &Store{wdb: w, rdb: r, list: lr, opts: o, reqs: make(chan *writeReq, 4096), done: make(chan struct{}),
		syncWAL: o.Sync == "full", walPath: path + "-wal",
		wStmts: map[string]preparedStmt{}, rStmts: map[string]*sqlx.Stmt{}}
	if err := s.syncWALFile(); err != nil { // the schema just applied
		s.closeHandles()
		return nil, err
	}
	if err := s.loadCounts(); err != nil {
		s.closeHandles()
		return nil, err
	}
	if s.wc, err = w.Connx(context.Background()); err != nil {
		s.closeHandles()
		return nil, fmt.Errorf("open database: %w", err)
	}
	// A second connection, beside the writer's, for VACUUM INTO (the read pool is
	// query_only); it is opened only when a backup is taken.
	w.SetMaxOpenConns(2)
	// The writer touches few pages (the ends of the indexes new tasks go to, and the tasks
	// it updates); a smaller cache than the readers' also makes each commit cheaper, as
	// SQLite walks the cache's hash table at the end of every transaction.
	if _, err := s.wc.ExecContext(context.Background(), fmt.Sprintf("pragma cache_size = -%d", writerCacheKiB)); err != nil {
		s.closeHandles()
		return nil, fmt.Errorf("open database: %w", err)
	}
	for _, q := range hotQueries {
		st, err := s.wc.PreparexContext(context.Background(), q)
		if err != nil {
			s.closeHandles()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		s.wStmts[q] = preparedStmt{st, changesRows(q)}
	}
	go s.loop()
	return s, nil
}

func migrate(w *sqlx.DB, schema string) error {
	var v int
	if err := w.Get(&v, "pragma user_version"); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("database schema version %d is newer than this asyncqueue understands (%d); upgrade asyncqueue", v, SchemaVersion)
	}
	tx, err := w.Beginx()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(schema); err != nil {
		return fmt.Errorf("apply schema: %w", err)
	}
	for i := max(v, 1) - 1; i < len(migrations); i++ {
		if _, err := tx.Exec(migrations[i]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", i+2, err)
		}
	}
	if _, err := tx.Exec(fmt.Sprintf("pragma user_version = %d", SchemaVersion)); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	return tx.Commit()
}

// The statements every write runs; prepared once at Open on the writer connection.
var hotQueries = []string{"begin immediate", "commit", "rollback", "savepoint w", "release w", "rollback to w", qTaskByID, qTaskBySignal, qTeamByID,
	qClaimPending, qBufferedSignal, qTaskByCallback, qInsertTask, qInsertAttempt}

// Close stops the write loop (after the queued writes) and closes both handles.
func (s *Store) Close() error {
	s.close.Do(func() { close(s.reqs) })
	<-s.done
	return s.closeHandles()
}

func (s *Store) closeHandles() error {
	s.stmtMu.Lock()
	for _, st := range s.wStmts {
		st.Close()
	}
	for _, st := range s.rStmts {
		st.Close()
	}
	s.stmtMu.Unlock()
	var err error
	if s.wc != nil {
		err = s.wc.Close()
	}
	err = errors.Join(err, s.rdb.Close(), s.list.Close(), s.wdb.Close())
	if s.wal != nil {
		s.wal.Close()
	}
	return err
}

// Stats reports the group-commit counters.
func (s *Store) Stats() WriteStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Write runs fn inside a write transaction and returns once it is committed (or failed).
// Concurrent calls share transactions (group commit); a failing fn does not undo the
// others: its changes are undone alone. fn may run more than once: when a write of its
// batch fails after changing rows, the batch is rolled back and run again (see batch.run).
func (s *Store) Write(ctx context.Context, fn func(store.Tx) error) (err error) {
	errc := make(chan error, 1)
	req := &writeReq{ctx: ctx, fn: fn, done: func(err error) { errc <- err }}
	defer func() {
		if r := recover(); r != nil { // send on closed channel
			err = store.ErrClosed
		}
	}()
	select {
	case s.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the write happens whatever ctx does, so wait for its outcome.
	return <-errc
}

// WriteAsync queues fn like Write but returns at once; done gets the outcome (after the
// commit is durable, on the write loop's goroutine, so it must be quick). It blocks only
// while the queue is full. After Close, done gets ErrClosed.
func (s *Store) WriteAsync(fn func(store.Tx) error, done func(error)) {
	defer func() {
		if r := recover(); r != nil { // send on closed channel
			done(store.ErrClosed)
		}
	}()
	s.reqs <- &writeReq{ctx: context.Background(), fn: fn, done: done, async: true}
}

func (s *Store) loop() {
	defer close(s.done)
	// Under sync=full one committed batch at a time is being synced. While that fsync runs,
	// the next transaction stays open and takes in every write that arrives; it commits the
	// moment the fsync is done. So batches grow with the disk's latency, and the fsync
	// overlaps the next batch's statements instead of adding to them.
	var synced chan *batch
	var free chan struct{} // holds a token while no batch is being synced
	if s.syncWAL {
		synced = make(chan *batch)
		free = make(chan struct{}, 1)
		free <- struct{}{}
		syncDone := make(chan struct{})
		go func() {
			defer close(syncDone)
			for res := range synced {
				if err := s.syncWALFile(); err != nil && res.err == nil {
					res.err = fmt.Errorf("sync: %w", err)
				}
				s.finish(res)
				free <- struct{}{}
			}
		}()
		defer func() {
			close(synced)
			<-syncDone
		}()
	}
	var ready float64 // how many writes batches hold when they could commit (average)
	for req := range s.reqs {
		b := s.begin()
		b.run(req)
		// First the writes queued when the batch began (more arrive meanwhile, but a batch
		// that kept taking them would keep its first callers waiting), then, while the
		// previous batch's fsync is still running, whatever arrives until it ends.
		haveToken, closed := false, false
		for n := len(s.reqs); n > 0 && len(b.reqs) < s.opts.MaxBatch; n-- {
			r, ok := <-s.reqs
			if !ok {
				closed = true
				break
			}
			b.run(r)
		}
		for free != nil && !closed && !haveToken && len(b.reqs) < s.opts.MaxBatch {
			select {
			case <-free:
				haveToken = true
				continue
			default:
			}
			select {
			case r, ok := <-s.reqs:
				if !ok {
					closed = true
					break
				}
				b.run(r)
			case <-free:
				haveToken = true
			}
		}
		if free != nil && !haveToken {
			<-free
		}
		// The writes a batch holds when it could commit, averaged over the last few batches
		// (an exponential average over about 8): held batches do not count what they waited for.
		ready += (float64(len(b.reqs)) - ready) / 8
		if free != nil && !closed && ready >= holdFrom {
			s.hold(b)
		}
		res := b.commit()
		s.prepareNoted()
		if synced != nil {
			synced <- res
		} else {
			s.finish(res)
		}
	}
}

// hold lets a batch that is ready to commit take more writes, until it holds holdUntil,
// Options.CommitHold has passed, or the store is closing.
func (s *Store) hold(b *batch) {
	until := min(holdUntil, s.opts.MaxBatch)
	if s.opts.CommitHold <= 0 || len(b.reqs) >= until {
		return
	}
	if s.holdTimer == nil {
		s.holdTimer = time.NewTimer(s.opts.CommitHold)
	} else {
		s.holdTimer.Reset(s.opts.CommitHold)
	}
	t := s.holdTimer
	defer t.Stop()
	for len(b.reqs) < until {
		select {
		case r, ok := <-s.reqs:
			if !ok {
				return // the loop ends after this commit
			}
			b.run(r)
		case <-t.C:
			return
		}
	}
}

// batch is one write transaction: its writes and, once committed, what to report.
type batch struct {
	s       *Store
	tx      *Tx // nil when BEGIN failed
	reqs    []*writeReq
	start   time.Time
	err     error
	changed []string
	deltas  map[countKey]int64
	safe    bool // writes run in savepoints (after a redo)
	awaited bool // it holds a write whose caller waits for the commit
}

// syncFile flushes a file to disk; tests replace it to watch the order of events.
var syncFile = fdatasync

// syncWALFile flushes the WAL file to disk (a no-op under sync=normal).
func (s *Store) syncWALFile() error {
	if !s.syncWAL {
		return nil
	}
	if s.wal != nil {
		// SQLite keeps the same WAL file while any connection is open; make sure anyway,
		// since syncing a replaced file would sync nothing that matters.
		a, err1 := s.wal.Stat()
		b, err2 := os.Stat(s.walPath)
		if err1 != nil || err2 != nil || !os.SameFile(a, b) {
			s.wal.Close()
			s.wal = nil
		}
	}
	if s.wal == nil {
		f, err := os.Open(s.walPath)
		if errors.Is(err, os.ErrNotExist) {
			return nil // no WAL: everything is in the database file, synced by the checkpoint
		} else if err != nil {
			return err
		}
		s.wal = f
	}
	return syncFile(s.wal)
}

// begin opens the write transaction of a new batch.
func (s *Store) begin() *batch {
	b := &batch{s: s, reqs: make([]*writeReq, 0, 16), start: time.Now(), deltas: map[countKey]int64{}}
	b.open()
	return b
}

// open begins the batch's transaction; if it cannot, the batch has no Tx and its writes are
// answered with the error at commit.
func (b *batch) open() {
	t := &Tx{c: b.s.wc, s: b.s}
	if _, err := t.exec("begin immediate"); err != nil {
		b.err = fmt.Errorf("begin: %w", err)
		b.tx = nil
		return
	}
	b.tx = t
}

// run applies one write inside the batch's transaction. Writes run without savepoints:
// a savepoint costs two statements and a copy of every page the write touches, and
// writes seldom fail once they have changed something. A write that fails before changing
// anything is answered at once and the batch goes on. One that fails after changing rows
// (or whose change itself failed) cannot be undone alone, so the batch is redone: rolled
// back and its other writes run again, each in its own savepoint from then on.
func (b *batch) run(r *writeReq) {
	// While a batch holds only writes nobody waits for (the outcomes of calls, in a burst of
	// timers), the writer steps aside between them, so that the calls and the requests
	// waiting for a processor run first; the writes still share the commit.
	if r.async && !b.awaited && len(b.reqs) > 0 {
		runtime.Gosched()
	}
	b.awaited = b.awaited || !r.async
	b.reqs = append(b.reqs, r)
	if b.tx == nil {
		return // answered with the BEGIN error at commit
	}
	if r.ctx.Err() != nil {
		r.answer(r.ctx.Err())
		return
	}
	t := &Tx{c: b.tx.c, s: b.s}
	r.tx = t
	if b.safe {
		b.runSaved(r, t)
		return
	}
	if err := runFn(r.fn, t); err != nil {
		r.answer(err)
		if t.wrote || !b.stillOpen() {
			b.redo()
		}
		return
	}
	b.accept(t)
}

// stillOpen reports whether the batch's transaction survived a failed write. On some
// errors (a full disk, an I/O error, no memory) SQLite rolls the whole transaction back
// itself, even after a read: the batch's earlier writes are gone, and later ones would run
// in autocommit, each committed on its own before any sync and whatever its caller is told.
// BEGIN tells: inside a transaction it fails.
func (b *batch) stillOpen() bool {
	if _, err := b.tx.c.ExecContext(context.Background(), "begin"); err != nil {
		return true
	}
	b.tx.c.ExecContext(context.Background(), "rollback") // the probe's own transaction
	return false
}

// runSaved runs a write in its own savepoint, so that a failure undoes it alone.
func (b *batch) runSaved(r *writeReq, t *Tx) {
	if _, err := b.tx.exec("savepoint w"); err != nil {
		r.answer(err)
		return
	}
	if err := runFn(r.fn, t); err != nil {
		if _, rerr := b.tx.exec("rollback to w"); rerr != nil {
			// No savepoint to go back to: SQLite rolled the whole transaction back itself
			// (see stillOpen), so the writes before this one run again.
			r.answer(errors.Join(err, rerr))
			b.redo()
			return
		}
		if _, rerr := b.tx.exec("release w"); rerr != nil {
			err = errors.Join(err, rerr)
		}
		r.answer(err)
		return
	}
	if _, err := b.tx.exec("release w"); err != nil {
		r.answer(err)
		return
	}
	b.accept(t)
}

// accept keeps a successful write's changes for the batch's report.
func (b *batch) accept(t *Tx) {
	b.changed = append(b.changed, t.changed...)
	for k, n := range t.deltas {
		b.deltas[k] += n
	}
}

// redo rolls the batch's transaction back after a write failed half-way, and runs the
// writes that had succeeded again in a new one, each in a savepoint. Their functions run
// a second time; Write's contract allows it.
func (b *batch) redo() {
	b.s.statsMu.Lock()
	b.s.stats.Redos++
	b.s.statsMu.Unlock()
	// The rollback may fail when SQLite already rolled the transaction back itself (a full
	// disk, an I/O error); BEGIN below then starts clean all the same.
	b.tx.exec("rollback")
	reqs := b.reqs
	b.reqs = make([]*writeReq, 0, len(reqs))
	b.changed, b.deltas = nil, map[countKey]int64{}
	b.safe = true
	b.open()
	for _, r := range reqs {
		if r.answered {
			b.reqs = append(b.reqs, r)
			continue
		}
		b.run(r)
	}
}

// commit ends the batch's transaction.
func (b *batch) commit() *batch {
	if b.tx == nil {
		return b
	}
	if _, err := b.tx.exec("commit"); err != nil {
		if _, rerr := b.tx.exec("rollback"); rerr != nil {
			err = errors.Join(err, rerr)
		}
		b.err = fmt.Errorf("commit: %w", err)
	}
	return b
}

// finish reports a batch once it is durable (or failed): counters, OnCommit, each write's
// AfterCommit functions, then its caller.
func (s *Store) finish(res *batch) {
	s.statsMu.Lock()
	s.stats.Commits++
	s.stats.Requests += int64(len(res.reqs))
	s.statsMu.Unlock()
	if s.opts.OnBatch != nil {
		s.opts.OnBatch(len(res.reqs), time.Since(res.start), res.err)
	}
	if res.err == nil {
		s.applyCounts(res.deltas)
		if len(res.changed) > 0 && s.opts.OnCommit != nil {
			s.opts.OnCommit(res.changed)
		}
	}
	for _, r := range res.reqs {
		if r.answered {
			continue
		}
		if res.err == nil {
			for _, f := range r.tx.after {
				f()
			}
		}
		r.answer(res.err)
	}
}

func runFn(fn func(store.Tx) error, t *Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write panicked: %v", r)
		}
	}()
	return fn(t)
}

// Tx is one request's view of a shared write transaction; it implements store.Tx. Its
// get, sel, exec and queryRow run cached prepared statements. In the single writer every
// read is a read for update: no other write runs until the batch commits.
type Tx struct {
	c       *sqlx.Conn // the writer connection, inside BEGIN … COMMIT
	s       *Store
	changed []string
	after   []func()
	deltas  map[countKey]int64 // status count changes, applied once committed
	read    []*store.Task      // tasks as this Tx read them, so updates write only changes
	wrote   bool               // a statement changed rows, or tried to and failed
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

// queryRow runs a query that returns one row.
func (t *Tx) queryRow(query string, args ...any) *sql.Row {
	if st := t.stmt(query); st != nil {
		return st.QueryRow(args...)
	}
	return t.c.QueryRowContext(context.Background(), query, args...)
}

// get runs a query that returns one row into dest (store.ErrNotFound if none).
func (t *Tx) get(dest any, query string, args ...any) error {
	var err error
	if st := t.stmt(query); st != nil {
		err = st.Get(dest, args...)
	} else {
		err = t.c.GetContext(context.Background(), dest, query, args...)
	}
	return notFound(err)
}

// sel runs a query into the slice dest.
func (t *Tx) sel(dest any, query string, args ...any) error {
	if st := t.stmt(query); st != nil {
		return st.Select(dest, args...)
	}
	return t.c.SelectContext(context.Background(), dest, query, args...)
}

// exec runs a statement. One that changes rows, or fails, counts as a write (see batch.run).
func (t *Tx) exec(query string, args ...any) (res sql.Result, err error) {
	if st := t.stmt(query); st != nil {
		res, err = st.Exec(args...)
	} else {
		res, err = t.c.ExecContext(context.Background(), query, args...)
	}
	if err != nil {
		t.wrote = true
	} else if n, nerr := res.RowsAffected(); nerr != nil || n > 0 {
		t.wrote = true
	}
	return res, err
}

// namedExec runs a statement with :name parameters taken from arg's db tags.
func (t *Tx) namedExec(query string, arg any) (sql.Result, error) {
	q, args, err := sqlx.Named(query, arg)
	if err != nil {
		return nil, err
	}
	return t.exec(q, args...)
}

// stmt returns the writer's prepared statement for query, or nil (and asks for it to be
// prepared). A query that changes rows (… RETURNING) counts as a write, whatever it returns.
func (t *Tx) stmt(query string) *sqlx.Stmt {
	t.s.stmtMu.Lock()
	st, ok := t.s.wStmts[query]
	t.s.stmtMu.Unlock()
	if !ok {
		t.s.notePrepare(query)
		if changesRows(query) {
			t.wrote = true
		}
		return nil
	}
	if st.changes {
		t.wrote = true
	}
	return st.Stmt
}

// preparedStmt is a statement prepared on the writer connection.
type preparedStmt struct {
	*sqlx.Stmt
	changes bool // a query that changes rows (… RETURNING), told once when it is prepared
}

func changesRows(query string) bool { return strings.Contains(query, "returning") }

// maxPrepared caps the writer's statement cache.
const maxPrepared = 256

// notePrepare asks for query to be prepared on the writer between two transactions: a
// statement that runs once is likely to run again (a task update writes one of a few
// column sets). Preparing inside a write would wait for the one connection the write
// itself holds.
func (s *Store) notePrepare(query string) {
	s.stmtMu.Lock()
	if len(s.wStmts)+len(s.toPrepare) < maxPrepared && !slices.Contains(s.toPrepare, query) {
		s.toPrepare = append(s.toPrepare, query)
	}
	s.stmtMu.Unlock()
}

// prepareNoted prepares the statements notePrepare asked for; the write loop calls it
// while no transaction is open.
func (s *Store) prepareNoted() {
	s.stmtMu.Lock()
	qs := s.toPrepare
	s.toPrepare = nil
	s.stmtMu.Unlock()
	for _, q := range qs {
		st, err := s.wc.PreparexContext(context.Background(), q)
		if err != nil {
			continue // it runs unprepared, as before
		}
		s.stmtMu.Lock()
		if _, dup := s.wStmts[q]; dup {
			st.Close()
		} else {
			s.wStmts[q] = preparedStmt{st, changesRows(q)}
		}
		s.stmtMu.Unlock()
	}
}

func (s *Store) rStmt(query string) (*sqlx.Stmt, error) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if st, ok := s.rStmts[query]; ok {
		return st, nil
	}
	st, err := s.rdb.Preparex(query)
	if err != nil {
		return nil, err
	}
	s.rStmts[query] = st
	return st, nil
}

// get reads one row through a cached statement of the read pool.
func (s *Store) get(ctx context.Context, dest any, query string, args ...any) error {
	st, err := s.rStmt(query)
	if err != nil {
		return classify(err)
	}
	return classify(notFound(st.GetContext(ctx, dest, args...)))
}

// sel reads rows through a cached statement of the read pool.
func (s *Store) sel(ctx context.Context, dest any, query string, args ...any) error {
	st, err := s.rStmt(query)
	if err != nil {
		return classify(err)
	}
	return classify(st.SelectContext(ctx, dest, args...))
}

// Changed records that the task changed, for OnCommit.
func (t *Tx) Changed(id string) { t.changed = append(t.changed, id) }

// AfterCommit runs f once the transaction holding this write is durable.
func (t *Tx) AfterCommit(f func()) { t.after = append(t.after, f) }
