package main

// Several nodes on one shared store (SPEC §12): what this node does with the other nodes'
// writes, and how it learns how many nodes share the flows' limits.

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// membershipEvery is how often a node reads the list of live nodes.
const membershipEvery = 2 * time.Second

// followChanges applies the other nodes' commits as they arrive, until the store closes or
// ctx ends: their tasks' and schedules' timers (as a standby, scheduler.foreign) and long
// polls, their flows' settings, and the caches of teams and keys. A change says how the
// commit left each task, so nothing is read back.
func (d *dispatcher) followChanges(ctx context.Context) {
	a := d.a
	for {
		var ch store.Change
		var ok bool
		select {
		case <-ctx.Done():
			return
		case ch, ok = <-a.shared.Changes():
			if !ok {
				return
			}
		}
		if err := d.applyChange(ctx, ch); err != nil && ctx.Err() == nil {
			// The next change or resync repairs what this one missed; the leases and the
			// loader's reads cover a timer lost meanwhile.
			a.log.Error("apply another node's changes", "err", err, "tasks", len(ch.Tasks))
		}
	}
}

func (d *dispatcher) applyChange(ctx context.Context, ch store.Change) error {
	a := d.a
	if ch.Resync || ch.Config {
		a.forgetKeys()
		a.forgetTeams()
	}
	if ch.Resync {
		a.log.Warn("changes from other nodes may have been lost; reloading flows and timers")
		if err := a.loadFlows(ctx); err != nil {
			return err
		}
		return d.reloadTimers(ctx)
	}
	if len(ch.Flows) > 0 {
		// Only those: the others keep their state (a rate's bucket, above all).
		if err := a.loadFlows(ctx, ch.Flows...); err != nil {
			return err
		}
	}
	ids := make([]string, 0, len(ch.Tasks))
	for _, tc := range ch.Tasks {
		a.sched.foreign(tc)
		if !strings.HasPrefix(tc.ID, scheduleIDPrefix) {
			ids = append(ids, tc.ID)
		}
	}
	a.hub.notify(ids) // long polls and live pages on this node
	return nil
}

// membershipLoop keeps the scheduler's share of every flow's limits in step with the live
// nodes (scheduler.setNodes).
func (d *dispatcher) membershipLoop(ctx context.Context) {
	a := d.a
	tick := time.NewTicker(membershipEvery)
	defer tick.Stop()
	for {
		if err := d.readMembership(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("read the live nodes", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (d *dispatcher) readMembership(ctx context.Context) error {
	a := d.a
	ids, err := a.shared.Nodes(ctx)
	if err != nil {
		return err
	}
	rank := slices.Index(ids, a.shared.Node())
	if rank < 0 { // not seen yet (its first heartbeat is on its way): count it in
		ids = append(ids, a.shared.Node())
		slices.Sort(ids)
		rank = slices.Index(ids, a.shared.Node())
	}
	a.sched.setNodes(rank, len(ids))
	a.metrics.nodes.Set(float64(len(ids)))
	return nil
}
