package defaultipam

import (
	"testing"

	"github.com/netkit/libnetwork/ipamapi"
)

// benchRequestRelease measures one RequestAddress and ReleaseAddress of the
// lowest free address in pool with n addresses already allocated.
func benchRequestRelease(b *testing.B, pool string, n int) {
	a := newAllocator(b, Config{})
	id := mustPool(b, a, pool, "")
	for range n {
		if _, _, err := a.RequestAddress(id, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	// Punch holes so the set is not a single run.
	p := a.spaces[ipamapi.LocalDefault].pools[0]
	for a2, i := p.first, 0; i < n; a2, i = a2.Next(), i+1 {
		if i%10 == 5 {
			if err := a.ReleaseAddress(id, a2.AsSlice()); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		nw, _, err := a.RequestAddress(id, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := a.ReleaseAddress(id, nw.IP); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRequestReleaseV4Slash16With10k(b *testing.B) {
	benchRequestRelease(b, "10.0.0.0/16", 10_000)
}

func BenchmarkRequestReleaseV6Slash64With100k(b *testing.B) {
	benchRequestRelease(b, "2001:db8::/64", 100_000)
}

// BenchmarkRequestV6Sequential measures filling a /64, one address at a
// time, from empty.
func BenchmarkRequestV6Sequential(b *testing.B) {
	a := newAllocator(b, Config{})
	id := mustPool(b, a, "2001:db8::/64", "")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.RequestAddress(id, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
