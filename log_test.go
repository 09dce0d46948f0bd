package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLogDurationsInMilliseconds: JSON logs give durations in milliseconds under a key that
// says so, not as bare nanoseconds.
func TestLogDurationsInMilliseconds(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	newLogger(&b, "json", "info").Info("ready", "startup", 3*time.Millisecond+200*time.Microsecond, "timeout", 30*time.Second)
	out := b.String()
	if !strings.Contains(out, `"startup_ms":3.2`) || !strings.Contains(out, `"timeout_ms":30000`) || strings.Contains(out, "3200000") {
		t.Errorf("log line %s, want startup_ms 3.2 and timeout_ms 30000", out)
	}
}

// TestE2EVersionSaysWhatItIs: `version` prints a commit, or how to stamp one; never a bare
// "(devel)".
func TestE2EVersionSaysWhatItIs(t *testing.T) {
	t.Parallel()
	out, _, code := aqtCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "asyncqueue ") {
		t.Fatalf("version: exit %d, %q", code, out)
	}
	if strings.TrimSpace(out) == "asyncqueue (devel)" {
		t.Errorf("version printed only %q", out)
	}
	if !regexp.MustCompile(`[0-9a-f]{7,40}|not stamped`).MatchString(out) {
		t.Errorf("version %q names no commit and says nothing of stamping", out)
	}
}
