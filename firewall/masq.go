package firewall

import (
	"bytes"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// masqElements returns the elements of the masq4 and masq6 maps that send
// traffic from r's subnets to its nat chain. Each subnet is an interval: a
// start element carrying the verdict (and the bridge name as comment, so
// that a later process can tell whose it is) and an end element one past
// the last address, left out when the subnet reaches the top of the address
// space.
func masqElements(r NetworkRules) (v4, v6 []nftables.SetElement) {
	if !r.Masquerade || r.Internal {
		return nil, nil
	}
	jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: natChainPrefix + r.Bridge}
	for _, p := range r.Subnets {
		elems := []nftables.SetElement{{Key: p.Addr().AsSlice(), VerdictData: jump, Comment: r.Bridge}}
		if next := lastAddr(p).Next(); next.IsValid() {
			elems = append(elems, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
		}
		if p.Addr().Is4() {
			v4 = append(v4, elems...)
		} else {
			v6 = append(v6, elems...)
		}
	}
	return v4, v6
}

// lastAddr returns the highest address of the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// keysOnly strips the data of elements about to be deleted: the kernel
// finds elements by key and flags.
func keysOnly(elems []nftables.SetElement) []nftables.SetElement {
	out := make([]nftables.SetElement, len(elems))
	for i, e := range elems {
		out[i] = nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd}
	}
	return out
}

// ownersOfIntervals groups the elements of an interval map by the comment
// (bridge name) of each start element; an end element belongs to the start
// element just below it.
func ownersOfIntervals(elems []nftables.SetElement) map[string][]nftables.SetElement {
	elems = slices.Clone(elems)
	slices.SortFunc(elems, func(a, b nftables.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		// An interval ending where the next one starts sorts first.
		switch {
		case a.IntervalEnd == b.IntervalEnd:
			return 0
		case a.IntervalEnd:
			return -1
		default:
			return 1
		}
	})
	owners := map[string][]nftables.SetElement{}
	for i, e := range elems {
		if e.IntervalEnd || e.Comment == "" {
			continue
		}
		owned := []nftables.SetElement{{Key: e.Key}}
		if i+1 < len(elems) && elems[i+1].IntervalEnd {
			owned = append(owned, nftables.SetElement{Key: elems[i+1].Key, IntervalEnd: true})
		}
		owners[e.Comment] = append(owners[e.Comment], owned...)
	}
	return owners
}
