package ipvlan

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/lanparent"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// Driver options of an ipvlan network (under netlabel.GenericData), as
// docker names them.
const (
	// ParentOption names the parent interface in the controller's
	// namespace; "eth0.10" is VLAN 10 on eth0, created when missing. No
	// parent makes an internal network.
	ParentOption = lanparent.ParentOption
	// ModeOption is the ipvlan mode: ModeL2 (the default), ModeL3 or
	// ModeL3S.
	ModeOption = "ipvlan_mode"
	// FlagOption is the ipvlan flag: FlagBridge (the default),
	// FlagPrivate or FlagVEPA.
	FlagOption = "ipvlan_flag"
	// MTUOption is the MTU of the network's interfaces (default: the
	// parent's); it may not exceed the parent's.
	MTUOption = netlabel.DriverMTU
)

// Modes (ModeOption).
const (
	// ModeL2: endpoints are on the parent's link layer (sharing its MAC)
	// and use the network's gateway.
	ModeL2 = "l2"
	// ModeL3: the parent routes the endpoints' packets; no broadcast nor
	// multicast, no gateway: the endpoints' default routes go through
	// their interface.
	ModeL3 = "l3"
	// ModeL3S is ModeL3 with the packets going through the controller
	// namespace's netfilter (l3 "symmetric").
	ModeL3S = "l3s"
)

// Flags (FlagOption).
const (
	// FlagBridge: endpoints on one parent reach each other directly.
	FlagBridge = "bridge"
	// FlagPrivate: endpoints on one parent do not reach each other.
	FlagPrivate = "private"
	// FlagVEPA: everything goes out of the parent; endpoints reach each
	// other only through a switch that sends frames back (hairpin).
	FlagVEPA = "vepa"
)

// linkModes maps a mode to the kernel's.
var linkModes = map[string]netlink.IPVlanMode{
	ModeL2:  netlink.IPVLAN_MODE_L2,
	ModeL3:  netlink.IPVLAN_MODE_L3,
	ModeL3S: netlink.IPVLAN_MODE_L3S,
}

// linkFlags maps a flag to the kernel's.
var linkFlags = map[string]netlink.IPVlanFlag{
	FlagBridge:  netlink.IPVLAN_FLAG_BRIDGE,
	FlagPrivate: netlink.IPVLAN_FLAG_PRIVATE,
	FlagVEPA:    netlink.IPVLAN_FLAG_VEPA,
}

// networkConfig is an ipvlan network's configuration, parsed once from
// CreateNetwork's arguments.
type networkConfig struct {
	parent   string // "" for an internal network
	mode     string
	flag     string
	mtu      int // 0: the parent's
	internal bool
	subnets  []netip.Prefix
	gw4, gw6 net.IP
}

// routed says the mode has no gateway: the parent routes.
func (c networkConfig) routed() bool { return c.mode == ModeL3 || c.mode == ModeL3S }

// parseNetworkConfig turns CreateNetwork's arguments into a networkConfig;
// bad input is a BadRequest naming the option and the value.
func parseNetworkConfig(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) (networkConfig, error) {
	c := networkConfig{mode: ModeL2, flag: FlagBridge}
	gen, err := lanparent.DriverOptions(NetworkType, opts, ParentOption, ModeOption, FlagOption, MTUOption)
	if err != nil {
		return c, types.BadRequestErrorf("ipvlan network %s: %w", nid, err)
	}
	c.parent = gen[ParentOption]
	if m, ok := gen[ModeOption]; ok && m != "" {
		if _, known := linkModes[m]; !known {
			return c, types.BadRequestErrorf("ipvlan network %s: option %s: unknown mode %q (want %s, %s or %s)",
				nid, ModeOption, m, ModeL2, ModeL3, ModeL3S)
		}
		c.mode = m
	}
	if f, ok := gen[FlagOption]; ok && f != "" {
		if _, known := linkFlags[f]; !known {
			return c, types.BadRequestErrorf("ipvlan network %s: option %s: unknown flag %q (want %s, %s or %s)",
				nid, FlagOption, f, FlagBridge, FlagPrivate, FlagVEPA)
		}
		c.flag = f
	}
	a, err := lanparent.ParseAddressing(NetworkType, nid, gen, MTUOption, opts, c.parent != "", ipV4Data, ipV6Data)
	if err != nil {
		return c, err
	}
	c.mtu, c.internal, c.subnets, c.gw4, c.gw6 = a.MTU, a.Internal, a.Subnets, a.GW4, a.GW6
	return c, nil
}
