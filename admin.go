package main

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/iplimit"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// The admin page: server-rendered html/template pages, one stylesheet and one small script,
// all embedded. It logs in with an API key and shows and acts on that key's team only.
// This file holds the admin type, its routes, rendering, error pages and the template
// helpers; the pages live in admin_*.go by concern. Every action calls the same service
// functions as the API routes (tasks.go, signals.go, vault.go, secrets.go, schedules.go).

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

// fail shows an error page for err (nothing when err is nil), mapped as the API maps it.
func (s *admin) fail(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	if err == nil {
		return
	}
	e, closeConn := s.a.answerFor(r, err, "admin request failed")
	if e == nil {
		return
	}
	if closeConn {
		w.Header().Set("Connection", "close")
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		e = errorf(e.Status, "The form is larger than %d bytes.", mbe.Limit)
	}
	s.render(w, r, e.Status, "error", &view{Title: http.StatusText(e.Status), Sess: sess, Err: e.Message})
}

// clientError is err when it is an *Error a user can act on (below 500), else nil.
func clientError(err error) *Error {
	var e *Error
	if errors.As(err, &e) && e.Status < http.StatusInternalServerError {
		return e
	}
	return nil
}

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
