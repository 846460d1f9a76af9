package libnetwork

import (
	"slices"
	"strings"
	"testing"

	"github.com/netkit/libnetwork/osl"
)

// hostLinks lists the library's host-side veths ("veth…" and retired
// "vgone…") and bridges in the controller's namespace.
func hostLinks(t *testing.T, e *testEnv) []string {
	t.Helper()
	links, err := e.host.Handle().LinkList()
	mustf(t, err, "listing host links")
	var names []string
	for _, l := range links {
		if name := l.Attrs().Name; strings.HasPrefix(name, "veth") || strings.HasPrefix(name, "vgone") || strings.HasPrefix(name, "br-") {
			names = append(names, name)
		}
	}
	return names
}

// TestNetworkDeleteLeavesNoLink: when Network.Delete returns, no link that
// belonged to the network is listed, although the endpoints left moments
// before (their host-side veths wait for the reaper) and one sandbox
// still lives.
func TestNetworkDeleteLeavesNoLink(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "gone", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.101.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	ep1, sb1 := joined(t, c, n, "one")
	ep2, sb2 := joined(t, c, n, "two")
	if got := hostLinks(t, e); len(got) != 3 {
		t.Fatalf("host links before: %v, want a bridge and two veths", got)
	}
	// One sandbox stays, one goes; both endpoints leave and are deleted.
	mustf(t, ep1.Leave(sb1), "leave one")
	mustf(t, ep1.Delete(false), "delete endpoint one")
	mustf(t, ep2.Leave(sb2), "leave two")
	mustf(t, ep2.Delete(false), "delete endpoint two")
	mustf(t, sb2.Delete(), "delete sandbox two")
	mustf(t, n.Delete(), "delete network")
	if got := hostLinks(t, e); len(got) != 0 {
		t.Errorf("links of the deleted network still listed: %v", got)
	}
	if got := ifaceNames(t, nsOf(t, sb1)); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("the live sandbox still has %v", got)
	}
}

// TestExternalKeyDeleteRemovesInterfaces: deleting an external-key sandbox
// removes every interface the library put in the runtime's namespace (the
// one joined and the one an earlier Leave retired), and their host sides,
// while the namespace lives on with its process.
func TestExternalKeyDeleteRemovesInterfaces(t *testing.T) {
	e := newEnv(t)
	c := e.start()
	n, err := c.NewNetwork("bridge", "ext", NetworkOptionIpam("", "", []*IpamConf{{PreferredPool: "10.102.0.0/24"}}, nil, nil))
	mustf(t, err, "network")
	sb, err := c.NewSandbox("ext", OptionUseExternalKey())
	mustf(t, err, "sandbox")
	_, key := containerProcess(t)
	mustf(t, sb.SetKey(key), "SetKey")
	procNS, err := osl.OpenNamespace(key)
	mustf(t, err, "opening the container's namespace")
	defer procNS.Close()

	left, err := n.CreateEndpoint("left")
	mustf(t, err, "endpoint left")
	mustf(t, left.Join(sb), "join left")
	mustf(t, left.Leave(sb), "leave left")
	stays, err := n.CreateEndpoint("stays")
	mustf(t, err, "endpoint stays")
	mustf(t, stays.Join(sb), "join stays")
	if got := ifaceNames(t, procNS); len(got) != 3 {
		t.Fatalf("container namespace has %v, want eth0, a retired interface and lo", got)
	}

	mustf(t, sb.Delete(), "delete sandbox")
	if got := ifaceNames(t, procNS); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("container namespace has %v after the sandbox was deleted, want only lo", got)
	}
	if got := hostLinks(t, e); !slices.Equal(got, []string{"br-" + n.ID()[:12]}) {
		t.Errorf("host links %v after the sandbox was deleted, want only the bridge", got)
	}
}
