// Package store keeps asyncqueue's state in SQLite: one writer connection fed by a
// group-commit loop, and a pool of read-only connections.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// SchemaVersion is stored in PRAGMA user_version; a database written by a newer
// asyncqueue is refused rather than misread.
const SchemaVersion = 1

// Defaults for Options.
const (
	DefaultBusyTimeout = 10 * time.Second
	DefaultReaders     = 4
	DefaultMaxBatch    = 512
)

// Options configure Open.
type Options struct {
	Schema   string // the embedded schema.sql
	Sync     string // "full" (default) or "normal"
	Readers  int
	MaxBatch int // write requests committed together at most
	// OnCommit is called after each commit with the ids of the tasks it changed.
	OnCommit func(taskIDs []string)
	// MaxSize caps the database file in bytes (0: no cap); writes past it fail with SQLITE_FULL.
	MaxSize int64
	// OnBatch is called after each transaction with its number of write requests, how long
	// it took from BEGIN to the end of COMMIT, and its error.
	OnBatch func(requests int, took time.Duration, err error)
}

// Store is the database. All writes go through Write.
type Store struct {
	W *sqlx.DB // the single writer connection; used only by the write loop
	R *sqlx.DB // read-only pool

	opts  Options
	reqs  chan *writeReq
	done  chan struct{}
	close sync.Once

	statsMu sync.Mutex
	stats   WriteStats

	// Prepared statements, by SQL text: parsing SQL cost more than running it.
	stmtMu sync.Mutex
	wStmts map[string]*sqlx.Stmt      // on the writer connection
	wNamed map[string]*sqlx.NamedStmt // on the writer connection
	rStmts map[string]*sqlx.Stmt      // on the read pool (prepared per connection on first use)

	countMu sync.Mutex
	counts  map[countKey]int64
}

// WriteStats count the group commits.
type WriteStats struct {
	Commits  int64
	Requests int64
}

type writeReq struct {
	ctx  context.Context
	fn   func(*Tx) error
	errc chan error
	tx   *Tx
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("store: closed")

func dsn(path string, sync string, readOnly bool) string {
	q := url.Values{}
	// busy_timeout first so the connection waits instead of failing while WAL is switched on.
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(wal)")
	// https://sqlite.org/pragma.html#pragma_synchronous: FULL syncs the WAL on every commit,
	// so an acknowledged write survives power loss; NORMAL survives only process crashes.
	q.Add("_pragma", "synchronous("+sync+")")
	q.Add("_pragma", "foreign_keys(on)")
	q.Add("_pragma", "temp_store(memory)")
	q.Add("_pragma", "cache_size(-32000)")
	q.Add("_pragma", "journal_size_limit(67108864)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the database at path and starts the write loop.
func Open(path string, o Options) (*Store, error) {
	o.Sync = strings.ToLower(cmp.Or(o.Sync, "full"))
	if o.Sync != "full" && o.Sync != "normal" {
		return nil, fmt.Errorf("sync must be full or normal, not %q", o.Sync)
	}
	o.Readers = cmp.Or(o.Readers, DefaultReaders)
	o.MaxBatch = cmp.Or(o.MaxBatch, DefaultMaxBatch)

	w, err := sqlx.Open("sqlite", dsn(path, o.Sync, false))
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

	r, err := sqlx.Open("sqlite", dsn(path, o.Sync, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	r.SetMaxOpenConns(o.Readers)
	r.SetMaxIdleConns(o.Readers)

	s := &Store{W: w, R: r, opts: o, reqs: make(chan *writeReq, 4096), done: make(chan struct{}),
		wStmts: map[string]*sqlx.Stmt{}, wNamed: map[string]*sqlx.NamedStmt{}, rStmts: map[string]*sqlx.Stmt{}}
	if err := s.loadCounts(); err != nil {
		s.closeHandles()
		return nil, err
	}
	for _, q := range hotQueries {
		st, err := w.Preparex(q)
		if err != nil {
			s.closeHandles()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		s.wStmts[q] = st
	}
	for _, q := range hotNamed {
		st, err := w.PrepareNamed(q)
		if err != nil {
			s.closeHandles()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		s.wNamed[q] = st
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
	if _, err := tx.Exec(fmt.Sprintf("pragma user_version = %d", SchemaVersion)); err != nil {
		return fmt.Errorf("set schema version: %w", err)
	}
	return tx.Commit()
}

// The statements every write runs; prepared once at Open on the writer connection.
var hotQueries = []string{"savepoint w", "release w", "rollback to w", qTaskByID, qTaskBySignal, qTeamByID,
	qClaimTask, qBufferedSignal, qTaskByCallback}

var hotNamed = []string{qInsertTask, qUpdateTask, qUpdateTaskNoSignal, qInsertAttempt}

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
	for _, st := range s.wNamed {
		st.Close()
	}
	for _, st := range s.rStmts {
		st.Close()
	}
	s.stmtMu.Unlock()
	return errors.Join(s.R.Close(), s.W.Close())
}

// Stats reports the group-commit counters.
func (s *Store) Stats() WriteStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Write runs fn inside a write transaction and returns once it is committed (or failed).
// Concurrent calls share transactions (group commit); each fn runs in its own savepoint,
// so one failing fn does not undo the others. fn must not block on anything but the database.
func (s *Store) Write(ctx context.Context, fn func(*Tx) error) (err error) {
	errc := make(chan error, 1)
	req := &writeReq{ctx: ctx, fn: fn, errc: errc}
	defer func() {
		if r := recover(); r != nil { // send on closed channel
			err = ErrClosed
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

func (s *Store) loop() {
	defer close(s.done)
	batch := make([]*writeReq, 0, s.opts.MaxBatch)
	for req := range s.reqs {
		batch = append(batch[:0], req)
	drain:
		for len(batch) < s.opts.MaxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

func (s *Store) commit(batch []*writeReq) {
	start := time.Now()
	sqltx, err := s.W.Beginx()
	if err != nil {
		for _, r := range batch {
			r.errc <- fmt.Errorf("begin: %w", err)
		}
		return
	}
	tx := &Tx{Tx: sqltx, s: s}
	var changed []string
	deltas := map[countKey]int64{}
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.errc <- r.ctx.Err()
			r.errc = nil
			continue
		}
		t := &Tx{Tx: sqltx, s: s}
		r.tx = t
		if _, err := tx.Exec("savepoint w"); err != nil {
			r.errc <- err
			r.errc = nil
			continue
		}
		if err := runFn(r.fn, t); err != nil {
			if _, rerr := tx.Exec("rollback to w"); rerr != nil {
				err = errors.Join(err, rerr)
			} else if _, rerr := tx.Exec("release w"); rerr != nil {
				err = errors.Join(err, rerr)
			}
			r.errc <- err
			r.errc = nil
			continue
		}
		if _, err := tx.Exec("release w"); err != nil {
			r.errc <- err
			r.errc = nil
			continue
		}
		changed = append(changed, t.changed...)
		for k, n := range t.deltas {
			deltas[k] += n
		}
	}
	err = sqltx.Commit()
	if err != nil {
		sqltx.Rollback()
		err = fmt.Errorf("commit: %w", err)
	}
	s.statsMu.Lock()
	s.stats.Commits++
	s.stats.Requests += int64(len(batch))
	s.statsMu.Unlock()
	if s.opts.OnBatch != nil {
		s.opts.OnBatch(len(batch), time.Since(start), err)
	}
	if err == nil {
		s.applyCounts(deltas)
		if len(changed) > 0 && s.opts.OnCommit != nil {
			s.opts.OnCommit(changed)
		}
	}
	for _, r := range batch {
		if r.errc == nil {
			continue
		}
		if err == nil {
			for _, f := range r.tx.after {
				f()
			}
		}
		r.errc <- err
	}
}

func runFn(fn func(*Tx) error, t *Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write panicked: %v", r)
		}
	}()
	return fn(t)
}

// Tx is one request's view of a shared write transaction. Its Get, Select, Exec and
// NamedExec run cached prepared statements.
type Tx struct {
	*sqlx.Tx
	s       *Store
	changed []string
	after   []func()
	deltas  map[countKey]int64 // status count changes, applied once committed
}

// Get runs a query that returns one row into dest.
func (t *Tx) Get(dest any, query string, args ...any) error {
	if st, ok := t.s.wStmt(query); ok {
		return t.Stmtx(st).Get(dest, args...)
	}
	return t.Tx.Get(dest, query, args...)
}

// Select runs a query into the slice dest.
func (t *Tx) Select(dest any, query string, args ...any) error {
	if st, ok := t.s.wStmt(query); ok {
		return t.Stmtx(st).Select(dest, args...)
	}
	return t.Tx.Select(dest, query, args...)
}

// Exec runs a statement.
func (t *Tx) Exec(query string, args ...any) (sql.Result, error) {
	if st, ok := t.s.wStmt(query); ok {
		return t.Stmtx(st).Exec(args...)
	}
	return t.Tx.Exec(query, args...)
}

// NamedExec runs a statement with :name parameters taken from arg's db tags.
func (t *Tx) NamedExec(query string, arg any) (sql.Result, error) {
	t.s.stmtMu.Lock()
	st, ok := t.s.wNamed[query]
	t.s.stmtMu.Unlock()
	if !ok {
		return t.Tx.NamedExec(query, arg)
	}
	return t.NamedStmt(st).Exec(arg)
}

// wStmt returns the writer's prepared statement for query, if it is one of the hot ones
// prepared at Open. (Preparing inside a write would wait for the one connection the
// write itself holds.)
func (s *Store) wStmt(query string) (*sqlx.Stmt, bool) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	st, ok := s.wStmts[query]
	return st, ok
}

func (s *Store) rStmt(query string) (*sqlx.Stmt, error) {
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if st, ok := s.rStmts[query]; ok {
		return st, nil
	}
	st, err := s.R.Preparex(query)
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
		return err
	}
	return st.GetContext(ctx, dest, args...)
}

// sel reads rows through a cached statement of the read pool.
func (s *Store) sel(ctx context.Context, dest any, query string, args ...any) error {
	st, err := s.rStmt(query)
	if err != nil {
		return err
	}
	return st.SelectContext(ctx, dest, args...)
}

// Changed records that the task changed, for OnCommit.
func (t *Tx) Changed(id string) { t.changed = append(t.changed, id) }

// AfterCommit runs f once the transaction holding this write is durable.
func (t *Tx) AfterCommit(f func()) { t.after = append(t.after, f) }

// NowMS is the current time as stored: Unix milliseconds.
func NowMS() int64 { return time.Now().UnixMilli() }

// IsNotFound reports whether err means "no such row".
func IsNotFound(err error) bool { return errors.Is(err, sql.ErrNoRows) }
