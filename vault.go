package main

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/vault"
)

// vaultTokenPrefix starts every vault token id; a header value with it is a reference.
const vaultTokenPrefix = "tok_"

// Token Vault limits.
const (
	MaxTokenName  = 100
	MaxTokenValue = 8 << 10
)

// tokenJSON is a vault token as the API shows it: never its value.
type tokenJSON struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"createdAt"`
}

func tokenView(v *store.VaultToken) tokenJSON {
	return tokenJSON{ID: v.ID, Name: v.Name, CreatedAt: *formatTime(&v.CreatedAt)}
}

// createToken is POST /v1/tokens.
func (a *App) createToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name  *string `json:"name"`
		Value *string `json:"value"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	v, err := a.storeToken(r.Context(), teamOf(r), deref(req.Name), deref(req.Value))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, map[string]any{"token": tokenView(v)})
}

// storeToken seals value into the team's vault under name (400 when either is not
// acceptable). The API and the admin page both call it.
func (a *App) storeToken(ctx context.Context, team, name, value string) (*store.VaultToken, error) {
	if strings.TrimSpace(name) == "" || len(name) > MaxTokenName {
		return nil, badRequest("name is required, 1 to %d characters", MaxTokenName)
	}
	if value == "" || len(value) > MaxTokenValue {
		return nil, badRequest("value is required, at most %d bytes", MaxTokenValue)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return nil, badRequest("value may not contain line breaks or NUL (it is sent as a header value)")
	}
	if i := controlByte(value); i >= 0 {
		return nil, badRequest("value holds the control character 0x%02x; it is sent as a header value, where only tab and printable characters can go", value[i])
	}
	v := &store.VaultToken{ID: vault.NewTokenID(), TeamID: team, Name: strings.TrimSpace(name),
		CreatedAt: time.Now().UnixMilli()}
	v.Sealed = a.vault.Seal([]byte(value), v.ID)
	if err := a.store.Write(ctx, func(tx store.Tx) error { return tx.InsertVaultToken(v) }); err != nil {
		return nil, err
	}
	return v, nil
}

// listTokens is GET /v1/tokens.
func (a *App) listTokens(w http.ResponseWriter, r *http.Request) error {
	vs, err := a.store.VaultTokens(r.Context(), teamOf(r))
	if err != nil {
		return err
	}
	out := make([]tokenJSON, len(vs))
	for i := range vs {
		out[i] = tokenView(&vs[i])
	}
	return writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

// deleteToken is DELETE /v1/tokens/{id}: the value is destroyed; tasks that still name it fail when they send.
func (a *App) deleteToken(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.destroyToken(r.Context(), teamOf(r), id); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"deleted": true, "id": id})
}

// destroyToken deletes the team's vault token id (400 for a malformed id, 404 when the
// team has no such token). The API and the admin page both call it.
func (a *App) destroyToken(ctx context.Context, team, id string) error {
	if !vault.ValidTokenID(id) {
		return badRequest("%q is not a vault token id (tok_…)", id)
	}
	var found bool
	err := a.store.Write(ctx, func(tx store.Tx) (err error) {
		found, err = tx.DeleteVaultToken(team, id, time.Now().UnixMilli())
		return err
	})
	if err != nil {
		return err
	}
	if !found {
		return errorf(http.StatusNotFound, "Vault token %s not found", id)
	}
	return nil
}

// checkTokenRefs makes sure every tok_… header value names a live token of the team.
func (a *App) checkTokenRefs(ctx context.Context, teamID string, headers map[string]string) error {
	for k, v := range headers {
		if !strings.HasPrefix(v, vaultTokenPrefix) {
			continue
		}
		if !vault.ValidTokenID(v) {
			return badRequest("headers: %s looks like a vault token reference but %q is not a valid id", k, v)
		}
		t, err := a.store.VaultToken(ctx, teamID, v)
		if store.IsNotFound(err) || (err == nil && t.DeletedAt != nil) {
			return badRequest("headers: %s refers to vault token %s, which does not exist or was deleted", k, v)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// resolveHeaders returns the task's headers with vault references replaced by their values,
// in memory only, just before sending.
func (a *App) resolveHeaders(ctx context.Context, teamID string, headers map[string]string) (map[string]string, error) {
	if len(headers) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(headers))
	for k, v := range headers {
		if strings.HasPrefix(v, vaultTokenPrefix) && vault.ValidTokenID(v) {
			t, err := a.store.VaultToken(ctx, teamID, v)
			if store.IsNotFound(err) || (err == nil && t.DeletedAt != nil) {
				return nil, &permanentError{"Vault token " + v + " (header " + k + ") was deleted"}
			} else if err != nil {
				return nil, err
			}
			plain, err := a.vault.Open(t.Sealed, t.ID)
			if err != nil {
				return nil, &permanentError{"Vault token " + v + " cannot be decrypted: is --vault-key the key it was stored with?"}
			}
			v = string(plain)
		}
		out[k] = v
	}
	return out, nil
}

// permanentError fails a call without retrying it.
type permanentError struct{ msg string }

func (e *permanentError) Error() string { return e.msg }
