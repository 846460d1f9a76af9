package libnetwork

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/ipamapi"
	"github.com/netkit/libnetwork/types"
)

// TestBadInput checks that each refused request is a clear, typed error and
// leaves no link, address, rule, netns mount or record behind.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	web, err := c.NewNetwork("bridge", "web", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.1.0.0/24"}}, nil, nil))
	mustf(t, err, "network web")
	tiny, err := c.NewNetwork("bridge", "tiny", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.2.0.0/30"}}, nil, nil))
	mustf(t, err, "network tiny")
	full, err := tiny.CreateEndpoint("only") // a /30 has one address besides the gateway
	mustf(t, err, "endpoint in tiny")
	ep, err := web.CreateEndpoint("ep")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("ctr")
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join")
	// A sandbox awaiting its key, with an endpoint to set up in it.
	xsb, err := c.NewSandbox("xctr", OptionUseExternalKey())
	mustf(t, err, "external-key sandbox")
	xep, err := web.CreateEndpoint("xep")
	mustf(t, err, "endpoint for the external-key sandbox")
	mustf(t, xep.Join(xsb), "join the external-key sandbox")
	isSetKeyRefusal := func(err error) bool { return types.IsBadRequest(err) && xsb.Key() == "" }

	cases := []struct {
		name  string
		do    func() error
		check func(error) bool
		class string
	}{
		{"unknown driver", func() error { _, err := c.NewNetwork("nosuch", "x"); return err },
			func(err error) bool { var e NetworkTypeError; return errors.As(err, &e) && types.IsNotFound(err) }, "NetworkTypeError"},
		{"empty network name", func() error { _, err := c.NewNetwork("bridge", ""); return err },
			func(err error) bool { var e ErrInvalidName; return errors.As(err, &e) }, "ErrInvalidName"},
		{"duplicate network name", func() error { _, err := c.NewNetwork("bridge", "web"); return err },
			func(err error) bool { var e NetworkNameError; return errors.As(err, &e) && types.IsForbidden(err) }, "NetworkNameError"},
		{"overlapping subnet", func() error {
			_, err := c.NewNetwork("bridge", "x", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.1.0.128/25"}}, nil, nil))
			return err
		}, types.IsForbidden, "Forbidden naming web"},
		{"malformed subnet", func() error {
			_, err := c.NewNetwork("bridge", "x", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.300.0.0/24"}}, nil, nil))
			return err
		}, types.IsBadRequest, "BadRequest"},
		{"gateway outside the pool", func() error {
			_, err := c.NewNetwork("bridge", "x", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.3.0.0/24", Gateway: "10.4.0.1"}}, nil, nil))
			return err
		}, types.IsBadRequest, "BadRequest"},
		{"unknown IPAM driver", func() error {
			_, err := c.NewNetwork("bridge", "x", NetworkOptionIpam("nosuch", "", nil, nil, nil))
			return err
		}, types.IsBadRequest, "BadRequest"},
		{"wrong option type in generic map", func() error {
			_, err := c.NewNetwork("bridge", "x", NetworkOptionGeneric(map[string]interface{}{"com.docker.network.enable_ipv6": 42}))
			return err
		}, types.IsBadRequest, "BadRequest"},
		{"wrong driver option value", func() error {
			_, err := c.NewNetwork("bridge", "x", NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.enable_icc": "maybe"}),
				NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.5.0.0/24"}}, nil, nil))
			return err
		}, types.IsBadRequest, "BadRequest"},
		{"wrong MTU type", func() error {
			_, err := c.NewNetwork("bridge", "x", NetworkOptionGeneric(map[string]interface{}{"com.docker.network.generic": map[string]interface{}{"com.docker.network.driver.mtu": []int{1}}}),
				NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.5.0.0/24"}}, nil, nil))
			return err
		}, types.IsBadRequest, "BadRequest"},
		{"pool exhausted", func() error { _, err := tiny.CreateEndpoint("second"); return err },
			func(err error) bool { return errors.Is(err, ipamapi.ErrNoAvailableIPs) }, "ErrNoAvailableIPs"},
		{"address already in use", func() error {
			_, err := web.CreateEndpoint("dup", CreateOptionIpam(ep.Info().Iface().Address().IP, nil, nil))
			return err
		}, func(err error) bool { return errors.Is(err, ipamapi.ErrIPAlreadyAllocated) }, "ErrIPAlreadyAllocated"},
		{"address outside the network", func() error {
			_, err := web.CreateEndpoint("far", CreateOptionIpam([]byte{192, 0, 2, 1}, nil, nil))
			return err
		}, types.IsBadRequest, "BadRequest"},
		{"wrong MAC option type", func() error {
			_, err := web.CreateEndpoint("m", EndpointOptionGeneric(map[string]interface{}{"com.docker.network.endpoint.macaddress": 7}))
			return err
		}, types.IsBadRequest, "BadRequest"},
		{"duplicate endpoint name", func() error { _, err := web.CreateEndpoint("ep"); return err }, types.IsForbidden, "Forbidden"},
		{"empty endpoint name", func() error { _, err := web.CreateEndpoint(""); return err },
			func(err error) bool { var e ErrInvalidName; return errors.As(err, &e) }, "ErrInvalidName"},
		{"deleting a network with endpoints", web.Delete,
			func(err error) bool { var e *ActiveEndpointsError; return errors.As(err, &e) }, "ActiveEndpointsError"},
		{"joining an endpoint twice", func() error { return ep.Join(sb) },
			func(err error) bool { var e ErrInvalidJoin; return errors.As(err, &e) }, "ErrInvalidJoin"},
		{"leaving a sandbox it is not joined to", func() error { return full.Leave(sb) }, types.IsForbidden, "Forbidden"},
		{"a sandbox for a taken container", func() error { _, err := c.NewSandbox("ctr"); return err }, types.IsBadRequest, "BadRequest"},
		{"unknown network ID", func() error { _, err := c.NetworkByID("feed"); return err }, types.IsNotFound, "NotFound"},
		{"unknown endpoint ID", func() error { _, err := web.EndpointByID("feed"); return err }, types.IsNotFound, "NotFound"},
		{"unknown sandbox ID", func() error { _, err := c.SandboxByID("feed"); return err }, types.IsNotFound, "NotFound"},
		{"SetKey to the process's own namespace", func() error { return xsb.SetKey("/proc/self/ns/net") },
			func(err error) bool { return types.IsForbidden(err) && xsb.Key() == "" }, "Forbidden"},
		{"SetKey to the namespace the controller programs", func() error { return xsb.SetKey(e.host.Path()) },
			func(err error) bool { return types.IsForbidden(err) && xsb.Key() == "" }, "Forbidden"},
		{"relative SetKey", func() error { return xsb.SetKey("../../../proc/self/ns/net") }, isSetKeyRefusal, "BadRequest"},
		{"SetKey with a .. element", func() error { return xsb.SetKey("/proc/../proc/self/ns/net") }, isSetKeyRefusal, "BadRequest"},
		{"relative key through the set-key socket", func() error {
			return SetExternalKeyAt(e.execRoot, c.ID(), "xctr", "../../../proc/self/ns/net")
		}, isSetKeyRefusal, "BadRequest"},
		{"bridge name with %", func() error { return newBridge(c, "x", "a%d") }, types.IsBadRequest, "BadRequest"},
		{"bridge name with a control character", func() error { return newBridge(c, "x", "br\x01") }, types.IsBadRequest, "BadRequest"},
		{"bridge name not ASCII", func() error { return newBridge(c, "x", "brü") }, types.IsBadRequest, "BadRequest"},
		{"bridge name of 16 bytes", func() error { return newBridge(c, "x", "abcdefghijklmnop") }, types.IsBadRequest, "BadRequest"},
		{"hostname with a newline", func() error { return newSandbox(c, OptionHostname("web\n10.0.0.1 evil")) }, types.IsBadRequest, "BadRequest"},
		{"hostname with a space", func() error { return newSandbox(c, OptionHostname("web evil")) }, types.IsBadRequest, "BadRequest"},
		{"hostname with a label of 64 bytes", func() error { return newSandbox(c, OptionHostname(strings.Repeat("a", 64))) }, types.IsBadRequest, "BadRequest"},
		{"hostname of 254 bytes", func() error {
			return newSandbox(c, OptionHostname(strings.Repeat(strings.Repeat("a", 50)+".", 5)+"abcd"))
		}, types.IsBadRequest, "BadRequest"},
		{"hostname with an underscore", func() error { return newSandbox(c, OptionHostname("web_1")) }, types.IsBadRequest, "BadRequest"},
		{"domain name starting with -", func() error {
			return newSandbox(c, OptionHostname("web"), OptionDomainname("-bad.example"))
		}, types.IsBadRequest, "BadRequest"},
		{"domain name with an empty label", func() error {
			return newSandbox(c, OptionHostname("web"), OptionDomainname("a..example"))
		}, types.IsBadRequest, "BadRequest"},
		{"DNS search entry with a newline", func() error {
			return newSandbox(c, OptionDNSSearch("example.org\nnameserver 192.0.2.66"))
		}, types.IsBadRequest, "BadRequest"},
		{"DNS search entry with a space", func() error { return newSandbox(c, OptionDNSSearch("a.example b.example")) }, types.IsBadRequest, "BadRequest"},
		{"DNS search entry with a NUL", func() error { return newSandbox(c, OptionDNSSearch("example.org\x00")) }, types.IsBadRequest, "BadRequest"},
		{"DNS option with a vertical tab", func() error { return newSandbox(c, OptionDNSOptions("ndots:1\vrotate")) }, types.IsBadRequest, "BadRequest"},
		{"DNS server that is not an address", func() error { return newSandbox(c, OptionDNS("bogus")) }, types.IsBadRequest, "BadRequest"},
		{"extra host whose address is not one", func() error { return newSandbox(c, OptionExtraHost("db", "not-an-ip")) }, types.IsBadRequest, "BadRequest"},
		{"DNS option with a newline", func() error { return newSandbox(c, OptionDNSOptions("ndots:1\nnameserver 192.0.2.66")) }, types.IsBadRequest, "BadRequest"},
		{"relative OptionHostsPath", func() error {
			return relativeFile(t, func(p string) error { return newSandbox(c, OptionHostsPath(p)) })
		},
			types.IsBadRequest, "BadRequest"},
		{"relative OptionResolvConfPath", func() error {
			return relativeFile(t, func(p string) error { return newSandbox(c, OptionResolvConfPath(p)) })
		}, types.IsBadRequest, "BadRequest"},
		{"relative OptionOriginHostsPath", func() error { return newSandbox(c, OptionOriginHostsPath("etc/hosts")) }, types.IsBadRequest, "BadRequest"},
		{"relative OptionOriginResolvConfPath", func() error { return newSandbox(c, OptionOriginResolvConfPath("etc/resolv.conf")) }, types.IsBadRequest, "BadRequest"},
		{"refresh with a bad hostname", func() error { return sb.Refresh(OptionHostname("web\nevil")) },
			func(err error) bool { return types.IsBadRequest(err) && ep.Info().Sandbox() != nil }, "BadRequest, still joined"},
		{"endpoint name of 256 bytes", func() error { _, err := web.CreateEndpoint(strings.Repeat("e", 256)); return err }, types.IsBadRequest, "BadRequest"},
		{"endpoint name with a control character", func() error { _, err := web.CreateEndpoint("ep\n2"); return err }, types.IsBadRequest, "BadRequest"},
		{"alias with a control character", func() error { _, err := web.CreateEndpoint("al", CreateOptionMyAlias("www\x00")); return err },
			types.IsBadRequest, "BadRequest"},
		{"link alias of 256 bytes", func() error {
			_, err := web.CreateEndpoint("al", CreateOptionAlias("db", strings.Repeat("d", 256)))
			return err
		}, types.IsBadRequest, "BadRequest"},
		{"host sandbox joining a bridge network", func() error {
			hsb, err := c.NewSandbox("hostctr", OptionUseDefaultSandbox())
			if err != nil {
				return nil
			}
			defer hsb.Delete()
			x, err := web.CreateEndpoint("hx")
			if err != nil {
				return nil
			}
			defer x.Delete(false)
			return x.Join(hsb)
		}, types.IsForbidden, "Forbidden"},
	}
	// Issue 14, items 5 and 6: a bridge of the host's is never taken over,
	// and pools that cannot be right are refused.
	hostBr := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "hostbr0"}}
	mustf(t, e.host.Handle().LinkAdd(hostBr), "host bridge")
	mustf(t, e.host.Handle().AddrAdd(hostBr, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(192, 0, 2, 1), Mask: net.CIDRMask(24, 32)}}), "host bridge address")
	mustf(t, e.host.Handle().LinkSetUp(hostBr), "host bridge up")
	withPool := func(v4, v6 []*IpamConf) func() error {
		return func() error {
			_, err := c.NewNetwork("bridge", "x", NetworkOptionEnableIPv6(len(v6) > 0), NetworkOptionIpam("", "", v4, v6, nil))
			return err
		}
	}
	pool := func(p string) []*IpamConf { return []*IpamConf{{PreferredPool: p}} }
	isBadRequestNaming := func(what string) func(error) bool {
		return func(err error) bool { return types.IsBadRequest(err) && strings.Contains(err.Error(), what) }
	}
	cases = append(cases, []struct {
		name  string
		do    func() error
		check func(error) bool
		class string
	}{
		{"bridge name of a host bridge", func() error {
			_, err := c.NewNetwork("bridge", "x", NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.name": "hostbr0"}),
				NetworkOptionIpam("", "", pool("10.8.0.0/24"), nil, nil))
			return err
		}, func(err error) bool { return types.IsForbidden(err) && strings.Contains(err.Error(), "hostbr0") }, "Forbidden naming hostbr0"},
		{"pool 0.0.0.0/0", withPool(pool("0.0.0.0/0"), nil), isBadRequestNaming("0.0.0.0/0"), "BadRequest naming the pool"},
		{"pool ::/0", withPool(pool("10.8.0.0/24"), pool("::/0")), isBadRequestNaming("::/0"), "BadRequest naming the pool"},
		{"loopback pool", withPool(pool("127.0.0.0/24"), nil), isBadRequestNaming("loopback"), "BadRequest: loopback"},
		{"IPv6 loopback pool", withPool(pool("10.8.0.0/24"), pool("::1/128")), isBadRequestNaming("::1"), "BadRequest: loopback"},
		{"multicast pool", withPool(pool("224.0.0.0/24"), nil), isBadRequestNaming("multicast"), "BadRequest: multicast"},
		{"IPv6 multicast pool", withPool(pool("10.8.0.0/24"), pool("ff05::/64")), isBadRequestNaming("multicast"), "BadRequest: multicast"},
		{"link-local pool", withPool(pool("169.254.0.0/24"), nil), isBadRequestNaming("link-local"), "BadRequest: link-local"},
		{"IPv6 link-local pool", withPool(pool("10.8.0.0/24"), pool("fe80::/64")), isBadRequestNaming("link-local"), "BadRequest: link-local"},
		{"unspecified pool", withPool(pool("0.0.0.0/8"), nil), isBadRequestNaming("unspecified"), "BadRequest: unspecified"},
		{"IPv4 /32 pool", withPool(pool("10.8.0.1/32"), nil), isBadRequestNaming("no room"), "BadRequest: no room"},
		{"IPv6 /128 pool", withPool(pool("10.8.0.0/24"), pool("fd08::1/128")), isBadRequestNaming("no room"), "BadRequest: no room"},
		{"sub-pool of the broadcast address", withPool([]*IpamConf{{PreferredPool: "10.8.0.0/24", SubPool: "10.8.0.255/32"}}, nil),
			isBadRequestNaming("10.8.0.255/32"), "BadRequest naming the sub-pool"},
		{"sub-pool of one address the gateway takes", withPool([]*IpamConf{{PreferredPool: "10.8.0.0/24", SubPool: "10.8.0.7/32"}}, nil),
			isBadRequestNaming("no room"), "BadRequest: no room"},
		{"gateway on the network address", withPool([]*IpamConf{{PreferredPool: "10.8.0.0/24", Gateway: "10.8.0.0"}}, nil),
			isBadRequestNaming("10.8.0.0"), "BadRequest naming the gateway"},
		{"gateway on the broadcast address", withPool([]*IpamConf{{PreferredPool: "10.8.0.0/24", Gateway: "10.8.0.255"}}, nil),
			isBadRequestNaming("10.8.0.255"), "BadRequest naming the gateway"},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot(c)
			err := tc.do()
			if err == nil {
				t.Fatalf("accepted; want %s", tc.class)
			}
			if !tc.check(err) {
				t.Errorf("error %q (%T) is not %s", err, err, tc.class)
			}
			t.Logf("error: %v", err)
			e.requireSame(before, e.snapshot(c), tc.name)
		})
	}
}

// TestFailureHalfWay injects a failure at named steps of create and join and
// checks that nothing is left behind.
func TestFailureHalfWay(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "net", NetworkOptionEnableIPv6(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.6.0.0/24"}}, []*IpamConf{{PreferredPool: "fd06::/64"}}, nil))
	mustf(t, err, "network")
	ep, err := n.CreateEndpoint("ep")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("ctr")
	mustf(t, err, "sandbox")
	nsb := nsOf(t, sb)
	injected := errors.New("injected failure")

	for _, step := range []string{"network-after-driver", "sandbox-after-files", "endpoint-after-store", "join-before-configure", "join-after-store"} {
		t.Run(step, func(t *testing.T) {
			before := e.snapshot(c)
			ifsBefore := ifaceNames(t, nsb)
			c.failPoint = func(s string) error {
				if s == step {
					return injected
				}
				return nil
			}
			defer func() { c.failPoint = nil }()
			switch step {
			case "network-after-driver":
				_, err = c.NewNetwork("bridge", "half", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.7.0.0/24"}}, nil, nil))
			case "sandbox-after-files":
				_, err = c.NewSandbox("half")
			case "endpoint-after-store":
				_, err = n.CreateEndpoint("half")
			default:
				err = ep.Join(sb)
			}
			if !errors.Is(err, injected) {
				t.Fatalf("got %v, want the injected failure", err)
			}
			c.failPoint = nil
			e.requireSame(before, e.snapshot(c), step)
			if got := ifaceNames(t, nsb); len(got) != len(ifsBefore) {
				// A retired veth may linger under a tombstone name until
				// the reaper takes it; an eth0 may not.
				for _, name := range got {
					if name == "eth0" {
						t.Errorf("eth0 left in the sandbox after a failed join: %v", got)
					}
				}
			}
			if ep.Info().Sandbox() != nil {
				t.Error("endpoint reports a sandbox after a failed join")
			}
		})
	}
	// After the failures, everything still works and nothing is held.
	_, err = c.NewSandbox("half")
	mustf(t, err, "sandbox after injected failure")
	_, err = n.CreateEndpoint("half")
	mustf(t, err, "endpoint after injected failure")
	_, err = c.NewNetwork("bridge", "half", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.7.0.0/24"}}, nil, nil))
	mustf(t, err, "network after injected failure")
	mustf(t, ep.Join(sb), "join after injected failures")
}

// newBridge tries a bridge network with the given bridge name.
func newBridge(c *controller, name, bridgeName string) error {
	_, err := c.NewNetwork("bridge", name, NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.name": bridgeName}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.5.0.0/24"}}, nil, nil))
	return err
}

// newSandbox tries a sandbox with the given options and deletes it if it
// was made.
func newSandbox(c *controller, opts ...SandboxOption) error {
	sb, err := c.NewSandbox("bad-input", opts...)
	if err == nil {
		_ = sb.Delete()
	}
	return err
}

// relativeFile calls do with a relative path that leads from the working
// directory into a directory of the test, and fails the test if do wrote
// a file there.
func relativeFile(t *testing.T, do func(path string) error) error {
	t.Helper()
	dir := t.TempDir()
	wd, err := os.Getwd()
	mustf(t, err, "working directory")
	rel, err := filepath.Rel(wd, filepath.Join(dir, "file"))
	mustf(t, err, "relative path")
	err = do(rel)
	if _, serr := os.Lstat(filepath.Join(dir, "file")); serr == nil {
		t.Errorf("%s was written", rel)
	}
	return err
}
