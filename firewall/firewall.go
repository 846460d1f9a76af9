// Package firewall programs the library's nftables table, `inet libnetwork`,
// over netlink with github.com/google/nftables: isolation between networks,
// inter-container traffic on a bridge, internal networks, masquerade and
// published ports.
//
// The package only ever touches its own table and never changes a global
// policy. Every public operation is one atomic netlink batch. The forward
// chain is fixed: every per-network fact it needs is an element of a set or
// map its rules look up (the bridge in bridges, its ICC verdict in icc,
// internal bridges in internal), so adding or deleting a network adds or
// deletes elements and never rewrites a rule. Masquerade is likewise a
// pair of hash sets per prefix length in use, with one postrouting rule
// each (see masq.go): the subnets of that length, and each subnet
// concatenated with its own bridge, so that a packet from the subnet is
// masqueraded unless it leaves through that bridge. The rule and sets of a
// length come with its first subnet and go with its last. (The earlier
// layout, one nat-<bridge> chain per network reached through an interval
// verdict map, made the kernel check every jump on every change: 2.4 ms a
// network at 4,000 networks. Hash elements without verdicts cost the same
// at any size; a concatenated interval set would cost about 23 µs per
// existing element.) Restoring many networks is one batch (Reconcile).
//
// The table looks like this (abridged):
//
//	table inet libnetwork {
//		set bridges  { type ifname }                    # every bridge of ours
//		map icc      { type ifname . ifname : verdict } # br . br -> accept or drop
//		set internal { type ifname }                    # internal networks' bridges
//		set subnets4_24 { type ipv4_addr }                # per prefix length in use
//		set masq4_24    { type ipv4_addr . ifname }       # subnet . its own bridge
//		set subnets6_64 { type ipv6_addr }
//		set masq6_64    { type ipv6_addr . ifname }
//		set forward_drop { type nf_proto }            # families whose forwarding we turned on
//		set routed4 { type ifname }                     # bridges routed (not NATed) for IPv4
//		set routed6 { type ifname }
//		set open4 { type ipv4_addr . inet_proto . inet_service } # ports opened on routed networks
//		set open6 { type ipv6_addr . inet_proto . inet_service }
//		chain forward {
//			type filter hook forward priority filter; policy accept;
//			ct state established,related accept
//			iifname . oifname vmap @icc
//			iifname @internal drop
//			oifname @internal drop
//			iifname @bridges oifname @bridges drop   # isolation between networks
//			iifname @bridges accept
//			ct status dnat oifname @bridges accept    # published through NAT
//			... @open4 accept, @open6 accept          # ports opened on routed networks
//			... oifname @routed4 drop, @routed6 drop  # the rest into routed networks (routed.go)
//			meta nfproto @forward_drop oifname != @bridges drop
//		}
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			ip saddr & 255.255.255.0 == @subnets4_24 ip saddr & 255.255.255.0 . oifname != @masq4_24 masquerade
//			ip6 saddr & ffff:ffff:ffff:ffff:: == @subnets6_64 ip6 saddr & ffff:ffff:ffff:ffff:: . oifname != @masq6_64 masquerade
//		}
//		chain prerouting  { type nat hook prerouting priority dstnat; policy accept; ... }
//		chain output      { type nat hook output priority dstnat; policy accept; ... }
//	}
//
// prerouting and output publish ports: four maps from a host address,
// protocol and port to a container's address and port, looked up by a
// fixed set of rules, so publishing a port adds a map element (AddPorts,
// see ports.go).
//
// The forward chain ends with a drop of the packets that neither enter nor
// leave one of our bridges, for the families in forward_drop
// (SetForwardDrop): the bridge driver puts a family there when it turns IP
// forwarding on itself, so that a host that did not route before does not
// start routing between its other interfaces. The set is also the record
// of that fact for a later process, which finds forwarding on.
package firewall

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/types"
)

// TableName is the name of the library's nftables table (family inet).
const TableName = "libnetwork"

// Names of the base chains and sets of the table.
const (
	chainForward     = "forward"
	chainPostrouting = "postrouting"
	chainPrerouting  = "prerouting"
	chainOutput      = "output"

	setBridges  = "bridges"
	mapICC      = "icc"
	setInternal = "internal"
)

// Firewall programs the library's nftables table in one network namespace.
// Its methods are safe for concurrent use; they are serialised because each
// one builds and sends one batch on a shared netlink connection.
type Firewall struct {
	logger *slog.Logger

	// Immutable after New.
	table       *nftables.Table
	forward     *nftables.Chain
	postrouting *nftables.Chain
	prerouting  *nftables.Chain
	output      *nftables.Chain
	bridges     *nftables.Set
	icc         *nftables.Set
	internal    *nftables.Set
	forwardDrop *nftables.Set
	ports4      *nftables.Set
	ports4Any   *nftables.Set
	ports6      *nftables.Set
	ports6Any   *nftables.Set
	routed4     *nftables.Set
	routed6     *nftables.Set
	open4       *nftables.Set
	open6       *nftables.Set

	mu sync.Mutex
	// conn carries one batch at a time; mu must be held from the first
	// queued message to Flush.
	conn *nftables.Conn
	// networks holds what is installed in the kernel for each bridge of
	// ours: exactly the bridges in the table, with what DeleteNetwork must
	// remove but cannot derive from the bridge name alone.
	networks map[string]installed
	// masqCount is the number of masqueraded subnets installed per prefix
	// length: exactly the lengths whose sets and rule are in the table.
	masqCount map[masqLen]int
	// ports holds the published ports: exactly the elements of the port
	// maps.
	ports map[portKey]PortRule
	// inherited are the keys of ports learned from an earlier run's table
	// (Init) that no AddPorts or ReconcilePorts has claimed since.
	inherited map[portKey]bool
	// open holds the open ports of routed networks: exactly the elements
	// of open4 and open6.
	open map[OpenPort]bool
	// dropFamilies are the families in the forward_drop set.
	dropFamilies map[Family]bool
	// initialized is set by Init; closed by Close.
	initialized, closed bool
}

// installed is what the kernel holds for one network besides its bridges
// element: its icc verdict, whether it is in internal, and its
// masqueraded subnets, each an element of the sets of its prefix length.
type installed struct {
	icc, internal    bool
	routed4, routed6 bool
	masq             []netip.Prefix
}

// New returns a Firewall for the network namespace nsFd refers to, or for
// the caller's namespace if nsFd is -1. The netlink socket is opened in the
// namespace at once, so the caller may close nsFd when New returns. logger
// may be nil. Call Init before anything else.
func New(nsFd int, logger *slog.Logger) (*Firewall, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(setReceiveBuffer)}
	if nsFd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(nsFd))
	} else if nsFd != -1 {
		return nil, types.InvalidParameterErrorf("firewall: invalid netns fd %d (want -1 or an open fd)", nsFd)
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, types.InternalErrorf("firewall: opening an nftables netlink socket (netns fd %d): %w", nsFd, err)
	}

	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	accept := nftables.ChainPolicyAccept
	baseChain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: table, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept}
	}
	// Set IDs only need to be unique within a batch; fixing them here keeps
	// google/nftables from allocating them from its package-level counter.
	f := &Firewall{
		logger:      logger,
		table:       table,
		forward:     baseChain(chainForward, nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter),
		postrouting: baseChain(chainPostrouting, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource),
		prerouting:  baseChain(chainPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest),
		output:      baseChain(chainOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest),
		bridges:     &nftables.Set{Table: table, ID: 1, Name: setBridges, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian},
		icc: &nftables.Set{Table: table, ID: 2, Name: mapICC, KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIFName),
			KeyByteOrder: binaryutil.NativeEndian, Concatenation: true, IsMap: true, DataType: nftables.TypeVerdict},
		internal:     &nftables.Set{Table: table, ID: 3, Name: setInternal, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian},
		forwardDrop:  &nftables.Set{Table: table, ID: 6, Name: setForwardDrop, KeyType: nftables.TypeNFProto},
		conn:         conn,
		networks:     map[string]installed{},
		masqCount:    map[masqLen]int{},
		dropFamilies: map[Family]bool{},
		ports:        map[portKey]PortRule{},
		open:         map[OpenPort]bool{},
	}
	f.ports4, f.ports4Any, f.ports6, f.ports6Any = newPortMaps(table)
	f.routed4, f.routed6, f.open4, f.open6 = newRoutedSets(table)
	return f, nil
}

// receiveBuffer is the netlink receive buffer size. The kernel answers a
// whole batch at once (an ack per message, and an echo per new rule), so a
// Reconcile of many networks overflows the default buffer.
const receiveBuffer = 32 << 20

// sendBuffer is the netlink send buffer size. A batch goes out in one
// sendmsg, which the kernel refuses when it is larger than the buffer: a
// Reconcile of 4,000 networks is about 1 MiB of elements, past the default
// net.core.wmem_default.
const sendBuffer = 32 << 20

// setReceiveBuffer raises the receive and send buffers of the netlink
// socket past net.core.rmem_max and wmem_max: programming nftables needs
// CAP_NET_ADMIN, which is also what SO_RCVBUFFORCE and SO_SNDBUFFORCE
// need. The memory is only used while a batch or its acks wait.
func setReceiveBuffer(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("raising the netlink buffers: %w", err)
	}
	var rerr, serr error
	if err := raw.Control(func(fd uintptr) {
		rerr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer)
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sendBuffer)
	}); err != nil {
		return fmt.Errorf("raising the netlink buffers: %w", err)
	}
	// Without the capability, take what rmem_max and wmem_max allow.
	if rerr != nil {
		if err := c.SetReadBuffer(receiveBuffer); err != nil {
			return err
		}
	}
	if serr != nil {
		return c.SetWriteBuffer(sendBuffer)
	}
	return nil
}

// Close releases the netlink socket. It leaves the table in place: rules
// outlive the process so that containers keep their connectivity across a
// restart.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	if err := f.conn.CloseLasting(); err != nil {
		return types.InternalErrorf("firewall: closing the nftables netlink socket: %w", err)
	}
	return nil
}

// checkOpenLocked returns an error if Close was called. f.mu must be held.
func (f *Firewall) checkOpenLocked(op string) error {
	if f.closed {
		return types.ForbiddenErrorf("firewall: %s: firewall is closed", op)
	}
	return nil
}

// checkReadyLocked returns an error unless Init succeeded and Close was not
// called. f.mu must be held.
func (f *Firewall) checkReadyLocked(op string) error {
	if err := f.checkOpenLocked(op); err != nil {
		return err
	}
	if !f.initialized {
		return types.ForbiddenErrorf("firewall: %s: Init has not been called", op)
	}
	return nil
}

// flushLocked sends the queued batch. f.mu must be held.
func (f *Firewall) flushLocked(what string) error {
	if err := f.conn.Flush(); err != nil {
		return types.InternalErrorf("firewall: %s: nftables batch rejected: %w", what, err)
	}
	return nil
}

// queueError wraps an error from queuing a message (which only fails on a
// malformed element) so that it reads like the others.
func queueError(what string, err error) error {
	return types.InternalErrorf("firewall: %s: building the nftables batch: %w", what, err)
}
