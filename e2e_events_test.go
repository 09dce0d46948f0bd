package main

import (
	"strings"
	"testing"
	"time"
)

// TestE2ETaskEvents: signals, heartbeats and provider callbacks are kept as the task's history.
func TestE2ETaskEvents(t *testing.T) {
	t.Parallel()
	target := okTarget(t)
	s := startServer(t, "")
	r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL, "waitForSignal": true, "maxWaitTime": 60})
	id, tok := r.task()["id"].(string), r.Body["signalToken"].(string)
	s.waitStatus(id, "waiting", 10*time.Second)
	if h := s.call("POST", "/v1/signals/"+tok+"/heartbeat", `{"progress":{"pct":40}}`, "X-API-Key", ""); h.Status != 200 {
		t.Fatalf("heartbeat: %d %s", h.Status, h.Raw)
	}
	if g := s.call("POST", "/v1/signals/"+tok, `{"status":"completed","result":{"ok":true}}`, "X-API-Key", ""); g.Status != 200 {
		t.Fatalf("signal: %d %s", g.Status, g.Raw)
	}
	e := s.call("GET", "/v1/tasks/"+id+"/events", nil)
	evs, _ := e.Body["events"].([]any)
	if e.Status != 200 || len(evs) != 2 {
		t.Fatalf("events: %d %s", e.Status, e.Raw)
	}
	first, second := evs[0].(map[string]any), evs[1].(map[string]any)
	if first["kind"] != "heartbeat" || !strings.Contains(e.Raw, `"pct":40`) || second["kind"] != "signal" ||
		!strings.Contains(e.Raw, `"ok":true`) || first["at"] == nil {
		t.Errorf("events: %s", e.Raw)
	}
	if strings.Contains(e.Raw, tok) {
		t.Error("the token appears in the events")
	}
}
