package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/providers"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// DefaultPollMaxDuration bounds polling when neither the template nor the task says.
const DefaultPollMaxDuration = time.Hour

// pollSettings resolves provider/pollConfig of a create request into the config to store.
func pollSettings(provider, pollConfig json.RawMessage) (*string, *string, error) {
	var cfg providers.PollConfig
	var providerID *string
	if len(provider) > 0 && string(provider) != "null" {
		var id string
		if err := json.Unmarshal(provider, &id); err != nil {
			return nil, nil, badRequest("provider must be a string naming a template of GET /v1/providers")
		}
		p, ok := providers.Get(id)
		if !ok {
			var ids []string
			for _, p := range providers.All() {
				ids = append(ids, p.ID)
			}
			return nil, nil, badRequest("provider %q is unknown; use one of %s, or give a pollConfig", id, strings.Join(ids, ", "))
		}
		cfg = p.PollConfig
		providerID = &id
	}
	hasConfig := len(pollConfig) > 0 && string(pollConfig) != "null" // null: as if absent, like provider
	if hasConfig {
		// A pollConfig on top of a provider overrides the template's fields it names; a
		// member given as null keeps the template's value.
		if err := decodeMember(pollConfig, "pollConfig", &cfg, jsonv1.MergeWithLegacySemantics(true)); err != nil {
			return nil, nil, err
		}
	}
	if providerID == nil && !hasConfig {
		return nil, nil, nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, badRequest("%s", err.Error())
	}
	b, _ := json.Marshal(cfg)
	s := string(b)
	return providerID, &s, nil
}

// checkPollHosts applies the outbound policy to the poll and result URL templates whose
// host is written out, as to targetUrl: a literal blocked address is 422 at create.
func (a *App) checkPollHosts(stored string) error {
	var cfg providers.PollConfig
	if err := json.Unmarshal([]byte(stored), &cfg); err != nil {
		return err // written by pollSettings just before: not the caller's doing
	}
	for _, f := range []struct{ name, tmpl string }{
		{"pollConfig.urlTemplate", cfg.URLTemplate}, {"pollConfig.resultUrlTemplate", cfg.ResultURLTemplate},
	} {
		if origin, ok := providers.LiteralOrigin(f.tmpl); ok {
			if _, _, err := a.checkURL(f.name, origin+"/"); err != nil {
				return err
			}
		}
	}
	return nil
}

// pollOutcome is what one poll found.
type pollOutcome struct {
	done, failed bool
	result       *string // JSON
	err          string
	transient    string // a poll error worth trying again
}

// poll makes one status request for t and records what it found.
func (d *dispatcher) poll(t *store.Task) {
	a := d.a
	var cfg providers.PollConfig
	var out pollOutcome
	if err := t.DecodeJSON("poll_config", t.PollConfig, &cfg); err != nil {
		out = pollOutcome{failed: true, err: "Polling: " + err.Error()}
	} else {
		out = d.pollOnce(t, &cfg)
	}
	switch {
	case out.done:
		a.metrics.polls.WithLabelValues("done").Inc()
	case out.failed:
		a.metrics.polls.WithLabelValues("failed").Inc()
	case out.transient != "":
		a.metrics.polls.WithLabelValues("transient").Inc()
	default:
		a.metrics.polls.WithLabelValues("running").Inc()
	}
	if d.callCtx.Err() != nil {
		return // shutting down: the lease fires again after restart
	}
	err := a.store.Write(context.Background(), func(tx store.Tx) error {
		cur, err := tx.Task(t.ID)
		if err != nil {
			return err
		}
		if !afterPoll(cur, out, pollInterval(&cfg), time.Now()) {
			return nil // cancelled or called back meanwhile
		}
		if err := tx.UpdateTask(cur, store.StatusPolling); err != nil {
			return err
		}
		tx.AfterCommit(func() { a.scheduled(cur) })
		return nil
	})
	if err != nil {
		a.log.Error("record poll", "task", t.ID, "err", err)
	}
}

func (d *dispatcher) pollOnce(t *store.Task, cfg *providers.PollConfig) pollOutcome {
	var start callResult
	if err := t.DecodeJSON("start_result", t.StartResult, &start); err != nil {
		return pollOutcome{failed: true, err: "Polling: " + err.Error()}
	}
	var startBody any
	json.Unmarshal([]byte(start.Body), &startBody)

	pollURL, err := providers.Expand(cfg.URLTemplate, startBody, start.Headers)
	if err != nil {
		return pollOutcome{failed: true, err: "Polling: " + err.Error()}
	}
	res, perr := d.pollGet(t, cfg, pollURL)
	if perr != nil {
		return *perr
	}
	var doc any
	if err := json.Unmarshal(res.Body, &doc); err != nil && res.StatusCode != http.StatusAccepted {
		return pollOutcome{transient: "Polling: the status response is not JSON"}
	}
	o := cfg.Evaluate(res.StatusCode, doc)
	switch o.State {
	case providers.Done:
		return d.pollResult(t, cfg, startBody, start.Headers, doc, res.Body)
	case providers.Failed:
		msg := "Provider reported status " + o.Status
		if s, isStr := o.Error.(string); isStr && s != "" {
			msg = s
		} else if o.Error != nil {
			b, _ := json.Marshal(o.Error)
			msg = string(b)
		}
		return pollOutcome{failed: true, err: msg}
	}
	return pollOutcome{}
}

// pollGet sends one GET of the polling flow; a non-nil outcome ends the poll there.
func (d *dispatcher) pollGet(t *store.Task, cfg *providers.PollConfig, u string) (*outbound.Response, *pollOutcome) {
	a := d.a
	req, err := http.NewRequestWithContext(d.callCtx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &pollOutcome{failed: true, err: "Polling: invalid URL " + u}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-AsyncQueue-Task-Id", t.ID)
	// Credentials go only where the start call went: the start response (which chose u) is
	// the provider's word, not the task owner's.
	withheld := cfg.ForwardAuth && !sameOrigin(t.TargetURL, u)
	if cfg.ForwardAuth && !withheld {
		names := cfg.AuthHeaderNames()
		fwd := map[string]string{}
		stored, err := t.HeaderMap()
		if err != nil {
			return nil, &pollOutcome{failed: true, err: "Polling: " + err.Error()}
		}
		for k, v := range stored {
			if slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(k, n) }) {
				fwd[k] = v
			}
		}
		resolved, err := a.resolveHeaders(d.callCtx, t.TeamID, fwd)
		if err != nil {
			return nil, &pollOutcome{failed: true, err: err.Error()}
		}
		for k, v := range resolved {
			req.Header.Set(k, v)
		}
	}
	res, err := a.out.Do(req, time.Duration(t.TimeoutMS)*time.Millisecond)
	if err != nil {
		if outbound.IsBlocked(err) {
			return nil, &pollOutcome{failed: true, err: outbound.DescribeError(err, 0)}
		}
		return nil, &pollOutcome{transient: "Polling: " + outbound.DescribeError(err, time.Duration(t.TimeoutMS)*time.Millisecond)}
	}
	switch {
	case res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests:
		return nil, &pollOutcome{transient: fmt.Sprintf("Polling: HTTP %d - %s", res.StatusCode, http.StatusText(res.StatusCode))}
	case res.StatusCode >= 400:
		msg := fmt.Sprintf("Polling failed: HTTP %d - %s: %s", res.StatusCode, http.StatusText(res.StatusCode), snippet(res.Body))
		if withheld {
			msg += fmt.Sprintf(" (forwardAuth sends credentials only to %s, where targetUrl points; this URL is on %s)",
				origin(t.TargetURL), origin(u))
		}
		return nil, &pollOutcome{failed: true, err: msg}
	}
	return res, nil
}

// origin is the scheme, host and port of a URL, with the scheme's default port made explicit.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func sameOrigin(a, b string) bool {
	oa := origin(a)
	return oa != "" && oa == origin(b)
}

// pollResult builds the result of a finished job: resultUrlTemplate's response, the value at
// resultPath, or the whole status response.
func (d *dispatcher) pollResult(t *store.Task, cfg *providers.PollConfig, startBody any, startHeaders map[string]string, doc any, raw []byte) pollOutcome {
	if cfg.ResultURLTemplate != "" {
		u, err := providers.Expand(cfg.ResultURLTemplate, startBody, startHeaders)
		if err != nil {
			return pollOutcome{failed: true, err: "Polling: " + err.Error()}
		}
		res, out := d.pollGet(t, cfg, u)
		if out != nil {
			return *out // a transient error polls again later; the rest ends the task
		}
		var body any
		if err := json.Unmarshal(res.Body, &body); err != nil {
			return pollOutcome{done: true, result: jsonOrString(res.Body)}
		}
		doc, raw = body, res.Body
	}
	if cfg.ResultPath == "" {
		return pollOutcome{done: true, result: jsonOrString(raw)}
	}
	v, err := cfg.Result(doc)
	if err != nil {
		return pollOutcome{failed: true, err: "Polling: " + err.Error()}
	}
	b, _ := json.Marshal(v)
	s := string(b)
	return pollOutcome{done: true, result: &s}
}

// jsonOrString keeps a JSON body as JSON and wraps anything else as a JSON string.
func jsonOrString(b []byte) *string {
	var s string
	if json.Valid(b) {
		var buf bytes.Buffer
		json.Compact(&buf, b)
		s = buf.String()
	} else {
		q, _ := json.Marshal(string(b))
		s = string(q)
	}
	return &s
}

func snippet(b []byte) string {
	const n = 500
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// listProviders is GET /v1/providers: the built-in polling templates.
func (a *App) listProviders(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]any{"providers": providers.All()})
}
