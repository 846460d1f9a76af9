package ipamutils

import (
	"iter"
	"net/netip"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/types"
)

// ValidatePoolSpec checks that spec has a valid base that CheckPool accepts
// and a subnet size between the base's prefix length and one less than the
// address length (a /32 or /128 subnet leaves no room for a host beside
// the gateway).
func ValidatePoolSpec(spec config.PoolSpec) error {
	if !spec.Base.IsValid() {
		return types.InvalidParameterErrorf("default address pool %v: invalid base prefix", spec.Base)
	}
	if spec.Base.Addr().Is4In6() || spec.Base.Addr().Zone() != "" {
		return types.InvalidParameterErrorf("default address pool %v: base must be a plain IPv4 or IPv6 prefix", spec.Base)
	}
	if spec.Size < spec.Base.Bits() || spec.Size > spec.Base.Addr().BitLen()-1 {
		return types.InvalidParameterErrorf("default address pool %v: size %d must be between %d and %d",
			spec.Base, spec.Size, spec.Base.Bits(), spec.Base.Addr().BitLen()-1)
	}
	if err := CheckPool(spec.Base); err != nil {
		return types.InvalidParameterErrorf("default address pool %v: %w", spec.Base, err)
	}
	return nil
}

// LastAddr returns the highest address of p (the broadcast address of an
// IPv4 subnet).
func LastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		for i := range b {
			b[i] |= hostMaskByte(p.Bits(), i)
		}
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	for i := range b {
		b[i] |= hostMaskByte(p.Bits(), i)
	}
	return netip.AddrFrom16(b)
}

// hostMaskByte returns byte i of the host mask of a prefix of length bits.
func hostMaskByte(bits, i int) byte {
	switch n := bits - 8*i; {
	case n <= 0:
		return 0xff
	case n >= 8:
		return 0
	default:
		return 0xff >> n
	}
}

// SubnetFrom returns the first subnet of spec that starts at or after a, and
// false when there is none. spec must be valid (see ValidatePoolSpec).
func SubnetFrom(spec config.PoolSpec, a netip.Addr) (netip.Prefix, bool) {
	base := spec.Base.Masked()
	if a.BitLen() != base.Addr().BitLen() || a.Is4In6() {
		return netip.Prefix{}, false
	}
	if a.Less(base.Addr()) {
		return netip.PrefixFrom(base.Addr(), spec.Size), true
	}
	if !base.Contains(a) {
		return netip.Prefix{}, false
	}
	p := netip.PrefixFrom(a, spec.Size).Masked()
	if p.Addr() == a {
		return p, true
	}
	next := LastAddr(p).Next()
	if !next.IsValid() || !base.Contains(next) {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(next, spec.Size), true
}

// Subnets enumerates, lazily and in order, the subnets each spec is carved
// into. Invalid specs are skipped; a /8 carved into /64s costs nothing until
// it is iterated.
func Subnets(specs ...config.PoolSpec) iter.Seq[netip.Prefix] {
	return func(yield func(netip.Prefix) bool) {
		for _, spec := range specs {
			if ValidatePoolSpec(spec) != nil {
				continue
			}
			for p, ok := SubnetFrom(spec, spec.Base.Masked().Addr()); ok; {
				if !yield(p) {
					return
				}
				next := LastAddr(p).Next()
				if !next.IsValid() {
					break
				}
				p, ok = SubnetFrom(spec, next)
			}
		}
	}
}
