package macvlan

import (
	"fmt"
	"testing"
)

// benchJoin joins b.N endpoints of a network on a LAN parent to one
// sandbox, as eth<i>: created in place, or (move) created in the
// controller's namespace and then moved and renamed as the controller
// does for SetNames (osl.Namespace.MoveInterface).
func benchJoin(b *testing.B, move bool) {
	d, host := testDriver(b)
	d.joinByMove = move
	newLAN(b, host, "lan0")
	const nid = "c000000000000001"
	opts := opts(ParentOption, "lan0")
	if err := d.CreateNetwork(nid, opts, nil, nil); err != nil {
		b.Fatal(err)
	}
	sb := newSandbox(b)
	eids := make([]string, b.N)
	for i := range eids {
		eids[i] = fmt.Sprintf("%011x%053x", i, 0)
		ip := fmt.Sprintf("10.120.%d.%d/16", (i+2)/256, (i+2)%256)
		if err := d.CreateEndpoint(nid, eids[i], &ifInfo{addr: cidr(b, ip)}, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i, eid := range eids {
		ji := &joinInfo{ns: sb, ifName: fmt.Sprintf("eth%d", i)}
		if err := d.Join(nid, eid, sb.Path(), ji, nil); err != nil {
			b.Fatal(err)
		}
		if move {
			if err := sb.MoveInterface(host.Handle(), ji.moved, ji.ifName); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	_ = d.DeleteNetwork(nid)
}

// BenchmarkJoinInSandbox measures Join as the driver does it: the macvlan
// link born in the sandbox's namespace, in one request.
func BenchmarkJoinInSandbox(b *testing.B) { benchJoin(b, false) }

// BenchmarkJoinMove measures the other way: the link created in the
// controller's namespace, then moved into the sandbox and renamed.
func BenchmarkJoinMove(b *testing.B) { benchJoin(b, true) }
