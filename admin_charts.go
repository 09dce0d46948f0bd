package main

// The overview's per-minute chart: pure arithmetic here, drawn as SVG by the template.

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/asyncqueue/asyncqueue/internal/store"
)

// chart is the per-minute bar chart of the last hour, drawn as SVG by the template.
type chart struct {
	Width, Height int
	Bars          []bar
	Ticks         []tick
	Max           int
	Created       int
	Completed     int
	Failed        int // failed or timed out
	TimedOut      int
	Label         string
}

type bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type tick struct {
	X     float64
	Label string
}

func buildChart(per map[int64]*store.MinuteStat, nowMin int64) chart {
	const slots, slotW, plotH, top = 60, 10.0, 100.0, 4.0
	c := chart{Width: slots * slotW, Height: int(plotH + top + 30)}
	for m := nowMin - slots + 1; m <= nowMin; m++ {
		if st := per[m]; st != nil {
			c.Max = max(c.Max, st.Created, st.Completed, st.Failed)
			c.Created += st.Created
			c.Completed += st.Completed
			c.Failed += st.Failed
			c.TimedOut += st.TimedOut
		}
	}
	scale := 1.0
	if c.Max > 0 {
		scale = plotH / float64(c.Max)
	}
	for i := range slots {
		m := nowMin - slots + 1 + int64(i)
		st := per[m]
		if st == nil {
			continue
		}
		at := time.Unix(m*60, 0).UTC().Format("15:04")
		for j, v := range []struct {
			n     int
			class string
		}{{st.Created, "created"}, {st.Completed, "completed"}, {st.Failed, "failed or timed out"}} {
			if v.n == 0 {
				continue
			}
			h := math.Max(float64(v.n)*scale, 1)
			c.Bars = append(c.Bars, bar{X: float64(i)*slotW + 0.5 + float64(j)*3, Y: round2(top + plotH - h), W: 3, H: round2(h),
				Class: "bar-" + strings.Fields(v.class)[0], Title: fmt.Sprintf("%s UTC: %d %s", at, v.n, v.class)})
		}
	}
	for _, back := range []int{60, 45, 30, 15} {
		c.Ticks = append(c.Ticks, tick{X: float64(slots-back) * slotW, Label: fmt.Sprintf("−%d min", back)})
	}
	c.Ticks = append(c.Ticks, tick{X: slots*slotW - 1, Label: "now"})
	c.Label = fmt.Sprintf("Tasks per minute over the last hour: %d created, %d completed, %d failed or timed out (%d timed out)",
		c.Created, c.Completed, c.Failed, c.TimedOut)
	return c
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }
