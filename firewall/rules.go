package firewall

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/types"
)

// NetworkRules describes the firewall rules of one bridge network.
type NetworkRules struct {
	Bridge     string         // bridge interface name
	Subnets    []netip.Prefix // v4 and v6 subnets of the network
	ICC        bool           // inter-container traffic on the same bridge allowed
	Masquerade bool           // masquerade traffic from the subnets leaving via another interface
	Internal   bool           // internal network: nothing in or out except within the bridge
}

// ifNameSize is IFNAMSIZ: interface names are compared as 16 zero-padded
// bytes.
const ifNameSize = unix.IFNAMSIZ

// validateBridge checks that name is a usable interface name.
func validateBridge(name string) error {
	switch {
	case name == "":
		return types.InvalidParameterErrorf("firewall: empty bridge name")
	case len(name) >= ifNameSize:
		return types.InvalidParameterErrorf("firewall: bridge name %q is longer than %d bytes", name, ifNameSize-1)
	case name == "." || name == "..":
		return types.InvalidParameterErrorf("firewall: bridge name %q is not an interface name", name)
	case strings.ContainsAny(name, "/:\x00 \t\n\r"):
		return types.InvalidParameterErrorf("firewall: bridge name %q contains a character not allowed in interface names", name)
	}
	return nil
}

// normalize validates r and returns a copy whose subnets are masked, sorted
// and free of duplicates, so that equal networks produce equal batches.
func (r NetworkRules) normalize() (NetworkRules, error) {
	if err := validateBridge(r.Bridge); err != nil {
		return NetworkRules{}, err
	}
	subnets := make([]netip.Prefix, 0, len(r.Subnets))
	for _, p := range r.Subnets {
		if !p.IsValid() {
			return NetworkRules{}, types.InvalidParameterErrorf("firewall: network %s: invalid subnet %v", r.Bridge, p)
		}
		if p.Addr().Is4In6() {
			return NetworkRules{}, types.InvalidParameterErrorf("firewall: network %s: subnet %s is an IPv4-mapped IPv6 prefix; give it as IPv4", r.Bridge, p)
		}
		subnets = append(subnets, p.Masked())
	}
	slices.SortFunc(subnets, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	r.Subnets = slices.Compact(subnets)
	return r, nil
}

// Names of the per-network chains.
func fwdInChain(bridge string) string  { return "fwd-in-" + bridge }
func fwdOutChain(bridge string) string { return "fwd-out-" + bridge }
func natChain(bridge string) string    { return "nat-" + bridge }

// ifname returns name as the kernel compares interface names.
func ifname(name string) []byte {
	b := make([]byte, ifNameSize)
	copy(b, name)
	return b
}

// comment returns rule user data that nft shows as `comment "text"`.
func comment(text string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, text)
}

func verdict(kind expr.VerdictKind) *expr.Verdict { return &expr.Verdict{Kind: kind} }

func loadMeta(key expr.MetaKey) *expr.Meta { return &expr.Meta{Key: key, Register: 1} }

func cmpReg(op expr.CmpOp, data []byte) *expr.Cmp {
	return &expr.Cmp{Op: op, Register: 1, Data: data}
}

// vmapLookup jumps through the verdict map s with the key in register 1.
func vmapLookup(s *nftables.Set) *expr.Lookup {
	return &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, DestRegister: 0, IsDestRegSet: true}
}

// forwardRules are the rules of the base forward chain: accept replies,
// then dispatch to the chains of the bridge a packet comes from or goes to.
func (f *Firewall) forwardRules() []*nftables.Rule {
	zero := []byte{0, 0, 0, 0}
	return []*nftables.Rule{
		f.rule(f.forward, nil, // ct state established,related accept
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  zero},
			cmpReg(expr.CmpOpNeq, zero),
			verdict(expr.VerdictAccept)),
		f.rule(f.forward, nil, loadMeta(expr.MetaKeyIIFNAME), vmapLookup(f.fwdIn)),
		f.rule(f.forward, nil, loadMeta(expr.MetaKeyOIFNAME), vmapLookup(f.fwdOut)),
		f.forwardDropRule(),
	}
}

// postroutingRules dispatch by source address to the nat chain of the
// network whose subnet it is in.
func (f *Firewall) postroutingRules() []*nftables.Rule {
	saddr := func(family byte, offset, length uint32, m *nftables.Set) *nftables.Rule {
		return f.rule(f.postrouting, nil,
			loadMeta(expr.MetaKeyNFPROTO),
			cmpReg(expr.CmpOpEq, []byte{family}),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: length},
			vmapLookup(m))
	}
	return []*nftables.Rule{
		saddr(unix.NFPROTO_IPV4, 12, 4, f.masq4),
		saddr(unix.NFPROTO_IPV6, 8, 16, f.masq6),
	}
}

// networkChains returns the three regular chains of a network.
func (f *Firewall) networkChains(bridge string) (in, out, nat *nftables.Chain) {
	return &nftables.Chain{Name: fwdInChain(bridge), Table: f.table},
		&nftables.Chain{Name: fwdOutChain(bridge), Table: f.table},
		&nftables.Chain{Name: natChain(bridge), Table: f.table}
}

// networkRules returns the rules of the chains of network r.
//
// fwd-in-<br> sees every forwarded packet that entered through the bridge
// and always ends in a verdict; fwd-out-<br> sees the packets that leave
// through the bridge after entering elsewhere; nat-<br> sees packets whose
// source is in one of the network's subnets.
func (f *Firewall) networkRules(r NetworkRules, in, out, nat *nftables.Chain) []*nftables.Rule {
	br := ifname(r.Bridge)
	var rules []*nftables.Rule
	if r.ICC {
		rules = append(rules, f.rule(in, nil, loadMeta(expr.MetaKeyOIFNAME), cmpReg(expr.CmpOpEq, br), verdict(expr.VerdictAccept)))
	} else {
		rules = append(rules, f.rule(in, comment("icc disabled"), loadMeta(expr.MetaKeyOIFNAME), cmpReg(expr.CmpOpEq, br), verdict(expr.VerdictDrop)))
	}
	if r.Internal {
		rules = append(rules,
			f.rule(in, comment("internal network"), verdict(expr.VerdictDrop)),
			f.rule(out, comment("internal network"), verdict(expr.VerdictDrop)))
	} else {
		rules = append(rules,
			f.rule(in, comment("isolate networks"), loadMeta(expr.MetaKeyOIFNAME), &expr.Lookup{SourceRegister: 1, SetName: f.bridges.Name, SetID: f.bridges.ID}, verdict(expr.VerdictDrop)),
			f.rule(in, nil, verdict(expr.VerdictAccept)))
	}
	if r.Masquerade && !r.Internal {
		rules = append(rules, f.rule(nat, nil, loadMeta(expr.MetaKeyOIFNAME), cmpReg(expr.CmpOpNeq, br), &expr.Masq{}))
	}
	return rules
}

func (f *Firewall) rule(c *nftables.Chain, udata []byte, exprs ...expr.Any) *nftables.Rule {
	return &nftables.Rule{Table: f.table, Chain: c, Exprs: exprs, UserData: udata}
}
