package postgres

import (
	"context"
	"fmt"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

const vaultCols = `id, team_id, name, sealed, created_at, deleted_at`

// InsertVaultToken stores a sealed token.
func (t *Tx) InsertVaultToken(v *store.VaultToken) error {
	_, err := t.exec(`insert into vault_tokens (id, team_id, name, sealed, created_at) values ($1, $2, $3, $4, $5)`,
		v.ID, v.TeamID, v.Name, v.Sealed, v.CreatedAt)
	if err != nil {
		return fmt.Errorf("insert vault token: %w", err)
	}
	t.config = true
	return nil
}

// DeleteVaultToken forgets a token's value (the row stays, so references to it can say
// "deleted"); it reports whether a live token of the team was found.
func (t *Tx) DeleteVaultToken(teamID, id string, now int64) (bool, error) {
	tag, err := t.exec(`update vault_tokens set deleted_at = $1, sealed = ''::bytea where id = $2 and team_id = $3 and deleted_at is null`,
		now, id, teamID)
	if err != nil {
		return false, fmt.Errorf("delete vault token: %w", err)
	}
	if tag.RowsAffected() == 1 {
		t.config = true
	}
	return tag.RowsAffected() == 1, nil
}

// VaultToken reads one token of a team, live or deleted.
func (s *Store) VaultToken(ctx context.Context, teamID, id string) (*store.VaultToken, error) {
	return getStruct[store.VaultToken](ctx, s, `select `+vaultCols+` from vault_tokens where id = $1 and team_id = $2`, id, teamID)
}

// VaultTokens lists a team's live tokens, newest first.
func (s *Store) VaultTokens(ctx context.Context, teamID string) ([]store.VaultToken, error) {
	return selectStructs[store.VaultToken](ctx, s, `select `+vaultCols+` from vault_tokens
		where team_id = $1 and deleted_at is null order by created_at desc, id desc`, teamID)
}
