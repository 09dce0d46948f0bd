package main

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// benchFigures runs `asyncqueue bench` with args and returns its report as name → value.
func benchFigures(t *testing.T, args ...string) map[string]string {
	t.Helper()
	out, err := exec.Command(binPath, append([]string{"bench"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("bench %v: %v\n%s", args, err, out)
	}
	figs := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if len(line) > 40 && !strings.HasPrefix(line, "bench:") {
			figs[strings.TrimSpace(line[:40])] = strings.TrimSpace(line[40:])
		}
	}
	t.Logf("bench %v:\n%s", args, out)
	return figs
}

func wantFigure(t *testing.T, figs map[string]string, name, want string) {
	t.Helper()
	got, ok := figs[name]
	switch {
	case !ok:
		t.Errorf("the report lacks %q", name)
	case want != "" && got != want:
		t.Errorf("%s = %q, want %q", name, got, want)
	case want == "" && (got == "" || got == "-"):
		t.Errorf("%s has no value", name)
	}
}

// TestE2EBenchSlow runs the slow-target scenario small: every task is called once and the
// figures are reported.
func TestE2EBenchSlow(t *testing.T) {
	storeIndependent(t, "bench runs its own server on SQLite")
	t.Parallel()
	figs := benchFigures(t, "--scenario", "slow", "--slow-tasks", "40", "--slow-delay", "200ms", "--concurrency", "8", "--wait", "30s")
	wantFigure(t, figs, "completed/s (end to end)", "")
	wantFigure(t, figs, "create→callback p50 / p99", "")
	wantFigure(t, figs, "lost", "0")
	wantFigure(t, figs, "create errors", "0")
	wantFigure(t, figs, "duplicate callbacks", "0")
	if n, _ := strconv.Atoi(figs["calls held by the target at once (max)"]); n < 2 {
		t.Errorf("the slow target held %q calls at once; want the calls to overlap", figs["calls held by the target at once (max)"])
	}
}

// TestE2EBenchHang runs the hanging-target scenario small: team A's calls reach the target
// that never answers, and every one of team B's tasks is called.
func TestE2EBenchHang(t *testing.T) {
	storeIndependent(t, "bench runs its own server on SQLite")
	t.Parallel()
	figs := benchFigures(t, "--scenario", "hang", "--hang-tasks", "10", "--hang-timeout", "1s", "--healthy-tasks", "10", "--concurrency", "4", "--wait", "30s")
	wantFigure(t, figs, "team B create→callback p50 / p99 / max", "")
	wantFigure(t, figs, "team B all called after", "")
	wantFigure(t, figs, "team B lost", "0")
	wantFigure(t, figs, "create errors", "0")
	wantFigure(t, figs, "duplicate callbacks", "0")
	if n, _ := strconv.Atoi(figs["team A calls held by the target (max)"]); n < 1 {
		t.Errorf("team A's calls never reached the hanging target (%q)", figs["team A calls held by the target (max)"])
	}
}
