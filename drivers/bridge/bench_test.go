package bridge

import (
	"fmt"
	"testing"

	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/osl"
)

// benchEndpoints creates b.N endpoints on a new network and a sandbox for
// them; endpoint i joins as "eth<i>".
func benchEndpoints(b *testing.B, d *Driver, nid string) (*osl.Namespace, []string) {
	b.Helper()
	createNetwork(b, d, nid, 120, false, nil)
	sb := drivertest.NewNamespace(b)
	return sb, drivertest.CreateEndpoints(b, d, nid, "10.120", b.N)
}

// BenchmarkJoin measures Join: one veth pair created with its container
// side directly in the sandbox.
func BenchmarkJoin(b *testing.B) {
	for _, name := range []string{"veth-in-place"} {
		b.Run(name, func(b *testing.B) {
			d, _ := testDriver(b)
			const nid = "c000000000000001"
			sb, eids := benchEndpoints(b, d, nid)
			b.ResetTimer()
			for i, eid := range eids {
				ji := joinInfo(sb, fmt.Sprintf("eth%d", i))
				if err := d.Join(nid, eid, sb.Path(), ji, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
		})
	}
}

// BenchmarkLeave measures Leave after the controller retired the sandbox
// side, as it does; the veths go when the sandbox's namespace does.
func BenchmarkLeave(b *testing.B) {
	d, _ := testDriver(b)
	const nid = "c100000000000001"
	sb, eids := benchEndpoints(b, d, nid)
	for i, eid := range eids {
		name := fmt.Sprintf("eth%d", i)
		if err := d.Join(nid, eid, sb.Path(), joinInfo(sb, name), nil); err != nil {
			b.Fatal(err)
		}
		if err := sb.RetireInterface(name, fmt.Sprintf("tomb%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for _, eid := range eids {
		if err := d.Leave(nid, eid); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

// BenchmarkJoinWithPorts measures Join (veth created in place, on the
// bridge) on a bridge that already has 0 or 500 ports, each peer in a
// namespace of its own as containers' are: the difference is what a
// port costs the next join. What remains of it is the kernel's: adding a
// bridge port walks the bridge's ports and lower devices, and describing
// a host-side veth walks the namespaces the host has ids for.
func BenchmarkJoinWithPorts(b *testing.B) {
	for _, ports := range []int{0, 500} {
		b.Run(fmt.Sprintf("ports=%d", ports), func(b *testing.B) {
			d, _ := testDriver(b)
			nid := fmt.Sprintf("c2%014d", ports)
			createNetwork(b, d, nid, 121, false, nil)
			join := func(i int, sb *osl.Namespace, ifName string) {
				eid := fmt.Sprintf("%011x%053x", i, 0)
				ip := fmt.Sprintf("10.121.%d.%d/16", (i+2)/256, (i+2)%256)
				if err := d.CreateEndpoint(nid, eid, &drivertest.IfInfo{Addr: drivertest.CIDR(b, ip)}, nil); err != nil {
					b.Fatal(err)
				}
				if err := d.Join(nid, eid, sb.Path(), joinInfo(sb, ifName), nil); err != nil {
					b.Fatal(err)
				}
			}
			for i := range ports {
				join(i, drivertest.NewNamespace(b), "eth0")
			}
			sbs := make([]*osl.Namespace, b.N)
			for i := range sbs {
				sbs[i] = drivertest.NewNamespace(b)
			}
			b.ResetTimer()
			for i := range b.N {
				join(ports+i, sbs[i], "eth0")
			}
			b.StopTimer()
		})
	}
}
