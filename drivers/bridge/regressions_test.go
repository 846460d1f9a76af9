package bridge

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/types"
)

// A RestoreEndpoint that fails must not leave the endpoint registered in
// the driver: the controller drops the record and releases the address, so
// a ghost endpoint keeps its veth alive (CollectOrphans spares it) and
// blocks the ID.
func TestFailedRestoreEndpointForgetsIt(t *testing.T) {
	d, host := testDriver(t)
	const nid = "c100000000000001"
	const eid = "c1a0000000000002"
	createNetwork(t, d, nid, 121, false, nil)
	// Something that is not a veth holds the endpoint's host-side name.
	squat := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: hostVethName(eid)}}
	if err := host.Handle().LinkAdd(squat); err != nil {
		t.Fatal(err)
	}
	defer host.Handle().LinkDel(squat)
	sb := drivertest.NewNamespace(t)
	info := &drivertest.IfInfo{Addr: drivertest.CIDR(t, "10.121.0.2/24")}
	err := d.RestoreEndpoint(nid, eid, info, sb.Path(), joinInfo(sb, "eth0"), nil)
	if !types.IsForbidden(err) {
		t.Fatalf("RestoreEndpoint over a bridge named like the veth = %v, want Forbidden", err)
	}
	if _, err := d.EndpointOperInfo(nid, eid); err == nil {
		t.Error("the driver still knows the endpoint whose restore failed")
	}
	if err := d.CreateEndpoint(nid, eid, &drivertest.IfInfo{Addr: drivertest.CIDR(t, "10.121.0.2/24")}, nil); err != nil {
		t.Errorf("CreateEndpoint after a failed restore: %v", err)
	}
}

// A bridge adopted by RestoreNetwork must carry exactly the network's
// gateway addresses: a stale address (from a non-persistent network that
// used the same bridge name before a crash) keeps a host route to a subnet
// the network does not own.
func TestAdoptedBridgeDropsStaleAddresses(t *testing.T) {
	d, host := testDriver(t)
	h := host.Handle()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "review2br"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	defer h.LinkDel(br)
	if err := h.AddrAdd(br, &netlink.Addr{IPNet: drivertest.CIDR(t, "10.199.0.1/24")}); err != nil {
		t.Fatal(err)
	}
	opts := map[string]interface{}{netlabel.GenericData: options.Generic{BridgeName: "review2br"}}
	const nid = "c200000000000001"
	// The network's own bridge, as a crashed run left it.
	markBridge(t, h, br, nid)
	v4 := []driverapi.IPAMData{drivertest.IPAMData(t, "10.122.0.0/24", "10.122.0.1")}
	if err := d.RestoreNetwork(nid, opts, v4, nil); err != nil {
		t.Fatalf("RestoreNetwork: %v", err)
	}
	defer d.DeleteNetwork(nid)
	addrs, err := h.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
	}
	if strings.Join(got, " ") != "10.122.0.1/24" {
		t.Errorf("adopted bridge has %v, want only the gateway 10.122.0.1/24", got)
	}
}

// ICC off must hold whether or not br_netfilter passes bridged frames to
// the inet hooks; the driver neither checks nor sets
// net.bridge.bridge-nf-call-iptables, so on a host without br_netfilter
// loaded (the default on most distributions) containers still talk.
func TestICCOffWithoutBrNetfilter(t *testing.T) {
	d, _ := testDriver(t)
	const p = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	// Per network namespace (the test's own one), as on a host where
	// br_netfilter is not loaded. Without br_netfilter at all the test
	// holds as it is.
	if _, err := os.Stat(p); err == nil {
		if err := os.WriteFile(p, []byte("0"), 0); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(p, []byte("1"), 0)
	}
	const nid = "c300000000000001"
	createNetwork(t, d, nid, 123, false, map[string]interface{}{
		netlabel.GenericData: options.Generic{EnableICC: false}})
	sb1, _, _ := joinEndpoint(t, d, nid, "c3a0000000000002", "10.123.0.2/24")
	sb2, _, _ := joinEndpoint(t, d, nid, "c3b0000000000003", "10.123.0.3/24")
	drivertest.ListenTCP(t, sb2, "10.123.0.3:8080", "hello")
	if got, err := drivertest.DialTCP(sb1, "10.123.0.3:8080", 5*time.Second); err == nil {
		t.Errorf("ICC off, yet the first sandbox reached the second (%q)", got)
	}
}
