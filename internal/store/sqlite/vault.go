package sqlite

import (
	"context"
	"fmt"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// InsertVaultToken stores a sealed token.
func (t *Tx) InsertVaultToken(v *store.VaultToken) error {
	_, err := t.namedExec(`insert into vault_tokens (id, team_id, name, sealed, created_at)
		values (:id, :team_id, :name, :sealed, :created_at)`, v)
	if err != nil {
		return fmt.Errorf("insert vault token: %w", err)
	}
	return nil
}

// DeleteVaultToken forgets a token's value (the row stays, so references to it can say
// "deleted"); it reports whether a live token of the team was found.
func (t *Tx) DeleteVaultToken(teamID, id string, now int64) (bool, error) {
	res, err := t.exec(`update vault_tokens set deleted_at = ?, sealed = x'' where id = ? and team_id = ? and deleted_at is null`,
		now, id, teamID)
	if err != nil {
		return false, fmt.Errorf("delete vault token: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// VaultToken reads one token of a team (live or deleted).
func (s *Store) VaultToken(ctx context.Context, teamID, id string) (*store.VaultToken, error) {
	var v store.VaultToken
	if err := s.get(ctx, &v, `select * from vault_tokens where id = ? and team_id = ?`, id, teamID); err != nil {
		return nil, err
	}
	return &v, nil
}

// VaultTokens lists a team's live tokens, newest first.
func (s *Store) VaultTokens(ctx context.Context, teamID string) ([]store.VaultToken, error) {
	var vs []store.VaultToken
	err := s.sel(ctx, &vs, `select * from vault_tokens where team_id = ? and deleted_at is null order by created_at desc`, teamID)
	return vs, err
}
