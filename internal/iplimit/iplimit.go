// Package iplimit rate-limits requests per client IP, with a client IP that X-Forwarded-For cannot spoof.
package iplimit

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys is the number of clients tracked when New is given maxKeys <= 0.
const DefaultMaxKeys = 100_000

// ClientIP returns the client address of r, without zone and with
// IPv4-mapped IPv6 addresses unmapped.
//
// It is the socket peer (r.RemoteAddr) unless that peer is inside one of
// trusted. Only then is X-Forwarded-For read, from the right: trusted
// addresses are skipped and the first untrusted one is returned. If every
// entry is trusted, the left-most is returned; if an entry cannot be parsed
// before an untrusted one is found, the last trusted hop seen (or the peer)
// is returned, since nothing left of it can be vouched for. A header from an
// untrusted peer is never read. If RemoteAddr itself cannot be parsed the
// result is the zero Addr.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, ok := parseHost(r.RemoteAddr)
	if !ok {
		return netip.Addr{}
	}
	if !isTrusted(peer, trusted) {
		return peer
	}
	candidate := peer
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		hops := strings.Split(values[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			addr, ok := parseHost(strings.TrimSpace(hops[j]))
			if !ok {
				return candidate
			}
			if !isTrusted(addr, trusted) {
				return addr
			}
			candidate = addr
		}
	}
	return candidate
}

// TrustedPeer reports whether the socket peer of r is inside one of trusted: only
// then may its forwarding headers (X-Forwarded-For, X-Forwarded-Proto) be believed.
func TrustedPeer(r *http.Request, trusted []netip.Prefix) bool {
	peer, ok := parseHost(r.RemoteAddr)
	return ok && isTrusted(peer, trusted)
}

// parseHost parses "addr", "addr:port", "[addr]" or "[addr]:port", dropping
// any zone and unmapping IPv4-mapped IPv6.
func parseHost(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	} else if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.WithZone("").Unmap(), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Limiter is a token bucket per client, refilling at perMinute per minute
// with a burst of perMinute. IPv4 clients are keyed by address, IPv6 clients
// by their /64, since one host can rotate through a whole /64. Memory is
// bounded: entries idle long enough to have refilled completely are dropped
// (they are indistinguishable from new ones), and when maxKeys clients are
// tracked the least recently seen one is evicted. Safe for concurrent use.
type Limiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	ttl     time.Duration // time for an empty bucket to refill completely
	maxKeys int
	m       map[netip.Prefix]*entry
	head    *entry // most recently seen
	tail    *entry // least recently seen
	now     func() time.Time
}

type entry struct {
	key        netip.Prefix
	lim        *rate.Limiter
	last       time.Time
	prev, next *entry // towards head, towards tail
}

// New returns a Limiter allowing perMinute requests per minute per client
// (perMinute <= 0: always allow) and tracking at most maxKeys clients
// (maxKeys <= 0: DefaultMaxKeys).
func New(perMinute int, maxKeys int) *Limiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	l := &Limiter{maxKeys: maxKeys, now: time.Now}
	if perMinute > 0 {
		l.limit = rate.Limit(float64(perMinute) / 60)
		l.burst = perMinute
		l.ttl = time.Minute
		l.m = make(map[netip.Prefix]*entry)
	}
	return l
}

// Allow records one request from ip and reports whether it may proceed.
// When it may not, retryAfter is how long until one more request would be
// allowed, rounded up to whole seconds and at least 1s; refused requests do
// not use up tokens. An invalid ip shares one bucket with all invalid ips.
func (l *Limiter) Allow(ip netip.Addr) (ok bool, retryAfter time.Duration) {
	if l.burst == 0 {
		return true, 0
	}
	now := l.now()
	key := keyOf(ip)

	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	e := l.m[key]
	if e == nil {
		if len(l.m) >= l.maxKeys {
			l.drop(l.tail)
		}
		e = &entry{key: key, lim: rate.NewLimiter(l.limit, l.burst)}
		l.m[key] = e
	} else {
		l.unlink(e)
	}
	l.pushFront(e)
	e.last = now

	if e.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - e.lim.TokensAt(now)
	secs := math.Ceil(missing/float64(l.limit) - 1e-9)
	return false, max(time.Duration(secs)*time.Second, time.Second)
}

// Len returns the number of clients currently tracked.
func (l *Limiter) Len() int {
	if l.burst == 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(l.now())
	return len(l.m)
}

// keyOf returns the bucket key for ip: /32 for IPv4, /64 for IPv6.
func keyOf(ip netip.Addr) netip.Prefix {
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	ip = ip.WithZone("").Unmap()
	bits := 64
	if ip.Is4() {
		bits = 32
	}
	p, _ := ip.Prefix(bits) // cannot fail: bits fits the family, zone removed
	return p
}

// sweep drops entries, least recently seen first, that have been idle for
// the full refill time. Each entry is dropped once, so the cost is amortized
// O(1) per Allow.
func (l *Limiter) sweep(now time.Time) {
	for l.tail != nil && now.Sub(l.tail.last) >= l.ttl {
		l.drop(l.tail)
	}
}

func (l *Limiter) drop(e *entry) {
	l.unlink(e)
	delete(l.m, e.key)
}

func (l *Limiter) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (l *Limiter) pushFront(e *entry) {
	e.next = l.head
	if l.head != nil {
		l.head.prev = e
	}
	l.head = e
	if l.tail == nil {
		l.tail = e
	}
}
