// Package pgtest gives tests a PostgreSQL database of their own.
//
// The server is named by ASYNCQUEUE_TEST_POSTGRES, a URL whose user may create databases
// (.ci/run starts a throwaway cluster and sets it). Without it the tests that need
// PostgreSQL are skipped, unless CI is set: there, a missing server is a failure.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names the variable holding the server's URL.
const Env = "ASYNCQUEUE_TEST_POSTGRES"

// ServerURL returns the server's URL, or skips t (fails it under CI) when none is set.
func ServerURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(Env)
	if u == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: .ci/run starts PostgreSQL and sets it", Env)
		}
		t.Skipf("%s is not set: no PostgreSQL to test against", Env)
	}
	return u
}

// Database creates an empty database for t, dropped when t ends, and returns its URL.
func Database(t testing.TB) string {
	t.Helper()
	admin := ServerURL(t)
	var b [6]byte
	rand.Read(b[:])
	name := "aqtest_" + hex.EncodeToString(b[:])
	exec(t, admin, "create database "+name)
	t.Cleanup(func() { exec(t, admin, "drop database if exists "+name+" with (force)") })
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	u.Path = "/" + name
	return u.String()
}

func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to PostgreSQL (%s): %v", Env, err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
