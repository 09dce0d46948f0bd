package postgres

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// Tasks bind and scan positionally, column by column, and an update writes only the
// columns that changed: fewer values to send, and no index is touched whose columns did
// not move (so more updates stay HOT).

// taskColumn is one column of the tasks table and how to read its value from a Task.
type taskColumn struct {
	name    string
	mutable bool // written by updates
	val     func(*store.Task) any
	dest    func(*store.Task) any // scan destination
}

func str(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func i64(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func blob(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// taskColumns lists the columns in taskCols order.
var taskColumns = []taskColumn{
	{"id", false, func(t *store.Task) any { return t.ID }, func(t *store.Task) any { return &t.ID }},
	{"team_id", false, func(t *store.Task) any { return t.TeamID }, func(t *store.Task) any { return &t.TeamID }},
	{"status", true, func(t *store.Task) any { return t.Status }, func(t *store.Task) any { return &t.Status }},
	{"target_url", false, func(t *store.Task) any { return t.TargetURL }, func(t *store.Task) any { return &t.TargetURL }},
	{"target_host", false, func(t *store.Task) any { return t.TargetHost }, func(t *store.Task) any { return &t.TargetHost }},
	{"method", false, func(t *store.Task) any { return t.Method }, func(t *store.Task) any { return &t.Method }},
	{"headers", true, func(t *store.Task) any { return t.Headers }, func(t *store.Task) any { return &t.Headers }},
	{"body", false, func(t *store.Task) any { return str(t.Body) }, func(t *store.Task) any { return &t.Body }},
	{"timeout_ms", false, func(t *store.Task) any { return t.TimeoutMS }, func(t *store.Task) any { return &t.TimeoutMS }},
	{"delay_until", false, func(t *store.Task) any { return i64(t.DelayUntil) }, func(t *store.Task) any { return &t.DelayUntil }},
	{"max_retries", false, func(t *store.Task) any { return int32(t.MaxRetries) }, func(t *store.Task) any { return &t.MaxRetries }},
	{"retry_backoff", false, func(t *store.Task) any { return t.RetryBackoff }, func(t *store.Task) any { return &t.RetryBackoff }},
	{"priority", false, func(t *store.Task) any { return int32(t.Priority) }, func(t *store.Task) any { return &t.Priority }},
	{"on_complete_url", false, func(t *store.Task) any { return str(t.OnCompleteURL) }, func(t *store.Task) any { return &t.OnCompleteURL }},
	{"wait_for_signal", false, func(t *store.Task) any { return t.WaitForSignal }, func(t *store.Task) any { return &t.WaitForSignal }},
	{"max_wait_ms", false, func(t *store.Task) any { return t.MaxWaitMS }, func(t *store.Task) any { return &t.MaxWaitMS }},
	{"heartbeat_timeout_ms", false, func(t *store.Task) any { return i64(t.HeartbeatTimeoutMS) }, func(t *store.Task) any { return &t.HeartbeatTimeoutMS }},
	{"retry_count", true, func(t *store.Task) any { return int32(t.RetryCount) }, func(t *store.Task) any { return &t.RetryCount }},
	{"attempts", true, func(t *store.Task) any { return int32(t.Attempts) }, func(t *store.Task) any { return &t.Attempts }},
	{"start_result", true, func(t *store.Task) any { return str(t.StartResult) }, func(t *store.Task) any { return &t.StartResult }},
	{"result", true, func(t *store.Task) any { return str(t.Result) }, func(t *store.Task) any { return &t.Result }},
	{"error", true, func(t *store.Task) any { return str(t.Error) }, func(t *store.Task) any { return &t.Error }},
	{"signal_hash", true, func(t *store.Task) any { return blob(t.SignalHash) }, func(t *store.Task) any { return &t.SignalHash }},
	{"callback_hash", true, func(t *store.Task) any { return blob(t.CallbackHash) }, func(t *store.Task) any { return &t.CallbackHash }},
	{"callback_nonce", true, func(t *store.Task) any { return blob(t.CallbackNonce) }, func(t *store.Task) any { return &t.CallbackNonce }},
	{"provider", false, func(t *store.Task) any { return str(t.Provider) }, func(t *store.Task) any { return &t.Provider }},
	{"poll_config", false, func(t *store.Task) any { return str(t.PollConfig) }, func(t *store.Task) any { return &t.PollConfig }},
	{"poll_count", true, func(t *store.Task) any { return int32(t.PollCount) }, func(t *store.Task) any { return &t.PollCount }},
	{"signal", true, func(t *store.Task) any { return str(t.Signal) }, func(t *store.Task) any { return &t.Signal }},
	{"buffered_signal", true, func(t *store.Task) any { return str(t.BufferedSignal) }, func(t *store.Task) any { return &t.BufferedSignal }},
	{"progress", true, func(t *store.Task) any { return str(t.Progress) }, func(t *store.Task) any { return &t.Progress }},
	{"last_heartbeat_at", true, func(t *store.Task) any { return i64(t.LastHeartbeatAt) }, func(t *store.Task) any { return &t.LastHeartbeatAt }},
	{"on_complete", true, func(t *store.Task) any { return str(t.OnComplete) }, func(t *store.Task) any { return &t.OnComplete }},
	{"created_at", false, func(t *store.Task) any { return t.CreatedAt }, func(t *store.Task) any { return &t.CreatedAt }},
	{"started_at", true, func(t *store.Task) any { return i64(t.StartedAt) }, func(t *store.Task) any { return &t.StartedAt }},
	{"waiting_since", true, func(t *store.Task) any { return i64(t.WaitingSince) }, func(t *store.Task) any { return &t.WaitingSince }},
	{"expires_at", true, func(t *store.Task) any { return i64(t.ExpiresAt) }, func(t *store.Task) any { return &t.ExpiresAt }},
	{"completed_at", true, func(t *store.Task) any { return i64(t.CompletedAt) }, func(t *store.Task) any { return &t.CompletedAt }},
	{"due_at", true, func(t *store.Task) any { return i64(t.DueAt) }, func(t *store.Task) any { return &t.DueAt }},
	{"flow_key", false, func(t *store.Task) any { return str(t.FlowKey) }, func(t *store.Task) any { return &t.FlowKey }},
	{"schedule_id", false, func(t *store.Task) any { return str(t.ScheduleID) }, func(t *store.Task) any { return &t.ScheduleID }},
}

// taskCols names taskColumns, in order.
var taskCols = func() string {
	names := make([]string, len(taskColumns))
	for i, c := range taskColumns {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}()

// taskColsOf is taskCols qualified with a table alias (for an update … from … returning).
func taskColsOf(alias string) string {
	names := make([]string, len(taskColumns))
	for i, c := range taskColumns {
		names[i] = alias + "." + c.name
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
func taskArgs(t *store.Task) []any {
	args := make([]any, len(taskColumns))
	for i, c := range taskColumns {
		args[i] = c.val(t)
	}
	return args
}

// scanTask reads one row of taskCols (and extra destinations after them) into a new Task.
func scanTask(row interface{ Scan(...any) error }, extra ...any) (*store.Task, error) {
	var t store.Task
	dests := make([]any, len(taskColumns), len(taskColumns)+len(extra))
	for i, c := range taskColumns {
		dests[i] = c.dest(&t)
	}
	if err := row.Scan(append(dests, extra...)...); err != nil {
		return nil, err
	}
	return &t, nil
}

func sameValue(a, b any) bool {
	if x, ok := a.([]byte); ok {
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	}
	if _, ok := b.([]byte); ok {
		return false
	}
	return a == b
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

// statusCol is the index of status in taskColumns.
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
	for i, c := range taskColumns {
		if cols&(1<<i) == 0 {
			continue
		}
		if n > 0 {
			b.WriteString(", ")
		}
		n++
		fmt.Fprintf(&b, "%s = $%d", c.name, n)
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
	var cols uint64
	args := make([]any, 0, 8+len(guardArgs))
	for i, c := range taskColumns {
		if !c.mutable {
			continue
		}
		v := c.val(task)
		if orig != nil && sameValue(c.val(orig), v) {
			continue
		}
		cols |= 1 << i
		args = append(args, v)
	}
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
