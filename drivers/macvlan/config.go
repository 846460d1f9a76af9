package macvlan

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/lanparent"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// Driver options of a macvlan network (under netlabel.GenericData), as
// docker names them.
const (
	// ParentOption names the parent interface in the controller's
	// namespace; "eth0.10" is VLAN 10 on eth0, created when missing. No
	// parent makes an internal network.
	ParentOption = lanparent.ParentOption
	// ModeOption is the macvlan mode: ModeBridge (the default),
	// ModePrivate, ModeVEPA or ModePassthru.
	ModeOption = "macvlan_mode"
	// MTUOption is the MTU of the network's interfaces (default: the
	// parent's); it may not exceed the parent's.
	MTUOption = netlabel.DriverMTU
)

// Modes (ModeOption).
const (
	// ModeBridge: endpoints on one parent reach each other directly.
	ModeBridge = "bridge"
	// ModePrivate: endpoints on one parent do not reach each other, even
	// through a hairpinning switch.
	ModePrivate = "private"
	// ModeVEPA: everything goes out of the parent; endpoints reach each
	// other only through a switch that sends frames back (hairpin).
	ModeVEPA = "vepa"
	// ModePassthru: one endpoint takes the parent whole.
	ModePassthru = "passthru"
)

// linkModes maps a mode to the kernel's.
var linkModes = map[string]netlink.MacvlanMode{
	ModeBridge:   netlink.MACVLAN_MODE_BRIDGE,
	ModePrivate:  netlink.MACVLAN_MODE_PRIVATE,
	ModeVEPA:     netlink.MACVLAN_MODE_VEPA,
	ModePassthru: netlink.MACVLAN_MODE_PASSTHRU,
}

// networkConfig is a macvlan network's configuration, parsed once from
// CreateNetwork's arguments.
type networkConfig struct {
	parent   string // "" for an internal network
	mode     string
	mtu      int // 0: the parent's
	internal bool
	subnets  []netip.Prefix
	gw4, gw6 net.IP
}

// parseNetworkConfig turns CreateNetwork's arguments into a networkConfig;
// bad input is a BadRequest naming the option and the value.
func parseNetworkConfig(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) (networkConfig, error) {
	c := networkConfig{mode: ModeBridge}
	gen, err := lanparent.DriverOptions(NetworkType, opts, ParentOption, ModeOption, MTUOption)
	if err != nil {
		return c, types.BadRequestErrorf("macvlan network %s: %w", nid, err)
	}
	c.parent = gen[ParentOption]
	if m, ok := gen[ModeOption]; ok && m != "" {
		if _, known := linkModes[m]; !known {
			return c, types.BadRequestErrorf("macvlan network %s: option %s: unknown mode %q (want %s, %s, %s or %s)",
				nid, ModeOption, m, ModeBridge, ModePrivate, ModeVEPA, ModePassthru)
		}
		c.mode = m
	}
	a, err := lanparent.ParseAddressing(NetworkType, nid, gen, MTUOption, opts, c.parent != "", ipV4Data, ipV6Data)
	if err != nil {
		return c, err
	}
	c.mtu, c.internal, c.subnets, c.gw4, c.gw6 = a.MTU, a.Internal, a.Subnets, a.GW4, a.GW6
	return c, nil
}
