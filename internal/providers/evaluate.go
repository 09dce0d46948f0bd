package providers

import (
	"fmt"
	"net/http"
	"slices"
)

// State is what one poll response says about the job.
type State int

// The states Evaluate reports.
const (
	Running State = iota // poll again after Interval
	Done                 // fetch the result
	Failed               // fail the task with Outcome.Error
)

func (s State) String() string {
	switch s {
	case Running:
		return "running"
	case Done:
		return "done"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Outcome is Evaluate's reading of one poll response.
type Outcome struct {
	State  State
	Status string // the value at StatusPath as text; "" when missing or null
	Error  any    // when Failed: the ErrorPath value, or the whole body
}

// Evaluate classifies a 2xx poll response (httpStatus and its parsed JSON
// body) by the rules in the package documentation: 202 or a missing or null
// status is Running; a FailValues match is Failed; a DoneValues match is Done,
// unless FailValues is empty and ErrorPath holds an error, which is Failed;
// anything else is Running. Non-2xx responses are the caller's to handle.
func (p PollConfig) Evaluate(httpStatus int, body any) Outcome {
	if httpStatus == http.StatusAccepted {
		return Outcome{State: Running}
	}
	raw, ok := Lookup(body, p.StatusPath)
	if !ok || raw == nil {
		return Outcome{State: Running}
	}
	status, err := scalarText(raw)
	if err != nil {
		// An object or array can match no status value.
		return Outcome{State: Running}
	}
	switch {
	case slices.Contains(p.FailValues, status):
		return Outcome{State: Failed, Status: status, Error: p.errorValue(body)}
	case slices.Contains(p.DoneValues, status):
		if len(p.FailValues) == 0 && p.ErrorPath != "" {
			if e, ok := Lookup(body, p.ErrorPath); ok && isError(e) {
				return Outcome{State: Failed, Status: status, Error: e}
			}
		}
		return Outcome{State: Done, Status: status}
	}
	return Outcome{State: Running, Status: status}
}

func (p PollConfig) errorValue(body any) any {
	if p.ErrorPath != "" {
		if e, ok := Lookup(body, p.ErrorPath); ok && e != nil {
			return e
		}
	}
	return body
}

// isError reports whether an ErrorPath value says something went wrong:
// anything but null, false, "" and empty objects or arrays.
func isError(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case map[string]any:
		return len(x) > 0
	case []any:
		return len(x) > 0
	}
	return true
}

// Result applies ResultPath to a parsed response body (the final poll
// response, or the resultUrlTemplate response): "" is the whole body; a
// missing path is an error naming it. A field that is present and null is a
// null result, not an error.
func (p PollConfig) Result(body any) (any, error) {
	v, missing, ok := walk(body, p.ResultPath)
	if !ok {
		return nil, fmt.Errorf("resultPath %s: no field %q in the response body", p.ResultPath, missing)
	}
	return v, nil
}
