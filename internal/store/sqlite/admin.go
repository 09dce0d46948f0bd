package sqlite

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// The admin page's queries. Each one is bounded by an index range, so none of them gets
// slower as the tasks table grows, except a target-URL search that finds few matches (see
// TaskPage). The overview's per-status counts come from Store.StatusCounts, kept in memory.

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

// TaskPage reads one page of a team's tasks, newest first, without counting the table.
func (s *Store) TaskPage(ctx context.Context, f store.PageFilter) (*store.Page, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	cond, args, order := pageCond(f)
	asc := order == "asc"
	var rows []store.TaskRow
	p := &store.Page{}
	if f.Search != "" && !f.SearchIsID {
		maxScan := f.MaxScan
		if maxScan <= 0 {
			maxScan = store.DefaultMaxScan
		}
		like := "%" + escapeLike(f.Search) + "%"
		sargs := append(append([]any{}, args...), maxScan, like, like, like, f.Limit+1)
		if err := s.rdb.SelectContext(ctx, &rows, searchQuery(cond, order), sargs...); err != nil {
			return nil, fmt.Errorf("search tasks: %w", err)
		}
		if len(rows) <= f.Limit && !asc {
			// Fewer matches than a page: if there are tasks below the window, the search
			// goes on from its last one.
			var edge []string
			if err := s.rdb.SelectContext(ctx, &edge, `select id from tasks where `+cond+` order by id desc limit 2 offset ?`,
				append(append([]any{}, args...), maxScan-1)...); err != nil {
				return nil, fmt.Errorf("search tasks: %w", err)
			}
			if len(edge) == 2 {
				p.ScannedTo = edge[0]
			}
		}
	} else {
		q := `select ` + rowCols + ` from tasks where ` + cond + ` order by id ` + order + ` limit ?`
		if err := s.rdb.SelectContext(ctx, &rows, q, append(args, f.Limit+1)...); err != nil {
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
func pageCond(f store.PageFilter) (cond string, args []any, order string) {
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
		args = append(args, store.MinUUIDv7(f.CreatedFrom))
	}
	if f.CreatedTo > 0 {
		where = append(where, "id < ?")
		args = append(args, store.MinUUIDv7(f.CreatedTo))
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
	err := s.rdb.SelectContext(ctx, &ids, qNewestTaskID, teamID)
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
	if err := s.rdb.SelectContext(ctx, &out, q, args...); err != nil {
		return nil, fmt.Errorf("check task ids: %w", err)
	}
	return out, nil
}

// PerMinute counts a team's tasks created and finished in each minute since from (Unix ms),
// keyed by Unix minute. Failed counts failed and timed-out tasks.
func (s *Store) PerMinute(ctx context.Context, teamID string, from int64) (map[int64]*store.MinuteStat, error) {
	out := map[int64]*store.MinuteStat{}
	get := func(m int64) *store.MinuteStat {
		if out[m] == nil {
			out[m] = &store.MinuteStat{}
		}
		return out[m]
	}
	var created []struct {
		M int64 `db:"m"`
		N int   `db:"n"`
	}
	// The id bound (a minute early, for clock skew between id and created_at) keeps this
	// on the (team_id, id) index.
	err := s.rdb.SelectContext(ctx, &created, qCreatedPerMinute, teamID, store.MinUUIDv7(from-60_000), from)
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
	err = s.rdb.SelectContext(ctx, &done, qFinishedPerMinute, teamID, from)
	if err != nil {
		return nil, fmt.Errorf("count finished tasks: %w", err)
	}
	for _, d := range done {
		get(d.M).AddFinished(d.Status, d.N)
	}
	return out, nil
}

// OldestPending returns the team's longest-waiting pending task, nil when there is none.
func (s *Store) OldestPending(ctx context.Context, teamID string) (*store.TaskRow, error) {
	var rows []store.TaskRow
	err := s.rdb.SelectContext(ctx, &rows, qOldestPending, teamID)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

// ExpiringSoonest returns the team's n waiting tasks with the nearest expiry.
func (s *Store) ExpiringSoonest(ctx context.Context, teamID string, n int) ([]store.TaskRow, error) {
	var rows []store.TaskRow
	err := s.rdb.SelectContext(ctx, &rows, qExpiringSoonest, teamID, n)
	return rows, err
}

// InsertAdminSession stores a new session (its hash, team and key).
func (t *Tx) InsertAdminSession(s *store.AdminSession) error {
	_, err := t.exec(`insert into admin_sessions (id_hash, team_id, key_id, created_at, expires_at)
		values (?, ?, ?, ?, ?)`, s.IDHash, s.TeamID, s.KeyID, s.CreatedAt, s.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert admin session: %w", err)
	}
	return nil
}

// DeleteAdminSession ends a session.
func (t *Tx) DeleteAdminSession(idHash []byte) error {
	if _, err := t.exec(`delete from admin_sessions where id_hash = ?`, idHash); err != nil {
		return fmt.Errorf("delete admin session: %w", err)
	}
	return nil
}

// PruneAdminSessions forgets sessions that expired before now.
func (t *Tx) PruneAdminSessions(now int64) error {
	if _, err := t.exec(`delete from admin_sessions where expires_at < ?`, now); err != nil {
		return fmt.Errorf("prune admin sessions: %w", err)
	}
	return nil
}

// AdminSession finds a live session by the hash of its id: not expired at now, and its
// API key not revoked.
func (s *Store) AdminSession(ctx context.Context, idHash []byte, now int64) (*store.AdminSession, error) {
	var a store.AdminSession
	err := s.rdb.GetContext(ctx, &a, qAdminSession, idHash, now)
	if err != nil {
		return nil, classify(notFound(err))
	}
	return &a, nil
}
