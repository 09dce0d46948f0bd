package main

// The admin page's login: an API key opens a session (a cookie; only its SHA-256 is
// stored), every form carries a CSRF token derived from it, and login attempts are
// throttled per client address.

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/iplimit"
	"github.com/asyncqueue/asyncqueue/internal/keys"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// csrfToken is derived from the session id, which only the cookie holds (HttpOnly), so a
// page of another site can neither read nor compute it.
func csrfToken(sessionID string) string {
	sum := sha256.Sum256([]byte("asyncqueue admin csrf\x00" + sessionID))
	return hex.EncodeToString(sum[:16])
}

// session returns the live session of r, or nil.
func (s *admin) session(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) != 64 {
		return nil, nil
	}
	h := sha256.Sum256([]byte(c.Value))
	as, err := s.a.store.AdminSession(r.Context(), h[:], store.NowMS())
	if store.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return &session{AdminSession: as, csrf: csrfToken(c.Value)}, nil
}

// auth runs h for a logged-in session; others are sent to the login page (GET) or refused
// with 401. Every POST must also carry the session's CSRF token.
func (s *admin) auth(h adminFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.session(r)
		if err != nil {
			s.fail(w, r, nil, err)
			return
		}
		if sess == nil {
			if r.Method == http.MethodGet && r.URL.Path != "/events" {
				next := r.URL.Path
				if r.URL.RawQuery != "" {
					next += "?" + r.URL.RawQuery
				}
				http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
				return
			}
			s.render(w, r, http.StatusUnauthorized, "error", &view{Title: "Log in first",
				Err: "You are not logged in (or your session ended).", Login: true})
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, s.a.cfg.MaxBody)
			if err := r.ParseForm(); err != nil {
				s.fail(w, r, sess, errorf(http.StatusBadRequest, "Could not read the form: %v", err))
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.csrf)) != 1 {
				s.a.log.Warn("admin: request without a valid CSRF token refused", "path", r.URL.Path)
				s.fail(w, r, sess, errorf(http.StatusForbidden, "This form has expired or did not come from this page; reload and try again."))
				return
			}
		}
		s.fail(w, r, sess, h(w, r, sess))
	})
}

// secure reports whether the browser reached us over TLS: directly, or through one of the
// trusted proxies saying so.
func (s *admin) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https") &&
		iplimit.TrustedPeer(r, s.a.trusted)
}

// localPath keeps a post-login redirect on this site: a path, never "//host" or anything
// a browser could turn into one (backslashes, tabs and line breaks are dropped or rewritten
// by browsers).
func localPath(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") ||
		strings.ContainsFunc(next, func(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f }) {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

func (s *admin) loginPage(w http.ResponseWriter, r *http.Request) {
	sess, err := s.session(r)
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	next := localPath(r.URL.Query().Get("next"))
	if sess != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", &view{Title: "Log in", Data: loginView{Next: next}})
}

type loginView struct{ Next string }

// login is POST /login: an API key opens a session of its team.
func (s *admin) login(w http.ResponseWriter, r *http.Request) {
	ip := iplimit.ClientIP(r, s.a.trusted)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	r.ParseForm()
	next := localPath(r.PostFormValue("next"))
	lv := &view{Title: "Log in", Data: loginView{Next: next}}
	if ok, retry := s.loginLimit.Allow(ip); !ok {
		secs := max(int(math.Ceil(retry.Seconds())), 1)
		s.a.log.Warn("admin: login attempts throttled", "ip", ip.String(), "retry_after_s", secs)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		lv.Err = fmt.Sprintf("Too many login attempts from your address; try again in %d s.", secs)
		s.render(w, r, http.StatusTooManyRequests, "login", lv)
		return
	}
	raw := strings.TrimSpace(r.PostFormValue("key"))
	var key *store.APIKey
	if keys.ValidAPIKey(raw) {
		k, err := s.a.liveKey(r.Context(), keys.Hash(raw))
		if err != nil && !errors.Is(err, errKeyInvalid) {
			s.fail(w, r, nil, err)
			return
		}
		key = k
	}
	if key == nil {
		s.a.log.Warn("admin: login failed", "ip", ip.String())
		lv.Err = "Invalid or revoked API key."
		s.render(w, r, http.StatusUnauthorized, "login", lv)
		return
	}
	var id [32]byte
	rand.Read(id[:])
	raw = hex.EncodeToString(id[:])
	idHash := sha256.Sum256([]byte(raw))
	now := store.NowMS()
	err := s.a.store.Write(r.Context(), func(tx store.Tx) error {
		if err := tx.PruneAdminSessions(now); err != nil {
			return err
		}
		return tx.InsertAdminSession(&store.AdminSession{IDHash: idHash[:], TeamID: key.TeamID, KeyID: key.ID,
			CreatedAt: now, ExpiresAt: now + SessionTTL.Milliseconds()})
	})
	if err != nil {
		s.fail(w, r, nil, err)
		return
	}
	s.a.log.Info("admin: logged in", "ip", ip.String(), "key", key.Prefix, "team", key.TeamID)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: raw, Path: "/", MaxAge: int(SessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure(r)})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *admin) logout(w http.ResponseWriter, r *http.Request, sess *session) error {
	if err := s.a.store.Write(r.Context(), func(tx store.Tx) error {
		return tx.DeleteAdminSession(sess.IDHash)
	}); err != nil {
		return err
	}
	s.sessionsEnded.fire()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secure(r)})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}
