package postgres

import (
	"context"
	"fmt"
)

// The counts of tasks by status are read from the table at each call, through
// tasks_team_id_status_id_idx: on a shared database another node's commits move them too,
// so no node can keep them in memory.

// StatusCounts returns the number of tasks by status, for one team or (teamID "") all teams.
func (s *Store) StatusCounts(ctx context.Context, teamID string) (map[string]int64, error) {
	q := `select status, count(*) from tasks group by status`
	var args []any
	if teamID != "" {
		q = `select status, count(*) from tasks where team_id = $1 group by status`
		args = []any{teamID}
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("count tasks: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count tasks: %w", classify(err))
		}
		out[st] = n
	}
	return out, classify(rows.Err())
}

// TeamStatusCounts returns the number of tasks by team, then status.
func (s *Store) TeamStatusCounts(ctx context.Context) (map[string]map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `select team_id, status, count(*) from tasks group by team_id, status`)
	if err != nil {
		return nil, fmt.Errorf("count tasks: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]map[string]int64{}
	for rows.Next() {
		var team, st string
		var n int64
		if err := rows.Scan(&team, &st, &n); err != nil {
			return nil, fmt.Errorf("count tasks: %w", classify(err))
		}
		if out[team] == nil {
			out[team] = map[string]int64{}
		}
		out[team][st] = n
	}
	return out, classify(rows.Err())
}
