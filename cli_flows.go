package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/asyncqueue/asyncqueue/client"
)

// FlowsCmd groups the flow commands.
type FlowsCmd struct {
	List   FlowsListCmd   `cmd:"" help:"List the team's flows: calls in flight, pending, limits, pauses, last error."`
	Set    FlowsSetCmd    `cmd:"" help:"Set a flow's parallelism and rate (also before it has tasks)."`
	Pause  FlowsPauseCmd  `cmd:"" help:"Pause a flow: no calls, its tasks stay pending."`
	Resume FlowsResumeCmd `cmd:"" help:"Resume a flow."`
}

// FlowsListCmd is `asyncqueue flows list`.
type FlowsListCmd struct{ ClientFlags }

// Run lists the flows.
func (c *FlowsListCmd) Run(ctx context.Context) error {
	raw, _, err := c.call(ctx, &client.Request{Method: http.MethodGet, Path: "/v1/flows"})
	if err != nil {
		return err
	}
	var out struct {
		Flows []client.Flow `json:"flows"`
	}
	if err := decode(raw, &out); err != nil {
		return err
	}
	return c.print(raw, func(w io.Writer) {
		fmt.Fprintln(w, "KEY\tIN FLIGHT\tPENDING\tPARALLELISM\tRATE/S\tPAUSED\tLAST ERROR")
		for _, f := range out.Flows {
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", f.Key, f.InFlight, f.Pending, f.Parallelism,
				showRate(f.RatePerSecond), showPause(&f), deref(f.LastError))
		}
	})
}

func showRate(r *float64) string {
	if r == nil {
		return "-"
	}
	return strconv.FormatFloat(*r, 'g', -1, 64)
}

func showPause(f *client.Flow) string {
	switch {
	case f.Paused:
		return "yes"
	case f.PausedUntil != nil:
		return "until " + showTime(f.PausedUntil)
	}
	return "no"
}

// FlowsSetCmd is `asyncqueue flows set`.
type FlowsSetCmd struct {
	ClientFlags
	Key           string   `arg:"" help:"Flow key: a target origin such as https://api.example.com:443, or a task's flowKey."`
	Parallelism   *int     `placeholder:"N" help:"Most calls in flight at once (omit for the server's default)."`
	RatePerSecond *float64 `name:"rate" placeholder:"R" help:"Most calls started per second (omit for no limit)."`
}

// Run stores the settings.
func (c *FlowsSetCmd) Run(ctx context.Context) error {
	body := client.FlowSettings{Parallelism: c.Parallelism, RatePerSecond: c.RatePerSecond}
	return c.flowAction(ctx, http.MethodPut, c.Key, "", body)
}

// FlowsPauseCmd is `asyncqueue flows pause`.
type FlowsPauseCmd struct {
	ClientFlags
	Key string `arg:"" help:"Flow key."`
}

// Run pauses the flow.
func (c *FlowsPauseCmd) Run(ctx context.Context) error {
	return c.flowAction(ctx, http.MethodPost, c.Key, "/pause", nil)
}

// FlowsResumeCmd is `asyncqueue flows resume`.
type FlowsResumeCmd struct {
	ClientFlags
	Key string `arg:"" help:"Flow key."`
}

// Run resumes the flow.
func (c *FlowsResumeCmd) Run(ctx context.Context) error {
	return c.flowAction(ctx, http.MethodPost, c.Key, "/resume", nil)
}

// flowAction sends a flow request and shows the flow it answers with.
func (f *ClientFlags) flowAction(ctx context.Context, method, key, suffix string, body any) error {
	raw, _, err := f.call(ctx, &client.Request{Method: method, Path: "/v1/flows/" + url.PathEscape(key) + suffix, Body: body})
	if err != nil {
		return err
	}
	var out struct {
		Flow client.Flow `json:"flow"`
	}
	if err := decode(raw, &out); err != nil {
		return err
	}
	return f.print(raw, func(w io.Writer) {
		fl := out.Flow
		fmt.Fprintf(w, "Flow:\t%s\nIn flight:\t%d\nPending:\t%d\nParallelism:\t%d\nRate/s:\t%s\nPaused:\t%s\n",
			fl.Key, fl.InFlight, fl.Pending, fl.Parallelism, showRate(fl.RatePerSecond), showPause(&fl))
	})
}
