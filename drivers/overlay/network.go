package overlay

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// Steps of network creation, named for the test hook failPoint.
const (
	stepNamespace = "namespace"
	stepSysctls   = "sysctls"
	stepBridge    = "bridge"
	stepVXLAN     = "vxlan"
)

// network is one overlay network on this host. id, config, mtu and the
// segments' specs never change once it is in Driver.networks.
type network struct {
	id       string
	config   networkConfig
	mtu      int
	segments []*segment

	// mu keeps ns open while kernel work in it is under way: that work
	// holds mu for reading, DeleteNetwork and Close hold it to close ns.
	mu sync.RWMutex
	// ns is the network's namespace; nil once closed.
	ns *osl.Namespace

	// peerMu serializes AddPeer and DeletePeer on the network, kernel
	// calls included, so that the entries of one peer are programmed in
	// the order the controller asks. Taken before mu.
	peerMu sync.Mutex
	// peers are the peers AddPeer programmed in this run, by segment and
	// MAC; guarded by peerMu.
	peers map[peerKey]Peer

	// endpoints by ID; guarded by Driver.mu.
	endpoints map[string]*endpoint
}

// segment is one VNI of a network: a bridge and a VXLAN device on it.
type segment struct {
	segmentConfig
	bridge bridgeSpec
	vxlan  vxlanSpec
	// bridgeIndex and vxlanIndex are the devices' indexes in the
	// network's namespace, set while the network is set up.
	bridgeIndex int
	vxlanIndex  int
}

// hasIPv6 reports whether the segment carries IPv6 subnets.
func (s *segment) hasIPv6() bool {
	for _, p := range s.subnets {
		if p.Addr().Is6() {
			return true
		}
	}
	return false
}

// newNetwork returns the network nid of configuration c and its
// segments' specs.
func (d *Driver) newNetwork(nid string, c networkConfig, mtu int) *network {
	n := &network{id: nid, config: c, mtu: mtu, peers: map[peerKey]Peer{}, endpoints: map[string]*endpoint{}}
	for _, sc := range c.segments {
		n.segments = append(n.segments, &segment{
			segmentConfig: sc,
			bridge:        bridgeSpec{name: fmt.Sprintf("ov-%06x", sc.vni), mtu: mtu, mark: networkMark(nid)},
			vxlan: vxlanSpec{name: fmt.Sprintf("vx-%06x", sc.vni), vni: sc.vni, port: d.port, local: d.vtep,
				mtu: mtu, mark: networkMark(nid)},
		})
	}
	return n
}

// networkMark is the alias of the devices of network nid.
func networkMark(nid string) string { return Mark + nid }

// withNS runs fn with the network's namespace, kept open meanwhile.
func (n *network) withNS(fn func(ns *osl.Namespace) error) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.ns == nil {
		return types.NotFoundErrorf("overlay network %s is deleted", n.id)
	}
	return fn(n.ns)
}

// detach takes the namespace from n, so that no kernel work starts in it
// any more, and returns it (nil if it was taken already).
func (n *network) detach() *osl.Namespace {
	n.mu.Lock()
	defer n.mu.Unlock()
	ns := n.ns
	n.ns = nil
	return ns
}

// close releases the handle of the namespace and keeps the namespace.
func (n *network) close() {
	if ns := n.detach(); ns != nil {
		_ = ns.Close()
	}
}

// CreateNetwork creates the network's namespace, and in it a bridge and a
// VXLAN device per VNI of VXLANIDListOption. Bad options are refused with
// an *OptionError, a driver without a VTEP with ErrNoVTEP, a VNI another
// VXLAN device of this host uses on the same port with a ForbiddenError;
// a failure leaves nothing behind. A namespace left for nid by an earlier
// run is not adopted (RestoreNetwork does that) but refused.
func (d *Driver) CreateNetwork(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) error {
	if err := d.createNetwork(nid, opts, ipV4Data, ipV6Data, false); err != nil {
		return fmt.Errorf("create %w", err)
	}
	return nil
}

// RestoreNetwork is CreateNetwork for a network the store holds, at
// restart: it adopts the network's namespace and the devices in it that
// carry the network's mark and match its configuration, with the peers
// programmed in them, and recreates what is missing or different.
func (d *Driver) RestoreNetwork(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData) error {
	if err := d.createNetwork(nid, opts, ipV4Data, ipV6Data, true); err != nil {
		return fmt.Errorf("restore %w", err)
	}
	return nil
}

// createNetwork does the work of CreateNetwork and RestoreNetwork. Its
// errors start with "overlay network <nid>: ".
func (d *Driver) createNetwork(nid string, opts map[string]interface{}, ipV4Data, ipV6Data []driverapi.IPAMData, restore bool) (err error) {
	if err := checkNetworkID(nid); err != nil {
		return fmt.Errorf("overlay network %s: %w", nid, err)
	}
	if d.vtep == nil {
		return types.ForbiddenErrorf("overlay network %s: %w", nid, ErrNoVTEP)
	}
	// The parser's errors name the network.
	c, err := parseNetworkConfig(nid, opts, ipV4Data, ipV6Data)
	if err != nil {
		return err
	}
	mtu, err := d.networkMTU(nid, c.mtu)
	if err != nil {
		return err
	}
	n := d.newNetwork(nid, c, mtu)
	d.mu.Lock()
	_, exists := d.networks[nid]
	if !exists {
		// Claimed: a concurrent create of the same ID fails here.
		d.networks[nid] = nil
	}
	d.mu.Unlock()
	if exists {
		return types.ForbiddenErrorf("overlay network %s: it exists", nid)
	}
	defer func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if err != nil {
			delete(d.networks, nid)
			return
		}
		d.networks[nid] = n
	}()
	if restore {
		err = d.adoptNetwork(n)
	} else {
		err = d.setupNetwork(n)
	}
	if err != nil {
		return fmt.Errorf("overlay network %s: %w", nid, err)
	}
	return nil
}

// checkNetworkID refuses an ID that cannot name the namespace's file.
func checkNetworkID(nid string) error {
	if nid == "" || len(nid) > 128 || nid[0] == '.' {
		return types.BadRequestErrorf("network ID %q: want 1 to 128 letters, digits, '_', '-' or '.', not starting with '.'", nid)
	}
	for _, r := range nid {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return types.BadRequestErrorf("network ID %q: want 1 to 128 letters, digits, '_', '-' or '.', not starting with '.'", nid)
		}
	}
	return nil
}

// networkMTU returns the MTU of a network: the underlay's less the
// overhead, or want if it is set and not above that.
func (d *Driver) networkMTU(nid string, want int) (int, error) {
	under, name, err := d.underlayMTU()
	if err != nil {
		return 0, fmt.Errorf("overlay network %s: %w", nid, err)
	}
	max := under - overhead(d.vtep)
	if want == 0 {
		return max, nil
	}
	if want > max {
		return 0, &OptionError{Network: nid, Option: MTUOption, Value: fmt.Sprint(want),
			Reason: fmt.Sprintf("above %d, the MTU of the underlay interface %s (%d) less the VXLAN overhead (%d)", max, name, under, overhead(d.vtep))}
	}
	return want, nil
}

// underlayMTU returns the MTU and name of the interface holding the VTEP
// address in the controller's namespace.
func (d *Driver) underlayMTU() (int, string, error) {
	family := netlink.FAMILY_V4
	if d.vtep.To4() == nil {
		family = netlink.FAMILY_V6
	}
	addrs, err := osl.Dump(func() ([]netlink.Addr, error) { return d.host.AddrList(nil, family) })
	if err != nil {
		return 0, "", types.InternalErrorf("finding the underlay interface of VTEP %s: %w", d.vtep, err)
	}
	for _, a := range addrs {
		if a.IP.Equal(d.vtep) {
			l, err := d.host.LinkByIndex(a.LinkIndex)
			if err != nil {
				return 0, "", types.InternalErrorf("finding the underlay interface of VTEP %s: %w", d.vtep, err)
			}
			return l.Attrs().MTU, l.Attrs().Name, nil
		}
	}
	return 0, "", types.NotFoundErrorf("VTEP %s is not an address of any interface in the controller's namespace", d.vtep)
}

// nsPath is where network nid's namespace is mounted.
func (d *Driver) nsPath(nid string) string { return filepath.Join(d.nsDir, nid) }

// undoList collects the undo functions of the steps done so far.
type undoList []func() error

// run undoes the steps in reverse and returns the failures joined.
func (u undoList) run() error {
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// fail is the test hook after step.
func (d *Driver) fail(step string) error {
	if d.failPoint == nil {
		return nil
	}
	return d.failPoint(step)
}

// setupNetwork creates n's namespace and devices. On failure everything
// it did is undone.
func (d *Driver) setupNetwork(n *network) (err error) {
	var undo undoList
	defer func() {
		if err == nil {
			return
		}
		if uerr := undo.run(); uerr != nil {
			d.logger.Error("undoing a failed network creation left state behind", "network", n.id, "error", uerr)
			err = fmt.Errorf("%w (and undoing it failed: %v)", err, uerr)
		}
	}()
	path := d.nsPath(n.id)
	if _, err := os.Lstat(path); err == nil {
		return types.ForbiddenErrorf("its namespace %s exists, left by an earlier run (RestoreNetwork adopts it, CollectOrphans removes it)", path)
	}
	ns, err := osl.NewNamespace(path)
	if err != nil {
		return err
	}
	n.ns = ns
	undo = append(undo, func() error {
		n.ns = nil
		return ns.Destroy()
	})
	if err := d.fail(stepNamespace); err != nil {
		return err
	}
	if err := configureNamespace(ns); err != nil {
		return err
	}
	if err := d.fail(stepSysctls); err != nil {
		return err
	}
	for _, s := range n.segments {
		u, err := d.createSegment(ns, s)
		undo = append(undo, u...)
		if err != nil {
			return err
		}
	}
	return nil
}

// createSegment creates s's bridge and VXLAN device in ns and returns
// what undoes it: the VXLAN device is deleted at once, since its VNI
// stays taken until it is gone and the namespace goes asynchronously;
// the bridge goes with the namespace.
func (d *Driver) createSegment(ns *osl.Namespace, s *segment) (undoList, error) {
	if err := d.createBridge(ns, s); err != nil {
		return nil, err
	}
	if err := d.fail(stepBridge); err != nil {
		return nil, err
	}
	return d.createVXLAN(ns, s)
}

// createBridge creates s's bridge in ns, marked and up.
func (d *Driver) createBridge(ns *osl.Namespace, s *segment) error {
	h := ns.Handle()
	if s.bridge.mac == nil {
		s.bridge.mac = randomMAC()
	}
	if err := h.LinkAdd(s.bridge.link()); err != nil {
		return types.InternalErrorf("creating bridge %s: %w", s.bridge.name, err)
	}
	l, err := h.LinkByName(s.bridge.name)
	if err == nil {
		s.bridgeIndex = l.Attrs().Index
		err = setAlias(h, l, s.bridge.mark)
	}
	if err == nil {
		err = h.LinkSetUp(l)
	}
	if err != nil {
		return types.InternalErrorf("setting bridge %s up: %w", s.bridge.name, err)
	}
	return nil
}

// createVXLAN creates s's VXLAN device, born in ns from the controller's
// namespace, marked, on s's bridge and up, and returns what deletes it.
func (d *Driver) createVXLAN(ns *osl.Namespace, s *segment) (undoList, error) {
	var undo undoList
	h := ns.Handle()
	spec := s.vxlan
	spec.nsFd = ns.Fd()
	if err := d.host.LinkAdd(spec.link()); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return undo, types.ForbiddenErrorf("creating VXLAN device %s: VNI %d is in use by another VXLAN device of this host on UDP port %d: %w", spec.name, spec.vni, spec.port, err)
		}
		return undo, types.InternalErrorf("creating VXLAN device %s (VNI %d, local %s, port %d): %w", spec.name, spec.vni, spec.local, spec.port, err)
	}
	vx, err := h.LinkByName(spec.name)
	if err != nil {
		return undo, types.InternalErrorf("finding VXLAN device %s: %w", spec.name, err)
	}
	undo = append(undo, func() error { return deleteLink(h, vx) })
	s.vxlanIndex = vx.Attrs().Index
	if err := d.fail(stepVXLAN); err != nil {
		return undo, err
	}
	if err := setAlias(h, vx, spec.mark); err != nil {
		return undo, types.InternalErrorf("marking VXLAN device %s: %w", spec.name, err)
	}
	if s.hasIPv6() {
		if err := enableIPv6(ns, vx); err != nil {
			return undo, err
		}
	}
	if err := h.LinkSetMasterByIndex(vx, s.bridgeIndex); err != nil {
		return undo, types.InternalErrorf("putting VXLAN device %s on bridge %s: %w", spec.name, s.bridge.name, err)
	}
	if err := h.LinkSetUp(vx); err != nil {
		return undo, types.InternalErrorf("setting VXLAN device %s up: %w", spec.name, err)
	}
	return undo, nil
}

// enableIPv6 turns IPv6 on for VXLAN device vx, which the namespace's
// default turned off: the kernel keeps no IPv6 neighbour entries on a
// device without IPv6, and the device answers neighbour solicitations
// from them. It gets no address (no link-local, no DAD).
func enableIPv6(ns *osl.Namespace, vx netlink.Link) error {
	const in6AddrGenModeNone = 1
	name := vx.Attrs().Name
	if err := ns.Handle().LinkSetIP6AddrGenMode(vx, in6AddrGenModeNone); err != nil {
		return types.InternalErrorf("turning off IPv6 addresses on VXLAN device %s: %w", name, err)
	}
	if err := ns.SetSysctl("net.ipv6.conf."+name+".disable_ipv6", "0"); err != nil {
		return fmt.Errorf("turning IPv6 on for VXLAN device %s: %w", name, err)
	}
	return nil
}

// setAlias sets l's alias unless it has it: the kernel does not take an
// alias in the request that creates a link.
func setAlias(h *netlink.Handle, l netlink.Link, alias string) error {
	if l.Attrs().Alias == alias {
		return nil
	}
	return h.LinkSetAlias(l, alias)
}

// deleteLink deletes l; a link that is gone is not an error.
func deleteLink(h *netlink.Handle, l netlink.Link) error {
	err := h.LinkDel(l)
	if err != nil && !isNotExist(err) {
		return fmt.Errorf("deleting %s: %w", l.Attrs().Name, err)
	}
	return nil
}

func isNotExist(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}

// randomMAC returns a random locally administered unicast MAC.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

// namespaceSysctls are written in every network's namespace: bridged
// frames skip netfilter (nothing filters in there; the keys exist only
// with br_netfilter loaded), and new interfaces get no IPv6 (the bridge
// and the ports need no addresses; the VXLAN device answers neighbour
// solicitations for remote endpoints without it).
var namespaceSysctls = []struct{ path, value string }{
	{"/proc/sys/net/bridge/bridge-nf-call-iptables", "0"},
	{"/proc/sys/net/bridge/bridge-nf-call-ip6tables", "0"},
	{"/proc/sys/net/bridge/bridge-nf-call-arptables", "0"},
	{"/proc/sys/net/ipv6/conf/default/disable_ipv6", "1"},
}

// configureNamespace writes namespaceSysctls in ns, in one switch of a
// thread into it; keys the kernel lacks are skipped.
func configureNamespace(ns *osl.Namespace) error {
	err := ns.Do(func() error {
		for _, s := range namespaceSysctls {
			err := os.WriteFile(s.path, []byte(s.value), 0)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("writing %s: %w", s.path, err)
			}
		}
		return nil
	})
	if err != nil {
		return types.InternalErrorf("configuring %s: %w", ns, err)
	}
	return nil
}

// DeleteNetwork deletes the network's VXLAN devices, which frees their
// VNIs at once, and destroys its namespace, which takes the bridges and
// the veths of endpoints still joined with it.
func (d *Driver) DeleteNetwork(nid string) error {
	d.mu.Lock()
	n := d.networks[nid]
	if n != nil {
		delete(d.networks, nid)
	}
	d.mu.Unlock()
	if n == nil {
		return types.NotFoundErrorf("delete overlay network %s: no such network", nid)
	}
	d.sweeper.forget(n)
	ns := n.detach()
	if ns == nil {
		return nil
	}
	var vxlans []int
	for _, s := range n.segments {
		vxlans = append(vxlans, s.vxlanIndex)
	}
	var errs []error
	if err := ns.DeleteLinks(vxlans); err != nil {
		errs = append(errs, fmt.Errorf("deleting its VXLAN devices: %w", err))
	}
	if err := ns.Destroy(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return types.InternalErrorf("delete overlay network %s: %w", nid, errors.Join(errs...))
	}
	return nil
}

// network returns network nid, or a NotFoundError.
func (d *Driver) network(nid string) (*network, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.networkLocked(nid)
}

// networkLocked is network with d.mu held.
func (d *Driver) networkLocked(nid string) (*network, error) {
	n := d.networks[nid]
	if n == nil {
		return nil, types.NotFoundErrorf("overlay network %s not found", nid)
	}
	return n, nil
}
