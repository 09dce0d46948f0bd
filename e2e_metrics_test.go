package main

import (
	"encoding/json"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
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

// TestGrafanaDashboardUsesServedSeries: every series the dashboard queries is one the
// server registers, so a rename cannot silently blank a panel.
func TestGrafanaDashboardUsesServedSeries(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	m := newMetrics(&App{})
	names := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for _, c := range m.all {
		ch := make(chan *prometheus.Desc, 1000)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			if mm := fq.FindStringSubmatch(d.String()); mm != nil {
				names[mm[1]] = true
			}
		}
	}
	series := regexp.MustCompile(`[a-z_]+(_bucket|_sum|_count)?\b`)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, s := range series.FindAllString(tg.Expr, -1) {
				if !strings.HasPrefix(s, "asyncqueue_") && !strings.HasPrefix(s, "process_") && !strings.HasPrefix(s, "go_") {
					continue
				}
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "_bucket"), "_sum"), "_count")
				if !names[s] && !names[base] {
					t.Errorf("panel %q queries %s, which the server does not serve", p.Title, s)
				}
			}
		}
	}
}
