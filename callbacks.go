package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/asyncqueue/asyncqueue/internal/keys"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// CallbackPlaceholder in a task's body or targetUrl becomes its provider callback URL.
const CallbackPlaceholder = "{asyncqueue_callback_url}"

var (
	errCallbackUnknown = &Error{http.StatusNotFound, "Invalid or expired callback ID"}
)

// usesCallback reports whether the task asks for a provider callback URL.
func usesCallback(t *store.Task) bool {
	return strings.Contains(t.TargetURL, CallbackPlaceholder) || (t.Body != nil && strings.Contains(*t.Body, CallbackPlaceholder))
}

// newCallback gives t a fresh callback id. Only a nonce and the id's SHA-256 are stored:
// the id itself is HMAC(vault key, nonce), so it can be rebuilt at send time by this server
// and by no one who has only the database.
func (a *App) newCallback(t *store.Task) {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	t.CallbackNonce = nonce
	id := a.callbackID(nonce)
	h := keys.Hash(id)
	t.CallbackHash = h[:]
}

func (a *App) callbackID(nonce []byte) string {
	m := hmac.New(sha256.New, a.vaultKey)
	m.Write([]byte("asyncqueue callback id\x00"))
	m.Write(nonce)
	return hex.EncodeToString(m.Sum(nil))
}

func (a *App) callbackURL(nonce []byte) string {
	return a.publicURL + "/v1/callbacks/" + a.callbackID(nonce)
}

// withCallbackURL fills the placeholder in s.
func (a *App) withCallbackURL(t *store.Task, s string) string {
	if t.CallbackNonce == nil {
		return s
	}
	return strings.ReplaceAll(s, CallbackPlaceholder, a.callbackURL(t.CallbackNonce))
}

// callback is POST /v1/callbacks/{id}: a provider reports that the work is done. Any JSON
// body completes the task, the way a signal does (applySignal); no API key, the id is the
// credential.
func (a *App) callback(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if !keys.ValidToken(id) {
		return errCallbackUnknown
	}
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	if err := checkDepth(raw); err != nil {
		return err
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil { // fails exactly when raw is not valid JSON
		return badRequest("Callback body must be JSON")
	}
	cb := buf.String()
	result, _ := json.Marshal(callResult{StatusCode: 200, Headers: map[string]string{}, Body: cb})
	sig := &signalBody{Status: store.StatusCompleted, Result: result}
	canon, _ := json.Marshal(sig)
	h := keys.Hash(id)
	var out *signalOutcome
	err = a.store.Write(r.Context(), func(tx store.Tx) error {
		t, err := tx.TaskByCallback(h[:])
		if store.IsNotFound(err) {
			return errCallbackUnknown
		} else if err != nil {
			return err
		}
		out, err = a.applySignal(tx, t, sig, string(canon), byCallback, &cb)
		return err
	})
	if err != nil {
		return err
	}
	if out.refused != nil {
		return out.refused
	}
	resp := map[string]any{"task": map[string]any{"id": out.task.ID, "status": out.task.Status}}
	if out.status == http.StatusAccepted {
		resp["buffered"] = true
	}
	return writeJSON(w, out.status, resp)
}
