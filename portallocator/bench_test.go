package portallocator

import (
	"testing"

	"github.com/netkit/libnetwork/types"
)

// BenchmarkAllocateRelease measures one Allocate and one Release: the
// thread switch into the namespace, the table, the sockets.
func BenchmarkAllocateRelease(b *testing.B) {
	for _, bc := range []struct {
		name  string
		group []Request
	}{
		{"fixed/tcp4", []Request{{Proto: types.TCP, HostIP: any4, HostPort: 8080}}},
		{"ephemeral/tcp4", []Request{{Proto: types.TCP, HostIP: any4}}},
		{"ephemeral/tcp+udp/v4+v6", []Request{
			{Proto: types.TCP, HostIP: any4}, {Proto: types.TCP, HostIP: any6},
			{Proto: types.UDP, HostIP: any4}, {Proto: types.UDP, HostIP: any6},
		}},
		{"range/udp4", []Request{{Proto: types.UDP, HostIP: any4, HostPort: 20000, HostPortEnd: 20999}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ns := newNamespace(b)
			a := newAllocator(b, ns)
			b.ReportAllocs()
			for b.Loop() {
				al, err := a.Allocate(bc.group...)
				if err != nil {
					b.Fatal(err)
				}
				a.Release(al)
			}
		})
	}
}

// BenchmarkAllocateWhileHolding measures Allocate of an ephemeral port
// while 1000 ports of the range are already held, as on a busy host.
func BenchmarkAllocateWhileHolding(b *testing.B) {
	ns := newNamespace(b)
	a := newAllocator(b, ns)
	for range 1000 {
		if _, err := a.Allocate(Request{Proto: types.TCP, HostIP: any4}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		al, err := a.Allocate(Request{Proto: types.TCP, HostIP: any4})
		if err != nil {
			b.Fatal(err)
		}
		a.Release(al)
	}
}

// BenchmarkAllocateGroups measures two groups (tcp on 0.0.0.0 and ::, one
// ephemeral port each) allocated and released with one namespace switch,
// against two Allocate calls.
func BenchmarkAllocateGroups(b *testing.B) {
	group := []Request{{Proto: types.TCP, HostIP: any4}, {Proto: types.TCP, HostIP: any6}}
	b.Run("one-call", func(b *testing.B) {
		a := newAllocator(b, newNamespace(b))
		for b.Loop() {
			als, err := a.AllocateGroups(group, group)
			if err != nil {
				b.Fatal(err)
			}
			a.Release(als[0])
			a.Release(als[1])
		}
	})
	b.Run("two-calls", func(b *testing.B) {
		a := newAllocator(b, newNamespace(b))
		for b.Loop() {
			x, err := a.Allocate(group...)
			if err != nil {
				b.Fatal(err)
			}
			y, err := a.Allocate(group...)
			if err != nil {
				b.Fatal(err)
			}
			a.Release(x)
			a.Release(y)
		}
	})
}
