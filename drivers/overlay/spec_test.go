package overlay

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/netlabel"
)

// TestVXLANSpec checks the netlink request of a segment's VXLAN device,
// without the kernel: VNI, port, local VTEP, learning and misses off,
// proxy on, no group, born in the network's namespace.
func TestVXLANSpec(t *testing.T) {
	s := vxlanSpec{name: "vx-001092", vni: 4242, port: 4789, local: net.ParseIP("192.168.200.1").To4(), mtu: 1450, mark: Mark + "n1", nsFd: 9}
	l := s.link()
	a := l.Attrs()
	switch {
	case l.Type() != "vxlan" || a.Name != "vx-001092" || a.MTU != 1450 || a.Alias != Mark+"n1":
		t.Errorf("attrs %+v", a)
	case l.VxlanId != 4242 || l.Port != 4789 || !l.SrcAddr.Equal(net.ParseIP("192.168.200.1")):
		t.Errorf("VNI %d, port %d, local %s", l.VxlanId, l.Port, l.SrcAddr)
	case l.Learning || l.L2miss || l.L3miss || !l.Proxy || l.Group != nil || l.FlowBased || l.VtepDevIndex != 0:
		t.Errorf("learning %v, misses %v/%v, proxy %v, group %v, flow based %v, dev %d", l.Learning, l.L2miss, l.L3miss, l.Proxy, l.Group, l.FlowBased, l.VtepDevIndex)
	case a.Namespace != netlink.NsFd(9):
		t.Errorf("namespace %v, want fd 9", a.Namespace)
	}
	// Adoption: the same device as the kernel reports it matches; any
	// difference does not.
	got := *l
	if !s.matches(&got) {
		t.Error("the device as specified does not match")
	}
	for name, change := range map[string]func(v *netlink.Vxlan){
		"VNI":      func(v *netlink.Vxlan) { v.VxlanId = 4243 },
		"port":     func(v *netlink.Vxlan) { v.Port = 8472 },
		"local":    func(v *netlink.Vxlan) { v.SrcAddr = net.ParseIP("192.168.200.9") },
		"learning": func(v *netlink.Vxlan) { v.Learning = true },
		"proxy":    func(v *netlink.Vxlan) { v.Proxy = false },
		"group":    func(v *netlink.Vxlan) { v.Group = net.ParseIP("239.0.0.1") },
		"mark":     func(v *netlink.Vxlan) { v.Alias = Mark + "n2" },
	} {
		v := *l
		change(&v)
		if s.matches(&v) {
			t.Errorf("a device with another %s matches", name)
		}
	}
	if s.matches(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Alias: Mark + "n1"}}) {
		t.Error("a bridge matches a VXLAN spec")
	}
	b := bridgeSpec{name: "ov-001092", mtu: 1450, mac: net.HardwareAddr{2, 1, 2, 3, 4, 5}, mark: Mark + "n1"}.link()
	if b.Name != "ov-001092" || b.MTU != 1450 || b.HardwareAddr.String() != "02:01:02:03:04:05" || b.Alias != Mark+"n1" {
		t.Errorf("bridge %+v", b.LinkAttrs)
	}
}

// TestPeerEntries checks the FDB and neighbour entries of a peer.
func TestPeerEntries(t *testing.T) {
	mac := net.HardwareAddr{2, 0x42, 10, 0, 0, 2}
	f := fdbEntry(7, mac, net.ParseIP("192.168.200.2"))
	if f.LinkIndex != 7 || f.Family != unix.AF_BRIDGE || f.State != netlink.NUD_PERMANENT || f.Flags != netlink.NTF_SELF ||
		f.HardwareAddr.String() != mac.String() || !f.IP.Equal(net.ParseIP("192.168.200.2")) || f.MasterIndex != 0 || f.VNI != 0 {
		t.Errorf("FDB entry %+v", f)
	}
	n4 := neighEntry(7, net.ParseIP("10.0.0.2"), mac)
	if n4.Family != unix.AF_INET || len(n4.IP) != 4 || n4.State != netlink.NUD_PERMANENT || n4.Flags != 0 || n4.HardwareAddr.String() != mac.String() {
		t.Errorf("IPv4 neighbour entry %+v", n4)
	}
	if n6 := neighEntry(7, net.ParseIP("fd00::2"), mac); n6.Family != unix.AF_INET6 || len(n6.IP) != 16 {
		t.Errorf("IPv6 neighbour entry %+v", n6)
	}
}

func TestParseNetworkConfig(t *testing.T) {
	v4, withV6 := v4Pools, withIPv6
	for _, c := range []struct {
		name string
		opts map[string]interface{}
		v4   []driverapi.IPAMData
		v6   []driverapi.IPAMData
		want string // fmt of the segments, or of the error
	}{
		{"one", vniOpts("42"), v4("10.0.0.0/24"), nil, "[{42 [10.0.0.0/24]}] mtu 0"},
		{"two, spaces", vniOpts(" 42 , 16777215"), v4("10.0.0.0/24", "10.1.0.0/24"), nil, "[{42 [10.0.0.0/24]} {16777215 [10.1.0.0/24]}] mtu 0"},
		{"MTU", vniOpts("42", MTUOption, "1400"), v4("10.0.0.0/24"), nil, "[{42 [10.0.0.0/24]}] mtu 1400"},
		{"dual stack", withV6(vniOpts("42")), v4("10.0.0.0/24"), v4("fd00::/64"), "[{42 [10.0.0.0/24 fd00::/64]}] mtu 0"},
		{"IPv6 off", vniOpts("42"), v4("10.0.0.0/24"), v4("fd00::/64"), "[{42 [10.0.0.0/24]}] mtu 0"},
		{"IPv6 only", withV6(vniOpts("42,43")), nil, v4("fd00::/64", "fd01::/64"), "[{42 [fd00::/64]} {43 [fd01::/64]}] mtu 0"},
		{"missing", map[string]interface{}{}, v4("10.0.0.0/24"), nil, "error: overlay network n1: option " + VXLANIDListOption + ": missing: the controller must give one VNI (1..16777215) per IPv4 subnet, comma-separated"},
		{"trailing comma", vniOpts("42,"), v4("10.0.0.0/24"), nil, `error: overlay network n1: option ` + VXLANIDListOption + `="42,": "" is not a VNI (a decimal number 1..16777215)`},
		{"hex", vniOpts("0x2a"), v4("10.0.0.0/24"), nil, `error: overlay network n1: option ` + VXLANIDListOption + `="0x2a": "0x2a" is not a VNI (a decimal number 1..16777215)`},
		{"MTU too small", vniOpts("42", MTUOption, "60"), v4("10.0.0.0/24"), nil, "error: overlay network n1: option " + MTUOption + ": 60 is out of range 68..65535"},
	} {
		cfg, err := parseNetworkConfig("n1", c.opts, c.v4, c.v6)
		var segs []string
		for _, sc := range cfg.segments {
			segs = append(segs, fmt.Sprintf("{%d %v}", sc.vni, sc.subnets))
		}
		got := fmt.Sprintf("[%s] mtu %d", strings.Join(segs, " "), cfg.mtu)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestEndpointMAC(t *testing.T) {
	if got := endpointMAC(&net.IPNet{IP: net.ParseIP("10.10.0.11")}).String(); got != "02:42:0a:0a:00:0b" {
		t.Errorf("from 10.10.0.11: %s", got)
	}
	for range 20 {
		if m := endpointMAC(&net.IPNet{IP: net.ParseIP("fd00::1")}); len(m) != 6 || m[0]&1 != 0 || m[0]&2 == 0 {
			t.Fatalf("random MAC %s is not locally administered unicast", m)
		}
	}
}

// TestCheckPeer checks the normalisation and the segment of peers.
func TestCheckPeer(t *testing.T) {
	d := &Driver{vtep: net.ParseIP("192.168.200.1").To4(), port: DefaultVXLANPort}
	c, err := parseNetworkConfig("n1", withIPv6(vniOpts("42,43")), v4Pools("10.0.0.0/24", "10.1.0.0/24"), v4Pools("fd00::/64"))
	if err != nil {
		t.Fatal(err)
	}
	n := d.newNetwork("n1", c, 1450)
	mac := net.HardwareAddr{2, 0x42, 10, 1, 0, 2}
	p, seg, err := d.checkPeer(n, Peer{IP: net.ParseIP("10.1.0.2"), MAC: mac, VTEP: net.ParseIP("192.168.200.2")})
	if err != nil || seg != 1 || len(p.IP) != 4 || len(p.VTEP) != 4 {
		t.Errorf("peer on the second segment: %v, %d, %v", p, seg, err)
	}
	p, seg, err = d.checkPeer(n, Peer{IP: net.ParseIP("10.0.0.2"), IPv6: net.ParseIP("fd00::2"), MAC: mac, VTEP: net.ParseIP("192.168.200.2")})
	if err != nil || seg != 0 || p.String() != "10.0.0.2,fd00::2 02:42:0a:01:00:02 at 192.168.200.2" {
		t.Errorf("dual-stack peer: %v, %d, %v", p, seg, err)
	}
	_, _, err = d.checkPeer(n, Peer{IP: net.ParseIP("10.1.0.2"), IPv6: net.ParseIP("fd00::2"), MAC: mac, VTEP: net.ParseIP("192.168.200.2")})
	var pe *PeerError
	if !errors.As(err, &pe) {
		t.Errorf("IPv6 address on another segment: %v", err)
	}
	if n.segments[1].vxlan.name != "vx-00002b" || n.segments[1].bridge.name != "ov-00002b" || n.segments[1].vxlan.local.String() != "192.168.200.1" {
		t.Errorf("segment names %s, %s", n.segments[1].vxlan.name, n.segments[1].bridge.name)
	}
}

func withIPv6(o map[string]interface{}) map[string]interface{} {
	o[netlabel.EnableIPv6] = true
	return o
}

func v4Pools(pools ...string) []driverapi.IPAMData {
	var out []driverapi.IPAMData
	for _, p := range pools {
		_, n, _ := net.ParseCIDR(p)
		out = append(out, driverapi.IPAMData{Pool: n})
	}
	return out
}
