package main

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// metrics are the Prometheus series served at /metrics.
type metrics struct {
	reg *prometheus.Registry

	created    *prometheus.CounterVec // outcome: created, replayed, rejected
	callbacks  *prometheus.CounterVec // result: 2xx, 3xx, 4xx, 5xx, timeout, network, blocked
	callbackS  prometheus.Histogram   // callback duration
	timerLag   prometheus.Histogram   // fire time − due time
	webhooks   *prometheus.CounterVec // result: delivered, retry, failed
	signals    *prometheus.CounterVec // result: completed, failed, buffered, replayed, refused, not_found, malformed, rate_limited
	batchSize  prometheus.Histogram   // write requests per transaction
	commitS    prometheus.Histogram   // BEGIN … COMMIT duration
	writeFails prometheus.Counter     // transactions that failed to commit
	polls      *prometheus.CounterVec // result: running, done, failed, transient
	httpReqs   *prometheus.CounterVec // code class
	slotWaits  *prometheus.CounterVec // reason a due task could not start at once
	nodes      prometheus.Gauge       // live nodes sharing the store (1 on SQLite)
	all        []prometheus.Collector // everything registered

	// kind: scheduled, catchup, trigger; outcome: created, invalid (the body made no task)
	scheduleRuns *prometheus.CounterVec
}

func newMetrics(a *App) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c); m.all = append(m.all, c) }
	m.created = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "asyncqueue_tasks_created_total",
		Help: "Create requests by outcome (created, replayed, rejected)."}, []string{"outcome"})
	m.callbacks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "asyncqueue_callbacks_total",
		Help: "Calls of task targets by result class."}, []string{"result"})
	m.callbackS = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "asyncqueue_callback_duration_seconds",
		Help: "Duration of calls of task targets.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)})
	m.timerLag = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "asyncqueue_timer_lag_seconds",
		Help: "How late timers fire: fire time minus due time.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "asyncqueue_webhook_deliveries_total",
		Help: "onCompleteUrl delivery attempts by result (delivered, retry, failed)."}, []string{"result"})
	m.signals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "asyncqueue_signals_total",
		Help: "Signal, heartbeat and provider-callback requests by result."}, []string{"kind", "result"})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "asyncqueue_db_write_batch_size",
		Help: "Write requests committed per SQLite transaction (group commit).", Buckets: prometheus.ExponentialBuckets(1, 2, 10)})
	m.commitS = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "asyncqueue_db_commit_seconds",
		Help: "Duration of a write transaction, BEGIN to the end of COMMIT.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14)})
	m.writeFails = prometheus.NewCounter(prometheus.CounterOpts{Name: "asyncqueue_db_commit_errors_total",
		Help: "Write transactions that failed to commit."})
	m.polls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "asyncqueue_polls_total",
		Help: "Provider status polls by result."}, []string{"result"})
	m.httpReqs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "asyncqueue_http_requests_total",
		Help: "API requests by status class."}, []string{"code"})
	m.slotWaits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "asyncqueue_slot_waits_total",
		Help: "Due tasks that waited in their flow's queue instead of starting at once, by reason (ceiling, parallelism, rate, paused, queue)."},
		[]string{"reason"})
	m.nodes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "asyncqueue_nodes",
		Help: "Live nodes sharing the database (1 on SQLite); each runs its share of every flow's limits."})
	m.nodes.Set(1)
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "asyncqueue_calls_in_flight",
		Help: "Calls of task targets in flight now."}, func() float64 { n, _ := a.sched.totals(); return float64(n) })
	paused := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "asyncqueue_flows_paused",
		Help: "Flows paused now, by hand or by a target's Retry-After."}, func() float64 { _, n := a.sched.totals(); return float64(n) })
	m.scheduleRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "asyncqueue_schedule_runs_total",
		Help: "Schedule runs by kind (scheduled, catchup, trigger) and outcome (created, invalid)."}, []string{"kind", "outcome"})
	f(m.scheduleRuns)
	for _, c := range []prometheus.Collector{m.created, m.callbacks, m.callbackS, m.timerLag, m.webhooks, m.signals,
		m.batchSize, m.commitS, m.writeFails, m.polls, m.httpReqs, m.slotWaits, m.nodes, inFlight, paused} {
		f(c)
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f(&stateCollector{a: a,
		tasks: prometheus.NewDesc("asyncqueue_tasks", "Tasks by status (kept in memory, not counted per scrape).", []string{"status"}, nil),
		depth: prometheus.NewDesc("asyncqueue_queue_depth", "Tasks due and waiting for a worker (pending).", nil, nil),
		oldest: prometheus.NewDesc("asyncqueue_oldest_pending_age_seconds",
			"Age of the oldest pending task.", nil, nil),
		timers: prometheus.NewDesc("asyncqueue_timers_in_memory", "Timers held in the in-memory queue (due within the horizon).", nil, nil),
	})
	return m
}

// stateCollector reads gauges when scraped.
type stateCollector struct {
	a                            *App
	tasks, depth, oldest, timers *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.tasks
	ch <- c.depth
	ch <- c.oldest
	ch <- c.timers
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.a.store == nil {
		return // not serving (tests)
	}
	counts, err := c.a.store.StatusCounts(context.Background(), "")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.tasks, err)
		return
	}
	for _, st := range allStatuses {
		ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(counts[st]), st)
	}
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(counts[store.StatusPending]))
	ch <- prometheus.MustNewConstMetric(c.timers, prometheus.GaugeValue, float64(c.a.sched.timers.Len()))
	var oldest time.Duration
	if counts[store.StatusPending] > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		byTeam, err := c.a.store.TeamStatusCounts(ctx)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.oldest, err)
			return
		}
		for team, byStatus := range byTeam {
			if byStatus[store.StatusPending] == 0 {
				continue
			}
			if row, err := c.a.store.OldestPending(ctx, team); err == nil && row != nil {
				oldest = max(oldest, time.Since(time.UnixMilli(row.CreatedAt)))
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest.Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// onBatch feeds the store's group-commit figures.
func (m *metrics) onBatch(n int, took time.Duration, err error) {
	m.batchSize.Observe(float64(n))
	m.commitS.Observe(took.Seconds())
	if err != nil {
		m.writeFails.Inc()
	}
}

// callback records one call of a task's target.
func (m *metrics) callback(status int, errClass string, d time.Duration) {
	m.callbackS.Observe(d.Seconds())
	switch {
	case errClass != "":
		m.callbacks.WithLabelValues(errClass).Inc()
	case status >= 500:
		m.callbacks.WithLabelValues("5xx").Inc()
	case status >= 400:
		m.callbacks.WithLabelValues("4xx").Inc()
	case status >= 300:
		m.callbacks.WithLabelValues("3xx").Inc()
	default:
		m.callbacks.WithLabelValues("2xx").Inc()
	}
}

var signalResults = map[int]string{200: "accepted", 202: "buffered", 400: "malformed", 404: "not_found",
	409: "refused", 413: "too_large", 429: "rate_limited"}

// signal records one request to the signal or callback endpoints by its outcome.
func (m *metrics) signal(kind string, status int, err error) {
	if e, ok := err.(*Error); ok {
		status = e.Status
	} else if err != nil {
		status = http.StatusInternalServerError
	}
	result := signalResults[status]
	if result == "" {
		result = "error"
	}
	m.signals.WithLabelValues(kind, result).Inc()
}
