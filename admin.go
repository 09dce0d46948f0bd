package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/asyncqueue/asyncqueue/internal/iplimit"
	"github.com/asyncqueue/asyncqueue/internal/keys"
	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/vault"
)

// The admin page: server-rendered html/template pages, one stylesheet and one small script,
// all embedded. It logs in with an API key and shows and acts on that key's team only.

//go:embed web
var webFS embed.FS

// Admin page settings.
const (
	// SessionTTL is how long an admin login lasts. A session also ends at logout and as soon
	// as the API key it was opened with is revoked.
	SessionTTL = 12 * time.Hour
	// LoginAttemptsPerMinute is how many login attempts one client address may make per minute.
	LoginAttemptsPerMinute = 10
	// AdminPageSize is the number of tasks on one page of the task list.
	AdminPageSize = 50
	// AdminStreamsPerTeam is how many live-update streams (open admin pages) one team may
	// have at once; more are refused with 429 until one closes.
	AdminStreamsPerTeam = 64

	sessionCookie = "asyncqueue_session"
	maxSearch     = 500
	sseLifetime   = 10 * time.Minute // a stream ends now and then; the browser reconnects and so re-checks the login
)

// adminCSP allows nothing but this origin's own files: no inline script or style at all.
const adminCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

type admin struct {
	a          *App
	pages      map[string]*template.Template
	static     map[string]staticFile
	loginLimit *iplimit.Limiter
	reveals    reveals
	// sessionsEnded fires when a key is revoked or a session logs out here: open streams
	// check their session at once rather than at their next periodic check.
	sessionsEnded broadcast

	streamMu sync.Mutex
	streams  map[string]int // open event streams by team
}

// broadcast wakes every waiter each time it fires.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}

// openStream counts a stream of team against AdminStreamsPerTeam; false when it is full.
func (s *admin) openStream(team string) bool {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.streams[team] >= AdminStreamsPerTeam {
		return false
	}
	if s.streams == nil {
		s.streams = map[string]int{}
	}
	s.streams[team]++
	return true
}

func (s *admin) closeStream(team string) {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.streams[team]--; s.streams[team] <= 0 {
		delete(s.streams, team)
	}
}

// reveals holds secrets made by a POST (a new API key, a retried task's signal token) for
// the page the POST redirects to, which shows each once (post/redirect/get: reloading that
// page neither repeats the action nor shows the secret again). They stay in memory only,
// for a few minutes, under the session that made them.
type reveals struct {
	mu sync.Mutex
	m  map[string]reveal // by session id hash and what it is for ("key", "token:<task id>")
}

type reveal struct {
	value, name string
	until       time.Time
}

const revealTTL = 5 * time.Minute

func (rv *reveals) put(sess *session, what, value, name string) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	now := time.Now()
	if rv.m == nil {
		rv.m = map[string]reveal{}
	}
	for k, v := range rv.m {
		if now.After(v.until) {
			delete(rv.m, k)
		}
	}
	rv.m[string(sess.IDHash)+"\x00"+what] = reveal{value, name, now.Add(revealTTL)}
}

// take returns and forgets what the session's last POST left to show.
func (rv *reveals) take(sess *session, what string) (value, name string) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	k := string(sess.IDHash) + "\x00" + what
	v, ok := rv.m[k]
	delete(rv.m, k)
	if !ok || time.Now().After(v.until) {
		return "", ""
	}
	return v.value, v.name
}

type staticFile struct {
	body    []byte
	ctype   string
	version string // content hash, the ?v= of the URL, so the file can be cached for good
}

// session is a logged-in browser.
type session struct {
	*store.AdminSession
	csrf string
}

// adminFunc is an admin handler that runs for a logged-in session.
type adminFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// adminHandler serves the admin page at / (everything the API routes do not take).
func (a *App) adminHandler() http.Handler { return a.newAdmin().handler() }

// newAdmin loads the admin page's templates and static files.
func (a *App) newAdmin() *admin {
	s := &admin{a: a, pages: map[string]*template.Template{}, static: map[string]staticFile{},
		loginLimit: iplimit.New(LoginAttemptsPerMinute, 0)}
	for _, name := range []string{"admin.css", "admin.js"} {
		b, err := webFS.ReadFile("web/" + name)
		if err != nil {
			panic(err) // embedded: cannot happen in a built binary
		}
		sum := sha256.Sum256(b)
		ctype := "text/css; charset=utf-8"
		if path.Ext(name) == ".js" {
			ctype = "text/javascript; charset=utf-8"
		}
		s.static[name] = staticFile{body: b, ctype: ctype, version: hex.EncodeToString(sum[:6])}
	}
	funcs := template.FuncMap{
		"ts": fmtMS, "tsp": fmtMSp, "ago": ago, "agop": agop, "dur": fmtDurMS, "num": fmtNum,
		"statusClass": func(s string) string { return "st st-" + s },
	}
	names, err := fs.Glob(webFS, "web/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" {
			continue
		}
		s.pages[base] = template.Must(template.New(base).Funcs(funcs).ParseFS(webFS, "web/layout.html", n))
	}
	return s
}

// handler routes the admin page's requests, behind cross-origin protection.
func (s *admin) handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		if rt.public != nil {
			mux.HandleFunc(rt.pattern, rt.public)
		} else {
			mux.Handle(rt.pattern, s.auth(rt.h))
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.render(w, r, http.StatusNotFound, "error", &view{Title: "Not found", Err: "There is no page at this address."})
	})

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.a.log.Warn("admin: cross-origin request refused", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		s.render(w, r, http.StatusForbidden, "error", &view{Title: "Forbidden",
			Err: "Cross-origin request refused: state changes must come from this admin page itself."})
	}))
	return securityHeaders(cop.Handler(mux))
}

// adminRoute is one route of the admin page: public (login, static files) or behind a login.
type adminRoute struct {
	pattern string
	h       adminFunc
	public  http.HandlerFunc
}

// routes lists every admin route; the tests walk this table to check that each non-public
// one refuses a request without a session.
func (s *admin) routes() []adminRoute {
	return []adminRoute{
		{pattern: "GET /static/{file}", public: s.serveStatic},
		{pattern: "GET /login", public: s.loginPage},
		{pattern: "POST /login", public: s.login},
		{pattern: "POST /logout", h: s.logout},
		{pattern: "GET /{$}", h: s.overview},
		{pattern: "GET /tasks", h: s.taskList},
		{pattern: "GET /tasks/{id}", h: s.taskDetail},
		{pattern: "POST /tasks/bulk", h: s.bulkAction},
		{pattern: "POST /tasks/{id}/{action}", h: s.taskAction},
		{pattern: "GET /keys", h: s.keysPage},
		{pattern: "POST /keys", h: s.createKey},
		{pattern: "POST /keys/{id}/revoke", h: s.revokeKey},
		{pattern: "POST /webhook-secret/rotate", h: s.rotateSecret},
		{pattern: "GET /flows", h: s.flowsPage},
		{pattern: "POST /flows", h: s.flowAction},
		{pattern: "GET /vault", h: s.vaultPage},
		{pattern: "POST /vault", h: s.createVaultToken},
		{pattern: "POST /vault/{id}/delete", h: s.deleteVaultToken},
		{pattern: "GET /events", h: s.events},
		{pattern: "GET /schedules", h: s.scheduleList},         // admin_schedules.go
		{pattern: "GET /schedules/{sid}", h: s.scheduleDetail}, // admin_schedules.go
		{pattern: "POST /schedules/{sid}/{action}", h: s.scheduleAction},
	}
}

// securityHeaders sets the headers every admin response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", adminCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

func (s *admin) serveStatic(w http.ResponseWriter, r *http.Request) {
	f, ok := s.static[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	if r.URL.Query().Get("v") == f.version {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Write(f.body)
}

func (s *admin) asset(name string) string { return "/static/" + name + "?v=" + s.static[name].version }

// ---- sessions and login ----

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

// fail shows an error page for err (nothing when err is nil).
func (s *admin) fail(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	if err == nil || errors.Is(err, context.Canceled) {
		return
	}
	var e *Error
	var mbe *http.MaxBytesError
	se := storageError(err)
	switch {
	case errors.As(err, &e):
	case se != nil: // a full disk or an I/O error: said as the API says it (507, 503)
		e = se
		s.a.log.Error("storage", "method", r.Method, "path", r.URL.Path, "err", err)
	case errors.As(err, &mbe):
		e = errorf(http.StatusRequestEntityTooLarge, "The form is larger than %d bytes.", mbe.Limit)
	default:
		s.a.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{http.StatusInternalServerError, "Internal error"}
	}
	s.render(w, r, e.Status, "error", &view{Title: http.StatusText(e.Status), Sess: sess, Err: e.Message})
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

// ---- rendering ----

// view is what every page template gets.
type view struct {
	Title string
	Nav   string // the active nav entry
	Sess  *session
	Live  string // the event stream that tells this page to refresh itself, if any
	Flash string
	Err   string
	Login bool // offer a link to the login page
	Data  any
	CSS   string
	JS    string
}

func (v *view) CSRF() string {
	if v.Sess == nil {
		return ""
	}
	return v.Sess.csrf
}

func (s *admin) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	v.CSS, v.JS = s.asset("admin.css"), s.asset("admin.js")
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", v); err != nil {
		s.a.log.Error("admin: render page", "page", name, "err", err)
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

// ---- overview ----

type statusCount struct {
	Status string
	N      int
}

type overviewView struct {
	Counts     []statusCount
	Total      int
	Pending    int
	Processing int
	Delayed    int
	Waiting    int
	Oldest     *store.TaskRow
	Expiring   []store.TaskRow
	Chart      chart
}

func (s *admin) overview(w http.ResponseWriter, r *http.Request, sess *session) error {
	ctx := r.Context()
	counts, err := s.a.store.StatusCounts(ctx, sess.TeamID)
	if err != nil {
		return err
	}
	n := func(st string) int { return int(counts[st]) }
	ov := overviewView{Pending: n(store.StatusPending), Processing: n(store.StatusProcessing),
		Delayed: n(store.StatusDelayed), Waiting: n(store.StatusWaiting)}
	for _, st := range allStatuses {
		ov.Counts = append(ov.Counts, statusCount{st, n(st)})
		ov.Total += n(st)
	}
	if ov.Oldest, err = s.a.store.OldestPending(ctx, sess.TeamID); err != nil {
		return err
	}
	if ov.Expiring, err = s.a.store.ExpiringSoonest(ctx, sess.TeamID, 5); err != nil {
		return err
	}
	now := time.Now()
	nowMin := now.Unix() / 60
	per, err := s.a.store.PerMinute(ctx, sess.TeamID, (nowMin-59)*60_000)
	if err != nil {
		return err
	}
	ov.Chart = buildChart(per, nowMin)
	newest, err := s.a.store.NewestTaskID(ctx, sess.TeamID)
	if err != nil {
		return err
	}
	live := url.Values{"top": {newest}, "new": {"1"}, "every": {"5"}}
	s.render(w, r, http.StatusOK, "overview", &view{Title: "Overview", Nav: "overview", Sess: sess,
		Live: "/events?" + live.Encode(), Data: ov})
	return nil
}

// chart is the per-minute bar chart of the last hour, drawn as SVG by the template.
type chart struct {
	Width, Height int
	Bars          []bar
	Ticks         []tick
	Max           int
	Created       int
	Completed     int
	Failed        int // failed or timed out
	TimedOut      int
	Label         string
}

type bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type tick struct {
	X     float64
	Label string
}

func buildChart(per map[int64]*store.MinuteStat, nowMin int64) chart {
	const slots, slotW, plotH, top = 60, 10.0, 100.0, 4.0
	c := chart{Width: slots * slotW, Height: int(plotH + top + 30)}
	for m := nowMin - slots + 1; m <= nowMin; m++ {
		if st := per[m]; st != nil {
			c.Max = max(c.Max, st.Created, st.Completed, st.Failed)
			c.Created += st.Created
			c.Completed += st.Completed
			c.Failed += st.Failed
			c.TimedOut += st.TimedOut
		}
	}
	scale := 1.0
	if c.Max > 0 {
		scale = plotH / float64(c.Max)
	}
	for i := range slots {
		m := nowMin - slots + 1 + int64(i)
		st := per[m]
		if st == nil {
			continue
		}
		at := time.Unix(m*60, 0).UTC().Format("15:04")
		for j, v := range []struct {
			n     int
			class string
		}{{st.Created, "created"}, {st.Completed, "completed"}, {st.Failed, "failed or timed out"}} {
			if v.n == 0 {
				continue
			}
			h := math.Max(float64(v.n)*scale, 1)
			c.Bars = append(c.Bars, bar{X: float64(i)*slotW + 0.5 + float64(j)*3, Y: round2(top + plotH - h), W: 3, H: round2(h),
				Class: "bar-" + strings.Fields(v.class)[0], Title: fmt.Sprintf("%s UTC: %d %s", at, v.n, v.class)})
		}
	}
	for _, back := range []int{60, 45, 30, 15} {
		c.Ticks = append(c.Ticks, tick{X: float64(slots-back) * slotW, Label: fmt.Sprintf("−%d min", back)})
	}
	c.Ticks = append(c.Ticks, tick{X: slots*slotW - 1, Label: "now"})
	c.Label = fmt.Sprintf("Tasks per minute over the last hour: %d created, %d completed, %d failed or timed out (%d timed out)",
		c.Created, c.Completed, c.Failed, c.TimedOut)
	return c
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// ---- task list ----

type listView struct {
	Rows      []store.TaskRow
	Status    string          // the one status filtered on, if just one
	Picked    map[string]bool // the statuses filtered on
	Several   bool            // more than one status
	Q         string
	From, To  string // the created-time range, as the form's datetime-local values (UTC)
	Filtered  bool
	Query     url.Values // the filter, for links and the bulk form
	Statuses  []string
	First     bool
	Newer     string
	Older     string
	Newest    string
	ScannedTo string
	CanCancel bool // a bulk cancel or retry of the filtered set makes sense
	CanRetry  bool
}

// dateTimeLocal is the format of an <input type="datetime-local">; the page reads it as UTC.
const dateTimeLocal = "2006-01-02T15:04"

// listFilter reads the task list's filter from q: status (repeated or comma-separated),
// q (search), from and to (created time, UTC).
func listFilter(q url.Values, teamID string) (store.PageFilter, listView, error) {
	f := store.PageFilter{TeamID: teamID, Limit: AdminPageSize}
	lv := listView{Statuses: allStatuses, Picked: map[string]bool{}, Query: url.Values{}}
	var picked []string
	for _, v := range q["status"] {
		for _, st := range strings.Split(v, ",") {
			if st = strings.TrimSpace(st); st == "" || slices.Contains(picked, st) {
				continue
			}
			if !slices.Contains(allStatuses, st) {
				return f, lv, errorf(http.StatusBadRequest, "Unknown status %q", st)
			}
			picked = append(picked, st)
			lv.Picked[st] = true
		}
	}
	switch len(picked) {
	case 0:
	case 1:
		f.Status, lv.Status = picked[0], picked[0]
	default:
		f.Statuses, lv.Several = picked, true
	}
	if len(picked) > 0 {
		lv.Query.Set("status", strings.Join(picked, ","))
	}
	if search := strings.TrimSpace(q.Get("q")); search != "" {
		if len(search) > maxSearch {
			return f, lv, errorf(http.StatusBadRequest, "The search text is longer than %d characters", maxSearch)
		}
		lv.Q = search
		lv.Query.Set("q", search)
		if id, err := uuid.Parse(search); err == nil {
			f.Search, f.SearchIsID = id.String(), true
		} else {
			f.Search = search
		}
	}
	for _, p := range []struct {
		name string
		ms   *int64
		text *string
	}{{"from", &f.CreatedFrom, &lv.From}, {"to", &f.CreatedTo, &lv.To}} {
		v := strings.TrimSpace(q.Get(p.name))
		if v == "" {
			continue
		}
		t, err := time.Parse(dateTimeLocal, v)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, v); err != nil {
				return f, lv, errorf(http.StatusBadRequest, "%s must be a date and time such as 2025-01-31T14:30", p.name)
			}
		}
		*p.ms, *p.text = t.UnixMilli(), t.UTC().Format(dateTimeLocal)
		lv.Query.Set(p.name, *p.text)
	}
	if f.CreatedFrom > 0 && f.CreatedTo > 0 && f.CreatedTo <= f.CreatedFrom {
		return f, lv, errorf(http.StatusBadRequest, "to must be later than from")
	}
	lv.Filtered = len(lv.Query) > 0
	for _, st := range picked {
		lv.CanCancel = lv.CanCancel || cancellable(st)
		lv.CanRetry = lv.CanRetry || retryable(st)
	}
	return f, lv, nil
}

func cancellable(status string) bool {
	switch status {
	case store.StatusPending, store.StatusDelayed, store.StatusWaiting, store.StatusPolling:
		return true
	}
	return false
}

func retryable(status string) bool {
	switch status {
	case store.StatusFailed, store.StatusTimeout, store.StatusCancelled:
		return true
	}
	return false
}

func (s *admin) taskList(w http.ResponseWriter, r *http.Request, sess *session) error {
	q := r.URL.Query()
	f, lv, err := listFilter(q, sess.TeamID)
	if err != nil {
		return err
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"before", &f.Before}, {"after", &f.After}} {
		if v := q.Get(p.name); v != "" {
			id, err := uuid.Parse(v)
			if err != nil {
				return errorf(http.StatusBadRequest, "%s must be a task id", p.name)
			}
			*p.dst = id.String()
		}
	}
	page, err := s.a.store.TaskPage(r.Context(), f)
	if err != nil {
		return err
	}
	if f.After != "" && !page.More {
		// Paging back reached the newest tasks: show the first page, which is live.
		f.After = ""
		if page, err = s.a.store.TaskPage(r.Context(), f); err != nil {
			return err
		}
	}
	lv.Rows = page.Rows
	lv.First = f.Before == "" && f.After == ""
	link := func(k, v string) string {
		u := cloneQuery(lv.Query)
		if k != "" {
			u.Set(k, v)
		}
		if len(u) == 0 {
			return "/tasks"
		}
		return "/tasks?" + u.Encode()
	}
	if !lv.First {
		lv.Newest = link("", "")
	}
	if n := len(page.Rows); n > 0 {
		if page.More || f.After != "" {
			lv.Older = link("before", page.Rows[n-1].ID)
		}
		if !lv.First {
			lv.Newer = link("after", page.Rows[0].ID)
		}
	}
	if page.ScannedTo != "" {
		lv.ScannedTo = link("before", page.ScannedTo)
	}

	live := url.Values{}
	ids := make([]string, len(page.Rows))
	for i, t := range page.Rows {
		ids[i] = t.ID
	}
	if len(ids) > 0 {
		live.Set("watch", strings.Join(ids, ","))
	}
	if lv.First && lv.Filtered {
		// A task can move into the filter at any time: follow the counts it would change.
		live.Set("counts", cmp.Or(lv.Query.Get("status"), "all"))
	}
	if lv.First {
		newest, err := s.a.store.NewestTaskID(r.Context(), sess.TeamID)
		if err != nil {
			return err
		}
		live.Set("top", newest)
		live.Set("new", "1")
		live.Set("every", "15")
	}
	s.render(w, r, http.StatusOK, "tasks", &view{Title: "Tasks", Nav: "tasks", Sess: sess,
		Flash: bulkFlash(s, sess, q.Get("done")), Live: "/events?" + live.Encode(), Data: lv})
	return nil
}

func cloneQuery(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// BulkMax is how many tasks one bulk action on the task list acts on at most.
const BulkMax = 1000

// bulkView is the confirmation page of a bulk action.
type bulkView struct {
	Action   string // cancel or retry
	N        int    // tasks it would act on now
	More     bool   // there are more than BulkMax
	Query    url.Values
	Describe string // the filter, in words
	Back     string
}

// bulkAction is POST /tasks/bulk: cancel or retry every task of the list's filter (only a
// filter on status, search or time; at most BulkMax). Without confirm=yes it shows what it
// would do and asks; with it, it acts through the API's handlers, task by task, and
// redirects to the list with a notice of what was done.
func (s *admin) bulkAction(w http.ResponseWriter, r *http.Request, sess *session) error {
	action := r.PostFormValue("action")
	var applies func(string) bool
	var h func(http.ResponseWriter, *http.Request) error
	switch action {
	case "cancel":
		applies, h = cancellable, s.a.cancelTask
	case "retry":
		applies, h = retryable, s.a.retryTask
	default:
		return errorf(http.StatusBadRequest, "There is no bulk action %q", action)
	}
	f, lv, err := listFilter(r.PostForm, sess.TeamID)
	if err != nil {
		return err
	}
	if !lv.Filtered {
		return errorf(http.StatusBadRequest, "A bulk action needs a filter (status, search or time).")
	}
	// Only the statuses the action applies to.
	var sts []string
	if f.Status != "" {
		sts = []string{f.Status}
	} else if len(f.Statuses) > 0 {
		sts = f.Statuses
	} else {
		sts = allStatuses
	}
	sts = slices.DeleteFunc(slices.Clone(sts), func(st string) bool { return !applies(st) })
	if len(sts) == 0 {
		return errorf(http.StatusBadRequest, "No task with these statuses can be %s.", map[string]string{"cancel": "cancelled", "retry": "retried"}[action])
	}
	f.Status, f.Statuses = "", sts
	if len(sts) == 1 {
		f.Status, f.Statuses = sts[0], nil
	}
	var ids []string
	more := false
	f.Limit = 200
	for {
		page, err := s.a.store.TaskPage(r.Context(), f)
		if err != nil {
			return err
		}
		for _, t := range page.Rows {
			if len(ids) == BulkMax {
				more = true
				break
			}
			ids = append(ids, t.ID)
		}
		next := page.ScannedTo
		if page.More && len(page.Rows) > 0 {
			next = page.Rows[len(page.Rows)-1].ID
		}
		if more || next == "" {
			break
		}
		f.Before = next
	}
	back := "/tasks"
	if len(lv.Query) > 0 {
		back += "?" + lv.Query.Encode()
	}
	if r.PostFormValue("confirm") != "yes" {
		s.render(w, r, http.StatusOK, "bulk", &view{Title: "Confirm bulk " + action, Nav: "tasks", Sess: sess,
			Data: bulkView{Action: action, N: len(ids), More: more, Query: lv.Query, Describe: describeFilter(lv, sts), Back: back}})
		return nil
	}
	done, refused := 0, 0
	for _, id := range ids {
		status, _, err := s.callAPI(r.Context(), sess, http.MethodPost, h, id, nil)
		if err != nil {
			return err
		}
		if status < 400 {
			done++
		} else {
			refused++ // it changed in the meantime
		}
	}
	s.a.log.Info("admin: bulk action", "team", sess.TeamID, "action", action, "done", done, "refused", refused, "by", sess.KeyPrefix)
	past := map[string]string{"cancel": "cancelled", "retry": "queued to run again"}[action]
	msg := fmt.Sprintf("%d task%s %s.", done, plural(done), past)
	if refused > 0 {
		msg += fmt.Sprintf(" %d had changed in the meantime and were left as they are.", refused)
	}
	s.reveals.put(sess, "bulk", msg, "")
	q := cloneQuery(lv.Query)
	q.Set("done", "bulk")
	http.Redirect(w, r, "/tasks?"+q.Encode(), http.StatusSeeOther)
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// bulkFlash is the notice left by a bulk action (numbers only, made here).
func bulkFlash(s *admin, sess *session, done string) string {
	if done != "bulk" {
		return ""
	}
	msg, _ := s.reveals.take(sess, "bulk")
	return msg
}

// describeFilter says in words which tasks a filter selects.
func describeFilter(lv listView, sts []string) string {
	parts := []string{"status " + strings.Join(sts, " or ")}
	if lv.Q != "" {
		parts = append(parts, fmt.Sprintf("matching “%s”", lv.Q))
	}
	if lv.From != "" {
		parts = append(parts, "created from "+strings.Replace(lv.From, "T", " ", 1)+" UTC")
	}
	if lv.To != "" {
		parts = append(parts, "created before "+strings.Replace(lv.To, "T", " ", 1)+" UTC")
	}
	return strings.Join(parts, ", ")
}

// ---- task detail and actions ----

type field struct {
	Label, Value string
	Mono         bool
}

type header struct {
	Name, Value string
	Hidden      bool
}

type callView struct {
	StatusCode int
	Duration   int64
	Truncated  bool
	Headers    []header
	Body       string
	BodyJSON   bool
}

type resultView struct {
	Pretty string
	Call   *callView
}

type attemptView struct {
	N          int
	StartedAt  int64
	DurationMS int64
	StatusCode *int
	Error      *string
	Ok         bool
}

// vaultNames maps the team's vault token ids to names, when the headers refer to any.
func (s *admin) vaultNames(ctx context.Context, teamID, headers string) (map[string]string, error) {
	if !strings.Contains(headers, vaultTokenPrefix) {
		return nil, nil
	}
	vs, err := s.a.store.VaultTokens(ctx, teamID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(vs))
	for _, v := range vs {
		out[v.ID] = v.Name
	}
	return out, nil
}

type signalView struct {
	Events            []eventView // signals, heartbeats and callbacks received, oldest first
	Used              string
	Buffered          string
	Progress          string
	LastHeartbeatAt   *int64
	HeartbeatTimeout  string
	WaitingSince      *int64
	ExpiresAt         *int64
	Waiting           bool   // the deadlines apply only while the task waits
	HeartbeatDeadline *int64 // last heartbeat (or the start of the wait) + heartbeat timeout
}

// inFlightView is the call of a processing task that has not ended yet.
type inFlightView struct {
	N         int   // its number
	Prev      int   // the call before it, when Since is only a lower bound
	Since     int64 // its start, or (Exact false) the end of the call before it
	Exact     bool
	For       string // how long it has run
	TimeoutAt int64  // when its timeout ends it (at the latest, when not Exact)
}

type eventView struct {
	At     int64
	Kind   string
	Detail string
}

type webhookView struct {
	URL       string
	Status    string
	Attempts  int
	LastError string
	NextTry   *int64
}

type taskView struct {
	T           *store.Task
	Fields      []field
	Headers     []header
	Body        string
	BodyJSON    bool
	Attempts    []attemptView
	StartResult *resultView
	Result      *resultView
	Signal      *signalView
	Webhook     *webhookView
	CanCancel   bool
	CanRetry    bool
	CanSignal   bool
	SignalToken string // a new token after a retry, shown this once
	ResultText  string // what was typed into Approve, when it was not JSON
	InFlight    *inFlightView
}

// doneMessages are the notices after an action (by ?done=), fixed texts so nothing is reflected.
var doneMessages = map[string]string{
	"cancel":   "Task cancelled.",
	"retry":    "Task queued to run again.",
	"approve":  "Task approved: it is completed.",
	"reject":   "Task rejected: it is failed.",
	"buffered": "The signal was kept: it applies as soon as the task's callback is answered.",
	"created":  "API key created.",
	"revoked":  "API key revoked.",
	"rotated":  "Webhook secret rotated. The previous secret keeps signing for 24 hours.",
	"stored":   "Vault token stored. Its value cannot be shown again; tasks refer to it by its id.",
	"deleted":  "Vault token deleted. Tasks that still refer to it fail when they send.",
}

func parseTaskID(s string) (string, error) {
	id, err := uuid.Parse(s)
	if err != nil || id.String() != strings.ToLower(s) {
		return "", errorf(http.StatusNotFound, "Task not found")
	}
	return id.String(), nil
}

func (s *admin) taskDetail(w http.ResponseWriter, r *http.Request, sess *session) error {
	done := r.URL.Query().Get("done")
	var token string
	if done == "retry" {
		token, _ = s.reveals.take(sess, "token:"+r.PathValue("id"))
	}
	return s.showTask(w, r, sess, http.StatusOK, doneMessages[done], "", token)
}

func (s *admin) showTask(w http.ResponseWriter, r *http.Request, sess *session, status int, flash, errMsg, token string) error {
	return s.showTaskTyped(w, r, sess, status, flash, errMsg, token, "")
}

// showTaskTyped is showTask with typed, the Approve box's text, put back after an error.
func (s *admin) showTaskTyped(w http.ResponseWriter, r *http.Request, sess *session, status int, flash, errMsg, token, typed string) error {
	id, err := parseTaskID(r.PathValue("id"))
	if err != nil {
		return err
	}
	t, err := s.a.store.Task(r.Context(), id)
	if store.IsNotFound(err) || (err == nil && t.TeamID != sess.TeamID) {
		return errorf(http.StatusNotFound, "Task not found")
	} else if err != nil {
		return err
	}
	t = s.a.sched.view(t) // a call without a written claim shows as processing
	as, err := s.a.store.Attempts(r.Context(), id)
	if err != nil {
		return err
	}
	tokens, err := s.vaultNames(r.Context(), sess.TeamID, t.Headers)
	if err != nil {
		return err
	}
	tv := buildTaskView(s.a.taskJSON(t), t, as, tokens)
	if tv.Signal != nil {
		es, err := s.a.store.Events(r.Context(), id, 100)
		if err != nil {
			return err
		}
		for _, e := range es {
			ev := eventView{At: e.At, Kind: e.Kind}
			if e.Detail != nil {
				ev.Detail, _ = prettyJSON(*e.Detail)
			}
			tv.Signal.Events = append(tv.Signal.Events, ev)
		}
	}
	tv.SignalToken, tv.ResultText = token, typed
	live := url.Values{"watch": {t.ID}}
	s.render(w, r, status, "task", &view{Title: "Task " + t.ID, Nav: "tasks", Sess: sess, Flash: flash, Err: errMsg,
		Live: "/events?" + live.Encode(), Data: tv})
	return nil
}

// shownFields are the task fields the detail page shows in their own places; every other
// field of the API's task object is listed as it is, so new fields show up by themselves.
var shownFields = map[string]bool{"id": true, "teamId": true, "status": true, "targetUrl": true, "method": true,
	"headers": true, "body": true, "timeout": true, "delayUntil": true, "maxRetries": true, "retryBackoff": true,
	"priority": true, "onCompleteUrl": true, "waitForSignal": true, "maxWaitTime": true, "heartbeatTimeout": true,
	"retryCount": true, "startResult": true, "result": true, "error": true, "progress": true, "lastHeartbeatAt": true,
	"bufferedSignal": true, "onComplete": true, "createdAt": true, "startedAt": true, "waitingSince": true,
	"expiresAt": true, "completedAt": true}

func buildTaskView(j *TaskJSON, t *store.Task, as []store.Attempt, tokens map[string]string) *taskView {
	tv := &taskView{T: t}
	add := func(label, value string, mono bool) {
		if value != "" {
			tv.Fields = append(tv.Fields, field{label, value, mono})
		}
	}
	add("ID", t.ID, true)
	add("Status", t.Status, false)
	add("Method", t.Method, false)
	add("Target URL", t.TargetURL, true)
	add("Priority", strconv.Itoa(t.Priority), false)
	add("Timeout", fmtDurMS(t.TimeoutMS), false)
	add("Retries", fmt.Sprintf("%d of %d (%s backoff)", t.RetryCount, t.MaxRetries, t.RetryBackoff), false)
	calls := strconv.Itoa(t.Attempts)
	if t.Status == store.StatusProcessing {
		calls += " (the last one is in flight)"
	}
	add("Calls made", calls, false)
	add("Delay until", fmtMSp(t.DelayUntil), false)
	if t.WaitForSignal {
		add("Waits for a signal", "yes, up to "+fmtDurMS(t.MaxWaitMS), false)
	} else {
		add("Waits for a signal", "no", false)
	}
	if t.HeartbeatTimeoutMS != nil {
		add("Heartbeat timeout", fmtDurMS(*t.HeartbeatTimeoutMS), false)
	}
	add("Completion webhook", deref(t.OnCompleteURL), true)
	add("Created", fmtMS(t.CreatedAt), false)
	add("Started", fmtMSp(t.StartedAt), false)
	add("Waiting since", fmtMSp(t.WaitingSince), false)
	if t.Status == store.StatusWaiting || t.Status == store.StatusPolling {
		add("Expires", fmtMSp(t.ExpiresAt), false)
	}
	add("Finished", fmtMSp(t.CompletedAt), false)
	if label := nextTimerLabel(t); label != "" {
		add(label, fmtMSp(t.DueAt)+" ("+agop(t.DueAt)+")", false)
	}
	add("Error", deref(t.Error), false)
	add("Team", j.TeamID, true)
	var all map[string]json.RawMessage
	b, _ := json.Marshal(j)
	json.Unmarshal(b, &all)
	others := make([]string, 0, len(all))
	for k, v := range all {
		if !shownFields[k] && string(v) != "null" {
			others = append(others, k)
		}
	}
	slices.Sort(others)
	for _, k := range others {
		var s string
		if json.Unmarshal(all[k], &s) != nil {
			s, _ = prettyJSON(string(all[k]))
		}
		add(k, s, true)
	}

	tv.Headers = headerList(hdrMap(t), tokens)
	if t.Body != nil {
		tv.Body, tv.BodyJSON = prettyJSON(*t.Body)
	}
	for _, a := range as {
		tv.Attempts = append(tv.Attempts, attemptView{N: a.Attempt, StartedAt: a.StartedAt, DurationMS: a.DurationMS,
			StatusCode: a.StatusCode, Error: a.Error, Ok: a.Error == nil && a.StatusCode != nil && *a.StatusCode < 500})
	}
	tv.InFlight = inFlight(t, as, store.NowMS())
	if t.StartResult != nil {
		tv.StartResult = buildResult(*t.StartResult, true)
	}
	if t.Result != nil {
		// A signal's result is the signaller's JSON; otherwise it is the target's answer.
		tv.Result = buildResult(*t.Result, t.Signal == nil)
	}
	if t.WaitForSignal {
		sv := &signalView{LastHeartbeatAt: t.LastHeartbeatAt, WaitingSince: t.WaitingSince, ExpiresAt: t.ExpiresAt,
			Waiting: t.Status == store.StatusWaiting}
		if sv.Waiting && t.HeartbeatTimeoutMS != nil {
			if from := cmp.Or(t.LastHeartbeatAt, t.WaitingSince); from != nil {
				d := *from + *t.HeartbeatTimeoutMS
				sv.HeartbeatDeadline = &d
			}
		}
		if t.Signal != nil {
			sv.Used, _ = prettyJSON(*t.Signal)
		}
		if t.BufferedSignal != nil {
			sv.Buffered, _ = prettyJSON(*t.BufferedSignal)
		}
		if t.Progress != nil {
			sv.Progress, _ = prettyJSON(*t.Progress)
		}
		if t.HeartbeatTimeoutMS != nil {
			sv.HeartbeatTimeout = fmtDurMS(*t.HeartbeatTimeoutMS)
		}
		tv.Signal = sv
	}
	if t.OnCompleteURL != nil {
		wv := &webhookView{URL: *t.OnCompleteURL, Status: "not yet (the task has not finished)"}
		if t.OnComplete != nil {
			st, err := t.WebhookState()
			if err != nil {
				slog.Error("show task", "err", err)
			}
			wv.Status, wv.Attempts, wv.LastError = st.Status, st.Attempts, deref(st.LastError)
			if st.Status == "pending" {
				wv.NextTry = t.DueAt
			}
		}
		tv.Webhook = wv
	}
	switch t.Status {
	case store.StatusPending, store.StatusDelayed, store.StatusWaiting, store.StatusPolling:
		tv.CanCancel = true
	case store.StatusFailed, store.StatusTimeout, store.StatusCancelled:
		tv.CanRetry = true
	}
	tv.CanSignal = t.Status == store.StatusWaiting
	return tv
}

// nextTimerLabel names what the task's timer (DueAt) is for, "" when it has none.
func nextTimerLabel(t *store.Task) string {
	if t.DueAt == nil {
		return ""
	}
	switch t.Status {
	case store.StatusDelayed, store.StatusPending:
		if t.Attempts > 0 {
			return "Next try at"
		}
		return "Runs at"
	case store.StatusWaiting:
		if t.ExpiresAt != nil && *t.DueAt < *t.ExpiresAt {
			return "Times out at (heartbeat deadline)"
		}
		return "Times out at (max wait)"
	case store.StatusPolling:
		return "Next poll at"
	}
	if t.OnCompleteURL != nil {
		return "Next webhook attempt at"
	}
	return "Next timer"
}

// inFlight describes the running call of a processing task. The task records when its
// first call started; a later call started at some point after the one before it ended.
func inFlight(t *store.Task, as []store.Attempt, now int64) *inFlightView {
	if t.Status != store.StatusProcessing || t.Attempts <= len(as) {
		return nil
	}
	v := &inFlightView{N: t.Attempts}
	switch {
	case len(as) == 0 && t.StartedAt != nil:
		v.Since, v.Exact = *t.StartedAt, true
	case len(as) > 0:
		last := as[len(as)-1]
		v.Since, v.Prev = last.StartedAt+last.DurationMS, last.Attempt
	default:
		return nil
	}
	v.For = "under a second"
	if d := now - v.Since; d >= 1000 {
		v.For = fmtDurMS(d / 1000 * 1000)
	}
	v.TimeoutAt = v.Since + t.TimeoutMS
	if !v.Exact {
		v.TimeoutAt = now + t.TimeoutMS // it started at the latest now
	}
	return v
}

// sensitiveHeader reports whether a header's value is a credential, which the page never shows.
func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "set-cookie":
		return true
	}
	for _, part := range []string{"token", "secret", "password", "passwd", "key", "auth", "signature", "session", "credential"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

// headerList orders headers for display. A vault reference (tok_…) is shown with the
// token's name (tokens: id → name of the team's live tokens); any other value of a
// credential header is hidden.
func headerList(h map[string]string, tokens map[string]string) []header {
	out := make([]header, 0, len(h))
	for k, v := range h {
		hd := header{Name: k, Value: v}
		if strings.HasPrefix(v, vaultTokenPrefix) && vault.ValidTokenID(v) {
			if name, ok := tokens[v]; ok {
				hd.Value = fmt.Sprintf("%s (vault token %q)", v, name)
			} else {
				hd.Value = v + " (vault token deleted or unknown)"
			}
		} else if sensitiveHeader(k) {
			hd.Hidden = true
			hd.Value = fmt.Sprintf("hidden (%d characters)", len(v))
		}
		out = append(out, hd)
	}
	slices.SortFunc(out, func(a, b header) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out
}

func buildResult(raw string, call bool) *resultView {
	rv := &resultView{}
	rv.Pretty, _ = prettyJSON(raw)
	if !call {
		return rv
	}
	var cr struct {
		StatusCode *int              `json:"statusCode"`
		Headers    map[string]string `json:"headers"`
		Body       *string           `json:"body"`
		Duration   int64             `json:"duration"`
		Truncated  bool              `json:"truncated"`
	}
	if json.Unmarshal([]byte(raw), &cr) != nil || cr.StatusCode == nil || cr.Body == nil {
		return rv
	}
	cv := &callView{StatusCode: *cr.StatusCode, Duration: cr.Duration, Truncated: cr.Truncated, Headers: headerList(cr.Headers, nil)}
	cv.Body, cv.BodyJSON = prettyJSON(*cr.Body)
	rv.Call = cv
	return rv
}

// prettyJSON indents s when it is JSON and reports whether it was.
func prettyJSON(s string) (string, bool) {
	t := strings.TrimSpace(s)
	if t == "" || (t[0] != '{' && t[0] != '[') || !json.Valid([]byte(t)) {
		return s, false
	}
	var buf bytes.Buffer
	if json.Indent(&buf, []byte(t), "", "  ") != nil {
		return s, false
	}
	return buf.String(), true
}

// taskAction is POST /tasks/{id}/{cancel|retry|approve|reject}. Each runs the handler of the
// matching API route in-process for the session's team, so the admin page and the API
// cannot disagree on what an action does.
func (s *admin) taskAction(w http.ResponseWriter, r *http.Request, sess *session) error {
	id, err := parseTaskID(r.PathValue("id"))
	if err != nil {
		return err
	}
	action := r.PathValue("action")
	var h func(http.ResponseWriter, *http.Request) error
	var body []byte
	switch action {
	case "cancel":
		h = s.a.cancelTask
	case "retry":
		h = s.a.retryTask
	case "approve":
		sig := struct {
			Status string          `json:"status"`
			Result json.RawMessage `json:"result,omitempty"`
		}{Status: store.StatusCompleted}
		if res := strings.TrimSpace(r.PostFormValue("result")); res != "" {
			if !json.Valid([]byte(res)) {
				return s.showTaskTyped(w, r, sess, http.StatusBadRequest, "", "The result must be valid JSON, such as {\"approved\": true}.", "", r.PostFormValue("result"))
			}
			sig.Result = json.RawMessage(res)
		}
		body, _ = json.Marshal(sig)
		h = s.a.signalTaskByID
	case "reject":
		sig := struct {
			Status string `json:"status"`
			Error  string `json:"error,omitempty"`
		}{Status: store.StatusFailed, Error: strings.TrimSpace(r.PostFormValue("reason"))}
		body, _ = json.Marshal(sig)
		h = s.a.signalTaskByID
	default:
		return errorf(http.StatusNotFound, "There is no action %q", action)
	}
	status, out, err := s.callAPI(r.Context(), sess, http.MethodPost, h, id, body)
	if err != nil {
		return err
	}
	if status >= 400 {
		var msg string
		json.Unmarshal(out["error"], &msg)
		if status == http.StatusNotFound || status == http.StatusForbidden {
			return errorf(http.StatusNotFound, "Task not found")
		}
		return s.showTask(w, r, sess, status, "", msg, "")
	}
	var token string
	json.Unmarshal(out["signalToken"], &token)
	if token != "" {
		s.reveals.put(sess, "token:"+id, token, "") // shown once, like the API does
	}
	done := action
	var buffered bool
	json.Unmarshal(out["buffered"], &buffered)
	if buffered {
		done = "buffered"
	}
	http.Redirect(w, r, "/tasks/"+id+"?done="+done, http.StatusSeeOther)
	return nil
}

// callAPI runs an API handler in-process as the session's team, with {id} = id and body
// as its JSON request, and returns its status and decoded JSON answer.
func (s *admin) callAPI(ctx context.Context, sess *session, method string, h func(http.ResponseWriter, *http.Request) error,
	id string, body []byte) (int, map[string]json.RawMessage, error) {
	ctx = context.WithValue(ctx, teamKey, sess.TeamID)
	req, err := http.NewRequestWithContext(ctx, method, "/admin-action/"+id, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetPathValue("id", id)
	rec := &captureWriter{header: http.Header{}, status: http.StatusOK}
	s.a.handle(h).ServeHTTP(rec, req)
	var out map[string]json.RawMessage
	if err := json.Unmarshal(rec.body.Bytes(), &out); err != nil {
		return 0, nil, fmt.Errorf("admin action: decode %d answer: %w", rec.status, err)
	}
	if rec.status >= 500 {
		return 0, nil, &Error{rec.status, "Internal error"}
	}
	return rec.status, out, nil
}

// captureWriter records a response in memory.
type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *captureWriter) Header() http.Header         { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) { return c.body.Write(b) }
func (c *captureWriter) WriteHeader(code int)        { c.status = code }

// ---- keys and webhook secret ----

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

// rotateSecret is POST /webhook-secret/rotate, through the API route's handler.
func (s *admin) rotateSecret(w http.ResponseWriter, r *http.Request, sess *session) error {
	status, out, err := s.callAPI(r.Context(), sess, http.MethodPost, s.a.rotateWebhookSecret, "", nil)
	if err != nil {
		return err
	}
	if status >= 400 {
		var msg string
		json.Unmarshal(out["error"], &msg)
		return errorf(status, "%s", msg)
	}
	http.Redirect(w, r, "/keys?done=rotated", http.StatusSeeOther)
	return nil
}

// ---- Token Vault ----

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

// createVaultToken is POST /vault, through the API's POST /v1/tokens. The value goes
// straight into the vault and is never shown.
func (s *admin) createVaultToken(w http.ResponseWriter, r *http.Request, sess *session) error {
	name := strings.TrimSpace(r.PostFormValue("name"))
	body, _ := json.Marshal(map[string]string{"name": name, "value": r.PostFormValue("value")})
	status, out, err := s.callAPI(r.Context(), sess, http.MethodPost, s.a.createToken, "", body)
	if err != nil {
		return err
	}
	if status >= 400 {
		var msg string
		json.Unmarshal(out["error"], &msg)
		return s.showVault(w, r, sess, status, "", msg, name)
	}
	http.Redirect(w, r, "/vault?done=stored", http.StatusSeeOther)
	return nil
}

// deleteVaultToken is POST /vault/{id}/delete, through the API's DELETE /v1/tokens/{id}.
func (s *admin) deleteVaultToken(w http.ResponseWriter, r *http.Request, sess *session) error {
	status, out, err := s.callAPI(r.Context(), sess, http.MethodDelete, s.a.deleteToken, r.PathValue("id"), nil)
	if err != nil {
		return err
	}
	if status >= 400 {
		var msg string
		json.Unmarshal(out["error"], &msg)
		return s.showVault(w, r, sess, status, "", msg, "")
	}
	http.Redirect(w, r, "/vault?done=deleted", http.StatusSeeOther)
	return nil
}

// ---- live updates ----

// events is GET /events, a Server-Sent Events stream that says "change" when the page that
// opened it should refresh itself:
//   - watch=id,id,…: one of these tasks changed (the hub, after every commit);
//   - new=1&top=id: the team has a task newer than top (checked every second);
//   - counts=status,…: the team's count of tasks in one of these statuses changed (a task
//     moved into or out of a filtered list; "all": of any status);
//   - every=N: at least every N seconds (for counts that any task can move).
//
// A team has at most AdminStreamsPerTeam streams at once. The stream says "logout" and
// ends as soon as its session ends (logout, or its API key revoked).
func (s *admin) events(w http.ResponseWriter, r *http.Request, sess *session) error {
	if !s.openStream(sess.TeamID) {
		s.a.log.Warn("admin: too many live-update streams", "team", sess.TeamID, "limit", AdminStreamsPerTeam)
		w.Header().Set("Retry-After", "10")
		http.Error(w, fmt.Sprintf("Too many open admin pages for this team (at most %d live-update streams); close some.",
			AdminStreamsPerTeam), http.StatusTooManyRequests)
		return nil
	}
	defer s.closeStream(sess.TeamID)
	q := r.URL.Query()
	var watches []<-chan struct{}
	if ws := q.Get("watch"); ws != "" {
		var ids []string
		for i, v := range strings.Split(ws, ",") {
			if i == 2*AdminPageSize {
				break
			}
			if id, err := uuid.Parse(v); err == nil {
				ids = append(ids, id.String())
			}
		}
		// Only the team's own tasks: another team's would tell when its tasks change.
		ids, err := s.a.store.TeamTaskIDs(r.Context(), sess.TeamID, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			ch, stop := s.a.hub.watch(id)
			defer stop()
			watches = append(watches, ch)
		}
	}
	checkNew, top := q.Get("new") == "1", q.Get("top")
	var countOf []string // statuses whose counts to follow; "all" for every status
	if c := q.Get("counts"); c != "" {
		for _, st := range strings.Split(c, ",") {
			if st == "all" || slices.Contains(allStatuses, st) {
				countOf = append(countOf, st)
			}
		}
	}
	var lastCounts string
	countsNow := func() string {
		if len(countOf) == 0 {
			return ""
		}
		c, err := s.a.store.StatusCounts(r.Context(), sess.TeamID)
		if err != nil {
			return lastCounts // nothing new to tell
		}
		var b strings.Builder
		for _, st := range allStatuses {
			if countOf[0] == "all" || slices.Contains(countOf, st) {
				fmt.Fprintf(&b, "%d,", c[st])
			}
		}
		return b.String()
	}
	lastCounts = countsNow()
	var every time.Duration
	if n, err := strconv.Atoi(q.Get("every")); err == nil && n > 0 {
		every = time.Duration(max(n, 2)) * time.Second
	}

	rc := http.NewResponseController(w)
	// The server's read and write timeouts are for ordinary requests; a stream lives longer.
	rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(msg string) error {
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprint(w, msg); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send("retry: 3000\n: connected\n\n"); err != nil {
		return nil
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	start, lastSent, lastChange := time.Now(), time.Now(), time.Now()
	ended := s.sessionsEnded.wait()
	for i := 1; ; i++ {
		checkSession := i%20 == 0 // every 10 s: a key revoked by another process
		select {
		case <-r.Context().Done():
			return nil
		case <-s.a.hub.done:
			return nil
		case <-ended:
			ended, checkSession = s.sessionsEnded.wait(), true
		case <-tick.C:
		}
		if checkSession {
			if ss, err := s.session(r); err != nil || ss == nil {
				send("event: logout\ndata: {}\n\n")
				return nil
			}
		}
		changed := false
		for _, ch := range watches {
			select {
			case <-ch:
				changed = true
			default:
			}
		}
		if checkNew && i%2 == 0 {
			newest, err := s.a.store.NewestTaskID(r.Context(), sess.TeamID)
			if err != nil {
				return nil
			}
			if newest != top {
				top, changed = newest, true
			}
		}
		if c := countsNow(); c != lastCounts {
			lastCounts, changed = c, true
		}
		if every > 0 && time.Since(lastChange) >= every {
			changed = true
		}
		var err error
		switch {
		case changed:
			err = send("event: change\ndata: {}\n\n")
			lastSent, lastChange = time.Now(), time.Now()
		case time.Since(lastSent) > 15*time.Second:
			err = send(": ping\n\n")
			lastSent = time.Now()
		}
		if err != nil || time.Since(start) > sseLifetime {
			return nil
		}
	}
}

// ---- formatting ----

func fmtMS(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05 UTC") }

func fmtMSp(ms *int64) string {
	if ms == nil {
		return ""
	}
	return fmtMS(*ms)
}

// ago is a rough "how long from now": "5 s ago", "in 3 min".
func ago(ms int64) string {
	d := time.Until(time.UnixMilli(ms))
	future := d > 0
	d = d.Abs()
	var s string
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		s = fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%d h", int(d.Hours()))
	default:
		s = fmt.Sprintf("%d days", int(d.Hours()/24))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func agop(ms *int64) string {
	if ms == nil {
		return ""
	}
	return ago(*ms)
}

// fmtDurMS shows a duration in milliseconds the short way: "250 ms", "30 s", "1 h 30 min".
func fmtDurMS(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", ms)
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
	}
	var parts []string
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "min"}, {time.Second, "s"}} {
		if n := d / u.d; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, u.name))
			d -= n * u.d
		}
	}
	return strings.Join(parts, " ")
}

// fmtNum writes n with thousands separators: 1,234,567.
func fmtNum(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
