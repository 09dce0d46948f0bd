package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestE2EMetrics checks that /metrics serves the documented series with values that follow
// what the server did.
func TestE2EMetrics(t *testing.T) {
	t.Parallel()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer target.Close()
	s := startServer(t, "")
	for range 3 {
		r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL})
		if r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Raw)
		}
		s.waitStatus(r.task()["id"].(string), "completed", 10*time.Second)
	}
	s.call("POST", "/v1/tasks", map[string]any{"targetUrl": "nope"})
	s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL, "delay": 3600})
	s.call("POST", "/v1/signals/"+strings.Repeat("a", 64), `{"status":"completed"}`, "X-API-Key", "")

	res, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	text := string(b)
	for _, want := range []string{
		`asyncqueue_tasks_created_total{outcome="created"} 4`,
		`asyncqueue_tasks_created_total{outcome="rejected"} 1`,
		`asyncqueue_tasks{status="completed"} 3`,
		`asyncqueue_tasks{status="delayed"} 1`,
		`asyncqueue_callbacks_total{result="2xx"} 3`,
		`asyncqueue_signals_total{kind="signal",result="not_found"} 1`,
		`asyncqueue_callback_duration_seconds_count 3`,
		`asyncqueue_timer_lag_seconds_bucket`,
		`asyncqueue_db_write_batch_size_bucket`,
		`asyncqueue_db_commit_seconds_count`,
		`asyncqueue_queue_depth 0`,
		`asyncqueue_oldest_pending_age_seconds 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
