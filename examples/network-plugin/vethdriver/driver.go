// Package vethdriver is the driver logic of the example network plugin
// (examples/network-plugin): a local-scope driver that connects endpoints
// to a Linux bridge with veth pairs, behind the remote network driver
// protocol's methods with the request and answer types of
// drivers/remote/api. It is served by pluginsdk/network in the example and
// by github.com/docker/go-plugins-helpers/network in the tests, so both
// helpers run the same driver.
//
// It works in the network namespace it runs in, the one the library's
// controller creates interfaces in (the plugin runs beside the
// controller):
//
//   - CreateNetwork makes a bridge "vpb"+<first 8 characters of the
//     network ID>, up, holding the network's IPv4 gateway address when
//     IPAM gave one; DeleteNetwork deletes it.
//   - CreateEndpoint answers a MAC derived from the endpoint ID when the
//     library left the MAC to the driver; addresses are the library's.
//   - Join makes a veth pair: "vph"+<7 characters of the endpoint ID> on
//     the bridge, up, and "vpc"+<the same 7>, with the endpoint's MAC, that
//     the library moves into the sandbox and names eth<n>; the answer names
//     the network's gateway. Leave deletes the pair.
//
// Networks and endpoints are kept in memory only: a restarted plugin
// knows none, and deletes a leftover bridge when asked to delete its
// network.
package vethdriver

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/examples/pluginutil"
	"github.com/netkit/libnetwork/types"
)

// Name prefixes of the interfaces the driver makes.
const (
	BridgePrefix        = "vpb"
	HostVethPrefix      = "vph"
	ContainerVethPrefix = "vpc"
	// DstPrefix is the prefix of the interface's name in the sandbox.
	DstPrefix = "eth"
)

// MACAddressKey is the key of the endpoint's MAC in EndpointOperInfo.
const MACAddressKey = "com.docker.network.endpoint.macaddress"

// Driver is the veth driver. Its methods are those of the Driver interface
// of pluginsdk/network and go-plugins-helpers/network; they are safe for
// concurrent use.
type Driver struct {
	logger *slog.Logger
	nl     *netlink.Handle
	time   pluginutil.HandlerTime

	mu sync.Mutex
	// networks are the networks created, by ID.
	networks map[string]*network
}

// network is a network and its endpoints. Guarded by Driver.mu.
type network struct {
	id     string
	bridge string
	// gateway is the bridge's address, invalid without one.
	gateway   netip.Prefix
	endpoints map[string]*endpoint
}

// endpointState is where an endpoint is in its life.
type endpointState int

const (
	created endpointState = iota
	// busy: Join is making the veth pair, or Leave deleting it, outside
	// the lock.
	busy
	joined
)

// endpoint is an endpoint of a network. Guarded by Driver.mu.
type endpoint struct {
	id    string
	mac   net.HardwareAddr
	state endpointState
}

// New returns a driver working in the calling process's network namespace.
// A nil logger discards. Close releases its netlink socket.
func New(logger *slog.Logger) (*Driver, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, types.InternalErrorf("veth driver: opening netlink: %w", err)
	}
	return &Driver{logger: logger, nl: nl, networks: map[string]*network{}}, nil
}

// Close releases the driver's netlink socket. It leaves the bridges and
// veth pairs it made.
func (d *Driver) Close() { d.nl.Close() }

// HandlerTime is the time spent in the methods of d so far.
func (d *Driver) HandlerTime() *pluginutil.HandlerTime { return &d.time }

// BridgeName is the name of the bridge of network nid.
func BridgeName(nid string) string { return BridgePrefix + prefix(nid, 8) }

// VethNames are the names of the host and container sides of endpoint
// eid's veth pair.
func VethNames(eid string) (host, container string) {
	return HostVethPrefix + prefix(eid, 7), ContainerVethPrefix + prefix(eid, 7)
}

func prefix(id string, n int) string {
	if len(id) > n {
		return id[:n]
	}
	return id
}

// GetCapabilities reports a local-scope driver.
func (d *Driver) GetCapabilities() (*api.CapabilitiesResponse, error) {
	defer d.time.Track()()
	return &api.CapabilitiesResponse{Scope: api.LocalScope, ConnectivityScope: api.LocalScope}, nil
}

// AllocateNetwork does nothing: a local driver has no global resources.
func (d *Driver) AllocateNetwork(*api.AllocateNetworkRequest) (*api.AllocateNetworkResponse, error) {
	defer d.time.Track()()
	return &api.AllocateNetworkResponse{}, nil
}

// FreeNetwork does nothing.
func (d *Driver) FreeNetwork(*api.FreeNetworkRequest) error {
	defer d.time.Track()()
	return nil
}

// DiscoverNew does nothing.
func (d *Driver) DiscoverNew(*api.DiscoveryNotification) error {
	defer d.time.Track()()
	return nil
}

// DiscoverDelete does nothing.
func (d *Driver) DiscoverDelete(*api.DiscoveryNotification) error {
	defer d.time.Track()()
	return nil
}

// ProgramExternalConnectivity does nothing: the example publishes no
// ports.
func (d *Driver) ProgramExternalConnectivity(*api.ProgramExternalConnectivityRequest) error {
	defer d.time.Track()()
	return nil
}

// RevokeExternalConnectivity does nothing.
func (d *Driver) RevokeExternalConnectivity(*api.RevokeExternalConnectivityRequest) error {
	defer d.time.Track()()
	return nil
}
