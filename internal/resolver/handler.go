package resolver

import (
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Names is a sandbox's local name table. Names are given lowercase and
// without the trailing dot. Implementations must be safe for concurrent use:
// the handler calls them from every query's goroutine.
type Names interface {
	// LookupName returns the addresses of name by family. known is true
	// when the name is the sandbox's, even if it has no address of a
	// family (or none at all).
	LookupName(name string) (v4, v6 []netip.Addr, known bool)
	// LookupAddr returns the name of address a, for PTR queries.
	LookupAddr(a netip.Addr) (name string, known bool)
}

// TTL is the time to live, in seconds, of the records the handler answers
// itself: docker's embedded server uses 600 too.
const TTL = 600

// maxUDPSize caps the UDP payload size the handler advertises and fills,
// whatever larger size a client offers.
const maxUDPSize = 4096

// Handler answers queries for a sandbox's own names and forwards the rest.
// It is a [dns.Handler] and writes exactly one reply per query, unless it
// hands the query to the forward function, which then owns the reply.
//
//   - A query whose opcode is not QUERY gets NOTIMP; one without exactly
//     one question, or that is itself a response, gets FORMERR; an EDNS
//     version other than 0 gets BADVERS.
//   - A, AAAA (and ANY) of a known name get its addresses of that family,
//     authoritative, TTL [TTL], rotated from one query to the next; a
//     known name without an address of the family, and any other type
//     of a known name, get an empty NOERROR answer and are not forwarded.
//   - PTR of a full in-addr.arpa or ip6.arpa name of a known address gets
//     that address's name.
//   - Everything else is not the sandbox's to answer: a class other than
//     IN, an unknown name, a PTR of an unknown address or of a malformed
//     reverse name. It goes to forward; when forward is nil, an IN query
//     gets NXDOMAIN and any other class REFUSED.
//
// Over UDP a reply larger than the client's buffer (512 bytes, or the EDNS0
// size capped at 4096) is truncated with TC set so the client retries
// over TCP.
type Handler struct {
	names   Names
	forward func(w dns.ResponseWriter, r *dns.Msg)
	// fwd is the Forwarder behind forward, when SetForwarder gave it.
	fwd    *Forwarder
	logger *slog.Logger
	stats  *Stats
	gate   func() bool

	// rotation advances once per answer of several records, so that
	// successive queries start at different addresses.
	rotation atomic.Uint32
}

var _ dns.Handler = (*Handler)(nil)

// NewHandler returns a handler answering from names. forward, when not nil,
// is given the queries that are not the sandbox's to answer and must write
// their reply; a nil forward answers them NXDOMAIN (class IN) or REFUSED.
// A nil logger discards.
func NewHandler(names Names, forward func(w dns.ResponseWriter, r *dns.Msg), logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{names: names, forward: forward, logger: logger}
}

// SetStats makes the handler count in s: Local (and LocalLatency) for the
// queries it answers itself, Malformed for those it answers FORMERR,
// NOTIMP or BADVERS. Call it before serving.
func (h *Handler) SetStats(s *Stats) { h.stats = s }

// SetForwarder makes f the handler's forward function, as NewHandler's
// forward argument f.Forward would, and lets the server hand f the UDP
// queries to forward in their wire form, without unpacking them. Call it
// before serving.
func (h *Handler) SetForwarder(f *Forwarder) {
	h.forward, h.fwd = f.Forward, f
}

// SetForwardGate makes the handler ask gate, for each query that is not
// the sandbox's to answer, whether it may be forwarded; when gate says no
// the query is answered as if there were no forward function. Call it
// before serving.
func (h *Handler) SetForwardGate(gate func() bool) { h.gate = gate }

// ServeDNS answers one query; see [Handler] for what it answers.
func (h *Handler) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	var start time.Time
	if h.stats != nil {
		start = time.Now()
	}
	reply := new(dns.Msg)
	reply.SetReply(r)
	// RecursionAvailable: the sandbox's clients may ask anything; what the
	// handler does not answer it forwards.
	reply.RecursionAvailable = true

	opt := r.IsEdns0()
	size := dns.MinMsgSize
	if opt != nil {
		size = max(dns.MinMsgSize, min(int(opt.UDPSize()), maxUDPSize))
		reply.SetEdns0(uint16(size), opt.Do())
	}

	malformed := true
	switch {
	case r.Response:
		reply.Rcode = dns.RcodeFormatError
	case r.Opcode != dns.OpcodeQuery:
		reply.Rcode = dns.RcodeNotImplemented
	case len(r.Question) != 1:
		reply.Rcode = dns.RcodeFormatError
	case opt != nil && opt.Version() != 0:
		reply.Rcode = dns.RcodeBadVers
	default:
		malformed = false
		if !h.answer(reply, r.Question[0]) {
			if h.forward != nil && (h.gate == nil || h.gate()) {
				h.forward(w, r)
				return
			}
			reply.Rcode = dns.RcodeNameError
			if r.Question[0].Qclass != dns.ClassINET {
				reply.Rcode = dns.RcodeRefused
			}
		}
	}
	h.write(w, reply, size)
	if h.stats != nil {
		if malformed {
			h.stats.Malformed.Add(1)
		} else {
			h.stats.Local.Add(1)
			h.stats.LocalLatency.Observe(time.Since(start))
		}
	}
}

// answer fills reply for q from the name table; it returns false when q is
// not the sandbox's to answer.
func (h *Handler) answer(reply *dns.Msg, q dns.Question) bool {
	if q.Qclass != dns.ClassINET {
		return false
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	if q.Qtype == dns.TypePTR {
		if a, ok := parseReverse(name); ok {
			target, known := h.names.LookupAddr(a)
			if !known {
				return false
			}
			reply.Authoritative = true
			reply.Answer = []dns.RR{&dns.PTR{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: TTL},
				Ptr: dns.Fqdn(target),
			}}
			return true
		}
	}
	v4, v6, known := h.names.LookupName(name)
	if !known {
		return false
	}
	reply.Authoritative = true
	switch q.Qtype {
	case dns.TypeA:
		reply.Answer = h.records(q.Name, v4, nil)
	case dns.TypeAAAA:
		reply.Answer = h.records(q.Name, nil, v6)
	case dns.TypeANY:
		reply.Answer = h.records(q.Name, v4, v6)
	}
	return true
}

// records returns the A records of v4 and the AAAA records of v6, each
// family rotated by the same per-query offset.
func (h *Handler) records(owner string, v4, v6 []netip.Addr) []dns.RR {
	n := len(v4) + len(v6)
	if n == 0 {
		return nil
	}
	off4, off6 := h.rotate(v4, v6)
	rrs := make([]dns.RR, 0, n)
	// An address of the wrong family in the table is skipped rather than
	// answered under the wrong type (As4 would panic on it).
	for i := range v4 {
		a := v4[(off4+i)%len(v4)].Unmap()
		if !a.Is4() {
			continue
		}
		b := a.As4()
		rrs = append(rrs, &dns.A{
			Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: TTL},
			A:   b[:],
		})
	}
	for i := range v6 {
		a := v6[(off6+i)%len(v6)]
		if !a.Is6() {
			continue
		}
		b := a.As16()
		rrs = append(rrs, &dns.AAAA{
			Hdr:  dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: TTL},
			AAAA: b[:],
		})
	}
	return rrs
}

// write truncates reply to what the transport carries (the client's UDP
// size over UDP, 64 KiB over TCP) and writes it.
func (h *Handler) write(w dns.ResponseWriter, reply *dns.Msg, udpSize int) {
	size := dns.MaxMsgSize
	// A writer that does not say its transport gets the UDP limit, as in
	// the forwarder: a needless TC costs a retry, an oversized datagram
	// the answer.
	if !isTCP(w) {
		size = udpSize
	}
	reply.Truncate(size)
	if err := w.WriteMsg(reply); err != nil {
		h.logger.Debug("resolver: writing a reply", "error", err, "client", w.RemoteAddr())
	}
}
