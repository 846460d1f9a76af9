package libnetwork

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/datastore"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/resolvconf"
	"github.com/netkit/libnetwork/types"
	"golang.org/x/sys/unix"
)

// These tests are written as programs made for docker's libnetwork v0.7
// write them: errors checked by plain type assertion on the returned value.

func TestV07ErrorTypeAssertions(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "v07", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.71.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep, err := n.CreateEndpoint("ep")
	mustf(t, err, "endpoint")
	sb, err := c.NewSandbox("ctr")
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join")
	ext, err := c.NewSandbox("ext", OptionUseExternalKey())
	mustf(t, err, "external-key sandbox")
	free, err := n.CreateEndpoint("free")
	mustf(t, err, "free endpoint")
	host, err := c.NewNetwork("host", "host")
	mustf(t, err, "host network")
	null, err := c.NewNetwork("null", "none")
	mustf(t, err, "null network")
	gone, err := c.NewNetwork("bridge", "gone", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.72.0.0/24"}}, nil, nil))
	mustf(t, err, "network to delete")
	mustf(t, gone.Delete(), "delete")

	for _, tc := range []struct {
		name string
		err  error
		ok   func(error) bool
	}{
		{"NetworkByName of an unknown name", second(c.NetworkByName("nope")), func(err error) bool { _, ok := err.(ErrNoSuchNetwork); return ok }},
		{"NetworkByID of an unknown id", second(c.NetworkByID("nope")), func(err error) bool { _, ok := err.(ErrNoSuchNetwork); return ok }},
		{"NetworkByID of an empty id", second(c.NetworkByID("")), func(err error) bool { _, ok := err.(ErrInvalidID); return ok }},
		{"NewNetwork with an empty name", second(c.NewNetwork("bridge", "")), func(err error) bool { _, ok := err.(ErrInvalidName); return ok }},
		{"NewNetwork with a taken name", second(c.NewNetwork("bridge", "v07")), func(err error) bool { _, ok := err.(NetworkNameError); return ok }},
		{"NewNetwork of an unknown type", second(c.NewNetwork("nodriver", "x")), func(err error) bool { _, ok := err.(types.NotFoundError); return ok }},
		{"NewNetwork with a bad gateway", second(c.NewNetwork("bridge", "badgw", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.73.0.0/24", Gateway: "10.74.0.1"}}, nil, nil))),
			func(err error) bool { _, ok := err.(types.BadRequestError); return ok }},
		{"NewNetwork with an overlapping pool", second(c.NewNetwork("bridge", "overlap", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.71.0.0/16"}}, nil, nil))),
			func(err error) bool { _, ok := err.(types.ForbiddenError); return ok }},
		{"Network.Delete with endpoints", n.Delete(), func(err error) bool { _, ok := err.(*ActiveEndpointsError); return ok }},
		{"Network.Delete of a deleted network", gone.Delete(), func(err error) bool { _, ok := err.(*UnknownNetworkError); return ok }},
		{"Network.Delete of a host network", host.Delete(), func(err error) bool { _, ok := err.(types.ForbiddenError); return ok }},
		{"Network.Delete of a null network", null.Delete(), func(err error) bool { _, ok := err.(types.ForbiddenError); return ok }},
		{"CreateEndpoint with an empty name", second(n.CreateEndpoint("")), func(err error) bool { _, ok := err.(ErrInvalidName); return ok }},
		{"CreateEndpoint with a taken name", second(n.CreateEndpoint("ep")), func(err error) bool { _, ok := err.(types.ForbiddenError); return ok }},
		{"CreateEndpoint with an address outside the pool", second(n.CreateEndpoint("out", CreateOptionIpam(net.ParseIP("10.99.0.5"), nil, nil))),
			func(err error) bool { _, ok := err.(types.BadRequestError); return ok }},
		{"CreateEndpoint with a bad MAC option", second(n.CreateEndpoint("mac", EndpointOptionGeneric(map[string]interface{}{netlabel.MacAddress: "zz"}))),
			func(err error) bool { _, ok := err.(types.BadRequestError); return ok }},
		{"CreateEndpoint on a deleted network", second(gone.CreateEndpoint("late")), func(err error) bool { _, ok := err.(types.ForbiddenError); return ok }},
		{"EndpointByName of an unknown name", second(n.EndpointByName("nope")), func(err error) bool { _, ok := err.(ErrNoSuchEndpoint); return ok }},
		{"EndpointByID of an unknown id", second(n.EndpointByID("nope")), func(err error) bool { _, ok := err.(ErrNoSuchEndpoint); return ok }},
		{"Endpoint.Delete of a joined endpoint", ep.Delete(false), func(err error) bool { _, ok := err.(*ActiveContainerError); return ok }},
		{"Join of a joined endpoint", ep.Join(sb), func(err error) bool { _, ok := err.(types.ForbiddenError); return ok }},
		{"Leave of an endpoint never joined", free.Leave(sb), func(err error) bool { _, ok := err.(types.ForbiddenError); return ok }},
		{"SandboxByID of an unknown id", second(c.SandboxByID("nope")), func(err error) bool { _, ok := err.(types.NotFoundError); return ok }},
		{"NewSandbox with an empty container id", second(c.NewSandbox("")), func(err error) bool { _, ok := err.(types.BadRequestError); return ok }},
		{"NewSandbox for a container that has one", second(c.NewSandbox("ctr")), func(err error) bool { _, ok := err.(types.BadRequestError); return ok }},
		{"SetKey of an empty key", ext.SetKey(""), func(err error) bool { _, ok := err.(types.BadRequestError); return ok }},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if !tc.ok(tc.err) {
			t.Errorf("%s: %T (%v) fails the type assertion a v0.7 caller makes", tc.name, tc.err, tc.err)
		}
	}

	// The causes stay reachable with errors.Is/As.
	var une *UnknownNetworkError
	if err := gone.Delete(); !errors.As(err, &une) {
		t.Errorf("errors.As(*UnknownNetworkError) on %v", err)
	}
	if err := ep.Join(sb); !errors.Is(err, ErrInvalidJoin{}) {
		t.Errorf("a second join does not wrap ErrInvalidJoin: %v", err)
	}
}

// second returns the error of a two-value call.
func second[T any](_ T, err error) error { return err }

// Sandbox.Delete leaves and deletes the endpoints joined to it, so the
// network can then be deleted, and nothing of the three remains.
func TestV07SandboxDeleteDeletesEndpoints(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	before := e.snapshot(c)
	n, err := c.NewNetwork("bridge", "web", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.75.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	other, err := c.NewNetwork("bridge", "db", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.76.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	sb, err := c.NewSandbox("ctr", OptionHostname("ctr"))
	mustf(t, err, "sandbox")
	var eps []Endpoint
	for _, nw := range []Network{n, other} {
		ep, err := nw.CreateEndpoint("ctr")
		mustf(t, err, "endpoint")
		mustf(t, ep.Join(sb), "join")
		eps = append(eps, ep)
	}
	addr := eps[0].Info().Iface().Address().IP
	mustf(t, sb.Delete(), "sandbox delete")

	for _, ep := range eps {
		if _, err := n.EndpointByID(ep.ID()); err == nil {
			t.Errorf("endpoint %s survived its sandbox", ep.Name())
		} else if _, ok := err.(ErrNoSuchEndpoint); !ok {
			t.Errorf("EndpointByID after sandbox delete: %T %v", err, err)
		}
	}
	// The address is free again.
	again, err := n.CreateEndpoint("again")
	mustf(t, err, "endpoint after sandbox delete")
	if !again.Info().Iface().Address().IP.Equal(addr) {
		t.Errorf("address %s was not released (new endpoint got %s)", addr, again.Info().Iface().Address().IP)
	}
	mustf(t, again.Delete(false), "delete")
	mustf(t, n.Delete(), "network delete after sandbox delete")
	mustf(t, other.Delete(), "network delete after sandbox delete")
	after := e.snapshot(c)
	// Links are compared by the network-delete test; here the records.
	for k, v := range before.records {
		if after.records[k] != v {
			t.Errorf("%s records: %d before, %d after", k, v, after.records[k])
		}
	}
	if before.rules != after.rules {
		t.Errorf("nftables rules left:\n%s", after.rules)
	}
	// Restart sees none of them either.
	c.Stop()
	c2 := e.start()
	if got := len(c2.Networks()) + len(c2.Sandboxes()); got != 0 {
		t.Errorf("after restart %d networks and sandboxes came back", got)
	}
}

// A sandbox may join two endpoints of one network; each gets its
// interface and address.
func TestV07TwoEndpointsOfOneNetwork(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "twice", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.77.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	sb, err := c.NewSandbox("ctr")
	mustf(t, err, "sandbox")
	var addrs []string
	for _, name := range []string{"a", "b"} {
		ep, err := n.CreateEndpoint(name)
		mustf(t, err, "endpoint %s", name)
		mustf(t, ep.Join(sb), "join %s", name)
		addrs = append(addrs, ep.Info().Iface().Address().String())
	}
	ifs, err := nsOf(t, sb).Interfaces()
	mustf(t, err, "interfaces")
	have := map[string]string{}
	for _, i := range ifs {
		for _, a := range i.Addrs {
			have[a.String()] = i.Name
		}
	}
	for _, a := range addrs {
		if have[a] == "" {
			t.Errorf("address %s is on no interface of the sandbox (%v)", a, have)
		}
	}
	if have[addrs[0]] == have[addrs[1]] {
		t.Errorf("both endpoints share interface %s", have[addrs[0]])
	}
	// Names are unique in a network, so a rename that would give both the
	// same name is refused, and changes neither.
	if err := sb.Rename("same"); !types.IsForbidden(err) {
		t.Errorf("renaming two endpoints of one network to one name: %v, want a ForbiddenError", err)
	}
	for _, ep := range sb.Endpoints() {
		if ep.Name() == "same" {
			t.Errorf("a refused rename renamed %s", ep.ID())
		}
	}
	mustf(t, sb.Delete(), "sandbox delete")
	mustf(t, n.Delete(), "network delete")
}

// A sandbox with its own namespace may join a host network; its files are
// then the host's.
func TestV07OwnNamespaceJoinsHostNetwork(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	host, err := c.NewNetwork("host", "host")
	mustf(t, err, "host network")
	sb, err := c.NewSandbox("ctr", OptionHostname("ctr"))
	mustf(t, err, "sandbox")
	ep, err := host.CreateEndpoint("h")
	mustf(t, err, "endpoint")
	mustf(t, ep.Join(sb), "join a host network from a sandbox with its own namespace")
	s := sb.(*sandbox)
	got, err := os.ReadFile(s.hostsPath())
	mustf(t, err, "hosts")
	origin, err := os.ReadFile(hostHostsPath)
	mustf(t, err, "host's hosts")
	if !strings.HasPrefix(string(got), string(origin)) {
		t.Errorf("hosts is not the host's:\n%s\nwant it to start with\n%s", got, origin)
	}
	rc, err := os.ReadFile(s.resolvConfPath())
	mustf(t, err, "resolv.conf")
	// A host without a resolv.conf gives a sandbox none either.
	hostRC, err := resolvconf.HostResolvConfFrom(hostResolvConfPath, resolvedResolvConf)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("reading the host's resolv.conf: %v", err)
	}
	wantNS := resolvconf.GetNameservers(hostRC)
	if gotNS := resolvconf.GetNameservers(rc); strings.Join(gotNS, ",") != strings.Join(wantNS, ",") {
		t.Errorf("resolv.conf names %v, the host's %v", gotNS, wantNS)
	}
	mustf(t, ep.Leave(sb), "leave")
	// Back to the sandbox's own files: the same as a fresh sandbox's.
	fresh, err := c.NewSandbox("fresh", OptionHostname("ctr"))
	mustf(t, err, "fresh sandbox")
	want, err := os.ReadFile(fresh.(*sandbox).hostsPath())
	mustf(t, err, "fresh hosts")
	if got, _ := os.ReadFile(s.hostsPath()); string(got) != string(want) {
		t.Errorf("hosts after leaving the host network:\n%s\nwant\n%s", got, want)
	}
	mustf(t, sb.Delete(), "sandbox delete")
}

// NetworkOptionDeferIPv6Alloc: the endpoint's IPv6 address is the
// network's prefix with the MAC in the low 48 bits, reserved in IPAM.
func TestV07DeferIPv6Alloc(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "defer", NetworkOptionEnableIPv6(true), NetworkOptionDeferIPv6Alloc(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.78.0.0/24"}}, []*IpamConf{{PreferredPool: "fe90::/64"}}, nil))
	mustf(t, err, "network")
	mac, _ := net.ParseMAC("aa:bb:cc:dd:ee:ff")
	ep, err := n.CreateEndpoint("ep", EndpointOptionGeneric(map[string]interface{}{netlabel.MacAddress: mac}))
	mustf(t, err, "endpoint")
	want := "fe90::aabb:ccdd:eeff/64"
	if got := ep.Info().Iface().AddressIPv6(); got == nil || got.String() != want {
		t.Fatalf("IPv6 address %v, want %s", got, want)
	}
	// Reserved: asking IPAM for it again is refused.
	if _, err := n.CreateEndpoint("dup", CreateOptionIpam(nil, net.ParseIP("fe90::aabb:ccdd:eeff"), nil)); err == nil {
		t.Error("the MAC-made address was not reserved in IPAM")
	}
	sb, err := c.NewSandbox("ctr")
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join")
	found := false
	ifs, err := nsOf(t, sb).Interfaces()
	mustf(t, err, "interfaces")
	for _, i := range ifs {
		for _, a := range i.Addrs {
			found = found || a.String() == want
		}
	}
	if !found {
		t.Errorf("%s is not configured in the sandbox: %+v", want, ifs)
	}
	mustf(t, sb.Delete(), "sandbox delete")
	// Released with the endpoint: the address can be asked for now.
	dup, err := n.CreateEndpoint("dup", CreateOptionIpam(nil, net.ParseIP("fe90::aabb:ccdd:eeff"), nil))
	mustf(t, err, "the address after its endpoint went")
	mustf(t, dup.Delete(false), "delete")
}

// A runtime bind-mounts the sandbox's hosts file into the container: the
// file must be rewritten in place, so a handle opened before a join reads
// what the join wrote.
func TestV07FilesRewrittenInPlace(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n1, err := c.NewNetwork("bridge", "one", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.79.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	n2, err := c.NewNetwork("bridge", "two", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.80.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	sb, err := c.NewSandbox("ctr", OptionHostname("web"))
	mustf(t, err, "sandbox")
	hosts := sb.(*sandbox).hostsPath()
	held, err := os.Open(hosts)
	mustf(t, err, "open hosts")
	defer held.Close()
	// As a runtime does, bind-mount it where a container would see it
	// (the test runs in a mount namespace of its own).
	mounted := filepath.Join(t.TempDir(), "etc-hosts")
	mustf(t, os.WriteFile(mounted, nil, 0o644), "mount point")
	mustf(t, unix.Mount(hosts, mounted, "", unix.MS_BIND, ""), "bind mount")
	t.Cleanup(func() { _ = unix.Unmount(mounted, unix.MNT_DETACH) })
	for _, n := range []Network{n1, n2} {
		ep, err := n.CreateEndpoint("web")
		mustf(t, err, "endpoint")
		mustf(t, ep.Join(sb), "join")
		line := ep.Info().Iface().Address().IP.String() + "\tweb"
		b, err := io.ReadAll(io.NewSectionReader(held, 0, 1<<20))
		mustf(t, err, "read through the held handle")
		if !strings.Contains(string(b), line) {
			t.Errorf("after joining %s the held hosts file lacks %q:\n%s", n.Name(), line, b)
		}
		b, err = os.ReadFile(mounted)
		mustf(t, err, "read through the bind mount")
		if !strings.Contains(string(b), line) {
			t.Errorf("after joining %s the bind-mounted hosts file lacks %q:\n%s", n.Name(), line, b)
		}
	}
}

// A restored endpoint has the addresses its record holds, reserved; the
// bridge makes no IPv6 address at restore. An endpoint recorded without
// one (made before deferred IPv6 addresses were given) stays without.
func TestV07DeferIPv6AllocRestart(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "defer", NetworkOptionEnableIPv6(true), NetworkOptionDeferIPv6Alloc(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.83.0.0/24"}}, []*IpamConf{{PreferredPool: "fe91::/64"}}, nil))
	mustf(t, err, "network")
	macA, _ := net.ParseMAC("aa:bb:cc:dd:ee:01")
	macB, _ := net.ParseMAC("aa:bb:cc:dd:ee:02")
	a, err := n.CreateEndpoint("a", EndpointOptionGeneric(map[string]interface{}{netlabel.MacAddress: macA}))
	mustf(t, err, "endpoint a")
	b, err := n.CreateEndpoint("b", EndpointOptionGeneric(map[string]interface{}{netlabel.MacAddress: macB}))
	mustf(t, err, "endpoint b")
	// b's record as an older version wrote it: no IPv6 address.
	mustf(t, c.state.Update(func(tx *datastore.Tx) error {
		var r endpointRecord
		if err := tx.Get(kindEndpoint, b.ID(), &r); err != nil {
			return err
		}
		r.AddrV6 = ""
		return tx.Put(kindEndpoint, b.ID(), r)
	}), "rewriting b's record")
	c.Stop()

	c = e.start()
	n2, err := c.NetworkByName("defer")
	mustf(t, err, "network after restart")
	a2, err := n2.EndpointByID(a.ID())
	mustf(t, err, "endpoint a after restart")
	if got := a2.Info().Iface().AddressIPv6(); got == nil || got.String() != "fe91::aabb:ccdd:ee01/64" {
		t.Errorf("endpoint a after restart has IPv6 %v", got)
	}
	b2, err := n2.EndpointByID(b.ID())
	mustf(t, err, "endpoint b after restart")
	if got := b2.Info().Iface().AddressIPv6(); got != nil {
		t.Errorf("endpoint b came back with an IPv6 address IPAM never gave it: %v", got)
	}
	if _, err := n2.CreateEndpoint("dupA", CreateOptionIpam(nil, net.ParseIP("fe91::aabb:ccdd:ee01"), nil)); err == nil {
		t.Error("a's address is not reserved after restart")
	}
	// b's MAC address is free: nobody holds it.
	_, err = n2.CreateEndpoint("takesB", CreateOptionIpam(nil, net.ParseIP("fe91::aabb:ccdd:ee02"), nil))
	mustf(t, err, "the address no endpoint holds")
}
