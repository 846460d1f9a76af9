package vethdriver

import (
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/internal/testutil"
)

// TestVethLifecycle runs the driver in the test's namespace: the bridge
// with the gateway, the veth pair on it, and both gone after Leave and
// DeleteNetwork.
func TestVethLifecycle(t *testing.T) {
	testutil.RequireRoot(t)
	d := newDriver(t)
	bridge := BridgeName(nid)
	host, container := VethNames(eid)

	err := d.CreateNetwork(&api.CreateNetworkRequest{
		NetworkID: nid,
		IPv4Data:  []*api.IPAMData{{AddressSpace: "ExampleLocal", Pool: "10.50.0.0/24", Gateway: "10.50.0.1/24"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	br := link(t, bridge)
	if br.Type() != "bridge" || br.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("%s: type %s, flags %v; want an up bridge", bridge, br.Type(), br.Attrs().Flags)
	}
	if addrs := addrs(t, br); addrs != "10.50.0.1/24" {
		t.Errorf("%s has addresses %q, want the gateway 10.50.0.1/24", bridge, addrs)
	}
	if err := d.CreateNetwork(&api.CreateNetworkRequest{NetworkID: nid}); err == nil || !isForbidden(err) {
		t.Errorf("CreateNetwork twice: %v", err)
	}

	res, err := d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: nid, EndpointID: eid, Interface: &api.EndpointInterface{Address: "10.50.0.2/24"}})
	if err != nil {
		t.Fatal(err)
	}
	join, err := d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: "/var/run/docker/netns/x"})
	if err != nil {
		t.Fatal(err)
	}
	if join.InterfaceName != (api.InterfaceName{SrcName: container, DstPrefix: "eth"}) || join.Gateway != "10.50.0.1" {
		t.Errorf("Join answered %+v", join)
	}
	hl, cl := link(t, host), link(t, container)
	if hl.Type() != "veth" || hl.Attrs().MasterIndex != br.Attrs().Index || hl.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("%s: type %s, master %d, flags %v; want an up veth on %s (%d)", host, hl.Type(), hl.Attrs().MasterIndex, hl.Attrs().Flags, bridge, br.Attrs().Index)
	}
	if cl.Attrs().HardwareAddr.String() != res.Interface.MacAddress || cl.Attrs().MasterIndex != 0 {
		t.Errorf("%s: MAC %s, master %d; want MAC %s on no bridge", container, cl.Attrs().HardwareAddr, cl.Attrs().MasterIndex, res.Interface.MacAddress)
	}
	if peer, err := netlink.VethPeerIndex(hl.(*netlink.Veth)); err != nil || peer != cl.Attrs().Index {
		t.Errorf("peer of %s: %d, %v; want %s (%d)", host, peer, err, container, cl.Attrs().Index)
	}
	if _, err := d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid}); err == nil || !strings.Contains(err.Error(), "already joined") {
		t.Errorf("Join twice: %v", err)
	}

	if err := d.Leave(&api.LeaveRequest{NetworkID: nid, EndpointID: eid}); err != nil {
		t.Fatal(err)
	}
	gone(t, host)
	gone(t, container)
	if err := d.DeleteEndpoint(&api.DeleteEndpointRequest{NetworkID: nid, EndpointID: eid}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: nid}); err != nil {
		t.Fatal(err)
	}
	gone(t, bridge)
	if err := d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: nid}); err == nil || !isNotFound(err) {
		t.Errorf("DeleteNetwork twice: %v", err)
	}
}

// TestLeaveMovedPeer: the library moves the container side into the
// sandbox; Leave deleting the host side takes the pair away from there.
// A network without a gateway joins without one.
func TestLeaveMovedPeer(t *testing.T) {
	testutil.RequireRoot(t)
	d := newDriver(t)
	if err := d.CreateNetwork(&api.CreateNetworkRequest{NetworkID: "n2-no-gateway"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: "n2-no-gateway"}) })
	if addrs := addrs(t, link(t, BridgeName("n2-no-gateway"))); addrs != "" {
		t.Errorf("bridge of a network without a gateway has %q", addrs)
	}
	if _, err := d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: "n2-no-gateway", EndpointID: eid, Interface: &api.EndpointInterface{MacAddress: "02:00:00:00:00:42"}}); err != nil {
		t.Fatal(err)
	}
	join, err := d.Join(&api.JoinRequest{NetworkID: "n2-no-gateway", EndpointID: eid})
	if err != nil {
		t.Fatal(err)
	}
	if join.Gateway != "" {
		t.Errorf("Join without a gateway answered gateway %q", join.Gateway)
	}
	host, container := VethNames(eid)
	if got := link(t, container).Attrs().HardwareAddr; got.String() != mac(t, "02:00:00:00:00:42").String() {
		t.Errorf("%s has MAC %s, want the one asked for", container, got)
	}

	sandbox := newNetns(t)
	sh, err := netlink.NewHandleAt(sandbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	if err := netlink.LinkSetNsFd(link(t, container), int(sandbox)); err != nil {
		t.Fatal(err)
	}
	if _, err := sh.LinkByName(container); err != nil {
		t.Fatalf("%s not in the sandbox: %v", container, err)
	}
	if err := d.Leave(&api.LeaveRequest{NetworkID: "n2-no-gateway", EndpointID: eid}); err != nil {
		t.Fatal(err)
	}
	gone(t, host)
	if _, err := sh.LinkByName(container); err == nil {
		t.Errorf("%s still in the sandbox after Leave", container)
	}
	// Joined again after the Leave, then deleted without a Leave.
	if _, err := d.Join(&api.JoinRequest{NetworkID: "n2-no-gateway", EndpointID: eid}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteEndpoint(&api.DeleteEndpointRequest{NetworkID: "n2-no-gateway", EndpointID: eid}); err != nil {
		t.Fatal(err)
	}
	gone(t, host)
}

// TestFailureLeavesNothing: a bridge name taken by another link is
// refused and the link left alone; a leftover bridge of a network the
// plugin does not know is deleted on request.
func TestFailureLeavesNothing(t *testing.T) {
	testutil.RequireRoot(t)
	d := newDriver(t)
	other := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: BridgeName("taken0000")}, PeerName: "taken-peer"}
	if err := netlink.LinkAdd(other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(other) })
	err := d.CreateNetwork(&api.CreateNetworkRequest{NetworkID: "taken0000", IPv4Data: []*api.IPAMData{{Gateway: "10.51.0.1/24"}}})
	if err == nil || !strings.Contains(err.Error(), "creating bridge vpbtaken00") {
		t.Errorf("CreateNetwork over another link: %v", err)
	}
	if l := link(t, other.Name); l.Type() != "veth" {
		t.Errorf("the veth in the way became a %s", l.Type())
	}
	if _, err := d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: "taken0000", EndpointID: eid}); err == nil || !isNotFound(err) {
		t.Errorf("the failed network was kept: %v", err)
	}

	// A Join whose pair cannot be put on the bridge (a veth took the
	// bridge's place) leaves no pair, and the endpoint can still go.
	if err := d.CreateNetwork(&api.CreateNetworkRequest{NetworkID: "swap0000"}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkDel(link(t, BridgeName("swap0000"))); err != nil {
		t.Fatal(err)
	}
	impostor := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: BridgeName("swap0000")}, PeerName: "swap-peer"}
	if err := netlink.LinkAdd(impostor); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(impostor) })
	if _, err := d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: "swap0000", EndpointID: eid}); err != nil {
		t.Fatal(err)
	}
	_, err = d.Join(&api.JoinRequest{NetworkID: "swap0000", EndpointID: eid})
	if err == nil || !strings.Contains(err.Error(), "creating veth pair vphfedcba9/vpcfedcba9") {
		t.Errorf("Join onto a veth instead of a bridge: %v", err)
	}
	host, container := VethNames(eid)
	gone(t, host)
	gone(t, container)
	if err := d.DeleteEndpoint(&api.DeleteEndpointRequest{NetworkID: "swap0000", EndpointID: eid}); err != nil {
		t.Errorf("deleting the endpoint of a failed Join: %v", err)
	}

	if err := d.CreateNetwork(&api.CreateNetworkRequest{NetworkID: "left0000"}); err != nil {
		t.Fatal(err)
	}
	restarted := newDriver(t)
	if err := restarted.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: "left0000"}); err != nil {
		t.Fatalf("deleting a leftover bridge: %v", err)
	}
	gone(t, BridgeName("left0000"))
}

func link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return l
}

func gone(t *testing.T, name string) {
	t.Helper()
	if _, err := netlink.LinkByName(name); err == nil {
		t.Errorf("%s still exists", name)
	}
}

func addrs(t *testing.T, l netlink.Link) string {
	t.Helper()
	as, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, a := range as {
		s = append(s, a.IPNet.String())
	}
	return strings.Join(s, " ")
}

// newNetns makes a namespace for a sandbox, switching this thread into
// it and back; a thread whose switch back failed is not unlocked, so it
// dies with the test goroutine.
func newNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		ns.Close()
		t.Fatalf("switching back: %v", err)
	}
	runtime.UnlockOSThread()
	t.Cleanup(func() { ns.Close() })
	return ns
}
