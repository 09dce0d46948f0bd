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
	storeIndependent(t, "version")
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

func TestHoistFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"--db x keys list", "keys --db x list"},
		{"--db=x --log-level debug serve --addr :1", "serve --db=x --log-level debug --addr :1"},
		{"keys list --db x", "keys list --db x"},
		{"--help", "--help"},
		{"--db x", "--db x"},
		{"--db x --log-format json teams create b", "teams --db x create b"},
		{"--log-level=debug --db=x keys list", "keys --db=x list"},
	} {
		if got := strings.Join(hoistFlags(strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("hoistFlags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestE2ECLIFlagsWhereTheyApply: client commands list no --db or log flags; the
// database commands take --db after the command as well as before it.
func TestE2ECLIFlagsWhereTheyApply(t *testing.T) {
	storeIndependent(t, "--help of each command, and --db before or after it on a SQLite file")
	t.Parallel()
	for _, cmd := range [][]string{{"tasks", "list"}, {"tasks", "create"}, {"signal"}, {"tail"}, {"bench"}, {"keys", "list"}} {
		out, _, _ := aqtCLI(t, append(cmd, "--help")...)
		if strings.Contains(out, "--log-format") || strings.Contains(out, "--log-level") {
			t.Errorf("%v --help lists log flags:\n%s", cmd, out)
		}
		if cmd[0] != "keys" && strings.Contains(out, "--db") {
			t.Errorf("%v --help lists --db:\n%s", cmd, out)
		}
	}
	if out, _, _ := aqtCLI(t, "serve", "--help"); !strings.Contains(out, "--db") || !strings.Contains(out, "--log-format") {
		t.Errorf("serve --help lacks --db or --log-format:\n%s", out)
	}
	db := t.TempDir() + "/aq.db"
	aqtCLIOK(t, "teams", "create", "x", "--db", db)
	if out := aqtCLIOK(t, "--db", db, "teams", "list"); !strings.Contains(out, "x") {
		t.Errorf("teams list (--db first): %q", out)
	}
}
