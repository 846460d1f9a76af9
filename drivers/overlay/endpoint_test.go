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

// TestLeaveAndJoinAgain: a left endpoint's veth stays for the grace period
// and then goes; joining again before that takes the name back (the old
// veth moved aside) and works; the veths of a network go with it.
func TestLeaveAndJoinAgain(t *testing.T) {
	h1, h2 := twoHosts(t, 4300, "10.60.0.0/24")
	// A short grace, so that the test sees the sweep.
	h1.d.sweeper.close()
	h1.d.sweeper = newSweeper(50*time.Millisecond, h1.d.logger)
	c1 := h1.join(t, nid1, eid1, "10.60.0.11/24")
	c2 := h2.join(t, nid1, eid2, "10.60.0.12/24")
	addPeers(t, nid1, []*testHost{h1, h2}, []*container{c1, c2})
	veth := "veth" + eid1[:11]

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
	// The old veth, moved aside, is swept.
	waitFor(t, "the old veth swept", func() bool {
		for name := range h1.nsLinks(t, nid1) {
			if strings.HasPrefix(name, retiredPrefix) {
				return false
			}
		}
		return true
	})
	if h1.nsLinks(t, nid1)[veth] == nil {
		t.Fatal("the joined veth is gone")
	}
	// Leave for good: swept after the grace period.
	if err := c1.ns.RetireInterface("eth0", "gone2"); err != nil {
		t.Fatal(err)
	}
	if err := h1.d.Leave(nid1, eid1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the left veth swept", func() bool { return h1.nsLinks(t, nid1)[veth] == nil })
	if err := h1.d.DeleteEndpoint(nid1, eid1); err != nil {
		t.Fatal(err)
	}
	if _, err := h1.d.EndpointOperInfo(nid1, eid1); err == nil {
		t.Error("a deleted endpoint has oper info")
	}
	info, err := h2.d.EndpointOperInfo(nid1, eid2)
	if err != nil || fmt.Sprint(info[netlabel.MacAddress]) != c2.mac.String() {
		t.Errorf("EndpointOperInfo = %v, %v", info, err)
	}
	// Deleting the network takes a joined endpoint's veth, and with it
	// the sandbox's end.
	if err := h2.d.DeleteNetwork(nid1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sandbox's end gone with the network", func() bool {
		_, err := c2.ns.Handle().LinkByName("eth0")
		return err != nil
	})
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
