// Command peer-river is asyncqueue's POST /v1/tasks built on River with its SQLite driver,
// or with -pg its PostgreSQL one (pgx v5): a task is a River job whose worker makes the call;
// an answer outside 2xx is an error, so River retries it with its backoff.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/asyncqueue/asyncqueue/bench/peers/internal/peer"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
)

// callArgs is a River job: one task's call.
type callArgs struct {
	peer.Task
}

func (callArgs) Kind() string { return "call" }

type callWorker struct {
	river.WorkerDefaults[callArgs]
	caller *peer.Caller
}

func (w *callWorker) Work(ctx context.Context, job *river.Job[callArgs]) error {
	return w.caller.Call(ctx, &job.Args.Task)
}

// Timeout lets the call's own timeout end it; River's context ends a little later.
func (w *callWorker) Timeout(job *river.Job[callArgs]) time.Duration {
	return job.Args.Timeout + time.Second
}

// riverPriority maps asyncqueue's 1..10 (higher first) onto River's 1..4 (lower first).
func riverPriority(p int) int {
	switch {
	case p >= 8:
		return 1
	case p >= 5:
		return 2
	case p >= 3:
		return 3
	}
	return 4
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address (127.0.0.1 only)")
	dbPath := flag.String("db", "peer-river.db", "SQLite file")
	fresh := flag.Bool("fresh", true, "delete the database first")
	syncMode := flag.String("sync", "NORMAL", "SQLite synchronous mode: NORMAL or FULL")
	workers := flag.Int("workers", 100, "River MaxWorkers of the queue (calls in flight at most)")
	cooldown := flag.Duration("fetch-cooldown", river.FetchCooldownDefault, "River FetchCooldown")
	poll := flag.Duration("fetch-poll", river.FetchPollIntervalDefault, "River FetchPollInterval")
	key := flag.String("api-key", "dev-key", "X-API-Key the server accepts")
	pg := flag.String("pg", "", "PostgreSQL URL: River's pgx v5 driver on this (empty) database instead of SQLite")
	pgConns := flag.Int("pg-conns", 0, "PostgreSQL pool size (0: pgxpool's default, max(4, cores))")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	o := options{addr: *addr, workers: *workers, cooldown: *cooldown, poll: *poll, key: *key}
	var err error
	if *pg != "" {
		err = runPG(*pg, *pgConns, o)
	} else {
		err = run(*dbPath, *fresh, *syncMode, o)
	}
	if err != nil {
		slog.Error("peer-river", "err", err)
		os.Exit(1)
	}
}

type options struct {
	addr           string
	workers        int
	cooldown, poll time.Duration
	key            string
}

func run(dbPath string, fresh bool, syncMode string, o options) error {
	if err := peer.CheckLoopback(o.addr); err != nil {
		return err
	}
	db, err := peer.OpenSQLite(dbPath, syncMode, fresh)
	if err != nil {
		return err
	}
	defer db.Close()
	slog.Warn("peer-river on SQLite", "sync", syncMode)
	return serve(riversqlite.New(db), o)
}

func runPG(url string, conns int, o options) error {
	if err := peer.CheckLoopback(o.addr); err != nil {
		return err
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return err
	}
	if conns > 0 {
		cfg.MaxConns = int32(conns)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	slog.Warn("peer-river on PostgreSQL", "conns", cfg.MaxConns)
	return serve(riverpgxv5.New(pool), o)
}

// serve migrates River's schema, starts its client and serves the API until a signal.
func serve[TTx any](driver riverdriver.Driver[TTx], o options) error {
	ctx := context.Background()
	addr, workers, key := o.addr, o.workers, o.key
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return err
	}
	ws := river.NewWorkers()
	river.AddWorker(ws, &callWorker{caller: peer.NewCaller(workers)})
	client, err := river.NewClient(driver, &river.Config{
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
		Workers:           ws,
		FetchCooldown:     o.cooldown,
		FetchPollInterval: o.poll,
		Logger:            slog.Default(),
	})
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	slog.Warn("peer-river ready", "addr", addr, "workers", workers)
	enqueue := func(ctx context.Context, c *peer.Create) (string, error) {
		opts := &river.InsertOpts{MaxAttempts: c.MaxRetries + 1, Priority: riverPriority(c.Priority)}
		if c.Delay > 0 {
			opts.ScheduledAt = time.Now().Add(c.Delay)
		}
		res, err := client.Insert(ctx, callArgs{Task: c.Task}, opts)
		if err != nil {
			return "", err
		}
		return strconv.FormatInt(res.Job.ID, 10), nil
	}
	return peer.Serve(addr, peer.Handler(key, enqueue), func(ctx context.Context) { client.Stop(ctx) })
}
