package bridge

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// vethSpec is a veth pair to create: the host side in the controller's
// namespace, up and on a bridge; the peer directly in a sandbox.
type vethSpec struct {
	name   string
	mtu    int
	master int // ifindex of the bridge
	// mac is the host side's address: the bridge's own. The bridge keeps
	// a static local fdb entry for each distinct port address, and adding
	// a port walks all of them (br_fdb_unsync_static); ports that share
	// the bridge's address add none, so a join does not cost O(ports)
	// there. The host side never sends anything, so its address is never
	// seen.
	mac      net.HardwareAddr
	peerName string
	peerMAC  net.HardwareAddr
	peerNS   int // fd of the sandbox's namespace
	// isolated makes the host side an isolated bridge port (ICC off):
	// isolated ports reach the bridge but not each other, in the bridge
	// itself, so ICC off holds whether or not br_netfilter hands bridged
	// frames to the firewall.
	isolated bool
}

// createVeth creates the pair and returns the host side's ifindex.
//
// A single RTM_NEWLINK with NLM_F_ECHO would save two round trips, but when
// the controller's namespace is not the calling thread's the kernel sends
// the echo only to sockets of the link's namespace, so the handle's LinkAdd
// (create, look up the index, enslave) is used.
func (d *Driver) createVeth(s vethSpec) (int, error) {
	if d.newVeth != nil {
		return d.createVethAtOnce(s)
	}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name:         s.name,
			HardwareAddr: s.mac,
			MTU:          s.mtu,
			MasterIndex:  s.master,
			TxQLen:       -1,
		},
		PeerName:         s.peerName,
		PeerHardwareAddr: s.peerMAC,
		PeerNamespace:    netlink.NsFd(s.peerNS),
		PeerMTU:          uint32(s.mtu),
		PeerTxQLen:       -1,
	}
	if err := d.host.LinkAdd(veth); err != nil {
		if veth.Index != 0 {
			// Created, but enslaving failed: do not leave it.
			d.deleteVeth(veth.Name, veth.Index)
		}
		return 0, err
	}
	if veth.Index == 0 {
		return 0, fmt.Errorf("veth %s created but has no index", veth.Name)
	}
	if err := d.noIPv6(veth); err != nil {
		d.deleteVeth(veth.Name, veth.Index)
		return 0, err
	}
	if s.isolated {
		if err := d.host.LinkSetIsolated(veth, true); err != nil {
			d.deleteVeth(veth.Name, veth.Index)
			return 0, fmt.Errorf("isolating bridge port %s (ICC off): %w", veth.Name, err)
		}
	}
	if err := d.host.LinkSetUp(veth); err != nil {
		d.deleteVeth(veth.Name, veth.Index)
		return 0, fmt.Errorf("bringing %s up: %w", veth.Name, err)
	}
	return veth.Index, nil
}

// noIPv6 keeps IPv6 off the host side, which is created down. A bridge
// port needs no address: with a link-local one, its DAD, router
// solicitation and MLD packets would be flooded to every other port,
// making each join cost O(ports). IPv6 is disabled outright rather than
// only its link-local address (addr_gen_mode none): an enabled port still
// gets a multicast route (ff00::/8) in the host's table when it gets
// carrier, and with one such route per port the kernel's IPv6 routing
// code walks them all on every port's carrier change (fib6_add, and
// fib6_clean_all in the linkwatch worker, under the rtnl lock).
func (d *Driver) noIPv6(veth netlink.Link) error {
	name := veth.Attrs().Name
	if d.hostSysctl != nil {
		err := d.hostSysctl("net.ipv6.conf."+name+".disable_ipv6", "1")
		if err != nil && !types.IsNotFound(err) { // NotFound: no IPv6 here
			return fmt.Errorf("turning off IPv6 on %s: %w", name, err)
		}
		return nil
	}
	const in6AddrGenModeNone = 1
	err := d.host.LinkSetIP6AddrGenMode(veth, in6AddrGenModeNone)
	if err != nil && !errors.Is(err, unix.EAFNOSUPPORT) && !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("turning off IPv6 link-local addressing on %s: %w", name, err)
	}
	return nil
}

// createVethAtOnce creates the pair with the host side up and on the
// bridge in one request. The host side has no carrier until the
// controller brings the sandbox side up, so the kernel does nothing with
// IPv6 on it before noIPv6 turns it off.
func (d *Driver) createVethAtOnce(s vethSpec) (int, error) {
	idx, err := d.newVeth(osl.Veth{
		Name: s.name, MAC: s.mac, MTU: s.mtu, Master: s.master, Up: true,
		PeerName: s.peerName, PeerMAC: s.peerMAC, PeerNS: s.peerNS,
	})
	if err != nil {
		return 0, err
	}
	link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: s.name, Index: idx}}
	if err := d.noIPv6(link); err != nil {
		d.deleteVeth(s.name, idx)
		return 0, err
	}
	if s.isolated {
		if err := d.host.LinkSetIsolated(link, true); err != nil {
			d.deleteVeth(s.name, idx)
			return 0, fmt.Errorf("isolating bridge port %s (ICC off): %w", s.name, err)
		}
	}
	return idx, nil
}
