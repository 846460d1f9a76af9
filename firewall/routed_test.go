package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/netkit/libnetwork/types"
)

func open(proto types.Protocol, addr string, port uint16) OpenPort {
	return OpenPort{Proto: proto, Addr: netip.MustParseAddr(addr), Port: port}
}

var (
	// netRouted is routed for both families; netRouted6 only for IPv6
	// (IPv4 NATed), the usual docker setup.
	netRouted = NetworkRules{Bridge: "br-routed", Subnets: []netip.Prefix{pfx("192.0.2.0/24"), pfx("fd00:2::/64")},
		ICC: true, Masquerade: true, RoutedIPv4: true, RoutedIPv6: true}
	netRouted6 = NetworkRules{Bridge: "br-routed6", Subnets: []netip.Prefix{pfx("172.22.0.0/24"), pfx("fd00:3::/64")},
		ICC: true, Masquerade: true, RoutedIPv6: true}
	sampleOpen = []OpenPort{
		open(types.TCP, "192.0.2.2", 80),
		open(types.UDP, "192.0.2.2", 53),
		open(types.SCTP, "192.0.2.3", 9000),
		open(types.TCP, "fd00:2::2", 443),
		open(types.TCP, "fd00:3::2", 8080),
	}
)

func mustOpen(t testing.TB, f *Firewall, ports ...OpenPort) {
	t.Helper()
	if err := f.AddOpenPorts(ports); err != nil {
		t.Fatalf("AddOpenPorts: %v", err)
	}
}

func TestRoutedGolden(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault, netRouted, netRouted6)
	mustOpen(t, f, sampleOpen...)
	checkGolden(t, "routed", dump(t))
}

// A routed family is not masqueraded; the other family of the same
// network still is.
func TestRoutedNoMasquerade(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netRouted, netRouted6)
	got := dump(t)
	for _, s := range []string{"192.0.2.0", "fd00:2::", "fd00:3::"} {
		if strings.Contains(got, s) {
			t.Errorf("routed subnet %s is in the table (masqueraded?):\n%s", s, got)
		}
	}
	if !strings.Contains(got, "172.22.0.0 . \"br-routed6\"") {
		t.Errorf("the NATed IPv4 subnet of a network routed for IPv6 only is not masqueraded:\n%s", got)
	}
}

func TestOpenPortsAddDelete(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netRouted)
	empty := dump(t)
	mustOpen(t, f, sampleOpen...)
	full := dump(t)
	// Again, and with a duplicate in one call: nothing changes.
	mustOpen(t, f, sampleOpen[0], sampleOpen[0], sampleOpen[3])
	if got := dump(t); got != full {
		t.Errorf("re-opening changed the table:\n%s\nwant:\n%s", got, full)
	}
	want := slices.Clone(sampleOpen)
	slices.SortFunc(want, compareOpenPorts)
	if got := f.OpenPorts(); !slices.Equal(got, want) {
		t.Errorf("OpenPorts() = %v, want %v", got, want)
	}
	if err := f.DeleteOpenPorts(append(sampleOpen, open(types.TCP, "192.0.2.9", 1))); err != nil {
		t.Fatal(err)
	}
	if got := dump(t); got != empty {
		t.Errorf("after DeleteOpenPorts:\n%s\nwant:\n%s", got, empty)
	}
	if err := f.DeleteOpenPorts(sampleOpen); err != nil {
		t.Errorf("closing closed ports: %v", err)
	}
	// Deleting the network, then, leaves the table as Init made it.
	if err := f.DeleteNetwork(netRouted.Bridge); err != nil {
		t.Fatal(err)
	}
	for _, s := range f.sets() {
		elems, err := f.conn.GetSetElements(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(elems) != 0 {
			t.Errorf("set %s still holds %d elements", s.Name, len(elems))
		}
	}
}

func TestOpenPortCheck(t *testing.T) {
	bad := []OpenPort{
		open(types.ICMP, "10.0.0.2", 1),
		open(types.TCP, "10.0.0.2", 0),
		open(types.TCP, "0.0.0.0", 80),
		open(types.TCP, "::", 80),
		open(types.TCP, "::ffff:10.0.0.2", 80),
		{Proto: types.TCP, Port: 80},
	}
	f := newFirewall(t)
	before := dump(t)
	for _, p := range bad {
		if err := f.AddOpenPorts([]OpenPort{sampleOpen[0], p}); !types.IsBadRequest(err) {
			t.Errorf("AddOpenPorts(%v) = %v, want an invalid-parameter error", p, err)
		}
	}
	if got := dump(t); got != before {
		t.Errorf("refused batches changed the table:\n%s", got)
	}
}

// A restarted process learns the routed networks and open ports, can
// delete them, and Reconcile and ReconcileOpenPorts keep what is recorded.
func TestRoutedRestartReconcile(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault)
	base := dump(t)
	mustAdd(t, f, netRouted)
	mustOpen(t, f, sampleOpen[:2]...)
	want := dump(t)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	g := openFirewall(t)
	if got := dump(t); got != want {
		t.Fatalf("Init changed the table:\n%s\nwant:\n%s", got, want)
	}
	if got := g.OpenPorts(); len(got) != 2 {
		t.Errorf("after restart OpenPorts() = %v, want the 2 open ports", got)
	}
	// A crashed run opened one more that nobody recorded.
	mustOpen(t, g, sampleOpen[3])
	if err := g.Reconcile([]NetworkRules{netDefault, netRouted}); err != nil {
		t.Fatal(err)
	}
	if err := g.ReconcileOpenPorts(sampleOpen[:2]); err != nil {
		t.Fatal(err)
	}
	if got := dump(t); got != want {
		t.Errorf("after Reconcile:\n%s\nwant:\n%s", got, want)
	}
	// The network's routed elements were learnt: deleting it after the
	// restart removes them.
	if err := g.ReconcileOpenPorts(nil); err != nil {
		t.Fatal(err)
	}
	if err := g.DeleteNetwork(netRouted.Bridge); err != nil {
		t.Fatal(err)
	}
	if got := dump(t); got != base {
		t.Errorf("after deleting the routed network:\n%s\nwant:\n%s", got, base)
	}
}

// A table made by a version without routed networks (no routed and open
// sets) is kept with its networks; Init adds the sets.
func TestInitAddsRoutedSets(t *testing.T) {
	f := newFirewall(t)
	mustAdd(t, f, netDefault)
	want := dump(t)
	// The rules refer to the sets: take them out first.
	f.conn.FlushChain(f.forward)
	for _, s := range []*nftables.Set{f.open4, f.open6, f.routed4, f.routed6} {
		f.conn.DelSet(s)
	}
	if err := f.conn.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := openFirewall(t)
	// The sets Init adds come after the others: compare in any order.
	if got := dump(t); blocks(got) != blocks(want) {
		t.Errorf("Init of a table without routed sets:\n%s\nwant:\n%s", got, want)
	}
	if err := g.DeleteNetwork(netDefault.Bridge); err != nil {
		t.Errorf("the kept network was not learnt: %v", err)
	}
}

// blocks returns listing with its blank-line separated blocks sorted.
func blocks(listing string) string {
	b := strings.Split(listing, "\n\n")
	slices.Sort(b)
	return strings.Join(b, "\n\n")
}

// BenchmarkOpenClosePort measures one AddOpenPorts and one DeleteOpenPorts
// of a port with some ports already open: the cost must not grow with
// them.
func BenchmarkOpenClosePort(b *testing.B) {
	for _, present := range []int{0, 10000} {
		b.Run(fmt.Sprintf("open=%d", present), func(b *testing.B) {
			f := newFirewall(b)
			mustAdd(b, f, netRouted)
			ports := make([]OpenPort, present)
			for i := range ports {
				ports[i] = OpenPort{Proto: types.TCP, Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(2 + i/60000)}), Port: uint16(1 + i%60000)}
			}
			mustOpen(b, f, ports...)
			p := []OpenPort{open(types.UDP, "192.0.2.200", 53)}
			for b.Loop() {
				if err := f.AddOpenPorts(p); err != nil {
					b.Fatal(err)
				}
				if err := f.DeleteOpenPorts(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
