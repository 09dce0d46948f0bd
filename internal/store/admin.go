package store

import "fmt"

// TaskRow is the part of a task a list shows.
type TaskRow struct {
	ID            string  `db:"id"`
	Status        string  `db:"status"`
	TargetURL     string  `db:"target_url"`
	Method        string  `db:"method"`
	Priority      int     `db:"priority"`
	RetryCount    int     `db:"retry_count"`
	Attempts      int     `db:"attempts"`
	WaitForSignal bool    `db:"wait_for_signal"`
	Error         *string `db:"error"` // at most the first 300 characters
	CreatedAt     int64   `db:"created_at"`
	CompletedAt   *int64  `db:"completed_at"`
	ExpiresAt     *int64  `db:"expires_at"`
	DueAt         *int64  `db:"due_at"`
}

// PageFilter selects one page of a team's tasks for TaskPage. Paging is by keyset on id
// (UUIDv7, so id order is creation order): Before gives the page of tasks older than that
// id, After the page of tasks newer than it, neither the newest page.
type PageFilter struct {
	TeamID string
	Status string // one status, "" for all
	// Statuses, when there are several, selects tasks in any of them (Status is then "").
	Statuses []string
	// CreatedFrom and CreatedTo (Unix ms, 0 for no bound) keep tasks created in
	// [CreatedFrom, CreatedTo), by their UUIDv7 ids: a range of the same indexes.
	CreatedFrom, CreatedTo int64
	// Search is a task id (exact), or text that the target URL, the id or the error must
	// contain (case-insensitive for ASCII).
	Search        string
	SearchIsID    bool
	Before, After string
	Limit         int
	// MaxScan bounds the rows a URL search examines per page (0: DefaultMaxScan), so that a
	// search with few matches answers in bounded time; ScannedTo then says where to go on.
	MaxScan int
}

// DefaultMaxScan is how many tasks a target-URL search examines for one page.
const DefaultMaxScan = 100_000

// Page is what TaskPage returns.
type Page struct {
	Rows []TaskRow // newest first
	// More reports that there are tasks beyond the page in the direction it was read
	// (older for Before or the first page, newer for After).
	More bool
	// ScannedTo is set when a URL search stopped at MaxScan rows before filling the page:
	// the search continues with Before = ScannedTo.
	ScannedTo string
}

// MinuteStat counts the tasks created and finished in one minute.
type MinuteStat struct {
	Created, Completed int
	Failed             int // failed or timed out
	TimedOut           int // of Failed, those that timed out
}

// AddFinished counts n tasks that ended in the minute with status.
func (m *MinuteStat) AddFinished(status string, n int) {
	switch status {
	case StatusCompleted:
		m.Completed += n
	case StatusFailed:
		m.Failed += n
	case StatusTimeout:
		m.Failed += n
		m.TimedOut += n
	}
}

// MinUUIDv7 is the smallest UUIDv7 text of Unix millisecond ms: every id made at or
// after ms sorts at or after it.
func MinUUIDv7(ms int64) string {
	ms = max(ms, 0)
	return fmt.Sprintf("%08x-%04x-0000-0000-000000000000", uint64(ms)>>16&0xffffffff, uint64(ms)&0xffff)
}

// AdminSession is a login to the admin page.
type AdminSession struct {
	IDHash    []byte `db:"id_hash"`
	TeamID    string `db:"team_id"`
	KeyID     string `db:"key_id"`
	CreatedAt int64  `db:"created_at"`
	ExpiresAt int64  `db:"expires_at"`
	// Read with the session:
	TeamName  string `db:"team_name"`
	KeyPrefix string `db:"key_prefix"`
}
