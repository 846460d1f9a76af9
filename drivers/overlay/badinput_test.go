package overlay

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/internal/drivertest"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/types"
)

// TestBadNetworks: bad network options are refused with errors naming the
// network, the option and the value, of the class a caller tests for, and
// leave nothing in the host's namespace or the namespace directory; so do
// failures half-way through the creation, after which the VNI is free at
// once.
func TestBadNetworks(t *testing.T) {
	u := newUnderlay(t)
	h := u.addHost(t, 1)
	h.createNet(t, nid1, 5000, "10.40.0.0/24")
	before := h.snapshot(t)
	one, two := v4Data(t, "10.41.0.0/24"), v4Data(t, "10.41.0.0/24", "10.42.0.0/24")
	type class func(error) bool
	optionErr := func(option string) class {
		return func(err error) bool {
			var oe *OptionError
			return errors.As(err, &oe) && oe.Option == option && oe.Network == nid2 && types.IsBadRequest(err)
		}
	}
	for _, c := range []struct {
		name  string
		opts  map[string]interface{}
		v4    []driverapi.IPAMData
		is    class
		words string // in the message
	}{
		{"no options", nil, one, optionErr(VXLANIDListOption), "missing"},
		{"no VNI list", map[string]interface{}{netlabel.GenericData: map[string]string{}}, one, optionErr(VXLANIDListOption), "missing"},
		{"empty VNI list", vniOpts(""), one, optionErr(VXLANIDListOption), "missing"},
		{"not a number", vniOpts("abc"), one, optionErr(VXLANIDListOption), `"abc"`},
		{"negative", vniOpts("-5"), one, optionErr(VXLANIDListOption), `"-5"`},
		{"VNI 0", vniOpts("0"), one, optionErr(VXLANIDListOption), "VNI 0 is out of range 1..16777215"},
		{"VNI 2^24", vniOpts("16777216"), one, optionErr(VXLANIDListOption), "VNI 16777216 is out of range"},
		{"more VNIs than subnets", vniOpts("5001,5002"), one, optionErr(VXLANIDListOption), "2 VNIs for 1 subnets (10.41.0.0/24)"},
		{"fewer VNIs than subnets", vniOpts("5001"), two, optionErr(VXLANIDListOption), "1 VNIs for 2 subnets"},
		{"a VNI twice", vniOpts("5001,5001"), two, optionErr(VXLANIDListOption), "VNI 5001 appears twice"},
		{"MTU above the underlay's", vniOpts("5001", MTUOption, "1451"), one, optionErr(MTUOption), "above 1450, the MTU of the underlay interface eth0 (1500) less the VXLAN overhead (50)"},
		{"MTU not a number", vniOpts("5001", MTUOption, "big"), one, types.IsBadRequest, MTUOption},
		{"unknown option", vniOpts("5001", "com.example.x", "true"), one, types.IsBadRequest, `"com.example.x"`},
		{"encrypted", vniOpts("5001", "encrypted", ""), one, optionErr("encrypted"), "not supported"},
		{"no subnet", vniOpts("5001"), nil, types.IsBadRequest, "no subnet"},
		{"VNI in use", vniOpts("5000"), one, types.IsForbidden, "VNI 5000 is in use"},
	} {
		err := h.d.CreateNetwork(nid2, c.opts, c.v4, nil)
		if err == nil || !c.is(err) || !strings.Contains(err.Error(), c.words) || !strings.Contains(err.Error(), nid2) {
			t.Errorf("%s: %v (%T), want an error of its class naming %s and saying %q", c.name, err, err, nid2, c.words)
		}
		if after := h.snapshot(t); after != before {
			t.Errorf("%s: left\n%s\nwas\n%s", c.name, after, before)
		}
	}
	if err := h.d.CreateNetwork(nid1, vniOpts("5001"), one, nil); !types.IsForbidden(err) {
		t.Errorf("creating an existing network = %v, want Forbidden", err)
	}
	if err := h.d.CreateNetwork("../x", vniOpts("5001"), one, nil); !types.IsBadRequest(err) {
		t.Errorf("a network ID that is a path = %v, want BadRequest", err)
	}

	// Failures half-way.
	for _, step := range []string{stepNamespace, stepSysctls, stepBridge, stepVXLAN} {
		h.d.failPoint = func(s string) error {
			if s == step {
				return types.InternalErrorf("injected failure after %s", s)
			}
			return nil
		}
		if err := h.d.CreateNetwork(nid2, vniOpts("5001"), one, nil); !types.IsInternal(err) {
			t.Errorf("failure after %s: %v", step, err)
		}
		if after := h.snapshot(t); after != before {
			t.Errorf("failure after %s left\n%s\nwas\n%s", step, after, before)
		}
	}
	h.d.failPoint = nil
	if err := h.d.CreateNetwork(nid2, vniOpts("5001"), one, nil); err != nil {
		t.Fatalf("the VNI of a failed creation is not free: %v", err)
	}
	if err := h.d.DeleteNetwork(nid2); err != nil {
		t.Fatal(err)
	}
	if err := h.d.DeleteNetwork(nid2); !types.IsNotFound(err) {
		t.Errorf("deleting it twice = %v, want NotFound", err)
	}
	// Deleted networks free their VNI at once too.
	h.createNet(t, nid2, 5001, "10.41.0.0/24")
	if err := h.d.DeleteNetwork(nid2); err != nil {
		t.Fatal(err)
	}
	if after := h.snapshot(t); after != before {
		t.Errorf("DeleteNetwork left\n%s\nwas\n%s", after, before)
	}

	// No VTEP, or one that is not this host's.
	for vtep, is := range map[string]func(error) bool{
		"": func(err error) bool { return errors.Is(err, ErrNoVTEP) && types.IsForbidden(err) },
		"192.168.200.99": func(err error) bool {
			return types.IsNotFound(err) && strings.Contains(err.Error(), "VTEP 192.168.200.99")
		},
	} {
		d, err := New(Config{Host: h.ns.Handle(), NamespaceDir: h.nsDir, VTEP: net.ParseIP(vtep)})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.CreateNetwork(nid2, vniOpts("5001"), one, nil); !is(err) {
			t.Errorf("VTEP %q: %v", vtep, err)
		}
		_ = d.Close()
	}
	if after := h.snapshot(t); after != before {
		t.Errorf("refused networks left\n%s\nwas\n%s", after, before)
	}
}

// TestBadConfig: New refuses what cannot work.
func TestBadConfig(t *testing.T) {
	u := newUnderlay(t)
	h := u.addHost(t, 1)
	dir := t.TempDir()
	for name, c := range map[string]Config{
		"no handle":          {NamespaceDir: dir},
		"relative directory": {Host: h.ns.Handle(), NamespaceDir: "overlay"},
		"no directory":       {Host: h.ns.Handle()},
		"port 70000":         {Host: h.ns.Handle(), NamespaceDir: dir, VXLANPort: 70000},
		"multicast VTEP":     {Host: h.ns.Handle(), NamespaceDir: dir, VTEP: net.ParseIP("239.1.1.1")},
		"unspecified VTEP":   {Host: h.ns.Handle(), NamespaceDir: dir, VTEP: net.IPv4zero},
		"loopback VTEP":      {Host: h.ns.Handle(), NamespaceDir: dir, VTEP: net.ParseIP("127.0.0.1")},
	} {
		if _, err := New(c); !types.IsBadRequest(err) {
			t.Errorf("%s: %v, want BadRequest", name, err)
		}
	}
}

// TestBadEndpointsAndPeers: bad endpoints, joins and peers are refused
// with errors of their class and leave nothing in the network's
// namespace.
func TestBadEndpointsAndPeers(t *testing.T) {
	u := newUnderlay(t)
	h := u.addHost(t, 1)
	h.createNet(t, nid1, 5100, "10.50.0.0/24")
	c := h.join(t, nid1, eid1, "10.50.0.11/24")
	links := func() string { return fmt.Sprint(len(h.nsLinks(t, nid1))) }
	before := links()

	if err := h.d.CreateEndpoint(nid1, eid2, &drivertest.IfInfo{Addr: drivertest.CIDR(t, "10.99.0.2/24")}, nil); !types.IsBadRequest(err) || !strings.Contains(err.Error(), "10.99.0.2") {
		t.Errorf("endpoint outside the subnets: %v", err)
	}
	if err := h.d.CreateEndpoint(nid1, eid2, &drivertest.IfInfo{}, nil); !types.IsBadRequest(err) {
		t.Errorf("endpoint without an address: %v", err)
	}
	if err := h.d.CreateEndpoint(nid2, eid2, &drivertest.IfInfo{Addr: drivertest.CIDR(t, "10.50.0.12/24")}, nil); !types.IsNotFound(err) {
		t.Errorf("endpoint of an unknown network: %v", err)
	}
	if err := h.d.CreateEndpoint(nid1, eid1, &drivertest.IfInfo{Addr: drivertest.CIDR(t, "10.50.0.11/24")}, nil); !types.IsForbidden(err) {
		t.Errorf("endpoint twice: %v", err)
	}
	if err := h.d.Join(nid1, eid1, c.ns.Path(), nil, nil); !types.IsBadRequest(err) {
		t.Errorf("join without a sandbox: %v", err)
	}
	// A name the sandbox already has.
	if err := h.d.CreateEndpoint(nid1, eid2, &drivertest.IfInfo{Addr: drivertest.CIDR(t, "10.50.0.12/24")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.d.Join(nid1, eid2, c.ns.Path(), joinInfo(c.ns, "eth0"), nil); !types.IsForbidden(err) || !strings.Contains(err.Error(), "eth0") {
		t.Errorf("join under a name the sandbox has: %v", err)
	}
	if after := links(); after != before {
		t.Errorf("a failed join left links in the network's namespace: %s, was %s", after, before)
	}
	if err := h.d.ProgramExternalConnectivity(nid1, eid1, map[string]interface{}{netlabel.PortMap: []types.PortBinding{{Port: 80}}}); !types.IsForbidden(err) {
		t.Errorf("publishing ports: %v", err)
	}
	if err := h.d.ProgramExternalConnectivity(nid1, eid1, nil); err != nil {
		t.Errorf("external connectivity without ports: %v", err)
	}

	mac := net.HardwareAddr{2, 0x42, 10, 50, 0, 20}
	vtep := net.ParseIP("192.168.200.2")
	ip := net.ParseIP("10.50.0.20")
	for name, p := range map[string]Peer{
		"no MAC":             {IP: ip, VTEP: vtep},
		"multicast MAC":      {IP: ip, MAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}, VTEP: vtep},
		"zero MAC":           {IP: ip, MAC: make(net.HardwareAddr, 6), VTEP: vtep},
		"no VTEP":            {IP: ip, MAC: mac},
		"IPv6 VTEP":          {IP: ip, MAC: mac, VTEP: net.ParseIP("fd00::2")},
		"no IP":              {MAC: mac, VTEP: vtep},
		"IP outside":         {IP: net.ParseIP("10.99.0.1"), MAC: mac, VTEP: vtep},
		"IPv6 not on subnet": {IP: ip, IPv6: net.ParseIP("fd00::20"), MAC: mac, VTEP: vtep},
	} {
		for op, f := range map[string]func(string, Peer) error{"AddPeer": h.d.AddPeer, "DeletePeer": h.d.DeletePeer} {
			var pe *PeerError
			if err := f(nid1, p); !errors.As(err, &pe) || !types.IsBadRequest(err) || pe.Network != nid1 {
				t.Errorf("%s with %s: %v", op, name, err)
			}
		}
	}
	if err := h.d.AddPeer(nid2, Peer{IP: ip, MAC: mac, VTEP: vtep}); !types.IsNotFound(err) {
		t.Errorf("AddPeer on an unknown network: %v", err)
	}
	if _, err := h.d.Peers(nid2); !types.IsNotFound(err) {
		t.Errorf("Peers of an unknown network: %v", err)
	}
	if peers, err := h.d.Peers(nid1); err != nil || len(peers) != 0 {
		t.Errorf("refused peers were programmed: %v, %v", peers, err)
	}
}
