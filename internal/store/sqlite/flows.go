package sqlite

import (
	"context"
	"fmt"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// Flows returns every stored flow, for start-up.
func (s *Store) Flows(ctx context.Context) ([]store.Flow, error) {
	var fs []store.Flow
	if err := s.sel(ctx, &fs, `select * from flows order by team_id, key`); err != nil {
		return nil, fmt.Errorf("read flows: %w", err)
	}
	return fs, nil
}

// Flow reads one flow's settings inside a write (store.ErrNotFound if none).
func (t *Tx) Flow(teamID, key string) (*store.Flow, error) {
	var f store.Flow
	if err := t.get(&f, `select * from flows where team_id = ? and key = ?`, teamID, key); err != nil {
		return nil, err
	}
	return &f, nil
}

// PutFlow stores a flow's settings.
func (t *Tx) PutFlow(f *store.Flow) error {
	_, err := t.namedExec(`insert into flows (team_id, key, parallelism, rate_per_second, paused, paused_until, updated_at)
		values (:team_id, :key, :parallelism, :rate_per_second, :paused, :paused_until, :updated_at)
		on conflict (team_id, key) do update set parallelism = excluded.parallelism,
		rate_per_second = excluded.rate_per_second, paused = excluded.paused,
		paused_until = excluded.paused_until, updated_at = excluded.updated_at`, f)
	if err != nil {
		return fmt.Errorf("store flow: %w", err)
	}
	return nil
}

// PauseFlowUntil records that a target asked flow key to wait until until (Unix ms); a
// later pause already stored stays.
func (t *Tx) PauseFlowUntil(teamID, key string, until, now int64) error {
	_, err := t.exec(`insert into flows (team_id, key, paused_until, updated_at) values (?, ?, ?, ?)
		on conflict (team_id, key) do update set paused_until = max(coalesce(paused_until, 0), excluded.paused_until),
		updated_at = excluded.updated_at`, teamID, key, until, now)
	if err != nil {
		return fmt.Errorf("pause flow: %w", err)
	}
	return nil
}
