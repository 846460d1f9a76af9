package bridge

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// Steps of setupNetwork, named for the test hook failAfter.
const (
	stepBridge    = "bridge"
	stepAddresses = "addresses"
	stepUp        = "up"
	stepFirewall  = "firewall"
	stepSysctl    = "sysctl"
)

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

// setupNetwork brings n's kernel objects into being and sets
// n.bridgeIndex, adopting an existing bridge only when adopt is set. On
// failure everything it did is undone.
func (d *Driver) setupNetwork(n *network, adopt bool) (err error) {
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
	steps := []struct {
		name string
		do   func() (func() error, error)
	}{
		{stepBridge, func() (func() error, error) { return d.setupBridge(n, adopt) }},
		{stepAddresses, func() (func() error, error) { return d.setupAddresses(n, adopt) }},
		{stepUp, func() (func() error, error) { return nil, d.bringUp(n) }},
		{stepFirewall, func() (func() error, error) {
			if adopt {
				// A restored network's rules are programmed with all
				// the others in CollectOrphans' one Reconcile batch;
				// until then the table kept from the last run holds
				// them.
				return nil, nil
			}
			return d.setupFirewall(n)
		}},
		{stepSysctl, func() (func() error, error) { return nil, d.setupForwarding(n.config.gatewayV6 != nil) }},
	}
	for _, s := range steps {
		u, err := s.do()
		if u != nil {
			undo = append(undo, u)
		}
		if err != nil {
			return fmt.Errorf("step %s: %w", s.name, err)
		}
		if d.failAfter == s.name {
			return types.InternalErrorf("injected failure after step %s", s.name)
		}
	}
	return nil
}

func (d *Driver) bridgeLink(n *network) netlink.Link {
	return &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Index: n.bridgeIndex, Name: n.config.bridgeName}}
}

// setupBridge creates the bridge, marked as n's (see bridgeMark), or,
// when adopt is set (the restart path, for a network the store holds),
// adopts an existing bridge of that name that carries n's mark. Without
// adopt, an existing link of that name is not the library's: it is
// refused and left untouched. With adopt, so is a bridge without n's
// mark: the store is not trusted to say what is the library's (a forged
// or corrupt record may name the host's own bridge). Only a bridge it
// created is deleted on undo.
func (d *Driver) setupBridge(n *network, adopt bool) (func() error, error) {
	name := n.config.bridgeName
	if l, err := d.host.LinkByName(name); err == nil {
		if !adopt {
			return nil, errLinkExists(name, l.Type())
		}
		if l.Type() != "bridge" {
			return nil, types.ForbiddenErrorf("link %s exists and is a %s, not a bridge", name, l.Type())
		}
		if err := checkMark(l, n.id); err != nil {
			return nil, err
		}
		n.bridgeIndex = l.Attrs().Index
		n.bridgeMAC = l.Attrs().HardwareAddr
		if err := d.setSnooping(n, false); err != nil {
			return nil, fmt.Errorf("turning off multicast snooping on bridge %s: %w", name, err)
		}
		if l.Attrs().MTU != n.config.mtu {
			if err := d.host.LinkSetMTU(l, n.config.mtu); err != nil {
				return nil, fmt.Errorf("setting the MTU of bridge %s to %d: %w", name, n.config.mtu, err)
			}
		}
		return nil, nil
	} else if !isNotExist(err) {
		return nil, fmt.Errorf("looking up bridge %s: %w", name, err)
	}
	attrs := netlink.NewLinkAttrs()
	// The bridge is born under a temporary name, marked, then renamed: the
	// kernel ignores IFLA_IFALIAS in the RTM_NEWLINK that creates a link
	// (rtnl_create_link does not read it; checked on 6.18), and a bridge
	// under its final name without its mark would be, after a crash
	// between the two requests, a leak nothing may delete. One under a
	// temporary name is the library's by its name alone (orphan
	// collection deletes it).
	tmp := tempBridgeName(n.id)
	attrs.Name = tmp
	attrs.MTU = n.config.mtu
	// A fixed MAC keeps the bridge's address from following its ports'.
	attrs.HardwareAddr = randomMAC()
	// Multicast snooping is off: with it, every port that comes up, goes
	// down or leaves makes the kernel re-arm the query timers of every
	// other port (br_port_state_selection), O(ports) work under the rtnl
	// lock that every attach and detach waits for. Without a querier on
	// the bridge, snooping only ever pruned multicast by mistake; off,
	// the bridge floods multicast to all ports.
	noSnooping := false
	br := &netlink.Bridge{LinkAttrs: attrs, MulticastSnooping: &noSnooping}
	err := d.host.LinkAdd(br)
	if errors.Is(err, unix.EEXIST) {
		// Left by a crash in this very step for this network: ours.
		if l, lerr := d.host.LinkByName(tmp); lerr == nil && l.Type() == "bridge" {
			_ = d.host.LinkDel(l)
			br.Attrs().Index = 0
			err = d.host.LinkAdd(br)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("creating bridge %s (as %s): %w", name, tmp, err)
	}
	undo := func() error {
		if err := d.host.LinkDel(br); err != nil && !isNotExist(err) {
			return fmt.Errorf("deleting bridge %s: %w", name, err)
		}
		return nil
	}
	n.bridgeIndex = br.Attrs().Index
	n.bridgeMAC = attrs.HardwareAddr
	if n.bridgeIndex == 0 {
		return undo, fmt.Errorf("bridge %s created but has no index", name)
	}
	if err := d.host.LinkSetAlias(br, bridgeMark(n.id)); err != nil {
		return undo, fmt.Errorf("marking bridge %s as network %s's: %w", name, n.id, err)
	}
	if err := d.host.LinkSetName(br, name); err != nil {
		if errors.Is(err, unix.EEXIST) {
			// Created by someone else since the lookup.
			return undo, errLinkExists(name, "link")
		}
		return undo, fmt.Errorf("naming bridge %s: %w", name, err)
	}
	return undo, nil
}

// tempPrefix starts the temporary name of a bridge being created; twelve
// hex digits of the network's ID follow it.
const tempPrefix = "lnt"

// tempBridgeName is the name network nid's bridge has until it is marked.
func tempBridgeName(nid string) string { return tempPrefix + shortID(nid, 12) }

// markPrefix starts the mark (the interface alias, IFLA_IFALIAS) of every
// bridge the driver creates; the network's ID follows it.
//
// The alias is the mark rather than an altname: only CAP_NET_ADMIN over
// the namespace can write it (RTM_SETLINK or /sys/class/net/*/ifalias);
// it lasts as long as the link; it comes in every link dump and lookup
// the driver already does (LinkAttrs.Alias), at no extra cost; it is free
// text, so a full 64-digit network ID fits (IFALIASZ is 256); and an
// altname would take a name from the namespace's one name space, so it
// could collide with an interface or block a name another program wants.
// The usual tools leave aliases alone (iproute2, NetworkManager, docker;
// systemd-networkd and udev set one only when a .link file says Alias=).
// A bridge whose mark someone changed or removed is not the library's any
// more: its network is refused at restart and the bridge left alone.
//
// No release of the library predates the mark, so there are no unmarked
// bridges of an older version to adopt.
const markPrefix = "libnetwork:"

// bridgeMark is the alias that marks a bridge as network nid's.
func bridgeMark(nid string) string { return markPrefix + nid }

// markedNetwork returns the network ID of a bridge's mark, and whether
// the alias is a mark at all.
func markedNetwork(l netlink.Link) (string, bool) {
	alias := l.Attrs().Alias
	nid, ok := strings.CutPrefix(alias, markPrefix)
	return nid, ok && nid != ""
}

// checkMark refuses the adoption of bridge l by network nid unless the
// bridge carries nid's mark. The error names the bridge, the network and
// the mark found.
func checkMark(l netlink.Link, nid string) error {
	name := l.Attrs().Name
	owner, ok := markedNetwork(l)
	switch {
	case !ok:
		return types.ForbiddenErrorf("bridge %s is not marked as this library's (alias %q, want %q): it is left alone and network %s is not restored",
			name, l.Attrs().Alias, bridgeMark(nid), nid)
	case owner != nid:
		return types.ForbiddenErrorf("bridge %s is marked as network %s's, not network %s's: it is left alone and network %s is not restored",
			name, owner, nid, nid)
	}
	return nil
}

// errLinkExists is the error of a new network whose bridge name is taken
// by a link the library did not create for it.
func errLinkExists(name, kind string) error {
	return types.ForbiddenErrorf("bridge name %s: a %s of that name exists and is not this library's; it is left alone", name, kind)
}

// setSnooping turns multicast snooping on n's bridge on or off. Only the
// bridge's name and index are sent, so nothing else about it changes.
func (d *Driver) setSnooping(n *network, on bool) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.Index = n.config.bridgeName, n.bridgeIndex
	return d.host.LinkModify(&netlink.Bridge{LinkAttrs: attrs, MulticastSnooping: &on})
}

// setupAddresses puts the gateway addresses on the bridge. Addresses that
// were already there (an adopted bridge) are kept on undo.
func (d *Driver) setupAddresses(n *network, adopt bool) (func() error, error) {
	link := d.bridgeLink(n)
	var added []*netlink.Addr
	undo := func() error {
		var errs []error
		for _, a := range added {
			if err := d.host.AddrDel(link, a); err != nil && !isNotExist(err) {
				errs = append(errs, fmt.Errorf("removing %s from bridge %s: %w", a.IPNet, n.config.bridgeName, err))
			}
		}
		return errors.Join(errs...)
	}
	for _, gw := range n.config.gateways {
		a := &netlink.Addr{IPNet: gw}
		if gw.IP.To4() == nil {
			// The gateway must answer at once; DAD would hold it back.
			a.Flags = unix.IFA_F_NODAD
		}
		err := d.host.AddrAdd(link, a)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return undo, fmt.Errorf("adding gateway %s to bridge %s: %w", gw, n.config.bridgeName, err)
		}
		added = append(added, a)
	}
	// An adopted bridge may carry addresses of a network that is gone (a
	// non-persistent one before a crash): the host would keep routing its
	// subnet. Only the gateways (and link-local addresses) stay. A bridge
	// just created holds only what was added above.
	if !adopt {
		return undo, nil
	}
	if err := d.dropStaleAddresses(n, link); err != nil {
		return undo, err
	}
	return undo, nil
}

// dropStaleAddresses removes the bridge's addresses that are not the
// network's gateways.
func (d *Driver) dropStaleAddresses(n *network, link netlink.Link) error {
	addrs, err := d.restoredAddrs(n.bridgeIndex)
	if err != nil {
		return fmt.Errorf("listing the addresses of bridge %s: %w", n.config.bridgeName, err)
	}
	for i := range addrs {
		a := &addrs[i]
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		keep := false
		for _, gw := range n.config.gateways {
			if gw.IP.Equal(a.IP) && gw.Mask.String() == a.Mask.String() {
				keep = true
			}
		}
		if keep {
			continue
		}
		d.logger.Info("removing a stale address from an adopted bridge", "bridge", n.config.bridgeName, "address", a.IPNet)
		if err := d.host.AddrDel(link, a); err != nil && !isNotExist(err) {
			return fmt.Errorf("removing stale address %s from bridge %s: %w", a.IPNet, n.config.bridgeName, err)
		}
	}
	return nil
}

// restoredAddrs returns the addresses the bridge with index had when the
// restore began. The kernel dumps every address of the namespace whatever
// link is asked for, so one dump per adopted bridge made a restart of
// 4,000 networks O(n²) (9 ms a bridge); the first adoption dumps once for
// all, and CollectOrphans, which ends the restore, drops the dump. Only
// the bridge's own adoption changes its addresses meanwhile, adding
// gateways, which are kept anyway.
func (d *Driver) restoredAddrs(index int) ([]netlink.Addr, error) {
	d.mu.Lock()
	byLink := d.restoreAddrs
	d.mu.Unlock()
	if byLink == nil {
		all, err := osl.Dump(func() ([]netlink.Addr, error) { return d.host.AddrList(nil, netlink.FAMILY_ALL) })
		if err != nil {
			return nil, err
		}
		byLink = map[int][]netlink.Addr{}
		for _, a := range all {
			byLink[a.LinkIndex] = append(byLink[a.LinkIndex], a)
		}
		d.mu.Lock()
		d.restoreAddrs = byLink
		d.mu.Unlock()
	}
	return byLink[index], nil
}

// setupFirewall programs the network's rules.
func (d *Driver) setupFirewall(n *network) (func() error, error) {
	if d.fw == nil {
		return nil, nil
	}
	if err := d.fw.AddNetwork(n.rules()); err != nil {
		return nil, fmt.Errorf("programming firewall rules: %w", err)
	}
	return func() error {
		if err := d.fw.DeleteNetwork(n.config.bridgeName); err != nil {
			return fmt.Errorf("removing firewall rules of bridge %s: %w", n.config.bridgeName, err)
		}
		return nil
	}, nil
}

// setupForwarding turns IP forwarding on, once per family (see "Sysctls"
// in the package doc).
func (d *Driver) setupForwarding(v6 bool) error {
	if d.setSysctl == nil {
		return nil
	}
	d.forwardingMu.Lock()
	defer d.forwardingMu.Unlock()
	d.mu.Lock()
	needV4, needV6 := !d.forwardingV4, v6 && !d.forwardingV6
	d.mu.Unlock()
	if needV4 {
		if err := d.enableForwarding(firewall.IPv4, "net.ipv4.ip_forward"); err != nil {
			return fmt.Errorf("enabling IPv4 forwarding: %w", err)
		}
	}
	if needV6 {
		if err := d.enableForwarding(firewall.IPv6, "net.ipv6.conf.all.forwarding"); err != nil {
			return fmt.Errorf("enabling IPv6 forwarding: %w", err)
		}
	}
	d.mu.Lock()
	d.forwardingV4 = d.forwardingV4 || needV4
	d.forwardingV6 = d.forwardingV6 || needV6
	d.mu.Unlock()
	return nil
}

// enableForwarding turns the forwarding sysctl key of family fam on. If
// it was off, the firewall first drops the family's forwarded packets that
// neither enter nor leave one of our bridges (unless forwardingNoDrop), so
// that at no moment does the host route between its other interfaces; if
// the sysctl cannot be written, the drop goes again. Forwarding found on
// is left alone, and so is whatever drop an earlier run installed.
func (d *Driver) enableForwarding(fam firewall.Family, key string) error {
	if d.readSysctl != nil {
		was, err := d.readSysctl(key)
		if err != nil {
			return err
		}
		if was != "0" {
			return nil
		}
	}
	drop := d.fw != nil && !d.forwardingNoDrop
	if drop {
		if err := d.fw.SetForwardDrop(fam, true); err != nil {
			return fmt.Errorf("dropping other forwarded traffic before turning forwarding on: %w", err)
		}
	}
	if err := d.setSysctl(key, "1"); err != nil {
		if drop {
			if uerr := d.fw.SetForwardDrop(fam, false); uerr != nil {
				err = fmt.Errorf("%w (and removing the drop failed: %v)", err, uerr)
			}
		}
		return err
	}
	d.logger.Info("turned IP forwarding on", "sysctl", key,
		"dropping_other_forwarded_traffic", drop)
	return nil
}

// removeForwardDrop removes, under forwardingNoDrop, the drop of other
// forwarded traffic that an earlier run installed.
func (d *Driver) removeForwardDrop() error {
	if d.fw == nil || !d.forwardingNoDrop {
		return nil
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		if !d.fw.ForwardDrop(fam) {
			continue
		}
		if err := d.fw.SetForwardDrop(fam, false); err != nil {
			return fmt.Errorf("bridge driver: removing the drop of other forwarded %s traffic: %w", fam, err)
		}
		d.logger.Info("removed the drop of other forwarded traffic (ForwardingNoDrop)", "family", fam.String())
	}
	return nil
}

// isNotExist reports whether err says a link or address is not there.
func isNotExist(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EADDRNOTAVAIL)
}

// randomMAC returns a random locally administered unicast MAC.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = (mac[0] &^ 0x01) | 0x02
	return mac
}

// bringUp brings the bridge up. On an IPv6 network it first turns off
// duplicate address detection on the bridge: the link-local address a new
// bridge gets is tentative for about a second, and until then the host
// cannot resolve its containers' neighbours for forwarded packets, so the
// first IPv6 connections to a new network's containers (a published port
// among them) stall. A new bridge of a random MAC shares its link with the
// library's veths only; there is nothing to detect.
func (d *Driver) bringUp(n *network) error {
	if n.config.gatewayV6 != nil && d.hostSysctl != nil {
		key := "net.ipv6.conf." + n.config.bridgeName + ".accept_dad"
		if err := d.hostSysctl(key, "0"); err != nil && !types.IsNotFound(err) {
			return fmt.Errorf("turning off IPv6 duplicate address detection on %s: %w", n.config.bridgeName, err)
		}
	}
	return d.host.LinkSetUp(d.bridgeLink(n))
}
