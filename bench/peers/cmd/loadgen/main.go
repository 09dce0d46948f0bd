// Command loadgen creates tasks on any server that accepts asyncqueue's POST /v1/tasks and
// measures, through the sink, when their calls arrive.
//
// Modes: closed loop with -c concurrent creates (default), open loop at -rate tasks/s, tasks
// delayed -delay seconds, a slow target (-sleep-ms), and -hang-n tasks to a target that never
// answers created first (with -key) before the measured tasks (with -key-b when set: another
// team's key on asyncqueue).
//
// Several nodes: -base takes a comma-separated list and the creates go round-robin over it;
// -pid takes a comma-separated list too and the server figures are summed over the nodes
// (VmHWM: the largest). -db-pid is a database server's main process (PostgreSQL's
// postmaster): the CPU time of it and its children (the backends) is reported beside the
// server's.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Result is what one run writes with -out; the summarizer reads it.
type Result struct {
	System   string `json:"system"`
	Scenario string `json:"scenario"`
	Rep      int    `json:"rep"`
	Run      string `json:"run"`
	When     string `json:"when"`

	Tasks        int     `json:"tasks"`
	Acked        int     `json:"acked"`
	CreateErrors int     `json:"create_errors"`
	CreateRate   float64 `json:"create_per_s"`
	CreateP50Ms  float64 `json:"create_p50_ms"`
	CreateP99Ms  float64 `json:"create_p99_ms"`

	E2ERate    float64 `json:"e2e_per_s"`
	LatP50Ms   float64 `json:"cb_p50_ms"`
	LatP99Ms   float64 `json:"cb_p99_ms"`
	LatMaxMs   float64 `json:"cb_max_ms"`
	AllCalledS float64 `json:"all_called_s"` // last first arrival − first create sent

	LateP50Ms float64 `json:"late_p50_ms,omitempty"`
	LateP99Ms float64 `json:"late_p99_ms,omitempty"`
	LateMaxMs float64 `json:"late_max_ms,omitempty"`
	Early     int     `json:"early,omitempty"`

	Lost       int  `json:"lost"`
	Duplicates int  `json:"duplicates"`
	TimedOut   bool `json:"timed_out"`

	HangTasks  int     `json:"hang_tasks,omitempty"`
	HangHeld   int64   `json:"hang_peak_held,omitempty"`
	PeakHeld   int64   `json:"peak_held,omitempty"`
	ServerCPUs float64 `json:"server_cpu_s"`
	CPUPerTask float64 `json:"server_cpu_ms_per_task"`
	ServerHWM  float64 `json:"server_vmhwm_mib"`
	SinkCPUs   float64 `json:"sink_cpu_s"`

	Nodes        int     `json:"nodes,omitempty"`    // servers the creates were spread over
	DBCPUs       float64 `json:"db_cpu_s,omitempty"` // the database server's processes (-db-pid)
	DBCPUPerTask float64 `json:"db_cpu_ms_per_task,omitempty"`
	LoadgenCPUs  float64 `json:"loadgen_cpu_s"`
	// Cores kept busy on average from the first create to the last callback (CPU s / wall s):
	// the servers, the database server, this load generator and the sink, every process on
	// the machine (other work included).
	WallS       float64 `json:"wall_s"`
	ServerCores float64 `json:"server_cores"`
	DBCores     float64 `json:"db_cores"`
	ToolCores   float64 `json:"tool_cores"`
	HostBusy    float64 `json:"host_busy_cores"`
	HostCores   int     `json:"host_cores"`
}

type config struct {
	bases                              []string
	base, key, keyB, sink, target, run string
	n, c, hangN, sleepMS               int
	rate, delay, hangTimeout           float64
	wait, stall, grace                 time.Duration
}

func main() {
	var cfg config
	var res Result
	var out string
	var pids string
	var sinkPID, dbPID int
	flag.StringVar(&cfg.base, "base", "http://127.0.0.1:8090", "server under test; several nodes: a comma-separated list, the creates go round-robin")
	flag.StringVar(&cfg.key, "key", "dev-key", "X-API-Key")
	flag.StringVar(&cfg.keyB, "key-b", "", "X-API-Key of the measured tasks when -hang-n is set (another team); default -key")
	flag.StringVar(&cfg.sink, "sink", "http://127.0.0.1:9000", "sink control URL")
	flag.StringVar(&cfg.target, "target", "", "base URL the tasks call (default -sink; e.g. the sink's https address)")
	flag.StringVar(&cfg.run, "run", "", "run id (default: from the clock)")
	flag.IntVar(&cfg.n, "n", 1000, "measured tasks")
	flag.IntVar(&cfg.c, "c", 32, "concurrent create requests")
	flag.Float64Var(&cfg.rate, "rate", 0, "open loop: tasks per second (0 = closed loop)")
	flag.Float64Var(&cfg.delay, "delay", 0, "delay of each task, seconds")
	flag.IntVar(&cfg.sleepMS, "sleep-ms", 0, "the target answers after this many ms")
	flag.IntVar(&cfg.hangN, "hang-n", 0, "tasks to a target that never answers, created before the measured ones")
	flag.Float64Var(&cfg.hangTimeout, "hang-timeout", 10, "call timeout of the hanging tasks, seconds (they are not retried)")
	flag.DurationVar(&cfg.wait, "wait", 120*time.Second, "longest wait for the callbacks after the last create")
	flag.DurationVar(&cfg.stall, "stall", 30*time.Second, "give up when no callback arrived for this long")
	flag.DurationVar(&cfg.grace, "grace", time.Second, "wait after the last expected callback, to see duplicates")
	flag.StringVar(&pids, "pid", "", "server PID (CPU time and VmHWM from /proc); several nodes: a comma-separated list, summed")
	flag.IntVar(&dbPID, "db-pid", 0, "database server PID (PostgreSQL's postmaster): CPU time of it and its children")
	flag.IntVar(&sinkPID, "sink-pid", 0, "sink PID (CPU time)")
	flag.StringVar(&res.System, "system", "", "system name for the result")
	flag.StringVar(&res.Scenario, "scenario", "", "scenario name for the result")
	flag.IntVar(&res.Rep, "rep", 1, "repetition number for the result")
	flag.StringVar(&out, "out", "", "write the result as JSON here")
	flag.Parse()
	for b := range strings.SplitSeq(cfg.base, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.bases = append(cfg.bases, strings.TrimRight(b, "/"))
		}
	}
	if len(cfg.bases) == 0 {
		fmt.Fprintln(os.Stderr, "-base: no server")
		os.Exit(2)
	}
	var pidList []int
	for f := range strings.SplitSeq(pids, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p <= 0 {
			fmt.Fprintf(os.Stderr, "-pid: bad PID %q\n", f)
			os.Exit(2)
		}
		pidList = append(pidList, p)
	}
	if len(cfg.bases) > 1 {
		res.Nodes = len(cfg.bases)
	}
	if cfg.target == "" {
		cfg.target = cfg.sink
	}
	if cfg.keyB == "" {
		cfg.keyB = cfg.key
	}
	if cfg.run == "" {
		cfg.run = strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	res.Run, res.When = cfg.run, time.Now().UTC().Format(time.RFC3339)
	code := measure(&cfg, &res, pidList, sinkPID, dbPID)
	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(b))
	if out != "" {
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(code)
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}}

// create sends one task; it returns whether the server acknowledged it (2xx).
func create(base, key string, body map[string]any) (bool, string) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest("POST", base+"/v1/tasks", bytes.NewReader(b))
	if err != nil {
		return false, "request"
	}
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return false, "transport"
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return false, "HTTP " + strconv.Itoa(res.StatusCode)
	}
	return true, ""
}

type sent struct {
	at    []int64 // Unix ns when the create was sent, by seq
	ack   []int64 // Unix ns of the 2xx, 0 = not acknowledged
	errs  map[string]int
	errMu sync.Mutex
}

// createAll creates n tasks (body(seq)) with c workers, closed loop or paced at rate/s.
func createAll(cfg *config, key string, n int, rate float64, body func(seq int) map[string]any) *sent {
	s := &sent{at: make([]int64, n), ack: make([]int64, n), errs: map[string]int{}}
	seqs := make(chan int, cfg.c)
	go func() {
		start := time.Now()
		for i := range n {
			if rate > 0 {
				due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
			}
			seqs <- i
		}
		close(seqs)
	}()
	workers := cfg.c
	if rate > 0 {
		workers = max(cfg.c, 64) // enough that a slow create does not hold the pace back
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for seq := range seqs {
				s.at[seq] = time.Now().UnixNano()
				ok, why := create(cfg.bases[seq%len(cfg.bases)], key, body(seq))
				if ok {
					s.ack[seq] = time.Now().UnixNano()
				} else {
					s.errMu.Lock()
					s.errs[why]++
					s.errMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return s
}

type stats struct {
	Unique, Duplicates, PeakHeld int64
}

func sinkStats(cfg *config, run string) (stats, error) {
	var st struct {
		Unique     int64 `json:"unique"`
		Duplicates int64 `json:"duplicates"`
		PeakHeld   int64 `json:"peak_held"`
	}
	res, err := client.Get(cfg.sink + "/stats?run=" + run)
	if err != nil {
		return stats{}, err
	}
	defer res.Body.Close()
	err = json.NewDecoder(res.Body).Decode(&st)
	return stats{st.Unique, st.Duplicates, st.PeakHeld}, err
}

func sinkDump(cfg *config, run string) (first []int64, count []int32, err error) {
	var d struct {
		First []int64 `json:"first_ns"`
		Count []int32 `json:"count"`
	}
	res, err := client.Get(cfg.sink + "/dump?run=" + run)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	err = json.NewDecoder(res.Body).Decode(&d)
	return d.First, d.Count, err
}

func measure(cfg *config, res *Result, pids []int, sinkPID, dbPID int) int {
	start := time.Now()
	cpu0, sinkCPU0, dbCPU0, selfCPU0, host0 := sumCPU(pids), procCPU(sinkPID), treeCPU(dbPID), procCPU(os.Getpid()), hostCPU()
	hangRun := cfg.run + "-hang"
	if cfg.hangN > 0 {
		res.HangTasks = cfg.hangN
		hs := createAll(cfg, cfg.key, cfg.hangN, 0, func(seq int) map[string]any {
			return map[string]any{"targetUrl": fmt.Sprintf("%s/cb/%s/%d?hang=1", cfg.target, hangRun, seq),
				"timeout": cfg.hangTimeout, "maxRetries": 0}
		})
		if len(hs.errs) > 0 {
			fmt.Fprintf(os.Stderr, "hanging tasks: create errors %v\n", hs.errs)
		}
	}
	query := ""
	if cfg.sleepMS > 0 {
		query = "?sleep_ms=" + strconv.Itoa(cfg.sleepMS)
	}
	s := createAll(cfg, cfg.keyB, cfg.n, cfg.rate, func(seq int) map[string]any {
		m := map[string]any{"targetUrl": fmt.Sprintf("%s/cb/%s/%d%s", cfg.target, cfg.run, seq, query),
			"body": fmt.Sprintf(`{"run":%q,"seq":%d}`, cfg.run, seq)}
		if cfg.delay > 0 {
			m["delay"] = cfg.delay
		}
		return m
	})
	res.Tasks = cfg.n
	var createLat []float64
	var firstSend, lastAck int64 = math.MaxInt64, 0
	for i := range cfg.n {
		firstSend = min(firstSend, s.at[i])
		if s.ack[i] != 0 {
			res.Acked++
			createLat = append(createLat, float64(s.ack[i]-s.at[i])/1e6)
			lastAck = max(lastAck, s.ack[i])
		}
	}
	for why, k := range s.errs {
		res.CreateErrors += k
		fmt.Fprintf(os.Stderr, "create errors: %s × %d\n", why, k)
	}
	if res.Acked > 0 {
		res.CreateRate = float64(res.Acked) / (float64(lastAck-firstSend) / 1e9)
	}
	res.CreateP50Ms, res.CreateP99Ms = pct(createLat, 50), pct(createLat, 99)

	// Wait for the callbacks: bounded by -wait after the last create (plus the delay), and
	// by -stall without progress.
	deadline := time.Now().Add(cfg.wait + time.Duration(cfg.delay*float64(time.Second)))
	lastProgress, lastUnique := time.Now(), int64(-1)
	stallAllowed := cfg.stall + time.Duration(cfg.delay*float64(time.Second))
	for {
		st, err := sinkStats(cfg, cfg.run)
		if err == nil && st.Unique >= int64(res.Acked) {
			break
		}
		if err == nil && st.Unique != lastUnique {
			lastUnique, lastProgress = st.Unique, time.Now()
		}
		if time.Now().After(deadline) || time.Since(lastProgress) > stallAllowed {
			res.TimedOut = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if wall := time.Since(start).Seconds(); wall > 0 {
		res.WallS = round3(wall)
		res.ServerCores = round3((sumCPU(pids) - cpu0) / wall)
		res.DBCores = round3((treeCPU(dbPID) - dbCPU0) / wall)
		res.ToolCores = round3((procCPU(os.Getpid()) - selfCPU0 + procCPU(sinkPID) - sinkCPU0) / wall)
		if h := hostCPU(); h > 0 {
			res.HostBusy = round3((h - host0) / wall)
		}
	}
	res.HostCores = runtime.NumCPU()
	time.Sleep(cfg.grace + time.Duration(cfg.sleepMS)*time.Millisecond)

	first, count, err := sinkDump(cfg, cfg.run)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink dump:", err)
		return 1
	}
	var lat, late []float64
	var lastFirst int64
	delayNS := int64(cfg.delay * 1e9)
	for i := range cfg.n {
		if s.ack[i] == 0 {
			continue
		}
		if i >= len(first) || first[i] == 0 {
			res.Lost++
			continue
		}
		res.Duplicates += int(count[i]) - 1
		lat = append(lat, float64(first[i]-s.at[i])/1e6)
		lastFirst = max(lastFirst, first[i])
		if cfg.delay > 0 {
			l := float64(first[i]-s.at[i]-delayNS) / 1e6
			if l < 0 {
				res.Early++
			}
			late = append(late, l)
		}
	}
	for i := cfg.n; i < len(count); i++ {
		res.Duplicates += int(count[i]) // calls for tasks never created: counted as extra
	}
	if len(lat) > 0 {
		span := float64(lastFirst-firstSend) / 1e9
		res.AllCalledS = math.Round(span*1000) / 1000
		if span > 0 {
			res.E2ERate = float64(len(lat)) / span
		}
	}
	res.LatP50Ms, res.LatP99Ms, res.LatMaxMs = pct(lat, 50), pct(lat, 99), pct(lat, 100)
	if cfg.delay > 0 {
		res.LateP50Ms, res.LateP99Ms, res.LateMaxMs = pct(late, 50), pct(late, 99), pct(late, 100)
	}
	if st, err := sinkStats(cfg, cfg.run); err == nil {
		res.PeakHeld = st.PeakHeld
	}
	if cfg.hangN > 0 {
		if st, err := sinkStats(cfg, hangRun); err == nil {
			res.HangHeld = st.PeakHeld
		}
	}
	res.LoadgenCPUs = round3(procCPU(os.Getpid()) - selfCPU0)
	created := float64(res.Acked + res.HangTasks)
	if len(pids) > 0 {
		res.ServerCPUs = round3(sumCPU(pids) - cpu0)
		if res.Acked > 0 {
			res.CPUPerTask = round3(res.ServerCPUs * 1000 / created)
		}
		for _, p := range pids {
			res.ServerHWM = max(res.ServerHWM, round3(procHWM(p)))
		}
	}
	if dbPID > 0 {
		res.DBCPUs = round3(treeCPU(dbPID) - dbCPU0)
		if res.Acked > 0 {
			res.DBCPUPerTask = round3(res.DBCPUs * 1000 / created)
		}
	}
	if sinkPID > 0 {
		res.SinkCPUs = round3(procCPU(sinkPID) - sinkCPU0)
	}
	if res.Lost > 0 || res.TimedOut {
		return 2
	}
	return 0
}

// pct is the p-th percentile (p = 100: maximum) in ms, rounded to 0.1 ms; it sorts xs.
func pct(xs []float64, p int) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	i := min(len(xs)-1, len(xs)*p/100)
	return math.Round(xs[i]*10) / 10
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// procCPU is the process's user + system CPU time in seconds (0 when unknown).
func procCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

func sumCPU(pids []int) float64 {
	var t float64
	for _, p := range pids {
		t += procCPU(p)
	}
	return t
}

// procStat is the fields of /proc/PID/stat after the command's name (field 3 onwards).
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// treeCPU is the CPU time in seconds of a process and its children, living and ended: its own
// utime + stime + cutime + cstime (the children it has reaped), plus the same of each living
// child. A child that ends between two readings moves from the second term to the first, so
// the difference of two readings is the CPU the tree used in between.
func treeCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	total := func(f []string) float64 {
		if len(f) < 15 {
			return 0
		}
		var t float64
		for _, k := range f[11:15] { // utime stime cutime cstime
			v, _ := strconv.ParseFloat(k, 64)
			t += v
		}
		return t / 100
	}
	t := total(procStat(pid))
	ents, _ := os.ReadDir("/proc")
	parent := strconv.Itoa(pid)
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if f := procStat(child); len(f) > 1 && f[1] == parent { // field 4: ppid
			t += total(f)
		}
	}
	return t
}

// hostCPU is the CPU time in seconds every process on the machine has used (the busy
// fields of /proc/stat's first line: everything but idle and iowait).
func hostCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var t float64
	for i, k := range f[1:8] { // user nice system idle iowait irq softirq
		if i == 3 || i == 4 {
			continue
		}
		v, _ := strconv.ParseFloat(k, 64)
		t += v
	}
	return t / 100
}

// procHWM is the process's peak resident set (VmHWM) in MiB.
func procHWM(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
