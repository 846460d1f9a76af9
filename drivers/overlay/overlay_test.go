package overlay

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// threeHosts makes three hosts with network nid1 (VNI 4242,
// 10.10.0.0/24) and a container on each (10.10.0.11, .12, .13), each host
// knowing the others' containers as peers.
func threeHosts(t *testing.T) ([]*testHost, []*container) {
	t.Helper()
	u := newUnderlay(t)
	var hosts []*testHost
	var ctrs []*container
	for i := 1; i <= 3; i++ {
		h := u.addHost(t, i)
		h.createNet(t, nid1, 4242, "10.10.0.0/24")
		hosts = append(hosts, h)
		ctrs = append(ctrs, h.join(t, nid1, fmt.Sprintf("e%d%s", i, eid1[2:]), fmt.Sprintf("10.10.0.1%d/24", i)))
	}
	addPeers(t, nid1, hosts, ctrs)
	return hosts, ctrs
}

// TestAcrossHosts: containers on three hosts of one overlay network reach
// each other over TCP and UDP, with an MTU of the underlay's less 50 and
// no gateway, their interfaces made in place; Peers reads back what was
// programmed, and the network's namespace holds the bridge and the VXLAN
// device as specified.
func TestAcrossHosts(t *testing.T) {
	hosts, ctrs := threeHosts(t)
	for i, from := range ctrs {
		for j, to := range ctrs {
			if i == j {
				continue
			}
			if err := tcpCheck(t, from, to); err != nil {
				t.Errorf("TCP %s -> %s: %v", from.addr.IP, to.addr.IP, err)
			}
			if err := udpCheck(t, from, to); err != nil {
				t.Errorf("UDP %s -> %s: %v", from.addr.IP, to.addr.IP, err)
			}
		}
	}
	for _, c := range ctrs {
		l, err := c.ns.Handle().LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().MTU != 1450 {
			t.Errorf("%s: MTU %d, want 1450 (1500 - 50)", c.addr.IP, l.Attrs().MTU)
		}
		ip := c.addr.IP.To4()
		if wantMAC := fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", ip[0], ip[1], ip[2], ip[3]); l.Attrs().HardwareAddr.String() != wantMAC || c.mac.String() != wantMAC {
			t.Errorf("%s: MAC %s, endpoint's %s, want 02:42 and the address", c.addr.IP, l.Attrs().HardwareAddr, c.mac)
		}
		if !c.ji.Created || c.ji.Moved != "" || !c.ji.NoGW || c.ji.GW4 != nil {
			t.Errorf("%s: join reported created %v, moved %q, no gateway %v, gateway %v; want made in place, no gateway", c.addr.IP, c.ji.Created, c.ji.Moved, c.ji.NoGW, c.ji.GW4)
		}
	}
	// Host 1's view: the other two, with their endpoint IDs.
	peers, err := hosts[0].d.Peers(nid1)
	if err != nil {
		t.Fatal(err)
	}
	want := []Peer{ctrs[1].peer(hosts[1]), ctrs[2].peer(hosts[2])}
	if got, w := fmt.Sprint(peers), fmt.Sprint(want); got != w {
		t.Errorf("Peers = %s, want %s", got, w)
	}
	// The devices, as specified.
	links := hosts[0].nsLinks(t, nid1)
	vx, ok := links["vx-001092"].(*netlink.Vxlan)
	br := links["ov-001092"]
	switch {
	case !ok || br == nil:
		t.Fatalf("namespace links %v: want vx-001092 and ov-001092", links)
	case vx.VxlanId != 4242 || vx.Port != DefaultVXLANPort || vx.Learning || !vx.Proxy || !vx.SrcAddr.Equal(hosts[0].vtep):
		t.Errorf("VXLAN device: VNI %d port %d learning %v proxy %v local %s", vx.VxlanId, vx.Port, vx.Learning, vx.Proxy, vx.SrcAddr)
	case vx.MasterIndex != br.Attrs().Index || vx.MTU != 1450 || br.Attrs().MTU != 1450:
		t.Errorf("VXLAN device on %d (bridge %d), MTUs %d and %d", vx.MasterIndex, br.Attrs().Index, vx.MTU, br.Attrs().MTU)
	case vx.Alias != Mark+nid1 || br.Attrs().Alias != Mark+nid1:
		t.Errorf("marks %q, %q", vx.Alias, br.Attrs().Alias)
	case len(br.Attrs().HardwareAddr) != 6:
		t.Errorf("bridge MAC %s", br.Attrs().HardwareAddr)
	}
	// Nothing in the hosts' own namespaces but their underlay.
	for _, h := range hosts {
		if got := h.snapshot(t); got != "links: eth0/veth lo/device; namespaces: "+nid1 {
			t.Errorf("host %s: %s", h.vtep, got)
		}
	}
	if c := hosts[0].d.Capability(); c.DataScope != driverapi.GlobalScope || c.ConnectivityScope != driverapi.GlobalScope || hosts[0].d.Type() != "overlay" {
		t.Errorf("capability %+v, type %s", c, hosts[0].d.Type())
	}
}

// TestDeletePeer: a deleted peer is unreachable from the host that
// deleted it, and deleting twice is fine; adding it again restores the
// traffic, and adding it twice is fine. A peer on the host's own VTEP is
// ignored.
func TestDeletePeer(t *testing.T) {
	hosts, ctrs := threeHosts(t)
	h1, c1, c2 := hosts[0], ctrs[0], ctrs[1]
	if err := tcpCheck(t, c1, c2); err != nil {
		t.Fatalf("before: %v", err)
	}
	for range 2 {
		if err := h1.d.DeletePeer(nid1, c2.peer(hosts[1])); err != nil {
			t.Fatalf("DeletePeer: %v", err)
		}
	}
	addr := drivertest.ListenTCP(t, c2.ns, c2.addr.IP.String()+":0", "x")
	if _, err := drivertest.DialTCP(c1.ns, addr, 500*time.Millisecond); err == nil {
		t.Error("a deleted peer is still reachable")
	}
	peers, err := h1.d.Peers(nid1)
	if err != nil || fmt.Sprint(peers) != fmt.Sprint([]Peer{ctrs[2].peer(hosts[2])}) {
		t.Errorf("Peers after DeletePeer = %v, %v", peers, err)
	}
	for range 2 {
		if err := h1.d.AddPeer(nid1, c2.peer(hosts[1])); err != nil {
			t.Fatalf("AddPeer: %v", err)
		}
	}
	if err := tcpCheck(t, c1, c2); err != nil {
		t.Errorf("after adding it again: %v", err)
	}
	// Its own container as a peer: nothing programmed.
	if err := h1.d.AddPeer(nid1, c1.peer(h1)); err != nil {
		t.Errorf("AddPeer of a local endpoint: %v", err)
	}
	if err := h1.d.DeletePeer(nid1, c1.peer(h1)); err != nil {
		t.Errorf("DeletePeer of a local endpoint: %v", err)
	}
	if peers, _ := h1.d.Peers(nid1); len(peers) != 2 {
		t.Errorf("Peers = %v, want the two remote ones", peers)
	}
}

// TestPeerMoves: an endpoint that moves to another host (same address and
// MAC, another VTEP) is reached there once added with its new VTEP, and
// deleting its old self afterwards (the controller's stale-peer cleanup)
// does not undo that.
func TestPeerMoves(t *testing.T) {
	hosts, ctrs := threeHosts(t)
	h1, h2, h3 := hosts[0], hosts[1], hosts[2]
	old := ctrs[1]
	if err := tcpCheck(t, ctrs[0], old); err != nil {
		t.Fatalf("before: %v", err)
	}
	// The endpoint leaves host 2 and comes back on host 3.
	if err := h2.d.Leave(nid1, old.eid); err != nil {
		t.Fatal(err)
	}
	if err := h2.d.DeleteEndpoint(nid1, old.eid); err != nil {
		t.Fatal(err)
	}
	if err := old.ns.Destroy(); err != nil {
		t.Fatal(err)
	}
	moved := h3.join(t, nid1, "e9"+eid1[2:], old.addr.String())
	if moved.mac.String() != old.mac.String() {
		t.Fatalf("MAC %s, want %s (from the address)", moved.mac, old.mac)
	}
	if err := h1.d.AddPeer(nid1, moved.peer(h3)); err != nil {
		t.Fatal(err)
	}
	if err := h1.d.DeletePeer(nid1, old.peer(h2)); err != nil {
		t.Fatal(err)
	}
	if err := tcpCheck(t, ctrs[0], moved); err != nil {
		t.Errorf("after the move: %v", err)
	}
	peers, err := h1.d.Peers(nid1)
	want := []Peer{moved.peer(h3), ctrs[2].peer(h3)}
	if err != nil || fmt.Sprint(peers) != fmt.Sprint(want) {
		t.Errorf("Peers = %v, %v; want %v", peers, err, want)
	}
	// Once gone for good, deleting it removes it.
	if err := h1.d.DeletePeer(nid1, moved.peer(h3)); err != nil {
		t.Fatal(err)
	}
	if peers, _ := h1.d.Peers(nid1); fmt.Sprint(peers) != fmt.Sprint([]Peer{ctrs[2].peer(h3)}) {
		t.Errorf("Peers = %v", peers)
	}
}

// TestDualStack: on a network with an IPv6 pool too, containers on two
// hosts reach each other over IPv6 (the VXLAN device answers the
// neighbour solicitations for remote endpoints) and IPv4.
func TestDualStack(t *testing.T) {
	u := newUnderlay(t)
	hosts := []*testHost{u.addHost(t, 1), u.addHost(t, 2)}
	v6 := v4Data(t, "fd70::/64")
	var ctrs []*container
	for i, h := range hosts {
		if err := h.d.CreateNetwork(nid1, withIPv6(vniOpts("4400")), v4Data(t, "10.70.0.0/24"), v6); err != nil {
			t.Fatal(err)
		}
		eid := fmt.Sprintf("e%d%s", i+1, eid1[2:])
		info := &drivertest.IfInfo{Addr: drivertest.CIDR(t, fmt.Sprintf("10.70.0.1%d/24", i+1)), AddrV6: drivertest.CIDR(t, fmt.Sprintf("fd70::1%d/64", i+1))}
		if err := h.d.CreateEndpoint(nid1, eid, info, nil); err != nil {
			t.Fatal(err)
		}
		sb := drivertest.NewNamespace(t)
		ji := joinInfo(sb, "eth0")
		if err := h.d.Join(nid1, eid, sb.Path(), ji, nil); err != nil {
			t.Fatal(err)
		}
		if err := sb.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: info.Addr, AddrV6: info.AddrV6}); err != nil {
			t.Fatal(err)
		}
		ctrs = append(ctrs, &container{eid: eid, ns: sb, addr: info.Addr, mac: info.MAC, ji: ji})
	}
	for i, h := range hosts {
		o := ctrs[1-i]
		p := o.peer(hosts[1-i])
		p.IPv6 = net.ParseIP(fmt.Sprintf("fd70::1%d", 2-i))
		if err := h.d.AddPeer(nid1, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := tcpCheck(t, ctrs[0], ctrs[1]); err != nil {
		t.Errorf("IPv4: %v", err)
	}
	v6from, v6to := *ctrs[0], *ctrs[1]
	v6to.addr = drivertest.CIDR(t, "fd70::12/64")
	if err := tcpCheck(t, &v6from, &v6to); err != nil {
		t.Errorf("IPv6: %v", err)
	}
	peers, err := hosts[0].d.Peers(nid1)
	if err != nil || len(peers) != 1 || peers[0].IPv6.String() != "fd70::12" || peers[0].IP.String() != "10.70.0.12" {
		t.Errorf("Peers = %v, %v", peers, err)
	}
}

// TestIPv6Underlay: over an IPv6 underlay the VXLAN devices use the IPv6
// VTEPs, and the MTU leaves room for the 70 bytes of encapsulation.
func TestIPv6Underlay(t *testing.T) {
	u := newUnderlay(t)
	u.ipv6 = true
	hosts := []*testHost{u.addHost(t, 1), u.addHost(t, 2)}
	var ctrs []*container
	for i, h := range hosts {
		h.createNet(t, nid1, 4800, "10.110.0.0/24")
		ctrs = append(ctrs, h.join(t, nid1, fmt.Sprintf("e%d%s", i+1, eid1[2:]), fmt.Sprintf("10.110.0.1%d/24", i+1)))
	}
	addPeers(t, nid1, hosts, ctrs)
	if err := tcpCheck(t, ctrs[0], ctrs[1]); err != nil {
		t.Errorf("TCP: %v", err)
	}
	if err := udpCheck(t, ctrs[1], ctrs[0]); err != nil {
		t.Errorf("UDP: %v", err)
	}
	l, err := ctrs[0].ns.Handle().LinkByName("eth0")
	if err != nil || l.Attrs().MTU != 1430 {
		t.Errorf("MTU %v, %v; want 1430 (1500 - 70)", l, err)
	}
	if vx, ok := hosts[0].nsLinks(t, nid1)["vx-0012c0"].(*netlink.Vxlan); !ok || !vx.SrcAddr.Equal(hosts[0].vtep) {
		t.Errorf("VXLAN device %+v, want local %s", vx, hosts[0].vtep)
	}
	if err := hosts[0].d.AddPeer(nid1, Peer{IP: net.ParseIP("10.110.0.20"), MAC: net.HardwareAddr{2, 0x42, 10, 110, 0, 20}, VTEP: net.ParseIP("192.168.200.2")}); !types.IsBadRequest(err) {
		t.Errorf("an IPv4 VTEP on an IPv6 underlay: %v", err)
	}
}
