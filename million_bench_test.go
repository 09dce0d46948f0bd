package main

// BenchmarkMillion measures the 1M-task goals against the real binary over HTTP:
//
//	go test -run '^$' -bench Million -benchtime 1x -timeout 30m .
//
// ASYNCQUEUE_BENCH_DB=/path/aq-million.db keeps the filled database (and, beside it,
// <db>.million.json with the API key and the webhook port) for the next run, which then
// starts in seconds instead of minutes. Other ASYNCQUEUE_* variables reach the server, so
// ASYNCQUEUE_SYNC=normal measures the relaxed durability mode, and ASYNCQUEUE_PPROF_ADDR lets
// a profile of the last launch be taken while it runs.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/keys"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// The shape of the benchmark database.
const (
	millionTasks   = 1_000_000
	millionWaiting = 50_000 // waiting for a signal, with an onCompleteUrl; expiring 1 h to 30 days ahead
	millionDelayed = 50_000 // delayed, due 1 h to 30 days ahead
	millionSignals = 2_000  // signals sent in part (d), to distinct waiting tasks
	millionRate    = 200    // signals per second in part (d)
)

// millionState is kept beside a reused database in <db>.million.json.
type millionState struct {
	Key  string `json:"key"`  // API key of the team "default"
	Port int    `json:"port"` // 127.0.0.1 port the waiting tasks' onCompleteUrl names
	// Ref is when (Unix ms) the waiting and delayed tasks were last due 1 h to 30 days ahead;
	// before each run their timers are moved forward by the time since, so none falls due.
	Ref int64 `json:"ref"`
}

// millionToken is the raw signal token of waiting task w: the fill stores only its hash,
// so the benchmark derives it again.
func millionToken(w int) string {
	h := sha256.Sum256([]byte("bench-token-" + strconv.Itoa(w)))
	return hex.EncodeToString(h[:])
}

// fillMillionSignals writes millionTasks tasks of one team, created over the 30 days before
// now (a busier last hour): one in twenty waiting for a signal, one in twenty delayed, the
// rest finished, mostly completed. It returns the team's API key.
func fillMillionSignals(b *testing.B, db string, port int, now int64) string {
	st, teamID, key := openBenchTeam(b, db)
	defer st.Close()
	ctx := context.Background()
	const (
		n        = millionTasks
		hour     = 3600_000
		month    = 30 * 24 * hour
		lastHour = n / 300
	)
	local := fmt.Sprintf("http://127.0.0.1:%d", port)
	hosts := []string{"api.example.com", "hooks.example.org", "billing.example.net"}
	paths := []string{"/v1/jobs/", "/render/", "/charge/"}
	okResult := `{"statusCode":200,"headers":{},"body":"ok","duration":240}`
	startResult := `{"statusCode":202,"headers":{},"body":"{\"started\":true}","duration":35}`
	delivered := `{"status":"delivered","attempts":1,"lastError":null}`
	failMsg := "Server error: HTTP 503 - Service Unavailable"
	doneURL := "https://hooks.example.org/done"
	var waiting, delayed, terminal int
	for i := 0; i < n; {
		err := st.Write(ctx, func(tx store.Tx) error {
			for j := 0; j < 20_000 && i < n; j, i = j+1, i+1 {
				var created int64
				if i < n-lastHour {
					created = now - month + int64(i)*(month-hour)/int64(n-lastHour)
				} else {
					created = now - hour + int64(i-(n-lastHour))*hour/int64(lastHour)
				}
				started, done := created+10, created+250
				body := fmt.Sprintf(`{"n":%d}`, i)
				t := &store.Task{ID: uuidV7At(created), TeamID: teamID, Method: "POST", Headers: "{}", Body: &body,
					TimeoutMS: 30000, MaxRetries: 3, RetryBackoff: "exponential", Priority: 5, MaxWaitMS: 30000,
					CreatedAt: created, StartedAt: &started, Attempts: 1}
				h := i % len(hosts)
				t.TargetURL = "https://" + hosts[h] + paths[h] + strconv.Itoa(i)
				t.TargetHost = hosts[h]
				switch i % 20 {
				case 7:
					w := waiting
					waiting++
					exp := now + hour + int64(w)*(month-hour)/millionWaiting
					sig := keys.Hash(millionToken(w))
					hook := fmt.Sprintf("%s/hook/%d", local, w)
					t.TargetURL, t.TargetHost = fmt.Sprintf("%s/start/%d", local, w), "127.0.0.1"
					t.Status, t.WaitForSignal, t.SignalHash, t.OnCompleteURL = store.StatusWaiting, true, sig[:], &hook
					t.StartResult, t.WaitingSince, t.ExpiresAt, t.DueAt = &startResult, &done, &exp, &exp
					t.MaxWaitMS = exp - done
				case 17:
					d := delayed
					delayed++
					due := now + hour + int64(d)*(month-hour)/millionDelayed
					t.TargetURL, t.TargetHost = fmt.Sprintf("%s/target/%d", local, d), "127.0.0.1"
					t.Status, t.DelayUntil, t.DueAt, t.StartedAt, t.Attempts = store.StatusDelayed, &due, &due, nil, 0
				default:
					k := terminal
					terminal++
					switch r := k % 100; {
					case r < 88:
						t.Status, t.Result, t.CompletedAt = store.StatusCompleted, &okResult, &done
					case r < 95:
						t.Status, t.Error, t.CompletedAt, t.RetryCount, t.Attempts = store.StatusFailed, &failMsg, &done, 3, 4
					case r < 97:
						t.Status, t.CompletedAt = store.StatusTimeout, &done
					default:
						t.Status, t.CompletedAt = store.StatusCancelled, &done
					}
					if k%10 == 0 { // some finished tasks had a completion webhook, long delivered
						t.OnCompleteURL, t.OnComplete = &doneURL, &delivered
					}
				}
				if err := tx.InsertTask(t); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if waiting != millionWaiting || delayed != millionDelayed {
		b.Fatalf("fill made %d waiting and %d delayed tasks, want %d and %d", waiting, delayed, millionWaiting, millionDelayed)
	}
	return key
}

// refreshMillion puts a reused database back into the shape the fill left it in: the
// tasks signalled by an earlier run wait again, and the waiting and delayed tasks' timers
// move forward by the time since the last run, so that they are again 1 h to 30 days ahead.
// It rewrites rows behind the store's back, as a fixture: the store has no such write.
func refreshMillion(b *testing.B, db string, shift int64) {
	conn, err := sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var waiting, delayed, total int
	err = func() error {
		tx, err := conn.Begin()
		if err != nil {
			return err
		}
		defer tx.Rollback()
		// Only the fill's waiting tasks have a signal token.
		for _, q := range []string{
			`update tasks set status = 'waiting', result = null, error = null, signal = null, buffered_signal = null,
				progress = null, last_heartbeat_at = null, on_complete = null, completed_at = null, due_at = expires_at
				where signal_hash is not null and status <> 'waiting'`,
			`delete from task_events`,
			`update tasks set expires_at = expires_at + ?1, due_at = due_at + ?1, max_wait_ms = max_wait_ms + ?1
				where status = 'waiting'`,
			`update tasks set delay_until = delay_until + ?1, due_at = due_at + ?1 where status = 'delayed'`,
		} {
			var args []any
			if strings.Contains(q, "?1") {
				args = []any{shift}
			}
			if _, err := tx.Exec(q, args...); err != nil {
				return err
			}
		}
		if err := tx.QueryRow(`select count(*) from tasks where status = 'waiting'`).Scan(&waiting); err != nil {
			return err
		}
		if err := tx.QueryRow(`select count(*) from tasks where status = 'delayed'`).Scan(&delayed); err != nil {
			return err
		}
		if err := tx.QueryRow(`select count(*) from tasks`).Scan(&total); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		b.Fatalf("refresh the benchmark database: %v", err)
	}
	if waiting != millionWaiting || delayed != millionDelayed || total != millionTasks {
		b.Fatalf("%s holds %d tasks, %d waiting and %d delayed; want %d, %d and %d: remove it (and %s.million.json) to fill it again",
			db, total, waiting, delayed, millionTasks, millionWaiting, millionDelayed, db)
	}
}

// millionProc is one run of the binary.
type millionProc struct {
	cmd  *exec.Cmd
	base string
	logs *syncBuffer // the server's stderr, for error messages
	done chan struct{}
}

// launchMillion starts the binary on db and returns it with the time from process start to
// the first 200 from /readyz.
func launchMillion(b *testing.B, db string) (*millionProc, time.Duration) {
	b.Helper()
	addr := freePort(b)
	p := &millionProc{base: "http://" + addr, logs: &syncBuffer{}, done: make(chan struct{})}
	// --retention 0: the fill spreads finished tasks over 30 days, so on a reused database the
	// pruner would start deleting the oldest and the next run would see fewer than 1M.
	p.cmd = exec.Command(binPath, "serve", "--db", db, "--addr", addr, "--log-format", "json",
		"--allow-private-targets", "--signal-rate-limit", "0", "--retention", "0")
	p.cmd.Env = os.Environ()
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = p.logs
	client := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	b.Cleanup(p.kill)
	for {
		res, err := client.Get(p.base + "/readyz")
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p, time.Since(start)
			}
		}
		select {
		case <-p.done:
			b.Fatalf("asyncqueue exited during start-up:\n%s", p.logs)
		default:
		}
		if time.Since(start) > 60*time.Second {
			b.Fatalf("asyncqueue not ready after 60 s:\n%s", p.logs)
		}
		time.Sleep(time.Millisecond)
	}
}

// stop ends the server with SIGTERM, as an operator's restart would.
func (p *millionProc) stop(b *testing.B) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		b.Fatalf("asyncqueue did not exit 60 s after SIGTERM:\n%s", p.logs)
	}
}

func (p *millionProc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

// memory returns the server's resident set now and at its peak (VmRSS, VmHWM), in MB.
func (p *millionProc) memory(b *testing.B) (rss, hwm float64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("read the server's memory use: %v", err)
	}
	for line := range strings.Lines(string(raw)) {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 64)
		if err != nil {
			b.Fatalf("/proc status %s: %q", name, val)
		}
		if name == "VmRSS" {
			rss = kb / 1024
		} else {
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

// millionPercentile returns the p-quantile (nearest rank) of ds.
func millionPercentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func millionMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// millionHooks records when each waiting task's completion webhook arrived.
type millionHooks struct {
	mu      sync.Mutex
	want    map[int]bool // waiting tasks whose webhook part (d) waits for
	arrived map[int]time.Time
	events  map[int]string
	stray   int // calls for anything else (should stay 0)
	all     chan struct{}
}

func (l *millionHooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/hook/"))
	if err != nil || !l.want[n] || !l.arrived[n].IsZero() {
		l.stray++
		return
	}
	l.arrived[n] = now
	l.events[n] = r.Header.Get("X-AsyncQueue-Event")
	if len(l.arrived) == len(l.want) {
		close(l.all)
	}
}

// BenchmarkMillion measures, with 1,000,000 tasks in the database (900,000 finished, 50,000
// waiting for a signal with an onCompleteUrl, 50,000 delayed):
//
//	(a) process start to /readyz, median of 3 launches (goal ≤ 2 s);
//	(b) the server's VmRSS and VmHWM after ready and after (d) (goal ≤ 300 MB);
//	(c) GET /v1/tasks, first page with its total, and ?status=waiting: median and p99 of 20
//	    requests after one untimed warm-up (goal ≤ 50 ms; of 20, the p99 is the slowest);
//	(d) 2,000 signals paced at 200/s to distinct waiting tasks: from just before each
//	    POST /v1/signals/{token} to the arrival of that task's completion webhook at a local
//	    receiver, p50/p99/max (goal p99 ≤ 10 ms).
//
// It runs only when selected by name (-bench Million); see the command at the top of the file.
func BenchmarkMillion(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "Million") {
		b.Skip("fills 1,000,000 tasks: run it by name with -bench Million")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc for the server's memory use")
	}
	db := os.Getenv("ASYNCQUEUE_BENCH_DB")
	if db == "" {
		db = filepath.Join(b.TempDir(), "aq-million.db")
	}
	stateFile := db + ".million.json"
	var state millionState
	var origin string // how the database came to be, for the summary
	if raw, err := os.ReadFile(stateFile); err == nil {
		if err := json.Unmarshal(raw, &state); err != nil {
			b.Fatalf("%s: %v", stateFile, err)
		}
		now := time.Now().UnixMilli()
		start := time.Now()
		refreshMillion(b, db, now-state.Ref)
		origin = fmt.Sprintf("reused %s (refreshed in %v)", db, time.Since(start).Round(time.Millisecond))
		state.Ref = now
	} else {
		if _, err := os.Stat(db); err == nil {
			b.Fatalf("%s exists but %s does not: not a database filled by this benchmark; remove it or set another ASYNCQUEUE_BENCH_DB", db, stateFile)
		}
		// The waiting tasks' onCompleteUrl names a port fixed now: the receiver of a later
		// run listens on the same one.
		_, port, _ := net.SplitHostPort(freePort(b))
		state.Port, _ = strconv.Atoi(port)
		state.Ref = time.Now().UnixMilli()
		start := time.Now()
		state.Key = fillMillionSignals(b, db, state.Port, state.Ref)
		origin = fmt.Sprintf("filled %s in %v", db, time.Since(start).Round(time.Second))
	}
	raw, _ := json.Marshal(state)
	if err := os.WriteFile(stateFile, raw, 0o600); err != nil {
		b.Fatal(err)
	}

	// The webhook receiver, on the port the database names.
	hooks := &millionHooks{want: map[int]bool{}, arrived: map[int]time.Time{}, events: map[int]string{}, all: make(chan struct{})}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", state.Port))
	if err != nil {
		b.Fatalf("webhook receiver: %v (the database's onCompleteUrl names this port; free it or remove %s to fill again)", err, db)
	}
	recv := httptest.NewUnstartedServer(hooks)
	recv.Listener.Close()
	recv.Listener = ln
	recv.Start()
	defer recv.Close()

	b.ResetTimer()

	// (a) Start-up: the last of the three launches stays up for the rest.
	var starts []time.Duration
	var p *millionProc
	for i := range 3 {
		var d time.Duration
		p, d = launchMillion(b, db)
		starts = append(starts, d)
		if i < 2 {
			p.stop(b)
		}
	}
	startMedian := millionPercentile(starts, 0.5)

	// (b) Memory once ready.
	rssReady, hwmReady := p.memory(b)

	// (c) The first page of the task list, with its total.
	client := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	list := func(path string) (time.Duration, int) {
		req, _ := http.NewRequest("GET", p.base+path, nil)
		req.Header.Set("X-API-Key", state.Key)
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			b.Fatalf("GET %s: %v", path, err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		d := time.Since(start)
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %v %.300s", path, res.StatusCode, err, body)
		}
		var out struct {
			Tasks      []json.RawMessage `json:"tasks"`
			Pagination struct {
				Total int `json:"total"`
			} `json:"pagination"`
		}
		if err := json.Unmarshal(body, &out); err != nil || len(out.Tasks) == 0 {
			b.Fatalf("GET %s: %v %.300s", path, err, body)
		}
		return d, out.Pagination.Total
	}
	type listResult struct {
		name, path string
		first      time.Duration
		p50, p99   time.Duration
		total      int
	}
	var lists []listResult
	for _, c := range []struct{ name, path string }{{"all", "/v1/tasks"}, {"waiting", "/v1/tasks?status=waiting"}} {
		r := listResult{name: c.name, path: c.path}
		r.first, r.total = list(c.path)
		var ds []time.Duration
		for range 20 {
			d, _ := list(c.path)
			ds = append(ds, d)
		}
		r.p50, r.p99 = millionPercentile(ds, 0.5), millionPercentile(ds, 0.99)
		lists = append(lists, r)
	}
	if lists[0].total != millionTasks || lists[1].total != millionWaiting {
		b.Fatalf("list totals %d and %d, want %d and %d", lists[0].total, lists[1].total, millionTasks, millionWaiting)
	}

	// (d) Signals at a steady rate, to waiting tasks spread over the whole table.
	stride := millionWaiting / millionSignals
	for k := range millionSignals {
		hooks.want[k*stride] = true
	}
	if res, err := client.Get(p.base + "/readyz"); err != nil { // open a connection before timing
		b.Fatal(err)
	} else {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	sent := make([]time.Time, millionSignals)
	answered := make([]time.Duration, millionSignals)
	var errMu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	interval := time.Second / millionRate
	begin := time.Now()
	for k := range millionSignals {
		time.Sleep(time.Until(begin.Add(time.Duration(k) * interval)))
		wg.Go(func() {
			w := k * stride
			body := fmt.Sprintf(`{"status":"completed","result":{"bench":%d}}`, w)
			req, _ := http.NewRequest("POST", p.base+"/v1/signals/"+millionToken(w), strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			t0 := time.Now()
			res, err := client.Do(req)
			if err == nil {
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || !bytes.Contains(raw, []byte(`"status":"completed"`)) {
					err = fmt.Errorf("%d %.300s", res.StatusCode, raw)
				}
			}
			sent[k], answered[k] = t0, time.Since(t0)
			if err != nil {
				errMu.Lock()
				errs = append(errs, fmt.Errorf("signal to waiting task %d: %w", w, err))
				errMu.Unlock()
			}
		})
	}
	sendTime := time.Since(begin)
	wg.Wait()
	if len(errs) > 0 {
		b.Fatalf("%d of %d signals failed; first: %v\n%s", len(errs), millionSignals, errs[0], millionTail(p.logs.String(), 4000))
	}
	select {
	case <-hooks.all:
	case <-time.After(30 * time.Second):
		hooks.mu.Lock()
		got := len(hooks.arrived)
		hooks.mu.Unlock()
		b.Fatalf("only %d of %d completion webhooks arrived within 30 s of the last signal\n%s",
			got, millionSignals, millionTail(p.logs.String(), 4000))
	}
	rssAfter, hwmAfter := p.memory(b)
	b.StopTimer()

	hooks.mu.Lock()
	lat := make([]time.Duration, 0, millionSignals)
	for k := range millionSignals {
		w := k * stride
		if ev := hooks.events[w]; ev != "task.completed" {
			b.Fatalf("webhook of waiting task %d: event %q, want task.completed", w, ev)
		}
		lat = append(lat, hooks.arrived[w].Sub(sent[k]))
	}
	stray := hooks.stray
	hooks.mu.Unlock()
	p.stop(b)

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(millionMS(startMedian), "ms-startup")
	b.ReportMetric(rssReady, "MB-rss-ready")
	b.ReportMetric(hwmReady, "MB-hwm-ready")
	b.ReportMetric(rssAfter, "MB-rss-after-signals")
	b.ReportMetric(hwmAfter, "MB-hwm-after-signals")
	for _, r := range lists {
		b.ReportMetric(millionMS(r.p50), "ms-list-"+r.name+"-p50")
		b.ReportMetric(millionMS(r.p99), "ms-list-"+r.name+"-p99")
	}
	sig50, sig99, sigMax := millionPercentile(lat, 0.5), millionPercentile(lat, 0.99), millionPercentile(lat, 1)
	b.ReportMetric(millionMS(sig50), "ms-signal-webhook-p50")
	b.ReportMetric(millionMS(sig99), "ms-signal-webhook-p99")
	b.ReportMetric(millionMS(sigMax), "ms-signal-webhook-max")
	b.ReportMetric(millionMS(millionPercentile(answered, 0.5)), "ms-signal-answer-p50")
	b.ReportMetric(millionMS(millionPercentile(answered, 0.99)), "ms-signal-answer-p99")

	// The benchmark framework keeps only the first 10 lines of a benchmark's log.
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d tasks (%d waiting with token and onCompleteUrl, %d delayed, rest finished), sync %s; %s\n",
		millionTasks, millionWaiting, millionDelayed, cmp.Or(os.Getenv("ASYNCQUEUE_SYNC"), "full"), origin)
	fmt.Fprintf(&sb, "%-32s ≤ 2000 ms: median %.1f ms (launches %.1f, %.1f, %.1f ms)\n", "(a) start-up to /readyz",
		millionMS(startMedian), millionMS(starts[0]), millionMS(starts[1]), millionMS(starts[2]))
	fmt.Fprintf(&sb, "%-32s ≤  300 MB: VmRSS %.1f MB, VmHWM %.1f MB\n", "(b) memory once ready", rssReady, hwmReady)
	fmt.Fprintf(&sb, "%-32s ≤  300 MB: VmRSS %.1f MB, VmHWM %.1f MB\n", "    memory after (d)", rssAfter, hwmAfter)
	for _, r := range lists {
		fmt.Fprintf(&sb, "%-32s ≤   50 ms: p50 %.2f ms, p99 %.2f ms (untimed first %.2f ms; total %d)\n", "(c) GET "+r.path,
			millionMS(r.p50), millionMS(r.p99), millionMS(r.first), r.total)
	}
	fmt.Fprintf(&sb, "%-32s ≤   10 ms: p50 %.2f ms, p99 %.2f ms (goal), max %.2f ms\n", "(d) signal → webhook arrives",
		millionMS(sig50), millionMS(sig99), millionMS(sigMax))
	fmt.Fprintf(&sb, "%-32s           p50 %.2f ms, p99 %.2f ms; %d signals in %v (%.0f/s); %d stray receiver calls",
		"    signal → its 200 answer", millionMS(millionPercentile(answered, 0.5)), millionMS(millionPercentile(answered, 0.99)),
		millionSignals, sendTime.Round(time.Millisecond), float64(millionSignals)/sendTime.Seconds(), stray)
	b.Log(sb.String())
}

// millionTail returns the end of s, at most n bytes.
func millionTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
