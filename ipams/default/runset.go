package defaultipam

import "net/netip"

// run is a range of allocated addresses, first to last inclusive.
type run struct {
	first, last netip.Addr
}

// runNode is a node of the treap of runs, ordered by first.
type runNode struct {
	run
	prio        uint64
	left, right *runNode
}

// runSet is the set of allocated addresses of a pool, kept as maximal runs
// of consecutive addresses in a treap: memory grows with the number of runs
// (at most the number of allocated addresses), not with the pool's size, and
// every operation is O(log n) expected.
//
// Invariant: runs neither overlap nor touch (a.last.Next() < b.first for
// consecutive runs a, b), so the address after a run is always free.
type runSet struct {
	root *runNode
	// runs is the number of runs; addrs the number of allocated addresses.
	runs, addrs int
	// seed drives the deterministic priorities of new nodes.
	seed uint64
}

// nextPrio returns a pseudo-random priority (splitmix64).
func (s *runSet) nextPrio() uint64 {
	s.seed += 0x9e3779b97f4a7c15
	z := s.seed
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// floor returns the run with the greatest first <= a, or nil.
func (s *runSet) floor(a netip.Addr) *runNode {
	var best *runNode
	for n := s.root; n != nil; {
		if a.Less(n.first) {
			n = n.left
		} else {
			best, n = n, n.right
		}
	}
	return best
}

// after returns the run with the smallest first > a, or nil.
func (s *runSet) after(a netip.Addr) *runNode {
	var best *runNode
	for n := s.root; n != nil; {
		if a.Less(n.first) {
			best, n = n, n.left
		} else {
			n = n.right
		}
	}
	return best
}

// containing returns the run holding a, or nil.
func (s *runSet) containing(a netip.Addr) *runNode {
	if n := s.floor(a); n != nil && !n.last.Less(a) {
		return n
	}
	return nil
}

// firstFree returns the lowest address in [lo, hi] not in the set.
func (s *runSet) firstFree(lo, hi netip.Addr) (netip.Addr, bool) {
	a := lo
	if n := s.containing(lo); n != nil {
		a = n.last.Next() // free: runs never touch
	}
	if !a.IsValid() || hi.Less(a) {
		return netip.Addr{}, false
	}
	return a, true
}

// add inserts a, merging it with neighbouring runs. It reports false when a
// is already in the set.
func (s *runSet) add(a netip.Addr) bool {
	prev := s.floor(a)
	if prev != nil && !prev.last.Less(a) {
		return false
	}
	next := s.after(a)
	joinPrev := prev != nil && prev.last.Next() == a
	joinNext := next != nil && a.Next() == next.first
	switch {
	case joinPrev && joinNext:
		prev.last = next.last
		s.root = s.deleteNode(s.root, next.first)
		s.runs--
	case joinPrev:
		prev.last = a
	case joinNext:
		// Moving next's key down to a keeps the order: nothing lies
		// between prev and next.
		next.first = a
	default:
		s.root = s.insertNode(s.root, &runNode{run: run{a, a}, prio: s.nextPrio()})
		s.runs++
	}
	s.addrs++
	return true
}

// remove deletes a, splitting its run if needed. It reports false when a is
// not in the set.
func (s *runSet) remove(a netip.Addr) bool {
	n := s.containing(a)
	if n == nil {
		return false
	}
	switch {
	case n.first == a && n.last == a:
		s.root = s.deleteNode(s.root, a)
		s.runs--
	case n.first == a:
		n.first = a.Next() // still above the previous run
	case n.last == a:
		n.last = a.Prev()
	default:
		tail := &runNode{run: run{a.Next(), n.last}, prio: s.nextPrio()}
		n.last = a.Prev()
		s.root = s.insertNode(s.root, tail)
		s.runs++
	}
	s.addrs--
	return true
}

// insertNode inserts nn (whose key is not in the tree) under t and returns
// the new root of that subtree.
func (s *runSet) insertNode(t, nn *runNode) *runNode {
	if t == nil {
		return nn
	}
	if nn.first.Less(t.first) {
		t.left = s.insertNode(t.left, nn)
		if t.left.prio > t.prio {
			t = rotateRight(t)
		}
	} else {
		t.right = s.insertNode(t.right, nn)
		if t.right.prio > t.prio {
			t = rotateLeft(t)
		}
	}
	return t
}

// deleteNode removes the node keyed first from under t and returns the new
// root of that subtree.
func (s *runSet) deleteNode(t *runNode, first netip.Addr) *runNode {
	if t == nil {
		return nil
	}
	switch c := first.Compare(t.first); {
	case c < 0:
		t.left = s.deleteNode(t.left, first)
	case c > 0:
		t.right = s.deleteNode(t.right, first)
	default:
		return merge(t.left, t.right)
	}
	return t
}

// merge joins two treaps whose keys are all ordered l < r.
func merge(l, r *runNode) *runNode {
	switch {
	case l == nil:
		return r
	case r == nil:
		return l
	case l.prio > r.prio:
		l.right = merge(l.right, r)
		return l
	default:
		r.left = merge(l, r.left)
		return r
	}
}

func rotateRight(t *runNode) *runNode {
	l := t.left
	t.left, l.right = l.right, t
	return l
}

func rotateLeft(t *runNode) *runNode {
	r := t.right
	t.right, r.left = r.left, t
	return r
}
