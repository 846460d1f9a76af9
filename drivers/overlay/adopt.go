package overlay

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// adoptNetwork takes over the namespace an earlier run left for n, or
// sets n up from scratch when there is none. In the namespace, a
// segment's bridge is adopted if it carries the network's mark, its VXLAN
// device if it also matches the segment (VNI, port, VTEP, learning off,
// proxy on); anything else under their names is replaced, and bridges and
// VXLAN devices of segments the network no longer has are deleted. The
// peers programmed on an adopted VXLAN device stay. On failure the
// namespace is kept as it is (CollectOrphans removes it if the network is
// not kept).
func (d *Driver) adoptNetwork(n *network) error {
	path := d.nsPath(n.id)
	if !osl.IsNamespaceMount(path) {
		// A file the namespace was mounted on (before a reboot, say):
		// nothing to adopt. Removed as itself, never followed.
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return types.InternalErrorf("removing the stale namespace file %s: %w", path, err)
		}
		d.logger.Info("the network's namespace is gone; creating it again", "network", n.id)
		return d.setupNetwork(n)
	}
	ns, err := osl.OpenNamespace(path)
	if err != nil {
		return err
	}
	n.ns = ns
	if err := d.adoptDevices(n, ns); err != nil {
		n.ns = nil
		_ = ns.Close()
		return err
	}
	return nil
}

// adoptDevices adopts or recreates the segments' devices in ns.
func (d *Driver) adoptDevices(n *network, ns *osl.Namespace) error {
	if err := configureNamespace(ns); err != nil {
		return err
	}
	h := ns.Handle()
	links, err := osl.Dump(h.LinkList)
	if err != nil {
		return types.InternalErrorf("listing the links of %s: %w", ns, err)
	}
	byName := map[string]netlink.Link{}
	for _, l := range links {
		byName[l.Attrs().Name] = l
	}
	wanted := map[string]bool{}
	for _, s := range n.segments {
		wanted[s.bridge.name], wanted[s.vxlan.name] = true, true
	}
	// Devices of segments the network no longer has.
	var stale []int
	for _, l := range links {
		if (l.Type() == "bridge" || l.Type() == "vxlan") && !wanted[l.Attrs().Name] {
			d.logger.Info("deleting a device of a segment the network no longer has", "network", n.id, "link", l.Attrs().Name)
			stale = append(stale, l.Attrs().Index)
		}
	}
	if err := ns.DeleteLinks(stale); err != nil {
		return err
	}
	for _, s := range n.segments {
		if err := d.adoptSegment(n, ns, s, byName[s.bridge.name], byName[s.vxlan.name]); err != nil {
			return fmt.Errorf("segment VNI %d: %w", s.vni, err)
		}
	}
	return nil
}

// adoptSegment adopts s's bridge br and VXLAN device vx (nil when
// missing), or replaces them. The veths of a replaced bridge are put on
// the new one by RestoreEndpoint.
func (d *Driver) adoptSegment(n *network, ns *osl.Namespace, s *segment, br, vx netlink.Link) error {
	h := ns.Handle()
	brOK := br != nil && br.Type() == "bridge" && br.Attrs().Alias == s.bridge.mark
	vxOK := brOK && vx != nil && s.vxlan.matches(vx) && vx.Attrs().MasterIndex == br.Attrs().Index
	if !vxOK && vx != nil {
		d.logger.Info("replacing a VXLAN device that does not match its segment", "network", n.id, "link", vx.Attrs().Name)
		if err := deleteLink(h, vx); err != nil {
			return types.InternalErrorf("%w", err)
		}
	}
	if brOK {
		s.bridge.mac = br.Attrs().HardwareAddr
		s.bridgeIndex = br.Attrs().Index
		if err := adoptLink(h, br, n.mtu); err != nil {
			return err
		}
	} else {
		if br != nil {
			d.logger.Info("replacing a bridge that is not the network's", "network", n.id, "link", br.Attrs().Name)
			if err := deleteLink(h, br); err != nil {
				return types.InternalErrorf("%w", err)
			}
		}
		if err := d.createBridge(ns, s); err != nil {
			return err
		}
	}
	if !vxOK {
		_, err := d.createVXLAN(ns, s)
		return err
	}
	s.vxlanIndex = vx.Attrs().Index
	if s.hasIPv6() {
		if err := enableIPv6(ns, vx); err != nil {
			return err
		}
	}
	return adoptLink(h, vx, n.mtu)
}

// adoptLink gives an adopted device the network's MTU and sets it up.
func adoptLink(h *netlink.Handle, l netlink.Link, mtu int) error {
	if l.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return types.InternalErrorf("setting the MTU of %s to %d: %w", l.Attrs().Name, mtu, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return types.InternalErrorf("setting %s up: %w", l.Attrs().Name, err)
	}
	return nil
}
