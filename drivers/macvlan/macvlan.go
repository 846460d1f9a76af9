// Package macvlan is the "macvlan" network driver, as docker's: each
// endpoint is a macvlan link on the network's parent interface (driver
// option "parent"), with a MAC of its own, so containers sit directly on
// the parent's link layer (the "LAN") with addresses of its subnet.
//
// The parent is handled by package lanparent: a name with a VLAN suffix
// ("eth0.10") that does not exist is created as an 802.1q sub-interface
// and deleted with the last network using it; no parent gives an internal
// network on a dummy link of the driver's own; the links the driver
// creates carry the alias Mark, and only those are ever deleted.
//
// Join creates the endpoint's macvlan link directly in the sandbox's
// namespace, in one request from the controller's namespace (where the
// parent's index means something), under the name the sandbox asks for:
// no move between namespaces, which costs about 20 ms (see
// BenchmarkJoinInSandbox and BenchmarkJoinMove). The parent is looked up
// by name at each Join, so a parent that went away and came back is used
// again.
//
// macvlan networks publish no ports (nor does docker's driver): a
// requested binding is refused. The host cannot reach its own macvlan
// endpoints through the parent, as with docker: that is the kernel's
// macvlan.
package macvlan

import (
	"log/slog"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/lanparent"
)

// NetworkType is the name of the driver.
const NetworkType = "macvlan"

// Mark is the alias of the links the driver creates (VLAN sub-interfaces
// and internal parents): only links carrying it are ever deleted.
const Mark = "netkit-macvlan"

// internalPrefix names a network's internal parent: "dm-" and the first
// 12 characters of its ID, as docker names it.
const internalPrefix = "dm-"

// Config is what the controller gives the driver.
type Config struct {
	// Logger receives the driver's logs; nil discards them.
	Logger *slog.Logger
	// Host is a netlink handle of the controller's namespace, where the
	// parents live. Required.
	Host *netlink.Handle
}

// Driver is the macvlan network driver.
type Driver struct {
	logger  *slog.Logger
	host    *netlink.Handle
	parents *lanparent.Manager

	// joinByMove makes Join create the link in the controller's namespace
	// and have the controller move it (SetNames), the slow path; set only
	// by the benchmark that compares both.
	joinByMove bool

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

// network is one macvlan network.
type network = lanparent.Network[networkConfig, endpoint]

// New returns a macvlan driver working in the namespace of cfg.Host.
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

// Type returns "macvlan".
func (d *Driver) Type() string { return NetworkType }

// Capability reports local networks whose endpoints have an interface.
func (d *Driver) Capability() driverapi.Capability {
	return driverapi.Capability{DataScope: driverapi.LocalScope, Attachment: driverapi.AttachInterface}
}

// CreateNetwork checks the options and takes the network's parent (see
// package lanparent): bad options, a missing parent, a parent that is a
// bridge port or another driver's link, an MTU above the parent's, a
// subnet overlapping another network's on the same parent, a VLAN
// sub-interface another network uses in another mode, a passthru network
// sharing its parent, and a VLAN parent the kernel cannot create are
// refused, and nothing is left behind.
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
		Network: nid, Parent: c.parent, Mode: c.mode, Exclusive: c.mode == ModePassthru,
		Subnets: c.subnets, MTU: c.mtu,
	}, restore, nil)
}

// DeleteNetwork forgets the network and releases its parent: a VLAN
// sub-interface or internal parent of the driver's own goes with its last
// network (and, with it, the macvlan links still on it).
func (d *Driver) DeleteNetwork(nid string) error { return d.nets.RemoveNetwork(nid) }

// ProgramExternalConnectivity refuses a port binding: macvlan endpoints
// sit on the parent's link layer with addresses of their own, reachable
// as they are, and docker's driver publishes nothing either.
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
