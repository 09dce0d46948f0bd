package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/pgtest"
	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/store/storetest"

	"github.com/jackc/pgx/v5"
)

// eventually is the bound of every "eventually" below: generous, for a loaded machine.
const eventually = 30 * time.Second

var bg = context.Background()

func ptr[T any](v T) *T { return &v }

func taskID(i int) string { return fmt.Sprintf("00000000-0000-7000-8000-%012d", i) }

func newTask(team, id, status string) *store.Task {
	return &store.Task{ID: id, TeamID: team, Status: status, TargetURL: "https://example.com/a",
		TargetHost: "example.com", Method: "POST", Headers: `{}`, Body: ptr(`{"n":1}`),
		TimeoutMS: 30_000, MaxRetries: 3, RetryBackoff: "exponential", MaxWaitMS: 60_000, CreatedAt: 1000}
}

func mustWrite(t testing.TB, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Write(bg, fn); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func addTeam(t testing.TB, s store.Store, id string) {
	t.Helper()
	mustWrite(t, s, func(tx store.Tx) error {
		return tx.InsertTeam(&store.Team{ID: id, Name: id, WebhookSecret: "x", CreatedAt: 1})
	})
}

// twoNodes opens two stores, nodes a and b, on one fresh database.
func twoNodes(t *testing.T) (a, b *Store, url string) {
	url = pgtest.Database(t)
	return openTest(t, url, "node-a", Options{}), openTest(t, url, "node-b", Options{}), url
}

// waitChange reads s's changes until one satisfies ok, and returns all read until then.
func waitChange(t *testing.T, s *Store, what string, ok func(store.Change) bool) []store.Change {
	t.Helper()
	var seen []store.Change
	deadline := time.After(eventually)
	for {
		select {
		case c, open := <-s.Changes():
			if !open {
				t.Fatalf("%s: Changes closed", what)
			}
			seen = append(seen, c)
			if ok(c) {
				return seen
			}
		case <-deadline:
			t.Fatalf("%s: not heard within %v (heard %+v)", what, eventually, seen)
		}
	}
}

// changedIDs lists the ids of the tasks a Change names.
func changedIDs(c store.Change) []string {
	var ids []string
	for _, tc := range c.Tasks {
		ids = append(ids, tc.ID)
	}
	return ids
}

func hasTask(id string) func(store.Change) bool {
	return func(c store.Change) bool { return slices.Contains(changedIDs(c), id) }
}

// Two nodes claim the same 200 tasks at once, each from several goroutines: every task is
// claimed exactly once, and held by the node that claimed it.
func TestConcurrentClaims(t *testing.T) {
	a, b, _ := twoNodes(t)
	addTeam(t, a, "t")
	const n = 200
	var tasks []*store.Task
	for i := range n {
		tasks = append(tasks, newTask("t", taskID(i), store.StatusPending))
	}
	mustWrite(t, a, func(tx store.Tx) error {
		for _, task := range tasks {
			if err := tx.InsertTask(task); err != nil {
				return err
			}
		}
		return nil
	})
	var mu sync.Mutex
	claims := map[string][]string{} // task → nodes that claimed it
	busy := 0                       // claims that found the row locked
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		s := []*Store{a, b}[g%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			order := rand.Perm(n)
			for _, i := range order {
				var got *store.Task
				claim := func(tx store.Tx) error {
					got = nil
					var err error
					got, err = storetest.ClaimOne(tx, taskID(i), 5000)
					return err
				}
				err := s.Write(bg, claim)
				for errors.Is(err, store.ErrStale) { // another claim holds the row: it may yet let go
					mu.Lock()
					busy++
					mu.Unlock()
					err = s.Write(bg, claim)
				}
				if store.IsNotFound(err) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				claims[got.ID] = append(claims[got.ID], s.Node())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a claim failed: %v", err)
	}
	for i := range n {
		if got := claims[taskID(i)]; len(got) != 1 {
			t.Fatalf("task %d was claimed by %v, want exactly one node", i, got)
		}
	}
	t.Logf("%d claims found their row locked (ErrStale) and tried again", busy)
	rows, err := a.pool.Query(bg, `select id, status, attempts, claimed_by, due_at from tasks`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID        string `db:"id"`
		Status    string `db:"status"`
		Attempts  int    `db:"attempts"`
		ClaimedBy string `db:"claimed_by"`
		DueAt     int64  `db:"due_at"`
	}
	stored, err := pgx.CollectRows(rows, pgx.RowToStructByName[row])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range stored {
		want := 5000 + 30_000 + store.LeaseSlack.Milliseconds()
		if r.Status != store.StatusProcessing || r.Attempts != 1 || r.ClaimedBy != claims[r.ID][0] || r.DueAt != want {
			t.Fatalf("task %s as stored: %+v; want processing, 1 attempt, held by %s until %d", r.ID, r, claims[r.ID][0], want)
		}
	}
}

// A commit on one node reaches the other as a Change naming what it changed, and never
// comes back to the node that made it.
func TestChangesReachOtherNodes(t *testing.T) {
	a, b, _ := twoNodes(t)
	addTeam(t, a, "t")
	waitChange(t, b, "a new team", func(c store.Change) bool { return c.Config })

	mustWrite(t, a, func(tx store.Tx) error { return tx.InsertTask(newTask("t", taskID(1), store.StatusPending)) })
	waitChange(t, b, "a's new task", hasTask(taskID(1)))
	// A claim reaches b with the task's new status and timer (the lease), so b need not
	// read it back.
	mustWrite(t, a, func(tx store.Tx) error {
		if err := tx.InsertTask(newTask("t", taskID(4), store.StatusPending)); err != nil {
			return err
		}
		_, err := storetest.ClaimOne(tx, taskID(4), 1000)
		return err
	})
	waitChange(t, b, "a's claim, as it left the task", func(c store.Change) bool {
		for _, tc := range c.Tasks {
			if tc.ID == taskID(4) {
				lease := 1000 + 30_000 + store.LeaseSlack.Milliseconds()
				if tc.Status != store.StatusProcessing || tc.DueAt == nil || *tc.DueAt != lease {
					t.Fatalf("a's claim reached b as %+v, want processing due %d", tc, lease)
				}
				return true
			}
		}
		return false
	})

	mustWrite(t, a, func(tx store.Tx) error {
		return tx.PutFlow(&store.Flow{TeamID: "t", Key: "api", Parallelism: ptr(2), UpdatedAt: 1})
	})
	waitChange(t, b, "a's flow", func(c store.Change) bool {
		return slices.Contains(c.Flows, store.FlowKey{TeamID: "t", Key: "api"})
	})
	mustWrite(t, a, func(tx store.Tx) error { return tx.PauseFlowUntil("t", "other", 900, 2) })
	waitChange(t, b, "a's flow pause", func(c store.Change) bool {
		return slices.Contains(c.Flows, store.FlowKey{TeamID: "t", Key: "other"})
	})
	mustWrite(t, a, func(tx store.Tx) error { return tx.RotateSecret("t", "y", 10) })
	waitChange(t, b, "a's secret rotation", func(c store.Change) bool { return c.Config })
	mustWrite(t, a, func(tx store.Tx) error {
		return tx.InsertVaultToken(&store.VaultToken{ID: "tok_1", TeamID: "t", Name: "n", Sealed: []byte{1}, CreatedAt: 1})
	})
	waitChange(t, b, "a's vault token", func(c store.Change) bool { return c.Config })

	// A failed write tells nobody; b's write reaches a, and a heard nothing of its own.
	mustWrite(t, a, func(tx store.Tx) error {
		got, err := tx.Task(taskID(1))
		if err != nil {
			return err
		}
		got.Status = store.StatusCancelled
		return tx.UpdateTask(got, store.StatusPending)
	})
	boom := errors.New("boom")
	if err := a.Write(bg, func(tx store.Tx) error {
		if err := tx.InsertTask(newTask("t", taskID(3), store.StatusPending)); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("a failing write returned %v", err)
	}
	mustWrite(t, b, func(tx store.Tx) error { return tx.InsertTask(newTask("t", taskID(2), store.StatusPending)) })
	seen := waitChange(t, a, "b's new task", hasTask(taskID(2)))
	for _, c := range seen {
		if slices.Contains(changedIDs(c), taskID(1)) || c.Config || len(c.Flows) > 0 {
			t.Fatalf("a heard its own commit: %+v", c)
		}
	}
	seen = waitChange(t, b, "a's update of the task", hasTask(taskID(1)))
	for _, c := range seen {
		if slices.Contains(changedIDs(c), taskID(3)) {
			t.Fatalf("b heard of a's failed write: %+v", c)
		}
	}
}

// A batch that changes more tasks than one notification holds reaches the other node whole.
func TestLargeChange(t *testing.T) {
	a, b, _ := twoNodes(t)
	addTeam(t, a, "t")
	const n = 600 // about three notifications' worth of ids
	mustWrite(t, a, func(tx store.Tx) error {
		for i := range n {
			if err := tx.InsertTask(newTask("t", taskID(i), store.StatusPending)); err != nil {
				return err
			}
		}
		return nil
	})
	heard := map[string]bool{}
	waitChange(t, b, "all the tasks", func(c store.Change) bool {
		for _, id := range changedIDs(c) {
			heard[id] = true
		}
		return len(heard) == n
	})
}

func TestPayloadsFitAndCoverAll(t *testing.T) {
	b := &batch{config: true}
	due := func(ms int64) *int64 { return &ms }
	for i := range 1000 {
		b.states = append(b.states, store.TaskChange{ID: taskID(i), Status: store.StatusPending, DueAt: due(int64(i))})
	}
	// A task changed twice is named once, as the batch left it.
	b.states = append(b.states, store.TaskChange{ID: taskID(5), Status: store.StatusCompleted})
	b.flows = []store.FlowKey{{TeamID: "t", Key: "k"}, {TeamID: "t", Key: strings.Repeat("x", 9000)}}
	ps := payloads("node-a", b)
	ids := map[string]int{}
	var flows, config, resync int
	for _, p := range ps {
		if len(p) >= 8000 {
			t.Fatalf("a payload of %d bytes", len(p))
		}
		var pl payload
		if err := jsonUnmarshal(p, &pl); err != nil {
			t.Fatal(err)
		}
		if pl.Node != "node-a" {
			t.Fatalf("payload names node %q", pl.Node)
		}
		for _, n := range pl.Tasks {
			tc, ok := n.change()
			if !ok {
				t.Fatalf("a task note does not decode: %v", n)
			}
			ids[tc.ID]++
			switch {
			case tc.ID == taskID(5):
				if tc.Status != store.StatusCompleted || tc.DueAt != nil {
					t.Fatalf("task 5 as %+v, want its last state (completed, no timer)", tc)
				}
			case tc.Status != store.StatusPending || tc.DueAt == nil || taskID(int(*tc.DueAt)) != tc.ID:
				t.Fatalf("a task note came back as %+v", tc)
			}
		}
		flows += len(pl.Flows)
		if pl.Config {
			config++
		}
		if pl.Resync {
			resync++
		}
	}
	if len(ids) != 1000 || ids[taskID(5)] != 1 || flows != 1 || config != 1 || resync != 1 {
		t.Fatalf("%d payloads carry %d ids (task 5 %d times), %d flows, config %d times, resync %d times",
			len(ps), len(ids), ids[taskID(5)], flows, config, resync)
	}
	if payloads("node-a", &batch{}) != nil {
		t.Fatal("a batch that changed nothing notifies")
	}
}

// A reader that does not keep up loses the backlog for one Change with Resync set.
func TestDeliverOverflow(t *testing.T) {
	s := &Store{changes: make(chan store.Change, changeBuffer)}
	heard := make(chan store.Change)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.deliver(heard)
	}()
	ids := make([]store.TaskChange, 100)
	for i := range ids {
		ids[i] = store.TaskChange{ID: taskID(i), Status: store.StatusPending}
	}
	const sent = 3000 // far more than the buffer and a merged backlog hold
	for range sent {
		heard <- store.Change{Tasks: ids}
	}
	close(heard)
	<-done
	resync, delivered := false, 0
	for c := range s.changes {
		resync = resync || c.Resync
		delivered += len(c.Tasks)
	}
	if !resync || delivered >= sent*len(ids) {
		t.Fatalf("a reader that read nothing while %d changes came got resync %v and %d of their %d ids; want a Resync and the backlog dropped",
			sent, resync, delivered, sent*len(ids))
	}
}

// RecoverProcessing returns only this node's claims to pending.
func TestRecoverOwnClaimsOnly(t *testing.T) {
	a, b, _ := twoNodes(t)
	addTeam(t, a, "t")
	mustWrite(t, a, func(tx store.Tx) error {
		if err := tx.InsertTask(newTask("t", taskID(1), store.StatusProcessing)); err != nil { // held by a
			return err
		}
		return tx.InsertTask(newTask("t", taskID(2), store.StatusPending))
	})
	mustWrite(t, b, func(tx store.Tx) error { _, err := storetest.ClaimOne(tx, taskID(2), 100); return err })
	// A task moved to processing by an update is held by the node that moved it.
	mustWrite(t, b, func(tx store.Tx) error { return tx.InsertTask(newTask("t", taskID(3), store.StatusPending)) })
	mustWrite(t, b, func(tx store.Tx) error {
		got, err := tx.Task(taskID(3))
		if err != nil {
			return err
		}
		got.Status = store.StatusProcessing
		return tx.UpdateTask(got, store.StatusPending)
	})
	var n int64
	mustWrite(t, a, func(tx store.Tx) error {
		var err error
		n, err = tx.RecoverProcessing(500)
		return err
	})
	if n != 1 {
		t.Fatalf("a recovered %d tasks, want its own 1", n)
	}
	waitChange(t, b, "a's recovered task", hasTask(taskID(1)))
	for id, want := range map[string]string{taskID(1): store.StatusPending, taskID(2): store.StatusProcessing, taskID(3): store.StatusProcessing} {
		got, err := a.Task(bg, id)
		if err != nil || got.Status != want {
			t.Fatalf("task %s after a's recovery: %v, %v; want %s", id, got, err, want)
		}
	}
	var claimedBy *string
	if err := a.pool.QueryRow(bg, `select claimed_by from tasks where id = $1`, taskID(1)).Scan(&claimedBy); err != nil || claimedBy != nil {
		t.Fatalf("a recovered task is still held by %v (%v)", claimedBy, err)
	}
	mustWrite(t, b, func(tx store.Tx) error {
		var err error
		n, err = tx.RecoverProcessing(600)
		return err
	})
	if n != 2 {
		t.Fatalf("b recovered %d tasks, want its 2", n)
	}
}

// Several nodes starting at once on an empty database all open it; a newer schema is refused.
func TestOpenRace(t *testing.T) {
	url := pgtest.Database(t)
	const n = 4
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(bg, Options{URL: url, Node: fmt.Sprint("node-", i), Schema: testSchema(t)})
			if err == nil {
				err = s.Write(bg, func(tx store.Tx) error {
					return tx.InsertTeam(&store.Team{ID: fmt.Sprint("t", i), Name: fmt.Sprint("t", i), WebhookSecret: "x", CreatedAt: 1})
				})
				s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a node starting with the others: %v", err)
		}
	}
	s := openTest(t, url, "node-x", Options{})
	if _, err := s.pool.Exec(bg, `update schema_version set version = version + 1`); err != nil {
		t.Fatal(err)
	}
	_, err := Open(bg, Options{URL: url, Node: "node-y", Schema: testSchema(t)})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v, want a refusal", err)
	}
}

// Nodes lists the live nodes; a closed one is gone at once.
func TestNodes(t *testing.T) {
	a, b, _ := twoNodes(t)
	if got, err := a.Nodes(bg); err != nil || !slices.Equal(got, []string{"node-a", "node-b"}) {
		t.Fatalf("Nodes = %v, %v", got, err)
	}
	b.Close()
	if got, err := a.Nodes(bg); err != nil || !slices.Equal(got, []string{"node-a"}) {
		t.Fatalf("Nodes after b closed = %v, %v", got, err)
	}
	// A node that stopped beating without closing drops out after the liveness window.
	if _, err := a.pool.Exec(bg, `insert into nodes (id, started_at, seen_at) values ('node-c', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Nodes(bg); err != nil || slices.Contains(got, "node-c") {
		t.Fatalf("Nodes with a long-silent node = %v, %v", got, err)
	}
	// A command is no node.
	cmd := openTest(t, a.opts.URL, "cli-1", Options{Command: true})
	mustWrite(t, cmd, func(tx store.Tx) error {
		return tx.InsertTeam(&store.Team{ID: "t", Name: "t", WebhookSecret: "x", CreatedAt: 1})
	})
	if got, err := a.Nodes(bg); err != nil || !slices.Equal(got, []string{"node-a"}) {
		t.Fatalf("Nodes with a command open = %v, %v", got, err)
	}
	waitChange(t, a, "the command's new team", func(c store.Change) bool { return c.Config })
	cmd.Close()
	if _, open := <-cmd.Changes(); open {
		t.Fatal("a command has an open Changes channel")
	}
	if a.Node() != "node-a" {
		t.Fatalf("Node = %q", a.Node())
	}
}

// Open against a port nobody listens on fails with an error naming the server, and
// ErrUnavailable; the password is not in it.
func TestOpenClosedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(bg, eventually)
	defer cancel()
	_, err = Open(ctx, Options{URL: "postgres://aq:secret-pw@" + addr + "/db?sslmode=disable", Node: "n", Schema: "x"})
	if err == nil || !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), addr) ||
		strings.Contains(err.Error(), "secret-pw") {
		t.Fatalf("Open of a closed port: %v; want ErrUnavailable naming %s without the password", err, addr)
	}
	t.Log(err)
}

// Connections killed under writes: each write succeeds (retried on a new connection) or
// fails with ErrUnavailable, and nothing is half-written. The listener reconnects and says
// Resync.
func TestKilledConnections(t *testing.T) {
	url := pgtest.Database(t)
	a := openTest(t, url, "node-a", Options{MaxConns: 4})
	addTeam(t, a, "t")
	admin, err := pgx.Connect(bg, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(bg)
	kill := func() {
		t.Helper()
		if _, err := admin.Exec(bg, `select pg_terminate_backend(pid) from pg_stat_activity
			where datname = current_database() and pid <> pg_backend_pid() and application_name = 'asyncqueue node-a'`); err != nil {
			t.Fatal(err)
		}
	}
	const writers, each = 4, 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := map[string]bool{}
	bad := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := taskID(w*1000 + i)
				err := a.Write(bg, func(tx store.Tx) error {
					if err := tx.InsertTask(newTask("t", id, store.StatusPending)); err != nil {
						return err
					}
					return tx.InsertAttempt(store.Attempt{TaskID: id, Attempt: 1, StartedAt: 1, DurationMS: 1})
				})
				switch {
				case err == nil:
					mu.Lock()
					ok[id] = true
					mu.Unlock()
				case !errors.Is(err, store.ErrUnavailable):
					bad <- err
				}
			}
		}()
	}
	for range 5 {
		kill()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	close(bad)
	for err := range bad {
		t.Errorf("a write during killed connections failed with %v, want success or ErrUnavailable", err)
	}
	// Read back on the test's own connection: the pool may still hold a connection the
	// last kill ended, which fails its next statement (the pool drops it then).
	for id := range ok {
		var n int
		if err := admin.QueryRow(bg, `select count(*) from tasks where id = $1`, id).Scan(&n); err != nil || n != 1 {
			t.Fatalf("task %s was reported written, but %d rows hold it (%v)", id, n, err)
		}
	}
	var half int
	if err := admin.QueryRow(bg, `select count(*) from tasks t where not exists (select 1 from attempts a where a.task_id = t.id)`).Scan(&half); err != nil || half != 0 {
		t.Fatalf("%d tasks without the attempt written with them (%v)", half, err)
	}
	waitChange(t, a, "a resync after the listener's connection was killed", func(c store.Change) bool { return c.Resync })
	// And the store goes on working.
	mustWrite(t, a, func(tx store.Tx) error { return tx.InsertTask(newTask("t", taskID(99999), store.StatusPending)) })
	if a.Stats().Retries == 0 {
		t.Log("no batch needed a retry (the kills fell between writes)")
	}
}

// A write whose statement fails (a duplicate id) in a batch with others fails alone: the
// batch is redone without it.
func TestBatchRedo(t *testing.T) {
	s := openTest(t, pgtest.Database(t), "node-a", Options{Writers: 1})
	addTeam(t, s, "t")
	mustWrite(t, s, func(tx store.Tx) error { return tx.InsertTask(newTask("t", taskID(0), store.StatusPending)) })
	// Hold the writer so that the writes below queue up and share one batch.
	hold := make(chan struct{})
	held := make(chan struct{})
	s.WriteAsync(func(tx store.Tx) error { close(held); <-hold; return nil }, func(error) {})
	<-held
	const n = 20
	errs := make([]chan error, n)
	for i := range n {
		errs[i] = make(chan error, 1)
		id := taskID(i + 1)
		if i == n/2 {
			id = taskID(0) // a duplicate
		}
		s.WriteAsync(func(tx store.Tx) error { return tx.InsertTask(newTask("t", id, store.StatusPending)) },
			func(err error) { errs[i] <- err })
	}
	close(hold)
	for i := range n {
		err := <-errs[i]
		if (i == n/2) != (err != nil) {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	counts, err := s.StatusCounts(bg, "t")
	if err != nil || counts[store.StatusPending] != n {
		t.Fatalf("counts = %v, %v; want %d pending", counts, err, n)
	}
	if s.Stats().Redos == 0 {
		t.Fatal("no batch was redone")
	}
}

// BenchmarkWrite measures small writes (one task inserted each) from many callers at once:
// the writers batch them into shared transactions. Sub-benchmarks vary how many write
// transactions run at once.
func BenchmarkWrite(b *testing.B) {
	for _, writers := range []int{1, 2, DefaultWriters} {
		b.Run(fmt.Sprint("writers=", writers), func(b *testing.B) { benchmarkWrite(b, writers) })
	}
}

func benchmarkWrite(b *testing.B, writers int) {
	s := openTest(b, pgtest.Database(b), "node-a", Options{Writers: writers})
	addTeam(b, s, "t")
	var next sync.Mutex
	i := 0
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			next.Lock()
			i++
			id := taskID(i)
			next.Unlock()
			if err := s.Write(bg, func(tx store.Tx) error { return tx.InsertTask(newTask("t", id, store.StatusPending)) }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	st := s.Stats()
	b.ReportMetric(float64(st.Requests)/float64(max(st.Commits, 1)), "writes/commit")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// BenchmarkClaimComplete measures a task's hot path on the store: claim, then the outcome
// written, as two writes, from many callers at once.
func BenchmarkClaimComplete(b *testing.B) {
	s := openTest(b, pgtest.Database(b), "node-a", Options{})
	addTeam(b, s, "t")
	const batch = 1000
	for from := 0; from < b.N; from += batch {
		mustWrite(b, s, func(tx store.Tx) error {
			for i := from; i < min(from+batch, b.N); i++ {
				if err := tx.InsertTask(newTask("t", taskID(i), store.StatusPending)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var next sync.Mutex
	i := 0
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			next.Lock()
			id := taskID(i)
			i++
			next.Unlock()
			var claimed *store.Task
			err := s.Write(bg, func(tx store.Tx) error {
				var err error
				claimed, err = storetest.ClaimOne(tx, id, 10)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			done := *claimed
			done.Status, done.Result, done.CompletedAt, done.DueAt = store.StatusCompleted, ptr(`{}`), ptr[int64](20), nil
			if err := s.Write(bg, func(tx store.Tx) error { return tx.UpdateTaskFrom(claimed, &done) }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// Two nodes at once: start-ups that make the first team when there is none make one, and
// requests with the same Idempotency-Key make one task.
func TestCheckThenInsertAcrossNodes(t *testing.T) {
	a, b, _ := twoNodes(t)
	const n = 16
	race := func(fn func(s *Store, i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			s := []*Store{a, b}[i%2]
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- fn(s, i)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("a write: %v", err)
			}
		}
	}
	race(func(s *Store, i int) error {
		return s.Write(bg, func(tx store.Tx) error {
			count, err := tx.CountTeams()
			if err != nil || count > 0 {
				return err
			}
			return tx.InsertTeam(&store.Team{ID: fmt.Sprint("first-", i), Name: fmt.Sprint("first-", i), WebhookSecret: "x", CreatedAt: 1})
		})
	})
	teams, err := a.Teams(bg)
	if err != nil || len(teams) != 1 {
		t.Fatalf("teams = %+v, %v; want one first team", teams, err)
	}
	tm := teams[0].ID
	race(func(s *Store, i int) error {
		return s.Write(bg, func(tx store.Tx) error {
			if _, err := tx.Idempotency(tm, "key", 0); !store.IsNotFound(err) {
				return err // found (nil), or a failure
			}
			if err := tx.InsertTask(newTask(tm, taskID(i), store.StatusPending)); err != nil {
				return err
			}
			return tx.PutIdempotency(&store.Idempotency{TeamID: tm, Key: "key", RequestHash: []byte{1}, TaskID: taskID(i), CreatedAt: 5})
		})
	})
	counts, err := a.StatusCounts(bg, tm)
	if err != nil || counts[store.StatusPending] != 1 {
		t.Fatalf("tasks made for one Idempotency-Key: %v, %v; want 1", counts, err)
	}
}

// OnCommit gets the ids of the tasks a commit changed, before the writes' AfterCommit
// functions run; not for a failed write.
func TestOnCommit(t *testing.T) {
	var mu sync.Mutex
	var events []string
	s := openTest(t, pgtest.Database(t), "node-a", Options{OnCommit: func(ids []string) {
		mu.Lock()
		events = append(events, "commit "+strings.Join(ids, ","))
		mu.Unlock()
	}})
	addTeam(t, s, "t")
	s.Write(bg, func(tx store.Tx) error {
		tx.AfterCommit(func() { t.Error("AfterCommit of a failed write ran") })
		tx.InsertTask(newTask("t", taskID(9), store.StatusPending))
		return errors.New("no")
	})
	mustWrite(t, s, func(tx store.Tx) error {
		tx.AfterCommit(func() {
			mu.Lock()
			events = append(events, "after")
			mu.Unlock()
		})
		return tx.InsertTask(newTask("t", taskID(1), store.StatusPending))
	})
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"commit " + taskID(1), "after"}; !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
}

// A node whose lease ended writes its call's outcome late: the task was claimed again by
// another node meanwhile (processing both times), and the late outcome must not land on it.
func TestLateOutcomeAfterReclaim(t *testing.T) {
	a, b, _ := twoNodes(t)
	addTeam(t, a, "t")
	mustWrite(t, a, func(tx store.Tx) error { return tx.InsertTask(newTask("t", taskID(1), store.StatusPending)) })
	var claimedByA *store.Task
	mustWrite(t, a, func(tx store.Tx) (err error) { claimedByA, err = storetest.ClaimOne(tx, taskID(1), 100); return err })
	// The lease ended: b returns the task to pending and claims it again.
	mustWrite(t, b, func(tx store.Tx) error {
		cur, err := tx.Task(taskID(1))
		if err != nil {
			return err
		}
		cur.Status, cur.DueAt = store.StatusPending, ptr(int64(200))
		return tx.UpdateTask(cur, store.StatusProcessing)
	})
	mustWrite(t, b, func(tx store.Tx) error { _, err := storetest.ClaimOne(tx, taskID(1), 300); return err })

	done := *claimedByA
	done.Status, done.DueAt = store.StatusCompleted, nil
	for name, write := range map[string]func(store.Tx) error{
		"UpdateTaskFrom":     func(tx store.Tx) error { return tx.UpdateTaskFrom(claimedByA, &done) },
		"UpdateTaskNoSignal": func(tx store.Tx) error { return tx.UpdateTaskNoSignal(claimedByA, &done) },
	} {
		if err := a.Write(bg, write); !errors.Is(err, store.ErrStale) {
			t.Errorf("%s of a's late outcome: %v, want ErrStale", name, err)
		}
	}
	got, err := a.Task(bg, taskID(1))
	if err != nil || got.Status != store.StatusProcessing || got.Attempts != 2 {
		t.Fatalf("after the late outcome: %+v, %v; want b's claim (processing, attempt 2)", got, err)
	}
}

// The first value stored under a name stays; every node, racing or later, reads it back.
func TestAgree(t *testing.T) {
	a, b, _ := twoNodes(t)
	var wg sync.WaitGroup
	got := make([]string, 8)
	errs := make([]error, 8)
	for i := range got {
		s := []*Store{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = s.Agree(bg, "k", fmt.Sprintf("v%d", i))
		}()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("racing nodes agreed on %q (%v), want all on one value: %q", got[i], errs[i], got)
		}
	}
	if v, err := b.Agree(bg, "k", "later"); err != nil || v != got[0] {
		t.Fatalf("a later node read %q, %v; want the first value %q", v, err, got[0])
	}
}

// A due task whose row another transaction holds is skipped and named busy, not waited for.
func TestClaimTasksSkipsLocked(t *testing.T) {
	a, _, _ := twoNodes(t)
	addTeam(t, a, "t")
	mustWrite(t, a, func(tx store.Tx) error {
		for i := range 3 {
			if err := tx.InsertTask(newTask("t", taskID(i), store.StatusPending)); err != nil {
				return err
			}
		}
		return nil
	})
	other, err := a.pool.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(bg)
	if _, err := other.Exec(bg, `select id from tasks where id = $1 for update`, taskID(1)); err != nil {
		t.Fatal(err)
	}
	var claimed []*store.Task
	var busy []string
	mustWrite(t, a, func(tx store.Tx) (err error) {
		claimed, busy, err = tx.ClaimTasks([]string{taskID(0), taskID(1), taskID(2)}, 100)
		return err
	})
	if len(claimed) != 2 || !slices.Equal(busy, []string{taskID(1)}) {
		t.Fatalf("claimed %d, busy %v; want 2 claimed and the locked one busy", len(claimed), busy)
	}
}
