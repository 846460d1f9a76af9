package resolver

import (
	"net/netip"
	"strings"
)

const (
	v4Suffix = ".in-addr.arpa"
	v6Suffix = ".ip6.arpa"
)

// parseReverse parses a full reverse-lookup name (lowercase, without the
// trailing dot) into the address it names: "4.3.2.1.in-addr.arpa" is
// 1.2.3.4, and 32 single-hex-digit labels under "ip6.arpa" an IPv6 address.
// Anything else, including partial names (a zone such as "3.2.1.in-addr.arpa"
// or RFC 2317 classless delegations), labels with leading zeros, and
// non-canonical spellings, is not an address: ok is false.
func parseReverse(name string) (addr netip.Addr, ok bool) {
	switch {
	case strings.HasSuffix(name, v4Suffix):
		return parseReverse4(name[:len(name)-len(v4Suffix)])
	case strings.HasSuffix(name, v6Suffix):
		return parseReverse6(name[:len(name)-len(v6Suffix)])
	}
	return netip.Addr{}, false
}

// parseReverse4 parses "d.c.b.a" (four decimal octets, most significant
// last) into a.b.c.d.
func parseReverse4(s string) (netip.Addr, bool) {
	var b [4]byte
	for i := 3; i >= 0; i-- {
		label := s
		if i > 0 {
			dot := strings.IndexByte(s, '.')
			if dot < 0 {
				return netip.Addr{}, false
			}
			label, s = s[:dot], s[dot+1:]
		}
		v, ok := parseOctet(label)
		if !ok {
			return netip.Addr{}, false
		}
		b[i] = v
	}
	return netip.AddrFrom4(b), true
}

// parseOctet parses a decimal 0..255 written without leading zeros.
func parseOctet(s string) (byte, bool) {
	if len(s) == 0 || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}

// parseReverse6 parses 32 dot-separated hex nibbles, least significant
// first, into an IPv6 address. An IPv4-mapped address stays an IPv6
// address: the name asked about IPv6.
func parseReverse6(s string) (netip.Addr, bool) {
	// 32 nibbles and 31 dots between them.
	if len(s) != 63 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for i := 0; i < 32; i++ {
		if i > 0 && s[2*i-1] != '.' {
			return netip.Addr{}, false
		}
		n, ok := hexNibble(s[2*i])
		if !ok {
			return netip.Addr{}, false
		}
		j := 31 - i // nibble index from the most significant
		if j%2 == 0 {
			b[j/2] |= n << 4
		} else {
			b[j/2] |= n
		}
	}
	return netip.AddrFrom16(b), true
}

// hexNibble parses one lowercase hex digit.
func hexNibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// ParseReverse parses a full reverse-lookup name, in any case and with or
// without the trailing dot, as the handler does for PTR queries, so that
// the root package's Sandbox.ResolveIP accepts exactly what the DNS server
// answers.
func ParseReverse(name string) (netip.Addr, bool) {
	return parseReverse(strings.ToLower(strings.TrimSuffix(name, ".")))
}
