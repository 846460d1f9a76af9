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

// Published ports are four maps from where a packet is addressed to where
// it goes, and a fixed set of rules that look them up:
//
//	map ports4    { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service } # host IP . proto . port
//	map ports4any { type inet_proto . inet_service : ipv4_addr . inet_service }             # any local address
//	map ports6    { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service }
//	map ports6any { type inet_proto . inet_service : ipv6_addr . inet_service }
//	chain prerouting { # and the same in output, for connections the host itself opens
//		iifname @bridges ip daddr 127.0.0.0/8 drop
//		meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @ports4
//		meta nfproto ipv4 fib daddr type local dnat ip to meta l4proto . th dport map @ports4any
//		meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6
//		meta nfproto ipv6 fib daddr type local dnat ip6 to meta l4proto . th dport map @ports6any
//	}
//	chain postrouting {
//		oifname @bridges ip saddr 127.0.0.0/8 masquerade
//		ct status dnat ip saddr & <mask> . oifname @masq4_<bits> masquerade # hairpin, per prefix length
//		...
//	}
//
// A binding to one host address is an element of ports4 or ports6; a
// binding to all addresses (0.0.0.0 or ::) is an element of the any map,
// which the rule takes only for packets addressed to one of the host's own
// addresses (fib daddr type local), so traffic routed through the host to
// other machines on that port is left alone. A lookup that misses ends the
// rule without a verdict, so a packet for a port nobody published goes on
// untouched. Publishing or unpublishing a port adds or deletes elements in
// one batch; no rule changes, whatever the number of ports.
//
// From the host itself, the output chain does the same, and a connection to
// 127.0.0.1 reaches the container because the bridge driver sets
// route_localnet on its bridges and the postrouting rule masquerades the
// loopback source to the bridge's address (the container could not answer
// 127.0.0.1). The first prerouting rule keeps route_localnet from opening
// the host's loopback services to containers: nothing from a bridge may be
// addressed to 127.0.0.0/8. The kernel never routes ::1 off the host, so a
// published IPv6 port is not reachable on ::1.
//
// A container reaching a published port through the host's address
// (hairpin) is masqueraded to its bridge's address when the connection is
// sent back into its own network, because the answer would otherwise go
// straight back over the bridge without being un-NATed. This takes the
// per-length masquerade sets (masq.go), so it holds for networks with
// masquerade on.
const (
	mapPorts4    = "ports4"
	mapPorts4Any = "ports4any"
	mapPorts6    = "ports6"
	mapPorts6Any = "ports6any"
)

// PortRule is one published port as the firewall programs it: packets of
// Proto addressed to HostIP:HostPort (to any of the host's own addresses
// when HostIP is unspecified, 0.0.0.0 or ::) are sent to
// ContainerIP:ContainerPort. HostIP and ContainerIP are of one family.
type PortRule struct {
	Proto         types.Protocol
	HostIP        netip.Addr
	HostPort      uint16
	ContainerIP   netip.Addr
	ContainerPort uint16
}

func (r PortRule) String() string {
	return fmt.Sprintf("%s/%s -> %s", netip.AddrPortFrom(r.HostIP, r.HostPort), r.Proto,
		netip.AddrPortFrom(r.ContainerIP, r.ContainerPort))
}

// portKey identifies a published port: at most one rule per key.
type portKey struct {
	proto  types.Protocol
	hostIP netip.Addr
	port   uint16
}

func (r PortRule) key() portKey { return portKey{r.Proto, r.HostIP, r.HostPort} }

// check validates r.
func (r PortRule) check() error {
	switch r.Proto {
	case types.TCP, types.UDP, types.SCTP:
	default:
		return types.InvalidParameterErrorf("firewall: port %s: protocol %d cannot be published (tcp, udp or sctp)", r, r.Proto)
	}
	if !r.HostIP.IsValid() || !r.ContainerIP.IsValid() {
		return types.InvalidParameterErrorf("firewall: port %s: host and container addresses are both needed", r)
	}
	if r.HostIP.Zone() != "" || r.ContainerIP.Zone() != "" || r.HostIP.Is4In6() || r.ContainerIP.Is4In6() {
		return types.InvalidParameterErrorf("firewall: port %s: addresses must be plain IPv4 or IPv6, without a zone or IPv4-mapped form", r)
	}
	if r.HostIP.Is4() != r.ContainerIP.Is4() {
		return types.InvalidParameterErrorf("firewall: port %s: host and container addresses are of different families", r)
	}
	if r.ContainerIP.IsUnspecified() {
		return types.InvalidParameterErrorf("firewall: port %s: the container address is unspecified", r)
	}
	if r.HostPort == 0 || r.ContainerPort == 0 {
		return types.InvalidParameterErrorf("firewall: port %s: port 0 cannot be published", r)
	}
	return nil
}

// portMaps returns the four maps: specific and any, IPv4 then IPv6.
func (f *Firewall) portMaps() []*nftables.Set {
	return []*nftables.Set{f.ports4, f.ports4Any, f.ports6, f.ports6Any}
}

// newPortMaps makes the four maps of table t.
func newPortMaps(t *nftables.Table) (p4, p4any, p6, p6any *nftables.Set) {
	mk := func(id uint32, name string, key, data []nftables.SetDatatype) *nftables.Set {
		s := &nftables.Set{Table: t, ID: id, Name: name, IsMap: true,
			KeyType: nftables.MustConcatSetType(key...), DataType: nftables.MustConcatSetType(data...)}
		if len(key) > 1 {
			s.Concatenation = true
		}
		return s
	}
	proto, service := nftables.TypeInetProto, nftables.TypeInetService
	v4, v6 := nftables.TypeIPAddr, nftables.TypeIP6Addr
	p4 = mk(10, mapPorts4, []nftables.SetDatatype{v4, proto, service}, []nftables.SetDatatype{v4, service})
	p4any = mk(11, mapPorts4Any, []nftables.SetDatatype{proto, service}, []nftables.SetDatatype{v4, service})
	p6 = mk(12, mapPorts6, []nftables.SetDatatype{v6, proto, service}, []nftables.SetDatatype{v6, service})
	p6any = mk(13, mapPorts6Any, []nftables.SetDatatype{proto, service}, []nftables.SetDatatype{v6, service})
	return p4, p4any, p6, p6any
}

// mapOf returns the map r's element belongs to.
func (f *Firewall) mapOf(r PortRule) *nftables.Set {
	switch {
	case r.HostIP.Is4() && r.HostIP.IsUnspecified():
		return f.ports4Any
	case r.HostIP.Is4():
		return f.ports4
	case r.HostIP.IsUnspecified():
		return f.ports6Any
	default:
		return f.ports6
	}
}

// pad4 is b padded with zeros to a multiple of 4 bytes, as each part of a
// concatenation is.
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// element returns r's map element.
func (r PortRule) element() nftables.SetElement {
	var key []byte
	if !r.HostIP.IsUnspecified() {
		key = r.HostIP.AsSlice()
	}
	key = append(key, pad4([]byte{byte(r.Proto)})...)
	key = append(key, pad4(be16(r.HostPort))...)
	val := append(r.ContainerIP.AsSlice(), pad4(be16(r.ContainerPort))...)
	return nftables.SetElement{Key: key, Val: val}
}

// portRuleOf decodes an element of map m (one of mapPorts4...), as
// element encodes it.
func portRuleOf(m string, e nftables.SetElement) (PortRule, error) {
	size := 4
	if m == mapPorts6 || m == mapPorts6Any {
		size = 16
	}
	var r PortRule
	key := e.Key
	if m == mapPorts4 || m == mapPorts6 {
		if len(key) < size {
			return r, fmt.Errorf("element of %s with a %d-byte key", m, len(e.Key))
		}
		r.HostIP, _ = netip.AddrFromSlice(key[:size])
		key = key[size:]
	} else if size == 4 {
		r.HostIP = netip.IPv4Unspecified()
	} else {
		r.HostIP = netip.IPv6Unspecified()
	}
	if len(key) != 8 || len(e.Val) != size+4 {
		return r, fmt.Errorf("element of %s with a %d-byte key and %d-byte value", m, len(e.Key), len(e.Val))
	}
	r.Proto = types.Protocol(key[0])
	r.HostPort = binary.BigEndian.Uint16(key[4:6])
	r.ContainerIP, _ = netip.AddrFromSlice(e.Val[:size])
	r.ContainerPort = binary.BigEndian.Uint16(e.Val[size : size+2])
	return r, r.check()
}

// AddPorts publishes the ports of rules in one batch. A rule already
// published the same way is left as it is; a rule whose host address,
// protocol and port are already published to another destination is
// refused (ForbiddenError) and nothing of the batch is installed, unless
// that destination was learned from an earlier run's table and nothing
// has claimed it since (a restore publishing before ReconcilePorts): it is
// then replaced.
func (f *Firewall) AddPorts(rules []PortRule) error {
	return f.changePorts("publish ports", rules, false)
}

// DeletePorts unpublishes the ports of rules in one batch. A rule that is
// not published, or is published to another destination, is left alone.
func (f *Firewall) DeletePorts(rules []PortRule) error {
	return f.changePorts("unpublish ports", rules, true)
}

func (f *Firewall) changePorts(what string, rules []PortRule, del bool) error {
	for _, r := range rules {
		if err := r.check(); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkReadyLocked(what); err != nil {
		return err
	}
	byMap := map[*nftables.Set][]nftables.SetElement{}
	stale := map[*nftables.Set][]nftables.SetElement{}
	var changed []PortRule
	seen := make(map[portKey]PortRule, len(rules))
	for _, r := range rules {
		k := r.key()
		if prev, ok := seen[k]; ok {
			if prev != r {
				return types.InvalidParameterErrorf("firewall: %s: %s and %s publish the same host port", what, prev, r)
			}
			continue
		}
		seen[k] = r
		cur, ok := f.ports[k]
		switch {
		case del && (!ok || cur != r):
			continue
		case !del && ok && cur == r:
			delete(f.inherited, k)
			continue
		case !del && ok && f.inherited[k]:
			// Left by an earlier run and claimed by nobody yet (the
			// restore publishing before ReconcilePorts): replaced.
			stale[f.mapOf(cur)] = append(stale[f.mapOf(cur)], cur.element())
		case !del && ok:
			return types.ForbiddenErrorf("firewall: %s: %s: host port %d/%s on %s already goes to %s",
				what, r, r.HostPort, r.Proto, r.HostIP, netip.AddrPortFrom(cur.ContainerIP, cur.ContainerPort))
		}
		m := f.mapOf(r)
		byMap[m] = append(byMap[m], r.element())
		changed = append(changed, r)
	}
	if len(changed) == 0 {
		return nil
	}
	if err := f.queueBySetLocked(f.portMaps(), stale, true); err != nil {
		return queueError(what, err)
	}
	if err := f.queueBySetLocked(f.portMaps(), byMap, del); err != nil {
		return queueError(what, err)
	}
	if err := f.flushLocked(what); err != nil {
		return err
	}
	for _, r := range changed {
		delete(f.inherited, r.key())
		if del {
			delete(f.ports, r.key())
		} else {
			f.ports[r.key()] = r
		}
	}
	f.logger.Debug("firewall: "+what, "ports", len(changed))
	return nil
}

// Ports returns the published ports, sorted.
func (f *Firewall) Ports() []PortRule {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]PortRule, 0, len(f.ports))
	for _, r := range f.ports {
		out = append(out, r)
	}
	slices.SortFunc(out, comparePortRules)
	return out
}

func comparePortRules(a, b PortRule) int {
	if c := a.HostIP.Compare(b.HostIP); c != 0 {
		return c
	}
	if a.Proto != b.Proto {
		return int(a.Proto) - int(b.Proto)
	}
	return int(a.HostPort) - int(b.HostPort)
}

// ReconcilePorts makes the published ports exactly keep, in one batch:
// what an earlier run left and nobody recorded is unpublished, what is
// recorded and missing is published. Two rules of keep for one host port
// are refused.
func (f *Firewall) ReconcilePorts(keep []PortRule) error {
	const what = "reconcile ports"
	want := make(map[portKey]PortRule, len(keep))
	for _, r := range keep {
		if err := r.check(); err != nil {
			return err
		}
		if prev, ok := want[r.key()]; ok && prev != r {
			return types.InvalidParameterErrorf("firewall: %s: %s and %s publish the same host port", what, prev, r)
		}
		want[r.key()] = r
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.checkReadyLocked(what); err != nil {
		return err
	}
	add := map[*nftables.Set][]nftables.SetElement{}
	del := map[*nftables.Set][]nftables.SetElement{}
	removed := 0
	for k, cur := range f.ports {
		if w, ok := want[k]; !ok || w != cur {
			del[f.mapOf(cur)] = append(del[f.mapOf(cur)], cur.element())
			removed++
		}
	}
	for k, w := range want {
		if cur, ok := f.ports[k]; !ok || cur != w {
			add[f.mapOf(w)] = append(add[f.mapOf(w)], w.element())
		}
	}
	if err := f.queueBySetLocked(f.portMaps(), del, true); err != nil {
		return queueError(what, err)
	}
	if err := f.queueBySetLocked(f.portMaps(), add, false); err != nil {
		return queueError(what, err)
	}
	if err := f.flushLocked(what); err != nil {
		return err
	}
	f.ports = want
	f.inherited = map[portKey]bool{}
	f.logger.Debug("firewall: ports reconciled", "ports", len(want), "removed", removed)
	return nil
}

// queuePortElementsLocked queues the elements of every published port, for
// a table being recreated. f.mu must be held.
func (f *Firewall) queuePortElementsLocked() error {
	byMap := map[*nftables.Set][]nftables.SetElement{}
	for _, r := range f.ports {
		byMap[f.mapOf(r)] = append(byMap[f.mapOf(r)], r.element())
	}
	return f.queueBySetLocked(f.portMaps(), byMap, false)
}

// loadPortsLocked learns the published ports of a table kept from an
// earlier run. An element that does not decode is reported and left for
// ReconcilePorts to remove. f.mu must be held.
func (f *Firewall) loadPortsLocked() error {
	f.ports = map[portKey]PortRule{}
	f.inherited = map[portKey]bool{}
	for _, m := range f.portMaps() {
		elems, err := f.conn.GetSetElements(m)
		if err != nil {
			return types.InternalErrorf("firewall: init: reading the elements of %s: %w", m.Name, err)
		}
		for _, e := range elems {
			r, err := portRuleOf(m.Name, e)
			if err != nil {
				f.logger.Warn("firewall: ignoring an undecodable published-port element", "map", m.Name, "error", err)
				continue
			}
			f.ports[r.key()] = r
			f.inherited[r.key()] = true
		}
	}
	return nil
}

// Registers of the port rules. A concatenation is loaded into consecutive
// 4-byte registers (NFT_REG32_00 is the first 4 bytes of reg1), each part
// padded to 4 bytes: an IPv4 address takes one, an IPv6 address four.
const (
	reg32n0 = unix.NFT_REG32_00
)

// portRules returns the rules of chain c (prerouting or output).
func (f *Firewall) portRules(c *nftables.Chain) []*nftables.Rule {
	var rules []*nftables.Rule
	if c == f.prerouting {
		// iifname @bridges ip daddr 127.0.0.0/8 drop
		rules = append(rules, f.rule(c, comment("no loopback from containers (route_localnet)"),
			loadMeta(expr.MetaKeyIIFNAME), lookup(f.bridges, reg1, false),
			loadMeta(expr.MetaKeyNFPROTO), cmpReg(expr.CmpOpEq, []byte{unix.NFPROTO_IPV4}),
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1},
			cmpReg(expr.CmpOpEq, []byte{127}),
			verdict(expr.VerdictDrop)))
	}
	for _, v6 := range []bool{false, true} {
		family, offset, size := byte(unix.NFPROTO_IPV4), uint32(16), uint32(4)
		specific, anyMap := f.ports4, f.ports4Any
		if v6 {
			family, offset, size = unix.NFPROTO_IPV6, 24, 16
			specific, anyMap = f.ports6, f.ports6Any
		}
		nfproto := []expr.Any{loadMeta(expr.MetaKeyNFPROTO), cmpReg(expr.CmpOpEq, []byte{family})}
		// The key: [daddr] . l4proto . dport, each in the next free 4-byte
		// registers; the value (address . port) comes back from reg1 on.
		key := func(withAddr bool) []expr.Any {
			next := uint32(reg32n0)
			var e []expr.Any
			if withAddr {
				e = append(e, &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size})
				next += size / 4
			}
			e = append(e,
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: next},
				&expr.Payload{DestRegister: next + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
			return e
		}
		dnat := &expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(family), RegAddrMin: reg1,
			RegProtoMin: reg32n0 + size/4, Specified: true}
		lookupMap := func(m *nftables.Set) *expr.Lookup {
			return &expr.Lookup{SourceRegister: reg1, SetName: m.Name, SetID: m.ID, DestRegister: reg1, IsDestRegSet: true}
		}
		r := append(slices.Clone(nfproto), key(true)...)
		r = append(r, lookupMap(specific), dnat)
		rules = append(rules, f.rule(c, nil, r...))
		r = append(slices.Clone(nfproto), &expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
			cmpReg(expr.CmpOpEq, binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)))
		r = append(r, key(false)...)
		r = append(r, lookupMap(anyMap), dnat)
		rules = append(rules, f.rule(c, nil, r...))
	}
	return rules
}

// loopbackMasqRule is the postrouting rule that masquerades a connection
// from the host's loopback address to a published port:
// oifname @bridges ip saddr 127.0.0.0/8 masquerade.
func (f *Firewall) loopbackMasqRule() *nftables.Rule {
	return f.rule(f.postrouting, comment("published ports on 127.0.0.1"),
		loadMeta(expr.MetaKeyOIFNAME), lookup(f.bridges, reg1, false),
		loadMeta(expr.MetaKeyNFPROTO), cmpReg(expr.CmpOpEq, []byte{unix.NFPROTO_IPV4}),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 1},
		cmpReg(expr.CmpOpEq, []byte{127}),
		&expr.Masq{})
}

// queuePortRulesLocked rewrites the rules of prerouting and output. f.mu
// must be held.
func (f *Firewall) queuePortRulesLocked() {
	for _, c := range []*nftables.Chain{f.prerouting, f.output} {
		f.conn.FlushChain(c)
		for _, r := range f.portRules(c) {
			f.conn.AddRule(r)
		}
	}
}
