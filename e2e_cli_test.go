package main

// End-to-end tests of the binary itself: start-up, the offline CLI, flags and environment,
// shutdown, secrets at rest and in logs, and the signal rate limit.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/keys"
)

// aqtBaseEnv is the test's environment without any ASYNCQUEUE_* variable.
func aqtBaseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ASYNCQUEUE_") {
			env = append(env, kv)
		}
	}
	return env
}

// aqtCLI runs the binary to completion and returns stdout, stderr and the exit code.
func aqtCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = aqtBaseEnv()
	cmd.Dir = t.TempDir()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("asyncqueue %v did not exit within 30 s", args)
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("asyncqueue %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// aqtCLIOK runs the binary and fails the test unless it exits 0; it returns stdout.
func aqtCLIOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := aqtCLI(t, args...)
	if code != 0 {
		t.Fatalf("asyncqueue %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// aqtKeysCreate makes a key of team default with the CLI and returns it.
func aqtKeysCreate(t *testing.T, db string, extra ...string) string {
	t.Helper()
	out := aqtCLIOK(t, append([]string{"--db", db, "keys", "create"}, extra...)...)
	k := strings.TrimSpace(out)
	if !keyRE.MatchString(k) || keyRE.FindString(k) != k {
		t.Fatalf("keys create printed %q, want one API key on stdout", out)
	}
	return k
}

// aqtTeamCreate makes a team with the CLI and returns its first key.
func aqtTeamCreate(t *testing.T, db, name string) string {
	t.Helper()
	out := aqtCLIOK(t, "--db", db, "teams", "create", name)
	k := strings.TrimSpace(out)
	if keyRE.FindString(k) != k {
		t.Fatalf("teams create printed %q, want one API key on stdout", out)
	}
	return k
}

// aqtKeyID finds the id of key raw in `keys list`.
func aqtKeyID(t *testing.T, db, raw string) string {
	t.Helper()
	out := aqtCLIOK(t, "--db", db, "keys", "list")
	prefix := keys.DisplayPrefix(raw)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, prefix) {
			return strings.Fields(line)[0]
		}
	}
	t.Fatalf("keys list does not show prefix %q:\n%s", prefix, out)
	return ""
}

// aqtProc is a binary started with a custom environment.
type aqtProc struct {
	cmd  *exec.Cmd
	out  syncBuffer // stdout and stderr
	done chan struct{}
}

func (p *aqtProc) Logs() string { return p.out.String() }

// syncBuffer collects a process's output while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func aqtStart(t *testing.T, env []string, args ...string) *aqtProc {
	t.Helper()
	p := &aqtProc{done: make(chan struct{})}
	p.cmd = exec.Command(binPath, args...)
	p.cmd.Env = append(aqtBaseEnv(), env...)
	p.cmd.Dir = t.TempDir() // a default database would land here, not in the repository
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitReady waits for /readyz on base.
func (p *aqtProc) waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("asyncqueue exited during start-up:\n%s", p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("asyncqueue not ready after 20 s:\n%s", p.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExit waits for the process to end and returns its exit code (-1: still running).
func (p *aqtProc) waitExit(timeout time.Duration) int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		return -1
	}
}

// aqtLogsSince waits until the server logs "asyncqueue ready" after offset and returns the logs from offset.
func aqtLogsSince(t *testing.T, s *server, offset int) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := s.Logs()[offset:]
		if strings.Contains(l, "asyncqueue ready") {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"asyncqueue ready\" log line:\n%s", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestE2ECLIBootstrapKeyOnce(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	logs := aqtLogsSince(t, s, 0)
	distinct := map[string]bool{}
	for _, k := range keyRE.FindAllString(logs, -1) {
		distinct[k] = true
	}
	if len(distinct) != 1 || !distinct[s.key] {
		t.Errorf("first start printed %d distinct keys, want exactly the bootstrap key", len(distinct))
	}
	if r := s.call("GET", "/v1/tasks", nil); r.Status != 200 {
		t.Errorf("bootstrap key: %d %s", r.Status, r.Raw)
	}
	teams := aqtCLIOK(t, "--db", s.db, "teams", "list")
	if lines := strings.Split(strings.TrimSpace(teams), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "default") {
		t.Errorf("teams list after the first start:\n%s\nwant one team, default", teams)
	}

	off := len(s.Logs())
	s.restart()
	again := aqtLogsSince(t, s, off)
	if k := keyRE.FindString(again); k != "" {
		t.Errorf("second start printed a key:\n%s", again)
	}
	if strings.Contains(again, "Created team") {
		t.Errorf("second start created a team again:\n%s", again)
	}
	if r := s.call("GET", "/v1/tasks", nil); r.Status != 200 {
		t.Errorf("bootstrap key after restart: %d %s", r.Status, r.Raw)
	}
	teams = aqtCLIOK(t, "--db", s.db, "teams", "list")
	if n := len(strings.Split(strings.TrimSpace(teams), "\n")); n != 2 {
		t.Errorf("teams list after restart:\n%s", teams)
	}
}

func TestE2ECLISecondServeRefused(t *testing.T) {
	sqliteOnly(t, "a database file takes one server; on PostgreSQL several nodes share a database")
	t.Parallel()
	s := startServer(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "serve", "--db", s.db, "--addr", freePort(t), "--allow-private-targets")
	cmd.Env = aqtBaseEnv()
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("a second serve on the same database kept running:\n%s", out)
	}
	if err == nil {
		t.Fatalf("a second serve on the same database exited 0:\n%s", out)
	}
	if !strings.Contains(string(out), "already in use") {
		t.Errorf("second serve: output does not say \"already in use\":\n%s", out)
	}
	if keyRE.Match(out) {
		t.Errorf("second serve printed a key:\n%s", out)
	}
	if r := s.call("GET", "/v1/tasks", nil); r.Status != 200 {
		t.Errorf("the first server after the refused second: %d %s", r.Status, r.Raw)
	}
}

func TestE2ECLIKeys(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	k := aqtKeysCreate(t, s.db, "--name", "ci")
	if k == s.key {
		t.Fatal("keys create printed the bootstrap key")
	}
	if r := s.call("GET", "/v1/tasks", nil, "X-API-Key", k); r.Status != 200 {
		t.Errorf("new key against the running server: %d %s", r.Status, r.Raw)
	}

	list := aqtCLIOK(t, "--db", s.db, "keys", "list")
	for _, raw := range []string{s.key, k} {
		if !strings.Contains(list, keys.DisplayPrefix(raw)) {
			t.Errorf("keys list does not show prefix %s:\n%s", keys.DisplayPrefix(raw), list)
		}
	}
	if f := keyRE.FindString(list); f != "" || strings.Contains(list, s.key) || strings.Contains(list, k) {
		t.Errorf("keys list shows a full key:\n%s", list)
	}
	if !strings.Contains(list, "ci") {
		t.Errorf("keys list does not show the key's name:\n%s", list)
	}

	id := aqtKeyID(t, s.db, k)
	aqtCLIOK(t, "--db", s.db, "keys", "revoke", id)
	r := aqtAfterRevoke(t, s, "/v1/tasks", k)
	if r.Status != http.StatusUnauthorized || aqtErr(r) != "Invalid or revoked API key" {
		t.Errorf("revoked key: %d %s, want 401 Invalid or revoked API key", r.Status, r.Raw)
	}
	if r := s.call("GET", "/v1/tasks", nil); r.Status != 200 {
		t.Errorf("bootstrap key after revoking another: %d", r.Status)
	}
	list = aqtCLIOK(t, "--db", s.db, "keys", "list")
	for _, line := range strings.Split(list, "\n") {
		if strings.HasPrefix(line, id) && !strings.Contains(line, "revoked") {
			t.Errorf("keys list after revoke: %q does not say revoked", line)
		}
	}
	if _, errOut, code := aqtCLI(t, "--db", s.db, "keys", "revoke", id); code == 0 {
		t.Errorf("revoking twice exited 0: %s", errOut)
	}
	if _, errOut, code := aqtCLI(t, "--db", s.db, "keys", "revoke", "no-such-id"); code == 0 || !strings.Contains(errOut, "no-such-id") {
		t.Errorf("revoking an unknown id: exit %d, %s", code, errOut)
	}
	if out, errOut, code := aqtCLI(t, "--db", s.db, "keys", "create", "--team", "nope"); code == 0 || keyRE.MatchString(out) {
		t.Errorf("keys create for an unknown team: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestE2ECLITeams(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, nil)
	aqtCreate(t, s, map[string]any{"targetUrl": tg.URL, "delay": 3600})

	keyB := aqtTeamCreate(t, s.db, "teamb")
	r := s.call("GET", "/v1/tasks", nil, "X-API-Key", keyB)
	aqtWant(t, r, http.StatusOK, "team B key against the running server")
	if total := aqtNum(aqtObj(r.Body, "pagination"), "total"); total != 0 {
		t.Errorf("team B sees %v tasks, want 0", total)
	}
	list := aqtCLIOK(t, "--db", s.db, "teams", "list")
	if !strings.Contains(list, "default") || !strings.Contains(list, "teamb") {
		t.Errorf("teams list:\n%s", list)
	}
	if _, errOut, code := aqtCLI(t, "--db", s.db, "teams", "create", "teamb"); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Errorf("creating teamb twice: exit %d, %s", code, errOut)
	}
	// A second key of team B, from keys create --team.
	kb2 := aqtKeysCreate(t, s.db, "--team", "teamb")
	r = s.call("POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL, "delay": 3600}, "X-API-Key", kb2)
	aqtWant(t, r, http.StatusCreated, "team B creates")
	r = s.call("GET", "/v1/tasks", nil, "X-API-Key", keyB)
	if total := aqtNum(aqtObj(r.Body, "pagination"), "total"); total != 1 {
		t.Errorf("team B sees %v tasks, want 1", total)
	}
	r = s.call("GET", "/v1/tasks", nil)
	if total := aqtNum(aqtObj(r.Body, "pagination"), "total"); total != 1 {
		t.Errorf("team default sees %v tasks, want 1", total)
	}
}

func TestE2ECLIServeHelp(t *testing.T) {
	storeIndependent(t, "serve --help")
	t.Parallel()
	out, errOut, code := aqtCLI(t, "serve", "--help")
	if code != 0 {
		t.Fatalf("serve --help: exit %d: %s", code, errOut)
	}
	flat := strings.Join(strings.Fields(out+errOut), "")
	for _, f := range []string{"db", "addr", "public-url", "allow-private-targets", "allow-targets", "signal-rate-limit",
		"trusted-proxies", "sync", "shutdown-timeout", "max-in-flight", "flow-parallelism", "max-body", "log-format", "log-level"} {
		env := "ASYNCQUEUE_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
		if !strings.Contains(flat, "--"+f) {
			t.Errorf("serve --help does not list --%s", f)
		}
		if !strings.Contains(flat, env) {
			t.Errorf("serve --help does not name %s", env)
		}
	}
}

func TestE2ECLIFlagsFromEnv(t *testing.T) {
	sqliteOnly(t, "ASYNCQUEUE_DB names a database file it checks for")
	t.Parallel()
	dir := t.TempDir()
	addr := freePort(t)
	db := filepath.Join(dir, "env.db")
	p := aqtStart(t, []string{
		"ASYNCQUEUE_ADDR=" + addr,
		"ASYNCQUEUE_DB=" + db,
		"ASYNCQUEUE_PUBLIC_URL=https://queue.example.test",
		"ASYNCQUEUE_ALLOW_PRIVATE_TARGETS=true",
		"ASYNCQUEUE_SIGNAL_RATE_LIMIT=2",
		"ASYNCQUEUE_TRUSTED_PROXIES=127.0.0.1/32",
		"ASYNCQUEUE_SYNC=normal",
		"ASYNCQUEUE_SHUTDOWN_TIMEOUT=7s",
		"ASYNCQUEUE_WORKERS=3",
		"ASYNCQUEUE_MAX_BODY=4096",
		"ASYNCQUEUE_LOG_FORMAT=json",
		"ASYNCQUEUE_LOG_LEVEL=debug",
	}, "serve")
	base := "http://" + addr
	p.waitReady(t, base) // ASYNCQUEUE_ADDR

	if _, err := os.Stat(db); err != nil { // ASYNCQUEUE_DB
		t.Errorf("ASYNCQUEUE_DB: %v", err)
	}
	if _, err := os.Stat(filepath.Join(p.cmd.Dir, "asyncqueue.db")); err == nil {
		t.Errorf("ASYNCQUEUE_DB ignored: asyncqueue.db created in the working directory")
	}
	logs := p.Logs()
	key := keyRE.FindString(logs)
	if key == "" {
		t.Fatalf("no bootstrap key:\n%s", logs)
	}
	if !strings.Contains(logs, "https://queue.example.test/v1/tasks") { // ASYNCQUEUE_PUBLIC_URL
		t.Errorf("ASYNCQUEUE_PUBLIC_URL not used in the start-up message:\n%s", logs)
	}
	var ready map[string]any
	for _, m := range aqtJSONLines(logs) { // ASYNCQUEUE_LOG_FORMAT
		if m["msg"] == "asyncqueue ready" {
			ready = m
		}
	}
	if ready == nil {
		t.Fatalf("no JSON \"asyncqueue ready\" line:\n%s", logs)
	}
	if ready["sync"] != "normal" { // ASYNCQUEUE_SYNC
		t.Errorf("ASYNCQUEUE_SYNC=normal: ready line says sync %v", ready["sync"])
	}
	if ready["db"] != db {
		t.Errorf("ready line db %v, want %s", ready["db"], db)
	}

	s := &server{t: t, db: db, addr: addr, base: base, key: key}
	gate := aqtNewGate(t)
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) { gate.Wait(r) })
	// ASYNCQUEUE_ALLOW_PRIVATE_TARGETS: 127.0.0.1 is accepted.
	for range 5 {
		aqtCreate(t, s, map[string]any{"targetUrl": tg.URL})
	}
	// ASYNCQUEUE_WORKERS=3: only three calls in flight.
	tg.WaitHits(t, 3, 10*time.Second)
	time.Sleep(700 * time.Millisecond)
	if n := len(tg.Hits()); n != 3 {
		t.Errorf("ASYNCQUEUE_WORKERS=3: %d calls in flight, want 3", n)
	}
	gate.Open()
	tg.WaitHits(t, 5, 10*time.Second)

	// ASYNCQUEUE_MAX_BODY=4096.
	r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL, "body": strings.Repeat("x", 5000)})
	if r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("ASYNCQUEUE_MAX_BODY=4096: a 5000-byte body got %d, want 413", r.Status)
	}

	// ASYNCQUEUE_SIGNAL_RATE_LIMIT=2 and ASYNCQUEUE_TRUSTED_PROXIES=127.0.0.1/32.
	tok := strings.Repeat("ab", 32)
	for i := range 3 {
		r := s.call("GET", "/v1/signals/"+tok, nil, "X-Forwarded-For", "203.0.113.7")
		want := http.StatusNotFound
		if i == 2 {
			want = http.StatusTooManyRequests
		}
		if r.Status != want {
			t.Errorf("signal request %d from 203.0.113.7: %d, want %d", i+1, r.Status, want)
		}
	}
	if r := s.call("GET", "/v1/signals/"+tok, nil, "X-Forwarded-For", "203.0.113.8"); r.Status != http.StatusNotFound {
		t.Errorf("signal request from another forwarded client: %d, want 404 (own budget)", r.Status)
	}

	// ASYNCQUEUE_LOG_LEVEL=debug: requests are logged.
	if !strings.Contains(p.Logs(), `"msg":"request"`) {
		t.Errorf("ASYNCQUEUE_LOG_LEVEL=debug: no request log lines")
	}

	// ASYNCQUEUE_SHUTDOWN_TIMEOUT=7s shows in the shutdown line; SIGTERM exits 0.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("SIGTERM: exit code %d, want 0\n%s", code, p.Logs())
	}
	found := false
	for _, m := range aqtJSONLines(p.Logs()) {
		if m["msg"] == "shutting down" {
			found = m["timeout_ms"] == float64(7000) // durations are logged in milliseconds
			if !found {
				t.Errorf("ASYNCQUEUE_SHUTDOWN_TIMEOUT=7s: shutdown line says timeout_ms %v", m["timeout_ms"])
			}
		}
	}
	if !found {
		t.Errorf("no shutdown line with the timeout:\n%s", p.Logs())
	}
}

func TestE2ECLIAllowTargetsFromEnv(t *testing.T) {
	storeIndependent(t, "its server, started from the environment, runs on a SQLite file")
	t.Parallel()
	addr := freePort(t)
	db := filepath.Join(t.TempDir(), "aq.db")
	p := aqtStart(t, []string{"ASYNCQUEUE_ADDR=" + addr, "ASYNCQUEUE_DB=" + db, "ASYNCQUEUE_ALLOW_TARGETS=127.0.0.1/32"}, "serve")
	p.waitReady(t, "http://"+addr)
	key := keyRE.FindString(p.Logs())
	s := &server{t: t, db: db, addr: addr, base: "http://" + addr, key: key}
	tg := aqtNewTarget(t, nil)
	id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL}), "id")
	s.waitStatus(id, "completed", 15*time.Second)
	r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": "http://127.0.0.2/"})
	if r.Status != http.StatusUnprocessableEntity {
		t.Errorf("ASYNCQUEUE_ALLOW_TARGETS=127.0.0.1/32: 127.0.0.2 got %d, want 422", r.Status)
	}
}

func TestE2ECLIBadEnvValues(t *testing.T) {
	storeIndependent(t, "bad flag values are refused before any database opens")
	t.Parallel()
	// Each variable is read: a bad value stops the server with a message naming the flag.
	for _, c := range []struct{ env, want string }{
		{"ASYNCQUEUE_MAX_IN_FLIGHT=0", "--max-in-flight"},
		{"ASYNCQUEUE_FLOW_PARALLELISM=0", "--flow-parallelism"},
		{"ASYNCQUEUE_SIGNAL_RATE_LIMIT=-1", "--signal-rate-limit"},
		{"ASYNCQUEUE_SYNC=sometimes", "sync"},
		{"ASYNCQUEUE_TRUSTED_PROXIES=not-a-cidr", "--trusted-proxies"},
		{"ASYNCQUEUE_ALLOW_TARGETS=not-a-cidr", "--allow-targets"},
		{"ASYNCQUEUE_SHUTDOWN_TIMEOUT=forever", "shutdown-timeout"},
		{"ASYNCQUEUE_MAX_BODY=lots", "max-body"},
		{"ASYNCQUEUE_ALLOW_PRIVATE_TARGETS=perhaps", "allow-private-targets"},
		{"ASYNCQUEUE_ADDR=256.0.0.1:http-alt-x", "listen"},
		{"ASYNCQUEUE_LOG_FORMAT=xml", "log-format"},
	} {
		env := []string{"ASYNCQUEUE_DB=" + filepath.Join(t.TempDir(), "aq.db"), c.env}
		if !strings.HasPrefix(c.env, "ASYNCQUEUE_ADDR=") {
			env = append(env, "ASYNCQUEUE_ADDR="+freePort(t))
		}
		p := aqtStart(t, env, "serve")
		code := p.waitExit(15 * time.Second)
		switch {
		case code == -1:
			t.Errorf("%s: the server started anyway", c.env)
			p.cmd.Process.Kill()
		case code == 0:
			t.Errorf("%s: exit 0", c.env)
		case !strings.Contains(p.Logs(), c.want):
			t.Errorf("%s: output does not name %s:\n%s", c.env, c.want, p.Logs())
		}
	}
}

func TestE2ECLISigtermIdleExitsZero(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, nil)
	id := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL}), "id")
	s.waitStatus(id, "completed", 15*time.Second)
	start := time.Now()
	if err := s.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, s.Logs())
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("idle server took %v to exit after SIGTERM", el)
	}
	if !strings.Contains(s.Logs(), `"msg":"stopped"`) {
		t.Errorf("no \"stopped\" log line:\n%s", s.Logs())
	}
	// The database was closed cleanly and opens again.
	s.launch(false)
	if st := aqtStr(s.call("GET", "/v1/tasks/"+id, nil).task(), "status"); st != "completed" {
		t.Errorf("after restart the task is %q", st)
	}
}

func TestE2ECLISecretsNotStoredOrLogged(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	tg := aqtNewTarget(t, nil)
	var tokens, ids []string
	for i := range 3 {
		r := s.call("POST", "/v1/tasks", map[string]any{"targetUrl": tg.URL, "waitForSignal": true, "maxWaitTime": 600,
			"heartbeatTimeout": 300}, "Idempotency-Key", fmt.Sprint("secret-test-", i))
		aqtWant(t, r, http.StatusCreated, "create wait task")
		tok, _ := r.Body["signalToken"].(string)
		if !aqtHexTokenRE.MatchString(tok) {
			t.Fatalf("signalToken %q", tok)
		}
		tokens = append(tokens, tok)
		ids = append(ids, aqtStr(r.task(), "id"))
	}
	for _, id := range ids {
		s.waitStatus(id, "waiting", 15*time.Second)
	}
	// Use the tokens on every signal path, plus a key in both headers and a bad key.
	aqtWant(t, s.call("GET", "/v1/signals/"+tokens[0], nil), 200, "check token")
	aqtWant(t, s.call("POST", "/v1/signals/"+tokens[1]+"/heartbeat", map[string]any{"progress": 50}), 200, "heartbeat")
	aqtWant(t, s.call("POST", "/v1/signals/"+tokens[2], map[string]any{"status": "completed", "result": map[string]any{"ok": 1}}), 200, "signal")
	aqtWant(t, s.call("POST", "/v1/signals/"+tokens[2], map[string]any{"status": "failed"}), 409, "second signal")
	aqtWant(t, s.call("GET", "/v1/tasks", nil, "X-API-Key", "", "Authorization", "Bearer "+s.key), 200, "bearer")
	badKey, _ := keys.NewAPIKey()
	aqtWant(t, s.call("GET", "/v1/tasks", nil, "X-API-Key", badKey), 401, "bad key")
	aqtWant(t, s.call("GET", "/v1/signals/not-a-token", nil), 400, "malformed token")

	var secrets [][]byte
	secrets = append(secrets, []byte(s.key), []byte(badKey))
	for _, tok := range tokens {
		raw, _ := hex.DecodeString(tok)
		secrets = append(secrets, []byte(tok), []byte(strings.ToUpper(tok)), raw)
	}
	checkFiles := func(when string) {
		t.Helper()
		var all []byte
		stored := storedBytes(t, s.db, s.db, s.db+"-wal")
		for _, name := range slices.Sorted(maps.Keys(stored)) {
			b := stored[name]
			all = append(all, b...)
			for i, sec := range secrets {
				if bytes.Contains(b, sec) {
					t.Errorf("%s: secret #%d found in %s", when, i, name)
				}
			}
		}
		// The hashes are there: the files read are the ones written.
		kh := sha256.Sum256([]byte(s.key))
		th := sha256.Sum256([]byte(tokens[0]))
		if !bytes.Contains(all, kh[:]) || !bytes.Contains(all, th[:]) {
			t.Errorf("%s: the SHA-256 of the key or token is not in aq.db/aq.db-wal; wrong files?", when)
		}
	}
	checkFiles("while running")

	time.Sleep(200 * time.Millisecond) // let the log reader catch up
	logs := s.Logs()
	// The bootstrap message shows the key once at start-up; nothing after it may.
	i := strings.Index(logs, "asyncqueue ready")
	if i < 0 {
		t.Fatalf("no ready line:\n%s", logs)
	}
	after := logs[i:]
	if strings.Contains(after, s.key) || strings.Contains(after, badKey) {
		t.Errorf("an API key appears in the logs after start-up")
	}
	for _, tok := range tokens {
		if strings.Contains(logs, tok) {
			t.Errorf("a signal token appears in the logs")
		}
	}
	if !regexp.MustCompile(`"path":"/v1/signals/\[REDACTED\]"`).MatchString(logs) ||
		!strings.Contains(logs, `"path":"/v1/signals/[REDACTED]/heartbeat"`) {
		t.Errorf("debug request logs do not show /v1/signals/[REDACTED] paths:\n%s", logs)
	}

	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	checkFiles("after shutdown")
}

func TestE2ECLISignalRateLimit(t *testing.T) {
	t.Parallel()
	tok := strings.Repeat("0f", 32)

	// Flags win over the harness's ASYNCQUEUE_SIGNAL_RATE_LIMIT=0.
	s := startServer(t, "", "--signal-rate-limit", "5")
	for i := range 5 {
		if r := s.call("GET", "/v1/signals/"+tok, nil); r.Status != http.StatusNotFound {
			t.Fatalf("signal request %d: %d %s, want 404", i+1, r.Status, r.Raw)
		}
	}
	r := s.call("POST", "/v1/signals/"+tok, map[string]any{"status": "completed"})
	if r.Status != http.StatusTooManyRequests || aqtErr(r) == "" {
		t.Fatalf("6th signal request: %d %s, want 429", r.Status, r.Raw)
	}
	var secs int
	if _, err := fmt.Sscan(r.Header.Get("Retry-After"), &secs); err != nil || secs < 1 || secs > 60 {
		t.Errorf("Retry-After %q, want 1..60 seconds", r.Header.Get("Retry-After"))
	}
	for _, xff := range []string{"198.51.100.9", "198.51.100.10, 127.0.0.1"} {
		if r := s.call("GET", "/v1/signals/"+tok, nil, "X-Forwarded-For", xff); r.Status != http.StatusTooManyRequests {
			t.Errorf("spoofed X-Forwarded-For %q reset the limit: %d", xff, r.Status)
		}
	}
	if r := s.call("POST", "/v1/signals/not-hex/heartbeat", nil); r.Status != http.StatusTooManyRequests {
		t.Errorf("malformed token while limited: %d, want 429 (every request counts)", r.Status)
	}
	// The task API is not limited.
	if r := s.call("GET", "/v1/tasks", nil); r.Status != 200 {
		t.Errorf("task API while signals are limited: %d", r.Status)
	}

	// Behind a trusted proxy each forwarded client has its own budget.
	p := startServer(t, "", "--signal-rate-limit", "5", "--trusted-proxies", "127.0.0.1/32")
	for i := range 5 {
		if r := p.call("GET", "/v1/signals/"+tok, nil, "X-Forwarded-For", "203.0.113.1"); r.Status != http.StatusNotFound {
			t.Fatalf("client A request %d: %d, want 404", i+1, r.Status)
		}
	}
	if r := p.call("GET", "/v1/signals/"+tok, nil, "X-Forwarded-For", "203.0.113.1"); r.Status != http.StatusTooManyRequests {
		t.Errorf("client A 6th request: %d, want 429", r.Status)
	}
	if r := p.call("GET", "/v1/signals/"+tok, nil, "X-Forwarded-For", "203.0.113.2"); r.Status != http.StatusNotFound {
		t.Errorf("client B behind the trusted proxy: %d, want 404 (own budget)", r.Status)
	}
	if r := p.call("GET", "/v1/signals/"+tok, nil, "X-Forwarded-For", "203.0.113.2, 203.0.113.1"); r.Status != http.StatusTooManyRequests {
		t.Errorf("client A via two proxies, the first untrusted: %d, want 429 (client A's budget)", r.Status)
	}
}
