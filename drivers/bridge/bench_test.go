package bridge

import (
	"fmt"
	"testing"

	"github.com/netkit/libnetwork/osl"
)

// benchEndpoints creates b.N endpoints on a new network and a sandbox for
// them; endpoint i joins as "eth<i>".
func benchEndpoints(b *testing.B, d *Driver, nid string) (*osl.Namespace, []string) {
	b.Helper()
	createNetwork(b, d, nid, 120, false, nil)
	sb := newSandbox(b)
	eids := make([]string, b.N)
	for i := range eids {
		eids[i] = fmt.Sprintf("%011x%053x", i, 0)
		ip := fmt.Sprintf("10.120.%d.%d/16", (i+2)/256, (i+2)%256)
		if err := d.CreateEndpoint(nid, eids[i], &ifInfo{addr: cidr(b, ip)}, nil); err != nil {
			b.Fatal(err)
		}
	}
	return sb, eids
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
				ji := &joinInfo{ns: sb, ifName: fmt.Sprintf("eth%d", i)}
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
		if err := d.Join(nid, eid, sb.Path(), &joinInfo{ns: sb, ifName: name}, nil); err != nil {
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
