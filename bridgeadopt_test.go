package libnetwork

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netkit/libnetwork/config"
	"github.com/netkit/libnetwork/datastore"
)

// A bridge the store says is the library's (a stored network with a
// bridge name of the caller's choice) is adopted at restart, with its
// address, and deleted with the network; only a bridge the store does not
// know is refused (TestBadInput).
func TestRestartAdoptsOwnNamedBridge(t *testing.T) {
	e := newEnv(t)
	nc, err := New(e.options()...)
	mustf(t, err, "New")
	_, err = nc.NewNetwork("bridge", "own", NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.name": "lnbr-own"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.131.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	h := e.host.Handle()
	br, err := h.LinkByName("lnbr-own")
	mustf(t, err, "bridge")
	nc.Stop()

	c := e.start()
	n, err := c.NetworkByName("own")
	mustf(t, err, "network after restart")
	again, err := h.LinkByName("lnbr-own")
	mustf(t, err, "bridge after restart")
	if again.Attrs().Index != br.Attrs().Index {
		t.Errorf("bridge recreated (index %d, was %d), want adopted", again.Attrs().Index, br.Attrs().Index)
	}
	if got, want := again.Attrs().Alias, "libnetwork:"+n.ID(); got != want {
		t.Errorf("adopted bridge's mark %q, want %q", got, want)
	}
	addrs, err := h.AddrList(again, netlink.FAMILY_V4)
	mustf(t, err, "addresses")
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.131.0.1/24" {
		t.Errorf("adopted bridge has %v, want the gateway 10.131.0.1/24", addrs)
	}
	ep, err := n.CreateEndpoint("a")
	mustf(t, err, "endpoint after restart")
	mustf(t, ep.Delete(false), "endpoint delete")
	mustf(t, n.Delete(), "network delete")
	if _, err := h.LinkByName("lnbr-own"); err == nil {
		t.Error("bridge left after the network's delete")
	}
}

// linkFacts describes what must stay unchanged in a link the library does
// not own: type, flags, state, master, MTU, alias and IPv4 addresses.
func linkFacts(t *testing.T, h *netlink.Handle, name string) string {
	t.Helper()
	l, err := h.LinkByName(name)
	mustf(t, err, "link %s", name)
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	mustf(t, err, "addresses of %s", name)
	a := l.Attrs()
	return fmt.Sprint(l.Type(), " ", a.Index, " ", a.Flags, " ", a.OperState, " master ", a.MasterIndex,
		" mtu ", a.MTU, " alias ", a.Alias, " ", addrs)
}

// hostBridge makes a bridge of the host's own (not the library's), up,
// with an address and a port, and returns a description of both to
// compare before and after.
func hostBridge(t *testing.T, e *testEnv, name, port string) func() string {
	t.Helper()
	h := e.host.Handle()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	mustf(t, h.LinkAdd(br), "bridge %s", name)
	// A veth, not a dummy: the test kernel has no dummy links.
	p := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port, MasterIndex: br.Attrs().Index}, PeerName: port + "x"}
	mustf(t, h.LinkAdd(p), "port %s", port)
	addr, err := netlink.ParseAddr("192.0.2.1/24")
	mustf(t, err, "address")
	mustf(t, h.AddrAdd(br, addr), "address of %s", name)
	mustf(t, h.LinkSetUp(br), "%s up", name)
	mustf(t, h.LinkSetUp(p), "%s up", port)
	return func() string { return linkFacts(t, h, name) + "; port " + linkFacts(t, h, port) }
}

// networkRecordOf reads network id's record from c's store.
func networkRecordOf(t *testing.T, c *controller, id string) networkRecord {
	t.Helper()
	var r networkRecord
	mustf(t, c.store.View(func(tx *datastore.Tx) error { return tx.Get(kindNetwork, id, &r) }), "record of network %s", id)
	return r
}

// checkRefused checks that network nid (bridge) was not restored, that one
// log line names the bridge and the network, and that its record is kept,
// not quarantined: the record may be genuine (the bridge replaced, its
// mark changed by someone), and kept it is tried again at each start, so
// the network comes back once its bridge is gone or marked again.
func checkRefused(t *testing.T, c *controller, logs, nid, bridge string) {
	t.Helper()
	if _, err := c.NetworkByID(nid); err == nil {
		t.Errorf("network %s over bridge %s was restored", nid, bridge)
	}
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, bridge) && strings.Contains(line, nid) && strings.Contains(line, "not restored") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d log lines name bridge %s and network %s, want 1:\n%s", n, bridge, nid, logs)
	}
	recs, err := datastore.List[map[string]any](c.store, kindNetwork)
	mustf(t, err, "listing network records")
	if _, ok := recs[nid]; !ok {
		t.Errorf("the record of network %s was dropped, want it kept", nid)
	}
	q, err := datastore.ListQuarantined(c.store)
	mustf(t, err, "listing quarantine")
	if len(q) != 0 {
		t.Errorf("records quarantined: %+v, want none", q)
	}
}

// TestRestartRefusesForgedBridgeRecord: stored records are not trusted to
// say which bridge is the library's. A forged network record naming the
// host's own bridge (with an address and a port), or a genuine network's
// bridge under another ID, is not restored, one log line says so, and
// the bridge keeps everything (addresses, port, state, alias, no rules
// of ours) through New and Stop; the genuine network is restored.
func TestRestartRefusesForgedBridgeRecord(t *testing.T) {
	e := newEnv(t)
	nc, err := New(e.options()...)
	mustf(t, err, "New")
	c := nc.(*controller)
	victim, err := c.NewNetwork("bridge", "victim", NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.name": "hostbr0"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.132.0.0/24"}}, nil, nil))
	mustf(t, err, "network over hostbr0")
	forged := networkRecordOf(t, c, victim.ID())
	mustf(t, victim.Delete(), "deleting it")
	good, err := c.NewNetwork("bridge", "good", NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.name": "lnbr-good"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.133.0.0/24"}}, nil, nil))
	mustf(t, err, "good network")
	// A record naming the good network's bridge under an ID that comes
	// first, so the driver sees it before the good one reserves its name.
	stolen := networkRecordOf(t, c, good.ID())
	stolen.ID, stolen.Name = strings.Repeat("0", 63)+"1", "thief"
	c.Stop()

	h := e.host.Handle()
	facts := hostBridge(t, e, "hostbr0", "hostbr0p")
	before := facts()
	goodBefore := linkFacts(t, h, "lnbr-good")
	e.forge(t, []badRecord{{kind: kindNetwork, key: forged.ID, rec: forged}, {kind: kindNetwork, key: stolen.ID, rec: stolen}})

	var logs syncBuffer
	c = e.start(config.OptionLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	checkRefused(t, c, logs.String(), forged.ID, "hostbr0")
	checkRefused(t, c, logs.String(), stolen.ID, "lnbr-good")
	if after := facts(); after != before {
		t.Errorf("host bridge changed by New:\nbefore %s\nafter  %s", before, after)
	}
	if strings.Contains(e.nft(), "hostbr0") {
		t.Errorf("rules for the host's bridge:\n%s", e.nft())
	}
	if _, err := c.NetworkByName("good"); err != nil {
		t.Errorf("the good network was not restored: %v", err)
	}
	if after := linkFacts(t, h, "lnbr-good"); after != goodBefore {
		t.Errorf("the good network's bridge changed:\nbefore %s\nafter  %s", goodBefore, after)
	}
	c.Stop()
	if after := facts(); after != before {
		t.Errorf("host bridge changed by Stop:\nbefore %s\nafter  %s", before, after)
	}
}

// TestRestartRefusesBridgeWithoutMark: a network's own bridge whose mark
// someone removed is not adopted at restart: the network is not
// restored, and the bridge, its address and its port are left as they
// are, through New and Stop.
func TestRestartRefusesBridgeWithoutMark(t *testing.T) {
	e := newEnv(t)
	nc, err := New(e.options()...)
	mustf(t, err, "New")
	n, err := nc.NewNetwork("bridge", "own", NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.name": "lnbr-unm"}),
		NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.134.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	nid := n.ID()
	_, err = n.CreateEndpoint("a")
	mustf(t, err, "endpoint")
	nc.Stop()

	h := e.host.Handle()
	br, err := h.LinkByName("lnbr-unm")
	mustf(t, err, "bridge")
	mustf(t, h.LinkSetAlias(br, ""), "removing the mark")
	port := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "unmport", MasterIndex: br.Attrs().Index}, PeerName: "unmportx"}
	mustf(t, h.LinkAdd(port), "port")
	before := linkFacts(t, h, "lnbr-unm") + "; port " + linkFacts(t, h, "unmport")
	if strings.Contains(before, "libnetwork:") {
		t.Fatalf("the mark is still there: %s", before)
	}

	var logs syncBuffer
	c := e.start(config.OptionLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	checkRefused(t, c, logs.String(), nid, "lnbr-unm")
	after := func() string { return linkFacts(t, h, "lnbr-unm") + "; port " + linkFacts(t, h, "unmport") }
	if got := after(); got != before {
		t.Errorf("unmarked bridge changed by New:\nbefore %s\nafter  %s", before, got)
	}
	c.Stop()
	if got := after(); got != before {
		t.Errorf("unmarked bridge changed by Stop:\nbefore %s\nafter  %s", before, got)
	}
}
