package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
	"sync/atomic"
	"time"
)

// BenchCmd measures this machine: it runs a server on a temporary database and a local
// sink, and reports created/s, completed/s, create→callback latency and timer lateness
// (scenario "default"), the same against a target that answers slowly ("slow"), or how long
// one team's tasks wait while another team's target never answers ("hang").
type BenchCmd struct {
	Scenario     string        `help:"What to measure: default (immediate tasks, then delayed ones), slow (tasks to a target that answers after --slow-delay) or hang (team A's tasks to a target that never answers, then team B's tasks to a healthy one)." default:"default" enum:"default,slow,hang"`
	Tasks        int           `help:"Immediate tasks to run (default scenario)." default:"20000"`
	Concurrency  int           `help:"Concurrent create requests." default:"32"`
	Delayed      int           `help:"Delayed tasks for the timer measurement (0 skips it; default scenario)." default:"2000"`
	Delay        time.Duration `help:"Delay of the delayed tasks (default scenario)." default:"1s"`
	SlowTasks    int           `help:"Tasks whose target answers after --slow-delay (slow scenario)." default:"5000"`
	SlowDelay    time.Duration `help:"How long the slow target takes to answer (slow scenario)." default:"1s"`
	HangTasks    int           `help:"Team A's tasks to the target that never answers (hang scenario)." default:"1000"`
	HangTimeout  time.Duration `help:"Call timeout of team A's tasks, at least 1s; they are not retried (hang scenario)." default:"10s"`
	HealthyTasks int           `help:"Team B's tasks to a healthy target, created after team A's (hang scenario)." default:"200"`
	Wait         time.Duration `help:"Longest wait for the callbacks of one measurement." default:"3m"`
	Sync         string        `help:"SQLite synchronous mode of the server under test." default:"full" enum:"full,normal"`
	ServerArg    []string      `help:"Extra flag for the server under test (repeatable), e.g. --server-arg=--flow-parallelism=500." sep:"none"`
	Keep         bool          `help:"Keep the temporary database."`
}

// sink records when each task's callback first arrived. With delay it answers that much
// later; with hang it never answers (until the request is abandoned or release is closed).
type sink struct {
	delay   time.Duration
	hang    bool
	release <-chan struct{}

	mu      sync.Mutex
	arrived map[string]time.Time
	dups    atomic.Int64
	n       atomic.Int64
	open    atomic.Int64 // requests being held now
	peak    atomic.Int64 // most requests held at once
}

func newSink() *sink { return &sink{arrived: map[string]time.Time{}} }

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-AsyncQueue-Task-Id")
	now := time.Now()
	s.mu.Lock()
	if _, seen := s.arrived[id]; seen {
		s.dups.Add(1)
	} else {
		s.arrived[id] = now
		s.n.Add(1)
	}
	s.mu.Unlock()
	if s.hang || s.delay > 0 {
		if n := s.open.Add(1); n > s.peak.Load() {
			s.peak.Store(n) // racy maximum: good enough for a report
		}
		defer s.open.Add(-1)
		var timer <-chan time.Time
		if !s.hang {
			t := time.NewTimer(s.delay)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-timer:
		case <-r.Context().Done():
			return
		case <-s.release:
			panic(http.ErrAbortHandler) // drop the connection: no answer at all
		}
	}
	io.WriteString(w, "ok")
}

// latencies returns, for each task in sent that arrived, its arrival minus its sent time.
func (s *sink) latencies(sent map[string]time.Time) (lat []time.Duration, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, at := range sent {
		if got, ok := s.arrived[id]; ok {
			lat = append(lat, got.Sub(at))
			if got.After(last) {
				last = got
			}
		}
	}
	return lat, last
}

// benchRun is the server under test and the means to load it.
type benchRun struct {
	c      *BenchCmd
	self   string
	db     string
	base   string
	key    string
	client *http.Client
}

// create sends one POST /v1/tasks with key and returns the task's id and when it was sent.
func (b *benchRun) create(key string, body map[string]any) (string, time.Time, error) {
	buf, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", b.base+"/v1/tasks", bytes.NewReader(buf))
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	res, err := b.client.Do(req)
	if err != nil {
		return "", sent, err
	}
	defer res.Body.Close()
	var out struct {
		Task struct{ ID string } `json:"task"`
	}
	if res.StatusCode != 201 || json.NewDecoder(res.Body).Decode(&out) != nil {
		return "", sent, fmt.Errorf("create: HTTP %d", res.StatusCode)
	}
	return out.Task.ID, sent, nil
}

// createMany creates n tasks with c.Concurrency concurrent requests and returns their send
// times by id, the number of failed creates and how long it took.
func (b *benchRun) createMany(key string, n int, body map[string]any) (map[string]time.Time, int64, time.Duration) {
	sent := make(map[string]time.Time, n)
	var mu sync.Mutex
	var next, failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range max(1, b.c.Concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				id, at, err := b.create(key, body)
				if err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				sent[id] = at
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return sent, failed.Load(), time.Since(start)
}

// waitFor waits until the sink has seen want first arrivals or until the deadline.
func waitFor(s *sink, want int64, deadline time.Time) {
	for s.n.Load() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

func row(name string, v any) { fmt.Printf("%-40s %14v\n", name, v) }

// Run starts the server as a child process (the same binary), runs the load and prints the figures.
func (c *BenchCmd) Run(ctx context.Context) error {
	if c.Scenario == "hang" && c.HangTimeout < time.Second {
		return fmt.Errorf("--hang-timeout must be at least 1s")
	}
	dir, err := os.MkdirTemp("", "asyncqueue-bench")
	if err != nil {
		return err
	}
	if !c.Keep {
		defer os.RemoveAll(dir)
	}
	fast, slow, hang := newSink(), newSink(), newSink()
	slow.delay = c.SlowDelay
	release := make(chan struct{})
	hang.hang, hang.release = true, release
	mux := http.NewServeMux()
	mux.Handle("/hook", fast)
	mux.Handle("/slow", slow)
	mux.Handle("/hang", hang)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sinkSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go sinkSrv.Serve(ln)
	defer sinkSrv.Close()
	sinkBase := "http://" + ln.Addr().String()

	addrLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := addrLn.Addr().String()
	addrLn.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	db := filepath.Join(dir, "bench.db")
	args := append([]string{"serve", "--db", db, "--addr", addr,
		"--allow-targets", "127.0.0.1/32", "--signal-rate-limit", "0", "--sync", c.Sync, "--log-format", "json"}, c.ServerArg...)
	srv := exec.CommandContext(ctx, self, args...)
	stderr, err := srv.StderrPipe()
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		close(release) // the hanging target lets go first, so the server stops at once
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
	}()
	key, err := readKey(stderr, 20*time.Second)
	if err != nil {
		return err
	}
	b := &benchRun{c: c, self: self, db: db, base: "http://" + addr, key: key,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: max(1, c.Concurrency) * 2}, Timeout: 30 * time.Second}}
	if err := waitReady(b.base, 20*time.Second); err != nil {
		return err
	}
	switch c.Scenario {
	case "slow":
		return b.slow(sinkBase+"/slow", slow)
	case "hang":
		return b.hang(ctx, sinkBase+"/hang", sinkBase+"/hook", hang, fast)
	}
	return b.standard(sinkBase+"/hook", fast)
}

// standard runs immediate tasks in a closed loop, then delayed tasks.
func (b *benchRun) standard(target string, sk *sink) error {
	c := b.c
	fmt.Fprintf(os.Stderr, "bench: %d immediate tasks, %d concurrent creates, sync=%s …\n", c.Tasks, c.Concurrency, c.Sync)
	start := time.Now()
	sent, failed, created := b.createMany(b.key, c.Tasks, map[string]any{"targetUrl": target, "body": `{"bench":true}`})
	waitFor(sk, int64(len(sent)), time.Now().Add(c.Wait))
	completed := time.Since(start)
	lat, _ := sk.latencies(sent)

	row("immediate tasks", c.Tasks)
	row("created/s", fmt.Sprintf("%.0f", float64(len(sent))/created.Seconds()))
	row("completed/s (end to end)", fmt.Sprintf("%.0f", float64(len(lat))/completed.Seconds()))
	row("create→callback p50 / p99", pct(lat, 50)+" / "+pct(lat, 99))
	row("lost", len(sent)-len(lat))
	row("create errors", failed)

	if c.Delayed > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d tasks delayed %s …\n", c.Delayed, c.Delay)
		sentD, failedD, _ := b.createMany(b.key, c.Delayed, map[string]any{"targetUrl": target, "delay": c.Delay.Seconds()})
		waitFor(sk, int64(len(sent)+len(sentD)), time.Now().Add(c.Delay+c.Wait))
		late, _ := sk.latencies(sentD)
		for i := range late {
			late[i] -= c.Delay
		}
		row("timer lateness p50 / p99 / max", pct(late, 50)+" / "+pct(late, 99)+" / "+pct(late, 100))
		row("delayed lost", len(sentD)-len(late))
		if failedD > 0 {
			row("delayed create errors", failedD)
		}
	}
	row("duplicate callbacks", sk.dups.Load())
	return nil
}

// slow runs c.SlowTasks tasks to a target that answers after c.SlowDelay: how many calls the
// server keeps in flight decides the throughput.
func (b *benchRun) slow(target string, sk *sink) error {
	c := b.c
	fmt.Fprintf(os.Stderr, "bench: %d tasks to a target that answers after %s, %d concurrent creates, sync=%s …\n",
		c.SlowTasks, c.SlowDelay, c.Concurrency, c.Sync)
	start := time.Now()
	sent, failed, created := b.createMany(b.key, c.SlowTasks, map[string]any{"targetUrl": target, "body": `{"bench":true}`})
	waitFor(sk, int64(len(sent)), time.Now().Add(c.Wait))
	lat, last := sk.latencies(sent)
	// Let the last calls finish so that a redelivery shows up as a duplicate.
	time.Sleep(c.SlowDelay + 500*time.Millisecond)

	row("slow tasks (target answers after)", fmt.Sprintf("%d (%s)", c.SlowTasks, c.SlowDelay))
	row("created/s", fmt.Sprintf("%.0f", float64(len(sent))/created.Seconds()))
	rate := "-"
	if len(lat) > 0 && last.After(start) {
		rate = fmt.Sprintf("%.0f", float64(len(lat))/last.Sub(start).Seconds())
	}
	row("completed/s (end to end)", rate)
	row("create→callback p50 / p99", pct(lat, 50)+" / "+pct(lat, 99))
	row("calls held by the target at once (max)", sk.peak.Load())
	row("lost", len(sent)-len(lat))
	row("create errors", failed)
	row("duplicate callbacks", sk.dups.Load())
	return nil
}

// hang creates c.HangTasks tasks for team A whose target never answers, then
// c.HealthyTasks tasks for team B to a healthy target, and reports how long B's tasks took.
func (b *benchRun) hang(ctx context.Context, hangURL, okURL string, hung, ok *sink) error {
	c := b.c
	out, err := exec.CommandContext(ctx, b.self, "--db", b.db, "teams", "create", "bench-team-b").Output()
	if err != nil {
		return fmt.Errorf("create team B: %w", err)
	}
	keyB := benchKeyRE.FindString(string(out))
	if keyB == "" {
		return fmt.Errorf("create team B: no API key in %q", strings.TrimSpace(string(out)))
	}
	fmt.Fprintf(os.Stderr, "bench: team A: %d tasks to a target that never answers (timeout %s); then team B: %d tasks to a healthy target …\n",
		c.HangTasks, c.HangTimeout, c.HealthyTasks)
	sentA, failedA, _ := b.createMany(b.key, c.HangTasks, map[string]any{
		"targetUrl": hangURL, "timeout": c.HangTimeout.Seconds(), "maxRetries": 0})
	start := time.Now()
	sentB, failedB, _ := b.createMany(keyB, c.HealthyTasks, map[string]any{"targetUrl": okURL, "body": `{"bench":true}`})
	waitFor(ok, int64(len(sentB)), time.Now().Add(c.Wait))
	lat, last := ok.latencies(sentB)
	time.Sleep(200 * time.Millisecond) // room for a duplicate to show

	row("team A tasks, target never answers", fmt.Sprintf("%d (timeout %s)", len(sentA), c.HangTimeout))
	row("team A calls held by the target (max)", hung.peak.Load())
	row("team B tasks, healthy target", c.HealthyTasks)
	row("team B create→callback p50 / p99 / max", pct(lat, 50)+" / "+pct(lat, 99)+" / "+pct(lat, 100))
	took := "-"
	if len(lat) > 0 {
		took = last.Sub(start).Round(time.Millisecond).String()
	}
	row("team B all called after", took)
	row("team B lost", len(sentB)-len(lat))
	row("create errors", failedA+failedB)
	row("duplicate callbacks", ok.dups.Load()+hung.dups.Load())
	return nil
}

// pct returns the p-th percentile of ds (p = 100: the maximum); it sorts ds.
func pct(ds []time.Duration, p int) string {
	if len(ds) == 0 {
		return "-"
	}
	slices.Sort(ds)
	i := min(len(ds)-1, len(ds)*p/100)
	return ds[i].Round(100 * time.Microsecond).String()
}

var benchKeyRE = regexp.MustCompile(`async_[0-9A-Za-z]{49}`)

func readKey(r io.Reader, timeout time.Duration) (string, error) {
	keyc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if k := benchKeyRE.FindString(sc.Text()); k != "" {
				select {
				case keyc <- k:
				default:
				}
			}
		}
	}()
	select {
	case k := <-keyc:
		return k, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("the bench server printed no API key within %s", timeout)
	}
}

func waitReady(base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the bench server was not ready within %s", timeout)
}
