package firewall

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/netkit/libnetwork/types"
)

// benchNetwork returns a masquerading dual-stack network numbered i.
func benchNetwork(i int) NetworkRules {
	return NetworkRules{
		Bridge: fmt.Sprintf("br-%d", i),
		Subnets: []netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)}), 64),
		},
		ICC:        i%2 == 0,
		Masquerade: true,
	}
}

// benchFirewall returns a Firewall on a fresh table holding present
// networks.
func benchFirewall(b *testing.B, present int) *Firewall {
	f := newFirewall(b)
	for i := range present {
		mustAdd(b, f, benchNetwork(i))
	}
	return f
}

// BenchmarkAddDeleteNetwork measures one AddNetwork and one DeleteNetwork
// with some networks already present: the cost must not grow with them.
func BenchmarkAddDeleteNetwork(b *testing.B) {
	for _, present := range []int{0, 100, 1000, 4000} {
		b.Run(fmt.Sprintf("present=%d", present), func(b *testing.B) {
			f := benchFirewall(b, present)
			r := benchNetwork(present)
			for b.Loop() {
				if err := f.AddNetwork(r); err != nil {
					b.Fatal(err)
				}
				if err := f.DeleteNetwork(r.Bridge); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAddNetwork measures AddNetwork alone of a new network with 100
// networks present; the delete that restores the count is not timed.
func BenchmarkAddNetwork(b *testing.B) {
	f := benchFirewall(b, 100)
	r := benchNetwork(100)
	for b.Loop() {
		if err := f.AddNetwork(r); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := f.DeleteNetwork(r.Bridge); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkReconcile measures restoring 100 networks at restart.
func BenchmarkReconcile(b *testing.B) {
	f := benchFirewall(b, 0)
	keep := make([]NetworkRules, 100)
	for i := range keep {
		keep[i] = benchNetwork(i)
	}
	for b.Loop() {
		if err := f.Reconcile(keep); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublish100Ports measures publishing and unpublishing the 100
// ports of one endpoint, each an element of the any map.
func BenchmarkPublish100Ports(b *testing.B) {
	f := newFirewall(b)
	rules := make([]PortRule, 100)
	for i := range rules {
		rules[i] = PortRule{Proto: types.TCP, HostIP: netip.IPv4Unspecified(), HostPort: uint16(20000 + i),
			ContainerIP: netip.MustParseAddr("172.18.0.2"), ContainerPort: uint16(1 + i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := f.AddPorts(rules); err != nil {
			b.Fatal(err)
		}
		if err := f.DeletePorts(rules); err != nil {
			b.Fatal(err)
		}
	}
}
