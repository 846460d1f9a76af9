package osl

import (
	"errors"
	"net"
	"testing"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestAddVeth creates a pair in one request: the end up, on its bridge,
// with its address and MTU and the index returned; the peer in the other
// namespace with its own. A request that fails creates nothing.
func TestAddVeth(t *testing.T) {
	testutil.RequireRoot(t)
	host := currentNamespace(t)
	sb := newTestNamespace(t)
	h := host.Handle()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-addveth"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.LinkDel(br) })
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	peerMAC, _ := net.ParseMAC("02:00:00:00:00:02")
	v := Veth{Name: "vb-add", MAC: mac, MTU: 1400, Master: br.Attrs().Index, Up: true,
		PeerName: "eth0", PeerMAC: peerMAC, PeerNS: sb.Fd()}
	idx, err := host.AddVeth(v)
	if err != nil {
		t.Fatalf("AddVeth: %v", err)
	}
	t.Cleanup(func() { _ = host.DeleteLinks([]int{idx}) })
	l, err := h.LinkByName("vb-add")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Attrs()
	if a.Index != idx || a.MasterIndex != br.Attrs().Index || a.Flags&net.FlagUp == 0 || a.MTU != 1400 || a.HardwareAddr.String() != mac.String() {
		t.Errorf("end: index %d (returned %d), master %d, flags %v, MTU %d, MAC %s", a.Index, idx, a.MasterIndex, a.Flags, a.MTU, a.HardwareAddr)
	}
	p, err := sb.Handle().LinkByName("eth0")
	if err != nil {
		t.Fatalf("no peer in the namespace: %v", err)
	}
	if pa := p.Attrs(); pa.MTU != 1400 || pa.HardwareAddr.String() != peerMAC.String() {
		t.Errorf("peer: MTU %d, MAC %s", pa.MTU, pa.HardwareAddr)
	}

	// The peer name is taken in the namespace: nothing is created.
	v.Name = "vb-add2"
	if _, err := host.AddVeth(v); err == nil || !errors.Is(err, unix.EEXIST) {
		t.Errorf("AddVeth with a taken peer name: %v, want EEXIST", err)
	}
	if _, err := h.LinkByName("vb-add2"); err == nil {
		t.Error("a failed AddVeth left its end")
	}
}
