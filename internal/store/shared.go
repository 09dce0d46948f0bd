package store

import (
	"context"
	"time"
)

// LeaseSlack is how much longer than a call's timeout its claim lasts on a shared store: a
// processing task whose lease (due_at) has passed was left by a node that died, and
// another node runs it again.
const LeaseSlack = 30 * time.Second

// Shared is a Store that several nodes use at once (PostgreSQL, SPEC §12). Each node is a
// full server; the database decides every race (row locks, compare-and-set updates,
// SKIP LOCKED), and what one node commits reaches the others as Changes.
//
// On a shared store:
//   - a claim (Tx.ClaimTasks, or a task written as processing) records the node in
//     claimed_by, and its due_at is the lease's end: now + timeout + LeaseSlack;
//   - Tx.RecoverProcessing returns to pending only the tasks claimed by this node (a node
//     restarted with the same id takes back its own calls at once; those of a node gone
//     for good come back when their lease ends);
//   - reads through a Tx lock the row (select … for update).
type Shared interface {
	Store
	// Node is this node's id, as recorded in claimed_by.
	Node() string
	// Changes delivers what the other nodes commit, in commit order, until the store is
	// closed (then the channel is closed). A slow reader loses nothing: when the backlog
	// overflows, the backend drops it and sends one Change with Resync set.
	Changes() <-chan Change
	// Nodes lists the live nodes (this one included), sorted by id: those whose heartbeat
	// is younger than the backend's liveness window.
	Nodes(ctx context.Context) ([]string, error)
	// Agree stores value under name unless a value is stored there already, and returns
	// the stored one: what the first node to start set, for the others to check.
	Agree(ctx context.Context, name, value string) (stored string, err error)
}

// Change is what one commit (or several, merged) of another node changed.
type Change struct {
	// Tasks are the tasks the commit wrote (inserted, updated or deleted) as it left them,
	// and the schedules it wrote (their ids start with "sch_", which no task id does).
	Tasks []TaskChange
	// Flows are the flows whose stored settings or pause changed.
	Flows []FlowKey
	// Config is set when teams, API keys, webhook secrets or vault tokens changed: cached
	// copies of them must be dropped.
	Config bool
	// Resync is set when changes may have been lost (the listening connection dropped, or
	// the backlog overflowed): reload every timer and flow, and drop every cache.
	Resync bool
}

// TaskChange is a task as a commit left it, as much as another node needs to place its
// timer without reading it back.
type TaskChange struct {
	ID     string
	Status string // "" for a deleted task, and for a schedule
	DueAt  *int64 // the task's timer (a schedule's next run); nil: none
}

// FlowKey names a flow: a team's flow key.
type FlowKey struct{ TeamID, Key string }
