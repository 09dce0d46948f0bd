package store

import "bytes"

// Both backends bind and scan tasks positionally, column by column, from this one table,
// and write only the columns an update changed: fewer values to send, and no index is
// touched whose columns did not move.

// TaskColumn is one column of the tasks table: its name, whether updates write it, and how
// to read its value from a Task (Val: a string, int, int64, bool, []byte, or nil for
// NULL) and where to scan it to (Dest).
type TaskColumn struct {
	Name    string
	Mutable bool
	Val     func(*Task) any
	Dest    func(*Task) any
}

func nullStr(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func nullI64(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// TaskColumns lists the columns of the tasks table, in the order both backends bind and
// scan them.
var TaskColumns = []TaskColumn{
	{"id", false, func(t *Task) any { return t.ID }, func(t *Task) any { return &t.ID }},
	{"team_id", false, func(t *Task) any { return t.TeamID }, func(t *Task) any { return &t.TeamID }},
	{"status", true, func(t *Task) any { return t.Status }, func(t *Task) any { return &t.Status }},
	{"target_url", false, func(t *Task) any { return t.TargetURL }, func(t *Task) any { return &t.TargetURL }},
	{"target_host", false, func(t *Task) any { return t.TargetHost }, func(t *Task) any { return &t.TargetHost }},
	{"method", false, func(t *Task) any { return t.Method }, func(t *Task) any { return &t.Method }},
	{"headers", true, func(t *Task) any { return t.Headers }, func(t *Task) any { return &t.Headers }},
	{"body", false, func(t *Task) any { return nullStr(t.Body) }, func(t *Task) any { return &t.Body }},
	{"timeout_ms", false, func(t *Task) any { return t.TimeoutMS }, func(t *Task) any { return &t.TimeoutMS }},
	{"delay_until", false, func(t *Task) any { return nullI64(t.DelayUntil) }, func(t *Task) any { return &t.DelayUntil }},
	{"max_retries", false, func(t *Task) any { return t.MaxRetries }, func(t *Task) any { return &t.MaxRetries }},
	{"retry_backoff", false, func(t *Task) any { return t.RetryBackoff }, func(t *Task) any { return &t.RetryBackoff }},
	{"priority", false, func(t *Task) any { return t.Priority }, func(t *Task) any { return &t.Priority }},
	{"on_complete_url", false, func(t *Task) any { return nullStr(t.OnCompleteURL) }, func(t *Task) any { return &t.OnCompleteURL }},
	{"wait_for_signal", false, func(t *Task) any { return t.WaitForSignal }, func(t *Task) any { return &t.WaitForSignal }},
	{"max_wait_ms", false, func(t *Task) any { return t.MaxWaitMS }, func(t *Task) any { return &t.MaxWaitMS }},
	{"heartbeat_timeout_ms", false, func(t *Task) any { return nullI64(t.HeartbeatTimeoutMS) }, func(t *Task) any { return &t.HeartbeatTimeoutMS }},
	{"retry_count", true, func(t *Task) any { return t.RetryCount }, func(t *Task) any { return &t.RetryCount }},
	{"attempts", true, func(t *Task) any { return t.Attempts }, func(t *Task) any { return &t.Attempts }},
	{"start_result", true, func(t *Task) any { return nullStr(t.StartResult) }, func(t *Task) any { return &t.StartResult }},
	{"result", true, func(t *Task) any { return nullStr(t.Result) }, func(t *Task) any { return &t.Result }},
	{"error", true, func(t *Task) any { return nullStr(t.Error) }, func(t *Task) any { return &t.Error }},
	{"signal_hash", true, func(t *Task) any { return nullBytes(t.SignalHash) }, func(t *Task) any { return &t.SignalHash }},
	{"callback_hash", true, func(t *Task) any { return nullBytes(t.CallbackHash) }, func(t *Task) any { return &t.CallbackHash }},
	{"callback_nonce", true, func(t *Task) any { return nullBytes(t.CallbackNonce) }, func(t *Task) any { return &t.CallbackNonce }},
	{"provider", false, func(t *Task) any { return nullStr(t.Provider) }, func(t *Task) any { return &t.Provider }},
	{"poll_config", false, func(t *Task) any { return nullStr(t.PollConfig) }, func(t *Task) any { return &t.PollConfig }},
	{"poll_count", true, func(t *Task) any { return t.PollCount }, func(t *Task) any { return &t.PollCount }},
	{"signal", true, func(t *Task) any { return nullStr(t.Signal) }, func(t *Task) any { return &t.Signal }},
	{"buffered_signal", true, func(t *Task) any { return nullStr(t.BufferedSignal) }, func(t *Task) any { return &t.BufferedSignal }},
	{"progress", true, func(t *Task) any { return nullStr(t.Progress) }, func(t *Task) any { return &t.Progress }},
	{"last_heartbeat_at", true, func(t *Task) any { return nullI64(t.LastHeartbeatAt) }, func(t *Task) any { return &t.LastHeartbeatAt }},
	{"on_complete", true, func(t *Task) any { return nullStr(t.OnComplete) }, func(t *Task) any { return &t.OnComplete }},
	{"created_at", false, func(t *Task) any { return t.CreatedAt }, func(t *Task) any { return &t.CreatedAt }},
	{"started_at", true, func(t *Task) any { return nullI64(t.StartedAt) }, func(t *Task) any { return &t.StartedAt }},
	{"waiting_since", true, func(t *Task) any { return nullI64(t.WaitingSince) }, func(t *Task) any { return &t.WaitingSince }},
	{"expires_at", true, func(t *Task) any { return nullI64(t.ExpiresAt) }, func(t *Task) any { return &t.ExpiresAt }},
	{"completed_at", true, func(t *Task) any { return nullI64(t.CompletedAt) }, func(t *Task) any { return &t.CompletedAt }},
	{"due_at", true, func(t *Task) any { return nullI64(t.DueAt) }, func(t *Task) any { return &t.DueAt }},
	{"flow_key", false, func(t *Task) any { return nullStr(t.FlowKey) }, func(t *Task) any { return &t.FlowKey }},
	{"schedule_id", false, func(t *Task) any { return nullStr(t.ScheduleID) }, func(t *Task) any { return &t.ScheduleID }},
}

// LargeTaskColumns are the columns a page of tasks may leave out when they are long, with
// the SQL value that stands in for each.
var LargeTaskColumns = []struct{ Name, Empty string }{
	{"headers", "'{}'"}, {"body", "null"}, {"start_result", "null"}, {"result", "null"},
	{"error", "null"}, {"progress", "null"}, {"buffered_signal", "null"}, {"signal", "null"},
	{"poll_config", "null"}, {"on_complete", "null"},
}

// TaskArgs is every column's value, in TaskColumns order.
func TaskArgs(t *Task) []any {
	args := make([]any, len(TaskColumns))
	for i, c := range TaskColumns {
		args[i] = c.Val(t)
	}
	return args
}

// TaskDests is where to scan a row of every column into t, in TaskColumns order.
func TaskDests(t *Task) []any {
	dests := make([]any, len(TaskColumns))
	for i, c := range TaskColumns {
		dests[i] = c.Dest(t)
	}
	return dests
}

// ChangedColumns returns the mutable columns of task that differ from orig (every mutable
// column when orig is nil), as a bit set over TaskColumns, and their values in order.
func ChangedColumns(orig, task *Task) (cols uint64, vals []any) {
	vals = make([]any, 0, 8)
	for i, c := range TaskColumns {
		if !c.Mutable {
			continue
		}
		v := c.Val(task)
		if orig != nil && sameValue(c.Val(orig), v) {
			continue
		}
		cols |= 1 << i
		vals = append(vals, v)
	}
	return cols, vals
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
