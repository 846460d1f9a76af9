package drivertest

import (
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/osl"
)

// LAN is a "LAN" for a macvlan or ipvlan parent: a veth pair with one end
// in the host namespace (the parent) and the other, lanpeer, in a
// namespace of its own with 192.168.90.1/24 and a TCP server greeting
// "lan".
type LAN struct {
	// NS is the LAN's own namespace.
	NS *osl.Namespace
	// Addr is the server's address, host:port.
	Addr string
}

// NewLAN builds a LAN whose end in host is named parent; the parent is
// deleted at cleanup.
func NewLAN(tb testing.TB, host *osl.Namespace, parent string) *LAN {
	tb.Helper()
	ns := NewNamespace(tb)
	h := host.Handle()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: parent}, PeerName: "lanpeer", PeerNamespace: netlink.NsFd(ns.Fd())}
	if err := h.LinkAdd(veth); err != nil {
		tb.Fatalf("creating the LAN veth: %v", err)
	}
	tb.Cleanup(func() {
		if l, err := h.LinkByName(parent); err == nil {
			_ = h.LinkDel(l)
		}
	})
	if err := h.LinkSetUp(veth); err != nil {
		tb.Fatal(err)
	}
	if err := ns.ConfigureInterface(osl.IfaceConfig{Name: "lanpeer", Addr: CIDR(tb, "192.168.90.1/24")}); err != nil {
		tb.Fatal(err)
	}
	return &LAN{NS: ns, Addr: ListenTCP(tb, ns, "192.168.90.1:0", "lan")}
}
