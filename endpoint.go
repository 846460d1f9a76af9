package libnetwork

import (
	"crypto/rand"
	"errors"
	"maps"
	"net"
	"slices"
	"sync"

	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/driverapi"
	globalipam "github.com/netkit/libnetwork/ipams/global"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// Endpoint represents a logical connection between a network and a sandbox.
type Endpoint interface {
	// A system generated id for this endpoint.
	ID() string

	// Name returns the name of this endpoint.
	Name() string

	// Network returns the name of the network to which this endpoint is attached.
	Network() string

	// Join joins the sandbox to the endpoint and populates into the sandbox
	// the network resources allocated for the endpoint.
	Join(sandbox Sandbox, options ...EndpointOption) error

	// Leave detaches the network resources populated in the sandbox.
	Leave(sandbox Sandbox, options ...EndpointOption) error

	// Return certain operational data belonging to this endpoint
	Info() EndpointInfo

	// DriverInfo returns a collection of driver operational data related to this endpoint retrieved from the driver
	DriverInfo() (map[string]interface{}, error)

	// Delete and detaches this endpoint from the network.
	Delete(force bool) error
}

// EndpointInfo provides an interface to retrieve network resources bound to
// the endpoint.
type EndpointInfo interface {
	// Iface returns InterfaceInfo, go interface that can be used
	// to get more information on the interface which was assigned to
	// the endpoint by the driver. This can be used after the
	// endpoint has been created.
	Iface() InterfaceInfo

	// Gateway returns the IPv4 gateway assigned by the driver.
	// This will only return a valid value if a container has joined the endpoint.
	Gateway() net.IP

	// GatewayIPv6 returns the IPv6 gateway assigned by the driver.
	// This will only return a valid value if a container has joined the endpoint.
	GatewayIPv6() net.IP

	// StaticRoutes returns the list of static routes configured by the network
	// driver when the container joins a network
	StaticRoutes() []*types.StaticRoute

	// Sandbox returns the attached sandbox if there, nil otherwise.
	Sandbox() Sandbox
}

// InterfaceInfo provides an interface to retrieve interface addresses bound
// to the endpoint.
type InterfaceInfo interface {
	// MacAddress returns the MAC address assigned to the endpoint.
	MacAddress() net.HardwareAddr

	// Address returns the IPv4 address assigned to the endpoint.
	Address() *net.IPNet

	// AddressIPv6 returns the IPv6 address assigned to the endpoint.
	AddressIPv6() *net.IPNet
}

// endpoint is the one live object of an endpoint.
type endpoint struct {
	network *network
	id      string
	name    string

	// Configuration, set by EndpointOptions at creation.
	anonymous         bool
	disableResolution bool
	myAliases         []string
	aliases           map[string]string
	exposedPorts      []types.TransportPort
	portMapping       []types.PortBinding
	generic           map[string]interface{}
	prefAddress       net.IP
	prefAddressV6     net.IP
	prefMAC           net.HardwareAddr
	ipamOptions       map[string]string
	optErr            error

	// iface is filled by IPAM and the driver before the endpoint enters
	// its network's registry and never written after, so it is read
	// without a lock. Delete returns the addresses to IPAM but leaves them
	// here (as v0.7 does): a caller still holding a deleted endpoint reads
	// what it had.
	iface *endpointInterface

	// joinPriority is set by JoinOptionPriority while a Join applies its
	// options; Join copies it into the join state.
	joinPriority int

	mu sync.Mutex
	// sandboxID is the sandbox the endpoint joined, "" if none.
	sandboxID string
	// join is the join state, nil when not joined.
	join *joinState
	// busy is set while a Join, Leave or Delete of the endpoint runs.
	busy bool
}

var _ Endpoint = (*endpoint)(nil)
var _ EndpointInfo = (*endpoint)(nil)

// endpointInterface is the endpoint's interface: the controller's public
// InterfaceInfo and the driver's driverapi.InterfaceInfo.
type endpointInterface struct {
	mac      net.HardwareAddr
	addr     *net.IPNet
	addrv6   *net.IPNet
	poolID   string
	poolIDv6 string
}

var _ InterfaceInfo = (*endpointInterface)(nil)
var _ driverapi.InterfaceInfo = (*endpointInterface)(nil)

func (i *endpointInterface) MacAddress() net.HardwareAddr { return types.GetMacCopy(i.mac) }
func (i *endpointInterface) Address() *net.IPNet          { return types.GetIPNetCopy(i.addr) }
func (i *endpointInterface) AddressIPv6() *net.IPNet      { return types.GetIPNetCopy(i.addrv6) }

func (i *endpointInterface) SetMacAddress(mac net.HardwareAddr) error {
	if i.mac != nil {
		return types.ForbiddenErrorf("endpoint interface MAC address present (%s); cannot set it to %s", i.mac, mac)
	}
	if mac == nil {
		return types.BadRequestErrorf("endpoint interface: empty MAC address")
	}
	i.mac = types.GetMacCopy(mac)
	return nil
}

func (i *endpointInterface) SetIPAddress(ip *net.IPNet) error {
	if ip == nil || ip.IP == nil {
		return types.BadRequestErrorf("endpoint interface: empty address")
	}
	if ip.IP.To4() == nil {
		if i.addrv6 != nil {
			return types.ForbiddenErrorf("endpoint interface IPv6 address present (%s); cannot set it to %s", i.addrv6, ip)
		}
		i.addrv6 = types.GetIPNetCopy(ip)
		return nil
	}
	if i.addr != nil {
		return types.ForbiddenErrorf("endpoint interface IPv4 address present (%s); cannot set it to %s", i.addr, ip)
	}
	i.addr = types.GetIPNetCopy(ip)
	return nil
}

// joinState is what a Join established.
type joinState struct {
	// ifName is the interface name inside the sandbox ("" for drivers that
	// give none).
	ifName       string
	gw           net.IP
	gw6          net.IP
	staticRoutes []*types.StaticRoute
	disableGW    bool
	priority     int
	// populated is false while the sandbox waits for its external key.
	populated bool
	// published are the ports the driver published for the endpoint while
	// it gives its sandbox external connectivity, with the host ports it
	// got (see sandbox.updateExternal); a restart asks for the same.
	published []types.PortBinding
}

func (ep *endpoint) ID() string { return ep.id }
func (ep *endpoint) Name() string {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return ep.name
}
func (ep *endpoint) Network() string { return ep.network.name }

func (ep *endpoint) Info() EndpointInfo { return ep }

func (ep *endpoint) Iface() InterfaceInfo { return ep.iface }

func (ep *endpoint) Gateway() net.IP {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.join == nil {
		return nil
	}
	return types.GetIPCopy(ep.join.gw)
}

func (ep *endpoint) GatewayIPv6() net.IP {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.join == nil {
		return nil
	}
	return types.GetIPCopy(ep.join.gw6)
}

func (ep *endpoint) StaticRoutes() []*types.StaticRoute {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.join == nil {
		return nil
	}
	out := make([]*types.StaticRoute, 0, len(ep.join.staticRoutes))
	for _, r := range ep.join.staticRoutes {
		out = append(out, r.GetCopy())
	}
	return out
}

func (ep *endpoint) Sandbox() Sandbox {
	ep.mu.Lock()
	sid := ep.sandboxID
	ep.mu.Unlock()
	if sid == "" {
		return nil
	}
	sb := ep.network.ctrl.sandbox(sid)
	if sb == nil {
		return nil
	}
	return sb
}

// DriverInfo returns the driver's operational data of the endpoint, with at
// least netlabel.MacAddress for drivers that give the endpoint a MAC, and,
// while the endpoint publishes its sandbox's ports, netlabel.PortMap: a
// []types.PortBinding with the host port each binding got.
func (ep *endpoint) DriverInfo() (map[string]interface{}, error) {
	info, err := ep.network.driver.EndpointOperInfo(ep.network.id, ep.id)
	if err != nil {
		return nil, types.Errorf("endpoint %s: driver %s: %w", ep.Name(), ep.network.networkType, err)
	}
	out := maps.Clone(info)
	if out == nil {
		out = map[string]interface{}{}
	}
	if _, ok := out[netlabel.MacAddress]; !ok && ep.iface.mac != nil {
		out[netlabel.MacAddress] = ep.iface.MacAddress()
	}
	// The ports published for the endpoint, with the host ports they got,
	// whatever the driver reports.
	ep.mu.Lock()
	if ep.join != nil && len(ep.join.published) > 0 {
		out[netlabel.PortMap] = slices.Clone(ep.join.published)
	}
	ep.mu.Unlock()
	return out, nil
}

// CreateEndpoint creates an endpoint: IPAM addresses, then the driver's
// endpoint, then the record. A failure at any step undoes the steps before
// it.
func (n *network) CreateEndpoint(name string, opts ...EndpointOption) (_ Endpoint, err error) {
	if name == "" {
		return nil, ErrInvalidName(name)
	}
	if err := checkEndpointName("endpoint name", name); err != nil {
		return nil, err
	}
	c := n.ctrl
	if err := c.begin(); err != nil {
		return nil, err
	}
	defer c.end()
	u := c.newUndo()
	defer u.rollback(&err)
	n.mu.Lock()
	if n.deleting {
		n.mu.Unlock()
		return nil, types.ForbiddenErrorf("network %s is being deleted; cannot create endpoint %s", n.name, name)
	}
	if n.goneGlobally {
		n.mu.Unlock()
		return nil, types.NotFoundErrorf("network %s was deleted on another host; cannot create endpoint %s", n.name, name)
	}
	if n.epNames[name] {
		n.mu.Unlock()
		return nil, types.ForbiddenErrorf("endpoint with name %s already exists in network %s", name, n.name)
	}
	n.epNames[name] = true
	n.mu.Unlock()
	u.add(func() {
		n.mu.Lock()
		delete(n.epNames, name)
		n.mu.Unlock()
		n.nameReleased()
	})

	ep := &endpoint{network: n, id: c.newID(), name: name, iface: &endpointInterface{}}
	ep.generic = map[string]interface{}{}
	for _, o := range opts {
		if o != nil {
			o(ep)
		}
	}
	if ep.optErr != nil {
		return nil, types.Errorf("endpoint %s: %w", name, ep.optErr)
	}
	if ep.prefMAC != nil {
		ep.iface.mac = ep.prefMAC
	}
	// The name of an endpoint of a global network is the network's across
	// hosts: claimed in the global store while the addresses are
	// allocated (two round trips to etcd at once, not one after the
	// other).
	var claimed chan error
	if n.isGlobal() {
		claimed = make(chan error, 1)
		go func() { claimed <- c.global.claimEndpointName(ep) }()
	}
	err = ep.allocateAddresses()
	if claimed != nil {
		cerr := <-claimed
		if cerr == nil {
			u.add(func() {
				if err := c.global.releaseEndpointName(ep); err != nil {
					c.logger.Warn("undoing an endpoint name's claim", "endpoint", name, "error", err)
				}
			})
		} else if err == nil {
			// The addresses go back with the undo below.
			u.add(ep.releaseAddresses)
			return nil, cerr
		}
	}
	if err != nil {
		return nil, err
	}
	// Releases the deferred IPv6 address too, whenever it comes.
	u.add(ep.releaseAddresses)
	if err := n.driver.CreateEndpoint(n.id, ep.id, ep.iface, ep.driverOptions()); err != nil {
		return nil, types.Errorf("endpoint %s: driver %s: %w", name, n.networkType, err)
	}
	u.add(func() {
		if derr := n.driver.DeleteEndpoint(n.id, ep.id); derr != nil {
			c.logger.Warn("undoing endpoint create", "endpoint", name, "error", derr)
		}
	})
	if err := ep.allocateDeferredIPv6(); err != nil {
		return nil, err
	}
	if err := c.state.Update(func(tx *datastore.Tx) error {
		return tx.Put(kindEndpoint, ep.id, ep.record())
	}); err != nil {
		return nil, types.Errorf("endpoint %s: storing: %w", name, err)
	}
	if err := u.step("endpoint-after-store", func() {
		_ = c.state.Update(func(tx *datastore.Tx) error { return tx.Delete(kindEndpoint, ep.id) })
	}); err != nil {
		return nil, err
	}

	n.mu.Lock()
	n.endpoints[ep.id] = ep
	n.mu.Unlock()
	return ep, nil
}

// driverOptions is the option map handed to the driver for the endpoint.
func (ep *endpoint) driverOptions() map[string]interface{} {
	m := maps.Clone(ep.generic)
	if m == nil {
		m = map[string]interface{}{}
	}
	if len(ep.portMapping) > 0 {
		m[netlabel.PortMap] = slices.Clone(ep.portMapping)
	}
	if len(ep.exposedPorts) > 0 {
		m[netlabel.ExposedPorts] = slices.Clone(ep.exposedPorts)
	}
	return m
}

// allocateAddresses asks IPAM for the endpoint's addresses.
func (ep *endpoint) allocateAddresses() error {
	n := ep.network
	if err := ep.allocateFamily(n.ipamV4Info, ep.prefAddress, false); err != nil {
		return err
	}
	// A deferred IPv6 address is allocated after the driver's
	// CreateEndpoint (allocateDeferredIPv6), unless the caller asked for
	// one.
	if n.enableIPv6 && (!n.postIPv6 || ep.prefAddressV6 != nil) {
		if err := ep.allocateFamily(n.ipamV6Info, ep.prefAddressV6, true); err != nil {
			ep.releaseAddresses()
			return err
		}
	}
	return nil
}

// allocateDeferredIPv6 gives the endpoint of a network made with
// NetworkOptionDeferIPv6Alloc its IPv6 address after the driver's
// CreateEndpoint, as v0.7 does: the address the driver chose (the bridge
// makes it from the network's prefix and the endpoint's MAC) is reserved in
// IPAM, or IPAM picks one when the driver chose none.
func (ep *endpoint) allocateDeferredIPv6() error {
	n := ep.network
	if !n.enableIPv6 || !n.postIPv6 || ep.iface.poolIDv6 != "" {
		return nil
	}
	var pref net.IP
	if a := ep.iface.addrv6; a != nil {
		pref = a.IP
		ep.iface.addrv6 = nil
	}
	return ep.allocateFamily(n.ipamV6Info, pref, true)
}

func (ep *endpoint) allocateFamily(infos []*IpamInfo, pref net.IP, v6 bool) error {
	n := ep.network
	if len(infos) == 0 {
		if pref != nil {
			return types.BadRequestErrorf("endpoint %s: address %s requested but network %s has no such pool", ep.Name(), pref, n.name)
		}
		return nil
	}
	opts := ep.ipamOptions
	if n.isGlobal() {
		// The global allocator binds the address to this host's lease
		// and lets it take back its own after a restart.
		opts = maps.Clone(opts)
		if opts == nil {
			opts = map[string]string{}
		}
		opts[globalipam.OwnerOption] = n.ctrl.id
	}
	if pi, ok := n.ipam.(*pluginIpam); ok {
		// Found once: a plugin that cannot be reached fails here,
		// after one wait, not again at each request.
		a, err := pi.get()
		if err != nil {
			return types.Errorf("endpoint %s: address in network %s: %w", ep.Name(), n.name, err)
		}
		if a.Capability().RequiresMACAddress {
			// The plugin wants the MAC with the request: the endpoint
			// gets one now, which the driver then uses.
			if ep.iface.mac == nil {
				ep.iface.mac = randomMAC()
			}
			opts = maps.Clone(opts)
			if opts == nil {
				opts = map[string]string{}
			}
			opts[netlabel.MacAddress] = ep.iface.mac.String()
		}
	}
	var lastErr error
	for _, info := range infos {
		if pref != nil && info.Pool != nil && !info.Pool.Contains(pref) {
			continue
		}
		addr, _, err := n.ipam.RequestAddress(info.PoolID, pref, opts)
		if err != nil {
			lastErr = err
			continue
		}
		if addr == nil {
			// The null allocator gives no address.
			return nil
		}
		if info.Pool != nil && !info.Pool.Contains(addr.IP) {
			// A remote allocator's answer is not trusted to be in its
			// own pool.
			if rerr := n.ipam.ReleaseAddress(info.PoolID, addr.IP); rerr != nil {
				n.ctrl.logger.Warn("releasing an address IPAM gave outside its pool", "endpoint", ep.Name(), "address", addr, "error", rerr)
			}
			return types.InternalErrorf("endpoint %s: IPAM %s gave address %s, outside pool %s of network %s", ep.Name(), n.ipamType, addr.IP, info.Pool, n.name)
		}
		if v6 {
			ep.iface.addrv6, ep.iface.poolIDv6 = addr, info.PoolID
		} else {
			ep.iface.addr, ep.iface.poolID = addr, info.PoolID
		}
		return nil
	}
	if lastErr == nil {
		return types.BadRequestErrorf("endpoint %s: address %s is outside the pools of network %s", ep.Name(), pref, n.name)
	}
	if pref != nil {
		return types.Errorf("endpoint %s: address %s in network %s: %w", ep.Name(), pref, n.name, lastErr)
	}
	return types.Errorf("endpoint %s: address in network %s: %w", ep.Name(), n.name, lastErr)
}

// releaseAddresses returns the endpoint's addresses to IPAM. It leaves
// ep.iface as it is (readers take no lock), so each path calls it once: on
// a failed create, or at Delete once the endpoint is out of its network's
// registry.
func (ep *endpoint) releaseAddresses() {
	n := ep.network
	if n.isGlobal() {
		if err := ep.releaseGlobal(); err != nil {
			n.ctrl.logger.Warn("releasing the endpoint's name and addresses", "endpoint", ep.Name(), "error", err)
		}
		if n.ipam == n.ctrl.global.ipam {
			return
		}
	}
	// An address without a pool ID was never given by IPAM (a driver set
	// it, and its reservation had not been made): nothing to give back.
	if ep.iface.addr != nil && ep.iface.poolID != "" {
		if err := n.ipam.ReleaseAddress(ep.iface.poolID, ep.iface.addr.IP); err != nil {
			n.ctrl.logger.Warn("releasing address", "endpoint", ep.Name(), "address", ep.iface.addr, "error", err)
		}
	}
	if ep.iface.addrv6 != nil && ep.iface.poolIDv6 != "" {
		if err := n.ipam.ReleaseAddress(ep.iface.poolIDv6, ep.iface.addrv6.IP); err != nil {
			n.ctrl.logger.Warn("releasing address", "endpoint", ep.Name(), "address", ep.iface.addrv6, "error", err)
		}
	}
}

// releaseGlobal gives back the name and addresses of an endpoint of a
// global network that this controller still holds: releasing again, or
// after another host took them, does nothing.
func (ep *endpoint) releaseGlobal() error {
	c := ep.network.ctrl
	// The name and the addresses are different keys: given back at once,
	// one round trip to etcd rather than two, as CreateEndpoint claims
	// them.
	named := make(chan error, 1)
	go func() { named <- c.global.releaseEndpointName(ep) }()
	var errs []error
	if ep.network.ipam == c.global.ipam { // else a remote allocator's
		for _, a := range []struct {
			pool string
			addr *net.IPNet
		}{{ep.iface.poolID, ep.iface.addr}, {ep.iface.poolIDv6, ep.iface.addrv6}} {
			if a.addr != nil && a.pool != "" {
				if err := c.global.ipam.ReleaseOwned(a.pool, a.addr.IP, c.id); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(append(errs, <-named)...)
}

// Delete deletes the endpoint. A joined endpoint is refused unless force,
// which leaves the sandbox first.
func (ep *endpoint) Delete(force bool) error {
	n := ep.network
	c := n.ctrl
	if err := c.begin(); err != nil {
		return err
	}
	defer c.end()
	ep.mu.Lock()
	sid := ep.sandboxID
	ep.mu.Unlock()
	if sid != "" {
		if !force {
			return &ActiveContainerError{name: ep.Name(), id: ep.id}
		}
		if sb := c.sandbox(sid); sb != nil {
			if err := ep.Leave(sb); err != nil {
				return types.Errorf("endpoint %s: leaving sandbox before delete: %w", ep.Name(), err)
			}
		}
	}
	n.mu.Lock()
	_, known := n.endpoints[ep.id]
	n.mu.Unlock()
	if !known {
		return &UnknownEndpointError{name: ep.Name(), id: ep.id}
	}
	ep.mu.Lock()
	if ep.busy {
		ep.mu.Unlock()
		return types.ForbiddenErrorf("endpoint %s: another operation is in progress", ep.name)
	}
	if ep.sandboxID != "" {
		ep.mu.Unlock()
		return &ActiveContainerError{name: ep.name, id: ep.id}
	}
	ep.busy = true
	ep.mu.Unlock()

	unbusy := func() {
		ep.mu.Lock()
		ep.busy = false
		ep.mu.Unlock()
	}
	if n.isGlobal() {
		// The name and addresses first: with the global store
		// unreachable nothing is deleted, rather than them held for
		// ever.
		if err := ep.releaseGlobal(); err != nil {
			unbusy()
			c.global.repairLater(ep)
			return types.Errorf("endpoint %s: %w", ep.Name(), err)
		}
	}
	// The record goes first, so it never outlives the endpoint.
	if err := c.state.Update(func(tx *datastore.Tx) error { return tx.Delete(kindEndpoint, ep.id) }); err != nil {
		unbusy()
		return types.Errorf("endpoint %s: removing its record: %w", ep.Name(), err)
	}
	if err := n.driver.DeleteEndpoint(n.id, ep.id); err != nil {
		if perr := c.state.Update(func(tx *datastore.Tx) error { return tx.Put(kindEndpoint, ep.id, ep.record()) }); perr != nil {
			c.logger.Error("endpoint delete failed and its record could not be put back", "endpoint", ep.Name(), "error", perr)
		}
		unbusy()
		return types.Errorf("endpoint %s: driver %s: %w", ep.Name(), n.networkType, err)
	}
	ep.forget()
	return nil
}

// forget takes a deleted endpoint out of its network's registry and then
// gives its addresses back. Out of the registry first, so no walker or
// resolver finds the endpoint with addresses IPAM may already have given
// to another. Its name stays reserved until the addresses are back, which
// also keeps Network.Delete from releasing the pools under them.
func (ep *endpoint) forget() {
	n := ep.network
	n.mu.Lock()
	delete(n.endpoints, ep.id)
	n.mu.Unlock()
	ep.releaseAddresses()
	n.mu.Lock()
	delete(n.epNames, ep.name)
	n.mu.Unlock()
	n.nameReleased()
}

// randomMAC returns a random locally administered unicast MAC.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}
