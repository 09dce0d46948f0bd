// Command peer-goqite is asyncqueue's POST /v1/tasks built on goqite and its jobs runner:
// a task is a goqite message whose job makes the call; an answer outside 2xx is an error, so
// goqite delivers the message again after its timeout, up to -max-receive times.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/asyncqueue/asyncqueue/bench/peers/internal/peer"
	"maragu.dev/goqite"
	"maragu.dev/goqite/jobs"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address (127.0.0.1 only)")
	dbPath := flag.String("db", "peer-goqite.db", "SQLite file")
	schema := flag.String("schema", "", "goqite's schema_sqlite.sql (applied to a fresh database)")
	fresh := flag.Bool("fresh", true, "delete the database first")
	syncMode := flag.String("sync", "NORMAL", "SQLite synchronous mode: NORMAL or FULL")
	limit := flag.Int("limit", 100, "jobs.Runner Limit (calls in flight at most)")
	poll := flag.Duration("poll", 100*time.Millisecond, "jobs.Runner PollInterval")
	msgTimeout := flag.Duration("msg-timeout", 5*time.Second, "goqite message timeout (redelivery after)")
	maxReceive := flag.Int("max-receive", 3, "goqite MaxReceive")
	key := flag.String("api-key", "dev-key", "X-API-Key the server accepts")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := run(*addr, *dbPath, *schema, *fresh, *syncMode, *limit, *poll, *msgTimeout, *maxReceive, *key); err != nil {
		slog.Error("peer-goqite", "err", err)
		os.Exit(1)
	}
}

func run(addr, dbPath, schema string, fresh bool, syncMode string, limit int, poll, msgTimeout time.Duration, maxReceive int, key string) error {
	if err := peer.CheckLoopback(addr); err != nil {
		return err
	}
	db, err := peer.OpenSQLite(dbPath, syncMode, fresh)
	if err != nil {
		return err
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`select count(*) from sqlite_master where name = 'goqite'`).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if schema == "" {
			return fmt.Errorf("the database has no goqite table: give -schema (goqite's schema_sqlite.sql)")
		}
		ddl, err := os.ReadFile(schema)
		if err != nil {
			return err
		}
		if _, err := db.Exec(string(ddl)); err != nil {
			return fmt.Errorf("apply %s: %w", schema, err)
		}
	}
	q := goqite.New(goqite.NewOpts{DB: db, Name: "tasks", Timeout: msgTimeout, MaxReceive: maxReceive})
	runner := jobs.NewRunner(jobs.NewRunnerOpts{Limit: limit, PollInterval: poll, Queue: q})
	caller := peer.NewCaller(limit)
	runner.Register("call", func(ctx context.Context, m []byte) error {
		var t peer.Task
		if err := json.Unmarshal(m, &t); err != nil {
			return nil // a bad message would fail forever
		}
		return caller.Call(ctx, &t)
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { runner.Start(ctx) })
	slog.Warn("peer-goqite ready", "addr", addr, "limit", limit, "sync", syncMode)
	enqueue := func(ctx context.Context, c *peer.Create) (string, error) {
		body, err := json.Marshal(c.Task)
		if err != nil {
			return "", err
		}
		id, err := jobs.Create(ctx, q, "call", goqite.Message{Body: body, Delay: c.Delay, Priority: c.Priority})
		return string(id), err
	}
	return peer.Serve(addr, peer.Handler(key, enqueue), func(context.Context) { cancel(); wg.Wait() })
}
