package sqlite

// Benchmarks of the store's hot paths: creating tasks, claiming them, recording their
// outcome and firing their timers. Every benchmark runs b.N tasks (or timers), so ns/op is
// the cost of one task; tasks/s is the matching rate and tasks/commit shows how many tasks
// each transaction carried (group commit). Set-up (opening the database, inserting the
// tasks a benchmark works on) is not timed. Quick smoke run:
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/store/

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/store/storetest"

	"github.com/google/uuid"
)

const (
	benchWorkers   = 32   // concurrent callers of Write in the concurrent sub-benchmarks
	benchSeedBatch = 512  // tasks per Write when preparing a benchmark's data
	benchFireBatch = 256  // timers per Write, as the dispatcher's fire does
	benchLoadPage  = 5000 // DueBefore page size, as the dispatcher's timer loader uses
	benchTimers    = 100_000
)

var benchSyncs = []string{"full", "normal"}

var (
	benchBody   = `{"orderId":"ord_8412","amount":1999,"currency":"EUR","items":[{"sku":"A-1","qty":2}]}`
	benchResult = `{"statusCode":200,"headers":{"content-type":"application/json"},"body":"{\"ok\":true}","duration":12}`
)

// openBench opens a store in a fresh temporary database with one team, whose id it returns.
func openBench(b *testing.B, sync string) (*Store, string) {
	b.Helper()
	return openBenchIn(b, b.TempDir(), sync)
}

func openBenchIn(tb testing.TB, dir, sync string) (*Store, string) {
	tb.Helper()
	schema, err := os.ReadFile(filepath.Join("..", "..", "..", "schema.sql"))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := Open(filepath.Join(dir, "bench.db"), Options{Schema: string(schema), Sync: sync})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	team := &store.Team{ID: benchID(tb), Name: "bench", WebhookSecret: "whsec_bench", CreatedAt: store.NowMS()}
	if err := s.Write(context.Background(), func(tx store.Tx) error { return tx.InsertTeam(team) }); err != nil {
		tb.Fatalf("insert team: %v", err)
	}
	return s, team.ID
}

func benchID(tb testing.TB) string {
	id, err := uuid.NewV7()
	if err != nil {
		tb.Fatal(err)
	}
	return id.String()
}

// benchTask builds a task as the create endpoint does for a plain POST with a JSON body:
// pending and due now.
func benchTask(tb testing.TB, teamID string, now int64) *store.Task {
	body := benchBody
	due := now
	return &store.Task{
		ID:           benchID(tb),
		TeamID:       teamID,
		Status:       store.StatusPending,
		TargetURL:    "https://api.example.test/webhooks/orders",
		TargetHost:   "api.example.test",
		Method:       "POST",
		Headers:      "{}",
		Body:         &body,
		TimeoutMS:    30_000,
		MaxRetries:   3,
		RetryBackoff: "exponential",
		Priority:     5,
		MaxWaitMS:    30_000,
		CreatedAt:    now,
		DueAt:        &due,
	}
}

// benchTasks builds n tasks, changed by edit (when not nil) before they are returned.
func benchTasks(tb testing.TB, teamID string, n int, edit func(i int, t *store.Task)) []*store.Task {
	tb.Helper()
	now := store.NowMS()
	ts := make([]*store.Task, n)
	for i := range ts {
		ts[i] = benchTask(tb, teamID, now)
		if edit != nil {
			edit(i, ts[i])
		}
	}
	return ts
}

// seedTasks inserts ts in large transactions.
func seedTasks(tb testing.TB, s *Store, ts []*store.Task) {
	tb.Helper()
	for len(ts) > 0 {
		batch := ts[:min(len(ts), benchSeedBatch)]
		ts = ts[len(batch):]
		err := s.Write(context.Background(), func(tx store.Tx) error {
			for _, t := range batch {
				if err := tx.InsertTask(t); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("seed tasks: %v", err)
		}
	}
}

// runWrites calls write for each index in [0, n): from one goroutine when workers is 1,
// else from that many goroutines at once, each taking the next index.
func runWrites(b *testing.B, workers, n int, write func(i int) error) {
	b.Helper()
	if workers <= 1 {
		for i := range n {
			if err := write(i); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := write(i); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

// timed runs the measured part of a benchmark of b.N items (tasks, or timers: unit) and
// reports the rates.
func timed(b *testing.B, s *Store, unit string, run func()) {
	b.Helper()
	before := s.Stats().Commits
	cpu0 := processCPU()
	b.ResetTimer()
	run()
	b.StopTimer()
	// CPU time of the whole process (writer, fsync and callers) per task: steadier than
	// wall time on a shared machine, and what a busy server runs short of.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	if sec := b.Elapsed().Seconds(); sec > 0 {
		b.ReportMetric(float64(b.N)/sec, unit+"/s")
	}
	if commits := s.Stats().Commits - before; commits > 0 {
		b.ReportMetric(float64(b.N)/float64(commits), "tasks/commit")
	}
}

// writeModes are the ways the benchmarks drive Write: one task per call from one caller,
// several tasks per call from one caller, and one task per call from many callers at once.
type writeMode struct {
	name    string
	perCall int
	workers int
}

func writeModes(batch int) []writeMode {
	return []writeMode{
		{"single", 1, 1},
		{fmt.Sprintf("batch%d", batch), batch, 1},
		{fmt.Sprintf("concurrent%d", benchWorkers), 1, benchWorkers},
	}
}

// runModes runs body for every sync mode and write mode as sub-benchmarks. body gets the
// store and the tasks it should handle; prepare (not timed) builds and inserts them.
func runModes(b *testing.B, modes []writeMode, prepare func(b *testing.B, s *Store, team string) []*store.Task,
	body func(tx store.Tx, t *store.Task) error) {
	for _, sync := range benchSyncs {
		b.Run("sync="+sync, func(b *testing.B) {
			for _, m := range modes {
				b.Run(m.name, func(b *testing.B) {
					s, team := openBench(b, sync)
					ts := prepare(b, s, team)
					timed(b, s, "tasks", func() {
						chunks := (len(ts) + m.perCall - 1) / m.perCall
						runWrites(b, m.workers, chunks, func(c int) error {
							part := ts[c*m.perCall : min((c+1)*m.perCall, len(ts))]
							return s.Write(context.Background(), func(tx store.Tx) error {
								for _, t := range part {
									if err := body(tx, t); err != nil {
										return err
									}
								}
								return nil
							})
						})
					})
				})
			}
		})
	}
}

// BenchmarkInsert measures creating tasks (Tx.InsertTask).
func BenchmarkInsert(b *testing.B) {
	runModes(b, writeModes(64),
		func(b *testing.B, s *Store, team string) []*store.Task {
			return benchTasks(b, team, b.N, nil)
		},
		func(tx store.Tx, t *store.Task) error { return tx.InsertTask(t) })
}

// BenchmarkClaim measures a worker taking a pending task (Tx.ClaimTasks, one id).
func BenchmarkClaim(b *testing.B) {
	runModes(b, writeModes(benchFireBatch),
		func(b *testing.B, s *Store, team string) []*store.Task {
			ts := benchTasks(b, team, b.N, nil)
			seedTasks(b, s, ts)
			return ts
		},
		func(tx store.Tx, t *store.Task) error {
			got, err := storetest.ClaimOne(tx, t.ID, store.NowMS())
			if err != nil {
				return fmt.Errorf("claim %s: %w", t.ID, err)
			}
			if got.Status != store.StatusProcessing {
				return fmt.Errorf("claimed task %s is %s", t.ID, got.Status)
			}
			return nil
		})
}

// BenchmarkComplete measures recording a successful call, as the dispatcher's record does:
// one attempt row and the guarded update of a processing task to completed.
func BenchmarkComplete(b *testing.B) {
	code := 200
	modes := []writeMode{{"single", 1, 1}, {fmt.Sprintf("concurrent%d", benchWorkers), 1, benchWorkers}}
	runModes(b, modes,
		func(b *testing.B, s *Store, team string) []*store.Task {
			ts := benchTasks(b, team, b.N, func(_ int, t *store.Task) {
				started := t.CreatedAt
				t.Status = store.StatusProcessing
				t.Attempts = 1
				t.StartedAt = &started
				t.DueAt = nil
			})
			seedTasks(b, s, ts)
			return ts
		},
		func(tx store.Tx, orig *store.Task) error {
			if err := tx.InsertAttempt(store.Attempt{TaskID: orig.ID, Attempt: orig.Attempts, StartedAt: *orig.StartedAt,
				DurationMS: 12, StatusCode: &code}); err != nil {
				return err
			}
			now := store.NowMS()
			result := benchResult
			t := *orig
			t.BufferedSignal = nil
			t.Status = store.StatusCompleted
			t.Result = &result
			t.Error = nil
			t.CompletedAt = &now
			t.DueAt = nil
			if err := tx.UpdateTaskNoSignal(orig, &t); err != nil {
				return fmt.Errorf("complete %s: %w", t.ID, err)
			}
			return nil
		})
}

// BenchmarkFireTimers measures timers falling due that the dispatcher leaves to the writer
// (no worker idle): delayed tasks read and made pending in writes of 256, as fireOne does;
// and the start-up timer loader paging through the due_at index (DueBefore) of 100k timers.
func BenchmarkFireTimers(b *testing.B) {
	modes := []writeMode{{fmt.Sprintf("batch%d", benchFireBatch), benchFireBatch, 1}}
	runModes(b, modes,
		func(b *testing.B, s *Store, team string) []*store.Task {
			ts := benchTasks(b, team, b.N, func(i int, t *store.Task) {
				due := t.CreatedAt - 60_000 + int64(i%1000) // overdue, spread over a second
				t.Status = store.StatusDelayed
				t.DelayUntil = &due
				t.DueAt = &due
			})
			seedTasks(b, s, ts)
			return ts
		},
		func(tx store.Tx, want *store.Task) error {
			t, err := tx.Task(want.ID)
			if err != nil {
				return fmt.Errorf("read %s: %w", want.ID, err)
			}
			now := store.NowMS()
			if t.Status != store.StatusDelayed || t.DueAt == nil || *t.DueAt > now {
				return fmt.Errorf("task %s is not a due delayed task", t.ID)
			}
			from := t.Status
			t.Status = store.StatusPending
			return tx.UpdateTask(t, from)
		})

	// The 100k timers are inserted once, on first use, for all runs of the sub-benchmark,
	// and the runs go on paging where the last one stopped, from the start after the end.
	var (
		loader *Store
		until  int64
		cur    timerCursor
	)
	b.Run(fmt.Sprintf("DueBefore/timers=%dk", benchTimers/1000), func(sb *testing.B) {
		if loader == nil {
			var team string
			loader, team = openBenchIn(b, b.TempDir(), "normal")
			ts := benchTasks(sb, team, benchTimers, func(i int, t *store.Task) {
				due := t.CreatedAt - 3_600_000 + int64(i%7200)*500 // overdue, over the last hour
				t.Status = store.StatusDelayed
				t.DelayUntil = &due
				t.DueAt = &due
			})
			seedTasks(sb, loader, ts)
			until = store.NowMS() + 1
			all, err := loader.DueBefore(context.Background(), math.MinInt64, "", until, benchTimers+1)
			if err != nil || len(all) != benchTimers {
				sb.Fatalf("DueBefore found %d timers (%v), want %d", len(all), err, benchTimers)
			}
		}
		timed(sb, loader, "timers", func() {
			scanTimers(sb, loader, &cur, until, sb.N)
		})
	})
}

// timerCursor is a position in the timer index; the zero value is its start.
type timerCursor struct {
	afterDue int64
	afterID  string // "" at the start
}

// scanTimers reads most timers due before until, a page at a time from cur, as the
// start-up loader does, and leaves cur after the last one; at the end of the index it goes
// on from the start.
func scanTimers(b *testing.B, s *Store, cur *timerCursor, until int64, most int) {
	b.Helper()
	for read := 0; read < most; {
		afterDue := cur.afterDue
		if cur.afterID == "" {
			afterDue = math.MinInt64
		}
		limit := min(benchLoadPage, most-read)
		ts, err := s.DueBefore(context.Background(), afterDue, cur.afterID, until, limit)
		if err != nil {
			b.Fatal(err)
		}
		if len(ts) == 0 && cur.afterID == "" {
			b.Fatal("DueBefore found no timers")
		}
		read += len(ts)
		if len(ts) < limit {
			*cur = timerCursor{}
			continue
		}
		cur.afterDue, cur.afterID = ts[len(ts)-1].DueAt, ts[len(ts)-1].ID
	}
}
