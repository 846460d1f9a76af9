package libnetwork

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// leaveOrphanVeths creates count veths named as the bridge driver names
// them, on the network's bridge, as endpoints whose records were lost in
// a crash leave them.
func leaveOrphanVeths(tb testing.TB, e *testEnv, bridge string, count int) {
	tb.Helper()
	h := e.host.Handle()
	br, err := h.LinkByName(bridge)
	mustf(tb, err, "bridge %s", bridge)
	for i := range count {
		v := &netlink.Veth{
			LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("vethf%010x", i), MasterIndex: br.Attrs().Index},
			PeerName:  fmt.Sprintf("orphan%d", i),
		}
		mustf(tb, h.LinkAdd(v), "orphan veth %d", i)
	}
}

// orphanCount counts the veths leaveOrphanVeths made that still exist.
func orphanCount(tb testing.TB, e *testEnv) int {
	tb.Helper()
	links, err := e.host.Handle().LinkList()
	mustf(tb, err, "listing links")
	count := 0
	for _, l := range links {
		if name := l.Attrs().Name; strings.HasPrefix(name, "vethf") || strings.HasPrefix(name, "orphan") {
			count++
		}
	}
	return count
}

// TestNewCollectsOrphanVeths: New on existing directories deletes the 100
// veths nothing owns before it returns (in one batch, see the bridge
// driver's TestCollectOrphansInOneBatch) and keeps the network.
func TestNewCollectsOrphanVeths(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "kept", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.103.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	bridge := "br-" + n.ID()[:12]
	c.Stop()
	leaveOrphanVeths(t, e, bridge, 100)
	c = e.start()
	if got := orphanCount(t, e); got != 0 {
		t.Errorf("%d orphaned veths (or peers) left after New", got)
	}
	if _, err := c.NetworkByName("kept"); err != nil {
		t.Errorf("network lost: %v", err)
	}
	if _, err := e.host.Handle().LinkByName(bridge); err != nil {
		t.Errorf("bridge lost: %v", err)
	}
}

// BenchmarkNewWithOrphans measures New on existing directories with 100
// orphaned veths to collect.
func BenchmarkNewWithOrphans(b *testing.B) {
	e := newEnv(b)
	c := e.start()
	n, err := c.NewNetwork("bridge", "kept", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.104.0.0/24"}}, nil, nil))
	mustf(b, err, "network")
	bridge := "br-" + n.ID()[:12]
	c.Stop()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		leaveOrphanVeths(b, e, bridge, 100)
		b.StartTimer()
		nc, err := New(e.options()...)
		b.StopTimer()
		mustf(b, err, "New")
		nc.Stop()
		if got := orphanCount(b, e); got != 0 {
			b.Fatalf("%d orphans left", got)
		}
		b.StartTimer()
	}
}
