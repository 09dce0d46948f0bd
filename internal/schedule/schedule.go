// Package schedule computes the run times of a recurring schedule: a cron expression in a
// time zone, or a fixed interval. Cron expressions are parsed by robfig/cron; this package
// adds the interval form, catch-up after downtime, and the daylight-saving rules below.
//
// Daylight saving, for expressions with fixed hours (the hour field is not "*"), follows
// Vixie cron: a wall-clock time that does not exist on the day clocks go forward runs once,
// at the moment of the jump; a wall-clock time that occurs twice on the day clocks go back
// runs once, at its first occurrence. Expressions with "*" in the hour field run on real
// time: "0 * * * *" runs every real hour, so it has no 02:00 run on the day 02:00 does not
// exist and two on the day it occurs twice.
package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// MinEvery is the shortest interval an "every" schedule may have.
const MinEvery = time.Second

// FieldError is a problem with one field of a schedule definition.
type FieldError struct {
	Field   string // cron, every, timezone
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Spec is a parsed schedule. It is immutable and safe for concurrent use.
type Spec struct {
	cron  *cron.SpecSchedule // nil for an interval
	every time.Duration
	loc   *time.Location
	fixed bool // the hour field is not "*": the daylight-saving rules apply
}

// The standard five fields plus descriptors such as @hourly and @daily.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// starBit marks a cron field written as "*" (robfig/cron's representation).
const starBit = 1 << 63

// Parse checks a schedule definition: exactly one of cronExpr and every, and a time zone
// (IANA name; empty means UTC). Errors are *FieldError.
func Parse(cronExpr, every, timezone string) (*Spec, error) {
	cronExpr, every = strings.TrimSpace(cronExpr), strings.TrimSpace(every)
	switch {
	case cronExpr != "" && every != "":
		return nil, fieldErr("cron", "give cron or every, not both")
	case cronExpr == "" && every == "":
		return nil, fieldErr("cron", "give cron (such as \"*/5 * * * *\" or \"@daily\") or every (such as \"30s\")")
	}
	loc := time.UTC
	if tz := strings.TrimSpace(timezone); tz != "" {
		if strings.EqualFold(tz, "local") {
			return nil, fieldErr("timezone", "give an IANA time zone such as Europe/Berlin, not Local")
		}
		l, err := time.LoadLocation(tz)
		if err != nil {
			return nil, fieldErr("timezone", "unknown time zone %q (give an IANA name such as Europe/Berlin or UTC)", tz)
		}
		loc = l
	}
	if every != "" {
		d, err := time.ParseDuration(every)
		if err != nil {
			return nil, fieldErr("every", "%q is not a duration such as 30s, 5m or 1h30m", every)
		}
		if d < MinEvery {
			return nil, fieldErr("every", "must be at least %s, not %s", MinEvery, every)
		}
		return &Spec{every: d, loc: loc}, nil
	}
	upper := strings.ToUpper(cronExpr)
	if strings.HasPrefix(upper, "TZ=") || strings.HasPrefix(upper, "CRON_TZ=") {
		return nil, fieldErr("cron", "give the time zone in the timezone field, not in the expression")
	}
	if strings.HasPrefix(upper, "@EVERY") {
		return nil, fieldErr("cron", "use the every field for intervals, not @every")
	}
	s, err := parser.Parse(cronExpr)
	if err != nil {
		return nil, fieldErr("cron", "%q is not a cron expression (five fields, minute hour day-of-month month day-of-week, or @hourly, @daily, @weekly, @monthly, @yearly): %v", cronExpr, err)
	}
	ss, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fieldErr("cron", "%q is not a cron expression", cronExpr)
	}
	c := *ss
	c.Location = loc
	if c.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fieldErr("cron", "%q never matches a date", cronExpr)
	}
	return &Spec{cron: &c, loc: loc, fixed: c.Hour&starBit == 0}, nil
}

// Every is the interval of an interval schedule, 0 for a cron schedule.
func (s *Spec) Every() time.Duration { return s.every }

// Location is the schedule's time zone.
func (s *Spec) Location() *time.Location { return s.loc }

// Next is the first run time strictly after t. For an interval schedule it is t + every.
func (s *Spec) Next(t time.Time) time.Time {
	if s.cron == nil {
		return t.Add(s.every)
	}
	for {
		n := s.cron.Next(t)
		if n.IsZero() || !s.fixed {
			return n
		}
		if g, ok := s.gapRun(t, n); ok {
			return g
		}
		if s.repeated(n) {
			t = n
			continue
		}
		return n
	}
}

// After is the next run once the run due at prev has been made at now: the first run
// time after prev that is also after now. Runs missed meanwhile (downtime, a paused
// process) are not made up one by one: the run at prev was their one catch-up. An
// interval schedule keeps its phase (prev + k·every).
func (s *Spec) After(prev, now time.Time) time.Time {
	if s.cron == nil {
		n := prev.Add(s.every)
		if !n.After(now) {
			k := now.Sub(prev) / s.every
			n = prev.Add((k + 1) * s.every)
		}
		return n
	}
	if now.After(prev) {
		prev = now
	}
	return s.Next(prev)
}

// Missed reports whether runs fell due between the run due at prev and now, which the run
// at prev stands in for (it is a catch-up run).
func (s *Spec) Missed(prev, now time.Time) bool {
	n := s.Next(prev)
	return !n.IsZero() && !n.After(now)
}

// Upcoming lists the next n run times after t.
func (s *Spec) Upcoming(t time.Time, n int) []time.Time {
	out := make([]time.Time, 0, n)
	for range n {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

// maxShift bounds the daylight-saving shifts looked for (Lord Howe's is 30 minutes, most are
// an hour; none exceeds two).
const maxShift = 3 * time.Hour

// repeated reports whether t's wall-clock time already occurred shortly before (clocks went
// back in between): its first occurrence was the run.
func (s *Spec) repeated(t time.Time) bool {
	w := t.In(s.loc)
	for d := 15 * time.Minute; d <= maxShift; d += 15 * time.Minute {
		e := t.Add(-d).In(s.loc)
		if e.Hour() == w.Hour() && e.Minute() == w.Minute() && e.Day() == w.Day() {
			return true
		}
	}
	return false
}

// gapRun finds a run that falls into a wall-clock gap (clocks going forward) after t and
// before n, which robfig/cron skips: it runs at the moment of the jump.
func (s *Spec) gapRun(t, n time.Time) (time.Time, bool) {
	// Walk from t to n a day at a time, looking for a rise in the UTC offset. Daily and
	// weekly expressions cross at most one such change; the walk stops after a year.
	from := t
	for i := 0; from.Before(n) && i < 400; i++ {
		to := from.Add(24 * time.Hour)
		if to.After(n) {
			to = n
		}
		_, o1 := from.In(s.loc).Zone()
		_, o2 := to.In(s.loc).Zone()
		if o2 > o1 {
			if at, ok := s.inGap(from, to, o1, o2); ok && at.After(t) && at.Before(n) {
				return at, true
			}
		}
		from = to
	}
	return time.Time{}, false
}

// inGap finds the jump between lo and hi (UTC offset o1 before, o2 after) and reports it
// when the expression matches a wall-clock time inside the skipped range.
func (s *Spec) inGap(lo, hi time.Time, o1, o2 int) (time.Time, bool) {
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if _, o := mid.In(s.loc).Zone(); o == o1 {
			lo = mid
		} else {
			hi = mid
		}
	}
	jump := hi.Truncate(time.Second)
	if _, o := jump.In(s.loc).Zone(); o == o1 {
		jump = jump.Add(time.Second)
	}
	// In the old offset, the skipped wall-clock times are [jump, jump + shift).
	c := *s.cron
	c.Location = time.FixedZone("before", o1)
	m := c.Next(jump.Add(-time.Second))
	if !m.IsZero() && m.Before(jump.Add(time.Duration(o2-o1)*time.Second)) {
		return jump, true
	}
	return time.Time{}, false
}
