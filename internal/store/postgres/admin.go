package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/jackc/pgx/v5"
)

// The admin page's queries, each bounded by an index range as on SQLite. The overview's
// per-status counts come from StatusCounts.

const rowCols = `id, status, target_url, method, priority, retry_count, attempts, wait_for_signal,
	substr(error, 1, 300) as error, created_at, completed_at, expires_at, due_at`

const (
	qNewestTaskID     = `select id from tasks where team_id = $1 order by id desc limit 1`
	qCreatedPerMinute = `select created_at / 60000 as m, count(*) as n from tasks
		where team_id = $1 and id >= $2 and created_at >= $3 group by m`
	qFinishedPerMinute = `select completed_at / 60000 as m, status, count(*) as n from tasks
		where team_id = $1 and completed_at >= $2 group by m, status`
	qOldestPending   = `select ` + rowCols + ` from tasks where team_id = $1 and status = 'pending' order by id limit 1`
	qExpiringSoonest = `select ` + rowCols + ` from tasks where team_id = $1 and status = 'waiting' order by expires_at limit $2`
	qAdminSession    = `select s.id_hash, s.team_id, s.key_id, s.created_at, s.expires_at,
			t.name as team_name, k.prefix as key_prefix
		from admin_sessions s join api_keys k on k.id = s.key_id join teams t on t.id = s.team_id
		where s.id_hash = $1 and s.expires_at > $2 and k.revoked_at is null and k.team_id = s.team_id`
)

// TaskPage reads one page of a team's tasks for the admin page, newest first, without
// counting the table.
func (s *Store) TaskPage(ctx context.Context, f store.PageFilter) (*store.Page, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	w, order := pageCond(f)
	asc := order == "asc"
	cond := w.String()
	n := len(w.args)
	var rows []store.TaskRow
	var err error
	p := &store.Page{}
	if f.Search != "" && !f.SearchIsID {
		maxScan := f.MaxScan
		if maxScan <= 0 {
			maxScan = store.DefaultMaxScan
		}
		like := "%" + escapeLike(f.Search) + "%"
		// A window of at most maxScan rows of the index, in page order; the page is read
		// from those whose target URL, id or error matches (ASCII case aside).
		window := fmt.Sprintf(`select id, target_url, error from tasks where %s order by id %s limit $%d`, cond, order, n+1)
		match := fmt.Sprintf(`target_url ilike $%[1]d escape '\' or id ilike $%[1]d escape '\' or coalesce(error, '') ilike $%[1]d escape '\'`, n+2)
		q := fmt.Sprintf(`select %s from tasks where id in (select id from (%s) as w where %s
			order by id %s limit $%d) order by id %s`, rowCols, window, match, order, n+3, order)
		rows, err = selectRows[store.TaskRow](ctx, s, q, append(w.args, maxScan, like, f.Limit+1)...)
		if err != nil {
			return nil, fmt.Errorf("search tasks: %w", err)
		}
		if len(rows) <= f.Limit && !asc {
			// Fewer matches than a page: if there are tasks below the window, the search
			// goes on from its last one.
			edge, err := selectRows[string](ctx, s, fmt.Sprintf(`select id from tasks where %s order by id desc limit 2 offset $%d`, cond, n+1),
				append(w.args, maxScan-1)...)
			if err != nil {
				return nil, fmt.Errorf("search tasks: %w", err)
			}
			if len(edge) == 2 {
				p.ScannedTo = edge[0]
			}
		}
	} else {
		q := fmt.Sprintf(`select %s from tasks where %s order by id %s limit $%d`, rowCols, cond, order, n+1)
		if rows, err = selectRows[store.TaskRow](ctx, s, q, append(w.args, f.Limit+1)...); err != nil {
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

// selectRows reads rows into structs by their db tags, or into single values.
func selectRows[T any](ctx context.Context, s *Store, query string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, classify(err)
	}
	var zero T
	var out []T
	if _, ok := any(zero).(string); ok {
		out, err = pgx.CollectRows(rows, pgx.RowTo[T])
	} else {
		out, err = pgx.CollectRows(rows, pgx.RowToStructByNameLax[T])
	}
	return out, classify(err)
}

// pageCond is the condition of a page: team, status, id, and the keyset cursor. Every form
// of it is a range of the (team_id, id) or (team_id, status, id) index.
func pageCond(f store.PageFilter) (w where, order string) {
	w.add("team_id = ?", f.TeamID)
	if f.Status != "" {
		w.add("status = ?", f.Status)
	} else if len(f.Statuses) > 0 {
		w.add("status = any(?)", f.Statuses)
	}
	if f.CreatedFrom > 0 {
		w.add("id >= ?", store.MinUUIDv7(f.CreatedFrom))
	}
	if f.CreatedTo > 0 {
		w.add("id < ?", store.MinUUIDv7(f.CreatedTo))
	}
	if f.SearchIsID {
		w.add("id = ?", f.Search)
	}
	order = "desc"
	switch {
	case f.After != "":
		w.add("id > ?", f.After)
		order = "asc"
	case f.Before != "":
		w.add("id < ?", f.Before)
	}
	return w, order
}

// NewestTaskID returns the id of the team's newest task, "" when it has none.
func (s *Store) NewestTaskID(ctx context.Context, teamID string) (string, error) {
	ids, err := selectRows[string](ctx, s, qNewestTaskID, teamID)
	if err != nil || len(ids) == 0 {
		return "", err
	}
	return ids[0], nil
}

// TeamTaskIDs returns those of ids that are tasks of teamID.
func (s *Store) TeamTaskIDs(ctx context.Context, teamID string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	out, err := selectRows[string](ctx, s, `select id from tasks where team_id = $1 and id = any($2)`, teamID, ids)
	if err != nil {
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
	type created struct {
		M int64 `db:"m"`
		N int   `db:"n"`
	}
	// The id bound (a minute early, for clock skew between id and created_at) keeps this
	// on the (team_id, id) index.
	cs, err := selectRows[created](ctx, s, qCreatedPerMinute, teamID, store.MinUUIDv7(from-60_000), from)
	if err != nil {
		return nil, fmt.Errorf("count created tasks: %w", err)
	}
	for _, c := range cs {
		get(c.M).Created = c.N
	}
	type finished struct {
		M      int64  `db:"m"`
		Status string `db:"status"`
		N      int    `db:"n"`
	}
	done, err := selectRows[finished](ctx, s, qFinishedPerMinute, teamID, from)
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
	rows, err := selectRows[store.TaskRow](ctx, s, qOldestPending, teamID)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return &rows[0], nil
}

// ExpiringSoonest returns the team's n waiting tasks with the nearest expiry.
func (s *Store) ExpiringSoonest(ctx context.Context, teamID string, n int) ([]store.TaskRow, error) {
	return selectRows[store.TaskRow](ctx, s, qExpiringSoonest, teamID, n)
}

// InsertAdminSession stores a new admin session.
func (t *Tx) InsertAdminSession(s *store.AdminSession) error {
	_, err := t.exec(`insert into admin_sessions (id_hash, team_id, key_id, created_at, expires_at)
		values ($1, $2, $3, $4, $5)`, s.IDHash, s.TeamID, s.KeyID, s.CreatedAt, s.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert admin session: %w", err)
	}
	return nil
}

// DeleteAdminSession ends a session; the other nodes drop what they cached of it.
func (t *Tx) DeleteAdminSession(idHash []byte) error {
	tag, err := t.exec(`delete from admin_sessions where id_hash = $1`, idHash)
	if err != nil {
		return fmt.Errorf("delete admin session: %w", err)
	}
	if tag.RowsAffected() > 0 {
		t.config = true
	}
	return nil
}

// PruneAdminSessions forgets sessions that expired before now.
func (t *Tx) PruneAdminSessions(now int64) error {
	if _, err := t.exec(`delete from admin_sessions where expires_at < $1`, now); err != nil {
		return fmt.Errorf("prune admin sessions: %w", err)
	}
	return nil
}

// AdminSession finds a live session by the hash of its id: not expired at now, and its API
// key not revoked.
func (s *Store) AdminSession(ctx context.Context, idHash []byte, now int64) (*store.AdminSession, error) {
	return getStruct[store.AdminSession](ctx, s, qAdminSession, idHash, now)
}
