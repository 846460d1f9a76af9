package macvlan

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/types"
)

// TestRestoreAndOrphans: a restarted driver adopts the internal parent of a
// restored network, keeps a parent it does not own, collects the internal
// parent of a network that is gone, and never touches a link that is not
// marked as its own even under its naming.
func TestRestoreAndOrphans(t *testing.T) {
	d1, host := testDriver(t)
	h := host.Handle()
	drivertest.NewLAN(t, host, "lan0")
	const (
		kept    = "cc00000000000000000000000000000000000000000000000000000000000001"
		gone    = "dd00000000000000000000000000000000000000000000000000000000000001"
		onLAN   = "ef00000000000000000000000000000000000000000000000000000000000001"
		missing = "fa00000000000000000000000000000000000000000000000000000000000001"
	)
	v4 := func(p, gw string) []driverapi.IPAMData { return []driverapi.IPAMData{drivertest.IPAMData(t, p, gw)} }
	for nid, pool := range map[string]string{kept: "10.61.0.0/24", gone: "10.62.0.0/24"} {
		if err := d1.CreateNetwork(nid, nil, v4(pool, ""), nil); err != nil {
			t.Fatal(err)
		}
	}
	lanNetwork(t, d1, onLAN, "lan0", "")
	keptIndex := drivertest.MustIndex(t, h, "dm-cc0000000000")
	// A link of the driver's naming that is not its own.
	foreign := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dm-ee0000000000"}, PeerName: "dm-ee-peer"}
	if err := h.LinkAdd(foreign); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.LinkDel(foreign) })
	// A joined endpoint of the kept network.
	sb, _, _ := drivertest.JoinNew(t, d1, kept, eid1, "10.61.0.11/24", nil)

	// The controller is killed; a new one restores kept and onLAN only.
	d2, _ := testDriver(t)
	if err := d2.RestoreNetwork(kept, nil, v4("10.61.0.0/24", ""), nil); err != nil {
		t.Fatalf("RestoreNetwork (internal): %v", err)
	}
	if err := d2.RestoreNetwork(onLAN, drivertest.GenericData(ParentOption, "lan0"), v4("192.168.90.0/24", "192.168.90.1"), nil); err != nil {
		t.Fatalf("RestoreNetwork (lan0): %v", err)
	}
	// A restored network whose parent is gone comes back; its joins wait
	// for the parent.
	if err := d2.RestoreNetwork(missing, drivertest.GenericData(ParentOption, "nosuch0"), v4("10.63.0.0/24", ""), nil); err != nil {
		t.Fatalf("RestoreNetwork with its parent missing: %v", err)
	}
	if err := d2.CreateNetwork("fb00000000000000", drivertest.GenericData(ParentOption, "nosuch0"), v4("10.64.0.0/24", ""), nil); !types.IsNotFound(err) {
		t.Errorf("CreateNetwork with a missing parent = %v, want NotFound", err)
	}
	ifi := &drivertest.IfInfo{Addr: drivertest.CIDR(t, "10.61.0.11/24"), MAC: []byte{2, 0x42, 10, 61, 0, 11}}
	ji := &drivertest.JoinInfo{NS: sb, IfName: "eth0"}
	if err := d2.RestoreEndpoint(kept, eid1, ifi, sb.Path(), ji, nil); err != nil {
		t.Fatalf("RestoreEndpoint: %v", err)
	}
	if err := d2.Join(kept, eid1, sb.Path(), ji, nil); !types.IsForbidden(err) {
		t.Errorf("Join of a restored joined endpoint = %v, want Forbidden", err)
	}
	if err := d2.CollectOrphans(map[string]bool{kept: true, onLAN: true, missing: true}, map[string]bool{eid1: true}); err != nil {
		t.Fatalf("CollectOrphans: %v", err)
	}
	if got := drivertest.MustIndex(t, h, "dm-cc0000000000"); got != keptIndex {
		t.Errorf("kept network's parent index %d, want %d (adopted, not recreated)", got, keptIndex)
	}
	if _, err := h.LinkByName("dm-dd0000000000"); err == nil {
		t.Error("the parent of a network that is gone was not collected")
	}
	for _, name := range []string{"lan0", "dm-ee0000000000", "dm-ee-peer"} {
		if _, err := h.LinkByName(name); err != nil {
			t.Errorf("%s, not the driver's, was removed: %v", name, err)
		}
	}
	if _, err := sb.Handle().LinkByName("eth0"); err != nil {
		t.Errorf("the restored endpoint's link is gone: %v", err)
	}
	// The adopted parent goes with its network.
	_ = d2.DeleteEndpoint(kept, eid1)
	if err := d2.DeleteNetwork(kept); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName("dm-cc0000000000"); err == nil {
		t.Error("adopted internal parent left after DeleteNetwork")
	}
	if err := d2.CreateEndpoint(missing, eid2, &drivertest.IfInfo{Addr: drivertest.CIDR(t, "10.63.0.11/24")}, nil); err != nil {
		t.Fatal(err)
	}
	err := d2.Join(missing, eid2, sb.Path(), &drivertest.JoinInfo{NS: drivertest.NewNamespace(t), IfName: "eth0"}, nil)
	if !types.IsNotFound(err) || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("join with the parent missing = %v, want NotFound naming nosuch0", err)
	}
}

// TestInternalNameClash: two network IDs sharing their first 12 digits
// cannot share an internal parent.
func TestInternalNameClash(t *testing.T) {
	d, host := testDriver(t)
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.65.0.0/24", "")}
	if err := d.CreateNetwork(nid1, nil, v4, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.DeleteNetwork(nid1) })
	before := drivertest.LinkNames(t, host.Handle())
	v4b := []driverapi.IPAMData{drivertest.IPAMData(t, "10.66.0.0/24", "")}
	if err := d.CreateNetwork(nid2, nil, v4b, nil); !types.IsForbidden(err) || !strings.Contains(err.Error(), nid1) {
		t.Errorf("second internal network with the same 12 digits = %v, want Forbidden naming %s", err, nid1)
	}
	if after := drivertest.LinkNames(t, host.Handle()); after != before {
		t.Errorf("links changed:\n%s\nbefore:\n%s", after, before)
	}
}
