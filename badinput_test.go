package libnetwork

import (
	"errors"
	"testing"

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
