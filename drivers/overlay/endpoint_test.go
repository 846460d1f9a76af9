package overlay

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// TestLeaveAndJoinAgain: an endpoint left as the controller leaves it
// (its interface retired in the sandbox, down) joins the same sandbox
// again at once, with the same MAC on the same VXLAN device, and works;
// deleting the network takes the sandbox's link of a joined endpoint.
func TestLeaveAndJoinAgain(t *testing.T) {
	h1, h2 := twoHosts(t, 4300, "10.60.0.0/24")
	c1 := h1.join(t, nid1, eid1, "10.60.0.11/24")
	c2 := h2.join(t, nid1, eid2, "10.60.0.12/24")
	addPeers(t, nid1, []*testHost{h1, h2}, []*container{c1, c2})

	// Leave, as the controller does it: the sandbox's end retired first.
	if err := c1.ns.RetireInterface("eth0", "gone1"); err != nil {
		t.Fatal(err)
	}
	if err := h1.d.Leave(nid1, eid1); err != nil {
		t.Fatal(err)
	}
	// Joined again at once, into the same sandbox.
	ji := joinInfo(c1.ns, "eth0")
	if err := h1.d.Join(nid1, eid1, c1.ns.Path(), ji, nil); err != nil {
		t.Fatalf("joining again: %v", err)
	}
	if err := c1.ns.ConfigureInterface(osl.IfaceConfig{Name: "eth0", Addr: c1.addr}); err != nil {
		t.Fatal(err)
	}
	if err := tcpCheck(t, c1, c2); err != nil {
		t.Errorf("after joining again: %v", err)
	}
	if err := c1.ns.RetireInterface("eth0", "gone2"); err != nil {
		t.Fatal(err)
	}
	if err := h1.d.Leave(nid1, eid1); err != nil {
		t.Fatal(err)
	}
	if err := h1.d.DeleteEndpoint(nid1, eid1); err != nil {
		t.Fatal(err)
	}
	if _, err := h1.d.EndpointOperInfo(nid1, eid1); err == nil {
		t.Error("a deleted endpoint has oper info")
	}
	if err := h1.d.Leave(nid1, eid1); !types.IsNotFound(err) {
		t.Errorf("Leave of a deleted endpoint = %v, want NotFound", err)
	}
	info, err := h2.d.EndpointOperInfo(nid1, eid2)
	if err != nil || fmt.Sprint(info[netlabel.MacAddress]) != c2.mac.String() {
		t.Errorf("EndpointOperInfo = %v, %v", info, err)
	}
	// Deleting the network takes a joined endpoint's link in the sandbox
	// with its VXLAN device.
	if err := h2.d.DeleteNetwork(nid1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sandbox's end gone with the network", func() bool {
		_, err := c2.ns.Handle().LinkByName("eth0")
		return err != nil
	})
}

// TestSameHost: endpoints of one segment on one host reach each other
// inside the host (the macvlan devices' bridge mode), with no peer
// programmed, and a name already in the sandbox is refused as Forbidden
// with nothing made.
func TestSameHost(t *testing.T) {
	u := newUnderlay(t)
	h := u.addHost(t, 1)
	h.createNet(t, nid1, 4310, "10.61.0.0/24")
	c1 := h.join(t, nid1, eid1, "10.61.0.11/24")
	c2 := h.join(t, nid1, eid2, "10.61.0.12/24")
	if err := tcpCheck(t, c1, c2); err != nil {
		t.Errorf("TCP on one host: %v", err)
	}
	if err := udpCheck(t, c2, c1); err != nil {
		t.Errorf("UDP on one host: %v", err)
	}
	if err := h.d.CreateEndpoint(nid1, eid3, &drivertest.IfInfo{Addr: drivertest.CIDR(t, "10.61.0.13/24")}, nil); err != nil {
		t.Fatal(err)
	}
	before := drivertest.LinkNames(t, c1.ns.Handle())
	err := h.d.Join(nid1, eid3, c1.ns.Path(), joinInfo(c1.ns, "eth0"), nil)
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "eth0") {
		t.Errorf("joining under a name the sandbox has = %v, want Forbidden naming eth0", err)
	}
	if after := drivertest.LinkNames(t, c1.ns.Handle()); after != before {
		t.Errorf("a refused join left %s, was %s", after, before)
	}
	// The endpoint is free to join elsewhere.
	sb := drivertest.NewNamespace(t)
	if err := h.d.Join(nid1, eid3, sb.Path(), joinInfo(sb, "eth0"), nil); err != nil {
		t.Errorf("joining after a refused join: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds:
// what it waits for is asynchronous by design (a grace period, the
// kernel's clean-up of a namespace).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not after 10 s", what)
}

// TestConcurrent: joins, peer updates and reads run at once on one
// network (under -race, the locking is checked too), and a network
// deleted while peers are being programmed refuses them as NotFound and
// leaves nothing.
func TestConcurrent(t *testing.T) {
	u := newUnderlay(t)
	h := u.addHost(t, 1)
	before := h.snapshot(t)
	h.createNet(t, nid1, 4700, "10.100.0.0/16")
	const n = 16
	sbs := make([]*osl.Namespace, n)
	for i := range sbs {
		sbs[i] = drivertest.NewNamespace(t)
	}
	peer := func(i int) Peer {
		ip := net.IPv4(10, 100, 1, byte(i)).To4()
		return Peer{EndpointID: fmt.Sprint(i), IP: ip, MAC: endpointMAC(&net.IPNet{IP: ip}), VTEP: net.IPv4(192, 168, 200, 2+byte(i%3)).To4()}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			eid := fmt.Sprintf("%011x%053x", i, 0)
			if err := h.d.CreateEndpoint(nid1, eid, &drivertest.IfInfo{Addr: drivertest.CIDR(t, fmt.Sprintf("10.100.0.%d/16", i+2))}, nil); err != nil {
				errs <- err
				return
			}
			if err := h.d.Join(nid1, eid, sbs[i].Path(), joinInfo(sbs[i], "eth0"), nil); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			if err := h.d.AddPeer(nid1, peer(i)); err != nil {
				errs <- err
			}
			if i%2 == 0 {
				if err := h.d.DeletePeer(nid1, peer(i)); err != nil {
					errs <- err
				}
			}
			if _, err := h.d.Peers(nid1); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	peers, err := h.d.Peers(nid1)
	if err != nil || len(peers) != n/2 {
		t.Errorf("Peers = %d peers, %v; want %d", len(peers), err, n/2)
	}
	for i := range sbs {
		if _, err := sbs[i].Handle().LinkByName("eth0"); err != nil {
			t.Errorf("sandbox %d: %v", i, err)
		}
	}
	// Deleted while peers keep coming.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			if err := h.d.AddPeer(nid1, peer(100+i%100)); err != nil {
				if !types.IsNotFound(err) {
					t.Errorf("AddPeer while the network goes: %v", err)
				}
				return
			}
		}
	}()
	if err := h.d.DeleteNetwork(nid1); err != nil {
		t.Fatal(err)
	}
	<-done
	if after := h.snapshot(t); after != before {
		t.Errorf("left\n%s\nwas\n%s", after, before)
	}
}
