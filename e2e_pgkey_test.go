package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/pgtest"
)

// A node started with another vault key than the first node's refuses to start: the tokens
// it sealed and the callback ids it made could not be read by the others.
func TestE2EPGVaultKeyMismatch(t *testing.T) {
	storeIndependent(t, "its servers are on PostgreSQL in both runs")
	t.Parallel()
	db := pgtest.Database(t)
	const keyA = "1111111111111111111111111111111111111111111111111111111111111111"
	const keyB = "2222222222222222222222222222222222222222222222222222222222222222"
	startServer(t, db, "--vault-key", keyA, "--node-id", "a") // up (readyz): its key's check is stored

	cmd := exec.Command(binPath, "serve", "--db", db, "--vault-key", keyB, "--node-id", "b",
		"--addr", freePort(t), "--log-format", "json")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("a node with another vault key did not refuse to start")
	}
	if err == nil || !strings.Contains(string(out), "--vault-key is not the key the other nodes") {
		t.Fatalf("a node with another vault key: %v\n%s", err, out)
	}

	// The same key is welcome (launch waits for /readyz; no bootstrap key this time).
	second := &server{t: t, db: db, args: []string{"--vault-key", keyA, "--node-id", "c"}}
	second.launch(false)
	t.Cleanup(second.kill)
}
