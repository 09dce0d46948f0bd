package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func at(t *testing.T, tz, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func utc(s string) time.Time {
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return v
}

// The clock is injected: each case starts from a given instant and lists the runs after it.
func TestUpcoming(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, cron, every, tz string
		from                  time.Time
		want                  []string // RFC 3339 UTC
	}{
		{"every 1s", "", "1s", "", utc("2026-01-01T00:00:00Z"),
			[]string{"2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z", "2026-01-01T00:00:03Z"}},
		{"every 90m", "", "1h30m", "", utc("2026-01-01T23:00:00Z"),
			[]string{"2026-01-02T00:30:00Z", "2026-01-02T02:00:00Z"}},
		{"every ignores DST", "", "1h", "Europe/Berlin", utc("2026-03-29T00:30:00Z"),
			[]string{"2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z"}},
		{"@daily UTC", "@daily", "", "", utc("2026-01-01T10:00:00Z"),
			[]string{"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"}},
		{"@daily Berlin winter", "@daily", "", "Europe/Berlin", utc("2026-01-01T10:00:00Z"),
			[]string{"2026-01-01T23:00:00Z", "2026-01-02T23:00:00Z"}},
		{"@hourly", "@hourly", "", "", utc("2026-01-01T10:00:00Z"),
			[]string{"2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"}},
		{"*/5 minutes", "*/5 * * * *", "", "", utc("2026-01-01T10:03:00Z"),
			[]string{"2026-01-01T10:05:00Z", "2026-01-01T10:10:00Z"}},
		{"weekdays 9:00 New York", "0 9 * * 1-5", "", "America/New_York", utc("2026-01-02T15:00:00Z"), // a Friday
			[]string{"2026-01-05T14:00:00Z", "2026-01-06T14:00:00Z"}},
		{"Kolkata half-hour offset", "0 9 * * *", "", "Asia/Kolkata", utc("2026-01-01T00:00:00Z"),
			[]string{"2026-01-01T03:30:00Z", "2026-01-02T03:30:00Z"}},

		// Clocks go forward in Berlin on 2026-03-29 at 02:00 CET (01:00 UTC) to 03:00 CEST.
		{"spring forward: 02:30 runs once, at the jump", "30 2 * * *", "", "Europe/Berlin", at(t, "Europe/Berlin", "2026-03-27 12:00"),
			[]string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"spring forward: 03:00 unaffected", "0 3 * * *", "", "Europe/Berlin", at(t, "Europe/Berlin", "2026-03-28 12:00"),
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T01:00:00Z"}},
		{"spring forward: 01:30 unaffected", "30 1 * * *", "", "Europe/Berlin", at(t, "Europe/Berlin", "2026-03-28 12:00"),
			[]string{"2026-03-29T00:30:00Z", "2026-03-29T23:30:00Z"}},
		{"spring forward: hourly follows real hours", "0 * * * *", "", "Europe/Berlin", utc("2026-03-28T23:30:00Z"),
			[]string{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"}},
		// Clocks go back in Berlin on 2026-10-25 at 03:00 CEST (01:00 UTC) to 02:00 CET.
		{"fall back: 02:30 runs once, at its first occurrence", "30 2 * * *", "", "Europe/Berlin", at(t, "Europe/Berlin", "2026-10-24 12:00"),
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"fall back: every 15 min at 2h runs once per wall-clock time", "*/15 2 * * *", "", "Europe/Berlin", at(t, "Europe/Berlin", "2026-10-24 12:00"),
			[]string{"2026-10-25T00:00:00Z", "2026-10-25T00:15:00Z", "2026-10-25T00:30:00Z", "2026-10-25T00:45:00Z", "2026-10-26T01:00:00Z"}},
		{"fall back: hourly follows real hours", "0 * * * *", "", "Europe/Berlin", utc("2026-10-24T23:30:00Z"),
			[]string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"}},
		{"fall back: @daily unaffected", "@daily", "", "Europe/Berlin", at(t, "Europe/Berlin", "2026-10-24 12:00"),
			[]string{"2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"}},
		// New York: forward on 2026-03-08 at 02:00 EST (07:00 UTC), back on 2026-11-01 at 02:00 EDT (06:00 UTC).
		{"New York spring forward", "30 2 * * *", "", "America/New_York", at(t, "America/New_York", "2026-03-07 12:00"),
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		{"New York fall back", "30 1 * * *", "", "America/New_York", at(t, "America/New_York", "2026-10-31 12:00"),
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse(c.cron, c.every, c.tz)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Upcoming(c.from, len(c.want))
			var gs []string
			for _, g := range got {
				gs = append(gs, g.UTC().Format(time.RFC3339))
			}
			if strings.Join(gs, " ") != strings.Join(c.want, " ") {
				t.Errorf("runs after %s:\n got %v\nwant %v", c.from.UTC().Format(time.RFC3339), gs, c.want)
			}
		})
	}
}

// After a run made late (downtime), the next run is the first one after now: the missed
// runs collapse into the one that was made.
func TestAfterCollapsesMissedRuns(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, cron, every string
		prev, now         string
		want              string
		missed            bool
	}{
		{"every on time", "", "10s", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.005Z", "2026-01-01T00:00:10Z", false},
		{"every after downtime keeps phase", "", "10s", "2026-01-01T00:00:00Z", "2026-01-01T00:01:05Z", "2026-01-01T00:01:10Z", true},
		{"every exactly on a run", "", "10s", "2026-01-01T00:00:00Z", "2026-01-01T00:00:20Z", "2026-01-01T00:00:30Z", true},
		{"cron on time", "*/5 * * * *", "", "2026-01-01T00:05:00Z", "2026-01-01T00:05:00.003Z", "2026-01-01T00:10:00Z", false},
		{"cron after downtime", "*/5 * * * *", "", "2026-01-01T00:05:00Z", "2026-01-01T03:07:00Z", "2026-01-01T03:10:00Z", true},
		{"daily after a day down", "@daily", "", "2026-01-01T00:00:00Z", "2026-01-02T12:00:00Z", "2026-01-03T00:00:00Z", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse(c.cron, c.every, "")
			if err != nil {
				t.Fatal(err)
			}
			prev, now := utc(c.prev), utc(c.now)
			if got := s.After(prev, now); !got.Equal(utc(c.want)) {
				t.Errorf("After(%s, %s) = %s, want %s", c.prev, c.now, got.Format(time.RFC3339Nano), c.want)
			}
			if got := s.Missed(prev, now); got != c.missed {
				t.Errorf("Missed = %v, want %v", got, c.missed)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ cron, every, tz, field, msg string }{
		{"", "", "", "cron", "give cron"},
		{"* * * * *", "1s", "", "cron", "not both"},
		{"* * * *", "", "", "cron", "not a cron expression"},
		{"61 * * * *", "", "", "cron", "not a cron expression"},
		{"0 0 30 2 *", "", "", "cron", "never matches"},
		{"* * * * * *", "", "", "cron", "not a cron expression"},
		{"@every 1m", "", "", "cron", "every field"},
		{"CRON_TZ=UTC * * * * *", "", "", "cron", "timezone field"},
		{"", "500ms", "", "every", "at least 1s"},
		{"", "-5s", "", "every", "at least 1s"},
		{"", "soon", "", "every", "not a duration"},
		{"", "10", "", "every", "not a duration"},
		{"@daily", "", "Mars/Olympus", "timezone", "unknown time zone"},
		{"@daily", "", "Local", "timezone", "IANA"},
	}
	for _, c := range cases {
		_, err := Parse(c.cron, c.every, c.tz)
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q, %q, %q) = %v, want a FieldError", c.cron, c.every, c.tz, err)
			continue
		}
		if fe.Field != c.field || !strings.Contains(fe.Message, c.msg) {
			t.Errorf("Parse(%q, %q, %q) = %s, want field %s and %q", c.cron, c.every, c.tz, err, c.field, c.msg)
		}
	}
	for _, ok := range [][3]string{{"@yearly", "", ""}, {"0 0 29 2 *", "", "UTC"}, {"", "1s", ""}, {"", "24h", "Europe/Berlin"}, {"@weekly", "", "Asia/Tokyo"}} {
		if _, err := Parse(ok[0], ok[1], ok[2]); err != nil {
			t.Errorf("Parse(%q, %q, %q): %v", ok[0], ok[1], ok[2], err)
		}
	}
}
