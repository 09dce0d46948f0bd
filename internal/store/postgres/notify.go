package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"

	"github.com/jackc/pgx/v5"
)

// channel is the LISTEN/NOTIFY channel the nodes share.
const channel = "asyncqueue"

// maxPayload keeps a notification under PostgreSQL's limit (8000 bytes) with room to spare.
const maxPayload = 7000

// changeBuffer is how many Changes wait for the reader before the backlog is dropped for
// one Change with Resync set; maxMerge bounds the task ids merged into one Change.
const (
	changeBuffer = 256
	maxMerge     = 4096
)

// payload is one notification: what a commit of node N changed (or part of it).
type payload struct {
	Node   string      `json:"n"`
	Tasks  []taskNote  `json:"t,omitempty"`
	Flows  [][2]string `json:"f,omitempty"` // team id, key
	Config bool        `json:"c,omitempty"`
	Resync bool        `json:"r,omitempty"` // something too large to name changed
}

// taskNote is a store.TaskChange on the wire: [id, status, due (or null)].
type taskNote [3]any

func noteOf(c store.TaskChange) taskNote {
	if c.DueAt == nil {
		return taskNote{c.ID, c.Status, nil}
	}
	return taskNote{c.ID, c.Status, *c.DueAt}
}

// change decodes a taskNote; false if it is not one.
func (n taskNote) change() (store.TaskChange, bool) {
	id, ok1 := n[0].(string)
	status, ok2 := n[1].(string)
	c := store.TaskChange{ID: id, Status: status}
	switch due := n[2].(type) {
	case nil:
	case float64:
		ms := int64(due)
		c.DueAt = &ms
	default:
		return c, false
	}
	return c, ok1 && ok2 && id != ""
}

// payloads splits what a batch changed into notifications under maxPayload bytes each. A
// task changed more than once is named once, as the batch left it.
func payloads(node string, b *batch) []string {
	if len(b.states) == 0 && len(b.flows) == 0 && !b.config {
		return nil
	}
	var out []string
	cur := payload{Node: node, Config: b.config}
	size := len(node) + 32
	flush := func() {
		data, _ := json.Marshal(cur)
		out = append(out, string(data))
		cur = payload{Node: node}
		size = len(node) + 32
	}
	last := make(map[string]int, len(b.states))
	for i, c := range b.states {
		last[c.ID] = i
	}
	for i, c := range b.states {
		if last[c.ID] != i {
			continue
		}
		n := len(c.ID) + len(c.Status) + 28
		if size+n > maxPayload && (len(cur.Tasks) > 0 || len(cur.Flows) > 0) {
			flush()
		}
		if size+n > maxPayload {
			cur.Resync = true
			continue
		}
		cur.Tasks = append(cur.Tasks, noteOf(c))
		size += n
	}
	for _, f := range b.flows {
		n := len(f.TeamID) + len(f.Key) + 8
		if size+n > maxPayload && (len(cur.Tasks) > 0 || len(cur.Flows) > 0) {
			flush()
		}
		if size+n > maxPayload {
			cur.Resync = true
			continue
		}
		cur.Flows = append(cur.Flows, [2]string{f.TeamID, f.Key})
		size += n
	}
	flush()
	return out
}

// notify tells the other nodes, inside the batch's transaction, what it changed: they hear
// of it exactly when it commits, and never of a rolled-back batch.
func (s *Store) notify(ctx context.Context, tx pgx.Tx, b *batch) error {
	for _, p := range payloads(s.opts.Node, b) {
		if _, err := tx.Exec(ctx, `select pg_notify($1, $2)`, channel, p); err != nil {
			return err
		}
	}
	return nil
}

// Changes delivers what the other nodes commit, until the store is closed.
func (s *Store) Changes() <-chan store.Change { return s.changes }

// listen holds a connection of its own LISTENing on the channel; a second goroutine
// merges and delivers what it hears. When the connection drops it reconnects with
// backoff, then sends a Change with Resync set (notifications meanwhile were lost). ready
// gets the outcome of the first LISTEN.
func (s *Store) listen(ctx context.Context, ready chan<- error) {
	defer s.bg.Done()
	heard := make(chan store.Change, changeBuffer)
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		s.deliver(heard)
	}()
	defer func() {
		close(heard)
		<-delivered
	}()
	backoff := 100 * time.Millisecond
	first := true
	for {
		conn, err := s.listenConn(ctx)
		if first {
			ready <- err
			if err != nil {
				return
			}
			first = false
		} else if err == nil {
			backoff = 100 * time.Millisecond
			heard <- store.Change{Resync: true}
		}
		if err == nil {
			err = s.receive(ctx, conn, heard)
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(cctx)
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("lost the connection listening for the other nodes' changes; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listenConn connects and LISTENs.
func (s *Store) listenConn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.cfg.ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "listen "+channel); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// receive passes on each notification of another node until the connection fails or ctx
// ends.
func (s *Store) receive(ctx context.Context, conn *pgx.Conn, heard chan<- store.Change) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var p payload
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
			s.log.Warn("a notification does not decode", "payload", n.Payload, "err", err)
			heard <- store.Change{Resync: true}
			continue
		}
		if p.Node == s.opts.Node {
			continue
		}
		c := store.Change{Config: p.Config, Resync: p.Resync}
		for _, n := range p.Tasks {
			tc, ok := n.change()
			if !ok {
				c.Resync = true
				continue
			}
			c.Tasks = append(c.Tasks, tc)
		}
		for _, f := range p.Flows {
			c.Flows = append(c.Flows, store.FlowKey{TeamID: f[0], Key: f[1]})
		}
		heard <- c
	}
}

// deliver passes the heard changes on to Changes, merging those that arrive while the
// reader is busy; when the merged backlog grows too large it is dropped for one Change with
// Resync set. It closes Changes when heard is closed.
func (s *Store) deliver(heard <-chan store.Change) {
	defer close(s.changes)
	var pending *store.Change
	for {
		var out chan store.Change
		var next store.Change
		if pending != nil {
			out, next = s.changes, *pending
		}
		select {
		case c, ok := <-heard:
			if !ok {
				return
			}
			switch {
			case pending == nil:
				pending = &c
			case pending.Resync:
				// A resync covers everything.
			case c.Resync:
				pending = &store.Change{Resync: true}
			default:
				pending.Tasks = append(pending.Tasks, c.Tasks...)
				pending.Flows = append(pending.Flows, c.Flows...)
				pending.Config = pending.Config || c.Config
			}
			if !pending.Resync && len(pending.Tasks) > maxMerge && len(s.changes) == cap(s.changes) {
				// The reader is far behind: drop the backlog, and tell it to reload.
				for len(s.changes) > 0 {
					select {
					case <-s.changes:
					default:
					}
				}
				pending = &store.Change{Resync: true}
			}
		case out <- next:
			pending = nil
		}
	}
}
