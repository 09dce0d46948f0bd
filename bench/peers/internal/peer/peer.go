// Package peer holds what the two "build it yourself" servers share: the create request in
// asyncqueue's shape, the outgoing call, the SQLite connection and the HTTP server's life.
package peer

import (
	"bytes"
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Task is what a worker needs to make the call. It is stored as JSON in the job.
type Task struct {
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    []byte            `json:"body,omitempty"`
	Timeout time.Duration     `json:"timeout"`
}

// Create is a parsed POST /v1/tasks.
type Create struct {
	Task       Task
	Delay      time.Duration
	Priority   int // 1..10, higher first, as in asyncqueue
	MaxRetries int
}

// request is the accepted subset of asyncqueue's create body.
type request struct {
	TargetURL   *string           `json:"targetUrl"`
	CallbackURL *string           `json:"callbackUrl"`
	Method      *string           `json:"method"`
	Headers     map[string]string `json:"headers"`
	Body        json.RawMessage   `json:"body"`
	Delay       *float64          `json:"delay"`
	Priority    *int              `json:"priority"`
	Timeout     *float64          `json:"timeout"`
	MaxRetries  *int              `json:"maxRetries"`
}

// ParseCreate reads and checks a create body; the error is the message for a 400.
func ParseCreate(r io.Reader) (*Create, error) {
	var req request
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	target := req.TargetURL
	if target == nil {
		target = req.CallbackURL
	}
	if target == nil {
		return nil, errors.New("targetUrl is required")
	}
	u, err := url.Parse(*target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("targetUrl must be an http or https URL")
	}
	c := &Create{Task: Task{URL: *target, Method: "POST", Headers: req.Headers, Timeout: 30 * time.Second}, Priority: 5, MaxRetries: 3}
	if req.Method != nil {
		c.Task.Method = strings.ToUpper(*req.Method)
	}
	if len(req.Body) > 0 && string(req.Body) != "null" {
		var s string
		if json.Unmarshal(req.Body, &s) == nil {
			c.Task.Body = []byte(s)
		} else {
			c.Task.Body = []byte(req.Body)
		}
	}
	if req.Delay != nil {
		if *req.Delay < 0 || *req.Delay > 365*86400 {
			return nil, errors.New("delay must be between 0 and 31536000 seconds")
		}
		c.Delay = time.Duration(*req.Delay * float64(time.Second))
	}
	if req.Priority != nil {
		if *req.Priority < 1 || *req.Priority > 10 {
			return nil, errors.New("priority must be from 1 to 10")
		}
		c.Priority = *req.Priority
	}
	if req.Timeout != nil {
		if *req.Timeout < 1 || *req.Timeout > 3600 {
			return nil, errors.New("timeout must be between 1 and 3600 seconds")
		}
		c.Task.Timeout = time.Duration(*req.Timeout * float64(time.Second))
	}
	if req.MaxRetries != nil {
		if *req.MaxRetries < 0 || *req.MaxRetries > 10 {
			return nil, errors.New("maxRetries must be from 0 to 10")
		}
		c.MaxRetries = *req.MaxRetries
	}
	return c, nil
}

// Caller makes the calls of the tasks.
type Caller struct{ Client *http.Client }

// NewCaller returns a caller with a keep-alive pool sized for conns calls in flight.
// It trusts the system roots, which SSL_CERT_FILE can replace.
func NewCaller(conns int) *Caller {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	return &Caller{Client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// Call sends the task's request; an answer outside 2xx is an error.
func (c *Caller) Call(ctx context.Context, t *Task) error {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, t.Method, t.URL, bytes.NewReader(t.Body))
	if err != nil {
		return err
	}
	for k, v := range t.Headers {
		req.Header.Set(k, v)
	}
	if len(t.Body) > 0 && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("target answered %d", res.StatusCode)
	}
	return nil
}

// OpenSQLite opens path with WAL, the given synchronous mode (NORMAL or FULL), a busy
// timeout and one connection, as both libraries recommend for SQLite.
func OpenSQLite(path, sync string, fresh bool) (*sql.DB, error) {
	if fresh {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
	}
	sync = strings.ToUpper(sync)
	if sync != "NORMAL" && sync != "FULL" {
		return nil, fmt.Errorf("-sync must be NORMAL or FULL, not %q", sync)
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync +
		")&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Enqueue stores a parsed create and returns the new task's id.
type Enqueue func(ctx context.Context, c *Create) (string, error)

// Handler serves POST /v1/tasks (X-API-Key must be key) and GET /healthz.
func Handler(key string, enqueue Enqueue) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST /v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-API-Key")), []byte(key)) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid API key"})
			return
		}
		c, err := ParseCreate(r.Body)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		id, err := enqueue(r.Context(), c)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"task": map[string]any{"id": id, "status": "pending"}})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// CheckLoopback refuses an address that does not name 127.0.0.1 or localhost.
func CheckLoopback(addr string) error {
	if !strings.HasPrefix(addr, "127.0.0.1:") && !strings.HasPrefix(addr, "localhost:") {
		return fmt.Errorf("listen on 127.0.0.1 only, not %q", addr)
	}
	return nil
}

// Serve serves h on addr until SIGINT or SIGTERM, then stops the HTTP server and calls stop
// (which stops the workers) before it returns.
func Serve(addr string, h http.Handler, stop func(context.Context)) error {
	if err := CheckLoopback(addr); err != nil {
		return err
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-errc:
		return err
	case s := <-sigc:
		slog.Info("stopping", "signal", s.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	stop(ctx)
	return nil
}
