package libnetwork

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/ipamutils"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/types"
)

// A Network represents a logical connectivity zone that containers may join
// using the Link method. A Network is managed by a specific driver.
type Network interface {
	// A user chosen name for this network.
	Name() string

	// A system generated id for this network.
	ID() string

	// The type of network, which corresponds to its managing driver.
	Type() string

	// Create a new endpoint to this network symbolically identified by the
	// specified unique name. The options parameter carry driver specific options.
	CreateEndpoint(name string, options ...EndpointOption) (Endpoint, error)

	// Delete the network.
	Delete() error

	// Endpoints returns the list of Endpoint(s) in this network.
	Endpoints() []Endpoint

	// WalkEndpoints uses the provided function to walk the Endpoints
	WalkEndpoints(walker EndpointWalker)

	// EndpointByName returns the Endpoint which has the passed name. If not found, the error ErrNoSuchEndpoint is returned.
	EndpointByName(name string) (Endpoint, error)

	// EndpointByID returns the Endpoint which has the passed id. If not found, the error ErrNoSuchEndpoint is returned.
	EndpointByID(id string) (Endpoint, error)

	// Return certain operational data belonging to this network
	Info() NetworkInfo
}

// NetworkInfo returns some configuration and operational information about
// the network.
type NetworkInfo interface {
	IpamConfig() (string, map[string]string, []*IpamConf, []*IpamConf)
	IpamInfo() ([]*IpamInfo, []*IpamInfo)
	DriverOptions() map[string]string
	Scope() string
	IPv6Enabled() bool
	Internal() bool
	Labels() map[string]string
}

// EndpointWalker is a client provided function which will be used to walk
// the Endpoints. When the function returns true, the walk will stop.
type EndpointWalker func(ep Endpoint) bool

// network is the one live object of a network. Everything but the
// endpoint registry is fixed once the network is created, so getters take
// no lock.
type network struct {
	ctrl        *controller
	id          string
	name        string
	networkType string
	driver      driverapi.Driver
	scope       string
	// attach is what the driver's endpoints give a sandbox (its
	// capability).
	attach  driverapi.Attachment
	created time.Time

	// Configuration, set by NetworkOptions before creation.
	ipamType     string
	addrSpace    string
	ipamOptions  map[string]string
	ipamV4Config []*IpamConf
	ipamV6Config []*IpamConf
	enableIPv6   bool
	internal     bool
	persist      bool
	postIPv6     bool
	labels       map[string]string
	generic      options.Generic
	optErr       error

	// Set by IPAM at creation (or restore), before the network enters the
	// controller's registry, and never written after: Delete returns the
	// pools to IPAM but leaves them here, so readers take no lock.
	ipam       ipamapi.Ipam
	ipamV4Info []*IpamInfo
	ipamV6Info []*IpamInfo
	// ipamKeepsState: a restored network on a remote allocator that keeps
	// its pools and addresses across the controller's restarts, so they
	// are not asked for again.
	ipamKeepsState bool

	mu sync.Mutex
	// endpoints holds the network's endpoints by ID.
	endpoints map[string]*endpoint
	// epNames reserves endpoint names, including those being created.
	epNames map[string]bool
	// deleting is set while Delete runs; no endpoint may be created then.
	deleting bool
	// goneGlobally is set when another host deleted the (global) network
	// while endpoints here kept it: the last of them to go takes the
	// network with it (nameReleased).
	goneGlobally bool
	// globalKeysGone is set once this host's Delete removed the network's
	// global keys.
	globalKeysGone bool
}

// nameReleased is called after an endpoint name of n is given back (n.mu
// not held): a network another host deleted goes once it has no
// endpoints left here.
func (n *network) nameReleased() {
	n.mu.Lock()
	last := n.goneGlobally && len(n.endpoints) == 0 && len(n.epNames) == 0
	n.mu.Unlock()
	if last && n.ctrl.global != nil {
		go n.ctrl.global.forgetNetwork(n)
	}
}

var _ Network = (*network)(nil)
var _ NetworkInfo = (*network)(nil)

func (n *network) Name() string { return n.name }
func (n *network) ID() string   { return n.id }
func (n *network) Type() string { return n.networkType }

func (n *network) Info() NetworkInfo { return n }

func (n *network) Scope() string             { return n.scope }
func (n *network) IPv6Enabled() bool         { return n.enableIPv6 }
func (n *network) Internal() bool            { return n.internal }
func (n *network) Labels() map[string]string { return maps.Clone(n.labels) }

// IpamConfig returns the IPAM driver, its options and the v4 and v6
// configurations the network was created with.
func (n *network) IpamConfig() (string, map[string]string, []*IpamConf, []*IpamConf) {
	return n.ipamType, maps.Clone(n.ipamOptions), copyIpamConfs(n.ipamV4Config), copyIpamConfs(n.ipamV6Config)
}

// IpamInfo returns the pools IPAM gave the network (for a deleted network,
// those it had).
func (n *network) IpamInfo() ([]*IpamInfo, []*IpamInfo) {
	return copyIpamInfos(n.ipamV4Info), copyIpamInfos(n.ipamV6Info)
}

// DriverOptions returns the driver options of the network as strings.
func (n *network) DriverOptions() map[string]string {
	g, _, _ := options.GetGeneric(n.generic, netlabel.GenericData)
	out := make(map[string]string, len(g))
	for k, v := range g {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func copyIpamInfos(in []*IpamInfo) []*IpamInfo {
	out := make([]*IpamInfo, 0, len(in))
	for _, i := range in {
		d := &IpamInfo{}
		i.CopyTo(d)
		out = append(out, d)
	}
	return out
}

// driverOptions is the option map handed to the driver at CreateNetwork.
func (n *network) driverOptions() map[string]interface{} {
	m := make(map[string]interface{}, len(n.generic)+2)
	for k, v := range n.generic {
		m[k] = v
	}
	m[netlabel.EnableIPv6] = n.enableIPv6
	m[netlabel.Internal] = n.internal
	return m
}

// ipamConfigs returns the network's v4 and v6 IPAM configurations in one
// new slice.
// driverOptStrings returns a copy of n's driver options
// (netlabel.GenericData) that are strings.
func (n *network) driverOptStrings() map[string]string {
	out := map[string]string{}
	switch g := n.generic[netlabel.GenericData].(type) {
	case map[string]string:
		maps.Copy(out, g)
	case map[string]interface{}:
		for k, v := range g {
			if sv, ok := v.(string); ok {
				out[k] = sv
			}
		}
	}
	return out
}

// addDriverOpts adds opts to n's driver options, keeping the others (of
// any type). n must not be shared yet.
func (n *network) addDriverOpts(opts map[string]string) {
	if n.generic == nil {
		n.generic = options.Generic{}
	}
	switch g := n.generic[netlabel.GenericData].(type) {
	case map[string]interface{}:
		m := maps.Clone(g)
		for k, v := range opts {
			m[k] = v
		}
		n.generic[netlabel.GenericData] = m
	case map[string]string:
		m := maps.Clone(g)
		maps.Copy(m, opts)
		n.generic[netlabel.GenericData] = m
	default:
		n.generic[netlabel.GenericData] = maps.Clone(opts)
	}
}

func (n *network) ipamConfigs() []*IpamConf {
	return slices.Concat(n.ipamV4Config, n.ipamV6Config)
}

// subnets returns the pools of the network.
func (n *network) subnets() []*net.IPNet {
	var out []*net.IPNet
	for _, i := range slices.Concat(n.ipamV4Info, n.ipamV6Info) {
		out = append(out, i.Pool)
	}
	return out
}

func (n *network) Endpoints() []Endpoint {
	type named struct {
		ep   *endpoint
		name string
	}
	n.mu.Lock()
	eps := make([]named, 0, len(n.endpoints))
	for _, ep := range n.endpoints {
		// rename writes ep.name under n.mu too, so it is read here.
		eps = append(eps, named{ep, ep.name})
	}
	n.mu.Unlock()
	sort.Slice(eps, func(i, j int) bool { return eps[i].name < eps[j].name })
	out := make([]Endpoint, len(eps))
	for i, e := range eps {
		out[i] = e.ep
	}
	// A global network's endpoints on other hosts too, as v0.7 lists
	// them; all by name.
	if remote := n.remoteEndpointList(); len(remote) > 0 {
		out = append(out, remote...)
		sort.SliceStable(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	}
	return out
}

func (n *network) WalkEndpoints(walker EndpointWalker) {
	for _, ep := range n.Endpoints() {
		if walker(ep) {
			return
		}
	}
}

func (n *network) EndpointByName(name string) (Endpoint, error) {
	if name == "" {
		return nil, ErrInvalidName(name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ep := range n.endpoints {
		if ep.name == name {
			return ep, nil
		}
	}
	for _, ep := range n.remoteEndpointList() {
		if ep.Name() == name {
			return ep, nil
		}
	}
	return nil, ErrNoSuchEndpoint(name)
}

func (n *network) EndpointByID(id string) (Endpoint, error) {
	if id == "" {
		return nil, ErrInvalidID(id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if ep, ok := n.endpoints[id]; ok {
		return ep, nil
	}
	for _, ep := range n.remoteEndpointList() {
		if ep.ID() == id {
			return ep, nil
		}
	}
	return nil, ErrNoSuchEndpoint(id)
}

// Delete deletes the network. It refuses while endpoints exist.
func (n *network) Delete() error {
	c := n.ctrl
	if err := c.begin(); err != nil {
		return err
	}
	defer c.end()
	if n.hasSpecialDriver() {
		return types.ForbiddenErrorf("network %s: network of type %q cannot be deleted", n.name, n.networkType)
	}
	c.mu.Lock()
	registered := c.networks[n.id] == n
	c.mu.Unlock()
	if !registered {
		// Deleted already (or never this controller's): v0.7 answers
		// *UnknownNetworkError.
		return &UnknownNetworkError{name: n.name, id: n.id}
	}
	n.mu.Lock()
	if n.deleting {
		n.mu.Unlock()
		return types.ForbiddenErrorf("network %s: a delete is already in progress", n.name)
	}
	if len(n.endpoints) > 0 || len(n.epNames) > 0 {
		n.mu.Unlock()
		return &ActiveEndpointsError{name: n.name, id: n.id}
	}
	n.deleting = true
	n.mu.Unlock()
	undelete := func() {
		n.mu.Lock()
		n.deleting = false
		n.mu.Unlock()
	}
	n.mu.Lock()
	// Another host deleted it (its endpoints here kept it): that host
	// removed its keys and gave its pools back, perhaps to another
	// network by now.
	goneGlobally := n.goneGlobally
	keysGone := n.globalKeysGone || goneGlobally
	n.mu.Unlock()
	if n.isGlobal() && !keysGone {
		// Out of the global store first: no other host makes an
		// endpoint on it after.
		if err := c.global.deleteNetworkKeys(n); err != nil {
			undelete()
			return err
		}
		// A retry after a later failure must not delete them again:
		// another network may have the name and VNIs by then.
		n.mu.Lock()
		n.globalKeysGone = true
		n.mu.Unlock()
	}

	// The record goes first: a record outliving its network would bring
	// the network back at the next start.
	if n.persist {
		if err := c.store.Update(func(tx *datastore.Tx) error { return tx.Delete(kindNetwork, n.id) }); err != nil {
			undelete()
			return types.Errorf("network %s: removing its record: %w", n.name, err)
		}
	}
	if err := n.driver.DeleteNetwork(n.id); err != nil {
		if n.persist {
			if perr := c.store.Update(func(tx *datastore.Tx) error { return tx.Put(kindNetwork, n.id, n.record()) }); perr != nil {
				c.logger.Error("network delete failed and its record could not be put back", "network", n.name, "error", perr)
			}
		}
		undelete()
		return types.Errorf("network %s: driver %s: %w", n.name, n.networkType, err)
	}
	if pd, ok := n.driver.(*pluginDriver); ok && n.scope == driverapi.GlobalScope && !goneGlobally {
		if err := pd.freeNetwork(n.id); err != nil {
			c.logger.Warn("freeing a deleted network's allocation", "network", n.name, "error", err)
		}
	}
	// Out of the registry first, so no walker or overlap check finds the
	// network with pools IPAM may already have given to another. Its name
	// stays reserved until the pools are back.
	c.mu.Lock()
	delete(c.networks, n.id)
	c.subnets.remove(n)
	c.mu.Unlock()
	if !goneGlobally {
		n.releasePools()
	}
	c.mu.Lock()
	delete(c.netNames, n.name)
	c.mu.Unlock()
	return nil
}

// allocatePools asks IPAM for the network's pools, gateways and auxiliary
// addresses. On error everything it got is released.
func (n *network) allocatePools() (err error) {
	if n.hasSpecialDriver() {
		// host and null networks give no addresses.
		return nil
	}
	defer func() {
		if err != nil {
			n.releasePools()
		}
	}()
	if n.addrSpace == "" {
		local, _, err := n.ipam.GetDefaultAddressSpaces()
		if err != nil {
			return types.Errorf("network %s: ipam %s: %w", n.name, n.ipamType, err)
		}
		n.addrSpace = local
	}
	v4 := n.ipamV4Config
	if len(v4) == 0 {
		v4 = []*IpamConf{{}}
	}
	// allocateFamily records each pool in n as it gets it, so that the
	// deferred releasePools finds them: its nil result on error must not
	// be assigned over them.
	if _, err = n.allocateFamily(v4, false); err != nil {
		return err
	}
	if n.enableIPv6 {
		v6 := n.ipamV6Config
		if len(v6) == 0 {
			v6 = []*IpamConf{{}}
		}
		if _, err = n.allocateFamily(v6, true); err != nil {
			return err
		}
	}
	return nil
}

func (n *network) allocateFamily(confs []*IpamConf, v6 bool) ([]*IpamInfo, error) {
	var infos []*IpamInfo
	for _, conf := range confs {
		info := &IpamInfo{}
		info.AddressSpace = n.addrSpace
		// Append before any address request so releasePools sees it.
		infos = append(infos, info)
		if v6 {
			n.ipamV6Info = infos
		} else {
			n.ipamV4Info = infos
		}
		poolID, pool, meta, err := n.ipam.RequestPool(n.addrSpace, conf.PreferredPool, conf.SubPool, n.ipamOptions, v6)
		if err != nil {
			infos = infos[:len(infos)-1]
			if v6 {
				n.ipamV6Info = infos
			} else {
				n.ipamV4Info = infos
			}
			return nil, types.Errorf("network %s: %s: %w", n.name, describePoolRequest(conf, v6), err)
		}
		info.PoolID, info.Pool, info.Meta = poolID, pool, meta
		// Whatever IPAM gave (a remote one, a default pool) must be a
		// pool that can be right; the null IPAM gives no addresses.
		if n.ipamType != ipamapi.NullIPAM {
			if err := checkIPAMPool(pool); err != nil {
				return nil, types.Errorf("network %s: IPAM %s gave %w", n.name, n.ipamType, err)
			}
		}

		// A gateway in the pool's data (a remote allocator's) is the
		// network's, unless the caller asked for one: IPAM is asked for
		// the gateway address only then or when it gave none.
		if g, ok := meta[netlabel.Gateway]; ok && conf.Gateway == "" {
			ip, ipn, err := net.ParseCIDR(g)
			if err != nil || !pool.Contains(ip) {
				return nil, types.BadRequestErrorf("network %s: IPAM %s gave gateway %q for pool %s: not an address of the pool in CIDR form", n.name, n.ipamType, g, pool)
			}
			info.Gateway = &net.IPNet{IP: ip, Mask: ipn.Mask}
		} else {
			gwOpts := map[string]string{ipamapi.RequestAddressType: netlabel.Gateway}
			var prefGW net.IP
			if conf.Gateway != "" {
				prefGW = net.ParseIP(conf.Gateway)
			}
			gw, _, err := n.ipam.RequestAddress(poolID, prefGW, gwOpts)
			if err != nil {
				return nil, types.Errorf("network %s: gateway in pool %s: %w", n.name, pool, err)
			}
			info.Gateway = gw
		}
		for name, a := range conf.AuxAddresses {
			ip := net.ParseIP(a)
			if _, _, err := n.ipam.RequestAddress(poolID, ip, nil); err != nil && !errors.Is(err, ipamapi.ErrIPAlreadyAllocated) {
				return nil, types.Errorf("network %s: auxiliary address %s=%s: %w", n.name, name, a, err)
			}
			if info.AuxAddresses == nil {
				info.AuxAddresses = map[string]*net.IPNet{}
			}
			info.AuxAddresses[name] = &net.IPNet{IP: ip, Mask: pool.Mask}
		}
	}
	return infos, nil
}

// checkIPAMPool applies ipamutils.CheckPool to a pool IPAM returned.
func checkIPAMPool(pool *net.IPNet) error {
	if pool == nil {
		return types.BadRequestErrorf("no pool")
	}
	ip := pool.IP
	if len(pool.Mask) == net.IPv4len {
		ip = ip.To4()
	}
	p, ok := netip.AddrFromSlice(ip)
	ones, bits := pool.Mask.Size()
	if !ok || bits != p.BitLen() {
		return types.BadRequestErrorf("pool %v: not a valid prefix", pool)
	}
	return ipamutils.CheckPool(netip.PrefixFrom(p, ones))
}

func describePoolRequest(conf *IpamConf, v6 bool) string {
	family := "IPv4"
	if v6 {
		family = "IPv6"
	}
	if conf.PreferredPool == "" {
		return "default " + family + " pool"
	}
	if conf.SubPool != "" {
		return fmt.Sprintf("%s pool %s (sub-pool %s)", family, conf.PreferredPool, conf.SubPool)
	}
	return fmt.Sprintf("%s pool %s", family, conf.PreferredPool)
}

// isHost reports whether the network is a host network: its endpoints use
// the host's namespace and files.
func (n *network) isHost() bool { return n.attach == driverapi.AttachHost }

// hasSpecialDriver reports whether the network's driver gives endpoints no
// interface of their own (host, null), so IPAM is not asked for anything.
func (n *network) hasSpecialDriver() bool { return n.attach != driverapi.AttachInterface }

// capabilityOf returns what drv says of itself; a driver that says nothing
// is local and gives its endpoints interfaces.
func capabilityOf(drv driverapi.Driver) driverapi.Capability {
	cp := driverapi.Capability{DataScope: driverapi.LocalScope}
	if c, ok := drv.(driverapi.Capable); ok {
		cp = c.Capability()
		if cp.DataScope == "" {
			cp.DataScope = driverapi.LocalScope
		}
	}
	return cp
}

// releasePools returns the network's pools to IPAM. It leaves ipamV4Info
// and ipamV6Info as they are (readers take no lock), so each path calls it
// once: on a failed create or restore, or at Delete once the network is
// out of the controller's registry.
func (n *network) releasePools() {
	for _, info := range slices.Concat(n.ipamV4Info, n.ipamV6Info) {
		if info.PoolID == "" {
			continue
		}
		// An auxiliary address may equal the gateway; release each once.
		released := map[string]bool{}
		release := func(ip net.IP) {
			if ip != nil && !released[ip.String()] {
				released[ip.String()] = true
				_ = n.ipam.ReleaseAddress(info.PoolID, ip)
			}
		}
		if info.Gateway != nil {
			release(info.Gateway.IP)
		}
		for _, a := range info.AuxAddresses {
			release(a.IP)
		}
		if err := n.ipam.ReleasePool(info.PoolID); err != nil {
			n.ctrl.logger.Warn("releasing address pool", "network", n.name, "pool", info.Pool, "error", err)
		}
	}
}

// ipamData converts the network's pools for the driver.
func ipamData(infos []*IpamInfo) []driverapi.IPAMData {
	out := make([]driverapi.IPAMData, 0, len(infos))
	for _, i := range infos {
		d := &IpamInfo{}
		i.CopyTo(d)
		out = append(out, d.IPAMData)
	}
	return out
}
