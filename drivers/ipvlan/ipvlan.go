// Package ipvlan is the "ipvlan" network driver, as docker's: each
// endpoint is an ipvlan link on the network's parent interface (driver
// option "parent"), sharing the parent's MAC, so containers sit directly
// on the parent's network with addresses of its subnet.
//
// Option "ipvlan_mode" picks the kernel's mode: "l2" (the default), where
// the endpoints are on the parent's link layer and use the network's
// gateway, or "l3" and "l3s", where the parent routes their packets: they
// get no gateway, but default routes through their own interface (as
// docker gives them). Option "ipvlan_flag" is "bridge" (the default),
// "private" or "vepa", as macvlan's modes of those names. The kernel keeps
// one mode and flag per parent, so networks sharing a parent must agree
// on both.
//
// The parent is handled by package lanparent, as the macvlan driver's: a
// name with a VLAN suffix ("eth0.10") that does not exist is created as an
// 802.1q sub-interface and deleted with the last network using it; no
// parent gives an internal network on a dummy link of the driver's own;
// the links the driver creates carry the alias Mark, and only those are
// ever deleted.
//
// Join creates the endpoint's ipvlan link directly in the sandbox's
// namespace, in one request from the controller's namespace, under the
// name the sandbox asks for. A kernel without ipvlan support refuses it:
// Join then fails with a types.NotImplementedError and leaves nothing.
//
// ipvlan networks publish no ports (nor does docker's driver): a requested
// binding is refused.
package ipvlan

import (
	"log/slog"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/lanparent"
	"github.com/netkit/libnetwork/types"
)

// NetworkType is the name of the driver.
const NetworkType = "ipvlan"

// Mark is the alias of the links the driver creates (VLAN sub-interfaces
// and internal parents): only links carrying it are ever deleted.
const Mark = "netkit-ipvlan"

// internalPrefix names a network's internal parent: "di-" and the first
// 12 characters of its ID, as docker names it.
const internalPrefix = "di-"

// Config is what the controller gives the driver.
type Config struct {
	// Logger receives the driver's logs; nil discards them.
	Logger *slog.Logger
	// Host is a netlink handle of the controller's namespace, where the
	// parents live. Required.
	Host *netlink.Handle
}

// Driver is the ipvlan network driver.
type Driver struct {
	logger  *slog.Logger
	host    *netlink.Handle
	parents *lanparent.Manager

	// nets are the networks and their endpoints.
	nets *lanparent.Registry[networkConfig, endpoint]
}

var (
	_ driverapi.Driver          = (*Driver)(nil)
	_ driverapi.Capable         = (*Driver)(nil)
	_ driverapi.Restorer        = (*Driver)(nil)
	_ driverapi.NetworkRestorer = (*Driver)(nil)
	_ driverapi.OrphanCollector = (*Driver)(nil)
)

// network is one ipvlan network.
type network = lanparent.Network[networkConfig, endpoint]

// New returns an ipvlan driver working in the namespace of cfg.Host.
func New(cfg Config) (*Driver, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("driver", NetworkType)
	pm, err := lanparent.New(lanparent.Config{Host: cfg.Host, Driver: NetworkType, Mark: Mark, InternalPrefix: internalPrefix, Logger: logger})
	if err != nil {
		return nil, err
	}
	return &Driver{logger: logger, host: cfg.Host, parents: pm,
		nets: lanparent.NewRegistry[networkConfig, endpoint](NetworkType, pm, logger)}, nil
}

// Type returns "ipvlan".
func (d *Driver) Type() string { return NetworkType }

// Capability reports local networks whose endpoints have an interface.
func (d *Driver) Capability() driverapi.Capability {
	return driverapi.Capability{DataScope: driverapi.LocalScope, Attachment: driverapi.AttachInterface}
}

// CreateNetwork checks the options and takes the network's parent (see
// package lanparent): bad options, a missing parent, a parent that is a
// bridge port or another driver's link, an MTU above the parent's, a
// subnet overlapping another network's on the same parent, a parent
// another network uses in another mode or flag, and a VLAN parent the
// kernel cannot create are refused, and nothing is left behind. A kernel
// without ipvlan support is found out at Join, which creates the links.
func (d *Driver) CreateNetwork(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) error {
	return d.createNetwork(nid, opts, ipV4Data, ipV6Data, false)
}

// RestoreNetwork is CreateNetwork for a network the store holds, at
// restart: it adopts the VLAN sub-interface or internal parent the
// network left (recreating it if it is gone), and accepts a parent that
// is missing, whose joins fail until it is back.
func (d *Driver) RestoreNetwork(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) error {
	return d.createNetwork(nid, opts, ipV4Data, ipV6Data, true)
}

func (d *Driver) createNetwork(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData, restore bool) error {
	c, err := parseNetworkConfig(nid, opts, ipV4Data, ipV6Data)
	if err != nil {
		return err
	}
	return d.nets.AddNetwork(nid, c, lanparent.Claim{
		Network: nid, Parent: c.parent, Mode: c.mode + "/" + c.flag,
		Subnets: c.subnets, MTU: c.mtu,
	}, restore, func(o *network) error {
		if o.Config.mode == c.mode && o.Config.flag == c.flag {
			return nil
		}
		// The kernel keeps one mode and flag per parent: a link in
		// another would switch the other network's links too.
		return types.ForbiddenErrorf("create ipvlan network %s: parent %s is used by network %s in mode %s flag %s, not mode %s flag %s (the kernel has one mode and flag per parent)",
			nid, o.Parent, o.ID, o.Config.mode, o.Config.flag, c.mode, c.flag)
	})
}

// DeleteNetwork forgets the network and releases its parent: a VLAN
// sub-interface or internal parent of the driver's own goes with its last
// network (and, with it, the ipvlan links still on it).
func (d *Driver) DeleteNetwork(nid string) error { return d.nets.RemoveNetwork(nid) }

// ProgramExternalConnectivity refuses a port binding: ipvlan endpoints
// sit on the parent's network with addresses of their own, reachable as
// they are, and docker's driver publishes nothing either.
func (d *Driver) ProgramExternalConnectivity(nid, eid string, opts map[string]interface{}) error {
	return lanparent.RefusePorts(NetworkType, nid, eid, opts)
}

// RevokeExternalConnectivity has nothing to undo.
func (d *Driver) RevokeExternalConnectivity(nid, eid string) error { return nil }

// CollectOrphans deletes the driver's own parents (marked with Mark) that
// no network uses: call it once the networks are restored. The endpoints'
// links live in the sandboxes' namespaces and go with them.
func (d *Driver) CollectOrphans(keepNetworks, keepEndpoints map[string]bool) error {
	return d.parents.CollectOrphans()
}
