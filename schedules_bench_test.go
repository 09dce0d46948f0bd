package main

import (
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkScheduleLateness measures how late schedule runs are: the real binary runs ten
// `every: 1s` schedules for 30 s, and each run's lateness is its task's createdAt minus the
// run's due time (read back from the run's idempotency key, schedule:<id>:<due ms>).
//
//	go test -run '^$' -bench ScheduleLateness -benchtime 1x .
func BenchmarkScheduleLateness(b *testing.B) {
	const schedules, period = 10, 30 * time.Second
	target, _ := schedTarget(b)
	s := startServer(b, "")
	for range schedules {
		r := s.call("POST", "/v1/schedules", map[string]any{"every": "1s", "task": map[string]any{"targetUrl": target.URL}})
		if r.Status != 201 {
			b.Fatalf("create: %d %s", r.Status, r.Raw)
		}
	}
	time.Sleep(period)
	if err := s.stop(); err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+s.db+"?_pragma=busy_timeout(5000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`select i.key, t.created_at from idempotency_keys i join tasks t on t.id = i.task_id
		where i.key like 'schedule:%'`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var late []time.Duration
	for rows.Next() {
		var key string
		var created int64
		if err := rows.Scan(&key, &created); err != nil {
			b.Fatal(err)
		}
		due, err := strconv.ParseInt(key[strings.LastIndexByte(key, ':')+1:], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		late = append(late, time.Duration(created-due)*time.Millisecond)
	}
	if len(late) == 0 {
		b.Fatal("no runs")
	}
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	q := func(p float64) time.Duration { return late[min(len(late)-1, int(p*float64(len(late))))] }
	b.ReportMetric(float64(len(late)), "runs")
	b.ReportMetric(float64(q(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(late[len(late)-1].Microseconds())/1000, "max-ms")
	fmt.Printf("schedule runs: %d, lateness p50 %v, p99 %v, max %v\n", len(late), q(0.5), q(0.99), late[len(late)-1])
}
