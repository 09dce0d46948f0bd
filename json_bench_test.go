package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// createBody is a typical create request: a target, headers, a JSON body, a delay.
var createBody = []byte(`{"targetUrl": "https://api.example.com/v1/jobs", "method": "POST",
  "headers": {"Authorization": "Bearer abc", "X-Trace": "t-1"}, "body": {"input": "hello", "n": 3},
  "timeout": 30, "delay": 5, "maxRetries": 3, "priority": 5, "flowKey": "jobs"}`)

// benchTask is a stored task as a create answers it.
func benchTask() *store.Task {
	body := `{"input":"hello","n":3}`
	delay := int64(1767000005000)
	flow := "jobs"
	return &store.Task{ID: "01939d2e-8d7a-7c3e-9b1a-2f4e5d6c7b8a", TeamID: "team-1", Status: store.StatusDelayed,
		TargetURL: "https://api.example.com/v1/jobs", Method: "POST",
		Headers: `{"Authorization":"Bearer abc","X-Trace":"t-1"}`, Body: &body, TimeoutMS: 30000,
		DelayUntil: &delay, MaxRetries: 3, RetryBackoff: "exponential", Priority: 5, FlowKey: &flow,
		MaxWaitMS: 30000, CreatedAt: 1767000000000, DueAt: &delay}
}

// discardWriter is a ResponseWriter that keeps nothing, so a benchmark measures the encoding.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkCreateDecode is the decoding of a create request, with its checks.
func BenchmarkCreateDecode(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var req createRequest
		if err := decodeBytes(createBody, &req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTaskEncode is the encoding of a create's answer.
func BenchmarkTaskEncode(b *testing.B) {
	w := &discardWriter{h: http.Header{}}
	t := benchTask()
	b.ReportAllocs()
	for b.Loop() {
		if err := writeJSON(w, http.StatusCreated, taskResponse{Task: taskJSON(t), SignalToken: "ab12"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResultJSON is the encoding of a call's answer as the outcome write stores it.
func BenchmarkResultJSON(b *testing.B) {
	res := &outbound.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"},
		"Date": {"Sun, 06 Dec 2026 06:50:00 GMT"}, "Content-Length": {"27"}},
		Body: []byte(`{"ok":true,"id":"job-12345"}`), Duration: 12 * time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		if s := resultJSON(res); len(s) == 0 {
			b.Fatal("empty")
		}
	}
}
