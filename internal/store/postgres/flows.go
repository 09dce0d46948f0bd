package postgres

import (
	"context"
	"fmt"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

const flowCols = `team_id, key, parallelism, rate_per_second, paused, paused_until, updated_at`

// Flows returns every stored flow, for start-up.
func (s *Store) Flows(ctx context.Context) ([]store.Flow, error) {
	fs, err := selectStructs[store.Flow](ctx, s, `select `+flowCols+` from flows order by team_id, key`)
	if err != nil {
		return nil, fmt.Errorf("read flows: %w", err)
	}
	return fs, nil
}

// Flow reads one flow's settings for update (store.ErrNotFound if none).
func (t *Tx) Flow(teamID, key string) (*store.Flow, error) {
	return txGetStruct[store.Flow](t, `select `+flowCols+` from flows where team_id = $1 and key = $2 for update`, teamID, key)
}

// PutFlow stores a flow's settings.
func (t *Tx) PutFlow(f *store.Flow) error {
	_, err := t.exec(`insert into flows (`+flowCols+`) values ($1, $2, $3, $4, $5, $6, $7)
		on conflict (team_id, key) do update set parallelism = excluded.parallelism,
		rate_per_second = excluded.rate_per_second, paused = excluded.paused,
		paused_until = excluded.paused_until, updated_at = excluded.updated_at`,
		f.TeamID, f.Key, f.Parallelism, f.RatePerSecond, f.Paused, f.PausedUntil, f.UpdatedAt)
	if err != nil {
		return fmt.Errorf("store flow: %w", err)
	}
	t.flows = append(t.flows, store.FlowKey{TeamID: f.TeamID, Key: f.Key})
	return nil
}

// PauseFlowUntil records that a target asked flow key to wait until until (Unix ms); a
// later pause already stored stays.
func (t *Tx) PauseFlowUntil(teamID, key string, until, now int64) error {
	_, err := t.exec(`insert into flows (team_id, key, paused_until, updated_at) values ($1, $2, $3, $4)
		on conflict (team_id, key) do update set paused_until = greatest(coalesce(flows.paused_until, 0), excluded.paused_until),
		updated_at = excluded.updated_at`, teamID, key, until, now)
	if err != nil {
		return fmt.Errorf("pause flow: %w", err)
	}
	t.flows = append(t.flows, store.FlowKey{TeamID: teamID, Key: key})
	return nil
}
