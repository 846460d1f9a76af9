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
	// RoutedIPv4 and RoutedIPv6 make the family routed: its subnets are
	// not masqueraded, and from outside the bridge only the open ports
	// (AddOpenPorts), ICMP and replies reach its containers (routed.go).
	RoutedIPv4, RoutedIPv6 bool
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

// lookup matches when the key in register reg is in set s, or with
// invert when it is not.
func lookup(s *nftables.Set, reg uint32, invert bool) *expr.Lookup {
	return &expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID, Invert: invert}
}

// vmapLookup takes the verdict of the key in register reg from the verdict
// map s.
func vmapLookup(s *nftables.Set, reg uint32) *expr.Lookup {
	return &expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID, DestRegister: 0, IsDestRegSet: true}
}

// Registers: reg1 and reg2 are the first two 16-byte registers; a
// concatenated key of two interface names is loaded into both, as nft
// itself does.
const (
	reg1 = 1
	reg2 = 2
)

// forwardRules are the rules of the base forward chain: accept replies,
// then decide by the sets what a packet entering or leaving a bridge of
// ours may do. Between the two ends of one bridge the icc map decides;
// nothing enters or leaves an internal network's bridge; nothing goes from
// one of our bridges to another (isolation); the rest from a bridge goes
// out. Traffic into a bridge from elsewhere is left to what follows.
func (f *Firewall) forwardRules() []*nftables.Rule {
	zero := []byte{0, 0, 0, 0}
	iifname := func() *expr.Meta { return loadMeta(expr.MetaKeyIIFNAME) }
	oifname := func(reg uint32) *expr.Meta { return &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg} }
	rules := []*nftables.Rule{
		f.rule(f.forward, nil, // ct state established,related accept
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  zero},
			cmpReg(expr.CmpOpNeq, zero),
			verdict(expr.VerdictAccept)),
		f.rule(f.forward, nil, iifname(), oifname(reg2), vmapLookup(f.icc, reg1)),
		f.rule(f.forward, comment("internal network"), iifname(), lookup(f.internal, reg1, false), verdict(expr.VerdictDrop)),
		f.rule(f.forward, comment("internal network"), oifname(reg1), lookup(f.internal, reg1, false), verdict(expr.VerdictDrop)),
		f.rule(f.forward, comment("isolate networks"), iifname(), lookup(f.bridges, reg1, false),
			oifname(reg1), lookup(f.bridges, reg1, false), verdict(expr.VerdictDrop)),
		f.rule(f.forward, nil, iifname(), lookup(f.bridges, reg1, false), verdict(expr.VerdictAccept)),
	}
	rules = append(rules, f.routedRules()...)
	return append(rules, f.forwardDropRule())
}

func (f *Firewall) rule(c *nftables.Chain, udata []byte, exprs ...expr.Any) *nftables.Rule {
	return &nftables.Rule{Table: f.table, Chain: c, Exprs: exprs, UserData: udata}
}
