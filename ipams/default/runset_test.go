package defaultipam

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// walk calls f on each run in order until f returns false.
func (s *runSet) walk(f func(run) bool) {
	var rec func(n *runNode) bool
	rec = func(n *runNode) bool {
		return n == nil || (rec(n.left) && f(n.run) && rec(n.right))
	}
	rec(s.root)
}

// checkRunSet fails t unless s keeps its invariants: runs in order, neither
// overlapping nor touching, counts right, heap order of priorities.
func checkRunSet(t testing.TB, s *runSet) {
	t.Helper()
	var prev *run
	runs, addrs := 0, uint64(0)
	s.walk(func(r run) bool {
		if r.last.Less(r.first) {
			t.Fatalf("run %v-%v is reversed", r.first, r.last)
		}
		if prev != nil && !prev.last.Next().Less(r.first) {
			t.Fatalf("runs %v-%v and %v-%v overlap or touch", prev.first, prev.last, r.first, r.last)
		}
		runs++
		for a := r.first; ; a = a.Next() {
			addrs++
			if a == r.last || addrs > 1<<20 {
				break
			}
		}
		prev = &r
		return true
	})
	if runs != s.runs || int(addrs) != s.addrs {
		t.Fatalf("set counts %d runs, %d addresses; tree holds %d, %d", s.runs, s.addrs, runs, addrs)
	}
	var heap func(n *runNode)
	heap = func(n *runNode) {
		for _, c := range []*runNode{n.left, n.right} {
			if c != nil {
				if c.prio > n.prio {
					t.Fatalf("heap order broken at %v", c.first)
				}
				heap(c)
			}
		}
	}
	if s.root != nil {
		heap(s.root)
	}
}

func TestRunSetMerging(t *testing.T) {
	a := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, i}) }
	var s runSet
	for _, i := range []byte{5, 3, 4, 7, 1, 2, 6} {
		if !s.add(a(i)) {
			t.Fatalf("add(%v) = false", a(i))
		}
		checkRunSet(t, &s)
	}
	if s.runs != 1 || s.addrs != 7 {
		t.Fatalf("after adding 1..7: %d runs, %d addresses; want 1, 7", s.runs, s.addrs)
	}
	if s.add(a(4)) {
		t.Fatal("add of a present address = true")
	}
	for _, i := range []byte{4, 1, 7, 5} {
		if !s.remove(a(i)) {
			t.Fatalf("remove(%v) = false", a(i))
		}
		checkRunSet(t, &s)
	}
	if s.remove(a(4)) || s.remove(a(9)) {
		t.Fatal("remove of an absent address = true")
	}
	// Left: 2-3, 6.
	if s.runs != 2 || s.addrs != 3 {
		t.Fatalf("%d runs, %d addresses; want 2, 3", s.runs, s.addrs)
	}
	for _, tt := range []struct{ lo, hi, want byte }{{1, 9, 1}, {2, 9, 4}, {6, 9, 7}, {6, 6, 0}, {2, 3, 0}} {
		got, ok := s.firstFree(a(tt.lo), a(tt.hi))
		if (tt.want == 0) == ok || (ok && got != a(tt.want)) {
			t.Errorf("firstFree(%d, %d) = %v, %v; want %d", tt.lo, tt.hi, got, ok, tt.want)
		}
	}
}

// TestRunSetModel checks random operations against a map.
func TestRunSetModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := netip.MustParseAddr("fd00::")
	addr := func(i int) netip.Addr {
		b := base.As16()
		b[14], b[15] = byte(i>>8), byte(i)
		return netip.AddrFrom16(b)
	}
	const n = 300
	var s runSet
	model := map[int]bool{}
	for step := range 20000 {
		i := rng.IntN(n)
		if rng.IntN(2) == 0 {
			if got := s.add(addr(i)); got == model[i] {
				t.Fatalf("step %d: add(%d) = %v with present=%v", step, i, got, model[i])
			}
			model[i] = true
		} else {
			if got := s.remove(addr(i)); got != model[i] {
				t.Fatalf("step %d: remove(%d) = %v with present=%v", step, i, got, model[i])
			}
			delete(model, i)
		}
		want := -1
		for j := i; j < n; j++ {
			if !model[j] {
				want = j
				break
			}
		}
		got, ok := s.firstFree(addr(i), addr(n-1))
		if (want < 0) == ok || (ok && got != addr(want)) {
			t.Fatalf("step %d: firstFree(%d) = %v, %v; want %d", step, i, got, ok, want)
		}
		if step%1000 == 0 {
			checkRunSet(t, &s)
		}
	}
	checkRunSet(t, &s)
}

// TestRunSetTopOfSpace covers the last address, whose Next is invalid.
func TestRunSetTopOfSpace(t *testing.T) {
	top := netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	var s runSet
	s.add(top)
	s.add(top.Prev())
	checkRunSet(t, &s)
	if _, ok := s.firstFree(top.Prev(), top); ok {
		t.Fatal("firstFree found a free address in a full range at the top of the space")
	}
	if a, ok := s.firstFree(top.Prev().Prev(), top); !ok || a != top.Prev().Prev() {
		t.Fatalf("firstFree = %v, %v", a, ok)
	}
}
