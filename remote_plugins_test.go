package libnetwork

import (
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/config"
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
	block   chan struct{}
	// calls are the methods called, in order.
	calls []string
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
	hang   bool
}

func (h *hostilePlugin) set(method string, a hostileAnswer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.answers[method] = a
}

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
	}
	for method, body := range good {
		sdk.HandleFunc("/"+method, func(w http.ResponseWriter, r *http.Request) {
			h.mu.Lock()
			a, bad := h.answers[method]
			h.calls = append(h.calls, method)
			h.mu.Unlock()
			w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
			switch {
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
	t.Cleanup(func() { close(h.block); _ = l.Close() })
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
