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

// Names of the endpoints' veth ends in a network's namespace.
const (
	// vethPrefix and the first 11 characters of the endpoint ID name the
	// end on the bridge.
	vethPrefix = "veth"
	// retiredPrefix names such an end moved out of the way (see
	// retireVeth) until it is deleted.
	retiredPrefix = "vgone"
)

// endpoint is one endpoint of an overlay network; all but hostIndex and
// joining never change.
type endpoint struct {
	id  string
	mac net.HardwareAddr
	// segment is the index of the segment holding the endpoint's address.
	segment int
	// hostVeth names the end of the endpoint's veth on the bridge.
	hostVeth string
	// hostIndex is its index while joined, 0 otherwise; joining is set
	// while a Join is under way. Both guarded by Driver.mu.
	hostIndex int
	joining   bool
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
	ep := &endpoint{id: eid, mac: types.GetMacCopy(ifInfo.MacAddress()), segment: seg, hostVeth: vethPrefix + shortID(eid, 11)}
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

// DeleteEndpoint forgets the endpoint; a veth it still has goes after the
// grace period, unless its sandbox's namespace takes it first.
func (d *Driver) DeleteEndpoint(nid, eid string) error {
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	var idx int
	if err == nil {
		delete(n.endpoints, eid)
		idx, ep.hostIndex = ep.hostIndex, 0
	}
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("delete endpoint: %w", err)
	}
	if idx != 0 {
		d.sweeper.add(n, ep.hostVeth, idx)
	}
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

// Join creates the endpoint's veth pair in one request in the network's
// namespace: one end up and on the bridge of the endpoint's segment, the
// other born in the sandbox's namespace under the name it asks for, with
// the endpoint's MAC; both with the network's MTU. It reports no gateway
// (see the package doc): the controller configures the address, and the
// container reaches the outside, if at all, through another network.
func (d *Driver) Join(nid, eid, sboxKey string, jinfo driverapi.JoinInfo, _ map[string]interface{}) error {
	if jinfo == nil || jinfo.Sandbox() == nil {
		return types.BadRequestErrorf("join endpoint %s of overlay network %s: no sandbox", eid, nid)
	}
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	if err == nil && (ep.hostIndex != 0 || ep.joining) {
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

// join does the work of Join and RestoreEndpoint; ep.joining is set and
// join clears it.
func (d *Driver) join(n *network, ep *endpoint, jinfo driverapi.JoinInfo) error {
	idx, err := d.addVeth(n, ep, jinfo.Sandbox())
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
	if current {
		ep.hostIndex = idx
	}
	d.mu.Unlock()
	if idx != 0 && !current {
		d.deleteVeth(n, ep.hostVeth, idx)
	}
	if err == nil && !current {
		err = types.NotFoundErrorf("endpoint %s was deleted while joining", ep.id)
	}
	return err
}

// addVeth creates ep's veth pair and returns the index of its end on the
// bridge. An end left under its name by an earlier Leave of the endpoint
// is moved out of the way first.
func (d *Driver) addVeth(n *network, ep *endpoint, sb driverapi.SandboxInfo) (int, error) {
	d.sweeper.cancel(n, ep.hostVeth)
	s := n.segments[ep.segment]
	v := osl.Veth{
		Name: ep.hostVeth,
		// The bridge's own MAC: a bridge keeps a local FDB entry for
		// each distinct port address, and adding a port walks them.
		MAC:    s.bridge.mac,
		MTU:    n.mtu,
		Master: s.bridgeIndex,
		Up:     true,

		PeerName: sb.IfaceName(),
		PeerMAC:  ep.mac,
		PeerNS:   sb.NetNSFd(),
	}
	var idx int
	err := n.withNS(func(ns *osl.Namespace) error {
		var err error
		idx, err = ns.AddVeth(v)
		if errors.Is(err, unix.EEXIST) && d.retireVeth(n, ns, ep.hostVeth) {
			idx, err = ns.AddVeth(v)
		}
		return err
	})
	if errors.Is(err, unix.EEXIST) {
		return 0, types.ForbiddenErrorf("creating veth %s (peer %s in the sandbox): an interface %s exists in the sandbox: %w", ep.hostVeth, sb.IfaceName(), sb.IfaceName(), err)
	}
	if err != nil {
		// The namespace's errors are classified already.
		return 0, fmt.Errorf("creating veth %s (peer %s in the sandbox): %w", ep.hostVeth, sb.IfaceName(), err)
	}
	return idx, nil
}

// retireVeth renames a veth left under name in the network's namespace
// (about 1 ms, where deleting it costs about 20) and hands it to the
// sweeper; it reports whether name is free now.
func (d *Driver) retireVeth(n *network, ns *osl.Namespace, name string) bool {
	h := ns.Handle()
	old, err := h.LinkByName(name)
	if err != nil || old.Type() != "veth" {
		return false
	}
	tomb := osl.TombstoneName(retiredPrefix)
	if err := h.LinkSetDown(old); err == nil {
		if err := h.LinkSetName(old, tomb); err == nil {
			d.sweeper.add(n, tomb, old.Attrs().Index)
			return true
		}
	}
	return deleteLink(h, old) == nil
}

// deleteVeth deletes the end name (index) of a veth in n's namespace now.
func (d *Driver) deleteVeth(n *network, name string, index int) {
	err := n.withNS(func(ns *osl.Namespace) error { return ns.DeleteLinks([]int{index}) })
	if err != nil && !types.IsNotFound(err) {
		d.logger.Warn("deleting veth", "network", n.id, "link", name, "error", err)
	}
}

// Leave hands the endpoint's veth to the sweeper, which deletes it after
// a grace period unless the kernel removes it first with the sandbox's
// namespace. The controller has set the sandbox's end down (or is about
// to destroy the namespace), which cuts the endpoint off at once.
func (d *Driver) Leave(nid, eid string) error {
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	var idx int
	if err == nil {
		idx, ep.hostIndex = ep.hostIndex, 0
	}
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	if idx != 0 {
		d.sweeper.add(n, ep.hostVeth, idx)
	}
	return nil
}

// RestoreEndpoint rebuilds the bookkeeping of an endpoint after a
// restart. For a joined endpoint (jinfo not nil) it adopts the endpoint's
// veth in the network's namespace, putting it on its segment's bridge if
// the bridge was made anew, and recreates the pair through jinfo as Join
// does when it is gone. An endpoint that cannot be restored is forgotten.
func (d *Driver) RestoreEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, sboxKey string, jinfo driverapi.JoinInfo, _ map[string]interface{}) error {
	if err := d.createEndpoint(nid, eid, ifInfo); err != nil {
		return fmt.Errorf("restore endpoint %s of overlay network %s: %w", eid, nid, err)
	}
	if jinfo == nil {
		return nil
	}
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	if err == nil {
		ep.joining = true
	}
	d.mu.Unlock()
	if err == nil {
		err = d.restoreJoined(n, ep, jinfo)
	}
	if err != nil {
		d.mu.Lock()
		if n != nil && n.endpoints[eid] == ep {
			delete(n.endpoints, eid)
		}
		d.mu.Unlock()
		return fmt.Errorf("restore endpoint %s of overlay network %s in sandbox %s: %w", eid, nid, sboxKey, err)
	}
	return nil
}

// restoreJoined adopts a joined endpoint's veth or recreates it; it
// clears ep.joining.
func (d *Driver) restoreJoined(n *network, ep *endpoint, jinfo driverapi.JoinInfo) error {
	s := n.segments[ep.segment]
	var idx int
	err := n.withNS(func(ns *osl.Namespace) error {
		h := ns.Handle()
		l, err := h.LinkByName(ep.hostVeth)
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return types.InternalErrorf("looking up veth %s: %w", ep.hostVeth, err)
		}
		if l.Type() != "veth" {
			return types.ForbiddenErrorf("link %s is a %s, not a veth", ep.hostVeth, l.Type())
		}
		if l.Attrs().MasterIndex != s.bridgeIndex {
			if err := h.LinkSetMasterByIndex(l, s.bridgeIndex); err != nil {
				return types.InternalErrorf("putting veth %s on bridge %s: %w", ep.hostVeth, s.bridge.name, err)
			}
		}
		idx = l.Attrs().Index
		return nil
	})
	if err != nil || idx != 0 {
		d.mu.Lock()
		ep.joining = false
		if err == nil {
			ep.hostIndex = idx
		}
		d.mu.Unlock()
		return err
	}
	if jinfo.Sandbox() == nil {
		d.mu.Lock()
		ep.joining = false
		d.mu.Unlock()
		return types.BadRequestErrorf("its veth is gone and no sandbox was given to recreate it")
	}
	return d.join(n, ep, jinfo)
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

// shortID returns the first n characters of id.
func shortID(id string, n int) string {
	if len(id) > n {
		return id[:n]
	}
	return id
}
