package osl

import (
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/vishvananda/netlink"
)

func BenchmarkNewNamespaceDestroy(b *testing.B) {
	testutil.RequireRoot(b)
	dir := b.TempDir()
	i := 0
	for b.Loop() {
		n, err := NewNamespace(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Destroy(); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// The benchmarks' veths are not deleted one by one (about 20 ms each); they
// go with their namespace.

// BenchmarkVethConfigure creates a veth whose peer is born inside the
// sandbox and configures it: the fast path of a join.
func BenchmarkVethConfigure(b *testing.B) {
	testutil.RequireRoot(b)
	n := newTestNamespace(b)
	// The host ends of earlier runs go away asynchronously, with their
	// namespace: keep this run's names apart.
	tag := rand.Uint32N(0x10000)
	i := 0
	for b.Loop() {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: fmt.Sprintf("bv%04x%d", tag, i)},
			PeerName:      fmt.Sprintf("e%d", i),
			PeerNamespace: netlink.NsFd(n.Fd()),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			b.Fatal(err)
		}
		err := n.ConfigureInterface(IfaceConfig{
			Name:   veth.PeerName,
			Addr:   ipNet(fmt.Sprintf("10.%d.%d.2/24", i/256%256, i%256)),
			AddrV6: ipNet(fmt.Sprintf("fd00:%x::2/64", i)),
		})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkRetireInterface(b *testing.B) {
	testutil.RequireRoot(b)
	n := newTestNamespace(b)
	// The host ends of earlier runs go away asynchronously, with their
	// namespace: keep this run's names apart.
	tag := rand.Uint32N(0x10000)
	i := 0
	for b.Loop() {
		b.StopTimer()
		name := fmt.Sprintf("e%d", i)
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: fmt.Sprintf("br%04x%d", tag, i)},
			PeerName:      name,
			PeerNamespace: netlink.NsFd(n.Fd()),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			b.Fatal(err)
		}
		err := n.ConfigureInterface(IfaceConfig{
			Name:   name,
			Addr:   ipNet(fmt.Sprintf("10.%d.%d.2/24", i/256%256, i%256)),
			AddrV6: ipNet(fmt.Sprintf("fd00:%x::2/64", i)),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := n.RetireInterface(name, fmt.Sprintf("t%d", i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func ipNet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

// BenchmarkMoveInterface moves a link made in the test's namespace into a
// sandbox and renames it: what a remote driver's Join costs the controller
// (the protocol names an interface in the host's namespace). The kernel's
// namespace change dominates it.
func BenchmarkMoveInterface(b *testing.B) {
	testutil.RequireRoot(b)
	n := newTestNamespace(b)
	host, err := netlink.NewHandle()
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	tag := rand.Uint32N(0x10000)
	i := 0
	for b.Loop() {
		b.StopTimer()
		src := fmt.Sprintf("mv%04x%d", tag, i)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: src + "h"}, PeerName: src}
		if err := host.LinkAdd(veth); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := n.MoveInterface(host, src, fmt.Sprintf("eth%d", i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
