package main

// Completion webhooks: their delivery and the write of its outcome.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/outbound"
	"github.com/asyncqueue/asyncqueue/internal/signing"
	"github.com/asyncqueue/asyncqueue/internal/store"
)

// deliverWebhook POSTs the task's terminal event to onCompleteUrl and records the outcome.
func (d *dispatcher) deliverWebhook(t *store.Task, completedAt *int64) {
	a := d.a
	event := "task." + t.Status
	payload, _ := json.Marshal(map[string]any{"event": event, "task": a.taskJSON(t)})
	team, err := a.team(d.runCtx, t.TeamID)
	if err != nil {
		a.log.Error("webhook: load team", "task", t.ID, "err", err)
		return
	}
	var res *outbound.Response
	req, err := http.NewRequestWithContext(d.callCtx, http.MethodPost, *t.OnCompleteURL, bytes.NewReader(payload))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-AsyncQueue-Task-Id", t.ID)
		req.Header.Set("X-AsyncQueue-Event", event)
		id := fmt.Sprintf("%s:%s:%d", t.ID, event, valueOr(completedAt))
		signing.Headers(req.Header, team.Secrets(store.NowMS()), id, time.Now(), payload)
		res, err = a.out.Do(req, WebhookTimeout)
	}
	if err != nil && d.callCtx.Err() != nil {
		return // shutting down: the lease makes the timer fire again after restart
	}
	errMsg, permanent := judgeWebhook(res, err)
	outcome := "" // for the metric, counted once the write is durable
	werr := a.store.Write(context.Background(), func(tx store.Tx) error {
		outcome = ""
		cur, err := tx.Task(t.ID)
		if err != nil {
			return err
		}
		var damaged error
		if outcome, damaged = afterWebhook(cur, completedAt, errMsg, permanent, time.Now()); outcome == "" {
			return nil // retried since: this event is moot
		}
		if damaged != nil {
			a.log.Error("webhook delivery state; starting it again", "err", damaged)
		}
		if err := tx.UpdateTask(cur, cur.Status); err != nil {
			return err
		}
		tx.AfterCommit(func() { a.scheduled(cur) })
		return nil
	})
	if werr != nil {
		a.log.Error("webhook: record outcome", "task", t.ID, "err", werr)
		return
	}
	if outcome != "" {
		a.metrics.webhooks.WithLabelValues(outcome).Inc()
	}
	if errMsg != "" {
		a.log.Warn("webhook delivery failed", "task", t.ID, "event", event, "err", errMsg)
	} else {
		a.log.Debug("webhook delivered", "task", t.ID, "event", event)
	}
}
