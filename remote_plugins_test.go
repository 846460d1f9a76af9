package libnetwork

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/pluginsdk"
	"github.com/netkit/libnetwork/types"
	"github.com/vishvananda/netlink"
)

// Remote network and IPAM drivers as embedders use them: the example
// plugins of this module, and the same drivers served by docker's
// go-plugins-helpers, run as separate processes (the network plugin inside
// the controller's namespace, where it makes its bridges and veths), found
// through socket directories of the test's own.

// hostilePlugin is a network and IPAM plugin in the test process, on a
// real socket, misbehaving as told.
type hostilePlugin struct {
	mu sync.Mutex
	// answers maps a method ("NetworkDriver.Join") to a raw HTTP status
	// and body; a method without one gets a good answer.
	answers map[string]hostileAnswer
	// block is closed by release: hanging calls then end.
	block     chan struct{}
	blockOnce sync.Once
	// calls are the methods called, in order; bodies their requests.
	calls  []string
	bodies []string
}

// lastBody returns the request body of the last call of method.
func (h *hostilePlugin) lastBody(method string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.calls) - 1; i >= 0; i-- {
		if h.calls[i] == method {
			return h.bodies[i]
		}
	}
	return ""
}

// called returns how many times method was called.
func (h *hostilePlugin) called(method string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.calls {
		if c == method {
			n++
		}
	}
	return n
}

type hostileAnswer struct {
	status int
	body   string
	// hang: no answer until the test ends or the call gives up; drop:
	// the connection is closed with no answer, as when the plugin dies
	// in the middle of the call.
	hang, drop bool
}

func (h *hostilePlugin) set(method string, a hostileAnswer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answers[method] = a
}

// release ends the calls hanging now and from now on.
func (h *hostilePlugin) release() { h.blockOnce.Do(func() { close(h.block) }) }

// startHostilePlugin serves plugin name in sockDir.
func startHostilePlugin(t *testing.T, sockDir, name string) *hostilePlugin {
	t.Helper()
	h := &hostilePlugin{answers: map[string]hostileAnswer{}, block: make(chan struct{})}
	sdk := pluginsdk.NewHandler("NetworkDriver", "IpamDriver")
	good := map[string]string{
		"NetworkDriver.GetCapabilities":             `{"Scope":"local"}`,
		"NetworkDriver.CreateNetwork":               `{}`,
		"NetworkDriver.DeleteNetwork":               `{}`,
		"NetworkDriver.CreateEndpoint":              `{}`,
		"NetworkDriver.DeleteEndpoint":              `{}`,
		"NetworkDriver.Join":                        `{"InterfaceName":{"SrcName":"nosuchlink0","DstPrefix":"eth"}}`,
		"NetworkDriver.Leave":                       `{}`,
		"IpamDriver.GetCapabilities":                `{"RequiresMACAddress":false}`,
		"IpamDriver.GetDefaultAddressSpaces":        `{"LocalDefaultAddressSpace":"L","GlobalDefaultAddressSpace":"G"}`,
		"IpamDriver.RequestPool":                    `{"PoolID":"p1","Pool":"10.77.0.0/24","Data":{}}`,
		"IpamDriver.ReleasePool":                    `{}`,
		"IpamDriver.RequestAddress":                 `{"Address":"10.77.0.1/24"}`,
		"IpamDriver.ReleaseAddress":                 `{}`,
		"NetworkDriver.EndpointOperInfo":            `{"Value":{}}`,
		"NetworkDriver.ProgramExternalConnectivity": `{}`,
		"NetworkDriver.RevokeExternalConnectivity":  `{}`,
		"NetworkDriver.AllocateNetwork":             `{"Options":{}}`,
		"NetworkDriver.FreeNetwork":                 `{}`,
		"NetworkDriver.DiscoverNew":                 `{}`,
		"NetworkDriver.DiscoverDelete":              `{}`,
	}
	for method, body := range good {
		sdk.HandleFunc("/"+method, func(w http.ResponseWriter, r *http.Request) {
			req, _ := io.ReadAll(r.Body)
			h.mu.Lock()
			a, bad := h.answers[method]
			h.calls, h.bodies = append(h.calls, method), append(h.bodies, string(req))
			h.mu.Unlock()
			w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
			switch {
			case bad && a.drop:
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						_ = conn.Close()
					}
				}
				return
			case bad && a.hang:
				select {
				case <-h.block:
				case <-r.Context().Done():
				}
				return
			case bad:
				w.WriteHeader(a.status)
				_, _ = w.Write([]byte(a.body))
			default:
				_, _ = w.Write([]byte(body))
			}
		})
	}
	l, err := net.Listen("unix", filepath.Join(sockDir, name+".sock"))
	mustf(t, err, "hostile plugin socket")
	go func() { _ = sdk.Serve(l) }()
	t.Cleanup(func() { h.release(); _ = l.Close() })
	return h
}

// TestRemotePluginsHostile: plugins that fail, lie or hang give clear
// errors naming the plugin and the method, leave nothing behind, and do
// not stop the controller serving built-in networks.
func TestRemotePluginsHostile(t *testing.T) {
	e := newEnv(t)
	sockDir := t.TempDir()
	h := startHostilePlugin(t, sockDir, "hostile")
	c := e.start(config.OptionPluginSocketDirs(sockDir), config.OptionPluginSpecDirs(t.TempDir()),
		config.OptionPluginCallTimeout(500*time.Millisecond))
	br, err := c.NewNetwork("bridge", "steady", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.78.0.0/24"}}, nil, nil))
	mustf(t, err, "bridge network")
	before := e.snapshot(c)

	t.Run("unknown plugin", func(t *testing.T) {
		_, err := c.NewNetwork("nosuchplugin", "x")
		if _, ok := err.(NetworkTypeError); !ok {
			t.Fatalf("NewNetwork on an unknown type: %v (%T), want NetworkTypeError", err, err)
		}
		_, err = c.NewNetwork("bridge", "y", NetworkOptionIpam("nosuchipam", "", nil, nil, nil))
		if !types.IsBadRequest(err) || !strings.Contains(err.Error(), "nosuchipam") {
			t.Fatalf("NewNetwork with an unknown IPAM: %v", err)
		}
	})
	cases := []struct {
		name, method string
		answer       hostileAnswer
		want         []string
		act          func() error
	}{
		{"500 with Err", "NetworkDriver.CreateNetwork", hostileAnswer{status: 500, body: `{"Err":"no way"}`}, []string{"hostile", "CreateNetwork", "no way"},
			func() error {
				_, err := c.NewNetwork("hostile", "h1", NetworkOptionIpam("hostile", "", nil, nil, nil))
				return err
			}},
		{"200 with Err", "NetworkDriver.CreateNetwork", hostileAnswer{status: 200, body: `{"Err":"refused politely"}`}, []string{"hostile", "CreateNetwork", "refused politely"},
			func() error {
				_, err := c.NewNetwork("hostile", "h2", NetworkOptionIpam("hostile", "", nil, nil, nil))
				return err
			}},
		{"malformed JSON", "IpamDriver.RequestPool", hostileAnswer{status: 200, body: `{"PoolID":`}, []string{"hostile", "RequestPool"},
			func() error {
				_, err := c.NewNetwork("hostile", "h3", NetworkOptionIpam("hostile", "", nil, nil, nil))
				return err
			}},
		{"wrong field types", "IpamDriver.RequestPool", hostileAnswer{status: 200, body: `{"PoolID":7,"Pool":["x"]}`}, []string{"hostile", "RequestPool"},
			func() error {
				_, err := c.NewNetwork("hostile", "h4", NetworkOptionIpam("hostile", "", nil, nil, nil))
				return err
			}},
		{"never answers", "NetworkDriver.CreateNetwork", hostileAnswer{hang: true}, []string{"hostile", "CreateNetwork"},
			func() error {
				_, err := c.NewNetwork("hostile", "h5", NetworkOptionIpam("hostile", "", nil, nil, nil))
				return err
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.set(tc.method, tc.answer)
			defer func() {
				h.mu.Lock()
				delete(h.answers, tc.method)
				h.mu.Unlock()
			}()
			err := tc.act()
			if err == nil {
				t.Fatal("succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			e.requireSame(before, e.snapshot(c), tc.name)
			if len(c.Networks()) != 1 {
				t.Errorf("networks after the failure: %v", c.Networks())
			}
			// The controller keeps serving built-in networks.
			ep, err := br.CreateEndpoint("steady-" + strings.ReplaceAll(tc.name, " ", "-"))
			mustf(t, err, "bridge endpoint while the plugin misbehaves")
			mustf(t, ep.Delete(false), "bridge endpoint delete")
		})
	}
	t.Run("join with a link that is not there", func(t *testing.T) {
		n, err := c.NewNetwork("hostile", "h7", NetworkOptionIpam("hostile", "", nil, nil, nil))
		mustf(t, err, "network")
		ep, err := n.CreateEndpoint("nolink")
		mustf(t, err, "endpoint")
		sb, err := c.NewSandbox("nolink")
		mustf(t, err, "sandbox")
		leaves := h.called("NetworkDriver.Leave")
		if err := ep.Join(sb); err == nil || !strings.Contains(err.Error(), "nosuchlink0") {
			t.Fatalf("join with a missing link: %v", err)
		}
		if h.called("NetworkDriver.Leave") != leaves+1 {
			t.Errorf("the failed join was not undone with Leave")
		}
		if names := ifaceNames(t, nsOf(t, sb)); len(names) != 1 {
			t.Errorf("sandbox interfaces after the failed join: %v", names)
		}
		mustf(t, sb.Delete(), "sandbox delete")
		mustf(t, ep.Delete(false), "endpoint delete")
		mustf(t, n.Delete(), "network delete")
	})
	t.Run("plugin dies in the middle of a join", func(t *testing.T) {
		n, err := c.NewNetwork("hostile", "h9", NetworkOptionIpam("hostile", "", nil, nil, nil))
		mustf(t, err, "network")
		ep, err := n.CreateEndpoint("dying")
		mustf(t, err, "endpoint")
		sb, err := c.NewSandbox("dying")
		mustf(t, err, "sandbox")
		h.set("NetworkDriver.Join", hostileAnswer{drop: true})
		defer func() {
			h.mu.Lock()
			delete(h.answers, "NetworkDriver.Join")
			h.mu.Unlock()
		}()
		leaves := h.called("NetworkDriver.Leave")
		err = ep.Join(sb)
		if err == nil || !strings.Contains(err.Error(), "hostile") || !strings.Contains(err.Error(), "Join") {
			t.Fatalf("join with a plugin dying mid-call: %v", err)
		}
		if h.called("NetworkDriver.Leave") <= leaves {
			t.Errorf("the join the plugin may have made was not undone with Leave")
		}
		if names := ifaceNames(t, nsOf(t, sb)); len(names) != 1 {
			t.Errorf("sandbox interfaces after the failed join: %v", names)
		}
		if info := ep.Info(); info.Sandbox() != nil {
			t.Errorf("endpoint still joined after the failed join")
		}
		mustf(t, sb.Delete(), "sandbox delete")
		mustf(t, ep.Delete(false), "endpoint delete")
		mustf(t, n.Delete(), "network delete")
		e.requireSame(before, e.snapshot(c), "after a plugin died mid-join")
	})
	t.Run("interface name prefix", func(t *testing.T) {
		// The plugin made a veth in the controller's namespace and names
		// the sandbox prefix "ovs": the sandbox gets ovs0.
		h0 := e.host.Handle()
		mustf(t, h0.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hx0"}, PeerName: "hx1"}), "veth")
		h.set("NetworkDriver.Join", hostileAnswer{status: 200, body: `{"InterfaceName":{"SrcName":"hx1","DstPrefix":"ovs"}}`})
		defer func() {
			h.mu.Lock()
			delete(h.answers, "NetworkDriver.Join")
			h.mu.Unlock()
		}()
		n, err := c.NewNetwork("hostile", "h8", NetworkOptionIpam("hostile", "", nil, nil, nil))
		mustf(t, err, "network")
		ep, err := n.CreateEndpoint("prefixed")
		mustf(t, err, "endpoint")
		sb, err := c.NewSandbox("prefixed")
		mustf(t, err, "sandbox")
		mustf(t, ep.Join(sb), "join")
		if names := ifaceNames(t, nsOf(t, sb)); !slices.Contains(names, "ovs0") {
			t.Errorf("sandbox interfaces %v, want ovs0", names)
		}
		// Deleting the sandbox deletes its endpoints, as in v0.7.
		mustf(t, sb.Delete(), "sandbox delete")
		mustf(t, n.Delete(), "network delete")
		if l, err := h0.LinkByName("hx0"); err == nil {
			_ = h0.LinkDel(l)
		}
	})
	t.Run("address outside the pool", func(t *testing.T) {
		n, err := c.NewNetwork("hostile", "h6", NetworkOptionIpam("hostile", "", nil, nil, nil))
		mustf(t, err, "network")
		h.set("IpamDriver.RequestAddress", hostileAnswer{status: 200, body: `{"Address":"192.0.2.9/24"}`})
		defer func() {
			h.mu.Lock()
			delete(h.answers, "IpamDriver.RequestAddress")
			h.mu.Unlock()
		}()
		_, err = n.CreateEndpoint("outside")
		if err == nil || !strings.Contains(err.Error(), "192.0.2.9") {
			t.Fatalf("endpoint with an address outside the pool: %v", err)
		}
		if len(n.Endpoints()) != 0 {
			t.Errorf("endpoints left: %v", n.Endpoints())
		}
		mustf(t, n.Delete(), "network delete")
	})
}

// Plugin programs of these tests, by flavour: built on this module's SDK,
// or on github.com/docker/go-plugins-helpers.
var remoteFlavours = []struct {
	name, net, ipam string
}{
	{"sdk", "./examples/network-plugin", "./examples/ipam-plugin"},
	{"go-plugins-helpers", "./internal/testplugins/gphnet", "./internal/testplugins/gphipam"},
}

// netPluginCall is a line of an example plugin's -log.
type netPluginCall struct {
	Method  string          `json:"method"`
	Request json.RawMessage `json:"request"`
}

// readCalls returns the calls a plugin logged to path.
func readCalls(t *testing.T, path string) []netPluginCall {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	mustf(t, err, "plugin log")
	defer f.Close()
	var out []netPluginCall
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c netPluginCall
		mustf(t, json.Unmarshal(sc.Bytes(), &c), "plugin log line %q", sc.Text())
		out = append(out, c)
	}
	return out
}

// lastCall returns the request of the last logged call of method, decoded.
func lastCall(t *testing.T, calls []netPluginCall, method string) map[string]any {
	t.Helper()
	for i := len(calls) - 1; i >= 0; i-- {
		if strings.HasSuffix(calls[i].Method, method) {
			var m map[string]any
			mustf(t, json.Unmarshal(calls[i].Request, &m), "request of %s", method)
			return m
		}
	}
	t.Fatalf("the plugin got no %s; calls: %v", method, calls)
	return nil
}

// startRemotePlugin runs plugin program bin as name, with its socket in
// sockDir and its call log in a file of the test, inside the namespace at
// nsPath ("" for the test's own).
func startRemotePlugin(t *testing.T, bin, sockDir, name, nsPath string) (*pluginProc, string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".calls")
	args := []string{"-name", name, "-log", logPath}
	if nsPath == "" {
		return startPlugin(t, bin, sockDir, name, args...), logPath
	}
	// nsenter execs the plugin: the PID killed at the end is the plugin's.
	wrapper := filepath.Join(t.TempDir(), filepath.Base(bin)+"-in-ns")
	script := "#!/bin/sh\nexec nsenter --net=" + nsPath + " " + bin + ` "$@"` + "\n"
	mustf(t, os.WriteFile(wrapper, []byte(script), 0o755), "plugin wrapper")
	return startPlugin(t, wrapper, sockDir, name, args...), logPath
}

// TestRemotePlugins: a network on a remote network driver with a remote
// IPAM driver, both separate processes, for each flavour of plugin: two
// containers get the veths the plugin made and addresses the IPAM plugin
// gave, reach each other, leave, and everything is deleted; every call
// reached the plugins with the expected fields; a controller restarted
// finds the plugins again with the same IDs and addresses.
func TestRemotePlugins(t *testing.T) {
	for _, fl := range remoteFlavours {
		t.Run(fl.name, func(t *testing.T) {
			netBin, ipamBin := buildPlugin(t, fl.net), buildPlugin(t, fl.ipam)
			e := newEnv(t)
			sockDir := t.TempDir()
			netPlugin, netLog := startRemotePlugin(t, netBin, sockDir, "vethnet", e.host.Path())
			_, ipamLog := startRemotePlugin(t, ipamBin, sockDir, "exipam", "")
			opts := []config.Option{config.OptionPluginSocketDirs(sockDir), config.OptionPluginSpecDirs(t.TempDir()),
				config.OptionPluginRetryWindow(300 * time.Millisecond)}
			c := e.start(opts...)
			before := e.snapshot(c)

			n, err := c.NewNetwork("vethnet", "pnet", NetworkOptionIpam("exipam", "", nil, nil, nil),
				NetworkOptionDriverOpts(map[string]string{"color": "blue"}))
			mustf(t, err, "network on the remote driver")
			if n.Type() != "vethnet" {
				t.Errorf("network type %q", n.Type())
			}
			ep1, sb1 := joined(t, c, n, "one")
			ep2, sb2 := joined(t, c, n, "two")
			a1 := ep1.Info().Iface().Address()
			if a1 == nil || !strings.HasPrefix(a1.String(), "10.123.0.") || a1.String() == "10.123.0.1/24" {
				t.Fatalf("endpoint one's address %v, want one of the IPAM plugin's 10.123.0.0/24 other than its gateway", a1)
			}
			if mac := ep1.Info().Iface().MacAddress(); mac == nil {
				t.Error("endpoint one has no MAC (the IPAM plugin requires one)")
			}
			if gw := ep1.Info().Gateway(); gw.String() != "10.123.0.1" {
				t.Errorf("endpoint one's gateway %v, want the IPAM plugin's 10.123.0.1", gw)
			}
			di, err := ep1.DriverInfo()
			mustf(t, err, "driver info")
			if mac, ok := di[netlabel.MacAddress].(net.HardwareAddr); !ok || mac.String() != ep1.Info().Iface().MacAddress().String() {
				t.Errorf("driver info %v: want the endpoint's MAC %v", di, ep1.Info().Iface().MacAddress())
			}
			ns1, ns2 := nsOf(t, sb1), nsOf(t, sb2)
			if names := ifaceNames(t, ns1); !containsName(names, "eth0") {
				t.Errorf("sandbox one's interfaces %v, want the plugin's veth as eth0", names)
			}
			mustReach(t, ns2, listen(t, ns1, a1.IP))

			calls := readCalls(t, netLog)
			cn := lastCall(t, calls, "CreateNetwork")
			if cn["NetworkID"] != n.ID() {
				t.Errorf("CreateNetwork NetworkID %v, want %s", cn["NetworkID"], n.ID())
			}
			if v4, _ := cn["IPv4Data"].([]any); len(v4) != 1 || v4[0].(map[string]any)["Pool"] != "10.123.0.0/24" || v4[0].(map[string]any)["Gateway"] != "10.123.0.1/24" {
				t.Errorf("CreateNetwork IPv4Data %v", cn["IPv4Data"])
			}
			if !strings.Contains(string(mustJSON(t, cn["Options"])), `"color":"blue"`) {
				t.Errorf("CreateNetwork options %v lack the driver option", cn["Options"])
			}
			lastCall(t, calls, "EndpointOperInfo")
			lastCall(t, calls, "ProgramExternalConnectivity")
			ce := lastCall(t, calls, "CreateEndpoint")
			if iface, _ := ce["Interface"].(map[string]any); iface["Address"] == "" || iface["MacAddress"] == "" {
				t.Errorf("CreateEndpoint interface %v, want the address and the MAC", ce["Interface"])
			}
			if j := lastCall(t, calls, "Join"); j["SandboxKey"] != sb2.Key() || j["EndpointID"] != ep2.ID() {
				t.Errorf("Join %v, want sandbox key %s and endpoint %s", j, sb2.Key(), ep2.ID())
			}
			ipamCalls := readCalls(t, ipamLog)
			if ra := lastCall(t, ipamCalls, "RequestAddress"); !strings.Contains(string(mustJSON(t, ra["Options"])), "com.docker.network.endpoint.macaddress") {
				t.Errorf("RequestAddress options %v lack the MAC", ra["Options"])
			}

			// Restart: the same network, endpoint IDs and addresses.
			c.Stop()
			c = e.start(opts...)
			n2, err := c.NetworkByID(n.ID())
			mustf(t, err, "network after restart")
			ep1b, err := n2.EndpointByID(ep1.ID())
			mustf(t, err, "endpoint after restart")
			if got := ep1b.Info().Iface().Address(); got.String() != a1.String() {
				t.Errorf("endpoint one's address after restart %v, want %v", got, a1)
			}
			sb1b, err := c.SandboxByID(sb1.ID())
			mustf(t, err, "sandbox after restart")
			sb2b, err := c.SandboxByID(sb2.ID())
			mustf(t, err, "sandbox after restart")
			mustReach(t, nsOf(t, sb2b), listen(t, nsOf(t, sb1b), a1.IP))

			for _, sb := range []Sandbox{sb1b, sb2b} {
				mustf(t, sb.Delete(), "sandbox delete")
			}
			for _, ep := range n2.Endpoints() {
				mustf(t, ep.Delete(false), "endpoint delete")
			}
			calls = readCalls(t, netLog)
			for _, m := range []string{"RevokeExternalConnectivity", "Leave", "DeleteEndpoint"} {
				lastCall(t, calls, m)
			}
			// The network plugin is gone when the controller starts: the
			// network stays listed, its calls fail naming the plugin and
			// leave nothing (the address the IPAM plugin gave is
			// released), and they reach the plugin again once it is back.
			netPlugin.kill()
			c.Stop()
			c = e.start(opts...)
			n3, err := c.NetworkByID(n.ID())
			mustf(t, err, "network listed while its plugin is absent")
			held := func() int {
				ic := readCalls(t, ipamLog)
				return countMethod(ic, "RequestAddress") - countMethod(ic, "ReleaseAddress")
			}
			heldBefore := held()
			if _, err := n3.CreateEndpoint("orphan"); err == nil || !strings.Contains(err.Error(), "vethnet") {
				t.Fatalf("endpoint on a network whose plugin is absent: %v", err)
			}
			if len(n3.Endpoints()) != 0 || held() != heldBefore {
				t.Errorf("after the failed create: endpoints %v, addresses held %d, were %d", n3.Endpoints(), held(), heldBefore)
			}
			// Back: a new process (with none of the old one's memory).
			_, netLog2 := startRemotePlugin(t, netBin, sockDir, "vethnet", e.host.Path())
			mustf(t, n3.Delete(), "network delete once the plugin is back")
			lastCall(t, readCalls(t, netLog2), "DeleteNetwork")
			ipamCalls = readCalls(t, ipamLog)
			for _, m := range []string{"ReleaseAddress", "ReleasePool"} {
				lastCall(t, ipamCalls, m)
			}
			e.requireSame(before, e.snapshot(c), "after deleting everything on the plugins")
		})
	}
}

// countMethod returns how many logged calls were of method.
func countMethod(calls []netPluginCall, method string) int {
	k := 0
	for _, c := range calls {
		if strings.HasSuffix(c.Method, "."+method) {
			k++
		}
	}
	return k
}

func containsName(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	mustf(t, err, "json")
	return b
}

// TestRemoteGlobalScope: a plugin of global scope is asked to allocate a
// network before it creates it (this controller is its own manager, as
// docker's swarm manager is), its answer reaches CreateNetwork and the
// record, and the allocation is freed at delete; a plugin without
// AllocateNetwork (404) allocates nothing and still works.
func TestRemoteGlobalScope(t *testing.T) {
	e := newEnv(t)
	sockDir := t.TempDir()
	g := startHostilePlugin(t, sockDir, "globalp")
	g.set("NetworkDriver.GetCapabilities", hostileAnswer{status: 200, body: `{"Scope":"global"}`})
	g.set("NetworkDriver.AllocateNetwork", hostileAnswer{status: 200, body: `{"Options":{"vni":"4242"}}`})
	old := startHostilePlugin(t, sockDir, "oldglobal")
	old.set("NetworkDriver.GetCapabilities", hostileAnswer{status: 200, body: `{"Scope":"global"}`})
	old.set("NetworkDriver.AllocateNetwork", hostileAnswer{status: 404, body: "404 page not found\n"})
	old.set("NetworkDriver.FreeNetwork", hostileAnswer{status: 404, body: "404 page not found\n"})
	c := e.start(config.OptionPluginSocketDirs(sockDir), config.OptionPluginSpecDirs(t.TempDir()))

	n, err := c.NewNetwork("globalp", "g1", NetworkOptionIpam("globalp", "", nil, nil, nil),
		NetworkOptionDriverOpts(map[string]string{"color": "red"}))
	mustf(t, err, "network on a global plugin")
	if n.Info().Scope() != "global" {
		t.Errorf("scope %q, want global", n.Info().Scope())
	}
	if b := g.lastBody("NetworkDriver.AllocateNetwork"); !strings.Contains(b, n.ID()) || !strings.Contains(b, `"color":"red"`) || !strings.Contains(b, "10.77.0.0/24") {
		t.Errorf("AllocateNetwork request %s", b)
	}
	if b := g.lastBody("NetworkDriver.CreateNetwork"); !strings.Contains(b, `"vni":"4242"`) || !strings.Contains(b, `"color":"red"`) {
		t.Errorf("CreateNetwork request %s lacks the allocated options", b)
	}
	mustf(t, n.Delete(), "delete")
	if b := g.lastBody("NetworkDriver.FreeNetwork"); !strings.Contains(b, n.ID()) {
		t.Errorf("FreeNetwork request %q", b)
	}

	n2, err := c.NewNetwork("oldglobal", "g2", NetworkOptionIpam("oldglobal", "", nil, nil, nil))
	mustf(t, err, "network on a global plugin without AllocateNetwork")
	mustf(t, n2.Delete(), "delete")
}

// TestRemotePluginBlockedDoesNotBlock: while a plugin holds a call
// unanswered, the controller serves other networks and reads of the
// plugin's own.
func TestRemotePluginBlockedDoesNotBlock(t *testing.T) {
	e := newEnv(t)
	sockDir := t.TempDir()
	h := startHostilePlugin(t, sockDir, "stuck")
	c := e.start(config.OptionPluginSocketDirs(sockDir), config.OptionPluginSpecDirs(t.TempDir()))
	br, err := c.NewNetwork("bridge", "free", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.79.0.0/24"}}, nil, nil))
	mustf(t, err, "bridge network")
	stuck, err := c.NewNetwork("stuck", "stuck1", NetworkOptionIpam("stuck", "", nil, nil, nil))
	mustf(t, err, "network on the plugin")

	h.set("NetworkDriver.CreateEndpoint", hostileAnswer{hang: true})
	done := make(chan error, 1)
	go func() {
		_, err := stuck.CreateEndpoint("waits")
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); h.called("NetworkDriver.CreateEndpoint") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the plugin never got the CreateEndpoint")
		}
	}
	// The plugin holds the call (its timeout is the default 30 s):
	// bridge networks are served, and so are reads of the plugin's own.
	ep, sb := joined(t, c, br, "meanwhile")
	mustReach(t, nsOf(t, sb), listen(t, nsOf(t, sb), ep.Info().Iface().Address().IP))
	mustf(t, sb.Delete(), "sandbox delete")
	br2, err := c.NewNetwork("bridge", "free2", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.80.0.0/24"}}, nil, nil))
	mustf(t, err, "another bridge network")
	mustf(t, br2.Delete(), "bridge network delete")
	if got, err := c.NetworkByName("stuck1"); err != nil || len(got.Endpoints()) != 0 || len(c.Networks()) != 2 {
		t.Errorf("reading the plugin's network while it hangs: %v %v", got, err)
	}
	select {
	case err := <-done:
		t.Fatalf("the blocked call returned (%v) before the others ran: the test proved nothing", err)
	default:
	}
	h.release()
	if err := <-done; err == nil {
		t.Fatal("the abandoned CreateEndpoint succeeded")
	}
}
