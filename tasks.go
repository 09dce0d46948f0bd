package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/asyncqueue/asyncqueue/internal/keys"
	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// Task defaults and limits (SPEC §3.1).
const (
	DefaultTimeout     = 30 * time.Second
	DefaultMaxRetries  = 3
	DefaultPriority    = 5
	DefaultMaxWaitTime = 30 * time.Second
	MaxWaitTime        = 365 * 24 * time.Hour
	MaxTimeout         = time.Hour
	MaxHeaders         = 64
	MaxURLLength       = outbound.MaxURLLength
	IdempotencyWindow  = 24 * time.Hour
)

const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(ms *int64) *string {
	if ms == nil {
		return nil
	}
	s := time.UnixMilli(*ms).UTC().Format(timeLayout)
	return &s
}

func rawJSON(s *string) json.RawMessage {
	if s == nil {
		return nil
	}
	return json.RawMessage(*s)
}

// TaskJSON is a task as the API shows it.
type TaskJSON struct {
	ID               string            `json:"id"`
	TeamID           string            `json:"teamId"`
	Status           string            `json:"status"`
	TargetURL        string            `json:"targetUrl"`
	Method           string            `json:"method"`
	Headers          map[string]string `json:"headers"`
	Body             *string           `json:"body"`
	Timeout          float64           `json:"timeout"`
	DelayUntil       *string           `json:"delayUntil"`
	MaxRetries       int               `json:"maxRetries"`
	RetryBackoff     string            `json:"retryBackoff"`
	Priority         int               `json:"priority"`
	FlowKey          string            `json:"flowKey"`
	OnCompleteURL    *string           `json:"onCompleteUrl"`
	WaitForSignal    bool              `json:"waitForSignal"`
	MaxWaitTime      float64           `json:"maxWaitTime"`
	HeartbeatTimeout *float64          `json:"heartbeatTimeout"`
	RetryCount       int               `json:"retryCount"`
	StartResult      json.RawMessage   `json:"startResult"`
	Result           json.RawMessage   `json:"result"`
	Error            *string           `json:"error"`
	Progress         json.RawMessage   `json:"progress"`
	LastHeartbeatAt  *string           `json:"lastHeartbeatAt"`
	BufferedSignal   json.RawMessage   `json:"bufferedSignal"`
	OnComplete       json.RawMessage   `json:"onComplete"`
	Provider         *string           `json:"provider"`
	PollConfig       json.RawMessage   `json:"pollConfig"`
	CallbackID       *string           `json:"callbackId"`
	CreatedAt        string            `json:"createdAt"`
	StartedAt        *string           `json:"startedAt"`
	WaitingSince     *string           `json:"waitingSince"`
	ExpiresAt        *string           `json:"expiresAt"`
	CompletedAt      *string           `json:"completedAt"`
	ScheduleID       *string           `json:"scheduleId"` // the schedule whose run made it
}

// taskResponse is the body of every answer that returns one task, with the extras some
// of them add. Its fields keep the order encoding/json gave the map it replaced.
type taskResponse struct {
	Buffered    bool      `json:"buffered,omitempty"`    // a signal answered 202: kept for later
	CallbackURL string    `json:"callbackUrl,omitempty"` // create and retry of a callback task
	SignalToken string    `json:"signalToken,omitempty"` // create and retry of a waiting task
	Task        *TaskJSON `json:"task"`
}

func taskJSON(t *store.Task) *TaskJSON {
	v := &TaskJSON{
		ID: t.ID, TeamID: t.TeamID, Status: t.Status, TargetURL: t.TargetURL, Method: t.Method,
		Body: t.Body, Timeout: float64(t.TimeoutMS) / 1000, DelayUntil: formatTime(t.DelayUntil),
		MaxRetries: t.MaxRetries, RetryBackoff: t.RetryBackoff, Priority: t.Priority, FlowKey: flowOf(t).key,
		OnCompleteURL: t.OnCompleteURL, WaitForSignal: t.WaitForSignal,
		MaxWaitTime: float64(t.MaxWaitMS) / 1000, RetryCount: t.RetryCount,
		StartResult: rawJSON(t.StartResult), Result: rawJSON(t.Result), Error: t.Error,
		Progress: rawJSON(t.Progress), LastHeartbeatAt: formatTime(t.LastHeartbeatAt),
		BufferedSignal: rawJSON(t.BufferedSignal), OnComplete: rawJSON(t.OnComplete),
		Provider: t.Provider, PollConfig: rawJSON(t.PollConfig),
		CreatedAt: *formatTime(&t.CreatedAt), StartedAt: formatTime(t.StartedAt),
		WaitingSince: formatTime(t.WaitingSince), ExpiresAt: formatTime(t.ExpiresAt),
		CompletedAt: formatTime(t.CompletedAt), ScheduleID: t.ScheduleID,
	}
	if t.HeartbeatTimeoutMS != nil {
		s := float64(*t.HeartbeatTimeoutMS) / 1000
		v.HeartbeatTimeout = &s
	}
	if v.Headers = hdrMap(t); v.Headers == nil {
		v.Headers = map[string]string{} // shown as {}, never null
	}
	return v
}

// taskJSON is the API view of t, with its callback id rebuilt from the nonce.
func (a *App) taskJSON(t *store.Task) *TaskJSON {
	t = a.sched.view(t)
	v := taskJSON(t)
	if t.CallbackNonce != nil && a.vaultKey != nil {
		id := a.callbackID(t.CallbackNonce)
		v.CallbackID = &id
	}
	return v
}

// createRequest is the body of POST /v1/tasks. Pointers tell "absent" from zero.
type createRequest struct {
	TargetURL        *string           `json:"targetUrl"`
	CallbackURL      *string           `json:"callbackUrl"` // alias of targetUrl
	Method           *string           `json:"method"`
	Headers          map[string]string `json:"headers"`
	Body             json.RawMessage   `json:"body"`
	Timeout          *float64          `json:"timeout"`
	DelayUntil       *string           `json:"delayUntil"`
	Delay            *float64          `json:"delay"`
	MaxRetries       *float64          `json:"maxRetries"`
	RetryBackoff     *string           `json:"retryBackoff"`
	Priority         *float64          `json:"priority"`
	FlowKey          *string           `json:"flowKey"`
	OnCompleteURL    *string           `json:"onCompleteUrl"`
	WaitForSignal    *bool             `json:"waitForSignal"`
	MaxWaitTime      *float64          `json:"maxWaitTime"`
	HeartbeatTimeout *float64          `json:"heartbeatTimeout"`
	Provider         json.RawMessage   `json:"provider"`
	PollConfig       json.RawMessage   `json:"pollConfig"`
}

func badRequest(format string, args ...any) error {
	return errorf(http.StatusBadRequest, format, args...)
}

// newTask validates a create request and builds the task it describes.
func (a *App) newTask(req *createRequest, teamID string, now time.Time) (*store.Task, error) {
	t := &store.Task{TeamID: teamID, CreatedAt: now.UnixMilli()}

	target := req.TargetURL
	if req.CallbackURL != nil {
		if target != nil {
			return nil, badRequest("Give targetUrl or its alias callbackUrl, not both")
		}
		target = req.CallbackURL
	}
	if target == nil || strings.TrimSpace(*target) == "" {
		return nil, badRequest("targetUrl is required: the absolute http(s) URL to call")
	}
	u, pu, err := a.checkURL("targetUrl", *target)
	if err != nil {
		return nil, err
	}
	t.TargetURL = u
	t.TargetHost = strings.ToLower(pu.Hostname())

	t.Method = http.MethodPost
	if req.Method != nil {
		m := strings.ToUpper(strings.TrimSpace(*req.Method))
		if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, m) {
			return nil, badRequest("method must be one of GET, POST, PUT, PATCH, DELETE, not %q", *req.Method)
		}
		t.Method = m
	}

	hdrs, err := validHeaders(req.Headers)
	if err != nil {
		return nil, err
	}
	hb, _ := json.Marshal(hdrs)
	t.Headers = string(hb)

	if len(req.Body) > 0 && string(req.Body) != "null" {
		var s string
		switch req.Body[0] {
		case '"':
			if err := json.Unmarshal(req.Body, &s); err != nil {
				return nil, badRequest("body must be a string")
			}
		case '{', '[':
			// A JSON document given as is: send it compact, as the user most likely meant.
			var buf bytes.Buffer
			if err := json.Compact(&buf, req.Body); err != nil {
				return nil, badRequest("body must be a string")
			}
			s = buf.String()
		default:
			return nil, badRequest("body must be a string (or a JSON object or array, sent as its text)")
		}
		t.Body = &s
	}

	timeout, err := seconds("timeout", req.Timeout, DefaultTimeout, time.Second, MaxTimeout)
	if err != nil {
		return nil, err
	}
	t.TimeoutMS = timeout.Milliseconds()

	if req.DelayUntil != nil && req.Delay != nil {
		return nil, badRequest("Give delayUntil or delay, not both")
	}
	due := now
	if req.DelayUntil != nil {
		d, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(*req.DelayUntil))
		if err != nil {
			return nil, badRequest("delayUntil must be an ISO 8601 time such as 2026-01-15T10:30:00Z, not %q", *req.DelayUntil)
		}
		if d.After(now.Add(MaxWaitTime)) {
			return nil, badRequest("delayUntil must be within a year from now")
		}
		ms := d.UnixMilli()
		t.DelayUntil = &ms
		due = d
	}
	if req.Delay != nil {
		d, err := seconds("delay", req.Delay, 0, 0, MaxWaitTime)
		if err != nil {
			return nil, err
		}
		due = now.Add(d)
		ms := due.UnixMilli()
		t.DelayUntil = &ms
	}

	retries, err := integer("maxRetries", req.MaxRetries, DefaultMaxRetries, 0, 10)
	if err != nil {
		return nil, err
	}
	t.MaxRetries = retries

	t.RetryBackoff = "exponential"
	if req.RetryBackoff != nil {
		if *req.RetryBackoff != "exponential" && *req.RetryBackoff != "linear" {
			return nil, badRequest("retryBackoff must be \"exponential\" or \"linear\", not %q", *req.RetryBackoff)
		}
		t.RetryBackoff = *req.RetryBackoff
	}

	if req.FlowKey != nil {
		k, err := checkFlowKey("flowKey", *req.FlowKey)
		if err != nil {
			return nil, err
		}
		t.FlowKey = &k
	}
	if t.Priority, err = integer("priority", req.Priority, DefaultPriority, 1, 10); err != nil {
		return nil, err
	}

	if req.OnCompleteURL != nil && *req.OnCompleteURL != "" {
		u, _, err := a.checkURL("onCompleteUrl", *req.OnCompleteURL)
		if err != nil {
			return nil, err
		}
		t.OnCompleteURL = &u
	}

	t.WaitForSignal = req.WaitForSignal != nil && *req.WaitForSignal
	maxWait, err := seconds("maxWaitTime", req.MaxWaitTime, DefaultMaxWaitTime, time.Second, MaxWaitTime)
	if err != nil {
		return nil, err
	}
	t.MaxWaitMS = maxWait.Milliseconds()
	if req.HeartbeatTimeout != nil {
		if !t.WaitForSignal {
			return nil, badRequest("heartbeatTimeout needs waitForSignal: true")
		}
		hb, err := seconds("heartbeatTimeout", req.HeartbeatTimeout, 0, time.Second, MaxWaitTime)
		if err != nil {
			return nil, err
		}
		ms := hb.Milliseconds()
		t.HeartbeatTimeoutMS = &ms
	}
	if t.Provider, t.PollConfig, err = pollSettings(req.Provider, req.PollConfig); err != nil {
		return nil, err
	}
	if t.PollConfig != nil {
		if err := a.checkPollHosts(*t.PollConfig); err != nil {
			return nil, err
		}
	}
	if t.PollConfig != nil && t.WaitForSignal {
		return nil, badRequest("A task either polls a provider (provider/pollConfig) or waits for a signal (waitForSignal), not both")
	}
	if usesCallback(t) {
		if t.PollConfig != nil {
			return nil, badRequest("A task either polls a provider or receives its callback (%s), not both", CallbackPlaceholder)
		}
		a.newCallback(t)
	}

	created(t, due, now)
	return t, nil
}

// checkURL validates a user-supplied URL and applies the outbound policy to literal
// addresses. It returns the URL trimmed, and parsed.
func (a *App) checkURL(field, raw string) (string, *url.URL, error) {
	raw = strings.TrimSpace(raw)
	if len(raw) > MaxURLLength {
		return "", nil, badRequest("%s is longer than %d characters", field, MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return "", nil, badRequest("%s must be an absolute http(s) URL such as https://example.com/hook, not %q", field, raw)
	}
	if err := a.out.CheckParsed(u); err != nil {
		var be *outbound.BlockedError
		if errors.As(err, &be) {
			return "", nil, errorf(http.StatusUnprocessableEntity, "%s: %s", field, be.Error())
		}
		return "", nil, badRequest("%s: %s", field, err.Error())
	}
	return raw, u, nil
}

// Headers a task may not set: they belong to the transport or to asyncqueue's own signing.
var refusedHeaders = []string{"host", "content-length", "transfer-encoding", "connection", "upgrade",
	"te", "trailer", "keep-alive", "expect"}

func validHeaders(h map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(h))
	if len(h) > MaxHeaders {
		return nil, badRequest("headers may hold at most %d entries", MaxHeaders)
	}
	names := slices.Sorted(maps.Keys(h)) // errors name the same header on every try
	seen := make(map[string]string, len(h))
	for _, k := range names {
		v := h[k]
		lk := strings.ToLower(k)
		if k == "" || strings.IndexFunc(k, func(r rune) bool {
			return r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r)
		}) >= 0 {
			return nil, badRequest("headers: %q is not a valid header name", k)
		}
		if prev, dup := seen[lk]; dup {
			// HTTP names are case-insensitive: only one of them could be sent.
			return nil, badRequest("headers: %s and %s are the same header (names are case-insensitive); give it once", prev, k)
		}
		seen[lk] = k
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, badRequest("headers: the value of %s may not contain line breaks or NUL", k)
		}
		if i := controlByte(v); i >= 0 {
			return nil, badRequest("headers: the value of %s holds the control character 0x%02x; only tab and printable characters can be sent", k, v[i])
		}
		if slices.Contains(refusedHeaders, lk) || strings.HasPrefix(lk, "proxy-") ||
			strings.HasPrefix(lk, "x-asyncqueue-") || strings.HasPrefix(lk, "webhook-") {
			return nil, badRequest("headers: %s is set by asyncqueue or the HTTP transport and cannot be given", k)
		}
		out[k] = v
	}
	return out, nil
}

// controlByte is the index of the first byte of v that no HTTP header value may hold (a
// control character other than tab, or DEL), or -1.
func controlByte(v string) int {
	return strings.IndexFunc(v, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f })
}

func seconds(field string, v *float64, def, lo, hi time.Duration) (time.Duration, error) {
	if v == nil {
		return def, nil
	}
	if math.IsNaN(*v) || math.IsInf(*v, 0) || *v < lo.Seconds() || *v > hi.Seconds() {
		return 0, badRequest("%s must be between %g and %g seconds, not %g", field, lo.Seconds(), hi.Seconds(), *v)
	}
	return time.Duration(*v * float64(time.Second)).Round(time.Millisecond), nil
}

func integer(field string, v *float64, def, lo, hi int) (int, error) {
	if v == nil {
		return def, nil
	}
	if *v != math.Trunc(*v) || *v < float64(lo) || *v > float64(hi) {
		return 0, badRequest("%s must be a whole number from %d to %d, not %g", field, lo, hi, *v)
	}
	return int(*v), nil
}

// createTask is POST /v1/tasks.
func (a *App) createTask(w http.ResponseWriter, r *http.Request) (err error) {
	outcome := "created"
	defer func() {
		if err != nil {
			outcome = "rejected"
		}
		a.metrics.created.WithLabelValues(outcome).Inc()
	}()
	teamID := teamOf(r)
	now := arrived(w) // the creation time, and what a delay counts from
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	var req createRequest
	if err := decodeBytes(raw, &req); err != nil {
		return err
	}
	task, err := a.newTask(&req, teamID, now)
	if err != nil {
		return err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	task.ID = id.String()
	var token string
	if task.WaitForSignal {
		var h [32]byte
		token, h = keys.NewToken()
		task.SignalHash = h[:]
	}

	// req.Headers were validated by newTask; task.Headers holds the same map as JSON.
	if err := a.checkTokenRefs(r.Context(), teamID, req.Headers); err != nil {
		return err
	}
	idemKey := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	if len(idemKey) > 255 {
		return badRequest("Idempotency-Key may be at most 255 characters")
	}
	var reqHash []byte // only an Idempotency-Key needs the body's hash
	if idemKey != "" {
		h := sha256.Sum256(raw)
		reqHash = h[:]
	}
	// With a worker idle, write the task already claimed and hand it over in memory: one
	// write fewer per task. The response still shows it as created (pending).
	view := *task
	direct := false
	var flow flowRef
	if task.Status == store.StatusPending {
		var reason string
		flow = flowOf(task)
		if direct, reason = a.sched.tryStart(flow); !direct {
			a.metrics.slotWaits.WithLabelValues(reason).Inc()
		}
	}
	if direct {
		claim(task, now.UnixMilli())
		if a.shared != nil {
			lease(task, now.UnixMilli())
		}
	}
	var replayed *store.Task
	err = a.store.Write(r.Context(), func(tx store.Tx) error {
		if idemKey != "" {
			prev, err := tx.Idempotency(teamID, idemKey, now.Add(-IdempotencyWindow).UnixMilli())
			if err == nil {
				if !bytes.Equal(prev.RequestHash, reqHash) {
					return errorf(http.StatusConflict, "Idempotency-Key %q was already used with a different request body", idemKey)
				}
				replayed, err = tx.Task(prev.TaskID)
				return err
			} else if !store.IsNotFound(err) {
				return err
			}
			if err := tx.PutIdempotency(&store.Idempotency{TeamID: teamID, Key: idemKey,
				RequestHash: reqHash, TaskID: task.ID, CreatedAt: now.UnixMilli()}); err != nil {
				return err
			}
		}
		if err := tx.InsertTask(task); err != nil {
			return err
		}
		tx.AfterCommit(func() {
			if direct {
				a.disp.launch(task, nil, flow)
			} else {
				a.scheduled(task)
			}
		})
		return nil
	})
	if direct && (err != nil || replayed != nil) {
		a.sched.done(flow)
	}
	if err != nil {
		return err
	}
	if replayed != nil {
		outcome = "replayed"
		w.Header().Set("Idempotent-Replayed", "true")
		return writeJSON(w, http.StatusOK, taskResponse{Task: a.taskJSON(replayed)})
	}
	resp := taskResponse{Task: a.taskJSON(&view)}
	if token != "" {
		resp.SignalToken = token
	}
	if task.CallbackNonce != nil {
		resp.CallbackURL = a.callbackURL(task.CallbackNonce)
	}
	w.Header().Set("Location", "/v1/tasks/"+task.ID)
	return writeJSON(w, http.StatusCreated, resp)
}

// hdrMap is the task's stored headers as a map, for its API view; nil when it has none.
// Headers that do not decode are logged, and shown as none.
func hdrMap(t *store.Task) map[string]string {
	h, err := t.HeaderMap()
	if err != nil {
		slog.Error("show task", "err", err)
	}
	return h
}

func readBody(r *http.Request) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// loadTask reads a task of the caller's team.
func (a *App) loadTask(r *http.Request) (*store.Task, error) {
	id, err := taskIDParam(r)
	if err != nil {
		return nil, err
	}
	t, err := a.store.Task(r.Context(), id)
	return teamTask(t, err, teamOf(r))
}

// taskIDParam is the {id} of a task route; 400 when it is not a UUID.
func taskIDParam(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil {
		return "", badRequest("%q is not a task id (a UUID)", id)
	}
	return id, nil
}

// teamTask checks the outcome of reading a task for team: 404 when there is no such task,
// 403 when it is another team's.
func teamTask(t *store.Task, err error, team string) (*store.Task, error) {
	if store.IsNotFound(err) {
		return nil, errTaskNotFound
	} else if err != nil {
		return nil, err
	}
	if t.TeamID != team {
		return nil, errAccessDenied
	}
	return t, nil
}

// getTask is GET /v1/tasks/{id}, with ?wait=N to hold the request until the status changes.
func (a *App) getTask(w http.ResponseWriter, r *http.Request) error {
	wait, err := queryInt(r, "wait", 0, 0, 25)
	if err != nil {
		return err
	}
	var ch <-chan struct{}
	var unwatch func()
	if wait > 0 {
		release, ok := a.longPolls.acquire(teamOf(r), a.cfg.MaxLongPolls)
		if !ok {
			w.Header().Set("Retry-After", "1")
			return errorf(http.StatusTooManyRequests, "This team already holds %d long polls open (--max-long-polls); retry in 1 s, or poll without wait", a.cfg.MaxLongPolls)
		}
		defer release()
		ch, unwatch = a.hub.watch(r.PathValue("id"))
		defer unwatch()
	}
	t, err := a.loadTask(r)
	if err != nil {
		return err
	}
	if wait > 0 && !store.Terminal(t.Status) {
		timer := time.NewTimer(time.Duration(wait) * time.Second)
		defer timer.Stop()
		status := t.Status
		for t.Status == status {
			select {
			case <-ch:
			case <-timer.C:
				return writeJSON(w, http.StatusOK, taskResponse{Task: a.taskJSON(t)})
			case <-a.hub.done:
				return writeJSON(w, http.StatusOK, taskResponse{Task: a.taskJSON(t)})
			case <-r.Context().Done():
				return r.Context().Err()
			}
			if t, err = a.loadTask(r); err != nil {
				return err
			}
		}
	}
	return writeJSON(w, http.StatusOK, taskResponse{Task: a.taskJSON(t)})
}

// listTasks is GET /v1/tasks.
func (a *App) listTasks(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.ListFilter{TeamID: teamOf(r)}
	var err error
	if f.Limit, err = queryInt(r, "limit", 20, 1, 100); err != nil {
		return err
	}
	if f.Offset, err = queryInt(r, "offset", 0, 0, math.MaxInt32); err != nil {
		return err
	}
	for _, st := range queryList(q, "status") {
		if !slices.Contains(allStatuses, st) {
			return badRequest("status %q is not one of %s", st, strings.Join(allStatuses, ", "))
		}
		if !slices.Contains(f.Statuses, st) {
			f.Statuses = append(f.Statuses, st)
		}
	}
	for name, dst := range map[string]*int64{"createdAfter": &f.CreatedAfter, "createdBefore": &f.CreatedBefore} {
		if s := q.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return badRequest("%s must be an ISO 8601 time such as 2026-01-15T10:30:00Z", name)
			}
			*dst = t.UnixMilli()
		}
	}
	f.TargetHost = q.Get("targetHost")
	f.MaxField = ListFieldLimit
	f.ScheduleID = q.Get("scheduleId")
	tasks, total, err := a.store.List(r.Context(), f)
	if err != nil {
		return err
	}
	page, _ := json.Marshal(pagination{Total: total, Limit: f.Limit, Offset: f.Offset, HasMore: f.Offset+len(tasks) < total})
	// Written task by task: a page never sits in memory twice (rows, then one buffer).
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, `{"pagination":%s,"tasks":[`, page)
	for i := range tasks {
		item := listedTask{TaskJSON: *a.taskJSON(&tasks[i].Task)}
		for _, col := range strings.Split(tasks[i].Omitted, ",") {
			if name := omittedFields[col]; name != "" {
				item.Omitted = append(item.Omitted, name)
			}
		}
		b, err := json.Marshal(item)
		if err != nil {
			// The status is sent: cut the connection rather than end a page that looks whole.
			a.log.Error("encode a listed task", "task", tasks[i].ID, "err", err)
			panic(http.ErrAbortHandler)
		}
		if i > 0 {
			w.Write([]byte{','})
		}
		w.Write(b)
		tasks[i] = store.ListedTask{} // written: the collector may have it
	}
	_, err = w.Write([]byte("]}\n"))
	return err
}

// ListFieldLimit bounds each large field of a listed task (headers, body, startResult,
// result, error, progress, bufferedSignal, pollConfig, onComplete): a longer one is left
// out of the page (null, {} for headers) and named in the item's "omitted"; GET
// /v1/tasks/{id} has it whole. A page of 100 tasks so holds at most a few megabytes.
const ListFieldLimit = 16 << 10

// omittedFields maps the store's column names to the API's.
var omittedFields = map[string]string{"headers": "headers", "body": "body", "start_result": "startResult",
	"result": "result", "error": "error", "progress": "progress", "buffered_signal": "bufferedSignal",
	"poll_config": "pollConfig", "on_complete": "onComplete"}

type pagination struct {
	Total   int  `json:"total"`
	Limit   int  `json:"limit"`
	Offset  int  `json:"offset"`
	HasMore bool `json:"hasMore"`
}

// listedTask is an item of GET /v1/tasks: the task, and the fields left out of it.
type listedTask struct {
	TaskJSON
	Omitted []string `json:"omitted,omitempty"`
}

// queryList reads a parameter that takes several values, given repeated
// (status=a&status=b, what most client generators send), comma-separated (status=a,b), or both.
func queryList(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

var allStatuses = []string{store.StatusPending, store.StatusDelayed, store.StatusProcessing, store.StatusWaiting,
	store.StatusPolling, store.StatusCompleted, store.StatusFailed, store.StatusTimeout, store.StatusCancelled}

// getAttempts is GET /v1/tasks/{id}/attempts.
func (a *App) getAttempts(w http.ResponseWriter, r *http.Request) error {
	t, err := a.loadTask(r)
	if err != nil {
		return err
	}
	as, err := a.store.Attempts(r.Context(), t.ID)
	if err != nil {
		return err
	}
	type attemptJSON struct {
		store.Attempt
		StartedAt string `json:"startedAt"`
	}
	out := make([]attemptJSON, len(as))
	for i, at := range as {
		out[i] = attemptJSON{Attempt: at, StartedAt: *formatTime(&at.StartedAt)}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"attempts": out})
}

// getEvents is GET /v1/tasks/{id}/events: the signals, heartbeats and provider callbacks
// the task received, oldest first (the newest 500), each detail bounded like a list item's fields.
func (a *App) getEvents(w http.ResponseWriter, r *http.Request) error {
	t, err := a.loadTask(r)
	if err != nil {
		return err
	}
	es, err := a.store.EventsBounded(r.Context(), t.ID, 500, ListFieldLimit)
	if err != nil {
		return err
	}
	type eventJSON struct {
		At            string          `json:"at"`
		Kind          string          `json:"kind"`
		Detail        json.RawMessage `json:"detail"`
		DetailOmitted bool            `json:"detailOmitted,omitempty"` // longer than ListFieldLimit
	}
	out := make([]eventJSON, len(es))
	for i, e := range es {
		out[i] = eventJSON{At: *formatTime(&e.At), Kind: e.Kind, Detail: rawJSON(e.Detail), DetailOmitted: e.DetailOmitted}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"events": out})
}

// commit writes what a transition (lifecycle.go) did to t inside the caller's write, and
// hands t to the scheduler once the write is durable.
func (a *App) commit(tx store.Tx, t *store.Task, c change, now time.Time) error {
	if !c.write {
		return nil
	}
	if err := tx.UpdateTask(t, c.from); err != nil {
		return err
	}
	if c.event != "" {
		if err := tx.InsertEvent(t.ID, now.UnixMilli(), c.event, c.detail); err != nil {
			return err
		}
	}
	if c.reschedule {
		tx.AfterCommit(func() { a.scheduled(t) })
	}
	return nil
}

// refusal is the API's answer to a transition t's status does not allow (nil for none),
// naming the status the task shows: processing while a call a timer started without a
// written claim runs.
func (a *App) refusal(c *Conflict, t *store.Task) *Error {
	if c == nil {
		return nil
	}
	return errorf(http.StatusConflict, c.Format, a.sched.view(t).Status)
}

// cancelTask is POST /v1/tasks/{id}/cancel.
func (a *App) cancelTask(w http.ResponseWriter, r *http.Request) error {
	id, err := taskIDParam(r)
	if err != nil {
		return err
	}
	t, err := a.cancelTeamTask(r.Context(), teamOf(r), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, taskResponse{Task: a.taskJSON(t)})
}

// cancelTeamTask cancels task id of team, reading it once inside the write. A pending,
// delayed, waiting or polling task can be cancelled; any other is refused with 409 (a
// delayed task whose call already runs counts as processing). The API and the admin page
// both call it.
func (a *App) cancelTeamTask(ctx context.Context, team, id string) (*store.Task, error) {
	var done *store.Task
	var refused *Error
	held := false
	err := a.store.Write(ctx, func(tx store.Tx) error {
		refused = nil
		t, err := tx.Task(id)
		if t, err = teamTask(t, err, team); err != nil {
			return err
		}
		// Hold the task against a timer starting its call before this write commits; a
		// call already running without a written claim means it is processing. Taken
		// once, however often the write runs.
		if !held {
			if !a.sched.calls.holdCancel(id) {
				refused = errorf(http.StatusConflict, "Task cannot be cancelled (current: %s)", store.StatusProcessing)
				return nil
			}
			held = true
		}
		now := time.Now()
		c, conflict := requestCancel(t, now)
		if err := a.commit(tx, t, c, now); err != nil {
			return err
		}
		if refused = a.refusal(conflict, t); refused == nil {
			done = t
		}
		return nil
	})
	if held {
		a.sched.calls.releaseCancel(id)
	}
	if err != nil {
		return nil, err
	}
	if refused != nil {
		return nil, refused
	}
	return done, nil
}

// retryTask is POST /v1/tasks/{id}/retry: run a failed, timed-out or cancelled task again now.
func (a *App) retryTask(w http.ResponseWriter, r *http.Request) error {
	id, err := taskIDParam(r)
	if err != nil {
		return err
	}
	t, token, err := a.retryTeamTask(r.Context(), teamOf(r), id)
	if err != nil {
		return err
	}
	resp := taskResponse{Task: a.taskJSON(t), SignalToken: token}
	if t.CallbackNonce != nil {
		resp.CallbackURL = a.callbackURL(t.CallbackNonce)
	}
	return writeJSON(w, http.StatusOK, resp)
}

// retryTeamTask queues task id of team to run again now, reading it once inside the write;
// only a failed, timed-out or cancelled task can be retried (409 otherwise). A task that
// waits for a signal gets a new token, returned here and nowhere else. The API and the
// admin page both call it.
func (a *App) retryTeamTask(ctx context.Context, team, id string) (*store.Task, string, error) {
	var done *store.Task
	var token string
	err := a.store.Write(ctx, func(tx store.Tx) error {
		t, err := tx.Task(id)
		if t, err = teamTask(t, err, team); err != nil {
			return err
		}
		now := time.Now()
		c, conflict := requestRetry(t, now)
		if conflict != nil {
			return a.refusal(conflict, t)
		}
		token = ""
		if t.WaitForSignal {
			var h [32]byte
			token, h = keys.NewToken()
			t.SignalHash = h[:]
		}
		if t.CallbackNonce != nil {
			a.newCallback(t) // the spent callback id stops working
		}
		if err := a.commit(tx, t, c, now); err != nil {
			return err
		}
		done = t
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return done, token, nil
}

func createTeam(tx store.Tx, name string) (*store.Team, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	team := &store.Team{ID: id.String(), Name: name, WebhookSecret: newSecret(), CreatedAt: store.NowMS()}
	return team, tx.InsertTeam(team)
}

func createKey(tx store.Tx, teamID, name string) (raw string, k *store.APIKey, err error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", nil, err
	}
	raw, h := keys.NewAPIKey()
	k = &store.APIKey{ID: id.String(), TeamID: teamID, Hash: h[:], Prefix: keys.DisplayPrefix(raw),
		Name: name, CreatedAt: store.NowMS()}
	if err := tx.InsertAPIKey(k); err != nil {
		return "", nil, fmt.Errorf("create key: %w", err)
	}
	return raw, k, nil
}
