package libnetwork

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/overlay"
	"github.com/netkit/libnetwork/drivers/remote"
	"github.com/netkit/libnetwork/globalstore"
	globalipam "github.com/netkit/libnetwork/ipams/global"
	"github.com/netkit/libnetwork/types"
)

// Global networks (the overlay driver's) live in the global store, etcd,
// shared by the controllers of every host:
//
//   - network/<id>: the network's record, as in the local store;
//   - netname/<name>: the network's ID, so a name is taken once across hosts;
//   - vni/<vni>: the network's ID, so a VNI is taken once across hosts;
//   - endpoint/<id>: a joined endpoint (where it is: host, VTEP, MAC; its
//     addresses and names), bound to its host's lease;
//   - epname/<network id>.<name>: the endpoint holding a name in a network,
//     so a name is taken once across hosts, bound to its host's lease;
//   - host/<controller id>: a live host and its discovery address, bound to
//     its lease; remote drivers hear of hosts coming and going through
//     DiscoverNew and DiscoverDelete (node discovery), as in docker;
//   - pools/..., ip_<pool>/...: the global allocator's (package
//     globalipam).
//
// Every controller watches networks and endpoints: it adds the networks
// other hosts create (and removes those they delete), programs the remote
// endpoints of its global networks into the overlay driver as peers, and
// answers their names in its sandboxes' DNS. A local copy of each global
// network's record stays in the local store, so that a restart restores
// the host's networks and endpoints while etcd is away; whenever the
// endpoint watch starts over (at start, after etcd comes back, after a
// compaction), the controller puts its own joined endpoints and their
// addresses back (they may have gone with an expired lease) and drops the
// peers that are gone.

// Kinds of the global store.
const (
	gkindNetwork  = "network"
	gkindName     = "netname"
	gkindVNI      = "vni"
	gkindEndpoint = "endpoint"
	gkindEPName   = "epname"
	gkindHost     = "host"
)

// nodeDiscovery is docker's discoverapi.NodeDiscovery, the discovery type
// of a host's DiscoverNew and DiscoverDelete.
const nodeDiscovery = 1

// nodeDiscoveryData is docker's discoverapi.NodeDiscoveryData.
type nodeDiscoveryData struct {
	Address     string
	BindAddress string
	Self        bool
}

// hostRecord is the value of a host's key.
type hostRecord struct {
	Address string
}

// vniFirst is the first VNI the controller hands out when the caller names
// none, as docker.
const vniFirst = 4096

// globalCtl is the controller's part in the global store.
type globalCtl struct {
	c     *controller
	store *globalstore.Store
	ipam  *globalipam.Allocator

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// progMu orders the changes to peers with their programming in the
	// kernel, which the endpoint watch (peerPut, peerDelete) and the
	// network watch (programPeers, for a network just added) both do:
	// without it a network's first programming could put back a peer the
	// endpoint watch has just removed. Taken before mu.
	progMu sync.Mutex

	mu sync.Mutex
	// peers are the joined endpoints of other hosts, by network ID and
	// endpoint ID, whether or not the network is known here yet.
	peers map[string]map[string]*globalEndpoint
	// creating are the networks this controller is creating: the watch
	// sees them before NewNetwork registers them.
	creating map[string]bool
	// hosts are the live hosts' discovery addresses by controller ID.
	hosts map[string]string
	// stopped is set by stop: no goroutine starts after it.
	stopped bool
	// nameRevs are the revisions this controller wrote its endpoints'
	// name keys at, by endpoint ID, so a release takes one round trip.
	nameRevs map[string]int64
}

// globalEndpoint is the record of a joined endpoint in the global store.
type globalEndpoint struct {
	Network           string
	Name              string
	Host              string
	VTEP              string
	MAC               string
	Addr              string   `json:",omitempty"`
	AddrV6            string   `json:",omitempty"`
	Anonymous         bool     `json:",omitempty"`
	DisableResolution bool     `json:",omitempty"`
	MyAliases         []string `json:",omitempty"`
}

// openGlobal opens the global store when one is configured. It does not
// wait for etcd: the controller starts, and serves its local networks,
// while etcd is away.
func (c *controller) openGlobal() error {
	if len(c.cluster.endpoints) == 0 {
		return nil
	}
	g := c.Config().GlobalStore
	st, err := globalstore.New(globalstore.Config{
		Endpoints: c.cluster.endpoints,
		CAFile:    g.Opts[config.KVCACertFile], CertFile: g.Opts[config.KVCertFile], KeyFile: g.Opts[config.KVKeyFile],
		Prefix: g.Prefix, DialTimeout: g.DialTimeout, RequestTimeout: g.RequestTimeout, LeaseTTL: g.LeaseTTL,
		Host: c.id, Logger: c.logger,
	})
	if err != nil {
		return types.Errorf("opening the global store: %w", err)
	}
	// Stop leaves the lease to run out rather than revoking it: the
	// containers and their tunnels outlive the controller, and a
	// controller started again within the TTL takes its records over.
	c.closers = append(c.closers, st.Detach)
	ipam, err := globalipam.New(globalipam.Config{Store: st, Logger: c.logger})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.global = &globalCtl{c: c, store: st, ipam: ipam, ctx: ctx, cancel: cancel, peers: map[string]map[string]*globalEndpoint{}, creating: map[string]bool{}, hosts: map[string]string{}, nameRevs: map[string]int64{}}
	// Stopped before the store closes (closers run last first).
	c.closers = append(c.closers, func() error { c.global.stop(); return nil })
	return nil
}

// newOverlayDriver makes the overlay driver, whose tunnels end at the
// discovery address.
func (c *controller) newOverlayDriver() (*overlay.Driver, error) {
	var vtep net.IP
	if c.cluster.advertise.IsValid() {
		vtep = net.IP(c.cluster.advertise.AsSlice())
	}
	d, err := overlay.New(overlay.Config{Logger: c.logger, Host: c.hostNS.Handle(),
		NamespaceDir: filepath.Join(c.execRoot, overlayDirName), VTEP: vtep})
	if err != nil {
		return nil, err // it names itself
	}
	c.closers = append(c.closers, d.Close)
	return d, nil
}

// start starts following the global store.
func (g *globalCtl) start() {
	g.wg.Add(3)
	go g.watchNetworks()
	go g.watchEndpoints()
	go g.watchHosts()
}

// watchHosts keeps this host's record in the store and tells the remote
// drivers of the hosts that come and go.
func (g *globalCtl) watchHosts() {
	defer g.wg.Done()
	for ev := range g.store.Watch(g.ctx, gkindHost) {
		switch ev.Type {
		case globalstore.EventReset:
			seen := map[string]bool{}
			for _, kv := range ev.All {
				seen[kv.ID] = true
				g.hostPut(kv)
			}
			g.mu.Lock()
			var gone []string
			for id := range g.hosts {
				if !seen[id] {
					gone = append(gone, id)
				}
			}
			g.mu.Unlock()
			for _, id := range gone {
				g.hostDelete(id)
			}
			if !seen[g.c.id] {
				b, _ := json.Marshal(hostRecord{Address: g.c.cluster.advertise.String()})
				if _, err := g.store.Txn(g.ctx, globalstore.PutLeased(gkindHost, g.c.id, b)); err != nil {
					g.c.logger.Warn("announcing this host in the global store", "error", err)
				}
			}
		case globalstore.EventPut:
			g.hostPut(ev.KV)
		case globalstore.EventDelete:
			g.hostDelete(ev.KV.ID)
		}
	}
}

func (g *globalCtl) hostPut(kv globalstore.KV) {
	var h hostRecord
	if json.Unmarshal(kv.Value, &h) != nil {
		return
	}
	g.mu.Lock()
	old, known := g.hosts[kv.ID]
	g.hosts[kv.ID] = h.Address
	g.mu.Unlock()
	if known && old == h.Address {
		return
	}
	if known {
		g.notifyNode(kv.ID, old, false)
	}
	g.notifyNode(kv.ID, h.Address, true)
}

func (g *globalCtl) hostDelete(id string) {
	g.mu.Lock()
	addr, known := g.hosts[id]
	delete(g.hosts, id)
	g.mu.Unlock()
	if known {
		g.notifyNode(id, addr, false)
	}
}

// notifyNode tells every activated remote driver of a host that came
// (DiscoverNew) or went (DiscoverDelete).
func (g *globalCtl) notifyNode(id, addr string, add bool) {
	c := g.c
	c.remotes.mu.Lock()
	drivers := make(map[string]*remote.Driver, len(c.remotes.drivers))
	maps.Copy(drivers, c.remotes.drivers)
	c.remotes.mu.Unlock()
	for name, d := range drivers {
		g.notifyDriver(name, d, id, addr, add)
	}
}

func (g *globalCtl) notifyDriver(name string, d *remote.Driver, id, addr string, add bool) {
	data := nodeDiscoveryData{Address: addr, Self: id == g.c.id}
	if data.Self {
		data.BindAddress = addr
	}
	var err error
	if add {
		err = d.DiscoverNew(nodeDiscovery, data)
	} else {
		err = d.DiscoverDelete(nodeDiscovery, data)
	}
	if err != nil {
		g.c.logger.Warn("telling a network plugin of a host", "plugin", name, "host", addr, "new", add, "error", err)
	}
}

// nodesTo tells a newly activated remote driver of the live hosts.
func (g *globalCtl) nodesTo(name string, d *remote.Driver) {
	g.mu.Lock()
	hosts := maps.Clone(g.hosts)
	g.mu.Unlock()
	for id, addr := range hosts {
		g.notifyDriver(name, d, id, addr, true)
	}
}

func (g *globalCtl) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}

// repairLater puts an endpoint's keys back in the global store (name,
// addresses, its record if joined), retrying until etcd takes them, after
// an operation on it failed half-way there: a refused Leave or Delete may
// have deleted some of its keys, or had the Store stop minding them
// (a leased key whose delete was attempted is not put back when the lease
// is lost), while the endpoint lives on here.
func (g *globalCtl) repairLater(ep *endpoint) {
	g.retryLater(func() bool {
		n := ep.network
		n.mu.Lock()
		live := n.endpoints[ep.id] == ep
		n.mu.Unlock()
		if !live {
			return true
		}
		err := g.reclaim(ep)
		switch {
		case err == nil:
			g.c.logger.Info("put an endpoint's keys back in the global store", "endpoint", ep.name)
			return true
		case types.IsNotFound(err):
			// Another host deleted the network while this host's keys
			// were gone: nothing to put them back into. (A Forbidden
			// "in use" is retried: this host's own key being put back
			// by the store reads so for a moment.)
			g.c.logger.Warn("an endpoint's network is gone from the global store; its keys stay out", "endpoint", ep.name, "network", n.name, "error", err)
			return true
		}
		g.c.logger.Debug("putting an endpoint's keys back in the global store", "endpoint", ep.name, "error", err)
		return false
	})
}

// retryLater runs attempt in the background, after 100 ms and then with
// the wait doubling up to 5 s, until it reports it is done or the
// controller stops.
func (g *globalCtl) retryLater(attempt func() (done bool)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			select {
			case <-g.ctx.Done():
				return
			case <-time.After(delay):
			}
			if attempt() {
				return
			}
		}
	}()
}

// isGlobal reports whether n's records live in the global store: a
// network of global scope (overlay's, a remote driver's that declares it)
// on a controller with a global store.
func (n *network) isGlobal() bool {
	return n.scope == driverapi.GlobalScope && n.ctrl.global != nil
}

// vxlanIDs parses n's VNI option with the overlay driver's own parser; no
// option gives none.
func (n *network) vxlanIDs() ([]int, error) {
	raw := n.driverOptStrings()[overlay.VXLANIDListOption]
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	return overlay.ParseVNIs(n.id, raw)
}

// createNetwork records a new global network in the global store: its
// record, its name and its VNIs (those asked for, or free ones, one per
// IPv4 subnet), in one transaction, so two hosts can take neither the same
// name nor the same VNI. It sets the VNIs as the driver's option. The
// caller calls created once the network is registered (or undone).
func (g *globalCtl) createNetwork(n *network) (undo func(), err error) {
	ctx := g.ctx
	g.mu.Lock()
	g.creating[n.id] = true
	g.mu.Unlock()
	defer func() {
		if err != nil {
			g.created(n.id)
		}
	}()
	vnis, err := n.vxlanIDs()
	if err != nil {
		return nil, types.Errorf("network %s: %w", n.name, err)
	}
	asked := len(vnis) > 0
	want := max(len(n.ipamV4Info), 1)
	if n.networkType != overlayNetworkType {
		// A remote driver's network: no VNIs of ours.
		asked, want, vnis = true, 0, nil
	}
	if asked && len(vnis) != want && n.networkType == overlayNetworkType {
		return nil, types.BadRequestErrorf("network %s: %s has %d VNIs for %d IPv4 subnets", n.name, overlay.VXLANIDListOption, len(vnis), want)
	}
	for attempt := 0; ; attempt++ {
		if !asked {
			taken, _, err := g.store.List(ctx, gkindVNI)
			if err != nil {
				return nil, types.Errorf("network %s: choosing a VNI: %w", n.name, err)
			}
			used := map[int]bool{}
			for _, kv := range taken {
				v, _ := strconv.Atoi(kv.ID)
				used[v] = true
			}
			vnis = vnis[:0]
			for v := vniFirst; v <= overlay.MaxVNI && len(vnis) < want; v++ {
				if !used[v] {
					vnis = append(vnis, v)
				}
			}
		}
		strs := make([]string, len(vnis))
		for i, v := range vnis {
			strs[i] = strconv.Itoa(v)
		}
		if len(strs) > 0 {
			n.addDriverOpts(map[string]string{overlay.VXLANIDListOption: strings.Join(strs, ",")})
		}
		rec, err := json.Marshal(n.record())
		if err != nil {
			return nil, types.InternalErrorf("network %s: encoding its record: %v", n.name, err)
		}
		ops := []globalstore.Op{
			globalstore.Create(gkindName, n.name, []byte(n.id)),
			globalstore.Create(gkindNetwork, n.id, rec),
		}
		for _, v := range strs {
			ops = append(ops, globalstore.Create(gkindVNI, v, []byte(n.id)))
		}
		_, err = g.store.Txn(ctx, ops...)
		var ce *globalstore.ConflictError
		switch {
		case err == nil:
			return func() {
				if err := g.deleteNetworkKeys(n); err != nil {
					g.c.logger.Warn("undoing a global network's creation", "network", n.name, "error", err)
				}
				g.created(n.id)
			}, nil
		case errors.As(err, &ce) && ce.Kind == gkindName:
			return nil, NetworkNameError(n.name)
		case errors.As(err, &ce) && ce.Kind == gkindVNI && asked:
			return nil, types.ForbiddenErrorf("network %s: VNI %s is taken by another network", n.name, ce.ID)
		case errors.As(err, &ce) && ce.Kind == gkindVNI && attempt < 16:
			continue // another host took it meanwhile
		default:
			return nil, types.Errorf("network %s: recording it in the global store: %w", n.name, err)
		}
	}
}

// created ends the creation of network id (see createNetwork).
func (g *globalCtl) created(id string) {
	g.mu.Lock()
	delete(g.creating, id)
	g.mu.Unlock()
}

// deleteNetworkKeys removes a global network's keys, refusing with an
// *ActiveEndpointsError while another host has an endpoint on it. The
// endpoints are those holding a name in the network (claimed at
// CreateEndpoint, joined or not, as in v0.7 where endpoints are global).
// The decision is atomic: the delete goes through only if no name was
// claimed after the listing (NoNewUnder), and a claim needs the network's
// key (claimEndpointName), so a host creating an endpoint meanwhile
// either is seen here or finds the network gone. Names this host still
// holds in the network (its endpoints are gone: the caller checked) are
// stale, left by a release that failed, and go with the network.
func (g *globalCtl) deleteNetworkKeys(n *network) error {
	prefix := nameKeyID(n.id, "")
	kvs, rev, err := g.store.ListUnder(g.ctx, gkindEPName, prefix)
	if err != nil {
		return types.Errorf("network %s: listing its endpoints: %w", n.name, err)
	}
	ops := []globalstore.Op{
		globalstore.Delete(gkindNetwork, n.id, 0),
		globalstore.Delete(gkindName, n.name, 0),
		globalstore.NoNewUnder(gkindEPName, prefix, rev),
	}
	for _, kv := range kvs {
		if !strings.HasPrefix(kv.ID, prefix) {
			continue
		}
		var held epNameRecord
		if json.Unmarshal(kv.Value, &held) == nil && held.Host != g.c.id {
			return &ActiveEndpointsError{name: n.name, id: n.id}
		}
		ops = append(ops, globalstore.Delete(gkindEPName, kv.ID, kv.ModRev))
	}
	vnis, _ := n.vxlanIDs()
	for _, v := range vnis {
		ops = append(ops, globalstore.Delete(gkindVNI, strconv.Itoa(v), 0))
	}
	if _, err := g.store.Txn(g.ctx, ops...); err != nil {
		var ce *globalstore.ConflictError
		if errors.As(err, &ce) && ce.Kind == gkindEPName {
			// A name claimed since the listing, or a stale one of
			// this host's renewed: an endpoint is being made.
			return &ActiveEndpointsError{name: n.name, id: n.id}
		}
		return types.Errorf("network %s: removing it from the global store: %w", n.name, err)
	}
	return nil
}

// endpointRecord returns the global record of a joined endpoint of n.
func (g *globalCtl) endpointRecord(ep *endpoint) globalEndpoint {
	ge := globalEndpoint{Network: ep.network.id, Name: ep.name, Host: g.c.id, VTEP: g.c.cluster.advertise.String(),
		Anonymous: ep.anonymous, DisableResolution: ep.disableResolution, MyAliases: ep.myAliases}
	if ep.iface.mac != nil {
		ge.MAC = ep.iface.mac.String()
	}
	if ep.iface.addr != nil {
		ge.Addr = ep.iface.addr.String()
	}
	if ep.iface.addrv6 != nil {
		ge.AddrV6 = ep.iface.addrv6.String()
	}
	return ge
}

// epNameRecord is the value of an endpoint name's key.
type epNameRecord struct {
	Endpoint string
	Host     string
}

func epNameID(ep *endpoint) string { return nameKeyID(ep.network.id, ep.name) }

// nameKeyID is the ID of the key of endpoint name name in network nid;
// a network's names are the IDs under nameKeyID(nid, "").
func nameKeyID(nid, name string) string { return nid + "." + name }

// claimEndpointName takes the endpoint's name in its network across
// hosts; a name its own record already holds (a restart) is taken over.
// It needs the network's key: a network deleted meanwhile (see
// deleteNetworkKeys) is a NotFoundError.
func (g *globalCtl) claimEndpointName(ep *endpoint) error {
	val, _ := json.Marshal(epNameRecord{Endpoint: ep.id, Host: g.c.id})
	netExists := globalstore.Exists(gkindNetwork, ep.network.id)
	rev, err := g.store.Txn(g.ctx, netExists, globalstore.CreateLeased(gkindEPName, epNameID(ep), val))
	var ce *globalstore.ConflictError
	if errors.As(err, &ce) && ce.Kind == gkindNetwork {
		return types.NotFoundErrorf("endpoint %s: network %s is deleted from the global store", ep.name, ep.network.name)
	}
	if !errors.As(err, &ce) {
		if err != nil {
			return types.Errorf("endpoint %s: taking its name in the global store: %w", ep.name, err)
		}
		g.setNameRev(ep.id, rev)
		return nil
	}
	kv, gerr := g.store.Get(g.ctx, gkindEPName, epNameID(ep))
	var held epNameRecord
	if gerr == nil && json.Unmarshal(kv.Value, &held) == nil {
		if held.Endpoint == ep.id {
			rev, err := g.store.Txn(g.ctx, netExists, globalstore.UpdateLeased(gkindEPName, epNameID(ep), val, kv.ModRev))
			if errors.As(err, &ce) && ce.Kind == gkindNetwork {
				return types.NotFoundErrorf("endpoint %s: network %s is deleted from the global store", ep.name, ep.network.name)
			}
			if err != nil {
				return types.Errorf("endpoint %s: taking its name back in the global store: %w", ep.name, err)
			}
			g.setNameRev(ep.id, rev)
			return nil
		}
		return types.ForbiddenErrorf("endpoint with name %s already exists in network %s (on host %s)", ep.name, ep.network.name, held.Host)
	}
	return types.ForbiddenErrorf("endpoint with name %s already exists in network %s", ep.name, ep.network.name)
}

// setNameRev records the revision of an endpoint's name key; 0 forgets it.
func (g *globalCtl) setNameRev(id string, rev int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if rev == 0 {
		delete(g.nameRevs, id)
	} else {
		g.nameRevs[id] = rev
	}
}

// releaseEndpointName gives the endpoint's name back if it holds it.
func (g *globalCtl) releaseEndpointName(ep *endpoint) error {
	g.mu.Lock()
	rev := g.nameRevs[ep.id]
	g.mu.Unlock()
	if rev != 0 {
		// Written by this controller and unchanged since: one round trip.
		_, err := g.store.Txn(g.ctx, globalstore.Delete(gkindEPName, epNameID(ep), rev))
		if err == nil {
			g.setNameRev(ep.id, 0)
			return nil
		}
		var ce *globalstore.ConflictError
		if !errors.As(err, &ce) {
			g.releaseNameLater(ep.network.id, ep.name, ep.id)
			return types.Errorf("endpoint %s: releasing its name: %w", ep.name, err)
		}
	}
	defer g.setNameRev(ep.id, 0)
	if err := g.releaseNameKey(ep.network.id, ep.name, ep.id); err != nil {
		g.releaseNameLater(ep.network.id, ep.name, ep.id)
		return types.Errorf("endpoint %s: releasing its name: %w", ep.name, err)
	}
	return nil
}

// releaseNameKey deletes the global key of endpoint name name in network
// nid if endpoint eid holds it.
func (g *globalCtl) releaseNameKey(nid, name, eid string) error {
	id := nameKeyID(nid, name)
	kv, err := g.store.Get(g.ctx, gkindEPName, id)
	if types.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var held epNameRecord
	if json.Unmarshal(kv.Value, &held) != nil || held.Endpoint != eid {
		return nil
	}
	_, err = g.store.Txn(g.ctx, globalstore.Delete(gkindEPName, id, kv.ModRev))
	return err
}

// releaseNameLater retries releaseNameKey in the background until it
// succeeds or the controller stops: a name key left behind (it is bound
// to this host's lease, which lives on) would keep the name from other
// hosts and the network from being deleted anywhere.
func (g *globalCtl) releaseNameLater(nid, name, eid string) {
	g.retryLater(func() bool {
		if err := g.releaseNameKey(nid, name, eid); err != nil {
			g.c.logger.Debug("releasing an endpoint name in the global store", "name", name, "error", err)
			return false
		}
		g.c.logger.Info("released an endpoint name left in the global store", "name", name)
		return true
	})
}

// releaseOldName gives back ep's name before a Rename, retrying in the
// background if the store cannot be told now.
func (g *globalCtl) releaseOldName(ep *endpoint, old string) {
	if err := g.releaseNameKey(ep.network.id, old, ep.id); err != nil {
		g.c.logger.Warn("releasing an endpoint's old name in the global store; retrying", "endpoint", ep.id, "name", old, "error", err)
		g.releaseNameLater(ep.network.id, old, ep.id)
	}
}

// publish puts a joined endpoint of a global network in the global store,
// bound to this host's lease, if the network is still there (a
// NotFoundError if another host deleted it).
func (g *globalCtl) publish(ep *endpoint) error {
	b, err := json.Marshal(g.endpointRecord(ep))
	if err != nil {
		return types.InternalErrorf("endpoint %s: encoding its global record: %v", ep.name, err)
	}
	_, err = g.store.Txn(g.ctx, globalstore.Exists(gkindNetwork, ep.network.id), globalstore.PutLeased(gkindEndpoint, ep.id, b))
	var ce *globalstore.ConflictError
	if errors.As(err, &ce) && ce.Kind == gkindNetwork {
		return types.NotFoundErrorf("endpoint %s: network %s is deleted from the global store", ep.name, ep.network.name)
	}
	if err != nil {
		return types.Errorf("endpoint %s: publishing it in the global store: %w", ep.name, err)
	}
	return nil
}

// unpublish removes an endpoint's record from the global store.
func (g *globalCtl) unpublish(ep *endpoint) error {
	if _, err := g.store.Txn(g.ctx, globalstore.Delete(gkindEndpoint, ep.id, 0)); err != nil {
		return types.Errorf("endpoint %s: removing it from the global store: %w", ep.name, err)
	}
	return nil
}

// watchNetworks follows the global networks: those other hosts create are
// added here, those deleted are removed.
func (g *globalCtl) watchNetworks() {
	defer g.wg.Done()
	for ev := range g.store.Watch(g.ctx, gkindNetwork) {
		switch ev.Type {
		case globalstore.EventReset:
			seen := map[string]bool{}
			for _, kv := range ev.All {
				seen[kv.ID] = true
				g.learnNetwork(kv)
			}
			for _, n := range g.c.globalNetworks() {
				if seen[n.id] {
					continue
				}
				// The listing may predate a network this host made
				// since: forget only what the store confirms gone.
				if _, err := g.store.Get(g.ctx, gkindNetwork, n.id); types.IsNotFound(err) {
					g.forgetNetwork(n)
				}
			}
		case globalstore.EventPut:
			g.learnNetwork(ev.KV)
		case globalstore.EventDelete:
			c := g.c
			c.mu.Lock()
			n := c.networks[ev.KV.ID]
			c.mu.Unlock()
			if n != nil {
				g.forgetNetwork(n)
			}
		}
	}
}

// globalNetworks returns the registry's global networks.
func (c *controller) globalNetworks() []*network {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*network
	for _, n := range c.networks {
		if n.isGlobal() {
			out = append(out, n)
		}
	}
	return out
}

// learnNetwork adds a global network another host created.
func (g *globalCtl) learnNetwork(kv globalstore.KV) {
	c := g.c
	c.mu.Lock()
	known := c.networks[kv.ID]
	c.mu.Unlock()
	g.mu.Lock()
	mine := g.creating[kv.ID]
	g.mu.Unlock()
	if known != nil {
		// Seen again (a listing after a restarted watch may have been
		// older than the network): it is not gone.
		known.mu.Lock()
		known.goneGlobally = false
		known.mu.Unlock()
	}
	if known != nil || mine {
		return
	}
	var r networkRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil || r.ID != kv.ID || r.Scope != driverapi.GlobalScope {
		c.logger.Warn("ignoring an unreadable global network record", "id", kv.ID, "error", err)
		return
	}
	if err := c.begin(); err != nil {
		return
	}
	defer c.end()
	if err := c.addGlobalNetwork(&r); err != nil {
		c.logger.Warn("adding a network of the global store", "network", r.Name, "id", r.ID, "error", err)
		return
	}
	c.logger.Info("added a network of the global store", "network", r.Name, "id", r.ID)
	g.programPeers(r.ID)
	c.namesChanged()
}

// addGlobalNetwork makes the network of a global record here: the
// driver's part, the local copy of the record, the registry.
func (c *controller) addGlobalNetwork(r *networkRecord) error {
	drv, err := c.networkDriver(r.Type)
	if err != nil {
		return err
	}
	n := &network{
		ctrl: c, id: r.ID, name: r.Name, networkType: r.Type, driver: drv, scope: driverapi.GlobalScope,
		attach: capabilityOf(drv).Attachment, ipamType: r.IpamType, addrSpace: r.AddrSpace,
		ipamOptions: r.IpamOptions, ipamV4Config: r.IpamV4Config, ipamV6Config: r.IpamV6Config,
		ipamV4Info: r.IpamV4Info, ipamV6Info: r.IpamV6Info, ipamKeepsState: true,
		enableIPv6: r.EnableIPv6, internal: r.Internal, postIPv6: r.PostIPv6, persist: true,
		labels: r.Labels, generic: r.Generic, ipam: c.global.ipam,
		endpoints: map[string]*endpoint{}, epNames: map[string]bool{},
	}
	c.mu.Lock()
	if c.networks[n.id] != nil {
		c.mu.Unlock()
		return nil
	}
	if c.netNames[n.name] {
		c.mu.Unlock()
		return types.ForbiddenErrorf("a local network has the name %s", n.name)
	}
	c.netNames[n.name] = true
	c.mu.Unlock()
	fail := func(err error) error {
		c.mu.Lock()
		delete(c.netNames, n.name)
		c.mu.Unlock()
		return err
	}
	if err := drv.CreateNetwork(n.id, n.driverOptions(), ipamData(n.ipamV4Info), ipamData(n.ipamV6Info)); err != nil {
		return fail(types.Errorf("driver %s: %w", n.networkType, err))
	}
	if err := c.store.Update(func(tx *datastore.Tx) error { return tx.Put(kindNetwork, n.id, n.record()) }); err != nil {
		_ = drv.DeleteNetwork(n.id)
		return fail(types.Errorf("storing: %w", err))
	}
	c.mu.Lock()
	c.networks[n.id] = n
	c.subnets.add(n)
	c.mu.Unlock()
	return nil
}

// forgetNetwork removes a global network another host deleted, unless
// endpoints of this host are still on it.
func (g *globalCtl) forgetNetwork(n *network) {
	c := g.c
	if !n.isGlobal() {
		return
	}
	if err := c.begin(); err != nil {
		return
	}
	defer c.end()
	id := n.id
	n.mu.Lock()
	deleting := n.deleting // this host's own Delete, or a forget under way
	busy := len(n.endpoints) > 0 || len(n.epNames) > 0
	if !deleting {
		n.goneGlobally = busy
		// No endpoint is created from here on (CreateEndpoint checks
		// deleting), and no second forget starts.
		n.deleting = !busy
	}
	n.mu.Unlock()
	if deleting {
		return
	}
	if busy {
		c.logger.Warn("a network deleted from the global store still has endpoints here; keeping it until they are deleted", "network", n.name, "id", id)
		return
	}
	c.mu.Lock()
	if c.networks[id] != n {
		c.mu.Unlock()
		return
	}
	delete(c.networks, id)
	c.subnets.remove(n)
	delete(c.netNames, n.name)
	c.mu.Unlock()
	if err := c.store.Update(func(tx *datastore.Tx) error { return tx.Delete(kindNetwork, n.id) }); err != nil {
		c.logger.Warn("removing the local copy of a deleted global network", "network", n.name, "error", err)
	}
	if err := n.driver.DeleteNetwork(n.id); err != nil {
		c.logger.Warn("removing a network deleted from the global store", "network", n.name, "error", err)
	}
	g.mu.Lock()
	delete(g.peers, id)
	g.mu.Unlock()
	c.namesChanged()
	c.logger.Info("removed a network deleted from the global store", "network", n.name, "id", id)
}

// watchEndpoints follows the joined endpoints of every host.
func (g *globalCtl) watchEndpoints() {
	defer g.wg.Done()
	for ev := range g.store.Watch(g.ctx, gkindEndpoint) {
		switch ev.Type {
		case globalstore.EventReset:
			g.resync(ev.All)
		case globalstore.EventPut:
			g.peerPut(ev.KV)
		case globalstore.EventDelete:
			g.peerDelete(ev.KV.ID)
		}
	}
}

// resync replaces the peers with a full listing, and puts back this
// host's joined endpoints that the listing lacks or has wrong (after a
// lease expired while etcd was away, or a restart).
func (g *globalCtl) resync(all []globalstore.KV) {
	g.c.logger.Debug("global endpoints listed", "count", len(all))
	seen := map[string]bool{}
	mine := map[string]bool{}
	for _, kv := range all {
		var ge globalEndpoint
		if json.Unmarshal(kv.Value, &ge) != nil {
			continue
		}
		if ge.Host == g.c.id {
			mine[kv.ID] = true
			continue
		}
		seen[kv.ID] = true
		g.peerPut(kv)
	}
	g.mu.Lock()
	var gone []string
	for _, eps := range g.peers {
		for id := range eps {
			if !seen[id] {
				gone = append(gone, id)
			}
		}
	}
	g.mu.Unlock()
	for _, id := range gone {
		g.peerDelete(id)
	}
	g.dropStalePeers()
	g.republish(all, mine)
}

// dropStalePeers removes from the kernel the peers of this host's overlay
// networks that the global store no longer has: those an earlier run
// programmed for endpoints that left while this controller was down.
func (g *globalCtl) dropStalePeers() {
	g.progMu.Lock()
	defer g.progMu.Unlock()
	for _, n := range g.c.globalNetworks() {
		d, ok := n.driver.(*overlay.Driver)
		if !ok {
			continue
		}
		programmed, err := d.Peers(n.id)
		if err != nil {
			g.c.logger.Warn("reading the programmed peers", "network", n.name, "error", err)
			continue
		}
		want := map[string]bool{}
		for _, ge := range g.c.remoteEndpoints(n.id) {
			want[strings.ToLower(ge.MAC)] = true
		}
		for _, p := range programmed {
			if want[strings.ToLower(p.MAC.String())] {
				continue
			}
			if err := d.DeletePeer(n.id, p); err != nil {
				g.c.logger.Warn("removing a stale peer", "network", n.name, "peer", p, "error", err)
				continue
			} else {
				g.c.logger.Info("removed a stale peer", "network", n.name, "peer", p)
			}
		}
	}
}

// republish puts back this host's joined endpoints of global networks
// (claiming their addresses again) and removes records of this host's
// that name no endpoint here any more.
func (g *globalCtl) republish(all []globalstore.KV, mine map[string]bool) {
	c := g.c
	local := map[string]bool{}
	for _, n := range c.globalNetworks() {
		for _, ep := range n.allEndpoints() {
			local[ep.id] = true
			if err := g.reclaim(ep); err != nil {
				c.logger.Warn("putting an endpoint back in the global store", "endpoint", ep.name, "error", err)
			}
		}
	}
	for id := range mine {
		if !local[id] {
			if _, err := g.store.Txn(g.ctx, globalstore.Delete(gkindEndpoint, id, 0)); err != nil {
				c.logger.Warn("removing a stale endpoint of this host from the global store", "endpoint", id, "error", err)
			}
		}
	}
}

// reclaim takes the endpoint's name and addresses again (this host's,
// bound to its current lease) and publishes it if it is joined.
func (g *globalCtl) reclaim(ep *endpoint) error {
	n := ep.network
	if err := g.claimEndpointName(ep); err != nil {
		return err
	}
	opts := map[string]string{globalipam.OwnerOption: g.c.id}
	for _, a := range []struct {
		pool string
		addr *net.IPNet
	}{{ep.iface.poolID, ep.iface.addr}, {ep.iface.poolIDv6, ep.iface.addrv6}} {
		if a.addr == nil || a.pool == "" {
			continue
		}
		if _, _, err := n.ipam.RequestAddress(a.pool, a.addr.IP, opts); err != nil {
			return types.Errorf("address %s: %w", a.addr, err)
		}
	}
	ep.mu.Lock()
	joined := ep.sandboxID != ""
	ep.mu.Unlock()
	if !joined {
		return nil
	}
	return g.publish(ep)
}

// peerPut records a remote endpoint and programs it.
func (g *globalCtl) peerPut(kv globalstore.KV) {
	var ge globalEndpoint
	if err := json.Unmarshal(kv.Value, &ge); err != nil {
		g.c.logger.Warn("ignoring an unreadable global endpoint record", "id", kv.ID, "error", err)
		return
	}
	if ge.Host == g.c.id {
		return
	}
	g.progMu.Lock()
	defer g.progMu.Unlock()
	g.mu.Lock()
	eps := g.peers[ge.Network]
	if eps == nil {
		eps = map[string]*globalEndpoint{}
		g.peers[ge.Network] = eps
	}
	old := eps[kv.ID]
	eps[kv.ID] = &ge
	g.mu.Unlock()
	if old != nil && (old.VTEP != ge.VTEP || old.MAC != ge.MAC || old.Addr != ge.Addr) {
		g.program(kv.ID, old, false)
	}
	g.program(kv.ID, &ge, true)
	g.c.namesChanged()
}

// peerDelete forgets a remote endpoint and unprograms it.
func (g *globalCtl) peerDelete(id string) {
	g.progMu.Lock()
	defer g.progMu.Unlock()
	g.mu.Lock()
	var old *globalEndpoint
	for _, eps := range g.peers {
		if ge, ok := eps[id]; ok {
			old = ge
			delete(eps, id)
		}
	}
	g.mu.Unlock()
	if old != nil {
		g.program(id, old, false)
		g.c.namesChanged()
	}
}

// programPeers programs the known remote endpoints of a network just
// added here.
func (g *globalCtl) programPeers(nid string) {
	g.progMu.Lock()
	defer g.progMu.Unlock()
	g.mu.Lock()
	eps := maps.Clone(g.peers[nid])
	g.mu.Unlock()
	for id, ge := range eps {
		g.program(id, ge, true)
	}
}

// program adds (or removes) a remote endpoint as a peer of the overlay
// driver, if its network is here.
func (g *globalCtl) program(id string, ge *globalEndpoint, add bool) {
	c := g.c
	c.mu.Lock()
	n := c.networks[ge.Network]
	c.mu.Unlock()
	if n == nil {
		return
	}
	d, ok := n.driver.(*overlay.Driver)
	if !ok {
		return
	}
	p, err := ge.peer(id)
	if err != nil {
		c.logger.Warn("ignoring a global endpoint record", "endpoint", id, "error", err)
		return
	}
	c.logger.Debug("programming a peer", "network", n.name, "endpoint", ge.Name, "host", ge.VTEP, "add", add)
	if add {
		err = d.AddPeer(n.id, p)
	} else {
		err = d.DeletePeer(n.id, p)
	}
	if err != nil {
		c.logger.Warn("programming a peer", "network", n.name, "endpoint", ge.Name, "host", ge.Host, "add", add, "error", err)
	}
}

// peer converts the record for the overlay driver.
func (ge *globalEndpoint) peer(id string) (overlay.Peer, error) {
	mac, err := net.ParseMAC(ge.MAC)
	if err != nil {
		return overlay.Peer{}, err
	}
	p := overlay.Peer{EndpointID: id, MAC: mac, VTEP: net.ParseIP(ge.VTEP)}
	if p.VTEP == nil {
		return overlay.Peer{}, types.BadRequestErrorf("VTEP %q is not an address", ge.VTEP)
	}
	if ge.Addr != "" {
		if p.IP, _, err = net.ParseCIDR(ge.Addr); err != nil {
			return overlay.Peer{}, err
		}
	}
	if ge.AddrV6 != "" {
		ip6, _, err := net.ParseCIDR(ge.AddrV6)
		if err != nil {
			return overlay.Peer{}, err
		}
		if p.IP == nil {
			p.IP = ip6
		} else {
			p.IPv6 = ip6
		}
	}
	return p, nil
}

// remoteEndpoints returns the remote joined endpoints of network nid, for
// the names the sandboxes resolve.
func (c *controller) remoteEndpoints(nid string) []*globalEndpoint {
	g := c.global
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	eps := g.peers[nid]
	if len(eps) == 0 {
		return nil // a local network's name table pays nothing
	}
	out := make([]*globalEndpoint, 0, len(eps))
	for _, ge := range eps {
		out = append(out, ge)
	}
	slices.SortFunc(out, func(a, b *globalEndpoint) int { return strings.Compare(a.Name, b.Name) })
	return out
}
