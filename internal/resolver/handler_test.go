package resolver

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

func testTable() *table {
	t := &table{}
	t.add("web", "172.18.0.2", "fd00::2")
	t.add("web.front", "172.18.0.2", "fd00::2")
	t.add("db", "172.18.0.3") // IPv4 only
	t.add("cache", "fd00::4") // IPv6 only
	t.add("noaddr")           // known, no address at all
	t.add("multi", "10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::a", "fd00::b")
	return t
}

// forwardRecorder is a forward function that answers SERVFAIL and counts.
type forwardRecorder struct {
	calls []*dns.Msg
}

func (f *forwardRecorder) forward(w dns.ResponseWriter, r *dns.Msg) {
	f.calls = append(f.calls, r)
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeServerFailure)
	_ = w.WriteMsg(m)
}

func TestLocalAnswers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  []string // addresses, sorted
	}{
		{"web.", dns.TypeA, []string{"172.18.0.2"}},
		{"web.", dns.TypeAAAA, []string{"fd00::2"}},
		{"web.", dns.TypeANY, []string{"172.18.0.2", "fd00::2"}},
		{"web.front.", dns.TypeA, []string{"172.18.0.2"}},
		{"WeB.FrOnT.", dns.TypeA, []string{"172.18.0.2"}},
		{"db.", dns.TypeA, []string{"172.18.0.3"}},
		{"multi.", dns.TypeA, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		{"multi.", dns.TypeAAAA, []string{"fd00::a", "fd00::b"}},
		// A known name without an address of the family: empty NOERROR.
		{"db.", dns.TypeAAAA, nil},
		{"cache.", dns.TypeA, nil},
		{"noaddr.", dns.TypeA, nil},
		// Any other type of a known name: empty NOERROR.
		{"web.", dns.TypeMX, nil},
		{"web.", dns.TypeTXT, nil},
		{"web.", dns.TypeSRV, nil},
		// PTR of a name that is not a reverse name is just another type.
		{"web.", dns.TypePTR, nil},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.name, dns.TypeToString[tc.qtype]), func(t *testing.T) {
			fwd := &forwardRecorder{}
			h := NewHandler(testTable(), fwd.forward, nil)
			req := query(tc.name, tc.qtype)
			got, _ := serve(t, h, req, false)
			if len(fwd.calls) != 0 {
				t.Fatalf("forwarded a known name")
			}
			if got.Rcode != dns.RcodeSuccess || !got.Authoritative || !got.RecursionAvailable || !got.RecursionDesired {
				t.Fatalf("rcode %s aa %v ra %v rd %v, want NOERROR, aa, ra, rd", dns.RcodeToString[got.Rcode], got.Authoritative, got.RecursionAvailable, got.RecursionDesired)
			}
			if len(got.Question) != 1 || got.Question[0] != req.Question[0] {
				t.Fatalf("question %v, want %v", got.Question, req.Question)
			}
			addrs := answerAddrs(t, got)
			slices.Sort(addrs)
			if join(addrs) != join(tc.want) {
				t.Fatalf("answers %v, want %v", addrs, tc.want)
			}
			for _, rr := range got.Answer {
				if rr.Header().Name != tc.name {
					t.Fatalf("owner %q, want the question's %q", rr.Header().Name, tc.name)
				}
			}
			if got.Truncated || got.IsEdns0() != nil {
				t.Fatalf("TC %v, OPT %v on a small reply to a query without EDNS", got.Truncated, got.IsEdns0())
			}
		})
	}
}

func TestNamesAskedLowercaseWithoutDot(t *testing.T) {
	tab := testTable()
	tab.record = true
	h := NewHandler(tab, nil, nil)
	serve(t, h, query("WeB.FrOnT.", dns.TypeA), false)
	serve(t, h, query("Unknown.Example.", dns.TypeAAAA), false)
	if want := []string{"web.front", "unknown.example"}; !slices.Equal(tab.asked, want) {
		t.Fatalf("names asked %q, want %q", tab.asked, want)
	}
}

func TestRotation(t *testing.T) {
	h := NewHandler(testTable(), nil, nil)
	all := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
	firsts := map[string]bool{}
	for i := 0; i < 3; i++ {
		got, _ := serve(t, h, query("multi.", dns.TypeA), false)
		addrs := answerAddrs(t, got)
		// Each answer is the whole set, rotated: in cyclic order.
		start := slices.Index(all, addrs[0])
		if start < 0 || len(addrs) != len(all) {
			t.Fatalf("query %d: answers %v, want a rotation of %v", i, addrs, all)
		}
		for j := range addrs {
			if addrs[j] != all[(start+j)%len(all)] {
				t.Fatalf("query %d: answers %v, want a rotation of %v", i, addrs, all)
			}
		}
		firsts[addrs[0]] = true
	}
	if len(firsts) != 3 {
		t.Fatalf("3 queries started with %d different addresses, want 3", len(firsts))
	}
}

// TestConcurrent serves from several goroutines at once (run it with
// -race): every reply is still a whole rotation of the set.
func TestConcurrent(t *testing.T) {
	h := NewHandler(testTable(), nil, nil)
	all := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for range 200 {
				w := &recorder{}
				h.ServeDNS(w, query("multi.", dns.TypeA))
				if len(w.msgs) != 1 || len(w.msgs[0].Answer) != 3 {
					errs <- fmt.Errorf("reply %v", w.msgs)
					return
				}
				var got []string
				for _, rr := range w.msgs[0].Answer {
					got = append(got, rr.(*dns.A).A.String())
				}
				s := slices.Index(all, got[0])
				if s < 0 || got[1] != all[(s+1)%3] || got[2] != all[(s+2)%3] {
					errs <- fmt.Errorf("answers %v, want a rotation of %v", got, all)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestPTRRoundTrip(t *testing.T) {
	tab := testTable()
	h := NewHandler(tab, nil, nil)
	for a, name := range tab.addrs {
		rev, err := dns.ReverseAddr(a.String())
		if err != nil {
			t.Fatal(err)
		}
		got, _ := serve(t, h, query(rev, dns.TypePTR), true)
		if got.Rcode != dns.RcodeSuccess || !got.Authoritative || len(got.Answer) != 1 {
			t.Fatalf("PTR %s: %v", rev, got)
		}
		ptr, ok := got.Answer[0].(*dns.PTR)
		if !ok || ptr.Hdr.Name != rev || ptr.Hdr.Ttl != TTL {
			t.Fatalf("PTR %s: answer %v", rev, got.Answer[0])
		}
		if ptr.Ptr != name+"." {
			t.Fatalf("PTR %s = %q, want %q", rev, ptr.Ptr, name+".")
		}
		// And the name resolves back to the address.
		qtype := dns.TypeA
		if a.Is6() {
			qtype = dns.TypeAAAA
		}
		back, _ := serve(t, h, query(ptr.Ptr, qtype), false)
		if !slices.Contains(answerAddrs(t, back), a.String()) {
			t.Fatalf("%s %s: answers %v, want %s among them", ptr.Ptr, dns.TypeToString[qtype], back.Answer, a)
		}
	}
}

func TestPTRUppercase(t *testing.T) {
	h := NewHandler(testTable(), nil, nil)
	for _, name := range []string{"3.0.18.172.IN-ADDR.ARPA.", "4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.D.F.Ip6.Arpa."} {
		got, _ := serve(t, h, query(name, dns.TypePTR), false)
		if len(got.Answer) != 1 {
			t.Fatalf("PTR %s: %v", name, got)
		}
	}
}

// TestNotOurs checks the queries the handler must not answer itself: they
// are forwarded, or refused with NXDOMAIN (REFUSED for a class other than
// IN) when there is nothing to forward to.
func TestNotOurs(t *testing.T) {
	classQuery := func(name string, qtype, class uint16) *dns.Msg {
		m := query(name, qtype)
		m.Question[0].Qclass = class
		return m
	}
	for _, tc := range []struct {
		desc    string
		req     *dns.Msg
		noFwdRC int
	}{
		{"unknown name", query("example.com.", dns.TypeA), dns.RcodeNameError},
		{"unknown AAAA", query("nothere.", dns.TypeAAAA), dns.RcodeNameError},
		{"unknown MX", query("example.com.", dns.TypeMX), dns.RcodeNameError},
		{"a known name's prefix", query("we.", dns.TypeA), dns.RcodeNameError},
		{"root", query(".", dns.TypeNS), dns.RcodeNameError},
		{"PTR of an unknown v4 address", query("1.1.1.1.in-addr.arpa.", dns.TypePTR), dns.RcodeNameError},
		{"PTR of an unknown v6 address", query(mustReverse("2001:db8::1"), dns.TypePTR), dns.RcodeNameError},
		{"PTR of a reverse zone", query("18.172.in-addr.arpa.", dns.TypePTR), dns.RcodeNameError},
		{"PTR with a leading zero", query("03.0.18.172.in-addr.arpa.", dns.TypePTR), dns.RcodeNameError},
		{"PTR with five labels", query("3.3.0.18.172.in-addr.arpa.", dns.TypePTR), dns.RcodeNameError},
		{"PTR of a v6 zone", query("d.f.ip6.arpa.", dns.TypePTR), dns.RcodeNameError},
		{"PTR classless delegation", query("3.0/26.18.172.in-addr.arpa.", dns.TypePTR), dns.RcodeNameError},
		{"CHAOS class of a known name", classQuery("web.", dns.TypeA, dns.ClassCHAOS), dns.RcodeRefused},
		{"CHAOS version.bind", classQuery("version.bind.", dns.TypeTXT, dns.ClassCHAOS), dns.RcodeRefused},
		{"class ANY of a known name", classQuery("web.", dns.TypeA, dns.ClassANY), dns.RcodeRefused},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			fwd := &forwardRecorder{}
			h := NewHandler(testTable(), fwd.forward, nil)
			got, _ := serve(t, h, tc.req, false)
			if len(fwd.calls) != 1 || fwd.calls[0] != tc.req {
				t.Fatalf("forward called %d times, want once with the request", len(fwd.calls))
			}
			if got.Rcode != dns.RcodeServerFailure {
				t.Fatalf("reply %v is not the forwarder's", got)
			}

			h = NewHandler(testTable(), nil, nil)
			got, _ = serve(t, h, tc.req, false)
			if got.Rcode != tc.noFwdRC || len(got.Answer) != 0 || got.Authoritative {
				t.Fatalf("without forward: rcode %s aa %v answers %v, want %s, no aa, no answer", dns.RcodeToString[got.Rcode], got.Authoritative, got.Answer, dns.RcodeToString[tc.noFwdRC])
			}
		})
	}
}

func mustReverse(a string) string {
	s, err := dns.ReverseAddr(a)
	if err != nil {
		panic(err)
	}
	return s
}

// TestRejected checks malformed queries get an error reply, never a
// forward.
func TestRejected(t *testing.T) {
	multi := query("web.", dns.TypeA)
	multi.Question = append(multi.Question, dns.Question{Name: "db.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	none := query("web.", dns.TypeA)
	none.Question = nil
	notify := query("web.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	update := query("web.", dns.TypeSOA)
	update.Opcode = dns.OpcodeUpdate
	status := query("example.com.", dns.TypeA)
	status.Opcode = dns.OpcodeStatus
	response := query("web.", dns.TypeA)
	response.Response = true
	badvers := query("web.", dns.TypeA)
	badvers.SetEdns0(1232, false)
	badvers.IsEdns0().SetVersion(1)

	for _, tc := range []struct {
		desc string
		req  *dns.Msg
		rc   int
	}{
		{"two questions", multi, dns.RcodeFormatError},
		{"no question", none, dns.RcodeFormatError},
		{"a response", response, dns.RcodeFormatError},
		{"NOTIFY", notify, dns.RcodeNotImplemented},
		{"UPDATE", update, dns.RcodeNotImplemented},
		{"STATUS", status, dns.RcodeNotImplemented},
		{"EDNS version 1", badvers, dns.RcodeBadVers},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			fwd := &forwardRecorder{}
			h := NewHandler(testTable(), fwd.forward, nil)
			got, packed := serve(t, h, tc.req, false)
			if len(fwd.calls) != 0 {
				t.Fatal("forwarded")
			}
			// Check the rcode as the client sees it (BADVERS is an
			// extended rcode carried partly in the OPT record).
			var wire dns.Msg
			if err := wire.Unpack(packed); err != nil {
				t.Fatal(err)
			}
			if wire.Rcode != tc.rc || len(got.Answer) != 0 || wire.Opcode != tc.req.Opcode {
				t.Fatalf("rcode %s opcode %d answers %v, want %s, opcode %d, no answer", dns.RcodeToString[wire.Rcode], wire.Opcode, got.Answer, dns.RcodeToString[tc.rc], tc.req.Opcode)
			}
		})
	}
}

func TestEDNS(t *testing.T) {
	h := NewHandler(testTable(), nil, nil)
	for _, tc := range []struct {
		clientSize uint16
		do         bool
		want       uint16
	}{
		{1232, true, 1232},
		{4096, false, 4096},
		{65000, false, maxUDPSize},
		{100, false, dns.MinMsgSize},
	} {
		req := query("web.", dns.TypeA)
		req.SetEdns0(tc.clientSize, tc.do)
		_, packed := serve(t, h, req, false)
		var got dns.Msg
		if err := got.Unpack(packed); err != nil {
			t.Fatal(err)
		}
		opt := got.IsEdns0()
		if opt == nil {
			t.Fatalf("client size %d: no OPT in the reply", tc.clientSize)
		}
		if opt.UDPSize() != tc.want || opt.Do() != tc.do || opt.Version() != 0 {
			t.Fatalf("client size %d do %v: reply OPT size %d do %v version %d, want %d %v 0", tc.clientSize, tc.do, opt.UDPSize(), opt.Do(), opt.Version(), tc.want, tc.do)
		}
		if len(got.Answer) != 1 {
			t.Fatalf("answers %v", got.Answer)
		}
	}
}

// TestTruncation checks a reply larger than the client's buffer: over UDP
// it is truncated with TC set and fits, over TCP it is whole.
func TestTruncation(t *testing.T) {
	tab := testTable()
	var v4, v6 []string
	for i := range 100 {
		v4 = append(v4, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))
		v6 = append(v6, fmt.Sprintf("fd00:1::%x", i+1))
	}
	tab.add("big.example-network-with-a-long-name", append(v4, v6...)...)
	h := NewHandler(tab, nil, nil)
	name := "big.example-network-with-a-long-name."

	for _, tc := range []struct {
		desc    string
		qtype   uint16
		edns    uint16 // 0: none
		tcp     bool
		limit   int
		wantAll bool
	}{
		{"A over UDP", dns.TypeA, 0, false, dns.MinMsgSize, false},
		{"AAAA over UDP", dns.TypeAAAA, 0, false, dns.MinMsgSize, false},
		{"AAAA over UDP, EDNS 1232", dns.TypeAAAA, 1232, false, 1232, false},
		{"A over UDP, EDNS 4096", dns.TypeA, 4096, false, 4096, true},
		{"A over TCP", dns.TypeA, 0, true, dns.MaxMsgSize, true},
		{"AAAA over TCP", dns.TypeAAAA, 0, true, dns.MaxMsgSize, true},
		{"ANY over TCP", dns.TypeANY, 0, true, dns.MaxMsgSize, true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			req := query(name, tc.qtype)
			if tc.edns != 0 {
				req.SetEdns0(tc.edns, false)
			}
			_, packed := serve(t, h, req, tc.tcp)
			if len(packed) > tc.limit {
				t.Fatalf("reply of %d bytes, limit %d", len(packed), tc.limit)
			}
			var got dns.Msg
			if err := got.Unpack(packed); err != nil {
				t.Fatal(err)
			}
			want := 100
			if tc.qtype == dns.TypeANY {
				want = 200
			}
			if tc.wantAll {
				if got.Truncated || len(got.Answer) != want {
					t.Fatalf("TC %v, %d answers, want all %d untruncated", got.Truncated, len(got.Answer), want)
				}
			} else if !got.Truncated || len(got.Answer) >= want {
				t.Fatalf("TC %v, %d answers of %d in %d bytes, want TC and fewer", got.Truncated, len(got.Answer), want, len(packed))
			}
			if (tc.edns != 0) != (got.IsEdns0() != nil) {
				t.Fatalf("OPT in the reply %v, in the request %v", got.IsEdns0() != nil, tc.edns != 0)
			}
		})
	}
}

// TestWrongFamilyInTable checks a table entry of the wrong family is skipped
// rather than crashing the handler or answered under the wrong type.
func TestWrongFamilyInTable(t *testing.T) {
	tab := &table{names: map[string][2][]netip.Addr{
		"odd": {
			{netip.MustParseAddr("fd00::1"), netip.MustParseAddr("::ffff:10.0.0.1"), {}},
			{netip.MustParseAddr("10.0.0.2"), {}},
		},
	}}
	h := NewHandler(tab, nil, nil)
	got, _ := serve(t, h, query("odd.", dns.TypeA), false)
	if a := answerAddrs(t, got); join(a) != "10.0.0.1" {
		t.Fatalf("A answers %v, want only 10.0.0.1", a)
	}
	got, _ = serve(t, h, query("odd.", dns.TypeAAAA), false)
	if len(got.Answer) != 0 || got.Rcode != dns.RcodeSuccess {
		t.Fatalf("AAAA: %v, want an empty NOERROR", got)
	}
}

func BenchmarkServeDNSLocalA(b *testing.B) {
	h := NewHandler(testTable(), nil, nil)
	req := query("web.front.", dns.TypeA)
	req.SetEdns0(1232, false)
	w := &benchWriter{}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeDNS(w, req)
	}
	if w.n != b.N || w.last.Rcode != dns.RcodeSuccess || len(w.last.Answer) != 1 {
		b.Fatalf("%d replies for %d queries, last %v", w.n, b.N, w.last)
	}
}

// benchWriter packs each reply into a reused buffer, as the server does.
type benchWriter struct {
	recorder
	buf  []byte
	n    int
	last *dns.Msg
}

func (w *benchWriter) WriteMsg(m *dns.Msg) error {
	var err error
	w.buf, err = m.PackBuffer(w.buf[:cap(w.buf)])
	w.n++
	w.last = m
	return err
}
