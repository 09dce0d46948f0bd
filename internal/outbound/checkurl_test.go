package outbound

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestCheckURLRejectsMalformed(t *testing.T) {
	t.Parallel()
	c := New(Options{Policy: &Policy{AllowPrivate: true}})
	tests := []struct{ url, want string }{
		{"ftp://example.com/", `scheme "ftp" is not allowed`},
		{"file:///etc/passwd", `scheme "file" is not allowed`},
		{"gopher://example.com/", `scheme "gopher" is not allowed`},
		{"javascript:alert(1)", `scheme "javascript" is not allowed`},
		{"//169.254.169.254/", "scheme is missing"},
		{"example.com/hook", "scheme is missing"},
		{"http:///p", "host is missing"},
		{"http://", "host is missing"},
		{"http:example.com", "host is missing"},
		{"http://user:pass@example.com/", "user info"},
		{"http://user@evil.com@127.0.0.1/", "user info"},
		{"http://127.0.0.1%2f@evil.com/", "user info"},
		{"http://a b/", "invalid character"},
		{"http://[example.com]/", "invalid target URL"},
		{"http://example.com:0/", `port "0"`},
		{"http://example.com:70000/", `port "70000"`},
		{"http://" + strings.Repeat("a", 2050) + ".com/", "longer than 2048"},
		{"http://256.256.256.256/", "looks like an IPv4 address"},
		{"http://1.2.3.4.5/", "looks like an IPv4 address"},
		{"http://08.0.0.1/", "looks like an IPv4 address"},
		{"http://4294967296/", "looks like an IPv4 address"},
		{"http://example.123/", "looks like an IPv4 address"},
		{"http://127..1/", "looks like an IPv4 address"},
	}
	for _, tt := range tests {
		err := c.CheckURL(tt.url)
		if err == nil {
			t.Errorf("CheckURL(%.60q) = nil, want error", tt.url)
			continue
		}
		if IsBlocked(err) {
			t.Errorf("CheckURL(%.60q) = blocked (%v), want a URL error", tt.url, err)
		}
		if !strings.HasPrefix(err.Error(), "invalid target URL") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckURL(%.60q) = %q, want it to mention %q", tt.url, err, tt.want)
		}
	}
}

func TestCheckURLLiterals(t *testing.T) {
	t.Parallel()
	// Every host here is a non-public address in some spelling.
	blocked := []struct{ url, addr string }{
		{"http://127.0.0.1/", "127.0.0.1"},
		{"http://127.255.255.254:8080/x", "127.255.255.254"},
		{"http://[::1]/", "::1"},
		{"http://0.0.0.0/", "0.0.0.0"},
		{"http://[::]/", "::"},
		{"http://10.1.2.3/", "10.1.2.3"},
		{"http://172.16.0.1/", "172.16.0.1"},
		{"http://192.168.1.1/", "192.168.1.1"},
		{"http://100.64.0.1/", "100.64.0.1"},
		{"http://224.0.0.1/", "224.0.0.1"},
		{"http://198.18.0.1/", "198.18.0.1"},
		{"http://[fe80::1%25eth0]/", "fe80::1"},
		{"http://[2002:808:808::1]/", "2002:808:808::1"},
		{"http://[::ffff:127.0.0.1]/", "127.0.0.1"},
		{"http://[::ffff:7f00:1]/", "127.0.0.1"},
		// Forms that inet_aton-based resolvers accept.
		{"http://127.1/", "127.0.0.1"},
		{"http://127.0.1/", "127.0.0.1"},
		{"http://2130706433/", "127.0.0.1"},
		{"http://0x7f.1/", "127.0.0.1"},
		{"http://0X7F.0.0.1/", "127.0.0.1"},
		{"http://0x7f000001/", "127.0.0.1"},
		{"http://0/", "0.0.0.0"},
		{"http://0x/", "0.0.0.0"},
		{"http://017700000001/", "127.0.0.1"},
		{"http://0177.0.0.1/", "127.0.0.1"},
		{"http://127.000.000.001/", "127.0.0.1"},
		{"http://012.0.0.1/", "10.0.0.1"}, // octal 012 is 10
		{"http://127.0.0.1./", "127.0.0.1"},
		{"http://１２７．０．０．１/", "127.0.0.1"}, // full-width, folded by IDNA
		{"http://127。0。0。1/", "127.0.0.1"},
		{"http://localhost:3000/hook", "127.0.0.1"},
		{"http://LOCALHOST./", "127.0.0.1"},
		{"http://app.localhost/", "127.0.0.1"},
	}
	metadata := []struct{ url, addr string }{
		{"http://169.254.169.254/latest/meta-data/", "169.254.169.254"},
		{"http://[::ffff:169.254.169.254]/", "169.254.169.254"},
		{"http://[fd00:ec2::254]/", "fd00:ec2::254"},
		{"http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe"},
		{"http://192.0.0.192/", "192.0.0.192"},
		{"http://[2002:a9fe:a9fe::1]/", "2002:a9fe:a9fe::1"},
		{"http://2852039166/", "169.254.169.254"},
	}
	def := New(Options{})
	private := New(Options{Policy: &Policy{AllowPrivate: true}})
	for _, tt := range append(blocked, metadata...) {
		be, ok := errors.AsType[*BlockedError](def.CheckURL(tt.url))
		if !ok {
			t.Errorf("default: CheckURL(%s) = %v, want *BlockedError", tt.url, def.CheckURL(tt.url))
			continue
		}
		if be.Addr != netip.MustParseAddr(tt.addr) {
			t.Errorf("default: CheckURL(%s) blocked %s, want %s", tt.url, be.Addr, tt.addr)
		}
	}
	for _, tt := range blocked {
		if err := private.CheckURL(tt.url); err != nil {
			t.Errorf("AllowPrivate: CheckURL(%s) = %v, want nil", tt.url, err)
		}
	}
	for _, tt := range metadata {
		if err := private.CheckURL(tt.url); !IsBlocked(err) {
			t.Errorf("AllowPrivate: CheckURL(%s) = %v, want metadata blocked", tt.url, err)
		}
	}
}

func TestCheckURLAccepts(t *testing.T) {
	t.Parallel()
	c := New(Options{Resolver: failingResolver(t)})
	for _, u := range []string{
		"http://example.com/",
		"https://example.com:8443/hook?x=1#frag",
		"HTTPS://Example.COM/",
		"http://example.com./",
		"http://8.8.8.8/",
		"http://010.0.0.1/", // octal 010 is 8: 8.0.0.1 is public
		"http://[2606:4700::1111]:443/",
		"http://hook.example.invalid/", // names are not resolved here
		"http://internal.corp/",
		"http://localhost.example.com/",
		"http://1e100.net/",
		"http://0xfoo.com/",
	} {
		if err := c.CheckURL(u); err != nil {
			t.Errorf("CheckURL(%s) = %v, want nil", u, err)
		}
	}
}

func TestCheckURLAllowPrefix(t *testing.T) {
	t.Parallel()
	c := New(Options{Policy: &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("::1/128")}}})
	// localhost may still be reached over ::1, so it passes; 127.0.0.1 itself does not.
	if err := c.CheckURL("http://localhost/"); err != nil {
		t.Errorf("localhost with ::1 allowed: %v", err)
	}
	if err := c.CheckURL("http://127.0.0.1/"); !IsBlocked(err) {
		t.Errorf("127.0.0.1 with only ::1 allowed: %v, want blocked", err)
	}
	c = New(Options{Policy: &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}}})
	if err := c.CheckURL("http://169.254.169.254/"); err != nil {
		t.Errorf("explicitly allowed metadata: %v", err)
	}
}

func TestCheckURLBlockedMessage(t *testing.T) {
	t.Parallel()
	c := New(Options{})
	tests := []struct{ url, want string }{
		{"http://127.0.0.1:3000/", "target address 127.0.0.1 (loopback) is blocked; start the server with --allow-private-targets or --allow-targets 127.0.0.1/32 to allow it"},
		{"http://2130706433/", "2130706433 resolves to 127.0.0.1 (loopback), which is blocked; start the server with --allow-private-targets or --allow-targets 127.0.0.1/32 to allow it"},
		{"http://localhost:3000/hook", "localhost resolves to 127.0.0.1 (loopback), which is blocked; start the server with --allow-private-targets or --allow-targets 127.0.0.1/32 to allow it"},
		{"http://169.254.169.254/", "target address 169.254.169.254 (cloud metadata) is blocked; it stays blocked under --allow-private-targets, and only --allow-targets 169.254.169.254/32 opens it"},
	}
	for _, tt := range tests {
		if err := c.CheckURL(tt.url); err == nil || err.Error() != tt.want {
			t.Errorf("CheckURL(%s) =\n  %v\nwant\n  %s", tt.url, err, tt.want)
		}
	}
}

// FuzzCheckURL checks that whatever CheckURL accepts is an http(s) URL with a host,
// and that an accepted IP literal passes the policy.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"http://example.com/", "http://127.1/", "http://[::ffff:127.0.0.1]/", "http://0x7f.1/",
		"http://user@evil.com@127.0.0.1/", "gopher://x/", "http://[fe80::1%25eth0]/", "http://017700000001/",
		"http://１２７．０．０．１/", "http://localhost./",
	} {
		f.Add(s)
	}
	c := New(Options{})
	f.Fuzz(func(t *testing.T, s string) {
		if c.CheckURL(s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("accepted %q that url.Parse rejects: %v", s, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("accepted scheme %q", u.Scheme)
		}
		if u.Hostname() == "" || len(s) > MaxURLLength {
			t.Fatalf("accepted %q", s)
		}
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			if err := c.policy.CheckAddr(a); err != nil {
				t.Fatalf("accepted %q whose literal is blocked: %v", s, err)
			}
		}
		if a, ok, err := parseLooseIPv4(normalizeName(u.Hostname())); ok && err == nil {
			if err := c.policy.CheckAddr(a); err != nil {
				t.Fatalf("accepted %q whose numeric host is blocked: %v", s, err)
			}
		}
	})
}
