package iplimit

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// clock is a manual time source for the limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClocked(perMinute, maxKeys int) (*Limiter, *clock) {
	c := &clock{t: time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)}
	l := New(perMinute, maxKeys)
	l.now = c.now
	return l, c
}

var ip = netip.MustParseAddr

func TestBurstThenRefuse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		perMinute int
		wantRetry time.Duration
	}{
		{30, 2 * time.Second},
		{60, time.Second},
		{1, time.Minute},
		{7, 9 * time.Second}, // 60/7 = 8.57s, rounded up
		{600, time.Second},   // 0.1s, but never less than 1s
	}
	for _, tt := range tests {
		l, _ := newClocked(tt.perMinute, 0)
		a := ip("203.0.113.7")
		for i := range tt.perMinute {
			if ok, _ := l.Allow(a); !ok {
				t.Fatalf("%d/min: request %d refused", tt.perMinute, i+1)
			}
		}
		ok, retry := l.Allow(a)
		if ok {
			t.Fatalf("%d/min: request %d allowed", tt.perMinute, tt.perMinute+1)
		}
		if retry != tt.wantRetry {
			t.Errorf("%d/min: retryAfter = %v, want %v", tt.perMinute, retry, tt.wantRetry)
		}
	}
}

func TestRefillAndRetryAfter(t *testing.T) {
	t.Parallel()
	l, c := newClocked(30, 0)
	a := ip("203.0.113.7")
	for range 30 {
		l.Allow(a)
	}
	if ok, retry := l.Allow(a); ok || retry != 2*time.Second {
		t.Fatalf("31st: ok=%v retry=%v", ok, retry)
	}
	c.add(time.Second)
	if ok, retry := l.Allow(a); ok || retry != time.Second {
		t.Fatalf("after 1s: ok=%v retry=%v, want refused with 1s", ok, retry)
	}
	c.add(time.Second)
	if ok, _ := l.Allow(a); !ok {
		t.Fatal("after retryAfter elapsed: refused")
	}
	if ok, _ := l.Allow(a); ok {
		t.Fatal("second request after one token: allowed")
	}
	// A minute of steady traffic at the limit is allowed, above it is not.
	allowed := 0
	for range 60 {
		c.add(time.Second)
		if ok, _ := l.Allow(a); ok {
			allowed++
		}
	}
	if allowed != 30 {
		t.Fatalf("allowed %d of 60 requests at 1/s, want 30", allowed)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		a, b  string
		share bool
	}{
		{"different IPv4", "203.0.113.7", "203.0.113.8", false},
		{"same IPv4", "203.0.113.7", "203.0.113.7", true},
		{"IPv4 and mapped IPv4", "203.0.113.7", "::ffff:203.0.113.7", true},
		{"same /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
		{"same /64 with zone", "fe80::1%eth0", "fe80::2", true},
		{"neighbouring /64s", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"IPv4 and IPv6", "203.0.113.7", "2001:db8::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, _ := newClocked(5, 0)
			for range 5 {
				if ok, _ := l.Allow(ip(tt.a)); !ok {
					t.Fatal("burst refused")
				}
			}
			ok, _ := l.Allow(ip(tt.b))
			if ok == tt.share {
				t.Errorf("after %s used its burst, %s allowed=%v; want shared bucket=%v", tt.a, tt.b, ok, tt.share)
			}
		})
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	for _, perMinute := range []int{0, -1} {
		l := New(perMinute, 10)
		for range 1000 {
			if ok, retry := l.Allow(ip("203.0.113.7")); !ok || retry != 0 {
				t.Fatalf("perMinute=%d refused", perMinute)
			}
		}
		if l.Len() != 0 {
			t.Fatalf("perMinute=%d tracks %d keys", perMinute, l.Len())
		}
	}
}

func TestIdleEntriesDropped(t *testing.T) {
	t.Parallel()
	l, c := newClocked(30, 0)
	for i := range 100 {
		l.Allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	if l.Len() != 100 {
		t.Fatalf("Len = %d, want 100", l.Len())
	}
	c.add(30 * time.Second)
	l.Allow(ip("203.0.113.1"))
	if l.Len() != 101 {
		t.Fatalf("Len = %d after 30s, want 101 (not yet refilled)", l.Len())
	}
	c.add(30 * time.Second)
	if l.Len() != 1 {
		t.Fatalf("Len = %d after 60s idle, want 1", l.Len())
	}
	// A client that keeps sending is never dropped as idle, so it stays
	// limited: over 60s at 10/s it gets its burst plus 30 refilled tokens.
	l2, c2 := newClocked(30, 0)
	a := ip("203.0.113.9")
	allowed := 0
	for range 600 {
		if ok, _ := l2.Allow(a); ok {
			allowed++
		}
		c2.add(time.Second / 10)
	}
	if allowed < 59 || allowed > 60 {
		t.Fatalf("allowed %d of 600 over 60s, want 59-60", allowed)
	}
	if l2.Len() != 1 {
		t.Fatalf("Len = %d", l2.Len())
	}
}

func TestFloodKeepsMemoryBounded(t *testing.T) {
	t.Parallel()
	const maxKeys = 1000
	l, c := newClocked(30, maxKeys)
	attacker := ip("192.0.2.1")
	attackerAllowed := 0
	for i := range 1_000_000 {
		n := uint32(i) + 1<<24 // 1.0.0.0 onwards, never 192.0.2.1
		flood := netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
		l.Allow(flood)
		if i%100 == 0 {
			if ok, _ := l.Allow(attacker); ok {
				attackerAllowed++
			}
		}
		if i%1000 == 0 {
			c.add(time.Millisecond) // the whole flood takes 1s of (fake) time
			if l.Len() > maxKeys {
				t.Fatalf("Len = %d > %d after %d addresses", l.Len(), maxKeys, i)
			}
		}
	}
	if l.Len() > maxKeys {
		t.Fatalf("Len = %d > %d", l.Len(), maxKeys)
	}
	// 10,000 attempts in about 1s: the burst of 30 plus at most one refill.
	if attackerAllowed < 30 || attackerAllowed > 31 {
		t.Fatalf("attacker allowed %d times, want 30 or 31", attackerAllowed)
	}
}

func TestIPv6RotationInOnePrefix(t *testing.T) {
	t.Parallel()
	l, _ := newClocked(30, 1000)
	base := ip("2001:db8:aaaa:bbbb::").As16()
	allowed := 0
	for i := range 100_000 {
		a := base
		a[12], a[13], a[14], a[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		if ok, _ := l.Allow(netip.AddrFrom16(a)); ok {
			allowed++
		}
	}
	if allowed != 30 || l.Len() != 1 {
		t.Fatalf("allowed %d, Len %d; want 30 and 1", allowed, l.Len())
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	private := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"no proxy", "203.0.113.7:4321", nil, nil, "203.0.113.7"},
		{"spoofed XFF, nothing trusted", "203.0.113.7:4321", []string{"1.2.3.4"}, nil, "203.0.113.7"},
		{"spoofed XFF, untrusted peer", "203.0.113.7:4321", []string{"1.2.3.4, 10.0.0.5"}, private, "203.0.113.7"},
		{"trusted proxy chain", "10.0.0.1:4321", []string{"1.2.3.4, 10.0.0.5"}, private, "1.2.3.4"},
		{"rightmost untrusted wins over spoofed left", "10.0.0.1:4321", []string{"6.6.6.6, 1.2.3.4, 10.0.0.5"}, private, "1.2.3.4"},
		{"multiple header lines", "10.0.0.1:4321", []string{"6.6.6.6", "1.2.3.4", "10.0.0.5"}, private, "1.2.3.4"},
		{"trusted proxy, no XFF", "10.0.0.1:4321", nil, private, "10.0.0.1"},
		{"trusted proxy, empty XFF", "10.0.0.1:4321", []string{""}, private, "10.0.0.1"},
		{"all trusted", "10.0.0.1:4321", []string{"10.0.0.9, 10.0.0.5"}, private, "10.0.0.9"},
		{"garbage XFF", "10.0.0.1:4321", []string{"not-an-ip"}, private, "10.0.0.1"},
		{"garbage left of client", "10.0.0.1:4321", []string{"junk, 1.2.3.4"}, private, "1.2.3.4"},
		{"garbage after a trusted hop", "10.0.0.1:4321", []string{"1.2.3.4, junk, 10.0.0.5"}, private, "10.0.0.5"},
		{"unknown", "10.0.0.1:4321", []string{"unknown"}, private, "10.0.0.1"},
		{"XFF entry with port", "10.0.0.1:4321", []string{"1.2.3.4:5555"}, private, "1.2.3.4"},
		{"XFF IPv6 bracketed with port", "10.0.0.1:4321", []string{"[2001:db8::7]:443"}, private, "2001:db8::7"},
		{"XFF IPv6 bracketed", "10.0.0.1:4321", []string{"[2001:db8::7]"}, private, "2001:db8::7"},
		{"XFF IPv6 bare", "10.0.0.1:4321", []string{"2001:db8::7"}, private, "2001:db8::7"},
		{"XFF mapped IPv4", "10.0.0.1:4321", []string{"::ffff:1.2.3.4"}, private, "1.2.3.4"},
		{"IPv6 peer", "[2001:db8::1]:4321", []string{"1.2.3.4"}, private, "2001:db8::1"},
		{"IPv6 peer with zone", "[fe80::1%eth0]:4321", nil, nil, "fe80::1"},
		{"IPv6 loopback proxy", "[::1]:4321", []string{"2001:db8::9"}, loop, "2001:db8::9"},
		{"mapped IPv4 peer is trusted", "[::ffff:10.0.0.1]:4321", []string{"1.2.3.4"}, private, "1.2.3.4"},
		{"peer without port", "203.0.113.7", nil, nil, "203.0.113.7"},
		{"garbage peer", "not an address", []string{"1.2.3.4"}, private, "invalid IP"},
		{"empty peer", "", nil, nil, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "/v1/signals/x", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientIP(r, tt.trusted).String(); got != tt.want {
				t.Errorf("ClientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSpoofedXFFDoesNotResetLimit(t *testing.T) {
	t.Parallel()
	l, _ := newClocked(30, 0)
	allowed := 0
	for i := range 40 {
		r := httptest.NewRequest(http.MethodPost, "/v1/signals/x", nil)
		r.RemoteAddr = "203.0.113.7:1234"
		r.Header.Set("X-Forwarded-For", netip.AddrFrom4([4]byte{1, 2, 3, byte(i)}).String())
		if ok, _ := l.Allow(ClientIP(r, nil)); ok {
			allowed++
		}
	}
	if allowed != 30 {
		t.Fatalf("allowed %d of 40 with spoofed XFF, want 30", allowed)
	}
}

func BenchmarkAllowFlood(b *testing.B) {
	l := New(30, 100_000)
	var n uint32
	for b.Loop() {
		n++
		l.Allow(netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}))
	}
}

func TestTrustedPeer(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for remote, want := range map[string]bool{
		"10.1.2.3:443":          true,
		"[::ffff:10.1.2.3]:443": true, // IPv4-mapped, unmapped first
		"[::1]:80":              true,
		"192.0.2.1:443":         false,
		"garbage":               false,
		"":                      false,
	} {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {"10.9.9.9"}}}
		if got := TrustedPeer(r, trusted); got != want {
			t.Errorf("TrustedPeer(%q) = %v, want %v", remote, got, want)
		}
	}
}
