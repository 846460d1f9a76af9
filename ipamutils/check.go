package ipamutils

import (
	"net"
	"net/netip"

	"github.com/netkit/libnetwork/types"
)

// reserved are the ranges no pool may overlap, with the reason given.
var reserved = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "it holds the unspecified address 0.0.0.0 (0.0.0.0/8, this host)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "it overlaps the loopback range 127.0.0.0/8"},
	{netip.MustParsePrefix("169.254.0.0/16"), "it overlaps the link-local range 169.254.0.0/16"},
	{netip.MustParsePrefix("224.0.0.0/4"), "it overlaps the multicast range 224.0.0.0/4"},
	{netip.MustParsePrefix("::/128"), "it holds the unspecified address ::"},
	{netip.MustParsePrefix("::1/128"), "it holds the loopback address ::1"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "it overlaps the IPv4-mapped range ::ffff:0:0/96"},
	// The kernel gives every interface an address of fe80::/64. The rest
	// of fe80::/10 is allowed, as docker allows it (and v0.7's tests use
	// fe90::/64).
	{netip.MustParsePrefix("fe80::/64"), "it overlaps the link-local prefix fe80::/64 of every interface"},
	{netip.MustParsePrefix("ff00::/8"), "it overlaps the multicast range ff00::/8"},
}

// CheckPool refuses, with a types.BadRequestError naming p and the reason,
// a pool that cannot be right for a network: any /0 (every forwarded packet
// would be the network's), one overlapping the unspecified, loopback,
// link-local (169.254.0.0/16, fe80::/64), multicast or IPv4-mapped
// ranges, and one with no room for a
// host beside the gateway (IPv4 /32, IPv6 /128). IPv4 /31 and IPv6 /127
// pools are point-to-point links (RFC 3021, RFC 6164): two addresses, the
// gateway and one host, as docker allows them.
func CheckPool(p netip.Prefix) error {
	if !p.IsValid() {
		return types.BadRequestErrorf("pool %v: not a valid prefix", p)
	}
	if p.Addr().Zone() != "" {
		return types.BadRequestErrorf("pool %v: a pool has no zone", p)
	}
	p = p.Masked()
	if p.Bits() == 0 {
		return types.BadRequestErrorf("pool %v: it covers every address", p)
	}
	for _, r := range reserved {
		if r.prefix.Overlaps(p) {
			return types.BadRequestErrorf("pool %v: %s", p, r.reason)
		}
	}
	if p.Bits() == p.Addr().BitLen() {
		return types.BadRequestErrorf("pool %v: no room for a host beside the gateway", p)
	}
	return nil
}

// HostRange returns the first and last addresses of p that may be given to
// the gateway or a host: all but the network address (for IPv6 the
// subnet-router anycast address) and, for IPv4, the broadcast address.
// Point-to-point pools (IPv4 /31 and /32, IPv6 /127 and /128) have none
// reserved.
func HostRange(p netip.Prefix) (first, last netip.Addr) {
	p = p.Masked()
	first, last = p.Addr(), LastAddr(p)
	if p.Bits() < p.Addr().BitLen()-1 {
		first = first.Next()
		if p.Addr().Is4() {
			last = last.Prev()
		}
	}
	return first, last
}

// CheckSubPool refuses, with a types.BadRequestError, a sub-pool of pool
// (already checked to lie inside it) from which no host could get an
// address: one holding only reserved addresses, or a single address the
// gateway takes. gw is the gateway asked for, or the zero Addr when the
// gateway is to come from the sub-pool.
func CheckSubPool(pool, sub netip.Prefix, gw netip.Addr) error {
	first, last := HostRange(pool)
	sub = sub.Masked()
	lo, hi := sub.Addr(), LastAddr(sub)
	if lo.Less(first) {
		lo = first
	}
	if last.Less(hi) {
		hi = last
	}
	switch {
	case hi.Less(lo):
		return types.BadRequestErrorf("sub-pool %v of pool %v: it holds no address that can be given out", sub, pool)
	case lo == hi && (!gw.IsValid() || gw == lo):
		return types.BadRequestErrorf("sub-pool %v of pool %v: no room for a host beside the gateway", sub, pool)
	}
	return nil
}

// IPNet returns p as a *net.IPNet, its address unmasked (10.0.0.5/24
// stays 10.0.0.5/24).
func IPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
