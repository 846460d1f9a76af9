package libnetwork

import (
	"fmt"
	"maps"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netkit/libnetwork/internal/testutil/etcdtest"
	"github.com/vishvananda/netlink"
)

// overlayClusterWith is overlayCluster for a network that req (an op
// "network" request, named ov) describes.
func overlayClusterWith(t *testing.T, n int, req hostReq, spec ...func(*hostSpec)) (*cluster, string) {
	t.Helper()
	etcd := etcdtest.Start(t)
	cl := newCluster(t, n, etcd.Endpoints()[0], "/test/"+t.Name(), spec...)
	req.Op, req.Name, req.Driver = "network", "ov", "overlay"
	nid := cl.hosts[0].must(req).ID
	for _, h := range cl.hosts[1:] {
		h.waitNetwork(t, "ov", true)
	}
	return cl, nid
}

var vxlanLine = regexp.MustCompile(`^\d+: ([^:@]+)[:@].* vxlan id (\d+) `)

// vxlanDevs returns the VXLAN devices in the namespace of overlay network
// nid on host h, by VNI.
func vxlanDevs(t *testing.T, h *hostProc, nid string) map[string]string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+filepath.Join(h.spec.ExecRoot, "overlay", nid), "ip", "-d", "-o", "link", "show", "type", "vxlan").CombinedOutput()
	mustf(t, err, "ip link: %s", out)
	devs := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if m := vxlanLine.FindStringSubmatch(l); m != nil {
			devs[m[2]] = m[1]
		}
	}
	return devs
}

// tunnelsTo reports whether the VXLAN device dev in the namespace of
// overlay network nid on host h sends frames for mac to a remote VTEP.
func tunnelsTo(t *testing.T, h *hostProc, nid, dev, mac string) bool {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+filepath.Join(h.spec.ExecRoot, "overlay", nid), "bridge", "fdb", "show", "dev", dev).CombinedOutput()
	mustf(t, err, "bridge fdb: %s", out)
	for _, l := range strings.Split(strings.ToLower(string(out)), "\n") {
		if strings.HasPrefix(l, strings.ToLower(mac)+" ") && strings.Contains(l, " dst ") {
			return true
		}
	}
	return false
}

// reaches6 waits until from reaches to's TCP server on its IPv6 address.
func reaches6(t *testing.T, from, to ovCtr) {
	t.Helper()
	srv := listen(t, to.ns, net.ParseIP(to.rep.IP6))
	eventually(t, fmt.Sprintf("TCP over IPv6 %s -> %s (%s)", from.name, to.name, srv), func() error {
		got, err := dial(from.ns, srv, time.Second)
		if err == nil && got != "echo:ping" {
			err = fmt.Errorf("answer %q", got)
		}
		return err
	})
}

// TestOverlayIPv6: a dual-stack overlay network on two hosts. Each
// container gets an address of the IPv6 pool too; the containers reach
// each other over IPv6 both ways, and each resolves the other's name to
// its IPv6 address (AAAA) and its IPv4 one (A) through its embedded DNS.
// The IPv6 pool shares the IPv4 subnet's segment: one VXLAN device, of
// the same VNI on both hosts.
func TestOverlayIPv6(t *testing.T) {
	const v6 = "fd6e:6f76:1::/64"
	cl, nid := overlayClusterWith(t, 2, hostReq{Subnet: "10.240.0.0/24", Subnet6: v6})
	h1, h2 := cl.hosts[0], cl.hosts[1]
	c1, c2 := overlayJoin(t, h1, "ov", "c1"), overlayJoin(t, h2, "ov", "c2")
	_, pool, _ := net.ParseCIDR(v6)
	for _, c := range []ovCtr{c1, c2} {
		if ip := net.ParseIP(c.rep.IP6); ip == nil || ip.To4() != nil || !pool.Contains(ip) {
			t.Fatalf("%s: IPv6 address %q, want one in %s", c.name, c.rep.IP6, v6)
		}
		// The address the controller reports is the container's.
		addrs, err := c.ns.Handle().AddrList(nil, netlink.FAMILY_V6)
		mustf(t, err, "%s addresses", c.name)
		var found bool
		for _, a := range addrs {
			found = found || a.IP.Equal(net.ParseIP(c.rep.IP6))
		}
		if !found {
			t.Errorf("%s: %s not on any interface: %v", c.name, c.rep.IP6, addrs)
		}
	}
	if c1.rep.IP6 == c2.rep.IP6 {
		t.Errorf("both containers got %s", c1.rep.IP6)
	}
	reaches6(t, c1, c2)
	reaches6(t, c2, c1)
	for _, p := range [][2]ovCtr{{c1, c2}, {c2, c1}} {
		from, to := p[0], p[1]
		for _, q := range [][2]string{{"AAAA", to.rep.IP6}, {"A", to.rep.IP}} {
			eventually(t, fmt.Sprintf("%s resolves %s's %s", from.name, to.name, q[0]), func() error {
				r := dig(t, keyOnly(from.rep.Key), to.name, q[0])
				if want := q[0] + " " + q[1]; r.status != "NOERROR" || !slices.Equal(r.answers, []string{want}) {
					return fmt.Errorf("status %s answers %v, want %s", r.status, r.answers, want)
				}
				return nil
			})
		}
	}
	vnis1, vnis2 := slices.Sorted(maps.Keys(vxlanDevs(t, h1, nid))), slices.Sorted(maps.Keys(vxlanDevs(t, h2, nid)))
	if len(vnis1) != 1 || !slices.Equal(vnis1, vnis2) {
		t.Errorf("VNIs of the dual-stack network: host1 %v, host2 %v; want one, the same", vnis1, vnis2)
	}
}

// TestOverlaySegments: a network of two IPv4 subnets is two segments: in
// its namespace on each host, two VXLAN devices of distinct VNIs, the same
// on every host. Containers given addresses of the second subnet reach
// each other across the hosts, as do those of the first.
func TestOverlaySegments(t *testing.T) {
	cl, nid := overlayClusterWith(t, 2, hostReq{Subnet: "10.241.0.0/24", Subnets: []string{"10.242.0.0/24"}})
	h1, h2 := cl.hosts[0], cl.hosts[1]
	devs1, devs2 := vxlanDevs(t, h1, nid), vxlanDevs(t, h2, nid)
	vnis1, vnis2 := slices.Sorted(maps.Keys(devs1)), slices.Sorted(maps.Keys(devs2))
	if len(vnis1) != 2 || !slices.Equal(vnis1, vnis2) {
		t.Fatalf("VNIs: host1 %v, host2 %v; want two distinct, the same on both", vnis1, vnis2)
	}
	join := func(h *hostProc, name, ip string) ovCtr {
		t.Helper()
		rep := h.must(hostReq{Op: "join", Network: "ov", Name: name, IP: ip})
		if ip != "" && rep.IP != ip {
			t.Fatalf("%s: address %s, want %s", name, rep.IP, ip)
		}
		return ovCtr{name: name, rep: rep, ns: nsAt(t, rep.Key)}
	}
	b1, b2 := join(h1, "b1", "10.242.0.10"), join(h2, "b2", "10.242.0.11")
	a1, a2 := join(h1, "a1", ""), join(h2, "a2", "")
	_, first, _ := net.ParseCIDR("10.241.0.0/24")
	for _, c := range []ovCtr{a1, a2} {
		if !first.Contains(net.ParseIP(c.rep.IP)) {
			t.Errorf("%s: address %s, want one of the first subnet %s", c.name, c.rep.IP, first)
		}
	}
	reaches(t, b1, b2)
	reaches(t, b2, b1)
	reaches(t, a1, a2)
	reaches(t, a2, a1)
	// Each subnet's containers are peers on a segment of their own: the
	// other host's b2 is tunnelled on one VXLAN device, a2 on the other.
	var bDev, aDev []string
	for vni, dev := range devs1 {
		if tunnelsTo(t, h1, nid, dev, b2.rep.MAC) {
			bDev = append(bDev, vni)
		}
		if tunnelsTo(t, h1, nid, dev, a2.rep.MAC) {
			aDev = append(aDev, vni)
		}
	}
	if len(bDev) != 1 || len(aDev) != 1 || bDev[0] == aDev[0] {
		t.Errorf("host1 tunnels b2 (second subnet) on VNIs %v, a2 (first subnet) on %v; want one each, distinct", bDev, aDev)
	}
}

// TestOverlayDeleteRacesCreate: deleting a global network and creating an
// endpoint on it from another host at the same moment never both
// succeed; an endpoint on another host, joined or not, keeps the network
// from being deleted (an ActiveEndpointsError), as in v0.7 where
// endpoints are global.
func TestOverlayDeleteRacesCreate(t *testing.T) {
	cl, _ := overlayCluster(t, 2, "10.243.0.0/24", nil)
	h1, h2 := cl.hosts[0], cl.hosts[1]
	h2.must(hostReq{Op: "create", Network: "ov", Name: "idle"})
	if rep := h1.call(hostReq{Op: "deletenet", Name: "ov"}); rep.Class != "forbidden" || !strings.Contains(rep.Err, "active endpoints") {
		t.Errorf("deleting a network with an unjoined endpoint on another host: %q (%s), want an ActiveEndpointsError", rep.Err, rep.Class)
	}
	h2.must(hostReq{Op: "leave", Network: "ov", Name: "idle"})
	h1.must(hostReq{Op: "deletenet", Name: "ov"})

	both := 0
	for i := range 8 {
		name := fmt.Sprintf("race%d", i)
		h1.must(hostReq{Op: "network", Name: name, Driver: "overlay", Subnet: fmt.Sprintf("10.244.%d.0/24", i)})
		h2.waitNetwork(t, name, true)
		var del, create hostReply
		var wg sync.WaitGroup
		wg.Go(func() { del = h1.call(hostReq{Op: "deletenet", Name: name}) })
		wg.Go(func() { create = h2.call(hostReq{Op: "create", Network: name, Name: "e"}) })
		wg.Wait()
		t.Logf("round %d: delete %q, create %q", i, del.Err, create.Err)
		switch {
		case del.Err == "" && create.Err == "":
			both++
			t.Errorf("round %d: the network was deleted and an endpoint created on it", i)
		case del.Err != "" && del.Class != "forbidden":
			t.Errorf("round %d: delete failed with %q (%s), want an ActiveEndpointsError if anything", i, del.Err, del.Class)
		case create.Err != "" && create.Class != "notfound":
			t.Errorf("round %d: create failed with %q (%s), want NotFound if anything", i, create.Err, create.Class)
		}
		if create.Err == "" {
			h2.must(hostReq{Op: "leave", Network: name, Name: "e"})
		} else {
			// The delete won: host2 drops the network.
			h2.waitNetwork(t, name, false)
		}
		if del.Err != "" {
			h1.must(hostReq{Op: "deletenet", Name: name})
		}
	}
}

// TestOverlayRenameAcrossHosts: renaming a container renames its
// endpoints across hosts: the new name is taken on every host, the old
// one free on every host, and once the container is gone nothing of it
// keeps the network from being deleted from another host.
func TestOverlayRenameAcrossHosts(t *testing.T) {
	cl, _ := overlayCluster(t, 2, "10.245.0.0/24", nil)
	h1, h2 := cl.hosts[0], cl.hosts[1]
	h2.must(hostReq{Op: "join", Network: "ov", Name: "c1"})
	h2.must(hostReq{Op: "rename", Name: "c1", Subnet: "web"})
	if rep := h1.call(hostReq{Op: "create", Network: "ov", Name: "web"}); rep.Class != "forbidden" {
		t.Errorf("creating the new name on another host: %q (%s), want Forbidden", rep.Err, rep.Class)
	}
	h1.must(hostReq{Op: "create", Network: "ov", Name: "c1"}) // the old name is free
	h1.must(hostReq{Op: "leave", Network: "ov", Name: "c1"})
	h2.must(hostReq{Op: "sbdel", Name: "c1"})
	h1.must(hostReq{Op: "deletenet", Name: "ov"})
}
