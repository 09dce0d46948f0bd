package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// The admin page's queries. Each one is bounded by an index range, so none of them gets
// slower as the tasks table grows, except a target-URL search that finds few matches (see
// TaskPage). The overview's per-status counts come from Store.StatusCounts, kept in memory.

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

const rowCols = `id, status, target_url, method, priority, retry_count, attempts, wait_for_signal,
	substr(error, 1, 300) as error, created_at, completed_at, expires_at, due_at`

// The admin page's fixed queries (EXPLAIN QUERY PLAN checks them in admin_test.go).
const (
	qNewestTaskID     = `select id from tasks where team_id = ? order by id desc limit 1`
	qCreatedPerMinute = `select created_at / 60000 as m, count(*) as n from tasks
		where team_id = ? and id >= ? and created_at >= ? group by m`
	qFinishedPerMinute = `select completed_at / 60000 as m, status, count(*) as n from tasks
		where team_id = ? and completed_at >= ? group by m, status`
	qOldestPending   = `select ` + rowCols + ` from tasks where team_id = ? and status = 'pending' order by id limit 1`
	qExpiringSoonest = `select ` + rowCols + ` from tasks where team_id = ? and status = 'waiting' order by expires_at limit ?`
	qAdminSession    = `select s.id_hash, s.team_id, s.key_id, s.created_at, s.expires_at,
			t.name as team_name, k.prefix as key_prefix
		from admin_sessions s join api_keys k on k.id = s.key_id join teams t on t.id = s.team_id
		where s.id_hash = ? and s.expires_at > ? and k.revoked_at is null and k.team_id = s.team_id`
)

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

// TaskPage reads one page of a team's tasks, newest first, without counting the table.
func (s *Store) TaskPage(ctx context.Context, f PageFilter) (*Page, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	cond, args, order := pageCond(f)
	asc := order == "asc"
	var rows []TaskRow
	p := &Page{}
	if f.Search != "" && !f.SearchIsID {
		maxScan := f.MaxScan
		if maxScan <= 0 {
			maxScan = DefaultMaxScan
		}
		like := "%" + escapeLike(f.Search) + "%"
		sargs := append(append([]any{}, args...), maxScan, like, like, like, f.Limit+1)
		if err := s.R.SelectContext(ctx, &rows, searchQuery(cond, order), sargs...); err != nil {
			return nil, fmt.Errorf("search tasks: %w", err)
		}
		if len(rows) <= f.Limit && !asc {
			// Fewer matches than a page: if there are tasks below the window, the search
			// goes on from its last one.
			var edge []string
			if err := s.R.SelectContext(ctx, &edge, `select id from tasks where `+cond+` order by id desc limit 2 offset ?`,
				append(append([]any{}, args...), maxScan-1)...); err != nil {
				return nil, fmt.Errorf("search tasks: %w", err)
			}
			if len(edge) == 2 {
				p.ScannedTo = edge[0]
			}
		}
	} else {
		q := `select ` + rowCols + ` from tasks where ` + cond + ` order by id ` + order + ` limit ?`
		if err := s.R.SelectContext(ctx, &rows, q, append(args, f.Limit+1)...); err != nil {
			return nil, fmt.Errorf("list tasks: %w", err)
		}
	}
	p.Rows = rows
	if len(rows) > f.Limit {
		p.Rows, p.More = rows[:f.Limit], true
	}
	if asc {
		slices.Reverse(p.Rows)
	}
	return p, nil
}

// pageCond is the where clause of a page: team, status, id, and the keyset cursor. Every
// form of it is a range of the (team_id, id) or (team_id, status, id) index.
func pageCond(f PageFilter) (cond string, args []any, order string) {
	where := []string{"team_id = ?"}
	args = []any{f.TeamID}
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, f.Status)
	} else if len(f.Statuses) > 0 {
		// "+status": not by the status index, which would need a sort of all those tasks;
		// the (team_id, id) index is read in page order and filtered.
		where = append(where, "+status in (?"+strings.Repeat(", ?", len(f.Statuses)-1)+")")
		for _, st := range f.Statuses {
			args = append(args, st)
		}
	}
	if f.CreatedFrom > 0 {
		where = append(where, "id >= ?")
		args = append(args, MinUUIDv7(f.CreatedFrom))
	}
	if f.CreatedTo > 0 {
		where = append(where, "id < ?")
		args = append(args, MinUUIDv7(f.CreatedTo))
	}
	if f.SearchIsID {
		where = append(where, "id = ?")
		args = append(args, f.Search)
	}
	order = "desc"
	switch {
	case f.After != "":
		where = append(where, "id > ?")
		args = append(args, f.After)
		order = "asc"
	case f.Before != "":
		where = append(where, "id < ?")
		args = append(args, f.Before)
	}
	return strings.Join(where, " and "), args, order
}

// searchQuery walks at most a window of rows (the first extra argument) of the index
// in page order, keeps those whose target URL, id or error matches (the same pattern, three
// times), and reads the page of them.
func searchQuery(cond, order string) string {
	window := `select id, target_url, error from tasks where ` + cond + ` order by id ` + order + ` limit ?`
	return `select ` + rowCols + ` from tasks where id in (select id from (` + window + `)
		where target_url like ? escape '\' or id like ? escape '\' or coalesce(error, '') like ? escape '\'
		order by id ` + order + ` limit ?) order by id ` + order
}

// NewestTaskID returns the id of the team's newest task, "" when it has none.
func (s *Store) NewestTaskID(ctx context.Context, teamID string) (string, error) {
	var ids []string
	err := s.R.SelectContext(ctx, &ids, qNewestTaskID, teamID)
	if err != nil || len(ids) == 0 {
		return "", err
	}
	return ids[0], nil
}

// TeamTaskIDs returns those of ids that are tasks of teamID (ids must be canonical UUIDs).
func (s *Store) TeamTaskIDs(ctx context.Context, teamID string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, teamID)
	for _, id := range ids {
		args = append(args, id)
	}
	q := `select id from tasks where team_id = ? and id in (?` + strings.Repeat(", ?", len(ids)-1) + `)`
	var out []string
	if err := s.R.SelectContext(ctx, &out, q, args...); err != nil {
		return nil, fmt.Errorf("check task ids: %w", err)
	}
	return out, nil
}

// MinuteStat counts the tasks created and finished in one minute.
type MinuteStat struct {
	Created, Completed int
	Failed             int // failed or timed out
	TimedOut           int // of Failed, those that timed out
}

// PerMinute counts a team's tasks created and finished in each minute since from (Unix ms),
// keyed by Unix minute. Failed counts failed and timed-out tasks.
func (s *Store) PerMinute(ctx context.Context, teamID string, from int64) (map[int64]*MinuteStat, error) {
	out := map[int64]*MinuteStat{}
	get := func(m int64) *MinuteStat {
		if out[m] == nil {
			out[m] = &MinuteStat{}
		}
		return out[m]
	}
	var created []struct {
		M int64 `db:"m"`
		N int   `db:"n"`
	}
	// The id bound (a minute early, for clock skew between id and created_at) keeps this
	// on the (team_id, id) index.
	err := s.R.SelectContext(ctx, &created, qCreatedPerMinute, teamID, MinUUIDv7(from-60_000), from)
	if err != nil {
		return nil, fmt.Errorf("count created tasks: %w", err)
	}
	for _, c := range created {
		get(c.M).Created = c.N
	}
	var done []struct {
		M      int64  `db:"m"`
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	err = s.R.SelectContext(ctx, &done, qFinishedPerMinute, teamID, from)
	if err != nil {
		return nil, fmt.Errorf("count finished tasks: %w", err)
	}
	for _, d := range done {
		st := get(d.M)
		switch d.Status {
		case StatusCompleted:
			st.Completed += d.N
		case StatusFailed:
			st.Failed += d.N
		case StatusTimeout:
			st.Failed += d.N
			st.TimedOut += d.N
		}
	}
	return out, nil
}

// MinUUIDv7 is the smallest UUIDv7 text of Unix millisecond ms: every id made at or
// after ms sorts at or after it.
func MinUUIDv7(ms int64) string {
	ms = max(ms, 0)
	return fmt.Sprintf("%08x-%04x-0000-0000-000000000000", uint64(ms)>>16&0xffffffff, uint64(ms)&0xffff)
}

// OldestPending returns the team's longest-waiting pending task, nil when there is none.
func (s *Store) OldestPending(ctx context.Context, teamID string) (*TaskRow, error) {
	var rows []TaskRow
	err := s.R.SelectContext(ctx, &rows, qOldestPending, teamID)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

// ExpiringSoonest returns the team's n waiting tasks with the nearest expiry.
func (s *Store) ExpiringSoonest(ctx context.Context, teamID string, n int) ([]TaskRow, error) {
	var rows []TaskRow
	err := s.R.SelectContext(ctx, &rows, qExpiringSoonest, teamID, n)
	return rows, err
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

// InsertAdminSession stores a new session (its hash, team and key).
func (t *Tx) InsertAdminSession(s *AdminSession) error {
	_, err := t.Exec(`insert into admin_sessions (id_hash, team_id, key_id, created_at, expires_at)
		values (?, ?, ?, ?, ?)`, s.IDHash, s.TeamID, s.KeyID, s.CreatedAt, s.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert admin session: %w", err)
	}
	return nil
}

// DeleteAdminSession ends a session.
func (t *Tx) DeleteAdminSession(idHash []byte) error {
	if _, err := t.Exec(`delete from admin_sessions where id_hash = ?`, idHash); err != nil {
		return fmt.Errorf("delete admin session: %w", err)
	}
	return nil
}

// PruneAdminSessions forgets sessions that expired before now.
func (t *Tx) PruneAdminSessions(now int64) error {
	if _, err := t.Exec(`delete from admin_sessions where expires_at < ?`, now); err != nil {
		return fmt.Errorf("prune admin sessions: %w", err)
	}
	return nil
}

// AdminSession finds a live session by the hash of its id: not expired at now, and its
// API key not revoked.
func (s *Store) AdminSession(ctx context.Context, idHash []byte, now int64) (*AdminSession, error) {
	var a AdminSession
	err := s.R.GetContext(ctx, &a, qAdminSession, idHash, now)
	if err != nil {
		return nil, err
	}
	return &a, nil
}
