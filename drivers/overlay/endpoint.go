package overlay

import (
	"errors"
	"fmt"
	"net"
	"reflect"

	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// endpoint is one endpoint of an overlay network; all but joined and
// joining never change.
type endpoint struct {
	id  string
	mac net.HardwareAddr
	// segment is the index of the segment holding the endpoint's address.
	segment int
	// joined is set while the endpoint has a sandbox; joining while a
	// Join is under way. Both guarded by Driver.mu.
	joined  bool
	joining bool
}

// CreateEndpoint records the endpoint on the segment of its address and
// gives it a MAC when it has none: 02:42 and its IPv4 address, as docker
// (random, locally administered, for an IPv6-only endpoint). It does no
// kernel work.
func (d *Driver) CreateEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, _ map[string]interface{}) error {
	if err := d.createEndpoint(nid, eid, ifInfo); err != nil {
		return fmt.Errorf("create endpoint %s of overlay network %s: %w", eid, nid, err)
	}
	return nil
}

func (d *Driver) createEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo) error {
	if ifInfo == nil {
		return types.BadRequestErrorf("no interface info")
	}
	if eid == "" {
		return types.BadRequestErrorf("empty endpoint ID")
	}
	n, err := d.network(nid)
	if err != nil {
		return err
	}
	addr := ifInfo.Address()
	if addr == nil {
		addr = ifInfo.AddressIPv6()
	}
	if addr == nil {
		return types.BadRequestErrorf("no address: an overlay endpoint is found by its peers through its address")
	}
	seg := n.config.segmentOf(addr.IP)
	if seg < 0 {
		return types.BadRequestErrorf("address %s is in none of the network's subnets", addr.IP)
	}
	ep := &endpoint{id: eid, mac: types.GetMacCopy(ifInfo.MacAddress()), segment: seg}
	if ep.mac == nil {
		ep.mac = endpointMAC(ifInfo.Address())
		if err := ifInfo.SetMacAddress(ep.mac); err != nil {
			return types.InternalErrorf("setting MAC %s: %w", ep.mac, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.networks[nid] != n:
		return types.NotFoundErrorf("the network was deleted meanwhile")
	case n.endpoints[eid] != nil:
		return types.ForbiddenErrorf("it exists")
	}
	n.endpoints[eid] = ep
	return nil
}

// endpointMAC derives a MAC from the IPv4 address (02:42 and its four
// bytes), or picks a random locally administered unicast one.
func endpointMAC(addr *net.IPNet) net.HardwareAddr {
	if addr != nil {
		if ip4 := addr.IP.To4(); ip4 != nil {
			return net.HardwareAddr{0x02, 0x42, ip4[0], ip4[1], ip4[2], ip4[3]}
		}
	}
	return randomMAC()
}

// DeleteEndpoint forgets the endpoint. It does no kernel work: a link
// the endpoint still has is in its sandbox, which the controller retires
// or destroys.
func (d *Driver) DeleteEndpoint(nid, eid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, _, err := d.endpointLocked(nid, eid)
	if err != nil {
		return fmt.Errorf("delete endpoint: %w", err)
	}
	delete(n.endpoints, eid)
	return nil
}

// EndpointOperInfo returns the endpoint's MAC under netlabel.MacAddress.
func (d *Driver) EndpointOperInfo(nid, eid string) (map[string]interface{}, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ep, err := d.endpointLocked(nid, eid)
	if err != nil {
		return nil, err
	}
	return map[string]interface{}{netlabel.MacAddress: types.GetMacCopy(ep.mac)}, nil
}

// endpointLocked finds an endpoint. d.mu must be held.
func (d *Driver) endpointLocked(nid, eid string) (*network, *endpoint, error) {
	n, err := d.networkLocked(nid)
	if err != nil {
		return nil, nil, err
	}
	ep, ok := n.endpoints[eid]
	if !ok {
		return n, nil, types.NotFoundErrorf("endpoint %s not found on overlay network %s", eid, nid)
	}
	return n, ep, nil
}

// Join creates the endpoint's link: a macvlan device (bridge mode) on the
// VXLAN device of the endpoint's segment, made by a request in the
// network's namespace and born in the sandbox's namespace under the name
// the sandbox asks for, with the endpoint's MAC and the network's MTU. It
// reports no gateway (see the package doc): the controller configures the
// address, and the container reaches the outside, if at all, through
// another network.
func (d *Driver) Join(nid, eid, sboxKey string, jinfo driverapi.JoinInfo, _ map[string]interface{}) error {
	if jinfo == nil || jinfo.Sandbox() == nil {
		return types.BadRequestErrorf("join endpoint %s of overlay network %s: no sandbox", eid, nid)
	}
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	if err == nil && (ep.joined || ep.joining) {
		err = types.ForbiddenErrorf("endpoint %s of overlay network %s is joined", eid, nid)
	}
	if err == nil {
		ep.joining = true
	}
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("join sandbox %s: %w", sboxKey, err)
	}
	if err := d.join(n, ep, jinfo); err != nil {
		return fmt.Errorf("join endpoint %s of overlay network %s to sandbox %s: %w", eid, nid, sboxKey, err)
	}
	return nil
}

// join does the work of Join; ep.joining is set and join clears it.
func (d *Driver) join(n *network, ep *endpoint, jinfo driverapi.JoinInfo) error {
	sb := jinfo.Sandbox()
	created, err := d.addLink(n, ep, sb)
	if err == nil {
		if err = jinfo.InterfaceName().SetCreatedInSandbox(); err != nil {
			err = types.InternalErrorf("reporting the interface: %w", err)
		}
	}
	if err == nil {
		jinfo.DisableGatewayService()
	}
	d.mu.Lock()
	ep.joining = false
	current := err == nil && n.endpoints[ep.id] == ep && d.networks[n.id] == n
	ep.joined = current
	d.mu.Unlock()
	if created && !current {
		d.deleteLink(sb)
	}
	if err == nil && !current {
		err = types.NotFoundErrorf("endpoint %s was deleted while joining", ep.id)
	}
	return err
}

// addLink creates ep's macvlan device in sb and reports whether it did.
func (d *Driver) addLink(n *network, ep *endpoint, sb driverapi.SandboxInfo) (bool, error) {
	s := n.segments[ep.segment]
	spec := linkSpec{name: sb.IfaceName(), parentIndex: s.vxlanIndex, mac: ep.mac, mtu: n.mtu, nsFd: sb.NetNSFd()}
	err := n.withNS(func(ns *osl.Namespace) error {
		if err := ns.Handle().LinkAdd(spec.link()); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return types.ForbiddenErrorf("an interface %s exists in the sandbox: %w", spec.name, err)
			}
			return types.InternalErrorf("%w", err)
		}
		return nil
	})
	if err != nil {
		// The namespace's errors are classified already.
		return false, fmt.Errorf("creating macvlan link %s on VXLAN device %s: %w", spec.name, s.vxlan.name, err)
	}
	return true, nil
}

// deleteLink deletes the link a failed or overtaken Join made in sb.
func (d *Driver) deleteLink(sb driverapi.SandboxInfo) {
	ns, err := osl.OpenNamespace(fmt.Sprintf("/proc/self/fd/%d", sb.NetNSFd()))
	if err == nil {
		err = ns.DeleteInterface(sb.IfaceName())
		_ = ns.Close()
	}
	if err != nil {
		d.logger.Warn("deleting the link of a join that did not complete", "link", sb.IfaceName(), "error", err)
	}
}

// Leave does no kernel work, as the bridge driver's: the controller
// retires the interface in the sandbox (down, renamed), which cuts the
// endpoint off at once, or destroys the sandbox's namespace, which
// deletes the link.
func (d *Driver) Leave(nid, eid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ep, err := d.endpointLocked(nid, eid)
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	ep.joined = false
	return nil
}

// RestoreEndpoint rebuilds the bookkeeping of an endpoint after a
// restart. A joined endpoint's link is in its sandbox; the controller
// checks that it is there and, when it is not (its VXLAN device was made
// anew, say, which takes the macvlan devices on it), has Join make it
// again.
func (d *Driver) RestoreEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, sboxKey string, jinfo driverapi.JoinInfo, _ map[string]interface{}) error {
	if err := d.createEndpoint(nid, eid, ifInfo); err != nil {
		return fmt.Errorf("restore endpoint %s of overlay network %s: %w", eid, nid, err)
	}
	if jinfo != nil {
		d.mu.Lock()
		if _, ep, err := d.endpointLocked(nid, eid); err == nil {
			ep.joined = true
		}
		d.mu.Unlock()
	}
	return nil
}

// ProgramExternalConnectivity refuses a port binding: an overlay network
// has no way out of its namespace; ports are published by the network
// that gives the container its gateway (a local bridge network).
func (d *Driver) ProgramExternalConnectivity(nid, eid string, opts map[string]interface{}) error {
	if raw, ok := opts[netlabel.PortMap]; ok && raw != nil {
		if v := reflect.ValueOf(raw); v.Kind() == reflect.Slice && v.Len() > 0 {
			return types.ForbiddenErrorf("endpoint %s of overlay network %s asks to publish ports %v: overlay networks do not publish ports; join the container to a bridge network too and publish them there",
				eid, nid, raw)
		}
	}
	return nil
}

// RevokeExternalConnectivity has nothing to undo.
func (d *Driver) RevokeExternalConnectivity(nid, eid string) error { return nil }
