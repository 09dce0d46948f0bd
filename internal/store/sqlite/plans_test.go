package sqlite

import (
	"strings"
	"testing"
)

// TestTokenLookupPlans: the signal token and callback id lookups use their partial unique
// indexes, and start-up recovery reads only the processing tasks.
func TestTokenLookupPlans(t *testing.T) {
	s, _ := openTest(t, Options{})
	for q, want := range map[string]string{
		qTaskBySignal:      "tasks_signal_hash_idx",
		qTaskByCallback:    "tasks_callback_hash_idx",
		qRecoverProcessing: "tasks_team_id_status_id_idx (team_id=? AND status=?)",
		qTaskByID:          "sqlite_autoindex_tasks_1",
	} {
		plan := strings.Join(queryPlan(t, s.rdb, q, []byte("x")), "\n")
		if !strings.Contains(plan, want) {
			t.Errorf("plan of %.60q… = %q, want it to use %s", q, plan, want)
		}
	}
}
