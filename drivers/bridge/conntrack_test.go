package bridge

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netkit/libnetwork/firewall"
	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/types"
)

// udpFlow makes a conntrack entry of a UDP flow from a client to
// dst:port, as a datagram to a published port would.
func udpFlow(t *testing.T, h *netlink.Handle, src string, sport uint16, dst string, port uint16) {
	t.Helper()
	flow := &netlink.ConntrackFlow{
		FamilyType: unix.AF_INET,
		Forward:    netlink.IPTuple{SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), Protocol: unix.IPPROTO_UDP, SrcPort: sport, DstPort: port},
		Reverse:    netlink.IPTuple{SrcIP: net.ParseIP(dst), DstIP: net.ParseIP(src), Protocol: unix.IPPROTO_UDP, SrcPort: port, DstPort: sport},
		TimeOut:    60,
	}
	if err := h.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, flow); err != nil {
		t.Fatalf("creating a conntrack entry: %v", err)
	}
}

func flowsTo(t *testing.T, h *netlink.Handle, port uint16) int {
	t.Helper()
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range flows {
		if f.Forward.DstPort == port {
			n++
		}
	}
	return n
}

// The flusher deletes the entries of the ports queued, in the background,
// and leaves the others; a publish cancels a pending unpublish flush of a
// TCP port.
func TestConntrackFlusher(t *testing.T) {
	testutil.RequireRoot(t)
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	f := newConntrackFlusher(h, nil, 10*time.Millisecond, slog.New(slog.DiscardHandler))
	defer f.close()
	udpFlow(t, h, "192.0.2.2", 40000, "192.0.2.1", 5353)
	udpFlow(t, h, "192.0.2.3", 40001, "192.0.2.1", 5353)
	udpFlow(t, h, "192.0.2.2", 40002, "192.0.2.1", 6000)
	rule := func(proto types.Protocol, port uint16) firewall.PortRule {
		return firewall.PortRule{Proto: proto, HostIP: netip.IPv4Unspecified(), HostPort: port,
			ContainerIP: netip.MustParseAddr("10.0.0.2"), ContainerPort: port}
	}
	// A TCP port published: nothing to flush (TCP entries are not stale).
	f.published([]firewall.PortRule{rule(types.TCP, 5353)})
	f.wait()
	if n := flowsTo(t, h, 5353); n != 2 {
		t.Fatalf("%d entries to 5353 after publishing tcp/5353, want 2", n)
	}
	f.published([]firewall.PortRule{rule(types.UDP, 5353)})
	f.wait()
	if n := flowsTo(t, h, 5353); n != 0 {
		t.Errorf("%d entries to 5353 left after publishing udp/5353", n)
	}
	if n := flowsTo(t, h, 6000); n != 1 {
		t.Errorf("the entry to 6000 went too (%d left)", n)
	}
	f.unpublished([]firewall.PortRule{rule(types.UDP, 6000)})
	f.wait()
	if n := flowsTo(t, h, 6000); n != 0 {
		t.Errorf("%d entries to 6000 left after unpublishing it", n)
	}
}
