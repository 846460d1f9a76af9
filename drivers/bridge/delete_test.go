package bridge

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/osl"
)

// TestDeleteNetworkLeavesNoLink checks that when DeleteNetwork returns no
// link of the network is left: not the bridge, and not the host sides of
// endpoints that left while their sandboxes live on (which the reaper
// would delete only after its grace period), nor their peers.
func TestDeleteNetworkLeavesNoLink(t *testing.T) {
	d, host := testDriver(t)
	h := host.Handle()
	const nid = "d100000000000001"
	createNetwork(t, d, nid, 131, false, nil)
	var (
		sandboxes []*osl.Namespace
		veths     []string
	)
	for i := range 3 {
		eid := fmt.Sprintf("d1a%d000000000000000000000000000000000000000000000000000000000000", i)
		sb, _, _ := joinEndpoint(t, d, nid, eid, fmt.Sprintf("10.131.0.%d/24", i+2))
		if i < 2 {
			// As the controller's Leave does: the sandbox side is
			// retired, the sandbox stays.
			if err := sb.RetireInterface("eth0", "gone0"); err != nil {
				t.Fatal(err)
			}
			if err := d.Leave(nid, eid); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.DeleteEndpoint(nid, eid); err != nil && i < 2 {
			t.Fatal(err)
		}
		sandboxes = append(sandboxes, sb)
		veths = append(veths, "veth"+eid[:11])
	}
	// The third endpoint is still joined: its veth is on the bridge too.
	if err := d.DeleteNetwork(nid); err != nil {
		t.Fatalf("DeleteNetwork: %v", err)
	}
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if name := l.Attrs().Name; name == "br-d10000000000" || slices.Contains(veths, name) {
			t.Errorf("%s %s left after DeleteNetwork", l.Type(), name)
		}
	}
	for i, sb := range sandboxes {
		links, err := sb.Handle().LinkList()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			if l.Type() == "veth" {
				t.Errorf("sandbox %d: peer %s left after DeleteNetwork", i, l.Attrs().Name)
			}
		}
	}
}

// TestCollectOrphansInOneBatch leaves 100 veths and a bridge as a crash
// would and checks that CollectOrphans deletes them all in a single batch
// (deleting them one by one cost 1.5 s of New), and nothing else.
func TestCollectOrphansInOneBatch(t *testing.T) {
	d, host := testDriver(t)
	h := host.Handle()
	const keepNID = "d200000000000001"
	createNetwork(t, d, keepNID, 132, false, nil)
	joinEndpoint(t, d, keepNID, "d2a0000000000000000000000000000000000000000000000000000000000001", "10.132.0.2/24")
	want := map[int]bool{}
	// A bridge of a network whose record was lost, with its mark, and
	// veths left on it.
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-d2ffffffffff"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	markBridge(t, h, br, "d2ffffffffff0001")
	want[br.Attrs().Index] = true
	for i := range 100 {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("vethd2f%08x", i), MasterIndex: br.Attrs().Index}, PeerName: fmt.Sprintf("orphan%d", i)}
		if err := h.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
		want[v.Attrs().Index] = true
	}

	var batches [][]int
	batch := d.deleteLinks
	d.deleteLinks = func(indexes []int) error {
		batches = append(batches, slices.Clone(indexes))
		return batch(indexes)
	}
	if err := d.CollectOrphans(map[string]bool{keepNID: true}, nil); err != nil {
		t.Fatalf("CollectOrphans: %v", err)
	}
	if len(batches) != 1 {
		t.Fatalf("CollectOrphans deleted in %d batches, want 1", len(batches))
	}
	got := map[int]bool{}
	for _, idx := range batches[0] {
		got[idx] = true
	}
	if !maps.Equal(got, want) {
		t.Errorf("the batch held %d links, want the %d orphans", len(got), len(want))
	}
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if want[l.Attrs().Index] || strings.HasPrefix(l.Attrs().Name, "orphan") {
			t.Errorf("orphan %s still exists", l.Attrs().Name)
		}
	}
	for _, kept := range []string{"br-d20000000000", "vethd2a00000000"} {
		if !linkExists(t, h, kept) {
			t.Errorf("%s was deleted", kept)
		}
	}
}
