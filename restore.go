package libnetwork

import (
	"errors"
	"net"
	"path/filepath"
	"sort"
	"time"

	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/types"
)

// restore rebuilds the live objects from the stores and reconciles the
// kernel with them: IPAM allocations are replayed, drivers adopt or
// recreate their networks and endpoints, sandboxes reopen their
// namespaces, and kernel objects nothing owns any more are removed. A
// record that cannot be restored is logged and dropped, so one bad record
// never keeps the controller from starting; one that does not decode, or
// that the API could not have made (store.go's checks), is moved to the
// store's quarantine with a log line naming it before anything uses it.
func (c *controller) restore() error {
	// Names are unique as the API keeps them: of two records with one
	// name, the first in ID order is kept.
	netNames := map[string]bool{}
	nets, err := datastore.Load(c.store, kindNetwork, func(id string, r *networkRecord) error {
		return checkUnique(netNames, r.Name, "network name", checkNetworkRecord(id, r))
	})
	if err != nil {
		return types.Errorf("restoring networks: %w", err)
	}
	epNames := map[string]bool{}
	eps, err := datastore.Load(c.state, kindEndpoint, func(id string, r *endpointRecord) error {
		return checkUnique(epNames, r.NetworkID+"/"+r.Name, "endpoint name in its network", checkEndpointRecord(id, r))
	})
	if err != nil {
		return types.Errorf("restoring endpoints: %w", err)
	}
	containers := map[string]bool{}
	sbs, err := datastore.Load(c.state, kindSandbox, func(id string, r *sandboxRecord) error {
		return checkUnique(containers, r.ContainerID, "container's sandbox", c.checkSandboxRecord(id, r))
	})
	if err != nil {
		return types.Errorf("restoring sandboxes: %w", err)
	}

	for _, id := range sortedKeys(nets) {
		r := nets[id]
		if err := c.restoreNetwork(&r); err != nil {
			// The record is kept, not quarantined: it passed the
			// checks, and the refusal may say more about the kernel
			// than about the record (a bridge without the network's
			// mark may be the host's, or the network's own with its
			// mark removed). Kept, it is tried again at each start
			// and comes back with its endpoints once the cause is
			// gone; a forged one is refused each time and harms
			// nothing.
			c.logger.Error("network not restored", "network", r.Name, "id", id, "error", err)
		}
	}
	for _, id := range sortedKeys(sbs) {
		r := sbs[id]
		if err := c.restoreSandbox(&r); err != nil {
			c.logger.Error("sandbox not restored; its record is dropped", "sandbox", id, "container", r.ContainerID, "error", err)
			_ = c.state.Update(func(tx *datastore.Tx) error { return tx.Delete(kindSandbox, id) })
		}
	}
	// Endpoints in the order they joined their sandboxes (interface index),
	// so eth0 comes back before eth1.
	epIDs := sortedKeys(eps)
	sort.SliceStable(epIDs, func(i, j int) bool {
		return ifIndexOf(eps[epIDs[i]].Join) < ifIndexOf(eps[epIDs[j]].Join)
	})
	// Endpoints of a quarantined network keep their records too: putting
	// the network's record back must bring its endpoints back.
	quarantinedNets := map[string]bool{}
	if qs, err := datastore.ListQuarantined(c.store); err != nil {
		c.logger.Warn("listing quarantined network records", "error", err)
	} else {
		for _, q := range qs {
			if q.Kind == kindNetwork {
				quarantinedNets[q.ID] = true
			}
		}
	}
	for _, id := range epIDs {
		r := eps[id]
		if _, stored := nets[r.NetworkID]; (stored || quarantinedNets[r.NetworkID]) && c.networks[r.NetworkID] == nil {
			// Its network is recorded (or quarantined) but did not come
			// back (logged above); keep the record for the next start.
			c.logger.Error("endpoint not restored: its network failed to restore", "endpoint", r.Name, "network", r.NetworkID)
			continue
		}
		if err := c.restoreEndpoint(&r); err != nil {
			c.logger.Error("endpoint not restored; its record is dropped", "endpoint", r.Name, "id", id, "error", err)
			_ = c.state.Update(func(tx *datastore.Tx) error { return tx.Delete(kindEndpoint, id) })
		}
	}
	for _, sb := range c.sandboxes {
		if err := sb.updateGateways(); err != nil {
			c.logger.Warn("restoring default gateway and published ports", "sandbox", sb.id, "error", err)
		}
		if err := c.state.Update(sb.putExtChanged); err != nil {
			c.logger.Warn("storing restored published ports", "sandbox", sb.id, "error", err)
		}
	}
	c.collectOrphans()
	return nil
}

// checkUnique passes on err, or refuses a second record of the same key and
// notes the key of one that passes.
func checkUnique(seen map[string]bool, key, what string, err error) error {
	if err != nil {
		return err
	}
	if seen[key] {
		return types.InvalidParameterErrorf("a second %s %q", what, key)
	}
	seen[key] = true
	return nil
}

func ifIndexOf(j *joinRecord) int {
	if j == nil || len(j.IfName) < 4 {
		return 1 << 30
	}
	n := 0
	for _, ch := range j.IfName[3:] {
		if ch < '0' || ch > '9' {
			return 1 << 30
		}
		n = n*10 + int(ch-'0')
	}
	return n
}

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// restoreNetwork replays a network's IPAM and driver state.
func (c *controller) restoreNetwork(r *networkRecord) error {
	// A network on a plugin is restored whether or not the plugin is
	// there now: its calls fail until it comes back.
	drv, remoteDriver := c.drivers[r.Type], false
	if drv == nil {
		if plugins.ValidateName(r.Type) != nil {
			return NetworkTypeError(r.Type)
		}
		drv, remoteDriver = &pluginDriver{c: c, name: r.Type}, true
	}
	n := &network{
		ctrl: c, id: r.ID, name: r.Name, networkType: r.Type, driver: drv, scope: r.Scope,
		attach:  capabilityOf(drv).Attachment,
		created: time.Unix(0, r.Created), ipamType: r.IpamType, addrSpace: r.AddrSpace,
		ipamOptions: r.IpamOptions, ipamV4Config: r.IpamV4Config, ipamV6Config: r.IpamV6Config,
		enableIPv6: r.EnableIPv6, internal: r.Internal, postIPv6: r.PostIPv6, persist: true,
		labels: r.Labels, generic: r.Generic,
		endpoints: map[string]*endpoint{}, epNames: map[string]bool{},
	}
	if r.Type == overlayNetworkType && c.global == nil {
		return types.ForbiddenErrorf("an overlay network needs the global store, which is not configured")
	}
	n.ipam = c.ipams[n.ipamType]
	replay := true
	if n.isGlobal() && n.ipamType == ipamapi.DefaultIPAM {
		// The global store keeps the pools; this host's addresses are
		// claimed again when the global store is reachable
		// (globalCtl.republish).
		n.ipam, replay = c.global.ipam, false
	}
	if n.ipam == nil {
		if plugins.ValidateName(n.ipamType) != nil {
			return types.NotFoundErrorf("unknown IPAM driver %q", n.ipamType)
		}
		// A remote allocator keeps its own state: its pools and
		// addresses are asked for again only if it says so.
		pi := &pluginIpam{c: c, name: n.ipamType}
		n.ipam, replay = pi, pi.capability().RequiresRequestReplay
	}
	if !replay {
		n.ipamV4Info, n.ipamV6Info, n.ipamKeepsState = r.IpamV4Info, r.IpamV6Info, true
	} else {
		// Replay exactly the pools and addresses that were given.
		v4, err := c.replayPools(n, r.IpamV4Info, false)
		if err != nil {
			return err
		}
		n.ipamV4Info = v4
		v6, err := c.replayPools(n, r.IpamV6Info, true)
		if err != nil {
			n.releasePools()
			return err
		}
		n.ipamV6Info = v6
	}
	if remoteDriver {
		// A plugin keeps its networks across the controller's restarts
		// (docker does not create them again either).
		c.networks[n.id] = n
		c.subnets.add(n)
		c.netNames[n.name] = true
		return nil
	}
	// The store says the network is ours: a driver that can tell adopts
	// what it left in the kernel.
	create := drv.CreateNetwork
	if nr, ok := drv.(driverapi.NetworkRestorer); ok {
		create = nr.RestoreNetwork
	}
	if err := create(n.id, n.driverOptions(), ipamData(n.ipamV4Info), ipamData(n.ipamV6Info)); err != nil {
		n.releasePools()
		return types.Errorf("driver %s: %w", n.networkType, err)
	}
	c.networks[n.id] = n
	c.subnets.add(n)
	c.netNames[n.name] = true
	return nil
}

// replayPools asks IPAM again for the pools, gateways and auxiliary
// addresses recorded in infos, returning them with their (possibly new)
// pool IDs.
func (c *controller) replayPools(n *network, infos []*IpamInfo, v6 bool) ([]*IpamInfo, error) {
	var out []*IpamInfo
	for _, info := range infos {
		pool, sub := "", ""
		if info.Pool != nil {
			pool = info.Pool.String()
		}
		for _, conf := range n.ipamConfigs() {
			if conf.PreferredPool == pool {
				sub = conf.SubPool
			}
		}
		if n.ipamType == ipamapi.NullIPAM {
			pool = ""
		}
		poolID, p, meta, err := n.ipam.RequestPool(n.addrSpace, pool, sub, n.ipamOptions, v6)
		if err != nil {
			for _, i := range out {
				_ = n.ipam.ReleasePool(i.PoolID)
			}
			return nil, types.Errorf("replaying pool %s: %w", pool, err)
		}
		ni := &IpamInfo{}
		info.CopyTo(ni)
		ni.PoolID, ni.Pool, ni.Meta = poolID, p, meta
		if ni.Gateway != nil {
			if _, _, err := n.ipam.RequestAddress(poolID, ni.Gateway.IP, nil); err != nil && !errors.Is(err, ipamapi.ErrIPAlreadyAllocated) {
				c.logger.Warn("replaying gateway address", "network", n.name, "gateway", ni.Gateway, "error", err)
			}
		}
		for _, a := range ni.AuxAddresses {
			_, _, _ = n.ipam.RequestAddress(poolID, a.IP, nil)
		}
		out = append(out, ni)
	}
	return out, nil
}

// restoreSandbox reopens a sandbox's namespace (recreating it when the
// mount is gone) and registers it.
func (c *controller) restoreSandbox(r *sandboxRecord) error {
	sb := &sandbox{
		ctrl: c, id: r.ID, containerID: r.ContainerID, config: r.Config,
		labels:  r.Labels,
		hostNet: r.Config.UseDefaultSandbox, externalKey: r.Config.UseExternalKey,
	}
	switch {
	case sb.hostNet:
		sb.ns, sb.key = c.hostNS, c.hostKey()
	case r.Key == "":
		// Still waiting for its external key.
	case sb.externalKey && !osl.IsNamespaceMount(c.sandboxKeyPath(sb.id)):
		// The runtime's namespace is gone (its process with it); a fresh
		// one of ours would not be the container's. Wait for a new key:
		// the joined endpoints are set up when it comes.
		c.logger.Warn("external namespace of sandbox gone; waiting for a new key", "sandbox", sb.id)
	default:
		key := c.sandboxKeyPath(sb.id)
		var ns *osl.Namespace
		var err error
		if osl.IsNamespaceMount(key) {
			ns, err = osl.OpenNamespace(key)
		} else {
			// The kernel state is gone (a reboot without a tmpfs exec
			// root, or an unmount): make a fresh namespace; endpoints
			// are joined into it again below.
			c.logger.Warn("sandbox namespace missing; recreating it", "sandbox", sb.id, "key", key)
			ns, err = osl.NewNamespace(key)
		}
		if err != nil {
			return err
		}
		sb.ns, sb.key = ns, key
	}
	c.sandboxes[sb.id] = sb
	c.containers[sb.containerID] = true
	return nil
}

// restoreEndpoint replays an endpoint's addresses and driver state, and its
// join.
func (c *controller) restoreEndpoint(r *endpointRecord) error {
	n, ok := c.networks[r.NetworkID]
	if !ok {
		return types.NotFoundErrorf("network %s is gone (it was not persistent, or not restored)", r.NetworkID)
	}
	ep := &endpoint{
		network: n, id: r.ID, name: r.Name, iface: &endpointInterface{},
		anonymous: r.Anonymous, disableResolution: r.DisableResolution,
		myAliases: r.MyAliases, aliases: r.Aliases, exposedPorts: r.ExposedPorts,
		portMapping: r.PortMapping, generic: r.Generic,
	}
	if ep.generic == nil {
		ep.generic = map[string]interface{}{}
	}
	var err error
	if r.MAC != "" {
		if ep.iface.mac, err = net.ParseMAC(r.MAC); err != nil {
			return types.InternalErrorf("stored MAC %q: %v", r.MAC, err)
		}
	}
	if r.Addr != "" {
		if ep.prefAddress, err = parseAddr(r.Addr); err != nil {
			return err
		}
	}
	if r.AddrV6 != "" {
		if ep.prefAddressV6, err = parseAddr(r.AddrV6); err != nil {
			return err
		}
	}
	if n.ipamKeepsState {
		// The allocator still holds the addresses it gave.
		ep.iface.addr, ep.iface.poolID = keptAddress(n.ipamV4Info, ep.prefAddress)
		ep.iface.addrv6, ep.iface.poolIDv6 = keptAddress(n.ipamV6Info, ep.prefAddressV6)
	} else {
		if err := ep.allocateFamily(n.ipamV4Info, ep.prefAddress, false); err != nil {
			return err
		}
		if r.AddrV6 != "" {
			if err := ep.allocateFamily(n.ipamV6Info, ep.prefAddressV6, true); err != nil {
				ep.releaseAddresses()
				return err
			}
		}
	}
	ep.prefAddress, ep.prefAddressV6 = nil, nil

	var sb *sandbox
	var js *joinState
	if r.Join != nil {
		sb = c.sandboxes[r.Join.SandboxID]
		if sb == nil {
			// The only case where a join is dropped: the sandbox it
			// was made to is gone (deleted before the crash, or its
			// record failed to restore).
			c.logger.Warn("endpoint was joined to a sandbox that is gone; restoring it unjoined", "endpoint", r.Name, "sandbox", r.Join.SandboxID)
			c.storeUnjoined(ep)
		} else {
			js = &joinState{ifName: r.Join.IfName, staticRoutes: r.Join.StaticRoutes,
				disableGW: r.Join.DisableGW, priority: r.Join.Priority, published: r.Join.Published}
			js.gw, js.gw6 = net.ParseIP(r.Join.Gateway), net.ParseIP(r.Join.GatewayV6)
		}
	}

	if err := c.restoreDriverEndpoint(n, ep, sb, js); err != nil {
		if js == nil {
			ep.releaseAddresses()
			return err
		}
		// The join could not be put back in the kernel: keep the
		// endpoint, its address and its name, unjoined, rather than
		// lose an object the caller was told exists. The caller can
		// join it again.
		c.logger.Error("joined endpoint's interface could not be restored; restoring the endpoint unjoined", "endpoint", r.Name, "sandbox", sb.id, "error", err)
		sb, js = nil, nil
		if err := c.restoreDriverEndpoint(n, ep, nil, nil); err != nil {
			ep.releaseAddresses()
			return err
		}
		c.storeUnjoined(ep)
	}
	n.endpoints[ep.id] = ep
	n.epNames[ep.name] = true
	if js != nil {
		ep.sandboxID, ep.join = sb.id, js
		sb.endpoints = append(sb.endpoints, ep)
	}
	return nil
}

// restoreDriverEndpoint hands the endpoint back to its driver and, for a
// joined endpoint whose sandbox has a namespace, makes sure the interface
// is there with its addresses.
func (c *controller) restoreDriverEndpoint(n *network, ep *endpoint, sb *sandbox, js *joinState) error {
	if _, ok := n.driver.(*pluginDriver); ok {
		// A plugin keeps its endpoints across the controller's restarts,
		// and the interface is in the sandbox already.
		if js != nil {
			js.populated = true
		}
		return nil
	}
	rs, isRestorer := n.driver.(driverapi.Restorer)
	if !isRestorer {
		if err := n.driver.CreateEndpoint(n.id, ep.id, ep.iface, ep.driverOptions()); err != nil {
			return types.Errorf("driver %s: %w", n.networkType, err)
		}
		if js != nil {
			js.populated = true
		}
		return nil
	}
	if js == nil || sb.ns == nil {
		return rs.RestoreEndpoint(n.id, ep.id, ep.iface, "", nil, ep.driverOptions())
	}
	ji := &joinInfo{ns: sb.ns, ifName: js.ifName}
	if err := rs.RestoreEndpoint(n.id, ep.id, ep.iface, sb.key, ji, ep.driverOptions()); err != nil {
		return types.Errorf("driver %s: %w", n.networkType, err)
	}
	if !ji.inSandbox && ji.movedFrom == "" {
		// The driver adopted the interface it found on its side. The
		// sandbox's side may still be gone: a Leave killed after it
		// retired the interface, or a namespace recreated above. Then
		// make the interface again, as a join does.
		if js.ifName == "" || sb.hasInterface(js.ifName) {
			ji.inSandbox = true
		} else {
			c.logger.Warn("joined endpoint's interface missing in its sandbox; recreating it", "endpoint", ep.name, "sandbox", sb.id, "interface", js.ifName)
			if err := n.driver.Leave(n.id, ep.id); err != nil {
				c.logger.Warn("releasing a broken interface at restore", "endpoint", ep.name, "error", err)
			}
			ji = &joinInfo{ns: sb.ns, ifName: js.ifName}
			if err := n.driver.Join(n.id, ep.id, sb.key, ji, ep.driverOptions()); err != nil {
				if derr := n.driver.DeleteEndpoint(n.id, ep.id); derr != nil {
					c.logger.Warn("undoing a failed endpoint restore", "endpoint", ep.name, "error", derr)
				}
				return types.Errorf("driver %s: recreating interface %s: %w", n.networkType, js.ifName, err)
			}
		}
	}
	if ji.gw == nil && ji.gw6 == nil && !ji.disableGW {
		ji.gw, ji.gw6, ji.disableGW = js.gw, js.gw6, js.disableGW
	}
	if err := sb.configureJoined(ep, js, ji); err != nil {
		// The record is dropped; the driver must forget the endpoint too.
		if lerr := n.driver.Leave(n.id, ep.id); lerr != nil {
			c.logger.Warn("undoing a failed endpoint restore", "endpoint", ep.name, "error", lerr)
		}
		if derr := n.driver.DeleteEndpoint(n.id, ep.id); derr != nil {
			c.logger.Warn("undoing a failed endpoint restore", "endpoint", ep.name, "error", derr)
		}
		return err
	}
	return nil
}

// storeUnjoined records a restored endpoint as not joined; a failure is
// logged, and the next start finds the join to drop again.
func (c *controller) storeUnjoined(ep *endpoint) {
	if err := c.state.Update(func(tx *datastore.Tx) error {
		return tx.Put(kindEndpoint, ep.id, ep.recordUnjoined())
	}); err != nil {
		c.logger.Warn("recording a restored endpoint as unjoined", "endpoint", ep.name, "error", err)
	}
}

func parseAddr(s string) (net.IP, error) {
	ipn, err := types.ParseCIDR(s)
	if err != nil {
		return nil, types.InternalErrorf("stored address %q: %v", s, err)
	}
	return ipn.IP, nil
}

// collectOrphans removes kernel objects that no restored record owns:
// bridges, veths and rules (through the drivers) and netns mounts under the
// exec root.
func (c *controller) collectOrphans() {
	keepNets := map[string]bool{}
	keepEps := map[string]bool{}
	for id, n := range c.networks {
		keepNets[id] = true
		for eid, ep := range n.endpoints {
			if ep.join != nil {
				keepEps[eid] = true
			}
		}
	}
	for name, drv := range c.drivers {
		if oc, ok := drv.(driverapi.OrphanCollector); ok {
			if err := oc.CollectOrphans(keepNets, keepEps); err != nil {
				c.logger.Warn("collecting orphaned kernel objects", "driver", name, "error", err)
			}
		}
	}
	// Each step runs whatever the ones before found: a listing that fails
	// is logged and skips only its own step.
	keepKeys := map[string]bool{}
	for _, sb := range c.sandboxes {
		keepKeys[sb.key] = true
	}
	c.collectOrphanNamespaces(keepKeys)
	c.collectOrphanFiles()
}

// collectOrphanNamespaces unmounts and removes the files in netns/ no
// sandbox owns. It works through a descriptor of netns/ opened without
// following links, and removes a link as a link: nothing outside the exec
// root is unmounted or removed.
func (c *controller) collectOrphanNamespaces(keepKeys map[string]bool) {
	dir, err := c.openExecSubdir(netnsDirName)
	if err != nil {
		c.logger.Warn("listing sandbox namespaces", "error", err)
		return
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		c.logger.Warn("listing sandbox namespaces", "dir", dir.Name(), "error", err)
	}
	for _, name := range names {
		p := filepath.Join(dir.Name(), name)
		if keepKeys[p] {
			continue
		}
		c.logger.Info("removing orphaned sandbox namespace", "key", p)
		if err := removeNamespaceFileAt(dir, name); err != nil {
			c.logger.Warn("removing orphaned sandbox namespace", "key", p, "error", err)
		}
	}
}

// collectOrphanFiles removes the directories in files/ no sandbox owns,
// and whatever stands at a live sandbox's place that is not a directory of
// the controller's (a link, say), so that no write follows it. Like
// collectOrphanNamespaces it never follows a link.
func (c *controller) collectOrphanFiles() {
	dir, err := c.openExecSubdir(filesDirName)
	if err != nil {
		c.logger.Warn("listing sandbox files", "error", err)
		return
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		c.logger.Warn("listing sandbox files", "dir", dir.Name(), "error", err)
	}
	for _, name := range names {
		if _, live := c.sandboxes[name]; live {
			if c.checkFilesDirAt(dir, name) {
				continue
			}
			c.logger.Warn("sandbox files directory is not a directory of the controller's; removing it", "sandbox", name)
		}
		if err := removeAllAt(dir, name); err != nil {
			c.logger.Warn("removing orphaned sandbox files", "sandbox", name, "error", err)
		}
	}
}

// keptAddress returns ip with the mask of the pool of infos that holds
// it, and that pool's ID; nil and "" for no address or no such pool.
func keptAddress(infos []*IpamInfo, ip net.IP) (*net.IPNet, string) {
	if ip == nil {
		return nil, ""
	}
	for _, i := range infos {
		if i.Pool != nil && i.Pool.Contains(ip) {
			return &net.IPNet{IP: ip, Mask: i.Pool.Mask}, i.PoolID
		}
	}
	return nil, ""
}
