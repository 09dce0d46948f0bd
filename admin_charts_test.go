package main

import (
	"strings"
	"testing"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

func TestBuildChart(t *testing.T) {
	t.Parallel()
	const now = 1000
	for _, c := range []struct {
		name         string
		per          map[int64]*store.MinuteStat
		max, created int
		bars         []bar // X, H and Class of each bar, in order
		label        string
	}{
		{name: "empty", per: nil, label: "0 created, 0 completed, 0 failed or timed out (0 timed out)"},
		{name: "one busy minute now", per: map[int64]*store.MinuteStat{now: {Created: 10, Completed: 5}},
			max: 10, created: 10,
			bars:  []bar{{X: 590.5, H: 100, Class: "bar-created"}, {X: 593.5, H: 50, Class: "bar-completed"}},
			label: "10 created, 5 completed"},
		{name: "the oldest slot, and older minutes left out", per: map[int64]*store.MinuteStat{
			now - 59: {Failed: 4, TimedOut: 4}, now - 60: {Created: 1000}},
			max: 4, bars: []bar{{X: 6.5, H: 100, Class: "bar-failed"}},
			label: "4 failed or timed out (4 timed out)"},
		{name: "a small count still shows", per: map[int64]*store.MinuteStat{
			now: {Created: 1000}, now - 1: {Created: 1}},
			max: 1000, created: 1001,
			bars: []bar{{X: 580.5, H: 1, Class: "bar-created"}, {X: 590.5, H: 100, Class: "bar-created"}}},
	} {
		ch := buildChart(c.per, now)
		if ch.Max != c.max || ch.Created != c.created || len(ch.Bars) != len(c.bars) {
			t.Errorf("%s: max %d created %d bars %+v", c.name, ch.Max, ch.Created, ch.Bars)
			continue
		}
		for i, b := range c.bars {
			got := ch.Bars[i]
			if got.X != b.X || got.H != b.H || got.Class != b.Class || got.Y != 104-b.H {
				t.Errorf("%s: bar %d = %+v, want x %v h %v %s", c.name, i, got, b.X, b.H, b.Class)
			}
		}
		if !strings.Contains(ch.Label, c.label) {
			t.Errorf("%s: label %q, want %q in it", c.name, ch.Label, c.label)
		}
		if ch.Width != 600 || len(ch.Ticks) != 5 || ch.Ticks[4].Label != "now" {
			t.Errorf("%s: width %d ticks %+v", c.name, ch.Width, ch.Ticks)
		}
	}
}
