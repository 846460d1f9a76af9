package resolver

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestParseReverse(t *testing.T) {
	const v6zero = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"
	for _, tc := range []struct {
		name string
		want string // "" when not an address
	}{
		{"4.3.2.1.in-addr.arpa", "1.2.3.4"},
		{"0.0.0.0.in-addr.arpa", "0.0.0.0"},
		{"255.255.255.255.in-addr.arpa", "255.255.255.255"},
		{"2.0.18.172.in-addr.arpa", "172.18.0.2"},
		{"1." + v6zero + ".ip6.arpa", "::1"},
		{"2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa", "fd00::2"},
		{"f.e.d.c.b.a.9.8.7.6.5.4.3.2.1.0.f.e.d.c.b.a.9.8.7.6.5.4.3.2.1.0.ip6.arpa", "123:4567:89ab:cdef:123:4567:89ab:cdef"},
		// An IPv4-mapped address asked under ip6.arpa stays IPv6.
		{"4.0.3.0.2.0.1.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa", "::ffff:1.2.3.4"},

		{"", ""},
		{"in-addr.arpa", ""},
		{".in-addr.arpa", ""},
		{"ip6.arpa", ""},
		{"1.2.3.in-addr.arpa", ""},       // a zone, not an address
		{"5.4.3.2.1.in-addr.arpa", ""},   // too many labels
		{"4.3.2.01.in-addr.arpa", ""},    // leading zero
		{"4.3.2.00.in-addr.arpa", ""},    // leading zero
		{"4.3.2.256.in-addr.arpa", ""},   // out of range
		{"4.3.2.1000.in-addr.arpa", ""},  // too long
		{"4.3..1.in-addr.arpa", ""},      // empty label
		{".3.2.1.in-addr.arpa", ""},      // empty label
		{"4.3.2.-1.in-addr.arpa", ""},    // sign
		{"4.3.2.+1.in-addr.arpa", ""},    // sign
		{"4.3.2.a.in-addr.arpa", ""},     // not decimal
		{"4.3.2.1.in-addr.arpa.com", ""}, // wrong suffix
		{"4.3.2.1.in-addrarpa", ""},
		{"4.3.2.1in-addr.arpa", ""},
		{"0/26.3.2.1.in-addr.arpa", ""}, // RFC 2317
		{"4.3.2.1.ip6.arpa", ""},
		{v6zero + ".ip6.arpa", ""},          // 31 nibbles
		{"0." + v6zero + ".0.ip6.arpa", ""}, // 33 nibbles
		{"00." + strings.TrimPrefix(v6zero, "0.") + ".0.ip6.arpa", ""},
		{"g." + v6zero + ".ip6.arpa", ""},
		{"A." + v6zero + ".ip6.arpa", ""}, // the handler lowercases first
		{"0-" + v6zero + ".ip6.arpa", ""},
		{"1." + v6zero + ".in-addr.arpa", ""},
	} {
		got, ok := parseReverse(tc.name)
		if tc.want == "" {
			if ok {
				t.Errorf("parseReverse(%q) = %v, want not an address", tc.name, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tc.want) {
			t.Errorf("parseReverse(%q) = %v, %v; want %s", tc.name, got, ok, tc.want)
		}
	}
}

// FuzzParseReverse checks the parser accepts only canonical names: any
// name it parses is exactly the reverse name of the address it returns.
func FuzzParseReverse(f *testing.F) {
	for _, s := range []string{"4.3.2.1.in-addr.arpa", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa", "1.2.3.in-addr.arpa", "01.2.3.4.in-addr.arpa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		a, ok := parseReverse(name)
		if !ok {
			return
		}
		if a.Is4In6() {
			// dns.ReverseAddr writes these under in-addr.arpa.
			if !strings.HasSuffix(name, v6Suffix) {
				t.Fatalf("parseReverse(%q) = %v outside ip6.arpa", name, a)
			}
			return
		}
		want, err := dns.ReverseAddr(a.String())
		if err != nil {
			t.Fatal(err)
		}
		if want != name+"." {
			t.Fatalf("parseReverse(%q) = %v, whose reverse name is %q", name, a, want)
		}
	})
}
