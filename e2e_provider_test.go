package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeReplicate behaves like Replicate's predictions API: submit → id → processing… → succeeded
// (or failed), and checks that polls carry the forwarded Authorization header.
type fakeReplicate struct {
	srv       *httptest.Server
	wantAuth  string
	polls     atomic.Int32
	doneAfter int32
	fail      bool
	badAuth   atomic.Int32
	mu        sync.Mutex
	submitted []string // bodies of submissions
}

func newFakeReplicate(t *testing.T, wantAuth string, doneAfter int32, fail bool) *fakeReplicate {
	f := &fakeReplicate{wantAuth: wantAuth, doneAfter: doneAfter, fail: fail}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != f.wantAuth {
			f.badAuth.Add(1)
			http.Error(w, `{"detail":"Unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST" && r.URL.Path == "/v1/predictions":
			b, _ := io.ReadAll(r.Body)
			f.mu.Lock()
			f.submitted = append(f.submitted, string(b))
			f.mu.Unlock()
			w.WriteHeader(201)
			fmt.Fprintf(w, `{"id":"p1","status":"starting","urls":{"get":"%s/v1/predictions/p1","cancel":"%s/v1/predictions/p1/cancel"}}`,
				f.srv.URL, f.srv.URL)
		case r.Method == "GET" && r.URL.Path == "/v1/predictions/p1":
			n := f.polls.Add(1)
			switch {
			case n < f.doneAfter:
				fmt.Fprint(w, `{"id":"p1","status":"processing","output":null}`)
			case f.fail:
				fmt.Fprint(w, `{"id":"p1","status":"failed","error":"CUDA out of memory"}`)
			default:
				fmt.Fprint(w, `{"id":"p1","status":"succeeded","output":["https://cdn.example.com/out.png"]}`)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func TestE2EProviderReplicatePollingWithVault(t *testing.T) {
	t.Parallel()
	const secret = "Bearer r8_SuperSecretValue_4242"
	s := startServer(t, "")
	f := newFakeReplicate(t, secret, 3, false)

	r := s.call("POST", "/v1/tokens", map[string]any{"name": "replicate", "value": secret})
	if r.Status != 201 {
		t.Fatalf("create token: %d %s", r.Status, r.Raw)
	}
	tok := r.Body["token"].(map[string]any)["id"].(string)
	if !strings.HasPrefix(tok, "tok_") || strings.Contains(r.Raw, "r8_Super") {
		t.Fatalf("token response: %s", r.Raw)
	}

	r = s.call("POST", "/v1/tasks", map[string]any{
		"targetUrl": f.srv.URL + "/v1/predictions", "body": `{"input":{"prompt":"a cat"}}`,
		"headers":  map[string]string{"Authorization": tok},
		"provider": "replicate", "pollConfig": map[string]any{"interval": 1},
	})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	id := r.task()["id"].(string)
	if r.task()["headers"].(map[string]any)["Authorization"] != tok {
		t.Errorf("task headers should keep the reference: %s", r.Raw)
	}
	s.waitStatus(id, "polling", 10*time.Second)
	task := s.waitStatus(id, "completed", 20*time.Second)
	out, _ := json.Marshal(task["result"])
	if string(out) != `["https://cdn.example.com/out.png"]` {
		t.Errorf("result %s, want the output array", out)
	}
	if f.badAuth.Load() != 0 {
		t.Errorf("%d requests reached the provider without the vault value", f.badAuth.Load())
	}
	if f.polls.Load() < 3 {
		t.Errorf("polls = %d, want ≥ 3", f.polls.Load())
	}
	// The secret is in no response, log line or database file.
	list := s.call("GET", "/v1/tasks/"+id, nil)
	for name, text := range map[string]string{"task": list.Raw, "logs": s.Logs()} {
		if strings.Contains(text, "r8_Super") {
			t.Errorf("vault value leaked into %s", name)
		}
	}
	for _, p := range []string{s.db, s.db + "-wal"} {
		b, err := os.ReadFile(p)
		if onPostgres {
			b, err = dbContents(t, s.db), nil
		}
		if err != nil {
			continue
		}
		if strings.Contains(string(b), "r8_Super") {
			t.Errorf("vault value found in %s", p)
		}
	}
}

func TestE2EProviderPollingFailureAndRestart(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	f := newFakeReplicate(t, "Bearer x", 2, true)
	r := s.call("POST", "/v1/tasks", map[string]any{
		"targetUrl": f.srv.URL + "/v1/predictions", "headers": map[string]string{"Authorization": "Bearer x"},
		"provider": "replicate", "pollConfig": map[string]any{"interval": 1},
	})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	id := r.task()["id"].(string)
	s.waitStatus(id, "polling", 10*time.Second)
	s.restart() // polling resumes from the durable timer
	// If the kill landed while a poll was in flight, its lease (timeout + 5 s) must run out
	// first: allow for that on a slow machine.
	task := s.waitStatus(id, "failed", 50*time.Second)
	if task["error"] != "CUDA out of memory" {
		t.Errorf("error %v, want the provider's error", task["error"])
	}
}

func TestE2EProviderCustomPollConfigAndTimeout(t *testing.T) {
	t.Parallel()
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			fmt.Fprint(w, `{"job":{"ref":"j 1"}}`)
			return
		}
		polls.Add(1)
		if r.URL.Path != "/jobs/j%201" && r.URL.Path != "/jobs/j 1" {
			http.Error(w, "wrong path "+r.URL.Path, 404)
			return
		}
		fmt.Fprint(w, `{"state":{"phase":"busy"}}`)
	}))
	defer srv.Close()
	s := startServer(t, "")
	r := s.call("POST", "/v1/tasks", map[string]any{
		"targetUrl": srv.URL + "/submit",
		"pollConfig": map[string]any{"urlTemplate": srv.URL + "/jobs/{startResult.body.job.ref}", "interval": 1,
			"statusPath": "state.phase", "doneValues": []string{"ready"}, "failValues": []string{"broken"}, "maxDuration": 2},
	})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	id := r.task()["id"].(string)
	task := s.waitStatus(id, "timeout", 15*time.Second)
	if polls.Load() < 1 || !strings.Contains(fmt.Sprint(task["error"]), "maxDuration") {
		t.Errorf("polls %d, error %v", polls.Load(), task["error"])
	}

	// A missing placeholder path fails the task with a clear error.
	r = s.call("POST", "/v1/tasks", map[string]any{
		"targetUrl": srv.URL + "/submit",
		"pollConfig": map[string]any{"urlTemplate": srv.URL + "/jobs/{startResult.body.nope.id}", "interval": 1,
			"statusPath": "state.phase", "doneValues": []string{"ready"}},
	})
	id = r.task()["id"].(string)
	task = s.waitStatus(id, "failed", 15*time.Second)
	if !strings.Contains(fmt.Sprint(task["error"]), "nope") {
		t.Errorf("error %v should name the missing path", task["error"])
	}

	// Bad configurations are refused at create time.
	for _, cfg := range []map[string]any{
		{"interval": 1, "statusPath": "s", "doneValues": []string{"ok"}},
		{"urlTemplate": srv.URL + "/x", "interval": 0, "statusPath": "s", "doneValues": []string{"ok"}},
		{"urlTemplate": srv.URL + "/x", "interval": 1, "doneValues": []string{"ok"}},
		{"urlTemplate": srv.URL + "/x", "interval": 1, "statusPath": "s", "bogus": 1},
	} {
		r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": srv.URL, "pollConfig": cfg})
		if r.Status != 400 || !strings.Contains(r.Raw, "pollConfig") && !strings.Contains(r.Raw, "bogus") {
			t.Errorf("pollConfig %v: %d %s, want 400 naming the field", cfg, r.Status, r.Raw)
		}
	}
	if r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": srv.URL, "provider": "nope"}); r.Status != 400 {
		t.Errorf("unknown provider: %d", r.Status)
	}
}

func TestE2EProviderCallbackURL(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got string
	release := make(chan struct{})
	slow := atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = string(b)
		mu.Unlock()
		if slow.Load() {
			<-release
		}
		fmt.Fprint(w, `{"id":"pred_1","status":"starting"}`)
	}))
	defer srv.Close()
	defer close(release)
	s := startServer(t, "", "--public-url", "https://q.example.com")

	r := s.call("POST", "/v1/tasks", map[string]any{
		"targetUrl": srv.URL + "/v1/predictions", "maxWaitTime": 60,
		"body": `{"input":{"prompt":"a cat"},"webhook":"{asyncqueue_callback_url}"}`,
	})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	cbURL, _ := r.Body["callbackUrl"].(string)
	id := r.task()["id"].(string)
	if !strings.HasPrefix(cbURL, "https://q.example.com/v1/callbacks/") || len(cbURL) != len("https://q.example.com/v1/callbacks/")+64 {
		t.Fatalf("callbackUrl %q", cbURL)
	}
	cbID := strings.TrimPrefix(cbURL, "https://q.example.com/v1/callbacks/")
	s.waitStatus(id, "waiting", 10*time.Second)
	mu.Lock()
	if !strings.Contains(got, cbURL) {
		t.Errorf("target got body %s, want the callback URL in it", got)
	}
	mu.Unlock()
	stored, err := os.ReadFile(s.db)
	if onPostgres {
		stored, err = dbContents(t, s.db), nil
	}
	if err == nil && strings.Contains(string(stored), cbID) {
		t.Error("the raw callback id is stored in the database")
	}

	r = s.call("POST", "/v1/callbacks/"+cbID, `{"status":"succeeded","output":["x.png"]}`, "X-API-Key", "")
	if r.Status != 200 {
		t.Fatalf("callback: %d %s", r.Status, r.Raw)
	}
	task := s.call("GET", "/v1/tasks/"+id, nil).task()
	res, _ := task["result"].(map[string]any)
	if task["status"] != "completed" || res["statusCode"] != 200.0 || res["body"] != `{"status":"succeeded","output":["x.png"]}` {
		t.Errorf("task after callback: %v", task)
	}
	if r := s.call("POST", "/v1/callbacks/"+cbID, `{}`, "X-API-Key", ""); r.Status != 409 ||
		!strings.Contains(r.Raw, "Task is not in waiting/polling state (current: completed)") {
		t.Errorf("second callback: %d %s", r.Status, r.Raw)
	}
	if r := s.call("POST", "/v1/callbacks/"+strings.Repeat("0", 64), `{}`, "X-API-Key", ""); r.Status != 404 ||
		!strings.Contains(r.Raw, "Invalid or expired callback ID") {
		t.Errorf("unknown callback: %d %s", r.Status, r.Raw)
	}

	// Early callback: it arrives while the submission is still in flight and is applied after.
	slow.Store(true)
	r = s.call("POST", "/v1/tasks", map[string]any{"targetUrl": srv.URL + "/v1/predictions",
		"body": `{"webhook":"{asyncqueue_callback_url}"}`})
	id = r.task()["id"].(string)
	cbID = r.Body["callbackUrl"].(string)[len("https://q.example.com/v1/callbacks/"):]
	s.waitStatus(id, "processing", 10*time.Second)
	if r := s.call("POST", "/v1/callbacks/"+cbID, `{"done":true}`, "X-API-Key", ""); r.Status != 202 || r.Body["buffered"] != true {
		t.Errorf("early callback: %d %s", r.Status, r.Raw)
	}
	release <- struct{}{}
	task = s.waitStatus(id, "completed", 10*time.Second)
	if res, _ := task["result"].(map[string]any); res["body"] != `{"done":true}` {
		t.Errorf("early callback result: %v", task["result"])
	}
}

func TestE2EProviderVaultRefs(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": "https://example.com",
		"headers": map[string]string{"Authorization": "tok_doesnotexist000000000000"}})
	if r.Status != 400 || !strings.Contains(r.Raw, "tok_doesnotexist") {
		t.Errorf("unknown token: %d %s", r.Status, r.Raw)
	}
	// A value that could never go out as a header is refused when stored, not at every send.
	for _, v := range []string{"a\x01b", "a\x0bb", "a\x7fb"} {
		if r := s.call("POST", "/v1/tokens", map[string]any{"name": "k", "value": v}); r.Status != 400 || !strings.Contains(r.Raw, "control character") {
			t.Errorf("vault value %q: %d %s, want 400 naming the control character", v, r.Status, r.Raw)
		}
	}
	r = s.call("POST", "/v1/tokens", map[string]any{"name": "k", "value": "v"})
	tok := r.Body["token"].(map[string]any)["id"].(string)
	if l := s.call("GET", "/v1/tokens", nil); !strings.Contains(l.Raw, tok) {
		t.Errorf("list: %s", l.Raw)
	}
	if d := s.call("DELETE", "/v1/tokens/"+tok, nil); d.Status != 200 {
		t.Errorf("delete: %d %s", d.Status, d.Raw)
	}
	r = s.call("POST", "/v1/tasks", map[string]any{"targetUrl": "https://example.com",
		"headers": map[string]string{"Authorization": tok}})
	if r.Status != 400 {
		t.Errorf("deleted token: %d %s", r.Status, r.Raw)
	}
	p := s.call("GET", "/v1/providers", nil, "X-API-Key", "")
	for _, id := range []string{"fal", "replicate", "runwayml", "luma", "elevenlabs-dubbing", "stability-video"} {
		if !strings.Contains(p.Raw, `"id":"`+id+`"`) {
			t.Errorf("GET /v1/providers lacks %s", id)
		}
	}
}

// TestE2EProviderTemplates runs one task per built-in template against a local fake that
// answers in that provider's documented shapes (submit → running… → done). Only the poll
// URL is pointed at the fake; every other setting is the template's own.
func TestE2EProviderTemplates(t *testing.T) {
	t.Parallel()
	type shape struct {
		authHeader, authValue string
		submit                string // body of the submit answer; %s = the fake's URL
		pollPath              string // urlTemplate path after the fake's URL
		running               string // poll body while running (status 200, or 202 when prefixed "202 ")
		done                  string // final poll body
		resultPath            string // path of the result document on the fake (fal)
		resultBody            string
		want                  string // the task's result, as JSON
	}
	cases := map[string]shape{
		"fal": {"Authorization", "Key fal_secret",
			`{"request_id":"r1","status_url":"%[1]s/requests/r1/status","response_url":"%[1]s/requests/r1"}`,
			"", `{"status":"IN_PROGRESS"}`, `{"status":"COMPLETED"}`,
			"/requests/r1", `{"images":[{"url":"https://cdn.example.com/a.png"}]}`,
			`{"images":[{"url":"https://cdn.example.com/a.png"}]}`},
		"replicate": {"Authorization", "Bearer r8_x",
			`{"id":"p1","status":"starting","urls":{"get":"%[1]s/v1/predictions/p1"}}`,
			"", `{"status":"processing"}`, `{"status":"succeeded","output":["https://cdn.example.com/b.png"]}`,
			"", "", `["https://cdn.example.com/b.png"]`},
		"runwayml": {"Authorization", "Bearer rw_x", `{"id":"t1"}`,
			"/v1/tasks/{startResult.body.id}", `{"id":"t1","status":"RUNNING"}`,
			`{"id":"t1","status":"SUCCEEDED","output":["https://cdn.example.com/c.mp4"]}`,
			"", "", `["https://cdn.example.com/c.mp4"]`},
		"luma": {"Authorization", "Bearer luma_x", `{"id":"g1","state":"queued"}`,
			"/generations/{startResult.body.id}", `{"id":"g1","state":"dreaming"}`,
			`{"id":"g1","state":"completed","assets":{"video":"https://cdn.example.com/d.mp4"}}`,
			"", "", `{"video":"https://cdn.example.com/d.mp4"}`},
		"elevenlabs-dubbing": {"xi-api-key", "el_x", `{"dubbing_id":"d1","expected_duration_sec":3}`,
			"/v1/dubbing/{startResult.body.dubbing_id}", `{"dubbing_id":"d1","status":"dubbing"}`,
			`{"dubbing_id":"d1","status":"dubbed","target_languages":["es"]}`,
			"", "", `{"dubbing_id":"d1","status":"dubbed","target_languages":["es"]}`},
		"stability-video": {"Authorization", "Bearer sk-x", `{"id":"s1"}`,
			"/v2beta/image-to-video/result/{startResult.body.id}", `202 {"id":"s1","status":"in-progress"}`,
			`{"video":"AAAA","finish_reason":"SUCCESS","seed":7}`,
			"", "", `{"video":"AAAA","finish_reason":"SUCCESS","seed":7}`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "")
			var polls, unauth atomic.Int32
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get(c.authHeader) != c.authValue {
					unauth.Add(1)
					http.Error(w, "unauthorized", http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				switch {
				case r.Method == "POST":
					fmt.Fprint(w, strings.ReplaceAll(c.submit, "%[1]s", srv.URL))
				case c.resultPath != "" && r.URL.Path == c.resultPath:
					fmt.Fprint(w, c.resultBody)
				default:
					if polls.Add(1) < 2 {
						body := c.running
						if b, ok := strings.CutPrefix(body, "202 "); ok {
							w.WriteHeader(202)
							body = b
						}
						fmt.Fprint(w, body)
						return
					}
					fmt.Fprint(w, c.done)
				}
			}))
			defer srv.Close()
			pc := map[string]any{"interval": 1}
			if c.pollPath != "" {
				pc["urlTemplate"] = srv.URL + c.pollPath
			}
			r := s.call("POST", "/v1/tasks", map[string]any{
				"targetUrl": srv.URL + "/submit", "body": `{"prompt":"x"}`,
				"headers":  map[string]string{c.authHeader: c.authValue},
				"provider": name, "pollConfig": pc,
			})
			if r.Status != 201 {
				t.Fatalf("create: %d %s", r.Status, r.Raw)
			}
			id := r.task()["id"].(string)
			deadline := time.Now().Add(20 * time.Second)
			task := s.call("GET", "/v1/tasks/"+id, nil).task()
			for task["status"] != "completed" && task["status"] != "failed" && time.Now().Before(deadline) {
				task = s.call("GET", "/v1/tasks/"+id+"?wait=1", nil).task()
			}
			if task["status"] != "completed" {
				t.Fatalf("status %v, error %v", task["status"], task["error"])
			}
			got, _ := json.Marshal(task["result"])
			var w any
			json.Unmarshal([]byte(c.want), &w)
			want, _ := json.Marshal(w)
			if string(got) != string(want) {
				t.Errorf("result %s, want %s", got, c.want)
			}
			if unauth.Load() != 0 || polls.Load() < 2 {
				t.Errorf("unauthenticated requests %d, polls %d", unauth.Load(), polls.Load())
			}
		})
	}
}
