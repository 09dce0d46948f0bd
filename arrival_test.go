package main

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
)

type fakeStamper int64

func (f fakeStamper) lastReceived() int64 { return int64(f) }

// arrived takes the connection's receive stamp only when it is plausible; otherwise now.
func TestArrived(t *testing.T) {
	now := time.Now()
	recent := now.Add(-3 * time.Millisecond).UnixNano()
	for _, c := range []struct {
		name    string
		stamper receiveStamper // in the request's context when not nil
		want    int64          // Unix ns; 0 for "now"
	}{
		{"no stamper", nil, 0},
		{"no stamp", fakeStamper(0), 0},
		{"stamp 3 ms ago", fakeStamper(recent), recent},
		{"stamp in the future", fakeStamper(now.Add(time.Hour).UnixNano()), 0},
		{"stamp older than maxArrivalAge", fakeStamper(now.Add(-maxArrivalAge - time.Second).UnixNano()), 0},
	} {
		r := httptest.NewRequest("POST", "/v1/tasks", nil)
		if c.stamper != nil {
			r = r.WithContext(context.WithValue(r.Context(), arrivalKey{}, c.stamper))
		}
		before := time.Now().UnixNano()
		got := arrived(r).UnixNano()
		after := time.Now().UnixNano()
		if c.want != 0 && got != c.want || c.want == 0 && (got < before || got > after) {
			t.Errorf("%s: arrived %d, want %d (0: between %d and %d)", c.name, got, c.want, before, after)
		}
	}
}
