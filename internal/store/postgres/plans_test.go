package postgres

import (
	"strings"
	"testing"

	"github.com/asyncqueue/asyncqueue/internal/pgtest"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// TestQueryPlans: each hot query has an index that serves it, the ordered ones without a
// sort. On a small table PostgreSQL rightly prefers a sequential scan, so sequential scans
// (and bitmap scans and sorts) are discouraged here: the plan then shows whether a fitting
// index exists, and a sort left in it cannot be avoided.
func TestQueryPlans(t *testing.T) {
	s := openTest(t, pgtest.Database(t), "node-a", Options{})
	conn, err := s.pool.Acquire(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(bg, `set enable_seqscan = off; set enable_bitmapscan = off; set enable_sort = off`); err != nil {
		t.Fatal(err)
	}
	team, id := "team", "0197b3c0-0000-7000-8000-000000000000"
	page := func(f store.PageFilter) (string, []any) {
		f.TeamID = team
		w, order := pageCond(f)
		return `select ` + rowCols + ` from tasks where ` + w.String() + ` order by id ` + order + ` limit 51`, w.args
	}
	type c struct {
		name, q string
		args    []any
		want    string // in the plan
	}
	cases := []c{
		{"task by id", qTaskByID + " for update", []any{id}, "tasks_pkey"},
		{"task by signal", qTaskBySignal + " for update", []any{[]byte{1}}, "tasks_signal_hash_idx"},
		{"task by callback", qTaskByCallback + " for update", []any{[]byte{1}}, "tasks_callback_hash_idx"},
		{"claim", qClaimTasks, []any{int64(1), "n", int64(2), []string{id}}, "tasks_pkey"},
		{"recover", qRecoverProcessing, []any{int64(1), "n"}, "tasks_claimed_by_idx"},
		{"timers", `select id, due_at from tasks where due_at is not null and due_at < $1 and (due_at, id) > ($2, $3)
			order by due_at, id limit $4`, []any{int64(9), int64(0), "", 100}, "tasks_due_at_idx"},
		{"status counts", `select status, count(*) from tasks where team_id = $1 group by status`, []any{team}, "tasks_team_id_status_id_idx"},
		{"newest id", qNewestTaskID, []any{team}, "tasks_team_id_id_idx"},
		{"oldest pending", qOldestPending, []any{team}, "tasks_team_id_status_id_idx"},
		{"expiring soonest", qExpiringSoonest, []any{team, 5}, "tasks_team_id_expires_at_idx"},
		{"finished per minute", qFinishedPerMinute, []any{team, int64(0)}, "tasks_team_id_completed_at_status_idx"},
		{"session", qAdminSession, []any{[]byte{1}, int64(0)}, "admin_sessions_pkey"},
		{"schedules due", `select id, next_run_at as due_at from schedules
			where next_run_at is not null and next_run_at >= $1 and next_run_at < $2 order by next_run_at, id`,
			[]any{int64(0), int64(9)}, "schedules_next_run_at_idx"},
		{"events", `select id from task_events where task_id = $1 order by id desc limit 10`, []any{id}, "task_events_task_id_id_idx"},
	}
	for _, f := range []store.PageFilter{{}, {Before: id}, {After: id}, {Status: "waiting", Before: id}} {
		q, a := page(f)
		cases = append(cases, c{"page", q, a, "tasks_team_id_"})
	}
	for _, c := range cases {
		rows, err := conn.Query(bg, "explain "+c.q, c.args...)
		if err != nil {
			t.Fatalf("explain %s: %v", c.name, err)
		}
		var lines []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
		rows.Close()
		p := strings.Join(lines, "\n")
		if testing.Verbose() {
			t.Logf("%s:\n%s", c.name, p)
		}
		if !strings.Contains(p, c.want) {
			t.Errorf("%s: the plan does not use %s:\n%s", c.name, c.want, p)
		}
		for _, bad := range []string{"Seq Scan", "Sort  "} {
			// The per-minute counts sort the team's finished tasks of the last hour by minute.
			if strings.Contains(p, bad) && !(bad == "Sort  " && c.name == "finished per minute") {
				t.Errorf("%s: the plan has %q:\n%s", c.name, bad, p)
			}
		}
	}
}
