package vethdriver

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/types"
)

// CreateNetwork makes the network's bridge, up, with the IPv4 gateway of
// the network's first pool as its address. On failure nothing is left.
func (d *Driver) CreateNetwork(req *api.CreateNetworkRequest) error {
	defer d.time.Track()()
	if req.NetworkID == "" {
		return types.BadRequestErrorf("creating a network: no network ID")
	}
	var gw netip.Prefix
	if len(req.IPv4Data) > 0 && req.IPv4Data[0] != nil && req.IPv4Data[0].Gateway != "" {
		var err error
		if gw, err = netip.ParsePrefix(req.IPv4Data[0].Gateway); err != nil || !gw.Addr().Is4() {
			return types.BadRequestErrorf("network %s: gateway %q is not an IPv4 address in CIDR form", req.NetworkID, req.IPv4Data[0].Gateway)
		}
	}
	n := &network{id: req.NetworkID, bridge: BridgeName(req.NetworkID), gateway: gw, endpoints: map[string]*endpoint{}}

	// Network changes are rare: the lock is held over the kernel's work,
	// so two creates of one network cannot race.
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.networks[n.id]; ok {
		return types.ForbiddenErrorf("network %s: already exists", n.id)
	}
	if err := d.createBridge(n); err != nil {
		return types.InternalErrorf("network %s: %w", n.id, err)
	}
	d.networks[n.id] = n
	d.logger.Info("network created", "network", n.id, "bridge", n.bridge, "gateway", gw)
	return nil
}

// createBridge makes n's bridge, its address, and brings it up, deleting
// it if a step fails.
func (d *Driver) createBridge(n *network) (err error) {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.bridge, TxQLen: -1}}
	if err := d.nl.LinkAdd(br); err != nil {
		return fmt.Errorf("creating bridge %s: %w", n.bridge, err)
	}
	defer func() {
		if err != nil {
			if derr := d.nl.LinkDel(br); derr != nil {
				d.logger.Warn("deleting a half-made bridge", "bridge", n.bridge, "error", derr)
			}
		}
	}()
	if n.gateway.IsValid() {
		addr := &netlink.Addr{IPNet: prefixIPNet(n.gateway)}
		if err := d.nl.AddrAdd(br, addr); err != nil {
			return fmt.Errorf("adding %s to bridge %s: %w", n.gateway, n.bridge, err)
		}
	}
	if err := d.nl.LinkSetUp(br); err != nil {
		return fmt.Errorf("bringing bridge %s up: %w", n.bridge, err)
	}
	return nil
}

// DeleteNetwork deletes the network's bridge. It refuses while the
// network has endpoints. A network the plugin does not know (it restarted)
// has its bridge deleted if it is still there.
func (d *Driver) DeleteNetwork(req *api.DeleteNetworkRequest) error {
	defer d.time.Track()()
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[req.NetworkID]
	if !ok {
		bridge := BridgeName(req.NetworkID)
		link, err := d.nl.LinkByName(bridge)
		if err != nil {
			return types.NotFoundErrorf("network %s: not found", req.NetworkID)
		}
		if err := d.nl.LinkDel(link); err != nil {
			return types.InternalErrorf("network %s: deleting leftover bridge %s: %w", req.NetworkID, bridge, err)
		}
		return nil
	}
	if len(n.endpoints) > 0 {
		return types.ForbiddenErrorf("network %s: %d endpoints still exist", n.id, len(n.endpoints))
	}
	if err := d.deleteLink(n.bridge); err != nil {
		return types.InternalErrorf("network %s: deleting bridge %s: %w", n.id, n.bridge, err)
	}
	delete(d.networks, n.id)
	d.logger.Info("network deleted", "network", n.id, "bridge", n.bridge)
	return nil
}

// deleteLink deletes the link called name if it exists.
func (d *Driver) deleteLink(name string) error {
	link, err := d.nl.LinkByName(name)
	if err != nil {
		if _, ok := err.(netlink.LinkNotFoundError); ok {
			return nil
		}
		return err
	}
	return d.nl.LinkDel(link)
}
