package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the asyncqueue binary built once for the end-to-end tests.
var binPath string

func TestMain(m *testing.M) {
	for _, a := range os.Args {
		if strings.HasPrefix(a, "-test.fuzzworker") {
			os.Exit(m.Run()) // fuzz workers run fuzz targets only: no binary needed
		}
	}
	dir, err := os.MkdirTemp("", "asyncqueue-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "asyncqueue")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build asyncqueue: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running asyncqueue binary.
type server struct {
	t    testing.TB
	db   string
	args []string
	cmd  *exec.Cmd
	addr string
	base string
	key  string // the bootstrap API key (kept across restarts)

	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
}

var keyRE = regexp.MustCompile(`async_[0-9A-Za-z]{49}`)

// startServer runs the binary on db (a fresh temp file when empty) with the extra flags,
// waits until /readyz answers, and kills it at the end of the test.
// Targets on 127.0.0.1 are allowed unless the args set a policy flag themselves.
func startServer(t testing.TB, db string, args ...string) *server {
	t.Helper()
	if db == "" {
		db = filepath.Join(t.TempDir(), "aq.db")
	}
	s := &server{t: t, db: db, args: args}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (s *server) start() { s.launch(true) }

// launch starts the binary; a first start on a fresh database must print the bootstrap key.
func (s *server) launch(wantKey bool) {
	t := s.t
	t.Helper()
	s.addr = freePort(t)
	s.base = "http://" + s.addr
	args := []string{"serve", "--db", s.db, "--addr", s.addr, "--log-format", "json", "--log-level", "debug"}
	policy := false
	for _, a := range s.args {
		if strings.HasPrefix(a, "--allow-") {
			policy = true
		}
	}
	if !policy {
		args = append(args, "--allow-targets", "127.0.0.0/8")
	}
	args = append(args, s.args...)
	s.cmd = exec.Command(binPath, args...)
	s.cmd.Env = append(os.Environ(), "ASYNCQUEUE_SIGNAL_RATE_LIMIT=0")
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout = io.Discard
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	s.done = done
	keyc := make(chan string, 1)
	readyLine := make(chan struct{}) // /readyz can answer before this goroutine reads the line
	cmd := s.cmd
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			if strings.Contains(line, `"msg":"asyncqueue ready"`) {
				close(readyLine)
			}
			if k := keyRE.FindString(line); k != "" {
				select {
				case keyc <- k:
				default:
				}
			}
		}
		cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(s.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		select {
		case <-done:
			t.Fatalf("asyncqueue exited during start-up:\n%s", s.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("asyncqueue not ready after 20s:\n%s", s.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-readyLine:
	case <-time.After(5 * time.Second):
		t.Fatalf("/readyz answers but no ready line was logged:\n%s", s.Logs())
	}
	if !wantKey {
		return
	}
	select {
	case k := <-keyc:
		s.key = k
	case <-time.After(time.Second):
		t.Fatalf("no bootstrap API key printed on a fresh database:\n%s", s.Logs())
	}
}

// Logs returns what the server has written to stderr so far.
func (s *server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// kill stops the server with SIGKILL (no clean shutdown) and waits for it.
func (s *server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("no exit 60 s after SIGTERM")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("exit code %d", code)
	}
	return nil
}

// restart kills the server with SIGKILL and starts it again on the same database.
func (s *server) restart() {
	s.t.Helper()
	s.kill()
	s.launch(false)
}

// resp is a decoded JSON response.
type resp struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// call sends a request with the bootstrap key (unless headers set another auth) and decodes the JSON answer.
func (s *server) call(method, path string, body any, headers ...string) resp {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", s.key)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	json.Unmarshal(raw, &out.Body)
	return out
}

// task returns the "task" object of a response.
func (r resp) task() map[string]any {
	t, _ := r.Body["task"].(map[string]any)
	return t
}

// waitStatus polls a task until it has status want, failing after timeout.
func (s *server) waitStatus(id, want string, timeout time.Duration) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]any
	for time.Now().Before(deadline) {
		r := s.call("GET", "/v1/tasks/"+id+"?wait=1", nil)
		last = r.task()
		if last != nil && last["status"] == want {
			return last
		}
	}
	s.t.Fatalf("task %s: status %v after %v, want %s", id, last["status"], timeout, want)
	return nil
}
