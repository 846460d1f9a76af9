package bridge

import (
	"net"
	"net/netip"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// endpoint is one endpoint of a bridge network. id, addr, addrV6, mac and
// hostVeth never change; hostIndex is guarded by Driver.mu.
type endpoint struct {
	id       string
	addr     *net.IPNet
	addrV6   *net.IPNet
	mac      net.HardwareAddr
	hostVeth string
	// hostIndex is the ifindex of the host-side veth while joined, else 0.
	hostIndex int
	// published is what ProgramExternalConnectivity published, nil when
	// nothing; guarded by Driver.mu.
	published *published
}

// hostVethName returns the name of the host side of eid's veth.
func hostVethName(eid string) string { return vethPrefix + shortID(eid, 11) }

// CreateEndpoint records the endpoint and gives it a MAC when it has none,
// and, on an IPv6 network whose IPAM gave it no IPv6 address
// (NetworkOptionDeferIPv6Alloc), the address made of the network's prefix
// and its MAC, as v0.7 does; the controller reserves it in IPAM. It does no
// kernel work: the veth comes at Join.
func (d *Driver) CreateEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, _ map[string]interface{}) error {
	return d.createEndpoint(nid, eid, ifInfo, true)
}

// createEndpoint is CreateEndpoint; RestoreEndpoint passes derive=false,
// since a restored endpoint has exactly the addresses its record holds.
func (d *Driver) createEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, derive bool) error {
	if ifInfo == nil {
		return types.BadRequestErrorf("create endpoint %s on bridge network %s: no interface info", eid, nid)
	}
	ep := &endpoint{
		id:       eid,
		addr:     types.GetIPNetCopy(ifInfo.Address()),
		addrV6:   types.GetIPNetCopy(ifInfo.AddressIPv6()),
		mac:      types.GetMacCopy(ifInfo.MacAddress()),
		hostVeth: hostVethName(eid),
	}
	setMAC := ep.mac == nil
	if setMAC {
		ep.mac = endpointMAC(ep.addr)
	}

	d.mu.Lock()
	n, ok := d.networks[nid]
	switch {
	case !ok:
		d.mu.Unlock()
		return types.NotFoundErrorf("create endpoint %s: no bridge network %s", eid, nid)
	case n.endpoints[eid] != nil:
		d.mu.Unlock()
		return types.ForbiddenErrorf("create endpoint %s on bridge network %s: it exists", eid, nid)
	}
	d.mu.Unlock()

	// The endpoint is complete before it is registered: its fields never
	// change after.
	if setMAC {
		if err := ifInfo.SetMacAddress(ep.mac); err != nil {
			return types.InternalErrorf("create endpoint %s on bridge network %s: setting MAC %s: %w", eid, nid, ep.mac, err)
		}
	}
	if derive && n.config.enableIPv6 && ep.addrV6 == nil {
		addr, err := macIPv6(n.config.subnets, ep.mac)
		if err != nil {
			return types.Errorf("create endpoint %s on bridge network %s: %w", eid, nid, err)
		}
		if addr != nil {
			if err := ifInfo.SetIPAddress(addr); err != nil {
				return types.Errorf("create endpoint %s on bridge network %s: setting IPv6 address %s: %w", eid, nid, addr, err)
			}
			ep.addrV6 = addr
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.networks[nid] != n || n.endpoints[eid] != nil {
		return types.ForbiddenErrorf("create endpoint %s on bridge network %s: the network changed meanwhile", eid, nid)
	}
	n.endpoints[eid] = ep
	return nil
}

// macIPv6 returns the address made of the first IPv6 subnet's prefix and
// mac in the low 48 bits, or nil when there is no IPv6 subnet. A prefix
// longer than /80 leaves no room for the MAC and is refused.
func macIPv6(subnets []netip.Prefix, mac net.HardwareAddr) (*net.IPNet, error) {
	for _, p := range subnets {
		if !p.Addr().Is6() || p.Addr().Is4In6() {
			continue
		}
		if p.Bits() > 80 {
			return nil, types.ForbiddenErrorf("cannot make an IPv6 address from the MAC in %s: at least 48 host bits are needed", p)
		}
		if len(mac) != 6 {
			return nil, types.BadRequestErrorf("cannot make an IPv6 address in %s from MAC %s", p, mac)
		}
		ip := p.Addr().As16()
		copy(ip[10:], mac)
		return &net.IPNet{IP: net.IP(ip[:]), Mask: net.CIDRMask(p.Bits(), 128)}, nil
	}
	return nil, nil
}

// DeleteEndpoint forgets the endpoint. A veth still joined is handed to the
// reaper.
func (d *Driver) DeleteEndpoint(nid, eid string) error {
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	var idx int
	if err == nil {
		delete(n.endpoints, eid)
		idx, ep.hostIndex = ep.hostIndex, 0
	}
	var p *published
	if err == nil {
		p, ep.published = ep.published, nil
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if idx != 0 {
		d.reaper.add(ep.hostVeth, idx)
	}
	if p != nil {
		// Not revoked before the delete: do it now rather than leak.
		if err := d.unpublish(p); err != nil {
			d.logger.Warn("unpublishing the ports of a deleted endpoint", "endpoint", eid, "error", err)
		}
	}
	return nil
}

// EndpointOperInfo returns the endpoint's MAC under netlabel.MacAddress
// and, when it publishes ports, their bindings with the host ports they
// got under netlabel.PortMap ([]types.PortBinding).
func (d *Driver) EndpointOperInfo(nid, eid string) (map[string]interface{}, error) {
	d.mu.Lock()
	_, ep, err := d.endpointLocked(nid, eid)
	var ports []types.PortBinding
	if err == nil {
		ports = ep.portMapLocked()
	}
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	info := map[string]interface{}{netlabel.MacAddress: types.GetMacCopy(ep.mac)}
	if ports != nil {
		info[netlabel.PortMap] = ports
	}
	return info, nil
}

// endpointLocked finds an endpoint. d.mu must be held.
func (d *Driver) endpointLocked(nid, eid string) (*network, *endpoint, error) {
	n, ok := d.networks[nid]
	if !ok {
		return nil, nil, types.NotFoundErrorf("bridge network %s not found", nid)
	}
	ep, ok := n.endpoints[eid]
	if !ok {
		return n, nil, types.NotFoundErrorf("endpoint %s not found on bridge network %s", eid, nid)
	}
	return n, ep, nil
}

// endpointMAC derives a MAC from the IPv4 address (02:42 and the four
// bytes of the address), or picks a random one when there is none.
func endpointMAC(addr *net.IPNet) net.HardwareAddr {
	if addr != nil {
		if ip4 := addr.IP.To4(); ip4 != nil {
			return net.HardwareAddr{0x02, 0x42, ip4[0], ip4[1], ip4[2], ip4[3]}
		}
	}
	return randomMAC()
}
