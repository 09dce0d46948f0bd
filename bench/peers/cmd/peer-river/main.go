// Command peer-river is asyncqueue's POST /v1/tasks built on River with its SQLite driver:
// a task is a River job whose worker makes the call; an answer outside 2xx is an error, so
// River retries it with its backoff.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/asyncqueue/asyncqueue/bench/peers/internal/peer"
	"github.com/riverqueue/river"
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
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := run(*addr, *dbPath, *fresh, *syncMode, *workers, *cooldown, *poll, *key); err != nil {
		slog.Error("peer-river", "err", err)
		os.Exit(1)
	}
}

func run(addr, dbPath string, fresh bool, syncMode string, workers int, cooldown, poll time.Duration, key string) error {
	if err := peer.CheckLoopback(addr); err != nil {
		return err
	}
	ctx := context.Background()
	db, err := peer.OpenSQLite(dbPath, syncMode, fresh)
	if err != nil {
		return err
	}
	defer db.Close()
	driver := riversqlite.New(db)
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
		FetchCooldown:     cooldown,
		FetchPollInterval: poll,
		Logger:            slog.Default(),
	})
	if err != nil {
		return err
	}
	if err := client.Start(ctx); err != nil {
		return err
	}
	slog.Warn("peer-river ready", "addr", addr, "workers", workers, "sync", syncMode)
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
