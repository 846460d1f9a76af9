package libnetwork

import (
	"errors"
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/netlabel"
	"github.com/netkit/libnetwork/options"
	"github.com/netkit/libnetwork/types"
)

func TestReadmeFlow(t *testing.T) {
	e := newEnv(t)
	genericOption := map[string]interface{}{netlabel.GenericData: options.Generic{}}
	c := e.start(config.OptionDriverConfig("bridge", genericOption))
	network, err := c.NewNetwork("bridge", "network1")
	mustf(t, err, "NewNetwork")
	ep, err := network.CreateEndpoint("Endpoint1")
	mustf(t, err, "CreateEndpoint")
	sbx, err := c.NewSandbox("container1", OptionHostname("test"), OptionDomainname("docker.io"))
	mustf(t, err, "NewSandbox")
	mustf(t, ep.Join(sbx), "Join")
	info, err := ep.DriverInfo()
	mustf(t, err, "DriverInfo")
	mac, ok := info[netlabel.MacAddress].(net.HardwareAddr)
	if !ok || len(mac) != 6 {
		t.Fatalf("MAC in driver info: %v", info[netlabel.MacAddress])
	}
	if !strings.HasPrefix(sbx.Key(), e.execRoot) {
		t.Errorf("sandbox key %s is not under the exec root %s", sbx.Key(), e.execRoot)
	}
	if sbx.ContainerID() != "container1" || ep.Name() != "Endpoint1" || ep.Network() != "network1" {
		t.Errorf("names: %s %s %s", sbx.ContainerID(), ep.Name(), ep.Network())
	}
}

func TestControllerAPI(t *testing.T) {
	e := newEnv(t)
	c := e.start(config.OptionLabels([]string{"a=b"}))
	if len(c.ID()) != 64 {
		t.Errorf("controller ID %q", c.ID())
	}
	cfg := c.Config()
	if cfg.Daemon.DataDir != e.dataDir || cfg.Daemon.ExecRoot != e.execRoot || !slices.Equal(cfg.Daemon.Labels, []string{"a=b"}) {
		t.Errorf("Config: %+v", cfg.Daemon)
	}
	mustf(t, c.ReloadConfiguration(config.OptionLabels([]string{"c=d"})), "ReloadConfiguration")
	if got := c.Config().Daemon.Labels; !slices.Equal(got, []string{"c=d"}) {
		t.Errorf("labels after reload: %v", got)
	}
	if err := c.ReloadConfiguration(config.OptionDataDir(t.TempDir())); !types.IsForbidden(err) {
		t.Errorf("changing the data dir at run time: %v, want Forbidden", err)
	}

	n1, err := c.NewNetwork("bridge", "b1", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.60.0.0/24"}}, nil, nil))
	mustf(t, err, "b1")
	n2, err := c.NewNetwork("bridge", "a2", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.61.0.0/24"}}, nil, nil))
	mustf(t, err, "a2")
	if got := c.Networks(); len(got) != 2 || got[0].Name() != "a2" || got[1].Name() != "b1" {
		t.Errorf("Networks: %v", got)
	}
	var walked []string
	c.WalkNetworks(func(n Network) bool { walked = append(walked, n.Name()); return true })
	if !slices.Equal(walked, []string{"a2"}) {
		t.Errorf("WalkNetworks did not stop at true: %v", walked)
	}
	if n, err := c.NetworkByName("b1"); err != nil || n.ID() != n1.ID() {
		t.Errorf("NetworkByName: %v %v", n, err)
	}
	if n, err := c.NetworkByID(n2.ID()); err != nil || n.Name() != "a2" {
		t.Errorf("NetworkByID: %v %v", n, err)
	}
	var nsn ErrNoSuchNetwork
	if _, err := c.NetworkByName("zzz"); !errors.As(err, &nsn) {
		t.Errorf("NetworkByName unknown: %v", err)
	}
	if _, err := c.NetworkByID("nope"); !errors.As(err, &nsn) {
		t.Errorf("NetworkByID unknown: %v", err)
	}
	var iid ErrInvalidID
	if _, err := c.NetworkByID(""); !errors.As(err, &iid) {
		t.Errorf("NetworkByID empty: %v", err)
	}
	var iname ErrInvalidName
	if _, err := c.NetworkByName(""); !errors.As(err, &iname) {
		t.Errorf("NetworkByName empty: %v", err)
	}

	sbA, err := c.NewSandbox("ca", OptionGeneric(map[string]interface{}{"label": "x"}))
	mustf(t, err, "sandbox ca")
	sbB, err := c.NewSandbox("cb")
	mustf(t, err, "sandbox cb")
	if got := c.Sandboxes(); len(got) != 2 || got[0].ContainerID() != "ca" {
		t.Errorf("Sandboxes: %v", got)
	}
	if sb, err := c.SandboxByID(sbB.ID()); err != nil || sb != sbB {
		t.Errorf("SandboxByID: %v %v", sb, err)
	}
	if _, err := c.SandboxByID("nope"); !types.IsNotFound(err) {
		t.Errorf("SandboxByID unknown: %v", err)
	}
	if _, err := c.SandboxByID(""); !errors.As(err, &iid) {
		t.Errorf("SandboxByID empty: %v", err)
	}
	var found Sandbox
	c.WalkSandboxes(SandboxContainerWalker(&found, "cb"))
	if found != sbB {
		t.Errorf("SandboxContainerWalker found %v", found)
	}
	found = nil
	c.WalkSandboxes(SandboxKeyWalker(&found, sbA.Key()))
	if found != sbA {
		t.Errorf("SandboxKeyWalker found %v", found)
	}
	if sbA.Labels()["label"] != "x" {
		t.Errorf("Labels: %v", sbA.Labels())
	}
	if _, err := c.NewSandbox("ca"); !types.IsBadRequest(err) {
		t.Errorf("second sandbox for one container: %v, want BadRequest as in v0.7", err)
	}
	var icid InvalidContainerIDError
	if _, err := c.NewSandbox(""); !errors.As(err, &icid) {
		t.Errorf("NewSandbox empty id: %v", err)
	}
	key := sbA.Key()
	mustf(t, c.SandboxDestroy("ca"), "SandboxDestroy")
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Errorf("netns file %s still there after SandboxDestroy: %v", key, err)
	}
	mustf(t, c.SandboxDestroy("ca"), "SandboxDestroy of a gone container")
	if len(c.Sandboxes()) != 1 {
		t.Errorf("sandboxes after destroy: %d", len(c.Sandboxes()))
	}

	c.Stop()
	if _, err := c.NewNetwork("bridge", "late"); !types.IsForbidden(err) {
		t.Errorf("NewNetwork after Stop: %v, want Forbidden", err)
	}
	if _, err := c.NewSandbox("late"); !types.IsForbidden(err) {
		t.Errorf("NewSandbox after Stop: %v, want Forbidden", err)
	}
	c.Stop() // twice is harmless
}

func TestNetworkAPI(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	labels := map[string]string{"team": "x"}
	v4 := []*IpamConf{{PreferredPool: "10.70.0.0/16", SubPool: "10.70.1.0/24", Gateway: "10.70.0.254", AuxAddresses: map[string]string{"router": "10.70.0.2"}}}
	v6 := []*IpamConf{{PreferredPool: "fd70::/64"}}
	n, err := c.NewNetwork("bridge", "net", NetworkOptionEnableIPv6(true), NetworkOptionLabels(labels),
		NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.name": "lnbr-test"}),
		NetworkOptionIpam("default", "", v4, v6, map[string]string{"o": "1"}))
	mustf(t, err, "NewNetwork")
	if n.Type() != "bridge" || n.Name() != "net" || len(n.ID()) != 64 {
		t.Errorf("identity: %s %s %s", n.Type(), n.Name(), n.ID())
	}
	info := n.Info()
	ipamDriver, ipamOpts, c4, c6 := info.IpamConfig()
	if ipamDriver != "default" || ipamOpts["o"] != "1" || len(c4) != 1 || c4[0].SubPool != "10.70.1.0/24" || len(c6) != 1 {
		t.Errorf("IpamConfig: %s %v %v %v", ipamDriver, ipamOpts, c4, c6)
	}
	i4, i6 := info.IpamInfo()
	if len(i4) != 1 || i4[0].Pool.String() != "10.70.0.0/16" || i4[0].Gateway.String() != "10.70.0.254/16" || i4[0].AuxAddresses["router"].IP.String() != "10.70.0.2" {
		t.Errorf("IpamInfo v4: %+v", i4[0])
	}
	if len(i6) != 1 || i6[0].Pool.String() != "fd70::/64" || i6[0].Gateway == nil {
		t.Errorf("IpamInfo v6: %+v", i6)
	}
	if info.DriverOptions()["com.docker.network.bridge.name"] != "lnbr-test" || info.Scope() != "local" || !info.IPv6Enabled() || info.Internal() || info.Labels()["team"] != "x" {
		t.Errorf("NetworkInfo: %v %s %v %v %v", info.DriverOptions(), info.Scope(), info.IPv6Enabled(), info.Internal(), info.Labels())
	}
	if _, err := e.host.Handle().LinkByName("lnbr-test"); err != nil {
		t.Errorf("bridge-name option: %v", err)
	}

	ep1, err := n.CreateEndpoint("one")
	mustf(t, err, "endpoint one")
	if a := ep1.Info().Iface().Address(); a.String() != "10.70.1.0/16" {
		t.Errorf("first address from the sub-pool: %v, want 10.70.1.0/16 (the sub-pool starts there; in a /16 it is a host address)", a)
	}
	ep2, err := n.CreateEndpoint("two", CreateOptionIpam(net.ParseIP("10.70.5.5"), nil, nil))
	mustf(t, err, "endpoint two")
	if a := ep2.Info().Iface().Address(); a.String() != "10.70.5.5/16" {
		t.Errorf("preferred address: %v", a)
	}
	if got := n.Endpoints(); len(got) != 2 || got[0].Name() != "one" {
		t.Errorf("Endpoints: %v", got)
	}
	count := 0
	n.WalkEndpoints(func(Endpoint) bool { count++; return false })
	if count != 2 {
		t.Errorf("WalkEndpoints visited %d", count)
	}
	if ep, err := n.EndpointByName("two"); err != nil || ep.ID() != ep2.ID() {
		t.Errorf("EndpointByName: %v %v", ep, err)
	}
	if ep, err := n.EndpointByID(ep1.ID()); err != nil || ep.Name() != "one" {
		t.Errorf("EndpointByID: %v %v", ep, err)
	}
	var nse ErrNoSuchEndpoint
	if _, err := n.EndpointByName("zzz"); !errors.As(err, &nse) {
		t.Errorf("EndpointByName unknown: %v", err)
	}
	if _, err := n.EndpointByID("zzz"); !errors.As(err, &nse) {
		t.Errorf("EndpointByID unknown: %v", err)
	}
	var active *ActiveEndpointsError
	if err := n.Delete(); !errors.As(err, &active) {
		t.Errorf("deleting a network with endpoints: %v, want ActiveEndpointsError", err)
	}
	mustf(t, ep1.Delete(false), "delete one")
	mustf(t, ep2.Delete(false), "delete two")
	var unknown *UnknownEndpointError
	if err := ep2.Delete(false); !errors.As(err, &unknown) {
		t.Errorf("deleting a deleted endpoint: %v, want UnknownEndpointError", err)
	}
	mustf(t, n.Delete(), "Delete")
	if _, err := e.host.Handle().LinkByName("lnbr-test"); err == nil {
		t.Error("bridge still there after Delete")
	}
	if _, err := c.NetworkByName("net"); err == nil {
		t.Error("network still listed after Delete")
	}
	// The pool is free again.
	_, err = c.NewNetwork("bridge", "again", NetworkOptionIpam("", "", v4, nil, nil))
	mustf(t, err, "reusing the pool")
}

func TestEndpointAPI(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "net", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.80.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	mac, _ := net.ParseMAC("02:00:00:00:00:42")
	ep, err := n.CreateEndpoint("ep", EndpointOptionGeneric(map[string]interface{}{netlabel.MacAddress: mac}),
		CreateOptionExposedPorts([]types.TransportPort{{Proto: types.TCP, Port: 80}}),
		CreateOptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}),
		CreateOptionMyAlias("web"), CreateOptionAlias("db", "database"), CreateOptionDisableResolution())
	mustf(t, err, "endpoint")
	if got := ep.Info().Iface().MacAddress(); got.String() != mac.String() {
		t.Errorf("MAC %s, want %s", got, mac)
	}
	if ep.Info().Sandbox() != nil || ep.Info().Gateway() != nil || ep.Info().GatewayIPv6() != nil || ep.Info().StaticRoutes() != nil {
		t.Error("unjoined endpoint reports join state")
	}
	sb, err := c.NewSandbox("c")
	mustf(t, err, "sandbox")
	mustf(t, ep.Join(sb), "join")
	if ep.Info().Sandbox() != sb {
		t.Error("Info().Sandbox() is not the joined sandbox")
	}
	if !ep.Info().Gateway().Equal(net.ParseIP("10.80.0.1")) {
		t.Errorf("Gateway: %v", ep.Info().Gateway())
	}
	var ij ErrInvalidJoin
	if err := ep.Join(sb); !errors.As(err, &ij) {
		t.Errorf("joining twice: %v, want ErrInvalidJoin", err)
	}
	var ace *ActiveContainerError
	if err := ep.Delete(false); !errors.As(err, &ace) {
		t.Errorf("deleting a joined endpoint: %v, want ActiveContainerError", err)
	}
	other, err := c.NewSandbox("other")
	mustf(t, err, "other sandbox")
	if err := ep.Leave(other); !types.IsForbidden(err) {
		t.Errorf("leaving a sandbox it is not joined to: %v, want Forbidden as in v0.7", err)
	}
	if eps := sb.Endpoints(); len(eps) != 1 || eps[0] != ep {
		t.Errorf("Sandbox.Endpoints: %v", eps)
	}
	mustf(t, ep.Delete(true), "forced delete of a joined endpoint")
	if len(sb.Endpoints()) != 0 {
		t.Error("forced delete left the endpoint in the sandbox")
	}
	if got := ifaceNames(t, nsOf(t, sb)); slices.Contains(got, "eth0") {
		t.Errorf("eth0 still in the sandbox after forced delete: %v", got)
	}
	ep2, err := n.CreateEndpoint("ep2")
	mustf(t, err, "ep2")
	if err := ep2.Leave(sb); !types.IsForbidden(err) {
		t.Errorf("leaving without a join: %v, want Forbidden as in v0.7", err)
	}
}

func TestGatewayPriority(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	na, err := c.NewNetwork("bridge", "a", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.91.0.0/24"}}, nil, nil))
	mustf(t, err, "a")
	nb, err := c.NewNetwork("bridge", "b", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.92.0.0/24"}}, nil, nil))
	mustf(t, err, "b")
	epA, _ := na.CreateEndpoint("ea")
	epB, _ := nb.CreateEndpoint("eb")
	sb, err := c.NewSandbox("c")
	mustf(t, err, "sandbox")
	mustf(t, epA.Join(sb), "join a")
	mustf(t, epB.Join(sb, JoinOptionPriority(epB, 10)), "join b")
	ns := nsOf(t, sb)
	gw := func() string {
		routes, _ := ns.Handle().RouteList(nil, 2)
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				return r.Gw.String()
			}
		}
		return ""
	}
	if got := gw(); got != "10.92.0.1" {
		t.Errorf("default gateway %q, want 10.92.0.1 (priority 10)", got)
	}
	if got := ifaceNames(t, ns); !slices.Equal(got, []string{"eth0", "eth1", "lo"}) {
		t.Errorf("interfaces %v", got)
	}
	mustf(t, epB.Leave(sb), "leave b")
	if got := gw(); got != "10.91.0.1" {
		t.Errorf("default gateway after leave %q, want 10.91.0.1", got)
	}
	// eth1 is free again; a new join takes it.
	mustf(t, epB.Join(sb), "join b again")
	if got := ifaceNames(t, ns); !slices.Contains(got, "eth1") {
		t.Errorf("interfaces after rejoin %v", got)
	}
}

func TestSandboxResolveRenameRefresh(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "net", NetworkOptionEnableIPv6(true),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.95.0.0/24"}}, []*IpamConf{{PreferredPool: "fd95::/64"}}, nil))
	mustf(t, err, "network")
	n4, err := c.NewNetwork("bridge", "v4only", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.96.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	web, _ := n.CreateEndpoint("web", CreateOptionMyAlias("www"))
	db, _ := n.CreateEndpoint("db")
	anon, _ := n.CreateEndpoint("anon", CreateOptionAnonymous())
	only4, _ := n4.CreateEndpoint("only4")
	sbW, _ := c.NewSandbox("w")
	sbD, _ := c.NewSandbox("d")
	sbA, _ := c.NewSandbox("a")
	mustf(t, web.Join(sbW), "join web")
	mustf(t, db.Join(sbD), "join db")
	mustf(t, anon.Join(sbA), "join anon")
	mustf(t, only4.Join(sbW), "join only4")

	ips, v6only := sbW.ResolveName("db", net.IPv4len)
	if len(ips) != 1 || !ips[0].Equal(db.Info().Iface().Address().IP) || v6only {
		t.Errorf("ResolveName db: %v %v", ips, v6only)
	}
	ips, _ = sbW.ResolveName("db.net.", net.IPv6len)
	if len(ips) != 1 || !ips[0].Equal(db.Info().Iface().AddressIPv6().IP) {
		t.Errorf("ResolveName db.net AAAA: %v", ips)
	}
	if ips, _ := sbD.ResolveName("www", net.IPv4len); len(ips) != 1 {
		t.Errorf("ResolveName alias www: %v", ips)
	}
	if ips, _ := sbD.ResolveName("anon", net.IPv4len); len(ips) != 0 {
		t.Errorf("anonymous endpoint resolved: %v", ips)
	}
	if ips, noV6 := sbW.ResolveName("only4", net.IPv6len); len(ips) != 0 || !noV6 {
		t.Errorf("ResolveName only4 AAAA: %v %v, want none and true", ips, noV6)
	}
	if ips, _ := sbD.ResolveName("only4", net.IPv4len); len(ips) != 0 {
		t.Errorf("a name on a network the sandbox is not on resolved: %v", ips)
	}
	ip := db.Info().Iface().Address().IP.To4()
	ptr := net.IPv4(ip[3], ip[2], ip[1], ip[0]).String() + ".in-addr.arpa."
	if got := sbW.ResolveIP(ptr); got != "db.net" {
		t.Errorf("ResolveIP %s: %q, want db.net", ptr, got)
	}

	mustf(t, sbD.Rename("database"), "Rename")
	if db.Name() != "database" {
		t.Errorf("endpoint name after Rename: %s", db.Name())
	}
	if _, err := n.EndpointByName("database"); err != nil {
		t.Errorf("EndpointByName after rename: %v", err)
	}
	if err := sbW.Rename("database"); err == nil {
		t.Error("renaming onto a taken name succeeded")
	}
	if web.Name() != "web" || only4.Name() != "only4" {
		t.Errorf("failed rename not undone: %s %s", web.Name(), only4.Name())
	}

	mustf(t, sbD.Refresh(OptionHostname("refreshed"), OptionDNS("192.0.2.53")), "Refresh")
	if len(sbD.Endpoints()) != 1 {
		t.Errorf("endpoints after Refresh: %v", sbD.Endpoints())
	}
	rc, _ := os.ReadFile(sbD.(*sandbox).resolvConfPath())
	if !strings.Contains(string(rc), "nameserver 127.0.0.11\n") || !slices.Equal(upstreamsOf(sbD), []string{"192.0.2.53:53"}) {
		t.Errorf("resolv.conf after Refresh (upstreams %v):\n%s", upstreamsOf(sbD), rc)
	}
	hosts, _ := os.ReadFile(sbD.(*sandbox).hostsPath())
	if !strings.Contains(string(hosts), "refreshed") {
		t.Errorf("hosts after Refresh:\n%s", hosts)
	}
	mustReach(t, nsOf(t, sbW), listen(t, nsOf(t, sbD), db.Info().Iface().Address().IP))
}
