package overlay

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/lanparent"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// Driver options of an overlay network (under netlabel.GenericData), as
// docker names them.
const (
	// VXLANIDListOption holds the network's VNIs, comma-separated, one per
	// IPv4 subnet in the order of the IPAM data ("4097,4098"). It is
	// required: the controller allocates the VNIs in the global store,
	// so that every host uses the same ones.
	VXLANIDListOption = netlabel.DriverPrefix + ".overlay.vxlanid_list"
	// MTUOption is the MTU of the network's interfaces; by default the
	// MTU of the underlay interface (the one holding the VTEP address)
	// less the VXLAN overhead. It may not exceed that.
	MTUOption = netlabel.DriverMTU
)

// encryptedOption is docker's option for IPsec between the hosts of a
// network, which the driver refuses by name.
const encryptedOption = "encrypted"

// VNI bounds: 24 bits, 0 reserved.
const (
	MinVNI = 1
	MaxVNI = 1<<24 - 1
)

// Encapsulation overhead: outer Ethernet (14), IP (20 or 40), UDP (8) and
// VXLAN (8) headers.
const (
	overheadIPv4 = 50
	overheadIPv6 = 70
)

// networkConfig is an overlay network's configuration, parsed once from
// CreateNetwork's arguments.
type networkConfig struct {
	// mtu is the MTU option's; 0 for the underlay's less the overhead.
	mtu int
	// segments are the network's layer-2 segments, one per VNI.
	segments []segmentConfig
}

// segmentConfig is one VNI of a network and the subnets on it.
type segmentConfig struct {
	vni int
	// subnets are the pools whose endpoints sit on the segment: one IPv4
	// pool (or, in a network without IPv4 pools, one IPv6 pool); the
	// first segment also carries the IPv6 pools of a dual-stack network.
	subnets []netip.Prefix
}

// parseNetworkConfig turns CreateNetwork's arguments into a
// networkConfig. Bad input is an *OptionError naming the option, or a
// BadRequest naming the pool.
func parseNetworkConfig(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) (networkConfig, error) {
	var c networkConfig
	gen, err := lanparent.DriverOptions(NetworkType, opts, VXLANIDListOption, MTUOption, encryptedOption)
	if err != nil {
		return c, types.BadRequestErrorf("overlay network %s: %w", nid, err)
	}
	if v, ok := gen[encryptedOption]; ok {
		return c, &OptionError{Network: nid, Option: encryptedOption, Value: v,
			Reason: "encrypted overlay networks (docker's IPsec between hosts) are not supported"}
	}
	a, err := lanparent.ParseAddressing(NetworkType, nid, gen, MTUOption, opts, true, ipV4Data, ipV6Data)
	if err != nil {
		return c, err
	}
	c.mtu = a.MTU
	var v4, v6 []netip.Prefix
	for _, p := range a.Subnets {
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	// One segment per IPv4 pool, as docker; IPv6 pools ride on the first
	// (dual stack), or have segments of their own if there is no IPv4.
	perVNI, shared := v4, v6
	if len(v4) == 0 {
		perVNI, shared = v6, nil
	}
	if len(perVNI) == 0 {
		return c, types.BadRequestErrorf("overlay network %s: no subnet (IPAM gave no pool)", nid)
	}
	raw, ok := gen[VXLANIDListOption]
	if !ok || strings.TrimSpace(raw) == "" {
		return c, &OptionError{Network: nid, Option: VXLANIDListOption,
			Reason: fmt.Sprintf("missing: the controller must give one VNI (%d..%d) per IPv4 subnet, comma-separated", MinVNI, MaxVNI)}
	}
	vnis, err := ParseVNIs(nid, raw)
	if err != nil {
		return c, err
	}
	if len(vnis) != len(perVNI) {
		return c, &OptionError{Network: nid, Option: VXLANIDListOption, Value: raw,
			Reason: fmt.Sprintf("%d VNIs for %d subnets (%s): one VNI per subnet", len(vnis), len(perVNI), prefixList(perVNI))}
	}
	for i, vni := range vnis {
		s := segmentConfig{vni: vni, subnets: []netip.Prefix{perVNI[i]}}
		if i == 0 {
			s.subnets = append(s.subnets, shared...)
		}
		c.segments = append(c.segments, s)
	}
	return c, nil
}

// ParseVNIs parses the VXLANIDListOption of network nid: comma-separated
// decimal VNIs in MinVNI..MaxVNI, no duplicates. A bad list is an
// *OptionError.
func ParseVNIs(nid, raw string) ([]int, error) {
	var vnis []int
	seen := map[int]bool{}
	for _, f := range strings.Split(raw, ",") {
		f = strings.TrimSpace(f)
		vni, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, &OptionError{Network: nid, Option: VXLANIDListOption, Value: raw,
				Reason: fmt.Sprintf("%q is not a VNI (a decimal number %d..%d)", f, MinVNI, MaxVNI)}
		}
		if vni < MinVNI || vni > MaxVNI {
			return nil, &OptionError{Network: nid, Option: VXLANIDListOption, Value: raw,
				Reason: fmt.Sprintf("VNI %d is out of range %d..%d", vni, MinVNI, MaxVNI)}
		}
		if seen[int(vni)] {
			return nil, &OptionError{Network: nid, Option: VXLANIDListOption, Value: raw,
				Reason: fmt.Sprintf("VNI %d appears twice", vni)}
		}
		seen[int(vni)] = true
		vnis = append(vnis, int(vni))
	}
	return vnis, nil
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// segmentOf returns the index of the segment holding ip, or -1.
func (c *networkConfig) segmentOf(ip net.IP) int {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return -1
	}
	addr = addr.Unmap()
	for i, s := range c.segments {
		for _, p := range s.subnets {
			if p.Contains(addr) {
				return i
			}
		}
	}
	return -1
}

// overhead is the VXLAN encapsulation overhead over an underlay of vtep's
// family.
func overhead(vtep net.IP) int {
	if vtep.To4() != nil {
		return overheadIPv4
	}
	return overheadIPv6
}
