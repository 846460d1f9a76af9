package macvlan

import (
	"fmt"
	"testing"

	"github.com/netkit/libnetwork/drivers/internal/drivertest"
)

// benchJoin joins b.N endpoints of a network on a LAN parent to one
// sandbox, as eth<i>: created in place, or (move) created in the
// controller's namespace and then moved and renamed as the controller
// does for SetNames (osl.Namespace.MoveInterface).
func benchJoin(b *testing.B, move bool) {
	d, host := testDriver(b)
	d.joinByMove = move
	drivertest.NewLAN(b, host, "lan0")
	const nid = "c000000000000001"
	opts := drivertest.GenericData(ParentOption, "lan0")
	if err := d.CreateNetwork(nid, opts, nil, nil); err != nil {
		b.Fatal(err)
	}
	sb := drivertest.NewNamespace(b)
	eids := drivertest.CreateEndpoints(b, d, nid, "10.120", b.N)
	b.ResetTimer()
	for i, eid := range eids {
		ji := &drivertest.JoinInfo{NS: sb, IfName: fmt.Sprintf("eth%d", i)}
		if err := d.Join(nid, eid, sb.Path(), ji, nil); err != nil {
			b.Fatal(err)
		}
		if move {
			if err := sb.MoveInterface(host.Handle(), ji.Moved, ji.IfName); err != nil {
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
