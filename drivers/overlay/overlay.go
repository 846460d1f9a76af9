// Package overlay is the "overlay" network driver's data path: networks
// that span hosts, each IPv4 subnet a layer-2 segment carried over the
// hosts' own network (the underlay) in VXLAN. The global state (the
// networks' VNIs, where every endpoint is) lives in the controller's
// global store; the controller gives the driver the VNIs at
// CreateNetwork (VXLANIDListOption) and the remote endpoints through
// AddPeer and DeletePeer as it learns them. The driver works without any
// store and never talks to other hosts itself.
//
// # A namespace per network
//
// As docker's, every network has a network namespace of the driver's own
// on each host (a bind mount in Config.NamespaceDir named by the network
// ID), holding per segment a bridge and a VXLAN device enslaved to it; an
// endpoint is a veth pair from that bridge into the sandbox. The
// namespace isolates the network from the host: its bridges have no
// address and no route into or out of the host, so the host's routing
// table, its firewall (a FORWARD policy of drop, br_netfilter handing
// bridged frames to iptables) and the bridge driver's rules neither see
// nor break the network's traffic; its subnets may overlap the host's
// routes and other overlay networks; its interface names cannot clash
// with the host's; and deleting the network is destroying the namespace.
// (The encapsulated packets do cross the host's firewall, as UDP to
// Config.VXLANPort, which it must let in.) bridge-nf-call-* are turned
// off inside the namespace, so bridged frames skip netfilter altogether,
// and IPv6 is off on its interfaces (the ports need no addresses, and
// the kernel then spends nothing on them), but for the VXLAN devices of
// segments with IPv6 subnets, which need it to answer neighbour
// solicitations.
//
// The VXLAN device of a segment is created by a request sent from the
// controller's namespace (Config.Host) and born directly in the
// network's namespace: the namespace a VXLAN device is created from is
// the one its UDP socket and underlay routes live in, wherever the device
// is. Nothing of the network is ever in the controller's namespace, even
// for a moment.
//
// # Addresses, gateway, MTU
//
// The bridges carry no address. Docker puts the subnet's gateway address
// on the bridge, but nothing routes through it (the namespace has no way
// out), and the same address on the bridge of every host would be a
// duplicate on one segment. So Join gives the container no gateway
// (DisableGatewayService): an overlay network reaches only its own
// endpoints, and publishes no ports. A container that needs traffic to
// the outside (or published ports) also joins a local bridge network,
// which gives it its default route, as docker's docker_gwbridge does.
//
// Each IPv4 subnet is a segment with a VNI of its own; with IPv6 on, the
// IPv6 pools share the first segment (dual stack), or, in a network
// without IPv4, have one each. The underlay may be IPv4 or IPv6 (the
// family of Config.VTEP).
//
// The MTU of a network's interfaces (bridges, VXLAN devices, both ends of
// every veth) is the MTU of the underlay interface holding the VTEP
// address less the encapsulation, 50 bytes over IPv4 (70 over IPv6),
// unless MTUOption sets a smaller one.
//
// # Peers
//
// Remote endpoints are programmed statically, never learnt: on the VXLAN
// device of the peer's segment, a permanent FDB entry (MAC to the peer's
// VTEP) and a permanent neighbour entry (IP to MAC). Learning is off and
// there is no multicast group: broadcasts and unknown destinations go no
// further than the host. The device answers the ARP requests and
// neighbour solicitations of local endpoints for remote ones from its
// neighbour table (VXLAN proxy mode), so the neighbour entries sit on the
// VXLAN device rather than on the bridge, whose table would only serve
// the namespace's own (absent) IP stack.
//
// # Join
//
// Join creates the endpoint's veth pair in one netlink request in the
// network's namespace (osl.Namespace.AddVeth): one end up and on the
// segment's bridge, the other born in the sandbox's namespace under the
// name the sandbox asks for. Nothing moves between namespaces, which
// costs 15 to 18 ms per link on this kernel: a join costs 0.4 to 1 ms
// (BenchmarkJoin, N=200, on a loaded 2-CPU machine), as the bridge
// driver's. Leave leaves the veth to the kernel, which removes it with
// the sandbox's namespace; what is still there after a grace period is
// deleted in one batch.
//
// # Restart and orphans
//
// The kernel objects outlive the controller. Everything the driver
// creates is marked: its bridges and VXLAN devices carry the alias
// Mark plus the network ID, and its namespaces are files in its own
// directory. RestoreNetwork adopts a network's namespace and its marked
// devices when they match the configuration (the peers programmed in
// them stay, so traffic goes on), and recreates what is missing or
// different; CollectOrphans destroys the namespaces of networks that are
// not kept and deletes the veths of endpoints that are not joined. The
// controller re-feeds the peers after a restart and removes the stale
// ones with DeletePeer; Peers reads back what is programmed (the kernel
// keeps it across a restart of the controller, not across a reboot).
package overlay

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/types"
)

// NetworkType is the name of the driver.
const NetworkType = "overlay"

// DefaultVXLANPort is the UDP port of VXLAN (IANA), used when
// Config.VXLANPort is 0.
const DefaultVXLANPort = 4789

// Mark starts the alias of every bridge and VXLAN device the driver
// creates; the network's ID follows it.
const Mark = "netkit-overlay:"

// leaveGrace is how long a left endpoint's veth waits before the driver
// deletes it; usually the sandbox's namespace is destroyed meanwhile and
// the kernel removes the pair itself, for free.
const leaveGrace = 2 * time.Second

// Config is what the controller gives the driver.
type Config struct {
	// Logger receives the driver's logs; nil discards them.
	Logger *slog.Logger
	// Host is a netlink handle of the controller's namespace, where the
	// underlay (the interface holding VTEP) is. Required.
	Host *netlink.Handle
	// NamespaceDir is the directory of the networks' namespaces (bind
	// mounts named by network ID), such as "<exec root>/overlay". It is
	// the driver's own: CollectOrphans removes what it holds for networks
	// that are not kept, so it must not be the sandboxes' directory.
	// Required; made (0700) if missing.
	NamespaceDir string
	// VTEP is this host's underlay address, which peers send the
	// networks' traffic to (the address of the controller's discovery
	// address). nil: the driver refuses to create networks (ErrNoVTEP).
	VTEP net.IP
	// VXLANPort is the UDP port of the VXLAN traffic, the same on every
	// host; 0 is DefaultVXLANPort.
	VXLANPort int
}

// Driver is the overlay network driver.
type Driver struct {
	logger *slog.Logger
	host   *netlink.Handle
	nsDir  string
	vtep   net.IP // nil: no networks
	port   int
	// failPoint, set by tests only, fails network creation after the
	// named step.
	failPoint func(step string) error

	sweeper *sweeper

	mu sync.Mutex
	// networks by ID.
	networks map[string]*network
}

var (
	_ driverapi.Driver          = (*Driver)(nil)
	_ driverapi.Capable         = (*Driver)(nil)
	_ driverapi.Restorer        = (*Driver)(nil)
	_ driverapi.NetworkRestorer = (*Driver)(nil)
	_ driverapi.OrphanCollector = (*Driver)(nil)
)

// New returns an overlay driver for the controller's namespace cfg.Host.
func New(cfg Config) (*Driver, error) {
	if cfg.Host == nil {
		return nil, types.BadRequestErrorf("overlay driver: no netlink handle of the controller's namespace (Config.Host)")
	}
	if cfg.NamespaceDir == "" || !filepath.IsAbs(cfg.NamespaceDir) {
		return nil, types.BadRequestErrorf("overlay driver: the namespace directory (Config.NamespaceDir) must be an absolute path, have %q", cfg.NamespaceDir)
	}
	port := cfg.VXLANPort
	if port == 0 {
		port = DefaultVXLANPort
	}
	if port < 1 || port > 65535 {
		return nil, types.BadRequestErrorf("overlay driver: VXLAN port %d is out of range 1..65535", cfg.VXLANPort)
	}
	var vtep net.IP
	if cfg.VTEP != nil {
		if ip4 := cfg.VTEP.To4(); ip4 != nil {
			vtep = ip4
		} else if len(cfg.VTEP) == net.IPv6len {
			vtep = cfg.VTEP
		}
		if vtep == nil || vtep.IsUnspecified() || vtep.IsMulticast() || vtep.IsLoopback() {
			return nil, types.BadRequestErrorf("overlay driver: VTEP %v is not a unicast address peers can reach", cfg.VTEP)
		}
	}
	if err := os.MkdirAll(cfg.NamespaceDir, 0o700); err != nil {
		return nil, types.InternalErrorf("overlay driver: making the namespace directory: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("driver", NetworkType)
	d := &Driver{
		logger:   logger,
		host:     cfg.Host,
		nsDir:    filepath.Clean(cfg.NamespaceDir),
		vtep:     vtep,
		port:     port,
		networks: map[string]*network{},
	}
	d.sweeper = newSweeper(leaveGrace, logger)
	return d, nil
}

// Type returns "overlay".
func (d *Driver) Type() string { return NetworkType }

// Capability reports networks of global scope, whose records live in the
// global store and whose endpoints reach each other across hosts.
func (d *Driver) Capability() driverapi.Capability {
	return driverapi.Capability{
		DataScope:         driverapi.GlobalScope,
		ConnectivityScope: driverapi.GlobalScope,
		Attachment:        driverapi.AttachInterface,
	}
}

// Close deletes the veths of left endpoints that are still waiting and
// releases the driver's handles of the networks' namespaces. The networks
// themselves stay, for the next run to restore.
func (d *Driver) Close() error {
	d.sweeper.close()
	d.mu.Lock()
	nets := make([]*network, 0, len(d.networks))
	for _, n := range d.networks {
		nets = append(nets, n)
	}
	d.networks = map[string]*network{}
	d.mu.Unlock()
	for _, n := range nets {
		n.close()
	}
	return nil
}
