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
	"sync"
	"sync/atomic"
	"time"
)

// BenchCmd measures this machine: it runs a server on a temporary database and a local
// sink, and reports created/s, completed/s, create→callback latency and timer lateness.
type BenchCmd struct {
	Tasks       int           `help:"Immediate tasks to run." default:"20000"`
	Concurrency int           `help:"Concurrent create requests." default:"32"`
	Delayed     int           `help:"Delayed tasks for the timer measurement (0 skips it)." default:"2000"`
	Delay       time.Duration `help:"Delay of the delayed tasks." default:"1s"`
	Sync        string        `help:"SQLite synchronous mode of the server under test." default:"full" enum:"full,normal"`
	Keep        bool          `help:"Keep the temporary database."`
}

// sink records when each task's callback first arrived.
type sink struct {
	mu      sync.Mutex
	arrived map[string]time.Time
	dups    atomic.Int64
	n       atomic.Int64
}

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
	io.WriteString(w, "ok")
}

// Run starts the server as a child process (the same binary), runs the load and prints the figures.
func (c *BenchCmd) Run(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "asyncqueue-bench")
	if err != nil {
		return err
	}
	if !c.Keep {
		defer os.RemoveAll(dir)
	}
	sk := &sink{arrived: map[string]time.Time{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sinkSrv := &http.Server{Handler: sk, ReadHeaderTimeout: 5 * time.Second}
	go sinkSrv.Serve(ln)
	defer sinkSrv.Close()
	sinkURL := "http://" + ln.Addr().String() + "/hook"

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
	srv := exec.CommandContext(ctx, self, "serve", "--db", filepath.Join(dir, "bench.db"), "--addr", addr,
		"--allow-targets", "127.0.0.1/32", "--signal-rate-limit", "0", "--sync", c.Sync, "--log-format", "json")
	stderr, err := srv.StderrPipe()
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	key, err := readKey(stderr, 20*time.Second)
	if err != nil {
		return err
	}
	base := "http://" + addr
	if err := waitReady(base, 20*time.Second); err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c.Concurrency * 2}, Timeout: 30 * time.Second}
	create := func(body map[string]any) (string, time.Time, error) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+"/v1/tasks", bytes.NewReader(b))
		req.Header.Set("X-API-Key", key)
		req.Header.Set("Content-Type", "application/json")
		sent := time.Now()
		res, err := client.Do(req)
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

	// Immediate tasks, closed loop.
	fmt.Fprintf(os.Stderr, "bench: %d immediate tasks, %d concurrent creates, sync=%s …\n", c.Tasks, c.Concurrency, c.Sync)
	sent := make(map[string]time.Time, c.Tasks)
	var mu sync.Mutex
	var next atomic.Int64
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range c.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(c.Tasks) {
				id, at, err := create(map[string]any{"targetUrl": sinkURL, "body": `{"bench":true}`})
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
	created := time.Since(start)
	want := int64(c.Tasks) - failed.Load()
	deadline := time.Now().Add(2 * time.Minute)
	for sk.n.Load() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	completed := time.Since(start)
	var lat []time.Duration
	sk.mu.Lock()
	for id, at := range sent {
		if got, ok := sk.arrived[id]; ok {
			lat = append(lat, got.Sub(at))
		}
	}
	sk.mu.Unlock()

	fmt.Printf("%-34s %12s\n", "immediate tasks", fmt.Sprint(c.Tasks))
	fmt.Printf("%-34s %12.0f\n", "created/s", float64(len(sent))/created.Seconds())
	fmt.Printf("%-34s %12.0f\n", "completed/s (end to end)", float64(len(lat))/completed.Seconds())
	fmt.Printf("%-34s %12s\n", "create→callback p50 / p99", pct(lat, 50)+" / "+pct(lat, 99))
	fmt.Printf("%-34s %12d\n", "lost", int64(len(sent))-int64(len(lat)))
	fmt.Printf("%-34s %12d\n", "create errors", failed.Load())

	if c.Delayed > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d tasks delayed %s …\n", c.Delayed, c.Delay)
		due := make(map[string]time.Time, c.Delayed)
		next.Store(0)
		for range c.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(c.Delayed) {
					id, at, err := create(map[string]any{"targetUrl": sinkURL, "delay": c.Delay.Seconds()})
					if err != nil {
						failed.Add(1)
						continue
					}
					mu.Lock()
					due[id] = at.Add(c.Delay)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(c.Delay + time.Minute)
		for sk.n.Load() < int64(len(sent)+len(due)) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		var late []time.Duration
		sk.mu.Lock()
		for id, d := range due {
			if got, ok := sk.arrived[id]; ok {
				late = append(late, got.Sub(d))
			}
		}
		sk.mu.Unlock()
		fmt.Printf("%-34s %12s\n", "timer lateness p50 / p99 / max", pct(late, 50)+" / "+pct(late, 99)+" / "+pct(late, 100))
		fmt.Printf("%-34s %12d\n", "delayed lost", len(due)-len(late))
	}
	fmt.Printf("%-34s %12d\n", "duplicate callbacks", sk.dups.Load())
	return nil
}

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
