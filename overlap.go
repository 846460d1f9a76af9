package libnetwork

import (
	"net"
	"net/netip"
	"slices"
)

// subnetIndex holds the pools of the registered networks by IPAM driver and
// address space, so that checkOverlapLocked costs the same whatever the
// number of networks: walking every network's subnets made NewNetwork
// O(networks). It is guarded by controller.mu and changes with
// controller.networks.
type subnetIndex struct {
	// spaces maps an IPAM driver name and an address space to its pools.
	spaces map[subnetSpace]*prefixIndex
}

type subnetSpace struct{ ipamType, addrSpace string }

// prefixIndex holds prefixes that may nest or repeat (IPAM drivers other
// than the default one may give overlapping pools), each with its network.
type prefixIndex struct {
	// exact finds a prefix containing another, by its value.
	exact map[netip.Prefix][]*network
	// sorted finds a prefix inside another, by its address.
	sorted []subnetEntry
}

type subnetEntry struct {
	p netip.Prefix
	n *network
}

func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// add indexes n's pools.
func (x *subnetIndex) add(n *network) {
	for _, p := range poolPrefixes(n) {
		if x.spaces == nil {
			x.spaces = map[subnetSpace]*prefixIndex{}
		}
		k := subnetSpace{n.ipamType, n.addrSpace}
		pi := x.spaces[k]
		if pi == nil {
			pi = &prefixIndex{exact: map[netip.Prefix][]*network{}}
			x.spaces[k] = pi
		}
		pi.exact[p] = append(pi.exact[p], n)
		i, _ := slices.BinarySearchFunc(pi.sorted, p, func(e subnetEntry, p netip.Prefix) int { return comparePrefixes(e.p, p) })
		pi.sorted = slices.Insert(pi.sorted, i, subnetEntry{p, n})
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
		pi.exact[p] = slices.DeleteFunc(pi.exact[p], func(o *network) bool { return o == n })
		if len(pi.exact[p]) == 0 {
			delete(pi.exact, p)
		}
		pi.sorted = slices.DeleteFunc(pi.sorted, func(e subnetEntry) bool { return e.n == n && e.p == p })
	}
	if len(pi.sorted) == 0 {
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
		if n, p := pi.overlapping(want); n != nil {
			return n, p
		}
	}
	return nil, netip.Prefix{}
}

// overlapping returns an entry overlapping want: one containing it (found
// by its exact value for each length up to want's) or one starting inside
// it (the first at or after want's address).
func (pi *prefixIndex) overlapping(want netip.Prefix) (*network, netip.Prefix) {
	for bits := 0; bits <= want.Bits(); bits++ {
		q, err := want.Addr().Prefix(bits)
		if err != nil {
			continue
		}
		if ns := pi.exact[q]; len(ns) > 0 {
			return ns[0], q
		}
	}
	i, _ := slices.BinarySearchFunc(pi.sorted, want, func(e subnetEntry, p netip.Prefix) int { return e.p.Addr().Compare(p.Addr()) })
	if i < len(pi.sorted) && want.Contains(pi.sorted[i].p.Addr()) {
		return pi.sorted[i].n, pi.sorted[i].p
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
