package main

// Which database --db names, and opening it: an SQLite file (the default), or PostgreSQL
// for several nodes (SPEC §12).

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/asyncqueue/asyncqueue/internal/store"
	"github.com/asyncqueue/asyncqueue/internal/store/postgres"
	"github.com/asyncqueue/asyncqueue/internal/store/sqlite"
)

// isPostgres reports whether --db is a PostgreSQL URL rather than an SQLite file.
func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// dbLocation is --db as the commands use it: a PostgreSQL URL as given, a file path with
// ~ expanded and made absolute.
func dbLocation(db string) string {
	if isPostgres(db) {
		return db
	}
	return kong.ExpandPath(db)
}

// redactURL is a PostgreSQL URL fit for logs and messages: without its password.
func redactURL(db string) string {
	u, err := url.Parse(db)
	if err != nil {
		return "postgres://…"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// dbName is --db as logs and messages show it.
func dbName(db string) string {
	if isPostgres(db) {
		return redactURL(db)
	}
	return db
}

// defaultNodeID names a node when --node-id is not given: host name and port, unique as
// long as each host runs one node per port.
func defaultNodeID(addr string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return host + ":" + addr[i+1:]
	}
	return host
}

// pgOptions are what a server or command gives openPostgres.
type pgOptions struct {
	URL      string
	Node     string
	OnCommit func([]string)
	OnBatch  func(int, time.Duration, error)
	MaxConns int
	Log      *slog.Logger
	Command  bool // a one-off command, not a node (internal/store/postgres.Options.Command)
}

// openPostgres opens a PostgreSQL store (internal/store/postgres), creating or migrating
// its schema.
func openPostgres(ctx context.Context, o pgOptions) (store.Shared, error) {
	st, err := postgres.Open(ctx, postgres.Options{URL: o.URL, Schema: schemaPostgresSQL, Node: o.Node,
		OnCommit: o.OnCommit, OnBatch: o.OnBatch, MaxConns: o.MaxConns, Logger: o.Log, Command: o.Command})
	if err != nil {
		return nil, err // not a nil *postgres.Store in a non-nil interface
	}
	return st, nil
}

// openStore opens the database of a command other than serve (keys, teams, backup).
func openStore(db string, sync string, onCommit func([]string)) (store.Store, error) {
	if isPostgres(db) {
		st, err := openPostgres(context.Background(), pgOptions{URL: db, Node: "cli-" + defaultNodeID(""), OnCommit: onCommit, MaxConns: 4, Command: true})
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", redactURL(db), err)
		}
		return st, nil
	}
	st, err := sqlite.Open(db, sqlite.Options{Schema: schemaSQL, Sync: sync, OnCommit: onCommit})
	if err != nil {
		return nil, err // not a nil *sqlite.Store in a non-nil interface
	}
	return st, nil
}

// keyCheckName is the shared setting that holds keyCheck of the nodes' vault key.
const keyCheckName = "vault_key_check"

// keyCheck identifies a vault key without revealing it: an HMAC of a fixed text under it.
func keyCheck(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("asyncqueue vault key check"))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// agreeOnKey makes sure this node's vault key is the one the first node stored: another
// key would seal tokens and make callback ids that the other nodes cannot read.
func agreeOnKey(ctx context.Context, st store.Shared, key []byte) error {
	mine := keyCheck(key)
	stored, err := st.Agree(ctx, keyCheckName, mine)
	if err != nil {
		return err
	}
	if stored != mine {
		return errors.New("--vault-key is not the key the other nodes of this database use " +
			"(its check differs from the one the first node stored); start every node with the same --vault-key")
	}
	return nil
}
