package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"reflect"
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
	api("POST /v1/schedules/{id}/pause", a.pauseSchedule)
	api("POST /v1/schedules/{id}/resume", a.resumeSchedule)
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

func (a *App) readyz(w http.ResponseWriter, r *http.Request) error {
	if err := a.store.Ping(r.Context()); err != nil {
		return &Error{http.StatusServiceUnavailable, "database unreachable"}
	}
	if !a.sched.loaded() {
		return &Error{http.StatusServiceUnavailable, "timers not loaded yet"}
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	var b []byte
	var err error
	if r, ok := v.(taskResponse); ok { // the most frequent answer, encoded by hand
		b, err = r.appendJSON(make([]byte, 0, 1024))
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
	return nil
}

// decodeJSON reads a JSON body into v, refusing unknown fields and trailing data,
// with errors that name the field to fix.
func decodeJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	return decodeBytes(b, v)
}

func decodeBytes(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errorf(http.StatusBadRequest, "Request body must be a JSON object")
	}
	if err := checkDepth(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return errorf(http.StatusBadRequest, "Request body must hold one JSON object, found more after it")
	}
	return exactFields(b, v)
}

// MaxJSONDepth is how deeply a request body's JSON may nest, counting the body's own object:
// what the API stores it serves back, and clients with recursive parsers (Python's json,
// many others) fail on a few thousand levels.
const MaxJSONDepth = 64

var errTooDeep = errorf(http.StatusBadRequest, "JSON nests deeper than %d levels; flatten it", MaxJSONDepth)

// checkDepth refuses JSON that nests deeper than MaxJSONDepth; it does not validate the rest.
func checkDepth(b []byte) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			if depth++; depth > MaxJSONDepth {
				return errTooDeep
			}
		case '}', ']':
			depth--
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++ // the escaped byte, which may be a quote
				}
			}
		}
	}
	return nil
}

// exactFields refuses top-level keys that match a field only case-insensitively
// (encoding/json would accept "targetURL" for "targetUrl"), so spelling is exact.
func exactFields(b []byte, v any) error {
	rt := reflect.TypeOf(v)
	for rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	if rt.Kind() != reflect.Struct {
		return nil
	}
	known := jsonFieldNames(rt)
	var unknown []byte
	if topLevelKeys(b, func(k []byte) bool {
		if !known[string(k)] {
			unknown = k
		}
		return unknown == nil
	}) {
		if unknown != nil {
			return errorf(http.StatusBadRequest, "Unknown field %q (check its spelling; field names are case-sensitive)", unknown)
		}
		return nil
	}
	// A key with an escape or a non-ASCII byte: let the decoder spell it out. Only the
	// top-level keys matter: read them and skip their values.
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		if k, _ := tok.(string); !known[k] {
			return errorf(http.StatusBadRequest, "Unknown field %q (check its spelling; field names are case-sensitive)", k)
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return nil
		}
	}
	return nil
}

// topLevelKeys calls f with each key of the JSON object in b, which must be valid JSON
// (decoded already), until f returns false. It reports false, having stopped, at a key
// holding an escape or a non-ASCII byte, whose spelling only a decoder can tell.
func topLevelKeys(b []byte, f func(key []byte) bool) bool {
	depth := 0
	expectKey := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '{', '[':
			depth++
			expectKey = depth == 1 && c == '{'
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			start := i + 1
			plain := true
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					plain = false
					i++ // skip the escaped byte, which may be a quote
				} else if b[i] >= 0x80 {
					plain = false
				}
			}
			if expectKey {
				expectKey = false
				if !plain {
					return false
				}
				if !f(b[start:i]) {
					return true
				}
			}
		}
	}
	return true
}

var fieldNames sync.Map // reflect.Type → map[string]bool

// jsonFieldNames is the set of JSON names of a struct type's fields.
func jsonFieldNames(rt reflect.Type) map[string]bool {
	if m, ok := fieldNames.Load(rt); ok {
		return m.(map[string]bool)
	}
	known := map[string]bool{}
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		known[name] = true
	}
	fieldNames.Store(rt, known)
	return known
}

func jsonError(err error) error {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		if ute.Field == "" {
			return errorf(http.StatusBadRequest, "Request body must be a JSON object, not %s", ute.Value)
		}
		return errorf(http.StatusBadRequest, "%s must be %s, not %s", ute.Field, typeName(ute.Type.String()), ute.Value)
	case errors.As(err, &se):
		return errorf(http.StatusBadRequest, "Invalid JSON at byte %d: %s", se.Offset, se.Error())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return errorf(http.StatusBadRequest, "Unknown field %s (check its spelling; field names are case-sensitive)", f)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "Invalid JSON: the body ends too early")
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	return errorf(http.StatusBadRequest, "Invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func typeName(goType string) string {
	switch {
	case strings.Contains(goType, "float"), strings.Contains(goType, "int"):
		return "a number"
	case strings.Contains(goType, "bool"):
		return "true or false"
	case strings.Contains(goType, "map"):
		return "an object"
	case strings.Contains(goType, "string"):
		return "a string"
	}
	return "of another type"
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

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (a *App) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		a.metrics.httpReqs.WithLabelValues(strconv.Itoa(rec.status/100) + "xx").Inc()
		a.log.Debug("request", "method", r.Method, "path", redactPath(r.URL.Path), "status", rec.status,
			"duration", time.Since(start).Round(time.Microsecond))
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
