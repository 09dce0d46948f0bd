package main

import (
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func okTarget(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(srv.Close)
	return srv
}

// TestE2EBackupDuringLoad: a backup taken while tasks are being created holds every task
// acknowledged before it started, and passes an integrity check.
func TestE2EBackupDuringLoad(t *testing.T) {
	sqliteOnly(t, "backup writes a SQLite file")
	t.Parallel()
	target := okTarget(t)
	s := startServer(t, "")
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL, "delay": 3600})
				if r.Status == 201 {
					mu.Lock()
					acked = append(acked, r.task()["id"].(string))
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	out := filepath.Join(t.TempDir(), "backup.db")
	b, err := exec.Command(binPath, "--db", s.db, "backup", "--to", out).CombinedOutput()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "integrity ok") {
		t.Errorf("backup output: %s", b)
	}
	db, err := sql.Open("sqlite", "file:"+out+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	missing := 0
	for _, id := range before {
		var n int
		db.QueryRow(`select count(*) from tasks where id = ?`, id).Scan(&n)
		if n != 1 {
			missing++
		}
	}
	if len(before) < 10 || missing != 0 {
		t.Errorf("%d tasks acknowledged before the backup, %d missing from it", len(before), missing)
	}
	if b, err := exec.Command(binPath, "--db", s.db, "backup", "--to", out).CombinedOutput(); err == nil ||
		!strings.Contains(string(b), "--force") {
		t.Errorf("backup over an existing file: %v %s", err, b)
	}
}

// TestE2ERetention: finished tasks older than --retention are deleted; unfinished ones stay.
func TestE2ERetention(t *testing.T) {
	t.Parallel()
	target := okTarget(t)
	s := startServer(t, "", "--retention", "2s")
	done := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL}).task()["id"].(string)
	waiting := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL, "waitForSignal": true, "maxWaitTime": 600}).task()["id"].(string)
	s.waitStatus(done, "completed", 10*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if s.call("GET", "/v1/tasks/"+done, nil).Status == 404 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := s.call("GET", "/v1/tasks/"+done, nil); r.Status != 404 {
		t.Errorf("finished task still there after the retention window: %d", r.Status)
	}
	if r := s.call("GET", "/v1/tasks/"+waiting, nil); r.Status != 200 || r.task()["status"] != "waiting" {
		t.Errorf("waiting task: %d %s", r.Status, r.Raw)
	}
	if m := s.metricsText(t); !strings.Contains(m, `asyncqueue_tasks{status="completed"} 0`) {
		t.Error("the completed count did not follow the prune")
	}
}

func (s *server) metricsText(t *testing.T) string {
	res, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestE2ETeamRateLimit: --rate-limit gives each team a budget with X-RateLimit-* headers.
func TestE2ETeamRateLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--rate-limit", "5/min")
	var last resp
	for i := range 6 {
		last = s.call("GET", "/v1/tasks", nil)
		if i < 5 && last.Status != 200 {
			t.Fatalf("request %d: %d", i+1, last.Status)
		}
		if i == 0 && (last.Header.Get("X-RateLimit-Limit") != "5" || last.Header.Get("X-RateLimit-Remaining") != "4") {
			t.Errorf("headers: limit %q remaining %q", last.Header.Get("X-RateLimit-Limit"), last.Header.Get("X-RateLimit-Remaining"))
		}
	}
	if last.Status != 429 || last.Header.Get("Retry-After") == "" || last.Header.Get("X-RateLimit-Remaining") != "0" ||
		!strings.Contains(last.Raw, "Rate limit") {
		t.Errorf("6th request: %d %v %s", last.Status, last.Header, last.Raw)
	}
	// Another team has its own budget.
	out, err := exec.Command(binPath, "--db", s.db, "teams", "create", "other").Output()
	if err != nil {
		t.Fatal(err)
	}
	if r := s.call("GET", "/v1/tasks", nil, "X-API-Key", strings.TrimSpace(string(out))); r.Status != 200 {
		t.Errorf("other team: %d", r.Status)
	}
	if r := s.call("GET", "/v1/tasks", nil, "X-API-Key", ""); r.Status != 401 {
		t.Errorf("no key: %d, want 401 before any rate limit", r.Status)
	}
}

// TestE2EDiskFull: when the database cannot grow, creates get 507 and store nothing,
// reads keep working, and service resumes when space returns.
func TestE2EDiskFull(t *testing.T) {
	sqliteOnly(t, "--max-db-size bounds the SQLite file")
	t.Parallel()
	target := okTarget(t)
	s := startServer(t, "", "--max-db-size", "2000000")
	body := strings.Repeat("x", 100_000)
	created, full := 0, 0
	for i := 0; i < 60 && full == 0; i++ {
		r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL, "body": body, "delay": 3600})
		switch r.Status {
		case 201:
			created++
		case 507:
			full++
			if !strings.Contains(r.Raw, "database is full") {
				t.Errorf("507 message: %s", r.Raw)
			}
		default:
			t.Fatalf("create %d: %d %s", i, r.Status, r.Raw)
		}
	}
	if full == 0 {
		t.Fatalf("%d tasks of 100 kB fit in a 2 MB database", created)
	}
	l := s.call("GET", "/v1/tasks?limit=100", nil)
	if l.Status != 200 || int(l.Body["pagination"].(map[string]any)["total"].(float64)) != created {
		t.Errorf("list while full: %d %s, want total %d", l.Status, l.Raw[:min(200, len(l.Raw))], created)
	}
	// Space returns: restart with room to grow.
	s.kill()
	s.args = []string{"--max-db-size", "0"}
	s.launch(false)
	if r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL, "body": body}); r.Status != 201 {
		t.Errorf("after space returned: %d %s", r.Status, r.Raw)
	}
	db, err := sql.Open("sqlite", "file:"+s.db+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`pragma integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity: %v %s", err, check)
	}
}

// TestE2EBenchCommand runs `asyncqueue bench` small and checks that it reports every figure
// and lost nothing.
func TestE2EBenchCommand(t *testing.T) {
	storeIndependent(t, "bench runs its own server on SQLite")
	t.Parallel()
	out, err := exec.Command(binPath, "bench", "--tasks", "300", "--delayed", "30", "--delay", "500ms").CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"created/s", "completed/s (end to end)", "create→callback p50 / p99", "timer lateness p50 / p99 / max"} {
		if !strings.Contains(text, want) {
			t.Errorf("bench output lacks %q:\n%s", want, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (strings.HasPrefix(line, "lost") || strings.HasPrefix(line, "delayed lost") ||
			strings.HasPrefix(line, "duplicate callbacks") || strings.HasPrefix(line, "create errors")) && f[len(f)-1] != "0" {
			t.Errorf("bench reports %q", line)
		}
	}
}
