package bridge

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
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
		if err := h.AddrAdd(br, &netlink.Addr{IPNet: cidr(t, "192.0.2.1/24")}); err != nil {
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
		v4 := []driverapi.IPAMData{ipamData(t, "10.124.0.0/24", "10.124.0.1")}
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
		strings.Join(s, ","), fmt.Sprint(a.Index, " mtu ", a.MTU)}, " ")
}
