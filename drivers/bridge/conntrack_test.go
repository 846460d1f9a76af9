package bridge

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/types"
)

// udpFlow makes a conntrack entry of a UDP flow from src to dst whose
// replies come from replySrc (dst itself when not translated).
func udpFlow(t *testing.T, h *netlink.Handle, src, dst, replySrc netip.AddrPort) {
	t.Helper()
	ip := func(a netip.AddrPort) net.IP { return net.IP(a.Addr().AsSlice()) }
	flow := &netlink.ConntrackFlow{
		FamilyType: unix.AF_INET,
		Forward:    netlink.IPTuple{SrcIP: ip(src), DstIP: ip(dst), Protocol: unix.IPPROTO_UDP, SrcPort: src.Port(), DstPort: dst.Port()},
		Reverse:    netlink.IPTuple{SrcIP: ip(replySrc), DstIP: ip(src), Protocol: unix.IPPROTO_UDP, SrcPort: replySrc.Port(), DstPort: src.Port()},
		TimeOut:    60,
	}
	if err := h.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, flow); err != nil {
		t.Fatalf("creating a conntrack entry: %v", err)
	}
}

// flows returns the conntrack entries the test made (source ports
// 40000-40003), as "src -> dst (reply from)".
func flows(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	list, err := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range list {
		if f.Forward.SrcPort < 40000 || f.Forward.SrcPort > 40003 {
			continue // not this test's: other tests share the namespace
		}
		out = append(out, fmt.Sprintf("%s:%d -> %s:%d (%s:%d)", f.Forward.SrcIP, f.Forward.SrcPort, f.Forward.DstIP, f.Forward.DstPort, f.Reverse.SrcIP, f.Reverse.SrcPort))
	}
	slices.Sort(out)
	return out
}

// The flusher deletes, in the background, the untranslated entries of a
// port just published (a client's, from before) and the entries
// translated to the container of a port just unpublished, and nothing
// else: not the host's own connections to that port number elsewhere, not
// another container's.
func TestConntrackFlusher(t *testing.T) {
	testutil.RequireRoot(t)
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("192.0.2.1"), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	f := newConntrackFlusher(h, nil, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	defer f.close()
	ap := netip.MustParseAddrPort
	host := ap("192.0.2.1:5353")
	udpFlow(t, h, ap("198.51.100.2:40000"), host, host)                                  // stale, untranslated: goes at publish
	udpFlow(t, h, ap("192.0.2.1:40001"), ap("203.0.113.9:5353"), ap("203.0.113.9:5353")) // the host's own DNS: stays
	udpFlow(t, h, ap("198.51.100.2:40002"), ap("192.0.2.1:6000"), ap("10.0.0.2:6000"))   // translated to 10.0.0.2: goes at unpublish
	udpFlow(t, h, ap("198.51.100.3:40003"), ap("192.0.2.1:6000"), ap("10.0.0.3:6000"))   // translated to another container: stays
	rule := func(proto types.Protocol, port uint16, ctr string) firewall.PortRule {
		return firewall.PortRule{Proto: proto, HostIP: netip.IPv4Unspecified(), HostPort: port,
			ContainerIP: netip.MustParseAddr(ctr), ContainerPort: port}
	}
	before := flows(t, h)
	// A TCP port published: nothing to flush.
	f.published([]firewall.PortRule{rule(types.TCP, 5353, "10.0.0.2")})
	f.wait()
	if got := flows(t, h); !slices.Equal(got, before) {
		t.Fatalf("publishing tcp/5353 changed the entries:\n%q\nwant\n%q", got, before)
	}
	f.published([]firewall.PortRule{rule(types.UDP, 5353, "10.0.0.2")})
	f.unpublished([]firewall.PortRule{rule(types.UDP, 6000, "10.0.0.2")})
	f.wait()
	want := []string{
		"192.0.2.1:40001 -> 203.0.113.9:5353 (203.0.113.9:5353)",
		"198.51.100.3:40003 -> 192.0.2.1:6000 (10.0.0.3:6000)",
	}
	if got := flows(t, h); !slices.Equal(got, want) {
		t.Errorf("entries after the flushes:\n%q\nwant\n%q", got, want)
	}
}
