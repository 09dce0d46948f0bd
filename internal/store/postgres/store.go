// Package postgres is the PostgreSQL backend of the store (PostgreSQL 14 or newer), for
// several asyncqueue nodes sharing one database (SPEC §12). It implements store.Store,
// store.Tx and store.Shared with the same behaviour, errors and ordering as the SQLite
// backend.
//
// It uses pgx natively rather than through database/sql: a pgxpool bounds the connections
// and caches each connection's prepared statements; LISTEN needs a connection of its own
// held for the store's life, which database/sql cannot lend out; PostgreSQL's error codes
// (SQLSTATE) are read from *pgconn.PgError to map them to the store's sentinel errors; and
// values bind in the binary protocol with no reflection layer in between. CopyFrom is not
// used for a Tx's inserts: each insert must succeed or fail at its own statement (a
// duplicate id or signal hash fails that write alone), and a write reads what it inserted.
//
// Writes: a few writer goroutines (Options.Writers) each take every write queued when
// they start a transaction (group commit, up to MaxBatch) and run them in one transaction
// on a pooled connection; several such transactions run at once. A write that fails after
// changing rows (or whose statement failed, which aborts a PostgreSQL transaction) is
// answered with its error and the batch is redone without it. A serialization failure or
// deadlock retries the whole batch; so does a connection lost before COMMIT was sent.
// Every read through a Tx locks its row (select … for update); ClaimTasks skips a row
// another transaction holds (for update skip locked) and records the lease.
//
// Notifications: each commit that changed tasks, flows or configuration runs
// pg_notify('asyncqueue', payload) in the same transaction (see notify.go); a listener on
// a connection of its own delivers the other nodes' commits on Changes.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

var (
	_ store.Store  = (*Store)(nil)
	_ store.Shared = (*Store)(nil)
	_ store.Tx     = (*Tx)(nil)
)

// Defaults for Options.
const (
	DefaultMaxConns         = 16
	DefaultStatementTimeout = 15 * time.Second
	DefaultConnectTimeout   = 5 * time.Second
	DefaultMaxBatch         = 256
	// DefaultWriters is how many write transactions run at once (each on its own
	// connection, the rest of the pool serving reads).
	DefaultWriters = 4
)

// Heartbeat and LivenessWindow: each node records itself in the nodes table every
// Heartbeat; a node not seen for LivenessWindow is gone.
const (
	Heartbeat      = 2 * time.Second
	LivenessWindow = 10 * time.Second
)

// Options configure Open.
type Options struct {
	URL    string // postgres://… or postgresql://…
	Schema string // the contents of schema_postgres.sql
	Node   string // this node's id, unique among the nodes
	// OnCommit is called after each commit with the ids of the tasks it changed.
	OnCommit func(taskIDs []string)
	// OnBatch is called after each transaction with its number of write requests, how long
	// it took from BEGIN to the end of COMMIT, and its error.
	OnBatch          func(requests int, took time.Duration, err error)
	MaxConns         int           // pool bound (default DefaultMaxConns)
	StatementTimeout time.Duration // per statement (default DefaultStatementTimeout)
	Logger           *slog.Logger
	// Command opens the store for a one-off command (keys, teams, migrate), not a serving
	// node: it is not recorded in the nodes table (so Nodes and the flows' shares do not
	// count it) and does not listen: its Changes channel is closed from the start.
	Command bool
	// Writers is how many write transactions run at once (default DefaultWriters, at most
	// half the pool); MaxBatch bounds the writes one transaction takes.
	Writers, MaxBatch int
}

// Store is a PostgreSQL database shared by several nodes.
type Store struct {
	pool *pgxpool.Pool
	cfg  *pgxpool.Config
	opts Options
	log  *slog.Logger

	reqs    chan *writeReq
	writers sync.WaitGroup
	closeMu sync.RWMutex // held for reading while a write is queued; Close takes it to close reqs
	closed  bool
	once    sync.Once

	// finishMu keeps the commit callbacks (OnBatch, OnCommit, AfterCommit, answers) of
	// concurrent transactions from running at once, as with one writer.
	finishMu sync.Mutex

	changes  chan store.Change
	stop     context.CancelFunc // ends the listener and the heartbeat
	bg       sync.WaitGroup
	redacted string // the URL without its password, for messages

	statsMu sync.Mutex
	stats   WriteStats
}

// WriteStats count the group commits.
type WriteStats struct {
	Commits  int64
	Requests int64
	Redos    int64 // batches run again without a write that failed half-way
	Retries  int64 // batches run again after a conflict or a lost connection
}

// Open connects to the database, creates or migrates its schema, and starts the writers,
// the listener and the heartbeat.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Node == "" {
		return nil, errors.New("open database: no node id")
	}
	o.MaxConns = cmp.Or(o.MaxConns, DefaultMaxConns)
	o.StatementTimeout = cmp.Or(o.StatementTimeout, DefaultStatementTimeout)
	o.MaxBatch = cmp.Or(o.MaxBatch, DefaultMaxBatch)
	o.Writers = min(cmp.Or(o.Writers, DefaultWriters), max(1, o.MaxConns/2))
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	redacted := redact(o.URL)
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("open database: parse the PostgreSQL URL %s: %w", redacted, err)
	}
	cfg.MaxConns = int32(o.MaxConns)
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(o.StatementTimeout.Milliseconds())
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "asyncqueue " + o.Node
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", redacted, classify(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open database: cannot reach PostgreSQL at %s: %w", redacted, classify(err))
	}
	if err := migrate(ctx, pool, o.Schema); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{pool: pool, cfg: cfg, opts: o, log: o.Logger, redacted: redacted,
		reqs: make(chan *writeReq, 4096), changes: make(chan store.Change, changeBuffer)}
	lctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	if o.Command {
		close(s.changes)
	} else {
		if err := s.beat(ctx, true); err != nil {
			stop()
			pool.Close()
			return nil, fmt.Errorf("open database: record node %s: %w", o.Node, classify(err))
		}
		ready := make(chan error, 1)
		s.bg.Add(2)
		go s.listen(lctx, ready)
		go s.heartbeat(lctx)
		if err := <-ready; err != nil {
			stop()
			s.bg.Wait()
			pool.Close()
			return nil, fmt.Errorf("open database: listen for the other nodes' changes: %w", classify(err))
		}
	}
	for range o.Writers {
		s.writers.Add(1)
		go s.writer()
	}
	return s, nil
}

// redact returns the URL without its password (and the text unchanged when it is not a URL).
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(the database URL)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// Node is this node's id, as recorded in claimed_by.
func (s *Store) Node() string { return s.opts.Node }

// Close finishes the queued writes, stops the listener and the heartbeat, removes this
// node from the nodes table and closes the pool.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		close(s.reqs)
		s.closeMu.Unlock()
		s.writers.Wait()
		s.stop()
		s.bg.Wait()
		if !s.opts.Command {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := s.pool.Exec(ctx, `delete from nodes where id = $1`, s.opts.Node); err != nil {
				s.log.Warn("could not remove this node from the nodes table", "node", s.opts.Node, "err", err)
			}
			cancel()
		}
		s.pool.Close()
	})
	return nil
}

// Stats reports the group-commit counters.
func (s *Store) Stats() WriteStats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// Ping checks that the database answers a read.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return classify(s.pool.QueryRow(ctx, "select 1").Scan(&one))
}

// Backup is not done by asyncqueue on PostgreSQL: pg_dump takes a consistent copy.
func (s *Store) Backup(ctx context.Context, to string) (int64, error) {
	return 0, fmt.Errorf("backup: asyncqueue does not copy a PostgreSQL database itself; use pg_dump --format=custom '%s' (pg_restore reads it back)", s.redacted)
}

// get reads one row from the pool into dest (store.ErrNotFound if none).
func (s *Store) get(ctx context.Context, query string, args []any, dest ...any) error {
	return classify(notFound(s.pool.QueryRow(ctx, query, args...).Scan(dest...)))
}

// selectStructs reads rows from the pool into structs, by their db tags.
func selectStructs[T any](ctx context.Context, s *Store, query string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByNameLax[T])
	return out, classify(err)
}

// getStruct reads one row from the pool into a struct (store.ErrNotFound if none).
func getStruct[T any](ctx context.Context, s *Store, query string, args ...any) (*T, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, classify(err)
	}
	v, err := pgx.CollectOneRow(rows, pgx.RowToAddrOfStructByNameLax[T])
	return v, classify(notFound(err))
}

// migrations[i] moves a database from schema version i+1 to i+2, in the same transaction as
// the schema. Append only: a released step is never edited.
var migrations = []string{}

// SchemaVersion is the version this build writes; a database of a newer one is refused.
var SchemaVersion = 1 + len(migrations)

// migrateLock is the advisory lock key under which nodes create and migrate the schema one
// at a time ("aqschema" in ASCII).
const migrateLock int64 = 0x6171736368656d61

// migrate creates the schema of an empty database, or brings an older one up to
// SchemaVersion, in one transaction under an advisory lock: nodes starting at once on an
// empty database take turns, and each later one finds the work done.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", classify(err))
	}
	defer tx.Rollback(context.Background())
	// Waiting for another node's migration, or a long one, is not a stuck statement.
	if _, err := tx.Exec(ctx, `set local statement_timeout = '10min'`); err != nil {
		return fmt.Errorf("migrate: %w", classify(err))
	}
	if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("migrate: take the schema lock: %w", classify(err))
	}
	var exists bool
	if err := tx.QueryRow(ctx, `select to_regclass('schema_version') is not null`).Scan(&exists); err != nil {
		return fmt.Errorf("read schema version: %w", classify(err))
	}
	v := 0
	if exists {
		if err := tx.QueryRow(ctx, `select coalesce(max(version), 0) from schema_version`).Scan(&v); err != nil {
			return fmt.Errorf("read schema version: %w", classify(err))
		}
	}
	if v > SchemaVersion {
		return fmt.Errorf("database schema version %d is newer than this asyncqueue understands (%d); upgrade asyncqueue", v, SchemaVersion)
	}
	if v == SchemaVersion {
		return nil
	}
	if v == 0 {
		if schema == "" {
			return errors.New("migrate: no schema given to create the database with")
		}
		if _, err := tx.Exec(ctx, schema); err != nil {
			return fmt.Errorf("apply schema: %w", classify(err))
		}
		v = 1
	}
	for i := v - 1; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", i+2, classify(err))
		}
	}
	if _, err := tx.Exec(ctx, `delete from schema_version`); err != nil {
		return fmt.Errorf("set schema version: %w", classify(err))
	}
	if _, err := tx.Exec(ctx, `insert into schema_version (version) values ($1)`, SchemaVersion); err != nil {
		return fmt.Errorf("set schema version: %w", classify(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: %w", classify(err))
	}
	return nil
}

// nowSQL is the database server's clock in Unix ms: one clock for every node's heartbeat.
const nowSQL = `(extract(epoch from clock_timestamp()) * 1000)::bigint`

// beat records this node as seen now (and started now, at Open).
func (s *Store) beat(ctx context.Context, start bool) error {
	q := `insert into nodes (id, started_at, seen_at) values ($1, ` + nowSQL + `, ` + nowSQL + `)
		on conflict (id) do update set seen_at = excluded.seen_at`
	if start {
		q += `, started_at = excluded.started_at`
	}
	_, err := s.pool.Exec(ctx, q, s.opts.Node)
	return err
}

func (s *Store) heartbeat(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, Heartbeat)
		if err := s.beat(bctx, false); err != nil && ctx.Err() == nil {
			s.log.Warn("node heartbeat failed", "node", s.opts.Node, "err", err)
		}
		cancel()
	}
}

// Nodes lists the live nodes, sorted by id: those seen within LivenessWindow.
func (s *Store) Nodes(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `select id from nodes where seen_at >= `+nowSQL+` - $1 order by id`,
		LivenessWindow.Milliseconds())
	if err != nil {
		return nil, classify(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, classify(err)
}

// Agree stores value under name unless a value is stored there already, and returns the
// stored one.
func (s *Store) Agree(ctx context.Context, name, value string) (string, error) {
	var stored string
	var err error
	// A second try sees a row that another node committed while this statement waited on
	// it (which its own snapshot, taken before, could not show).
	for range 2 {
		err = s.pool.QueryRow(ctx, `with ins as (insert into settings (name, value) values ($1, $2)
			on conflict (name) do nothing returning value)
			select value from ins union all select value from settings where name = $1 limit 1`, name, value).Scan(&stored)
		if !errors.Is(err, pgx.ErrNoRows) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("agree on %s: %w", name, classify(err))
	}
	return stored, nil
}
