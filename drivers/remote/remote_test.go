package remote

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/driverapi"
	"github.com/netkit/libnetwork/drivers/remote/api"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/plugins"
	"github.com/netkit/libnetwork/types"
)

func TestCapabilities(t *testing.T) {
	good := []struct {
		answer     string
		data, conn string
	}{
		{`{"Scope":"local"}`, "local", "local"},
		{`{"Scope":"global"}`, "global", "global"},
		{`{"Scope":"global","ConnectivityScope":"local"}`, "global", "local"},
		{`{"Scope":"local","ConnectivityScope":"global"}`, "local", "global"},
	}
	for i, tc := range good {
		t.Run(fmt.Sprint("good", i), func(t *testing.T) {
			f, p := startPlugin(t, "caps", pluginOpts{answers: map[string]answer{api.GetCapabilities: {status: 200, body: tc.answer}}})
			d, err := New(p, Config{})
			if err != nil {
				t.Fatal(err)
			}
			want := driverapi.Capability{DataScope: tc.data, ConnectivityScope: tc.conn, Attachment: driverapi.AttachInterface}
			if got := d.Capability(); got != want {
				t.Errorf("Capability() = %+v, want %+v", got, want)
			}
			if d.Type() != "caps" {
				t.Errorf("Type() = %q, want the plugin's name", d.Type())
			}
			checkCalls(t, f, call{api.GetCapabilities, json.RawMessage(`{}`)})
		})
	}

	bad := []struct {
		answer string
		says   string
	}{
		{`{}`, `invalid Scope ""`},
		{`{"Scope":"Local"}`, `invalid Scope "Local"`},
		{`{"Scope":"swarm"}`, `invalid Scope "swarm"`},
		{`{"Scope":"local","ConnectivityScope":"planet"}`, `invalid ConnectivityScope "planet"`},
	}
	for i, tc := range bad {
		t.Run(fmt.Sprint("bad", i), func(t *testing.T) {
			_, p := startPlugin(t, "caps", pluginOpts{answers: map[string]answer{api.GetCapabilities: {status: 200, body: tc.answer}}})
			d, err := New(p, Config{})
			checkErr[types.BadRequestError](t, err, "network plugin caps: GetCapabilities", tc.says)
			if d != nil {
				t.Error("New returned a driver with its error")
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		_, p := startPlugin(t, "caps", pluginOpts{answers: map[string]answer{api.GetCapabilities: {status: 500, body: `{"Err":"not today"}`}}})
		_, err := New(p, Config{})
		checkErr[types.ForbiddenError](t, err, "network plugin caps: GetCapabilities", "not today")
	})
	t.Run("not implemented", func(t *testing.T) {
		_, p := startPlugin(t, "caps", pluginOpts{missing: []string{api.GetCapabilities}})
		_, err := New(p, Config{})
		checkErr[types.NotImplementedError](t, err, "network plugin caps: GetCapabilities")
	})
}

// method is one method of the driver, called with fixed arguments, and the
// request the plugin must get for it.
type method struct {
	name string
	do   func(d *Driver) error
	want string
}

var (
	v4Data = []driverapi.IPAMData{{
		AddressSpace: "local",
		Pool:         mustCIDR("10.0.0.0/24"),
		Gateway:      mustCIDR("10.0.0.1/24"),
		AuxAddresses: map[string]*net.IPNet{"router": mustCIDR("10.0.0.5/24")},
	}}
	v6Data = []driverapi.IPAMData{{AddressSpace: "local6", Pool: mustCIDR("fd00::/64")}}
	ipams  = `"IPv4Data":[{"AddressSpace":"local","Pool":"10.0.0.0/24","Gateway":"10.0.0.1/24","AuxAddresses":{"router":"10.0.0.5/24"}}],
		"IPv6Data":[{"AddressSpace":"local6","Pool":"fd00::/64","Gateway":"","AuxAddresses":null}]`
)

// allDriverMethods returns every method of the driver but New, with what each
// sends.
func allDriverMethods() []method {
	netOpts := map[string]interface{}{
		netlabel.GenericData: map[string]string{"com.example.vni": "42"},
		netlabel.EnableIPv6:  true,
		netlabel.Internal:    false,
	}
	epOpts := map[string]interface{}{"com.example.ep": map[string]interface{}{"k": 1}}
	return []method{
		{api.CreateNetwork, func(d *Driver) error { return d.CreateNetwork("n1", netOpts, v4Data, v6Data) },
			`{"NetworkID":"n1","Options":{"com.docker.network.generic":{"com.example.vni":"42"},
			"com.docker.network.enable_ipv6":true,"com.docker.network.internal":false},` + ipams + `}`},
		{api.DeleteNetwork, func(d *Driver) error { return d.DeleteNetwork("n1") }, `{"NetworkID":"n1"}`},
		{api.AllocateNetwork, func(d *Driver) error {
			_, err := d.AllocateNetwork("n1", map[string]string{"a": "b"}, v4Data, v6Data)
			return err
		}, `{"NetworkID":"n1","Options":{"a":"b"},` + ipams + `}`},
		{api.FreeNetwork, func(d *Driver) error { return d.FreeNetwork("n1") }, `{"NetworkID":"n1"}`},
		{api.CreateEndpoint, func(d *Driver) error {
			ifc := &fakeIface{addr: mustCIDR("10.0.0.2/24"), addr6: mustCIDR("fd00::2/64"), mac: mustMAC("02:42:0a:00:00:02")}
			return d.CreateEndpoint("n1", "e1", ifc, epOpts)
		}, `{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"10.0.0.2/24","AddressIPv6":"fd00::2/64",
			"MacAddress":"02:42:0a:00:00:02"},"Options":{"com.example.ep":{"k":1}}}`},
		{api.DeleteEndpoint, func(d *Driver) error { return d.DeleteEndpoint("n1", "e1") }, `{"NetworkID":"n1","EndpointID":"e1"}`},
		{api.EndpointInfo, func(d *Driver) error {
			_, err := d.EndpointOperInfo("n1", "e1")
			return err
		}, `{"NetworkID":"n1","EndpointID":"e1"}`},
		{api.Join, func(d *Driver) error {
			return d.Join("n1", "e1", "/var/run/netns/sb1", &fakeJoin{}, epOpts)
		}, `{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/var/run/netns/sb1","Options":{"com.example.ep":{"k":1}}}`},
		{api.Leave, func(d *Driver) error { return d.Leave("n1", "e1") }, `{"NetworkID":"n1","EndpointID":"e1"}`},
		{api.DiscoverNew, func(d *Driver) error {
			return d.DiscoverNew(1, map[string]interface{}{"Address": "192.0.2.1", "Self": true})
		}, `{"DiscoveryType":1,"DiscoveryData":{"Address":"192.0.2.1","Self":true}}`},
		{api.DiscoverDelete, func(d *Driver) error { return d.DiscoverDelete(1, map[string]string{"Address": "192.0.2.1"}) },
			`{"DiscoveryType":1,"DiscoveryData":{"Address":"192.0.2.1"}}`},
		{api.ProgramExternalConnectivity, func(d *Driver) error {
			return d.ProgramExternalConnectivity("n1", "e1", map[string]interface{}{
				netlabel.ExposedPorts: []types.TransportPort{{Proto: types.TCP, Port: 80}},
			})
		}, `{"NetworkID":"n1","EndpointID":"e1","Options":{"com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80}]}}`},
		{api.RevokeExternalConnectivity, func(d *Driver) error { return d.RevokeExternalConnectivity("n1", "e1") },
			`{"NetworkID":"n1","EndpointID":"e1"}`},
	}
}

// undoOf is the call each creating method sends to undo itself.
var undoOf = map[string]call{
	api.CreateNetwork:               {api.DeleteNetwork, json.RawMessage(`{"NetworkID":"n1"}`)},
	api.AllocateNetwork:             {api.FreeNetwork, json.RawMessage(`{"NetworkID":"n1"}`)},
	api.CreateEndpoint:              {api.DeleteEndpoint, json.RawMessage(`{"NetworkID":"n1","EndpointID":"e1"}`)},
	api.Join:                        {api.Leave, json.RawMessage(`{"NetworkID":"n1","EndpointID":"e1"}`)},
	api.ProgramExternalConnectivity: {api.RevokeExternalConnectivity, json.RawMessage(`{"NetworkID":"n1","EndpointID":"e1"}`)},
}

// TestRequests checks that every method sends the fields of the protocol,
// values as the spec writes them, and nothing else.
func TestRequests(t *testing.T) {
	d, f := newDriver(t, "req", pluginOpts{answers: map[string]answer{
		api.Join: {status: 200, body: `{"InterfaceName":{"SrcName":"veth1","DstPrefix":"eth"}}`},
	}})
	for _, m := range allDriverMethods() {
		if err := m.do(d); err != nil {
			t.Errorf("%s: %v", m.name, err)
			continue
		}
		checkCalls(t, f, call{m.name, json.RawMessage(m.want)})
	}

	// No pool of a family is [], not null; a pool without a gateway or
	// auxiliary addresses has "" and null.
	if err := d.CreateNetwork("n2", nil, []driverapi.IPAMData{{Pool: mustCIDR("10.1.0.0/16")}}, nil); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f, call{api.CreateNetwork, json.RawMessage(`{"NetworkID":"n2","Options":null,
		"IPv4Data":[{"AddressSpace":"","Pool":"10.1.0.0/16","Gateway":"","AuxAddresses":null}],"IPv6Data":[]}`)})

	// An endpoint without addresses or MAC sends empty strings.
	if err := d.CreateEndpoint("n2", "e2", &fakeIface{}, nil); err != nil {
		t.Fatal(err)
	}
	checkCalls(t, f, call{api.CreateEndpoint, json.RawMessage(`{"NetworkID":"n2","EndpointID":"e2",
		"Interface":{"Address":"","AddressIPv6":"","MacAddress":""},"Options":null}`)})
}

func TestAllocateNetworkAnswer(t *testing.T) {
	d, _ := newDriver(t, "alloc", pluginOpts{answers: map[string]answer{
		api.AllocateNetwork: {status: 200, body: `{"Options":{"com.example.vni":"7"}}`},
	}})
	opts, err := d.AllocateNetwork("n1", nil, v4Data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"com.example.vni": "7"}; !reflect.DeepEqual(opts, want) {
		t.Errorf("AllocateNetwork = %v, want %v", opts, want)
	}
}

func TestCreateEndpointFillIn(t *testing.T) {
	d, f := newDriver(t, "fill", pluginOpts{})

	// The controller gave the IPv4 address; the plugin echoes it (same
	// value, other spelling) and fills in the IPv6 address and the MAC.
	f.answer(api.CreateEndpoint, 200, `{"Interface":{"Address":"10.0.0.2/24","AddressIPv6":"fd00:0:0::9/64","MacAddress":"02:AA:bb:cc:dd:ee"}}`)
	ifc := &fakeIface{addr: mustCIDR("10.0.0.2/24")}
	if err := d.CreateEndpoint("n1", "e1", ifc, nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ip fd00::9/64", "mac 02:aa:bb:cc:dd:ee"}; !slices.Equal(ifc.sets, want) {
		t.Errorf("set on the interface: %q, want %q", ifc.sets, want)
	}
	checkCalls(t, f, call{api.CreateEndpoint, json.RawMessage(`{"NetworkID":"n1","EndpointID":"e1",
		"Interface":{"Address":"10.0.0.2/24","AddressIPv6":"","MacAddress":""},"Options":null}`)})

	// The controller gave everything; the plugin answers the same values
	// in other forms (an IPv4 address held in 16 bytes on our side).
	f.answer(api.CreateEndpoint, 200, `{"Interface":{"Address":"10.0.0.2/24","AddressIPv6":"FD00::2/64","MacAddress":"02-42-0a-00-00-02"}}`)
	addr := &net.IPNet{IP: net.ParseIP("10.0.0.2"), Mask: net.CIDRMask(24, 32)}
	ifc = &fakeIface{addr: addr, addr6: mustCIDR("fd00::2/64"), mac: mustMAC("02:42:0a:00:00:02")}
	if err := d.CreateEndpoint("n1", "e1", ifc, nil); err != nil {
		t.Fatal(err)
	}
	if len(ifc.sets) != 0 {
		t.Errorf("set on the interface: %q, want nothing", ifc.sets)
	}

	// No Interface in the answer, or an empty one: nothing to fill in.
	for _, body := range []string{`{}`, `{"Interface":null}`, `{"Interface":{}}`} {
		f.answer(api.CreateEndpoint, 200, body)
		ifc = &fakeIface{}
		if err := d.CreateEndpoint("n1", "e1", ifc, nil); err != nil {
			t.Fatalf("answer %s: %v", body, err)
		}
		if len(ifc.sets) != 0 {
			t.Errorf("answer %s: set on the interface: %q, want nothing", body, ifc.sets)
		}
	}
}

func TestCreateEndpointRefusedAnswer(t *testing.T) {
	d, f := newDriver(t, "epbad", pluginOpts{})
	given := func() *fakeIface {
		return &fakeIface{addr: mustCIDR("10.0.0.2/24"), addr6: mustCIDR("fd00::2/64"), mac: mustMAC("02:42:0a:00:00:02")}
	}
	tests := []struct {
		name  string
		iface *fakeIface
		reply string
		says  []string
	}{
		{"other address", given(), `{"Interface":{"Address":"10.0.0.3/24"}}`,
			[]string{"Address 10.0.0.3/24 differs", "10.0.0.2/24"}},
		{"other prefix", given(), `{"Interface":{"Address":"10.0.0.2/16"}}`,
			[]string{"Address 10.0.0.2/16 differs", "10.0.0.2/24"}},
		{"other IPv6", given(), `{"Interface":{"AddressIPv6":"fd00::3/64"}}`,
			[]string{"AddressIPv6 fd00::3/64 differs", "fd00::2/64"}},
		{"other MAC", given(), `{"Interface":{"MacAddress":"02:42:0a:00:00:03"}}`,
			[]string{"MacAddress 02:42:0a:00:00:03 differs", "02:42:0a:00:00:02"}},
		{"bad address", &fakeIface{}, `{"Interface":{"Address":"10.0.0.300/24"}}`,
			[]string{`Address "10.0.0.300/24"`, "not an address in CIDR form"}},
		{"no prefix", &fakeIface{}, `{"Interface":{"Address":"10.0.0.3"}}`,
			[]string{`Address "10.0.0.3"`, "CIDR"}},
		{"IPv6 as IPv4", &fakeIface{}, `{"Interface":{"Address":"fd00::3/64"}}`,
			[]string{`Address "fd00::3/64"`, "not an IPv4 address"}},
		{"IPv4 as IPv6", &fakeIface{}, `{"Interface":{"AddressIPv6":"10.0.0.3/24"}}`,
			[]string{`AddressIPv6 "10.0.0.3/24"`, "not an IPv6 address"}},
		{"bad MAC", &fakeIface{}, `{"Interface":{"MacAddress":"02:42:zz:00:00:03"}}`,
			[]string{`MacAddress "02:42:zz:00:00:03"`, "not a MAC address"}},
		{"long MAC", &fakeIface{}, `{"Interface":{"MacAddress":"02:42:0a:00:00:03:00:01"}}`,
			[]string{`MacAddress "02:42:0a:00:00:03:00:01"`, "want 6"}},
		// A good value after a bad one is not set: all is checked first.
		{"bad after good", &fakeIface{}, `{"Interface":{"Address":"10.0.0.3/24","MacAddress":"x"}}`,
			[]string{`MacAddress "x"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.answer(api.CreateEndpoint, 200, tc.reply)
			err := d.CreateEndpoint("n1", "e1", tc.iface, nil)
			checkErr[types.InternalError](t, err, append([]string{"network plugin epbad: CreateEndpoint endpoint e1 of network n1", "undone with DeleteEndpoint"}, tc.says...)...)
			if len(tc.iface.sets) != 0 {
				t.Errorf("set on the interface: %q, want nothing", tc.iface.sets)
			}
			calls := f.takeCalls()
			if got := methods(calls); !slices.Equal(got, []string{api.CreateEndpoint, api.DeleteEndpoint}) {
				t.Fatalf("the plugin got %q, want CreateEndpoint then DeleteEndpoint", got)
			}
			checkJSON(t, "DeleteEndpoint", calls[1].Body, `{"NetworkID":"n1","EndpointID":"e1"}`)
		})
	}

	t.Run("controller refuses", func(t *testing.T) {
		// The interface refuses what the plugin fills in: the error is
		// the interface's, the endpoint deleted in the plugin again.
		f.answer(api.CreateEndpoint, 200, `{"Interface":{"MacAddress":"02:42:0a:00:00:03"}}`)
		ifc := &refusingIface{}
		err := d.CreateEndpoint("n1", "e1", ifc, nil)
		checkErr[types.ForbiddenError](t, err, "network plugin epbad: CreateEndpoint endpoint e1 of network n1", "MacAddress", "no MAC for you", "undone with DeleteEndpoint")
		if got := methods(f.takeCalls()); !slices.Equal(got, []string{api.CreateEndpoint, api.DeleteEndpoint}) {
			t.Fatalf("the plugin got %q, want CreateEndpoint then DeleteEndpoint", got)
		}
	})

	t.Run("undo fails", func(t *testing.T) {
		// The failed undo is in the error and logged at Warn.
		var logged bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logged, nil))
		d, f := newDriver(t, "epbad", pluginOpts{logger: logger, answers: map[string]answer{
			api.CreateEndpoint: {status: 200, body: `{"Interface":{"Address":"10.0.0.3/24"}}`},
			api.DeleteEndpoint: {status: 500, body: `{"Err":"cannot delete"}`},
		}})
		err := d.CreateEndpoint("n1", "e1", given(), nil)
		checkErr[types.InternalError](t, err, "Address 10.0.0.3/24 differs", "undoing it with DeleteEndpoint failed too", "cannot delete")
		checkCalls(t, f, call{api.CreateEndpoint, json.RawMessage(`{"NetworkID":"n1","EndpointID":"e1",
			"Interface":{"Address":"10.0.0.2/24","AddressIPv6":"fd00::2/64","MacAddress":"02:42:0a:00:00:02"},"Options":null}`)},
			undoOf[api.CreateEndpoint])
		for _, s := range []string{"level=WARN", "plugin=epbad", "undo=NetworkDriver.DeleteEndpoint", "cannot delete"} {
			if !strings.Contains(logged.String(), s) {
				t.Errorf("the log %q does not say %q", logged.String(), s)
			}
		}
	})

	t.Run("no interface info", func(t *testing.T) {
		err := d.CreateEndpoint("n1", "e1", nil, nil)
		checkErr[types.BadRequestError](t, err, "network plugin epbad: CreateEndpoint endpoint e1 of network n1")
		checkCalls(t, f)
	})
}

// refusingIface is an interface that refuses a MAC.
type refusingIface struct{ fakeIface }

func (*refusingIface) SetMacAddress(net.HardwareAddr) error {
	return types.ForbiddenErrorf("no MAC for you")
}

func TestJoinAnswer(t *testing.T) {
	d, f := newDriver(t, "join", pluginOpts{})
	f.answer(api.Join, 200, `{
		"InterfaceName":{"SrcName":"veth0a1b","DstPrefix":"eth"},
		"Gateway":"10.0.0.1",
		"GatewayIPv6":"fd00::1/64",
		"StaticRoutes":[
			{"Destination":"192.168.0.0/16","RouteType":0,"NextHop":"10.0.0.254"},
			{"Destination":"10.9.0.0/24","RouteType":1},
			{"Destination":"fd01::/48","RouteType":0,"NextHop":"fd00::fe"},
			{"Destination":"fd02::/64","RouteType":1,"NextHop":"fd00::fe"}
		],
		"DisableGatewayService":true}`)
	j := &fakeJoin{}
	if err := d.Join("n1", "e1", "/sb", j, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"names veth0a1b eth",
		"gw 10.0.0.1 4", // the short form
		"gw6 fd00::1",
		"route 192.168.0.0/16 0 10.0.0.254",
		"route 10.9.0.0/24 1 <nil>",
		"route fd01::/48 0 fd00::fe",
		"route fd02::/64 1 <nil>",
		"disablegw ",
	}
	if !slices.Equal(j.reported, want) {
		t.Errorf("reported\n  %q\nwant\n  %q", j.reported, want)
	}
	checkCalls(t, f, call{api.Join, json.RawMessage(`{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/sb","Options":null}`)})

	// Only the interface: nothing else reported.
	f.answer(api.Join, 200, `{"InterfaceName":{"SrcName":"tap1"}}`)
	j = &fakeJoin{}
	if err := d.Join("n1", "e1", "/sb", j, nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{"names tap1 "}; !slices.Equal(j.reported, want) {
		t.Errorf("reported %q, want %q", j.reported, want)
	}
}

func TestJoinRefusedAnswer(t *testing.T) {
	d, f := newDriver(t, "joinbad", pluginOpts{})
	iface := `"InterfaceName":{"SrcName":"veth1","DstPrefix":"eth"}`
	tests := []struct {
		name  string
		reply string
		says  string
	}{
		{"no interface", `{}`, `InterfaceName.SrcName "": empty`},
		{"no source name", `{"InterfaceName":{"DstPrefix":"eth"}}`, `InterfaceName.SrcName "": empty`},
		{"long name", `{"InterfaceName":{"SrcName":"veth0123456789abcdef"}}`, "longer than 15 bytes"},
		{"slash", `{"InterfaceName":{"SrcName":"a/b"}}`, `contains '/'`},
		{"bad gateway", `{` + iface + `,"Gateway":"10.0.0"}`, `Gateway "10.0.0": not an IP address`},
		{"IPv6 gateway", `{` + iface + `,"Gateway":"fd00::1"}`, `Gateway "fd00::1": not an IPv4 address`},
		{"IPv4 gateway6", `{` + iface + `,"GatewayIPv6":"10.0.0.1"}`, `GatewayIPv6 "10.0.0.1": not an IPv6 address`},
		{"route destination", `{` + iface + `,"StaticRoutes":[{"Destination":"10.1.0.0","RouteType":1}]}`,
			"StaticRoutes[0] (10.1.0.0  type 1): destination is not in CIDR form"},
		{"route host bits", `{` + iface + `,"StaticRoutes":[{"Destination":"10.1.0.0/16","RouteType":1},{"Destination":"10.1.2.3/16","RouteType":1}]}`,
			"StaticRoutes[1] (10.1.2.3/16  type 1): destination has host bits set (the network is 10.1.0.0/16)"},
		{"route type", `{` + iface + `,"StaticRoutes":[{"Destination":"10.1.0.0/16","RouteType":2,"NextHop":"10.0.0.1"}]}`,
			"RouteType 2: want 0 (next hop) or 1 (connected)"},
		{"route without next hop", `{` + iface + `,"StaticRoutes":[{"Destination":"10.1.0.0/16","RouteType":0}]}`,
			"next-hop route without NextHop"},
		{"route bad next hop", `{` + iface + `,"StaticRoutes":[{"Destination":"10.1.0.0/16","RouteType":0,"NextHop":"gw"}]}`,
			"NextHop is not an IP address"},
		{"route family", `{` + iface + `,"StaticRoutes":[{"Destination":"10.1.0.0/16","RouteType":0,"NextHop":"fd00::1"}]}`,
			"NextHop: not an IPv4 address, as the destination"},
		{"null route", `{` + iface + `,"StaticRoutes":[null]}`, "StaticRoutes[0] is null"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.answer(api.Join, 200, tc.reply)
			j := &fakeJoin{}
			err := d.Join("n1", "e1", "/sb", j, nil)
			checkErr[types.InternalError](t, err, "network plugin joinbad: Join endpoint e1 of network n1: invalid answer: ", tc.says, "undone with Leave")
			if len(j.reported) != 0 {
				t.Errorf("reported %q before the answer was checked", j.reported)
			}
			calls := f.takeCalls()
			if got := methods(calls); !slices.Equal(got, []string{api.Join, api.Leave}) {
				t.Fatalf("the plugin got %q, want Join then Leave", got)
			}
			checkJSON(t, "Leave", calls[1].Body, `{"NetworkID":"n1","EndpointID":"e1"}`)
		})
	}

	t.Run("controller refuses", func(t *testing.T) {
		f.answer(api.Join, 200, `{`+iface+`,"Gateway":"10.0.0.1"}`)
		j := &fakeJoin{refuse: "gw"}
		err := d.Join("n1", "e1", "/sb", j, nil)
		checkErr[types.ForbiddenError](t, err, "network plugin joinbad: Join endpoint e1 of network n1", "Gateway", "gw refused", "undone with Leave")
		if got := methods(f.takeCalls()); !slices.Equal(got, []string{api.Join, api.Leave}) {
			t.Fatalf("the plugin got %q, want Join then Leave", got)
		}
	})

	t.Run("malformed answer", func(t *testing.T) {
		// The plugin may have joined: undone.
		f.answer(api.Join, 200, `{"InterfaceName":`)
		err := d.Join("n1", "e1", "/sb", &fakeJoin{}, nil)
		checkErr[types.InternalError](t, err, "network plugin joinbad: Join endpoint e1 of network n1", "malformed JSON", "undone with Leave")
		asError[*plugins.ProtocolError](t, err)
		if got := methods(f.takeCalls()); !slices.Equal(got, []string{api.Join, api.Leave}) {
			t.Fatalf("the plugin got %q, want Join then Leave", got)
		}
	})

	t.Run("no join info", func(t *testing.T) {
		err := d.Join("n1", "e1", "/sb", nil, nil)
		checkErr[types.BadRequestError](t, err, "network plugin joinbad: Join endpoint e1 of network n1")
		checkCalls(t, f)
	})
}

func TestEndpointOperInfo(t *testing.T) {
	d, f := newDriver(t, "info", pluginOpts{})
	f.answer(api.EndpointInfo, 200, `{"Value":{
		"com.docker.network.endpoint.macaddress":"02:42:0a:00:00:02",
		"com.docker.network.portmap":"80/tcp",
		"com.example.vlan":"12"}}`)
	info, err := d.EndpointOperInfo("n1", "e1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]interface{}{
		netlabel.MacAddress: mustMAC("02:42:0a:00:00:02"),
		"com.example.vlan":  "12",
	}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("EndpointOperInfo = %#v, want %#v", info, want)
	}

	f.answer(api.EndpointInfo, 200, `{}`)
	if info, err = d.EndpointOperInfo("n1", "e1"); err != nil || info == nil || len(info) != 0 {
		t.Errorf("EndpointOperInfo of no Value = %v, %v; want an empty map", info, err)
	}

	f.answer(api.EndpointInfo, 200, `{"Value":{"com.docker.network.endpoint.macaddress":"nope"}}`)
	_, err = d.EndpointOperInfo("n1", "e1")
	checkErr[types.InternalError](t, err, "network plugin info: EndpointOperInfo endpoint e1 of network n1: invalid answer", `"nope"`)
}

// TestNotImplemented checks that a plugin without a method (404) is
// tolerated for the optional methods and for no other.
func TestNotImplemented(t *testing.T) {
	optional := []string{api.ProgramExternalConnectivity, api.RevokeExternalConnectivity, api.DiscoverNew, api.DiscoverDelete}
	for _, m := range allDriverMethods() {
		// A plugin that lacks only m: what it serves shows whether m was
		// undone (a 404 did nothing; nothing to undo).
		d, f := newDriver(t, "bare", pluginOpts{missing: []string{m.name}})
		err := m.do(d)
		if slices.Contains(optional, m.name) {
			if err != nil {
				t.Errorf("%s: %v, want nil from a plugin that does not implement it", m.name, err)
			}
		} else {
			checkErr[types.NotImplementedError](t, err, "network plugin bare: "+shortMethod(m.name)+" ", "404")
			asError[*plugins.RemoteError](t, err)
		}
		if calls := f.takeCalls(); len(calls) != 0 {
			t.Errorf("%s: then the plugin got %q, want nothing", m.name, methods(calls))
		}
	}

	// A refusal of an optional method is not tolerated, and needs no
	// undo.
	d, f := newDriver(t, "prog", pluginOpts{answers: map[string]answer{
		api.ProgramExternalConnectivity: {status: 500, body: `{"Err":"no ports here"}`},
		api.RevokeExternalConnectivity:  {status: 200, body: `{"Err":"nothing to revoke"}`},
	}})
	err := d.ProgramExternalConnectivity("n1", "e1", nil)
	checkErr[types.ForbiddenError](t, err, "network plugin prog: ProgramExternalConnectivity endpoint e1 of network n1", "no ports here")
	err = d.RevokeExternalConnectivity("n1", "e1")
	checkErr[types.ForbiddenError](t, err, "network plugin prog: RevokeExternalConnectivity endpoint e1 of network n1", "nothing to revoke")
	if got := methods(f.takeCalls()); !slices.Equal(got, []string{api.ProgramExternalConnectivity, api.RevokeExternalConnectivity}) {
		t.Errorf("the plugin got %q", got)
	}
}

// TestRefusals checks that an Err answer, in a 200 or a 500, fails every
// method with a ForbiddenError naming the plugin and the method and
// carrying the plugin's message, and is not undone.
func TestRefusals(t *testing.T) {
	d, f := newDriver(t, "no", pluginOpts{})
	for _, status := range []int{200, 500} {
		for _, m := range allDriverMethods() {
			f.answer(m.name, status, fmt.Sprintf(`{"Err":"%s refused"}`, m.name))
			err := m.do(d)
			checkErr[types.ForbiddenError](t, err, "network plugin no: "+shortMethod(m.name)+" ", m.name+" refused")
			re := asError[*plugins.RemoteError](t, err)
			if re.Status != status {
				t.Errorf("%s: status %d, want %d", m.name, re.Status, status)
			}
			if strings.Contains(err.Error(), "undo") {
				t.Errorf("%s: %v: a refusal needs no undo", m.name, err)
			}
			if strings.Contains(err.Error(), `plugin "no"`) {
				t.Errorf("%s: %v: names the plugin twice", m.name, err)
			}
			if got := methods(f.takeCalls()); !slices.Equal(got, []string{m.name}) {
				t.Errorf("%s: the plugin got %q", m.name, got)
			}
		}
	}
}

// TestTimeout checks that a plugin that never answers fails the call with
// a TimeoutError naming the plugin and the method, and that a creating
// call is then undone.
func TestTimeout(t *testing.T) {
	d, f := newDriver(t, "slow", pluginOpts{callTimeout: 100 * time.Millisecond})
	for _, m := range allDriverMethods() {
		f.hang(m.name)
		err := m.do(d)
		checkErr[types.TimeoutError](t, err, "network plugin slow: "+shortMethod(m.name)+" ", "no answer in time")
		asError[*plugins.TimeoutError](t, err)
		f.answer(m.name, 200, "{}")

		want := []call{{m.name, json.RawMessage(m.want)}}
		if u, ok := undoOf[m.name]; ok {
			want = append(want, u)
			if !strings.Contains(err.Error(), "undone with "+shortMethod(u.Method)) {
				t.Errorf("%s: %v: want it undone", m.name, err)
			}
		}
		checkCalls(t, f, want...)
	}
}

// TestUnavailable checks that a plugin that is gone fails every call
// with a NoServiceError naming the plugin and the method, with no undo:
// nothing was sent.
func TestUnavailable(t *testing.T) {
	d, f := newDriver(t, "gone", pluginOpts{retryWindow: 50 * time.Millisecond})
	f.shutdown()
	for _, m := range allDriverMethods() {
		err := m.do(d)
		checkErr[types.NoServiceError](t, err, "network plugin gone: "+shortMethod(m.name)+" ", "cannot reach the plugin")
		if ue := asError[*plugins.UnavailableError](t, err); ue.Sent {
			t.Errorf("%s: %v: reported as sent", m.name, err)
		}
		if strings.Contains(err.Error(), "undo") {
			t.Errorf("%s: %v: nothing to undo", m.name, err)
		}
	}
}

// TestUnencodableOptions checks that options that cannot be sent as JSON
// are a BadRequestError and reach the plugin as nothing.
func TestUnencodableOptions(t *testing.T) {
	d, f := newDriver(t, "json", pluginOpts{})
	bad := map[string]interface{}{"com.example.ch": make(chan int)}
	err := d.CreateNetwork("n1", bad, nil, nil)
	checkErr[types.BadRequestError](t, err, "network plugin json: CreateNetwork network n1: the request cannot be sent as JSON", "chan int")
	err = d.Join("n1", "e1", "/sb", &fakeJoin{}, map[string]interface{}{"f": func() {}})
	checkErr[types.BadRequestError](t, err, "network plugin json: Join endpoint e1 of network n1: the request cannot be sent as JSON")
	checkCalls(t, f)
}

// TestConcurrent runs the calls of many endpoints at once (for -race).
func TestConcurrent(t *testing.T) {
	d, f := newDriver(t, "many", pluginOpts{answers: map[string]answer{
		api.CreateEndpoint: {status: 200, body: `{"Interface":{"MacAddress":"02:42:00:00:00:01"}}`},
		api.Join:           {status: 200, body: `{"InterfaceName":{"SrcName":"veth1"},"Gateway":"10.0.0.1"}`},
	}})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			eid := fmt.Sprint("e", i)
			ifc := &fakeIface{}
			if err := d.CreateEndpoint("n1", eid, ifc, nil); err != nil {
				errs <- err
				return
			}
			if err := d.Join("n1", eid, "/sb", &fakeJoin{}, nil); err != nil {
				errs <- err
				return
			}
			if err := d.Leave("n1", eid); err != nil {
				errs <- err
				return
			}
			if err := d.DeleteEndpoint("n1", eid); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(f.takeCalls()); n != 4*16 {
		t.Errorf("the plugin got %d calls, want %d", n, 4*16)
	}
}
