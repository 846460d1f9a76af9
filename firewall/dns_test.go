package firewall

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/types"
)

var dnsAddr = netip.MustParseAddr("127.0.0.11")

// newDNSNetNS returns a fresh network namespace with lo up, as a sandbox's.
func newDNSNetNS(t *testing.T) *os.File {
	t.Helper()
	testutil.RequireRoot(t)
	ns := newNetNS(t)
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return ns
}

func listDNSTable(t *testing.T, ns *os.File) string {
	t.Helper()
	return nftList(t, ns, "list", "table", "inet", DNSTableName)
}

// dnsTables returns the tables named DNSTableName in ns.
func dnsTables(t *testing.T, ns *os.File) int {
	t.Helper()
	return strings.Count(nftList(t, ns, "list", "tables"), "table inet "+DNSTableName+"\n")
}

func TestDNSRedirectGolden(t *testing.T) {
	ns := newDNSNetNS(t)
	if err := SetDNSRedirect(int(ns.Fd()), dnsAddr, 40001, 40002); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "dns_redirect", listDNSTable(t, ns))
	if out := nftList(t, nil, "list", "tables"); strings.Contains(out, DNSTableName) {
		t.Errorf("the test's own namespace got the table: %s", out)
	}
}

func TestDNSRedirectReplace(t *testing.T) {
	ns := newDNSNetNS(t)
	fd := int(ns.Fd())
	if err := SetDNSRedirect(fd, dnsAddr, 40001, 40002); err != nil {
		t.Fatal(err)
	}
	if err := SetDNSRedirect(fd, dnsAddr, 50001, 50002); err != nil {
		t.Fatal(err)
	}
	got := listDNSTable(t, ns)
	for _, want := range []string{"udp dport set 50001", "tcp dport set 50002", "udp sport 50001", "tcp sport 50002"} {
		if !strings.Contains(got, want) {
			t.Errorf("after the second SetDNSRedirect the table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "4000") {
		t.Errorf("the first redirect's ports are still there:\n%s", got)
	}
	if n := strings.Count(got, "dport set"); n != 2 {
		t.Errorf("%d rules rewriting the destination port, want 2:\n%s", n, got)
	}
	if n := dnsTables(t, ns); n != 1 {
		t.Errorf("%d tables %s, want 1", n, DNSTableName)
	}
}

func TestDNSRedirectDelete(t *testing.T) {
	ns := newDNSNetNS(t)
	fd := int(ns.Fd())
	// Absent: no error.
	if err := DeleteDNSRedirect(fd); err != nil {
		t.Fatalf("DeleteDNSRedirect without a table: %v", err)
	}
	if err := SetDNSRedirect(fd, dnsAddr, 40001, 40002); err != nil {
		t.Fatal(err)
	}
	if err := DeleteDNSRedirect(fd); err != nil {
		t.Fatal(err)
	}
	if n := dnsTables(t, ns); n != 0 {
		t.Errorf("%d tables %s after DeleteDNSRedirect, want none", n, DNSTableName)
	}
	if err := DeleteDNSRedirect(fd); err != nil {
		t.Fatalf("second DeleteDNSRedirect: %v", err)
	}
}

func TestDNSRedirectBadInput(t *testing.T) {
	tests := []struct {
		name     string
		nsFd     int
		addr     netip.Addr
		udp, tcp uint16
	}{
		{"no address", -1, netip.Addr{}, 1, 2},
		{"not loopback", -1, netip.MustParseAddr("10.0.0.1"), 1, 2},
		{"IPv6", -1, netip.MustParseAddr("::1"), 1, 2},
		{"IPv4-mapped", -1, netip.MustParseAddr("::ffff:127.0.0.11"), 1, 2},
		{"udp port 0", -1, dnsAddr, 0, 2},
		{"tcp port 0", -1, dnsAddr, 1, 0},
		{"bad fd", -2, dnsAddr, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := SetDNSRedirect(tt.nsFd, tt.addr, tt.udp, tt.tcp)
			if !types.IsBadRequest(err) {
				t.Errorf("SetDNSRedirect(%d, %v, %d, %d) = %v, want a BadRequestError", tt.nsFd, tt.addr, tt.udp, tt.tcp, err)
			}
		})
	}
	if err := DeleteDNSRedirect(-2); !types.IsBadRequest(err) {
		t.Errorf("DeleteDNSRedirect(-2) = %v, want a BadRequestError", err)
	}
}

// echoServers serves, on a UDP and a TCP socket bound to addr inside ns,
// every datagram and every TCP read back prefixed with tag.
func echoServers(t *testing.T, ns *os.File, addr string, tag string) (udp, tcp netip.AddrPort) {
	t.Helper()
	var (
		pc net.PacketConn
		ln net.Listener
	)
	err := inNS(ns, func() (err error) {
		if pc, err = net.ListenPacket("udp4", addr); err != nil {
			return err
		}
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close(); _ = ln.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte(tag), buf[:n]...), from)
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 512)
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				_, _ = c.Write(append([]byte(tag), buf[:n]...))
			}()
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort(), ln.Addr().(*net.TCPAddr).AddrPort()
}

// exchangeUDP sends msg from a socket in ns to to and returns the reply and
// where it came from.
func exchangeUDP(t *testing.T, ns *os.File, to netip.AddrPort, msg string) (string, netip.AddrPort) {
	t.Helper()
	var c *net.UDPConn
	if err := inNS(ns, func() (err error) {
		c, err = net.ListenUDP("udp4", nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The deadline only keeps a lost reply from hanging the test.
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("UDP to %s: %v", to, err)
	}
	return string(buf[:n]), from
}

// exchangeTCP connects from ns to to, sends msg and returns the reply.
func exchangeTCP(t *testing.T, ns *os.File, to netip.AddrPort, msg string) string {
	t.Helper()
	var c net.Conn
	if err := inNS(ns, func() (err error) {
		c, err = net.Dial("tcp4", to.String())
		return err
	}); err != nil {
		t.Fatalf("TCP to %s: %v", to, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := io.Copy(&out, c); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("TCP to %s: %v", to, err)
	}
	return out.String()
}

func TestDNSRedirectTraffic(t *testing.T) {
	ns := newDNSNetNS(t)
	udp, tcp := echoServers(t, ns, "127.0.0.11:0", "resolver:")
	// A container's own DNS server on every address of port 53.
	echoServers(t, ns, "0.0.0.0:53", "own:")
	if err := SetDNSRedirect(int(ns.Fd()), dnsAddr, udp.Port(), tcp.Port()); err != nil {
		t.Fatal(err)
	}
	port53 := netip.AddrPortFrom(dnsAddr, 53)
	got, from := exchangeUDP(t, ns, port53, "q1")
	if got != "resolver:q1" || from != port53 {
		t.Errorf("UDP to %s: reply %q from %s, want %q from %s", port53, got, from, "resolver:q1", port53)
	}
	if got := exchangeTCP(t, ns, port53, "q2"); got != "resolver:q2" {
		t.Errorf("TCP to %s: reply %q, want %q", port53, got, "resolver:q2")
	}

	own := netip.MustParseAddrPort("127.0.0.1:53")
	got, from = exchangeUDP(t, ns, own, "q3")
	if got != "own:q3" || from != own {
		t.Errorf("UDP to %s: reply %q from %s, want %q from %s", own, got, from, "own:q3", own)
	}
	if got := exchangeTCP(t, ns, own, "q4"); got != "own:q4" {
		t.Errorf("TCP to %s: reply %q, want %q", own, got, "own:q4")
	}

	// The redirect is stateless: no connection was tracked.
	var count []byte
	if err := inNS(ns, func() (err error) {
		count, err = os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count")
		if errors.Is(err, os.ErrNotExist) {
			count, err = []byte("0\n"), nil // conntrack not even loaded
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(count)) != "0" {
		t.Errorf("nf_conntrack_count in the namespace is %s after the queries, want 0", count)
	}

	// Without the redirect, 127.0.0.11:53 reaches the container's server.
	if err := DeleteDNSRedirect(int(ns.Fd())); err != nil {
		t.Fatal(err)
	}
	if got, _ := exchangeUDP(t, ns, port53, "q5"); got != "own:q5" {
		t.Errorf("UDP to %s without the redirect: reply %q, want %q", port53, got, "own:q5")
	}
}

// A table of that name whose chains are not the redirect's (another
// version's, or made by hand) is replaced whole.
func TestDNSRedirectReplacesForeignTable(t *testing.T) {
	ns := newDNSNetNS(t)
	nftList(t, ns, "add", "table", "inet", DNSTableName)
	nftList(t, ns, "add", "chain", "inet", DNSTableName, chainOutput, "{ type nat hook output priority -100 ; }")
	nftList(t, ns, "add", "rule", "inet", DNSTableName, chainOutput, "counter")
	if err := SetDNSRedirect(int(ns.Fd()), dnsAddr, 40001, 40002); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "dns_redirect", listDNSTable(t, ns))
}
