package main

// asyncqueue migrate: moving up from one SQLite file to PostgreSQL (SPEC §12). The two
// schemas have the same tables and columns, so the move is a copy of each table in one
// PostgreSQL transaction, checked by counting.

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/asyncqueue/asyncqueue/internal/store/sqlite"
	"github.com/asyncqueue/asyncqueue/internal/vault"
)

// MigrateCmd copies a SQLite database into an empty PostgreSQL database.
type MigrateCmd struct {
	From string `help:"SQLite database file to copy (opened read-only; stop its server first)." required:"" type:"path"`
	To   string `help:"PostgreSQL database to copy into: postgres://user:pass@host:5432/db. Its schema is created; it must hold no team and no task." required:""`
}

// migrateTables are copied in this order (references first). admin_sessions stay behind:
// logging in again is all it costs.
var migrateTables = []string{"teams", "api_keys", "vault_tokens", "tasks", "attempts", "task_events",
	"idempotency_keys", "flows", "schedules"}

// Run checks the source's schema version and the target's emptiness, copies every table in
// one transaction, compares the counts, and says which --vault-key the nodes need.
func (c *MigrateCmd) Run(ctx context.Context) error {
	return migrate(ctx, c.From, c.To, os.Stdout)
}

func migrate(ctx context.Context, from, to string, out io.Writer) error {
	if !isPostgres(to) {
		return fmt.Errorf("--to %s: not a PostgreSQL URL (postgres://user:pass@host:5432/db)", to)
	}
	target := redactURL(to)
	if _, err := os.Stat(from); err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	unlock, err := lockSource(from)
	if err != nil {
		return err
	}
	defer unlock()

	src, err := sql.Open("sqlite", "file:"+from+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("open %s: %w", from, err)
	}
	defer src.Close()
	// One read transaction: every table is read from the same snapshot.
	stx, err := src.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("read %s: %w", from, err)
	}
	defer stx.Rollback()
	var version int
	if err := stx.QueryRowContext(ctx, "pragma user_version").Scan(&version); err != nil {
		return fmt.Errorf("read %s: %w (is it an asyncqueue database?)", from, err)
	}
	switch {
	case version == 0:
		return fmt.Errorf("%s is not an asyncqueue database (no schema version)", from)
	case version < sqlite.SchemaVersion:
		return fmt.Errorf("%s has schema version %d, this asyncqueue writes %d: start asyncqueue serve on it once to upgrade it, stop it, then migrate",
			from, version, sqlite.SchemaVersion)
	case version > sqlite.SchemaVersion:
		return fmt.Errorf("%s has schema version %d, newer than this asyncqueue understands (%d): migrate with the asyncqueue that wrote it",
			from, version, sqlite.SchemaVersion)
	}

	if err := checkTables(ctx, stx); err != nil {
		return err
	}
	// The vault key sealed the vault tokens and made the callback ids: the nodes need it.
	keyFile := from + ".vault-key"
	key, keyErr := vault.ReadKeyFile(keyFile)
	if keyErr != nil && !errors.Is(keyErr, os.ErrNotExist) {
		return keyErr
	}

	// Open creates (or migrates) the schema, under PostgreSQL's advisory lock like any node.
	st, err := openPostgres(ctx, pgOptions{URL: to, Node: "migrate-" + defaultNodeID(""), Command: true, MaxConns: 2})
	if err != nil {
		return fmt.Errorf("open %s: %w", target, err)
	}
	st.Close()

	conn, err := pgx.Connect(ctx, to)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", target, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	start := time.Now()
	counts, err := copyTables(ctx, stx, conn, key)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "migrated %s to %s in %s; rows per table (source = target):\n", from, target,
		time.Since(start).Round(time.Millisecond))
	for _, t := range migrateTables {
		fmt.Fprintf(out, "  %-17s %d\n", t, counts[t])
	}
	if counts["processing"] > 0 {
		fmt.Fprintf(out, "%d tasks caught mid-call are pending again, due now (their calls run again, as after a restart)\n",
			counts["processing"])
	}
	if key != nil {
		fmt.Fprintf(out, "start every node with the vault key of %s (keep it secret; a node with another key refuses to start):\n  --vault-key %s\n",
			keyFile, hex.EncodeToString(key))
	} else {
		fmt.Fprintf(out, "no vault key file beside %s (%s): start every node with the --vault-key the SQLite server used\n",
			from, keyFile)
	}
	return nil
}

// checkTables makes sure every table of the source is either copied or meant to stay
// behind, so that a table added to the schema one day is not silently left out.
func checkTables(ctx context.Context, src *sql.Tx) error {
	rows, err := src.QueryContext(ctx, `select name from sqlite_schema where type = 'table' and name not like 'sqlite_%'`)
	if err != nil {
		return fmt.Errorf("list the source's tables: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		if name != "admin_sessions" && !slices.Contains(migrateTables, name) {
			return fmt.Errorf("the source has a table migrate does not know: %s", name)
		}
	}
	return rows.Err()
}

// copyTables copies every table in one PostgreSQL transaction and returns the rows per
// table, and under "processing" how many tasks were caught mid-call. With the source's
// vault key, it stores the key's check as the first node would: a node started with
// another key then refuses to start.
func copyTables(ctx context.Context, src *sql.Tx, dst *pgx.Conn, key []byte) (map[string]int64, error) {
	tx, err := dst.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// A node started on the target meanwhile waits, then finds the teams copied (and
	// creates no team of its own).
	if _, err := tx.Exec(ctx, "lock table "+strings.Join(migrateTables, ", ")+" in exclusive mode"); err != nil {
		return nil, fmt.Errorf("lock the target's tables: %w", err)
	}
	var teams, tasks int64
	if err := tx.QueryRow(ctx, "select (select count(*) from teams), (select count(*) from tasks)").Scan(&teams, &tasks); err != nil {
		return nil, fmt.Errorf("count the target's teams and tasks: %w", err)
	}
	if teams > 0 || tasks > 0 {
		return nil, fmt.Errorf("the target already holds %d teams and %d tasks: migrate copies into an empty database only", teams, tasks)
	}
	counts := map[string]int64{}
	now := time.Now().UnixMilli()
	for _, table := range migrateTables {
		n, processing, err := copyTable(ctx, src, tx, table, now)
		if err != nil {
			return nil, fmt.Errorf("copy %s: %w", table, err)
		}
		var want, got int64
		if err := src.QueryRowContext(ctx, "select count(*) from "+table).Scan(&want); err != nil {
			return nil, fmt.Errorf("count %s in the source: %w", table, err)
		}
		if err := tx.QueryRow(ctx, "select count(*) from "+table).Scan(&got); err != nil {
			return nil, fmt.Errorf("count %s in the target: %w", table, err)
		}
		if n != want || got != want {
			return nil, fmt.Errorf("%s: %d rows in the source, %d copied, %d in the target: nothing was committed", table, want, n, got)
		}
		counts[table] = got
		counts["processing"] += processing
	}
	// task_events keep their ids: new events must number after them.
	if _, err := tx.Exec(ctx, `select setval(pg_get_serial_sequence('task_events', 'id'),
		coalesce((select max(id) from task_events), 0) + 1, false)`); err != nil {
		return nil, fmt.Errorf("move the task_events id sequence past the copied events: %w", err)
	}
	if key != nil {
		if _, err := tx.Exec(ctx, `insert into settings (name, value) values ($1, $2)`, keyCheckName, keyCheck(key)); err != nil {
			return nil, fmt.Errorf("store the vault key's check: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return counts, nil
}

// copyTable streams one table from the source into the target with COPY, converting each
// value to its target column's type. A task caught mid-call (processing) becomes pending,
// due now: no node runs its call.
func copyTable(ctx context.Context, src *sql.Tx, dst pgx.Tx, table string, now int64) (n, processing int64, err error) {
	types := map[string]string{}
	rows, err := dst.Query(ctx, `select column_name, data_type from information_schema.columns
		where table_schema = current_schema() and table_name = $1`, table)
	if err != nil {
		return 0, 0, err
	}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return 0, 0, err
		}
		types[name] = typ
	}
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	var cols []string
	srows, err := src.QueryContext(ctx, "select name from pragma_table_info(?) order by cid", table)
	if err != nil {
		return 0, 0, err
	}
	for srows.Next() {
		var name string
		if err := srows.Scan(&name); err != nil {
			srows.Close()
			return 0, 0, err
		}
		if types[name] == "" {
			srows.Close()
			return 0, 0, fmt.Errorf("column %s is not in the target's schema", name)
		}
		cols = append(cols, name)
	}
	srows.Close()
	if err := srows.Err(); err != nil {
		return 0, 0, err
	}

	data, err := src.QueryContext(ctx, "select "+strings.Join(cols, ", ")+" from "+table)
	if err != nil {
		return 0, 0, err
	}
	defer data.Close()
	status, due := -1, -1
	if table == "tasks" {
		for i, c := range cols {
			switch c {
			case "status":
				status = i
			case "due_at":
				due = i
			}
		}
	}
	source := &rowSource{rows: data, cols: cols, types: types, vals: make([]any, len(cols))}
	source.fix = func(v []any) {
		if status >= 0 && v[status] == "processing" {
			v[status] = "pending"
			if due >= 0 {
				v[due] = now
			}
			processing++
		}
	}
	n, err = dst.CopyFrom(ctx, pgx.Identifier{table}, cols, source)
	return n, processing, err
}

// rowSource feeds COPY from a SQLite query.
type rowSource struct {
	rows  *sql.Rows
	cols  []string
	types map[string]string // column → PostgreSQL data_type
	vals  []any
	fix   func([]any)
	err   error
}

func (r *rowSource) Next() bool { return r.err == nil && r.rows.Next() }

func (r *rowSource) Values() ([]any, error) {
	ptrs := make([]any, len(r.vals))
	for i := range r.vals {
		ptrs[i] = &r.vals[i]
	}
	if err := r.rows.Scan(ptrs...); err != nil {
		r.err = err
		return nil, err
	}
	out := make([]any, len(r.vals))
	for i, v := range r.vals {
		c, err := convertValue(v, r.types[r.cols[i]])
		if err != nil {
			r.err = fmt.Errorf("column %s: %w", r.cols[i], err)
			return nil, r.err
		}
		out[i] = c
	}
	r.fix(out)
	return out, nil
}

func (r *rowSource) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}

// convertValue turns a SQLite value into one for a PostgreSQL column of type typ: the 0/1
// flags into booleans; integers, reals, text and blobs as they are.
func convertValue(v any, typ string) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch typ {
	case "boolean":
		i, ok := v.(int64)
		if !ok || (i != 0 && i != 1) {
			return nil, fmt.Errorf("flag %v (%T) is not 0 or 1", v, v)
		}
		return i == 1, nil
	case "double precision", "real":
		switch x := v.(type) {
		case float64:
			return x, nil
		case int64:
			return float64(x), nil
		}
	case "bigint", "integer", "smallint":
		if i, ok := v.(int64); ok {
			return i, nil
		}
	case "bytea":
		switch x := v.(type) {
		case []byte:
			return x, nil
		case string:
			return []byte(x), nil
		}
	case "text":
		switch x := v.(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
	default:
		return v, nil
	}
	return nil, fmt.Errorf("%v (%T) does not fit a %s column", v, v, typ)
}

// lockSource refuses a database a server still runs on (its calls in flight and its next
// writes would not be copied), and keeps one from starting until the copy is done.
func lockSource(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, nil // no server ever ran on it
	} else if err != nil {
		return nil, fmt.Errorf("open %s.lock: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is in use by an asyncqueue server: stop it first, then migrate", path)
	}
	return func() { f.Close() }, nil
}
