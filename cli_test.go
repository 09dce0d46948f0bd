package main

// Tests of the client commands (tasks, signal, tail) through the built binary against a
// running server: tables, --json, and the exit codes scripts rely on.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ccEnv is the environment of a client command talking to s with key.
func ccEnv(s *server, key string) []string {
	env := []string{"ASYNCQUEUE_URL=" + s.base}
	if key != "" {
		env = append(env, "ASYNCQUEUE_API_KEY="+key)
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ASYNCQUEUE_") {
			env = append(env, kv)
		}
	}
	return env
}

// ccRun runs the binary with env and returns stdout, stderr and the exit code.
func ccRun(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("asyncqueue %v did not exit within 30 s", args)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("asyncqueue %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// ccOK runs the binary, fails the test unless it exits 0, and returns stdout.
func ccOK(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, errOut, code := ccRun(t, env, args...)
	if code != 0 {
		t.Fatalf("asyncqueue %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// ccExit runs the binary and checks its exit code and that stderr mentions msg.
func ccExit(t *testing.T, env []string, want int, msg string, args ...string) {
	t.Helper()
	out, errOut, code := ccRun(t, env, args...)
	if code != want || !strings.Contains(errOut, msg) {
		t.Errorf("asyncqueue %v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", args, code, want, msg, out, errOut)
	}
}

// ccJSON runs the binary with --json and decodes its stdout.
func ccJSON(t *testing.T, env []string, args ...string) map[string]any {
	t.Helper()
	out := ccOK(t, env, append(args, "--json")...)
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("asyncqueue %v --json printed %q: %v", args, out, err)
	}
	return v
}

func ccTarget(t *testing.T) *httptest.Server {
	tg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"started":true}`)
	}))
	t.Cleanup(tg.Close)
	return tg
}

// ccWaitStatus polls `tasks get --wait` until the task has status want.
func ccWaitStatus(t *testing.T, env []string, id, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		task, _ := ccJSON(t, env, "tasks", "get", id, "--wait", "2s")["task"].(map[string]any)
		if task["status"] == want {
			return task
		}
	}
	t.Fatalf("task %s not %s after 20 s", id, want)
	return nil
}

func TestCLIClientTasks(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := ccTarget(t)
	env := ccEnv(s, s.key)

	// A table by default.
	out := ccOK(t, env, "tasks", "create", "--target-url", tg.URL+"/a", "--body", `{"n":1}`, "-H", "X-One=1=2",
		"--header", "X-Two=b", "--priority", "8", "--max-retries", "0")
	for _, want := range []string{"ID:", "Status:", "Target:    POST " + tg.URL + "/a", "Priority:  8"} {
		if !strings.Contains(out, want) {
			t.Errorf("create table lacks %q:\n%s", want, out)
		}
	}
	// --json is the server's answer.
	created := ccJSON(t, env, "tasks", "create", "--target-url", tg.URL+"/b", "--method", "put", "-H", "X-One=1=2",
		"--timeout", "5s", "--max-retries", "0", "--idempotency-key", "cc-1")
	task := created["task"].(map[string]any)
	id := task["id"].(string)
	if task["method"] != "PUT" || task["timeout"] != 5.0 || task["maxRetries"] != 0.0 ||
		task["headers"].(map[string]any)["X-One"] != "1=2" {
		t.Fatalf("created %v", task)
	}
	if again := ccJSON(t, env, "tasks", "create", "--target-url", tg.URL+"/b", "--method", "put", "-H", "X-One=1=2",
		"--timeout", "5s", "--max-retries", "0", "--idempotency-key", "cc-1"); again["task"].(map[string]any)["id"] != id {
		t.Errorf("idempotent create made another task: %v", again)
	}
	done := ccWaitStatus(t, env, id, "completed")
	if done["result"].(map[string]any)["statusCode"] != 200.0 {
		t.Errorf("result %v", done["result"])
	}
	out = ccOK(t, env, "tasks", "get", id)
	if !strings.Contains(out, "Status:") || !strings.Contains(out, "completed") || !strings.Contains(out, `HTTP 200 in`) {
		t.Errorf("get table:\n%s", out)
	}

	out = ccOK(t, env, "tasks", "list", "--limit", "1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "STATUS") ||
		!strings.HasPrefix(lines[1], id) || !strings.Contains(lines[2], "1-1 of 2 (next page: --offset 1)") {
		t.Errorf("list table:\n%s", out)
	}
	list := ccJSON(t, env, "tasks", "list", "--status", "completed,failed", "--target-host", "127.0.0.1")
	if p := list["pagination"].(map[string]any); p["total"] != 2.0 || p["hasMore"] != false {
		t.Errorf("list --json pagination %v", p)
	}
	if as := ccJSON(t, env, "tasks", "attempts", id)["attempts"].([]any); len(as) != 1 {
		t.Errorf("attempts %v", as)
	}
	if out := ccOK(t, env, "tasks", "attempts", id); !strings.Contains(out, "ATTEMPT") || !strings.Contains(out, "200") {
		t.Errorf("attempts table:\n%s", out)
	}

	// Cancel and retry a delayed task; the wrong states are exit 3.
	delayed := ccJSON(t, env, "tasks", "create", "--target-url", tg.URL+"/c", "--delay", "1h")["task"].(map[string]any)
	did := delayed["id"].(string)
	if delayed["status"] != "delayed" {
		t.Fatalf("delayed %v", delayed)
	}
	if out := ccOK(t, env, "tasks", "cancel", did); !strings.Contains(out, "cancelled") {
		t.Errorf("cancel table:\n%s", out)
	}
	ccExit(t, env, 3, "Task cannot be cancelled (current: cancelled)", "tasks", "cancel", did)
	if r := ccJSON(t, env, "tasks", "retry", did)["task"].(map[string]any); r["status"] != "pending" {
		t.Errorf("retry %v", r)
	}
	ccExit(t, env, 3, "cannot be retried", "tasks", "retry", id)

	// Not found, validation, auth, network: exit 2, 5, 4, 7; usage mistakes exit 1.
	ccExit(t, env, 2, "Task not found", "tasks", "get", "0197a0c8-0000-7000-8000-000000000000")
	ccExit(t, env, 5, "not a task id", "tasks", "get", "nope")
	ccExit(t, env, 5, "targetUrl must be an absolute http(s) URL", "tasks", "create", "--target-url", "ftp://x")
	ccExit(t, env, 5, "blocked", "tasks", "create", "--target-url", "http://10.0.0.1/")
	ccExit(t, ccEnv(s, ""), 4, "set --api-key or ASYNCQUEUE_API_KEY", "tasks", "list")
	ccExit(t, ccEnv(s, "async_"+strings.Repeat("x", 49)), 4, "Invalid or revoked API key", "tasks", "list")
	dead := ccEnv(&server{base: "http://" + freePort(t)}, s.key)
	ccExit(t, dead, 7, "connection refused", "tasks", "list")
	ccExit(t, env, 1, "want NAME=VALUE", "tasks", "create", "--target-url", tg.URL, "-H", "novalue")
	ccExit(t, env, 1, "RFC 3339", "tasks", "list", "--created-after", "yesterday")
	ccExit(t, env, 1, `expected "<id>"`, "tasks", "get")
	ccExit(t, env, 1, "--status must be one of", "signal", strings.Repeat("0", 64), "--status", "done")
}

func TestCLIClientExitCode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want int
	}{
		{errors.New("plain"), 1},
		{&exitError{exitConflict, errors.New("409")}, 3},
		{fmt.Errorf("wrapped: %w", &exitError{exitServer, errors.New("down")}), 7},
	}
	for _, tc := range cases {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if usageExit(80) != 1 || usageExit(0) != 0 || usageExit(3) != 3 {
		t.Error("usageExit")
	}
}

func TestCLIClientSignal(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := ccTarget(t)
	env := ccEnv(s, s.key)
	noKey := ccEnv(s, "")

	created := ccJSON(t, env, "tasks", "create", "--target-url", tg.URL, "--wait-for-signal", "--max-wait-time", "1h")
	token := created["signalToken"].(string)
	id := created["task"].(map[string]any)["id"].(string)
	if len(token) != 64 {
		t.Fatalf("create --json: %v", created)
	}
	ccWaitStatus(t, env, id, "waiting")

	out := ccOK(t, noKey, "signal", token, "--status", "completed", "--result", `{"url": "https://cdn.example.com/x"}`)
	if !strings.Contains(out, "completed") || !strings.Contains(out, `{"url":"https://cdn.example.com/x"}`) {
		t.Errorf("signal table:\n%s", out)
	}
	// The same signal again succeeds (replayed); a different one is a conflict.
	again := ccJSON(t, noKey, "signal", token, "--status", "completed", "--result", `{"url": "https://cdn.example.com/x"}`)
	if again["task"].(map[string]any)["status"] != "completed" {
		t.Errorf("replayed signal %v", again)
	}
	ccExit(t, noKey, 3, "Task is not waiting (current: completed)", "signal", token, "--status", "failed", "--error", "no")
	ccExit(t, noKey, 2, "Invalid or expired signal token", "signal", strings.Repeat("0", 64), "--status", "completed")
	ccExit(t, noKey, 5, "Malformed signal token", "signal", "abc", "--status", "completed")
	ccExit(t, noKey, 1, "--result must be JSON", "signal", token, "--status", "completed", "--result", "{nope")

	// A task created with the CLI shows its token once in the table too.
	out = ccOK(t, env, "tasks", "create", "--target-url", tg.URL, "--wait-for-signal")
	if !strings.Contains(out, "Signal token:") {
		t.Errorf("create table without the signal token:\n%s", out)
	}
}

func TestCLIClientRateLimited(t *testing.T) {
	t.Parallel()
	s := startServer(t, "", "--signal-rate-limit", "1")
	env := ccEnv(s, "")
	token := strings.Repeat("0", 64)
	ccExit(t, env, 2, "Invalid or expired signal token", "signal", token, "--status", "completed")
	ccExit(t, env, 6, "Too many signal requests", "signal", token, "--status", "completed")
}

func TestCLIClientHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"tasks", "--help"}, {"tasks", "create", "--help"}, {"signal", "--help"}, {"tail", "--help"}} {
		out, _, code := ccRun(t, os.Environ(), args...)
		if code != 0 || !strings.Contains(out, "Exit codes: 0 ok") || !strings.Contains(out, "7 server or network error") {
			t.Errorf("asyncqueue %v: exit %d\n%s", args, code, out)
		}
	}
	out, _, _ := ccRun(t, os.Environ(), "tasks", "list", "--help")
	for _, flag := range []string{"--url", "ASYNCQUEUE_URL", "--api-key", "ASYNCQUEUE_API_KEY", "--json", "--status"} {
		if !strings.Contains(out, flag) {
			t.Errorf("tasks list --help lacks %s", flag)
		}
	}
}

func TestCLIClientTail(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := ccTarget(t)
	env := ccEnv(s, s.key)
	old := ccJSON(t, env, "tasks", "create", "--target-url", tg.URL, "--delay", "1h")["task"].(map[string]any)["id"].(string)

	for _, jsonOut := range []bool{false, true} {
		args := []string{"tail", "--interval", "200ms"}
		if jsonOut {
			args = append(args, "--json")
		}
		cmd := exec.Command(binPath, args...)
		cmd.Env = env
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		next := func(what string, ok func(string) bool) string {
			t.Helper()
			timeout := time.After(15 * time.Second)
			for {
				select {
				case l, open := <-lines:
					if !open {
						t.Fatalf("tail ended before %s; stderr: %s", what, stderr.String())
					}
					if ok(l) {
						return l
					}
				case <-timeout:
					cmd.Process.Kill()
					t.Fatalf("tail printed no line with %s in 15 s; stderr: %s", what, stderr.String())
				}
			}
		}
		// is reports whether a line is about task id with status ("" for any).
		is := func(l, id, status string) bool {
			if jsonOut {
				var task map[string]any
				if err := json.Unmarshal([]byte(l), &task); err != nil {
					t.Errorf("tail --json printed %q: %v", l, err)
				}
				return task["id"] == id && (status == "" || task["status"] == status)
			}
			f := strings.Fields(l) // time, id, status, [new | was <status>], method, target
			return len(f) >= 5 && f[1] == id && (status == "" || f[2] == status)
		}
		// The newest tasks first, then one line per change.
		next("the existing task", func(l string) bool { return is(l, old, "") })
		id := ccJSON(t, env, "tasks", "create", "--target-url", tg.URL)["task"].(map[string]any)["id"].(string)
		l := next("the new task completed", func(l string) bool { return is(l, id, "completed") })
		if !jsonOut && !strings.Contains(l, "POST "+tg.URL) {
			t.Errorf("tail line %q", l)
		}
		ccOK(t, env, "tasks", "cancel", old)
		l = next("the cancel", func(l string) bool { return is(l, old, "cancelled") })
		if !jsonOut && !strings.Contains(l, "was delayed") {
			t.Errorf("tail change line %q", l)
		}
		cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			t.Errorf("tail after Ctrl-C: %v; stderr: %s", err, stderr.String())
		}
		old = ccJSON(t, env, "tasks", "create", "--target-url", tg.URL, "--delay", "1h")["task"].(map[string]any)["id"].(string)
	}
}
