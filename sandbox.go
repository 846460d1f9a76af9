package libnetwork

import (
	"errors"
	"maps"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/internal/resolver"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// Sandbox provides the control over the network container entity. It is a
// one to one mapping with the container.
type Sandbox interface {
	// ID returns the ID of the sandbox
	ID() string
	// Key returns the sandbox's key
	Key() string
	// ContainerID returns the container id associated to this sandbox
	ContainerID() string
	// Labels returns the sandbox's labels
	Labels() map[string]interface{}
	// Statistics retrieves the interfaces' statistics for the sandbox
	Statistics() (map[string]*types.InterfaceStatistics, error)
	// Refresh leaves all the endpoints, resets and re-apply the options,
	// re-joins all the endpoints without destroying the osl sandbox
	Refresh(options ...SandboxOption) error
	// SetKey updates the Sandbox Key
	SetKey(key string) error
	// Rename changes the name of all attached Endpoints
	Rename(name string) error
	// Delete destroys this container after detaching it from all connected endpoints.
	Delete() error
	// ResolveName resolves a service name to an IPv4 or IPv6 address by searching
	// the networks the sandbox is connected to. For IPv6 queries, second  return
	// value will be true if the name exists in docker domain but doesn't have an
	// IPv6 address. Such queries shouldn't be forwarded  to external nameservers.
	ResolveName(name string, iplen int) ([]net.IP, bool)
	// ResolveIP returns the service name for the passed in IP. IP is in reverse dotted
	// notation; the format used for DNS PTR records
	ResolveIP(name string) string
	// Endpoints returns all the endpoints connected to the sandbox
	Endpoints() []Endpoint
}

// SandboxWalker is a client provided function which will be used to walk
// the Sandboxes. When the function returns true, the walk will stop.
type SandboxWalker func(sb Sandbox) bool

// SandboxContainerWalker returns a Sandbox Walker function which looks for
// an existing Sandbox with the passed containerID.
func SandboxContainerWalker(out *Sandbox, containerID string) SandboxWalker {
	return func(sb Sandbox) bool {
		if sb.ContainerID() == containerID {
			*out = sb
			return true
		}
		return false
	}
}

// SandboxKeyWalker returns a Sandbox Walker function which looks for an
// existing Sandbox with the passed key.
func SandboxKeyWalker(out *Sandbox, key string) SandboxWalker {
	return func(sb Sandbox) bool {
		if sb.Key() == key {
			*out = sb
			return true
		}
		return false
	}
}

// sandbox is the one live object of a sandbox.
type sandbox struct {
	ctrl        *controller
	id          string
	containerID string
	// hostNet and externalKey are the sandbox's kind (OptionUseDefaultSandbox,
	// OptionUseExternalKey), fixed at creation.
	hostNet     bool
	externalKey bool

	// opMu serialises the operations of this sandbox that touch the kernel
	// and its files (join, leave, set key, refresh, rename, delete). It is
	// taken before any other lock and held across kernel calls; the data
	// locks below are not.
	opMu sync.Mutex

	mu     sync.Mutex
	config sandboxConfig
	labels map[string]interface{}
	// key is the path of the sandbox's netns ("" while an external key is
	// awaited).
	key string
	// ns is the sandbox's namespace, nil while an external key is awaited.
	ns *osl.Namespace
	// endpoints are the joined endpoints in join order.
	endpoints []*endpoint
	// gw4 and gw6 are the endpoints that give the default routes.
	gw4, gw6 *endpoint
	// ext is the endpoint whose driver gives the sandbox external
	// connectivity (publishes its ports): gw4, or gw6 without one.
	ext *endpoint
	// extChanged are endpoints whose published ports changed since the
	// last store update; the operation that changed them stores them.
	extChanged []*endpoint
	deleted    bool

	// nameTable caches what the sandbox resolves (see resolver_names.go).
	nameTable atomic.Pointer[nameTable]
	// resolver is the sandbox's embedded DNS server, nil until the first
	// join that wants one (under mu); dnsStats are its counters, kept for
	// the sandbox's life across restarts of the server.
	resolver *sandboxResolver
	dnsStats resolver.Stats
}

var _ Sandbox = (*sandbox)(nil)

func (sb *sandbox) ID() string          { return sb.id }
func (sb *sandbox) ContainerID() string { return sb.containerID }

func (sb *sandbox) Key() string {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.key
}

func (sb *sandbox) Labels() map[string]interface{} {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return maps.Clone(sb.labels)
}

func (sb *sandbox) namespace() *osl.Namespace {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.ns
}

// joined returns a copy of the joined endpoints in join order.
func (sb *sandbox) joined() []*endpoint {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return append([]*endpoint(nil), sb.endpoints...)
}

func (sb *sandbox) Endpoints() []Endpoint {
	eps := sb.joined()
	out := make([]Endpoint, len(eps))
	for i, ep := range eps {
		out[i] = ep
	}
	return out
}

// Statistics returns the counters of the sandbox's interfaces.
func (sb *sandbox) Statistics() (map[string]*types.InterfaceStatistics, error) {
	ns := sb.namespace()
	if ns == nil {
		return nil, types.ForbiddenErrorf("sandbox %s has no network namespace yet (external key not set)", sb.id)
	}
	if sb.hostNet {
		return nil, types.ForbiddenErrorf("sandbox %s uses the host's namespace; its statistics are the host's", sb.id)
	}
	return ns.Statistics()
}

// lockOp starts an operation on the sandbox: it registers the operation
// with the controller (refused after Stop, which waits for it) and takes
// opMu. unlock releases both.
func (sb *sandbox) lockOp() (unlock func(), err error) {
	if err := sb.ctrl.begin(); err != nil {
		return nil, err
	}
	sb.opMu.Lock()
	return func() {
		sb.opMu.Unlock()
		sb.ctrl.end()
	}, nil
}

// Delete leaves and then deletes every joined endpoint, as v0.7 does (so a
// runtime that deletes a container's sandbox can then delete its
// networks), destroys the namespace and removes the sandbox's files. The
// records of the sandbox and of its endpoints go in one store update,
// before the kernel state they describe; what the kernel part fails to
// remove is logged and collected as an orphan at the next start.
func (sb *sandbox) Delete() error {
	c := sb.ctrl
	unlock, err := sb.lockOp()
	if err != nil {
		return err
	}
	defer unlock()
	sb.mu.Lock()
	if sb.deleted {
		sb.mu.Unlock()
		return types.NotFoundErrorf("sandbox %s was already deleted", sb.id)
	}
	sb.deleted = true
	sb.mu.Unlock()

	eps := sb.joined()
	for _, ep := range eps {
		if !ep.network.isGlobal() {
			continue
		}
		// Other hosts stop sending to it first; if the global store
		// cannot be told, nothing is deleted.
		if err := c.global.unpublish(ep); err != nil {
			sb.mu.Lock()
			sb.deleted = false
			sb.mu.Unlock()
			// Those unpublished before, and this one, stay joined.
			for _, e := range eps {
				if e.network.isGlobal() {
					c.global.repairLater(e)
				}
			}
			return types.Errorf("sandbox %s: %w", sb.id, err)
		}
	}
	for _, ep := range eps {
		// Within opMu no other operation holds a joined endpoint; busy
		// keeps a concurrent Endpoint.Delete away until it is forgotten.
		ep.mu.Lock()
		ep.busy = true
		ep.mu.Unlock()
	}
	if err := c.state.Update(func(tx *datastore.Tx) error {
		for _, ep := range eps {
			if err := tx.Delete(kindEndpoint, ep.id); err != nil {
				return err
			}
		}
		return tx.Delete(kindSandbox, sb.id)
	}); err != nil {
		for _, ep := range eps {
			ep.mu.Lock()
			ep.busy = false
			ep.mu.Unlock()
		}
		sb.mu.Lock()
		sb.deleted = false
		sb.mu.Unlock()
		return types.Errorf("sandbox %s: removing its records: %w", sb.id, err)
	}

	// A namespace the library made goes away below and takes its
	// interfaces with it. An adopted one (external key) outlives the
	// sandbox with its process, so the interfaces the library put there,
	// joined or retired by earlier Leaves, are deleted below in one batch.
	var ifNames []string
	if sb.externalKey {
		ifNames = sb.interfaceNames(eps)
	}
	for i := len(eps) - 1; i >= 0; i-- {
		sb.deleteJoined(eps[i], removeNone)
	}

	// The DNS server's sockets and rules go before the namespace.
	sb.stopResolver(sb.externalKey)
	sb.mu.Lock()
	ns := sb.ns
	sb.ns = nil
	sb.mu.Unlock()
	if ns != nil && len(ifNames) > 0 {
		// One batch: deleting a veth costs ~15 ms, several cost little
		// more together. The host sides go with them.
		if err := ns.DeleteInterfaces(ifNames); err != nil {
			c.logger.Warn("deleting the sandbox's interfaces from its external namespace", "sandbox", sb.id, "error", err)
		}
	}
	// The controller's namespace is shared, never destroyed.
	if ns != nil && !sb.hostNet {
		if fd, err := ns.DestroyHold(); err != nil {
			c.logger.Warn("destroying sandbox namespace", "sandbox", sb.id, "key", ns.Path(), "error", err)
		} else {
			c.nsReaper.hold(fd)
		}
	}
	sb.dropFiles()
	c.mu.Lock()
	delete(c.sandboxes, sb.id)
	delete(c.containers, sb.containerID)
	c.mu.Unlock()
	return nil
}

// deleteJoined takes a joined endpoint out of the sandbox and deletes it,
// for Delete, whose store update already removed its record. sb.opMu must
// be held.
func (sb *sandbox) deleteJoined(ep *endpoint, mode removeMode) {
	c := sb.ctrl
	n := ep.network
	ep.mu.Lock()
	js := ep.join
	ep.mu.Unlock()
	sb.mu.Lock()
	sb.endpoints = slices.DeleteFunc(sb.endpoints, func(e *endpoint) bool { return e == ep })
	sb.mu.Unlock()
	// Unpublished here, not left to the driver's DeleteEndpoint.
	sb.dropExternal(ep)
	if js != nil {
		sb.depopulate(ep, js, mode)
	}
	ep.mu.Lock()
	ep.sandboxID, ep.join = "", nil
	ep.mu.Unlock()
	c.namesChanged()
	if err := n.driver.DeleteEndpoint(n.id, ep.id); err != nil {
		c.logger.Warn("deleting endpoint of a deleted sandbox", "sandbox", sb.id, "endpoint", ep.Name(), "network", n.name, "error", err)
	}
	ep.forget()
}

// interfaceNames returns the names of the interfaces the library put in
// the sandbox's namespace: those of the joined endpoints eps and those
// retired by Leave (named by retiredName).
func (sb *sandbox) interfaceNames(eps []*endpoint) []string {
	var names []string
	for _, ep := range eps {
		ep.mu.Lock()
		if js := ep.join; js != nil && js.populated && js.ifName != "" {
			names = append(names, js.ifName)
		}
		ep.mu.Unlock()
	}
	if ns := sb.namespace(); ns != nil {
		links, err := osl.Dump(ns.Handle().LinkList)
		if err != nil {
			sb.ctrl.logger.Warn("listing the interfaces of an external namespace", "sandbox", sb.id, "error", err)
		}
		for _, l := range links {
			if isRetiredName(l.Attrs().Name) {
				names = append(names, l.Attrs().Name)
			}
		}
	}
	return names
}

// Rename gives every joined endpoint the name name, in one store update.
func (sb *sandbox) Rename(name string) (err error) {
	if name == "" {
		return ErrInvalidName(name)
	}
	c := sb.ctrl
	unlock, err := sb.lockOp()
	if err != nil {
		return err
	}
	defer unlock()
	u := c.newUndo()
	defer u.rollback(&err)
	eps := sb.joined()
	var olds []string
	for _, ep := range eps {
		old, err := ep.takeName(name)
		if err != nil {
			return types.Errorf("sandbox %s: rename: %w", sb.id, err)
		}
		olds = append(olds, old)
		u.add(func() { ep.giveBackName(name, old) })
		if ep.network.isGlobal() && old != name {
			// The name is the network's across hosts: the new one is
			// claimed now, the old one released once the rename is
			// stored (releaseOldName).
			if err := c.global.claimEndpointName(ep); err != nil {
				return types.Errorf("sandbox %s: rename: %w", sb.id, err)
			}
			u.add(func() {
				if err := c.global.releaseEndpointName(ep); err != nil {
					c.logger.Warn("undoing an endpoint name's claim", "endpoint", ep.id, "error", err)
				}
			})
		}
	}
	if err := c.state.Update(func(tx *datastore.Tx) error {
		for _, ep := range eps {
			if err := tx.Put(kindEndpoint, ep.id, ep.record()); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return types.Errorf("sandbox %s: storing new name %s: %w", sb.id, name, err)
	}
	for i, ep := range eps {
		ep.dropName(olds[i], name)
		if ep.network.isGlobal() && olds[i] != name {
			c.global.releaseOldName(ep, olds[i])
		}
	}
	return nil
}

// takeName renames the endpoint to name, reserving name in its network,
// and returns the old name, which stays reserved until dropName or
// giveBackName.
func (ep *endpoint) takeName(name string) (old string, err error) {
	n := ep.network
	n.mu.Lock()
	defer n.mu.Unlock()
	ep.mu.Lock()
	old = ep.name
	ep.mu.Unlock()
	if old == name {
		return old, nil
	}
	if n.epNames[name] {
		return "", types.ForbiddenErrorf("endpoint with name %s already exists in network %s", name, n.name)
	}
	n.epNames[name] = true
	ep.mu.Lock()
	ep.name = name
	ep.mu.Unlock()
	ep.network.ctrl.namesChanged()
	return old, nil
}

// giveBackName undoes takeName.
func (ep *endpoint) giveBackName(name, old string) {
	if old == name {
		return
	}
	n := ep.network
	n.mu.Lock()
	delete(n.epNames, name)
	ep.mu.Lock()
	ep.name = old
	ep.mu.Unlock()
	n.mu.Unlock()
	n.ctrl.namesChanged()
}

// dropName releases the old name once a rename is recorded.
func (ep *endpoint) dropName(old, name string) {
	if old == name {
		return
	}
	n := ep.network
	n.mu.Lock()
	delete(n.epNames, old)
	n.mu.Unlock()
}

// Refresh leaves every endpoint, applies the options to a fresh
// configuration, rebuilds the files and joins the endpoints again, keeping
// the namespace. It holds the sandbox's operation lock throughout, so no
// other operation sees it half-refreshed. An endpoint that fails to join
// again stays detached and is named in the error.
func (sb *sandbox) Refresh(options ...SandboxOption) error {
	c := sb.ctrl
	fresh := &sandbox{config: sandboxConfig{UseDefaultSandbox: sb.hostNet, UseExternalKey: sb.externalKey}}
	for _, o := range options {
		if o != nil {
			o(fresh)
		}
	}
	if err := fresh.config.validate(); err != nil {
		return types.Errorf("sandbox %s: refresh: %w", sb.id, err)
	}
	unlock, err := sb.lockOp()
	if err != nil {
		return err
	}
	eps := sb.joined()
	for i := len(eps) - 1; i >= 0; i-- {
		if err := sb.leaveLocked(eps[i], true); err != nil {
			unlock()
			return types.Errorf("sandbox %s: refresh: %w", sb.id, err)
		}
	}
	sb.mu.Lock()
	sb.config = fresh.config
	if fresh.labels != nil {
		sb.labels = fresh.labels
	}
	sb.mu.Unlock()
	var errs []error
	if err := sb.setupFiles(); err != nil {
		errs = append(errs, err)
	} else if err := c.state.Update(func(tx *datastore.Tx) error { return tx.Put(kindSandbox, sb.id, sb.record()) }); err != nil {
		errs = append(errs, err)
	}
	var rejoined []*endpoint
	for _, ep := range eps {
		if err := sb.joinLocked(ep, nil); err != nil {
			errs = append(errs, types.Errorf("rejoining %s: %w", ep.Name(), err))
			continue
		}
		rejoined = append(rejoined, ep)
	}
	unlock()
	for _, ep := range rejoined {
		sb.updateParentHosts(ep)
	}
	if len(errs) > 0 {
		return types.Errorf("sandbox %s: refresh: %w", sb.id, errors.Join(errs...))
	}
	return nil
}

// joinedEndpoints returns the network's endpoints that are joined to a
// sandbox, sorted by name.
// allEndpoints returns the network's endpoints.
func (n *network) allEndpoints() []*endpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	eps := make([]*endpoint, 0, len(n.endpoints))
	for _, ep := range n.endpoints {
		eps = append(eps, ep)
	}
	return eps
}

func (n *network) joinedEndpoints() []*endpoint {
	n.mu.Lock()
	eps := make([]*endpoint, 0, len(n.endpoints))
	for _, ep := range n.endpoints {
		eps = append(eps, ep)
	}
	n.mu.Unlock()
	out := eps[:0]
	for _, ep := range eps {
		ep.mu.Lock()
		j := ep.sandboxID != ""
		ep.mu.Unlock()
		if j {
			out = append(out, ep)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}
