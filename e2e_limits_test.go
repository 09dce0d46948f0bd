package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// nested is a JSON value n arrays deep around a number.
func nested(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }

// TestE2ELimitsJSONDepth: every JSON body the API accepts may nest at most MaxJSONDepth
// levels (the body's own object counts), so nothing stored can crash a recursive parser
// reading it back.
func TestE2ELimitsJSONDepth(t *testing.T) {
	t.Parallel()
	target := newE2ETarget(t, nil)
	s := startServer(t, "")
	id, tok, _ := e2eWaitingTask(t, s, target.URL, map[string]any{"maxWaitTime": 3600})
	cb := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": target.URL, "delay": 3600,
		"body": `{"callback":"` + CallbackPlaceholder + `"}`})
	aqtWant(t, cb, http.StatusCreated, "create a callback task")
	cbPath := strings.TrimPrefix(aqtStr(cb.Body, "callbackUrl"), s.base)

	deep := nested(9000)
	tooDeep := nested(MaxJSONDepth) // inside the body's object: one level too many
	for _, c := range []struct{ name, method, path, body string }{
		{"signal result", "POST", "/v1/signals/" + tok, `{"status":"completed","result":` + deep + `}`},
		{"signal result one level too deep", "POST", "/v1/signals/" + tok, `{"status":"completed","result":` + tooDeep + `}`},
		{"signal by id", "POST", "/v1/tasks/" + id + "/signal", `{"status":"completed","result":` + deep + `}`},
		{"heartbeat progress", "POST", "/v1/signals/" + tok + "/heartbeat", `{"progress":` + deep + `}`},
		{"task body", "POST", "/v1/tasks", `{"targetUrl":"` + target.URL + `","body":` + deep + `}`},
		{"provider callback", "POST", cbPath, deep},
	} {
		hdr := sigNoKey
		if strings.HasPrefix(c.path, "/v1/tasks") {
			hdr = nil
		}
		r := s.call(c.method, c.path, c.body, hdr...)
		if r.Status != http.StatusBadRequest || !strings.Contains(aqtErr(r), "64 levels") {
			t.Errorf("%s: %d %.200s, want 400 naming the depth limit", c.name, r.Status, r.Raw)
		}
	}
	if got := e2eGet(t, s, id); got["status"] != "waiting" {
		t.Fatalf("after the refused signals the task is %v, want still waiting", got["status"])
	}
	// Exactly at the limit: stored and served back.
	ok := nested(MaxJSONDepth - 1)
	r := s.call("POST", "/v1/signals/"+tok, `{"status":"completed","result":`+ok+`}`, sigNoKey...)
	aqtWant(t, r, http.StatusOK, "signal at the depth limit")
	if got := e2eJSON(e2eGet(t, s, id)["result"]); got != ok {
		t.Errorf("result served back as %.100s, want %.100s", got, ok)
	}
}

// TestE2EProviderAuthStaysWithOrigin: with forwardAuth, the vault-resolved credentials go
// to poll URLs on the targetUrl's origin only, never to a host the start response names.
func TestE2EProviderAuthStaysWithOrigin(t *testing.T) {
	t.Parallel()
	const secret = "Bearer SECRET-never-elsewhere"
	var mu sync.Mutex
	var seen []string // Authorization headers that reached the other host
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/locked") {
			http.Error(w, `{"detail":"Unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"status":"done"}`)
	}))
	defer other.Close()
	var sameAuth []string
	start := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost { // the start call names where to poll
			fmt.Fprintf(w, `{"url":%q}`, r.URL.Query().Get("poll"))
			return
		}
		mu.Lock()
		sameAuth = append(sameAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(w, `{"status":"done"}`)
	}))
	defer start.Close()
	s := startServer(t, "")
	r := s.call("POST", "/v1/tokens", map[string]any{"name": "provider", "value": secret})
	aqtWant(t, r, http.StatusCreated, "vault token")
	tok := aqtStr(aqtObj(r.Body, "token"), "id")
	create := func(poll string) string {
		task := aqtCreate(t, s, map[string]any{"targetUrl": start.URL + "/submit?poll=" + poll,
			"headers": map[string]string{"Authorization": tok},
			"pollConfig": map[string]any{"urlTemplate": "{startResult.body.url}", "interval": 1,
				"statusPath": "status", "doneValues": []string{"done"}, "forwardAuth": true}})
		return aqtStr(task, "id")
	}
	toOther := create(other.URL + "/status")
	locked := create(other.URL + "/locked")
	same := create(start.URL + "/status")
	s.waitStatus(toOther, "completed", 20*time.Second)
	s.waitStatus(same, "completed", 20*time.Second)
	failed := s.waitStatus(locked, "failed", 20*time.Second)
	if e := aqtStr(failed, "error"); !strings.Contains(e, "forwardAuth") || !strings.Contains(e, start.URL[len("http://"):]) {
		t.Errorf("a 401 from another host: error %q, want it to say the credentials were kept for the targetUrl's origin", e)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range seen {
		if h != "" {
			t.Errorf("the other host received Authorization %q", h)
		}
	}
	if len(seen) < 2 {
		t.Errorf("the other host was polled %d times, want at least 2", len(seen))
	}
	if len(sameAuth) == 0 || sameAuth[0] != secret {
		t.Errorf("the targetUrl's own host got Authorization %q, want the vault value", sameAuth)
	}
}

// serverPeakRSS is the server's peak resident set (VmHWM) in bytes; 0 where /proc has none.
func serverPeakRSS(t *testing.T, s *server) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestE2ELimitsListMemory (issue 18, item 1): 40 tasks with 900 KB of headers each made a
// 37 MB page and four parallel pages took the server to 1.77 GB. A listed task's large
// fields are now bounded (ListFieldLimit) and named in "omitted", the page is written task
// by task, and pages are read through a small page cache of their own (store.List): the
// server stays well under 300 MB (about 90 MB here).
func TestE2ELimitsListMemory(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	headers := map[string]string{}
	for i := range 60 {
		headers[fmt.Sprintf("X-Big-%02d", i)] = strings.Repeat("h", 15000)
	}
	var big []string
	for range 40 {
		task := aqtCreate(t, s, map[string]any{"targetUrl": "http://127.0.0.1:9/x", "delay": 3600, "headers": headers})
		big = append(big, aqtStr(task, "id"))
	}
	small := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": "http://127.0.0.1:9/x", "delay": 3600,
		"headers": map[string]string{"X-Small": "1"}, "body": "hello"}), "id")

	page := func() (int, map[string]any) {
		req, _ := http.NewRequest("GET", s.base+"/v1/tasks?limit=100", nil)
		req.Header.Set("X-API-Key", s.key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil || res.StatusCode != 200 {
			t.Errorf("list: %d, %v: %.300s", res.StatusCode, err, raw)
		}
		return len(raw), body
	}
	n, body := page()
	if n > 1<<20 {
		t.Errorf("a page of 41 tasks is %d bytes, want under 1 MiB", n)
	}
	items, _ := body["tasks"].([]any)
	if len(items) != 41 {
		t.Fatalf("listed %d tasks, want 41", len(items))
	}
	for _, it := range items {
		item := it.(map[string]any)
		id := aqtStr(item, "id")
		if id == small {
			if item["omitted"] != nil || aqtStr(item, "body") != "hello" || len(aqtObj(item, "headers")) != 1 {
				t.Errorf("the small task was listed cut: %v", item)
			}
			continue
		}
		if e2eJSON(item["omitted"]) != `["headers"]` || len(aqtObj(item, "headers")) != 0 {
			t.Errorf("big task %s: omitted %v, %d headers; want headers left out and named", id, item["omitted"], len(aqtObj(item, "headers")))
		}
	}
	// The task itself still has everything.
	if got := s.call("GET", "/v1/tasks/"+big[0], nil); len(aqtObj(got.task(), "headers")) != 60 {
		t.Errorf("GET of a big task: %d headers, want 60", len(aqtObj(got.task(), "headers")))
	}

	for range 2 {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); page() }()
		}
		wg.Wait()
	}
	if peak := serverPeakRSS(t, s); peak > 300<<20 {
		t.Errorf("server peak RSS %d MB, want at most 300 MB", peak>>20)
	} else {
		t.Logf("server peak RSS %d MB (0: not measured here)", peak>>20)
	}
}

// TestE2ELimitsLongPollsPerTeam: a team may hold --max-long-polls long polls open; more get
// 429 with Retry-After, other teams are not affected, and a finished poll frees its place.
func TestE2ELimitsLongPollsPerTeam(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--max-long-polls", "3")
	id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": "http://127.0.0.1:9/x", "delay": 3600}), "id")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make(chan struct{}, 3)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held <- struct{}{}
			for ctx.Err() == nil { // a 429 here means the probe below held a place: again
				req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/v1/tasks/"+id+"?wait=25", nil)
				req.Header.Set("X-API-Key", s.key)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				res.Body.Close()
				if res.StatusCode != http.StatusTooManyRequests {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	for range 3 {
		<-held
	}
	var r resp
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) { // until the three are in the server
		if r = s.call("GET", "/v1/tasks/"+id+"?wait=1", nil); r.Status == http.StatusTooManyRequests {
			break
		}
		// The probe held a place while it waited: leave the three (they retry every 50 ms)
		// time to take it back before probing again.
		time.Sleep(200 * time.Millisecond)
	}
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || !strings.Contains(aqtErr(r), "long polls") {
		t.Fatalf("a fourth long poll: %d %s (Retry-After %q), want 429 naming the cap", r.Status, r.Raw, r.Header.Get("Retry-After"))
	}
	if r := s.call("GET", "/v1/tasks/"+id, nil); r.Status != 200 {
		t.Errorf("a plain GET while the long polls are full: %d", r.Status)
	}
	other := aqtTeamCreate(t, s.db, "other")
	otherID := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": "http://127.0.0.1:9/x", "delay": 3600}, "X-API-Key", other), "id")
	if r := s.call("GET", "/v1/tasks/"+otherID+"?wait=1", nil, "X-API-Key", other); r.Status != 200 {
		t.Errorf("another team's long poll: %d %s, want 200", r.Status, r.Raw)
	}
	cancel()
	wg.Wait()
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if r = s.call("GET", "/v1/tasks/"+id+"?wait=1", nil); r.Status == 200 {
			break
		}
	}
	if r.Status != 200 {
		t.Errorf("a long poll after the others ended: %d %s", r.Status, r.Raw)
	}
}
