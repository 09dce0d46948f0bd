package sqlite

import (
	"context"
	"fmt"
)

// Counts of tasks by team and status, kept in memory: loaded once at Open and moved by
// every committed write, so metrics and the admin overview need no COUNT(*) over the table.

type countKey struct{ team, status string }

// count records that n tasks of team moved from status from ("" for new) to status to ("" for deleted).
func (t *Tx) count(team, from, to string, n int64) {
	if from == to {
		return
	}
	if t.deltas == nil {
		t.deltas = map[countKey]int64{}
	}
	if from != "" {
		t.deltas[countKey{team, from}] -= n
	}
	if to != "" {
		t.deltas[countKey{team, to}] += n
	}
}

// countDeleted records that n tasks of team in status were deleted.
func (t *Tx) countDeleted(team, status string, n int64) { t.count(team, status, "", n) }

func (s *Store) loadCounts() error {
	var rows []struct {
		TeamID string `db:"team_id"`
		Status string `db:"status"`
		N      int64  `db:"n"`
	}
	if err := s.wdb.Select(&rows, `select team_id, status, count(*) as n from tasks group by team_id, status`); err != nil {
		return fmt.Errorf("count tasks: %w", err)
	}
	s.countMu.Lock()
	defer s.countMu.Unlock()
	s.counts = map[countKey]int64{}
	for _, r := range rows {
		s.counts[countKey{r.TeamID, r.Status}] = r.N
	}
	return nil
}

func (s *Store) applyCounts(d map[countKey]int64) {
	if len(d) == 0 {
		return
	}
	s.countMu.Lock()
	defer s.countMu.Unlock()
	for k, n := range d {
		s.counts[k] += n
	}
}

// StatusCounts returns the number of tasks by status, for one team or (teamID "") all
// teams, from the counts in memory.
func (s *Store) StatusCounts(ctx context.Context, teamID string) (map[string]int64, error) {
	return s.statusCounts(teamID), nil
}

func (s *Store) statusCounts(teamID string) map[string]int64 {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	out := map[string]int64{}
	for k, n := range s.counts {
		if teamID == "" || k.team == teamID {
			out[k.status] += n
		}
	}
	return out
}

// TeamStatusCounts returns a copy of all counts by team, then status.
func (s *Store) TeamStatusCounts(ctx context.Context) (map[string]map[string]int64, error) {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	out := map[string]map[string]int64{}
	for k, n := range s.counts {
		if out[k.team] == nil {
			out[k.team] = map[string]int64{}
		}
		out[k.team][k.status] = n
	}
	return out, nil
}
