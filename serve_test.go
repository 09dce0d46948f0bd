package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

// TestHTTPServerLimits: every timeout that guards against slow clients is set (Go's zero
// value is "wait forever"), and header size is capped.
func TestHTTPServerLimits(t *testing.T) {
	t.Parallel()
	s := newHTTPServer(http.NotFoundHandler(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for name, got := range map[string]time.Duration{
		"ReadHeaderTimeout": s.ReadHeaderTimeout, "ReadTimeout": s.ReadTimeout,
		"WriteTimeout": s.WriteTimeout, "IdleTimeout": s.IdleTimeout,
	} {
		if got <= 0 || got > 2*time.Minute {
			t.Errorf("%s = %v, want set and at most 2 minutes", name, got)
		}
	}
	if s.ReadHeaderTimeout > 10*time.Second {
		t.Errorf("ReadHeaderTimeout %v is too long against slowloris", s.ReadHeaderTimeout)
	}
	if s.WriteTimeout <= 25*time.Second {
		t.Errorf("WriteTimeout %v must exceed the 25 s long poll", s.WriteTimeout)
	}
	if s.MaxHeaderBytes <= 0 || s.MaxHeaderBytes > 1<<20 {
		t.Errorf("MaxHeaderBytes = %d", s.MaxHeaderBytes)
	}
}
