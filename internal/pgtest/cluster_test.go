package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestCluster: a private cluster keeps committed rows across a clean restart and a crash, and
// refuses connections while stopped.
func TestCluster(t *testing.T) {
	c := NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// q runs the statements, then counts the rows of t.
	q := func(sqls ...string) (int, error) {
		conn, err := pgx.Connect(ctx, c.URL)
		if err != nil {
			return 0, err
		}
		defer conn.Close(ctx)
		for _, s := range sqls {
			if _, err := conn.Exec(ctx, s); err != nil {
				return 0, err
			}
		}
		var n int
		err = conn.QueryRow(ctx, "select count(*)::int from t").Scan(&n)
		return n, err
	}
	if _, err := q("create table t (x int)", "insert into t values (1)"); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name string
		do   func()
	}{{"restart", c.Restart}, {"kill and start", func() { c.Kill(); c.Start() }}} {
		step.do()
		if n, err := q("insert into t values (1)"); err != nil {
			t.Fatalf("after %s: %v", step.name, err)
		} else if want := map[string]int{"restart": 2, "kill and start": 3}[step.name]; n != want {
			t.Fatalf("after %s: %d rows, want %d", step.name, n, want)
		}
	}
	c.Freeze()
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	if _, err := pgx.Connect(short, c.URL); err == nil {
		t.Error("a frozen cluster accepted a session")
	}
	cancelShort()
	c.Thaw()
	if n, err := q(); err != nil || n != 3 {
		t.Fatalf("after a freeze: %d rows, %v", n, err)
	}
	c.Stop()
	if _, err := q(); err == nil {
		t.Fatal("a stopped cluster accepted a session")
	}
	c.Start()
	if n, err := q(); err != nil || n != 3 {
		t.Fatalf("after stop and start: %d rows, %v", n, err)
	}
}
