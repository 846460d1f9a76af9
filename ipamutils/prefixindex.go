package ipamutils

import (
	"net/netip"
	"slices"
)

// PrefixIndex finds, among prefixes that may nest or repeat (host routes,
// the pools of IPAM drivers other than the default one), one that
// overlaps a given prefix without scanning them all: one containing it is
// found by its exact value for each shorter length, one inside it by a
// binary search on the addresses. Each prefix carries a value (the network
// that holds it, say). Prefixes must be masked. The zero value is empty
// and ready; it is not safe for concurrent changes.
type PrefixIndex[V comparable] struct {
	exact  map[netip.Prefix][]V
	sorted []prefixEntry[V] // by address, then length
}

type prefixEntry[V comparable] struct {
	p netip.Prefix
	v V
}

func compareEntries[V comparable](a, b prefixEntry[V]) int {
	if c := a.p.Addr().Compare(b.p.Addr()); c != 0 {
		return c
	}
	return a.p.Bits() - b.p.Bits()
}

// NewPrefixIndex indexes ps, each with the value v, sorting once: adding
// them one by one would cost O(n²).
func NewPrefixIndex[V comparable](ps []netip.Prefix, v V) *PrefixIndex[V] {
	x := &PrefixIndex[V]{exact: make(map[netip.Prefix][]V, len(ps)), sorted: make([]prefixEntry[V], 0, len(ps))}
	for _, p := range ps {
		x.exact[p] = append(x.exact[p], v)
		x.sorted = append(x.sorted, prefixEntry[V]{p, v})
	}
	slices.SortFunc(x.sorted, compareEntries[V])
	return x
}

// Len returns how many prefixes the index holds.
func (x *PrefixIndex[V]) Len() int { return len(x.sorted) }

// Add indexes p with the value v.
func (x *PrefixIndex[V]) Add(p netip.Prefix, v V) {
	if x.exact == nil {
		x.exact = map[netip.Prefix][]V{}
	}
	x.exact[p] = append(x.exact[p], v)
	e := prefixEntry[V]{p, v}
	i, _ := slices.BinarySearchFunc(x.sorted, e, compareEntries[V])
	x.sorted = slices.Insert(x.sorted, i, e)
}

// Remove drops p with the value v.
func (x *PrefixIndex[V]) Remove(p netip.Prefix, v V) {
	x.exact[p] = slices.DeleteFunc(x.exact[p], func(o V) bool { return o == v })
	if len(x.exact[p]) == 0 {
		delete(x.exact, p)
	}
	x.sorted = slices.DeleteFunc(x.sorted, func(e prefixEntry[V]) bool { return e.p == p && e.v == v })
}

// Overlapping returns a prefix of the index overlapping want, and its
// value: one that contains want, or one that starts inside it (the first
// at or after want's address; if that one is outside want, so are all
// after it).
func (x *PrefixIndex[V]) Overlapping(want netip.Prefix) (netip.Prefix, V, bool) {
	for bits := 0; bits <= want.Bits(); bits++ {
		if q, err := want.Addr().Prefix(bits); err == nil {
			if vs := x.exact[q]; len(vs) > 0 {
				return q, vs[0], true
			}
		}
	}
	i, _ := slices.BinarySearchFunc(x.sorted, want.Addr(), func(e prefixEntry[V], a netip.Addr) int { return e.p.Addr().Compare(a) })
	if i < len(x.sorted) && want.Contains(x.sorted[i].p.Addr()) {
		return x.sorted[i].p, x.sorted[i].v, true
	}
	var zero V
	return netip.Prefix{}, zero, false
}
