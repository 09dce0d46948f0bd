package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/iplimit"
	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/vault"
)

// App is the running server: the HTTP API and, through its dispatcher, the workers and timers.
type App struct {
	log         *slog.Logger
	cfg         *ServeCmd
	publicURL   string
	trusted     []netip.Prefix
	store       store.Store
	shared      store.Shared // the same store when several nodes share it (PostgreSQL), else nil
	out         *outbound.Client
	sched       *scheduler  // the dispatcher's: what runs when (scheduler.go)
	disp        *dispatcher // nil until the dispatcher is made
	hub         *hub
	signalLimit *iplimit.Limiter

	callbackLimit *iplimit.Limiter
	metrics       *metrics
	teamLimit     *teamLimiter
	longPolls     teamCounter // long polls open, by team
	vault         *vault.Cipher
	vaultKey      []byte // also keys the HMAC that makes callback ids

	keyCache  sync.Map // [32]byte key hash → keyEntry
	teamMu    sync.Mutex
	teamCache map[string]*store.Team
}

// Error is what handlers return; it maps to a status and a message a user can act on.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

var (
	errKeyRequired  = &Error{http.StatusUnauthorized, "API key required"}
	errKeyInvalid   = &Error{http.StatusUnauthorized, "Invalid or revoked API key"}
	errAccessDenied = &Error{http.StatusForbidden, "Access denied"}
	errTaskNotFound = &Error{http.StatusNotFound, "Task not found"}
)

type ctxKey int

const teamKey ctxKey = 0

func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, h func(http.ResponseWriter, *http.Request) error) {
		mux.Handle(pattern, a.handle(a.authenticated(h)))
	}
	open := func(pattern string, h func(http.ResponseWriter, *http.Request) error) {
		mux.Handle(pattern, a.handle(h))
	}
	api("POST /v1/tasks", a.createTask)
	api("GET /v1/tasks", a.listTasks)
	api("GET /v1/tasks/{id}", a.getTask)
	api("GET /v1/tasks/{id}/attempts", a.getAttempts)
	api("GET /v1/tasks/{id}/events", a.getEvents)
	api("POST /v1/tasks/{id}/cancel", a.cancelTask)
	api("POST /v1/tasks/{id}/retry", a.retryTask)
	api("POST /v1/tasks/{id}/signal", a.signalTaskByID)
	api("GET /v1/flows", a.listFlows)
	api("GET /v1/flows/{key}", a.getFlow)
	api("PUT /v1/flows/{key}", a.putFlow)
	api("POST /v1/flows/{key}/pause", a.pauseFlow)
	api("POST /v1/flows/{key}/resume", a.resumeFlow)
	api("POST /v1/schedules", a.createSchedule)
	api("GET /v1/schedules", a.listSchedules)
	api("GET /v1/schedules/{id}", a.getSchedule)
	api("PATCH /v1/schedules/{id}", a.patchSchedule)
	api("DELETE /v1/schedules/{id}", a.deleteSchedule)
	api("POST /v1/schedules/{id}/pause", a.scheduleChange(a.pauseTeamSchedule))
	api("POST /v1/schedules/{id}/resume", a.scheduleChange(a.resumeTeamSchedule))
	api("POST /v1/schedules/{id}/trigger", a.triggerSchedule)
	api("GET /v1/webhook-secret", a.getWebhookSecret)
	api("POST /v1/webhook-secret/rotate", a.rotateWebhookSecret)
	api("POST /v1/tokens", a.createToken)
	api("GET /v1/tokens", a.listTokens)
	api("DELETE /v1/tokens/{id}", a.deleteToken)
	open("GET /v1/providers", a.listProviders)
	open("GET /v1/openapi.json", a.openAPI)
	open("POST /v1/callbacks/{id}", a.limited(a.callbackLimit, "callback", a.callback))
	open("POST /v1/signals/{token}", a.signalLimited(a.signalByToken))
	open("GET /v1/signals/{token}", a.signalLimited(a.getSignal))
	open("POST /v1/signals/{token}/heartbeat", a.signalLimited(a.heartbeat))
	open("GET /healthz", func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	open("GET /readyz", a.readyz)
	mux.Handle("GET /metrics", a.metrics.handler())
	open("/v1/", func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, "No route for %s %s", r.Method, r.URL.Path)
	})
	mux.Handle("/", a.adminHandler()) // the admin page (admin.go)
	return a.logRequests(mux)
}

// handle turns a handler's error into the JSON error response.
func (a *App) handle(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBody)
		err := h(w, r)
		if err == nil {
			return
		}
		e, closeConn := a.answerFor(r, err, "request failed")
		if e == nil {
			return
		}
		if closeConn {
			w.Header().Set("Connection", "close")
		}
		writeJSON(w, e.Status, map[string]string{"error": e.Message})
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func teamOf(r *http.Request) string { return r.Context().Value(teamKey).(string) }

// readyzTimeout bounds the database's answer to /readyz.
const readyzTimeout = 3 * time.Second

func (a *App) readyz(w http.ResponseWriter, r *http.Request) error {
	// A load balancer's probe needs an answer soon, also from a database that stopped
	// answering at all.
	ctx, cancel := context.WithTimeout(r.Context(), readyzTimeout)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		return &Error{http.StatusServiceUnavailable, "database unreachable"}
	}
	if !a.sched.loaded() {
		return &Error{http.StatusServiceUnavailable, "timers not loaded yet"}
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// writeJSON answers with v as encoding/json writes it, and a newline. Nothing is sent when v
// does not encode: the error is the caller's to answer.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	buf := encodeBuffers.Get().(*bytes.Buffer)
	defer putEncodeBuffer(buf)
	if err := json.NewEncoder(buf).Encode(v); err != nil { // Encode adds the newline
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
	return nil
}

// encodeBuffers hold answers while they are encoded, so that an answer is not copied out of
// the encoder before it is written.
var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putEncodeBuffer(b *bytes.Buffer) {
	if b.Cap() > 64<<10 { // a rare large answer: not kept
		return
	}
	b.Reset()
	encodeBuffers.Put(b)
}

// hexSecret is any run of 64 hex digits: the shape of signal tokens and callback ids.
var hexSecret = regexp.MustCompile(`[0-9a-fA-F]{64}`)

// redactPath hides the secrets that travel in URL paths. It cleans the path the way the
// router does first (so "//v1/signals/…" or "/x/../v1/callbacks/…" are caught too), and
// masks any token-shaped run left as a backstop.
func redactPath(p string) string {
	return hexSecret.ReplaceAllString(redactPrefixes(cleanPath(p)), "[REDACTED]")
}

func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

func redactPrefixes(p string) string {
	for _, prefix := range []string{"/v1/signals/", "/v1/callbacks/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			_, tail, hasTail := strings.Cut(rest, "/")
			if hasTail {
				return prefix + "[REDACTED]/" + tail
			}
			return prefix + "[REDACTED]"
		}
	}
	return p
}

// statusRecorder is the writer every request is answered through: it keeps the status for
// the log and the metrics, and when the request reached the server.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	arrived time.Time
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// arrived is when the request answered through w reached the server: the time its first
// handler started, the same on every system. Without a recorder in w it is now.
func arrived(w http.ResponseWriter) time.Time {
	for {
		switch u := w.(type) {
		case *statusRecorder:
			return u.arrived
		case interface{ Unwrap() http.ResponseWriter }:
			w = u.Unwrap()
		default:
			return time.Now()
		}
	}
}

func (a *App) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK, arrived: start}
		next.ServeHTTP(rec, r)
		a.metrics.httpReqs.WithLabelValues(strconv.Itoa(rec.status/100) + "xx").Inc()
		// The line is built only when it is logged: redacting the path costs more than the
		// rest of a small request's bookkeeping.
		if a.log.Enabled(r.Context(), slog.LevelDebug) {
			a.log.Debug("request", "method", r.Method, "path", redactPath(r.URL.Path), "status", rec.status,
				"duration", time.Since(start).Round(time.Microsecond))
		}
	})
}

// queryInt reads an integer query parameter within [lo, hi]; hi clamps, lo refuses.
func queryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo {
		return 0, errorf(http.StatusBadRequest, "%s must be a whole number of at least %d", name, lo)
	}
	return min(n, hi), nil
}
