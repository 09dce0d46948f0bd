package main

// The admin page's keys, webhook secret and Token Vault.

import (
	"net/http"
	"strings"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

type keyRow struct {
	store.APIKey
	Current bool
}

type keysView struct {
	Keys       []keyRow
	NewKey     string
	NewKeyName string
	Secret     string
	PrevUntil  *int64
}

func (s *admin) keysPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	done := r.URL.Query().Get("done")
	var newKey, name string
	if done == "created" {
		newKey, name = s.reveals.take(sess, "key")
	}
	return s.showKeys(w, r, sess, http.StatusOK, doneMessages[done], "", newKey, name)
}

func (s *admin) showKeys(w http.ResponseWriter, r *http.Request, sess *session, status int, flash, errMsg, newKey, newKeyName string) error {
	ks, err := s.a.store.APIKeys(r.Context(), sess.TeamID)
	if err != nil {
		return err
	}
	team, err := s.a.store.Team(r.Context(), sess.TeamID)
	if err != nil {
		return err
	}
	kv := keysView{Secret: team.WebhookSecret, NewKey: newKey, NewKeyName: newKeyName}
	if len(team.Secrets(store.NowMS())) > 1 {
		kv.PrevUntil = team.PrevSecretUntil
	}
	for i := len(ks) - 1; i >= 0; i-- { // newest first
		kv.Keys = append(kv.Keys, keyRow{ks[i], ks[i].ID == sess.KeyID})
	}
	s.render(w, r, status, "keys", &view{Title: "Keys and secret", Nav: "keys", Sess: sess, Flash: flash, Err: errMsg, Data: kv})
	return nil
}

// createKey is POST /keys: a new key of the team, shown once on the page it redirects to.
func (s *admin) createKey(w http.ResponseWriter, r *http.Request, sess *session) error {
	name := strings.TrimSpace(r.PostFormValue("name"))
	if len(name) > 100 {
		return s.showKeys(w, r, sess, http.StatusBadRequest, "", "The name may be at most 100 characters.", "", "")
	}
	var raw string
	err := s.a.store.Write(r.Context(), func(tx store.Tx) error {
		var err error
		raw, _, err = createKey(tx, sess.TeamID, name)
		return err
	})
	if err != nil {
		return err
	}
	s.a.log.Info("admin: API key created", "team", sess.TeamID, "by", sess.KeyPrefix)
	s.reveals.put(sess, "key", raw, name)
	http.Redirect(w, r, "/keys?done=created", http.StatusSeeOther)
	return nil
}

// revokeKey is POST /keys/{id}/revoke. Revoking the key this session logged in with ends it.
func (s *admin) revokeKey(w http.ResponseWriter, r *http.Request, sess *session) error {
	id := r.PathValue("id")
	var ok bool
	err := s.a.store.Write(r.Context(), func(tx store.Tx) error {
		var err error
		ok, err = tx.RevokeAPIKey(sess.TeamID, id, store.NowMS())
		return err
	})
	if err != nil {
		return err
	}
	s.a.forgetKeys()
	s.sessionsEnded.fire() // pages open with this key end now
	if !ok {
		return s.showKeys(w, r, sess, http.StatusNotFound, "", "No such active key of this team.", "", "")
	}
	s.a.log.Info("admin: API key revoked", "team", sess.TeamID, "key", id, "by", sess.KeyPrefix)
	http.Redirect(w, r, "/keys?done=revoked", http.StatusSeeOther)
	return nil
}

// rotateSecret is POST /webhook-secret/rotate, through the same function as the API's route.
func (s *admin) rotateSecret(w http.ResponseWriter, r *http.Request, sess *session) error {
	if _, err := s.a.rotateSecret(r.Context(), sess.TeamID); err != nil {
		return err
	}
	http.Redirect(w, r, "/keys?done=rotated", http.StatusSeeOther)
	return nil
}

type vaultView struct {
	Tokens []store.VaultToken
	Name   string // kept in the form after an error
}

func (s *admin) vaultPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	return s.showVault(w, r, sess, http.StatusOK, doneMessages[r.URL.Query().Get("done")], "", "")
}

func (s *admin) showVault(w http.ResponseWriter, r *http.Request, sess *session, status int, flash, errMsg, name string) error {
	vs, err := s.a.store.VaultTokens(r.Context(), sess.TeamID)
	if err != nil {
		return err
	}
	s.render(w, r, status, "vault", &view{Title: "Token Vault", Nav: "vault", Sess: sess, Flash: flash, Err: errMsg,
		Data: vaultView{Tokens: vs, Name: name}})
	return nil
}

// createVaultToken is POST /vault, through the same function as the API's POST /v1/tokens.
// The value goes straight into the vault and is never shown.
func (s *admin) createVaultToken(w http.ResponseWriter, r *http.Request, sess *session) error {
	// Valid UTF-8, as a name and value sent to the API in JSON always are.
	name := strings.ToValidUTF8(strings.TrimSpace(r.PostFormValue("name")), "\uFFFD")
	value := strings.ToValidUTF8(r.PostFormValue("value"), "\uFFFD")
	if _, err := s.a.storeToken(r.Context(), sess.TeamID, name, value); err != nil {
		if e := clientError(err); e != nil {
			return s.showVault(w, r, sess, e.Status, "", e.Message, name)
		}
		return err
	}
	http.Redirect(w, r, "/vault?done=stored", http.StatusSeeOther)
	return nil
}

// deleteVaultToken is POST /vault/{id}/delete, through the same function as the API's
// DELETE /v1/tokens/{id}.
func (s *admin) deleteVaultToken(w http.ResponseWriter, r *http.Request, sess *session) error {
	if err := s.a.destroyToken(r.Context(), sess.TeamID, r.PathValue("id")); err != nil {
		if e := clientError(err); e != nil {
			return s.showVault(w, r, sess, e.Status, "", e.Message, "")
		}
		return err
	}
	http.Redirect(w, r, "/vault?done=deleted", http.StatusSeeOther)
	return nil
}
