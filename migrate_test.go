package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/pgtest"
	"github.com/asyncqueue/asyncqueue/internal/vault"
)

// TestMigrate moves a SQLite database written by the real binary (tasks in every state, a
// vault token, a flow, a schedule, events, attempts) into PostgreSQL, checks the copy row by
// row, then runs a server on it with the SQLite database's vault key.
func TestMigrate(t *testing.T) {
	sqliteOnly(t, "its source is a SQLite database")
	pg := pgtest.Database(t) // skipped without PostgreSQL (a failure under CI)
	t.Parallel()

	const vaultValue = "Bearer migrated-vault-value-77"
	var mu sync.Mutex
	hung := map[string]bool{} // the /hang task's first call never ends
	authSeen := map[string]string{}
	target := newE2ETarget(t, func(x *e2eTarget, hit e2eHit, w http.ResponseWriter, r *http.Request) {
		id := hit.Header.Get("X-AsyncQueue-Task-Id")
		mu.Lock()
		authSeen[id] = hit.Header.Get("Authorization")
		first := !hung[id]
		hung[id] = true
		mu.Unlock()
		switch hit.Path {
		case "/fail":
			w.WriteHeader(500)
			return
		case "/hang":
			if first {
				select {
				case <-r.Context().Done():
				case <-x.quit:
				}
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	})

	db := filepath.Join(t.TempDir(), "aq.db")
	s := startServer(t, db)
	create := func(body map[string]any, headers ...string) string {
		t.Helper()
		r := s.call("POST", "/v1/tasks", body, headers...)
		if r.Status != 201 {
			t.Fatalf("create %v: %d %s", body, r.Status, r.Raw)
		}
		return r.task()["id"].(string)
	}
	completed := create(map[string]any{"targetUrl": target.URL + "/ok"}, "Idempotency-Key", "migrate-1")
	failed := create(map[string]any{"targetUrl": target.URL + "/fail", "maxRetries": 0})
	delayed := create(map[string]any{"targetUrl": target.URL + "/ok", "delay": 3600})
	cancelled := create(map[string]any{"targetUrl": target.URL + "/ok", "delay": 3600})
	if r := s.call("POST", "/v1/tasks/"+cancelled+"/cancel", nil); r.Status != 200 {
		t.Fatalf("cancel: %d %s", r.Status, r.Raw)
	}
	waiting, token, _ := e2eWaitingTask(t, s, target.URL+"/ok", map[string]any{"maxWaitTime": 3600})
	if r := s.call("POST", "/v1/signals/"+token+"/heartbeat", map[string]any{"progress": 40}, sigNoKey...); r.Status != 200 {
		t.Fatalf("heartbeat: %d %s", r.Status, r.Raw)
	}
	r := s.call("POST", "/v1/tokens", map[string]any{"name": "provider", "value": vaultValue})
	if r.Status != 201 {
		t.Fatalf("create vault token: %d %s", r.Status, r.Raw)
	}
	tokID := r.Body["token"].(map[string]any)["id"].(string)
	if r := s.call("PUT", "/v1/flows/migrated-flow", map[string]any{"parallelism": 3, "ratePerSecond": 2.5}); r.Status != 200 {
		t.Fatalf("set flow: %d %s", r.Status, r.Raw)
	}
	if r := s.call("POST", "/v1/flows/migrated-flow/pause", nil); r.Status != 200 {
		t.Fatalf("pause flow: %d %s", r.Status, r.Raw)
	}
	r = s.call("POST", "/v1/schedules", map[string]any{"every": "1h", "task": map[string]any{"targetUrl": target.URL + "/ok"}})
	if r.Status != 201 {
		t.Fatalf("create schedule: %d %s", r.Status, r.Raw)
	}
	schedule := r.Body["schedule"].(map[string]any)["id"].(string)
	s.waitStatus(completed, "completed", 20*time.Second)
	s.waitStatus(failed, "failed", 20*time.Second)
	processing := create(map[string]any{"targetUrl": target.URL + "/hang", "timeout": 600})
	s.waitStatus(processing, "processing", 20*time.Second)

	// A database a server runs on is refused.
	if _, errOut, code := aqtCLI(t, "migrate", "--from", db, "--to", pg); code == 0 || !strings.Contains(errOut, "stop it first") {
		t.Fatalf("migrate while the server runs: exit %d, %s; want a refusal saying to stop it", code, errOut)
	}
	s.kill() // the /hang call is caught mid-call

	out, errOut, code := aqtCLI(t, "migrate", "--from", db, "--to", pg)
	if code != 0 {
		t.Fatalf("migrate: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("migrate:\n%s", out)
	key, err := vault.ReadKeyFile(db + ".vault-key")
	if err != nil {
		t.Fatal(err)
	}
	keyHex := hex.EncodeToString(key)
	if !strings.Contains(out, "--vault-key "+keyHex) {
		t.Errorf("migrate's output does not give the flag --vault-key %s:\n%s", keyHex, out)
	}
	if !strings.Contains(out, "1 tasks caught mid-call") {
		t.Errorf("migrate's output does not count the task caught mid-call:\n%s", out)
	}

	// Every table has as many rows on both sides (the command checks it too; this checks the command).
	src := openDB(t, db, true)
	defer src.Close()
	dst := openDB(t, pg, false)
	defer dst.Close()
	for _, table := range migrateTables {
		var a, b int64
		if err := src.QueryRow("select count(*) from " + table).Scan(&a); err != nil {
			t.Fatal(err)
		}
		if err := dst.QueryRow("select count(*) from " + table).Scan(&b); err != nil {
			t.Fatal(err)
		}
		if a != b || (a == 0 && table != "idempotency_keys") {
			t.Errorf("%s: %d rows in SQLite, %d in PostgreSQL", table, a, b)
		}
		if !strings.Contains(out, table) {
			t.Errorf("migrate's output does not count %s", table)
		}
	}
	// Row by row: every column of every task, flow, schedule, event and attempt equal, but
	// for the task caught mid-call and the flags that became booleans.
	compareRows(t, src, dst, "tasks", "id", map[string]string{processing: "pending"})
	compareRows(t, src, dst, "task_events", "id", nil)
	compareRows(t, src, dst, "attempts", "task_id, attempt", nil)
	compareRows(t, src, dst, "flows", "team_id, key", nil)
	compareRows(t, src, dst, "schedules", "id", nil)
	compareRows(t, src, dst, "vault_tokens", "id", nil)
	compareRows(t, src, dst, "api_keys", "id", nil)
	compareRows(t, src, dst, "teams", "id", nil)
	compareRows(t, src, dst, "idempotency_keys", "team_id, key", nil)
	var hash []byte
	var wait bool
	if err := dst.QueryRow(`select signal_hash, wait_for_signal from tasks where id = $1`, waiting).Scan(&hash, &wait); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256([]byte(token)); !bytes32Equal(hash, want) || !wait {
		t.Errorf("waiting task: signal_hash %x wait_for_signal %v, want %x true", hash, wait, want)
	}
	var status string
	var due sql.NullInt64
	if err := dst.QueryRow(`select status, due_at from tasks where id = $1`, processing).Scan(&status, &due); err != nil {
		t.Fatal(err)
	}
	if status != "pending" || !due.Valid || time.Since(time.UnixMilli(due.Int64)) > time.Minute {
		t.Errorf("task caught mid-call: %s due %v, want pending due now", status, due)
	}
	var nextEvent int64
	if err := dst.QueryRow(`select nextval(pg_get_serial_sequence('task_events', 'id'))`).Scan(&nextEvent); err != nil {
		t.Fatal(err)
	}
	var maxEvent int64
	if err := src.QueryRow(`select max(id) from task_events`).Scan(&maxEvent); err != nil {
		t.Fatal(err)
	}
	if nextEvent <= maxEvent {
		t.Errorf("the next task event id is %d, not after the copied ones (up to %d)", nextEvent, maxEvent)
	}

	// A second migrate into the same database is refused, and changes nothing.
	if _, errOut, code := aqtCLI(t, "migrate", "--from", db, "--to", pg); code == 0 || !strings.Contains(errOut, "already holds") {
		t.Errorf("second migrate: exit %d, %s; want a refusal saying the target already holds data", code, errOut)
	}
	var tasks int
	if err := dst.QueryRow(`select count(*) from tasks`).Scan(&tasks); err != nil || tasks != 6 {
		t.Errorf("tasks in PostgreSQL after the refused migrate: %d (%v), want 6", tasks, err)
	}

	var nodes int
	if err := dst.QueryRow(`select count(*) from nodes`).Scan(&nodes); err != nil || nodes != 0 {
		t.Errorf("nodes recorded by migrate: %d (%v), want none: it is no node", nodes, err)
	}

	// A node with another vault key refuses to start: the copied tokens are sealed with this one.
	if _, errOut, code := aqtCLI(t, "serve", "--db", pg, "--vault-key", testVaultKey, "--addr", freePort(t)); code == 0 ||
		!strings.Contains(errOut, "--vault-key is not the key") {
		t.Errorf("serve with another vault key on the migrated database: exit %d, %s; want a refusal", code, errOut)
	}

	// A server on the migrated database, with the SQLite database's vault key and API key.
	p := &server{t: t, db: pg, args: []string{"--vault-key", keyHex}, key: s.key}
	p.launch(false)
	t.Cleanup(p.kill)
	if strings.Contains(p.Logs(), "Created team") {
		t.Errorf("the server on the migrated database made a team of its own:\n%s", p.Logs())
	}
	sig := p.call("POST", "/v1/signals/"+token, map[string]any{"status": "completed", "result": map[string]any{"n": 1}}, sigNoKey...)
	if sig.Status != 200 || sig.task()["status"] != "completed" {
		t.Errorf("signal with the token made on SQLite: %d %s, want 200 completed", sig.Status, sig.Raw)
	}
	p.waitStatus(processing, "completed", 30*time.Second) // called again, answered this time
	withVault := p.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL + "/ok", "headers": map[string]string{"Authorization": tokID}})
	if withVault.Status != 201 {
		t.Fatalf("create with the vault token: %d %s", withVault.Status, withVault.Raw)
	}
	vid := withVault.task()["id"].(string)
	p.waitStatus(vid, "completed", 30*time.Second)
	mu.Lock()
	if authSeen[vid] != vaultValue {
		t.Errorf("the vault token resolved to %q, want %q", authSeen[vid], vaultValue)
	}
	mu.Unlock()
	for id, want := range map[string]string{completed: "completed", failed: "failed", delayed: "delayed", cancelled: "cancelled"} {
		if got := p.call("GET", "/v1/tasks/"+id, nil).task()["status"]; got != want {
			t.Errorf("task %s: %v on PostgreSQL, want %s", id, got, want)
		}
	}
	list := p.call("GET", "/v1/tasks?limit=1", nil)
	if total := list.Body["pagination"].(map[string]any)["total"]; total != 7.0 {
		t.Errorf("tasks listed on PostgreSQL: %v, want 7", total)
	}
	if r := p.call("GET", "/v1/schedules/"+schedule, nil); r.Status != 200 {
		t.Errorf("schedule on PostgreSQL: %d %s", r.Status, r.Raw)
	}
	if r := p.call("GET", "/v1/flows/migrated-flow", nil); r.Status != 200 || !strings.Contains(r.Raw, `"paused":true`) {
		t.Errorf("flow on PostgreSQL: %d %s, want it paused", r.Status, r.Raw)
	}
}

func bytes32Equal(b []byte, want [32]byte) bool { return string(b) == string(want[:]) }

// compareRows checks that table holds the same rows in SQLite and PostgreSQL, column by
// column (SQLite's 0/1 flags against booleans). status maps a task id to the status it
// must have in PostgreSQL instead of SQLite's (its due_at then differs too).
func compareRows(t *testing.T, src, dst *sql.DB, table, order string, status map[string]string) {
	t.Helper()
	read := func(db *sql.DB) ([]string, [][]any) {
		rows, err := db.Query("select * from " + table + " order by " + order)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var out [][]any
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return cols, out
	}
	scols, srows := read(src)
	dcols, drows := read(dst)
	if len(srows) != len(drows) {
		t.Errorf("%s: %d rows in SQLite, %d in PostgreSQL", table, len(srows), len(drows))
		return
	}
	at := map[string]int{}
	for i, c := range dcols {
		at[c] = i
	}
	for r := range srows {
		var id string
		for i, c := range scols {
			if c == "id" {
				id, _ = srows[r][i].(string)
			}
		}
		for i, c := range scols {
			j, ok := at[c]
			if !ok {
				t.Errorf("%s.%s is not in PostgreSQL", table, c)
				continue
			}
			a, b := norm(srows[r][i]), norm(drows[r][j])
			if want, ok := status[id]; ok && (c == "status" || c == "due_at") {
				if c == "status" && b != "s"+want {
					t.Errorf("%s %s: status %v in PostgreSQL, want %s", table, id, b, want)
				}
				continue
			}
			if _, isBool := drows[r][j].(bool); isBool {
				a = norm(srows[r][i] == int64(1))
			}
			if a != b {
				t.Errorf("%s row %d (%s) column %s: %s in SQLite, %s in PostgreSQL", table, r, id, c, a, b)
			}
		}
	}
}

// norm prints a column's value the same way whichever driver read it.
func norm(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return "x" + hex.EncodeToString(x)
	case int32:
		return norm(int64(x))
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		if x {
			return "true"
		}
		return "false"
	case string:
		return "s" + x
	}
	return "?"
}

// TestMigrateRefusesOldSchema: a database an older asyncqueue wrote must be upgraded by serve
// first; the check comes before any connection to PostgreSQL.
func TestMigrateRefusesOldSchema(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "old.db")
	c, err := sql.Open("sqlite", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec("create table teams (id text primary key); pragma user_version = 2"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	err = migrate(context.Background(), db, "postgres://nobody@127.0.0.1:1/none?sslmode=disable", new(strings.Builder))
	if err == nil || !strings.Contains(err.Error(), "start asyncqueue serve on it once to upgrade it") {
		t.Errorf("migrate from schema version 2: %v, want the advice to start serve on it once", err)
	}
	if err := migrate(context.Background(), db, "mysql://x", new(strings.Builder)); err == nil || !strings.Contains(err.Error(), "not a PostgreSQL URL") {
		t.Errorf("--to mysql://: %v", err)
	}
}

func TestConvertValue(t *testing.T) {
	for _, c := range []struct {
		v       any
		typ     string
		want    any
		wantErr bool
	}{
		{int64(1), "boolean", true, false},
		{int64(0), "boolean", false, false},
		{int64(2), "boolean", nil, true},
		{"yes", "boolean", nil, true},
		{nil, "boolean", nil, false},
		{int64(7), "double precision", 7.0, false},
		{2.5, "double precision", 2.5, false},
		{int64(1 << 40), "bigint", int64(1 << 40), false},
		{"x", "bigint", nil, true},
		{[]byte{1, 2}, "bytea", []byte{1, 2}, false},
		{"t", "text", "t", false},
		{int64(3), "text", nil, true},
	} {
		got, err := convertValue(c.v, c.typ)
		if (err != nil) != c.wantErr || norm(got) != norm(c.want) {
			t.Errorf("convertValue(%v, %s) = %v, %v; want %v (error %v)", c.v, c.typ, got, err, c.want, c.wantErr)
		}
	}
}
