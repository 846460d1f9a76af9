package bridge

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/types"
)

// A new network whose bridge name is taken by a link the library did not
// create is refused with a Forbidden error naming the link, and the link
// keeps its address, its state, its MTU and its existence: before, its
// address was removed as "stale" and DeleteNetwork deleted it. Only
// RestoreNetwork (a network the store holds) adopts.
func TestCreateNetworkRefusesForeignBridge(t *testing.T) {
	d, host := testDriver(t)
	h := host.Handle()
	for i, name := range []string{"hostbr0", "br-e10000000000"} {
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = name, 1400
		br := &netlink.Bridge{LinkAttrs: attrs}
		if err := h.LinkAdd(br); err != nil {
			t.Fatal(err)
		}
		defer h.LinkDel(br)
		if err := h.AddrAdd(br, &netlink.Addr{IPNet: drivertest.CIDR(t, "192.0.2.1/24")}); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(br); err != nil {
			t.Fatal(err)
		}
		before := linkState(t, h, name)

		nid := "e10000000000000" + string(rune('1'+i))
		opts := map[string]interface{}{}
		if name == "hostbr0" {
			opts[netlabel.GenericData] = options.Generic{BridgeName: name}
		}
		v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.124.0.0/24", "10.124.0.1")}
		err := d.CreateNetwork(nid, opts, v4, nil)
		if !types.IsForbidden(err) || !strings.Contains(err.Error(), name) {
			_ = d.DeleteNetwork(nid)
			t.Fatalf("CreateNetwork over bridge %s = %v, want Forbidden naming it", name, err)
		}
		if after := linkState(t, h, name); after != before {
			t.Errorf("bridge %s changed: before %s, after %s", name, before, after)
		}
		if err := d.DeleteNetwork(nid); !types.IsNotFound(err) {
			t.Errorf("DeleteNetwork of the refused network = %v, want NotFound", err)
		}
		if !linkExists(t, h, name) {
			t.Errorf("bridge %s deleted", name)
		}
		if table := nftTable(t); strings.Contains(table, name) {
			t.Errorf("rules for the refused bridge %s:\n%s", name, table)
		}
		// The name is free again for the driver's bookkeeping: a network
		// of another name is unaffected.
		d.mu.Lock()
		_, held := d.bridges[name]
		d.mu.Unlock()
		if held {
			t.Errorf("the driver still reserves bridge name %s", name)
		}
	}
}

// linkState describes what a test must find unchanged in a link.
func linkState(t *testing.T, h *netlink.Handle, name string) string {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("bridge %s: %v", name, err)
	}
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, a := range addrs {
		s = append(s, a.IPNet.String())
	}
	a := l.Attrs()
	return strings.Join([]string{l.Type(), a.HardwareAddr.String(), a.Flags.String(), a.OperState.String(),
		strings.Join(s, ","), fmt.Sprint(a.Index, " mtu ", a.MTU, " master ", a.MasterIndex), "alias " + a.Alias}, " ")
}

// markBridge gives br the mark of network nid, as CreateNetwork does.
func markBridge(t testing.TB, h *netlink.Handle, br netlink.Link, nid string) {
	t.Helper()
	if err := h.LinkSetAlias(br, bridgeMark(nid)); err != nil {
		t.Fatalf("marking bridge %s as network %s's: %v", br.Attrs().Name, nid, err)
	}
}

// foreignBridge makes a bridge the library did not create, up, with an
// address and a port (a veth: this kernel has no dummy links) named port,
// and returns it.
func foreignBridge(t *testing.T, h *netlink.Handle, name, port string) netlink.Link {
	t.Helper()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.LinkDel(br) })
	p := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port, MasterIndex: br.Attrs().Index}, PeerName: port + "x"}
	if err := h.LinkAdd(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.LinkDel(p) })
	if err := h.AddrAdd(br, &netlink.Addr{IPNet: drivertest.CIDR(t, "192.0.2.1/24")}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []netlink.Link{br, p} {
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	return br
}

// TestCreateNetworkMarksBridge: the bridge a network creates carries the
// network's mark, and RestoreNetwork adopts it by that mark.
func TestCreateNetworkMarksBridge(t *testing.T) {
	d, host := testDriver(t)
	const nid = "e200000000000000000000000000000000000000000000000000000000000001"
	createNetwork(t, d, nid, 125, false, nil)
	br, err := host.Handle().LinkByName("br-e20000000000")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := br.Attrs().Alias, "libnetwork:"+nid; got != want {
		t.Errorf("bridge alias %q, want the mark %q", got, want)
	}
}

// TestRestoreNetworkRefusesUnmarkedBridge: stored records are not trusted
// to say what is the library's. RestoreNetwork adopts a bridge only if it
// carries that very network's mark; a bridge named by the record without
// it (the host's own bridge, one marked as another network's, the
// library's own whose mark someone removed) is refused with a Forbidden
// error naming it and the network, and nothing of it changes: not its
// address, port, state or MTU, not at the restore, not at orphan
// collection, and no rule for it is programmed.
func TestRestoreNetworkRefusesUnmarkedBridge(t *testing.T) {
	d, host := testDriver(t)
	h := host.Handle()
	const other = "e3ff000000000000000000000000000000000000000000000000000000000009"

	hostBridge := foreignBridge(t, h, "hostbr1", "e3port1")
	otherBridge := foreignBridge(t, h, "br-e30000000002", "e3port2")
	markBridge(t, h, otherBridge, other)
	const unmarkedNID = "e300000000000000000000000000000000000000000000000000000000000003"
	createNetwork(t, d, unmarkedNID, 126, false, nil)
	unmarked, err := h.LinkByName("br-e30000000000")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetAlias(unmarked, ""); err != nil {
		t.Fatalf("removing the mark: %v", err)
	}

	// A restarted controller's fresh driver.
	d2, err := New(Config{Firewall: d.fw, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	for _, c := range []struct {
		nid    string
		bridge netlink.Link
		port   string
	}{
		{"e300000000000000000000000000000000000000000000000000000000000001", hostBridge, "e3port1"},
		{"e300000000020000000000000000000000000000000000000000000000000002", otherBridge, "e3port2"},
		{unmarkedNID, unmarked, ""},
	} {
		name := c.bridge.Attrs().Name
		before := linkState(t, h, name)
		portBefore := ""
		if c.port != "" {
			portBefore = linkState(t, h, c.port)
		}
		opts := map[string]interface{}{}
		if name == "hostbr1" {
			opts[netlabel.GenericData] = options.Generic{BridgeName: name}
		}
		v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.127.0.0/24", "10.127.0.1")}
		err := d2.RestoreNetwork(c.nid, opts, v4, nil)
		if !types.IsForbidden(err) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), c.nid) {
			t.Errorf("RestoreNetwork %s over bridge %s = %v, want Forbidden naming both", c.nid, name, err)
		}
		if err := d2.DeleteNetwork(c.nid); !types.IsNotFound(err) {
			t.Errorf("DeleteNetwork of the refused network = %v, want NotFound", err)
		}
		// The network other is the controller's (a bridge marked as a
		// network nobody keeps is an orphan of the library's, and goes).
		if err := d2.CollectOrphans(map[string]bool{other: true}, nil); err != nil {
			t.Errorf("CollectOrphans: %v", err)
		}
		if after := linkState(t, h, name); after != before {
			t.Errorf("bridge %s changed: before %s, after %s", name, before, after)
		}
		if portBefore != "" {
			if after := linkState(t, h, c.port); after != portBefore {
				t.Errorf("port of bridge %s changed: before %s, after %s", name, portBefore, after)
			}
		}
		if table := nftTable(t); strings.Contains(table, name) {
			t.Errorf("rules for the refused bridge %s:\n%s", name, table)
		}
	}
}

// TestCollectOrphansKeepsForeignLinks: orphan collection goes by the mark,
// not by names alone. A bridge named as the driver names its bridges but
// not marked, the veths named as its veths that are its ports, and a veth
// of such a name on no bridge are all left; a marked bridge whose network
// is gone goes, with the veths on it.
func TestCollectOrphansKeepsForeignLinks(t *testing.T) {
	d, host := testDriver(t)
	h := host.Handle()
	foreign := foreignBridge(t, h, "br-e4eeeeeeeeee", "e4port")
	var keep []string
	for i, master := range []int{foreign.Attrs().Index, 0} {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("vethe4e0000000%d", i), MasterIndex: master}, PeerName: fmt.Sprintf("e4peer%d", i)}
		if err := h.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.LinkDel(v) })
		keep = append(keep, v.Name, v.PeerName)
	}
	keep = append(keep, "e4port", "e4portx")
	before := linkState(t, h, foreign.Attrs().Name)
	own := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-e4ffffffffff"}}
	if err := h.LinkAdd(own); err != nil {
		t.Fatal(err)
	}
	markBridge(t, h, own, "e4ffffffffff0001")
	orphan := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethe4f00000000", MasterIndex: own.Attrs().Index}, PeerName: "e4orphanpeer"}
	if err := h.LinkAdd(orphan); err != nil {
		t.Fatal(err)
	}

	if err := d.CollectOrphans(nil, nil); err != nil {
		t.Fatalf("CollectOrphans: %v", err)
	}
	for _, name := range keep {
		if !linkExists(t, h, name) {
			t.Errorf("%s, not the library's, was deleted", name)
		}
	}
	if after := linkState(t, h, foreign.Attrs().Name); after != before {
		t.Errorf("bridge %s changed: before %s, after %s", foreign.Attrs().Name, before, after)
	}
	for _, name := range []string{"br-e4ffffffffff", "vethe4f00000000", "e4orphanpeer"} {
		if linkExists(t, h, name) {
			t.Errorf("orphan %s of the library survived", name)
		}
	}
}

// TestRestoreEndpointLeavesVethOnOtherBridge: a veth of the endpoint's
// name that is a port of another bridge is not taken onto the network's
// bridge (and later deleted with it): RestoreEndpoint refuses it with a
// Forbidden error and the veth stays where it is.
func TestRestoreEndpointLeavesVethOnOtherBridge(t *testing.T) {
	d, host := testDriver(t)
	h := host.Handle()
	const nid = "e500000000000001"
	const eid = "e5a0000000000002"
	createNetwork(t, d, nid, 128, false, nil)
	sb, info, _ := joinEndpoint(t, d, nid, eid, "10.128.0.2/24")
	foreign := foreignBridge(t, h, "e5hostbr", "e5port")
	veth, err := h.LinkByName("vethe5a00000000")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetMasterByIndex(veth, foreign.Attrs().Index); err != nil {
		t.Fatal(err)
	}
	before := linkState(t, h, "vethe5a00000000")

	d2, err := New(Config{Firewall: d.fw, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.128.0.0/24", "10.128.0.1")}
	if err := d2.RestoreNetwork(nid, nil, v4, nil); err != nil {
		t.Fatal(err)
	}
	err = d2.RestoreEndpoint(nid, eid, info, sb.Path(), joinInfo(sb, "eth0"), nil)
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "vethe5a00000000") {
		t.Errorf("RestoreEndpoint over a veth on another bridge = %v, want Forbidden naming it", err)
	}
	if after := linkState(t, h, "vethe5a00000000"); after != before {
		t.Errorf("veth changed: before %s, after %s", before, after)
	}
}
