package main

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// A task that succeeds after a failed attempt carries no error from that attempt, whether
// it completes or goes on waiting for its signal; the failed attempt keeps its answer.
func TestE2ESuccessAfterRetryClearsError(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	var n atomic.Int32
	tg := aqtNewTarget(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 1 { // every first call of a task fails
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"error":"upstream exploded"}`))
		}
	})
	plain := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/plain", "maxRetries": 2}), "id")
	done := s.waitStatus(plain, "completed", 20*time.Second)
	if done["error"] != nil || aqtNum(done, "retryCount") != 1 {
		t.Errorf("completed after a retry: error %v, retryCount %v", done["error"], done["retryCount"])
	}
	at := aqtAttempts(t, s, plain)
	if len(at) != 2 || aqtNum(at[0], "statusCode") != 500 || aqtStr(at[0], "responseBody") != `{"error":"upstream exploded"}` ||
		at[1]["responseBody"] != nil {
		t.Errorf("attempts: %v", at)
	}

	waits := aqtStr(aqtCreate(t, s, map[string]any{"targetUrl": tg.URL + "/wait", "maxRetries": 2,
		"waitForSignal": true, "maxWaitTime": 60}), "id")
	w := s.waitStatus(waits, "waiting", 20*time.Second)
	if w["error"] != nil {
		t.Errorf("waiting after a retry still shows error %v", w["error"])
	}
}
