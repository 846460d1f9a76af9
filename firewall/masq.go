package firewall

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Masquerade is a pair of hash sets and one postrouting rule per prefix
// length in use (family and number of bits, a masqLen): subnets4_<bits>
// holds the masquerading subnets of that length, masq4_<bits> the same
// subnets each concatenated with its network's bridge, and the rule
//
//	ip saddr & <mask> @subnets4_<bits> ip saddr & <mask> . oifname != @masq4_<bits> masquerade
//
// masquerades a packet from one of those subnets unless it leaves through
// that subnet's own bridge (likewise subnets6_ and masq6_ for IPv6). Adding
// or deleting a network adds or deletes hash elements, which costs the
// kernel the same whatever the number of networks; the sets and the rule of
// a length are created with the first subnet of that length and removed
// with the last. Subnets of the library's networks never overlap, so a
// source address is in at most one subnet of all the sets.

// masqLen is one prefix length of one family that has masquerade sets.
type masqLen struct {
	v6   bool
	bits int
}

// lenOf returns the masqLen of subnet p.
func lenOf(p netip.Prefix) masqLen { return masqLen{v6: !p.Addr().Is4(), bits: p.Bits()} }

func (k masqLen) family() string {
	if k.v6 {
		return "6"
	}
	return "4"
}

// Names of the per-length sets start with these.
const (
	subnetsSetPrefix = "subnets"
	masqSetPrefix    = "masq"
)

// masqSets returns the subnets set and the subnet . bridge set of k. Their
// IDs only need to be unique within a batch: they sit above the base
// sets' IDs.
func (f *Firewall) masqSets(k masqLen) (subnets, pairs *nftables.Set) {
	id := uint32(100 + 4*k.bits)
	addr := nftables.TypeIPAddr
	if k.v6 {
		id += 2
		addr = nftables.TypeIP6Addr
	}
	suffix := k.family() + "_" + strconv.Itoa(k.bits)
	subnets = &nftables.Set{Table: f.table, ID: id, Name: subnetsSetPrefix + suffix, KeyType: addr}
	pairs = &nftables.Set{Table: f.table, ID: id + 1, Name: masqSetPrefix + suffix,
		KeyType: nftables.MustConcatSetType(addr, nftables.TypeIFName), Concatenation: true}
	return subnets, pairs
}

// parseMasqSetName returns the masqLen of a per-length set's name and
// whether it is the pairs set; ok is false for any other name.
func parseMasqSetName(name string) (k masqLen, pairs, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(name, subnetsSetPrefix):
		rest = name[len(subnetsSetPrefix):]
	case strings.HasPrefix(name, masqSetPrefix):
		rest, pairs = name[len(masqSetPrefix):], true
	default:
		return masqLen{}, false, false
	}
	fam, bits, found := strings.Cut(rest, "_")
	n, err := strconv.Atoi(bits)
	if !found || err != nil || strconv.Itoa(n) != bits {
		return masqLen{}, false, false
	}
	switch {
	case fam == "4" && n >= 0 && n <= 32:
	case fam == "6" && n >= 0 && n <= 128:
		k.v6 = true
	default:
		return masqLen{}, false, false
	}
	k.bits = n
	return k, pairs, true
}

// masqSubnets returns the subnets of r whose traffic is masqueraded: none
// of a routed family.
func masqSubnets(r NetworkRules) []netip.Prefix {
	if !r.Masquerade || r.Internal {
		return nil
	}
	var out []netip.Prefix
	for _, p := range r.Subnets {
		if (p.Addr().Is4() && r.RoutedIPv4) || (p.Addr().Is6() && r.RoutedIPv6) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// masqElems holds elements of the per-length sets, by length.
type masqElems map[masqLen]*[2][]nftables.SetElement

// add adds the elements of subnets, masqueraded for bridge.
func (m masqElems) add(bridge string, subnets []netip.Prefix) {
	for _, p := range subnets {
		k := lenOf(p)
		e := m[k]
		if e == nil {
			e = new([2][]nftables.SetElement)
			m[k] = e
		}
		addr := p.Addr().AsSlice()
		e[0] = append(e[0], nftables.SetElement{Key: addr})
		e[1] = append(e[1], nftables.SetElement{Key: append(addr, ifname(bridge)...)})
	}
}

// queueMasqElementsLocked queues the addition, or with del the deletion,
// of m: one message per set. The sets must exist by then in the batch.
// f.mu must be held.
func (f *Firewall) queueMasqElementsLocked(m masqElems, del bool) error {
	for k, e := range m {
		subnets, pairs := f.masqSets(k)
		for i, s := range []*nftables.Set{subnets, pairs} {
			var err error
			if del {
				err = f.conn.SetDeleteElements(s, e[i])
			} else {
				err = f.conn.SetAddElements(s, e[i])
			}
			if err != nil {
				return fmt.Errorf("queuing elements of %s: %w", s.Name, err)
			}
		}
	}
	return nil
}

// masqLens returns the lengths that count subnets, IPv4 first, then by
// number of bits.
func masqLens(count map[masqLen]int) []masqLen {
	var lens []masqLen
	for k, n := range count {
		if n > 0 {
			lens = append(lens, k)
		}
	}
	slices.SortFunc(lens, func(a, b masqLen) int {
		if a.v6 != b.v6 {
			if a.v6 {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.bits, b.bits)
	})
	return lens
}

// queueMasqRulesLocked queues the per-length sets of lens (kept if they
// exist) and rewrites the postrouting chain to hold exactly their rules.
// f.mu must be held.
func (f *Firewall) queueMasqRulesLocked(lens []masqLen) {
	for _, k := range lens {
		subnets, pairs := f.masqSets(k)
		// AddSet fails only for anonymous, non-constant sets.
		_ = f.conn.AddSet(subnets, nil)
		_ = f.conn.AddSet(pairs, nil)
	}
	f.conn.FlushChain(f.postrouting)
	f.conn.AddRule(f.loopbackMasqRule())
	for _, k := range lens {
		f.conn.AddRule(f.hairpinRule(k))
		f.conn.AddRule(f.masqRule(k))
	}
}

// queueMasqCountLocked queues what turns the per-length sets and rules of
// the lengths counted in f.masqCount into those counted in next: nothing
// if the same lengths are in use. Call it after queuing the elements to
// delete and before queuing the elements to add. f.mu must be held.
func (f *Firewall) queueMasqCountLocked(next map[masqLen]int) {
	before, after := masqLens(f.masqCount), masqLens(next)
	if slices.Equal(before, after) {
		return
	}
	f.queueMasqRulesLocked(after)
	for _, k := range before {
		if next[k] == 0 {
			subnets, pairs := f.masqSets(k)
			f.conn.DelSet(subnets)
			f.conn.DelSet(pairs)
		}
	}
}

// countAfter returns f.masqCount with the subnets of old taken out and
// those of new put in.
func (f *Firewall) countAfter(old, new []netip.Prefix) map[masqLen]int {
	next := make(map[masqLen]int, len(f.masqCount)+1)
	for k, n := range f.masqCount {
		next[k] = n
	}
	for _, p := range old {
		next[lenOf(p)]--
	}
	for _, p := range new {
		next[lenOf(p)]++
	}
	for k, n := range next {
		if n <= 0 {
			delete(next, k)
		}
	}
	return next
}

// masqRule returns the postrouting rule of length k.
func (f *Firewall) masqRule(k masqLen) *nftables.Rule {
	return f.rule(f.postrouting, nil, append(f.masqMatch(k, true), &expr.Masq{})...)
}

// hairpinRule returns the postrouting rule of length k that masquerades a
// connection to a published port sent back into the network it came from:
// ct status dnat ip saddr & <mask> . oifname @masq4_<bits> masquerade.
func (f *Firewall) hairpinRule(k masqLen) *nftables.Rule {
	zero := []byte{0, 0, 0, 0}
	exprs := []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ctStatusDNAT), Xor: zero},
		cmpReg(expr.CmpOpNeq, zero),
	}
	exprs = append(exprs, f.masqMatch(k, false)...)
	return f.rule(f.postrouting, comment("hairpin to a published port"), append(exprs, &expr.Masq{})...)
}

// masqMatch returns the match of the masquerade rule of length k: with
// outside, a packet from one of the subnets leaving through another
// interface than the subnet's bridge; without, one leaving through it.
func (f *Firewall) masqMatch(k masqLen, outside bool) []expr.Any {
	family, offset, size := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
	// The bridge name follows the address in the concatenation: in the
	// next 4-byte register after an IPv4 address (NFT_REG32_01), in the
	// second 16-byte one after an IPv6 address.
	oifReg := uint32(unix.NFT_REG32_01)
	if k.v6 {
		family, offset, size, oifReg = unix.NFPROTO_IPV6, 8, 16, reg2
	}
	mask := make([]byte, size)
	for i := 0; i < k.bits; i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	masked := func() []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: size, Mask: mask, Xor: make([]byte, size)},
		}
	}
	subnets, pairs := f.masqSets(k)
	exprs := []expr.Any{loadMeta(expr.MetaKeyNFPROTO), cmpReg(expr.CmpOpEq, []byte{family})}
	exprs = append(exprs, masked()...)
	exprs = append(exprs, lookup(subnets, reg1, false))
	exprs = append(exprs, masked()...)
	exprs = append(exprs, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: oifReg}, lookup(pairs, reg1, outside))
	return exprs
}

// ctStatusDNAT is IPS_DST_NAT, the conntrack status bit of a connection
// whose destination was translated.
const ctStatusDNAT = 1 << 5
