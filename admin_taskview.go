package main

// The task detail page's view model, built from a task and its attempts without I/O
// (vaultNames aside, which reads the names of the team's vault tokens).

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/vault"
)

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
	case store.StatusProcessing:
		return "Claim's lease ends at"
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
