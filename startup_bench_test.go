package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// fillWaiting writes n waiting tasks whose expiry is spread evenly over spread from now.
func fillWaiting(b *testing.B, db string, n int, spread time.Duration) {
	st, err := openStore(db, "normal", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	var teamID string
	if err := st.Write(ctx, func(tx store.Tx) error {
		team, err := createTeam(tx, "default")
		teamID = team.ID
		return err
	}); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < n; {
		err := st.Write(ctx, func(tx store.Tx) error {
			for j := 0; j < 1000 && i < n; j, i = j+1, i+1 {
				id, _ := uuid.NewV7()
				ms := now.UnixMilli()
				exp := now.Add(time.Duration(i+1) * spread / time.Duration(n)).UnixMilli()
				t := &store.Task{ID: id.String(), TeamID: teamID, Status: store.StatusWaiting,
					TargetURL: "https://example.com/start", TargetHost: "example.com", Method: "POST", Headers: "{}",
					TimeoutMS: 30000, MaxRetries: 3, RetryBackoff: "exponential", Priority: 5,
					WaitForSignal: true, MaxWaitMS: exp - ms, CreatedAt: ms, StartedAt: &ms,
					WaitingSince: &ms, ExpiresAt: &exp, DueAt: &exp}
				h := fmt.Appendf(nil, "%032d", i)
				t.SignalHash = h
				if err := tx.InsertTask(t); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStartup measures process start to /readyz with 100,000 waiting tasks in the
// database: spread over an hour (the usual case: only the next minute is loaded) and all
// expiring within the timer horizon (the worst case: every one is loaded into the heap).
func BenchmarkStartup(b *testing.B) {
	for _, c := range []struct {
		name   string
		spread time.Duration
	}{{"100k-waiting-over-1h", time.Hour}, {"100k-waiting-within-50s", 50 * time.Second}} {
		b.Run(c.name, func(b *testing.B) {
			db := filepath.Join(b.TempDir(), "aq.db")
			fillWaiting(b, db, 100_000, c.spread)
			b.ResetTimer()
			for range b.N {
				addr := freePort(b)
				cmd := exec.Command(binPath, "serve", "--db", db, "--addr", addr, "--log-format", "json")
				cmd.Stderr = os.Stderr
				start := time.Now()
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				for {
					res, err := http.Get("http://" + addr + "/readyz")
					if err == nil {
						res.Body.Close()
						if res.StatusCode == 200 {
							break
						}
					}
					if time.Since(start) > 30*time.Second {
						b.Fatal("not ready after 30 s")
					}
					time.Sleep(time.Millisecond)
				}
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms-to-ready")
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
	}
}
