package libnetwork

import (
	"testing"

	"github.com/vishvananda/netlink"
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
