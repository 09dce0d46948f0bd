package outbound

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCheckAddrDefault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr   string
		reason string // "" means allowed
	}{
		// IPv4 non-public ranges.
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "reserved"},
		{"10.0.0.1", "private"},
		{"10.255.255.255", "private"},
		{"100.64.0.1", "CGNAT"},
		{"100.127.255.254", "CGNAT"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"169.254.1.1", "link-local"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.0.0.8", "reserved"},
		{"192.0.2.1", "documentation"},
		{"192.168.1.1", "private"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},
		// Cloud metadata.
		{"169.254.169.254", "cloud metadata"},
		{"169.254.170.2", "cloud metadata"},
		{"100.100.100.200", "cloud metadata"},
		{"192.0.0.192", "cloud metadata"},
		{"fd00:ec2::254", "cloud metadata"},
		{"::ffff:169.254.169.254", "cloud metadata"},
		{"64:ff9b::a9fe:a9fe", "cloud metadata"},       // NAT64 of 169.254.169.254
		{"2002:a9fe:a9fe::1", "cloud metadata"},        // 6to4 of 169.254.169.254
		{"2001:0:1:2:3:4:5601:5601", "cloud metadata"}, // Teredo client 169.254.169.254 (bits inverted)
		// IPv6 non-public ranges.
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"::7f00:1", "IPv4-embedding IPv6"}, // IPv4-compatible ::127.0.0.1
		{"64:ff9b::808:808", "IPv4-embedding IPv6"},
		{"64:ff9b:1::1", "IPv4-embedding IPv6"},
		{"100::1", "reserved"},
		{"2001::1", "IPv4-embedding IPv6"},
		{"2001:db8::1", "documentation"},
		{"2002:808:808::1", "IPv4-embedding IPv6"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"febf::1", "link-local"},
		{"fec0::1", "reserved"}, // deprecated site-local, outside 2000::/3
		{"ff02::1", "multicast"},
		{"::ffff:0:7f00:1", "reserved"}, // IPv4-translated form
		// IPv4-mapped forms are judged as IPv4.
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:0.0.0.0", "unspecified"},
		{"::ffff:8.8.8.8", ""},
		// Public unicast.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"11.0.0.1", ""},
		{"100.63.255.255", ""},
		{"100.128.0.1", ""},
		{"172.32.0.1", ""},
		{"192.0.1.1", ""},
		{"198.20.0.1", ""},
		{"223.255.255.255", ""},
		{"2606:4700::1111", ""},
		{"2001:4860:4860::8888", ""},
		{"2a00:1450:4001::1", ""},
	}
	var p Policy
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		err := p.CheckAddr(a)
		if tt.reason == "" {
			if err != nil {
				t.Errorf("CheckAddr(%s) = %v, want allowed", tt.addr, err)
			}
			continue
		}
		be, ok := errors.AsType[*BlockedError](err)
		if !ok {
			t.Errorf("CheckAddr(%s) = %v, want *BlockedError (%s)", tt.addr, err, tt.reason)
			continue
		}
		if be.Reason != tt.reason {
			t.Errorf("CheckAddr(%s) reason = %q, want %q", tt.addr, be.Reason, tt.reason)
		}
		if want := a.Unmap().WithZone(""); be.Addr != want {
			t.Errorf("CheckAddr(%s) Addr = %s, want %s", tt.addr, be.Addr, want)
		}
	}
}

func TestCheckAddrInvalidAndNilPolicy(t *testing.T) {
	t.Parallel()
	if err := (&Policy{AllowPrivate: true}).CheckAddr(netip.Addr{}); !IsBlocked(err) {
		t.Errorf("zero Addr: got %v, want blocked", err)
	}
	var p *Policy
	if err := p.CheckAddr(netip.MustParseAddr("127.0.0.1")); !IsBlocked(err) {
		t.Errorf("nil policy, loopback: got %v, want blocked", err)
	}
	if err := p.CheckAddr(netip.MustParseAddr("8.8.8.8")); err != nil {
		t.Errorf("nil policy, public: got %v", err)
	}
}

func TestCheckAddrAllowPrivate(t *testing.T) {
	t.Parallel()
	p := &Policy{AllowPrivate: true}
	for _, s := range []string{"10.0.0.1", "127.0.0.1", "::1", "fe80::1", "100.64.0.1", "192.168.0.10", "::ffff:10.0.0.1", "fd12::1", "8.8.8.8"} {
		if err := p.CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("AllowPrivate: CheckAddr(%s) = %v, want allowed", s, err)
		}
	}
	for _, s := range []string{"169.254.169.254", "::ffff:169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192", "64:ff9b::a9fe:a9fe"} {
		be, ok := errors.AsType[*BlockedError](p.CheckAddr(netip.MustParseAddr(s)))
		if !ok || be.Reason != "cloud metadata" {
			t.Errorf("AllowPrivate: CheckAddr(%s) = %v, want cloud metadata blocked", s, be)
		}
	}
}

func TestCheckAddrAllowPrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		allow   string
		allowed []string
		blocked []string
	}{
		{"127.0.0.0/8", []string{"127.0.0.1", "127.9.9.9", "::ffff:127.0.0.1", "8.8.8.8"}, []string{"10.0.0.1", "::1", "169.254.169.254"}},
		{"127.0.0.2/32", []string{"127.0.0.2"}, []string{"127.0.0.1", "127.0.0.3"}},
		{"169.254.169.254/32", []string{"169.254.169.254"}, []string{"169.254.169.253", "169.254.170.2"}},
		{"169.254.0.0/16", []string{"169.254.169.254", "169.254.1.1"}, []string{"fd00:ec2::254", "10.0.0.1"}},
		{"::1/128", []string{"::1"}, []string{"127.0.0.1", "::2"}},
		{"fd00::/8", []string{"fd00:ec2::254", "fd12::1"}, []string{"fc00::1"}},
	}
	for _, tt := range tests {
		allow, err := ParsePrefixes(tt.allow)
		if err != nil {
			t.Fatal(err)
		}
		p := &Policy{Allow: allow}
		for _, s := range tt.allowed {
			if err := p.CheckAddr(netip.MustParseAddr(s)); err != nil {
				t.Errorf("Allow %s: CheckAddr(%s) = %v, want allowed", tt.allow, s, err)
			}
		}
		for _, s := range tt.blocked {
			if err := p.CheckAddr(netip.MustParseAddr(s)); !IsBlocked(err) {
				t.Errorf("Allow %s: CheckAddr(%s) = %v, want blocked", tt.allow, s, err)
			}
		}
	}
	// A prefix built in mapped form still means the IPv4 range.
	p := &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}
	if err := p.CheckAddr(netip.MustParseAddr("10.1.2.3")); err != nil {
		t.Errorf("mapped Allow prefix: %v", err)
	}
}

func TestBlockedErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  BlockedError
		want string
	}{
		{
			BlockedError{Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback"},
			"target address 127.0.0.1 (loopback) is blocked; start the server with --allow-private-targets or --allow-targets 127.0.0.1/32 to allow it",
		},
		{
			BlockedError{Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback", Host: "127.0.0.1"},
			"target address 127.0.0.1 (loopback) is blocked; start the server with --allow-private-targets or --allow-targets 127.0.0.1/32 to allow it",
		},
		{
			BlockedError{Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback", Host: "host.example"},
			"host.example resolves to 127.0.0.1 (loopback), which is blocked; start the server with --allow-private-targets or --allow-targets 127.0.0.1/32 to allow it",
		},
		{
			BlockedError{Addr: netip.MustParseAddr("::1"), Reason: "loopback", Host: "[::1]"},
			"target address ::1 (loopback) is blocked; start the server with --allow-private-targets or --allow-targets ::1/128 to allow it",
		},
		{
			BlockedError{Addr: netip.MustParseAddr("169.254.169.254"), Reason: "cloud metadata"},
			"target address 169.254.169.254 (cloud metadata) is blocked; it stays blocked under --allow-private-targets, and only --allow-targets 169.254.169.254/32 opens it",
		},
		{
			BlockedError{Addr: netip.MustParseAddr("fe80::1%eth0"), Reason: "link-local"},
			"target address fe80::1%eth0 (link-local) is blocked; start the server with --allow-private-targets or --allow-targets fe80::1/128 to allow it",
		},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() =\n  %s\nwant\n  %s", got, tt.want)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	good := []struct {
		in   string
		want []string
	}{
		{"10.0.0.0/8, 127.0.0.1", []string{"10.0.0.0/8", "127.0.0.1/32"}},
		{"::1", []string{"::1/128"}},
		{"fd00::/8,2001:db8::1", []string{"fd00::/8", "2001:db8::1/128"}},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}},
		{"::ffff:127.0.0.1", []string{"127.0.0.1/32"}},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}},
		{" , 1.1.1.1 ,", []string{"1.1.1.1/32"}},
		{"", nil},
	}
	for _, tt := range good {
		got, err := ParsePrefixes(tt.in)
		if err != nil {
			t.Errorf("ParsePrefixes(%q): %v", tt.in, err)
			continue
		}
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, p.String())
		}
		if !slices.Equal(gotS, tt.want) {
			t.Errorf("ParsePrefixes(%q) = %v, want %v", tt.in, gotS, tt.want)
		}
	}
	bad := []struct{ in, entry string }{
		{"foo", "foo"},
		{"10.0.0.0/33", "10.0.0.0/33"},
		{"10.0.0.0/8; 127.0.0.1", "10.0.0.0/8; 127.0.0.1"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"1.2.3", "1.2.3"},
		{"10.0.0.0/8, localhost", "localhost"},
		{"127.0.0.1/", "127.0.0.1/"},
	}
	for _, tt := range bad {
		got, err := ParsePrefixes(tt.in)
		if err == nil {
			t.Errorf("ParsePrefixes(%q) = %v, want error", tt.in, got)
			continue
		}
		if !strings.Contains(err.Error(), `"`+tt.entry+`"`) {
			t.Errorf("ParsePrefixes(%q) error %q does not name the entry %q", tt.in, err, tt.entry)
		}
	}
}

func TestControlRechecks(t *testing.T) {
	t.Parallel()
	p := &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	for _, addr := range []string{"127.0.0.1:80", "[::1]:443", "[::ffff:10.0.0.1]:80", "169.254.169.254:80", "[fe80::1%eth0]:80"} {
		if err := p.control(t.Context(), "tcp", addr, nil); !IsBlocked(err) {
			t.Errorf("control(%s) = %v, want blocked", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.2:80", "8.8.8.8:443", "[2606:4700::1111]:443"} {
		if err := p.control(t.Context(), "tcp", addr, nil); err != nil {
			t.Errorf("control(%s) = %v, want allowed", addr, err)
		}
	}
	if err := p.control(t.Context(), "tcp", "not-an-address", nil); err == nil {
		t.Error("control(not-an-address) = nil, want error")
	}
}

// FuzzCheckAddr checks the policy invariants on arbitrary 4- and 16-byte addresses.
func FuzzCheckAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "8.8.8.8", "2606:4700::1111", "fd00:ec2::254", "::"} {
		f.Add(netip.MustParseAddr(s).AsSlice())
	}
	allow := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		def, priv, allowed := &Policy{}, &Policy{AllowPrivate: true}, &Policy{Allow: allow}
		for _, p := range []*Policy{def, priv, allowed} {
			e1, e2 := p.CheckAddr(a), p.CheckAddr(a.Unmap())
			if (e1 == nil) != (e2 == nil) {
				t.Fatalf("CheckAddr(%s) = %v but CheckAddr(Unmap) = %v", a, e1, e2)
			}
		}
		u := a.Unmap()
		inAllow := slices.ContainsFunc(allow, func(p netip.Prefix) bool { return p.Contains(u) })
		nonPublic := nonPublicReason(u) != "" || isMetadata(u)
		if nonPublic != IsBlocked(def.CheckAddr(a)) {
			t.Fatalf("default policy on %s: nonPublic=%v, blocked=%v", a, nonPublic, IsBlocked(def.CheckAddr(a)))
		}
		if isMetadata(u) != IsBlocked(priv.CheckAddr(a)) {
			t.Fatalf("AllowPrivate on %s: metadata=%v, blocked=%v", a, isMetadata(u), IsBlocked(priv.CheckAddr(a)))
		}
		if want := nonPublic && !inAllow; want != IsBlocked(allowed.CheckAddr(a)) {
			t.Fatalf("Allow policy on %s: want blocked=%v", a, want)
		}
	})
}
