package lanparent

import (
	"net"
	"net/netip"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/types"
)

// Addressing is what a network's driver-independent options and IPAM data
// say, the same for every driver of this package's kind.
type Addressing struct {
	// MTU is the MTU option's, 0 for the parent's.
	MTU int
	// Internal: the network reaches nothing outside (netlabel.Internal,
	// or no parent, as in docker).
	Internal bool
	// Subnets are the network's pools, IPv6 ones only with IPv6 on.
	Subnets []netip.Prefix
	// GW4 and GW6 are the first gateway of each family, or nil.
	GW4, GW6 net.IP
}

// ParseAddressing reads the MTU driver option mtuOption of gen, the
// generic options opts and the IPAM data of network nid of driver; bad
// input is a BadRequest naming the option or pool. hasParent says the
// network names a parent.
func ParseAddressing(driver, nid string, gen map[string]string, mtuOption string, opts map[string]interface{}, hasParent bool, ipV4Data, ipV6Data []driverapi.IPAMData) (Addressing, error) {
	var a Addressing
	if s, ok := gen[mtuOption]; ok && s != "" && s != "0" {
		mtu, _, err := options.GetInt(map[string]interface{}{mtuOption: s}, mtuOption)
		if err != nil {
			return a, types.BadRequestErrorf("%s network %s: %w", driver, nid, err)
		}
		if mtu < 68 || mtu > 65535 {
			return a, types.BadRequestErrorf("%s network %s: option %s: %d is out of range 68..65535", driver, nid, mtuOption, mtu)
		}
		a.MTU = mtu
	}
	internal, _, err := options.GetBool(opts, netlabel.Internal)
	if err != nil {
		return a, types.BadRequestErrorf("%s network %s: %w", driver, nid, err)
	}
	// As docker: no parent makes an internal network, whose parent
	// reaches nothing.
	a.Internal = internal || !hasParent
	v6, _, err := options.GetBool(opts, netlabel.EnableIPv6)
	if err != nil {
		return a, types.BadRequestErrorf("%s network %s: %w", driver, nid, err)
	}
	add := func(d driverapi.IPAMData, six bool) error {
		if d.Pool == nil {
			return types.BadRequestErrorf("%s network %s: IPAM data without a pool", driver, nid)
		}
		p, ok := prefixOf(d.Pool)
		if !ok || p.Addr().Is6() != six {
			return types.BadRequestErrorf("%s network %s: pool %s is not an IPv%d pool", driver, nid, d.Pool, map[bool]int{false: 4, true: 6}[six])
		}
		a.Subnets = append(a.Subnets, p.Masked())
		if d.Gateway == nil {
			return nil
		}
		if !d.Pool.Contains(d.Gateway.IP) {
			return types.BadRequestErrorf("%s network %s: gateway %s is outside pool %s", driver, nid, d.Gateway.IP, d.Pool)
		}
		if six && a.GW6 == nil {
			a.GW6 = d.Gateway.IP
		}
		if !six && a.GW4 == nil {
			a.GW4 = d.Gateway.IP
		}
		return nil
	}
	for _, d := range ipV4Data {
		if err := add(d, false); err != nil {
			return a, err
		}
	}
	if v6 {
		for _, d := range ipV6Data {
			if err := add(d, true); err != nil {
				return a, err
			}
		}
	}
	return a, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	ones, bits := n.Mask.Size()
	if bits != addr.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(addr, ones), true
}
