package bridge

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// Join creates the endpoint's veth pair in one request: the host side on
// the bridge and up, the container side directly in the sandbox's
// namespace under the name the sandbox asks for, with the endpoint's MAC.
// The controller then configures addresses and routes inside the sandbox.
func (d *Driver) Join(nid, eid, sboxKey string, jinfo driverapi.JoinInfo, _ map[string]interface{}) error {
	if jinfo == nil || jinfo.Sandbox() == nil {
		return types.BadRequestErrorf("join endpoint %s of bridge network %s: no sandbox", eid, nid)
	}
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	joined := err == nil && ep.hostIndex != 0
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if joined {
		return types.ForbiddenErrorf("join endpoint %s of bridge network %s to sandbox %s: it is joined", eid, nid, sboxKey)
	}
	if err := d.join(n, ep, jinfo); err != nil {
		return fmt.Errorf("join endpoint %s of bridge network %s to sandbox %s: %w", eid, nid, sboxKey, err)
	}
	return nil
}

// join does the work of Join and RestoreEndpoint.
func (d *Driver) join(n *network, ep *endpoint, jinfo driverapi.JoinInfo) error {
	idx, err := d.addVeth(n, ep, jinfo.Sandbox())
	if err != nil {
		return err
	}
	if err := report(n, jinfo); err != nil {
		d.deleteVeth(ep.hostVeth, idx)
		return err
	}
	d.mu.Lock()
	current := n.endpoints[ep.id] == ep && d.networks[n.id] == n
	if current {
		ep.hostIndex = idx
	}
	d.mu.Unlock()
	if !current {
		d.deleteVeth(ep.hostVeth, idx)
		return types.NotFoundErrorf("endpoint %s was deleted while joining", ep.id)
	}
	return nil
}

// report tells the controller what Join did.
func report(n *network, jinfo driverapi.JoinInfo) error {
	if err := jinfo.InterfaceName().SetCreatedInSandbox(); err != nil {
		return types.InternalErrorf("reporting the interface: %w", err)
	}
	if n.config.internal {
		jinfo.DisableGatewayService()
		return nil
	}
	if gw := n.config.gatewayV4; gw != nil {
		if err := jinfo.SetGateway(gw); err != nil {
			return types.InternalErrorf("reporting gateway %s: %w", gw, err)
		}
	}
	if gw := n.config.gatewayV6; gw != nil {
		if err := jinfo.SetGatewayIPv6(gw); err != nil {
			return types.InternalErrorf("reporting gateway %s: %w", gw, err)
		}
	}
	return nil
}

// addVeth creates ep's veth pair and returns the host side's ifindex. A
// host side left from an earlier Leave of the endpoint is deleted first.
func (d *Driver) addVeth(n *network, ep *endpoint, sb driverapi.SandboxInfo) (int, error) {
	d.reaper.cancel(ep.hostVeth)
	spec := vethSpec{
		name:     ep.hostVeth,
		mtu:      n.config.mtu,
		master:   n.bridgeIndex,
		mac:      n.bridgeMAC,
		peerName: sb.IfaceName(),
		peerMAC:  ep.mac,
		peerNS:   sb.NetNSFd(),
		isolated: !n.config.enableICC,
	}
	idx, err := d.createVeth(spec)
	if errors.Is(err, unix.EEXIST) {
		// A host side left from an earlier Leave; if the reaper took it
		// meanwhile, the name is free and the retry just works.
		// Only a veth that is a port of the network's bridge (the
		// library's, by its mark) is taken for that; any other link of
		// the name is left alone, and the join fails on the name.
		if old, lerr := d.host.LinkByName(ep.hostVeth); lerr == nil && old.Type() == "veth" && old.Attrs().MasterIndex == n.bridgeIndex {
			d.retireVeth(old)
			idx, err = d.createVeth(spec)
		}
	}
	if errors.Is(err, unix.EEXIST) {
		// A sandbox side left under the name asked for (a join killed
		// after it made its veth, whose pair orphan collection has not
		// removed yet): moved out of the way likewise.
		d.retireSandboxLink(sb.NetNSFd(), sb.IfaceName())
		idx, err = d.createVeth(spec)
	}
	if err != nil {
		return 0, types.InternalErrorf("creating veth %s (peer %s in the sandbox): %w", ep.hostVeth, sb.IfaceName(), err)
	}
	return idx, nil
}

// retireVeth moves a host-side veth left from an earlier Leave of the same
// endpoint out of the way: renamed (about 1 ms) rather than deleted (about
// 20 ms), and handed to the reaper. If the rename fails it is deleted.
func (d *Driver) retireVeth(old netlink.Link) {
	tomb := osl.TombstoneName(retiredPrefix)
	if err := d.host.LinkSetDown(old); err == nil {
		if err := d.host.LinkSetName(old, tomb); err == nil {
			d.reaper.add(tomb, old.Attrs().Index)
			return
		}
	}
	d.deleteVeth(old.Attrs().Name, old.Attrs().Index)
}

// retireSandboxLink moves a link named name in the sandbox's namespace
// out of the way, as retireVeth does on the host side: down, addresses
// flushed and renamed; it goes with its peer or the namespace.
func (d *Driver) retireSandboxLink(nsFd int, name string) {
	ns, err := osl.OpenNamespace(fmt.Sprintf("/proc/self/fd/%d", nsFd))
	if err != nil {
		d.logger.Warn("opening the sandbox's namespace", "error", err)
		return
	}
	defer ns.Close()
	l, err := ns.Handle().LinkByName(name)
	if err != nil {
		return
	}
	// The namespace may be the runtime's (external key): only a veth whose
	// peer is one of this driver's host-side veths is the library's to
	// move; anything else is left, and the join fails on the name.
	if !d.ownsPeer(l) {
		d.logger.Warn("a link not made by the library holds the interface name asked for in the sandbox; leaving it", "link", name, "type", l.Type())
		return
	}
	if err := ns.RetireInterface(name, osl.TombstoneName(retiredPrefix)); err != nil {
		d.logger.Warn("moving a leftover link in the sandbox out of the way", "link", name, "error", err)
	}
}

// ownsPeer reports whether l is a veth whose peer is a host-side veth of
// this driver (under its own or a retired name) on one of its bridges
// (marked as the library's): the name alone proves nothing.
func (d *Driver) ownsPeer(l netlink.Link) bool {
	if l.Type() != "veth" || l.Attrs().ParentIndex == 0 {
		return false
	}
	peer, err := d.host.LinkByIndex(l.Attrs().ParentIndex)
	if err != nil || peer.Type() != "veth" || peer.Attrs().MasterIndex == 0 {
		return false
	}
	name := peer.Attrs().Name
	if !isOwnName(name, vethPrefix, 11) && !isOwnName(name, retiredPrefix, 10) {
		return false
	}
	br, err := d.host.LinkByIndex(peer.Attrs().MasterIndex)
	if err != nil || br.Type() != "bridge" {
		return false
	}
	_, marked := markedNetwork(br)
	return marked
}

// deleteVeth deletes a host-side veth (and so its peer) now.
func (d *Driver) deleteVeth(name string, index int) {
	err := d.host.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, Index: index}})
	if err != nil && !isNotExist(err) {
		d.logger.Warn("deleting veth", "link", name, "error", err)
	}
}

// Leave hands the endpoint's veth to the reaper, which deletes it after a
// grace period unless the kernel removes it first with the sandbox's
// namespace. The controller must have retired the sandbox side (set it
// down) or be about to destroy the sandbox's namespace.
func (d *Driver) Leave(nid, eid string) error {
	d.mu.Lock()
	_, ep, err := d.endpointLocked(nid, eid)
	var idx int
	if err == nil {
		idx, ep.hostIndex = ep.hostIndex, 0
	}
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	if idx == 0 {
		return nil
	}
	// No kernel call is needed to cut the endpoint off: the controller set
	// the sandbox side down (which takes the carrier off the host side and
	// disables its bridge port) or is about to destroy the namespace (which
	// removes the pair). Setting the host side down as well would cost an
	// RCU grace period (~0.3 ms here) for nothing.
	d.reaper.add(ep.hostVeth, idx)
	return nil
}

// RestoreEndpoint rebuilds the bookkeeping of an endpoint after a restart.
// For a joined endpoint (jinfo not nil) it checks that the host veth is
// still a port of the bridge and, when it is gone, recreates the pair
// through jinfo as Join does.
func (d *Driver) RestoreEndpoint(nid, eid string, ifInfo driverapi.InterfaceInfo, sboxKey string, jinfo driverapi.JoinInfo, opts map[string]interface{}) error {
	if err := d.createEndpoint(nid, eid, ifInfo, false); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if jinfo == nil {
		return nil
	}
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	d.mu.Unlock()
	if err == nil {
		err = d.restoreJoined(n, ep, sboxKey, jinfo)
	}
	if err != nil {
		// Forget the endpoint: the controller drops its record and
		// releases its address, so nothing may keep its veth alive.
		d.mu.Lock()
		if n != nil && n.endpoints[eid] == ep {
			delete(n.endpoints, eid)
		}
		d.mu.Unlock()
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// restoreJoined adopts a joined endpoint's veth, or recreates it through
// jinfo when it is gone.
func (d *Driver) restoreJoined(n *network, ep *endpoint, sboxKey string, jinfo driverapi.JoinInfo) error {
	nid, eid := n.id, ep.id
	l, err := d.host.LinkByName(ep.hostVeth)
	switch {
	case err == nil && l.Type() == "veth" && l.Attrs().MasterIndex != 0 && l.Attrs().MasterIndex != n.bridgeIndex:
		// A port of another bridge is not this endpoint's veth: it is
		// left where it is.
		return types.ForbiddenErrorf("restore endpoint %s: veth %s is a port of another bridge (index %d), not of bridge %s; it is left alone",
			eid, ep.hostVeth, l.Attrs().MasterIndex, n.config.bridgeName)
	case err == nil && l.Type() == "veth":
		// On the network's bridge, or on none: the bridge was deleted
		// behind the library's back and recreated at this restore.
		if l.Attrs().MasterIndex != n.bridgeIndex {
			if err := d.host.LinkSetMasterByIndex(l, n.bridgeIndex); err != nil {
				return types.InternalErrorf("restore endpoint %s: putting veth %s on bridge %s: %w", eid, ep.hostVeth, n.config.bridgeName, err)
			}
			if !n.config.enableICC {
				if err := d.host.LinkSetIsolated(l, true); err != nil {
					return types.InternalErrorf("restore endpoint %s: isolating bridge port %s: %w", eid, ep.hostVeth, err)
				}
			}
		}
		d.mu.Lock()
		ep.hostIndex = l.Attrs().Index
		d.mu.Unlock()
		return nil
	case err == nil:
		return types.ForbiddenErrorf("restore endpoint %s: link %s is a %s, not a veth", eid, ep.hostVeth, l.Type())
	case !isNotExist(err):
		return types.InternalErrorf("restore endpoint %s: looking up veth %s: %w", eid, ep.hostVeth, err)
	}
	if jinfo.Sandbox() == nil {
		return types.BadRequestErrorf("restore endpoint %s: its veth is gone and no sandbox was given to recreate it", eid)
	}
	if err := d.join(n, ep, jinfo); err != nil {
		return fmt.Errorf("restore endpoint %s of bridge network %s in sandbox %s: %w", eid, nid, sboxKey, err)
	}
	return nil
}
