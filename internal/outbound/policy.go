package outbound

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
)

// Policy decides which resolved IP addresses may be dialled.
//
// The zero value (and a nil *Policy) allows only public unicast addresses.
type Policy struct {
	AllowPrivate bool           // --allow-private-targets: allow every non-public address except cloud metadata
	Allow        []netip.Prefix // --allow-targets: CIDRs allowed even though non-public (metadata included if listed explicitly)
}

// Reasons carried by BlockedError.
const (
	reasonMetadata   = "cloud metadata"
	reasonEmbedding  = "IPv4-embedding IPv6"
	reasonReserved   = "reserved"
	reasonInvalid    = "invalid address"
	reasonLoopback   = "loopback"
	reasonPrivate    = "private"
	reasonLinkLocal  = "link-local"
	reasonDoc        = "documentation"
	reasonMulticast  = "multicast"
	reasonUnspecific = "unspecified"
)

type blockedRange struct {
	prefix netip.Prefix
	reason string
}

// blockedRanges lists the non-public ranges. The first match names the reason,
// so a narrower range comes before the wider one that contains it.
var blockedRanges = []blockedRange{
	{netip.MustParsePrefix("0.0.0.0/32"), reasonUnspecific},
	{netip.MustParsePrefix("0.0.0.0/8"), reasonReserved}, // "this network"; Linux connects 0.0.0.0 to loopback
	{netip.MustParsePrefix("10.0.0.0/8"), reasonPrivate},
	{netip.MustParsePrefix("100.64.0.0/10"), "CGNAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), reasonLoopback},
	{netip.MustParsePrefix("169.254.0.0/16"), reasonLinkLocal},
	{netip.MustParsePrefix("172.16.0.0/12"), reasonPrivate},
	{netip.MustParsePrefix("192.0.0.0/24"), reasonReserved}, // IETF protocol assignments
	{netip.MustParsePrefix("192.0.2.0/24"), reasonDoc},
	{netip.MustParsePrefix("192.168.0.0/16"), reasonPrivate},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), reasonDoc},
	{netip.MustParsePrefix("203.0.113.0/24"), reasonDoc},
	{netip.MustParsePrefix("224.0.0.0/4"), reasonMulticast},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), reasonReserved},

	{netip.MustParsePrefix("::/128"), reasonUnspecific},
	{netip.MustParsePrefix("::1/128"), reasonLoopback},
	{netip.MustParsePrefix("::/96"), reasonEmbedding},          // deprecated IPv4-compatible addresses
	{netip.MustParsePrefix("64:ff9b::/96"), reasonEmbedding},   // NAT64
	{netip.MustParsePrefix("64:ff9b:1::/48"), reasonEmbedding}, // local-use NAT64
	{netip.MustParsePrefix("100::/64"), reasonReserved},        // discard-only
	{netip.MustParsePrefix("2001:db8::/32"), reasonDoc},
	{netip.MustParsePrefix("2001::/32"), reasonEmbedding}, // Teredo
	{netip.MustParsePrefix("2002::/16"), reasonEmbedding}, // 6to4
	{netip.MustParsePrefix("fc00::/7"), reasonPrivate},    // unique local
	{netip.MustParsePrefix("fe80::/10"), reasonLinkLocal},
	{netip.MustParsePrefix("ff00::/8"), reasonMulticast},
}

// globalUnicastV6 is the only IPv6 space handed out as public unicast;
// anything outside it (site-local fec0::/10, IPv4-translated ::ffff:0:0:0/96, …) is refused.
var globalUnicastV6 = netip.MustParsePrefix("2000::/3")

// metadataAddrs are cloud instance-metadata endpoints (AWS, ECS, AWS IPv6, Alibaba, Oracle).
// They stay blocked under AllowPrivate; only an Allow prefix that contains them opens them.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("169.254.170.2"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("192.0.0.192"),
}

var (
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour    = netip.MustParsePrefix("2002::/16")
	teredoPrefix = netip.MustParsePrefix("2001::/32")
)

// CheckAddr returns nil if a may be dialled, or a *BlockedError saying why not.
// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
func (p *Policy) CheckAddr(a netip.Addr) error {
	if !a.IsValid() {
		return &BlockedError{Addr: a, Reason: reasonInvalid}
	}
	a = a.Unmap().WithZone("") // Prefix.Contains never matches a zoned address
	if p != nil {
		for _, pr := range p.Allow {
			if unmapPrefix(pr).Contains(a) {
				return nil
			}
		}
	}
	if isMetadata(a) {
		return &BlockedError{Addr: a, Reason: reasonMetadata}
	}
	reason := nonPublicReason(a)
	if reason == "" || (p != nil && p.AllowPrivate) {
		return nil
	}
	return &BlockedError{Addr: a, Reason: reason}
}

// nonPublicReason names the non-public range holding a (already unmapped), or "" for public unicast.
func nonPublicReason(a netip.Addr) string {
	for _, r := range blockedRanges {
		if r.prefix.Contains(a) {
			return r.reason
		}
	}
	if a.Is6() && !globalUnicastV6.Contains(a) {
		return reasonReserved
	}
	return ""
}

// isMetadata reports whether a is a metadata address, directly or embedded in a
// NAT64, 6to4 or Teredo address (in case private ranges are opened wholesale).
func isMetadata(a netip.Addr) bool {
	candidates := []netip.Addr{a}
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64Prefix.Contains(a):
			candidates = append(candidates, netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(a):
			candidates = append(candidates, netip.AddrFrom4([4]byte(b[2:6])))
		case teredoPrefix.Contains(a):
			candidates = append(candidates, netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}))
		}
	}
	for _, c := range candidates {
		for _, m := range metadataAddrs {
			if c == m {
				return true
			}
		}
	}
	return false
}

// unmapPrefix turns a prefix written in IPv4-mapped form (::ffff:10.0.0.0/104)
// into the IPv4 prefix it means (10.0.0.0/8), because CheckAddr compares unmapped addresses.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
	}
	return p
}

// control re-checks the final ip:port right before connect(2), as defence in depth
// behind the resolver filtering in the dialer.
func (p *Policy) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("unexpected dial address %q: %w", address, err)
	}
	return p.CheckAddr(ap.Addr())
}

// ParsePrefixes parses a comma-separated list of CIDRs and bare IP addresses
// ("10.0.0.0/8, 127.0.0.1"); a bare address becomes a /32 or /128. Empty entries are skipped.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		p, ok := parsePrefix(entry)
		if !ok {
			return nil, fmt.Errorf("invalid entry %q: want an IP address such as 127.0.0.1 or a CIDR such as 10.0.0.0/8", entry)
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		return unmapPrefix(p.Masked()), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// BlockedError is an address the policy refuses.
type BlockedError struct {
	Addr   netip.Addr
	Reason string // "loopback", "private", "link-local", "cloud metadata", "CGNAT", "unspecified", "multicast", "reserved", "documentation", "IPv4-embedding IPv6", …
	Host   string // the host name being dialled, if known
}

func (e *BlockedError) Error() string {
	if !e.Addr.IsValid() {
		return "target address is not a valid IP address and is blocked"
	}
	var b strings.Builder
	if e.Host != "" && !isIPLiteral(e.Host) {
		fmt.Fprintf(&b, "%s resolves to %s (%s), which is blocked", e.Host, e.Addr, e.Reason)
	} else {
		fmt.Fprintf(&b, "target address %s (%s) is blocked", e.Addr, e.Reason)
	}
	a := e.Addr.WithZone("")
	only := netip.PrefixFrom(a, a.BitLen())
	if e.Reason == reasonMetadata {
		fmt.Fprintf(&b, "; it stays blocked under --allow-private-targets, and only --allow-targets %s opens it", only)
	} else {
		fmt.Fprintf(&b, "; start the server with --allow-private-targets or --allow-targets %s to allow it", only)
	}
	return b.String()
}

func isIPLiteral(host string) bool {
	_, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil
}
