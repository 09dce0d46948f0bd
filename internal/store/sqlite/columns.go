package sqlite

import (
	"strings"
	"sync"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

func str(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

// taskArgs is every column's value, in taskCols order.
func taskArgs(t *store.Task) []any { return store.TaskArgs(t) }

// scanTask reads one row of taskCols into a new Task.
func scanTask(row interface{ Scan(...any) error }) (*store.Task, error) {
	var t store.Task
	if err := row.Scan(store.TaskDests(&t)...); err != nil {
		return nil, notFound(err)
	}
	return &t, nil
}

// updateSQL caches the text of each partial update, by the set of columns it writes and
// the guard it ends with.
var updateSQL sync.Map // updateKey → string

type updateKey struct {
	cols  uint64
	guard string
}

// updateQuery builds `update tasks set a = ?, b = ? where <guard>` for the columns in cols.
func updateQuery(cols uint64, guard string) string {
	k := updateKey{cols, guard}
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
		b.WriteString(c.Name)
		b.WriteString(" = ?")
		n++
	}
	b.WriteString(" where ")
	b.WriteString(guard)
	q := b.String()
	updateSQL.Store(k, q)
	return q
}

// Guards of the task updates. Each takes the task id, then a status.
const (
	guardStatus   = "id = ? and status = ?"
	guardNoSignal = "id = ? and status = ? and buffered_signal is null"
)

// updateDiff writes the mutable columns of task that differ from orig (every mutable
// column when orig is nil), if the row still matches guard. It returns how many rows
// matched.
func (t *Tx) updateDiff(orig, task *store.Task, guard string, guardArgs ...any) (int64, error) {
	cols, args := store.ChangedColumns(orig, task)
	if cols == 0 {
		// Nothing to write; still say whether the guard holds.
		var n int64
		err := t.get(&n, "select count(*) from tasks where "+guard, guardArgs...)
		return n, err
	}
	res, err := t.exec(updateQuery(cols, guard), append(args, guardArgs...)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
