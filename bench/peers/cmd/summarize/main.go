// Command summarize prints the medians of a results directory (the loadgen JSON files that
// run.sh writes) as Markdown tables, one per scenario.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

type result map[string]any

func (r result) num(k string) float64 {
	v, _ := r[k].(float64)
	return v
}

func (r result) str(k string) string {
	v, _ := r[k].(string)
	return v
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// column is one figure of a table: a header and how to print the medians of its keys.
type column struct {
	head string
	keys []string
	f    func(m []float64) string
}

func ms(m []float64) string {
	parts := make([]string, len(m))
	for i, x := range m {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(parts, " / ")
}

func rate(m []float64) string { return fmt.Sprintf("%.0f", m[0]) }
func f2(m []float64) string   { return fmt.Sprintf("%.2f", m[0]) }
func f1(m []float64) string   { return fmt.Sprintf("%.1f", m[0]) }
func sum(m []float64) string  { return fmt.Sprintf("%.0f", m[0]) }

var (
	e2e     = column{"e2e tasks/s", []string{"e2e_per_s"}, rate}
	cb      = column{"create→callback p50 / p99 ms", []string{"cb_p50_ms", "cb_p99_ms"}, ms}
	cbMax   = column{"create→callback p50 / p99 / max ms", []string{"cb_p50_ms", "cb_p99_ms", "cb_max_ms"}, ms}
	create  = column{"create req/s", []string{"create_per_s"}, rate}
	late    = column{"lateness p50 / p99 / max ms", []string{"late_p50_ms", "late_p99_ms", "late_max_ms"}, ms}
	cpu     = column{"server CPU ms/task", []string{"server_cpu_ms_per_task"}, f2}
	hwm     = column{"server VmHWM MiB", []string{"server_vmhwm_mib"}, f1}
	held    = column{"calls in flight (max)", []string{"peak_held"}, sum}
	hangH   = column{"hanging calls held (max)", []string{"hang_peak_held"}, sum}
	allDone = column{"all healthy called after s", []string{"all_called_s"}, f2}
	dbCPU   = column{"PostgreSQL CPU ms/task", []string{"db_cpu_ms_per_task"}, f2}
	cores   = column{"CPU cores busy: server / PostgreSQL / loadgen+sink / machine", []string{"server_cores", "db_cores", "tool_cores", "host_busy_cores"}, cores2}
)

func cores2(m []float64) string {
	parts := make([]string, len(m))
	for i, x := range m {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " / ")
}

// extraColumns are the columns only results that have them get: the database's CPU (a
// system on PostgreSQL, -db-pid) and the cores busy (results that record them).
func extraColumns(rs map[string][]result) []column {
	var db, wall bool
	for _, runs := range rs {
		for _, r := range runs {
			db = db || r.num("db_cpu_s") > 0
			wall = wall || r.num("wall_s") > 0
		}
	}
	var cols []column
	if db {
		cols = append(cols, dbCPU)
	}
	if wall {
		cols = append(cols, cores)
	}
	return cols
}

var tables = map[string]struct {
	title string
	cols  []column
}{
	"imm":        {"Immediate tasks, closed loop", []column{e2e, create, cb, cpu, hwm}},
	"slow":       {"Slow target (answers after SLOW_MS)", []column{e2e, cb, held, cpu, hwm}},
	"delayshort": {"Delayed tasks (lateness = arrival − (create sent + delay))", []column{late, cpu, hwm}},
	"delay":      {"Delayed tasks (lateness = arrival − (create sent + delay))", []column{late, cpu, hwm}},
	"rate":       {"Fixed create rate (latency below saturation)", []column{cbMax, cpu, hwm}},
	"hang":       {"Hanging target: tasks to a healthy target created after HANG_N tasks to one that never answers", []column{cbMax, allDone, hangH, cpu}},
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: summarize RESULTS_DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	// scenario → system → results
	by := map[string]map[string][]result{}
	var scenarios []string
	order := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			continue
		}
		var r result
		if json.Unmarshal(b, &r) != nil || r.str("scenario") == "" {
			continue
		}
		sc, sys := r.str("scenario"), r.str("system")
		if by[sc] == nil {
			by[sc] = map[string][]result{}
			scenarios = append(scenarios, sc)
		}
		if by[sc][sys] == nil {
			order[sc] = append(order[sc], sys)
		}
		by[sc][sys] = append(by[sc][sys], r)
	}
	if meta, err := os.ReadFile(filepath.Join(dir, "meta.txt")); err == nil {
		fmt.Printf("```\n%s```\n\n", meta)
	}
	known := []string{"imm", "slow", "delayshort", "delay", "rate", "hang"}
	slices.SortFunc(scenarios, func(a, b string) int { return slices.Index(known, a) - slices.Index(known, b) })
	for _, sc := range scenarios {
		t, ok := tables[sc]
		if !ok {
			t.title, t.cols = sc, []column{e2e, cb, cpu}
		}
		rs := by[sc]
		t.cols = append(slices.Clip(t.cols), extraColumns(rs)...)
		n := 0
		for _, sys := range order[sc] {
			n = max(n, len(rs[sys]))
		}
		tasks := rs[order[sc][0]][0].num("tasks")
		fmt.Printf("### %s: %s (%.0f tasks; medians of %d)\n\n", sc, t.title, tasks, n)
		head := "| system | runs |"
		sep := "|---|---|"
		for _, c := range t.cols {
			head += " " + c.head + " |"
			sep += "---|"
		}
		fmt.Println(head + " lost / dup (all runs) |")
		fmt.Println(sep + "---|")
		slices.Sort(order[sc])
		for _, sys := range order[sc] {
			runs := rs[sys]
			line := fmt.Sprintf("| %s | %d |", sys, len(runs))
			var acked, lostAll float64
			for _, r := range runs {
				acked += r.num("acked")
				lostAll += r.num("lost")
			}
			for _, c := range t.cols {
				if c.head == dbCPU.head && !slices.ContainsFunc(runs, func(r result) bool { return r.num("db_cpu_s") > 0 }) {
					line += " – |" // not on PostgreSQL
					continue
				}
				if acked > 0 && lostAll == acked && c.head != cpu.head && c.head != hwm.head && c.head != hangH.head && c.head != create.head &&
					c.head != dbCPU.head && c.head != cores.head {
					line += " none called |" // every task of every run was lost: no figure to give
					continue
				}
				m := make([]float64, len(c.keys))
				for i, k := range c.keys {
					var xs []float64
					for _, r := range runs {
						xs = append(xs, r.num(k))
					}
					m[i] = median(xs)
				}
				line += " " + c.f(m) + " |"
			}
			var lost, dup float64
			timedOut := false
			for _, r := range runs {
				lost += r.num("lost")
				dup += r.num("duplicates")
				if v, _ := r["timed_out"].(bool); v {
					timedOut = true
				}
			}
			mark := ""
			if timedOut {
				mark = " (wait timed out)"
			}
			fmt.Printf("%s %.0f / %.0f%s |\n", line, lost, dup, mark)
		}
		fmt.Println()
	}
	pgStats(filepath.Join(dir, "pgstats.txt"), known)
}

// pgStats prints the medians of pgstats.txt (bench/nodes/run.sh writes it): what PostgreSQL
// did in each run, one line per run: system scenario rep tasks transactions rollbacks
// wal_syncs wal_records wal_bytes.
func pgStats(path string, known []string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	type key struct{ sc, sys string }
	by := map[key][][]float64{}
	var keys []key
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 9 {
			continue
		}
		var v []float64
		for _, x := range f[3:] {
			var n float64
			fmt.Sscan(x, &n)
			v = append(v, n)
		}
		if v[0] <= 0 {
			continue
		}
		k := key{f[1], f[0]}
		if by[k] == nil {
			keys = append(keys, k)
		}
		by[k] = append(by[k], v)
	}
	if len(keys) == 0 {
		return
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := slices.Index(known, a.sc) - slices.Index(known, b.sc); c != 0 {
			return c
		}
		return strings.Compare(a.sys, b.sys)
	})
	fmt.Print("### PostgreSQL's work per task (medians; whole run: start-up, 50 warm-up tasks and the measured ones)\n\n")
	fmt.Println("| scenario | system | runs | transactions/task | WAL flushes/task | WAL records/task | WAL KiB/task | rollbacks (all runs) |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, k := range keys {
		runs := by[k]
		per := func(i int, scale float64) float64 {
			var xs []float64
			for _, v := range runs {
				xs = append(xs, v[i]/v[0]/scale)
			}
			return median(xs)
		}
		var rollbacks float64
		for _, v := range runs {
			rollbacks += v[2]
		}
		fmt.Printf("| %s | %s | %d | %.2f | %.2f | %.1f | %.2f | %.0f |\n", k.sc, k.sys, len(runs),
			per(1, 1), per(3, 1), per(4, 1), per(5, 1024), rollbacks)
	}
	fmt.Println()
}
