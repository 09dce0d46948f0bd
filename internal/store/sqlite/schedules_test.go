package sqlite

import (
	"context"
	"strings"
	"testing"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// The loader reads schedules through the partial index on next_run_at, and a schedule's
// tasks are found through tasks_schedule_id_id_idx, not by scanning the team's tasks.
func TestSchedulePlans(t *testing.T) {
	s, _ := openTest(t, Options{})
	for _, c := range []struct {
		q    string
		args []any
		want string
	}{
		{qSchedulesDue, []any{0, 1}, "schedules_next_run_at_idx (next_run_at>? AND next_run_at<?)"},
		{qTasksOfSchedule, []any{"t", "sch_x"}, "tasks_schedule_id_id_idx (schedule_id=?)"},
	} {
		plan := strings.Join(queryPlan(t, s.rdb, c.q, c.args...), "\n")
		if !strings.Contains(plan, c.want) {
			t.Errorf("plan of %.60q… = %q, want it to use %s", c.q, plan, c.want)
		}
	}
}

// A schedule written and read back keeps its fields; its timer is listed while due in the
// window, and not once paused.
func TestScheduleRoundTrip(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := context.Background()
	var teamID string
	if err := s.Write(ctx, func(tx store.Tx) error {
		teamID = "team-1"
		if _, err := tx.(*Tx).exec(`insert into teams (id, name, webhook_secret, created_at) values (?, 'a', 's', 0)`, teamID); err != nil {
			return err
		}
		cron, next := "@daily", int64(5000)
		return tx.InsertSchedule(&store.Schedule{ID: "sch_1", TeamID: teamID, Cron: &cron, Timezone: "UTC",
			Task: `{"targetUrl":"https://example.com"}`, NextRunAt: &next, CreatedAt: 1, UpdatedAt: 1})
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Schedule(ctx, "sch_1")
	if err != nil || *got.Cron != "@daily" || got.Every != nil || *got.NextRunAt != 5000 || got.Task != `{"targetUrl":"https://example.com"}` {
		t.Fatalf("read back: %+v %v", got, err)
	}
	if ts, err := s.SchedulesDueBefore(ctx, 0, 6000); err != nil || len(ts) != 1 || ts[0].DueAt != 5000 {
		t.Fatalf("due: %v %v", ts, err)
	}
	if ts, _ := s.SchedulesDueBefore(ctx, 5001, 6000); len(ts) != 0 {
		t.Fatalf("due after the window's start: %v", ts)
	}
	if err := s.Write(ctx, func(tx store.Tx) error {
		sc, err := tx.Schedule("sch_1")
		if err != nil {
			return err
		}
		sc.Paused, sc.NextRunAt = true, nil
		return tx.UpdateSchedule(sc)
	}); err != nil {
		t.Fatal(err)
	}
	if ts, _ := s.SchedulesDueBefore(ctx, 0, 1<<60); len(ts) != 0 {
		t.Fatalf("a paused schedule is due: %v", ts)
	}
	list, total, err := s.Schedules(ctx, teamID, 10, 0)
	if err != nil || total != 1 || !list[0].Paused {
		t.Fatalf("list: %v %d %v", list, total, err)
	}
	if _, total, _ := s.Schedules(ctx, "other", 10, 0); total != 0 {
		t.Fatal("another team lists the schedule")
	}
}
