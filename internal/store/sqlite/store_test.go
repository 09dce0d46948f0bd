package sqlite

// The tests do not run in parallel: a data race found by -race is then blamed on the test
// that caused it, not on whichever tests happened to run beside it.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"

	"github.com/jmoiron/sqlx"
)

// testSchema is the real schema, read from the module root.
func testSchema(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func openTest(t *testing.T, o Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aq.db")
	o.Schema = testSchema(t)
	s, err := Open(path, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func insertTeam(tx store.Tx, name string) error {
	return tx.InsertTeam(&store.Team{ID: "team-" + name, Name: name, WebhookSecret: "whsec_x", CreatedAt: store.NowMS()})
}

func teamNames(t *testing.T, s *Store) map[string]bool {
	t.Helper()
	ts, err := s.Teams(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, tm := range ts {
		out[tm.Name] = true
	}
	return out
}

// blockWriter occupies the write loop until the returned release is called, so that
// writes queued meanwhile are committed together in the next batch.
func blockWriter(t *testing.T, s *Store) (release func(), done <-chan error) {
	t.Helper()
	name := "blocker" // then blocker2, blocker3… on the same store
	c, _ := blockers.LoadOrStore(s, new(atomic.Int32))
	if n := c.(*atomic.Int32).Add(1); n > 1 {
		name = fmt.Sprint("blocker", n)
	}
	started := make(chan struct{})
	unblock := make(chan struct{})
	errc := make(chan error, 1)
	var startOnce sync.Once // the write runs again if its batch is redone
	go func() {
		errc <- s.Write(context.Background(), func(tx store.Tx) error {
			startOnce.Do(func() { close(started) })
			<-unblock
			return insertTeam(tx, name)
		})
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("blocking write did not start")
	}
	var once sync.Once
	release = func() { once.Do(func() { close(unblock) }) }
	t.Cleanup(release)
	return release, errc
}

// blockers counts blockWriter's calls per store, so that each blocker inserts a team of its own.
var blockers sync.Map

// waitQueued waits until n write requests are queued behind the blocker.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued after 10 s, want %d", len(s.reqs), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// writeBatch runs fns as writes of one batch, queued in order behind a blocker, and returns
// what each Write returned.
func writeBatch(t *testing.T, s *Store, fns ...func(store.Tx) error) []error {
	t.Helper()
	release, blocked := blockWriter(t, s)
	results := make([]chan error, len(fns))
	for i, fn := range fns {
		results[i] = make(chan error, 1)
		go func() { results[i] <- s.Write(context.Background(), fn) }()
		waitQueued(t, s, i+1) // keep the order
	}
	release()
	if err := <-blocked; err != nil {
		t.Fatalf("blocking write: %v", err)
	}
	errs := make([]error, len(fns))
	for i := range results {
		errs[i] = <-results[i]
	}
	return errs
}

// countedInsert is a write that counts its runs, inserts team name, then returns err.
func countedInsert(runs *atomic.Int32, name string, err error) func(store.Tx) error {
	return func(tx store.Tx) error {
		runs.Add(1)
		if e := insertTeam(tx, name); e != nil {
			return e
		}
		return err
	}
}

func TestGroupCommit(t *testing.T) {
	s, _ := openTest(t, Options{})
	const n = 200
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- s.Write(context.Background(), func(tx store.Tx) error {
				return insertTeam(tx, fmt.Sprint("t", i))
			})
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Write: %v", err)
		}
	}
	if got := len(teamNames(t, s)); got != n {
		t.Errorf("%d teams committed, want %d", got, n)
	}
	st := s.Stats()
	if st.Requests != n {
		t.Errorf("Stats().Requests = %d, want %d", st.Requests, n)
	}
	if st.Commits >= n || st.Commits < 1 {
		t.Errorf("Stats().Commits = %d for %d concurrent writes, want fewer (group commit)", st.Commits, n)
	}
	t.Logf("%d writes in %d commits", st.Requests, st.Commits)
}

// Under load (batches ready to commit with holdFrom writes or more, on average) a batch that
// is ready to commit waits, up to Options.CommitHold, until it holds holdUntil writes. After
// quiet batches a write commits alone at once.
func TestCommitHold(t *testing.T) {
	writeAsync := func(s *Store, name string) <-chan error {
		done := make(chan error, 1)
		go func() { done <- s.Write(context.Background(), func(tx store.Tx) error { return insertTeam(tx, name) }) }()
		return done
	}
	returns := func(t *testing.T, done <-chan error, what string) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still waiting after 10 s", what)
		}
	}
	// Batches of holdUntil writes, queued behind a blocker, until the average batch the
	// writer sees ready to commit is past holdFrom.
	busyBatches := func(t *testing.T, s *Store) {
		t.Helper()
		for b := range 4 {
			fns := make([]func(store.Tx) error, holdUntil)
			for i := range fns {
				fns[i] = func(tx store.Tx) error { return insertTeam(tx, fmt.Sprint("busy", b, "-", i)) }
			}
			for _, err := range writeBatch(t, s, fns...) {
				if err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	t.Run("held under load until it is full", func(t *testing.T) {
		s, _ := openTest(t, Options{Sync: "full", CommitHold: time.Hour})
		busyBatches(t, s)
		before := s.Stats().Commits
		first := writeAsync(s, "first")
		select {
		case err := <-first:
			t.Fatalf("a lone write after busy batches committed at once (%v), want it held", err)
		case <-time.After(100 * time.Millisecond):
		}
		rest := make([]<-chan error, holdUntil-1)
		for i := range rest {
			rest[i] = writeAsync(s, fmt.Sprint("more", i))
		}
		returns(t, first, "the held write")
		for _, done := range rest {
			returns(t, done, "a write that filled the held batch")
		}
		if got := s.Stats().Commits - before; got != 1 {
			t.Errorf("%d commits for the held batch's %d writes, want 1", got, holdUntil)
		}
	})
	t.Run("not held after a quiet batch", func(t *testing.T) {
		s, _ := openTest(t, Options{Sync: "full", CommitHold: time.Hour})
		returns(t, writeAsync(s, "a"), "the first write")
		returns(t, writeAsync(s, "b"), "a write after a batch of one")
	})
	t.Run("the hold ends", func(t *testing.T) {
		s, _ := openTest(t, Options{Sync: "full", CommitHold: 20 * time.Millisecond})
		busyBatches(t, s)
		returns(t, writeAsync(s, "alone"), "a lone write after busy batches")
	})
}

func TestWriteFailureRollsBackOnlyItsOwnChanges(t *testing.T) {
	var mu sync.Mutex
	var committed [][]string
	s, _ := openTest(t, Options{OnCommit: func(ids []string) {
		mu.Lock()
		committed = append(committed, ids)
		mu.Unlock()
	}})
	boom := errors.New("boom")
	afterA := make(chan struct{})
	errs := writeBatch(t, s,
		func(tx store.Tx) error {
			tx.(*Tx).Changed("task-of-a")
			tx.AfterCommit(func() { close(afterA) })
			return insertTeam(tx, "a")
		},
		func(tx store.Tx) error {
			if err := insertTeam(tx, "b"); err != nil {
				return err
			}
			if err := insertTeam(tx, "b2"); err != nil {
				return err
			}
			tx.(*Tx).Changed("task-of-b")
			tx.AfterCommit(func() { t.Error("AfterCommit of a failed write ran") })
			return boom
		},
		func(tx store.Tx) error { return insertTeam(tx, "c") },
	)
	if err := errs[0]; err != nil {
		t.Errorf("write a: %v", err)
	}
	if err := errs[1]; !errors.Is(err, boom) {
		t.Errorf("write b: %v, want boom", err)
	}
	if err := errs[2]; err != nil {
		t.Errorf("write c: %v", err)
	}
	select {
	case <-afterA:
	case <-time.After(5 * time.Second):
		t.Error("AfterCommit of a successful write did not run")
	}
	names := teamNames(t, s)
	for name, want := range map[string]bool{"blocker": true, "a": true, "b": false, "b2": false, "c": true} {
		if names[name] != want {
			t.Errorf("team %s committed: %v, want %v", name, names[name], want)
		}
	}
	// a, b and c queued while the blocker ran, so the open transaction took them in too.
	if st := s.Stats(); st.Commits != 1 || st.Requests != 4 {
		t.Errorf("Stats() = %+v, want 1 commit of 4 requests (blocker, a, b, c together)", st)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ids := range committed {
		for _, id := range ids {
			if id == "task-of-b" {
				t.Errorf("OnCommit reported a change of the failed write: %v", committed)
			}
		}
	}
	if fmt.Sprint(committed) != "[[task-of-a]]" {
		t.Errorf("OnCommit calls %v, want [[task-of-a]]", committed)
	}
}

// TestWriteRedo follows a batch through both kinds of failure. A write that fails before
// changing anything is answered alone. One that fails after changing rows makes the batch
// roll back and run its other writes again, each in a savepoint from then on, so a later
// failure in the same batch is undone alone.
func TestWriteRedo(t *testing.T) {
	s, _ := openTest(t, Options{})
	boom := errors.New("boom")
	var runs [6]atomic.Int32
	errs := writeBatch(t, s,
		countedInsert(&runs[0], "a", nil),
		func(tx store.Tx) error { // fails after a read only
			runs[1].Add(1)
			if _, err := tx.Team("team-a"); err != nil {
				return err
			}
			return boom
		},
		countedInsert(&runs[2], "c", boom), // fails after a change: the batch is redone
		countedInsert(&runs[3], "d", nil),
		countedInsert(&runs[4], "e", boom), // fails in a savepoint
		countedInsert(&runs[5], "f", nil),
	)
	for i, want := range []error{nil, boom, boom, nil, boom, nil} {
		if err := errs[i]; !errors.Is(err, want) {
			t.Errorf("write %d: %v, want %v", i, err, want)
		}
	}
	names := teamNames(t, s)
	for name, want := range map[string]bool{"blocker": true, "a": true, "c": false, "d": true, "e": false, "f": true} {
		if names[name] != want {
			t.Errorf("team %s committed: %v, want %v", name, names[name], want)
		}
	}
	// a succeeded before the redo and ran again in it; b and c were answered and not run
	// again; d, e and f ran after it, once.
	for i, want := range []int32{2, 1, 1, 1, 1, 1} {
		if got := runs[i].Load(); got != want {
			t.Errorf("write %d ran %d times, want %d", i, got, want)
		}
	}
	if st := s.Stats(); st.Redos != 1 || st.Commits != 1 {
		t.Errorf("Stats() = %+v, want 1 redo in 1 commit", st)
	}
}

// When SQLite rolls the whole transaction back by itself during a write (simulated here by
// a ROLLBACK behind the Tx's back), the batch's other writes run again in a new one: none is
// lost, and none commits on its own outside a transaction.
func TestWriteRedoAfterSQLiteRollback(t *testing.T) {
	s, _ := openTest(t, Options{})
	boom := errors.New("boom")
	var runs [5]atomic.Int32
	rolledBack := func(runs *atomic.Int32) func(store.Tx) error {
		return func(tx store.Tx) error {
			runs.Add(1)
			if _, err := tx.(*Tx).c.ExecContext(context.Background(), "rollback"); err != nil {
				return err
			}
			return boom
		}
	}
	errs := writeBatch(t, s,
		countedInsert(&runs[0], "a", nil),
		rolledBack(&runs[1]),               // changes nothing itself: only the probe tells; redone, in savepoints
		countedInsert(&runs[2], "c", boom), // fails after a change: its savepoint undoes it alone
		rolledBack(&runs[3]),               // inside a savepoint: the rollback to it fails; a second redo
		countedInsert(&runs[4], "e", nil),
	)
	for i, want := range []error{nil, boom, boom, boom, nil} {
		if err := errs[i]; !errors.Is(err, want) {
			t.Errorf("write %d: %v, want %v", i, err, want)
		}
	}
	names := teamNames(t, s)
	for name, want := range map[string]bool{"blocker": true, "a": true, "c": false, "e": true} {
		if names[name] != want {
			t.Errorf("team %s committed: %v, want %v", name, names[name], want)
		}
	}
	// a ran in the first transaction and again after each rollback.
	for i, want := range []int32{3, 1, 1, 1, 1} {
		if got := runs[i].Load(); got != want {
			t.Errorf("write %d ran %d times, want %d", i, got, want)
		}
	}
	if st := s.Stats(); st.Redos != 2 || st.Commits != 1 {
		t.Errorf("Stats() = %+v, want 2 redos in 1 commit", st)
	}
}

func TestWritePanicIsAnError(t *testing.T) {
	s, _ := openTest(t, Options{})
	errs := writeBatch(t, s,
		func(tx store.Tx) error { return insertTeam(tx, "a") },
		func(tx store.Tx) error {
			if err := insertTeam(tx, "p"); err != nil {
				return err
			}
			panic("kaboom")
		},
		func(tx store.Tx) error { return insertTeam(tx, "c") },
	)
	if err := errs[0]; err != nil {
		t.Errorf("write a: %v", err)
	}
	if err := errs[1]; err == nil || !strings.Contains(err.Error(), "kaboom") {
		t.Errorf("panicking write: %v, want an error mentioning the panic", err)
	}
	if err := errs[2]; err != nil {
		t.Errorf("write c: %v", err)
	}
	// The loop still works.
	if err := s.Write(context.Background(), func(tx store.Tx) error { return insertTeam(tx, "later") }); err != nil {
		t.Errorf("write after the panic: %v", err)
	}
	names := teamNames(t, s)
	for name, want := range map[string]bool{"a": true, "p": false, "c": true, "later": true} {
		if names[name] != want {
			t.Errorf("team %s committed: %v, want %v", name, names[name], want)
		}
	}
}

func TestWriteAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aq.db")
	s, err := Open(path, Options{Schema: testSchema(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), func(tx store.Tx) error { return insertTeam(tx, "a") }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Write(context.Background(), func(tx store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Write after Close: %v, want store.ErrClosed", err)
	}
	// Reopening applies the schema again without harm and keeps the data.
	s2, err := Open(path, Options{Schema: testSchema(t)})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if !teamNames(t, s2)["a"] {
		t.Error("team a lost across reopen")
	}
}

// queryPlan returns the detail lines of EXPLAIN QUERY PLAN.
func queryPlan(t *testing.T, db *sqlx.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query("explain query plan "+q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	return out
}

func TestQueryPlans(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := context.Background()
	if err := s.Write(ctx, func(tx store.Tx) error {
		for _, n := range []string{"x", "y"} {
			if err := insertTeam(tx, n); err != nil {
				return err
			}
		}
		for i := range 50 {
			due := int64(1000 + i%10)
			task := &store.Task{ID: fmt.Sprintf("task-%03d", i), TeamID: "team-x", Status: store.StatusDelayed,
				TargetURL: "http://example.com/", Method: "POST", Headers: "{}", TimeoutMS: 1000,
				RetryBackoff: "exponential", Priority: 5, MaxWaitMS: 1000, CreatedAt: int64(i), DueAt: &due}
			if i%2 == 1 {
				task.TeamID = "team-y"
			}
			if i%5 == 0 {
				task.Status, task.DueAt = store.StatusCompleted, nil
			}
			if err := tx.InsertTask(task); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// DueBefore pages through the timer index in (due_at, id) order.
	var got []store.Timer
	afterDue, afterID := int64(0), ""
	for {
		page, err := s.DueBefore(ctx, afterDue, afterID, 1005, 7)
		if err != nil {
			t.Fatalf("DueBefore: %v", err)
		}
		got = append(got, page...)
		if len(page) < 7 {
			break
		}
		afterDue, afterID = page[len(page)-1].DueAt, page[len(page)-1].ID
	}
	// due 1000..1004 → i%10 in 0..4, minus the completed ones (i%5 == 0): i%10 in {1,2,3,4}.
	if len(got) != 20 {
		t.Errorf("DueBefore returned %d timers, want 20", len(got))
	}
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if a.DueAt > b.DueAt || (a.DueAt == b.DueAt && a.ID >= b.ID) {
			t.Errorf("DueBefore out of order at %d: %v then %v", i, a, b)
		}
	}

	// The loader's query (the same text as DueBefore) reads only the covering index.
	plan := queryPlan(t, s.rdb, `select id, due_at from tasks indexed by tasks_due_at_idx
		where due_at is not null and due_at < ? and (due_at > ? or (due_at = ? and id > ?))
		order by due_at, id limit ?`, 1005, 0, 0, "", 10)
	if !strings.Contains(strings.Join(plan, "\n"), "USING COVERING INDEX tasks_due_at_idx") {
		t.Errorf("DueBefore plan %q does not use the covering index tasks_due_at_idx", plan)
	}
	for _, d := range plan {
		if strings.Contains(d, "TEMP B-TREE") {
			t.Errorf("DueBefore plan sorts: %q", plan)
		}
	}

	// List with a team filter, with and without a status filter, never scans the table.
	cols := taskCols
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`select count(*) from tasks where team_id = ?`, []any{"team-x"}},
		{`select ` + cols + ` from tasks where team_id = ? order by id desc limit ? offset ?`, []any{"team-x", 20, 0}},
		{`select count(*) from tasks where team_id = ? and status in (?, ?)`, []any{"team-x", "delayed", "completed"}},
		{`select ` + cols + ` from tasks where team_id = ? and status in (?) order by id desc limit ? offset ?`, []any{"team-x", "delayed", 20, 0}},
		{`select ` + cols + ` from tasks where team_id = ? and created_at > ? and created_at < ? order by id desc limit ? offset ?`, []any{"team-x", 1, 40, 20, 0}},
	} {
		plan := queryPlan(t, s.rdb, q.sql, q.args...)
		ok := false
		for _, d := range plan {
			if strings.HasPrefix(d, "SCAN tasks") {
				t.Errorf("%s: plan %q scans tasks", q.sql, plan)
			}
			if strings.HasPrefix(d, "SEARCH tasks USING") && strings.Contains(d, "INDEX") && strings.Contains(d, "team_id=?") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: plan %q does not search an index by team_id", q.sql, plan)
		}
	}

	// And List itself filters by team and status, newest first.
	tasks, total, err := s.List(ctx, store.ListFilter{TeamID: "team-x", Statuses: []string{store.StatusDelayed}, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if total != 20 || len(tasks) != 5 {
		t.Errorf("List: %d tasks of %d, want 5 of 20", len(tasks), total)
	}
	for i, tk := range tasks {
		if tk.TeamID != "team-x" || tk.Status != store.StatusDelayed || (i > 0 && tk.ID >= tasks[i-1].ID) {
			t.Errorf("List row %d: %s %s %s", i, tk.ID, tk.TeamID, tk.Status)
		}
	}
}

func pragma(t *testing.T, db *sqlx.DB, name string) string {
	t.Helper()
	var v string
	if err := db.Get(&v, "pragma "+name); err != nil {
		t.Fatalf("pragma %s: %v", name, err)
	}
	return v
}

func TestPragmas(t *testing.T) {
	for _, c := range []struct {
		sync string
		want string
	}{{"", "2"}, {"full", "2"}, {"FULL", "2"}, {"normal", "1"}} {
		s, _ := openTest(t, Options{Sync: c.sync})
		// Under full the store syncs the WAL itself after each commit (syncLoop), so the
		// writer connection runs NORMAL either way.
		if s.syncWAL != (c.want == "2") {
			t.Errorf("Sync %q: syncWAL %v", c.sync, s.syncWAL)
		}
		if got := pragma(t, s.wdb, "synchronous"); got != "1" {
			t.Errorf("Sync %q writer: synchronous %s, want 1", c.sync, got)
		}
		for name, db := range map[string]*sqlx.DB{"writer": s.wdb, "reader": s.rdb} {
			if got := pragma(t, db, "journal_mode"); got != "wal" {
				t.Errorf("Sync %q %s: journal_mode %q, want wal", c.sync, name, got)
			}
			if got := pragma(t, db, "foreign_keys"); got != "1" {
				t.Errorf("Sync %q %s: foreign_keys %s, want 1", c.sync, name, got)
			}
		}
		if got := pragma(t, s.wdb, "user_version"); got != fmt.Sprint(SchemaVersion) {
			t.Errorf("user_version %s, want %d", got, SchemaVersion)
		}
		// The read pool is read-only.
		if _, err := s.rdb.Exec(`insert into teams (id, name, webhook_secret, created_at) values ('r', 'r', 's', 0)`); err == nil {
			t.Errorf("Sync %q: the read pool accepted a write", c.sync)
		}
	}
	if _, err := Open(filepath.Join(t.TempDir(), "aq.db"), Options{Schema: testSchema(t), Sync: "off"}); err == nil {
		t.Error(`Open with Sync "off" succeeded, want an error`)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	s, path := openTest(t, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := sqlx.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(fmt.Sprintf("pragma user_version = %d", SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	s2, err := Open(path, Options{Schema: testSchema(t)})
	if err == nil {
		s2.Close()
		t.Fatal("Open accepted a database with a newer schema version")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error %q does not say the schema is newer", err)
	}
	raw, err = sqlx.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var v int
	if err := raw.Get(&v, "pragma user_version"); err != nil || v != SchemaVersion+1 {
		t.Errorf("after the refused Open user_version is %d (%v), want it untouched at %d", v, err, SchemaVersion+1)
	}
}

// Under sync=full a write is acknowledged, and its AfterCommit functions run, only once the
// WAL holding it has been synced; a failed sync fails the write.
func TestAckWaitsForWALSync(t *testing.T) {
	s, _ := openTest(t, Options{Sync: "full"})
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	var fail error
	syncFile = func(f *os.File) error {
		entered <- struct{}{}
		<-release
		if fail != nil {
			return fail
		}
		return fdatasync(f)
	}
	t.Cleanup(func() { syncFile = fdatasync })

	var after atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- s.Write(context.Background(), func(tx store.Tx) error {
			tx.AfterCommit(func() { after.Store(true) })
			return insertTeam(tx, "a")
		})
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the WAL was never synced")
	}
	// Committed (readers see it) but not yet durable: neither the caller nor AfterCommit knows.
	var n int
	if err := s.rdb.Get(&n, `select count(*) from teams where name = 'a'`); err != nil || n != 1 {
		t.Fatalf("committed row: %d, %v", n, err)
	}
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Write returned (%v) before the WAL sync finished", err)
	default:
	}
	if after.Load() {
		t.Fatal("AfterCommit ran before the WAL sync finished")
	}
	release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !after.Load() {
		t.Fatal("AfterCommit did not run")
	}

	fail = errors.New("injected EIO")
	go func() { done <- s.Write(context.Background(), func(tx store.Tx) error { return insertTeam(tx, "b") }) }()
	<-entered
	release <- struct{}{}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "injected EIO") {
		t.Fatalf("Write after a failed sync: %v, want the sync error", err)
	}
}

// Under sync=normal nothing syncs the WAL after a commit.
func TestNormalDoesNotSyncWAL(t *testing.T) {
	s, _ := openTest(t, Options{Sync: "normal"})
	var calls atomic.Int32
	syncFile = func(f *os.File) error { calls.Add(1); return nil }
	t.Cleanup(func() { syncFile = fdatasync })
	if err := s.Write(context.Background(), func(tx store.Tx) error { return insertTeam(tx, "a") }); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("WAL synced %d times under normal", n)
	}
}
