// Package ipamutils holds the built-in default address pools and the helpers
// that enumerate the subnets a pool specification is carved into.
//
// The defaults follow docker's:
//
//   - local IPv4: 172.17.0.0/16 through 172.31.0.0/16 (one /16 each), then
//     192.168.0.0/16 carved into /20s;
//   - global IPv4: 10.0.0.0/8 carved into /24s.
//
// For IPv6, docker carves fd00::/8 into /64s. Its first 2^48 subnets all lie
// in fd00::/16, so the local default here is fd00::/16 carved into /64s,
// which hands out exactly the subnets docker would. The global default is the
// next ULA /16, fd01::/16 carved into /64s, so that local and global networks
// never get the same IPv6 subnet by default.
package ipamutils

import (
	"net/netip"

	"github.com/netkit/libnetwork/config"
)

// LocalDefaultPools returns the default pools of the local address space,
// IPv4 first, then IPv6. The caller owns the returned slice.
func LocalDefaultPools() []config.PoolSpec {
	pools := make([]config.PoolSpec, 0, 17)
	for b := 17; b <= 31; b++ {
		base := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(b), 0, 0}), 16)
		pools = append(pools, config.PoolSpec{Base: base, Size: 16})
	}
	return append(pools,
		config.PoolSpec{Base: netip.MustParsePrefix("192.168.0.0/16"), Size: 20},
		config.PoolSpec{Base: netip.MustParsePrefix("fd00::/16"), Size: 64},
	)
}

// GlobalDefaultPools returns the default pools of the global address space,
// IPv4 first, then IPv6. The caller owns the returned slice.
func GlobalDefaultPools() []config.PoolSpec {
	return []config.PoolSpec{
		{Base: netip.MustParsePrefix("10.0.0.0/8"), Size: 24},
		{Base: netip.MustParsePrefix("fd01::/16"), Size: 64},
	}
}
