package resolvconf

import (
	"bytes"
	"net/netip"
	"strings"
)

// fields splits one resolv.conf line into words, ignoring everything from
// the first '#' or ';' on, as the resolver does for comment lines.
func fields(line []byte) []string {
	if i := bytes.IndexAny(line, "#;"); i >= 0 {
		line = line[:i]
	}
	return strings.Fields(string(line))
}

// forEachLine calls fn for every line of content, newline included (the
// last line may lack one), with its words.
func forEachLine(content []byte, fn func(line []byte, words []string)) {
	for len(content) > 0 {
		n := bytes.IndexByte(content, '\n') + 1
		if n == 0 {
			n = len(content)
		}
		line := content[:n]
		fn(line, fields(line))
		content = content[n:]
	}
}

// nameserver returns the address of a "nameserver" line, and false for
// any other line, including a nameserver line whose address is malformed.
func nameserver(words []string) (netip.Addr, bool) {
	if len(words) < 2 || words[0] != "nameserver" {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(words[1])
	if err != nil {
		return netip.Addr{}, false
	}
	return addr, true
}

// GetNameservers returns the addresses of the nameserver lines of content,
// IPv4 and IPv6, in order and as written. Lines whose address does not
// parse are skipped.
func GetNameservers(content []byte) []string {
	var out []string
	forEachLine(content, func(_ []byte, words []string) {
		if _, ok := nameserver(words); ok {
			out = append(out, words[1])
		}
	})
	return out
}

// GetSearchDomains returns the search domains of content. As in the
// resolver, "search" and "domain" lines replace each other and the last
// one wins; a "domain" line gives a single domain.
func GetSearchDomains(content []byte) []string {
	var out []string
	forEachLine(content, func(_ []byte, words []string) {
		if len(words) == 0 {
			return
		}
		switch words[0] {
		case "search":
			out = append([]string(nil), words[1:]...)
		case "domain":
			out = append([]string(nil), words[1:min(2, len(words))]...)
		}
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// GetOptions returns the options of content. As in the resolver, the
// options of every "options" line add up, in order.
func GetOptions(content []byte) []string {
	var out []string
	forEachLine(content, func(_ []byte, words []string) {
		if len(words) > 1 && words[0] == "options" {
			out = append(out, words[1:]...)
		}
	})
	return out
}

// DefaultIPv4DNS returns the IPv4 nameservers FilterResolvDNS falls back
// to: Google's public DNS.
func DefaultIPv4DNS() []string { return []string{"8.8.8.8", "8.8.4.4"} }

// DefaultIPv6DNS returns the IPv6 nameservers FilterResolvDNS falls back
// to when IPv6 is enabled: Google's public DNS.
func DefaultIPv6DNS() []string { return []string{"2001:4860:4860::8888", "2001:4860:4860::8844"} }

// FilterResolvDNS returns content without the nameservers a container
// cannot reach: loopback ones (127.0.0.0/8, ::1, and their IPv4-mapped
// forms), which would be the container's own loopback, and IPv6 ones when
// ipv6Enabled is false. Every other line (search, options, comments,
// malformed lines) is kept as written. If no nameserver with a valid
// address is left, it appends DefaultIPv4DNS and, when ipv6Enabled,
// DefaultIPv6DNS. The input is not modified.
func FilterResolvDNS(content []byte, ipv6Enabled bool) []byte {
	out := make([]byte, 0, len(content)+128)
	kept := 0
	forEachLine(content, func(line []byte, words []string) {
		if addr, ok := nameserver(words); ok {
			addr = addr.Unmap()
			if addr.IsLoopback() || (addr.Is6() && !ipv6Enabled) {
				return
			}
			kept++
		}
		out = append(out, line...)
	})
	if kept > 0 {
		return out
	}
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	defaults := DefaultIPv4DNS()
	if ipv6Enabled {
		defaults = append(defaults, DefaultIPv6DNS()...)
	}
	for _, ns := range defaults {
		out = append(out, "nameserver "...)
		out = append(out, ns...)
		out = append(out, '\n')
	}
	return out
}
