package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/types"
)

// Routed networks (NetworkRules.RoutedIPv4, RoutedIPv6) are not
// masqueraded, and their containers are reached at their own addresses by
// whoever routes to them, so, as docker's gateway_mode_ipv4/ipv6=routed
// does, only the ports opened for them answer from outside their bridge.
// A routed family of a network is an element of routed4 or routed6 (its
// bridge), an opened port an element of open4 or open6, and the forward
// chain, after the rules that decide for traffic leaving a bridge, holds
// fixed rules that look them up:
//
//	set routed4 { type ifname }                                     # bridges routed for IPv4
//	set routed6 { type ifname }
//	set open4   { type ipv4_addr . inet_proto . inet_service }      # container address . proto . port
//	set open6   { type ipv6_addr . inet_proto . inet_service }
//	chain forward {
//		...
//		iifname @bridges accept
//		ct status dnat oifname @bridges accept                  # published through NAT
//		meta nfproto ipv4 ip daddr . meta l4proto . th dport @open4 accept
//		meta nfproto ipv6 ip6 daddr . meta l4proto . th dport @open6 accept
//		meta nfproto ipv4 meta l4proto icmp oifname @routed4 accept
//		meta nfproto ipv6 meta l4proto ipv6-icmp oifname @routed6 accept
//		meta nfproto ipv4 oifname @routed4 drop
//		meta nfproto ipv6 oifname @routed6 drop
//		...
//	}
//
// Replies pass by the first rule of the chain (ct state established), and
// traffic between the containers of one bridge by the icc map, before any
// of these. ICMP passes as docker lets it (ping, and the errors path MTU
// discovery needs). A port published through NAT on a routed network (a
// nat mapper chosen by option or label) arrives with its destination
// translated and passes by ct status dnat; that rule changes nothing for
// other networks, whose inbound traffic is accepted by the chain's policy.
// Opening a port adds one element in one batch; no rule changes.
const (
	setRouted4 = "routed4"
	setRouted6 = "routed6"
	setOpen4   = "open4"
	setOpen6   = "open6"
)

// OpenPort is a container port opened for forwarding on a routed network:
// packets of Proto to Addr:Port pass the routed drop.
type OpenPort struct {
	Proto types.Protocol
	Addr  netip.Addr
	Port  uint16
}

func (p OpenPort) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(p.Addr, p.Port), p.Proto)
}

// check validates p.
func (p OpenPort) check() error {
	switch p.Proto {
	case types.TCP, types.UDP, types.SCTP:
	default:
		return types.InvalidParameterErrorf("firewall: open port %s: protocol %d cannot be opened (tcp, udp or sctp)", p, p.Proto)
	}
	switch {
	case !p.Addr.IsValid():
		return types.InvalidParameterErrorf("firewall: open port %s: no container address", p)
	case p.Addr.Zone() != "" || p.Addr.Is4In6():
		return types.InvalidParameterErrorf("firewall: open port %s: the address must be plain IPv4 or IPv6, without a zone or IPv4-mapped form", p)
	case p.Addr.IsUnspecified():
		return types.InvalidParameterErrorf("firewall: open port %s: the container address is unspecified", p)
	case p.Port == 0:
		return types.InvalidParameterErrorf("firewall: open port %s: port 0 cannot be opened", p)
	}
	return nil
}

// element returns p's set element.
func (p OpenPort) element() nftables.SetElement {
	key := p.Addr.AsSlice()
	key = append(key, pad4([]byte{byte(p.Proto)})...)
	key = append(key, pad4(be16(p.Port))...)
	return nftables.SetElement{Key: key}
}

// openPortOf decodes an element of open4 or open6 (v6), as element
// encodes it.
func openPortOf(v6 bool, e nftables.SetElement) (OpenPort, error) {
	size := 4
	if v6 {
		size = 16
	}
	if len(e.Key) != size+8 {
		return OpenPort{}, fmt.Errorf("element with a %d-byte key", len(e.Key))
	}
	addr, _ := netip.AddrFromSlice(e.Key[:size])
	p := OpenPort{Proto: types.Protocol(e.Key[size]), Addr: addr, Port: binary.BigEndian.Uint16(e.Key[size+4 : size+6])}
	return p, p.check()
}

// newRoutedSets makes the routed and open sets of table t.
func newRoutedSets(t *nftables.Table) (routed4, routed6, open4, open6 *nftables.Set) {
	ifnameSet := func(id uint32, name string) *nftables.Set {
		return &nftables.Set{Table: t, ID: id, Name: name, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	}
	openSet := func(id uint32, name string, addr nftables.SetDatatype) *nftables.Set {
		return &nftables.Set{Table: t, ID: id, Name: name, Concatenation: true,
			KeyType: nftables.MustConcatSetType(addr, nftables.TypeInetProto, nftables.TypeInetService)}
	}
	return ifnameSet(20, setRouted4), ifnameSet(21, setRouted6),
		openSet(22, setOpen4, nftables.TypeIPAddr), openSet(23, setOpen6, nftables.TypeIP6Addr)
}

// openSetOf returns the set p's element belongs to.
func (f *Firewall) openSetOf(p OpenPort) *nftables.Set {
	if p.Addr.Is4() {
		return f.open4
	}
	return f.open6
}

// routedRules returns the forward chain's rules of routed networks, which
// follow `iifname @bridges accept`: only packets entering a bridge from
// elsewhere reach them.
func (f *Firewall) routedRules() []*nftables.Rule {
	zero := []byte{0, 0, 0, 0}
	nfproto := func(fam byte) []expr.Any {
		return []expr.Any{loadMeta(expr.MetaKeyNFPROTO), cmpReg(expr.CmpOpEq, []byte{fam})}
	}
	oifIn := func(s *nftables.Set) []expr.Any {
		return []expr.Any{loadMeta(expr.MetaKeyOIFNAME), lookup(s, reg1, false)}
	}
	rules := []*nftables.Rule{
		f.rule(f.forward, comment("published through NAT"),
			&expr.Ct{Register: reg1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(ctStatusDNAT), Xor: zero},
			cmpReg(expr.CmpOpNeq, zero),
			loadMeta(expr.MetaKeyOIFNAME), lookup(f.bridges, reg1, false),
			verdict(expr.VerdictAccept)),
	}
	type family struct {
		fam          byte
		offset, size uint32
		icmp         byte
		routed, open *nftables.Set
	}
	fams := []family{
		{unix.NFPROTO_IPV4, 16, 4, unix.IPPROTO_ICMP, f.routed4, f.open4},
		{unix.NFPROTO_IPV6, 24, 16, unix.IPPROTO_ICMPV6, f.routed6, f.open6},
	}
	for _, fm := range fams {
		// daddr . l4proto . dport, each part in the next 4-byte registers.
		e := nfproto(fm.fam)
		e = append(e,
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: fm.offset, Len: fm.size},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32n0 + fm.size/4},
			&expr.Payload{DestRegister: reg32n0 + fm.size/4 + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			lookup(fm.open, reg1, false),
			verdict(expr.VerdictAccept))
		rules = append(rules, f.rule(f.forward, comment("opened ports (routed)"), e...))
	}
	for _, fm := range fams {
		e := nfproto(fm.fam)
		e = append(e, loadMeta(expr.MetaKeyL4PROTO), cmpReg(expr.CmpOpEq, []byte{fm.icmp}))
		e = append(e, oifIn(fm.routed)...)
		rules = append(rules, f.rule(f.forward, comment("routed: ICMP"), append(e, verdict(expr.VerdictAccept))...))
	}
	for _, fm := range fams {
		e := append(nfproto(fm.fam), oifIn(fm.routed)...)
		rules = append(rules, f.rule(f.forward, comment("routed: port not opened"), append(e, verdict(expr.VerdictDrop))...))
	}
	return rules
}

// AddOpenPorts opens the ports of ports in one batch. A port already open
// is left as it is.
func (f *Firewall) AddOpenPorts(ports []OpenPort) error {
	return f.changeOpenPorts("open ports", ports, false)
}

// DeleteOpenPorts closes the ports of ports in one batch. A port that is
// not open is left alone.
func (f *Firewall) DeleteOpenPorts(ports []OpenPort) error {
	return f.changeOpenPorts("close ports", ports, true)
}

func (f *Firewall) changeOpenPorts(what string, ports []OpenPort, del bool) error {
	for _, p := range ports {
		if err := p.check(); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkReadyLocked(what); err != nil {
		return err
	}
	bySet := map[*nftables.Set][]nftables.SetElement{}
	var changed []OpenPort
	seen := make(map[OpenPort]bool, len(ports))
	for _, p := range ports {
		if seen[p] || f.open[p] != del {
			continue
		}
		seen[p] = true
		s := f.openSetOf(p)
		bySet[s] = append(bySet[s], p.element())
		changed = append(changed, p)
	}
	if len(changed) == 0 {
		return nil
	}
	if err := f.queueOpenLocked(bySet, del); err != nil {
		return queueError(what, err)
	}
	if err := f.flushLocked(what); err != nil {
		return err
	}
	for _, p := range changed {
		if del {
			delete(f.open, p)
		} else {
			f.open[p] = true
		}
	}
	f.logger.Debug("firewall: "+what, "ports", len(changed))
	return nil
}

// queueOpenLocked queues the addition, or with del the deletion, of the
// elements of bySet. f.mu must be held.
func (f *Firewall) queueOpenLocked(bySet map[*nftables.Set][]nftables.SetElement, del bool) error {
	return f.queueBySetLocked([]*nftables.Set{f.open4, f.open6}, bySet, del)
}

// OpenPorts returns the open ports, sorted.
func (f *Firewall) OpenPorts() []OpenPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]OpenPort, 0, len(f.open))
	for p := range f.open {
		out = append(out, p)
	}
	slices.SortFunc(out, compareOpenPorts)
	return out
}

func compareOpenPorts(a, b OpenPort) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if a.Proto != b.Proto {
		return int(a.Proto) - int(b.Proto)
	}
	return int(a.Port) - int(b.Port)
}

// ReconcileOpenPorts makes the open ports exactly keep, in one batch: what
// an earlier run opened and nobody recorded is closed, what is recorded
// and missing is opened.
func (f *Firewall) ReconcileOpenPorts(keep []OpenPort) error {
	const what = "reconcile open ports"
	want := make(map[OpenPort]bool, len(keep))
	for _, p := range keep {
		if err := p.check(); err != nil {
			return err
		}
		want[p] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkReadyLocked(what); err != nil {
		return err
	}
	add := map[*nftables.Set][]nftables.SetElement{}
	del := map[*nftables.Set][]nftables.SetElement{}
	for p := range f.open {
		if !want[p] {
			del[f.openSetOf(p)] = append(del[f.openSetOf(p)], p.element())
		}
	}
	for p := range want {
		if !f.open[p] {
			add[f.openSetOf(p)] = append(add[f.openSetOf(p)], p.element())
		}
	}
	if len(add) == 0 && len(del) == 0 {
		return nil
	}
	if err := f.queueOpenLocked(del, true); err != nil {
		return queueError(what, err)
	}
	if err := f.queueOpenLocked(add, false); err != nil {
		return queueError(what, err)
	}
	if err := f.flushLocked(what); err != nil {
		return err
	}
	f.open = want
	f.logger.Debug("firewall: open ports reconciled", "ports", len(want))
	return nil
}

// queueOpenElementsLocked queues the elements of every open port, for a
// table being recreated. f.mu must be held.
func (f *Firewall) queueOpenElementsLocked() error {
	bySet := map[*nftables.Set][]nftables.SetElement{}
	for p := range f.open {
		bySet[f.openSetOf(p)] = append(bySet[f.openSetOf(p)], p.element())
	}
	return f.queueOpenLocked(bySet, false)
}

// loadOpenLocked learns the open ports of a table kept from an earlier
// run; exists tells which sets the table has (a table of a version
// without routed networks has none). An element that does not decode is
// reported and left for ReconcileOpenPorts to remove. f.mu must be held.
func (f *Firewall) loadOpenLocked(exists map[string]bool) error {
	f.open = map[OpenPort]bool{}
	for _, s := range []*nftables.Set{f.open4, f.open6} {
		if !exists[s.Name] {
			continue
		}
		elems, err := f.conn.GetSetElements(s)
		if err != nil {
			return types.InternalErrorf("firewall: init: reading the elements of %s: %w", s.Name, err)
		}
		for _, e := range elems {
			p, err := openPortOf(s == f.open6, e)
			if err != nil {
				f.logger.Warn("firewall: ignoring an undecodable open-port element", "set", s.Name, "error", err)
				continue
			}
			f.open[p] = true
		}
	}
	return nil
}
