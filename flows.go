package main

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// Flows (SPEC §10): every call belongs to a flow of its team, by default the target's
// origin, or the task's flowKey. The scheduler (scheduler.go) enforces each flow's limits;
// this file names flows and serves their API.

// Flow limits.
const (
	MaxFlowKeyLen      = 100
	MaxFlowParallelism = 100_000
	MaxFlowRate        = 100_000.0
)

// flowOf is the flow a task's calls belong to.
func flowOf(t *store.Task) flowRef {
	if t.FlowKey != nil {
		return flowRef{t.TeamID, *t.FlowKey}
	}
	return flowRef{t.TeamID, originOf(t.TargetURL)}
}

// originOf writes a URL's origin as scheme://host:port, lower-case, the port always
// written (https://api.example.com:443).
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port
}

// checkFlowKey validates a flow key given by a user.
func checkFlowKey(field, k string) (string, error) {
	if k == "" || len(k) > MaxFlowKeyLen {
		return "", badRequest("%s must be 1 to %d characters, not %d", field, MaxFlowKeyLen, len(k))
	}
	for _, r := range k {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return "", badRequest("%s must be printable characters only; %q is not", field, r)
		}
	}
	return k, nil
}

// FlowJSON is a flow as the API shows it.
type FlowJSON struct {
	Key           string   `json:"key"`
	InFlight      int      `json:"inFlight"`
	Pending       int      `json:"pending"`
	Parallelism   int      `json:"parallelism"`
	RatePerSecond *float64 `json:"ratePerSecond"`
	Paused        bool     `json:"paused"`
	PausedUntil   *string  `json:"pausedUntil"`
	LastError     *string  `json:"lastError"`
	LastErrorAt   *string  `json:"lastErrorAt"`
}

func flowJSON(st flowStat, now time.Time) FlowJSON {
	v := FlowJSON{Key: st.Key, InFlight: st.InFlight, Pending: st.Pending, Parallelism: st.Parallelism,
		Paused: st.Settings.Paused}
	if r := st.Settings.RatePerSecond; r > 0 {
		v.RatePerSecond = &r
	}
	if now.Before(st.Settings.PausedUntil) {
		ms := st.Settings.PausedUntil.UnixMilli()
		v.PausedUntil = formatTime(&ms)
	}
	if st.LastError != "" {
		e := st.LastError
		v.LastError = &e
		ms := st.LastErrorAt.UnixMilli()
		v.LastErrorAt = formatTime(&ms)
	}
	return v
}

// settingsOf turns stored settings into the scheduler's.
func settingsOf(f *store.Flow) FlowSettings {
	var s FlowSettings
	if f.Parallelism != nil {
		s.Parallelism = *f.Parallelism
	}
	if f.RatePerSecond != nil {
		s.RatePerSecond = *f.RatePerSecond
	}
	s.Paused = f.Paused
	if f.PausedUntil != nil {
		s.PausedUntil = time.UnixMilli(*f.PausedUntil)
	}
	return s
}

// loadFlows gives the scheduler the stored settings of every flow (at start-up), or of only
// those named (another node changed them).
func (a *App) loadFlows(ctx context.Context, only ...store.FlowKey) error {
	fs, err := a.store.Flows(ctx)
	if err != nil {
		return err
	}
	for i := range fs {
		if len(only) > 0 && !slices.Contains(only, store.FlowKey{TeamID: fs[i].TeamID, Key: fs[i].Key}) {
			continue
		}
		a.sched.setFlow(flowRef{fs[i].TeamID, fs[i].Key}, settingsOf(&fs[i]), true)
	}
	return nil
}

// flowKeyParam is the {key} of a flow route: path-escaped in the URL.
func flowKeyParam(r *http.Request) (string, error) {
	return checkFlowKey("flow key", r.PathValue("key"))
}

// listFlows is GET /v1/flows.
func (a *App) listFlows(w http.ResponseWriter, r *http.Request) error {
	now := time.Now()
	out := []FlowJSON{}
	for _, st := range a.sched.stats(teamOf(r)) {
		out = append(out, flowJSON(st, now))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"flows": out})
}

// getFlow is GET /v1/flows/{key}.
func (a *App) getFlow(w http.ResponseWriter, r *http.Request) error {
	key, err := flowKeyParam(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"flow": flowJSON(a.sched.stat(flowRef{teamOf(r), key}), time.Now())})
}

// flowRequest is the body of PUT /v1/flows/{key}; null or absent resets to the default.
type flowRequest struct {
	Parallelism   *float64 `json:"parallelism"`
	RatePerSecond *float64 `json:"ratePerSecond"`
}

// putFlow is PUT /v1/flows/{key}: set the flow's limits (before it has tasks, too).
func (a *App) putFlow(w http.ResponseWriter, r *http.Request) error {
	key, err := flowKeyParam(r)
	if err != nil {
		return err
	}
	var req flowRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	par, rps, err := flowLimits(req.Parallelism, req.RatePerSecond)
	if err != nil {
		return err
	}
	return a.changeFlow(w, r, key, func(f *store.Flow) {
		f.Parallelism, f.RatePerSecond = par, rps
	})
}

// pauseFlow is POST /v1/flows/{key}/pause: no calls until resumed; tasks wait pending.
func (a *App) pauseFlow(w http.ResponseWriter, r *http.Request) error {
	key, err := flowKeyParam(r)
	if err != nil {
		return err
	}
	return a.changeFlow(w, r, key, func(f *store.Flow) { f.Paused = true })
}

// resumeFlow is POST /v1/flows/{key}/resume: ends a pause, by hand or by Retry-After.
func (a *App) resumeFlow(w http.ResponseWriter, r *http.Request) error {
	key, err := flowKeyParam(r)
	if err != nil {
		return err
	}
	return a.changeFlow(w, r, key, func(f *store.Flow) { f.Paused, f.PausedUntil = false, nil })
}

// changeFlow answers a flow request with the flow after updateFlow.
func (a *App) changeFlow(w http.ResponseWriter, r *http.Request, key string, change func(*store.Flow)) error {
	st, err := a.updateFlow(r.Context(), teamOf(r), key, change)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"flow": flowJSON(st, time.Now())})
}

// updateFlow reads a flow's stored settings, changes them with change, stores them and
// tells the scheduler once they are durable. The API and the admin page both call it.
func (a *App) updateFlow(ctx context.Context, team, key string, change func(*store.Flow)) (flowStat, error) {
	var saved store.Flow
	err := a.store.Write(ctx, func(tx store.Tx) error {
		cur, err := tx.Flow(team, key)
		if store.IsNotFound(err) {
			cur = &store.Flow{TeamID: team, Key: key}
		} else if err != nil {
			return err
		}
		change(cur)
		cur.UpdatedAt = store.NowMS()
		if err := tx.PutFlow(cur); err != nil {
			return err
		}
		saved = *cur
		tx.AfterCommit(func() { a.sched.setFlow(flowRef{team, key}, settingsOf(&saved), true) })
		return nil
	})
	if err != nil {
		return flowStat{}, err
	}
	return a.sched.stat(flowRef{team, key}), nil
}

// flowLimits validates the limits of a PUT (or the admin page's form); nil means default.
func flowLimits(parallelism, ratePerSecond *float64) (*int, *float64, error) {
	var par *int
	if parallelism != nil {
		p, err := integer("parallelism", parallelism, 0, 1, MaxFlowParallelism)
		if err != nil {
			return nil, nil, err
		}
		par = &p
	}
	if v := ratePerSecond; v != nil && (math.IsNaN(*v) || *v <= 0 || *v > MaxFlowRate) {
		return nil, nil, badRequest("ratePerSecond must be a number above 0 and at most %g (or null for no limit), not %g", MaxFlowRate, *v)
	}
	return par, ratePerSecond, nil
}
