/*
Package libnetwork provides the basic functionality and extension points to
create network namespaces and allocate interfaces for containers to use.

A NetworkController, made by New, creates networks (NewNetwork), endpoints
(Network.CreateEndpoint) and sandboxes (NewSandbox), and joins endpoints to
sandboxes (Endpoint.Join). Networks are recorded in a bbolt store in the data
dir; endpoints and sandboxes, which describe kernel state, in a store under
the exec root. A controller started again on the same directories restores
them and reconciles the kernel with them before it serves calls. With a
global store (config.OptionKVProvider), networks of global scope, such as
the overlay driver's, are shared through etcd with the controllers of other
hosts (see global.go).

# Locks

Every network, endpoint and sandbox is one live object, held in the
controller's registry. The lock order is:

	sandbox.opMu -> controller.mu -> network.mu -> endpoint.mu -> sandbox.mu

The global store's part has two more: globalCtl.progMu, held while remote
peers are programmed, comes before controller.mu (programming looks the
network up); globalCtl.mu (remote peers, hosts) comes last, never held
while taking another.

sandbox.opMu serialises the operations of one sandbox that touch the kernel
and its files and is held across those calls. The others guard data only:
no kernel call, plugin call or disk write is made while holding them.

A field written with two locks held may be read under either: an
endpoint's name (network.mu and endpoint.mu), a sandbox's key, namespace
and configuration (sandbox.opMu and sandbox.mu). A reader holding neither
takes one. Fields set before an object enters its registry and never
written after, such as a network's pools and an endpoint's addresses, are
read without a lock; so a delete takes the object out of its registry
first, then releases what it held, and leaves those fields as they were.
*/
package libnetwork

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/types"
)

// NetworkController provides the interface for controller instance which
// manages networks.
type NetworkController interface {
	// ID provides an unique identity for the controller
	ID() string

	// Config method returns the bootup configuration for the controller
	Config() config.Config

	// Create a new network. The options parameter carries network specific options.
	NewNetwork(networkType, name string, options ...NetworkOption) (Network, error)

	// Networks returns the list of Network(s) managed by this controller.
	Networks() []Network

	// WalkNetworks uses the provided function to walk the Network(s) managed by this controller.
	WalkNetworks(walker NetworkWalker)

	// NetworkByName returns the Network which has the passed name. If not found, the error ErrNoSuchNetwork is returned.
	NetworkByName(name string) (Network, error)

	// NetworkByID returns the Network which has the passed id. If not found, the error ErrNoSuchNetwork is returned.
	NetworkByID(id string) (Network, error)

	// NewSandbox cretes a new network sandbox for the passed container id
	NewSandbox(containerID string, options ...SandboxOption) (Sandbox, error)

	// Sandboxes returns the list of Sandbox(s) managed by this controller.
	Sandboxes() []Sandbox

	// WalkSandboxes uses the provided function to walk the Sandbox(s) managed by this controller.
	WalkSandboxes(walker SandboxWalker)

	// SandboxByID returns the Sandbox which has the passed id. If not found, a types.NotFoundError is returned.
	SandboxByID(id string) (Sandbox, error)

	// SandboxDestroy destroys a sandbox given a container ID
	SandboxDestroy(id string) error

	// Stop network controller
	Stop()

	// ReloadConfiguration updates the controller configuration
	ReloadConfiguration(cfgOptions ...config.Option) error
}

// NetworkWalker is a client provided function which will be used to walk
// the Networks. When the function returns true, the walk will stop.
type NetworkWalker func(nw Network) bool

// controller is the NetworkController.
type controller struct {
	id     string
	logger *slog.Logger
	// dataDir and execRoot are fixed at New (ReloadConfiguration refuses
	// to change them), so they are read without a lock.
	dataDir  string
	execRoot string
	// cluster is the checked global store and cluster configuration,
	// fixed at New.
	cluster clusterConfig
	// global is the controller's part in the global store; nil without
	// one. Set at New, never changed.
	global *globalCtl
	// store holds networks (data dir); state holds endpoints and sandboxes
	// (exec root).
	store *datastore.Store
	state *datastore.Store
	// hostNS is the namespace the controller programs: bridges, rules and
	// host-network sandboxes live there.
	hostNS *osl.Namespace
	fw     *firewall.Firewall
	// plugins finds and calls remote plugins (port mappers so far).
	plugins *plugins.Registry
	// remotes are the remote drivers and allocators activated so far.
	remotes remotes
	// rootless exposes published ports on the real host through the
	// rootless port manager (config.OptionRootlessPortManager); nil
	// without one. Set once at New, after the restore.
	rootless *rootlessPorts
	// drivers and ipams are filled in New and never change after.
	drivers map[string]driverapi.Driver
	ipams   map[string]ipamapi.Ipam
	// closers are called by Stop, in reverse order.
	closers []func() error
	setKey  *setKeyServer
	// nsReaper batches the kernel's clean-up of deleted sandboxes'
	// namespaces.
	nsReaper nsReaper
	// failPoint, when set by tests, is called at named steps of create and
	// join; an error it returns fails the operation there.
	failPoint func(step string) error

	mu sync.Mutex
	// cfg is replaced by ReloadConfiguration.
	cfg       config.Config
	networks  map[string]*network
	sandboxes map[string]*sandbox
	// netNames reserves network names, including those being created.
	netNames map[string]bool
	// containers reserves container IDs of sandboxes, including those
	// being created.
	containers map[string]bool
	stopped    bool
	// ops counts the operations in progress (begin/end); Adds happen under
	// mu and only before stopped is set, so Stop may Wait.
	ops sync.WaitGroup
	// subnets indexes the pools of networks, for checkOverlapLocked; it
	// changes with networks.
	subnets subnetIndex
	// nameGen counts changes of what sandboxes resolve (namesChanged).
	nameGen atomic.Uint64
	// hostDNS is the host's resolv.conf, for sandboxes' files and their
	// resolvers' upstreams.
	hostDNS hostDNS
}

var _ NetworkController = (*controller)(nil)

// New creates a new instance of network controller. It opens (or creates)
// the stores, restores what they hold, reconciles the kernel with it, and
// only then returns.
//
// The data dir and the exec root are made absolute once, against the
// working directory, and checked before anything is written, in the
// manner of ssh's StrictModes: every directory on the way to them, from
// /, must be owned by root (or the controller's user) and not writable by
// group or others unless it has the sticky bit (like /tmp), and each
// component, symbolic links on the way included, must be owned by root
// (or the controller's user); a symbolic link on the way (/var/run ->
// /run) is followed and its target checked the same way. The data dir and
// the exec root themselves must be directories, not symbolic links, owned
// by root (or the controller's user); New makes them (and what is missing
// on the way, mode 0700) if they do not exist and sets their mode to 0700.
// Otherwise New fails with an UnsafeDirError and makes nothing.
func New(cfgOptions ...config.Option) (NetworkController, error) {
	cfg := config.New(cfgOptions...)
	cluster, err := checkClusterConfig(*cfg)
	if err != nil {
		return nil, err
	}
	logger := cfg.Daemon.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &controller{
		cfg:        cfg.Clone(),
		logger:     logger,
		dataDir:    cfg.Daemon.DataDir,
		execRoot:   cfg.Daemon.ExecRoot,
		networks:   map[string]*network{},
		sandboxes:  map[string]*sandbox{},
		netNames:   map[string]bool{},
		containers: map[string]bool{},
		cluster:    cluster,
	}
	ok := false
	defer func() {
		if !ok {
			c.close()
		}
	}()
	if err := c.checkDirs(); err != nil {
		return nil, err
	}
	if err := c.open(); err != nil {
		return nil, err
	}
	if err := c.restore(); err != nil {
		return nil, err
	}
	c.startRootless()
	if err := c.startSetKeyServer(); err != nil {
		return nil, err
	}
	c.startRestoredResolvers()
	if c.global != nil {
		c.global.start()
	}
	ok = true
	return c, nil
}

// open opens the stores and the kernel handles and makes the drivers.
func (c *controller) open() error {
	d := c.Config().Daemon
	var err error
	c.store, err = datastore.Open(filepath.Join(c.dataDir, "network.db"), datastore.Options{Logger: c.logger})
	if err != nil {
		return types.Errorf("opening the network store: %w", err)
	}
	c.closers = append(c.closers, c.store.Close)
	c.state, err = datastore.Open(filepath.Join(c.execRoot, "state.db"), datastore.Options{NoSync: true, Logger: c.logger})
	if err != nil {
		return types.Errorf("opening the runtime state store: %w", err)
	}
	c.closers = append(c.closers, c.state.Close)
	if err := c.loadID(); err != nil {
		return err
	}
	if d.NetworkNamespace != "" {
		c.hostNS, err = osl.OpenNamespace(d.NetworkNamespace)
	} else {
		c.hostNS, err = osl.CurrentNamespace()
	}
	if err != nil {
		return types.Errorf("opening the controller's network namespace: %w", err)
	}
	c.closers = append(c.closers, c.hostNS.Close)
	if err := c.claimNamespace(); err != nil {
		return err
	}
	if c.fw, err = firewall.New(c.hostNS.Fd(), c.logger); err != nil {
		return types.Errorf("opening nftables: %w", err)
	}
	c.closers = append(c.closers, c.fw.Close)
	if err := c.fw.Init(); err != nil {
		return types.Errorf("initialising nftables: %w", err)
	}
	if err := c.makeDrivers(); err != nil {
		return err
	}
	return c.openGlobal()
}

// loadID reads the controller's ID from the data store, or makes one. A
// stored ID that does not decode or is not an ID is quarantined.
func (c *controller) loadID() error {
	recs, err := datastore.Load(c.store, "controller", func(key string, id *string) error {
		if key == "id" && !isID(*id) {
			return types.InvalidParameterErrorf("controller ID %q is not 64 lowercase hex digits", *id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if id, ok := recs["id"]; ok {
		c.id = id
		return nil
	}
	return c.store.Update(func(tx *datastore.Tx) error {
		c.id = c.newID()
		return tx.Put("controller", "id", c.id)
	})
}

// newID returns a random 64-hex-digit ID.
func (c *controller) newID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// close releases what open acquired, in reverse order.
func (c *controller) close() {
	if c.setKey != nil {
		c.setKey.close()
	}
	c.nsReaper.close()
	for i := len(c.closers) - 1; i >= 0; i-- {
		if err := c.closers[i](); err != nil {
			c.logger.Warn("closing controller", "error", err)
		}
	}
	c.closers = nil
}

func (c *controller) ID() string { return c.id }

// Config returns a copy of the controller's configuration.
func (c *controller) Config() config.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.Clone()
}

// ReloadConfiguration replaces the configuration Config returns with the
// current one plus cfgOptions. Labels and the default network and driver
// names take effect at once; the built-in drivers keep the configuration
// they were made with, and the logger stays the one given to New. The data
// dir and exec root cannot change while the controller runs; asking for it
// is refused.
func (c *controller) ReloadConfiguration(cfgOptions ...config.Option) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.cfg.Clone()
	next.Apply(cfgOptions...)
	if next.Daemon.DataDir != c.cfg.Daemon.DataDir || next.Daemon.ExecRoot != c.cfg.Daemon.ExecRoot {
		return types.ForbiddenErrorf("reload configuration: the data dir and exec root cannot change while the controller runs (have %s, %s)", c.cfg.Daemon.DataDir, c.cfg.Daemon.ExecRoot)
	}
	if !reflect.DeepEqual(next.GlobalStore, c.cfg.GlobalStore) || next.Cluster != c.cfg.Cluster {
		return types.ForbiddenErrorf("reload configuration: the global store and discovery address cannot change while the controller runs (have %q, %q)", c.cfg.GlobalStore.URL, c.cfg.Cluster.Address)
	}
	c.cfg = next
	return nil
}

// Stop stops the controller. Networks, endpoints and sandboxes stay in the
// kernel and in the stores, so a controller started again on the same
// directories finds them.
func (c *controller) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	sbs := make([]*sandbox, 0, len(c.sandboxes))
	for _, sb := range c.sandboxes {
		sbs = append(sbs, sb)
	}
	c.mu.Unlock()
	c.ops.Wait()
	if c.setKey != nil {
		c.setKey.close()
		c.setKey = nil
	}
	for _, sb := range sbs {
		// Wait for a running operation, then stop the DNS server and
		// let go of the namespace fd.
		sb.opMu.Lock()
		sb.stopResolver(false)
		sb.mu.Lock()
		if sb.ns != nil && !sb.hostNet {
			_ = sb.ns.Close()
		}
		sb.mu.Unlock()
		sb.opMu.Unlock()
	}
	c.close()
}

// begin registers an API operation that changes state, refusing it after
// Stop; end must follow. Stop waits for the operations in progress before
// it closes handles and stores under them.
func (c *controller) begin() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return types.ForbiddenErrorf("controller %s is stopped", c.id)
	}
	c.ops.Add(1)
	return nil
}

func (c *controller) end() { c.ops.Done() }

// NewNetwork creates a network: IPAM pools, then the driver's network, then
// the record. A failure at any step undoes the steps before it.
func (c *controller) NewNetwork(networkType, name string, options ...NetworkOption) (_ Network, err error) {
	if name == "" || !config.IsValidName(name) {
		return nil, ErrInvalidName(name)
	}
	if networkType == "" {
		return nil, ErrInvalidNetworkDriver(networkType)
	}
	if err := c.refuseWithoutGlobalStore(networkType, name); err != nil {
		return nil, err
	}
	drv, err := c.networkDriver(networkType)
	if err != nil {
		return nil, err
	}
	if err := c.begin(); err != nil {
		return nil, err
	}
	defer c.end()
	cp := capabilityOf(drv)
	n := &network{
		ctrl: c, id: c.newID(), name: name, networkType: networkType, driver: drv,
		scope: cp.DataScope, attach: cp.Attachment, created: time.Now(), ipamType: ipamapi.DefaultIPAM,
		persist: true, endpoints: map[string]*endpoint{}, epNames: map[string]bool{},
	}
	for _, o := range options {
		if o != nil {
			o(n)
		}
	}
	if n.optErr != nil {
		return nil, types.Errorf("network %s: %w", name, n.optErr)
	}
	if n.ipam, err = c.ipamDriver(n.ipamType); err != nil {
		return nil, types.Errorf("network %s: %w", name, err)
	}
	if n.isGlobal() && n.ipamType == ipamapi.DefaultIPAM {
		n.ipam = c.global.ipam
		if n.addrSpace == "" {
			n.addrSpace = ipamapi.GlobalDefault
		}
	}
	for _, conf := range n.ipamConfigs() {
		if err := conf.Validate(); err != nil {
			return nil, types.Errorf("network %s: %w", name, err)
		}
	}

	u := c.newUndo()
	defer u.rollback(&err)
	c.mu.Lock()
	if c.netNames[name] {
		c.mu.Unlock()
		return nil, NetworkNameError(name)
	}
	if err := c.checkOverlapLocked(n); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	c.netNames[name] = true
	c.mu.Unlock()
	u.add(func() {
		c.mu.Lock()
		delete(c.netNames, name)
		c.mu.Unlock()
	})

	if err := n.allocatePools(); err != nil {
		return nil, err
	}
	u.add(n.releasePools)
	if pd, ok := drv.(*pluginDriver); ok && n.scope == driverapi.GlobalScope {
		// The driver options as strings (AllocateNetwork takes no other
		// values); what the plugin answers is added to them.
		got, err := pd.allocateNetwork(n.id, n.driverOptStrings(), ipamData(n.ipamV4Info), ipamData(n.ipamV6Info))
		if err != nil {
			return nil, types.Errorf("network %s: %w", name, err)
		}
		u.add(func() {
			if ferr := pd.freeNetwork(n.id); ferr != nil {
				c.logger.Warn("undoing network allocation", "network", name, "error", ferr)
			}
		})
		n.addDriverOpts(got)
	}
	if n.isGlobal() {
		undo, err := c.global.createNetwork(n)
		if err != nil {
			return nil, err
		}
		u.add(undo)
	}
	if err := drv.CreateNetwork(n.id, n.driverOptions(), ipamData(n.ipamV4Info), ipamData(n.ipamV6Info)); err != nil {
		return nil, types.Errorf("network %s: driver %s: %w", name, networkType, err)
	}
	if err := u.step("network-after-driver", func() {
		if derr := drv.DeleteNetwork(n.id); derr != nil {
			c.logger.Warn("undoing network create", "network", name, "error", derr)
		}
	}); err != nil {
		return nil, err
	}
	if n.persist {
		if err := c.store.Update(func(tx *datastore.Tx) error { return tx.Put(kindNetwork, n.id, n.record()) }); err != nil {
			return nil, types.Errorf("network %s: storing: %w", name, err)
		}
	}
	c.mu.Lock()
	c.networks[n.id] = n
	c.subnets.add(n)
	c.mu.Unlock()
	if n.isGlobal() {
		c.global.created(n.id)
	}
	return n, nil
}

// checkOverlapLocked refuses a requested pool that overlaps a pool of
// another network, naming that network. It looks the pools up in
// c.subnets, so its cost does not grow with the number of networks. c.mu
// must be held.
func (c *controller) checkOverlapLocked(n *network) error {
	for _, conf := range n.ipamConfigs() {
		if conf.PreferredPool == "" {
			continue
		}
		_, want, err := net.ParseCIDR(conf.PreferredPool)
		if err != nil {
			continue // Validate reported it
		}
		p, ok := ipNetPrefix(want)
		if !ok {
			continue
		}
		if other, have := c.subnets.overlapping(n.ipamType, n.addrSpace, p); other != nil {
			return types.ForbiddenErrorf("network %s: subnet %s overlaps network %s (%s)", n.name, want, other.name, have)
		}
	}
	return nil
}

func (c *controller) Networks() []Network {
	c.mu.Lock()
	ns := make([]*network, 0, len(c.networks))
	for _, n := range c.networks {
		ns = append(ns, n)
	}
	c.mu.Unlock()
	sort.Slice(ns, func(i, j int) bool { return ns[i].name < ns[j].name })
	out := make([]Network, len(ns))
	for i, n := range ns {
		out[i] = n
	}
	return out
}

func (c *controller) WalkNetworks(walker NetworkWalker) {
	for _, n := range c.Networks() {
		if walker(n) {
			return
		}
	}
}

func (c *controller) NetworkByName(name string) (Network, error) {
	if name == "" {
		return nil, ErrInvalidName(name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.networks {
		if n.name == name {
			return n, nil
		}
	}
	return nil, ErrNoSuchNetwork(name)
}

func (c *controller) NetworkByID(id string) (Network, error) {
	if id == "" {
		return nil, ErrInvalidID(id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.networks[id]; ok {
		return n, nil
	}
	return nil, ErrNoSuchNetwork(id)
}

// NewSandbox creates the sandbox of a container: its network namespace
// (unless it shares the host's or waits for an external key), its
// /etc/hosts and resolv.conf, and its record.
func (c *controller) NewSandbox(containerID string, options ...SandboxOption) (_ Sandbox, err error) {
	if containerID == "" {
		return nil, InvalidContainerIDError(containerID)
	}
	if err := c.begin(); err != nil {
		return nil, err
	}
	defer c.end()
	u := c.newUndo()
	defer u.rollback(&err)
	c.mu.Lock()
	if c.containers[containerID] {
		c.mu.Unlock()
		return nil, types.BadRequestErrorf("container %s already has a sandbox", containerID)
	}
	c.containers[containerID] = true
	c.mu.Unlock()
	u.add(func() {
		c.mu.Lock()
		delete(c.containers, containerID)
		c.mu.Unlock()
	})

	sb := &sandbox{ctrl: c, id: c.newID(), containerID: containerID}
	for _, o := range options {
		if o != nil {
			o(sb)
		}
	}
	if err := sb.config.validate(); err != nil {
		return nil, types.Errorf("sandbox for container %s: %w", containerID, err)
	}
	sb.hostNet, sb.externalKey = sb.config.UseDefaultSandbox, sb.config.UseExternalKey
	if err := c.createSandbox(sb, u); err != nil {
		return nil, types.Errorf("sandbox for container %s: %w", containerID, err)
	}
	c.mu.Lock()
	c.sandboxes[sb.id] = sb
	c.mu.Unlock()
	return sb, nil
}

// createSandbox makes the sandbox's namespace, files and record, recording
// their reversal in u.
func (c *controller) createSandbox(sb *sandbox, u *undo) error {
	switch {
	case sb.hostNet:
		sb.ns, sb.key = c.hostNS, c.hostKey()
	case sb.externalKey:
		// The namespace comes with SetKey.
	default:
		key := c.sandboxKeyPath(sb.id)
		ns, err := osl.NewNamespace(key)
		if err != nil {
			return err
		}
		sb.ns, sb.key = ns, key
		u.add(func() {
			if derr := ns.Destroy(); derr != nil {
				c.logger.Warn("undoing sandbox namespace", "key", key, "error", derr)
			}
		})
	}
	// Files may be half written when setupFiles fails.
	u.add(sb.dropFiles)
	if err := sb.setupFiles(); err != nil {
		return err
	}
	if err := u.step("sandbox-after-files", nil); err != nil {
		return err
	}
	if err := c.state.Update(func(tx *datastore.Tx) error { return tx.Put(kindSandbox, sb.id, sb.record()) }); err != nil {
		return types.Errorf("storing: %w", err)
	}
	return nil
}

// sandboxKeyPath is where the namespace of sandbox id is bind-mounted.
func (c *controller) sandboxKeyPath(id string) string {
	return filepath.Join(c.execRoot, "netns", id[:12])
}

func (c *controller) Sandboxes() []Sandbox {
	c.mu.Lock()
	sbs := make([]*sandbox, 0, len(c.sandboxes))
	for _, sb := range c.sandboxes {
		sbs = append(sbs, sb)
	}
	c.mu.Unlock()
	sort.Slice(sbs, func(i, j int) bool { return sbs[i].containerID < sbs[j].containerID })
	out := make([]Sandbox, len(sbs))
	for i, sb := range sbs {
		out[i] = sb
	}
	return out
}

func (c *controller) WalkSandboxes(walker SandboxWalker) {
	for _, sb := range c.Sandboxes() {
		if walker(sb) {
			return
		}
	}
}

func (c *controller) SandboxByID(id string) (Sandbox, error) {
	if id == "" {
		return nil, ErrInvalidID(id)
	}
	if sb := c.sandbox(id); sb != nil {
		return sb, nil
	}
	return nil, types.NotFoundErrorf("sandbox %s not found", id)
}

// sandbox returns the live sandbox id, or nil.
func (c *controller) sandbox(id string) *sandbox {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sandboxes[id]
}

// SandboxDestroy deletes the sandbox of container id. A container without
// a sandbox is not an error: there is nothing to destroy.
func (c *controller) SandboxDestroy(id string) error {
	var sb Sandbox
	c.WalkSandboxes(SandboxContainerWalker(&sb, id))
	if sb == nil {
		return nil
	}
	return sb.Delete()
}

// ownSandbox returns sbox as this controller's live sandbox.
func (c *controller) ownSandbox(sbox Sandbox) (*sandbox, error) {
	sb, ok := sbox.(*sandbox)
	if !ok || sb == nil {
		return nil, types.BadRequestErrorf("not a sandbox of this library: %T", sbox)
	}
	if sb.ctrl != c {
		return nil, types.BadRequestErrorf("sandbox %s belongs to another controller", sb.id)
	}
	if c.sandbox(sb.id) != sb {
		return nil, types.NotFoundErrorf("sandbox %s not found", sb.id)
	}
	return sb, nil
}

// hostKey is the key of sandboxes that share the controller's namespace.
func (c *controller) hostKey() string {
	if p := c.hostNS.Path(); p != "" {
		return p
	}
	return fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
}

// claimNamespace makes sure no other controller programs the same network
// namespace: bridges, veths and the nftables table are recognised as the
// library's by name, so a second controller would take the first one's for
// orphans. The claim is an abstract unix socket, which lives in the
// namespace and goes away with the process, even a killed one.
func (c *controller) claimNamespace() error {
	var claim net.PacketConn
	err := c.hostNS.Do(func() error {
		var err error
		claim, err = net.ListenPacket("unixgram", "@libnetwork-controller")
		return err
	})
	if errors.Is(err, syscall.EADDRINUSE) {
		return types.ForbiddenErrorf("network namespace %s is already programmed by another controller; run one controller per network namespace (config.OptionNetworkNamespace)", c.hostNS)
	}
	if err != nil {
		return types.Errorf("claiming the network namespace: %w", err)
	}
	c.closers = append(c.closers, claim.Close)
	return nil
}
