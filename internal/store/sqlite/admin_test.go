package sqlite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

func adminTestStore(t *testing.T) *Store {
	t.Helper()
	schema, err := os.ReadFile(filepath.Join("..", "..", "..", "schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Join(t.TempDir(), "aq.db"), Options{Schema: string(schema), Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// plan returns the EXPLAIN QUERY PLAN lines of q.
func plan(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.rdb.Queryx("explain query plan "+q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}

// TestAdminQueryPlans: every admin page query is an index range, never a scan of the table
// and never a sort of all the team's tasks.
func TestAdminQueryPlans(t *testing.T) {
	t.Parallel()
	s := adminTestStore(t)
	team, id := "team", "0197b3c0-0000-7000-8000-000000000000"
	page := func(f store.PageFilter) (string, []any) {
		cond, args, order := pageCond(f)
		return `select ` + rowCols + ` from tasks where ` + cond + ` order by id ` + order + ` limit ?`, append(args, 51)
	}
	search := func(f store.PageFilter) (string, []any) {
		cond, args, order := pageCond(f)
		return searchQuery(cond, order), append(args, 1000, "%x%", "%x%", "%x%", 51)
	}
	type c struct {
		name string
		q    string
		args []any
		want []string
	}
	var cases []c
	add := func(name string, q string, args []any, want ...string) { cases = append(cases, c{name, q, args, want}) }
	q, a := page(store.PageFilter{TeamID: team})
	add("first page", q, a, "USING INDEX tasks_team_id_id_idx (team_id=?)")
	q, a = page(store.PageFilter{TeamID: team, Before: id})
	add("older page", q, a, "USING INDEX tasks_team_id_id_idx (team_id=? AND id<?)")
	q, a = page(store.PageFilter{TeamID: team, After: id})
	add("newer page", q, a, "USING INDEX tasks_team_id_id_idx (team_id=? AND id>?)")
	q, a = page(store.PageFilter{TeamID: team, Status: "waiting", Before: id})
	add("status page", q, a, "USING INDEX tasks_team_id_status_id_idx (team_id=? AND status=? AND id<?)")
	q, a = page(store.PageFilter{TeamID: team, Search: id, SearchIsID: true})
	add("id search", q, a, "USING INDEX")
	q, a = search(store.PageFilter{TeamID: team, Search: "x", Before: id})
	add("url search", q, a, "tasks_team_id_id_idx (team_id=? AND id<?)")
	q, a = search(store.PageFilter{TeamID: team, Status: "failed", Search: "x"})
	add("url search with status", q, a, "tasks_team_id_status_id_idx (team_id=? AND status=?)")
	q, a = page(store.PageFilter{TeamID: team, Statuses: []string{"failed", "timeout"}, CreatedFrom: 1, CreatedTo: 2})
	add("several statuses, time range", q, a, "USING INDEX tasks_team_id_id_idx (team_id=? AND id>? AND id<?)")
	add("newest id", qNewestTaskID, []any{team}, "COVERING INDEX tasks_team_id_id_idx (team_id=?)")
	add("created per minute", qCreatedPerMinute, []any{team, id, 0}, "USING INDEX tasks_team_id_id_idx (team_id=? AND id>?)")
	add("finished per minute", qFinishedPerMinute, []any{team, 0},
		"COVERING INDEX tasks_team_id_completed_at_status_idx (team_id=? AND completed_at>?)")
	add("oldest pending", qOldestPending, []any{team}, "USING INDEX tasks_team_id_status_id_idx (team_id=? AND status=?)")
	add("expiring soonest", qExpiringSoonest, []any{team, 5}, "USING INDEX tasks_team_id_expires_at_idx (team_id=?)")
	add("session", qAdminSession, []any{[]byte{1}, 0}, "SEARCH s USING PRIMARY KEY (id_hash=?)")

	for _, c := range cases {
		p := plan(t, s, c.q, c.args...)
		if testing.Verbose() {
			t.Logf("%s:\n%s", c.name, p)
		}
		for _, w := range c.want {
			if !strings.Contains(p, w) {
				t.Errorf("%s: plan lacks %q:\n%s", c.name, w, p)
			}
		}
		for _, bad := range []string{"SCAN tasks\n", "USE TEMP B-TREE FOR ORDER BY"} {
			if strings.Contains(p+"\n", bad) && c.name != "url search" && c.name != "url search with status" {
				t.Errorf("%s: plan has %q:\n%s", c.name, strings.TrimSpace(bad), p)
			}
		}
	}
}

func TestAdminMinUUIDv7(t *testing.T) {
	t.Parallel()
	// 2026-01-01T00:00:00Z = 1767225600000 ms = 0x019b_76da_a800.
	if got, want := store.MinUUIDv7(1767225600000), "019b76da-a800-0000-0000-000000000000"; got != want {
		t.Fatalf("MinUUIDv7 = %s, want %s", got, want)
	}
	if got := store.MinUUIDv7(-5); got != "00000000-0000-0000-0000-000000000000" {
		t.Fatalf("store.MinUUIDv7(-5) = %s", got)
	}
}
