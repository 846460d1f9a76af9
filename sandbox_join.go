package libnetwork

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"

	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// Join attaches the endpoint to the sandbox: the driver creates the
// interface (for the bridge, a veth whose container side is born inside the
// sandbox's namespace), the controller gives it its addresses and routes,
// picks the sandbox's default gateway, records the join and updates
// /etc/hosts. A failure at any step undoes the steps before it.
func (ep *endpoint) Join(sbox Sandbox, opts ...EndpointOption) error {
	c := ep.network.ctrl
	sb, err := c.ownSandbox(sbox)
	if err != nil {
		return err
	}
	unlock, err := sb.lockOp()
	if err != nil {
		return err
	}
	err = sb.joinLocked(ep, opts)
	unlock()
	if err == nil {
		// Other sandboxes' files, under their own opMu.
		sb.updateParentHosts(ep)
	}
	return err
}

// joinLocked joins ep to sb: check, attach, commit. sb.opMu must be held.
func (sb *sandbox) joinLocked(ep *endpoint, opts []EndpointOption) (err error) {
	js, err := sb.checkJoin(ep, opts)
	if err != nil {
		return err
	}
	defer func() {
		ep.mu.Lock()
		ep.busy = false
		ep.mu.Unlock()
	}()
	u := sb.ctrl.newUndo()
	defer u.rollback(&err)
	if ep.network.isGlobal() {
		// Other hosts learn the endpoint (their peers, their names):
		// published while the interface is made, since the record needs
		// nothing of the join; a failed join takes it back.
		c := sb.ctrl
		done := make(chan struct{})
		var perr error
		go func() {
			defer close(done)
			perr = c.global.publish(ep)
		}()
		u.add(func() {
			<-done
			if perr != nil {
				return
			}
			if err := c.global.unpublish(ep); err != nil {
				c.logger.Warn("undoing a join's global record", "endpoint", ep.Name(), "error", err)
			}
		})
		defer func() { <-done }()
		if err := sb.attach(ep, js, u); err != nil {
			return err
		}
		if <-done; perr != nil {
			return perr
		}
		return sb.commitJoin(ep, u)
	}
	if err := sb.attach(ep, js, u); err != nil {
		return err
	}
	return sb.commitJoin(ep, u)
}

// checkJoin refuses a join that cannot be done and marks ep busy for the
// join; the caller clears busy. It returns the join's state, made from the
// join options.
func (sb *sandbox) checkJoin(ep *endpoint, opts []EndpointOption) (*joinState, error) {
	n := ep.network
	sb.mu.Lock()
	deleted := sb.deleted
	sb.mu.Unlock()
	if deleted {
		return nil, types.NotFoundErrorf("sandbox %s was deleted", sb.id)
	}
	n.mu.Lock()
	_, known := n.endpoints[ep.id]
	n.mu.Unlock()
	if !known {
		return nil, &UnknownEndpointError{name: ep.Name(), id: ep.id}
	}
	// Two endpoints of one network may join one sandbox, as in v0.7.
	if err := sb.checkCompatible(n); err != nil {
		return nil, err
	}
	// Join options are applied to a scratch endpoint, so an option meant
	// for CreateEndpoint cannot rewrite the endpoint's configuration; only
	// the priority is taken.
	scratch := &endpoint{}
	for _, o := range opts {
		if o != nil {
			o(scratch)
		}
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.sandboxID != "" || ep.busy {
		// v0.7 answers a second join with a ForbiddenError.
		return nil, types.ForbiddenErrorf("endpoint %s (network %s) joining sandbox %s: %w", ep.name, n.name, sb.id, ErrInvalidJoin{})
	}
	if scratch.optErr != nil {
		return nil, types.Errorf("endpoint %s joining sandbox %s: %w", ep.name, sb.id, scratch.optErr)
	}
	ep.busy = true
	return &joinState{priority: scratch.joinPriority}, nil
}

// attach does the kernel part of a join (nothing yet while an external
// key is awaited), adds ep to the sandbox and moves the default gateway,
// recording each reversal in u.
func (sb *sandbox) attach(ep *endpoint, js *joinState, u *undo) error {
	if ns := sb.namespace(); ns != nil {
		js.ifName = sb.nextIfName()
		if err := sb.populate(ep, js); err != nil {
			return err
		}
		u.add(func() { sb.depopulate(ep, js, removeDelete) })
	}
	sb.mu.Lock()
	sb.endpoints = append(sb.endpoints, ep)
	sb.mu.Unlock()
	ep.mu.Lock()
	ep.sandboxID, ep.join = sb.id, js
	ep.mu.Unlock()
	sb.ctrl.namesChanged()
	u.add(func() {
		sb.mu.Lock()
		sb.endpoints = slices.DeleteFunc(sb.endpoints, func(e *endpoint) bool { return e == ep })
		sb.mu.Unlock()
		ep.mu.Lock()
		ep.sandboxID, ep.join = "", nil
		ep.mu.Unlock()
		sb.ctrl.namesChanged()
		if gerr := sb.updateGateways(); gerr != nil {
			sb.ctrl.logger.Warn("restoring default gateway after a failed join", "sandbox", sb.id, "error", gerr)
		}
	})
	if err := sb.updateGateways(); err != nil {
		return types.Errorf("endpoint %s joining sandbox %s: %w", ep.Name(), sb.id, err)
	}
	return nil
}

// commitJoin records the join and updates the sandbox's files.
func (sb *sandbox) commitJoin(ep *endpoint, u *undo) error {
	c := sb.ctrl
	if err := c.state.Update(func(tx *datastore.Tx) error {
		if err := tx.Put(kindEndpoint, ep.id, ep.record()); err != nil {
			return err
		}
		return sb.putExtChanged(tx)
	}); err != nil {
		return types.Errorf("endpoint %s joining sandbox %s: storing: %w", ep.Name(), sb.id, err)
	}
	if err := u.step("join-after-store", func() {
		_ = c.state.Update(func(tx *datastore.Tx) error { return tx.Put(kindEndpoint, ep.id, ep.recordUnjoined()) })
	}); err != nil {
		return err
	}
	if ep.network.isHost() && !sb.hostNet {
		// The sandbox's files become copies of the host's.
		sb.rebuildFiles()
	} else {
		sb.addHostsRecords(ep)
	}
	// The first join that wants names starts the sandbox's DNS server.
	if err := sb.ensureResolver(); err != nil {
		return types.Errorf("endpoint %s joining sandbox %s: %w", ep.Name(), sb.id, err)
	}
	return nil
}

// checkCompatible refuses joins that cannot work: a sandbox in the host's
// namespace only joins host networks, since any other driver would put
// interfaces, addresses and routes into the host's namespace. A sandbox
// with a namespace of its own may join a host network, as in v0.7; its
// files are then the host's.
func (sb *sandbox) checkCompatible(n *network) error {
	if sb.hostNet && !n.isHost() {
		return types.ForbiddenErrorf("sandbox %s uses the host's network namespace; it cannot join %s network %s", sb.id, n.networkType, n.name)
	}
	return nil
}

// nextIfName returns the lowest free "ethN" of the sandbox.
func (sb *sandbox) nextIfName() string { return sb.nextIfNameWith("eth") }

// nextIfNameWith returns prefix followed by the lowest index no joined
// endpoint's interface has.
func (sb *sandbox) nextIfNameWith(prefix string) string {
	used := map[string]bool{}
	// sb.mu is released before the endpoints are locked (lock order).
	for _, e := range sb.joined() {
		e.mu.Lock()
		if e.join != nil {
			used[e.join.ifName] = true
		}
		e.mu.Unlock()
	}
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s%d", prefix, i)
		if !used[name] {
			return name
		}
	}
}

// populate does the kernel part of a join: the driver's Join, then the
// interface's addresses and routes inside the namespace.
func (sb *sandbox) populate(ep *endpoint, js *joinState) (err error) {
	c := sb.ctrl
	n := ep.network
	ns := sb.namespace()
	ji := &joinInfo{ns: ns, ifName: js.ifName}
	if err := n.driver.Join(n.id, ep.id, sb.key, ji, ep.driverOptions()); err != nil {
		return types.Errorf("endpoint %s joining sandbox %s: driver %s: %w", ep.Name(), sb.id, n.networkType, err)
	}
	if err := sb.configureJoined(ep, js, ji); err != nil {
		// Undo in full: a failed join leaves no interface behind, even at
		// the cost of a synchronous veth delete.
		js.populated = true
		if js.ifName == "" && ji.inSandbox {
			js.ifName = ji.ifName
		}
		if ji.movedFrom != "" && !sb.hasInterface(js.ifName) {
			if derr := c.deleteHostLink(ji.movedFrom); derr != nil {
				c.logger.Warn("undoing driver join", "endpoint", ep.Name(), "link", ji.movedFrom, "error", derr)
			}
		}
		sb.depopulate(ep, js, removeDelete)
		return err
	}
	return nil
}

// configureJoined applies what the driver reported at Join inside the
// namespace.
func (sb *sandbox) configureJoined(ep *endpoint, js *joinState, ji *joinInfo) error {
	c := sb.ctrl
	ns := sb.namespace()
	js.gw, js.gw6, js.staticRoutes, js.disableGW = ji.gw, ji.gw6, ji.routes, ji.disableGW
	switch {
	case ji.movedFrom != "":
		if ji.dstPrefix != "" && ji.dstPrefix != "eth" {
			// The driver names the interface's prefix in the sandbox,
			// as docker's sandboxes do: "ovs" gives ovs0, ovs1, ...
			js.ifName = sb.nextIfNameWith(ji.dstPrefix)
		}
		if err := ns.MoveInterface(c.hostNS.Handle(), ji.movedFrom, js.ifName); err != nil {
			return types.Errorf("endpoint %s joining sandbox %s: moving %s in: %w", ep.Name(), sb.id, ji.movedFrom, err)
		}
	case ji.inSandbox:
	default:
		// The driver gave no interface (null, host).
		js.ifName = ""
		js.populated = true
		return nil
	}
	cfg := osl.IfaceConfig{Name: js.ifName, Addr: ep.iface.addr, AddrV6: ep.iface.addrv6,
		// An endpoint without IPv6 gets no link-local address either, as
		// docker turns IPv6 off on such interfaces: its DAD, router
		// solicitation and MLD packets would be flooded to every port of
		// the bridge, making each attach cost O(containers).
		NoIPv6LinkLocal: ep.iface.addrv6 == nil}
	for _, r := range ji.routes {
		if isConnectedDefault(r) {
			// Chosen among the sandbox's default routes by
			// updateGateways, as a gateway is: applied here, another
			// endpoint's gateway would replace it, and its Leave
			// delete it.
			continue
		}
		cfg.Routes = append(cfg.Routes, osl.Route{Dst: r.Destination, Gw: r.NextHop})
	}
	if err := c.failAt("join-before-configure"); err != nil {
		return err
	}
	if err := ns.ConfigureInterface(cfg); err != nil {
		return types.Errorf("endpoint %s joining sandbox %s: configuring %s: %w", ep.Name(), sb.id, js.ifName, err)
	}
	js.populated = true
	return nil
}

// How depopulate takes an interface out of the sandbox.
type removeMode int

const (
	// removeNone leaves the interface: the namespace is about to be
	// destroyed, which removes it with no cost to the caller.
	removeNone removeMode = iota
	// removeRetire takes it down, flushes its addresses and renames it
	// away at once; the kernel frees it with the namespace, or the driver
	// later. This is Leave's fast path (deleting a veth costs ~20 ms).
	removeRetire
	// removeDelete deletes it now: the undo of a failed join.
	removeDelete
)

// depopulate undoes populate.
func (sb *sandbox) depopulate(ep *endpoint, js *joinState, mode removeMode) {
	c := sb.ctrl
	n := ep.network
	ep.mu.Lock()
	populated := js.populated
	ep.mu.Unlock()
	if !populated {
		return
	}
	if ns := sb.namespace(); ns != nil && js.ifName != "" && !sb.hostNet {
		switch mode {
		case removeRetire:
			if err := ns.RetireInterface(js.ifName, retiredName()); err != nil {
				// Never leave it under its ethN name, which the next
				// join into the sandbox takes.
				c.logger.Warn("retiring interface; deleting it", "sandbox", sb.id, "interface", js.ifName, "error", err)
				if err := ns.DeleteInterface(js.ifName); err != nil {
					c.logger.Warn("deleting interface", "sandbox", sb.id, "interface", js.ifName, "error", err)
				}
			}
		case removeDelete:
			if err := ns.DeleteInterface(js.ifName); err != nil {
				c.logger.Warn("deleting interface", "sandbox", sb.id, "interface", js.ifName, "error", err)
			}
		}
	}
	if err := n.driver.Leave(n.id, ep.id); err != nil {
		c.logger.Warn("driver leave", "endpoint", ep.Name(), "network", n.name, "error", err)
	}
	ep.mu.Lock()
	js.populated = false
	ep.mu.Unlock()
}

// retiredIfPrefix starts the names of interfaces retired from a sandbox
// at Leave (osl.TombstoneName).
const retiredIfPrefix = "gone"

// retiredName returns a name for an interface retired at Leave.
func retiredName() string { return osl.TombstoneName(retiredIfPrefix) }

// isRetiredName reports whether name is one retiredName gives.
func isRetiredName(name string) bool { return osl.IsTombstone(name, retiredIfPrefix) }

// updateGateways points the sandbox's default routes at the endpoints that
// should provide them: among endpoints with a gateway, highest priority
// first, then by network name.
func (sb *sandbox) updateGateways() error {
	ns := sb.namespace()
	if ns == nil || sb.hostNet {
		return nil
	}
	eps := sb.joined()
	pick := func(v6 bool) *endpoint {
		var cands []*endpoint
		for _, e := range eps {
			e.mu.Lock()
			js := e.join
			ok := js != nil && js.populated && js.ifName != "" &&
				((!js.disableGW && ((!v6 && js.gw != nil) || (v6 && js.gw6 != nil))) ||
					js.connectedDefault(v6))
			e.mu.Unlock()
			if ok {
				cands = append(cands, e)
			}
		}
		sort.SliceStable(cands, func(i, j int) bool {
			pi, pj := cands[i].priority(), cands[j].priority()
			if pi != pj {
				return pi > pj
			}
			return cands[i].network.name < cands[j].network.name
		})
		if len(cands) == 0 {
			return nil
		}
		return cands[0]
	}
	for _, v6 := range []bool{false, true} {
		best := pick(v6)
		sb.mu.Lock()
		cur := sb.gw4
		if v6 {
			cur = sb.gw6
		}
		sb.mu.Unlock()
		if best == cur {
			continue
		}
		if best == nil {
			if err := ns.UnsetDefaultGateway(v6); err != nil {
				return err
			}
		} else {
			best.mu.Lock()
			gw, ifName := best.join.gw, best.join.ifName
			if v6 {
				gw = best.join.gw6
			}
			if best.join.disableGW {
				gw = nil
			}
			best.mu.Unlock()
			var err error
			if gw == nil {
				err = ns.SetDefaultInterface(ifName, v6)
			} else {
				err = ns.SetDefaultGateway(gw, ifName)
			}
			if err != nil {
				return err
			}
		}
		sb.mu.Lock()
		if v6 {
			sb.gw6 = best
		} else {
			sb.gw4 = best
		}
		sb.mu.Unlock()
	}
	return sb.updateExternal()
}

// isConnectedDefault reports whether r is a default route without a next
// hop: the interface itself as the default route, as ipvlan's l3 modes
// report it.
func isConnectedDefault(r *types.StaticRoute) bool {
	if r == nil || r.Destination == nil || r.NextHop != nil {
		return false
	}
	ones, _ := r.Destination.Mask.Size()
	return ones == 0 && r.Destination.IP.IsUnspecified()
}

// connectedDefault reports whether the join's driver made the interface
// itself the default route of the IPv6 (v6) or IPv4 family. Such a route
// competes with gateways for the sandbox's default route.
func (js *joinState) connectedDefault(v6 bool) bool {
	for _, r := range js.staticRoutes {
		if isConnectedDefault(r) && (r.Destination.IP.To4() == nil) == v6 {
			return true
		}
	}
	return false
}

func (ep *endpoint) priority() int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.join == nil {
		return 0
	}
	return ep.join.priority
}

// Leave detaches the endpoint from the sandbox: the container side of the
// interface is retired at once (down, addresses flushed, renamed away; the
// kernel frees it with the namespace), the default gateway moves to the
// next endpoint, and the record and /etc/hosts are updated.
func (ep *endpoint) Leave(sbox Sandbox, opts ...EndpointOption) error {
	c := ep.network.ctrl
	sb, err := c.ownSandbox(sbox)
	if err != nil {
		return err
	}
	unlock, err := sb.lockOp()
	if err != nil {
		return err
	}
	defer unlock()
	return sb.leaveLocked(ep, true)
}

// leaveLocked detaches ep from sb. sb.opMu must be held.
func (sb *sandbox) leaveLocked(ep *endpoint, retire bool) error {
	c := sb.ctrl
	ep.mu.Lock()
	if ep.sandboxID != sb.id {
		joined := ep.sandboxID
		ep.mu.Unlock()
		if joined == "" {
			return types.ForbiddenErrorf("endpoint %s is not joined to any sandbox; cannot leave sandbox %s", ep.Name(), sb.id)
		}
		return types.ForbiddenErrorf("endpoint %s is joined to sandbox %s, not to sandbox %s", ep.Name(), joined, sb.id)
	}
	if ep.busy {
		ep.mu.Unlock()
		return types.ForbiddenErrorf("endpoint %s: another operation is in progress", ep.name)
	}
	js := ep.join
	ep.busy = true
	ep.mu.Unlock()
	if ep.network.isGlobal() {
		// Other hosts stop sending to it first; if the global store
		// cannot be told, the endpoint stays joined.
		if err := c.global.unpublish(ep); err != nil {
			ep.mu.Lock()
			ep.busy = false
			ep.mu.Unlock()
			c.global.repairLater(ep)
			return types.Errorf("endpoint %s leaving sandbox %s: %w", ep.Name(), sb.id, err)
		}
	}

	sb.removeHostsRecords(ep)
	sb.mu.Lock()
	sb.endpoints = slices.DeleteFunc(sb.endpoints, func(e *endpoint) bool { return e == ep })
	sb.mu.Unlock()
	if ep.network.isHost() && !sb.hostNet {
		sb.rebuildFiles()
	}
	// The gateway moves before the interface goes, so the sandbox keeps a
	// default route where another endpoint can give one.
	if err := sb.updateGateways(); err != nil {
		c.logger.Warn("moving default gateway at leave", "sandbox", sb.id, "error", err)
	}
	// Whatever became of the routes, nothing may point at ep any more,
	// and its ports go with it.
	sb.dropExternal(ep)
	mode := removeNone
	if retire {
		mode = removeRetire
	}
	sb.depopulate(ep, js, mode)

	ep.mu.Lock()
	ep.sandboxID, ep.join, ep.busy = "", nil, false
	ep.mu.Unlock()
	c.namesChanged()
	if err := c.state.Update(func(tx *datastore.Tx) error {
		if err := tx.Put(kindEndpoint, ep.id, ep.record()); err != nil {
			return err
		}
		return sb.putExtChanged(tx)
	}); err != nil {
		return types.Errorf("endpoint %s leaving sandbox %s: storing: %w", ep.Name(), sb.id, err)
	}
	return nil
}

// hasInterface reports whether the sandbox's namespace has a link name.
func (sb *sandbox) hasInterface(name string) bool {
	ns := sb.namespace()
	if ns == nil || name == "" {
		return false
	}
	_, err := ns.Handle().LinkByName(name)
	return err == nil
}

// deleteHostLink deletes a link in the controller's namespace.
func (c *controller) deleteHostLink(name string) error {
	h := c.hostNS.Handle()
	l, err := h.LinkByName(name)
	if err != nil {
		return nil
	}
	return h.LinkDel(l)
}

// joinInfo is what a driver reports at Join.
type joinInfo struct {
	ns        *osl.Namespace
	ifName    string
	inSandbox bool
	movedFrom string
	dstPrefix string
	gw, gw6   net.IP
	routes    []*types.StaticRoute
	disableGW bool
}

var _ driverapi.JoinInfo = (*joinInfo)(nil)
var _ driverapi.InterfaceNameInfo = (*joinInfo)(nil)
var _ driverapi.SandboxInfo = (*joinInfo)(nil)

func (ji *joinInfo) InterfaceName() driverapi.InterfaceNameInfo { return ji }
func (ji *joinInfo) Sandbox() driverapi.SandboxInfo             { return ji }
func (ji *joinInfo) NetNSFd() int                               { return ji.ns.Fd() }
func (ji *joinInfo) IfaceName() string                          { return ji.ifName }

func (ji *joinInfo) SetNames(srcName, dstPrefix string) error {
	if srcName == "" {
		return types.BadRequestErrorf("join: empty interface name")
	}
	// The prefix and an index make a link name: at most 15 bytes, no
	// '/', ':' or white space, and room for the index.
	if len(dstPrefix) > 12 || strings.ContainsAny(dstPrefix, "/: \t\n") {
		return types.BadRequestErrorf("join: interface name prefix %q in the sandbox is not usable", dstPrefix)
	}
	ji.movedFrom, ji.dstPrefix = srcName, dstPrefix
	return nil
}

func (ji *joinInfo) SetCreatedInSandbox() error {
	ji.inSandbox = true
	return nil
}

func (ji *joinInfo) SetGateway(gw net.IP) error {
	ji.gw = types.GetIPCopy(gw)
	return nil
}

func (ji *joinInfo) SetGatewayIPv6(gw6 net.IP) error {
	ji.gw6 = types.GetIPCopy(gw6)
	return nil
}

func (ji *joinInfo) AddStaticRoute(destination *net.IPNet, routeType int, nextHop net.IP) error {
	if destination == nil {
		return types.BadRequestErrorf("join: static route without destination")
	}
	ji.routes = append(ji.routes, &types.StaticRoute{Destination: types.GetIPNetCopy(destination), RouteType: routeType, NextHop: types.GetIPCopy(nextHop)})
	return nil
}

func (ji *joinInfo) DisableGatewayService() { ji.disableGW = true }
