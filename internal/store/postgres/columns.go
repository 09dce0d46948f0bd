package postgres

import (
	"fmt"
	"strings"
	"sync"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// Tasks bind and scan positionally through store.TaskColumns, and an update writes only
// the columns that changed (so more updates stay HOT).

func str(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

// taskCols names store.TaskColumns, in order.
var taskCols = func() string {
	names := make([]string, len(store.TaskColumns))
	for i, c := range store.TaskColumns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}()

// taskColsOf is taskCols qualified with a table alias (for an update … from … returning).
func taskColsOf(alias string) string {
	names := make([]string, len(store.TaskColumns))
	for i, c := range store.TaskColumns {
		names[i] = alias + "." + c.Name
	}
	return strings.Join(names, ", ")
}

// placeholders is "$from, $from+1, …" for n values.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
}

// taskArgs is every column's value, in taskCols order.
func taskArgs(t *store.Task) []any { return store.TaskArgs(t) }

// scanTask reads one row of taskCols (and extra destinations after them) into a new Task.
func scanTask(row interface{ Scan(...any) error }, extra ...any) (*store.Task, error) {
	var t store.Task
	if err := row.Scan(append(store.TaskDests(&t), extra...)...); err != nil {
		return nil, err
	}
	return &t, nil
}

// updateSQL caches the text of each partial update, by the set of columns it writes, what
// it does to claimed_by, and the guard it ends with.
var updateSQL sync.Map // updateKey → string

type updateKey struct {
	cols  uint64
	claim claimChange
	guard string
}

// claimChange is what an update does to claimed_by.
type claimChange int

const (
	claimKeep  claimChange = iota
	claimSet               // the task moves to processing: this node holds it
	claimClear             // the task leaves processing
)

// statusCol is the index of status in store.TaskColumns.
const statusCol = 2

// updateQuery builds `update tasks set a = $1, b = $2 [, claimed_by = …] where <guard>`
// for the columns in cols; the guard's placeholders follow the values (and the node id,
// for claimSet).
func updateQuery(cols uint64, claim claimChange, guard string) string {
	k := updateKey{cols, claim, guard}
	if q, ok := updateSQL.Load(k); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString("update tasks set ")
	n := 0
	for i, c := range store.TaskColumns {
		if cols&(1<<i) == 0 {
			continue
		}
		if n > 0 {
			b.WriteString(", ")
		}
		n++
		fmt.Fprintf(&b, "%s = $%d", c.Name, n)
	}
	switch claim {
	case claimSet:
		n++
		fmt.Fprintf(&b, ", claimed_by = $%d", n)
	case claimClear:
		b.WriteString(", claimed_by = null")
	}
	b.WriteString(" where ")
	b.WriteString(numbered(guard, n+1))
	q := b.String()
	updateSQL.Store(k, q)
	return q
}

// numbered replaces each ? of query with $from, $from+1, ….
func numbered(query string, from int) string {
	var b strings.Builder
	for _, r := range query {
		if r == '?' {
			fmt.Fprintf(&b, "$%d", from)
			from++
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Guards of the task updates. Each takes the task id, then a status; those of a task read
// outside the transaction also take its attempts: a call's outcome, written from the task
// as its node claimed it, must not land on a later claim of the same task (the lease
// ended, and another node claimed it again: processing both times, one attempt more).
const (
	guardStatus           = "id = ? and status = ?"
	guardStatusAttempt    = "id = ? and status = ? and attempts = ?"
	guardNoSignalAttempts = "id = ? and status = ? and attempts = ? and buffered_signal is null"
)

// updateDiff writes the mutable columns of task that differ from orig (every mutable
// column when orig is nil), if the row still matches guard; from is the status the guard
// expects. A move to processing records this node in claimed_by; a move away clears it.
// It returns how many rows matched.
func (t *Tx) updateDiff(orig, task *store.Task, from, guard string, guardArgs ...any) (int64, error) {
	cols, args := store.ChangedColumns(orig, task)
	if cols == 0 {
		// Nothing to write; still say whether the guard holds.
		var n int64
		err := t.get("select count(*) from tasks where "+numbered(guard, 1), guardArgs, &n)
		return n, err
	}
	claim := claimKeep
	if cols&(1<<statusCol) != 0 {
		switch {
		case task.Status != store.StatusProcessing:
			claim = claimClear
		case from != store.StatusProcessing:
			claim = claimSet
			args = append(args, t.s.opts.Node)
		}
	}
	tag, err := t.exec(updateQuery(cols, claim, guard), append(args, guardArgs...)...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
