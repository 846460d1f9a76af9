package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Upstream is one server queries are forwarded to.
type Upstream struct {
	// Addr is the server.
	Addr netip.AddrPort
	// Key identifies the upstream for socket reuse ("host/127.0.0.53:53",
	// "sandbox/10.0.0.2:53"): upstreams with one Key and one Addr share
	// sockets. It names where the sockets are dialled from; an empty Key
	// is a key like any other.
	Key string
	// Dial opens a socket to Addr, network "udp" or "tcp"; it decides the
	// network namespace the socket lives in. nil: a net.Dialer in the
	// caller's namespace. Of the upstreams sharing a Key, the Dial of the
	// query that needs a new socket is used.
	Dial func(ctx context.Context, network string, addr netip.AddrPort) (net.Conn, error)
}

// ForwarderConfig configures a Forwarder.
type ForwarderConfig struct {
	// Upstreams returns the servers to forward to, in order. It is called
	// once per forwarded query and must be cheap (return a slice it keeps)
	// and safe for concurrent use. At most the first [MaxUpstreams] are
	// used; none (or a nil func) makes every forwarded query SERVFAIL,
	// counted as an upstream failure.
	Upstreams func() []Upstream
	// Timeout is the client's total timeout for one try (resolv.conf
	// `timeout:`); 0 means 5 s. The upstreams share nine tenths of it, so
	// that the answer reaches the client before it gives up: each upstream
	// gets an equal share of what is left when its turn comes.
	Timeout time.Duration
	// MaxConcurrent bounds the forwarded queries in flight; 0 means 1024.
	// A query beyond it is answered REFUSED at once and counted in
	// Stats.Refused.
	MaxConcurrent int
	// Stats receives the forwarder's counters; nil keeps them private.
	// Forwarded counts each query sent upstream once, however many
	// upstreams it was tried on; UpstreamFailures counts each failed
	// attempt (and a query with no upstream to try); Refused the queries
	// beyond MaxConcurrent; ForwardedLatency the time from Forward to the
	// reply written, for every reply the forwarder writes after going
	// upstream (SERVFAIL included).
	Stats *Stats
	// Logger receives rate-limited warnings about failing upstreams; nil
	// discards.
	Logger *slog.Logger
}

// MaxUpstreams is the number of upstreams a query is tried on at most, as
// glibc uses at most three nameservers.
const MaxUpstreams = 3

const (
	defaultTimeout       = 5 * time.Second
	defaultMaxConcurrent = 1024
	// failureLogInterval is how often failures of one upstream are logged
	// at most; the failures in between are counted in the next message.
	failureLogInterval = 10 * time.Second
)

// closedBit, set in Forwarder.state, marks a closed forwarder; the bits
// below it count the queries in flight.
const closedBit = int64(1) << 62

// Forwarder sends queries that are not the sandbox's to answer to its
// upstream servers and relays their answers; its Forward method is the
// Handler's forward function.
//
// Upstreams are tried in order. The next one is tried when one does not
// answer within its share of the timeout, fails to transport the query
// (an ICMP port unreachable fails it at once), answers SERVFAIL or REFUSED,
// or, over TCP, replies with another ID or question. (Over UDP such a
// reply is dropped as spoofed and the wait goes on.) Any other answer,
// NXDOMAIN included, is relayed. When all fail, the last SERVFAIL or
// REFUSED answer is relayed if there was one, else SERVFAIL.
//
// A client's UDP query goes upstream over UDP, its TCP query over TCP.
// A UDP reply with TC set is relayed with TC, so the client retries over
// TCP. The client's EDNS0 OPT is forwarded with its UDP size capped at
// 4096, and a reply larger than the client's UDP size (512 without EDNS0)
// is truncated with TC set.
//
// Sockets are reused: per upstream a connected UDP socket, with a reader
// dispatching replies by message ID, replaced after 10,000 queries or
// 10 s so that source ports change, and closed after 30 s without a
// query; and a few idle TCP connections, each kept for 10 s at most.
// Every query sent upstream gets a fresh random ID, and a UDP reply is
// taken only if its ID is in flight on its socket and its question is the
// query's, so that an off-path spoofer must guess both the ID and the
// source port.
//
// A UDP client's query takes no goroutine of its own: Forward sends it
// upstream from the caller's goroutine (the server's read loop) and
// returns; the reader of the upstream socket takes the reply, writes it
// to the client and so ends the query, or sends it to the next upstream.
// The same reader times out the queries on its socket: the socket's read
// deadline is the earliest of theirs. A TCP client's query runs on a
// worker goroutine that waits for each upstream's reply in turn.
//
// After Close, Forward answers REFUSED at once.
type Forwarder struct {
	// ctx is cancelled by Close; dials are made under it.
	ctx       context.Context
	cancel    context.CancelFunc
	upstreams func() []Upstream
	// budget is the upstreams' share of the client's timeout, in
	// nanoseconds (SetTimeout).
	budget        atomic.Int64
	maxConcurrent int64
	stats         *Stats
	logger        *slog.Logger
	limiter       logLimiter[poolKey]

	// udpRotateQueries, udpRotateAge and udpIdle are the UDP pool's
	// parameters, fields so that tests can change them.
	udpRotateQueries int
	udpRotateAge     time.Duration
	udpIdle          time.Duration
	// tcpIdle is the number of idle TCP connections kept per upstream,
	// tcpIdleAge how long each is kept.
	tcpIdle    int
	tcpIdleAge time.Duration
	// newID returns the ID of a UDP query sent upstream: randomID, or in
	// tests one that repeats.
	newID func() uint16

	// state counts the queries in flight and carries closedBit.
	state atomic.Int64
	// drained is closed when the forwarder is closed and no query is in
	// flight; drainOnce guards closing it.
	drained   chan struct{}
	drainOnce sync.Once
	// readers counts the UDP sockets' reader goroutines.
	readers sync.WaitGroup
	// workers run the TCP clients' queries.
	workers workers

	mu sync.RWMutex
	// pools are the upstream sockets by upstream. Flush replaces the map.
	pools map[poolKey]*upstreamPool
}

// poolKey identifies the sockets of an upstream.
type poolKey struct {
	key  string
	addr netip.AddrPort
}

// NewForwarder returns a forwarder configured by cfg.
func NewForwarder(cfg ForwarderConfig) *Forwarder {
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{
		ctx:              ctx,
		cancel:           cancel,
		upstreams:        cfg.Upstreams,
		maxConcurrent:    int64(cfg.MaxConcurrent),
		stats:            cfg.Stats,
		logger:           cfg.Logger,
		limiter:          logLimiter[poolKey]{interval: failureLogInterval},
		udpRotateQueries: udpRotateQueries,
		udpRotateAge:     udpRotateAge,
		udpIdle:          udpIdle,
		tcpIdle:          tcpIdle,
		tcpIdleAge:       tcpIdleAge,
		newID:            randomID,
		drained:          make(chan struct{}),
		pools:            map[poolKey]*upstreamPool{},
	}
	f.workers.init(f.run)
	f.SetTimeout(cfg.Timeout)
	if f.maxConcurrent <= 0 {
		f.maxConcurrent = defaultMaxConcurrent
	}
	if f.stats == nil {
		f.stats = new(Stats)
	}
	if f.logger == nil {
		f.logger = slog.New(slog.DiscardHandler)
	}
	return f
}

// SetTimeout changes the client's timeout for one try (ForwarderConfig's
// Timeout; 0 means 5 s), for the queries forwarded from now on: the
// client's resolv.conf was written again with another `timeout:`.
func (f *Forwarder) SetTimeout(d time.Duration) {
	if d <= 0 {
		d = defaultTimeout
	}
	f.budget.Store(int64(d - d/10))
}

// Forward forwards r and writes the reply to w, exactly once. It does not
// wait for the upstream: the reply is written later from another
// goroutine (unless Forward answers at once, as when the forwarder is
// closed or has too many queries in flight), and w and r must stay valid
// until then. w.LocalAddr().Network() gives the client's transport (a
// writer without a local address counts as UDP).
func (f *Forwarder) Forward(w dns.ResponseWriter, r *dns.Msg) {
	start := time.Now()
	if len(r.Question) != 1 {
		writeRcode(w, r, dns.RcodeFormatError)
		return
	}
	if !f.admit(w, func() *dns.Msg { return r }, start) {
		return
	}
	q := queryPool.Get().(*fwdQuery)
	q.w, q.r, q.id, q.start = w, r, r.Id, start
	q.tcp = isTCP(w)
	if q.tcp {
		f.workers.start(q)
		return
	}
	if f.prepare(q) {
		f.next(q)
	}
}

// admit counts one more query in flight, or answers r at once (REFUSED)
// when the forwarder is closed or has too many.
func (f *Forwarder) admit(w dns.ResponseWriter, r func() *dns.Msg, now time.Time) bool {
	n := f.state.Add(1)
	switch {
	case n&closedBit != 0:
		f.release()
		writeRcode(w, r(), dns.RcodeRefused)
		return false
	case n > f.maxConcurrent:
		f.release()
		f.stats.Refused.Add(1)
		if ok, suppressed := f.limiter.allow(poolKey{key: "\x00limit"}, now); ok {
			f.logger.Warn("resolver: too many forwarded queries in flight, refusing",
				"limit", f.maxConcurrent, "suppressed", suppressed)
		}
		writeRcode(w, r(), dns.RcodeRefused)
		return false
	}
	return true
}

// forwardRaw is Forward for a UDP client's query in wire form, msg, which
// Handler.serveRaw found to be a QUERY with one question whose name is
// not compressed, and at most an OPT without options after it. It copies
// msg before it returns; the reply goes to w as Forward's does.
func (f *Forwarder) forwardRaw(w dns.ResponseWriter, msg []byte) {
	start := time.Now()
	qend := questionEnd(msg)
	opt := -1
	if qend > 0 && binary.BigEndian.Uint16(msg[10:]) == 1 && len(msg) == qend+optLen &&
		msg[qend] == 0 && binary.BigEndian.Uint16(msg[qend+1:]) == dns.TypeOPT {
		opt = qend
	}
	if qend < 0 || (opt < 0 && len(msg) != qend) {
		// Not what serveRaw lets through: the long way.
		r := new(dns.Msg)
		if err := r.Unpack(msg); err != nil {
			f.logger.Debug("resolver: forwarding a query that does not unpack", "error", err)
			return
		}
		f.Forward(w, r)
		return
	}
	unpack := func() *dns.Msg {
		r := new(dns.Msg)
		_ = r.Unpack(msg)
		return r
	}
	if !f.admit(w, unpack, start) {
		return
	}
	q := queryPool.Get().(*fwdQuery)
	q.w, q.r, q.id, q.start = w, nil, binary.BigEndian.Uint16(msg), start
	q.buf = append(q.buf[:0], 0, 0)
	q.buf = append(q.buf, msg...)
	binary.BigEndian.PutUint16(q.buf, uint16(len(msg)))
	q.qend = qend
	q.size = dns.MinMsgSize
	if opt >= 0 {
		// The client's size, and at most maxUDPSize upstream.
		class := q.msg()[opt+3:]
		size := int(binary.BigEndian.Uint16(class))
		q.size = max(dns.MinMsgSize, min(size, maxUDPSize))
		if size > maxUDPSize {
			binary.BigEndian.PutUint16(class, maxUDPSize)
		}
	}
	if f.prepareUpstreams(q) {
		f.next(q)
	}
}

// release ends one query in flight.
func (f *Forwarder) release() {
	if f.state.Add(-1) == closedBit {
		f.drainOnce.Do(func() { close(f.drained) })
	}
}

// Flush closes the cached upstream sockets. A query waiting on one is sent
// again on a new socket to the same upstream, within its share of the
// timeout; later queries dial new sockets.
func (f *Forwarder) Flush() {
	f.mu.Lock()
	pools := f.pools
	if pools != nil { // nil once closed
		f.pools = map[poolKey]*upstreamPool{}
	}
	f.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
}

// Close flushes the upstream sockets and waits for the queries in flight to
// be answered (those waiting on a flushed socket fail at once, as no new
// socket is dialled), and for the forwarder's goroutines to exit. Forward
// answers REFUSED from then on.
func (f *Forwarder) Close() {
	f.cancel()
	f.mu.Lock()
	old := f.state.Or(closedBit)
	pools := f.pools
	f.pools = nil
	f.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
	if old&^closedBit == 0 {
		f.drainOnce.Do(func() { close(f.drained) })
	}
	<-f.drained
	f.workers.stop()
	f.readers.Wait()
}

// errClosed fails attempts on a closed forwarder.
var errClosed = errors.New("forwarder closed")

// pool returns the sockets of u, making them the first time.
func (f *Forwarder) pool(u *Upstream) (*upstreamPool, error) {
	k := poolKey{key: u.Key, addr: u.Addr}
	f.mu.RLock()
	p := f.pools[k]
	f.mu.RUnlock()
	if p != nil {
		return p, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pools == nil {
		return nil, errClosed
	}
	if p = f.pools[k]; p == nil {
		p = newUpstreamPool(f)
		f.pools[k] = p
	}
	return p, nil
}

// prepare packs q's query, capping its EDNS0 size, and takes the
// upstreams it goes to. When there is nothing to send or nobody to send
// it to, it answers SERVFAIL, which ends q, and returns false.
func (f *Forwarder) prepare(q *fwdQuery) bool {
	r := q.r
	q.size = dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		q.size = max(dns.MinMsgSize, min(int(opt.UDPSize()), maxUDPSize))
		if opt.UDPSize() > maxUDPSize {
			opt.SetUDPSize(maxUDPSize)
		}
	}
	if err := q.pack(); err != nil {
		f.logger.Debug("resolver: packing a query to forward", "error", err, "question", r.Question[0].String())
		f.finish(q, dns.RcodeServerFailure)
		return false
	}
	return f.prepareUpstreams(q)
}

// prepareUpstreams takes the upstreams q goes to; when there are none, it
// answers SERVFAIL, which ends q, and returns false.
func (f *Forwarder) prepareUpstreams(q *fwdQuery) bool {
	if f.upstreams != nil {
		q.ups = f.upstreams()
	}
	q.n = min(len(q.ups), MaxUpstreams)
	if q.n == 0 {
		f.stats.UpstreamFailures.Add(1)
		if ok, suppressed := f.limiter.allow(poolKey{key: "\x00none"}, q.start); ok {
			f.logger.Warn("resolver: no upstream server to forward to", "suppressed", suppressed)
		}
		f.finish(q, dns.RcodeServerFailure)
		return false
	}
	f.stats.Forwarded.Add(1)
	q.end = q.start.Add(time.Duration(f.budget.Load()))
	return true
}

// deadline returns the end of the share of q's timeout that its current
// upstream gets: an equal share of what is left.
func (q *fwdQuery) deadline(now time.Time) time.Time {
	return now.Add(q.end.Sub(now) / time.Duration(q.n-q.i))
}

// run forwards a TCP client's query, waiting for each upstream in turn,
// and writes its reply.
func (f *Forwarder) run(q *fwdQuery) {
	if !f.prepare(q) {
		return
	}
	for ; q.i < q.n; q.i++ {
		u := &q.ups[q.i]
		now := time.Now()
		err := f.tryTCP(q, u, q.deadline(now))
		if err == nil {
			rcode := int(q.reply[3] & 0xf)
			if rcode != dns.RcodeServerFailure && rcode != dns.RcodeRefused {
				f.relay(q, q.reply, false)
				return
			}
			// Keep this answer in case every upstream fails.
			q.failed, q.reply = q.reply, q.failed
			q.haveFailed = true
			err = rcodeError(rcode)
		}
		if errors.Is(err, errClosed) {
			break // not the upstream's failure
		}
		f.upstreamFailed(u, err, now)
	}
	f.giveUp(q)
}

// tryTCP sends q to u over TCP and waits for its reply until deadline. A
// connection that Flush closed under the query is replaced once.
func (f *Forwarder) tryTCP(q *fwdQuery, u *Upstream, deadline time.Time) error {
	for retried := false; ; retried = true {
		p, err := f.pool(u)
		if err != nil {
			return err
		}
		err = p.tcp.exchange(q, u, deadline)
		if !errors.Is(err, errSocketClosed) || retried || !time.Now().Before(deadline) {
			return err
		}
	}
}

// next sends a UDP client's query to its upstreams from q.i on, until one
// takes it; the reader of that upstream's socket then owns q, and goes on
// with answered or failed. When no upstream is left, next answers.
func (f *Forwarder) next(q *fwdQuery) {
	for ; q.i < q.n; q.i++ {
		u := &q.ups[q.i]
		now := q.start // the first upstream's turn comes at once
		if q.i > 0 {
			now = time.Now()
		}
		q.until = q.deadline(now)
		q.resent = false
		sent, err := f.sendUDP(q, u)
		if sent {
			return
		}
		if errors.Is(err, errClosed) {
			break // not the upstream's failure
		}
		f.upstreamFailed(u, err, now)
	}
	f.giveUp(q)
}

// sendUDP sends q to u over UDP. sent is true when q is in flight, owned
// by a socket's reader; else err says why u failed. A socket that Flush
// closed is replaced once per upstream.
func (f *Forwarder) sendUDP(q *fwdQuery, u *Upstream) (sent bool, err error) {
	for {
		p, err := f.pool(u)
		if err != nil {
			return false, err
		}
		sent, err := p.udp.send(q, u)
		if sent || !errors.Is(err, errSocketClosed) || q.resent || !time.Now().Before(q.until) {
			return sent, err
		}
		q.resent = true
	}
}

// answered goes on with a UDP client's query that reply answers; the
// caller took q from its socket. reply is the caller's and may be changed;
// cut says it was longer than the buffer it was read into.
func (f *Forwarder) answered(q *fwdQuery, reply []byte, cut bool) {
	rcode := int(reply[3] & 0xf)
	if rcode != dns.RcodeServerFailure && rcode != dns.RcodeRefused {
		f.relay(q, reply, cut)
		return
	}
	// Keep this answer in case every upstream fails.
	q.failed = append(q.failed[:0], reply...)
	q.haveFailed = true
	f.upstreamFailed(&q.ups[q.i], rcodeError(rcode), time.Now())
	q.i++
	f.next(q)
}

// failed goes on with a UDP client's query whose attempt failed with err;
// the caller took q from its socket.
func (f *Forwarder) failed(q *fwdQuery, err error) {
	u := &q.ups[q.i]
	if errors.Is(err, errSocketClosed) && !q.resent && time.Now().Before(q.until) {
		// Flushed under the query: send it again on a new socket.
		q.resent = true
		var sent bool
		if sent, err = f.sendUDP(q, u); sent {
			return
		}
	}
	if errors.Is(err, errClosed) {
		f.giveUp(q)
		return
	}
	f.upstreamFailed(u, err, time.Now())
	q.i++
	f.next(q)
}

// giveUp answers a query every upstream failed: with the last SERVFAIL or
// REFUSED answer if there was one, else SERVFAIL.
func (f *Forwarder) giveUp(q *fwdQuery) {
	if q.haveFailed {
		f.relay(q, q.failed, false)
		return
	}
	f.finish(q, dns.RcodeServerFailure)
}

// upstreamFailed counts a failed attempt and logs it, at most once per
// upstream per failureLogInterval.
func (f *Forwarder) upstreamFailed(u *Upstream, err error, now time.Time) {
	f.stats.UpstreamFailures.Add(1)
	if ok, suppressed := f.limiter.allow(poolKey{key: u.Key, addr: u.Addr}, now); ok {
		f.logger.Warn("resolver: upstream server failed", "upstream", u.Addr, "key", u.Key,
			"error", err, "suppressed", suppressed)
	}
}

// relay writes an upstream's reply to the client under the client's ID,
// truncated to what the client's transport carries, and ends q. reply is
// changed. cut says reply is only the start of the upstream's answer.
func (f *Forwarder) relay(q *fwdQuery, reply []byte, cut bool) {
	binary.BigEndian.PutUint16(reply, q.id)
	limit := dns.MaxMsgSize
	if !q.tcp {
		limit = q.size
	}
	var err error
	if len(reply) <= limit && !cut {
		_, err = q.w.Write(reply)
	} else {
		m := new(dns.Msg)
		if cut || m.Unpack(reply) != nil {
			// Too large and unreadable (or cut short): say so with TC,
			// the client retries over TCP.
			m = new(dns.Msg)
			m.SetReply(q.request())
			m.Rcode = int(reply[3] & 0xf)
			m.RecursionAvailable = true
			m.Truncated = true
		}
		m.Truncate(limit)
		err = q.w.WriteMsg(m)
	}
	f.written(q, err)
}

// finish writes a reply of its own with rcode and ends q.
func (f *Forwarder) finish(q *fwdQuery, rcode int) {
	f.written(q, writeRcode(q.w, q.request(), rcode))
}

// written ends q, whose reply was written with err.
func (f *Forwarder) written(q *fwdQuery, err error) {
	if err != nil {
		f.logger.Debug("resolver: writing a forwarded reply", "error", err, "client", q.w.RemoteAddr())
	} else {
		f.stats.ForwardedLatency.Observe(time.Since(q.start))
	}
	q.recycle()
	f.release()
}

// writeRcode answers r with rcode and nothing else.
func writeRcode(w dns.ResponseWriter, r *dns.Msg, rcode int) error {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	m.RecursionAvailable = true
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(uint16(max(dns.MinMsgSize, min(int(opt.UDPSize()), maxUDPSize))), opt.Do())
	}
	return w.WriteMsg(m)
}

// isTCP tells whether w is a TCP client's, whose replies may take 64 KiB;
// any other writer, one that does not say included, is sized as UDP (by
// the Handler too).
func isTCP(w dns.ResponseWriter) bool {
	la := w.LocalAddr()
	return la != nil && strings.HasPrefix(la.Network(), "tcp")
}

// rcodeError is an upstream's failure answer.
type rcodeError int

func (e rcodeError) Error() string { return "answered " + dns.RcodeToString[int(e)] }

// fwdQuery is one forwarded query's state, pooled. One goroutine at a time
// owns it: Forward's caller until the query is sent, then the worker
// (TCP) or whoever takes it from its upstream socket (UDP: the socket's
// reader, or the sender itself when the send fails).
type fwdQuery struct {
	w dns.ResponseWriter
	// r is the client's query; nil when forwardRaw took it in wire form
	// (see request). id is its ID.
	r     *dns.Msg
	id    uint16
	start time.Time
	tcp   bool // the client's transport
	size  int  // the client's UDP size

	// ups are the upstreams, the first n tried; i is the current one.
	ups  []Upstream
	n, i int
	// end is when the upstreams' share of the client's timeout ends.
	end time.Time
	// until is the end of a UDP attempt; resent is set once the query was
	// sent again on a new socket after Flush closed the first one.
	until  time.Time
	resent bool

	// buf is the packed query after a two-byte length (for TCP); its ID is
	// rewritten for every attempt.
	buf []byte
	// qend is the end of the question section in buf[2:].
	qend int
	// reply is a TCP attempt's reply; failed is the last failure answer
	// kept, when haveFailed.
	reply, failed []byte
	haveFailed    bool
	// lenbuf receives a TCP reply's length.
	lenbuf [2]byte
}

var queryPool = sync.Pool{New: func() any {
	return &fwdQuery{buf: make([]byte, 514)}
}}

// maxPooledBuffer is the largest buffer a pooled fwdQuery keeps: the rare
// large TCP message does not pin 64 KiB per pooled query.
const maxPooledBuffer = 8192

// recycle returns q to the pool, dropping what it referenced.
func (q *fwdQuery) recycle() {
	q.w, q.r, q.ups = nil, nil, nil
	q.n, q.i, q.haveFailed = 0, 0, false
	if cap(q.buf) > maxPooledBuffer {
		q.buf = make([]byte, 514)
	}
	if cap(q.reply) > maxPooledBuffer {
		q.reply = nil
	}
	if cap(q.failed) > maxPooledBuffer {
		q.failed = nil
	}
	q.failed = q.failed[:0]
	q.reply = q.reply[:0]
	queryPool.Put(q)
}

// request returns the client's query, unpacked from q's packet when
// forwardRaw took it in wire form (for the rare replies the forwarder
// makes itself).
func (q *fwdQuery) request() *dns.Msg {
	if q.r == nil {
		r := new(dns.Msg)
		// forwardRaw checked what Handler.serveRaw did, which is what
		// unpacks; at worst r lacks its question.
		_ = r.Unpack(q.msg())
		r.Id = q.id
		q.r = r
	}
	return q.r
}

// pack packs q.r into q.buf after two bytes kept for TCP's length, and
// finds the end of its question.
func (q *fwdQuery) pack() error {
	b := q.buf[:cap(q.buf)]
	msg, err := q.r.PackBuffer(b[2:])
	if err != nil {
		return err
	}
	if len(msg)+2 > len(b) {
		// PackBuffer packed elsewhere: b was too short.
		b = make([]byte, len(msg)+2)
		copy(b[2:], msg)
	}
	q.buf = b[:len(msg)+2]
	binary.BigEndian.PutUint16(q.buf, uint16(len(msg)))
	q.qend = questionEnd(msg)
	if q.qend < 0 {
		return errMalformed
	}
	return nil
}

// msg is the packed query.
func (q *fwdQuery) msg() []byte { return q.buf[2:] }

// errMalformed fails a reply (or a query) whose wire form is not as it
// should be.
var errMalformed = errors.New("malformed or mismatched reply")

// headerLen is the length of a DNS message header.
const headerLen = 12

// questionEnd returns the end of the one question of msg, -1 if it has
// not exactly one whose name is uncompressed.
func questionEnd(msg []byte) int {
	if len(msg) < headerLen || binary.BigEndian.Uint16(msg[4:]) != 1 {
		return -1
	}
	off := headerLen
	for {
		if off >= len(msg) {
			return -1
		}
		l := int(msg[off])
		if l == 0 {
			break
		}
		if l&0xc0 != 0 {
			return -1
		}
		off += 1 + l
	}
	off += 1 + 4 // the root label, type and class
	if off > len(msg) {
		return -1
	}
	return off
}

// matches tells whether reply answers q's current attempt: a response with
// its ID and its question (the name compared without regard to ASCII case,
// as servers may change it).
func (q *fwdQuery) matches(reply []byte) bool {
	msg := q.msg()
	if len(reply) < q.qend || reply[0] != msg[0] || reply[1] != msg[1] || reply[2]&0x80 == 0 ||
		binary.BigEndian.Uint16(reply[4:]) != 1 {
		return false
	}
	name := q.qend - 4
	return asciiEqualFold(reply[headerLen:name], msg[headerLen:name]) &&
		string(reply[name:q.qend]) == string(msg[name:q.qend])
}

// asciiEqualFold compares a and b ignoring the case of ASCII letters. Given
// names in wire form, it never folds a label length: those are below 64.
func asciiEqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
