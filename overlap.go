package libnetwork

import (
	"net"
	"net/netip"

	"github.com/netkit/libnetwork/ipamutils"
)

// subnetIndex holds the pools of the registered networks by IPAM driver and
// address space, so that checkOverlapLocked costs the same whatever the
// number of networks: walking every network's subnets made NewNetwork
// O(networks). It is guarded by controller.mu and changes with
// controller.networks. Pools may nest or repeat: IPAM drivers other than
// the default one may give overlapping pools.
type subnetIndex struct {
	spaces map[subnetSpace]*ipamutils.PrefixIndex[*network]
}

type subnetSpace struct{ ipamType, addrSpace string }

// add indexes n's pools.
func (x *subnetIndex) add(n *network) {
	k := subnetSpace{n.ipamType, n.addrSpace}
	for _, p := range poolPrefixes(n) {
		if x.spaces == nil {
			x.spaces = map[subnetSpace]*ipamutils.PrefixIndex[*network]{}
		}
		pi := x.spaces[k]
		if pi == nil {
			pi = &ipamutils.PrefixIndex[*network]{}
			x.spaces[k] = pi
		}
		pi.Add(p, n)
	}
}

// remove drops n's pools.
func (x *subnetIndex) remove(n *network) {
	k := subnetSpace{n.ipamType, n.addrSpace}
	pi := x.spaces[k]
	if pi == nil {
		return
	}
	for _, p := range poolPrefixes(n) {
		pi.Remove(p, n)
	}
	if pi.Len() == 0 {
		delete(x.spaces, k)
	}
}

// overlapping returns a network of ipamType whose pool overlaps want, and
// that pool; with addrSpace "" any address space of ipamType counts.
func (x *subnetIndex) overlapping(ipamType, addrSpace string, want netip.Prefix) (*network, netip.Prefix) {
	for k, pi := range x.spaces {
		if k.ipamType != ipamType || (addrSpace != "" && k.addrSpace != addrSpace) {
			continue
		}
		if p, n, ok := pi.Overlapping(want); ok {
			return n, p
		}
	}
	return nil, netip.Prefix{}
}

// poolPrefixes returns n's pools as masked prefixes.
func poolPrefixes(n *network) []netip.Prefix {
	var out []netip.Prefix
	for _, ipn := range n.subnets() {
		if p, ok := ipNetPrefix(ipn); ok {
			out = append(out, p)
		}
	}
	return out
}

// ipNetPrefix converts ipn to a masked prefix, IPv4 in its 4-byte form.
func ipNetPrefix(ipn *net.IPNet) (netip.Prefix, bool) {
	if ipn == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(ipn.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := ipn.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if addr.Is4In6() {
		addr = addr.Unmap()
		if bits == 128 {
			ones -= 96
		}
	}
	p, err := addr.Prefix(ones)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}
