package sqlite

import (
	"context"
	"fmt"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// InsertTeam adds a team.
func (t *Tx) InsertTeam(team *store.Team) error {
	_, err := t.namedExec(`insert into teams (id, name, webhook_secret, created_at)
		values (:id, :name, :webhook_secret, :created_at)`, team)
	if err != nil {
		return fmt.Errorf("insert team: %w", err)
	}
	return nil
}

// InsertAPIKey adds a key.
func (t *Tx) InsertAPIKey(k *store.APIKey) error {
	_, err := t.namedExec(`insert into api_keys (id, team_id, hash, prefix, name, created_at)
		values (:id, :team_id, :hash, :prefix, :name, :created_at)`, k)
	if err != nil {
		return fmt.Errorf("insert api key: %w", err)
	}
	return nil
}

// RevokeAPIKey marks a key revoked; it reports whether a live key of the team was found.
func (t *Tx) RevokeAPIKey(teamID, id string, now int64) (bool, error) {
	res, err := t.exec(`update api_keys set revoked_at = ? where id = ? and team_id = ? and revoked_at is null`, now, id, teamID)
	if err != nil {
		return false, fmt.Errorf("revoke api key: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// APIKeyTeam returns the team of a key, live or revoked.
func (t *Tx) APIKeyTeam(id string) (string, error) {
	var teamID string
	if err := t.get(&teamID, `select team_id from api_keys where id = ?`, id); err != nil {
		return "", err
	}
	return teamID, nil
}

// TeamByName finds a team inside a write.
func (t *Tx) TeamByName(name string) (*store.Team, error) {
	var team store.Team
	if err := t.get(&team, `select * from teams where name = ?`, name); err != nil {
		return nil, err
	}
	return &team, nil
}

const qTeamByID = `select * from teams where id = ?`

// Team reads a team inside a write.
func (t *Tx) Team(id string) (*store.Team, error) {
	var team store.Team
	if err := t.get(&team, qTeamByID, id); err != nil {
		return nil, err
	}
	return &team, nil
}

// CountTeams counts teams inside a write.
func (t *Tx) CountTeams() (int, error) {
	var n int
	err := t.get(&n, `select count(*) from teams`)
	return n, err
}

// RotateSecret makes secret current and keeps the old one signing until prevUntil.
func (t *Tx) RotateSecret(teamID, secret string, prevUntil int64) error {
	_, err := t.exec(`update teams set prev_webhook_secret = webhook_secret, prev_secret_until = ?,
		webhook_secret = ? where id = ?`, prevUntil, secret, teamID)
	if err != nil {
		return fmt.Errorf("rotate webhook secret: %w", err)
	}
	return nil
}

// Team reads a team.
func (s *Store) Team(ctx context.Context, id string) (*store.Team, error) {
	var team store.Team
	if err := s.get(ctx, &team, qTeamByID, id); err != nil {
		return nil, err
	}
	return &team, nil
}

// Teams lists all teams.
func (s *Store) Teams(ctx context.Context) ([]store.Team, error) {
	var ts []store.Team
	err := s.sel(ctx, &ts, `select * from teams order by created_at, name`)
	return ts, err
}

// APIKeyByHash finds a live or revoked key by its hash.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (*store.APIKey, error) {
	var k store.APIKey
	if err := s.get(ctx, &k, `select * from api_keys where hash = ?`, hash); err != nil {
		return nil, err
	}
	return &k, nil
}

// APIKeys lists a team's keys (all teams when teamID is empty).
func (s *Store) APIKeys(ctx context.Context, teamID string) ([]store.APIKey, error) {
	var ks []store.APIKey
	var err error
	if teamID == "" {
		err = s.sel(ctx, &ks, `select * from api_keys order by created_at`)
	} else {
		err = s.sel(ctx, &ks, `select * from api_keys where team_id = ? order by created_at`, teamID)
	}
	return ks, err
}

// Idempotency finds a key used since notBefore.
func (t *Tx) Idempotency(teamID, key string, notBefore int64) (*store.Idempotency, error) {
	var i store.Idempotency
	err := t.get(&i, `select * from idempotency_keys where team_id = ? and key = ? and created_at >= ?`, teamID, key, notBefore)
	if err != nil {
		return nil, err
	}
	return &i, nil
}

// PutIdempotency remembers a key (replacing an expired one).
func (t *Tx) PutIdempotency(i *store.Idempotency) error {
	_, err := t.namedExec(`insert or replace into idempotency_keys (team_id, key, request_hash, task_id, created_at)
		values (:team_id, :key, :request_hash, :task_id, :created_at)`, i)
	if err != nil {
		return fmt.Errorf("remember idempotency key: %w", err)
	}
	return nil
}

// PruneIdempotency forgets keys older than before, a few at a time.
func (t *Tx) PruneIdempotency(before int64, limit int) (int64, error) {
	res, err := t.exec(`delete from idempotency_keys where (team_id, key) in
		(select team_id, key from idempotency_keys where created_at < ? limit ?)`, before, limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
