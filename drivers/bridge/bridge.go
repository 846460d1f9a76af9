// Package bridge is the "bridge" network driver: each network is a Linux
// bridge in the controller's namespace carrying the network's gateway
// addresses, with nftables rules from package firewall; each joined
// endpoint is a veth pair whose container side the driver creates directly
// inside the sandbox's namespace, in one netlink request.
//
// The driver keeps only in-memory bookkeeping. Every bridge it creates
// carries a mark, its alias "libnetwork:<network ID>" (see markPrefix).
// On restart the controller calls RestoreNetwork and RestoreEndpoint, and
// the driver adopts the kernel objects that survived: a bridge only if it
// carries that very network's mark, since the store's records are not
// trusted to say what is the library's. CollectOrphans removes those
// nobody owns, recognised by their names ("br-" + 12 hex digits, "veth" +
// 11) and the mark (a bridge's own, a veth's bridge's). CreateNetwork
// adopts nothing: a link that exists under the bridge's name is not the
// library's (the store does not say so), and it is refused and left
// alone.
//
// # Sysctls
//
// These are all the sysctls the driver writes, all of them in the
// controller's namespace:
//
//   - net.ipv4.ip_forward = 1, when the first network is created, unless
//     the driver option EnableIPForwarding is false.
//   - net.ipv6.conf.all.forwarding = 1, when the first network with IPv6
//     is created, on the same condition. The kernel copies it to
//     net.ipv6.conf.default.forwarding and to every interface's
//     forwarding, and a forwarding interface ignores router
//     advertisements (accept_ra = 1 acts as 0).
//   - net.ipv6.conf.<veth>.disable_ipv6 = 1 on the host side of each
//     endpoint's veth (see noIPv6), which is the driver's own link.
//   - net.ipv6.conf.<bridge>.accept_dad = 0 on the bridge of an IPv6
//     network, before it comes up (see bringUp).
//   - net.ipv4.conf.<bridge>.route_localnet = 1 on each bridge of a
//     network that is not internal, when the firewall is on, so that the
//     host reaches published ports on 127.0.0.1 (see routeLocalnet).
//
// Forwarding is never turned off again: other networks and other programs
// may rely on it. When the driver finds a family's forwarding off and
// turns it on, it also has the firewall drop forwarded packets of that
// family that neither enter nor leave one of its bridges, as docker does
// since 28.0, so that the host does not start routing between its other
// interfaces (Config.ForwardingNoDrop turns that off, and so does
// EnableIPTables false, which programs no firewall; forwarding found on
// is left alone, with the traffic it carries). The firewall keeps that
// fact in its table, so the drop outlives the controller.
package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// NetworkType is the name of the driver.
const NetworkType = "bridge"

// reapGrace is how long a left veth waits before the reaper deletes it;
// usually the sandbox's namespace is destroyed meanwhile and the kernel
// removes the pair itself, for free.
const reapGrace = 2 * time.Second

// Config is what the controller gives the driver.
type Config struct {
	// Logger receives the driver's logs; nil discards them.
	Logger *slog.Logger
	// Firewall programs the networks' rules; nil programs none.
	Firewall *firewall.Firewall
	// Host is a netlink handle of the controller's namespace, where the
	// bridges and host-side veths live. Required.
	Host *netlink.Handle
	// AddVeth creates a veth pair in one request, one end in the
	// controller's namespace (osl.Namespace.AddVeth); nil creates it
	// through Host, in more round trips.
	AddVeth func(osl.Veth) (int, error)
	// DeleteLinks deletes links of the controller's namespace, by index,
	// in one batch (osl.Namespace.DeleteLinks); nil deletes them one by
	// one through Host.
	DeleteLinks func(indexes []int) error
	// SetSysctl writes a sysctl of the controller's namespace (key like
	// "net.ipv4.ip_forward"); nil writes none.
	SetSysctl func(key, value string) error
	// Sysctl reads a sysctl of the controller's namespace; the driver
	// reads the forwarding sysctls before it turns them on. nil: they
	// are taken to be off.
	Sysctl func(key string) (string, error)
	// ForwardingNoDrop keeps the driver from having the firewall drop
	// other forwarded traffic when it turns IP forwarding on, and removes
	// such a drop an earlier run installed (config.OptionForwardingNoDrop).
	ForwardingNoDrop bool
	// Generic holds the driver-wide options (EnableIPForwarding,
	// EnableIPTables); may be nil.
	Generic map[string]interface{}
	// PortMappers returns the port mapper of a name ("" or "nat" the
	// built-in NAT mapper, "routed", or a plugin's name); nil publishes
	// no ports (publishing is refused).
	PortMappers func(name string) (PortMapper, error)
}

// Driver is the bridge network driver.
type Driver struct {
	logger    *slog.Logger
	fw        *firewall.Firewall // nil when rules are not programmed
	host      *netlink.Handle
	setSysctl func(key, value string) error
	// readSysctl reads sysctls of the controller's namespace; nil when not
	// given.
	readSysctl func(key string) (string, error)
	// forwardingNoDrop is Config.ForwardingNoDrop.
	forwardingNoDrop bool
	// hostSysctl writes sysctls of the controller's namespace whether or
	// not IP forwarding is managed (setSysctl); nil when not given.
	hostSysctl func(key, value string) error
	// newVeth creates a veth pair in one request; nil when not given.
	newVeth func(osl.Veth) (int, error)
	// deleteLinks deletes host links in one batch.
	deleteLinks func(indexes []int) error
	// portMappers is Config.PortMappers.
	portMappers func(name string) (PortMapper, error)
	// conntrack flushes published ports' conntrack entries.
	conntrack *conntrackFlusher
	reaper    *reaper

	// failAfter makes CreateNetwork fail right after the named step; set
	// only by tests.
	failAfter string
	// linkList, when set by tests, replaces the host handle's LinkList in
	// orphan collection, to make the kernel's interrupted dumps happen on
	// demand (kernels since 6.x rarely interrupt link dumps).
	linkList func() ([]netlink.Link, error)
	// reconcile, when set by tests, replaces the firewall's Reconcile in
	// orphan collection, to make it fail on demand.
	reconcile func([]firewall.NetworkRules) error

	mu sync.Mutex
	// networks by ID.
	networks map[string]*network
	// bridges maps a bridge name to the ID of the network that owns or is
	// creating it.
	bridges map[string]string
	// restoreAddrs holds the addresses of the namespace's links, by link
	// index, from the first adoption of a restore to CollectOrphans (see
	// restoredAddrs); nil otherwise. Read only, once set.
	restoreAddrs map[int][]netlink.Addr
	// forwardingV4 and forwardingV6 record that IP forwarding was turned
	// on.
	forwardingV4, forwardingV6 bool
	// forwardingMu serialises setupForwarding, so two first networks
	// created at once cannot both turn forwarding on, one of them then
	// undoing the drop the other relies on. Taken before mu.
	forwardingMu sync.Mutex
}

var (
	_ driverapi.Driver          = (*Driver)(nil)
	_ driverapi.Restorer        = (*Driver)(nil)
	_ driverapi.NetworkRestorer = (*Driver)(nil)
	_ driverapi.OrphanCollector = (*Driver)(nil)
)

// network is one bridge network. Its fields other than endpoints are set
// before it enters Driver.networks and never change.
type network struct {
	id          string
	config      networkConfig
	bridgeIndex int
	// bridgeMAC is the bridge's address, which the host sides of its
	// veths take too (see vethSpec.mac).
	bridgeMAC net.HardwareAddr
	// endpoints by ID; guarded by Driver.mu.
	endpoints map[string]*endpoint
}

// rules returns the firewall rules of the network.
func (n *network) rules() firewall.NetworkRules {
	return firewall.NetworkRules{
		Bridge:     n.config.bridgeName,
		Subnets:    n.config.subnets,
		ICC:        n.config.enableICC,
		Masquerade: n.config.enableMasq,
		Internal:   n.config.internal,
		RoutedIPv4: n.config.routedV4,
		RoutedIPv6: n.config.routedV6,
	}
}

// New returns a bridge driver working in the namespace of cfg.Host. Close
// stops its background reaper.
func New(cfg Config) (*Driver, error) {
	if cfg.Host == nil {
		return nil, types.BadRequestErrorf("bridge driver: no netlink handle of the host namespace")
	}
	dc, err := parseDriverConfig(cfg.Generic)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("driver", NetworkType)
	d := &Driver{
		logger:   logger,
		host:     cfg.Host,
		networks: map[string]*network{},
		bridges:  map[string]string{},
	}
	if dc.enableFirewall {
		d.fw = cfg.Firewall
	}
	d.hostSysctl = cfg.SetSysctl
	d.portMappers = cfg.PortMappers
	d.newVeth = cfg.AddVeth
	d.deleteLinks = cfg.DeleteLinks
	if d.deleteLinks == nil {
		d.deleteLinks = d.deleteLinksOneByOne
	}
	if dc.enableIPForwarding {
		d.setSysctl = cfg.SetSysctl
	}
	d.readSysctl = cfg.Sysctl
	d.forwardingNoDrop = cfg.ForwardingNoDrop
	if err := d.removeForwardDrop(); err != nil {
		return nil, err
	}
	d.reaper = newReaper(cfg.Host, reapGrace, logger)
	d.conntrack = newConntrackFlusher(cfg.Host, conntrackCount(cfg.Sysctl), flushInterval, logger)
	return d, nil
}

// Close stops the background reaper, deleting the veths it still holds.
// Networks and joined endpoints stay in the kernel.
func (d *Driver) Close() error {
	d.reaper.close()
	d.conntrack.close()
	return nil
}

// Type returns "bridge".
func (d *Driver) Type() string { return NetworkType }

// Capability reports that bridge networks are local.
func (d *Driver) Capability() driverapi.Capability {
	return driverapi.Capability{DataScope: driverapi.LocalScope}
}

// CreateNetwork creates the network's bridge and programs its rules. A
// link that exists under the bridge's name is refused with a
// types.ForbiddenError naming it, and left as it is. A failure at any step
// undoes the steps before it.
func (d *Driver) CreateNetwork(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) error {
	return d.createNetwork(nid, opts, ipV4Data, ipV6Data, false)
}

// RestoreNetwork is CreateNetwork for a network the store holds, at
// restart: a bridge of its name that carries the network's mark is the
// network's own and is adopted, with its stale addresses removed. A
// bridge of its name without that mark (none, or another network's) is
// refused with a types.ForbiddenError naming the bridge and the network,
// and left untouched: no address, port, state or rule of it changes.
func (d *Driver) RestoreNetwork(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) error {
	return d.createNetwork(nid, opts, ipV4Data, ipV6Data, true)
}

// createNetwork creates the network, adopting an existing bridge only when
// adopt is set.
func (d *Driver) createNetwork(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData, adopt bool) error {
	cfg, err := parseNetworkConfig(nid, opts, ipV4Data, ipV6Data)
	if err != nil {
		return err
	}
	if err := d.reserveBridge(nid, cfg.bridgeName); err != nil {
		return err
	}
	n := &network{id: nid, config: cfg, endpoints: map[string]*endpoint{}}
	if err := d.setupNetwork(n, adopt); err != nil {
		d.mu.Lock()
		delete(d.bridges, cfg.bridgeName)
		d.mu.Unlock()
		return fmt.Errorf("create bridge network %s (bridge %s): %w", nid, cfg.bridgeName, err)
	}
	d.routeLocalnet(n)
	d.mu.Lock()
	d.networks[nid] = n
	d.mu.Unlock()
	return nil
}

// routeLocalnet lets the host reach the network's published ports on
// 127.0.0.1: the connection is sent out of the bridge with its loopback
// source, which the kernel refuses without route_localnet (the firewall
// then masquerades it, and drops anything from a bridge addressed to
// 127.0.0.0/8, so containers do not reach the host's loopback services).
// A failure only costs that access, so it is logged.
func (d *Driver) routeLocalnet(n *network) {
	if d.hostSysctl == nil || d.fw == nil || n.config.internal {
		return
	}
	key := "net.ipv4.conf." + n.config.bridgeName + ".route_localnet"
	if err := d.hostSysctl(key, "1"); err != nil {
		d.logger.Warn("published ports will not answer on 127.0.0.1", "bridge", n.config.bridgeName, "error", err)
	}
}

// reserveBridge claims bridgeName for nid, refusing a network that exists
// or a bridge another network owns.
func (d *Driver) reserveBridge(nid, bridgeName string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.networks[nid]; ok {
		return types.ForbiddenErrorf("create bridge network %s: it exists", nid)
	}
	if other, ok := d.bridges[bridgeName]; ok {
		return types.ForbiddenErrorf("create bridge network %s: bridge %s is in use by network %s", nid, bridgeName, other)
	}
	d.bridges[bridgeName] = nid
	return nil
}

// DeleteNetwork removes the network's rules, its bridge and every veth
// left on the bridge (host sides of endpoints that left, which the reaper
// or the kernel would otherwise remove later), in one batch: when it
// returns, no link of the network is left.
func (d *Driver) DeleteNetwork(nid string) error {
	d.mu.Lock()
	n, ok := d.networks[nid]
	d.mu.Unlock()
	if !ok {
		return types.NotFoundErrorf("delete bridge network %s: no such network", nid)
	}
	// The rules go first; if that fails the network stays, so the delete
	// can be retried instead of leaking the rules.
	if d.fw != nil {
		if err := d.fw.DeleteNetwork(n.config.bridgeName); err != nil {
			return types.InternalErrorf("delete bridge network %s: removing firewall rules: %w", nid, err)
		}
	}
	d.mu.Lock()
	delete(d.networks, nid)
	d.mu.Unlock()
	var errs []error
	links, err := d.bridgeVeths(n)
	if err != nil {
		errs = append(errs, err)
	}
	if err := d.deleteLinks(append(links, n.bridgeIndex)); err != nil {
		errs = append(errs, fmt.Errorf("deleting bridge %s and its veths: %w", n.config.bridgeName, err))
	}
	d.mu.Lock()
	delete(d.bridges, n.config.bridgeName)
	d.mu.Unlock()
	if len(errs) > 0 {
		return types.InternalErrorf("delete bridge network %s: %w", nid, errors.Join(errs...))
	}
	return nil
}

// bridgeVeths returns the indexes of the driver's veths on n's bridge and
// takes them from the reaper. n's bridge is the library's (created with
// n's mark, or adopted only with it), so a veth of the driver's name that
// is its port is the library's too; a veth of that name elsewhere is not
// taken.
func (d *Driver) bridgeVeths(n *network) ([]int, error) {
	links, err := d.host.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing the veths of bridge %s: %w", n.config.bridgeName, err)
	}
	var indexes []int
	for _, l := range links {
		name := l.Attrs().Name
		if l.Type() != "veth" || l.Attrs().MasterIndex != n.bridgeIndex ||
			!isOwnName(name, vethPrefix, 11) && !isOwnName(name, retiredPrefix, 10) {
			continue
		}
		d.reaper.cancel(name)
		indexes = append(indexes, l.Attrs().Index)
	}
	return indexes, nil
}

// deleteLinksOneByOne deletes host links by index, for a driver given no
// batch deletion.
func (d *Driver) deleteLinksOneByOne(indexes []int) error {
	var errs []error
	for _, idx := range indexes {
		if err := d.host.LinkDel(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: idx}}); err != nil && !isNotExist(err) {
			errs = append(errs, fmt.Errorf("deleting link %d: %w", idx, err))
		}
	}
	return errors.Join(errs...)
}
