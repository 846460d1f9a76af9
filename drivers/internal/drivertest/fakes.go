package drivertest

import (
	"errors"
	"net"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/osl"
)

// JoinInfo is a driverapi.JoinInfo (and its InterfaceNameInfo and
// SandboxInfo) for a sandbox namespace, recording what the driver
// reports. By default every report is accepted; the Refuse settings make
// one fail, for a driver that must never make it.
type JoinInfo struct {
	// NS is the sandbox's namespace; nil makes NetNSFd -1 (for a join
	// that must not touch a sandbox, such as RestoreEndpoint's).
	NS *osl.Namespace
	// IfName is the name the interface must have in the sandbox.
	IfName string
	// RefuseSetNames makes SetNames fail, for a driver that creates its
	// interface in the sandbox and must never have the controller move
	// one.
	RefuseSetNames bool
	// RefuseStaticRoutes makes AddStaticRoute fail, for a driver that
	// must report no static route.
	RefuseStaticRoutes bool

	// Created is set by SetCreatedInSandbox.
	Created bool
	// Moved is the source name SetNames reported: the interface the
	// controller would move into the sandbox.
	Moved string
	// GW4 and GW6 are the gateways SetGateway and SetGatewayIPv6 reported.
	GW4, GW6 net.IP
	// NoGW is set by DisableGatewayService.
	NoGW bool
	// Routes are the static routes AddStaticRoute reported, in order.
	Routes []Route
}

// Route is a static route a driver reported through AddStaticRoute.
type Route struct {
	// Dst is the destination, as a CIDR ("0.0.0.0/0").
	Dst string
	// Type is the route type (types.NEXTHOP or types.CONNECTED).
	Type int
	// NextHop is the next hop, nil for a connected route.
	NextHop net.IP
}

var (
	_ driverapi.JoinInfo          = (*JoinInfo)(nil)
	_ driverapi.InterfaceNameInfo = (*JoinInfo)(nil)
	_ driverapi.SandboxInfo       = (*JoinInfo)(nil)
	_ driverapi.InterfaceInfo     = (*IfInfo)(nil)
)

// InterfaceName returns j.
func (j *JoinInfo) InterfaceName() driverapi.InterfaceNameInfo { return j }

// Sandbox returns j.
func (j *JoinInfo) Sandbox() driverapi.SandboxInfo { return j }

// NetNSFd returns the descriptor of NS, or -1 without one.
func (j *JoinInfo) NetNSFd() int {
	if j.NS == nil {
		return -1
	}
	return j.NS.Fd()
}

// IfaceName returns IfName.
func (j *JoinInfo) IfaceName() string { return j.IfName }

// SetNames records src in Moved, or fails under RefuseSetNames.
func (j *JoinInfo) SetNames(src, _ string) error {
	if j.RefuseSetNames {
		return errors.New("SetNames called")
	}
	j.Moved = src
	return nil
}

// SetCreatedInSandbox sets Created.
func (j *JoinInfo) SetCreatedInSandbox() error { j.Created = true; return nil }

// SetGateway records ip in GW4.
func (j *JoinInfo) SetGateway(ip net.IP) error { j.GW4 = ip; return nil }

// SetGatewayIPv6 records ip in GW6.
func (j *JoinInfo) SetGatewayIPv6(ip net.IP) error { j.GW6 = ip; return nil }

// AddStaticRoute appends the route to Routes, or fails under
// RefuseStaticRoutes.
func (j *JoinInfo) AddStaticRoute(dst *net.IPNet, typ int, nextHop net.IP) error {
	if j.RefuseStaticRoutes {
		return errors.New("no static routes expected")
	}
	j.Routes = append(j.Routes, Route{Dst: dst.String(), Type: typ, NextHop: nextHop})
	return nil
}

// DisableGatewayService sets NoGW.
func (j *JoinInfo) DisableGatewayService() { j.NoGW = true }

// OSLRoutes returns Routes as the controller applies them to the
// interface (osl.IfaceConfig.Routes).
func (j *JoinInfo) OSLRoutes() []osl.Route {
	var out []osl.Route
	for _, r := range j.Routes {
		_, dst, _ := net.ParseCIDR(r.Dst)
		out = append(out, osl.Route{Dst: dst, Gw: r.NextHop})
	}
	return out
}

// IfInfo is a driverapi.InterfaceInfo: the endpoint's addresses as the
// controller gives them, and the MAC address the driver sets (once).
type IfInfo struct {
	// MAC is the MAC address; SetMacAddress refuses to set it twice.
	MAC net.HardwareAddr
	// Addr and AddrV6 are the IPv4 and IPv6 addresses.
	Addr, AddrV6 *net.IPNet
}

// SetMacAddress sets MAC, and fails when it is already set.
func (i *IfInfo) SetMacAddress(mac net.HardwareAddr) error {
	if i.MAC != nil {
		return errors.New("MAC already set")
	}
	i.MAC = mac
	return nil
}

// SetIPAddress sets Addr or AddrV6, by the family of ip.
func (i *IfInfo) SetIPAddress(ip *net.IPNet) error {
	if ip.IP.To4() != nil {
		i.Addr = ip
	} else {
		i.AddrV6 = ip
	}
	return nil
}

// MacAddress returns MAC.
func (i *IfInfo) MacAddress() net.HardwareAddr { return i.MAC }

// Address returns Addr.
func (i *IfInfo) Address() *net.IPNet { return i.Addr }

// AddressIPv6 returns AddrV6.
func (i *IfInfo) AddressIPv6() *net.IPNet { return i.AddrV6 }
