package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
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

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for openDB

	"github.com/asyncqueue/asyncqueue/internal/pgtest"
)

// binPath is the asyncqueue binary built once for the end-to-end tests.
var binPath string

// TestMain builds the binary, runs the tests, and then, when a PostgreSQL server is given
// (ASYNCQUEUE_TEST_POSTGRES) and no store was chosen, runs the e2e tests (TestE2E…) again
// with every server on PostgreSQL (ASYNCQUEUE_TEST_STORE=postgres): one `go test` covers
// both stores.
func TestMain(m *testing.M) {
	for _, a := range os.Args {
		if strings.HasPrefix(a, "-test.fuzzworker") {
			os.Exit(m.Run()) // fuzz workers run fuzz targets only: no binary needed
		}
	}
	if b := os.Getenv(testBinEnv); b != "" {
		binPath = b // the PostgreSQL run reuses the first run's binary
		os.Exit(m.Run())
	}
	start := time.Now() // go test kills the binary 1 min after -timeout from here
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
	if os.Getenv(pgtest.Env) != "" && os.Getenv(testStoreEnv) == "" &&
		!(code != 0 && flagSet("test.failfast")) && !flagSet("test.list") && !flagSet("test.fuzz") {
		if pgCode := runOnPostgres(time.Since(start)); pgCode != 0 {
			code = pgCode
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	// testStoreEnv selects the store of the servers the e2e tests start: "postgres", or
	// unset for SQLite.
	testStoreEnv = "ASYNCQUEUE_TEST_STORE"
	// testBinEnv hands the built binary to the PostgreSQL run.
	testBinEnv = "ASYNCQUEUE_TEST_BIN"
	// testVaultKey is the --vault-key of every server on PostgreSQL (where it is required).
	testVaultKey = "5fa3c2d1e0b94f8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b"
)

// onPostgres is set in the run whose servers store everything in PostgreSQL.
var onPostgres = os.Getenv(testStoreEnv) == "postgres"

// sqliteOnly skips, in the PostgreSQL run, a test about SQLite itself (its database file,
// --sync, --max-db-size, backups, the vault key file…), saying why.
func sqliteOnly(t testing.TB, why string) {
	t.Helper()
	if onPostgres {
		t.Skipf("SQLite only: %s", why)
	}
}

// storeIndependent skips, in the PostgreSQL run, a test whose servers (if any) do not go
// through startServer: it ran as it is in the first run, and would only run again on SQLite.
func storeIndependent(t testing.TB, why string) {
	t.Helper()
	if onPostgres {
		t.Skipf("independent of the store, already run on SQLite: %s", why)
	}
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == name && f.Value.String() != "false" && f.Value.String() != "" {
			set = true
		}
	})
	return set
}

// runOnPostgres runs this test binary again with ASYNCQUEUE_TEST_STORE=postgres on the
// e2e tests the first run selected, streaming its output, and returns its exit code.
// spent is how long the build and the first run took: the second gets what is left of
// -test.timeout.
func runOnPostgres(spent time.Duration) int {
	var pass []string
	run, timeout := "", time.Duration(0)
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "test.run":
			run = f.Value.String()
		case "test.timeout":
			timeout, _ = time.ParseDuration(f.Value.String())
		case "test.v", "test.short", "test.count", "test.failfast", "test.skip", "test.parallel",
			"test.cpu", "test.shuffle", "test.fullpath", "test.paniconexit0":
			pass = append(pass, "-"+f.Name+"="+f.Value.String())
		}
	})
	if timeout > 0 {
		left := timeout - spent
		if left < time.Minute {
			fmt.Printf("FAIL: no time left for the e2e tests on PostgreSQL (-timeout %v, the SQLite run took %v)\n",
				timeout, spent.Round(time.Second))
			return 1
		}
		pass = append(pass, "-test.timeout="+left.String())
	}
	env := append(os.Environ(), testStoreEnv+"=postgres", testBinEnv+"="+binPath)

	// The e2e tests among those -run selects (all of them without -run).
	top, sub, _ := strings.Cut(run, "/")
	if top == "" {
		top = "."
	}
	list := exec.Command(os.Args[0], "-test.list", top)
	list.Env = env
	out, err := list.Output()
	if err != nil {
		fmt.Printf("FAIL: list the e2e tests for the PostgreSQL run: %v\n", err)
		return 1
	}
	var names []string
	for _, n := range strings.Fields(string(out)) {
		if strings.HasPrefix(n, "TestE2E") {
			names = append(names, regexp.QuoteMeta(n))
		}
	}
	if len(names) == 0 {
		return 0
	}
	pattern := "^(" + strings.Join(names, "|") + ")$"
	if sub != "" {
		pattern += "/" + sub
	}

	fmt.Printf("=== PostgreSQL run: %d e2e tests again, every server on PostgreSQL (%s=postgres)\n",
		len(names), testStoreEnv)
	start := time.Now()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run", pattern}, pass...)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err = cmd.Run()
	took := time.Since(start).Round(time.Second)
	if err != nil {
		fmt.Printf("--- FAIL: PostgreSQL run of the e2e tests (%v): %v\n", took, err)
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() > 0 {
			return ee.ExitCode()
		}
		return 1
	}
	fmt.Printf("--- ok: PostgreSQL run of the e2e tests (%v)\n", took)
	return 0
}

// pgDatabases maps the database path a test gave startServer to the PostgreSQL database
// standing in for it in the PostgreSQL run, so a server started again on the same path
// finds the same data.
var pgDatabases sync.Map

// serverDB returns what startServer passes to --db: db itself on SQLite (a fresh temp file
// when empty); on PostgreSQL, a fresh database for t, or the one already standing for the
// path db (a postgres:// URL is used as it is).
func serverDB(t testing.TB, db string) string {
	t.Helper()
	if !onPostgres {
		if db == "" {
			db = filepath.Join(t.TempDir(), "aq.db")
		}
		return db
	}
	if isPostgres(db) {
		return db
	}
	if db != "" {
		if u, ok := pgDatabases.Load(db); ok {
			return u.(string)
		}
	}
	u := pgtest.Database(t)
	if db != "" {
		pgDatabases.Store(db, u)
		t.Cleanup(func() { pgDatabases.Delete(db) })
	}
	return u
}

// openDB opens a server's database for a test to read or write behind its back: the
// SQLite file, or the PostgreSQL database. Queries go through rebind; the caller closes it.
func openDB(t testing.TB, db string, readOnly bool) *sql.DB {
	t.Helper()
	var conn *sql.DB
	var err error
	switch {
	case isPostgres(db):
		conn, err = sql.Open("pgx", db)
	case readOnly:
		conn, err = sql.Open("sqlite", "file:"+db+"?mode=ro&_pragma=busy_timeout(5000)")
	default:
		conn, err = sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(5000)")
	}
	if err != nil {
		t.Fatalf("open %s: %v", db, err)
	}
	return conn
}

// storedBytes is what the server stored, by name: the given files of a SQLite database
// (those that do not exist are left out), or on PostgreSQL every table's rows as one entry.
func storedBytes(t testing.TB, db string, files ...string) map[string][]byte {
	t.Helper()
	if onPostgres {
		return map[string][]byte{"the PostgreSQL database": dbContents(t, db)}
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// dbContents returns every value stored in a PostgreSQL database's tables, concatenated
// (text as it is, bytea as its bytes, numbers in decimal): what the tests that grep
// SQLite's files for secrets grep on PostgreSQL.
func dbContents(t testing.TB, db string) []byte {
	t.Helper()
	conn := openDB(t, db, true)
	defer conn.Close()
	var tables []string
	rows, err := conn.Query(`select table_name from information_schema.tables
		where table_schema = current_schema() and table_type = 'BASE TABLE' order by 1`)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) == 0 {
		t.Fatalf("no tables in %s", db)
	}
	var out bytes.Buffer
	for _, table := range tables {
		rows, err := conn.Query(`select * from "` + table + `"`)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				switch x := v.(type) {
				case []byte:
					out.Write(x)
				case string:
					out.WriteString(x)
				case nil:
				default:
					fmt.Fprint(&out, x)
				}
				out.WriteByte(0)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out.Bytes()
}

// rebind turns a query's ? placeholders into $1, $2… when db is a PostgreSQL database.
func rebind(db, query string) string {
	if !isPostgres(db) {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
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
	node string // on PostgreSQL, the --node-id (kept across restarts)

	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
}

var keyRE = regexp.MustCompile(`async_[0-9A-Za-z]{49}`)

// startServer runs the binary on db (a fresh temp file when empty; in the PostgreSQL run, the
// PostgreSQL database standing for it, see serverDB) with the extra flags,
// waits until /readyz answers, and kills it at the end of the test.
// Targets on 127.0.0.1 are allowed unless the args set a policy flag themselves.
func startServer(t testing.TB, db string, args ...string) *server {
	t.Helper()
	s := &server{t: t, db: serverDB(t, db), args: args}
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
	if isPostgres(s.db) {
		given := func(flag string) bool {
			return slices.ContainsFunc(s.args, func(a string) bool { return a == flag || strings.HasPrefix(a, flag+"=") })
		}
		if !given("--vault-key") {
			args = append(args, "--vault-key", testVaultKey)
		}
		// A restart is the same node again (on a new port): it takes back its own calls at once,
		// as a node restarted on its host and port does, instead of waiting for their leases.
		if !given("--node-id") {
			if s.node == "" {
				s.node = fmt.Sprintf("e2e-%p", s)
			}
			args = append(args, "--node-id", s.node)
		}
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
