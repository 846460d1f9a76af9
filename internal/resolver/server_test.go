package resolver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netkit/libnetwork/internal/testutil"
	"github.com/netkit/libnetwork/osl"
	"github.com/netkit/libnetwork/types"
)

// bigAnswerCount is the number of addresses of the name "big": more than a UDP
// reply of dig's default EDNS size (1232 bytes) holds.
const bigAnswerCount = 100

func serverNames() *table {
	n := &table{}
	n.add("web", "172.18.0.2", "fd00::2")
	n.add("db", "172.18.0.3")
	for i := range bigAnswerCount {
		n.addAddrs("big", netip.AddrFrom4([4]byte{10, 1, byte(i / 256), byte(i%256 + 1)}))
	}
	return n
}

// newSandboxNS creates a network namespace as a sandbox's, destroyed at
// the end of the test.
func newSandboxNS(t testing.TB) *osl.Namespace {
	t.Helper()
	testutil.RequireRoot(t)
	ns, err := osl.NewNamespace(filepath.Join(t.TempDir(), "netns", "sb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Destroy(); err != nil {
			t.Error(err)
		}
	})
	return ns
}

// startServer starts a server with the redirect in ns, stopped at the end
// of the test.
func startServer(t testing.TB, ns *osl.Namespace, h dns.Handler, stats *Stats) *Server {
	t.Helper()
	s, err := StartServer(ServerConfig{Handler: h, Do: ns.Do, NsFd: ns.Fd(), Redirect: true, Stats: stats,
		Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// testLogger logs warnings and errors into the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// digResult is what dig printed of one query.
type digResult struct {
	status  string
	flags   []string
	answers []string // the answer section's data, in order
}

var (
	statusRE = regexp.MustCompile(`status: ([A-Z]+)`)
	flagsRE  = regexp.MustCompile(`;; flags: ([a-z ]+);`)
)

// dig runs dig in ns against 127.0.0.11 (port 53) and parses its output.
func dig(t *testing.T, ns *osl.Namespace, args ...string) digResult {
	t.Helper()
	args = append([]string{"--net=" + ns.Path(), "dig", "@127.0.0.11", "+tries=1", "+time=5", "+noall", "+comments", "+answer"}, args...)
	out, err := exec.Command("nsenter", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	var r digResult
	if m := statusRE.FindSubmatch(out); m != nil {
		r.status = string(m[1])
	} else {
		t.Fatalf("%v: no status in\n%s", args, out)
	}
	if m := flagsRE.FindSubmatch(out); m != nil {
		r.flags = strings.Fields(string(m[1]))
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		f := strings.Fields(line)
		r.answers = append(r.answers, f[len(f)-1])
	}
	return r
}

func TestServerDig(t *testing.T) {
	ns := newSandboxNS(t)
	var stats Stats
	startServer(t, ns, NewHandler(serverNames(), nil, nil), &stats)
	var bigAll []string
	for i := range bigAnswerCount {
		bigAll = append(bigAll, fmt.Sprintf("10.1.%d.%d", i/256, i%256+1))
	}
	tests := []struct {
		name    string
		args    []string
		status  string
		answers []string // sorted; nil: none
		tc      bool
	}{
		{"A", []string{"web", "A"}, "NOERROR", []string{"172.18.0.2"}, false},
		{"AAAA", []string{"web", "AAAA"}, "NOERROR", []string{"fd00::2"}, false},
		{"known name without AAAA", []string{"db", "AAAA"}, "NOERROR", nil, false},
		{"PTR", []string{"-x", "172.18.0.3"}, "NOERROR", []string{"db."}, false},
		{"PTR IPv6", []string{"-x", "fd00::2"}, "NOERROR", []string{"web."}, false},
		{"NXDOMAIN", []string{"unknown.example", "A"}, "NXDOMAIN", nil, false},
		{"TCP", []string{"+tcp", "web", "A"}, "NOERROR", []string{"172.18.0.2"}, false},
		{"TCP NXDOMAIN", []string{"+tcp", "nope", "A"}, "NXDOMAIN", nil, false},
		{"large over TCP", []string{"+tcp", "big", "A"}, "NOERROR", bigAll, false},
		// dig retries a truncated answer over TCP by itself.
		{"large retried over TCP", []string{"big", "A"}, "NOERROR", bigAll, false},
	}
	slices.Sort(bigAll)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dig(t, ns, tt.args...)
			slices.Sort(r.answers)
			if r.status != tt.status || !slices.Equal(r.answers, tt.answers) {
				t.Errorf("dig %v: %s %v, want %s %v", tt.args, r.status, r.answers, tt.status, tt.answers)
			}
			if slices.Contains(r.flags, "tc") {
				t.Errorf("dig %v: truncated (flags %v)", tt.args, r.flags)
			}
		})
	}
	t.Run("large over UDP truncated", func(t *testing.T) {
		// +ignore: show the truncated UDP answer instead of retrying.
		r := dig(t, ns, "+notcp", "+ignore", "big", "A")
		if r.status != "NOERROR" || !slices.Contains(r.flags, "tc") || len(r.answers) >= bigAnswerCount {
			t.Errorf("%s flags %v with %d answers, want NOERROR, tc, fewer than %d", r.status, r.flags, len(r.answers), bigAnswerCount)
		}
	})
	if got := stats.Queries.Load(); got < uint64(len(tests)+1) {
		t.Errorf("Stats.Queries = %d after %d queries", got, len(tests)+1)
	}
	if got := stats.Malformed.Load(); got != 0 {
		t.Errorf("Stats.Malformed = %d, want 0", got)
	}
}

// nftTables returns `nft list tables` in ns.
func nftTables(t *testing.T, ns *osl.Namespace) string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+ns.Path(), "nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v\n%s", err, out)
	}
	return string(out)
}

func TestServerStop(t *testing.T) {
	ns := newSandboxNS(t)
	s := startServer(t, ns, NewHandler(serverNames(), nil, nil), nil)
	if got := nftTables(t, ns); !strings.Contains(got, "libnetwork-dns") {
		t.Fatalf("no redirect table while the server runs:\n%s", got)
	}
	udpPort, tcpPort := s.Ports()
	if r := dig(t, ns, "web", "A"); r.status != "NOERROR" {
		t.Fatalf("dig before Stop: %s", r.status)
	}
	s.Stop()
	s.Stop() // harmless
	if got := nftTables(t, ns); strings.Contains(got, "libnetwork-dns") {
		t.Errorf("redirect table left after Stop:\n%s", got)
	}
	// The ports are free again.
	err := ns.Do(func() error {
		pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(DefaultAddr, udpPort)))
		if err != nil {
			return err
		}
		pc.Close()
		ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(DefaultAddr, tcpPort)))
		if err != nil {
			return err
		}
		return ln.Close()
	})
	if err != nil {
		t.Errorf("binding the server's ports after Stop: %v", err)
	}
}

// openFds returns the number of open file descriptors of the process.
func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func TestStartServerFailureLeavesNothing(t *testing.T) {
	ns := newSandboxNS(t)
	h := NewHandler(serverNames(), nil, nil)
	// Warm up what the runtime opens once (the netpoller).
	startServer(t, ns, h, nil).Stop()

	notNetns, err := os.Open(filepath.Join(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer notNetns.Close()
	tests := []struct {
		name string
		cfg  ServerConfig
	}{
		{"Do fails after binding", ServerConfig{Do: func(fn func() error) error {
			return errors.Join(ns.Do(fn), errors.New("switching back failed"))
		}, NsFd: ns.Fd(), Redirect: true}},
		{"Do fails without running fn", ServerConfig{Do: func(func() error) error {
			return errors.New("namespace gone")
		}, NsFd: ns.Fd(), Redirect: true}},
		{"Do succeeds without running fn", ServerConfig{Do: func(func() error) error { return nil }}},
		{"address not there", ServerConfig{Addr: netip.MustParseAddr("192.0.2.1"), Do: ns.Do, NsFd: ns.Fd(), Redirect: true}},
		{"redirect into a file that is no netns", ServerConfig{Do: ns.Do, NsFd: int(notNetns.Fd()), Redirect: true}},
		{"redirect to an IPv6 address", ServerConfig{Addr: netip.IPv6Loopback(), Do: ns.Do, NsFd: ns.Fd(), Redirect: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := openFds(t)
			tt.cfg.Handler = h
			tt.cfg.Logger = testLogger(t)
			s, err := StartServer(tt.cfg)
			if err == nil {
				s.Stop()
				t.Fatal("StartServer succeeded")
			}
			t.Log(err)
			if after := openFds(t); after != before {
				t.Errorf("%d open fds after the failure, %d before", after, before)
			}
			if got := nftTables(t, ns); strings.Contains(got, "libnetwork-dns") {
				t.Errorf("redirect table left:\n%s", got)
			}
		})
	}
}

func TestStartServerBadConfig(t *testing.T) {
	if _, err := StartServer(ServerConfig{}); !types.IsBadRequest(err) {
		t.Errorf("StartServer without a handler: %v, want a BadRequestError", err)
	}
	h := NewHandler(serverNames(), nil, nil)
	if _, err := StartServer(ServerConfig{Handler: h, NsFd: -2, Redirect: true}); !types.IsBadRequest(err) {
		t.Errorf("StartServer with netns fd -2: %v, want a BadRequestError", err)
	}
}

// udpClient returns a UDP socket in ns connected to port 53 of s's address.
func udpClient(t testing.TB, ns *osl.Namespace) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(DefaultAddr, 53)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// Only so that a lost reply fails the test rather than hanging it.
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// tcpClient returns a TCP connection from ns to port 53 of s's address.
func tcpClient(t testing.TB, ns *osl.Namespace) *net.TCPConn {
	t.Helper()
	var c *net.TCPConn
	err := ns.Do(func() (err error) {
		c, err = net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(netip.AddrPortFrom(DefaultAddr, 53)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

func readMsg(t testing.TB, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return m
}

func packQuery(t testing.TB, id uint16, name string, qtype uint16) []byte {
	t.Helper()
	m := query(name, qtype)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func exchangeUDP(t testing.TB, c *net.UDPConn, q []byte) *dns.Msg {
	t.Helper()
	if _, err := c.Write(q); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return readMsg(t, buf[:n])
}

func writeTCP(t testing.TB, c *net.TCPConn, msgs ...[]byte) {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		b = append(b, m...)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func readTCP(t testing.TB, c *net.TCPConn) *dns.Msg {
	t.Helper()
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return readMsg(t, b)
}

func TestServerMalformed(t *testing.T) {
	ns := newSandboxNS(t)
	var stats Stats
	startServer(t, ns, NewHandler(serverNames(), nil, nil), &stats)
	c := udpClient(t, ns)

	// A header announcing a question that is not there: miekg unpacks it
	// as a message without a question, which the handler answers FORMERR.
	headerOnly := []byte{0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	// A label running past the end: malformed.
	badLabel := append(slices.Clone(headerOnly), 63, 'a', 'b')
	// Not even a header: dropped.
	short := []byte{1, 2, 3, 4, 5}
	// A malformed response: dropped, never answered.
	badResponse := slices.Clone(badLabel)
	badResponse[2] |= 0x80
	// Larger than any query the server reads whole: malformed.
	huge := append(packQuery(t, 0xbeef, "web.", dns.TypeA), make([]byte, udpQueryMax)...)
	for _, p := range [][]byte{short, badResponse} {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range [][]byte{headerOnly, badLabel, huge} {
		r := exchangeUDP(t, c, p)
		if r.Id != 0xbeef || !r.Response || r.Rcode != dns.RcodeFormatError || !r.RecursionDesired || len(r.Question) != 0 {
			t.Errorf("reply to %d malformed bytes: %v, want FORMERR with the id and RD", len(p), r)
		}
	}
	// The server still answers, and the dropped packets got no reply (the
	// next datagram read is the answer to this query).
	if r := exchangeUDP(t, c, packQuery(t, 7, "web.", dns.TypeA)); r.Id != 7 || len(r.Answer) != 1 {
		t.Errorf("after malformed packets: %v", r)
	}

	// Over TCP: garbage, then a query on the same connection.
	tc := tcpClient(t, ns)
	writeTCP(t, tc, badLabel, packQuery(t, 8, "web.", dns.TypeA))
	if r := readTCP(t, tc); r.Id != 0xbeef || r.Rcode != dns.RcodeFormatError {
		t.Errorf("TCP reply to a malformed message: %v, want FORMERR", r)
	}
	if r := readTCP(t, tc); r.Id != 8 || len(r.Answer) != 1 {
		t.Errorf("TCP reply after a malformed message: %v", r)
	}
	// short, badResponse, badLabel, huge, and badLabel over TCP.
	if got, want := stats.Malformed.Load(), uint64(5); got != want {
		t.Errorf("Stats.Malformed = %d, want %d", got, want)
	}
	if got, want := stats.Queries.Load(), uint64(8); got != want {
		t.Errorf("Stats.Queries = %d, want %d", got, want)
	}
}

// laterHandler answers names starting with "later" from another goroutine
// after ServeDNS returned, as the forwarder does, those starting with
// "quick" from another goroutine at once (racing with ServeDNS's return),
// panics on "panic." and answers the rest at once.
type laterHandler struct {
	release chan struct{} // closed to let the late replies go
	wg      sync.WaitGroup
}

// cleanup waits for the handler's goroutines at the end of the test. It
// must be called before the server starts: cleanups run last-in
// first-out, so the wait then comes after the server's Stop, which waits
// for the loops calling ServeDNS. Every wg.Add thus happens before the
// Wait, as sync.WaitGroup requires (an Add from zero racing with a Wait
// that blocks is what the race detector reported when the wait came first
// and a late goroutine was still running).
func (h *laterHandler) cleanup(t testing.TB) { t.Cleanup(h.wg.Wait) }

func (h *laterHandler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	reply := new(dns.Msg)
	reply.SetReply(r)
	name := r.Question[0].Name
	switch {
	case name == "panic.":
		panic("handler bug")
	case strings.HasPrefix(name, "quick"):
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			_ = w.WriteMsg(reply)
		}()
		return
	case !strings.HasPrefix(name, "later"):
		_ = w.WriteMsg(reply)
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		<-h.release
		// r and w are still the query's: its name and id come back.
		reply.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET},
			Txt: []string{w.RemoteAddr().String()}}}
		_ = w.WriteMsg(reply)
	}()
}

func TestServerRepliesAfterServeDNSReturns(t *testing.T) {
	ns := newSandboxNS(t)
	h := &laterHandler{release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(h.release) }) }
	h.cleanup(t)
	// Also when the test fails before releasing them.
	t.Cleanup(release)
	startServer(t, ns, h, nil)

	// UDP: many queries held at once, then released together.
	const n = 100
	c := udpClient(t, ns)
	for i := range n {
		if _, err := c.Write(packQuery(t, uint16(i), fmt.Sprintf("later%d.", i), dns.TypeTXT)); err != nil {
			t.Fatal(err)
		}
	}
	// A query answered at once is not held up by them.
	if r := exchangeUDP(t, c, packQuery(t, 9999, "now.", dns.TypeA)); r.Id != 9999 {
		t.Fatalf("reply %v, want id 9999", r)
	}

	// TCP: a held query, then one answered at once, on one connection
	// whose client has finished writing.
	tc := tcpClient(t, ns)
	writeTCP(t, tc, packQuery(t, 1, "later-tcp.", dns.TypeTXT), packQuery(t, 2, "now.", dns.TypeA))
	if err := tc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if r := readTCP(t, tc); r.Id != 2 {
		t.Fatalf("first TCP reply has id %d, want 2 (the held one comes later)", r.Id)
	}
	release()

	seen := map[uint16]bool{}
	buf := make([]byte, 65535)
	for range n {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %d late replies: %v", len(seen), err)
		}
		r := readMsg(t, buf[:k])
		want := fmt.Sprintf("later%d.", r.Id)
		if len(r.Question) != 1 || r.Question[0].Name != want || len(r.Answer) != 1 || seen[r.Id] {
			t.Fatalf("late reply %v: want one answer to %s", r, want)
		}
		if txt := r.Answer[0].(*dns.TXT).Txt[0]; txt != c.LocalAddr().String() {
			t.Errorf("the writer's RemoteAddr is %s, want the client's %s", txt, c.LocalAddr())
		}
		seen[r.Id] = true
	}
	if r := readTCP(t, tc); r.Id != 1 || r.Question[0].Name != "later-tcp." {
		t.Errorf("late TCP reply %v, want id 1", r)
	}
	// Then the server closes the connection: nothing more is owed.
	if k, err := tc.Read(buf); !errors.Is(err, io.EOF) {
		t.Errorf("after the last reply: read %d bytes, %v; want EOF", k, err)
	}
}

func TestServerRepliesRacingServeDNSReturn(t *testing.T) {
	ns := newSandboxNS(t)
	h := &laterHandler{}
	h.cleanup(t)
	startServer(t, ns, h, nil)
	c := udpClient(t, ns)
	buf := make([]byte, 512)
	for round := range 10 {
		const n = 50
		for i := range n {
			if _, err := c.Write(packQuery(t, uint16(round*n+i), "quick.", dns.TypeA)); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[uint16]bool{}
		for range n {
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("round %d, after %d replies: %v", round, len(seen), err)
			}
			r := readMsg(t, buf[:k])
			if seen[r.Id] || int(r.Id)/n != round {
				t.Fatalf("round %d: unexpected reply id %d (seen: %v)", round, r.Id, seen[r.Id])
			}
			seen[r.Id] = true
		}
	}
}

func TestServerHandlerPanic(t *testing.T) {
	ns := newSandboxNS(t)
	h := &laterHandler{}
	startServer(t, ns, h, nil)
	c := udpClient(t, ns)
	if _, err := c.Write(packQuery(t, 1, "panic.", dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	// No reply to the query that panicked: the next reply is the next
	// query's.
	if r := exchangeUDP(t, c, packQuery(t, 2, "now.", dns.TypeA)); r.Id != 2 {
		t.Errorf("reply %v, want id 2", r)
	}
	// Over TCP the connection does not wait for the reply that never
	// comes.
	tc := tcpClient(t, ns)
	writeTCP(t, tc, packQuery(t, 3, "panic.", dns.TypeA), packQuery(t, 4, "now.", dns.TypeA))
	if err := tc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if r := readTCP(t, tc); r.Id != 4 {
		t.Errorf("TCP reply %v, want id 4", r)
	}
	buf := make([]byte, 512)
	if k, err := tc.Read(buf); !errors.Is(err, io.EOF) {
		t.Errorf("after the last reply: read %d bytes, %v; want EOF", k, err)
	}
}

func TestServerTCPConnectionBound(t *testing.T) {
	ns := newSandboxNS(t)
	s := startServer(t, ns, NewHandler(serverNames(), nil, nil), nil)
	for i := range maxTCPConns {
		c := tcpClient(t, ns)
		// The reply proves the server took the connection.
		writeTCP(t, c, packQuery(t, uint16(i), "web.", dns.TypeA))
		if r := readTCP(t, c); r.Id != uint16(i) {
			t.Fatalf("connection %d: reply %v", i, r)
		}
	}
	c := tcpClient(t, ns)
	buf := make([]byte, 512)
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("connection %d beyond the bound: read %d bytes, want it closed", maxTCPConns+1, n)
	}
	// Closing one makes room.
	s.mu.Lock()
	var some *tcpConn
	for tc := range s.conns {
		some = tc
		break
	}
	s.mu.Unlock()
	some.close()
	c = tcpClient(t, ns)
	writeTCP(t, c, packQuery(t, 1, "web.", dns.TypeA))
	if r := readTCP(t, c); r.Id != 1 {
		t.Fatalf("after one closed: reply %v", r)
	}
}

func TestFormErr(t *testing.T) {
	for _, tt := range []struct {
		in, want []byte
	}{
		{nil, nil},
		{[]byte{1, 2, 3}, nil},
		// Opcode and RD kept, the rest of the flags cleared.
		{[]byte{0x12, 0x34, 0x79, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9}, []byte{0x12, 0x34, 0xf9, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}},
		{[]byte{0x12, 0x34, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil},
	} {
		if got := formErr(tt.in); !bytes.Equal(got, tt.want) {
			t.Errorf("formErr(% x) = % x, want % x", tt.in, got, tt.want)
		}
	}
}

// BenchmarkServerUDPLocal measures A queries for a local name through the
// redirect of port 53, from client sockets in the sandbox's namespace, one
// query in flight per client.
func BenchmarkServerUDPLocal(b *testing.B) {
	ns := newSandboxNS(b)
	var stats Stats
	startServer(b, ns, NewHandler(serverNames(), nil, nil), &stats)
	q := packQuery(b, 1, "web.", dns.TypeA)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var c *net.UDPConn
		err := ns.Do(func() (err error) {
			c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(DefaultAddr, 53)))
			return err
		})
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 512)
		for pb.Next() {
			if _, err := c.Write(q); err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestServerForwards: queries forwarded through the server, many at once
// from several clients, each get their own answer: the upstream sockets'
// readers send them back to the right client under the right ID; local
// names keep being answered meanwhile. The handler forwards either with
// a forward function (unpacked queries) or with SetForwarder (the wire
// form).
func TestServerForwards(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(map[bool]string{false: "unpacked", true: "wire form"}[raw], func(t *testing.T) {
			testServerForwards(t, raw)
		})
	}
}

func testServerForwards(t *testing.T, raw bool) {
	ns := newSandboxNS(t)
	// The upstream answers qN-M.example. with 10.0.N.M.
	up := startUpstream(t, "127.0.0.2", func(w dns.ResponseWriter, r *dns.Msg) {
		var a, b int
		fmt.Sscanf(r.Question[0].Name, "q%d-%d.example.", &a, &b)
		answerA(fmt.Sprintf("10.0.%d.%d", a, b))(w, r)
	})
	ups := []Upstream{up.upstream()}
	var stats Stats
	f := NewForwarder(ForwarderConfig{Upstreams: func() []Upstream { return ups }, Stats: &stats})
	h := NewHandler(serverNames(), f.Forward, nil)
	if raw {
		h = NewHandler(serverNames(), nil, nil)
		h.SetForwarder(f)
	}
	h.SetStats(&stats)
	// The server stops first: Forward is not called after Close.
	t.Cleanup(f.Close)
	startServer(t, ns, h, &stats)

	const clients, each = 4, 100
	var wg sync.WaitGroup
	for c := range clients {
		conn := udpClient(t, ns)
		var packets [each][]byte
		for i := range each {
			name := fmt.Sprintf("q%d-%d.example.", c, i)
			if i%10 == 0 {
				name = "web." // local, in between
			}
			packets[i] = packQuery(t, uint16(c*each+i), name, dns.TypeA)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			seen := map[uint16]bool{}
			// In waves that the upstream's socket buffer holds.
			const wave = 20
			for i := range each {
				if _, err := conn.Write(packets[i]); err != nil {
					t.Error(err)
					return
				}
				if i%wave != wave-1 {
					continue
				}
				for range wave {
					n, err := conn.Read(buf)
					if err != nil {
						t.Errorf("client %d after %d replies: %v", c, len(seen), err)
						return
					}
					r := new(dns.Msg)
					if err := r.Unpack(buf[:n]); err != nil {
						t.Errorf("client %d: reply does not unpack: %v", c, err)
						return
					}
					i := int(r.Id) - c*each
					want := fmt.Sprintf("10.0.%d.%d", c, i)
					if i%10 == 0 {
						want = "172.18.0.2"
					}
					if i < 0 || i >= each || seen[r.Id] || aAddr(r) != want {
						t.Errorf("client %d: reply %v, want one answer %s for id %d", c, r, want, r.Id)
						return
					}
					seen[r.Id] = true
				}
			}
		}()
	}
	wg.Wait()
	if s := stats.Snapshot(); s.Forwarded != clients*each*9/10 || s.Local != clients*each/10 || s.UpstreamFailures != 0 {
		t.Errorf("stats %+v, want %d forwarded, %d local, no failure", s, clients*each*9/10, clients*each/10)
	}
}

// TestServerLargeRawAnswer: a local answer larger than the loop's room
// for each reply still goes out whole when the client's size allows.
func TestServerLargeRawAnswer(t *testing.T) {
	ns := newSandboxNS(t)
	startServer(t, ns, NewHandler(serverNames(), nil, nil), nil)
	c := udpClient(t, ns)
	for range 3 { // the loop's buffers are reused
		req := query("big.", dns.TypeA)
		req.SetEdns0(4096, false)
		b, err := req.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := NewHandler(serverNames(), nil, nil).serveRaw(b, nil); len(got) <= rawReplyRoom {
			t.Fatalf("the answer is %d bytes, want it answered from the wire form and larger than %d", len(got), rawReplyRoom)
		}
		r := exchangeUDP(t, c, b)
		if r.Truncated || len(r.Answer) != bigAnswerCount {
			t.Fatalf("reply with %d answers, TC %v; want all %d", len(r.Answer), r.Truncated, bigAnswerCount)
		}
		if r := exchangeUDP(t, c, packQuery(t, 7, "web.", dns.TypeA)); r.Id != 7 || len(r.Answer) != 1 {
			t.Fatalf("next reply %v", r)
		}
	}
}
