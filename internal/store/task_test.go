package store

import (
	"errors"
	"reflect"
	"testing"
)

func TestJSONColumns(t *testing.T) {
	s := func(v string) *string { return &v }
	type sig struct {
		Status string `json:"status"`
	}
	for _, c := range []struct {
		name    string
		task    Task
		headers map[string]string
		webhook Webhook
		signal  sig
		corrupt string // the column reported, "" for none
	}{
		{name: "empty", task: Task{Headers: "{}"}},
		{name: "values", task: Task{Headers: `{"X-A":"1"}`, OnComplete: s(`{"status":"failed","attempts":3,"lastError":"HTTP 500"}`),
			BufferedSignal: s(`{"status":"completed"}`)},
			headers: map[string]string{"X-A": "1"}, webhook: Webhook{"failed", 3, s("HTTP 500")}, signal: sig{"completed"}},
		{name: "corrupt headers", task: Task{ID: "t1", Headers: `{"X-A":`}, corrupt: "headers"},
		{name: "corrupt webhook", task: Task{ID: "t1", Headers: "{}", OnComplete: s(`[1]`)}, corrupt: "on_complete"},
		{name: "corrupt signal", task: Task{ID: "t1", Headers: "{}", BufferedSignal: s(`nope`)}, corrupt: "buffered_signal"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, herr := c.task.HeaderMap()
			w, werr := c.task.WebhookState()
			var got sig
			serr := c.task.DecodeJSON("buffered_signal", c.task.BufferedSignal, &got)
			var failed []string
			for _, err := range []error{herr, werr, serr} {
				var ce *CorruptError
				if errors.As(err, &ce) {
					if ce.TaskID != c.task.ID {
						t.Errorf("CorruptError names task %q, want %q", ce.TaskID, c.task.ID)
					}
					failed = append(failed, ce.Column)
				} else if err != nil {
					t.Errorf("unexpected error %v", err)
				}
			}
			if c.corrupt != "" {
				if !reflect.DeepEqual(failed, []string{c.corrupt}) {
					t.Fatalf("corrupt columns reported %v, want [%s]", failed, c.corrupt)
				}
				return
			}
			if len(failed) > 0 {
				t.Fatalf("corrupt columns reported %v, want none", failed)
			}
			if !reflect.DeepEqual(h, c.headers) || !reflect.DeepEqual(w, c.webhook) || got != c.signal {
				t.Fatalf("decoded %v, %+v, %+v; want %v, %+v, %+v", h, w, got, c.headers, c.webhook, c.signal)
			}
		})
	}
}
