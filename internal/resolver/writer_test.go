package resolver

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// recorder is a fake dns.ResponseWriter that keeps what the handler writes.
type recorder struct {
	tcp  bool
	msgs []*dns.Msg
	// packed is each written message packed as the server would send it.
	packed [][]byte
	err    error // first Pack error, if any
}

var _ dns.ResponseWriter = (*recorder)(nil)

func (w *recorder) LocalAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 11), Port: 53}
}

func (w *recorder) RemoteAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(172, 17, 0, 2), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(172, 17, 0, 2), Port: 40000}
}

func (w *recorder) WriteMsg(m *dns.Msg) error {
	w.msgs = append(w.msgs, m)
	b, err := m.Pack()
	if err != nil && w.err == nil {
		w.err = err
	}
	w.packed = append(w.packed, b)
	return err
}

func (w *recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	return len(b), w.WriteMsg(m)
}

func (w *recorder) Close() error        { return nil }
func (w *recorder) TsigStatus() error   { return nil }
func (w *recorder) TsigTimersOnly(bool) {}
func (w *recorder) Hijack()             {}

// table is a fake Names, safe for concurrent use once filled.
type table struct {
	names map[string][2][]netip.Addr
	addrs map[netip.Addr]string
	// record makes LookupName record in asked the names it was given; off,
	// it costs the benchmarks nothing.
	record bool
	mu     sync.Mutex
	asked  []string
}

func (t *table) LookupName(name string) (v4, v6 []netip.Addr, known bool) {
	if t.record {
		t.mu.Lock()
		t.asked = append(t.asked, name)
		t.mu.Unlock()
	}
	e, ok := t.names[name]
	return e[0], e[1], ok
}

func (t *table) LookupAddr(a netip.Addr) (string, bool) {
	n, ok := t.addrs[a]
	return n, ok
}

// add records name with addrs, each in the family it belongs to, and the
// reverse mapping of each address.
func (t *table) add(name string, addrs ...string) {
	as := make([]netip.Addr, len(addrs))
	for i, s := range addrs {
		as[i] = netip.MustParseAddr(s)
	}
	t.addAddrs(name, as...)
}

// addAddrs is add for addresses already parsed.
func (t *table) addAddrs(name string, addrs ...netip.Addr) {
	if t.names == nil {
		t.names = map[string][2][]netip.Addr{}
		t.addrs = map[netip.Addr]string{}
	}
	e := t.names[name]
	for _, a := range addrs {
		if a.Is4() {
			e[0] = append(e[0], a)
		} else {
			e[1] = append(e[1], a)
		}
		t.addrs[a] = name
	}
	t.names[name] = e
}

// serve runs one query through h and returns the single reply written.
func serve(t testing.TB, h *Handler, req *dns.Msg, tcp bool) (*dns.Msg, []byte) {
	t.Helper()
	w := &recorder{tcp: tcp}
	h.ServeDNS(w, req)
	if len(w.msgs) != 1 {
		t.Fatalf("%v: %d replies written, want 1", req.Question, len(w.msgs))
	}
	if w.err != nil {
		t.Fatalf("%v: reply does not pack: %v", req.Question, w.err)
	}
	got := w.msgs[0]
	if got.Id != req.Id || !got.Response {
		t.Fatalf("%v: reply id %d response %v, want id %d response true", req.Question, got.Id, got.Response, req.Id)
	}
	return got, w.packed[0]
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// answerAddrs returns the addresses of the A and AAAA records of m, in order.
func answerAddrs(t testing.TB, m *dns.Msg) []string {
	t.Helper()
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		default:
			t.Fatalf("unexpected record %v", rr)
		}
		if rr.Header().Ttl != TTL {
			t.Fatalf("record %v: ttl %d, want %d", rr, rr.Header().Ttl, TTL)
		}
	}
	return out
}

func join(s []string) string { return strings.Join(s, ",") }
