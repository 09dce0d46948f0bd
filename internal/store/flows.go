package store

import (
	"context"
	"fmt"
)

// Flow is a flow's stored settings (SPEC §10).
type Flow struct {
	TeamID        string   `db:"team_id"`
	Key           string   `db:"key"`
	Parallelism   *int     `db:"parallelism"`
	RatePerSecond *float64 `db:"rate_per_second"`
	Paused        bool     `db:"paused"`
	PausedUntil   *int64   `db:"paused_until"`
	UpdatedAt     int64    `db:"updated_at"`
}

// Flows returns every stored flow, for start-up.
func (s *Store) Flows(ctx context.Context) ([]Flow, error) {
	var fs []Flow
	if err := s.sel(ctx, &fs, `select * from flows order by team_id, key`); err != nil {
		return nil, fmt.Errorf("read flows: %w", err)
	}
	return fs, nil
}

// Flow reads one flow's settings inside a write; ErrNotFound-style sql.ErrNoRows if none.
func (t *Tx) Flow(teamID, key string) (*Flow, error) {
	var f Flow
	if err := t.Get(&f, `select * from flows where team_id = ? and key = ?`, teamID, key); err != nil {
		return nil, err
	}
	return &f, nil
}

// PutFlow stores a flow's settings.
func (t *Tx) PutFlow(f *Flow) error {
	_, err := t.NamedExec(`insert into flows (team_id, key, parallelism, rate_per_second, paused, paused_until, updated_at)
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
	_, err := t.Exec(`insert into flows (team_id, key, paused_until, updated_at) values (?, ?, ?, ?)
		on conflict (team_id, key) do update set paused_until = max(coalesce(paused_until, 0), excluded.paused_until),
		updated_at = excluded.updated_at`, teamID, key, until, now)
	if err != nil {
		return fmt.Errorf("pause flow: %w", err)
	}
	return nil
}
