package outbound

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxURLLength bounds a target URL; longer ones are refused at create time.
const MaxURLLength = 2048

var (
	localhostV4 = netip.MustParseAddr("127.0.0.1")
	localhostV6 = netip.MustParseAddr("::1")
)

// CheckURL is the create-time check of a target URL: http or https only, a host is
// required, no user info, and a host written as an IP address, in any form a URL or a
// resolver may accept ("[::ffff:127.0.0.1]", "127.1", "2130706433", "0x7f.1", "0"),
// must pass the policy, as must "localhost" and names under ".localhost" (RFC 6761).
// Other names are not resolved here; the dial-time check covers them.
//
// A blocked address gives a *BlockedError; any other error describes what is wrong with the URL.
func (c *Client) CheckURL(raw string) error {
	if len(raw) > MaxURLLength {
		return fmt.Errorf("invalid target URL: longer than %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("invalid target URL: %v", err)
	}
	return c.CheckParsed(u)
}

// CheckParsed is CheckURL for a URL its caller has already parsed (and checked for length).
func (c *Client) CheckParsed(u *url.URL) error {
	switch u.Scheme {
	case "http", "https":
	case "":
		return errors.New("invalid target URL: the scheme is missing; use http:// or https://")
	default:
		return fmt.Errorf("invalid target URL: scheme %q is not allowed; use http or https", u.Scheme)
	}
	if u.User != nil {
		return errors.New("invalid target URL: user info (user:password@) is not allowed; send credentials in a header")
	}
	host := u.Hostname()
	if u.Opaque != "" || host == "" {
		return errors.New("invalid target URL: the host is missing")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid target URL: port %q is out of range", port)
		}
	}
	return c.checkHost(host, strings.HasPrefix(u.Host, "["))
}

func (c *Client) checkHost(host string, bracketed bool) error {
	if a, err := netip.ParseAddr(host); err == nil {
		return c.policy.CheckAddr(a)
	} else if bracketed {
		return fmt.Errorf("invalid target URL: %q is not an IPv6 address", host)
	}

	name := normalizeName(host)
	a, numeric, err := parseLooseIPv4(name)
	if err != nil {
		return err
	}
	if numeric {
		return withHost(c.policy.CheckAddr(a), host)
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		err := c.policy.CheckAddr(localhostV4)
		if err != nil && c.policy.CheckAddr(localhostV6) == nil {
			return nil // the dial may still reach loopback over IPv6
		}
		return withHost(err, host)
	}
	return nil
}

func withHost(err error, host string) error {
	if be, ok := errors.AsType[*BlockedError](err); ok {
		be.Host = host
	}
	return err
}

// normalizeName folds a host name the way it will be dialled: lower case,
// full-width forms mapped to ASCII, one trailing dot dropped.
func normalizeName(host string) string {
	return strings.ToLower(strings.TrimSuffix(foldWidth(host), "."))
}

// foldWidth maps the full-width forms that IDNA folds to ASCII ("１２７．０．０．１",
// the ideographic full stop) so they are judged like the ASCII host the transport will dial.
func foldWidth(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r >= utf8.RuneSelf }) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E:
			return r - 0xFEE0
		case r == 0x3002 || r == 0xFF61:
			return '.'
		}
		return r
	}, s)
}

// parseLooseIPv4 reads the numeric host forms that inet_aton (and so the cgo resolver)
// and the WHATWG URL standard accept: one to four parts, each decimal, octal with a
// leading 0, or hex with 0x; the last part fills the remaining bytes ("127.1", "2130706433").
// Following WHATWG, a host whose last label is numeric is either such an address or invalid.
// numeric is false for ordinary names.
func parseLooseIPv4(host string) (a netip.Addr, numeric bool, err error) {
	labels := strings.Split(host, ".")
	if !isNumericLabel(labels[len(labels)-1]) {
		return netip.Addr{}, false, nil
	}
	invalid := fmt.Errorf("invalid target URL: host %q looks like an IPv4 address but is not a valid one", host)
	if len(labels) > 4 {
		return netip.Addr{}, true, invalid
	}
	var v uint64
	for i, l := range labels {
		n, ok := parseIPv4Part(l)
		if !ok {
			return netip.Addr{}, true, invalid
		}
		if i < len(labels)-1 {
			if n > 0xFF {
				return netip.Addr{}, true, invalid
			}
			v = v<<8 | n
			continue
		}
		rest := uint(8 * (4 - i)) // bits left for the last part
		if n >= 1<<rest {
			return netip.Addr{}, true, invalid
		}
		v = v<<rest | n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, nil
}

func isNumericLabel(s string) bool {
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		return strings.Trim(s[2:], "0123456789abcdefABCDEF") == ""
	}
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func parseIPv4Part(s string) (uint64, bool) {
	if !isNumericLabel(s) {
		return 0, false
	}
	base := 10
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		s, base = s[2:], 16
		if s == "" {
			return 0, true // "0x" alone is zero
		}
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	}
	n, err := strconv.ParseUint(s, base, 32)
	return n, err == nil
}
