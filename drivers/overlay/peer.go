package overlay

import (
	"bytes"
	"fmt"
	"net"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// Peer is an endpoint of a network on another host, as the controller
// learns it from the global store.
type Peer struct {
	// EndpointID is the endpoint's ID. The kernel does not keep it:
	// Peers reports it only for peers added in this run.
	EndpointID string
	// IP is the endpoint's address: IPv4, or IPv6 for an endpoint without
	// IPv4. The subnet holding it selects the segment (VNI).
	IP net.IP
	// IPv6 is the IPv6 address of a dual-stack endpoint, or nil.
	IPv6 net.IP
	// MAC is the endpoint's MAC.
	MAC net.HardwareAddr
	// VTEP is the underlay address of the endpoint's host.
	VTEP net.IP
}

func (p Peer) String() string {
	s := p.IP.String()
	if p.IPv6 != nil {
		s += "," + p.IPv6.String()
	}
	s = fmt.Sprintf("%s %s at %s", s, p.MAC, p.VTEP)
	if p.EndpointID != "" {
		s = p.EndpointID + " (" + s + ")"
	}
	return s
}

// ips returns the peer's addresses.
func (p Peer) ips() []net.IP {
	if p.IPv6 != nil {
		return []net.IP{p.IP, p.IPv6}
	}
	return []net.IP{p.IP}
}

// peerKey names a programmed peer: its segment and MAC.
type peerKey struct {
	segment int
	mac     string
}

// AddPeer programs a remote endpoint of network nid: a permanent FDB
// entry sending its MAC to its VTEP and permanent neighbour entries of
// its addresses, on the VXLAN device of the segment of its address. It is
// idempotent, and an endpoint that moved is simply added again with its
// new VTEP (the entries are replaced). A peer on this host's own VTEP is
// ignored: local endpoints are on the bridge. A bad peer is a
// *PeerError; a peer half programmed when the kernel fails is taken back
// if it was new.
func (d *Driver) AddPeer(nid string, p Peer) error {
	n, err := d.network(nid)
	if err != nil {
		return fmt.Errorf("add peer %s: %w", p, err)
	}
	p, seg, err := d.checkPeer(n, p)
	if err != nil || p.VTEP.Equal(d.vtep) {
		return err
	}
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	key := peerKey{seg, p.MAC.String()}
	_, known := n.peers[key]
	vx := n.segments[seg].vxlanIndex
	err = n.withNS(func(ns *osl.Namespace) error {
		h := ns.Handle()
		var done []*netlink.Neigh
		var err error
		for _, e := range append([]*netlink.Neigh{fdbEntry(vx, p.MAC, p.VTEP)}, neighEntries(vx, p)...) {
			if err = h.NeighSet(e); err != nil {
				err = types.InternalErrorf("programming %s on VXLAN device %s: %w", describe(e), n.segments[seg].vxlan.name, err)
				break
			}
			done = append(done, e)
		}
		if err != nil && !known {
			for _, e := range done {
				if derr := h.NeighDel(e); derr != nil && !isNotExist(derr) {
					d.logger.Warn("taking back a half programmed peer", "network", nid, "entry", describe(e), "error", derr)
				}
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("add peer %s to overlay network %s: %w", p, nid, err)
	}
	n.peers[key] = p
	return nil
}

// DeletePeer removes what AddPeer programmed for p: the FDB entry of its
// MAC if it still sends to p's VTEP, and the neighbour entries of its
// addresses that still have its MAC. Entries a later AddPeer took over
// (the endpoint moved to another VTEP, an address now has another MAC)
// are left. It is idempotent; a peer on this host's own VTEP is ignored.
func (d *Driver) DeletePeer(nid string, p Peer) error {
	n, err := d.network(nid)
	if err != nil {
		return fmt.Errorf("delete peer %s: %w", p, err)
	}
	p, seg, err := d.checkPeer(n, p)
	if err != nil || p.VTEP.Equal(d.vtep) {
		return err
	}
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	key := peerKey{seg, p.MAC.String()}
	cur, known := n.peers[key]
	takenOver := known && (!cur.VTEP.Equal(p.VTEP) ||
		cur.EndpointID != "" && p.EndpointID != "" && cur.EndpointID != p.EndpointID)
	vx := n.segments[seg].vxlanIndex
	err = n.withNS(func(ns *osl.Namespace) error {
		h := ns.Handle()
		if !takenOver {
			// The kernel deletes the entry only if it sends to VTEP.
			if err := h.NeighDel(fdbEntry(vx, p.MAC, p.VTEP)); err != nil && !isNotExist(err) {
				return types.InternalErrorf("deleting the FDB entry of %s: %w", p.MAC, err)
			}
		}
		for _, ip := range p.ips() {
			if takenOver && (ip.Equal(cur.IP) || ip.Equal(cur.IPv6)) {
				continue
			}
			if known && (ip.Equal(cur.IP) || ip.Equal(cur.IPv6)) && !n.ipHeldByOther(seg, ip, key) {
				// Programmed in this run with this MAC, and no later
				// peer took the address: no need to read the table
				// (a dump costs O(peers)).
				e := neighEntry(vx, ip, p.MAC)
				if err := h.NeighDel(e); err != nil && !isNotExist(err) {
					return types.InternalErrorf("deleting %s: %w", describe(e), err)
				}
				continue
			}
			if err := deleteNeighOf(h, vx, ip, p.MAC); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete peer %s from overlay network %s: %w", p, nid, err)
	}
	if !takenOver {
		delete(n.peers, key)
	}
	return nil
}

// ipHeldByOther reports whether a peer other than key, programmed in this
// run on segment seg, has address ip. n.peerMu must be held.
func (n *network) ipHeldByOther(seg int, ip net.IP, key peerKey) bool {
	for k, p := range n.peers {
		if k != key && k.segment == seg && (ip.Equal(p.IP) || ip.Equal(p.IPv6)) {
			return true
		}
	}
	return false
}

// deleteNeighOf deletes the neighbour entry of ip on device vx if it has
// mac.
func deleteNeighOf(h *netlink.Handle, vx int, ip net.IP, mac net.HardwareAddr) error {
	e := neighEntry(vx, ip, mac)
	list, err := osl.Dump(func() ([]netlink.Neigh, error) { return h.NeighList(vx, e.Family) })
	if err != nil {
		return types.InternalErrorf("listing neighbour entries: %w", err)
	}
	for _, cur := range list {
		if !cur.IP.Equal(ip) {
			continue
		}
		if !bytes.Equal(cur.HardwareAddr, mac) {
			return nil
		}
		if err := h.NeighDel(e); err != nil && !isNotExist(err) {
			return types.InternalErrorf("deleting %s: %w", describe(e), err)
		}
		return nil
	}
	return nil
}

// Peers returns the peers programmed in network nid, read back from the
// kernel (so it includes those an earlier run programmed), sorted by
// address: one per MAC with an FDB entry or a neighbour entry on a
// segment's VXLAN device. A peer whose neighbour entries are missing has
// no IP, one whose FDB entry is missing no VTEP; EndpointID is known only
// for peers AddPeer programmed in this run.
func (d *Driver) Peers(nid string) ([]Peer, error) {
	n, err := d.network(nid)
	if err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	var peers []Peer
	err = n.withNS(func(ns *osl.Namespace) error {
		h := ns.Handle()
		for seg, s := range n.segments {
			got, err := readPeers(h, s.vxlanIndex)
			if err != nil {
				return types.InternalErrorf("reading the peers of VXLAN device %s: %w", s.vxlan.name, err)
			}
			for _, p := range got {
				if cur, ok := n.peers[peerKey{seg, p.MAC.String()}]; ok && cur.VTEP.Equal(p.VTEP) {
					p.EndpointID = cur.EndpointID
				}
				peers = append(peers, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("peers of overlay network %s: %w", nid, err)
	}
	sort.Slice(peers, func(i, j int) bool {
		if c := bytes.Compare(peers[i].IP.To16(), peers[j].IP.To16()); c != 0 {
			return c < 0
		}
		return bytes.Compare(peers[i].MAC, peers[j].MAC) < 0
	})
	return peers, nil
}

// readPeers reads the FDB and neighbour entries of VXLAN device vx.
func readPeers(h *netlink.Handle, vx int) ([]Peer, error) {
	byMAC := map[string]*Peer{}
	peer := func(mac net.HardwareAddr) *Peer {
		p := byMAC[mac.String()]
		if p == nil {
			p = &Peer{MAC: mac}
			byMAC[mac.String()] = p
		}
		return p
	}
	fdb, err := osl.Dump(func() ([]netlink.Neigh, error) { return h.NeighList(vx, unix.AF_BRIDGE) })
	if err != nil {
		return nil, err
	}
	for _, e := range fdb {
		if e.LinkIndex != vx || e.Flags&netlink.NTF_SELF == 0 || e.IP == nil || e.IP.IsUnspecified() || isZeroMAC(e.HardwareAddr) {
			continue
		}
		peer(e.HardwareAddr).VTEP = normalIP(e.IP)
	}
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		list, err := osl.Dump(func() ([]netlink.Neigh, error) { return h.NeighList(vx, family) })
		if err != nil {
			return nil, err
		}
		for _, e := range list {
			if e.LinkIndex != vx || e.State&netlink.NUD_PERMANENT == 0 || len(e.HardwareAddr) != 6 {
				continue
			}
			p := peer(e.HardwareAddr)
			if ip := normalIP(e.IP); ip.To4() != nil || p.IP == nil {
				if p.IP != nil && p.IP.To4() == nil {
					p.IPv6 = p.IP
				}
				p.IP = ip
			} else {
				p.IPv6 = ip
			}
		}
	}
	out := make([]Peer, 0, len(byMAC))
	for _, p := range byMAC {
		out = append(out, *p)
	}
	return out, nil
}

// checkPeer validates p for network n and returns it normalized (4-byte
// IPv4 addresses) with the index of its segment.
func (d *Driver) checkPeer(n *network, p Peer) (Peer, int, error) {
	bad := func(format string, a ...any) (Peer, int, error) {
		return p, -1, &PeerError{Network: n.id, Peer: p, Reason: fmt.Sprintf(format, a...)}
	}
	if len(p.MAC) != 6 || p.MAC[0]&1 != 0 || isZeroMAC(p.MAC) {
		return bad("MAC %q is not a unicast Ethernet address", p.MAC)
	}
	if p.VTEP == nil || p.VTEP.IsUnspecified() || p.VTEP.IsMulticast() {
		return bad("VTEP %v is not a unicast address", p.VTEP)
	}
	if (p.VTEP.To4() != nil) != (d.vtep.To4() != nil) {
		return bad("VTEP %s is not of the family of this host's VTEP %s", p.VTEP, d.vtep)
	}
	if p.IP == nil {
		return bad("no IP address")
	}
	p.IP, p.VTEP, p.IPv6 = normalIP(p.IP), normalIP(p.VTEP), normalIP(p.IPv6)
	p.MAC = types.GetMacCopy(p.MAC)
	seg := n.config.segmentOf(p.IP)
	if seg < 0 {
		return bad("address %s is in none of the network's subnets", p.IP)
	}
	if p.IPv6 != nil {
		if p.IP.To4() == nil || p.IPv6.To4() != nil {
			return bad("IPv6 holds the IPv6 address of a peer whose IP is IPv4")
		}
		if n.config.segmentOf(p.IPv6) != seg {
			return bad("IPv6 address %s is not on the segment of %s", p.IPv6, p.IP)
		}
	}
	return p, seg, nil
}

// neighEntries are the neighbour entries of p on device vx.
func neighEntries(vx int, p Peer) []*netlink.Neigh {
	var out []*netlink.Neigh
	for _, ip := range p.ips() {
		out = append(out, neighEntry(vx, ip, p.MAC))
	}
	return out
}

// describe names an FDB or neighbour entry in messages.
func describe(e *netlink.Neigh) string {
	if e.Family == unix.AF_BRIDGE {
		return fmt.Sprintf("FDB entry %s -> %s", e.HardwareAddr, e.IP)
	}
	return fmt.Sprintf("neighbour entry %s -> %s", e.IP, e.HardwareAddr)
}

// normalIP returns ip with IPv4 addresses in 4 bytes; nil stays nil.
func normalIP(ip net.IP) net.IP {
	if ip == nil {
		return nil
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4
	}
	return ip
}

func isZeroMAC(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}
