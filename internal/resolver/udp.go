package resolver

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The UDP pool's parameters. A pool has one connected socket per
// upstream, with its reader goroutine: the server's loop and one reader
// keep two cores busy, and a reader then takes more replies per wake-up.
// netbench -dns, six runs each, alternating, load about 2: 18.8 us of
// resolver CPU per forwarded query with one socket (0.25 context
// switches), 20.2 us with four (0.34); two were no better than four.
const (
	// udpRotateQueries and udpRotateAge bound the queries a socket sends
	// and its age; then it is replaced, so the source port changes
	// (Forwarder fields, for tests). An off-path spoofer who learnt the
	// port must then guess the 16-bit ID and the question within ten
	// seconds; a new socket every 10,000 queries (a quarter of a second
	// flat out) or 10 s costs nothing measurable.
	udpRotateQueries = 10000
	udpRotateAge     = 10 * time.Second
	// udpIdle is how long a socket that sends nothing is kept: then it is
	// closed, with its reader goroutine, so that an idle sandbox holds no
	// upstream socket (Forwarder field, for tests).
	udpIdle = 30 * time.Second
	// upstreamBatch is the number of replies a socket's reader takes with
	// one recvmmsg.
	upstreamBatch = 8
	// upstreamReplyMax is the largest UDP reply taken whole: the forwarded
	// query offers at most maxUDPSize. One byte more tells a longer one,
	// which is relayed as truncated.
	upstreamReplyMax = maxUDPSize
	// upstreamReceiveBuffer is a socket's receive buffer: room for the
	// replies to a socket's share of MaxConcurrent queries arriving at
	// once (the default holds about 200 small ones). It costs memory
	// only while replies wait.
	upstreamReceiveBuffer = 1 << 20
)

// udpPool holds the connected UDP socket to one upstream.
type udpPool struct {
	f      *Forwarder
	closed atomic.Bool
	// mu serialises dialling the socket, so that a burst of queries dials
	// once.
	mu sync.Mutex
	// sock is the socket, nil until dialled or after it was retired.
	sock atomic.Pointer[udpSocket]
}

// udpSocket is one connected UDP socket and the queries in flight on it.
// Its reader takes each reply to the query it answers and goes on with it
// (Forwarder.answered), and fails the queries whose time is up
// (Forwarder.failed): the socket's read deadline is the earliest of
// theirs.
type udpSocket struct {
	conn net.Conn
	pool *udpPool
	born time.Time

	mu sync.Mutex
	// waiters are the queries in flight by the ID they were sent with.
	// Whoever removes a query from it owns the query: the reader when the
	// reply comes, the time is up or the socket fails; the sender when
	// the send fails.
	waiters map[uint16]*fwdQuery
	// armed is the read deadline set on conn for the waiters, zero for
	// none (the deadline may then be the idle one). It is at or before
	// the earliest deadline of the waiters.
	armed time.Time
	// sent counts the queries sent, for rotation; last is the start of
	// the last one, for closing an idle socket.
	sent int
	last time.Time
	// retiring: the socket left its pool; it closes when waiters empties.
	retiring bool
	// closing: the forwarder closed the socket (Flush, or retired and
	// empty); closed: the reader is gone. Neither takes queries.
	closing, closed bool

	// taken is the reader's list of the queries it took from waiters to
	// fail, reused.
	taken []*fwdQuery
}

// randomID returns a random message ID. math/rand/v2's top-level source
// is a ChaCha8 generator per thread seeded by the runtime from the OS:
// unpredictable off-path.
func randomID() uint16 { return uint16(rand.Uint32()) }

// sendBuffers hold a query while it is sent: a copy, so that the query's
// own buffer may change as soon as another goroutine owns it (the reader
// may take it before the send returns).
var sendBuffers = sync.Pool{New: func() any { b := make([]byte, 0, maxUDPSize); return &b }}

// send sends q on the pool's socket, until q.until. sent is true
// when q is in flight: the socket's reader owns it. Otherwise err says why
// it was not sent (errSocketClosed: the socket was closed under it).
func (p *udpPool) send(q *fwdQuery, u *Upstream) (sent bool, err error) {
	s, err := p.socket(u, q.until)
	if err != nil {
		return false, err
	}
	bp := sendBuffers.Get().(*[]byte)
	defer sendBuffers.Put(bp)
	id, pkt, err := s.register(q, p.f, (*bp)[:0])
	if err != nil {
		return false, err
	}
	if _, err := s.conn.Write(pkt); err != nil && s.unregister(q, id) {
		return false, err
	}
	// Sent, or the reader took q meanwhile (the socket failed: an ICMP
	// error, Flush) and goes on with it.
	return true, nil
}

// socket returns the pool's socket, dialling it if needed.
func (p *udpPool) socket(u *Upstream, deadline time.Time) (*udpSocket, error) {
	if s := p.sock.Load(); s != nil {
		return s, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.sock.Load(); s != nil {
		return s, nil
	}
	if p.closed.Load() {
		return nil, errSocketClosed
	}
	conn, err := p.f.dial(u, "udp", deadline)
	if err != nil {
		return nil, err
	}
	if uc, ok := conn.(*net.UDPConn); ok {
		if err := setReceiveBuffer(uc, upstreamReceiveBuffer); err != nil {
			p.f.logger.Debug("resolver: raising an upstream socket's receive buffer", "error", err)
		}
	}
	s := &udpSocket{conn: conn, pool: p, born: time.Now(), waiters: map[uint16]*fwdQuery{}}
	p.sock.Store(s)
	p.f.readers.Add(1)
	go s.read(p.f)
	return s, nil
}

// close closes the pool's socket, failing the queries in flight on it
// with errSocketClosed, and keeps the pool from dialling another. Retired
// sockets still answer their last queries.
func (p *udpPool) close() {
	p.closed.Store(true)
	p.mu.Lock()
	s := p.sock.Swap(nil)
	p.mu.Unlock()
	if s != nil {
		s.shut()
	}
}

// register gives q a random ID unused on s, writes it into q's packet,
// adds q to the waiters until q.until and returns the ID and a copy of the
// packet, appended to pkt, to send. It retires s when s has sent or lived
// enough.
func (s *udpSocket) register(q *fwdQuery, f *Forwarder, pkt []byte) (uint16, []byte, error) {
	s.mu.Lock()
	if s.closing || s.closed {
		s.mu.Unlock()
		return 0, nil, errSocketClosed
	}
	id := f.newID()
	for s.waiters[id] != nil {
		id = f.newID()
	}
	binary.BigEndian.PutUint16(q.msg(), id)
	s.waiters[id] = q
	pkt = append(pkt, q.msg()...)
	if s.armed.IsZero() || q.until.Before(s.armed) {
		s.armed = q.until
		_ = s.conn.SetReadDeadline(q.until)
	}
	s.sent++
	s.last = q.start
	// The socket's age as of the query's start, which is recent enough
	// and spares reading the clock.
	retire := !s.retiring && (s.sent >= f.udpRotateQueries || q.start.Sub(s.born) >= f.udpRotateAge)
	if retire {
		s.retiring = true
	}
	s.mu.Unlock()
	if retire {
		s.pool.sock.CompareAndSwap(s, nil)
	}
	return id, pkt, nil
}

// unregister removes q, registered with id, from the waiters and tells
// whether it was there; when it was not, the reader took it (and q may
// be anywhere by now: only id tells what q was sent with).
func (s *udpSocket) unregister(q *fwdQuery, id uint16) bool {
	s.mu.Lock()
	ok := s.waiters[id] == q
	if ok {
		delete(s.waiters, id)
	}
	shut := s.drainedLocked()
	s.mu.Unlock()
	if shut {
		s.conn.Close()
	}
	return ok
}

// drainedLocked tells whether s was retired and has no query left, marking
// it closing: the caller closes it. s.mu must be held.
func (s *udpSocket) drainedLocked() bool {
	if !s.retiring || s.closing || len(s.waiters) > 0 {
		return false
	}
	s.closing = true
	return true
}

// shut closes s for Flush.
func (s *udpSocket) shut() {
	s.mu.Lock()
	already := s.closing
	s.closing = true
	s.mu.Unlock()
	if !already {
		s.conn.Close()
	}
}

// read takes the replies arriving on s to the queries waiting for them,
// and times the queries out, until s is closed.
func (s *udpSocket) read(f *Forwarder) {
	defer f.readers.Done()
	rd := newBatchReader(s.conn)
	for {
		n, err := rd.read()
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.expire(f)
				continue
			case isUnreachable(err):
				// An ICMP error for one of the queries sent: which one
				// is not said, but all went to the same server.
				s.failAll(f, err, false)
				continue
			}
			s.pool.sock.CompareAndSwap(s, nil)
			s.failAll(f, err, true)
			s.conn.Close()
			return
		}
		for i := range n {
			b := rd.msg(i)
			cut := len(b) > upstreamReplyMax
			if cut {
				b = b[:upstreamReplyMax]
			}
			s.deliver(f, b, cut)
		}
	}
}

// deliver goes on with the query reply answers. A reply that answers none
// in flight (late, or spoofed: wrong ID or question) is dropped.
func (s *udpSocket) deliver(f *Forwarder, reply []byte, cut bool) {
	if len(reply) < headerLen {
		return
	}
	s.mu.Lock()
	id := binary.BigEndian.Uint16(reply)
	q := s.waiters[id]
	if q == nil || !q.matches(reply) {
		s.mu.Unlock()
		return
	}
	delete(s.waiters, id)
	shut := s.drainedLocked()
	s.mu.Unlock()
	if shut {
		s.conn.Close()
	}
	f.answered(q, reply, cut)
}

// expire fails the queries whose time is up with errTimeout and sets the
// read deadline to the earliest of the others'; with none left, to when
// the socket will have been idle for udpIdle, and at that time retires
// it.
func (s *udpSocket) expire(f *Forwarder) {
	now := time.Now()
	late := s.taken[:0]
	var next time.Time
	s.mu.Lock()
	for id, q := range s.waiters {
		if !now.Before(q.until) {
			delete(s.waiters, id)
			late = append(late, q)
		} else if next.IsZero() || q.until.Before(next) {
			next = q.until
		}
	}
	s.armed = next
	if next.IsZero() && !s.retiring {
		// Nothing in flight: wake up when the socket has been idle for
		// udpIdle, and then retire it.
		if idle := s.last.Add(f.udpIdle); now.Before(idle) {
			next = idle
		} else {
			s.retiring = true
			s.pool.sock.CompareAndSwap(s, nil)
		}
	}
	_ = s.conn.SetReadDeadline(next)
	shut := s.drainedLocked()
	s.mu.Unlock()
	if shut {
		s.conn.Close()
	}
	s.failTaken(f, late, errTimeout)
}

// failAll fails the queries in flight with err, or errSocketClosed if the
// forwarder closed s; final marks s closed.
func (s *udpSocket) failAll(f *Forwarder, err error, final bool) {
	taken := s.taken[:0]
	s.mu.Lock()
	if s.closing {
		err = errSocketClosed
	}
	if final {
		s.closed = true
	}
	for id, q := range s.waiters {
		delete(s.waiters, id)
		taken = append(taken, q)
	}
	shut := !final && s.drainedLocked()
	s.mu.Unlock()
	if shut {
		s.conn.Close()
	}
	s.failTaken(f, taken, err)
}

// failTaken goes on with the queries the reader took, which failed with
// err, and keeps the list for reuse.
func (s *udpSocket) failTaken(f *Forwarder, taken []*fwdQuery, err error) {
	for i, q := range taken {
		taken[i] = nil
		f.failed(q, err)
	}
	s.taken = taken[:0]
}

// isUnreachable tells whether err is an ICMP error reported on a connected
// UDP socket; the socket stays usable.
func isUnreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH)
}

// batchReader reads a connected UDP socket's datagrams, several at a time
// with recvmmsg when the socket gives access to its descriptor, one at a
// time with Read otherwise. Each buffer holds upstreamReplyMax+1 bytes, so
// that a longer datagram shows.
type batchReader struct {
	conn net.Conn
	rc   syscall.RawConn // nil: Read

	bufs [upstreamBatch][upstreamReplyMax + 1]byte
	iovs [upstreamBatch]unix.Iovec
	hdrs [upstreamBatch]unix.Mmsghdr

	// recvFn is the callback of RawConn.Read, made once; n and errno are
	// its results.
	recvFn func(fd uintptr) bool
	n      int
	errno  syscall.Errno
	// lens are the lengths of the datagrams of the last read.
	lens [upstreamBatch]int
}

func newBatchReader(conn net.Conn) *batchReader {
	rd := &batchReader{conn: conn}
	if sc, ok := conn.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rd.rc = rc
		}
	}
	rd.recvFn = rd.recvmmsg
	for i := range rd.hdrs {
		rd.iovs[i].Base = &rd.bufs[i][0]
		rd.iovs[i].SetLen(len(rd.bufs[i]))
		rd.hdrs[i].Hdr.Iov = &rd.iovs[i]
		rd.hdrs[i].Hdr.SetIovlen(1)
	}
	return rd
}

// read reads at least one datagram, waiting for it, and returns how many
// it read; msg(i) returns them.
func (rd *batchReader) read() (int, error) {
	if rd.rc == nil {
		n, err := rd.conn.Read(rd.bufs[0][:])
		if err != nil {
			return 0, err
		}
		rd.lens[0] = n
		return 1, nil
	}
	for i := range rd.hdrs {
		rd.hdrs[i].Hdr.Flags = 0
	}
	if err := rd.rc.Read(rd.recvFn); err != nil {
		return 0, err
	}
	if rd.errno != 0 {
		return 0, rd.errno
	}
	for i := range rd.n {
		rd.lens[i] = int(rd.hdrs[i].Len)
	}
	return rd.n, nil
}

// msg returns datagram i of the last read.
func (rd *batchReader) msg(i int) []byte { return rd.bufs[i][:rd.lens[i]] }

// recvmmsg is read's callback for RawConn.Read; it returns false to wait
// until the socket is readable.
func (rd *batchReader) recvmmsg(fd uintptr) bool {
	var ok bool
	rd.n, rd.errno, ok = mmsg(unix.SYS_RECVMMSG, fd, &rd.hdrs[0], upstreamBatch)
	return ok
}
