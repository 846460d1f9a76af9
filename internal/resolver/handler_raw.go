package resolver

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// rawHandler is a dns.Handler that answers some UDP queries from their
// wire form, sparing the unpacking of the query into a dns.Msg and the
// packing of the reply: for the local answers that make most of a
// sandbox's queries, these were a sixth of the resolver's CPU. The server
// gives it each UDP query first.
type rawHandler interface {
	// serveRaw answers the UDP query q, appending the reply to out[:0].
	// It returns a nil reply when it does not answer: then forward says
	// whether q goes to forwardRaw, else it needs ServeDNS. It keeps
	// neither q nor out.
	serveRaw(q, out []byte) (reply []byte, forward bool)
	// forwardRaw forwards the UDP query q that serveRaw said to, and
	// writes the reply to w later, as a forward function does. It copies
	// q before it returns.
	forwardRaw(w dns.ResponseWriter, q []byte)
}

var _ rawHandler = (*Handler)(nil)

// Header bits and sizes of the wire form.
const (
	flagQR     = 1 << 15
	flagOpcode = 0xf << 11
	flagAA     = 1 << 10
	flagRD     = 1 << 8
	flagRA     = 1 << 7
	flagCD     = 1 << 4
	// optDO is the DO bit in an OPT record's TTL field.
	optDO = 1 << 15
	// maxNameLen is the longest name in wire form.
	maxNameLen = 255
	// optLen is the length of an OPT record without options.
	optLen = 11
)

// serveRaw answers, with the very bytes ServeDNS would write over UDP
// (TestServeRawMatchesServeDNS), the queries that are the common case: a
// QUERY with one question, of class IN and any type but PTR, whose labels
// hold only letters, digits, '-' and '_'; nothing in the answer or
// authority sections, at most an EDNS0 OPT of version 0 without options
// in the additional one, nothing after; for one of the sandbox's names,
// with a reply that fits the client's UDP size. Such a query for a name
// that is not the sandbox's goes to forwardRaw when the handler has a
// Forwarder (SetForwarder) and may forward. Anything else, it leaves to
// ServeDNS.
func (h *Handler) serveRaw(q, out []byte) (reply []byte, forward bool) {
	if len(q) < headerLen {
		return nil, false
	}
	flags := binary.BigEndian.Uint16(q[2:])
	if flags&(flagQR|flagOpcode) != 0 || binary.BigEndian.Uint16(q[4:]) != 1 ||
		binary.BigEndian.Uint16(q[6:]) != 0 || binary.BigEndian.Uint16(q[8:]) != 0 {
		return nil, false
	}
	arcount := binary.BigEndian.Uint16(q[10:])
	if arcount > 1 {
		return nil, false
	}

	// The question's name, lowercased into key as Handler.answer has it:
	// labels joined with dots, no trailing dot.
	var key [maxNameLen]byte
	n := 0
	off := headerLen
	for {
		if off >= len(q) {
			return nil, false
		}
		l := int(q[off])
		off++
		if l == 0 {
			break
		}
		// A compression pointer (or reserved label type) says l > 63.
		if l > 63 || off+l > len(q) || n+1+l > len(key) {
			return nil, false
		}
		if n > 0 {
			key[n] = '.'
			n++
		}
		for _, c := range q[off : off+l] {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			default:
				// miekg/dns would escape it in the name's text.
				return nil, false
			}
			key[n] = c
			n++
		}
		off += l
	}
	if n == 0 || off+4 > len(q) {
		return nil, false
	}
	question := q[headerLen : off+4]
	qtype := binary.BigEndian.Uint16(q[off:])
	if qtype == dns.TypePTR || binary.BigEndian.Uint16(q[off+2:]) != dns.ClassINET {
		return nil, false
	}
	off += 4

	size, opt, do := dns.MinMsgSize, false, false
	if arcount == 1 {
		// OPT: root name, type, UDP size, extended rcode, version, flags,
		// options' length (options are left to miekg/dns, which rejects
		// some malformed ones).
		if off+optLen != len(q) || q[off] != 0 || binary.BigEndian.Uint16(q[off+1:]) != dns.TypeOPT || q[off+6] != 0 ||
			binary.BigEndian.Uint16(q[off+9:]) != 0 {
			return nil, false
		}
		size = max(dns.MinMsgSize, min(int(binary.BigEndian.Uint16(q[off+3:])), maxUDPSize))
		do = binary.BigEndian.Uint16(q[off+7:])&optDO != 0
		off += optLen
		opt = true
	}
	if off != len(q) {
		return nil, false
	}

	v4, v6, known := h.names.LookupName(string(key[:n]))
	if !known {
		return nil, h.fwd != nil && (h.gate == nil || h.gate())
	}
	// The latency counted is that of the answer (the parse before is a
	// few tens of nanoseconds): no clock read for forwarded queries.
	var start time.Time
	if h.stats != nil {
		start = time.Now()
	}
	switch qtype {
	case dns.TypeA:
		v6 = nil
	case dns.TypeAAAA:
		v4 = nil
	case dns.TypeANY:
	default:
		v4, v6 = nil, nil
	}
	off4, off6 := h.rotate(v4, v6)

	out = append(out[:0], q[0], q[1], 0, 0, 0, 1, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(out[2:], flagQR|flagAA|flagRA|flags&(flagRD|flagCD))
	out = append(out, question...)
	answers := 0
	for i := range v4 {
		a := v4[(off4+i)%len(v4)].Unmap()
		if !a.Is4() {
			continue
		}
		b := a.As4()
		out = appendRecordHeader(out, dns.TypeA, len(b))
		out = append(out, b[:]...)
		answers++
	}
	for i := range v6 {
		a := v6[(off6+i)%len(v6)]
		if !a.Is6() {
			continue
		}
		b := a.As16()
		out = appendRecordHeader(out, dns.TypeAAAA, len(b))
		out = append(out, b[:]...)
		answers++
	}
	binary.BigEndian.PutUint16(out[6:], uint16(answers))
	if opt {
		var ttl uint32
		if do {
			ttl = optDO
		}
		out = append(out, 0, 0, byte(dns.TypeOPT), 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint16(out[len(out)-8:], uint16(size))
		binary.BigEndian.PutUint32(out[len(out)-6:], ttl)
		binary.BigEndian.PutUint16(out[10:], 1)
	}
	if len(out) > size {
		// ServeDNS truncates it.
		return nil, false
	}
	if h.stats != nil {
		h.stats.Local.Add(1)
		h.stats.LocalLatency.Observe(time.Since(start))
	}
	return out, false
}

// appendRecordHeader appends the header of an answer record of type typ
// whose owner is the question's name (a compression pointer to it, as
// miekg/dns packs it), and the length of its data.
func appendRecordHeader(out []byte, typ uint16, rdlen int) []byte {
	const questionName = 0xc000 | headerLen
	out = binary.BigEndian.AppendUint16(out, questionName)
	out = binary.BigEndian.AppendUint16(out, typ)
	out = binary.BigEndian.AppendUint16(out, dns.ClassINET)
	out = binary.BigEndian.AppendUint32(out, TTL)
	return binary.BigEndian.AppendUint16(out, uint16(rdlen))
}

// rotate returns where the answer of v4 and v6 starts in each, advancing
// the rotation when either has several addresses.
func (h *Handler) rotate(v4, v6 []netip.Addr) (off4, off6 int) {
	var start uint32
	if len(v4) > 1 || len(v6) > 1 {
		start = h.rotation.Add(1) - 1
	}
	return int(start % uint32(max(len(v4), 1))), int(start % uint32(max(len(v6), 1)))
}

// forwardRaw hands q to the Forwarder.
func (h *Handler) forwardRaw(w dns.ResponseWriter, q []byte) { h.fwd.forwardRaw(w, q) }
