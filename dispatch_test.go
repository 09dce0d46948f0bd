package main

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

// goroutineID is the number runtime.Stack prints for the calling goroutine.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := bytes.Fields(buf)
	if len(f) < 2 {
		return ""
	}
	return string(f[1])
}

// A goroutine that finished its work takes the next instead of a fresh one starting (and
// growing its stack again); once the dispatcher stops, idle ones end.
func TestSpawnReusesIdleGoroutines(t *testing.T) {
	d := (&App{}).newDispatcher()
	ids := make(chan string, 1)
	run := func() string {
		t.Helper()
		if !d.spawn(func() { ids <- goroutineID() }) {
			t.Fatal("spawn refused before the dispatcher stopped")
		}
		select {
		case id := <-ids:
			return id
		case <-time.After(10 * time.Second):
			t.Fatal("spawned work did not run")
			return ""
		}
	}
	first := run()
	reused := false
	for range 200 { // the first goroutine goes back to waiting a moment after f returns
		time.Sleep(time.Millisecond)
		if run() == first {
			reused = true
			break
		}
	}
	if !reused {
		t.Fatalf("no later spawn ran on goroutine %s, the one that ran the first and went idle", first)
	}
	d.workers.Wait()
	d.stopRun()
	deadline := time.Now().Add(workerIdle / 2) // sooner than it would end anyway
	for {
		buf := make([]byte, 1<<20)
		if !bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("(*dispatcher).work(")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an idle goroutine is still waiting for work %v after the dispatcher stopped", workerIdle/2)
		}
		time.Sleep(time.Millisecond)
	}
}
